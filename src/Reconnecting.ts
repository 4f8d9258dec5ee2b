/**
 * A client that keeps a connection: it connects, and when the connection drops (or a connect attempt
 * fails) it tries again following a retry `Schedule`. It provides the `Dispatcher` service, so code using
 * `Dispatcher.callRemote` works unchanged; each call goes to the connection of the moment.
 *
 * - **No silent re-sending.** A call outstanding when its connection drops fails with `AmpConnectionLost`
 *   (a command may not be idempotent); retry it yourself if it is safe.
 * - **Calls while disconnected** wait for the next connection, up to `waitTimeout` (default 30 seconds),
 *   then fail with `AmpConnectionLost`; with `whileDisconnected: "fail"` they fail at once.
 * - **The schedule** is fed the cause of each failure (`ConnectionEnded` for a drop, the connect error
 *   for a failed attempt) and decides the delay before the next attempt; it starts afresh after each
 *   successful connection. When it ends, the client stops (state `Stopped`) and every call fails with
 *   `AmpConnectionLost`. Default: exponential from 100 ms, capped at 5 s, forever.
 * - **State** is observable: `ReconnectingClient.changes` streams `Connecting` → `Connected` →
 *   `Disconnected` (with the cause and the delay) → `Connecting` …, and `Stopped` at the end.
 * - Closing the layer's scope stops reconnecting and closes the connection; waiting calls fail.
 *
 * @example
 * ```ts
 * import { Client, Dispatcher, Responders } from "effect-amp"
 * import { Effect, Layer, Schedule } from "effect"
 *
 * const AmpLive = Client.layerReconnecting({ port: 7001, schedule: Schedule.spaced("1 second") }).pipe(
 *   Layer.provide(Responders.empty)
 * )
 * const program = Dispatcher.callRemote(Sum, { a: 1n, b: 2n }).pipe(Effect.provide(AmpLive))
 * ```
 *
 * @since 0.1.0
 */
import { Cause, Clock, Context, Deferred, Duration, Effect, Exit, Layer, Schedule, Scope, Stream, SubscriptionRef } from "effect"
import { AmpConnectionLost } from "./AmpError.ts"
import type * as Connection from "./Connection.ts"
import type { Snapshot } from "./ConnectionInfo.ts"
import { Dispatcher } from "./Dispatcher.ts"

/**
 * Why the client is not connected: a `ConnectionEnded` (the connection dropped), the connect error
 * (e.g. `ConnectError`), or `AmpConnectionLost` for a connect attempt that died.
 *
 * @since 0.1.0
 * @category models
 */
export interface Failure {
  readonly _tag: string
  readonly message: string
}

/**
 * The client's connection state. `Connecting.attempt` is the number of this attempt since the last
 * connection (1 = the first); `Disconnected.attempt` the number of attempts that failed since then (0
 * right after a drop).
 *
 * @since 0.1.0
 * @category models
 */
export type State =
  | { readonly _tag: "Connecting"; readonly attempt: number }
  | { readonly _tag: "Connected"; readonly info: Snapshot }
  | {
    readonly _tag: "Disconnected"
    readonly cause: Failure
    readonly attempt: number
    /** The delay before the next attempt, as the schedule decided. */
    readonly retryIn: Duration.Duration
  }
  | {
    /** The schedule ended (or the scope closed): no more attempts; every call fails. */
    readonly _tag: "Stopped"
    readonly cause: Failure
  }

/**
 * Reconnection options.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Decides whether and when to try again; its input is the failure. Default `defaultSchedule`.
   * Bound it (`Schedule.recurs(n)`, `Schedule.during(d)`, …) to give up at some point.
   */
  readonly schedule?: Schedule.Schedule<unknown, Failure> | undefined
  /** Calls made while disconnected: `"wait"` for a connection (default) or `"fail"` at once. */
  readonly whileDisconnected?: "wait" | "fail" | undefined
  /** How long a call waits for a connection before failing with `AmpConnectionLost` (default 30 seconds). */
  readonly waitTimeout?: Duration.Input | undefined
}

/**
 * The default retry schedule: exponential backoff from 100 ms, doubling, capped at 5 seconds; forever.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultSchedule: Schedule.Schedule<Duration.Duration> = Schedule.min([
  Schedule.exponential("100 millis"),
  Schedule.spaced("5 seconds")
])

/**
 * The reconnecting client's state, as a service (provided by `layer` next to `Dispatcher`).
 *
 * @since 0.1.0
 * @category services
 */
export class ReconnectingClient extends Context.Service<ReconnectingClient, {
  /** The state now. */
  readonly state: Effect.Effect<State>
  /** The state now, then every change. */
  readonly changes: Stream.Stream<State>
  /** The current connection; waits (without bound) while reconnecting; fails once stopped. */
  readonly connection: Effect.Effect<Connection.Connection, AmpConnectionLost>
}>()("effect-amp/ReconnectingClient") {}

const toFailure = <E>(cause: Cause.Cause<E>): Failure => {
  const failure = cause.reasons.find((r) => r._tag === "Fail")
  const error = failure?._tag === "Fail" ? failure.error as unknown : undefined
  if (
    typeof error === "object" && error !== null && typeof (error as Failure)._tag === "string" &&
    typeof (error as Failure).message === "string"
  ) {
    return error as Failure
  }
  return new AmpConnectionLost({
    reason: `connect failed: ${error !== undefined ? String(error) : Cause.pretty(cause)}`
  })
}

/**
 * Runs the reconnecting client in the current scope: `connect` is run (in a scope of its own) for each
 * attempt. Returns the `Dispatcher` service that routes calls to the current connection, and the state.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <E, R>(
  connect: Effect.Effect<Connection.Connection, E, R>,
  options?: Options
): Effect.Effect<
  { readonly dispatcher: Dispatcher["Service"]; readonly client: ReconnectingClient["Service"] },
  never,
  Scope.Scope | Exclude<R, Scope.Scope>
> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const schedule = options?.schedule ?? defaultSchedule
    const waitTimeout = options?.waitTimeout ?? "30 seconds"
    const failFast = options?.whileDisconnected === "fail"
    const ref = yield* SubscriptionRef.make<State>({ _tag: "Connecting", attempt: 1 })

    let current: Connection.Connection | undefined
    let next = Deferred.makeUnsafe<Connection.Connection, AmpConnectionLost>()
    let stopped: AmpConnectionLost | undefined
    let lastCause: Failure | undefined

    const stop = (error: AmpConnectionLost) =>
      Effect.sync(() => {
        stopped ??= error
        current = undefined
        Deferred.doneUnsafe(next, Exit.fail(stopped))
      })
    yield* Scope.addFinalizer(
      scope,
      Effect.andThen(
        stop(new AmpConnectionLost({ reason: "the reconnecting client was closed" })),
        Effect.suspend(() =>
          SubscriptionRef.update(
            ref,
            (s): State => s._tag === "Stopped" ? s : { _tag: "Stopped", cause: stopped! }
          )
        )
      )
    )

    // the connections' scopes: closed after the loop is interrupted (finalizers run in reverse order),
    // so that closing the client is not seen by the loop as a lost connection
    const connectionsScope = yield* Scope.fork(scope)

    const loop = Effect.gen(function*() {
      let step = yield* Schedule.toStep(schedule)
      let attempt = 0
      while (true) {
        attempt++
        yield* SubscriptionRef.set(ref, { _tag: "Connecting", attempt })
        const connectionScope = yield* Scope.fork(connectionsScope)
        const exit = yield* Effect.exit(Scope.provide(connect, connectionScope))
        let cause: Failure
        if (Exit.isSuccess(exit)) {
          const connection = exit.value
          attempt = 0
          step = yield* Schedule.toStep(schedule)
          current = connection
          yield* SubscriptionRef.set(ref, { _tag: "Connected", info: yield* connection.info.get })
          Deferred.doneUnsafe(next, Exit.succeed(connection))
          cause = yield* connection.ended
          current = undefined
          next = Deferred.makeUnsafe()
          yield* Scope.close(connectionScope, Exit.void)
          yield* Effect.logInfo(`AMP reconnecting client: connection lost (${cause.message}); reconnecting`)
        } else {
          yield* Scope.close(connectionScope, Exit.void)
          if (Cause.hasInterruptsOnly(exit.cause)) return yield* Effect.interrupt
          cause = toFailure(exit.cause)
          yield* Effect.logDebug(`AMP reconnecting client: attempt ${attempt} failed: ${cause.message}`)
        }
        lastCause = cause
        const decision = yield* Effect.exit(step(yield* Clock.currentTimeMillis, cause))
        if (Exit.isFailure(decision)) {
          const reason = `gave up reconnecting after ${attempt} failed attempt${attempt === 1 ? "" : "s"}: ${cause.message}`
          yield* Effect.logWarning(`AMP reconnecting client: ${reason}`)
          yield* stop(new AmpConnectionLost({ reason }))
          yield* SubscriptionRef.set(ref, { _tag: "Stopped", cause })
          return
        }
        const retryIn = decision.value[1]
        yield* SubscriptionRef.set(ref, { _tag: "Disconnected", cause, attempt, retryIn })
        yield* Effect.sleep(retryIn)
      }
    })
    yield* Effect.forkIn(loop, scope)

    const notConnected = (what: string) =>
      new AmpConnectionLost({
        reason: `not connected (${what})${lastCause !== undefined ? `; last failure: ${lastCause.message}` : ""}`
      })
    const connection = (wait: boolean): Effect.Effect<Connection.Connection, AmpConnectionLost> =>
      Effect.suspend(() => {
        if (current !== undefined) return Effect.succeed(current)
        if (stopped !== undefined) return Effect.fail(stopped)
        if (!wait) return Effect.fail(notConnected("reconnecting"))
        return Deferred.await(next)
      })
    const forCall = failFast ? connection(false) : Effect.suspend(() =>
      Effect.timeoutOrElse(connection(true), {
        duration: waitTimeout,
        orElse: () => Effect.fail(notConnected(`no connection within ${Duration.format(Duration.fromInputUnsafe(waitTimeout))}`))
      })
    )

    const dispatcher: Dispatcher["Service"] = {
      callRemote: (command, args) => Effect.flatMap(forCall, (c) => c.dispatcher.callRemote(command, args)),
      callRemoteRaw: (command, box, callOptions) =>
        Effect.flatMap(forCall, (c) => c.dispatcher.callRemoteRaw(command, box, callOptions)),
      outstanding: Effect.suspend(() => current === undefined ? Effect.succeed(0) : current.dispatcher.outstanding)
    }
    const client: ReconnectingClient["Service"] = {
      state: SubscriptionRef.get(ref),
      changes: SubscriptionRef.changes(ref),
      connection: connection(true)
    }
    return { dispatcher, client }
  })

/**
 * A Layer running `make`: provides `Dispatcher` (calls go to the current connection) and
 * `ReconnectingClient` (the state). It is built at once, without waiting for a first connection.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <E, R>(
  connect: Effect.Effect<Connection.Connection, E, R>,
  options?: Options
): Layer.Layer<Dispatcher | ReconnectingClient, never, Exclude<R, Scope.Scope>> =>
  Layer.effectContext(
    Effect.map(
      make(connect, options),
      ({ client, dispatcher }) => Context.make(Dispatcher, dispatcher).pipe(Context.add(ReconnectingClient, client))
    )
  )
