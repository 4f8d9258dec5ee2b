/**
 * Responders: the handlers a connection runs for incoming commands, assembled into a Layer (in the
 * manner of effect's `RpcGroup.toLayer`). Each handler is an Effect that receives the decoded arguments
 * and returns the response; it may fail with the command's declared errors (sent as error boxes) and
 * may require services, which the Layer captures when it is built. `Dispatcher` (to call the peer back
 * on the same connection) and `ConnectionInfo` are provided per connection.
 *
 * Outcomes, as in Twisted: a declared error → error box, connection stays open; a fatal error → error
 * box, then the connection is closed; any other failure or defect → `UNKNOWN` / `Unknown Error`, then
 * the connection is closed; undecodable arguments → `UNKNOWN` and close; an unknown command →
 * `UNHANDLED` (`Unhandled Command: b'…'`), the connection stays open.
 *
 * @example
 * ```ts
 * import { Responders } from "effect-amp"
 * import { Effect } from "effect"
 * // Sum and Divide defined with Command.make
 * const Handlers = Responders.layer(
 *   Responders.handle(Sum, ({ a, b }) => Effect.succeed({ total: a + b })),
 *   Responders.handle(Divide, ({ numerator, denominator }) =>
 *     denominator === 0n
 *       ? Effect.fail(new DivideByZero({ message: "division by zero" }))
 *       : Effect.succeed({ result: Number(numerator) / Number(denominator) }))
 * )
 * ```
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer } from "effect"
import type { Box } from "./Box.ts"
import type * as Command from "./Command.ts"
import type { ConnectionInfo } from "./ConnectionInfo.ts"
import type { Dispatcher } from "./Dispatcher.ts"
import { asciiUpper } from "./internal/bytes.ts"

/**
 * A typed handler for one command.
 *
 * @since 0.1.0
 * @category models
 */
export interface Handler<C extends Command.Any, R> {
  readonly _tag: "Handler"
  readonly command: C
  /**
   * Runs for each incoming `command`: its arguments in, its response (or `quit(response)`) or one of its
   * declared errors out.
   */
  readonly handle: (
    args: Command.Arguments<C>
  ) => Effect.Effect<Command.Response<C> | Quit<Command.Response<C>>, Command.Error<C>, R>
}

const QuitTypeId = "~effect-amp/Responders/Quit"

/**
 * A response to send, after which the connection is closed (once everything queued is written): what
 * Twisted's `QuitBox` does. Build it with {@link quit}.
 *
 * @since 0.2.0
 * @category models
 */
export interface Quit<A> {
  readonly [QuitTypeId]: typeof QuitTypeId
  readonly response: A
}

/**
 * Answers with `response`, then closes the connection (Twisted's `QuitBox`): for a "goodbye" command.
 *
 * @example
 * ```ts
 * import { Command, Responders } from "effect-amp"
 * import { Effect } from "effect"
 *
 * const Quit = Command.make("Quit")
 * const handler = Responders.handle(Quit, () => Effect.succeed(Responders.quit({})))
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const quit = <A>(response: A): Quit<A> => ({ [QuitTypeId]: QuitTypeId, response })

/**
 * Whether a handler's result is a {@link Quit}.
 *
 * @since 0.2.0
 * @category guards
 */
export const isQuit = (u: unknown): u is Quit<unknown> => typeof u === "object" && u !== null && QuitTypeId in u

/**
 * An error a raw handler may fail with to send a specific error box.
 *
 * @since 0.1.0
 * @category models
 */
export interface RawError {
  readonly code: string
  readonly description: string
  readonly fatal?: boolean | undefined
}

/**
 * A raw handler: it receives the whole request box (including `_command` and `_ask`) and returns the
 * answer box (the `_answer` key is added for it). Like Twisted's `amp_NAME` responders, it answers its
 * name in any ASCII case (`raw("HELLO", …)` answers `hello`, `Hello`, `HELLO`) when no handler has the
 * exact name.
 *
 * @since 0.1.0
 * @category models
 */
export interface RawHandler<R> {
  readonly _tag: "RawHandler"
  readonly name: string
  /** Runs for each incoming box named `name`: the box as it came in, the answer box (or a `RawError`) out. */
  readonly handle: (box: Box) => Effect.Effect<Box, RawError, R>
}

/**
 * A responder for a protocol-switch command (see `ProtocolSwitch.handle`): it returns the protocol to
 * switch to. The connection runs it inline (no other box is read until it has decided).
 *
 * @since 0.1.0
 * @category models
 */
export interface SwitchHandler<C extends Command.Any, R> {
  readonly _tag: "SwitchHandler"
  readonly command: C
  /** Decides on a switch request: the protocol to run once the answer is out, or a declared error (no switch). */
  readonly handle: (
    args: Command.Arguments<C>
  ) => Effect.Effect<
    (io: { readonly socket: import("effect/socket/Socket").Socket; readonly info: import("./ConnectionInfo.ts").Snapshot }) => Effect.Effect<void, unknown, R>,
    Command.Error<C>,
    R
  >
}

/**
 * Any kind of handler.
 *
 * @since 0.1.0
 * @category models
 */
export type Any = Handler<any, any> | RawHandler<any> | SwitchHandler<any, any>

/**
 * Builds a typed handler.
 *
 * Gotcha (speed): a handler that returns `Effect.succeed(...)` or `Effect.fail(...)` (an `Exit`: nothing
 * to run) is answered where its command is read, without a fiber; any other Effect runs in a fiber of
 * its own (at most `maxConcurrentHandlers` at a time). Work done in the function's body, before it
 * returns its Effect, may run while the connection is reading: put real work inside the Effect.
 *
 * @since 0.1.0
 * @category constructors
 */
export const handle = <C extends Command.Any, R = never>(
  command: C,
  handle: (args: Command.Arguments<C>) => Effect.Effect<Command.Response<C> | Quit<Command.Response<C>>, Command.Error<C>, R>
): Handler<C, R> => ({ _tag: "Handler", command, handle })

/**
 * Builds a raw handler for a command name. Lookup is by exact name first (any kind of handler), then,
 * as Twisted's `SimpleStringLocator` does (`amp_` + the name upper-cased), by the ASCII upper-cased name
 * among raw handlers.
 *
 * @since 0.1.0
 * @category constructors
 */
export const raw = <R = never>(
  name: string,
  handle: (box: Box) => Effect.Effect<Box, RawError, R>
): RawHandler<R> => ({ _tag: "RawHandler", name, handle })

/**
 * The services a set of handlers needs, minus the per-connection ones.
 *
 * @since 0.1.0
 * @category type-level
 */
export type Services<H extends Any> = Exclude<
  H extends Handler<any, infer R> ? R : H extends RawHandler<infer R> ? R : H extends SwitchHandler<any, infer R> ? R
    : never,
  Dispatcher | ConnectionInfo
>

/**
 * The handlers of a connection, with the services they captured.
 *
 * @since 0.1.0
 * @category services
 */
export class Responders extends Context.Service<Responders, {
  readonly handlers: ReadonlyMap<string, Any>
  /** Raw handlers by ASCII upper-cased name: the fallback lookup (Twisted's `amp_NAME`). */
  readonly rawByUpperName: ReadonlyMap<string, RawHandler<any>>
  /** Services captured when the responders were built; provided to every handler fiber. */
  readonly context: Context.Context<never>
}>()("effect-amp/Responders") {}

/**
 * Builds the responders value from handlers, capturing the services they need. Later handlers for the
 * same command name replace earlier ones, whatever their kind (Twisted's responder overriding; to
 * "inherit" a set of handlers, spread it first: `make(...base, override)`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <const H extends ReadonlyArray<Any>>(
  ...handlers: H
): Effect.Effect<Responders["Service"], never, Services<H[number]>> =>
  Effect.map(Effect.context<Services<H[number]>>(), (context) => {
    const map = new Map<string, Any>()
    for (const h of handlers) map.set(h._tag === "RawHandler" ? h.name : h.command.name, h)
    const rawByUpperName = new Map<string, RawHandler<any>>()
    for (const h of map.values()) if (h._tag === "RawHandler") rawByUpperName.set(asciiUpper(h.name), h)
    return { handlers: map, rawByUpperName, context: context as Context.Context<never> }
  })

/**
 * A Layer providing `Responders` from handlers.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <const H extends ReadonlyArray<Any>>(
  ...handlers: H
): Layer.Layer<Responders, never, Services<H[number]>> => Layer.effect(Responders, make(...handlers))

/**
 * No responders: every incoming command is answered `UNHANDLED`. What a pure client uses.
 *
 * @since 0.1.0
 * @category layers
 */
export const empty: Layer.Layer<Responders> = Layer.succeed(Responders, {
  handlers: new Map(),
  rawByUpperName: new Map(),
  context: Context.empty() as Context.Context<never>
})

