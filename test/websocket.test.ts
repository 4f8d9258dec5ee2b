/**
 * AMP over WebSocket on ws://127.0.0.1 (the common scenarios run in e2e.test.ts with the `websocket`
 * transport): both client WebSocket implementations (Node's global, browser-like one and the `ws`
 * package), boxes split across messages by a raw `ws` peer, StartTLS refused with the wss: hint,
 * connect failures, the server closing, a connection limit, no leaked sockets, send backpressure, wss:,
 * and the browser-safety of the client (its own imports; a run with every Node built-in stubbed).
 */
import { assert, describe, it } from "@effect/vitest"
import { afterAll } from "vitest"
import * as NodeWS from "@effect/platform-node/NodeWS"
import { Effect, Exit, Fiber, Layer, Option, Ref } from "effect"
import * as Socket from "effect/socket/Socket"
import * as Fs from "node:fs"
import * as Https from "node:https"
import * as Path from "node:path"
import * as Argument from "../src/Argument.ts"
import * as Box from "../src/Box.ts"
import * as Command from "../src/Command.ts"
import * as Connection from "../src/Connection.ts"
import * as ConnectionInfo from "../src/ConnectionInfo.ts"
import * as Responders from "../src/Responders.ts"
import * as Server from "../src/Server.ts"
import { TLS_ERROR } from "../src/StartTLS.ts"
import * as WebSocketClient from "../src/WebSocketClient.ts"
import * as WebSocketServer from "../src/WebSocketServer.ts"
import { concatBytes } from "../src/internal/bytes.ts"
import { fromWebSocket } from "../src/internal/websocket.ts"
import { CallBack, clientHandlers, Delay, Echo, makeObserved, responders, serverHandlers, Sum, WaitForever } from "./support/commands.ts"
import { makeTestCerts } from "./support/certs.ts"
import { killRemaining, node, root, run } from "./support/process.ts"
import { socketHandles } from "./support/transports.ts"
import { endedWithin, eventually } from "./support/wait.ts"

/** Answers with the transport facts of the connection it arrived on. */
const WhereAmI = Command.make("WhereAmI", {
  response: { transport: Argument.Unicode, remote: Argument.Unicode, tls: Argument.Boolean }
})
const whereAmI = Responders.handle(WhereAmI, () =>
  Effect.map(ConnectionInfo.current, (s) => ({ transport: s.transport, remote: s.remoteAddress ?? "", tls: s.tls })))

const constructors = [
  ["global WebSocket (browser-like)", Socket.layerWebSocketConstructorGlobal],
  ["ws package", NodeWS.layerWebSocketConstructor]
] as const

const serve = (options?: WebSocketServer.ServeOptions) =>
  Effect.gen(function*() {
    const observed = yield* makeObserved
    const server = yield* WebSocketServer.make({ path: "/amp", ...options }).pipe(
      Effect.provideService(Responders.Responders, responders(...serverHandlers(observed), whereAmI)),
      Effect.orDie
    )
    return { server, observed }
  })

const connectWith = (layer: Layer.Layer<Socket.WebSocketConstructor>, url: string, options?: WebSocketClient.ConnectOptions) =>
  WebSocketClient.connect(url, options).pipe(
    Effect.provideService(Responders.Responders, responders(...clientHandlers)),
    Effect.provide(layer)
  )

/** A raw `ws` client: sends what it is told as binary messages and collects what it receives. */
const rawPeer = (url: string) =>
  Effect.gen(function*() {
    const received: Array<Uint8Array> = []
    let closed: { code: number; reason: string } | undefined
    const ws = yield* Effect.acquireRelease(
      Effect.callback<InstanceType<typeof NodeWS.WebSocket>>((resume) => {
        const ws = new NodeWS.WebSocket(url)
        ws.binaryType = "nodebuffer"
        ws.on("message", (data: Buffer) => received.push(new Uint8Array(data)))
        ws.on("close", (code: number, reason: Buffer) => {
          closed = { code, reason: reason.toString() }
        })
        ws.once("open", () => resume(Effect.succeed(ws)))
        ws.once("error", (e) => resume(Effect.die(e)))
      }),
      (ws) => Effect.sync(() => ws.terminate())
    )
    const boxes = () => {
      const out: Array<Box.Box> = []
      Box.makeDecoder().feed(concatBytes(received), out)
      return out
    }
    return {
      send: (bytes: Uint8Array) => Effect.sync(() => ws.send(bytes)),
      boxes,
      messages: () => received.length,
      closed: () => closed,
      waitBoxes: (n: number) => Effect.andThen(eventually(`${n} boxes`, Effect.sync(() => boxes().length >= n)), Effect.sync(boxes))
    }
  })

const text = (box: Box.Box, key: string) => {
  const v = box.get(key)
  return v === undefined ? undefined : Buffer.from(v).toString("latin1")
}

afterAll(() => killRemaining())

describe("WebSocket", () => {
  for (const [name, layer] of constructors) {
    it.live(`${name}: calls both ways, many calls, large values, connection info`, () =>
      Effect.gen(function*() {
        const { server } = yield* serve()
        assert.match(server.url, /^ws:\/\/127\.0\.0\.1:\d+\/amp$/)
        const client = yield* connectWith(layer, server.url)
        const amp = client.dispatcher
        assert.strictEqual((yield* amp.callRemote(Sum, { a: 40n, b: 2n })).total, 42n)
        // the server calls the client back (AMP is symmetric) while the client's call waits
        assert.strictEqual((yield* amp.callRemote(CallBack, { a: 1n, b: 2n })).total, 30n)
        const totals = yield* Effect.forEach(
          Array.from({ length: 500 }, (_, i) => i),
          (i) => Effect.map(amp.callRemote(Sum, { a: BigInt(i + 100), b: 1n }), (r) => r.total),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(totals, Array.from({ length: 500 }, (_, i) => BigInt(i + 101)))
        const big = new Uint8Array(65_535).map((_, i) => i * 7)
        const echoes = yield* Effect.forEach([1, 2, 3, 4], () => amp.callRemote(Echo, { data: big }), { concurrency: 4 })
        for (const e of echoes) assert.deepStrictEqual(e.data, big)
        const where = yield* amp.callRemote(WhereAmI, {})
        assert.strictEqual(where.transport, "websocket")
        assert.match(where.remote, /^127\.0\.0\.1:\d+$/)
        assert.isFalse(where.tls)
        const info = yield* client.info.get
        assert.strictEqual(info.transport, "websocket")
        assert.strictEqual(info.remoteAddress, server.url)
      }).pipe(Effect.scoped), 20_000)
  }

  it.live("a box split over one message per byte, and several boxes in one message, are parsed", () =>
    Effect.gen(function*() {
      const { server } = yield* serve()
      const peer = yield* rawPeer(server.url)
      const request = (tag: string, a: number) =>
        Box.encodeUnsafe(
          new Map([
            ["_command", Buffer.from("Sum")],
            ["_ask", Buffer.from(tag)],
            ["a", Buffer.from(String(a))],
            ["b", Buffer.from("1")]
          ])
        )
      const first = request("1", 10)
      for (const byte of first) yield* peer.send(Uint8Array.of(byte))
      yield* peer.send(concatBytes([request("2", 20), request("3", 30)]))
      const boxes = yield* peer.waitBoxes(3)
      assert.deepStrictEqual(
        boxes.map((b) => [text(b, "_answer"), text(b, "total")]),
        [["1", "11"], ["2", "21"], ["3", "31"]]
      )
    }).pipe(Effect.scoped), 20_000)

  it.live("a value larger than one write arrives in several messages and is reassembled", () =>
    Effect.gen(function*() {
      const { server } = yield* serve()
      const peer = yield* rawPeer(server.url)
      const big = new Uint8Array(65_535).fill(0x61)
      const before = peer.messages()
      yield* peer.send(
        Box.encodeUnsafe(new Map([["_command", Buffer.from("Echo")], ["_ask", Buffer.from("1")], ["data", big]]))
      )
      const [answer] = yield* peer.waitBoxes(1)
      assert.deepStrictEqual(answer!.get("data"), big)
      // the large value went out as its own message (gather write), not copied into one buffer
      assert.isAtLeast(peer.messages() - before, 2)
    }).pipe(Effect.scoped), 20_000)

  it.live("startTLS fails with a AmpTlsError that says to use wss:, and the connection stays usable", () =>
    Effect.gen(function*() {
      const { server } = yield* serve({ tls: { key: "k", cert: "c" } })
      const client = yield* connectWith(Socket.layerWebSocketConstructorGlobal, server.url)
      const error = yield* Effect.flip(client.startTLS())
      assert.strictEqual(error._tag, "AmpTlsError")
      assert.include(error.message, "wss:")
      assert.include(error.message, "StartTLS is not possible over a WebSocket")
      assert.strictEqual((yield* client.dispatcher.callRemote(Sum, { a: 1n, b: 2n })).total, 3n)
      assert.isFalse((yield* client.info.get).tls)
    }).pipe(Effect.scoped), 20_000)

  it.live("a peer's StartTLS is refused with TLS_ERROR and the wss: hint", () =>
    Effect.gen(function*() {
      const { server } = yield* serve({ tls: { key: "k", cert: "c" } })
      const peer = yield* rawPeer(server.url)
      yield* peer.send(Box.encodeUnsafe(new Map([["_command", Buffer.from("StartTLS")], ["_ask", Buffer.from("1")]])))
      const [answer] = yield* peer.waitBoxes(1)
      assert.strictEqual(text(answer!, "_error"), "1")
      assert.strictEqual(text(answer!, "_error_code"), TLS_ERROR)
      assert.include(text(answer!, "_error_description"), "wss:")
      // still AMP, in plain text
      yield* peer.send(
        Box.encodeUnsafe(new Map([["_command", Buffer.from("Sum")], ["_ask", Buffer.from("2")], ["a", Buffer.from("2")], ["b", Buffer.from("2")]]))
      )
      const boxes = yield* peer.waitBoxes(2)
      assert.strictEqual(text(boxes[1]!, "total"), "4")
    }).pipe(Effect.scoped), 20_000)

  it.live("the server closing fails outstanding calls with AmpConnectionLost, and the client ends", () =>
    Effect.gen(function*() {
      const { server, observed } = yield* serve()
      const client = yield* connectWith(Socket.layerWebSocketConstructorGlobal, server.url)
      const call = yield* Effect.forkChild(Effect.flip(client.dispatcher.callRemote(WaitForever, {})))
      yield* eventually("the handler started", Effect.map(Ref.get(observed.waitStarted), (n) => n === 1))
      yield* server.shutdown()
      const error = yield* Fiber.join(call)
      assert.strictEqual(error._tag, "AmpConnectionLost")
      const end = yield* client.ended.pipe(Effect.timeout(5_000))
      assert.isFalse(end.local)
      assert.strictEqual((yield* Effect.flip(client.dispatcher.callRemote(Sum, { a: 1n, b: 2n })))._tag, "AmpConnectionLost")
      yield* eventually("server connections 0", Effect.map(server.connections, (n) => n === 0))
    }).pipe(Effect.scoped), 20_000)

  it.live("a graceful server close lets an in-flight answer out", () =>
    Effect.gen(function*() {
      const { server } = yield* serve()
      const client = yield* connectWith(Socket.layerWebSocketConstructorGlobal, server.url)
      const call = yield* Effect.forkChild(client.dispatcher.callRemote(Delay, { ms: 200n }))
      yield* Effect.sleep(50)
      yield* server.shutdown({ graceful: true })
      const answer = yield* Effect.exit(Fiber.join(call))
      assert.isTrue(Exit.isSuccess(answer), String(answer))
      const end = yield* client.ended.pipe(Effect.timeout(5_000))
      assert.strictEqual(end.reason, "closed by peer")
    }).pipe(Effect.scoped), 20_000)

  for (const [name, layer] of constructors) {
    it.live(`${name}: connect failures are typed ConnectError`, () =>
      Effect.gen(function*() {
        const { server } = yield* serve()
        const port = server.address._tag === "Tcp" ? server.address.port : 0
        const wrongPath = yield* Effect.flip(connectWith(layer, `ws://127.0.0.1:${port}/elsewhere`))
        assert.strictEqual(wrongPath._tag, "ConnectError")
        assert.strictEqual(wrongPath.address, `ws://127.0.0.1:${port}/elsewhere`)
        // handshake headers: Node constructors send them; a browser-like one cannot, and says so (typed)
        const withHeaders = yield* Effect.exit(Effect.scoped(connectWith(layer, server.url, { headers: { authorization: "Bearer x" } })))
        if (layer === NodeWS.layerWebSocketConstructor) assert.isTrue(Exit.isSuccess(withHeaders), String(withHeaders))
        else assert.strictEqual(Option.getOrUndefined(Exit.findErrorOption(withHeaders))?._tag, "ConnectError")
        yield* server.shutdown()
        const refused = yield* Effect.flip(connectWith(layer, `ws://127.0.0.1:${port}/amp`, { openTimeout: "3 seconds" }))
        assert.strictEqual(refused._tag, "ConnectError")
        const badUrl = yield* Effect.flip(connectWith(layer, "http://127.0.0.1:1/amp"))
        assert.include(badUrl.message, "expected a ws: or wss: URL")
        const notUrl = yield* Effect.flip(connectWith(layer, "not a url"))
        assert.include(notUrl.message, "not a valid URL")
      }).pipe(Effect.scoped), 20_000)
  }

  it.live("a taken port is a ServeError; a server that does not speak WebSocket is a ConnectError", () =>
    Effect.gen(function*() {
      const { server } = yield* serve()
      const port = server.address._tag === "Tcp" ? server.address.port : 0
      const taken = yield* Effect.flip(
        WebSocketServer.make({ port }).pipe(Effect.provideService(Responders.Responders, responders()))
      )
      assert.strictEqual(taken._tag, "ServeError")
      assert.include(taken.message, `cannot listen on 127.0.0.1:${port}: listen EADDRINUSE`)
      const tcp = yield* Server.make({ port: 0 }).pipe(
        Effect.provideService(Responders.Responders, responders(...clientHandlers)),
        Effect.orDie
      )
      const tcpPort = tcp.address._tag === "Tcp" ? tcp.address.port : 0
      for (const [, layer] of constructors) {
        const error = yield* Effect.flip(Effect.scoped(connectWith(layer, `ws://127.0.0.1:${tcpPort}/`, { openTimeout: "2 seconds" })))
        assert.strictEqual(error._tag, "ConnectError")
      }
    }).pipe(Effect.scoped), 20_000)

  it.live("maxConnections: a connection over the limit is closed at once (1013)", () =>
    Effect.gen(function*() {
      const { server } = yield* serve({ maxConnections: 1 })
      const first = yield* connectWith(Socket.layerWebSocketConstructorGlobal, server.url)
      yield* eventually("first served", Effect.map(server.connections, (n) => n === 1))
      const peer = yield* rawPeer(server.url)
      yield* eventually("second closed", Effect.sync(() => peer.closed() !== undefined))
      assert.strictEqual(peer.closed()!.code, 1013)
      assert.isFalse(yield* endedWithin(first, 20))
      assert.strictEqual((yield* first.dispatcher.callRemote(Sum, { a: 1n, b: 1n })).total, 2n)
    }).pipe(Effect.scoped), 20_000)

  it.live("closing the scopes leaves no socket open", () =>
    Effect.gen(function*() {
      const before = socketHandles()
      yield* Effect.gen(function*() {
        const { server } = yield* serve()
        for (const [, layer] of constructors) {
          const client = yield* connectWith(layer, server.url)
          yield* client.dispatcher.callRemote(Sum, { a: 1n, b: 1n })
          const call = yield* Effect.forkChild(Effect.ignore(client.dispatcher.callRemote(WaitForever, {})))
          yield* Effect.sleep(10)
          void call
        }
        assert.strictEqual(yield* server.connections, 2)
      }).pipe(Effect.scoped)
      yield* eventually(
        "socket handles back to the count before",
        Effect.sync(() => {
          const now = socketHandles()
          return now.TCPSocketWrap <= before.TCPSocketWrap && now.TCPServerWrap <= before.TCPServerWrap
        })
      )
    }), 20_000)

  it.live("browser-like: the client runs with every Node built-in module replaced by an empty stub", () =>
    Effect.gen(function*() {
      const { server } = yield* serve()
      const result = yield* Effect.promise(() =>
        run(node, [Path.join(root, "test", "support", "browser-client.ts"), server.url], { timeoutMillis: 60_000 })
      )
      const context = `\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`
      assert.strictEqual(result.code, 0, context)
      const lines = result.stdout.trim().split("\n")
      assert.deepStrictEqual(lines.slice(0, 4), ["Sum: 42", "CallBack: 30", "Echo: same bytes", "StartTLS: AmpTlsError"], context)
      // what a bundler would have to stub for a browser build (imported, never used on this path)
      const stubbed = lines[4]!.replace("stubbed: ", "").split(",")
      assert.includeMembers(stubbed, ["node:tls", "node:net"], context)
    }).pipe(Effect.scoped), 70_000)

  it("the client modules import no Node module themselves (browser-safe)", () => {
    for (const file of ["WebSocketClient.ts", "Reconnecting.ts", "internal/websocket.ts"]) {
      const source = Fs.readFileSync(Path.join(import.meta.dirname, "..", "src", file), "utf8")
      const imports = [...source.matchAll(/^import[^"]*"([^"]+)"/gm)].map((m) => m[1]!)
      assert.isAbove(imports.length, 0, file)
      for (const spec of imports) {
        assert.notMatch(spec, /^node:|^@effect\/platform-node|^ws$/, `${file} imports ${spec}`)
      }
    }
  })
})

describe("WebSocket backpressure", () => {
  it.live("a peer that stops reading: the server stops reading too instead of buffering answers", () =>
    Effect.gen(function*() {
      let handled = 0
      const Counted = Command.make("Counted", { arguments: { data: Argument.String }, response: { data: Argument.String } })
      const server = yield* WebSocketServer.make({
        path: "/amp",
        sendHighWaterMark: 256 * 1024,
        maxQueuedBoxes: 4,
        maxConcurrentHandlers: 4
      }).pipe(
        Effect.provideService(
          Responders.Responders,
          responders(Responders.handle(Counted, ({ data }) => Effect.sync(() => (handled++, { data }))))
        ),
        Effect.orDie
      )
      const decoder = Box.makeDecoder()
      let answers = 0
      const ws = yield* Effect.acquireRelease(
        Effect.callback<InstanceType<typeof NodeWS.WebSocket>>((resume) => {
          const ws = new NodeWS.WebSocket(server.url)
          ws.on("message", (data: Buffer) => {
            const out: Array<Box.Box> = []
            decoder.feed(new Uint8Array(data), out)
            answers += out.length
          })
          ws.once("open", () => resume(Effect.succeed(ws)))
          ws.once("error", (e) => resume(Effect.die(e)))
        }),
        (ws) => Effect.sync(() => ws.terminate())
      )
      ws.pause() // we read nothing from now on
      const value = new Uint8Array(60_000).fill(0x62)
      const count = 300 // 18 MB of answers
      for (let i = 1; i <= count; i++) {
        ws.send(Box.encodeUnsafe(new Map([["_command", Buffer.from("Counted")], ["_ask", Buffer.from(i.toString(16))], ["data", value]])))
      }
      yield* Effect.sleep(500)
      const whilePaused = handled
      assert.isBelow(whilePaused, 100, `handled ${whilePaused} of ${count} while the peer read nothing`)
      ws.resume()
      yield* eventually("every answer", Effect.sync(() => answers === count), 15_000)
      assert.strictEqual(handled, count)
    }).pipe(Effect.scoped), 30_000)
})

describe("wss:", () => {
  it.live("a wss: URL gives TLS (here with a private CA through a custom WebSocketConstructor)", () =>
    Effect.gen(function*() {
      const certs = yield* Effect.acquireRelease(Effect.sync(makeTestCerts), (c) => Effect.sync(() => c.cleanup()))
      const pem = (path: string) => Fs.readFileSync(path, "utf8")
      // a TLS WebSocket endpoint (our connection core over `ws` on an https server)
      const https = Https.createServer({ key: pem(certs.serverKey), cert: pem(certs.serverCert) })
      const wss = new NodeWS.WebSocketServer({ server: https, path: "/amp" })
      const context = yield* Effect.context<never>()
      const serverResponders = responders(...serverHandlers(yield* makeObserved))
      const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
      wss.on("connection", (ws) => {
        const serve = Effect.gen(function*() {
          const socket = yield* fromWebSocket(Effect.succeed(ws))
          const connection = yield* Connection.make(socket, { info: { transport: "websocket", tls: true } }, {
            role: "server",
            noTlsReason: WebSocketClient.NO_STARTTLS
          })
          yield* connection.ended
        }).pipe(Effect.scoped, Effect.provideService(Responders.Responders, serverResponders), Effect.ignore)
        fibers.push(Effect.runForkWith(context)(serve))
      })
      yield* Effect.callback<void>((resume) => {
        https.listen(0, "127.0.0.1", () => resume(Effect.void))
      })
      yield* Effect.addFinalizer(() =>
        Effect.andThen(
          Effect.forEach(fibers, Fiber.interrupt, { discard: true }),
          Effect.callback<void>((resume) => {
            wss.close()
            https.closeAllConnections()
            https.close(() => resume(Effect.void))
          })
        )
      )
      const port = (https.address() as { port: number }).port
      const ca = pem(certs.ca)
      const PrivateCa = Layer.succeed(Socket.WebSocketConstructor)((url, protocols) =>
        new NodeWS.WebSocket(url, typeof protocols === "object" && !Array.isArray(protocols) ? undefined : protocols, { ca })
      )
      const client = yield* connectWith(PrivateCa, `wss://localhost:${port}/amp`)
      assert.strictEqual((yield* client.dispatcher.callRemote(Sum, { a: 20n, b: 22n })).total, 42n)
      assert.isTrue((yield* client.info.get).tls)
      // already TLS: StartTLS is refused without sending anything
      assert.strictEqual((yield* Effect.flip(client.startTLS()))._tag, "OnlyOneTLS")
      // an unknown CA is refused: typed, not plaintext
      const refused = yield* Effect.flip(Effect.scoped(connectWith(NodeWS.layerWebSocketConstructor, `wss://localhost:${port}/amp`)))
      assert.strictEqual(refused._tag, "ConnectError")
    }).pipe(Effect.scoped), 30_000)
})
