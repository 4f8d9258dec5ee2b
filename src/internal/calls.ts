/**
 * The calling side of the dispatcher (Twisted's `_sendBoxCommand` and answer matching): how boxes are
 * sent (the {@link Outbox} the connection implements, {@link Hold}s for transitions), outgoing calls and
 * the `Ref` of their outstanding `Deferred`s, call tags, and answers delivered to their callers. The
 * dispatcher engine (`dispatcher.ts`) adds the incoming commands.
 * @internal
 */
import { Cause, Deferred, Effect, Exit, Ref, Semaphore } from "effect"
import { AmpConnectionLost, AmpProtocolError, ProtocolSwitched, type UnknownRemoteError } from "../AmpError.ts"
import { type Box, bytesIfPresent, type InvalidKey, type InvalidValue, POOLED_MIN_LENGTH, type TooLong } from "../Box.ts"
import * as Command from "../Command.ts"
import type { CallError, Dispatcher, Options } from "../Dispatcher.ts"
import type { FieldsCodec } from "./argument.ts"
import { fromLatin1, latin1, pyBytesRepr } from "./bytes.ts"
import * as Descriptors from "./descriptors.ts"
import type { CallObservation, DispatcherObserver } from "./observability.ts"

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

/** The answer to our own StartTLS or switch request: the reader runs the transition, then `deliver`s it. */
export interface Answered {
  readonly _tag: "Answered"
  readonly transition: Transition
  readonly answer: Box
  readonly deliver: Effect.Effect<void>
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

/** How many abandoned calls' tags are remembered (their late answers are ignored, not a protocol error). */
const MAX_ABANDONED = 65_536

const SWITCHED = "This connection has switched: no AMP traffic allowed."

/** The calling side of one connection's dispatcher. */
export interface Calls {
  readonly callRemote: Dispatcher["Service"]["callRemote"]
  readonly callRemoteRaw: Dispatcher["Service"]["callRemoteRaw"]
  readonly outstanding: Effect.Effect<number>
  /** Delivers an answer or error box: `undefined` when done, else the Effect the reader must run. */
  readonly complete: (key: string, box: Box) => Effect.Effect<Answered | undefined, AmpProtocolError> | undefined
  /** Sends a request that drives a transition; its answer comes back from `complete` as `Answered`. */
  readonly request: (box: Map<string, Uint8Array>, transition: Transition) => Effect.Effect<Box, CallError>
  /** Fails every outstanding call with `AmpConnectionLost(reason)`; later calls fail at once. */
  readonly failAll: (reason: string) => Effect.Effect<void>
  /** After a protocol switch: outstanding and later calls fail with `ProtocolSwitched`. */
  readonly markSwitched: Effect.Effect<void>
  /** Hands back the buffers of the values `fields` decoded into values that keep no view of them. */
  readonly recycle: (fields: FieldsCodec, box: Box) => void
}

/** Creates the calling side (in an Effect: the outstanding calls live in a `Ref`). */
export const make = (
  outbox: Outbox,
  observer: DispatcherObserver,
  options: Options | undefined,
  descriptors: Descriptors.State | undefined
): Effect.Effect<Calls> =>
  Effect.gen(function*() {
    const valuePool = options?.valuePool
    // Outstanding calls by tag, in a Ref. The Ref always holds this one Map, changed in place: the hot
    // path (a call, its answer) reads and changes it synchronously, without an Effect per step.
    const outstanding = yield* Ref.make(new Map<number, Pending>())
    const calls = Ref.getUnsafe(outstanding)
    const failEvery = (error: AmpConnectionLost | ProtocolSwitched) =>
      Effect.sync(() => {
        const all = [...calls.values()]
        calls.clear()
        const exit = Exit.fail(error)
        for (const p of all) {
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

    // --- answers -------------------------------------------------------------------------------------

    /** Delivers an answer or error box to its caller (synchronously, unless it answers a transition). */
    const complete = (key: string, box: Box): Effect.Effect<Answered | undefined, AmpProtocolError> | undefined => {
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
        return Effect.succeed<Answered>({ _tag: "Answered", transition: found.transition, answer: box, deliver })
      }
      calls.delete(tag)
      const exit = settle(found.command, box)
      if (found.observation !== undefined) observer.endCall(found.observation, exit)
      Deferred.doneUnsafe(found.deferred, exit)
      return undefined
    }

    const failAll = (reason: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        over ??= new AmpConnectionLost({ reason })
        return failEvery(new AmpConnectionLost({ reason }))
      })

    return {
      callRemote,
      callRemoteRaw,
      outstanding: Effect.map(Ref.get(outstanding), (calls) => calls.size),
      complete,
      request: (box, transition) => ask(box, transition) as Effect.Effect<Box, CallError>,
      failAll,
      markSwitched: Effect.suspend(() => {
        over = new ProtocolSwitched({ reason: SWITCHED })
        return failEvery(new AmpConnectionLost({ reason: "protocol switched" }))
      }),
      recycle
    } satisfies Calls
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

const errorCode = (box: Box): string => {
  const bytes = box.get(Command.ERROR_CODE)
  return bytes === undefined ? "" : latin1(bytes, 0, bytes.length)
}
const errorDescription = (box: Box): string => {
  const bytes = box.get(Command.ERROR_DESCRIPTION)
  return bytes === undefined ? "" : Command.decodeDescription(bytes)
}
