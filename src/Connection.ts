/**
 * An AMP connection over an `effect/socket` Socket: the read loop (socket chunks → box Stream →
 * dispatcher), the batched writer, and the lifecycle. A connection lives in a Scope: closing the scope
 * closes the socket and fails every outstanding call with `ConnectionLost`.
 *
 * - Reads are pulled: the next chunk is read only when the previous boxes were dispatched, and the
 *   dispatcher waits for a handler slot when `maxConcurrentHandlers` are busy, so a flood of commands
 *   slows the peer down (TCP backpressure) instead of growing a queue.
 * - Writes are batched: boxes queued in the same turn are serialized into one buffer and written with
 *   one socket write. The send queue is bounded (`maxQueuedBoxes`) and the writer respects the socket's
 *   backpressure, so a peer that never reads cannot grow our memory without bound.
 * - Ends, as in Twisted: a protocol error (unknown answer tag, empty box, …) aborts at once; a key
 *   longer than 255 bytes, an `UNKNOWN` error answer or a fatal error closes after flushing what is
 *   queued; `close({ graceful: true })` stops reading, lets running handlers answer, flushes, then closes.
 *
 * @since 0.1.0
 */
import { Deferred, Effect, Exit, Fiber, Queue, Schema, Scope, Stream } from "effect"
import * as Socket from "effect/socket/Socket"
import { ConnectionLost, type ProtocolError, ProtocolSwitched } from "./AmpError.ts"
import * as Box from "./Box.ts"
import { ConnectionInfo, type Snapshot } from "./ConnectionInfo.ts"
import * as Dispatcher from "./Dispatcher.ts"
import type { Responders } from "./Responders.ts"

/**
 * Why a connection ended.
 *
 * @since 0.1.0
 * @category models
 */
export class ConnectionEnded extends Schema.TaggedError<ConnectionEnded>()("ConnectionEnded", {
  /** Human-readable reason: "closed by peer", "closed locally", "protocol error: …". */
  reason: Schema.String,
  /** Whether we ended it (a local close, a fatal error we sent, a protocol violation by the peer). */
  local: Schema.Boolean,
  /** The typed error behind it, when there is one (ProtocolError, FramingError, SocketError). */
  cause: Schema.optional(Schema.Unknown)
}) {
  override get message(): string {
    return `AMP connection ended: ${this.reason}`
  }
}

/**
 * Connection options.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Dispatcher.Options {
  /** Boxes waiting to be written before senders wait (default 1024). */
  readonly maxQueuedBoxes?: number | undefined
  /** How long a graceful close waits for handlers and the flush before aborting (default 10 s). */
  readonly closeTimeoutMillis?: number | undefined
  /** Transport description for `ConnectionInfo` (addresses, TLS). */
  readonly info?: Partial<Snapshot> | undefined
}

/**
 * A running connection.
 *
 * @since 0.1.0
 * @category models
 */
export interface Connection {
  /** Call the peer. */
  readonly dispatcher: Dispatcher.Dispatcher["Service"]
  readonly info: ConnectionInfo["Service"]
  /** Completes when the connection has ended, with the reason. */
  readonly ended: Effect.Effect<ConnectionEnded>
  /**
   * Ends the connection. Default (abort): stop now, fail outstanding calls, drop unsent boxes.
   * `graceful: true`: stop reading and calling, let running handlers finish and their answers out,
   * flush, then close (bounded by `closeTimeoutMillis`).
   */
  readonly close: (options?: { readonly graceful?: boolean | undefined }) => Effect.Effect<void>
}

type Mode = "abort" | "flush" | "graceful"
interface EndRequest {
  readonly mode: Mode
  readonly end: ConnectionEnded
}

const textEncoder = new TextEncoder()
const toBytes = (chunk: Uint8Array | string): Uint8Array => typeof chunk === "string" ? textEncoder.encode(chunk) : chunk

const isCleanClose = (error: Socket.SocketError): boolean =>
  error.reason._tag === "SocketCloseError" && (error.reason as { code?: number }).code === 1000

/**
 * Runs AMP over a socket, in the current scope, with the `Responders` from the context.
 *
 * @example
 * ```ts
 * import { Connection, Responders } from "effect-amp"
 * import { NodeSocket } from "@effect/platform-node"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const socket = yield* NodeSocket.makeNet({ host: "127.0.0.1", port: 7001 })
 *   const connection = yield* Connection.make(socket)
 *   return yield* connection.dispatcher.callRemote(Sum, { a: 1n, b: 2n })
 * }).pipe(Effect.scoped, Effect.provide(Responders.empty))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(socket: Socket.Socket, options?: Options) {
  const scope = yield* Effect.scope
  const endRequest = yield* Deferred.make<EndRequest>()
  const ended = yield* Deferred.make<ConnectionEnded>()
  let state: "open" | "closing" | "closed" = "open"

  const infoSnapshot: Snapshot = { transport: "unknown", tls: false, ...options?.info }
  const info: ConnectionInfo["Service"] = { get: Effect.sync(() => infoSnapshot) }

  // The reader is acquired first: it opens the socket (and the writer waits for it).
  const ioScope = yield* Scope.fork(scope)
  const reader = yield* Scope.provide(socket.reader, ioScope)
  const writer = yield* Scope.provide(socket.writer, ioScope)

  const queue = yield* Queue.bounded<Box.Box, import("effect").Cause.Done>(options?.maxQueuedBoxes ?? 1024)

  const requestEnd = (mode: Mode, end: ConnectionEnded): Effect.Effect<void> =>
    Effect.sync(() => {
      Deferred.doneUnsafe(endRequest, Exit.succeed({ mode, end }))
    })

  const outbox: Dispatcher.Outbox = {
    send: (box) =>
      Effect.suspend((): Effect.Effect<void, Box.TooLong | Box.InvalidKey | ConnectionLost> => {
        if (state === "closed") return Effect.fail(new ConnectionLost({ reason: "connection closed" }))
        const size = Box.encodedLength(box)
        if (typeof size !== "number") return Effect.fail(size)
        return Effect.asVoid(Queue.offer(queue, box))
      }),
    close: (reason, graceful) =>
      requestEnd(graceful ? "flush" : "abort", new ConnectionEnded({ reason, local: true }))
  }
  void ProtocolSwitched

  const dispatcherScope = yield* Scope.fork(scope)
  const handle = yield* Scope.provide(Dispatcher.make(outbox, info, options), dispatcherScope)

  // --- writer: batch everything queued, one socket write per batch --------------------------------
  const writeLoop = Effect.gen(function*() {
    while (true) {
      const boxes = yield* Queue.takeAll(queue)
      yield* writer.write(Box.encodeAllUnsafe(boxes))
    }
  }).pipe(
    Effect.catchCause((cause) => {
      // Done: the queue was ended and drained (a close); anything else is a write failure
      if (cause.reasons.every((r) => r._tag === "Fail" && (r.error as { _tag?: string })?._tag === "Done")) {
        return Effect.void
      }
      return requestEnd("abort", new ConnectionEnded({ reason: "write failed", local: false, cause: String(cause) }))
    })
  )

  // --- reader: socket chunks → boxes (Stream) → dispatcher ---------------------------------------
  const decoder = Box.makeDecoder()
  interface Batch {
    readonly boxes: Array<Box.Box>
    readonly error: Box.FramingError | undefined
  }
  const processBatch = (batch: Batch): Effect.Effect<void, ProtocolError | Box.FramingError> => {
    const { boxes, error } = batch
    const n = boxes.length
    let i = 0
    const next: Effect.Effect<void, ProtocolError | Box.FramingError> = Effect.suspend(() => {
      if (i < n) return Effect.flatMap(handle.receive(boxes[i++]!), () => next)
      return error ? Effect.fail(error) : Effect.void
    })
    return next
  }
  const readLoop = Stream.fromPull(Effect.succeed(reader.pull)).pipe(
    Stream.map((chunk): Batch => {
      const boxes: Array<Box.Box> = []
      const error = decoder.feed(toBytes(chunk), boxes)
      return { boxes, error }
    }),
    Stream.runForEach(processBatch),
    Effect.matchCauseEffect({
      onSuccess: () => requestEnd("flush", new ConnectionEnded({ reason: "closed by peer", local: false })),
      onFailure: (cause) => {
        const failure = cause.reasons.find((r) => r._tag === "Fail")
        if (failure === undefined) return Effect.void // interrupted: someone else is ending us
        const error = failure.error as ProtocolError | Box.FramingError | Socket.SocketError
        switch (error._tag) {
          case "ProtocolError":
            // Twisted: an exception out of dataReceived aborts without flushing
            return requestEnd("abort", new ConnectionEnded({ reason: error.message, local: true, cause: error }))
          case "FramingError":
            // Twisted: lengthLimitExceeded → loseConnection (flushes), calls fail with TooLong
            return requestEnd("flush", new ConnectionEnded({ reason: error.message, local: true, cause: error }))
          default:
            return requestEnd(
              "flush",
              new ConnectionEnded({
                reason: isCleanClose(error) ? "closed by peer" : `socket error: ${error.message}`,
                local: false,
                cause: error
              })
            )
        }
      }
    })
  )

  const writerFiber = yield* Effect.forkIn(writeLoop, scope)
  const readerFiber = yield* Effect.forkIn(readLoop, scope)

  const closeTimeout = options?.closeTimeoutMillis ?? 10_000

  // --- lifecycle ---------------------------------------------------------------------------------
  const shutdown = Effect.gen(function*() {
    const { end, mode } = yield* Deferred.await(endRequest)
    state = "closing"
    yield* Fiber.interrupt(readerFiber)
    yield* handle.failAll(end.reason)
    if (mode === "graceful") {
      yield* handle.awaitHandlers.pipe(Effect.timeoutOrElse({ duration: closeTimeout, orElse: () => Effect.void }))
    }
    yield* Scope.close(dispatcherScope, Exit.void) // interrupts remaining handlers
    if (mode !== "abort") {
      yield* Queue.end(queue)
      yield* Fiber.join(writerFiber).pipe(
        Effect.timeoutOrElse({ duration: closeTimeout, orElse: () => Effect.void }),
        Effect.ignore
      )
    }
    state = "closed"
    yield* Fiber.interrupt(writerFiber)
    if (mode === "abort") yield* Effect.ignore(writer.write(new Socket.CloseEvent(1006)))
    yield* Scope.close(ioScope, Exit.void)
    yield* Deferred.succeed(ended, end)
  })
  yield* Effect.forkIn(shutdown, scope)
  yield* Scope.addFinalizer(
    scope,
    Effect.suspend(() =>
      state === "closed"
        ? Effect.void
        : Effect.andThen(
          requestEnd("abort", new ConnectionEnded({ reason: "connection scope closed", local: true })),
          Deferred.await(ended)
        )
    )
  )

  const connection: Connection = {
    dispatcher: handle.service,
    info,
    ended: Deferred.await(ended),
    close: (closeOptions) =>
      Effect.andThen(
        requestEnd(
          closeOptions?.graceful === true ? "graceful" : "abort",
          new ConnectionEnded({ reason: "closed locally", local: true })
        ),
        Effect.asVoid(Deferred.await(ended))
      )
  }
  return connection
})

/**
 * Runs AMP over a socket in the current scope and provides its `Dispatcher`, for code that only calls.
 *
 * @since 0.1.0
 * @category constructors
 */
export const dispatcher = (socket: Socket.Socket, options?: Options) =>
  Effect.map(make(socket, options), (c) => c.dispatcher)

/** @internal */
export type { Responders }
