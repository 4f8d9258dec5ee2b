/**
 * An AMP connection over an `effect/socket` Socket. `make` wires the parts, each in a module of its own:
 * the reader (socket chunks → box Stream → dispatcher), the dispatcher engine (calls, answers, handlers),
 * the batched writer, the lifecycle (how it ends), and the two transitions of the socket's phase:
 * StartTLS (plain → TLS, in `StartTLS`) and protocol switches (AMP → another protocol, in
 * `ProtocolSwitch`). The connection's phase is one state machine (Plain, TlsPending, Tls, SwitchPending,
 * Switched, Closing, Closed). A connection lives in a Scope: closing the scope closes the socket and fails
 * every outstanding call with `AmpConnectionLost`.
 *
 * - Reads never stop for busy handlers: answers to our calls are always delivered, and incoming commands
 *   wait in a bounded queue (see `Dispatcher.Options`); only a full queue stops reading.
 * - Writes are batched: boxes queued in the same turn go out in one socket write. The send queue is
 *   bounded (`maxQueuedBoxes`) and the writer respects the socket's backpressure.
 * - Ends, as in Twisted: a protocol error (unknown answer tag, empty box, …) aborts at once; a key longer
 *   than 255 bytes, an `UNKNOWN` error answer or a fatal error closes after flushing what is queued;
 *   `close({ graceful: true })` stops reading, lets running and queued handlers answer, flushes, then
 *   closes. Every defect is logged with its cause and ends the connection; nothing hangs.
 *
 * @since 0.1.0
 */
import { Deferred, type Duration, Effect, Scope } from "effect"
import * as Socket from "effect/socket/Socket"
import type { Duplex } from "node:stream"
import { ConnectionEnded, AmpConnectionLost, ProtocolSwitched } from "./AmpError.ts"
import * as Box from "./Box.ts"
import type * as Command from "./Command.ts"
import type { ConnectionInfo, Snapshot } from "./ConnectionInfo.ts"
import type * as Dispatcher from "./Dispatcher.ts"
import { type Core, phases } from "./internal/core.ts"
import type * as Descriptors from "./internal/descriptors.ts"
import * as Engine from "./internal/dispatcher.ts"
import * as Lifecycle from "./internal/lifecycle.ts"
import { connectionObserver, type InfoSource } from "./internal/observability.ts"
import * as Reader from "./internal/reader.ts"
import { Machine } from "./internal/state.ts"
import * as Writer from "./internal/writer.ts"
import { SpanNames } from "./Observability.ts"
import * as ProtocolSwitch from "./ProtocolSwitch.ts"
import * as StartTLS from "./StartTLS.ts"

/**
 * Connection options.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Dispatcher.Options {
  /** Boxes waiting to be written before senders wait (default 1024). */
  readonly maxQueuedBoxes?: number | undefined
  /** How long a graceful close waits for handlers and the flush before aborting (default 10 seconds). */
  readonly closeTimeout?: Duration.Input | undefined
  /**
   * Close the connection if no complete box arrives within this time of its start (and of each
   * StartTLS). Off by default; a server facing untrusted peers should set it (e.g. "30 seconds").
   */
  readonly firstBoxTimeout?: Duration.Input | undefined
  /** Close the connection after this long without receiving a byte. Off by default. */
  readonly idleTimeout?: Duration.Input | undefined
  /** Transport description for `ConnectionInfo` (addresses, TLS). */
  readonly info?: Partial<Snapshot> | undefined
  /**
   * TLS material used when the peer sends StartTLS (and the defaults for `startTLS`). Without `key` and
   * `cert` an incoming StartTLS is answered with the error `TLS_ERROR` ("TLS not available", as Twisted
   * without TLS support), unless we are the TLS client.
   */
  readonly tls?: StartTLS.TlsOptions | undefined
}

/**
 * Internal options set by the transports.
 *
 * @since 0.1.0
 * @category models
 */
export interface TransportOptions {
  /** Which end of the underlying stream we are: decides the TLS role. */
  readonly role: "client" | "server"
  /** The Node stream under the socket: needed for StartTLS and protocol switches. */
  readonly raw?: Duplex | undefined
  /** The host we connected to (default TLS server name for hostname checks). */
  readonly host?: string | undefined
  /** Why StartTLS is impossible without `raw` (the `AmpTlsError` reason and the refusal sent to the peer). */
  readonly noTlsReason?: string | undefined
  /**
   * File-descriptor passing (`Argument.Descriptor`) on this connection, or why it is unavailable.
   * @internal
   */
  readonly descriptors?: Descriptors.State | undefined
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
   * `graceful: true`: stop reading and calling, let running and queued handlers finish and their answers
   * out, flush, then close (bounded by `closeTimeout`).
   */
  readonly close: (options?: { readonly graceful?: boolean | undefined }) => Effect.Effect<void>
  /**
   * Sends `StartTLS` and upgrades the connection (see the `StartTLS` module). Options are merged over
   * the connection's `tls` options. Boxes sent meanwhile are held and go out through TLS.
   */
  readonly startTLS: (
    options?: StartTLS.TlsOptions
  ) => Effect.Effect<void, StartTLS.OnlyOneTLS | StartTLS.AmpTlsError | Dispatcher.CallError>
  /**
   * Sends a protocol-switch command; on success AMP stops and the returned socket carries the next
   * protocol (see the `ProtocolSwitch` module).
   */
  readonly switchProtocol: <C extends Command.Any>(
    command: C,
    args: Command.Arguments<C>
  ) => Effect.Effect<ProtocolSwitch.SwitchedSocket, Command.Error<C> | Dispatcher.CallError>
}

let shared: Box.ValuePool | undefined
/** The pool connections share unless given one: at most 4 MiB idle for the whole process. */
const sharedValuePool = (): Box.ValuePool => (shared ??= Box.makeValuePool({ maxIdleBytes: 4 * 1024 * 1024 }))

const SWITCHED = "This connection has switched: no AMP traffic allowed."
/** After a failed write, how long the reader may take to read what the peer sent before it closed. */
const WRITE_FAILURE_GRACE = "500 millis"

/**
 * Runs AMP over a socket, in the current scope, with the `Responders` from the context. StartTLS and
 * protocol switches need the transport's Node stream (`transport.raw`); `Client` and `Server` pass it.
 *
 * @example
 * ```ts
 * import { Argument, Command, Connection, MemorySocket, Responders } from "effect-amp"
 * import { Effect } from "effect"
 *
 * const Sum = Command.make("Sum", {
 *   arguments: { a: Argument.Integer, b: Argument.Integer },
 *   response: { total: Argument.Integer }
 * })
 * const Handlers = Responders.layer(Responders.handle(Sum, ({ a, b }) => Effect.succeed({ total: a + b })))
 *
 * const program = Effect.gen(function*() {
 *   const [a, b] = yield* MemorySocket.pair
 *   yield* Connection.make(b).pipe(Effect.provide(Handlers))
 *   const client = yield* Connection.make(a).pipe(Effect.provide(Responders.empty))
 *   return yield* client.dispatcher.callRemote(Sum, { a: 1n, b: 2n })
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(
  socket: Socket.Socket,
  options?: Options,
  transport?: TransportOptions
) {
  const scope = yield* Effect.scope
  const tlsFromStart = options?.info?.tls === true
  const state = new Machine(tlsFromStart ? { _tag: "Tls", confirmed: true } : { _tag: "Plain" })
  const ends = Lifecycle.makeEnds()
  // The shutdown runs from the first end request on (see `Lifecycle.shutdown`), in a fiber of its own
  // forked then: an open connection does not keep a fiber parked for it. It always finishes (every wait
  // in it is bounded) by completing `core.ended`, which the scope's finalizer below waits for.
  const makeContext = yield* Effect.context<never>()
  let startShutdown: (() => void) | undefined
  const requestEnd = Lifecycle.requestEnd(ends, () => {
    const start = startShutdown
    startShutdown = undefined
    start?.()
  })
  const valuePool = options?.valuePool ?? sharedValuePool()
  let decoder = Box.makeDecoder({ pool: valuePool, pieces: true })

  // Parent of every phase's scopes, forked now: a scope closes its finalizers in reverse order, so a
  // phase forked from `scope` after StartTLS would be released *before* the shutdown finalizer below,
  // which then waits forever writing its close event to the released writer.
  const phaseScopes = phases(yield* Scope.fork(scope))
  const role = transport?.role ?? "client"
  const info: InfoSource = { get: Effect.sync(() => core.info), current: () => core.info }
  // spans for the transitions, the open-connections gauge, bytes in and out (Observability)
  const observer = yield* connectionObserver(info, role, options)
  const writer = Writer.make({
    maxQueuedBoxes: options?.maxQueuedBoxes,
    onWrite: observer.sent,
    // over a Node stream (TCP, Unix, TLS: the current one is `core.raw`) the writer writes to it directly
    sink: () => core.raw !== undefined ? { _tag: "Stream", stream: core.raw } : { _tag: "Writer", writer: core.phase!.writer },
    // A write usually fails because the peer closed: what it sent before closing (an error box, a last
    // answer) is still to be read. Give the reader a moment to reach the end (its end request then
    // wins, with the peer's reason), and abort only if it does not.
    onError: (cause) =>
      Effect.runForkWith(makeContext)(
        Effect.andThen(
          Effect.logWarning("AMP: writing to the socket failed; closing the connection", cause),
          Effect.andThen(
            Effect.sleep(WRITE_FAILURE_GRACE),
            requestEnd("abort", new ConnectionEnded({ reason: "write failed", local: false, cause }))
          )
        )
      )
  })

  const outbox: Engine.Outbox = {
    push: (box, hold) => {
      if (state.current._tag === "Closed") return new AmpConnectionLost({ reason: "connection closed" })
      if (state.locked) return new ProtocolSwitched({ reason: SWITCHED })
      const size = Box.encodedLength(box)
      if (typeof size !== "number") return size
      // a switch request locks AMP from the moment it is queued (Twisted)
      if (hold?.kind === "switch") state.to({ _tag: "SwitchPending", tls: state.tls })
      writer.push(box, hold)
      return undefined
    },
    full: writer.full,
    room: writer.room,
    close: (reason, graceful, cause) =>
      requestEnd(graceful ? "flush" : "abort", new ConnectionEnded({ reason, local: true, cause }))
  }

  const dispatcherScope = yield* Scope.fork(scope)
  const engine = yield* Scope.provide(
    Engine.make(
      outbox,
      info,
      { ...options, valuePool },
      (name) => observer.span(SpanNames.switchProtocol, "server", name),
      transport?.descriptors
    ),
    dispatcherScope
  )

  const core: Core = {
    role,
    host: transport?.host,
    noTlsReason: transport?.noTlsReason,
    state,
    engine,
    writer,
    raw: transport?.raw,
    phase: undefined,
    enterPhase: (s) =>
      Effect.map(phaseScopes.acquire(s), (phase) => {
        core.phase = phase
      }),
    leavePhase: (hold, leftover) =>
      Effect.gen(function*() {
        yield* Deferred.await(hold.reached)
        const phase = core.phase
        core.phase = undefined
        if (phase !== undefined) yield* phaseScopes.release(phase)
        const raw = core.raw!
        if (leftover.length > 0) raw.unshift(Buffer.from(leftover.buffer, leftover.byteOffset, leftover.length))
        return raw
      }),
    resetDecoder: () => {
      decoder = Box.makeDecoder({ pool: valuePool, pieces: true })
    },
    info: { transport: "unknown", ...options?.info, tls: tlsFromStart },
    requestEnd,
    ended: Deferred.makeUnsafe<ConnectionEnded>(),
    scope
  }
  yield* core.enterPhase(socket)

  const runStep: Reader.RunStep = (step, leftover) => {
    switch (step._tag) {
      case "StartTls":
        return StartTLS.respond(core, options?.tls, step.ask, leftover).pipe(
          observer.span(SpanNames.startTLS, "server", StartTLS.StartTLS.name)
        )
      case "Switch":
        return ProtocolSwitch.respond(core, step, leftover)
      case "Answered":
        return step.transition._tag === "StartTls"
          ? StartTLS.answered(core, step.transition, step.answer, step.deliver, leftover)
          : ProtocolSwitch.answered(core, step.transition, step.answer, step.deliver, leftover)
    }
  }

  const readerFiber = yield* Effect.forkIn(
    Reader.run(core, () => decoder, runStep, {
      firstBoxTimeout: options?.firstBoxTimeout,
      idleTimeout: options?.idleTimeout,
      onRead: observer.received
    }).pipe(Effect.exit, Effect.flatMap((exit) => Lifecycle.readerEnded(core, exit))),
    scope
  )

  const shutdown = Lifecycle.shutdown(
    core,
    ends,
    readerFiber,
    dispatcherScope,
    phaseScopes.release,
    options?.closeTimeout ?? Lifecycle.DEFAULT_CLOSE_TIMEOUT
  )
  startShutdown = () => {
    Effect.runForkWith(makeContext)(shutdown)
  }
  // an end requested before this point (while the fibers were being started) starts it now
  if (Deferred.isDoneUnsafe(ends.request)) startShutdown()
  yield* Scope.addFinalizer(
    scope,
    Effect.suspend(() =>
      state.current._tag === "Closed"
        ? Effect.void
        : Effect.andThen(
          requestEnd("abort", new ConnectionEnded({ reason: "connection scope closed", local: true })),
          Deferred.await(core.ended)
        )
    )
  )

  const connection: Connection = {
    dispatcher: engine.service,
    info,
    ended: Deferred.await(core.ended),
    close: (closeOptions) =>
      Effect.andThen(
        requestEnd(
          closeOptions?.graceful === true ? "graceful" : "abort",
          new ConnectionEnded({ reason: "closed locally", local: true })
        ),
        Effect.asVoid(Deferred.await(core.ended))
      ),
    startTLS: (tlsOptions) =>
      StartTLS.initiate(core, { ...options?.tls, ...tlsOptions }).pipe(
        observer.span(SpanNames.startTLS, "client", StartTLS.StartTLS.name)
      ),
    switchProtocol: (command, args) =>
      ProtocolSwitch.initiate(core, command, args).pipe(observer.span(SpanNames.switchProtocol, "client", command.name))
  }
  return connection
})
