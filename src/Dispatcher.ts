/**
 * The dispatcher of a connection, as users see it: `callRemote` and its errors. One per connection;
 * answers are matched to callers through a `Ref` of outstanding `Deferred`s.
 *
 * Per call: tags are lowercase hex counting from 1 (Twisted's); a tag is used up by every call, even one
 * that requires no answer. Interrupting a caller removes its entry; a late answer for it is ignored.
 * When the connection ends every outstanding call fails at once with `AmpConnectionLost`.
 *
 * A per-call timeout is one combinator away: `callRemote(Sum, args).pipe(Effect.timeout("5 seconds"))`
 * — the timeout interrupts the call, which removes its entry.
 *
 * @since 0.1.0
 */
import { Context, Effect } from "effect"
import type {
  AmpArgumentError,
  AmpConnectionLost,
  ProtocolSwitched,
  UnhandledCommand,
  UnknownRemoteError
} from "./AmpError.ts"
import type { Box, InvalidKey, InvalidValue, TooLong, ValuePool } from "./Box.ts"
import type * as Command from "./Command.ts"
import type * as Observability from "./Observability.ts"

/**
 * Everything `callRemote` can fail with besides the command's declared errors.
 *
 * @since 0.1.0
 * @category errors
 */
export type CallError =
  | AmpConnectionLost
  | UnknownRemoteError
  | UnhandledCommand
  | TooLong
  | InvalidKey
  | InvalidValue
  | AmpArgumentError
  | ProtocolSwitched

/**
 * Dispatcher options (part of every connection's options).
 *
 * Incoming commands: at most `maxConcurrentHandlers` run at once (a handler whose result is an `Exit`,
 * such as `Effect.succeed(...)`, is answered at once without a fiber); the others wait in a queue bounded by
 * `maxQueuedCommands` and `maxQueuedCommandBytes`. Answers to our own calls never wait behind them, so a
 * handler that calls the peer back while the peer waits (the call-back pattern) is safe at any
 * concurrency below those bounds. Only a full queue stops reading (TCP backpressure), which slows a
 * flooding peer down without growing memory.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Observability.Options {
  /** Incoming commands whose handlers run at once on this connection (default 256). */
  readonly maxConcurrentHandlers?: number | undefined
  /**
   * Incoming commands waiting for a handler slot before the connection stops reading (default 16384).
   * A peer that calls back into its caller needs this above its number of concurrent calls.
   */
  readonly maxQueuedCommands?: number | undefined
  /** Bytes of the commands waiting for a handler slot before the connection stops reading (default 8 MiB). */
  readonly maxQueuedCommandBytes?: number | undefined
  /**
   * Outgoing calls awaiting an answer at once (default: unbounded, as in Twisted). When reached, a new
   * `callRemote` waits for a slot (its span and duration start once it has one).
   */
  readonly maxOutstandingCalls?: number | undefined
  /**
   * Where large values split across reads were assembled (`Box.makeDecoder({ pool })`). After a typed
   * command's arguments or a typed answer are decoded, the values of argument types that do not keep
   * their bytes (everything but `String` and `Argument.make` types without `keepsBytes: false`) are
   * released to it for reuse; raw boxes are never released. A connection uses a process-wide pool
   * unless given one; `Box.makeValuePool({ maxIdleBytes: 0 })` turns reuse off.
   */
  readonly valuePool?: ValuePool | undefined
}

/** Default of {@link Options.maxConcurrentHandlers}. @since 0.1.0 @category constants */
export const DEFAULT_MAX_CONCURRENT_HANDLERS = 256
/** Default of {@link Options.maxQueuedCommands}. @since 0.2.0 @category constants */
export const DEFAULT_MAX_QUEUED_COMMANDS = 16_384
/** Default of {@link Options.maxQueuedCommandBytes}. @since 0.2.0 @category constants */
export const DEFAULT_MAX_QUEUED_COMMAND_BYTES = 8 * 1024 * 1024

/**
 * The dispatcher of the current connection: call the peer with it. Inside a responder it is the
 * connection that delivered the command, so a handler can call back the peer while the peer waits.
 *
 * @example
 * ```ts
 * import { Argument, Command, Dispatcher } from "effect-amp"
 * import { Effect } from "effect"
 *
 * const Sum = Command.make("Sum", {
 *   arguments: { a: Argument.Integer, b: Argument.Integer },
 *   response: { total: Argument.Integer }
 * })
 * const program = Effect.gen(function*() {
 *   const amp = yield* Dispatcher.Dispatcher
 *   const { total } = yield* amp.callRemote(Sum, { a: 1n, b: 2n })
 *   return total
 * })
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export class Dispatcher extends Context.Service<Dispatcher, {
  /** Calls a command on the peer: typed arguments in, typed response or declared error out. */
  readonly callRemote: <C extends Command.Any>(
    command: C,
    args: Command.Arguments<C>
  ) => Effect.Effect<Command.Result<C>, Command.Error<C> | CallError>
  /**
   * Untyped call (Twisted's `callRemoteString`): `box` holds the raw argument values. Succeeds with the
   * raw answer box (including `_answer`); an error answer fails with `UnknownRemoteError` (or
   * `UnhandledCommand`). With `requiresAnswer: false` it succeeds with an empty box once queued.
   */
  readonly callRemoteRaw: (
    command: string,
    box: Box,
    options?: { readonly requiresAnswer?: boolean | undefined }
  ) => Effect.Effect<Box, CallError>
  /** How many calls await an answer. */
  readonly outstanding: Effect.Effect<number>
}>()("effect-amp/Dispatcher") {}

/**
 * Calls a command on the current connection's peer (accessor for {@link Dispatcher}).
 *
 * @example
 * ```ts
 * import { Argument, Command, Dispatcher } from "effect-amp"
 *
 * const Sum = Command.make("Sum", {
 *   arguments: { a: Argument.Integer, b: Argument.Integer },
 *   response: { total: Argument.Integer }
 * })
 * const total = Dispatcher.callRemote(Sum, { a: 1n, b: 2n })
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const callRemote = <C extends Command.Any>(
  command: C,
  args: Command.Arguments<C>
): Effect.Effect<Command.Result<C>, Command.Error<C> | CallError, Dispatcher> =>
  Dispatcher.use((dispatcher) => dispatcher.callRemote(command, args))
