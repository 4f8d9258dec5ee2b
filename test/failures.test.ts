/**
 * Never silent: a handler that throws instead of returning an Effect (typed, raw or switch responder) is
 * a defect answered `UNKNOWN`, then the connection closes; a defect in the read path ends the connection
 * with a typed cause and fails every outstanding call; every defect and every `UNKNOWN` we send is logged
 * with its cause through Effect's logger (the user's Logger layers decide where it goes); protocol and
 * framing errors are logged at warning level. Over real TCP, with a collecting Logger.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Fiber, Logger, Scope } from "effect"
import * as Socket from "effect/socket/Socket"
import { AmpError, Argument, Client, Command, Connection, MemorySocket, ProtocolSwitch, Responders, Server } from "../src/index.ts"
import { eventually } from "./support/wait.ts"

interface Line {
  readonly level: string
  readonly message: string
  readonly cause: string
}
const collecting = () => {
  const lines: Array<Line> = []
  const logger = Logger.make((o) => {
    const message = Array.isArray(o.message) ? o.message.map(String).join(" ") : String(o.message)
    lines.push({ level: o.logLevel, message, cause: Cause.pretty(o.cause) })
  })
  return { lines, layer: Logger.layer([logger]) }
}

const Sum = Command.make("Sum", { arguments: { a: Argument.Integer, b: Argument.Integer }, response: { total: Argument.Integer } })
const Throws = Command.make("Throws", { response: { x: Argument.Integer } })
const Dies = Command.make("Dies", { response: { x: Argument.Integer } })
const SwitchThrows = ProtocolSwitch.make("SwitchThrows")

const handlers = Responders.layer(
  Responders.handle(Sum, ({ a, b }) => Effect.succeed({ total: a + b })),
  Responders.handle(Throws, (): Effect.Effect<{ x: bigint }> => {
    throw new Error("thrown, not returned")
  }),
  Responders.handle(Dies, () => Effect.die(new RangeError("died inside the effect"))),
  Responders.raw("RawThrows", () => {
    throw new TypeError("raw responder threw")
  }),
  ProtocolSwitch.handle(SwitchThrows, (): Effect.Effect<ProtocolSwitch.InnerProtocol> => {
    throw new Error("switch responder threw")
  })
)

/** A server (with the collecting logger) and a connected client. */
const setup = Effect.gen(function*() {
  const log = collecting()
  const server = yield* Server.make({ port: 0 }).pipe(Effect.provide(handlers), Effect.provide(log.layer))
  const connect = Client.connect({ port: server.port }).pipe(Effect.provide(Responders.empty))
  return { log, server, connect, client: yield* connect }
})

const ascii = (s: string): Array<number> => [...s].map((c) => c.charCodeAt(0))

const expectUnknown = (error: { readonly _tag: string }) => {
  assert.strictEqual(error._tag, "UnknownRemoteError")
  assert.strictEqual((error as AmpError.UnknownRemoteError).code, "UNKNOWN")
}

describe("a handler that throws or dies", () => {
  it.live("a typed handler that throws: UNKNOWN, the connection closes, the defect is logged with the command", () =>
    Effect.gen(function*() {
      const { client, log, server } = yield* setup
      expectUnknown(yield* Effect.flip(client.dispatcher.callRemote(Throws, {})))
      const end = yield* client.ended.pipe(Effect.timeout("5 seconds"))
      assert.strictEqual(end.reason, "closed by peer")
      yield* eventually("the server dropped it", Effect.map(server.connections, (n) => n === 0))
      const line = log.lines.find((l) => l.message.includes("Throws"))
      assert.isDefined(line, JSON.stringify(log.lines))
      assert.strictEqual(line!.level, "Error")
      assert.include(line!.message, "UNKNOWN")
      assert.include(line!.cause, "thrown, not returned")
    }).pipe(Effect.scoped), 15_000)

  it.live("a raw responder that throws: UNKNOWN and a close; the server serves others (it used to jam the connection)", () =>
    Effect.gen(function*() {
      const { client, connect, log, server } = yield* setup
      const error = yield* Effect.flip(client.dispatcher.callRemoteRaw("RawThrows", new Map()))
      expectUnknown(error)
      yield* client.ended.pipe(Effect.timeout("5 seconds"))
      yield* eventually("the server dropped it", Effect.map(server.connections, (n) => n === 0))
      assert.isTrue(log.lines.some((l) => l.level === "Error" && l.message.includes("RawThrows") && l.cause.includes("raw responder threw")))
      const other = yield* connect
      assert.strictEqual((yield* other.dispatcher.callRemote(Sum, { a: 1n, b: 2n })).total, 3n)
    }).pipe(Effect.scoped), 15_000)

  it.live("a switch responder that throws: UNKNOWN and a close, logged", () =>
    Effect.gen(function*() {
      const { client, log } = yield* setup
      expectUnknown(yield* Effect.flip(client.switchProtocol(SwitchThrows, {})))
      yield* client.ended.pipe(Effect.timeout("5 seconds"))
      assert.isTrue(log.lines.some((l) => l.message.includes("SwitchThrows") && l.cause.includes("switch responder threw")))
    }).pipe(Effect.scoped), 15_000)

  it.live("a handler that dies: UNKNOWN, close, and the cause in the log", () =>
    Effect.gen(function*() {
      const { client, log } = yield* setup
      expectUnknown(yield* Effect.flip(client.dispatcher.callRemote(Dies, {})))
      yield* client.ended.pipe(Effect.timeout("5 seconds"))
      assert.isTrue(log.lines.some((l) => l.level === "Error" && l.message.includes("Dies") && l.cause.includes("died inside the effect")))
    }).pipe(Effect.scoped), 15_000)

  it.live("undecodable arguments: UNKNOWN, and the log says which argument and why", () =>
    Effect.gen(function*() {
      const { client, log } = yield* setup
      const bad = new Map([["a", new TextEncoder().encode("notanumber")], ["b", new TextEncoder().encode("1")]])
      expectUnknown(yield* Effect.flip(client.dispatcher.callRemoteRaw("Sum", bad)))
      const line = log.lines.find((l) => l.message.includes("Sum"))
      assert.isDefined(line, JSON.stringify(log.lines))
      assert.include(line!.message, "bad argument 'a'")
      assert.include(line!.message, "notanumber")
    }).pipe(Effect.scoped), 15_000)
})

describe("protocol errors and the read path", () => {
  it.live("a protocol error from the peer is logged at warning level and ends the connection", () =>
    Effect.gen(function*() {
      const log = collecting()
      const [ours, theirs] = yield* MemorySocket.pair
      const connection = yield* Connection.make(ours).pipe(Effect.provide(Responders.empty), Effect.provide(log.layer))
      const writer = yield* Effect.flatMap(Scope.make(), (scope) => Scope.provide(theirs.writer, scope))
      yield* Effect.forkChild(Effect.scoped(Effect.flatMap(theirs.reader, (r) => r.pull)))
      // an answer for a tag nobody asked: a protocol error (Twisted: KeyError, connection dropped)
      yield* writer.write(new Uint8Array([0, 7, ...ascii("_answer"), 0, 2, ...ascii("99"), 0, 0]))
      const end = yield* connection.ended.pipe(Effect.timeout("5 seconds"))
      assert.strictEqual((end.cause as { _tag?: string })._tag, "AmpProtocolError")
      assert.isTrue(log.lines.some((l) => l.level === "Warn" && l.message.includes("unknown tag")), JSON.stringify(log.lines))
    }).pipe(Effect.scoped), 15_000)

  it.live("a defect in the read path ends the connection with it and fails every outstanding call", () =>
    Effect.gen(function*() {
      const log = collecting()
      const [ours, theirs] = yield* MemorySocket.pair
      let pulls = 0
      // a transport whose reader dies on its second pull (a bug below us), while a call is outstanding
      const faulty = Socket.make({
        reader: Effect.map(ours.reader, (reader) => ({
          ...reader,
          pull: Effect.suspend(() => ++pulls >= 2 ? Effect.die(new Error("reader exploded")) : reader.pull)
        })),
        writer: ours.writer
      })
      const connection = yield* Connection.make(faulty).pipe(Effect.provide(handlers), Effect.provide(log.layer))
      const call = yield* Effect.forkChild(connection.dispatcher.callRemote(Sum, { a: 1n, b: 2n }))
      const peerReader = yield* Effect.flatMap(Scope.make(), (scope) => Scope.provide(theirs.reader, scope))
      yield* peerReader.pull // our Sum arrived
      const writer = yield* Effect.flatMap(Scope.make(), (scope) => Scope.provide(theirs.writer, scope))
      // a Sum without _ask (handled, nothing answered): our reader's first pull
      yield* writer.write(
        new Uint8Array([0, 8, ...ascii("_command"), 0, 3, ...ascii("Sum"), 0, 1, ...ascii("a"), 0, 1, 0x31, 0, 1, ...ascii("b"), 0, 1, 0x31, 0, 0])
      )
      const error = yield* Effect.flip(Fiber.join(call)).pipe(Effect.timeout("5 seconds"))
      assert.strictEqual(error._tag, "AmpConnectionLost")
      const end = yield* connection.ended.pipe(Effect.timeout("5 seconds"))
      assert.include(end.reason, "defect in the read path")
      assert.isTrue(Cause.isCause(end.cause))
      assert.isTrue(log.lines.some((l) => l.level === "Error" && l.cause.includes("reader exploded")), JSON.stringify(log.lines))
    }).pipe(Effect.scoped), 15_000)
})
