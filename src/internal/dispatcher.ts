/**
 * The dispatcher's engine (Twisted's `BoxDispatcher`): outgoing calls and their outstanding `Deferred`s,
 * and every incoming box. It knows nothing of sockets: it sends through an {@link Outbox} and is fed
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
import { Cause, Context, Deferred, Effect, Exit, Fiber, Ref, Scope, Semaphore } from "effect"
import { AmpConnectionLost, AmpProtocolError, ProtocolSwitched, type UnknownRemoteError } from "../AmpError.ts"
import { type Box, bytesIfPresent, type InvalidKey, type InvalidValue, makeOutgoing, POOLED_MIN_LENGTH, type TooLong } from "../Box.ts"
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
import type { FieldsCodec } from "./argument.ts"
import * as Descriptors from "./descriptors.ts"
import { asciiUpper, fromLatin1, latin1, pyBytesRepr } from "./bytes.ts"
import { type CallObservation, dispatcherObserver, type InfoSource } from "./observability.ts"
import { fromCause, type Outcome, unknown } from "./outcome.ts"

/** Why a box cannot be queued: it cannot be framed, or AMP traffic is over. */
export type SendError = TooLong | InvalidKey | InvalidValue | AmpConnectionLost | ProtocolSwitched

/** How the dispatcher sends: implemented by the connection. */
export interface Outbox {
  /**
   * Queues a box (then `hold`, if given: the writer stops after the box until the hold is released)
   * synchronously; returns the error instead, queueing nothing, if the box cannot be framed or AMP
   * traffic is over. Never waits: see `full`.
   */
  readonly push: (box: Box, hold?: Hold) => SendError | undefined
  /** Whether the send queue has reached its bound: senders should then wait for `room`. */
  readonly full: () => boolean
  /** Waits until the send queue is below its bound. */
  readonly room: Effect.Effect<void>
  /** Ends the connection; `graceful`: what is queued is written first (Twisted's `loseConnection`). */
  readonly close: (reason: string, graceful: boolean, cause?: unknown) => Effect.Effect<void>
}

/** Queues a box and waits while the send queue is full. */
export const send = (outbox: Outbox, box: Box, hold?: Hold): Effect.Effect<void, SendError> =>
  Effect.suspend(() => {
    const error = outbox.push(box, hold)
    if (error !== undefined) return Effect.fail(error)
    return outbox.full() ? outbox.room : Effect.void
  })

/** A marker in the send queue: the writer stops there until released (StartTLS and switches). */
export class Hold {
  /** Completed when everything queued before the hold has been written. */
  readonly reached = Deferred.makeUnsafe<void>()
  /** `true`: write on (in the next phase); `false`: stop writing for good. */
  readonly release = Deferred.makeUnsafe<boolean>()
  /** A switch's hold also locks AMP when it is queued. */
  readonly kind: "tls" | "switch"
  constructor(kind: "tls" | "switch") {
    this.kind = kind
  }
}

/** What our own StartTLS or switch request does when its answer arrives (see `Step.Answered`). */
export interface Transition {
  readonly _tag: "StartTls" | "Switch"
  /** Queued right after the request: the writer stops there until the transition is done. */
  readonly hold: Hold
  /** Set when the answer has arrived (an interruption after it does not leave the state unknown). */
  answered: boolean
}

/**
 * What the reader must do after a box, besides going on with the next one.
 * - `StartTls`: the peer asked for TLS; answer (if `ask`) and start the handshake before reading on.
 * - `Switch`: a switch responder accepted; answer and hand the socket to `inner`.
 * - `Answered`: the answer to our own StartTLS/switch: run the transition, then `deliver` it.
 */
export type Step =
  | { readonly _tag: "StartTls"; readonly ask: Uint8Array | undefined }
  | { readonly _tag: "Switch"; readonly ask: Uint8Array | undefined; readonly name: string; readonly inner: Inner }
  | { readonly _tag: "Answered"; readonly transition: Transition; readonly answer: Box; readonly deliver: Effect.Effect<void> }

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

interface Pending {
  /**
   * Completed with the call's result: for a typed call (`command`) the decoded response or the
   * command's error, decoded where the answer is read; otherwise the raw answer or error box.
   */
  readonly deferred: Deferred.Deferred<unknown, unknown>
  readonly transition: Transition | undefined
  readonly command: Command.Any | undefined
  /** The call's span and metrics, ended where the call ends (answer, connection lost, interruption). */
  readonly observation: CallObservation | undefined
}

/** A command accepted but waiting for a handler slot. */
interface Waiting {
  readonly run: Effect.Effect<void>
  readonly bytes: number
}

/** How many abandoned calls' tags are remembered (their late answers are ignored, not a protocol error). */
const MAX_ABANDONED = 65_536

const SWITCHED = "This connection has switched: no AMP traffic allowed."

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
  const valuePool = options?.valuePool
  const maxHandlers = options?.maxConcurrentHandlers ?? DEFAULT_MAX_CONCURRENT_HANDLERS
  const maxQueued = options?.maxQueuedCommands ?? DEFAULT_MAX_QUEUED_COMMANDS
  const maxQueuedBytes = options?.maxQueuedCommandBytes ?? DEFAULT_MAX_QUEUED_COMMAND_BYTES

  // Outstanding calls by tag, in a Ref. The Ref always holds this one Map, changed in place: the hot
  // path (a call, its answer) reads and changes it synchronously, without an Effect per step.
  const outstanding = yield* Ref.make(new Map<number, Pending>())
  const calls = Ref.getUnsafe(outstanding)
  const failEvery = (error: AmpConnectionLost | ProtocolSwitched) =>
    Effect.sync(() => {
      const all = [...calls.values()]
      calls.clear()
      for (const p of all) {
        const exit = Exit.fail(error)
        if (p.observation !== undefined) observer.endCall(p.observation, exit)
        Deferred.doneUnsafe(p.deferred, exit)
      }
    })

  let over: AmpConnectionLost | ProtocolSwitched | undefined
  let counter = 0
  // tags are the call counter in lowercase hex on the wire (as Twisted's), numbers in the map
  const nextTag = (): number => ++counter
  const callSlots = options?.maxOutstandingCalls !== undefined ? yield* Semaphore.make(options.maxOutstandingCalls) : undefined
  // tags of calls abandoned by their caller whose answer has not arrived yet (oldest first, bounded)
  let abandoned: Set<number> | undefined
  const abandon = (tag: number) => {
    abandoned ??= new Set()
    abandoned.add(tag)
    if (abandoned.size > MAX_ABANDONED) abandoned.delete(abandoned.values().next().value!)
  }

  /** Hands back the buffers of the values `fields` decoded into values that keep no view of them. */
  const recycle = (fields: FieldsCodec, box: Box): void => {
    if (valuePool === undefined) return
    const keys = fields.recyclable
    for (let i = 0; i < keys.length; i++) {
      const value = bytesIfPresent(box, keys[i]!) // a value still in pieces was never assembled: nothing to release
      if (value !== undefined && value.length >= POOLED_MIN_LENGTH) valuePool.release(value)
    }
  }

  // --- calling -------------------------------------------------------------------------------------

  /**
   * Sends a request box and waits for its result: with `command`, the decoded response (failing with
   * the command's error); without, the raw answer or error box. `observe`: the call gets its client span
   * and metrics (made here, from the caller's fiber, and ended where the call ends).
   */
  const ask = (
    box: Map<string, Uint8Array>,
    transition?: Transition,
    command?: Command.Any,
    observe = false
  ): Effect.Effect<unknown, unknown> =>
    Effect.withFiber((fiber) => {
      const observation = observe ? observer.startCall(command!, box, fiber) : undefined
      if (over !== undefined) return failed(observation, over)
      const tag = nextTag()
      box.set(Command.ASK, hexBytes(tag))
      const error = outbox.push(box, transition?.hold)
      if (error !== undefined) return failed(observation, error)
      const deferred = Deferred.makeUnsafe<unknown, unknown>()
      const pending: Pending = { deferred, transition, command, observation }
      calls.set(tag, pending)
      const answer = Deferred.await(deferred)
      return Effect.onInterrupt(outbox.full() ? Effect.andThen(outbox.room, answer) : answer, () =>
        Effect.sync(() => {
          // still outstanding after the request went out: the caller gave up (interrupted, timed
          // out) and the peer's answer may still come; remember the tag so that answer is ignored
          if (calls.get(tag) === pending) {
            calls.delete(tag)
            abandon(tag)
            if (observation !== undefined) observer.endCall(observation, INTERRUPTED)
          }
        }))
    })

  /** A call that failed before it was sent. */
  const failed = (observation: CallObservation | undefined, error: unknown): Effect.Effect<never, unknown> => {
    const exit = Exit.fail(error)
    if (observation !== undefined) observer.endCall(observation, exit)
    return exit
  }

  /** A call's result from its answer box (see `Pending.deferred`). */
  const settle = (command: Command.Any | undefined, answer: Box): Exit.Exit<unknown, unknown> => {
    if (command === undefined) return Exit.succeed(answer)
    if (answer.has(Command.ERROR)) return Exit.fail(Command.errorFromWire(command, errorCode(answer), errorDescription(answer)))
    try {
      const response = Descriptors.within(descriptors, () => Command.decodeResponseUnsafe(command, answer))
      recycle(command.compiled.response, answer)
      return Exit.succeed(response)
    } catch (e) {
      return Exit.fail(e)
    }
  }

  const tell = (box: Map<string, Uint8Array>, command?: Command.Any): Effect.Effect<void, CallError> =>
    Effect.withFiber((fiber) => {
      const observation = command === undefined ? undefined : observer.startCall(command, box, fiber)
      if (over !== undefined) return failed(observation, over) as Effect.Effect<never, CallError>
      nextTag() // Twisted uses up a tag even when no `_ask` is sent
      const error = outbox.push(box)
      if (error !== undefined) return failed(observation, error) as Effect.Effect<never, CallError>
      if (observation !== undefined) observer.endCall(observation, Exit.void)
      return outbox.full() ? outbox.room : Effect.void
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
        box = Descriptors.within(descriptors, () => Command.encodeArgumentsUnsafe(command, args as Record<string, unknown>))
      } catch (e) {
        return Effect.fail(e as CallError)
      }
      if (!command.requiresAnswer) return tell(box, command) as Effect.Effect<any, CallError>
      return withCallSlot(ask(box, undefined, command, true)) as Effect.Effect<
        Command.Result<C>,
        Command.Error<C> | CallError
      >
    })

  const callRemoteRaw = (
    name: string,
    args: Box,
    callOptions?: { readonly requiresAnswer?: boolean | undefined }
  ): Effect.Effect<Box, CallError> =>
    Effect.suspend(() => {
      const box = new Map(args)
      box.set(Command.COMMAND, fromLatin1(name))
      if (callOptions?.requiresAnswer === false) {
        box.delete(Command.ASK)
        return Effect.as(tell(box), new Map())
      }
      return withCallSlot(ask(box) as Effect.Effect<Box, CallError>).pipe(
        Effect.flatMap((answer) =>
          answer.has(Command.ERROR)
            ? Effect.fail(
              Command.errorFromWire(Command.make(name), errorCode(answer), errorDescription(answer)) as UnknownRemoteError
            )
            : Effect.succeed(answer)
        )
      )
    })

  const service: Dispatcher["Service"] = {
    callRemote,
    callRemoteRaw,
    outstanding: Effect.map(Ref.get(outstanding), (calls) => calls.size)
  }

  // --- answers -------------------------------------------------------------------------------------

  /** Delivers an answer or error box to its caller (synchronously, unless it answers a transition). */
  const complete = (key: string, box: Box): Effect.Effect<Step | undefined, AmpProtocolError> | undefined => {
    const tagValue = box.get(key)!
    const tag = parseTag(tagValue)
    const found = tag < 0 ? undefined : calls.get(tag)
    if (found === undefined) {
      if (abandoned?.delete(tag) === true) return undefined // late answer to a call given up
      return Effect.fail(new AmpProtocolError({ reason: `${key} for unknown tag ${pyBytesRepr(tagValue)}` }))
    }
    // a malformed error box ends the connection: the call stays outstanding and fails with it
    if (key === Command.ERROR && (!box.has(Command.ERROR_CODE) || !box.has(Command.ERROR_DESCRIPTION))) {
      return Effect.fail(new AmpProtocolError({ reason: "error box without _error_code or _error_description" }))
    }
    if (found.transition !== undefined) {
      // the entry leaves the map only when it is completed: if the connection ends first (during the
      // transition), failAll still finds it
      found.transition.answered = true
      const deliver = Effect.sync(() => {
        if (calls.get(tag) !== found) return
        calls.delete(tag)
        const exit = settle(found.command, box)
        if (found.observation !== undefined) observer.endCall(found.observation, exit)
        Deferred.doneUnsafe(found.deferred, exit)
      })
      return Effect.succeed({ _tag: "Answered", transition: found.transition, answer: box, deliver })
    }
    calls.delete(tag)
    const exit = settle(found.command, box)
    if (found.observation !== undefined) observer.endCall(found.observation, exit)
    Deferred.doneUnsafe(found.deferred, exit)
    return undefined
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
  // services over them, and this connection's Dispatcher and ConnectionInfo
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
    if (box.has(Command.ANSWER)) return complete(Command.ANSWER, box)
    if (box.has(Command.ERROR)) return complete(Command.ERROR, box)
    const name = box.get(Command.COMMAND)
    if (name !== undefined) return dispatchCommand(box, name)
    return Effect.fail(
      new AmpProtocolError({ reason: `box with none of _command, _answer, _error (keys: ${[...box.keys()].join(", ")})` })
    )
  }

  const failAll = (reason: string): Effect.Effect<void> =>
    Effect.suspend(() => {
      over ??= new AmpConnectionLost({ reason })
      return failEvery(new AmpConnectionLost({ reason }))
    })

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
    markSwitched: Effect.suspend(() => {
      over = new ProtocolSwitched({ reason: SWITCHED })
      return failEvery(new AmpConnectionLost({ reason: "protocol switched" }))
    }),
    awaitIdle: Effect.suspend(() => {
      if (running === 0 && head === waiting.length) return Effect.void
      idle ??= Deferred.makeUnsafe<void>()
      return Deferred.await(idle)
    }),
    request: (box, transition) => ask(box, transition) as Effect.Effect<Box, CallError>,
    finish,
    get handlerContext() {
      return handlerContext()
    },
    queued: () => waiting.length - head
  } satisfies Engine
})

/** A tag as we send it: the number in lowercase hex digits. */
const hexBytes = (n: number): Uint8Array => {
  let digits = 1
  for (let m = n; m >= 16; m = Math.floor(m / 16)) digits++
  const out = new Uint8Array(digits)
  for (let i = digits - 1, m = n; i >= 0; i--, m = Math.floor(m / 16)) out[i] = HEX[m % 16]!
  return out
}
const HEX = new Uint8Array([48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 97, 98, 99, 100, 101, 102])
/** The number a tag of ours stands for, or -1 if the bytes are not one (not canonical lowercase hex). */
const parseTag = (bytes: Uint8Array): number => {
  const n = bytes.length
  if (n === 0 || n > 13 || bytes[0] === 48) return -1
  let value = 0
  for (let i = 0; i < n; i++) {
    const c = bytes[i]!
    const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1
    if (d < 0) return -1
    value = value * 16 + d
  }
  return value
}

/** How an abandoned call ends (its observation's outcome: `interrupted`). */
const INTERRUPTED: Exit.Exit<never> = Exit.failCause(Cause.interrupt())

const boxBytes = (box: Box): number => {
  let n = 2
  for (const [key, value] of box) n += 4 + key.length + value.length
  return n
}
const errorCode = (box: Box): string => {
  const bytes = box.get(Command.ERROR_CODE)
  return bytes === undefined ? "" : latin1(bytes, 0, bytes.length)
}
const errorDescription = (box: Box): string => {
  const bytes = box.get(Command.ERROR_DESCRIPTION)
  return bytes === undefined ? "" : Command.decodeDescription(bytes)
}
