/**
 * effect-amp in one page: an AMP server and client in one process, over real TCP on 127.0.0.1.
 *
 *     npm start        (npm run example -- demo)
 *
 * 1. typed calls: `Sum` with bigint arguments and result;
 * 2. a typed error: `Divide` by zero fails with `ZeroDivision` in the error channel (wire code ZERO_DIVISION);
 * 3. a server-initiated call: while answering `Hello`, the server calls the client's `WhoAreYou` back
 *    over the same connection (AMP is symmetric: both ends have responders);
 * 4. a notification: `Log` has `requiresAnswer: false`, so it is sent without `_ask` and never answered.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Ref, Schema } from "effect"
import { Argument, Client, Command, Dispatcher, Responders, Server } from "effect-amp"

// --- the protocol: commands are schemas, shared by both ends -----------------------------------------

class ZeroDivision extends Schema.TaggedError<ZeroDivision>()("ZeroDivision", { message: Schema.String }) {}

const Sum = Command.make("Sum", {
  arguments: { a: Argument.Integer, b: Argument.Integer },
  response: { total: Argument.Integer }
})

const Divide = Command.make("Divide", {
  arguments: { numerator: Argument.Integer, denominator: Argument.Integer },
  response: { result: Argument.Float },
  errors: { ZERO_DIVISION: ZeroDivision }
})

/** Client → server; the server calls WhoAreYou on the client before answering. */
const Hello = Command.make("Hello", { response: { greeting: Argument.Unicode } })

/** Server → client. */
const WhoAreYou = Command.make("WhoAreYou", { response: { name: Argument.Unicode } })

/** A notification: no `_ask`, no answer. */
const Log = Command.make("Log", { arguments: { message: Argument.Unicode }, requiresAnswer: false })

/** Reads what the server has logged so far. */
const GetLog = Command.make("GetLog", { response: { messages: Argument.ListOf(Argument.Unicode) } })

// --- the server --------------------------------------------------------------------------------------

const serverLog = Ref.makeUnsafe<ReadonlyArray<string>>([])

const ServerResponders = Responders.layer(
  Responders.handle(Sum, ({ a, b }) => Effect.succeed({ total: a + b })),
  Responders.handle(Divide, ({ numerator, denominator }) =>
    denominator === 0n
      ? Effect.fail(new ZeroDivision({ message: "division by zero" }))
      : Effect.succeed({ result: Number(numerator) / Number(denominator) })),
  Responders.handle(Hello, () =>
    Effect.gen(function*() {
      // `Dispatcher.callRemote` inside a handler calls the peer that sent the command
      const { name } = yield* Dispatcher.callRemote(WhoAreYou, {}).pipe(Effect.orDie)
      return { greeting: `Hello, ${name}!` }
    })),
  Responders.handle(Log, ({ message }) => Effect.as(Ref.update(serverLog, (log) => [...log, message]), {})),
  Responders.handle(GetLog, () => Effect.map(Ref.get(serverLog), (messages) => ({ messages })))
)

// --- the client: it answers WhoAreYou --------------------------------------------------------------------

const ClientResponders = Responders.layer(
  Responders.handle(WhoAreYou, () => Effect.succeed({ name: "demo client" }))
)

const program = Effect.gen(function*() {
  const server = yield* Server.make({ port: 0 }).pipe(Effect.provide(ServerResponders))
  const port = server.port
  yield* Console.log(`server listening on 127.0.0.1:${port}`)

  const connection = yield* Client.connect({ port }).pipe(Effect.provide(ClientResponders))
  const amp = connection.dispatcher

  // 1. typed call
  const { total } = yield* amp.callRemote(Sum, { a: 13n, b: 81n })
  yield* Console.log(`1. Sum(13, 81) = ${total}`)

  // 2. typed error: ZeroDivision is in the error channel, caught by its tag
  const divided = yield* amp.callRemote(Divide, { numerator: 1234n, denominator: 0n }).pipe(
    Effect.map(({ result }) => `${result}`),
    Effect.catchTag("ZeroDivision", (e) => Effect.succeed(`failed with ZeroDivision: ${e.message}`))
  )
  yield* Console.log(`2. Divide(1234, 0) ${divided}`)

  // 3. the server calls the client back while answering
  const { greeting } = yield* amp.callRemote(Hello, {})
  yield* Console.log(`3. Hello: the server asked the client WhoAreYou and answered "${greeting}"`)

  // 4. notifications: sent without waiting for (or getting) an answer
  yield* amp.callRemote(Log, { message: "first" })
  yield* amp.callRemote(Log, { message: "second" })
  const { messages } = yield* amp.callRemote(GetLog, {})
  yield* Console.log(`4. two Log notifications sent (no answers); the server received ${JSON.stringify(messages)}`)

  yield* connection.close({ graceful: true })
  yield* Console.log("done")
}).pipe(Effect.scoped)

NodeRuntime.runMain(program)
