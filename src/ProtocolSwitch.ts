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
import type { Effect } from "effect"
import type * as Socket from "effect/socket/Socket"
import * as Command from "./Command.ts"
import type { Snapshot } from "./ConnectionInfo.ts"
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
