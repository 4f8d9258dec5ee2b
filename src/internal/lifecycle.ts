/**
 * How a connection ends. Nothing ends a connection except an end request (`Core.requestEnd`), and the
 * first one decides the reason; `shutdown` carries it out in one order: stop reading, fail outstanding
 * calls, (graceful) let running and queued handlers answer, stop the handlers, (flush/graceful) write
 * what is queued, close the socket, complete `ended`. Every wait is bounded by `closeTimeout` and cut
 * short by a later abort request.
 * @internal
 */
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Scope } from "effect"
import * as Socket from "effect/socket/Socket"
import { ConnectionEnded, type AmpProtocolError, type AmpTimeout } from "../AmpError.ts"
import type * as Box from "../Box.ts"
import { AmpTlsError } from "../StartTLS.ts"
import type { Core, EndRequest, Mode, Step } from "./core.ts"
import { destroy } from "./node.ts"

/** Default of `Options.closeTimeout`. */
export const DEFAULT_CLOSE_TIMEOUT: Duration.Input = "10 seconds"

export interface Ends {
  readonly request: Deferred.Deferred<EndRequest>
  /** Completed by any abort request, even one made while a graceful close is under way. */
  readonly abort: Deferred.Deferred<void>
}

export const makeEnds = (): Ends => ({ request: Deferred.makeUnsafe(), abort: Deferred.makeUnsafe() })

/**
 * Records an end request (the first one wins; a later abort still cuts the waits short). `onFirst` is
 * called once, after the first request is recorded (it starts the shutdown).
 */
export const requestEnd = (ends: Ends, onFirst: () => void) => (mode: Mode, end: ConnectionEnded): Effect.Effect<void> =>
  Effect.sync(() => {
    const first = Deferred.doneUnsafe(ends.request, Exit.succeed({ mode, end }))
    if (mode === "abort") Deferred.doneUnsafe(ends.abort, Exit.void)
    if (first) onFirst()
  })

const socketErrorText = (error: Socket.SocketError): string => {
  const cause = (error.reason as { cause?: unknown }).cause
  return cause instanceof Error ? `${error.message}: ${cause.message}` : error.message
}
const isCleanClose = (error: Socket.SocketError): boolean =>
  error.reason._tag === "SocketCloseError" && (error.reason as { code?: number }).code === 1000

type ReadError = AmpProtocolError | Box.FramingError | Socket.SocketError | AmpTimeout

/**
 * Turns the end of the read loop into an end request, logging what needs a log: protocol and framing
 * errors at warning level, a defect at error level with its cause.
 */
export const readerEnded = (core: Core, exit: Exit.Exit<Step, ReadError>): Effect.Effect<void> => {
  if (Exit.isSuccess(exit)) {
    // stopped by a switch: the socket now belongs to the next protocol; otherwise the peer closed
    return exit.value === "stop" ? Effect.void : core.requestEnd("flush", new ConnectionEnded({ reason: "closed by peer", local: false }))
  }
  const cause = exit.cause
  const failure = cause.reasons.find(Cause.isFailReason)
  if (failure === undefined) {
    if (Cause.hasInterruptsOnly(cause)) return Effect.void // interrupted: someone else is ending us
    // a defect in the read path: end the connection with it; every outstanding call fails
    return Effect.andThen(
      Effect.logError("AMP: defect in the connection's read path; closing the connection", cause),
      core.requestEnd("abort", new ConnectionEnded({ reason: `defect in the read path: ${Cause.pretty(cause).split("\n")[0]}`, local: true, cause }))
    )
  }
  const error = failure.error
  switch (error._tag) {
    case "AmpTimeout":
      return Effect.andThen(
        Effect.logInfo(`AMP: ${error.message}; closing the connection`),
        core.requestEnd("abort", new ConnectionEnded({ reason: error.message, local: true, cause: error }))
      )
    case "AmpProtocolError":
      // Twisted: an exception out of dataReceived aborts without flushing
      return Effect.andThen(
        Effect.logWarning(`AMP: ${error.message}; closing the connection`),
        core.requestEnd("abort", new ConnectionEnded({ reason: error.message, local: true, cause: error }))
      )
    case "FramingError":
      // Twisted: lengthLimitExceeded → loseConnection (flushes), calls fail with TooLong
      return Effect.andThen(
        Effect.logWarning(`AMP: ${error.message}; closing the connection`),
        core.requestEnd("flush", new ConnectionEnded({ reason: error.message, local: true, cause: error }))
      )
    default: {
      const state = core.state.current
      if (state._tag === "Tls" && !state.confirmed) {
        const tlsError = new AmpTlsError({
          reason: `the peer closed the connection right after the handshake (it rejected our certificate?): ${socketErrorText(error)}`
        })
        return Effect.andThen(
          Effect.logWarning(`AMP: ${tlsError.message}`),
          core.requestEnd("abort", new ConnectionEnded({ reason: tlsError.message, local: false, cause: tlsError }))
        )
      }
      return core.requestEnd(
        "flush",
        new ConnectionEnded({
          reason: isCleanClose(error) ? "closed by peer" : `socket error: ${socketErrorText(error)}`,
          local: false,
          cause: error
        })
      )
    }
  }
}

/** Carries out the first end request (see the module's comment). */
export const shutdown = (
  core: Core,
  ends: Ends,
  reader: Fiber.Fiber<void>,
  dispatcherScope: Scope.Closeable,
  release: (phase: NonNullable<Core["phase"]>) => Effect.Effect<void>,
  closeTimeout: Duration.Input
) =>
  Effect.gen(function*() {
    const { end, mode: requested } = yield* Deferred.await(ends.request)
    const aborted = () => Deferred.isDoneUnsafe(ends.abort)
    const bounded = <A, E>(wait: Effect.Effect<A, E>) =>
      Effect.raceFirst(
        Effect.asVoid(Effect.ignore(Effect.timeoutOrElse(wait, { duration: closeTimeout, orElse: () => Effect.void }))),
        Deferred.await(ends.abort)
      )
    const wasLocked = core.state.locked
    core.state.close()
    yield* Fiber.interrupt(reader)
    yield* core.engine.failAll(end.reason)
    if (requested === "graceful") yield* bounded(core.engine.awaitIdle)
    yield* Scope.close(dispatcherScope, Exit.void) // interrupts remaining handlers
    if (requested !== "abort" && !wasLocked && !aborted()) {
      yield* core.writer.end
      yield* bounded(core.writer.drained)
    }
    const mode: Mode = aborted() ? "abort" : requested
    core.state.to({ _tag: "Closed", tls: core.state.tls })
    core.writer.stop()
    const phase = core.phase
    if (phase !== undefined && !wasLocked) {
      if (mode === "abort") yield* Effect.ignore(phase.writer.write(new Socket.CloseEvent(1006)))
      // Without the Node stream (a socket given to `make`, e.g. MemorySocket), ending the writer is the
      // only way to tell the peer: release it before the reader (the reader's release detaches the socket
      // and the writer's would then do nothing, leaving the peer waiting forever).
      else if (core.raw === undefined) yield* Scope.close(phase.writerScope, Exit.void)
    }
    if (phase !== undefined) yield* release(phase)
    if (core.raw !== undefined) {
      const stream = core.raw
      yield* mode === "abort" ? destroy(stream) : Effect.sync(() => stream.end())
    }
    yield* Deferred.succeed(core.ended, end)
  })
