/**
 * The reconnecting client over real TCP on 127.0.0.1 (and once over WebSocket): server restarts on the
 * same port, calls waiting for a connection, fail-fast, outstanding calls failing typed on a drop and
 * never re-sent, the state stream, bounded retries, and closing the scope (no more attempts, no socket
 * left).
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Fiber, Layer, Ref, Schedule, Scope, Stream } from "effect"
import * as Socket from "effect/socket/Socket"
import * as Client from "../src/Client.ts"
import { Dispatcher } from "../src/Dispatcher.ts"
import * as Reconnecting from "../src/Reconnecting.ts"
import * as Responders from "../src/Responders.ts"
import * as Server from "../src/Server.ts"
import * as WebSocketClient from "../src/WebSocketClient.ts"
import * as WebSocketServer from "../src/WebSocketServer.ts"
import { makeObserved, type Observed, responders, serverHandlers, Sum, WaitForever } from "./support/commands.ts"
import { socketHandles } from "./support/transports.ts"
import { eventually } from "./support/wait.ts"

/** A server in a scope of its own, so that a test can stop it and start another on the same port. */
const startServer = (port: number) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const observed = yield* makeObserved
    const server = yield* Server.make({ port }).pipe(
      Effect.provideService(Responders.Responders, responders(...serverHandlers(observed))),
      Scope.provide(scope),
      Effect.orDie
    )
    return { server, observed, stop: Scope.close(scope, Exit.void) }
  })

/** A port that was free a moment ago (nothing listens on it now). */
const freePort = Effect.gen(function*() {
  const { server, stop } = yield* startServer(0)
  yield* stop
  return server.address._tag === "Tcp" ? server.address.port : 0
})

/** Builds the reconnecting client layer in the current scope. */
const client = (port: number, options?: Reconnecting.Options) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      Client.layerReconnecting({ port, schedule: Schedule.spaced("20 millis"), ...options }).pipe(
        Layer.provide(Layer.succeed(Responders.Responders, responders()))
      )
    )
    return { amp: Context.get(context, Dispatcher), state: Context.get(context, Reconnecting.ReconnectingClient) }
  })

const waitForState = (state: Reconnecting.ReconnectingClient["Service"], tag: Reconnecting.State["_tag"]) =>
  eventually(`state ${tag}`, Effect.map(state.state, (s) => s._tag === tag))

const started = (observed: Observed) => Ref.get(observed.waitStarted)

describe("Reconnecting client (TCP)", () => {
  it.live("survives server restarts on the same port; calls made while it is down wait, then succeed", () =>
    Effect.gen(function*() {
      let server = yield* startServer(0)
      const port = server.server.address._tag === "Tcp" ? server.server.address.port : 0
      const { amp, state } = yield* client(port)
      for (let round = 0; round < 3; round++) {
        yield* waitForState(state, "Connected")
        assert.strictEqual((yield* amp.callRemote(Sum, { a: 1n, b: BigInt(round) })).total, 1n + BigInt(round))
        yield* server.stop
        yield* waitForState(state, "Disconnected")
        const waiting = yield* Effect.forkChild(amp.callRemote(Sum, { a: 10n, b: BigInt(round) }))
        yield* Effect.sleep(100)
        assert.isUndefined(waiting.pollUnsafe(), "the call waits while no server is up")
        server = yield* startServer(port)
        assert.strictEqual((yield* Fiber.join(waiting)).total, 10n + BigInt(round))
        assert.strictEqual((yield* state.state)._tag, "Connected")
      }
      yield* server.stop
    }).pipe(Effect.scoped), 30_000)

  it.live("a call made before any connection waits for the first one", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const { amp, state } = yield* client(port)
      const call = yield* Effect.forkChild(amp.callRemote(Sum, { a: 20n, b: 22n }))
      yield* eventually("a few failed attempts", Effect.map(state.state, (s) => s._tag === "Disconnected" && s.attempt >= 3))
      const server = yield* startServer(port)
      assert.strictEqual((yield* Fiber.join(call)).total, 42n)
      yield* server.stop
    }).pipe(Effect.scoped), 20_000)

  it.live("waitTimeout: a call fails with AmpConnectionLost when no connection comes in time", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const { amp } = yield* client(port, { waitTimeout: "150 millis" })
      const start = Date.now()
      const error = yield* Effect.flip(amp.callRemote(Sum, { a: 1n, b: 1n }))
      assert.strictEqual(error._tag, "AmpConnectionLost")
      assert.include(error.message, "no connection within 150")
      assert.include(error.message, "ECONNREFUSED")
      assert.isAtLeast(Date.now() - start, 140)
    }).pipe(Effect.scoped), 20_000)

  it.live("whileDisconnected: \"fail\": calls fail at once while disconnected, and work once connected", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const { amp, state } = yield* client(port, { whileDisconnected: "fail" })
      yield* waitForState(state, "Disconnected")
      const error = yield* Effect.flip(amp.callRemote(Sum, { a: 1n, b: 1n }))
      assert.strictEqual(error._tag, "AmpConnectionLost")
      assert.include(error.message, "not connected (reconnecting)")
      const server = yield* startServer(port)
      yield* waitForState(state, "Connected")
      assert.strictEqual((yield* amp.callRemote(Sum, { a: 1n, b: 1n })).total, 2n)
      yield* server.stop
    }).pipe(Effect.scoped), 20_000)

  it.live("calls outstanding at a drop fail with AmpConnectionLost and are never re-sent", () =>
    Effect.gen(function*() {
      const first = yield* startServer(0)
      const port = first.server.address._tag === "Tcp" ? first.server.address.port : 0
      const { amp, state } = yield* client(port)
      const calls = yield* Effect.forEach([1, 2, 3], () => Effect.forkChild(Effect.flip(amp.callRemote(WaitForever, {}))))
      yield* eventually("3 handlers running", Effect.map(started(first.observed), (n) => n === 3))
      assert.strictEqual(yield* amp.outstanding, 3)
      yield* first.stop
      for (const call of calls) {
        const error = yield* Fiber.join(call)
        assert.strictEqual(error._tag, "AmpConnectionLost")
      }
      const second = yield* startServer(port)
      yield* waitForState(state, "Connected")
      assert.strictEqual((yield* amp.callRemote(Sum, { a: 5n, b: 5n })).total, 10n)
      yield* Effect.sleep(100)
      assert.strictEqual(yield* started(second.observed), 0, "no call was re-sent to the new server")
      assert.strictEqual(yield* amp.outstanding, 0)
      yield* second.stop
    }).pipe(Effect.scoped), 20_000)

  it.live("the state stream: Connecting → Connected → Disconnected → Connecting → … → Connected", () =>
    Effect.gen(function*() {
      const first = yield* startServer(0)
      const port = first.server.address._tag === "Tcp" ? first.server.address.port : 0
      const { state } = yield* client(port)
      const seen: Array<Reconnecting.State> = []
      yield* Effect.forkScoped(Stream.runForEach(state.changes, (s) => Effect.sync(() => seen.push(s))))
      yield* waitForState(state, "Connected")
      yield* first.stop
      yield* eventually("two failed attempts", Effect.sync(() => seen.filter((s) => s._tag === "Disconnected").length >= 3))
      const second = yield* startServer(port)
      yield* eventually("connected again", Effect.sync(() => seen.filter((s) => s._tag === "Connected").length === 2))
      const tags = seen.map((s) => s._tag)
      // consecutive duplicates can only come from the initial value being re-published
      const collapsed = tags.filter((t, i) => i === 0 || t !== tags[i - 1])
      const connected = collapsed.indexOf("Connected")
      assert.deepStrictEqual(collapsed.slice(connected, connected + 3), ["Connected", "Disconnected", "Connecting"])
      assert.strictEqual(collapsed[collapsed.length - 1], "Connected")
      assert.strictEqual(collapsed[collapsed.length - 2], "Connecting")
      const drop = seen.find((s) => s._tag === "Disconnected")!
      assert.strictEqual(drop._tag, "Disconnected")
      if (drop._tag === "Disconnected") {
        assert.strictEqual(drop.cause._tag, "ConnectionEnded")
        assert.strictEqual(drop.attempt, 0, "no failed attempt yet")
        assert.strictEqual(Duration.toMillis(drop.retryIn), 20)
      }
      const refused = seen.filter((s) => s._tag === "Disconnected")[1]!
      assert.strictEqual(refused._tag === "Disconnected" ? refused.cause._tag : "", "ConnectError")
      assert.strictEqual(refused._tag === "Disconnected" ? refused.attempt : 0, 1)
      const secondTry = seen.filter((s) => s._tag === "Connecting" && s.attempt === 2)
      assert.isAbove(secondTry.length, 0)
      const last = seen[seen.length - 1]!
      assert.strictEqual(last._tag === "Connected" ? last.info.transport : "", "tcp")
      yield* second.stop
    }).pipe(Effect.scoped), 20_000)

  it.live("bounded retries: the client stops, and every call fails with the reason", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const { amp, state } = yield* client(port, { schedule: Schedule.spaced("10 millis").pipe(Schedule.upTo({ times: 2 })) })
      const waiting = yield* Effect.forkChild(Effect.flip(amp.callRemote(Sum, { a: 1n, b: 1n })))
      yield* waitForState(state, "Stopped")
      const stopped = yield* state.state
      assert.strictEqual(stopped._tag === "Stopped" ? stopped.cause._tag : "", "ConnectError")
      const error = yield* Fiber.join(waiting)
      assert.strictEqual(error._tag, "AmpConnectionLost")
      assert.include(error.message, "gave up reconnecting after 3 failed attempts")
      const later = yield* Effect.flip(amp.callRemote(Sum, { a: 1n, b: 1n }))
      assert.include(later.message, "gave up reconnecting")
      assert.strictEqual((yield* Effect.flip(state.connection))._tag, "AmpConnectionLost")
      // it really stopped: a server started now sees nobody
      const server = yield* startServer(port)
      yield* Effect.sleep(100)
      assert.strictEqual(yield* server.server.connections, 0)
      yield* server.stop
    }).pipe(Effect.scoped), 20_000)

  it.live("closing the scope stops reconnecting, fails waiting calls and leaves no socket open", () =>
    Effect.gen(function*() {
      const before = socketHandles()
      const server = yield* startServer(0)
      const port = server.server.address._tag === "Tcp" ? server.server.address.port : 0
      const scope = yield* Scope.make()
      const { amp, state } = yield* client(port).pipe(Scope.provide(scope))
      assert.strictEqual((yield* amp.callRemote(Sum, { a: 1n, b: 1n })).total, 2n)
      const outstanding = yield* Effect.forkChild(Effect.flip(amp.callRemote(WaitForever, {})))
      yield* eventually("handler running", Effect.map(started(server.observed), (n) => n === 1))
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* Fiber.join(outstanding))._tag, "AmpConnectionLost")
      assert.strictEqual((yield* state.state)._tag, "Stopped")
      const after = yield* Effect.flip(amp.callRemote(Sum, { a: 1n, b: 1n }))
      assert.include(after.message, "the reconnecting client was closed")
      yield* eventually("the server saw the connection end", Effect.map(server.server.connections, (n) => n === 0))
      yield* Effect.sleep(100)
      assert.strictEqual(yield* server.server.connections, 0, "no new connection after the scope closed")
      yield* server.stop
      yield* eventually(
        "no socket left",
        Effect.sync(() => {
          const now = socketHandles()
          return now.TCPSocketWrap <= before.TCPSocketWrap && now.TCPServerWrap <= before.TCPServerWrap
        })
      )
    }), 20_000)

  it.live("closing the scope while no server is up: the retry loop stops", () =>
    Effect.gen(function*() {
      const before = socketHandles()
      const port = yield* freePort
      const scope = yield* Scope.make()
      const { amp, state } = yield* client(port).pipe(Scope.provide(scope))
      const waiting = yield* Effect.forkChild(Effect.flip(amp.callRemote(Sum, { a: 1n, b: 1n })))
      yield* eventually("retrying", Effect.map(state.state, (s) => s._tag === "Disconnected" && s.attempt >= 2))
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* Fiber.join(waiting))._tag, "AmpConnectionLost")
      const server = yield* startServer(port)
      yield* Effect.sleep(100)
      assert.strictEqual(yield* server.server.connections, 0)
      yield* server.stop
      yield* eventually("no socket left", Effect.sync(() => socketHandles().TCPSocketWrap <= before.TCPSocketWrap))
    }), 20_000)
})

describe("Reconnecting client (WebSocket)", () => {
  it.live("WebSocketClient.layerReconnecting survives a WebSocketServer restart on the same port", () =>
    Effect.gen(function*() {
      const startWs = (port: number) =>
        Effect.gen(function*() {
          const scope = yield* Scope.make()
          const observed = yield* makeObserved
          const server = yield* WebSocketServer.make({ port, path: "/amp" }).pipe(
            Effect.provideService(Responders.Responders, responders(...serverHandlers(observed))),
            Scope.provide(scope),
            Effect.orDie
          )
          return { server, stop: Scope.close(scope, Exit.void) }
        })
      const first = yield* startWs(0)
      const port = first.server.address._tag === "Tcp" ? first.server.address.port : 0
      const context = yield* Layer.build(
        WebSocketClient.layerReconnecting(first.server.url, { schedule: Schedule.spaced("20 millis") }).pipe(
          Layer.provide(Layer.succeed(Responders.Responders, responders())),
          Layer.provide(Socket.layerWebSocketConstructorGlobal)
        )
      )
      const amp = Context.get(context, Dispatcher)
      const state = Context.get(context, Reconnecting.ReconnectingClient)
      assert.strictEqual((yield* amp.callRemote(Sum, { a: 1n, b: 2n })).total, 3n)
      const outstanding = yield* Effect.forkChild(Effect.flip(amp.callRemote(WaitForever, {})))
      yield* Effect.sleep(50)
      yield* first.stop
      assert.strictEqual((yield* Fiber.join(outstanding))._tag, "AmpConnectionLost")
      yield* waitForState(state, "Disconnected")
      const waiting = yield* Effect.forkChild(amp.callRemote(Sum, { a: 3n, b: 4n }))
      const second = yield* startWs(port)
      assert.strictEqual((yield* Fiber.join(waiting)).total, 7n)
      const connected = yield* state.state
      assert.strictEqual(connected._tag === "Connected" ? connected.info.transport : "", "websocket")
      yield* second.stop
    }).pipe(Effect.scoped), 20_000)
})
