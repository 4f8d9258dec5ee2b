/**
 * Wire-level behaviour of the dispatcher and connection, with a raw peer: a plain `node:net` socket on
 * 127.0.0.1 writing hand-made bytes and decoding what it reads. Then ports of the connection-level tests
 * of Twisted's test_amp.py (CommandDispatch, BinaryProtocol, AMP, CommandInheritance), each named after
 * the Twisted test it ports.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Ref } from "effect"
import * as Box from "../src/Box.ts"
import type * as Connection from "../src/Connection.ts"
import * as Responders from "../src/Responders.ts"
import {
  AddErrorsCommand,
  BaseCommand,
  BaseError,
  BrokenReturn,
  clientHandlers,
  Delay,
  Hello,
  makeObserved,
  Notify,
  NotifyAsked,
  NotifyBad,
  OtherError,
  serverHandlers,
  Sum,
  WaitForever,
  WTF
} from "./support/commands.ts"
import { bytesOf, clientToRawPeer, type RawPeer, rawToServer, tcp } from "./support/transports.ts"
import { endedWithin, eventually } from "./support/wait.ts"

const text = (bytes: Uint8Array | undefined): string | undefined =>
  bytes === undefined ? undefined : Buffer.from(bytes).toString("latin1")
/** A Python-style byte literal written as a JS string, one char per byte. */
const b = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "latin1"))
const received = (peer: RawPeer, from = 0) => Buffer.from(peer.received().subarray(from)).toString("latin1")

/** Our server (standard responders) and a raw client. */
const serverAndRawClient = (options?: Parameters<typeof rawToServer>[1]) =>
  Effect.gen(function*() {
    const observed = yield* makeObserved
    const { peer, server } = yield* rawToServer(serverHandlers(observed), options)
    return { observed, peer, server }
  })

// -------------------------------------------------------------------------------------------------
describe("responder side: exact bytes (spec §2.5)", () => {
  it.live("answer: Sum(12, 82) → {_answer: 1, total: 94}", () =>
    Effect.gen(function*() {
      const { peer } = yield* serverAndRawClient()
      yield* peer.write(b("\x00\x04_ask\x00\x011\x00\x08_command\x00\x03Sum\x00\x01a\x00\x0212\x00\x01b\x00\x0282\x00\x00"))
      yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      assert.strictEqual(received(peer), "\x00\x07_answer\x00\x011\x00\x05total\x00\x0294\x00\x00")
    }), 10_000)

  it.live("declared error box; the connection stays up", () =>
    Effect.gen(function*() {
      const { peer } = yield* serverAndRawClient()
      yield* peer.write(Box.make({ _command: "Sum", _ask: "14", a: "13", b: "1" }))
      yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      assert.strictEqual(
        received(peer),
        "\x00\x06_error\x00\x0214\x00\x0b_error_code\x00\x04OOPS\x00\x12_error_description\x00\rbad \xe2\x98\x83 thing\x00\x00"
      )
      yield* peer.write(Box.make({ _command: "Sum", _ask: "15", a: "1", b: "1" }))
      const boxes = yield* peer.waitForBoxes((boxes) => boxes.length === 2)
      assert.strictEqual(text(boxes[1]!.get("total")), "2")
      assert.isFalse(peer.isClosed())
    }), 10_000)

  it.live("fatal error box, then the connection is closed", () =>
    Effect.gen(function*() {
      const { peer } = yield* serverAndRawClient()
      yield* peer.write(Box.make({ _command: "Sum", _ask: "16", a: "666", b: "1" }))
      yield* peer.waitClosed()
      assert.strictEqual(
        received(peer),
        "\x00\x06_error\x00\x0216\x00\x0b_error_code\x00\x05FATAL\x00\x12_error_description\x00\x03die\x00\x00"
      )
      assert.isTrue(peer.gotEof())
    }), 10_000)

  for (const [what, args] of [
    ["undeclared exception", { a: "-1", b: "1" }],
    ["defect", { a: "-2", b: "1" }],
    ["bad argument bytes", { a: "abc", b: "1" }],
    ["missing required argument", { a: "1" }]
  ] as const) {
    it.live(`${what} → UNKNOWN box, then the connection is closed`, () =>
      Effect.gen(function*() {
        const { peer } = yield* serverAndRawClient()
        yield* peer.write(Box.make({ _command: "Sum", _ask: "1", ...args }))
        yield* peer.waitClosed()
        assert.strictEqual(
          received(peer),
          "\x00\x06_error\x00\x011\x00\x0b_error_code\x00\x07UNKNOWN\x00\x12_error_description\x00\rUnknown Error\x00\x00"
        )
      }), 10_000)
  }

  it.live("unknown command → UNHANDLED box; the connection stays up", () =>
    Effect.gen(function*() {
      const { peer } = yield* serverAndRawClient()
      yield* peer.write(Box.make({ _command: "WTF", _ask: "15" }))
      yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      assert.strictEqual(
        received(peer),
        "\x00\x06_error\x00\x0215\x00\x0b_error_code\x00\tUNHANDLED\x00\x12_error_description\x00\x19Unhandled Command: b'WTF'\x00\x00"
      )
      yield* peer.write(Box.make({ _command: "a\x00b", _ask: "16" }))
      const boxes = yield* peer.waitForBoxes((boxes) => boxes.length === 2)
      assert.strictEqual(text(boxes[1]!.get("_error_description")), "Unhandled Command: b'a\\x00b'")
      assert.isFalse(peer.isClosed())
    }), 10_000)

  it.live("an answer box too long to send: nothing is sent and the connection is dropped", () =>
    Effect.gen(function*() {
      const { peer } = yield* serverAndRawClient()
      yield* peer.write(Box.make({ _command: "Big", _ask: "1" }))
      yield* peer.waitClosed()
      assert.strictEqual(peer.received().length, 0)
    }), 10_000)
})

// -------------------------------------------------------------------------------------------------
describe("caller side: protocol violations by the peer", () => {
  const setup = Effect.gen(function*() {
    const { client, peer } = yield* clientToRawPeer(clientHandlers)
    const call = yield* Effect.forkChild(client.dispatcher.callRemote(Sum, { a: 1n, b: 2n }))
    yield* peer.waitForBoxes((boxes) => boxes.length === 1)
    return { client, peer, call }
  })

  const expectProtocolError = (
    client: Connection.Connection,
    call: Fiber.Fiber<unknown, { readonly _tag: string }>,
    reason: RegExp
  ) =>
    Effect.gen(function*() {
      const end = yield* client.ended.pipe(Effect.timeout(5_000))
      assert.isTrue(end.local)
      assert.strictEqual((end.cause as { _tag?: string })?._tag, "AmpProtocolError")
      assert.match(end.reason, reason)
      const error = yield* Effect.flip(Fiber.join(call)).pipe(Effect.timeout(5_000))
      assert.strictEqual(error._tag, "AmpConnectionLost")
      assert.strictEqual(yield* client.dispatcher.outstanding, 0)
    })

  it.live("an answer for an unknown tag closes the connection with AmpProtocolError and fails outstanding calls", () =>
    Effect.gen(function*() {
      const { call, client, peer } = yield* setup
      yield* peer.write(Box.make({ _answer: "99", total: "3" }))
      yield* expectProtocolError(client, call, /unknown tag b'99'/)
      yield* peer.waitClosed()
    }), 10_000)

  it.live("an error box for an unknown tag closes the connection", () =>
    Effect.gen(function*() {
      const { call, client, peer } = yield* setup
      yield* peer.write(Box.make({ _error: "7", _error_code: "X", _error_description: "y" }))
      yield* expectProtocolError(client, call, /unknown tag b'7'/)
    }), 10_000)

  for (const tag of ["01", "1 ", "+1", "0x1"]) {
    it.live(`an answer tagged ${JSON.stringify(tag)} is not the answer to call 1 (tags are matched byte for byte)`, () =>
      Effect.gen(function*() {
        const { call, client, peer } = yield* setup
        assert.strictEqual(new TextDecoder().decode(peer.boxes()[0]!.get("_ask")), "1")
        yield* peer.write(Box.make({ _answer: tag, total: "3" }))
        yield* expectProtocolError(client, call, /unknown tag/)
      }), 10_000)
  }

  it.live("tags are the call counter in lowercase hex: the 26th call is tagged 1a and its answer is matched", () =>
    Effect.gen(function*() {
      const { call, client, peer } = yield* setup
      const more = yield* Effect.forEach(Array.from({ length: 25 }, (_, i) => i), (i) =>
        Effect.forkChild(client.dispatcher.callRemote(Sum, { a: BigInt(i), b: 0n })))
      yield* peer.waitForBoxes((boxes) => boxes.length === 26)
      const tags = peer.boxes().map((box) => new TextDecoder().decode(box.get("_ask")))
      assert.deepStrictEqual(tags, Array.from({ length: 26 }, (_, i) => (i + 1).toString(16)))
      yield* peer.write(Box.make({ _answer: "1a", total: "24" }))
      assert.strictEqual((yield* Fiber.join(more[24]!).pipe(Effect.timeout(5_000))).total, 24n)
      yield* peer.write(Box.make({ _answer: "1", total: "3" }))
      assert.strictEqual((yield* Fiber.join(call).pipe(Effect.timeout(5_000))).total, 3n)
      assert.strictEqual(yield* client.dispatcher.outstanding, 24)
    }), 10_000)

  it.live("a duplicate answer (tag already answered) closes the connection", () =>
    Effect.gen(function*() {
      const { call, client, peer } = yield* setup
      const second = yield* Effect.forkChild(client.dispatcher.callRemote(Sum, { a: 5n, b: 5n }))
      yield* peer.waitForBoxes((boxes) => boxes.length === 2)
      yield* peer.write(Box.make({ _answer: "1", total: "3" }), Box.make({ _answer: "1", total: "3" }))
      assert.strictEqual((yield* Fiber.join(call).pipe(Effect.timeout(5_000))).total, 3n)
      yield* expectProtocolError(client, second, /unknown tag b'1'/)
    }), 10_000)

  for (const [what, bytes] of [
    ["a box with none of _command/_answer/_error", Box.encodeUnsafe(Box.make({ hello: "world" }))],
    ["the empty box", b("\x00\x00")],
    ["a box with _ask but no _command", Box.encodeUnsafe(Box.make({ _ask: "5", a: "1" }))]
  ] as const) {
    it.live(`${what} closes the connection`, () =>
      Effect.gen(function*() {
        const { call, client, peer } = yield* setup
        yield* peer.write(bytes)
        yield* expectProtocolError(client, call, /none of _command, _answer, _error/)
      }), 10_000)
  }

  it.live("an error box missing _error_code closes the connection", () =>
    Effect.gen(function*() {
      const { call, client, peer } = yield* setup
      yield* peer.write(Box.make({ _error: "1", _error_description: "no code" }))
      yield* expectProtocolError(client, call, /without _error_code/)
    }), 10_000)

  it.live("extra answer keys are ignored", () =>
    Effect.gen(function*() {
      const { call, peer } = yield* setup
      yield* peer.write(Box.make({ _answer: "1", total: "3", junk: "x", print: "ignored" }))
      assert.deepStrictEqual(yield* Fiber.join(call).pipe(Effect.timeout(5_000)), { total: 3n })
    }), 10_000)

  it.live("duplicate keys: the last value wins", () =>
    Effect.gen(function*() {
      const { call, peer } = yield* setup
      yield* peer.write(b("\x00\x07_answer\x00\x011\x00\x05total\x00\x011\x00\x05total\x00\x0294\x00\x00"))
      assert.strictEqual((yield* Fiber.join(call).pipe(Effect.timeout(5_000))).total, 94n)
    }), 10_000)

  it.live("a box with _answer and _command is treated only as an answer", () =>
    Effect.gen(function*() {
      const { call, client, peer } = yield* setup
      yield* peer.write(Box.make({ _answer: "1", _command: "Sum", _ask: "5", a: "1", b: "2", total: "3" }))
      assert.strictEqual((yield* Fiber.join(call).pipe(Effect.timeout(5_000))).total, 3n)
      yield* Effect.sleep(50)
      assert.strictEqual(peer.boxes().length, 1) // only our request: no answer to _ask 5
      assert.isFalse(yield* endedWithin(client, 10))
    }), 10_000)

  it.live("an undeclared error code keeps the real code (UnknownRemoteError)", () =>
    Effect.gen(function*() {
      const { call, client, peer } = yield* setup
      yield* peer.write(Box.make({ _error: "1", _error_code: "WEIRD", _error_description: b("\xff\xfeoops") }))
      const error = yield* Effect.flip(Fiber.join(call)).pipe(Effect.timeout(5_000))
      assert.strictEqual(error._tag, "UnknownRemoteError")
      assert.strictEqual((error as { code: string }).code, "WEIRD")
      assert.strictEqual((error as { description: string }).description, "\ufffd\ufffdoops")
      assert.isFalse(yield* endedWithin(client, 20))
    }), 10_000)

  it.live("a key-length prefix over 255 closes the connection; outstanding calls fail", () =>
    Effect.gen(function*() {
      const { call, client, peer } = yield* setup
      yield* peer.write(b("\x00\x01k\x00\x01v\x01\x00"))
      const end = yield* client.ended.pipe(Effect.timeout(5_000))
      assert.strictEqual((end.cause as { _tag?: string })?._tag, "FramingError")
      assert.match(end.reason, /key length 256/)
      const error = yield* Effect.flip(Fiber.join(call)).pipe(Effect.timeout(5_000))
      assert.strictEqual(error._tag, "AmpConnectionLost")
      assert.match((error as { reason: string }).reason, /key length 256/)
      yield* peer.waitClosed()
      assert.isTrue(peer.gotEof()) // a clean close, as Twisted's loseConnection
    }), 10_000)
})

// -------------------------------------------------------------------------------------------------
describe("responder side: framing and backpressure", () => {
  it.live("a key-length prefix over 255 closes after flushing what was queued", () =>
    Effect.gen(function*() {
      const { peer } = yield* serverAndRawClient()
      // the UNHANDLED answer is queued while reading the same chunk, before the bad prefix
      yield* peer.write(Box.make({ _command: "WTF", _ask: "1" }), b("\x01\x00"))
      yield* peer.waitClosed()
      assert.isTrue(peer.gotEof())
      const boxes = peer.boxes()
      assert.strictEqual(boxes.length, 1)
      assert.strictEqual(text(boxes[0]!.get("_error_code")), "UNHANDLED")
    }), 10_000)

  it.live("the box before an oversize prefix in the same chunk still gets its (async) answer", () =>
    Effect.gen(function*() {
      const { peer } = yield* serverAndRawClient()
      yield* peer.write(Box.make({ _command: "Sum", _ask: "1", a: "1", b: "2" }), b("\x01\x00"))
      yield* peer.waitClosed()
      // Twisted answers (its responder is synchronous) and then closes: the answer must not be lost
      const boxes = peer.boxes()
      assert.strictEqual(boxes.length, 1)
      assert.strictEqual(text(boxes[0]!.get("total")), "3")
    }), 10_000)

  it.live("backpressure: 2 handlers busy and a full 1 MiB command queue: the server stops reading", () =>
    Effect.gen(function*() {
      const { observed, peer } = yield* serverAndRawClient({ maxConcurrentHandlers: 2, maxQueuedCommandBytes: 1024 * 1024 })
      // 300 slow commands padded to ~60 KiB each: ~18 MB, far more than the socket buffers hold
      const pad = "p".repeat(60_000)
      const total = 300
      let written = 0
      for (let i = 1; i <= total; i++) {
        yield* peer.write(Box.make({ _command: "Gate", _ask: i.toString(16), n: String(i), pad }))
        written++
      }
      yield* eventually("2 handlers started", Effect.map(Ref.get(observed.gateStarted), (n) => n === 2))
      yield* Effect.sleep(300)
      // still only 2 handlers, and most of what we wrote is still waiting in our send buffer: not read
      assert.strictEqual(yield* Ref.get(observed.gateStarted), 2)
      assert.strictEqual(written, total)
      assert.isAbove(peer.socket.writableLength, 8 * 1024 * 1024)
      // release: every command is eventually handled and answered
      yield* Deferred.succeed(observed.gate, undefined)
      const boxes = yield* peer.waitForBoxes((boxes) => boxes.length === total, 20_000)
      assert.deepStrictEqual(
        boxes.map((box) => Number(text(box.get("n")))).sort((x, y) => x - y),
        Array.from({ length: total }, (_, i) => i + 1)
      )
      assert.strictEqual(yield* Ref.get(observed.gateStarted), total)
    }), 30_000)

  it.live("a box split into one-byte writes is decoded (test_receiveBoxStateMachine)", () =>
    Effect.gen(function*() {
      const { peer } = yield* serverAndRawClient()
      const bytes = bytesOf(Box.make({ _command: "Sum", _ask: "1", a: "20", b: "22" }))
      for (let i = 0; i < bytes.length; i++) {
        yield* peer.write(bytes.subarray(i, i + 1))
        if (i % 8 === 0) yield* Effect.sleep(1)
      }
      const boxes = yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      assert.strictEqual(text(boxes[0]!.get("total")), "42")
    }), 10_000)
})

// -------------------------------------------------------------------------------------------------
// Ports of twisted/test/test_amp.py (connection-level ones; argument-level ones live elsewhere)
describe("test_amp.py: CommandDispatchTests", () => {
  it.live("test_receivedAsk: the responder gets the box unchanged, _ask is echoed in _answer", () =>
    Effect.gen(function*() {
      const { peer } = yield* serverAndRawClient()
      yield* peer.write(Box.make({ _command: "Reflect", _ask: "test-command-id", hello: "world" }))
      const [answer] = yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      assert.strictEqual(text(answer!.get("_answer")), "test-command-id")
      assert.strictEqual(text(answer!.get("seen")), "_ask,_command,hello")
      assert.strictEqual(text(answer!.get("hello")), "world")
    }), 10_000)

  it.live("test_unhandledSerializationError: an unsendable answer drops the connection", () =>
    Effect.gen(function*() {
      const observed = yield* makeObserved
      const pair = yield* tcp.connect({ server: serverHandlers(observed) })
      const error = yield* Effect.flip(pair.client.dispatcher.callRemoteRaw("Big", new Map()))
      assert.strictEqual(error._tag, "AmpConnectionLost")
      yield* pair.client.ended.pipe(Effect.timeout(5_000))
    }), 10_000)

  it.live("test_callRemote: request box, then the answer's known keys (extra ignored)", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      const call = yield* Effect.forkChild(client.dispatcher.callRemote(Hello, { hello: "world" }))
      const [request] = yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      assert.deepStrictEqual(
        [...request!].map(([k, v]) => [k, text(v)]).sort(),
        [["_ask", "1"], ["_command", "Hello"], ["hello", "world"]]
      )
      yield* peer.write(Box.make({ hello: "yay", print: "ignored", _answer: "1", bogus: "x" }))
      assert.deepStrictEqual(yield* Fiber.join(call).pipe(Effect.timeout(5_000)), { hello: "yay", print: "ignored" })
    }), 10_000)
})

describe("test_amp.py: BinaryProtocolTests", () => {
  it.live("test_sendBoxInStartReceivingBoxes: a box sent right after connecting is written", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      yield* client.dispatcher.callRemoteRaw("foo", Box.make({ foo: "bar" }), { requiresAnswer: false })
      yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      assert.strictEqual(received(peer), "\x00\x08_command\x00\x03foo\x00\x03foo\x00\x03bar\x00\x00")
    }), 10_000)

  for (const [name, prefix] of [
    ["test_firstBoxFirstKeyExcessiveLength", ""],
    ["test_firstBoxSubsequentKeyExcessiveLength", "\x00\x01k\x00\x01v"],
    ["test_subsequentBoxFirstKeyExcessiveLength", "\x00\x08_command\x00\x06Notify\x00\x01n\x00\x011\x00\x00"]
  ] as const) {
    it.live(`${name}: a key prefix of 256 disconnects`, () =>
      Effect.gen(function*() {
        const { observed, peer } = yield* serverAndRawClient()
        yield* peer.write(b(prefix + "\x01\x00"))
        yield* peer.waitClosed()
        assert.isTrue(peer.gotEof())
        if (prefix.includes("Notify")) {
          yield* eventually("the box before the bad prefix was handled", Effect.map(Ref.get(observed.notified), (n) => n.length === 1))
        }
      }), 10_000)
  }

  it.live("test_excessiveKeyFailure: outstanding calls fail with the key-length reason", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      const call = yield* Effect.forkChild(client.dispatcher.callRemote(WaitForever, {}))
      yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      yield* peer.write(b("\x01\x00"))
      const error = yield* Effect.flip(Fiber.join(call)).pipe(Effect.timeout(5_000))
      assert.strictEqual(error._tag, "AmpConnectionLost")
      assert.match((error as { reason: string }).reason, /key length 256 is over 255/)
    }), 10_000)

  it.live("test_receiveBoxData: keys and values arrive intact", () =>
    Effect.gen(function*() {
      const { peer } = yield* serverAndRawClient()
      yield* peer.write(Box.make({ _command: "Reflect", _ask: "1", testKey: "valueTest", anotherKey: "anotherValue" }))
      const [answer] = yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      assert.strictEqual(text(answer!.get("testKey")), "valueTest")
      assert.strictEqual(text(answer!.get("anotherKey")), "anotherValue")
    }), 10_000)

  it.live("test_receiveLongerBoxData: a 65535-byte value is received intact without disconnecting", () =>
    Effect.gen(function*() {
      const { peer } = yield* serverAndRawClient()
      const value = new Uint8Array(65535).map((_, i) => i % 251)
      yield* peer.write(Box.make({ _command: "Reflect", _ask: "1", big: value }))
      const [answer] = yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      assert.deepStrictEqual(new Uint8Array(answer!.get("big")!), value)
      assert.isFalse(peer.isClosed())
    }), 10_000)

  it.live("test_connectionLostStopSendingBoxes: connection loss fails outstanding calls with the reason", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      const call = yield* Effect.forkChild(client.dispatcher.callRemote(WaitForever, {}))
      yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      yield* peer.destroy
      const error = yield* Effect.flip(Fiber.join(call)).pipe(Effect.timeout(5_000))
      assert.strictEqual(error._tag, "AmpConnectionLost")
      const end = yield* client.ended.pipe(Effect.timeout(5_000))
      assert.isFalse(end.local)
    }), 10_000)
})

describe("test_amp.py: AMPTests", () => {
  const setup = Effect.gen(function*() {
    const observed = yield* makeObserved
    const pair = yield* tcp.connect({ server: serverHandlers(observed), client: clientHandlers })
    return { observed, pair, amp: pair.client.dispatcher }
  })

  it.live("test_helloWorld / test_wireFormatRoundTrip: callRemoteRaw to a raw responder", () =>
    Effect.gen(function*() {
      const { amp } = yield* setup
      const answer = yield* amp.callRemoteRaw("Reflect", Box.make({ hello: "world" }))
      assert.strictEqual(text(answer.get("hello")), "world")
      assert.strictEqual(text(answer.get("seen")), "_ask,_command,hello")
    }), 10_000)

  it.live("test_helloWorldUnicode", () =>
    Effect.gen(function*() {
      const { amp } = yield* setup
      const r = yield* amp.callRemote(Hello, { hello: "world", from: "wor\u1234ld" })
      assert.strictEqual(r.print, "wor\u1234ld")
    }), 10_000)

  it.live("test_callRemoteStringRequiresAnswerFalse: succeeds with an empty box at once", () =>
    Effect.gen(function*() {
      const { amp, observed } = yield* setup
      const r = yield* amp.callRemoteRaw("Notify", Box.make({ n: "4" }), { requiresAnswer: false })
      assert.strictEqual(r.size, 0)
      yield* eventually("executed", Effect.map(Ref.get(observed.notified), (n) => n.length === 1))
    }), 10_000)

  it.live("test_unknownCommandLow / test_unknownCommandHigh: UnhandledCommand, the connection still works", () =>
    Effect.gen(function*() {
      const { amp } = yield* setup
      assert.strictEqual((yield* Effect.flip(amp.callRemoteRaw("WTF", new Map())))._tag, "UnhandledCommand")
      assert.strictEqual((yield* Effect.flip(amp.callRemote(WTF, {})))._tag, "UnhandledCommand")
      assert.strictEqual((yield* amp.callRemote(Sum, { a: 1n, b: 1n })).total, 2n)
    }), 10_000)

  it.live("test_brokenReturnValue: a response that cannot be encoded → UNKNOWN and close", () =>
    Effect.gen(function*() {
      const { amp, pair } = yield* setup
      const error = yield* Effect.flip(amp.callRemote(BrokenReturn, {}))
      assert.strictEqual(error._tag, "UnknownRemoteError")
      yield* pair.client.ended.pipe(Effect.timeout(5_000))
    }), 10_000)

  it.live("test_unknownArgument: extra wire keys are ignored by the responder", () =>
    Effect.gen(function*() {
      const { amp } = yield* setup
      const answer = yield* amp.callRemoteRaw("Sum", Box.make({ a: "2", b: "3", bonus: "I'm new" }))
      assert.strictEqual(text(answer.get("total")), "5")
    }), 10_000)

  it.live("test_keyTooLong: a 256-byte key fails locally (TooLong), nothing is sent, the tag is used up", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      const error = yield* Effect.flip(client.dispatcher.callRemoteRaw("hello", Box.make({ ["k".repeat(256)]: "v" })))
      assert.strictEqual(error._tag, "TooLong")
      assert.isTrue((error as Box.TooLong).isKey)
      assert.isTrue((error as Box.TooLong).isLocal)
      assert.match(error.message, /local key too long: 256/)
      yield* Effect.forkChild(client.dispatcher.callRemote(Sum, { a: 1n, b: 1n }))
      const [box] = yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      assert.strictEqual(text(box!.get("_ask")), "2")
      assert.strictEqual(yield* client.dispatcher.outstanding, 1)
    }), 10_000)

  it.live("test_valueTooLong: a 65536-byte value fails locally (TooLong with the key name)", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      const error = yield* Effect.flip(client.dispatcher.callRemoteRaw("hello", Box.make({ hello: new Uint8Array(65536) })))
      assert.strictEqual(error._tag, "TooLong")
      assert.isFalse((error as Box.TooLong).isKey)
      assert.strictEqual((error as Box.TooLong).keyName, "hello")
      assert.match(error.message, /local value b'hello' too long: 65536/)
      assert.strictEqual(yield* client.dispatcher.outstanding, 0)
      yield* Effect.sleep(30)
      assert.strictEqual(peer.received().length, 0)
    }), 10_000)

  it.live("test_helloWorldCommand", () =>
    Effect.gen(function*() {
      const { amp } = yield* setup
      assert.deepStrictEqual(yield* amp.callRemote(Hello, { hello: "world" }), { hello: "world|from=<none>|dashed=<none>" })
    }), 10_000)

  it.live("test_helloErrorHandling: the declared error arrives as its class, with its message", () =>
    Effect.gen(function*() {
      const { amp } = yield* setup
      const error = yield* Effect.flip(amp.callRemote(Sum, { a: 13n, b: 0n }))
      assert.strictEqual(error._tag, "Oops")
      assert.strictEqual(error.message, "bad \u2603 thing")
    }), 10_000)

  it.live("test_helloFatalErrorHandling: the fatal error arrives, then the connection closes", () =>
    Effect.gen(function*() {
      const { amp, pair } = yield* setup
      assert.strictEqual((yield* Effect.flip(amp.callRemote(Sum, { a: 666n, b: 0n })))._tag, "Fatal")
      yield* pair.client.ended.pipe(Effect.timeout(5_000))
      assert.strictEqual((yield* Effect.flip(amp.callRemote(Sum, { a: 1n, b: 0n })))._tag, "AmpConnectionLost")
    }), 10_000)

  it.live("test_helloNoErrorHandling: undeclared → UnknownRemoteError, the connection is dropped", () =>
    Effect.gen(function*() {
      const { amp, pair } = yield* setup
      assert.strictEqual((yield* Effect.flip(amp.callRemote(Sum, { a: -1n, b: 0n })))._tag, "UnknownRemoteError")
      yield* pair.client.ended.pipe(Effect.timeout(5_000))
      assert.strictEqual((yield* Effect.flip(amp.callRemote(Sum, { a: 1n, b: 0n })))._tag, "AmpConnectionLost")
    }), 10_000)

  it.live("test_lateAnswer: a pending call fails on disconnect; the responder finishing later is harmless", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      const call = yield* Effect.forkChild(client.dispatcher.callRemote(Delay, { ms: 10n }))
      yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      yield* peer.destroy
      assert.strictEqual((yield* Effect.flip(Fiber.join(call)).pipe(Effect.timeout(5_000)))._tag, "AmpConnectionLost")
      // and the responder side: our server's handler completing after the peer left
      const { observed, peer: raw } = yield* serverAndRawClient()
      yield* raw.write(Box.make({ _command: "Delay", _ask: "1", ms: "30" }))
      yield* eventually("handler started", Effect.map(Ref.get(observed.delayStarted), (n) => n === 1))
      yield* raw.destroy
      yield* Effect.sleep(60)
    }), 10_000)

  it.live("test_requiresNoAnswer: a no-answer command is executed by the peer", () =>
    Effect.gen(function*() {
      const { amp, observed } = yield* setup
      yield* amp.callRemote(Notify, { n: 9n })
      yield* eventually("executed", Effect.map(Ref.get(observed.notified), (n) => n.length === 1))
    }), 10_000)

  it.live("test_requiresNoAnswerFail: a declared error in a no-answer responder drops the connection", () =>
    Effect.gen(function*() {
      const { amp, pair } = yield* setup
      yield* amp.callRemote(Notify, { n: 13n })
      yield* pair.client.ended.pipe(Effect.timeout(5_000))
      assert.strictEqual((yield* Effect.flip(amp.callRemote(Hello, { hello: "x" })))._tag, "AmpConnectionLost")
    }), 10_000)

  it.live("test_requiresNoAnswerAfterFail: after the connection is lost a no-answer call fails with AmpConnectionLost", () =>
    Effect.gen(function*() {
      // Twisted returns None; here the call fails in the typed channel (nothing is sent)
      const { amp, pair } = yield* setup
      yield* pair.client.close()
      assert.strictEqual((yield* Effect.flip(amp.callRemote(Notify, { n: 1n })))._tag, "AmpConnectionLost")
    }), 10_000)

  it.live("test_noAnswerResponderBadAnswer: an unencodable result of a no-answer responder drops the connection", () =>
    Effect.gen(function*() {
      const { amp, pair } = yield* setup
      yield* amp.callRemote(NotifyBad, {})
      yield* pair.client.ended.pipe(Effect.timeout(5_000))
    }), 10_000)

  it.live("test_noAnswerResponderAskedForAnswer: the same name called with an answer is answered", () =>
    Effect.gen(function*() {
      const { amp } = yield* setup
      assert.deepStrictEqual(yield* amp.callRemote(NotifyAsked, { n: 2n }), {})
    }), 10_000)

  it.live("test_failEarlyOnArgSending: a missing required argument fails locally; nothing is sent", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      const error = yield* Effect.flip(client.dispatcher.callRemote(Hello, {} as { hello: string }))
      assert.strictEqual(error._tag, "AmpArgumentError")
      assert.strictEqual((error as { key: string }).key, "hello")
      yield* Effect.sleep(30)
      assert.strictEqual(peer.received().length, 0)
    }), 10_000)

  it.live("test_basicLiteralEmit: the request has exactly the given keys; omitted optionals are absent", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      yield* Effect.forkChild(client.dispatcher.callRemote(Hello, { hello: "aaa", "dashed-name": 5n }))
      const [box] = yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      assert.deepStrictEqual([...box!.keys()].sort(), ["_ask", "_command", "dashed-name", "hello"])
    }), 10_000)

  it.live("test_basicStructuredEmit: the responder gets the arguments; absent optionals are absent", () =>
    Effect.gen(function*() {
      const { amp } = yield* setup
      assert.deepStrictEqual(yield* amp.callRemote(Hello, { hello: "aaa", from: "me" }), {
        hello: "aaa|from=me|dashed=<none>",
        print: "me"
      })
    }), 10_000)
})

describe("test_amp.py: CommandInheritanceTests", () => {
  // the responder is registered for the "subclass" command (same wire name), as in Twisted's tests
  const setup = Effect.gen(function*() {
    const observed = yield* makeObserved
    const pair = yield* tcp.connect({
      server: [
        ...serverHandlers(observed),
        Responders.handle(AddErrorsCommand, ({ which }) =>
          which === 1n
            ? Effect.fail(new BaseError({ message: "base" }))
            : which === 2n
            ? Effect.fail(new OtherError({ message: "other" }))
            : Effect.succeed({}))
      ]
    })
    return pair.client.dispatcher
  })

  it.live("test_basicErrorPropagation: the base command's declared error propagates", () =>
    Effect.gen(function*() {
      const amp = yield* setup
      const error = yield* Effect.flip(amp.callRemote(BaseCommand, { which: 1n }))
      assert.strictEqual(error._tag, "BaseError")
      assert.strictEqual(error.message, "base")
    }), 10_000)

  it.live("test_inheritedErrorPropagation: a command inherits its base's errors", () =>
    Effect.gen(function*() {
      const amp = yield* setup
      const error = yield* Effect.flip(amp.callRemote(AddErrorsCommand, { which: 1n }))
      assert.strictEqual(error._tag, "BaseError")
      assert.strictEqual(error.message, "base")
    }), 10_000)

  it.live("test_inheritedErrorAddition: an added error (OTHER_INHERITED_ERROR) propagates", () =>
    Effect.gen(function*() {
      const amp = yield* setup
      const error = yield* Effect.flip(amp.callRemote(AddErrorsCommand, { which: 2n }))
      assert.strictEqual(error._tag, "OtherError")
      assert.strictEqual(error.message, "other")
      // the base command does not know OTHER_INHERITED_ERROR: it gets the real code as UnknownRemoteError
      const unknown = yield* Effect.flip(amp.callRemote(BaseCommand, { which: 2n }))
      assert.strictEqual(unknown._tag, "UnknownRemoteError")
      assert.strictEqual((unknown as { code: string }).code, "OTHER_INHERITED_ERROR")
    }), 10_000)

  it.live("test_additionWithOriginalError: a command that adds errors still maps the base's", () =>
    Effect.gen(function*() {
      const amp = yield* setup
      assert.strictEqual((yield* Effect.flip(amp.callRemote(AddErrorsCommand, { which: 1n })))._tag, "BaseError")
      assert.deepStrictEqual(yield* amp.callRemote(AddErrorsCommand, { which: 3n }), {})
    }), 10_000)
})
