/**
 * End to end: one suite of scenarios run over every transport (TCP on 127.0.0.1, a Unix domain socket,
 * the in-memory pair), then a few wire checks with a raw peer (tags, no `_ask` for notifications).
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Ref } from "effect"
import * as Argument from "../src/Argument.ts"
import * as Box from "../src/Box.ts"
import * as Command from "../src/Command.ts"
import * as Responders from "../src/Responders.ts"
import {
  CallBack,
  clientHandlers,
  Delay,
  Echo,
  Gate,
  Hello,
  makeObserved,
  Notify,
  NotifyAsked,
  serverHandlers,
  Sum,
  WaitForever,
  WTF
} from "./support/commands.ts"
import { clientToRawPeer, transports } from "./support/transports.ts"
import { endedWithin, eventually } from "./support/wait.ts"

const latin1 = (bytes: Uint8Array | undefined): string | undefined =>
  bytes === undefined ? undefined : Buffer.from(bytes).toString("latin1")

for (const transport of transports) {
  describe(transport.name, () => {
    const setup = Effect.gen(function*() {
      const observed = yield* makeObserved
      const pair = yield* transport.connect({ server: serverHandlers(observed), client: clientHandlers })
      return { observed, pair, amp: pair.client.dispatcher }
    })

    it.live("typed call", () =>
      Effect.gen(function*() {
        const { amp } = yield* setup
        const { total } = yield* amp.callRemote(Sum, { a: 13n * 10n ** 30n, b: 81n })
        assert.strictEqual(total, 13n * 10n ** 30n + 81n)
      }), 10_000)

    it.live("declared error arrives in the typed channel and the connection stays open", () =>
      Effect.gen(function*() {
        const { amp, pair } = yield* setup
        const error = yield* Effect.flip(amp.callRemote(Sum, { a: 13n, b: 1n }))
        assert.strictEqual(error._tag, "Oops")
        assert.strictEqual(error.message, "bad \u2603 thing")
        assert.isFalse(yield* endedWithin(pair.client, 30))
        assert.strictEqual((yield* amp.callRemote(Sum, { a: 1n, b: 2n })).total, 3n)
      }), 10_000)

    it.live("fatal error: sent, then the connection ends and later calls fail with AmpConnectionLost", () =>
      Effect.gen(function*() {
        const { amp, pair } = yield* setup
        const error = yield* Effect.flip(amp.callRemote(Sum, { a: 666n, b: 1n }))
        assert.strictEqual(error._tag, "Fatal")
        assert.strictEqual(error.message, "die")
        const end = yield* pair.client.ended.pipe(Effect.timeout(5_000))
        assert.isFalse(end.local)
        const later = yield* Effect.flip(amp.callRemote(Sum, { a: 1n, b: 2n }))
        assert.strictEqual(later._tag, "AmpConnectionLost")
        yield* eventually("server side ended", Effect.map(pair.serverConnections, (n) => n === 0))
      }), 10_000)

    for (const [what, a] of [["undeclared failure", -1n], ["defect", -2n]] as const) {
      it.live(`${what} → UnknownRemoteError UNKNOWN, then the connection is closed`, () =>
        Effect.gen(function*() {
          const { amp, pair } = yield* setup
          const error = yield* Effect.flip(amp.callRemote(Sum, { a, b: 1n }))
          assert.strictEqual(error._tag, "UnknownRemoteError")
          if (error._tag !== "UnknownRemoteError") return
          assert.strictEqual(error.code, "UNKNOWN")
          assert.strictEqual(error.description, "Unknown Error")
          yield* pair.client.ended.pipe(Effect.timeout(5_000))
          assert.strictEqual((yield* Effect.flip(amp.callRemote(Sum, { a: 1n, b: 2n })))._tag, "AmpConnectionLost")
        }), 10_000)
    }

    it.live("unknown command → UnhandledCommand, the connection stays open", () =>
      Effect.gen(function*() {
        const { amp, pair } = yield* setup
        const error = yield* Effect.flip(amp.callRemote(WTF, {}))
        assert.strictEqual(error._tag, "UnhandledCommand")
        if (error._tag !== "UnhandledCommand") return
        assert.strictEqual(error.description, "Unhandled Command: b'WTF'")
        const raw = yield* Effect.flip(amp.callRemoteRaw("it's", new Map()))
        assert.strictEqual(raw._tag, "UnhandledCommand")
        assert.strictEqual((raw as { description: string }).description, `Unhandled Command: b"it's"`)
        assert.isFalse(yield* endedWithin(pair.client, 30))
        assert.strictEqual((yield* amp.callRemote(Sum, { a: 1n, b: 2n })).total, 3n)
      }), 10_000)

    it.live("requiresAnswer: false is executed by the peer; the caller does not wait", () =>
      Effect.gen(function*() {
        const { amp, observed, pair } = yield* setup
        const results = [yield* amp.callRemote(Notify, { n: 1n }), yield* amp.callRemote(Notify, { n: 2n })]
        assert.deepStrictEqual(results, [undefined, undefined])
        assert.strictEqual(yield* amp.outstanding, 0)
        yield* eventually("both notifications run", Effect.map(Ref.get(observed.notified), (n) => n.length === 2))
        assert.deepStrictEqual(yield* Ref.get(observed.notified), [1n, 2n])
        // test_noAnswerResponderAskedForAnswer: the same command name asked with _ask is answered
        assert.deepStrictEqual(yield* amp.callRemote(NotifyAsked, { n: 3n }), {})
        assert.isFalse(yield* endedWithin(pair.client, 10))
      }), 10_000)

    it.live("a failing no-answer responder drops the connection (no error box)", () =>
      Effect.gen(function*() {
        const { amp, pair } = yield* setup
        yield* amp.callRemote(Notify, { n: 13n })
        yield* pair.client.ended.pipe(Effect.timeout(5_000))
        assert.strictEqual((yield* Effect.flip(amp.callRemote(Sum, { a: 1n, b: 2n })))._tag, "AmpConnectionLost")
      }), 10_000)

    it.live("bad argument bytes → UNKNOWN, then the connection is closed", () =>
      Effect.gen(function*() {
        const { amp, pair } = yield* setup
        const error = yield* Effect.flip(amp.callRemoteRaw("Sum", Box.make({ a: "abc", b: "1" })))
        assert.strictEqual(error._tag, "UnknownRemoteError")
        assert.strictEqual((error as { code: string }).code, "UNKNOWN")
        yield* pair.client.ended.pipe(Effect.timeout(5_000))
      }), 10_000)

    it.live("missing required argument → UNKNOWN, then the connection is closed", () =>
      Effect.gen(function*() {
        const { amp, pair } = yield* setup
        const error = yield* Effect.flip(amp.callRemoteRaw("Sum", Box.make({ a: "1" })))
        assert.strictEqual((error as { code: string }).code, "UNKNOWN")
        yield* pair.client.ended.pipe(Effect.timeout(5_000))
      }), 10_000)

    it.live("answers come back out of order", () =>
      Effect.gen(function*() {
        const { amp } = yield* setup
        const order: Array<bigint> = []
        const call = (ms: bigint) => Effect.tap(amp.callRemote(Delay, { ms }), (r) => Effect.sync(() => order.push(r.ms)))
        yield* Effect.all([call(150n), call(60n), call(1n)], { concurrency: "unbounded" })
        assert.deepStrictEqual(order, [1n, 60n, 150n])
      }), 10_000)

    it.live("1000 pipelined calls", () =>
      Effect.gen(function*() {
        const { amp } = yield* setup
        const results = yield* Effect.forEach(
          Array.from({ length: 1000 }, (_, i) => BigInt(i + 1000)), // clear of the magic values (13, 666)
          (i) => amp.callRemote(Sum, { a: i, b: i * 2n }),
          { concurrency: "unbounded" }
        )
        results.forEach((r, i) => assert.strictEqual(r.total, BigInt(i + 1000) * 3n))
        assert.strictEqual(yield* amp.outstanding, 0)
      }), 20_000)

    it.live("symmetric: the server calls the client while the client's call is outstanding", () =>
      Effect.gen(function*() {
        const { amp } = yield* setup
        const { total } = yield* amp.callRemote(CallBack, { a: 4n, b: 5n })
        assert.strictEqual(total, 90n)
      }), 10_000)

    it.live("optional arguments absent and present; wire keys `from` and `dashed-name`", () =>
      Effect.gen(function*() {
        const { amp } = yield* setup
        const absent = yield* amp.callRemote(Hello, { hello: "hi" })
        assert.deepStrictEqual(absent, { hello: "hi|from=<none>|dashed=<none>" })
        assert.isFalse("print" in absent)
        const present = yield* amp.callRemote(Hello, { hello: "hi", from: "wor\u1234ld", "dashed-name": 7n })
        assert.deepStrictEqual(present, { hello: "hi|from=wor\u1234ld|dashed=7", print: "wor\u1234ld" })
        // the wire really uses `from` and `dashed-name`
        const raw = yield* amp.callRemoteRaw("Hello", Box.make({ hello: "x", from: "f", "dashed-name": "9" }))
        assert.strictEqual(latin1(raw.get("hello")), "x|from=f|dashed=9")
      }), 10_000)

    it.live("callRemoteRaw returns the raw answer box including _answer", () =>
      Effect.gen(function*() {
        const { amp } = yield* setup
        const answer = yield* amp.callRemoteRaw("Sum", Box.make({ a: "12", b: "82", extra: "ignored" }))
        assert.deepStrictEqual([...answer.keys()].sort(), ["_answer", "total"])
        assert.strictEqual(latin1(answer.get("total")), "94")
        assert.match(latin1(answer.get("_answer"))!, /^[0-9a-f]+$/)
      }), 10_000)

    it.live("large values (64 KiB - 1) round-trip", () =>
      Effect.gen(function*() {
        const { amp } = yield* setup
        const data = new Uint8Array(65535).map((_, i) => (i * 7) & 0xff)
        const results = yield* Effect.forEach([1, 2, 3, 4, 5], () => amp.callRemote(Echo, { data }), {
          concurrency: "unbounded"
        })
        for (const r of results) assert.deepStrictEqual(r.data, data)
        const tooLong = yield* Effect.flip(amp.callRemote(Echo, { data: new Uint8Array(65536) }))
        assert.strictEqual(tooLong._tag, "TooLong")
        assert.strictEqual((yield* amp.callRemote(Sum, { a: 1n, b: 1n })).total, 2n)
      }), 10_000)

    it.live("the server side ending fails every outstanding call with AmpConnectionLost", () =>
      Effect.gen(function*() {
        const { amp, observed, pair } = yield* setup
        const fibers = yield* Effect.forEach([1, 2, 3, 4, 5], () => Effect.forkChild(amp.callRemote(WaitForever, {})))
        yield* eventually("5 handlers started", Effect.map(Ref.get(observed.waitStarted), (n) => n === 5))
        assert.strictEqual(yield* amp.outstanding, 5)
        yield* pair.shutdownServer()
        for (const fiber of fibers) {
          const error = yield* Effect.flip(Fiber.join(fiber)).pipe(Effect.timeout(5_000))
          assert.strictEqual(error._tag, "AmpConnectionLost")
        }
        assert.strictEqual(yield* amp.outstanding, 0)
        yield* eventually("handlers interrupted", Effect.map(Ref.get(observed.waitInterrupted), (n) => n === 5))
      }), 10_000)

    it.live("closing the client fails its outstanding calls with AmpConnectionLost", () =>
      Effect.gen(function*() {
        const { amp, observed, pair } = yield* setup
        const fibers = yield* Effect.forEach([1, 2, 3], () => Effect.forkChild(amp.callRemote(WaitForever, {})))
        yield* eventually("3 handlers started", Effect.map(Ref.get(observed.waitStarted), (n) => n === 3))
        yield* pair.client.close()
        for (const fiber of fibers) {
          assert.strictEqual((yield* Effect.flip(Fiber.join(fiber)).pipe(Effect.timeout(5_000)))._tag, "AmpConnectionLost")
        }
        assert.strictEqual((yield* Effect.flip(amp.callRemote(Sum, { a: 1n, b: 1n })))._tag, "AmpConnectionLost")
        assert.strictEqual((yield* Effect.flip(amp.callRemote(Notify, { n: 1n })))._tag, "AmpConnectionLost")
        yield* eventually("server side ended", Effect.map(pair.serverConnections, (n) => n === 0))
        yield* eventually("server handlers interrupted", Effect.map(Ref.get(observed.waitInterrupted), (n) => n === 3))
      }), 10_000)

    it.live("graceful server close lets in-flight answers out, then the connection ends", () =>
      Effect.gen(function*() {
        const { amp, observed, pair } = yield* setup
        const fibers = yield* Effect.forEach([1n, 2n, 3n], (n) => Effect.forkChild(amp.callRemote(Gate, { n })))
        yield* eventually("3 calls outstanding", Effect.map(amp.outstanding, (n) => n === 3))
        yield* Effect.sleep(20) // let the server start the handlers
        const closing = yield* Effect.forkChild(pair.shutdownServer({ graceful: true }))
        yield* Effect.sleep(20)
        yield* Deferred.succeed(observed.gate, undefined)
        for (const [i, fiber] of fibers.entries()) {
          assert.strictEqual((yield* Fiber.join(fiber).pipe(Effect.timeout(5_000))).n, BigInt(i + 1))
        }
        yield* Fiber.join(closing).pipe(Effect.timeout(5_000))
        yield* pair.client.ended.pipe(Effect.timeout(5_000))
        assert.strictEqual((yield* Effect.flip(amp.callRemote(Sum, { a: 1n, b: 1n })))._tag, "AmpConnectionLost")
      }), 10_000)

    it.live("graceful client close refuses new calls and lets its own handlers answer", () =>
      Effect.gen(function*() {
        const { amp, pair } = yield* setup
        yield* pair.client.close({ graceful: true }).pipe(Effect.timeout(5_000))
        assert.strictEqual((yield* Effect.flip(amp.callRemote(Sum, { a: 1n, b: 1n })))._tag, "AmpConnectionLost")
        yield* eventually("server side ended", Effect.map(pair.serverConnections, (n) => n === 0))
      }), 10_000)

    it.live("interrupting a caller removes its entry; the late answer is ignored", () =>
      Effect.gen(function*() {
        const { amp, observed, pair } = yield* setup
        const fiber = yield* Effect.forkChild(amp.callRemote(Delay, { ms: 80n }))
        yield* eventually("handler started", Effect.map(Ref.get(observed.delayStarted), (n) => n === 1))
        assert.strictEqual(yield* amp.outstanding, 1)
        yield* Fiber.interrupt(fiber)
        assert.strictEqual(yield* amp.outstanding, 0)
        yield* Effect.sleep(150) // the late answer arrives and is ignored
        assert.isFalse(yield* endedWithin(pair.client, 10))
        assert.strictEqual((yield* amp.callRemote(Sum, { a: 2n, b: 2n })).total, 4n)
        assert.strictEqual(yield* amp.outstanding, 0)
      }), 10_000)

    it.live("per-call timeout with Effect.timeout", () =>
      Effect.gen(function*() {
        const { amp, pair } = yield* setup
        const error = yield* Effect.flip(amp.callRemote(Delay, { ms: 300n }).pipe(Effect.timeout(30)))
        assert.strictEqual(error._tag, "TimeoutError")
        assert.strictEqual(yield* amp.outstanding, 0)
        assert.strictEqual((yield* amp.callRemote(Delay, { ms: 1n }).pipe(Effect.timeout(5_000))).ms, 1n)
        yield* Effect.sleep(300)
        assert.isFalse(yield* endedWithin(pair.client, 10))
        assert.strictEqual((yield* amp.callRemote(Sum, { a: 2n, b: 2n })).total, 4n)
      }), 10_000)

    it.live("large values: Unicode values split across reads are decoded from their pieces, String values are never released", () =>
      Effect.gen(function*() {
        const server = countingPool()
        const client = countingPool()
        const keptByServer: Array<[Uint8Array, number]> = []
        const pair = yield* transport.connect({
          server: [
            Responders.handle(Payload, ({ blob, seed, text }) =>
              Effect.sync(() => {
                keptByServer.push([blob, Number(seed)])
                return { text: text + "!", blob: payloadBlob(Number(seed) + 1) }
              }))
          ],
          serverOptions: { valuePool: server.pool },
          clientOptions: { valuePool: client.pool }
        })
        const amp = pair.client.dispatcher
        const keptByClient: Array<[Uint8Array, number]> = []
        for (let seed = 0; seed < 30; seed++) {
          const text = payloadText(seed)
          const answer = yield* amp.callRemote(Payload, { text, blob: payloadBlob(seed), seed: BigInt(seed) })
          assert.strictEqual(answer.text, text + "!")
          keptByClient.push([answer.blob, seed + 1])
        }
        // every byte value kept by a handler or a caller is still what was sent
        for (const [blob, seed] of [...keptByServer, ...keptByClient]) {
          assert.deepStrictEqual(blob, payloadBlob(seed), `blob ${seed}`)
          assert.isFalse(server.released.has(blob) || client.released.has(blob), `blob ${seed} released`)
        }
        // over a socket the 100 KiB boxes span reads; a Unicode value split across them is decoded straight
        // from its pieces: never assembled in a buffer from the pool (a String value may be, and is kept)
        const textLengths = new Set<number>()
        for (let seed = 0; seed < 30; seed++) {
          textLengths.add(Buffer.byteLength(payloadText(seed)))
          textLengths.add(Buffer.byteLength(payloadText(seed) + "!"))
        }
        for (const length of [...server.taken, ...client.taken]) {
          assert.isFalse(textLengths.has(length), `a Unicode value of ${length} bytes was assembled`)
        }
      }), 20_000)
  })
}

/** A command with large values of both kinds: `text` decodes to a string, `blob` stays bytes. */
const Payload = Command.make("Payload", {
  arguments: { text: Argument.Unicode, blob: Argument.String, seed: Argument.Integer },
  response: { text: Argument.Unicode, blob: Argument.String }
})
const payloadText = (seed: number): string => `${seed}:` + "\u00e9t\u00e9 ".repeat(8000 + seed * 100)
const payloadBlob = (seed: number): Uint8Array => new Uint8Array(50_000 + seed).map((_, i) => (i * 13 + seed) & 0xff)

/** A value pool that records what is released to it. */
const countingPool = () => {
  const inner = Box.makeValuePool()
  const released = new Set<Uint8Array>()
  const taken: Array<number> = []
  const pool: Box.ValuePool = {
    take: (length) => {
      taken.push(length)
      return inner.take(length)
    },
    release: (value) => {
      released.add(value)
      inner.release(value)
    },
    idleBytes: inner.idleBytes
  }
  return { pool, released, taken }
}

describe("wire (raw peer)", () => {
  it.live("tags are lowercase hex from 1; a no-answer call uses up a tag and carries no _ask", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      const amp = client.dispatcher
      for (let i = 0; i < 11; i++) yield* Effect.forkChild(amp.callRemote(Sum, { a: BigInt(i), b: 0n }))
      yield* peer.waitForBoxes((boxes) => boxes.length === 11)
      yield* amp.callRemote(Notify, { n: 5n })
      yield* Effect.forkChild(amp.callRemote(Sum, { a: 99n, b: 0n }))
      const boxes = yield* peer.waitForBoxes((boxes) => boxes.length === 13)
      assert.deepStrictEqual(
        boxes.map((b) => latin1(b.get("_ask"))),
        ["1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", undefined, "d"]
      )
      assert.deepStrictEqual([...boxes[11]!.keys()].sort(), ["_command", "n"])
      assert.strictEqual(latin1(boxes[11]!.get("_command")), "Notify")
      // the exact bytes of a no-answer command (spec §2.6)
      const start = peer.received().length
      yield* amp.callRemote(Notify, { n: 6n })
      yield* peer.waitForBoxes((boxes) => boxes.length === 14)
      assert.strictEqual(
        Buffer.from(peer.received().subarray(start)).toString("latin1"),
        "\x00\x08_command\x00\x06Notify\x00\x01n\x00\x016\x00\x00"
      )
      // answer two of them out of order; the calls are matched by tag
      assert.strictEqual(yield* amp.outstanding, 12)
      yield* peer.write(Box.make({ _answer: "d", total: "99" }), Box.make({ _answer: "a", total: "9" }))
      yield* Effect.gen(function*() {
        while ((yield* amp.outstanding) !== 10) yield* Effect.sleep(2)
      }).pipe(Effect.timeout(5_000))
    }), 10_000)

  it.live("the exact request bytes of Sum(13, 81) (spec §2.4)", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      const call = yield* Effect.forkChild(client.dispatcher.callRemote(Sum, { a: 13n, b: 81n }))
      yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      assert.strictEqual(
        Buffer.from(peer.received()).toString("latin1"),
        "\x00\x04_ask\x00\x011\x00\x08_command\x00\x03Sum\x00\x01a\x00\x0213\x00\x01b\x00\x0281\x00\x00"
      )
      yield* peer.write(Box.make({ _answer: "1", total: "94" }))
      assert.strictEqual((yield* Fiber.join(call).pipe(Effect.timeout(5_000))).total, 94n)
    }), 10_000)
})
