/**
 * The dispatcher's engine (Twisted's `BoxDispatcher`): every incoming box, with the calling side (outgoing
 * calls and their outstanding `Deferred`s, in `calls.ts`). It knows nothing of sockets: it sends through
 * an {@link Outbox} and is fed
 * boxes by the reader. What an incoming box asks of the connection beyond an answer (StartTLS, a
 * protocol switch, the answer to our own StartTLS or switch) comes back as a {@link Step}.
 *
 * Flow control: answers and error answers to our calls complete their callers at once, whatever the
 * handlers are doing. Incoming commands run in fibers, at most `maxConcurrentHandlers` at a time; the
 * others wait in a FIFO queue bounded by count and bytes, and only a full queue makes `receive` wait
 * (the reader then stops reading: TCP backpressure). So a peer that calls us while we call it back
 * (the call-back pattern) never deadlocks below those bounds.
 * @internal
 */
import { Cause, Context, Deferred, Effect, Exit, Fiber, Scope } from "effect"
import { AmpProtocolError } from "../AmpError.ts"
import { type Box, makeOutgoing } from "../Box.ts"
import * as Command from "../Command.ts"
import { ConnectionInfo } from "../ConnectionInfo.ts"
import {
  type CallError,
  DEFAULT_MAX_CONCURRENT_HANDLERS,
  DEFAULT_MAX_QUEUED_COMMAND_BYTES,
  DEFAULT_MAX_QUEUED_COMMANDS,
  Dispatcher,
  type Options
} from "../Dispatcher.ts"
import type * as Socket from "effect/socket/Socket"
import type { Snapshot } from "../ConnectionInfo.ts"
import { type Any as AnyHandler, isQuit, Responders } from "../Responders.ts"
import * as Descriptors from "./descriptors.ts"
import { asciiUpper, latin1, pyBytesRepr } from "./bytes.ts"
import { dispatcherObserver, type InfoSource } from "./observability.ts"
import * as Calls from "./calls.ts"
import { type Answered, type Outbox, send, type Transition } from "./calls.ts"
import { fromCause, type Outcome, unknown } from "./outcome.ts"

export { type Answered, Hold, type Outbox, send, type SendError, type Transition } from "./calls.ts"

/**
 * What the reader must do after a box, besides going on with the next one.
 * - `StartTls`: the peer asked for TLS; answer (if `ask`) and start the handshake before reading on.
 * - `Switch`: a switch responder accepted; answer and hand the socket to `inner`.
 * - `Answered`: the answer to our own StartTLS/switch: run the transition, then `deliver` it.
 */
export type Step =
  | { readonly _tag: "StartTls"; readonly ask: Uint8Array | undefined }
  | { readonly _tag: "Switch"; readonly ask: Uint8Array | undefined; readonly name: string; readonly inner: Inner }
  | Answered

/** The protocol a switch responder returned, to run over the socket after the answer. */
export type Inner = (io: { readonly socket: Socket.Socket; readonly info: Snapshot }) => Effect.Effect<void, unknown, unknown>

/** The connection-facing side of a dispatcher. */
export interface Engine {
  readonly service: Dispatcher["Service"]
  /**
   * Handles one incoming box. `undefined`: done synchronously (the usual case: an answer delivered, a
   * command answered inline or started in a fiber). Otherwise the reader runs the returned Effect before
   * the next box: a transition step, a protocol error, a wait while the command queue is full, or a log
   * and close.
   */
  readonly receive: (box: Box) => Effect.Effect<Step | undefined, AmpProtocolError> | undefined
  /** Fails every outstanding call with `AmpConnectionLost(reason)`; later calls fail at once. */
  readonly failAll: (reason: string) => Effect.Effect<void>
  /** After a protocol switch: outstanding and later calls fail with `ProtocolSwitched`. */
  readonly markSwitched: Effect.Effect<void>
  /** Waits until no command is running or queued. */
  readonly awaitIdle: Effect.Effect<void>
  /** Sends a request that drives a transition; its answer comes back from `receive` as `Answered`. */
  readonly request: (box: Map<string, Uint8Array>, transition: Transition) => Effect.Effect<Box, CallError>
  /** Sends the outcome for a request with tag `ask` (or none), closing when the outcome says so. */
  readonly finish: (ask: Uint8Array | undefined, name: string, outcome: Outcome) => Effect.Effect<void>
  /** The services handlers run with: the responders' plus `Dispatcher` and `ConnectionInfo`. */
  readonly handlerContext: Context.Context<never>
  /** Commands waiting for a handler slot (for metrics and tests). */
  readonly queued: () => number
}

/** A command accepted but waiting for a handler slot. */
interface Waiting {
  readonly run: Effect.Effect<void>
  readonly bytes: number
}

/** Creates the engine; handler fibers live in the current scope (closing it interrupts them). */
export const make = Effect.fnUntraced(function*(
  outbox: Outbox,
  info: InfoSource,
  options?: Options,
  /** Wraps a switch responder's run (the connection's `amp.switch` server span). */
  switchSpan: (name: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R> = () => (effect) => effect,
  /** The connection's file-descriptor state (`Argument.Descriptor`), current while a box is encoded or decoded. */
  descriptors?: Descriptors.State
) {
  const responders = yield* Responders
  const observer = yield* dispatcherObserver(info, options, responders.context)
  const maxHandlers = options?.maxConcurrentHandlers ?? DEFAULT_MAX_CONCURRENT_HANDLERS
  const maxQueued = options?.maxQueuedCommands ?? DEFAULT_MAX_QUEUED_COMMANDS
  const maxQueuedBytes = options?.maxQueuedCommandBytes ?? DEFAULT_MAX_QUEUED_COMMAND_BYTES

  const calls = yield* Calls.make(outbox, observer, options, descriptors)
  const { recycle } = calls
  const service: Dispatcher["Service"] = {
    callRemote: calls.callRemote,
    callRemoteRaw: calls.callRemoteRaw,
    outstanding: calls.outstanding
  }

  // --- commands ------------------------------------------------------------------------------------

  const sendQuietly = (box: Box) => Effect.catch(send(outbox, box), () => Effect.void)

  const finish = (askTag: Uint8Array | undefined, name: string, outcome: Outcome): Effect.Effect<void> => {
    if (outcome._tag === "Unknown") {
      const log = Effect.logError(`AMP: responder for ${name} failed (${outcome.reason}); answering UNKNOWN and closing`, outcome.cause)
        .pipe(Effect.annotateLogs({ "amp.command": name }))
      const close = outbox.close(`responder for ${name} failed: ${outcome.reason}`, true, outcome.cause)
      return askTag === undefined
        ? Effect.andThen(log, close)
        : Effect.andThen(log, Effect.andThen(sendQuietly(Command.errorBox(askTag, Command.UNKNOWN_ERROR_CODE, "Unknown Error")), close))
    }
    if (askTag === undefined) {
      // No answer wanted: the result is discarded; an error drops the connection (Twisted).
      if (outcome._tag === "Answer") return Effect.void
      if (outcome._tag === "AnswerThenClose") return outbox.close(`${name} answered and asked to close`, true)
      const reason = `responder for ${name} failed on a command that requires no answer: ${outcome.code}: ${outcome.description}`
      return Effect.andThen(Effect.logWarning(`AMP: ${reason}; closing`), outbox.close(reason, true))
    }
    switch (outcome._tag) {
      case "Answer":
      case "AnswerThenClose": {
        outcome.box.set(Command.ANSWER, askTag)
        const sent = Effect.catch(send(outbox, outcome.box), (error) =>
          error._tag === "TooLong" || error._tag === "InvalidKey" || error._tag === "InvalidValue"
            // Twisted sends nothing and drops the connection when the answer cannot be serialized
            ? Effect.andThen(
              Effect.logError(`AMP: the answer to ${name} cannot be sent: ${error.message}; closing`),
              outbox.close(`answer to ${name} cannot be sent: ${error.message}`, true, error)
            )
            : Effect.void)
        return outcome._tag === "Answer" ? sent : Effect.andThen(sent, outbox.close(`${name} answered and asked to close`, true))
      }
      case "Error": {
        const sent = sendQuietly(Command.errorBox(askTag, outcome.code, outcome.description))
        return outcome.fatal ? Effect.andThen(sent, outbox.close(`fatal error ${outcome.code} sent`, true)) : sent
      }
    }
  }

  /** Runs a user function that should return an Effect; a throw becomes a defect, not an escape. */
  const call = <A, B>(f: (a: A) => B, a: A): B | Effect.Effect<never, never> => {
    try {
      return f(a)
    } catch (defect) {
      return Effect.die(defect)
    }
  }

  /** Decodes a typed command's arguments: the args, or the `UNKNOWN` outcome naming the argument. */
  const decodeArgs = (command: Command.Any, box: Box): Record<string, unknown> | Outcome => {
    try {
      const args = Descriptors.within(descriptors, () => command.compiled.arguments.decode(box))
      recycle(command.compiled.arguments, box)
      return args
    } catch (e) {
      const key = (e as { key?: string }).key
      const why = (e as { reason?: string }).reason ?? String(e)
      const reason = key === undefined ? `bad arguments: ${why}` : `bad argument '${key}': ${why}`
      return unknown(reason, Cause.fail(e))
    }
  }
  const isOutcome = (u: unknown): u is Outcome => typeof u === "object" && u !== null && "_tag" in u

  const typedOutcome = (command: Command.Any, response: unknown): Outcome => {
    const quit = isQuit(response)
    const out = command.compiled.response.hasText ? makeOutgoing() : new Map<string, Uint8Array>()
    try {
      Descriptors.within(descriptors, () => command.compiled.response.encode((quit ? response.response : response) as Record<string, unknown>, out))
    } catch (e) {
      const key = (e as { key?: string }).key
      return unknown(`bad response${key === undefined ? "" : ` key '${key}'`}: ${(e as { reason?: string }).reason ?? e}`, Cause.fail(e))
    }
    return { _tag: quit ? "AnswerThenClose" : "Answer", box: out }
  }

  const rawOutcome = (cause: Cause.Cause<{ code?: unknown; description?: string; fatal?: boolean | undefined }>): Outcome => {
    for (const reason of cause.reasons) {
      if (reason._tag === "Fail" && typeof reason.error?.code === "string") {
        return { _tag: "Error", code: reason.error.code, description: reason.error.description ?? "", fatal: reason.error.fatal === true }
      }
    }
    return fromCause(Command.make("raw"), cause)
  }

  // handlers run with the connection's own services (its logger, tracer, …), the responders' captured
  // services over them, and this connection's Dispatcher and ConnectionInfo (built on first use: an
  // idle connection, or one whose handlers all answer inline, never needs it)
  const connectionContext = yield* Effect.context<never>()
  let handlerContextCache: Context.Context<never> | undefined
  const handlerContext = (): Context.Context<never> =>
    handlerContextCache ??= Context.merge(
      Context.merge(connectionContext, responders.context),
      Context.make(Dispatcher, service).pipe(Context.add(ConnectionInfo, info))
    )
  const handlerScope = yield* Effect.scope
  // the running handler fibers (interrupted when the scope closes), made on first use
  let handlers: Set<Fiber.Fiber<void>> | undefined
  // closing: queued commands are dropped and no new one starts
  let stopped = false

  // Commands waiting for a handler slot: a FIFO (array + head index) bounded by count and bytes.
  let running = 0
  const waiting: Array<Waiting | undefined> = []
  let head = 0
  let waitingBytes = 0
  let room: Deferred.Deferred<void> | undefined // completed when the queue has room again
  let idle: Deferred.Deferred<void> | undefined // completed when nothing runs or waits
  const queueFull = () => waiting.length - head >= maxQueued || waitingBytes >= maxQueuedBytes

  const start = (run: Effect.Effect<void>): void => {
    if (stopped) return
    running++
    const fiber = Effect.runForkWith(handlerContext())(run)
    if (fiber.pollUnsafe() !== undefined) return done(fiber) // finished without waiting
    ;(handlers ??= new Set()).add(fiber)
    fiber.addObserver(() => done(fiber))
  }
  function done(fiber: Fiber.Fiber<void>): void {
    handlers?.delete(fiber)
    running--
    if (head < waiting.length) {
      const next = waiting[head]!
      waiting[head++] = undefined
      waitingBytes -= next.bytes
      if (head === waiting.length) {
        waiting.length = 0
        head = 0
      }
      if (room !== undefined && !queueFull()) {
        Deferred.doneUnsafe(room, Exit.void)
        room = undefined
      }
      start(next.run)
    } else if (running === 0 && idle !== undefined) {
      Deferred.doneUnsafe(idle, Exit.void)
      idle = undefined
    }
  }

  const commandRun = (
    box: Box,
    nameBytes: Uint8Array,
    name: string,
    handler: AnyHandler | undefined
  ): Effect.Effect<Step | undefined> | Effect.Effect<void> => {
    const askTag = box.get(Command.ASK)
    if (handler === undefined) {
      if (name === "StartTLS") return Effect.succeed<Step>({ _tag: "StartTls", ask: askTag })
      return finish(askTag, name, {
        _tag: "Error",
        code: Command.UNHANDLED_ERROR_CODE,
        description: `Unhandled Command: ${pyBytesRepr(nameBytes)}`,
        fatal: false
      })
    }
    switch (handler._tag) {
      case "Handler": {
        const command: Command.Any = handler.command
        const outcome = Effect.suspend((): Effect.Effect<Outcome> => {
          const args = decodeArgs(command, box)
          if (isOutcome(args)) return Effect.succeed(args)
          return Effect.map(
            Effect.exit(Effect.suspend(() => call(handler.handle, args) as Effect.Effect<unknown, unknown>)),
            (exit) => Exit.isSuccess(exit) ? typedOutcome(command, exit.value) : fromCause(command, exit.cause)
          )
        })
        return Effect.flatMap(observer.serve(name, box, outcome), (o) => finish(askTag, name, o))
      }
      case "RawHandler": {
        const outcome = Effect.map(
          Effect.exit(Effect.suspend(() => call(handler.handle, box) as Effect.Effect<Box, { code?: unknown; description?: string }>)),
          (exit): Outcome => Exit.isSuccess(exit) ? { _tag: "Answer", box: new Map(exit.value) } : rawOutcome(exit.cause)
        )
        return Effect.flatMap(observer.serve(name, box, outcome), (o) => finish(askTag, name, o))
      }
      case "SwitchHandler": {
        // run inline: the bytes after this box belong to the next protocol if it accepts
        const command: Command.Any = handler.command
        const args = decodeArgs(command, box)
        if (isOutcome(args)) return finish(askTag, name, args)
        return Effect.flatMap(
          Effect.exit(Effect.provideContext(Effect.suspend(() => call(handler.handle, args) as Effect.Effect<unknown, unknown>), handlerContext())),
          (exit) =>
            Exit.isSuccess(exit)
              ? Effect.succeed<Step>({ _tag: "Switch", ask: askTag, name, inner: exit.value as Inner })
              // a refused switch ends its span failed
              : Effect.andThen(finish(askTag, name, fromCause(command, exit.cause)), Effect.fail(exit.cause))
        ).pipe(switchSpan(name), Effect.catch(() => Effect.succeed(undefined)))
      }
    }
  }

  /**
   * The handler for a command name: the exact name first, then a raw handler by the ASCII upper-cased
   * name (Twisted's `CommandLocator`, then `SimpleStringLocator`'s `amp_` + `name.upper()`). `StartTLS`
   * never falls back: Twisted's built-in StartTLS responder wins over any `amp_STARTTLS`.
   */
  const locate = (name: string): AnyHandler | undefined =>
    responders.handlers.get(name) ??
      (responders.rawByUpperName.size === 0 || name === "StartTLS" ? undefined : responders.rawByUpperName.get(asciiUpper(name)))

  /**
   * Answers a typed command without a fiber when its handler returns an `Exit` (`Effect.succeed`,
   * `Effect.fail`: nothing to run). A handler that returns any other Effect runs in a fiber, as every
   * handler did before. Returns what the reader must still run (a log and close), if anything.
   */
  const inline = (box: Box, name: string, handler: Extract<AnyHandler, { _tag: "Handler" }>): Effect.Effect<void> | undefined => {
    const command: Command.Any = handler.command
    const askTag = box.get(Command.ASK)
    const started = observer.now()
    const args = decodeArgs(command, box)
    let outcome: Outcome
    if (isOutcome(args)) outcome = args
    else {
      const result = call(handler.handle, args) as Effect.Effect<unknown, unknown>
      if (!Exit.isExit(result)) {
        // the handler has work to do: run it in a fiber of its own
        const run = Effect.map(
          Effect.exit(result),
          (exit) => Exit.isSuccess(exit) ? typedOutcome(command, exit.value) : fromCause(command, exit.cause)
        )
        start(Effect.flatMap(observer.serve(name, box, run), (o) => finish(askTag, name, o)))
        return undefined
      }
      outcome = Exit.isSuccess(result) ? typedOutcome(command, result.value) : fromCause(command, result.cause)
    }
    observer.served(name, box, started, outcome)
    if (askTag === undefined && outcome._tag === "Answer") return undefined
    if (askTag !== undefined && (outcome._tag === "Answer" || (outcome._tag === "Error" && !outcome.fatal))) {
      const answer = outcome._tag === "Answer"
        ? outcome.box
        : Command.errorBox(askTag, outcome.code, outcome.description)
      if (outcome._tag === "Answer") answer.set(Command.ANSWER, askTag)
      const error = outbox.push(answer)
      // a closed connection drops the answer (as in a fiber); one that cannot be framed closes
      if (error === undefined || error._tag === "AmpConnectionLost" || error._tag === "ProtocolSwitched") return undefined
    }
    return finish(askTag, name, outcome)
  }

  const dispatchCommand = (box: Box, nameBytes: Uint8Array): Effect.Effect<Step | undefined> | undefined => {
    const name = latin1(nameBytes, 0, nameBytes.length)
    const handler = locate(name)
    // transitions (StartTLS, switches) and unhandled commands are settled inline, in order
    if (handler === undefined || handler._tag === "SwitchHandler") {
      return commandRun(box, nameBytes, name, handler) as Effect.Effect<Step | undefined>
    }
    if (running < maxHandlers) {
      if (stopped) return undefined
      // answered without a fiber if the handler's result is already there, unless the send queue is
      // full (then a fiber waits for room, and the bounds stay what they are)
      if (handler._tag === "Handler" && !outbox.full()) return inline(box, name, handler) as Effect.Effect<undefined> | undefined
      start(commandRun(box, nameBytes, name, handler) as Effect.Effect<void>)
      return undefined
    }
    const run = commandRun(box, nameBytes, name, handler) as Effect.Effect<void>
    waiting.push({ run, bytes: boxBytes(box) })
    waitingBytes += waiting[waiting.length - 1]!.bytes
    if (!queueFull()) return undefined
    room ??= Deferred.makeUnsafe<void>()
    return Effect.as(Deferred.await(room), undefined)
  }

  const receive = (box: Box): Effect.Effect<Step | undefined, AmpProtocolError> | undefined => {
    if (box.has(Command.ANSWER)) return calls.complete(Command.ANSWER, box)
    if (box.has(Command.ERROR)) return calls.complete(Command.ERROR, box)
    const name = box.get(Command.COMMAND)
    if (name !== undefined) return dispatchCommand(box, name)
    return Effect.fail(
      new AmpProtocolError({ reason: `box with none of _command, _answer, _error (keys: ${[...box.keys()].join(", ")})` })
    )
  }

  const failAll = calls.failAll

  yield* Scope.addFinalizer(
    handlerScope,
    Effect.andThen(
      Effect.sync(() => {
        stopped = true
        waiting.length = 0
        head = 0
        waitingBytes = 0
      }),
      Effect.andThen(
        failAll("connection scope closed"),
        Effect.suspend(() => handlers === undefined || handlers.size === 0 ? Effect.void : Fiber.interruptAll([...handlers]))
      )
    )
  )

  return {
    service,
    receive,
    failAll,
    markSwitched: calls.markSwitched,
    awaitIdle: Effect.suspend(() => {
      if (running === 0 && head === waiting.length) return Effect.void
      idle ??= Deferred.makeUnsafe<void>()
      return Deferred.await(idle)
    }),
    request: calls.request,
    finish,
    get handlerContext() {
      return handlerContext()
    },
    queued: () => waiting.length - head
  } satisfies Engine
})

const boxBytes = (box: Box): number => {
  let n = 2
  for (const [key, value] of box) n += 4 + key.length + value.length
  return n
}
