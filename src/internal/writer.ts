/**
 * The connection's writer: a bounded batch of boxes and transition markers ({@link Hold}), written by one
 * fiber with one socket write per batch (a gather write: large values go to the socket as they are, not
 * copied into the batch).
 *
 * Queueing is synchronous (`push`): the dispatcher appends a box without running an Effect, and the
 * first box of a batch schedules one flush for the end of the current turn (a microtask, as a hand-written
 * Node server flushes on `process.nextTick`), so every box queued while one socket read is processed goes
 * out in one write. The bound (`maxQueuedBoxes`) counts what waits for the next flush; senders that find
 * it full wait for `room` (callers: `offer`), and the writer fiber waits for the socket's drain, so a peer
 * that never reads cannot grow our memory.
 * @internal
 */
import { Deferred, Effect, Exit } from "effect"
import type * as Socket from "effect/socket/Socket"
import * as Box from "../Box.ts"
import { Hold } from "./dispatcher.ts"

/** Default of `Options.maxQueuedBoxes`. */
export const DEFAULT_MAX_QUEUED_BOXES = 1024

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
  /**
   * The write loop over the current phase's socket writer (`current()`, read at each write: it changes
   * at StartTLS). Ends when the writer has been ended and drained, or at a hold released with `false`.
   */
  readonly run: (current: () => Socket.Writer) => Effect.Effect<void, Socket.SocketError>
  /** Ends the writer: the loop writes what is queued, then stops; later boxes are dropped. */
  readonly end: Effect.Effect<void>
}

/** `onWrite` is told the size of every chunk written (the bytes-sent metric). */
export const make = (maxQueuedBoxes: number | undefined, onWrite: (bytes: number) => void): Writer => {
  const max = maxQueuedBoxes ?? DEFAULT_MAX_QUEUED_BOXES
  let items: Array<Box.Box | Hold> = []
  let ended = false
  // the writer fiber's resume while it waits for work; a flush is scheduled at most once per turn
  let wake: (() => void) | undefined
  let scheduled = false
  let roomWaiter: Deferred.Deferred<void> | undefined

  const flush = (): void => {
    scheduled = false
    const w = wake
    if (w !== undefined) {
      wake = undefined
      w()
    }
  }
  const schedule = (): void => {
    if (scheduled || wake === undefined) return
    scheduled = true
    queueMicrotask(flush)
  }
  const freeRoom = (): void => {
    if (roomWaiter !== undefined) {
      Deferred.doneUnsafe(roomWaiter, Exit.void)
      roomWaiter = undefined
    }
  }

  const push = (box: Box.Box, hold?: Hold): void => {
    if (ended) return
    items.push(box)
    if (hold !== undefined) items.push(hold)
    schedule()
  }
  const full = (): boolean => !ended && items.length >= max
  const room: Effect.Effect<void> = Effect.suspend(() => {
    if (!full()) return Effect.void
    roomWaiter ??= Deferred.makeUnsafe<void>()
    return Deferred.await(roomWaiter)
  })
  // parks the writer fiber until a flush (or the end) wakes it
  const idle: Effect.Effect<void> = Effect.callback<void>((resume) => {
    if (items.length > 0 || ended) return resume(Effect.void)
    wake = () => resume(Effect.void)
    return Effect.sync(() => {
      wake = undefined
    })
  })

  const writeBoxes = (writer: Socket.Writer, boxes: ReadonlyArray<Box.Box>) => {
    const chunks = Box.encodeChunksUnsafe(boxes)
    for (let i = 0; i < chunks.length; i++) onWrite(chunks[i]!.length)
    return chunks.length === 1
      ? writer.write(chunks[0]!)
      : writer.writeAll(chunks as unknown as readonly [Uint8Array, ...Array<Uint8Array>])
  }
  const run = (current: () => Socket.Writer): Effect.Effect<void, Socket.SocketError> =>
    Effect.gen(function*() {
      while (true) {
        if (items.length === 0) {
          if (ended) return
          yield* idle
          continue
        }
        const batch = items
        items = []
        freeRoom()
        let start = 0
        for (let i = 0; i < batch.length; i++) {
          const item = batch[i]!
          if (item instanceof Hold) {
            if (i > start) yield* writeBoxes(current(), batch.slice(start, i) as Array<Box.Box>)
            Deferred.doneUnsafe(item.reached, Exit.void)
            const go: boolean = yield* Deferred.await(item.release)
            if (!go) return
            start = i + 1
          }
        }
        if (start < batch.length) {
          yield* writeBoxes(current(), (start === 0 ? batch : batch.slice(start)) as Array<Box.Box>)
        }
      }
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
        if (ended) return
        items.push(hold)
        schedule()
      }),
    run,
    end: Effect.sync(() => {
      ended = true
      freeRoom()
      const w = wake
      if (w !== undefined) {
        wake = undefined
        w()
      }
    })
  }
}
