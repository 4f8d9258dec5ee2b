/**
 * Protocol switches (Twisted's ProtocolSwitchCommand) over real TCP: both ends ours, and with a raw
 * peer to control exactly which bytes arrive together. Includes ports of test_amp.py's switch tests.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Ref, Schema, Scope } from "effect"
import type * as Socket from "effect/socket/Socket"
import * as Argument from "../src/Argument.ts"
import * as Box from "../src/Box.ts"
import * as Client from "../src/Client.ts"
import * as ProtocolSwitch from "../src/ProtocolSwitch.ts"
import * as Responders from "../src/Responders.ts"
import { clientHandlers, Delay, makeObserved, Refused, responders, serverHandlers, Sum } from "./support/commands.ts"
import { acceptConnections, clientToRawPeer, rawToServer, tcp } from "./support/transports.ts"
import { endedWithin, eventually } from "./support/wait.ts"

const enc = new TextEncoder()
const dec = new TextDecoder()
const text = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : Buffer.from(bytes).toString("latin1"))

const SwitchToEcho = ProtocolSwitch.make("Switch-Proto", {
  arguments: { name: Argument.Integer },
  errors: { REFUSED: Refused }
})
/** Twisted's test protocol name "test-proto" → 1, anything else refused. */
const ECHO = 1n
const GREETER = 2n
/** Writes before it ever asks for its reader (an unopened effect Socket would hold the write forever). */
const WRITER_FIRST = 3n

class InnerFailed extends Schema.TaggedError<InnerFailed>()("InnerFailed", { message: Schema.String }) {}

/** An open switched socket: read what arrived so far / until n bytes, write. Lives in the current scope. */
const open = (socket: Socket.Socket) =>
  Effect.gen(function*() {
    const reader = yield* socket.reader
    const writer = yield* socket.writer
    const chunks: Array<Uint8Array> = []
    let closed = false
    yield* Effect.forkScoped(
      Effect.gen(function*() {
        while (true) chunks.push(...(yield* reader.pull) as ReadonlyArray<Uint8Array>)
      }).pipe(Effect.ensuring(Effect.sync(() => {
        closed = true
      })), Effect.ignore)
    )
    const received = () => Buffer.concat(chunks).toString("latin1")
    return {
      write: (s: string | Uint8Array) => writer.write(typeof s === "string" ? enc.encode(s) : s),
      received,
      isClosed: () => closed,
      waitFor: (expected: string) =>
        Effect.gen(function*() {
          const deadline = Date.now() + 5_000
          while (received().length < expected.length && !closed) {
            if (Date.now() > deadline) break
            yield* Effect.sleep(2)
          }
          assert.strictEqual(received(), expected)
        }),
      waitClosed: Effect.gen(function*() {
        const deadline = Date.now() + 5_000
        while (!closed && Date.now() < deadline) yield* Effect.sleep(2)
        assert.isTrue(closed, "switched socket closed")
      })
    }
  })

interface InnerLog {
  readonly started: Ref.Ref<number>
  readonly interrupted: Ref.Ref<number>
  readonly received: Ref.Ref<string>
}

/**
 * The responder's inner protocols: ECHO echoes every chunk (and records it) until EOF; GREETER writes
 * "SERVER-HELLO" then echoes one chunk and ends.
 */
const switchHandler = (log: InnerLog) =>
  ProtocolSwitch.handle(SwitchToEcho, ({ name }) => {
    if (name === WRITER_FIRST) {
      return Effect.succeed<ProtocolSwitch.InnerProtocol<unknown>>(({ socket }) =>
        Effect.gen(function*() {
          const writer = yield* socket.writer
          yield* writer.write(enc.encode("WRITTEN-FIRST"))
          const reader = yield* socket.reader
          yield* writer.writeAll(yield* reader.pull)
        }).pipe(Effect.scoped))
    }
    if (name !== ECHO && name !== GREETER) return Effect.fail(new Refused({ message: `unknown protocol ${name}` }))
    const inner: ProtocolSwitch.InnerProtocol<unknown> = ({ socket }) =>
      Effect.gen(function*() {
        yield* Ref.update(log.started, (n) => n + 1)
        const reader = yield* socket.reader
        const writer = yield* socket.writer
        if (name === GREETER) {
          yield* writer.write(enc.encode("SERVER-HELLO"))
          const chunk = yield* reader.pull
          yield* Ref.update(log.received, (s) => s + chunk.map((c) => dec.decode(c as Uint8Array)).join(""))
          yield* writer.writeAll(chunk)
          return
        }
        while (true) {
          const chunk = yield* reader.pull
          yield* Ref.update(log.received, (s) => s + chunk.map((c) => dec.decode(c as Uint8Array)).join(""))
          yield* writer.writeAll(chunk)
        }
      }).pipe(
        Effect.scoped,
        Effect.onInterrupt(() => Ref.update(log.interrupted, (n) => n + 1))
      )
    return Effect.succeed(inner)
  })

const makeLog = Effect.gen(function*() {
  return {
    started: yield* Ref.make(0),
    interrupted: yield* Ref.make(0),
    received: yield* Ref.make("")
  } satisfies InnerLog
})

const setup = Effect.gen(function*() {
  const observed = yield* makeObserved
  const log = yield* makeLog
  const pair = yield* tcp.connect({
    server: [...serverHandlers(observed), switchHandler(log)],
    client: clientHandlers
  })
  return { observed, log, pair, client: pair.client }
})

describe("protocol switch, both ends ours", () => {
  it.live("switch to an echo protocol (test_protocolSwitch)", () =>
    Effect.gen(function*() {
      const { client, log } = yield* setup
      const switched = yield* client.switchProtocol(SwitchToEcho, { name: ECHO })
      const io = yield* open(switched.socket)
      yield* io.write("Success!")
      yield* io.waitFor("Success!")
      yield* io.write("No, really.  Success.")
      yield* io.waitFor("Success!No, really.  Success.")
      assert.strictEqual(yield* Ref.get(log.received), "Success!No, really.  Success.")
      assert.strictEqual(yield* Ref.get(log.started), 1)
    }), 10_000)

  it.live("an inner protocol may write before it opens its reader (no silent hang)", () =>
    Effect.gen(function*() {
      const { client } = yield* setup
      const switched = yield* client.switchProtocol(SwitchToEcho, { name: WRITER_FIRST })
      const io = yield* open(switched.socket)
      yield* io.waitFor("WRITTEN-FIRST")
      yield* io.write("then echo")
      yield* io.waitFor("WRITTEN-FIRSTthen echo")
    }), 10_000)

  it.live("after the switch callRemote fails with ProtocolSwitched", () =>
    Effect.gen(function*() {
      const { client } = yield* setup
      yield* client.switchProtocol(SwitchToEcho, { name: ECHO })
      const error = yield* Effect.flip(client.dispatcher.callRemote(Sum, { a: 1n, b: 1n }))
      assert.strictEqual(error._tag, "ProtocolSwitched")
      assert.strictEqual((yield* Effect.flip(client.dispatcher.callRemoteRaw("Sum", new Map())))._tag, "ProtocolSwitched")
    }), 10_000)

  it.live("test_doubleProtocolSwitch: a second switch fails with ProtocolSwitched", () =>
    Effect.gen(function*() {
      const { client } = yield* setup
      yield* client.switchProtocol(SwitchToEcho, { name: ECHO })
      assert.strictEqual((yield* Effect.flip(client.switchProtocol(SwitchToEcho, { name: ECHO })))._tag, "ProtocolSwitched")
    }), 10_000)

  it.live("refused switch (declared error) unlocks and AMP goes on (test_protocolSwitchFail)", () =>
    Effect.gen(function*() {
      const { client, log } = yield* setup
      const error = yield* Effect.flip(client.switchProtocol(SwitchToEcho, { name: 99n }))
      assert.strictEqual(error._tag, "Refused")
      assert.strictEqual(error.message, "unknown protocol 99")
      assert.strictEqual((yield* client.dispatcher.callRemote(Sum, { a: 2n, b: 3n })).total, 5n)
      assert.strictEqual(yield* Ref.get(log.started), 0)
      // and a later switch still works
      const io = yield* open((yield* client.switchProtocol(SwitchToEcho, { name: ECHO })).socket)
      yield* io.write("again")
      yield* io.waitFor("again")
    }), 10_000)

  it.live("the responder's inner protocol ending ends the connection on both sides", () =>
    Effect.gen(function*() {
      const { client, pair } = yield* setup
      const io = yield* open((yield* client.switchProtocol(SwitchToEcho, { name: GREETER })).socket)
      yield* io.waitFor("SERVER-HELLO")
      yield* io.write("bye")
      yield* io.waitFor("SERVER-HELLObye")
      yield* io.waitClosed
      yield* client.ended.pipe(Effect.timeout(5_000))
      yield* eventually("server side ended", Effect.map(pair.serverConnections, (n) => n === 0))
    }), 10_000)

  it.live("the initiator's switched socket closing ends the responder's inner protocol and connection", () =>
    Effect.gen(function*() {
      const { client, log, pair } = yield* setup
      yield* Effect.scoped(
        Effect.gen(function*() {
          const io = yield* open((yield* client.switchProtocol(SwitchToEcho, { name: ECHO })).socket)
          yield* io.write("x")
          yield* io.waitFor("x")
        })
      )
      // our writer's release ended the stream: the echo protocol sees EOF and ends
      yield* eventually("server side ended", Effect.map(pair.serverConnections, (n) => n === 0))
      yield* client.ended.pipe(Effect.timeout(5_000))
      assert.strictEqual(yield* Ref.get(log.received), "x")
    }), 10_000)

  it.live("a pending call of the initiator fails when the switch completes; late answers do not corrupt the stream (test_trafficAfterSwitch)", () =>
    Effect.gen(function*() {
      const { client, log } = yield* setup
      const pending = yield* Effect.forkChild(client.dispatcher.callRemote(Delay, { ms: 50n }))
      yield* eventually("call outstanding", Effect.map(client.dispatcher.outstanding, (n) => n === 1))
      const switched = yield* client.switchProtocol(SwitchToEcho, { name: ECHO })
      const error = yield* Effect.flip(Fiber.join(pending)).pipe(Effect.timeout(5_000))
      assert.isTrue(error._tag === "AmpConnectionLost" || error._tag === "ProtocolSwitched")
      const io = yield* open(switched.socket)
      yield* Effect.sleep(100) // the Delay responder finishes on the switched server: its answer is dropped
      yield* io.write("clean")
      yield* io.waitFor("clean")
      assert.strictEqual(yield* Ref.get(log.received), "clean")
    }), 10_000)

  it.live("closing the responder connection's scope interrupts the inner protocol", () =>
    Effect.gen(function*() {
      const log = yield* makeLog
      const serverScope = yield* Scope.make()
      const { accept, port } = yield* acceptConnections([switchHandler(log)])
      const client = yield* Client.connect({ port }).pipe(Effect.provideService(Responders.Responders, responders()))
      const fiber = yield* Effect.forkChild(Scope.provide(accept, serverScope))
      yield* client.switchProtocol(SwitchToEcho, { name: ECHO })
      yield* Fiber.join(fiber)
      yield* eventually("inner started", Effect.map(Ref.get(log.started), (n) => n === 1))
      yield* Scope.close(serverScope, Exit.void).pipe(Effect.timeout(5_000))
      assert.strictEqual(yield* Ref.get(log.interrupted), 1)
    }), 10_000)

  it.live("Server.shutdown interrupts inner protocols", () =>
    Effect.gen(function*() {
      const { client, log, pair } = yield* setup
      yield* client.switchProtocol(SwitchToEcho, { name: ECHO })
      yield* eventually("inner started", Effect.map(Ref.get(log.started), (n) => n === 1))
      yield* pair.shutdownServer().pipe(Effect.timeout(5_000))
      assert.strictEqual(yield* Ref.get(log.interrupted), 1)
      yield* client.ended.pipe(Effect.timeout(5_000))
    }), 10_000)
})

describe("protocol switch with a raw peer", () => {
  it.live("the initiator: bytes after the answer in the same write go to the inner protocol first", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      const switching = yield* Effect.forkChild(client.switchProtocol(SwitchToEcho, { name: ECHO }))
      const [request] = yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      assert.strictEqual(
        Buffer.from(peer.received()).toString("latin1"),
        "\x00\x04_ask\x00\x011\x00\x08_command\x00\x0cSwitch-Proto\x00\x04name\x00\x011\x00\x00"
      )
      yield* peer.write(Box.make({ _answer: text(request!.get("_ask"))! }), enc.encode("SERVER-HELLO\x00\x00TRAILING"))
      const switched = yield* Fiber.join(switching).pipe(Effect.timeout(5_000))
      const io = yield* open(switched.socket)
      yield* io.waitFor("SERVER-HELLO\x00\x00TRAILING")
      yield* peer.write(enc.encode("+more"))
      yield* io.waitFor("SERVER-HELLO\x00\x00TRAILING+more")
      yield* io.write("from-client")
      const deadline = Date.now() + 5_000
      while (!Buffer.from(peer.received()).toString("latin1").endsWith("from-client") && Date.now() < deadline) {
        yield* Effect.sleep(2)
      }
      assert.isTrue(Buffer.from(peer.received()).toString("latin1").endsWith("\x00\x00from-client"))
    }), 10_000)

  it.live("test_protocolSwitchEmptyBuffer: with no leftover the inner protocol starts with nothing", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      const switching = yield* Effect.forkChild(client.switchProtocol(SwitchToEcho, { name: ECHO }))
      yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      yield* peer.write(Box.make({ _answer: "1" }))
      const io = yield* open((yield* Fiber.join(switching).pipe(Effect.timeout(5_000))).socket)
      yield* Effect.sleep(30)
      assert.strictEqual(io.received(), "")
    }), 10_000)

  it.live("the responder: bytes after the switch command in the same write reach the inner protocol first", () =>
    Effect.gen(function*() {
      const log = yield* makeLog
      const { peer } = yield* rawToServer([switchHandler(log)])
      yield* peer.write(Box.make({ _command: "Switch-Proto", _ask: "1", name: "1" }), enc.encode("early bytes"))
      const expected = "\x00\x07_answer\x00\x011\x00\x00early bytes"
      const deadline = Date.now() + 5_000
      while (Buffer.from(peer.received()).toString("latin1").length < expected.length && Date.now() < deadline) {
        yield* Effect.sleep(2)
      }
      assert.strictEqual(Buffer.from(peer.received()).toString("latin1"), expected)
      assert.strictEqual(yield* Ref.get(log.received), "early bytes")
    }), 10_000)

  it.live("sends while a switch is pending fail with ProtocolSwitched; an error answer unlocks", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      const switching = yield* Effect.forkChild(client.switchProtocol(SwitchToEcho, { name: 99n }))
      yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      // test_protocolSwitchInvalidStates: locked → sends fail
      assert.strictEqual((yield* Effect.flip(client.dispatcher.callRemote(Sum, { a: 1n, b: 1n })))._tag, "ProtocolSwitched")
      assert.strictEqual((yield* Effect.flip(client.switchProtocol(SwitchToEcho, { name: ECHO })))._tag, "ProtocolSwitched")
      yield* peer.write(Box.make({ _error: "1", _error_code: "REFUSED", _error_description: "no" }))
      const error = yield* Effect.flip(Fiber.join(switching)).pipe(Effect.timeout(5_000))
      assert.strictEqual(error._tag, "Refused")
      // unlocked: AMP goes on
      const call = yield* Effect.forkChild(client.dispatcher.callRemote(Sum, { a: 1n, b: 1n }))
      const boxes = yield* peer.waitForBoxes((boxes) => boxes.length === 2)
      yield* peer.write(Box.make({ _answer: text(boxes[1]!.get("_ask"))!, total: "2" }))
      assert.strictEqual((yield* Fiber.join(call).pipe(Effect.timeout(5_000))).total, 2n)
    }), 10_000)

  it.live("interrupting switchProtocol before its answer closes the connection (its state is unknown)", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      const timedOut = yield* Effect.flip(client.switchProtocol(SwitchToEcho, { name: ECHO }).pipe(Effect.timeout(50)))
      assert.strictEqual(timedOut._tag, "TimeoutError")
      yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      const ended = yield* client.ended.pipe(Effect.timeout(5_000))
      assert.include(ended.reason, `${SwitchToEcho.name} was interrupted before its answer`)
      const error = yield* Effect.flip(client.dispatcher.callRemote(Sum, { a: 1n, b: 1n }))
      assert.include(["AmpConnectionLost", "ProtocolSwitched"], error._tag)
    }), 10_000)

  it.live("while a switch is pending, incoming commands are still dispatched, but their answers are dropped", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer(clientHandlers)
      const switching = yield* Effect.forkChild(client.switchProtocol(SwitchToEcho, { name: ECHO }))
      yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      const before = peer.received().length
      // the peer calls us meanwhile (Twisted: answered into the void), then answers the switch
      yield* peer.write(Box.make({ _command: "Sum", _ask: "1", a: "1", b: "2" }))
      yield* Effect.sleep(30)
      yield* peer.write(Box.make({ _answer: "1" }), enc.encode("inner"))
      const io = yield* open((yield* Fiber.join(switching).pipe(Effect.timeout(5_000))).socket)
      yield* io.waitFor("inner")
      yield* Effect.sleep(30)
      assert.strictEqual(peer.received().length, before) // no AMP answer leaked into the switched stream
    }), 10_000)

  it.live("test_protocolSwitchLoseConnection: the peer closing ends the inner stream and the connection", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      const switching = yield* Effect.forkChild(client.switchProtocol(SwitchToEcho, { name: ECHO }))
      yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      yield* peer.write(Box.make({ _answer: "1" }))
      const io = yield* open((yield* Fiber.join(switching).pipe(Effect.timeout(5_000))).socket)
      yield* peer.destroy
      yield* io.waitClosed
      const end = yield* client.ended.pipe(Effect.timeout(5_000))
      assert.isFalse(end.local)
    }), 10_000)

  it.live("the responder runs no other AMP box once it has switched", () =>
    Effect.gen(function*() {
      const log = yield* makeLog
      const observed = yield* makeObserved
      const { peer } = yield* rawToServer([...serverHandlers(observed), switchHandler(log)])
      // a Notify box right after the switch command: it belongs to the inner protocol, not to AMP
      const notify = Box.encodeUnsafe(Box.make({ _command: "Notify", n: "5" }))
      yield* peer.write(Box.make({ _command: "Switch-Proto", _ask: "1", name: "1" }), notify)
      yield* eventually("inner got the bytes", Effect.map(Ref.get(log.received), (s) => s.length === notify.length))
      assert.deepStrictEqual(yield* Ref.get(observed.notified), [])
    }), 10_000)
})

describe("misc", () => {
  it.live("a failing inner protocol ends the connection", () =>
    Effect.gen(function*() {
      const FailSwitch = ProtocolSwitch.make("FailSwitch")
      const observed = yield* makeObserved
      const pair = yield* tcp.connect({
        server: [
          ...serverHandlers(observed),
          ProtocolSwitch.handle(FailSwitch, () =>
            Effect.succeed(() => Effect.fail(new InnerFailed({ message: "inner blew up" }))))
        ]
      })
      const switched = yield* pair.client.switchProtocol(FailSwitch, {})
      const io = yield* open(switched.socket)
      yield* io.waitClosed
      yield* pair.client.ended.pipe(Effect.timeout(5_000))
      assert.isTrue(yield* endedWithin(pair.client, 10))
    }), 10_000)

  it.live("a switch handler that fails with an undeclared error → UNKNOWN, then the connection closes", () =>
    Effect.gen(function*() {
      const Boom = ProtocolSwitch.make("Boom")
      const observed = yield* makeObserved
      const gate = yield* Deferred.make<void>()
      const pair = yield* tcp.connect({
        server: [
          ...serverHandlers(observed),
          ProtocolSwitch.handle(Boom, () => Effect.andThen(Deferred.succeed(gate, undefined), Effect.die("boom")))
        ]
      })
      const error = yield* Effect.flip(pair.client.switchProtocol(Boom, {}))
      assert.strictEqual(error._tag, "UnknownRemoteError")
      yield* pair.client.ended.pipe(Effect.timeout(5_000))
    }), 10_000)
})
