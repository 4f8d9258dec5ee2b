/**
 * The dispatcher: one per connection. It turns `callRemote` into request boxes and matches answers to
 * callers through a `Ref` of outstanding `Deferred`s, and it runs the responders for incoming commands,
 * each in its own fiber, sending answers as they complete (out of order).
 *
 * The dispatcher knows nothing about sockets: it sends through an {@link Outbox} and is fed incoming
 * boxes by the connection layer (`Connection`), which also tells it when the connection ends.
 *
 * Per call: tags are lowercase hex counting from 1 (Twisted's); a tag is used up by every call, even
 * one that requires no answer. Interrupting a caller removes its entry; a late answer for it is ignored.
 * When the connection ends every outstanding call fails at once with `ConnectionLost`.
 *
 * A per-call timeout is one combinator away: `callRemote(Sum, args).pipe(Effect.timeout("5 seconds"))`
 * — the timeout interrupts the call, which removes its entry.
 *
 * @since 0.1.0
 */
import { Context, Deferred, Effect, Exit, FiberSet, Ref, Scope, Semaphore } from "effect"
import {
  type ArgumentError,
  ConnectionLost,
  ProtocolError,
  ProtocolSwitched,
  type UnhandledCommand,
  type UnknownRemoteError
} from "./AmpError.ts"
import { type Box, bytesIfPresent, type InvalidKey, makeOutgoing, POOLED_MIN_LENGTH, type TooLong, type ValuePool } from "./Box.ts"
import type { FieldsCodec } from "./internal/argument.ts"
import * as Command from "./Command.ts"
import { ConnectionInfo } from "./ConnectionInfo.ts"
import { latin1, pyBytesRepr } from "./internal/bytes.ts"
import { Responders } from "./Responders.ts"

/**
 * Everything `callRemote` can fail with besides the command's declared errors.
 *
 * @since 0.1.0
 * @category errors
 */
export type CallError =
  | ConnectionLost
  | UnknownRemoteError
  | UnhandledCommand
  | TooLong
  | InvalidKey
  | ArgumentError
  | ProtocolSwitched

/**
 * How the dispatcher sends: implemented by the connection layer.
 *
 * @since 0.1.0
 * @category models
 */
export interface Outbox {
  /**
   * Queues a box. Fails (and queues nothing) if the box cannot be framed, if the connection is closed,
   * or if AMP traffic is locked by a protocol switch. May wait when the send buffer is full.
   */
  readonly send: (box: Box) => Effect.Effect<void, TooLong | InvalidKey | ConnectionLost | ProtocolSwitched>
  /** Ends the connection. `graceful`: queued boxes are written first (Twisted's `loseConnection`). */
  readonly close: (reason: string, graceful: boolean) => Effect.Effect<void>
}

/**
 * Dispatcher options.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Incoming commands handled at once on this connection (default 256). When reached, the connection
   * stops reading until a handler finishes: backpressure instead of an unbounded queue. Keep it above
   * the number of handlers that may wait on a call back to the peer, or those can deadlock.
   */
  readonly maxConcurrentHandlers?: number | undefined
  /**
   * Outgoing calls awaiting an answer at once (default: unbounded, as in Twisted). When reached, a new
   * `callRemote` waits for a slot.
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

/**
 * The dispatcher of the current connection: call the peer with it. Inside a responder it is the
 * connection that delivered the command, so a handler can call back the peer while the peer waits.
 *
 * @example
 * ```ts
 * import { Dispatcher } from "effect-amp"
 * import { Effect } from "effect"
 * const program = Effect.gen(function*() {
 *   const amp = yield* Dispatcher.Dispatcher
 *   const { total } = yield* amp.callRemote(Sum, { a: 1n, b: 2n })
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
 * @since 0.1.0
 * @category accessors
 */
export const callRemote = <C extends Command.Any>(
  command: C,
  args: Command.Arguments<C>
): Effect.Effect<Command.Result<C>, Command.Error<C> | CallError, Dispatcher> =>
  Effect.gen(function*() {
    const dispatcher = yield* Dispatcher
    return yield* dispatcher.callRemote(command, args)
  })

/**
 * The connection-facing side of a dispatcher (used by `Connection`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Handle {
  readonly service: Dispatcher["Service"]
  /**
   * Handles one incoming box. May wait (backpressure) for a handler slot. Fails with `ProtocolError`
   * when the box breaks the protocol; the connection must then be closed.
   */
  readonly receive: (box: Box) => Effect.Effect<void, ProtocolError>
  /** Fails every outstanding call with `ConnectionLost(reason)`; later calls fail at once. */
  readonly failAll: (reason: string) => Effect.Effect<void>
  /** Waits until no handler is running. */
  readonly awaitHandlers: Effect.Effect<void>
  /**
   * Sends a request box and waits for its answer or error box. `beforeSend` receives the tag before
   * the box is queued (the connection uses it to act on the answer inline).
   */
  readonly request: (box: Map<string, Uint8Array>, beforeSend: (tag: string) => void) => Effect.Effect<Box, CallError>
  /** Sends the outcome of a responder for a request with tag `ask` (or none), and closes if needed. */
  readonly finish: (ask: Uint8Array | undefined, name: string, outcome: Outcome) => Effect.Effect<void>
  /** After a protocol switch: every later call fails with `ProtocolSwitched`. */
  readonly markSwitched: Effect.Effect<void>
}

/**
 * The result of running a responder.
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome =
  | { readonly _tag: "Answer"; readonly box: Map<string, Uint8Array> }
  | { readonly _tag: "Error"; readonly code: string; readonly description: string; readonly fatal: boolean }
  | { readonly _tag: "Unknown"; readonly reason: string }

/**
 * Maps a responder's failure to the outcome Twisted would produce: a declared error → its code; anything
 * else → `UNKNOWN` (and a close).
 *
 * @since 0.1.0
 * @category models
 */
export const failureOutcome = (command: Command.Any, cause: import("effect").Cause.Cause<unknown>): Outcome => {
  for (const reason of cause.reasons) {
    if (reason._tag === "Fail") {
      const found = Command.errorCodeFor(command, reason.error)
      if (found !== undefined) {
        return {
          _tag: "Error",
          code: found.code,
          description: String((reason.error as { message?: unknown }).message ?? ""),
          fatal: found.fatal
        }
      }
    }
  }
  return { _tag: "Unknown", reason: String(cause) }
}

const latin1Of = (bytes: Uint8Array): string => latin1(bytes, 0, bytes.length)
const tagBytes = (tag: string): Uint8Array => {
  const out = new Uint8Array(tag.length)
  for (let i = 0; i < tag.length; i++) out[i] = tag.charCodeAt(i)
  return out
}

/**
 * Creates a dispatcher over an outbox. Handler fibers live in the given scope (closing it interrupts
 * them) and run with the responders' captured services plus `Dispatcher` and `ConnectionInfo`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(
  outbox: Outbox,
  info: ConnectionInfo["Service"],
  options?: Options
) {
  const responders = yield* Responders
  const valuePool = options?.valuePool
  /** Hands back the buffers of the values `fields` has decoded into non-byte values. */
  const recycle = (fields: FieldsCodec, box: Box): void => {
    if (valuePool === undefined) return
    const keys = fields.recyclable
    for (let i = 0; i < keys.length; i++) {
      const value = bytesIfPresent(box, keys[i]!) // a value still in pieces was never assembled: nothing to release
      if (value !== undefined && value.length >= POOLED_MIN_LENGTH) valuePool.release(value)
    }
  }
  const outstanding = yield* Ref.make(new Map<string, Deferred.Deferred<Box, ConnectionLost>>())
  // the map inside the Ref is owned by this dispatcher and mutated in place (single-threaded JS)
  const pending = Ref.getUnsafe(outstanding)
  let closedReason: string | undefined
  let switched = false
  let counter = 0
  const nextTag = (): string => (++counter).toString(16)
  const handlerSlots = yield* Semaphore.make(options?.maxConcurrentHandlers ?? DEFAULT_MAX_CONCURRENT_HANDLERS)
  const callSlots = options?.maxOutstandingCalls !== undefined
    ? yield* Semaphore.make(options.maxOutstandingCalls)
    : undefined
  const handlers = yield* FiberSet.make<void, never>()
  // tags of calls abandoned by their caller whose answer has not arrived yet (oldest first, bounded)
  const abandoned = new Set<string>()
  const abandon = (tag: string) => {
    abandoned.add(tag)
    if (abandoned.size > MAX_ABANDONED) abandoned.delete(abandoned.values().next().value!)
  }

  const lost = (): ConnectionLost | ProtocolSwitched =>
    switched
      ? new ProtocolSwitched({ reason: "This connection has switched: no AMP traffic allowed." })
      : new ConnectionLost({ reason: closedReason ?? "closed" })

  // --- calling -------------------------------------------------------------------------------------

  /** Sends a request box and waits for the raw answer/error box. */
  const ask = (box: Map<string, Uint8Array>, beforeSend?: (tag: string) => void): Effect.Effect<Box, CallError> =>
    Effect.suspend(() => {
      if (closedReason !== undefined || switched) return Effect.fail(lost())
      const tag = nextTag()
      box.set(Command.ASK, tagBytes(tag))
      if (beforeSend !== undefined) beforeSend(tag)
      const deferred = Deferred.makeUnsafe<Box, ConnectionLost>()
      pending.set(tag, deferred)
      let sent = false
      return outbox.send(box).pipe(
        Effect.flatMap(() => {
          sent = true
          return Deferred.await(deferred)
        }),
        Effect.onExit(() =>
          Effect.sync(() => {
            // still pending after the request went out: the caller gave up (interrupted, timed out), and
            // the peer's answer may still come; remember the tag so that answer is ignored
            if (pending.delete(tag) && sent) abandon(tag)
          })
        )
      )
    })

  const tell = (box: Map<string, Uint8Array>): Effect.Effect<void, CallError> =>
    Effect.suspend(() => {
      if (closedReason !== undefined || switched) return Effect.fail(lost())
      nextTag() // Twisted uses up a tag even when no `_ask` is sent
      return outbox.send(box)
    })

  const withCallSlot = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    callSlots === undefined ? effect : callSlots.withPermits(1)(effect)

  const callRemote = <C extends Command.Any>(
    command: C,
    args: Command.Arguments<C>
  ): Effect.Effect<Command.Result<C>, Command.Error<C> | CallError> =>
    Effect.suspend(() => {
      let box: Map<string, Uint8Array>
      try {
        box = Command.encodeArgumentsUnsafe(command, args as Record<string, unknown>)
      } catch (e) {
        return Effect.fail(e as ArgumentError)
      }
      if (!command.requiresAnswer) return tell(box) as Effect.Effect<any, CallError>
      return withCallSlot(ask(box)).pipe(
        Effect.flatMap((answer): Effect.Effect<any, Command.Error<C> | CallError> => {
          if (answer.has(Command.ERROR)) {
            return Effect.fail(Command.errorFromWire(command, errorCode(answer), errorDescription(answer)))
          }
          try {
            const response = Command.decodeResponseUnsafe(command, answer)
            recycle(command.compiled.response, answer)
            return Effect.succeed(response)
          } catch (e) {
            return Effect.fail(e as ArgumentError)
          }
        })
      )
    })

  const callRemoteRaw = (
    name: string,
    args: Box,
    callOptions?: { readonly requiresAnswer?: boolean | undefined }
  ): Effect.Effect<Box, CallError> =>
    Effect.suspend(() => {
      const box = new Map(args)
      box.set(Command.COMMAND, tagBytes(name))
      if (callOptions?.requiresAnswer === false) {
        box.delete(Command.ASK)
        return Effect.as(tell(box), new Map())
      }
      return withCallSlot(ask(box)).pipe(
        Effect.flatMap((answer) => {
          if (!answer.has(Command.ERROR)) return Effect.succeed(answer)
          const code = errorCode(answer)
          return Effect.fail(
            Command.errorFromWire(rawCommand(name), code, errorDescription(answer)) as UnknownRemoteError
          )
        })
      )
    })

  const service: Dispatcher["Service"] = {
    callRemote,
    callRemoteRaw,
    outstanding: Effect.sync(() => pending.size)
  }

  // --- receiving -----------------------------------------------------------------------------------

  const complete = (key: string, box: Box): Effect.Effect<void, ProtocolError> =>
    Effect.suspend(() => {
      const tagValue = box.get(key)!
      const tag = latin1Of(tagValue)
      const deferred = pending.get(tag)
      if (deferred === undefined) {
        if (abandoned.delete(tag)) return Effect.void // a late answer to an interrupted call
        return Effect.fail(new ProtocolError({ reason: `${key} for unknown tag ${pyBytesRepr(tagValue)}` }))
      }
      if (key === Command.ERROR && (!box.has(Command.ERROR_CODE) || !box.has(Command.ERROR_DESCRIPTION))) {
        return Effect.fail(new ProtocolError({ reason: "error box without _error_code or _error_description" }))
      }
      pending.delete(tag)
      Deferred.doneUnsafe(deferred, Exit.succeed(box))
      return Effect.void
    })

  const send = (box: Box) => Effect.catch(outbox.send(box), () => Effect.void)

  const finish = (ask: Uint8Array | undefined, name: string, outcome: Outcome): Effect.Effect<void> => {
    if (ask === undefined) {
      // No answer wanted: the result is discarded; any failure drops the connection (Twisted).
      if (outcome._tag === "Answer") return Effect.void
      return outbox.close(
        `responder for ${name} failed on a command that requires no answer: ` +
          (outcome._tag === "Error" ? `${outcome.code}: ${outcome.description}` : outcome.reason),
        true
      )
    }
    switch (outcome._tag) {
      case "Answer": {
        outcome.box.set(Command.ANSWER, ask)
        return Effect.catch(outbox.send(outcome.box), (error) =>
          error._tag === "TooLong" || error._tag === "InvalidKey"
            // Twisted sends nothing and drops the connection when the answer cannot be serialized
            ? outbox.close(`answer to ${name} cannot be sent: ${error.message}`, true)
            : Effect.void)
      }
      case "Error": {
        const sent = send(Command.errorBox(ask, outcome.code, outcome.description))
        return outcome.fatal ? Effect.andThen(sent, outbox.close(`fatal error ${outcome.code} sent`, true)) : sent
      }
      case "Unknown": {
        return Effect.andThen(
          send(Command.errorBox(ask, Command.UNKNOWN_ERROR_CODE, "Unknown Error")),
          outbox.close(`responder for ${name} failed: ${outcome.reason}`, true)
        )
      }
    }
  }

  const runTyped = (handler: { command: Command.Any; handle: (args: any) => Effect.Effect<any, any, any> }, box: Box) =>
    Effect.suspend((): Effect.Effect<Outcome, never, any> => {
      const command = handler.command
      let args: Record<string, unknown>
      try {
        args = command.compiled.arguments.decode(box)
      } catch (e) {
        return Effect.succeed({ _tag: "Unknown", reason: `bad arguments: ${(e as { reason?: string }).reason ?? e}` })
      }
      recycle(command.compiled.arguments, box)
      return handler.handle(args).pipe(
        Effect.matchCause({
          onSuccess: (response): Outcome => {
            const out = command.compiled.response.hasText ? makeOutgoing() : new Map<string, Uint8Array>()
            try {
              command.compiled.response.encode(response, out)
            } catch (e) {
              return { _tag: "Unknown", reason: `bad response: ${(e as { reason?: string }).reason ?? e}` }
            }
            return { _tag: "Answer", box: out }
          },
          onFailure: (cause): Outcome => failureOutcome(command, cause)
        })
      )
    })

  const runRaw = (handler: { handle: (box: Box) => Effect.Effect<Box, { code: string; description: string; fatal?: boolean | undefined }, any> }, box: Box) =>
    handler.handle(box).pipe(
      Effect.matchCause({
        onSuccess: (answer): Outcome => ({ _tag: "Answer", box: new Map(answer) }),
        onFailure: (cause): Outcome => {
          for (const reason of cause.reasons) {
            if (reason._tag === "Fail" && typeof reason.error?.code === "string") {
              return {
                _tag: "Error",
                code: reason.error.code,
                description: reason.error.description,
                fatal: reason.error.fatal === true
              }
            }
          }
          return { _tag: "Unknown", reason: String(cause) }
        }
      })
    )

  const handlerContext = Context.merge(
    responders.context,
    Context.make(Dispatcher, service).pipe(Context.add(ConnectionInfo, info))
  )
  const handlerScope = yield* Effect.scope

  const dispatchCommand = (box: Box): Effect.Effect<void, ProtocolError> => {
    const nameBytes = box.get(Command.COMMAND)!
    const name = latin1Of(nameBytes)
    const askTag = box.get(Command.ASK)
    const handler = responders.handlers.get(name)
    if (handler === undefined) {
      return finish(askTag, name, {
        _tag: "Error",
        code: Command.UNHANDLED_ERROR_CODE,
        description: `Unhandled Command: ${pyBytesRepr(nameBytes)}`,
        fatal: false
      })
    }
    const run = handler._tag === "Handler"
      ? runTyped(handler, box)
      : handler._tag === "RawHandler"
      ? runRaw(handler, box)
      : Effect.succeed<Outcome>({ _tag: "Unknown", reason: "protocol switch commands need a connection" })
    // Each command runs in its own fiber, started at once (a handler that completes synchronously
    // answers without a trip through the scheduler).
    return Effect.flatMap(handlerSlots.take(1), () =>
      Effect.flatMap(
        Effect.forkIn(
          run.pipe(
            Effect.flatMap((outcome) => finish(askTag, name, outcome)),
            Effect.provideContext(handlerContext),
            Effect.ensuring(handlerSlots.release(1))
          ) as Effect.Effect<void>,
          handlerScope,
          { startImmediately: true }
        ),
        (fiber) => Effect.sync(() => FiberSet.addUnsafe(handlers, fiber))
      ))
  }

  const receive = (box: Box): Effect.Effect<void, ProtocolError> => {
    if (box.has(Command.ANSWER)) return complete(Command.ANSWER, box)
    if (box.has(Command.ERROR)) return complete(Command.ERROR, box)
    if (box.has(Command.COMMAND)) return dispatchCommand(box)
    return Effect.fail(
      new ProtocolError({ reason: `box with none of _command, _answer, _error (keys: ${[...box.keys()].join(", ")})` })
    )
  }

  const failAll = (reason: string): Effect.Effect<void> =>
    Effect.sync(() => {
      if (closedReason === undefined) closedReason = reason
      const error = new ConnectionLost({ reason: closedReason })
      for (const deferred of pending.values()) Deferred.doneUnsafe(deferred, Exit.fail(error))
      pending.clear()
    })

  yield* Scope.addFinalizer(yield* Effect.scope, failAll("connection scope closed"))

  return {
    service,
    receive,
    failAll,
    awaitHandlers: FiberSet.awaitEmpty(handlers),
    request: (box, beforeSend) => ask(box, beforeSend),
    finish,
    markSwitched: Effect.sync(() => {
      switched = true
      const error = new ConnectionLost({ reason: "protocol switched" })
      for (const deferred of pending.values()) Deferred.doneUnsafe(deferred, Exit.fail(error))
      pending.clear()
    })
  } satisfies Handle
})

/** How many abandoned calls' tags are remembered (their late answers are ignored, not a protocol error). */
const MAX_ABANDONED = 65_536

const errorCode = (box: Box): string => {
  const bytes = box.get(Command.ERROR_CODE)
  return bytes === undefined ? "" : latin1(bytes, 0, bytes.length)
}
const errorDescription = (box: Box): string => {
  const bytes = box.get(Command.ERROR_DESCRIPTION)
  return bytes === undefined ? "" : Command.decodeDescription(bytes)
}

const rawCommands = new Map<string, Command.Any>()
const rawCommand = (name: string): Command.Any => {
  let command = rawCommands.get(name)
  if (command === undefined) {
    command = Command.make(name)
    if (rawCommands.size < 1024) rawCommands.set(name, command)
  }
  return command
}
