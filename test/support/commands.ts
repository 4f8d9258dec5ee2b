/**
 * Commands, errors and responders shared by the connection-level suites (e2e, dispatcher, tls, switch,
 * faults). The argument types come from `src/Argument.ts`.
 */
import { Deferred, Effect, Ref, Schema } from "effect"
import * as Argument from "../../src/Argument.ts"
import * as Command from "../../src/Command.ts"
import * as ConnectionInfo from "../../src/ConnectionInfo.ts"
import * as Dispatcher from "../../src/Dispatcher.ts"
import * as Responders from "../../src/Responders.ts"

// --- errors ----------------------------------------------------------------------------------------

export class Oops extends Schema.TaggedError<Oops>()("Oops", { message: Schema.String }) {}
export class Fatal extends Schema.TaggedError<Fatal>()("Fatal", { message: Schema.String }) {}
export class Refused extends Schema.TaggedError<Refused>()("Refused", { message: Schema.String }) {}
export class BaseError extends Schema.TaggedError<BaseError>()("BaseError", { message: Schema.String }) {}
export class OtherError extends Schema.TaggedError<OtherError>()("OtherError", { message: Schema.String }) {}
/** An error nobody declares. */
export class Undeclared extends Schema.TaggedError<Undeclared>()("Undeclared", { message: Schema.String }) {}

// --- commands --------------------------------------------------------------------------------------

/** `Sum(a, b) → total`. Responder: `a === 13` fails with `Oops`, `a === 666` with `Fatal`, `a === -1` with an undeclared error, `a === -2` dies. */
export const Sum = Command.make("Sum", {
  arguments: { a: Argument.Integer, b: Argument.Integer },
  response: { total: Argument.Integer },
  errors: { OOPS: Oops },
  fatalErrors: { FATAL: Fatal }
})

/** Wire keys that are not JS identifiers / are keywords, and optional fields. */
export const Hello = Command.make("Hello", {
  arguments: {
    hello: Argument.Unicode,
    from: Argument.optional(Argument.Unicode),
    "dashed-name": Argument.optional(Argument.Integer)
  },
  response: { hello: Argument.Unicode, print: Argument.optional(Argument.Unicode) }
})

/** A command nobody answers. */
export const WTF = Command.make("WTF")

/** Raw bytes in and out (for large values). */
export const Echo = Command.make("Echo", {
  arguments: { data: Argument.String },
  response: { data: Argument.String }
})

/** Sleeps `ms` milliseconds, then answers `{ ms }`. */
export const Delay = Command.make("Delay", {
  arguments: { ms: Argument.Integer },
  response: { ms: Argument.Integer }
})

/** Never answers (until interrupted). */
export const WaitForever = Command.make("WaitForever")

/** A notification: no `_ask`. Responder: records `n`; `n === 13` fails with the declared `Oops`. */
export const Notify = Command.make("Notify", {
  arguments: { n: Argument.Integer },
  errors: { OOPS: Oops },
  requiresAnswer: false
})

/** The same wire name as `Notify`, but asking for an answer (Twisted's test_noAnswerResponderAskedForAnswer). */
export const NotifyAsked = Command.make("Notify", { arguments: { n: Argument.Integer } })

/** The server calls `Sum` back on the client (through its Dispatcher) before answering. */
export const CallBack = Command.make("CallBack", {
  arguments: { a: Argument.Integer, b: Argument.Integer },
  response: { total: Argument.Integer }
})

/** Answers with facts about the connection it arrived on. */
export const WhoAmI = Command.make("WhoAmI", {
  response: { tls: Argument.Boolean, peer: Argument.optional(Argument.Unicode) }
})

/** CommandInheritance (Twisted tests 81–84): a base command and a "subclass" that adds an error. */
export const BaseCommand = Command.make("Inherit", {
  arguments: { which: Argument.Integer },
  errors: { INHERITED_ERROR: BaseError }
})
export const AddErrorsCommand = Command.make("Inherit", {
  arguments: { which: Argument.Integer },
  errors: { ...BaseCommand.errors, OTHER_INHERITED_ERROR: OtherError }
})

/** Its responder returns a response without the required `total` (Twisted's BadLocalReturn). */
export const BrokenReturn = Command.make("BrokenReturn", { response: { total: Argument.Integer } })

/** A no-answer command whose responder returns an unencodable response (test_noAnswerResponderBadAnswer). */
export const NotifyBad = Command.make("NotifyBad", { response: { x: Argument.Integer }, requiresAnswer: false })

// --- responders ------------------------------------------------------------------------------------

/** What the standard responders observed (shared with the test through the closure). */
export interface Observed {
  readonly notified: Ref.Ref<ReadonlyArray<bigint>>
  /** Completed each time a WaitForever handler starts. */
  readonly waitStarted: Ref.Ref<number>
  /** Completed when a WaitForever handler is interrupted. */
  readonly waitInterrupted: Ref.Ref<number>
  /** Handler starts of Delay. */
  readonly delayStarted: Ref.Ref<number>
  /** Handler starts of Gate. */
  readonly gateStarted: Ref.Ref<number>
  /** Released to let every `Gate` handler answer. */
  readonly gate: Deferred.Deferred<void>
}

export const makeObserved: Effect.Effect<Observed> = Effect.gen(function*() {
  return {
    notified: yield* Ref.make<ReadonlyArray<bigint>>([]),
    waitStarted: yield* Ref.make(0),
    waitInterrupted: yield* Ref.make(0),
    delayStarted: yield* Ref.make(0),
    gateStarted: yield* Ref.make(0),
    gate: yield* Deferred.make<void>()
  }
})

/** Answers after `gate` is released. */
export const Gate = Command.make("Gate", { arguments: { n: Argument.Integer }, response: { n: Argument.Integer } })

/** The standard server responders. */
export const serverHandlers = (observed: Observed) => [
  Responders.handle(Sum, ({ a, b }) => {
    if (a === 13n) return Effect.fail(new Oops({ message: "bad \u2603 thing" }))
    if (a === 666n) return Effect.fail(new Fatal({ message: "die" }))
    if (a === -1n) return Effect.fail(new Undeclared({ message: "nobody declared me" })) as never
    if (a === -2n) return Effect.die(new Error("boom"))
    return Effect.succeed({ total: a + b })
  }),
  Responders.handle(Hello, (args) =>
    Effect.succeed({
      hello: `${args.hello}|from=${args.from ?? "<none>"}|dashed=${args["dashed-name"] ?? "<none>"}`,
      ...(args.from !== undefined ? { print: args.from } : {})
    })),
  Responders.handle(Echo, ({ data }) => Effect.succeed({ data })),
  Responders.handle(Delay, ({ ms }) =>
    Ref.update(observed.delayStarted, (n) => n + 1).pipe(
      Effect.andThen(Effect.sleep(Number(ms))),
      Effect.as({ ms })
    )),
  Responders.handle(WaitForever, () =>
    Ref.update(observed.waitStarted, (n) => n + 1).pipe(
      Effect.andThen(Effect.never),
      Effect.onInterrupt(() => Ref.update(observed.waitInterrupted, (n) => n + 1))
    )),
  Responders.handle(Notify, ({ n }) =>
    n === 13n
      ? Effect.fail(new Oops({ message: "no thanks" }))
      : Effect.as(Ref.update(observed.notified, (all) => [...all, n]), {})),
  Responders.handle(CallBack, ({ a, b }) =>
    Dispatcher.callRemote(Sum, { a, b }).pipe(
      Effect.map(({ total }) => ({ total: total * 10n })),
      Effect.orDie
    )),
  Responders.handle(WhoAmI, () =>
    Effect.map(ConnectionInfo.current, (snapshot) => {
      const cn = snapshot.peerCertificate?.subject?.CN
      const peer = cn === undefined ? undefined : typeof cn === "string" ? cn : cn[0]
      return { tls: snapshot.tls, ...(peer !== undefined ? { peer } : {}) }
    })),
  Responders.handle(Gate, ({ n }) =>
    Ref.update(observed.gateStarted, (k) => k + 1).pipe(Effect.andThen(Deferred.await(observed.gate)), Effect.as({ n }))),
  Responders.handle(BrokenReturn, () => Effect.succeed({} as { total: bigint })),
  Responders.handle(NotifyBad, () => Effect.succeed({} as { x: bigint })),
  Responders.raw("Big", () => Effect.succeed(new Map([["data", new Uint8Array(65536)]]))),
  // echoes the non-special keys and reports every key it was given (Twisted's amp_HELLO `seen`)
  Responders.raw("Reflect", (box) =>
    Effect.succeed(
      new Map([
        ...[...box].filter(([k]) => !k.startsWith("_")),
        ["seen", new TextEncoder().encode([...box.keys()].sort().join(","))]
      ])
    )),
  Responders.handle(BaseCommand, ({ which }) =>
    which === 1n
      ? Effect.fail(new BaseError({ message: "base" }))
      : which === 2n
      ? Effect.fail(new OtherError({ message: "other" })) as never
      : Effect.succeed({}))
] as const

/** The standard client responders: a plain Sum (for symmetric calls). */
export const clientHandlers = [
  Responders.handle(Sum, ({ a, b }) => Effect.succeed({ total: a + b }))
] as const

/** Responders value (not a Layer) from handlers without service requirements. */
export const responders = (...handlers: ReadonlyArray<Responders.Any>): Responders.Responders["Service"] =>
  Effect.runSync(Responders.make(...handlers) as Effect.Effect<Responders.Responders["Service"]>)
