/**
 * AMP is symmetric: once connected, either end can call the other. Here the *server* drives the
 * conversation: the client subscribes, and the server's `Subscribe` handler calls the client's
 * `Deliver` for each item (over the same connection, while the client still waits for its answer),
 * then answers. The client refuses one item with a declared error, which reaches the server typed.
 *
 *     npm run example -- bidirectional
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Schema } from "effect"
import { Argument, Client, Command, Dispatcher, Responders, Server } from "effect-amp"

class Refused extends Schema.TaggedError<Refused>()("Refused", { message: Schema.String }) {}

/** client → server: "send me the items of this topic" */
const Subscribe = Command.make("Subscribe", {
  arguments: { topic: Argument.Unicode },
  response: { delivered: Argument.Integer, refused: Argument.Integer }
})

/** server → client: one item; the client may refuse it */
const Deliver = Command.make("Deliver", {
  arguments: { topic: Argument.Unicode, item: Argument.Unicode },
  response: { accepted: Argument.Boolean },
  errors: { REFUSED: Refused }
})

const items = ["apples", "pears", "durian", "plums"]

const ServerResponders = Responders.layer(
  Responders.handle(Subscribe, ({ topic }) =>
    Effect.gen(function*() {
      let delivered = 0n
      let refused = 0n
      for (const item of items) {
        // calls the client that sent Subscribe
        yield* Dispatcher.callRemote(Deliver, { topic, item }).pipe(
          Effect.tap(() => Effect.sync(() => delivered++)),
          Effect.catchTag("Refused", (e) =>
            Effect.andThen(Effect.sync(() => refused++), Console.log(`  server: the client refused "${item}": ${e.message}`))),
          Effect.orDie
        )
      }
      yield* Console.log(`  server: done with ${topic}`)
      return { delivered, refused }
    }))
)

const ClientResponders = Responders.layer(
  Responders.handle(Deliver, ({ topic, item }) =>
    item === "durian"
      ? Effect.fail(new Refused({ message: "not in this house" }))
      : Effect.as(Console.log(`  client: got ${topic}/${item} from the server`), { accepted: true }))
)

const program = Effect.gen(function*() {
  const server = yield* Server.make({ port: 0 }).pipe(Effect.provide(ServerResponders))
  const port = server.port
  const connection = yield* Client.connect({ port }).pipe(Effect.provide(ClientResponders))

  yield* Console.log("client: Subscribe(fruit)")
  const { delivered, refused } = yield* connection.dispatcher.callRemote(Subscribe, { topic: "fruit" })
  yield* Console.log(`client: Subscribe answered: ${delivered} delivered, ${refused} refused`)
}).pipe(Effect.scoped)

NodeRuntime.runMain(program)
