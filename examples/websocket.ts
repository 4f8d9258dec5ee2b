/**
 * AMP over WebSocket. A `WebSocketServer` (Node) serves; the client is a `WebSocketClient` on the
 * platform's standard `WebSocket` (`Socket.layerWebSocketConstructorGlobal`), so the client half of
 * this file runs unchanged in a browser. AMP stays symmetric over WebSocket: the server calls the
 * client back during a call. StartTLS is not possible over a WebSocket: use a `wss:` URL instead.
 *
 *     node examples/websocket.ts
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Layer } from "effect"
import * as Socket from "effect/socket/Socket"
import { Argument, Command, Dispatcher, Responders, WebSocketClient, WebSocketServer } from "effect-amp"

const Sum = Command.make("Sum", {
  arguments: { a: Argument.Integer, b: Argument.Integer },
  response: { total: Argument.Integer }
})
/** The server greets the caller by name, which it asks the caller for (a call back to the client). */
const Greet = Command.make("Greet", { response: { greeting: Argument.Unicode } })
const WhoAreYou = Command.make("WhoAreYou", { response: { name: Argument.Unicode } })

const ServerResponders = Responders.layer(
  Responders.handle(Sum, ({ a, b }) => Effect.succeed({ total: a + b })),
  Responders.handle(Greet, () =>
    Dispatcher.callRemote(WhoAreYou, {}).pipe(
      Effect.map(({ name }) => ({ greeting: `Hello, ${name}!` })),
      Effect.orDie
    ))
)

/** What a browser page would provide: its answers, and the standard WebSocket. */
const ClientLive = Layer.mergeAll(
  Responders.layer(Responders.handle(WhoAreYou, () => Effect.succeed({ name: "browser tab" }))),
  Socket.layerWebSocketConstructorGlobal
)

/** The client half: it needs only a URL. */
const client = (url: string) =>
  Effect.gen(function*() {
    const connection = yield* WebSocketClient.connect(url)
    const amp = connection.dispatcher
    const { total } = yield* amp.callRemote(Sum, { a: 13n, b: 81n })
    yield* Console.log(`1. Sum(13, 81) over WebSocket = ${total}`)
    const { greeting } = yield* amp.callRemote(Greet, {})
    yield* Console.log(`2. Greet: the server asked us WhoAreYou, then answered "${greeting}"`)
    const totals = yield* Effect.forEach(
      Array.from({ length: 100 }, (_, i) => BigInt(i)),
      (i) => Effect.map(amp.callRemote(Sum, { a: i, b: i }), (r) => r.total),
      { concurrency: "unbounded" }
    )
    yield* Console.log(`3. 100 concurrent Sums add up to ${totals.reduce((x, y) => x + y, 0n)}`)
    const tls = yield* Effect.flip(connection.startTLS())
    yield* Console.log(`4. StartTLS over WebSocket fails with ${tls._tag}: ${tls.message}`)
  }).pipe(Effect.scoped, Effect.provide(ClientLive))

const main = Effect.gen(function*() {
  const server = yield* WebSocketServer.make({ port: 0, path: "/amp" }).pipe(Effect.provide(ServerResponders))
  yield* Console.log(`WebSocket server at ${server.url}`)
  yield* client(server.url)
  yield* Console.log("done")
}).pipe(Effect.scoped)

NodeRuntime.runMain(main)
