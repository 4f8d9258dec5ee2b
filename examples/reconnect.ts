/**
 * A client that keeps its connection: `Client.layerReconnecting` provides the usual `Dispatcher`, so
 * the program calls `Dispatcher.callRemote` as with `Client.layer`, and reconnects with a retry
 * `Schedule` when the server goes away. Here the server goes down and comes back on the same port:
 *
 * - a call in flight when the connection drops fails with `AmpConnectionLost` (it is never re-sent: the
 *   command may not be idempotent);
 * - a call made while the server is down waits for the next connection (up to `waitTimeout`);
 * - the connection state is a stream (`Reconnecting.ReconnectingClient.changes`).
 *
 *     node examples/reconnect.ts
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Duration, Effect, Exit, Fiber, Layer, Schedule, Scope, Stream } from "effect"
import { Argument, Client, Command, Dispatcher, Reconnecting, Responders, Server } from "effect-amp"

const Sum = Command.make("Sum", {
  arguments: { a: Argument.Integer, b: Argument.Integer },
  response: { total: Argument.Integer }
})
/** A slow command: its answer takes 10 seconds. */
const Slow = Command.make("Slow")

const ServerResponders = Responders.layer(
  Responders.handle(Sum, ({ a, b }) => Effect.succeed({ total: a + b })),
  Responders.handle(Slow, () => Effect.as(Effect.sleep("10 seconds"), {}))
)

/** Starts a server in a scope of its own; returns its port and how to stop it. */
const startServer = (port: number) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    // shutdown: "abort": the server goes away at once (by default it would let the Slow answer out first)
    const server = yield* Server.make({ port, shutdown: "abort" }).pipe(Effect.provide(ServerResponders), Scope.provide(scope))
    return { port: server.port, stop: Scope.close(scope, Exit.void) }
  })

const describe = (state: Reconnecting.State): string => {
  switch (state._tag) {
    case "Connecting":
      return `connecting (attempt ${state.attempt})`
    case "Connected":
      return `connected to ${state.info.remoteAddress}`
    case "Disconnected":
      return `disconnected: ${state.cause.message}; next attempt in ${Duration.format(state.retryIn)}`
    case "Stopped":
      return `stopped: ${state.cause.message}`
  }
}

/** The application: plain `Dispatcher.callRemote`, plus a look at the connection state. */
const app = (restartServer: Effect.Effect<void, unknown>, stopServer: Effect.Effect<void>) =>
  Effect.gen(function*() {
    const client = yield* Reconnecting.ReconnectingClient
    yield* Effect.forkScoped(Stream.runForEach(client.changes, (s) => Console.log(`  [state] ${describe(s)}`)))
    yield* client.connection
    const first = yield* Dispatcher.callRemote(Sum, { a: 1n, b: 2n })
    yield* Console.log(`1. Sum(1, 2) = ${first.total}`)

    const inFlight = yield* Effect.forkScoped(Effect.flip(Dispatcher.callRemote(Slow, {})))
    yield* Effect.sleep("100 millis")
    yield* Console.log("2. the server goes down while Slow is in flight")
    yield* stopServer
    const lost = yield* Fiber.join(inFlight)
    yield* Console.log(`   Slow failed with ${lost._tag} (not re-sent)`)

    const waiting = yield* Effect.forkScoped(Dispatcher.callRemote(Sum, { a: 40n, b: 2n }))
    yield* Effect.sleep("300 millis")
    yield* Console.log("3. a call made while the server is down waits; the server comes back")
    yield* restartServer
    const answer = yield* Fiber.join(waiting)
    yield* Console.log(`   the waiting call got Sum(40, 2) = ${answer.total}`)
  }).pipe(Effect.scoped)

const main = Effect.gen(function*() {
  let server = yield* startServer(0)
  const port = server.port
  yield* Console.log(`server on port ${port}`)
  const AmpLive = Client.layerReconnecting({
    port,
    schedule: Schedule.spaced("100 millis"),
    waitTimeout: "5 seconds"
  }).pipe(Layer.provide(Responders.empty))
  const restart = Effect.gen(function*() {
    server = yield* startServer(port)
  })
  yield* app(restart, Effect.suspend(() => server.stop)).pipe(Effect.provide(AmpLive))
  yield* server.stop
  yield* Console.log("done: the layer was closed with the program, and stopped reconnecting")
})

NodeRuntime.runMain(main)
