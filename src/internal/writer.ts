/**
 * The connection's writer: a bounded queue of boxes and transition markers ({@link Hold}), written with
 * one socket write per batch (a gather write: large values go to the socket as they are, not copied).
 *
 * It is a small callback-driven state machine, not a fiber: queueing is synchronous (`push`), and the
 * first box of a batch schedules one flush at the end of the current turn (a microtask, as a hand-written
 * Node server flushes on `process.nextTick`), so every box queued while one socket read is handled goes
 * out in one write. Over a Node stream the flush writes to it directly; otherwise (MemorySocket,
 * WebSocket) through the phase's `Socket.Writer`. The bound (`maxQueuedBoxes`) counts what waits for the
 * next write; senders that find it full wait for `room`, and while the socket is full (no `drain` yet)
 * nothing more is written, so a peer that never reads cannot grow our memory.
 *
 * ```
 *  Idle ──push──▶ Scheduled ──flush──▶ Idle           (the write completed at once)
 *                      └──────────────▶ Waiting ──drain / hold released──▶ (flush again)
 *  any ──stop / failed write / hold released with false──▶ Done
 * ```
 * @internal
 */
import { Cause, Deferred, Effect, Exit } from "effect"
import type * as Socket from "effect/socket/Socket"
import type { Duplex } from "node:stream"
import * as Box from "../Box.ts"
import { Hold } from "./dispatcher.ts"

/** Default of `Options.maxQueuedBoxes`. */
export const DEFAULT_MAX_QUEUED_BOXES = 1024

/**
 * Output buffers for the Node stream sinks, shared by every connection of the process (at most 4 MiB
 * idle): a batch is encoded into a recycled buffer, handed back once the stream has written it. A fresh
 * buffer per write costs page faults and, counted as V8 external memory, full garbage collections when
 * large values are written.
 */
const outputPool = Box.makeOutputPool()

/** Where a batch goes: the phase's Node stream when there is one, else its effect socket writer. */
export type Sink =
  | { readonly _tag: "Stream"; readonly stream: Duplex }
  | { readonly _tag: "Writer"; readonly writer: Socket.Writer }

/** The writer's state (see the module's comment). */
type State = "Idle" | "Scheduled" | "Waiting" | "Done"

export interface Writer {
  /**
   * Queues a box, then `hold` if given (nothing can come between them), without waiting. Dropped
   * silently once the writer has ended. Check `full()` afterwards: a full writer's senders should wait.
   */
  readonly push: (box: Box.Box, hold?: Hold) => void
  /** Whether the queue has reached its bound (senders should wait for `room`). */
  readonly full: () => boolean
  /** Waits until the queue is below its bound (or the writer has ended). */
  readonly room: Effect.Effect<void>
  /** `push`, then wait for `room` if the queue is full. */
  readonly offer: (box: Box.Box, hold?: Hold) => Effect.Effect<void>
  /** Queues a hold alone (a responder's transition with no answer to send). */
  readonly offerHold: (hold: Hold) => Effect.Effect<void>
  /** Ends the writer: what is queued is still written (see `drained`); later boxes are dropped. */
  readonly end: Effect.Effect<void>
  /** Completes when the writer is done: ended and flushed, stopped, or failed. */
  readonly drained: Effect.Effect<void>
  /** Stops at once: what is queued is dropped. */
  readonly stop: () => void
}

export interface WriterOptions {
  readonly maxQueuedBoxes: number | undefined
  /** Told the size of every chunk written (the bytes-sent metric). */
  readonly onWrite: (bytes: number) => void
  /** The current phase's sink, read at each write (it changes at StartTLS). */
  readonly sink: () => Sink
  /** Called once if a write fails; the writer is then done. */
  readonly onError: (cause: Cause.Cause<unknown>) => void
}

export const make = (options: WriterOptions): Writer => {
  const max = options.maxQueuedBoxes ?? DEFAULT_MAX_QUEUED_BOXES
  let queue: Array<Box.Box | Hold> = []
  let state: State = "Idle"
  let ended = false
  let roomWaiter: Deferred.Deferred<void> | undefined
  const done = Deferred.makeUnsafe<void>()

  const freeRoom = (): void => {
    if (roomWaiter !== undefined) {
      Deferred.doneUnsafe(roomWaiter, Exit.void)
      roomWaiter = undefined
    }
  }
  const finish = (): void => {
    state = "Done"
    queue = []
    freeRoom()
    Deferred.doneUnsafe(done, Exit.void)
  }
  const fail = (cause: Cause.Cause<unknown>): void => {
    if (state === "Done") return
    finish()
    options.onError(cause)
  }

  /** Reaching a hold: everything before it is written; wait until the transition releases it. */
  const reach = (hold: Hold): void => {
    state = "Waiting"
    Deferred.doneUnsafe(hold.reached, Exit.void)
    const fiber = Effect.runFork(Deferred.await(hold.release))
    const go = (exit: Exit.Exit<boolean>) => {
      if (state === "Done") return
      if (Exit.isSuccess(exit) && exit.value) flush()
      else finish() // released with false: AMP is over (a switch, or a failed transition)
    }
    const exit = fiber.pollUnsafe()
    if (exit !== undefined) go(exit)
    else fiber.addObserver(go)
  }

  const flush = (): void => {
    while (state !== "Done") {
      if (queue.length === 0) {
        state = "Idle"
        if (ended) finish()
        return
      }
      let h = 0
      while (h < queue.length && !(queue[h] instanceof Hold)) h++
      const boxes = (h === queue.length ? queue : queue.slice(0, h)) as Array<Box.Box>
      const hold = h === queue.length ? undefined : queue[h] as Hold
      queue = hold === undefined ? [] : queue.slice(h + 1)
      freeRoom()
      if (boxes.length > 0) {
        state = "Waiting"
        const sink = options.sink()
        const chunks = sink._tag === "Stream" ? Box.encodeChunksPooled(boxes, outputPool) : Box.encodeChunksUnsafe(boxes)
        for (let i = 0; i < chunks.length; i++) options.onWrite(chunks[i]!.length)
        const next = hold === undefined ? flush : () => reach(hold)
        const written = sink._tag === "Stream"
          ? writeStream(sink.stream, chunks, next, fail)
          : writeEffect(sink.writer, chunks, next, fail)
        if (!written) return
      }
      if (hold !== undefined) return reach(hold)
    }
  }

  const schedule = (): void => {
    if (state !== "Idle") return
    state = "Scheduled"
    queueMicrotask(flush)
  }
  const push = (box: Box.Box, hold?: Hold): void => {
    if (ended || state === "Done") return
    queue.push(box)
    if (hold !== undefined) queue.push(hold)
    schedule()
  }
  const full = (): boolean => state !== "Done" && !ended && queue.length >= max
  const room: Effect.Effect<void> = Effect.suspend(() => {
    if (!full()) return Effect.void
    roomWaiter ??= Deferred.makeUnsafe<void>()
    return Deferred.await(roomWaiter)
  })

  return {
    push,
    full,
    room,
    offer: (box, hold) =>
      Effect.suspend(() => {
        push(box, hold)
        return full() ? room : Effect.void
      }),
    offerHold: (hold) =>
      Effect.sync(() => {
        if (ended || state === "Done") return
        queue.push(hold)
        schedule()
      }),
    end: Effect.sync(() => {
      ended = true
      freeRoom()
      if (state === "Idle") finish()
    }),
    drained: Deferred.await(done),
    stop: () => {
      if (state !== "Done") finish()
    }
  }
}

/**
 * A Node stream write (corked for several chunks); true when more may be written at once, else waits
 * for `drain` and calls `resume`. The pooled output goes back to the pool from the last chunk's write
 * callback (callbacks come in order, so the whole batch is written then), never on an error.
 */
const writeStream = (
  stream: Duplex,
  chunks: Array<Uint8Array>,
  resume: () => void,
  fail: (cause: Cause.Cause<unknown>) => void
): boolean => {
  let ok = true
  const recycle = (error?: Error | null) => {
    if (error == null) outputPool.release(chunks)
  }
  const last = chunks.length - 1
  try {
    if (last === 0) ok = stream.write(chunks[0], recycle)
    else {
      stream.cork()
      try {
        for (let i = 0; i < last; i++) ok = stream.write(chunks[i]) && ok
        ok = stream.write(chunks[last], recycle) && ok
      } finally {
        stream.uncork()
      }
    }
  } catch (error) {
    fail(Cause.fail(error))
    return false
  }
  if (ok) return true
  const cleanup = () => {
    stream.off("drain", onDrain)
    stream.off("error", onError)
    stream.off("close", onClose)
  }
  const onDrain = () => {
    cleanup()
    resume()
  }
  const onError = (error: unknown) => {
    cleanup()
    fail(Cause.fail(error))
  }
  const onClose = () => {
    cleanup()
    fail(Cause.fail(new Error("socket closed")))
  }
  stream.on("drain", onDrain)
  stream.on("error", onError)
  stream.on("close", onClose)
  return false
}

/** A write through an effect `Socket.Writer` (MemorySocket, WebSocket): run at once, waited on if it suspends. */
const writeEffect = (
  writer: Socket.Writer,
  chunks: ReadonlyArray<Uint8Array>,
  resume: () => void,
  fail: (cause: Cause.Cause<unknown>) => void
): boolean => {
  const effect = chunks.length === 1
    ? writer.write(chunks[0]!)
    : writer.writeAll(chunks as unknown as readonly [Uint8Array, ...Array<Uint8Array>])
  const fiber = Effect.runFork(effect)
  const settle = (exit: Exit.Exit<void, Socket.SocketError>): boolean => {
    if (Exit.isSuccess(exit)) return true
    fail(exit.cause)
    return false
  }
  const exit = fiber.pollUnsafe()
  if (exit !== undefined) return settle(exit)
  fiber.addObserver((exit) => {
    if (settle(exit)) resume()
  })
  return false
}
