/**
 * Protocol switches (Twisted's `ProtocolSwitchCommand`): after a successful answer, both ends stop
 * speaking AMP and hand the raw byte stream to another protocol. Bytes that arrived after the answer (or
 * after the switch command, on the responder) are delivered to the new protocol first: nothing is lost
 * or duplicated.
 *
 * - Define the command with {@link make} (its answer carries no keys, as in Twisted).
 * - Responder: {@link handle} returns the next protocol (an {@link InnerProtocol}); the connection sends
 *   the answer, then runs it over the socket. When it completes, the connection ends.
 * - Initiator: `connection.switchProtocol(command, args)` sends the command and locks AMP (every send
 *   fails with `ProtocolSwitched`, as in Twisted) until the answer; on success it returns the
 *   {@link SwitchedSocket} for the caller to run the next protocol in its own scope; on an error answer it
 *   unlocks and AMP goes on. After a switch `callRemote` fails with `ProtocolSwitched`.
 *
 * @since 0.1.0
 */
import { Deferred, Effect, Scope } from "effect"
import * as Socket from "effect/socket/Socket"
import { AmpArgumentError, ConnectionEnded, AmpConnectionLost, ProtocolSwitched } from "./AmpError.ts"
import type { Box } from "./Box.ts"
import * as Command from "./Command.ts"
import type { Snapshot } from "./ConnectionInfo.ts"
import type { CallError } from "./Dispatcher.ts"
import { type Core, emptyAnswer, errorCodeOf, errorDescriptionOf, refused, type Step } from "./internal/core.ts"
import { Hold, type Inner, type Transition } from "./internal/dispatcher.ts"
import { wrapDuplex } from "./internal/node.ts"
import type { SwitchHandler } from "./Responders.ts"

/**
 * The byte stream after a switch, as an `effect/socket` Socket over the same connection (TLS stays on if
 * it was on). Reads start with the bytes that followed the switch point.
 *
 * @since 0.1.0
 * @category models
 */
export interface SwitchedSocket {
  readonly socket: Socket.Socket
  readonly info: Snapshot
}

/**
 * The protocol a responder switches to: it runs over the switched socket; when it completes (or fails)
 * the connection ends.
 *
 * @since 0.1.0
 * @category models
 */
export type InnerProtocol<E = never, R = never> = (io: SwitchedSocket) => Effect.Effect<void, E, R>

/**
 * Defines a switch command: arguments and errors like any command, an empty response.
 *
 * @example
 * ```ts
 * import { ProtocolSwitch } from "effect-amp"
 * const SwitchToEcho = ProtocolSwitch.make("SwitchToEcho")
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <
  const Name extends string,
  const Args extends Command.Fields = {},
  const Errors extends Command.ErrorMap = {},
  const Fatal extends Command.ErrorMap = {}
>(
  name: Name,
  options?: {
    readonly arguments?: Args | undefined
    readonly errors?: Errors | undefined
    readonly fatalErrors?: Fatal | undefined
  }
): Command.Command<Name, Args, {}, Errors, Fatal, true> =>
  Command.make(name, {
    arguments: options?.arguments,
    errors: options?.errors,
    fatalErrors: options?.fatalErrors
  }) as Command.Command<Name, Args, {}, Errors, Fatal, true>

/**
 * A responder for a switch command: returns the protocol to switch to, or fails with a declared error
 * (then no switch happens and AMP goes on).
 *
 * @example
 * ```ts
 * import { ProtocolSwitch, Responders } from "effect-amp"
 * import { Effect, Stream } from "effect"
 * import * as Socket from "effect/socket/Socket"
 *
 * const echo: ProtocolSwitch.InnerProtocol<Socket.SocketError> = ({ socket }) =>
 *   Effect.gen(function*() {
 *     const writer = yield* socket.writer
 *     yield* Socket.toStream(socket).pipe(Stream.runForEach((bytes) => writer.write(bytes)))
 *   }).pipe(Effect.scoped)
 *
 * const Handlers = Responders.layer(ProtocolSwitch.handle(SwitchToEcho, () => Effect.succeed(echo)))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const handle = <C extends Command.Any, R = never, E = never, RI = never>(
  command: C,
  handle: (args: Command.Arguments<C>) => Effect.Effect<InnerProtocol<E, RI>, Command.Error<C>, R>
): SwitchHandler<C, R | RI> => ({ _tag: "SwitchHandler", command, handle: handle as SwitchHandler<C, R | RI>["handle"] })

// --- mechanics (used by Connection) ------------------------------------------------------------------

const SWITCHED = "This connection has switched: no AMP traffic allowed."

/** Our switch request in flight: its hold, and the socket handed over once the answer arrived. */
interface SwitchTransition extends Transition {
  readonly _tag: "Switch"
  readonly switched: Deferred.Deferred<SwitchedSocket>
}

/**
 * Hands the transport over: waits until everything before `hold` is written, releases AMP's phase, and
 * wraps the raw stream (with the bytes read but not parsed pushed back) as the next protocol's socket.
 */
const takeOver = (core: Core, hold: Hold, leftover: Uint8Array) =>
  Effect.gen(function*() {
    const stream = yield* core.leavePhase(hold, leftover)
    core.state.to({ _tag: "Switched", tls: core.state.tls })
    yield* core.engine.markSwitched
    yield* Deferred.succeed(hold.release, false)
    // the connection ends when the switched stream closes
    stream.once("close", () => {
      Effect.runSync(core.requestEnd("abort", new ConnectionEnded({ reason: "switched protocol closed", local: false })))
    })
    // The socket is opened here, in the connection's scope, so that the next protocol may write before
    // it first reads (an unopened effect Socket holds writes until its reader is acquired: a silent hang).
    const base = yield* wrapDuplex(stream)
    const reader = yield* Scope.provide(base.reader, yield* Scope.fork(core.scope)).pipe(Effect.orDie)
    return { socket: Socket.make({ reader: Effect.succeed(reader), writer: base.writer }), info: core.info } satisfies SwitchedSocket
  })

/**
 * The responder side, run by the reader once a switch handler accepted: answer, then run the inner
 * protocol over the socket (in the connection's scope); the connection ends when it completes.
 * @internal
 */
export const respond = (
  core: Core,
  step: { readonly ask: Uint8Array | undefined; readonly name: string; readonly inner: Inner },
  leftover: () => Uint8Array
): Effect.Effect<Step> =>
  Effect.gen(function*() {
    if (core.raw === undefined) {
      const reason = "this transport cannot switch protocols"
      yield* core.engine.finish(step.ask, step.name, { _tag: "Error", code: Command.UNKNOWN_ERROR_CODE, description: reason, fatal: false })
      return "continue" as const
    }
    core.state.to({ _tag: "SwitchPending", tls: core.state.tls })
    const hold = new Hold("switch")
    yield* step.ask !== undefined ? core.writer.offer(emptyAnswer(step.ask), hold) : core.writer.offerHold(hold)
    const io = yield* takeOver(core, hold, leftover())
    yield* Effect.forkIn(
      Effect.provideContext(step.inner(io) as Effect.Effect<void, unknown>, core.engine.handlerContext).pipe(
        Effect.exit,
        Effect.flatMap((exit) =>
          Effect.andThen(
            exit._tag === "Failure"
              ? Effect.logError(`AMP: the protocol switched to by ${step.name} failed`, exit.cause)
              : Effect.void,
            core.requestEnd(
              "abort",
              new ConnectionEnded({
                reason: exit._tag === "Success" ? "switched protocol finished" : "switched protocol failed",
                local: true,
                cause: exit._tag === "Failure" ? exit.cause : undefined
              })
            )
          )
        )
      ),
      core.scope
    )
    return "stop" as const
  })

/**
 * The initiator side, run by the reader when the answer to our switch arrives: on success the socket is
 * handed over; on an error answer AMP is unlocked (as in Twisted) and goes on.
 * @internal
 */
export const answered = (
  core: Core,
  transition: Transition,
  answer: Box,
  deliver: Effect.Effect<void>,
  leftover: () => Uint8Array
): Effect.Effect<Step> => {
  const t = transition as SwitchTransition
  if (answer.has(Command.ERROR)) {
    core.state.to(core.state.tls ? { _tag: "Tls", confirmed: true } : { _tag: "Plain" })
    return refused(t.hold, deliver)
  }
  return Effect.gen(function*() {
    yield* deliver
    yield* Deferred.succeed(t.switched, yield* takeOver(core, t.hold, leftover()))
    return "stop" as const
  })
}

/**
 * Sends a switch command; AMP is locked from the moment it is queued. On success returns the socket.
 * @internal
 */
export const initiate = <C extends Command.Any>(
  core: Core,
  command: C,
  args: Command.Arguments<C>
): Effect.Effect<SwitchedSocket, Command.Error<C> | CallError> =>
  Effect.suspend((): Effect.Effect<SwitchedSocket, Command.Error<C> | CallError> => {
    if (core.state.locked) return Effect.fail(new ProtocolSwitched({ reason: SWITCHED }))
    if (core.raw === undefined) {
      return Effect.fail(new AmpArgumentError({ command: command.name, side: "arguments", key: "", reason: "this transport cannot switch protocols" }))
    }
    let box: Map<string, Uint8Array>
    try {
      box = Command.encodeArgumentsUnsafe(command, args as Record<string, unknown>)
    } catch (e) {
      return Effect.fail(e as AmpArgumentError)
    }
    const transition: SwitchTransition = { _tag: "Switch", hold: new Hold("switch"), answered: false, switched: Deferred.makeUnsafe() }
    const awaitSocket: Effect.Effect<SwitchedSocket, AmpConnectionLost> = Deferred.await(transition.switched).pipe(
      Effect.raceFirst(
        Effect.flatMap(Deferred.await(core.ended), (end) => Effect.fail(new AmpConnectionLost({ reason: end.reason })))
      )
    )
    return core.engine.request(box, transition).pipe(
      // Interrupted before the answer: the peer may still switch, and AMP is locked; close.
      Effect.onInterrupt(() =>
        transition.answered ? Effect.void : core.requestEnd(
          "abort",
          new ConnectionEnded({ reason: `${command.name} was interrupted before its answer`, local: true })
        )
      ),
      Effect.flatMap((answer): Effect.Effect<SwitchedSocket, Command.Error<C> | CallError> =>
        answer.has(Command.ERROR)
          ? Effect.fail(Command.errorFromWire(command, errorCodeOf(answer), errorDescriptionOf(answer)))
          // the answer is delivered just before the socket is handed over: wait for it
          : awaitSocket
      )
    )
  })
