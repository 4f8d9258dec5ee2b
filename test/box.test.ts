/**
 * The box codec (src/Box.ts): Twisted's confirmed vectors (spec §1), limits, the incremental decoder's
 * invariants as properties, and byte-for-byte agreement with real Twisted.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import * as fc from "fast-check"
import * as Path from "node:path"
import * as Box from "../src/Box.ts"
import { concatBytes as concat, fromLatin1, latin1 } from "../src/internal/bytes.ts"
import { describeTwisted, runPython, twistedDir } from "./support/twisted.ts"

// ---------------------------------------------------------------------------------------------------
// helpers

/** A Python-style byte literal written as a JS string, one char per byte: `b("\x00\x05hello")`. */
const b = (s: string): Uint8Array => fromLatin1(s)
const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")
const filled = (n: number, byte: number): Uint8Array => new Uint8Array(n).fill(byte)

/** A box as comparable data: `[key, valueHex]` pairs sorted by key (wire order does not matter). */
const canon = (box: Box.Box): Array<[string, string]> =>
  Array.from(box, ([k, v]): [string, string] => [k, hex(v)]).sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))
const canonAll = (boxes: ReadonlyArray<Box.Box>) => boxes.map(canon)

/** Splits `bytes` at the given positions (any order, duplicates and out-of-range ones allowed). */
const splitAt = (bytes: Uint8Array, points: ReadonlyArray<number>): Array<Uint8Array> => {
  const cuts = Array.from(new Set(points.map((p) => Math.max(0, Math.min(bytes.length, p))))).sort((x, y) => x - y)
  const chunks: Array<Uint8Array> = []
  let start = 0
  for (const cut of cuts) {
    chunks.push(bytes.subarray(start, cut)) // empty chunks are allowed on purpose
    start = cut
  }
  chunks.push(bytes.subarray(start))
  return chunks
}
const oneByteChunks = (bytes: Uint8Array): Array<Uint8Array> =>
  Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1))

interface Decoded {
  readonly boxes: Array<Box.Box>
  readonly error: Box.FramingError | undefined
}

/** Runs chunks through one incremental decoder. */
const feedAll = (chunks: ReadonlyArray<Uint8Array>): Decoded => {
  const decoder = Box.makeDecoder()
  const boxes: Array<Box.Box> = []
  let error: Box.FramingError | undefined
  for (const chunk of chunks) {
    error = decoder.feed(chunk, boxes)
    if (error) break
  }
  return { boxes, error }
}

/** Runs chunks through `Box.decodeStream`: the boxes emitted, then the failure if any. */
const viaStream = (chunks: ReadonlyArray<Uint8Array>, chunkSize = 1): Promise<Decoded> => {
  const boxes: Array<Box.Box> = []
  return Effect.runPromise(
    Stream.fromIterable(chunks, { chunkSize }).pipe(
      Box.decodeStream,
      Stream.runForEach((box) => Effect.sync(() => void boxes.push(box))),
      Effect.match({
        onFailure: (error) => ({ boxes, error }),
        onSuccess: () => ({ boxes, error: undefined })
      })
    )
  )
}

/**
 * An independent whole-buffer reference of Twisted's receive state machine (spec §1.3): complete boxes,
 * then stop at the first key-length prefix over 255 (its offset) or at an incomplete tail.
 */
const reference = (bytes: Uint8Array): { boxes: Array<Box.Box>; errorAt: number | undefined } => {
  const boxes: Array<Box.Box> = []
  let current: Map<string, Uint8Array> | undefined
  let i = 0
  const u16 = (at: number) => (bytes[at]! << 8) | bytes[at + 1]!
  for (;;) {
    if (i + 2 > bytes.length) break
    const keyLength = u16(i)
    if (keyLength > 255) return { boxes, errorAt: i }
    i += 2
    if (keyLength === 0) {
      boxes.push(current ?? new Map())
      current = undefined
      continue
    }
    if (i + keyLength > bytes.length) break
    const key = latin1(bytes, i, i + keyLength)
    i += keyLength
    if (i + 2 > bytes.length) break
    const valueLength = u16(i)
    i += 2
    if (i + valueLength > bytes.length) break
    ;(current ??= new Map()).set(key, bytes.subarray(i, i + valueLength))
    i += valueLength
  }
  return { boxes, errorAt: undefined }
}

// ---------------------------------------------------------------------------------------------------
// arbitraries

const latin1Char = fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c))
const keyArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: fc.constantFrom(..."_abcdefgzABZ019"), minLength: 1, maxLength: 12 }) },
  { weight: 2, arbitrary: fc.string({ unit: latin1Char, minLength: 1, maxLength: 255 }) },
  { weight: 1, arbitrary: fc.constantFrom("_ask", "_answer", "_command", "_error", "B", "a", "\xff", "\x00") }
)
/** Pseudo-random bytes of a given length (cheap for 64 KiB values, unlike fc.uint8Array). */
const noise = (length: number, seed: number): Uint8Array => {
  const out = new Uint8Array(length)
  let x = seed | 1
  for (let i = 0; i < length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}
const valueArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 6, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.tuple(fc.integer({ min: 0, max: 4096 }), fc.integer()).map(([n, s]) => noise(n, s)) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.constantFrom(0, 1, 255, 256, 65534, 65535), fc.integer()).map(([n, s]) => noise(n, s))
  }
)
const boxArb: fc.Arbitrary<Box.Box> = fc
  .uniqueArray(fc.tuple(keyArb, valueArb), { selector: ([k]) => k, maxLength: 8 })
  .map((entries) => new Map(entries))
const boxesArb = fc.array(boxArb, { maxLength: 8 })
/** Split points as fractions of the stream length, so they fit any stream. */
const cutsArb = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 24 })
const cutsFor = (bytes: Uint8Array, cuts: ReadonlyArray<number>) => cuts.map((f) => Math.floor(f * bytes.length))

// ---------------------------------------------------------------------------------------------------

describe("Box encoding: Twisted's confirmed serializations (spec §1.1)", () => {
  it("{hello: world}", () => {
    assert.deepStrictEqual(Box.encodeUnsafe(Box.make({ hello: "world" })), b("\x00\x05hello\x00\x05world\x00\x00"))
  })

  it("keys are sorted bytewise: B < _ask < _command < a < b", () => {
    const box = Box.make({ b: "2", a: "1", _ask: "1", _command: "Sum", B: "x" })
    assert.deepStrictEqual(
      Box.encodeUnsafe(box),
      b("\x00\x01B\x00\x01x\x00\x04_ask\x00\x011\x00\x08_command\x00\x03Sum\x00\x01a\x00\x011\x00\x01b\x00\x012\x00\x00")
    )
  })

  it("keys with bytes above 0x7f sort after ASCII, as bytes", () => {
    const box = Box.make([["\xe9", "1"], ["z", "2"], ["\x01", "3"]])
    assert.deepStrictEqual(
      Box.encodeUnsafe(box),
      b("\x00\x01\x01\x00\x013\x00\x01z\x00\x012\x00\x01\xe9\x00\x011\x00\x00")
    )
  })

  it("the empty box is \\x00\\x00", () => {
    assert.deepStrictEqual(Box.encodeUnsafe(Box.make({})), b("\x00\x00"))
  })

  it("an empty value is an ordinary value", () => {
    assert.deepStrictEqual(Box.encodeUnsafe(Box.make({ k: "" })), b("\x00\x01k\x00\x00\x00\x00"))
  })

  it("test_sendBoxInStartReceivingBoxes: {foo: bar}", () => {
    assert.deepStrictEqual(Box.encodeUnsafe(Box.make({ foo: "bar" })), b("\x00\x03foo\x00\x03bar\x00\x00"))
  })

  it("a 255-byte key has prefix \\x00\\xff", () => {
    const key = "k".repeat(255)
    const bytes = Box.encodeUnsafe(Box.make({ [key]: "v" }))
    assert.deepStrictEqual(bytes.subarray(0, 2), b("\x00\xff"))
    assert.strictEqual(bytes.length, 2 + 255 + 2 + 1 + 2)
    assert.strictEqual(latin1(bytes, 2, 257), key)
  })

  it("a 65535-byte value has prefix \\xff\\xff and the box is 65542 bytes", () => {
    const bytes = Box.encodeUnsafe(Box.make({ k: filled(65535, 0x76) }))
    assert.strictEqual(bytes.length, 65542)
    assert.deepStrictEqual(bytes.subarray(0, 5), b("\x00\x01k\xff\xff"))
    assert.deepStrictEqual(bytes.subarray(65540), b("\x00\x00"))
    assert.isTrue(bytes.subarray(5, 65540).every((x) => x === 0x76))
  })

  it("make: records and entries; string values are UTF-8", () => {
    const fromRecord = Box.make({ u: "wor\u1234ld" })
    const fromEntries = Box.make([["u", new Uint8Array([0x77, 0x6f, 0x72, 0xe1, 0x88, 0xb4, 0x6c, 0x64])]])
    assert.deepStrictEqual(canon(fromRecord), canon(fromEntries))
  })

  it("encodedLength is the encoded size", () => {
    const box = Box.make({ _ask: "1", _command: "Sum", a: "13", b: "81" })
    assert.strictEqual(Box.encodedLength(box), Box.encodeUnsafe(box).length)
    assert.strictEqual(Box.encodedLength(new Map()), 2)
  })

  it("encodeAllUnsafe is the concatenation of encodeUnsafe", () => {
    const boxes = [Box.make({ a: "1" }), Box.make({}), Box.make({ hello: "world", _ask: "ff" })]
    assert.deepStrictEqual(Box.encodeAllUnsafe(boxes), concat(boxes.map(Box.encodeUnsafe)))
    assert.deepStrictEqual(Box.encodeAllUnsafe([]), new Uint8Array(0))
  })

  it.effect("encode succeeds with the same bytes", () =>
    Effect.gen(function*() {
      const box = Box.make({ hello: "world" })
      assert.deepStrictEqual(yield* Box.encode(box), Box.encodeUnsafe(box))
    }))
})

describe("Box encoding limits (spec §1.2)", () => {
  it.effect("a 256-byte key: TooLong(isKey, isLocal) 'local key too long: 256'", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Box.encode(Box.make({ ["k".repeat(256)]: "v" })))
      assert.instanceOf(error, Box.TooLong)
      if (!(error instanceof Box.TooLong)) return
      assert.strictEqual(error._tag, "TooLong")
      assert.isTrue(error.isKey)
      assert.isTrue(error.isLocal)
      assert.strictEqual(error.length, 256)
      assert.strictEqual(error.message, "local key too long: 256")
      assert.include(error.message, "256")
    }))

  it.effect("a 65536-byte value: TooLong with keyName, Twisted's repr 'local value b'hello' too long: 65536'", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Box.encode(Box.make({ hello: filled(65536, 0x61) })))
      assert.instanceOf(error, Box.TooLong)
      if (!(error instanceof Box.TooLong)) return
      assert.isFalse(error.isKey)
      assert.isTrue(error.isLocal)
      assert.strictEqual(error.keyName, "hello")
      assert.strictEqual(error.length, 65536)
      assert.strictEqual(error.message, "local value b'hello' too long: 65536")
    }))

  it("the value message uses Python's bytes repr for odd keys", () => {
    const error = new Box.TooLong({ isKey: false, isLocal: true, keyName: "it's\xff", length: 70000 })
    assert.strictEqual(error.message, `local value b"it's\\xff" too long: 70000`)
  })

  it.effect("InvalidKey for an empty key and for a char above U+00FF", () =>
    Effect.gen(function*() {
      const empty = yield* Effect.flip(Box.encode(Box.make({ "": "x" })))
      assert.instanceOf(empty, Box.InvalidKey)
      assert.strictEqual(empty._tag, "InvalidKey")
      const wide = yield* Effect.flip(Box.encode(Box.make({ ["k\u0100"]: "x" })))
      assert.instanceOf(wide, Box.InvalidKey)
      if (wide instanceof Box.InvalidKey) assert.strictEqual(wide.key, "k\u0100")
      // U+00FF itself is the byte 0xff: fine
      assert.deepStrictEqual(Box.encodeUnsafe(Box.make({ "\xff": "" })), b("\x00\x01\xff\x00\x00\x00\x00"))
    }))

  it("encodeUnsafe / encodeAllUnsafe throw the typed errors and return nothing", () => {
    assert.throws(() => Box.encodeUnsafe(Box.make({ ["k".repeat(256)]: "v" })), Box.TooLong)
    assert.throws(() => Box.encodeAllUnsafe([Box.make({ a: "1" }), Box.make({ a: filled(65536, 0) })]), Box.TooLong)
    assert.throws(() => Box.encodeAllUnsafe([Box.make({ "": "x" })]), Box.InvalidKey)
    const tooLong = Box.encodedLength(Box.make({ a: filled(65536, 0) }))
    assert.instanceOf(tooLong, Box.TooLong)
  })

  it("exact limits are accepted: 255-byte key with a 65535-byte value", () => {
    const box = Box.make({ ["x".repeat(255)]: filled(65535, 1) })
    const bytes = Box.encodeUnsafe(box)
    assert.strictEqual(bytes.length, 2 + 255 + 2 + 65535 + 2)
    assert.deepStrictEqual(canonAll(feedAll([bytes]).boxes), [canon(box)])
  })
})

describe("Box decoding: Twisted's confirmed parses (spec §1.3, §1.4)", () => {
  it.effect("duplicate keys: the last value wins", () =>
    Effect.gen(function*() {
      const boxes = yield* Box.decodeAll(b("\x00\x01k\x00\x011\x00\x01k\x00\x012\x00\x00"))
      assert.deepStrictEqual(canonAll(boxes), [[["k", hex(b("2"))]]])
    }))

  it.effect("parseString of an empty box then {a: 1}", () =>
    Effect.gen(function*() {
      const boxes = yield* Box.decodeAll(b("\x00\x00\x00\x01a\x00\x011\x00\x00"))
      assert.deepStrictEqual(canonAll(boxes), [[], [["a", hex(b("1"))]]])
    }))

  it.effect("a truncated stream gives only the complete boxes", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* Box.decodeAll(b("\x00\x01a\x00\x05ab")), [])
      const two = Box.encodeAllUnsafe([Box.make({ a: "1" }), Box.make({ hello: "world" })])
      const firstEnd = 8
      for (let cut = 0; cut <= two.length; cut++) {
        const boxes = yield* Box.decodeAll(two.subarray(0, cut))
        const expected = cut < firstEnd ? 0 : cut < two.length ? 1 : 2
        assert.strictEqual(boxes.length, expected, `cut at ${cut}`)
      }
    }))

  it.effect("test_receiveBoxStateMachine / test_receiveBoxData / test_receiveLongerBoxData", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(
        canonAll(yield* Box.decodeAll(b("\x00\x05hello\x00\x05world\x00\x00"))),
        [[["hello", hex(b("world"))]]]
      )
      const data = Box.make({ testKey: "valueTest", anotherKey: "anotherValue" })
      assert.deepStrictEqual(canonAll(yield* Box.decodeAll(Box.encodeUnsafe(data))), [canon(data)])
      const long = Box.make({ k: filled(65535, 0x78) })
      const [got] = yield* Box.decodeAll(Box.encodeUnsafe(long))
      assert.strictEqual(got!.get("k")!.length, 65535)
      assert.isTrue(got!.get("k")!.every((x) => x === 0x78))
    }))

  it.effect("test_ParsingRoundTrip: values with \\r, \\n and ': ' survive", () =>
    Effect.gen(function*() {
      const values = [": ", "test\r", "hello\n", "test\r\none\r\ntwo", "test\r\none\r\n two", "blah\r\n\r\ntesttest"]
      const boxes = values.flatMap((v, i) => [Box.make({ key: v }), Box.make({ [`k${i}`]: v, other: values[(i + 1) % 6]! })])
      const decoded = yield* Box.decodeAll(Box.encodeAllUnsafe(boxes))
      assert.deepStrictEqual(canonAll(decoded), canonAll(boxes))
    }))

  it("keys whose bytes share a decoder key-cache slot still decode to their own strings", () => {
    // "\x04\x00" and "\x00\x07" hash to the same slot of the decoder's key cache
    const boxes = [
      Box.make([["\x04\x00", "1"], ["\x00\x07", "2"]]),
      Box.make([["\x00\x07", "3"]]),
      Box.make([["\x04\x00", "4"], ["a", "5"], ["_ask", "6"]]),
      Box.make(Array.from({ length: 40 }, (_, i): [string, string] => [String.fromCharCode(i, 255 - i), `${i}`]))
    ]
    for (let round = 0; round < 3; round++) {
      assert.deepStrictEqual(canonAll(feedAll([Box.encodeAllUnsafe(boxes)]).boxes), canonAll(boxes))
    }
  })

  it("large values split across chunks are exact, and encoded boxes are plain Uint8Arrays", () => {
    const value = noise(65535, 42)
    const bytes = Box.encodeAllUnsafe([Box.make({ v: value }), Box.make({ w: value.subarray(0, 5000) })])
    assert.strictEqual(Object.getPrototypeOf(bytes), Uint8Array.prototype)
    const one = Box.encodeUnsafe(Box.make({ v: value }))
    assert.strictEqual(Object.getPrototypeOf(one), Uint8Array.prototype)
    assert.strictEqual(one.byteOffset, 0)
    assert.strictEqual(one.buffer.byteLength, one.length)
    const { boxes } = feedAll(splitAt(bytes, [10, 30000, 65540, 65550, 68000]))
    assert.strictEqual(hex(boxes[0]!.get("v")!), hex(value))
    assert.strictEqual(hex(boxes[1]!.get("w")!), hex(value.subarray(0, 5000)))
  })

  it("decoded keys are latin1 strings, values are exact bytes", () => {
    const { boxes } = feedAll([b("\x00\x02\xe9\x00\x00\x03\x00\xff\x80\x00\x00")])
    assert.deepStrictEqual(Array.from(boxes[0]!.keys()), ["\xe9\x00"])
    assert.deepStrictEqual(boxes[0]!.get("\xe9\x00"), b("\x00\xff\x80"))
  })
})

describe("Box decoding: key-length prefix over 255 (Twisted's three ExcessiveLength tests)", () => {
  const cases: ReadonlyArray<{ name: string; bytes: Uint8Array; offset: number; boxes: number }> = [
    { name: "test_firstBoxFirstKeyExcessiveLength", bytes: b("\x01\x00"), offset: 0, boxes: 0 },
    { name: "test_firstBoxSubsequentKeyExcessiveLength", bytes: b("\x00\x01k\x00\x01v\x01\x00"), offset: 6, boxes: 0 },
    {
      name: "test_subsequentBoxFirstKeyExcessiveLength",
      bytes: b("\x00\x01k\x00\x01v\x00\x00\x01\x00"),
      offset: 8,
      boxes: 1
    }
  ]
  for (const c of cases) {
    it(`${c.name}: FramingError at offset ${c.offset}, whole or byte by byte`, () => {
      for (const chunks of [[c.bytes], oneByteChunks(c.bytes), splitAt(c.bytes, [c.offset + 1])]) {
        const { boxes, error } = feedAll(chunks)
        assert.strictEqual(boxes.length, c.boxes)
        assert.instanceOf(error, Box.FramingError)
        assert.strictEqual(error!._tag, "FramingError")
        assert.strictEqual(error!.offset, c.offset)
        assert.strictEqual(error!.keyLength, 256)
        assert.include(error!.message, "256")
      }
    })

    it.effect(`${c.name}: decodeAll fails`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Box.decodeAll(c.bytes))
        assert.strictEqual(error.offset, c.offset)
      }))
  }

  it("FramingError.toTooLong is Twisted's remote TooLong(isKey=True, isLocal=False)", () => {
    const tooLong = feedAll([b("\xff\xff")]).error!.toTooLong()
    assert.instanceOf(tooLong, Box.TooLong)
    assert.isTrue(tooLong.isKey)
    assert.isFalse(tooLong.isLocal)
    assert.strictEqual(tooLong.length, 65535)
  })

  it("after a FramingError the decoder is failed and ignores further input", () => {
    const decoder = Box.makeDecoder()
    const out: Array<Box.Box> = []
    const first = decoder.feed(b("\x00\x00\x01\x00"), out)
    assert.strictEqual(out.length, 1)
    assert.strictEqual(decoder.feed(b("\x00\x00"), out), first)
    assert.strictEqual(out.length, 1)
  })

  it("a value-length prefix may be anything up to 65535: only keys are limited", () => {
    const { boxes, error } = feedAll([b("\x00\x01k\x01\x00"), filled(256, 0x41), b("\x00\x00")])
    assert.isUndefined(error)
    assert.strictEqual(boxes[0]!.get("k")!.length, 256)
  })

  it("decodeStream emits the boxes before the error, then fails", async () => {
    const bytes = concat([Box.encodeAllUnsafe([Box.make({ a: "1" }), Box.make({ b: "2" })]), b("\x00\x01k\x00\x01v\x01\x00zz")])
    for (const chunks of [[bytes], oneByteChunks(bytes), splitAt(bytes, [3, 12, 20])]) {
      for (const chunkSize of [1, 4096]) {
        const { boxes, error } = await viaStream(chunks, chunkSize)
        assert.deepStrictEqual(canonAll(boxes), [[["a", hex(b("1"))]], [["b", hex(b("2"))]]])
        assert.instanceOf(error, Box.FramingError)
        assert.strictEqual(error!.offset, 22)
      }
    }
  })

  it("decodeStream drops an incomplete final box", async () => {
    const bytes = concat([Box.encodeUnsafe(Box.make({ a: "1" })), b("\x00\x01a\x00")])
    const { boxes, error } = await viaStream(oneByteChunks(bytes))
    assert.strictEqual(boxes.length, 1)
    assert.isUndefined(error)
  })
})

describe("Box codec properties", () => {
  it("(a) encode then decode gives the same boxes", () => {
    fc.assert(
      fc.property(boxesArb, (boxes) => {
        const bytes = Box.encodeAllUnsafe(boxes)
        const { boxes: decoded, error } = feedAll([bytes])
        assert.isUndefined(error)
        assert.deepStrictEqual(canonAll(decoded), canonAll(boxes))
        // and re-encoding the decoded boxes gives the same bytes (sorted keys are canonical)
        assert.deepStrictEqual(Box.encodeAllUnsafe(decoded), bytes)
        assert.strictEqual(bytes.length, boxes.reduce((n, box) => n + (Box.encodedLength(box) as number), 0))
      }),
      { numRuns: 200 }
    )
  })

  it("(b) any chunking through the decoder gives the same boxes as the whole buffer", () => {
    fc.assert(
      fc.property(boxesArb, cutsArb, (boxes, cuts) => {
        const bytes = Box.encodeAllUnsafe(boxes)
        const whole = canonAll(feedAll([bytes]).boxes)
        assert.deepStrictEqual(canonAll(feedAll(splitAt(bytes, cutsFor(bytes, cuts))).boxes), whole)
      }),
      { numRuns: 300 }
    )
  })

  it("(b) 1-byte chunks give the same boxes", () => {
    fc.assert(
      fc.property(fc.array(boxArb, { maxLength: 3 }), (boxes) => {
        const bytes = Box.encodeAllUnsafe(boxes)
        assert.deepStrictEqual(canonAll(feedAll(oneByteChunks(bytes)).boxes), canonAll(boxes))
      }),
      { numRuns: 60 }
    )
  })

  it("(b) decodeStream, with random chunking and random stream chunk sizes, equals decodeAll", async () => {
    await fc.assert(
      fc.asyncProperty(boxesArb, cutsArb, fc.integer({ min: 1, max: 8 }), async (boxes, cuts, chunkSize) => {
        const bytes = Box.encodeAllUnsafe(boxes)
        const whole = await Effect.runPromise(Box.decodeAll(bytes))
        const streamed = await viaStream(splitAt(bytes, cutsFor(bytes, cuts)), chunkSize)
        assert.isUndefined(streamed.error)
        assert.deepStrictEqual(canonAll(streamed.boxes), canonAll(whole))
      }),
      { numRuns: 100 }
    )
  })

  const checkAgainstReference = (bytes: Uint8Array, cuts: ReadonlyArray<number>) => {
    const expected = reference(bytes)
    for (const chunks of [[bytes], splitAt(bytes, cutsFor(bytes, cuts))]) {
      const { boxes, error } = feedAll(chunks) // must not throw
      assert.deepStrictEqual(canonAll(boxes), canonAll(expected.boxes))
      assert.strictEqual(error?.offset, expected.errorAt)
      if (error) {
        assert.instanceOf(error, Box.FramingError)
        assert.isAbove(error.keyLength, 255)
        assert.strictEqual(error.keyLength, (bytes[error.offset]! << 8) | bytes[error.offset + 1]!)
      }
    }
  }

  it("(c) random bytes never throw: boxes and/or a FramingError, as the reference state machine says", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), cutsArb, checkAgainstReference), { numRuns: 500 })
    // bytes biased towards small prefixes, so that they actually frame boxes
    const smallish = fc.uint8Array({ maxLength: 200, max: 3 })
    fc.assert(fc.property(smallish, cutsArb, checkAgainstReference), { numRuns: 300 })
  })

  it("(c) mutated valid streams never throw and agree with the reference", () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant("set" as const), at: fc.double({ min: 0, max: 1, noNaN: true }), byte: fc.nat(255) }),
      fc.record({ kind: fc.constant("insert" as const), at: fc.double({ min: 0, max: 1, noNaN: true }), bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }) }),
      fc.record({ kind: fc.constant("delete" as const), at: fc.double({ min: 0, max: 1, noNaN: true }), count: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ kind: fc.constant("truncate" as const), at: fc.double({ min: 0, max: 1, noNaN: true }) })
    )
    fc.assert(
      fc.property(fc.array(boxArb, { maxLength: 4 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), cutsArb, (boxes, mutations, cuts) => {
        let bytes = Box.encodeAllUnsafe(boxes)
        for (const m of mutations) {
          const at = Math.floor(m.at * bytes.length)
          if (m.kind === "set") {
            if (bytes.length > 0) bytes[Math.min(at, bytes.length - 1)] = m.byte
          } else if (m.kind === "insert") bytes = concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at)])
          else if (m.kind === "delete") bytes = concat([bytes.subarray(0, at), bytes.subarray(at + m.count)])
          else bytes = bytes.slice(0, at)
        }
        checkAgainstReference(bytes, cuts)
      }),
      { numRuns: 300 }
    )
  })

  it("(c) random bytes through decodeStream end in boxes and/or a FramingError", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200, max: 2 }), cutsArb, async (bytes, cuts) => {
        const expected = reference(bytes)
        const { boxes, error } = await viaStream(splitAt(bytes, cutsFor(bytes, cuts)))
        assert.deepStrictEqual(canonAll(boxes), canonAll(expected.boxes))
        assert.strictEqual(error?.offset, expected.errorAt)
      }),
      { numRuns: 100 }
    )
  })

  it("(d) offset() counts bytes fed; pending() is the bytes since the last box end", () => {
    fc.assert(
      fc.property(boxesArb, cutsArb, fc.uint8Array({ maxLength: 30 }), (boxes, cuts, tail) => {
        const bytes = Box.encodeAllUnsafe(boxes)
        const sizes = boxes.map((box) => Box.encodedLength(box) as number)
        // box end offsets in the stream
        const boxEnds: Array<number> = []
        sizes.reduce((end, n) => (boxEnds.push(end + n), end + n), 0)
        const decoder = Box.makeDecoder()
        assert.strictEqual(decoder.offset(), 0)
        assert.strictEqual(decoder.pending(), 0)
        const out: Array<Box.Box> = []
        let fed = 0
        for (const chunk of splitAt(bytes, cutsFor(bytes, cuts))) {
          assert.isUndefined(decoder.feed(chunk, out))
          fed += chunk.length
          assert.strictEqual(decoder.offset(), fed)
          const lastEnd = boxEnds.filter((e) => e <= fed).at(-1) ?? 0
          assert.strictEqual(out.length, boxEnds.filter((e) => e <= fed).length)
          assert.strictEqual(decoder.pending(), fed - lastEnd)
        }
        assert.strictEqual(decoder.pending(), 0)
        // an incomplete tail that cannot be a framing error (first prefix byte 0) is pending
        const safeTail = tail.map((x, i) => (i === 0 ? 0 : x))
        const before = out.length
        const error = decoder.feed(safeTail, out)
        if (error === undefined) {
          const complete = reference(safeTail).boxes.length
          assert.strictEqual(out.length, before + complete)
          assert.strictEqual(decoder.offset(), bytes.length + safeTail.length)
          if (complete === 0) assert.strictEqual(decoder.pending(), safeTail.length)
        }
      }),
      { numRuns: 300 }
    )
  })

  it("(e) the ends given to feed are exactly where each box ends in the chunk", () => {
    fc.assert(
      fc.property(boxesArb, cutsArb, (boxes, cuts) => {
        const bytes = Box.encodeAllUnsafe(boxes)
        const boxEnds: Array<number> = []
        boxes.reduce((end, box) => {
          const next = end + (Box.encodedLength(box) as number)
          boxEnds.push(next)
          return next
        }, 0)
        const decoder = Box.makeDecoder()
        const out: Array<Box.Box> = []
        const seen: Array<number> = []
        let start = 0
        for (const chunk of splitAt(bytes, cutsFor(bytes, cuts))) {
          const ends: Array<number> = []
          const before = out.length
          decoder.feed(chunk, out, ends)
          assert.strictEqual(ends.length, out.length - before, "one end per box")
          for (const end of ends) {
            assert.isAtLeast(end, 1)
            assert.isAtMost(end, chunk.length)
            seen.push(start + end)
          }
          start += chunk.length
        }
        assert.deepStrictEqual(seen, boxEnds)
      }),
      { numRuns: 300 }
    )
  })

  it("(e) ends before a FramingError, with bytes of the next protocol after a box", () => {
    const chunk = concat([Box.encodeUnsafe(Box.make({ a: "1" })), b("\x00\x00"), b("Hello, world!")])
    const out: Array<Box.Box> = []
    const ends: Array<number> = []
    const error = Box.makeDecoder().feed(chunk, out, ends)
    assert.deepStrictEqual(ends, [8, 10])
    assert.strictEqual(out.length, 2)
    // "He" = 0x4865 is a key length over 255: the next protocol's bytes are not AMP
    assert.strictEqual(error?.offset, 10)
  })
})

describeTwisted("Box codec against real Twisted", () => {
  it("AmpBox.serialize() equals encodeUnsafe, parseString reads our bytes, BinaryBoxProtocol agrees on odd streams", () => {
    // a few hundred random boxes, keys 1–255 bytes incl. non-ASCII, values incl. empty and 64 KiB
    const twistedKey = fc.oneof(
      { weight: 2, arbitrary: keyArb },
      { weight: 1, arbitrary: fc.string({ unit: latin1Char, minLength: 200, maxLength: 255 }) }
    )
    const twistedBox = fc
      .uniqueArray(fc.tuple(twistedKey, valueArb), { selector: ([k]) => k, maxLength: 10 })
      .map((entries): Box.Box => new Map(entries))
    const boxes = fc.sample(twistedBox, { numRuns: 300, seed: 20261124 })
    boxes.push(
      Box.make({}),
      Box.make({ k: "" }),
      Box.make({ b: "2", a: "1", _ask: "1", _command: "Sum", B: "x" }),
      Box.make({ ["\xff".repeat(255)]: filled(65535, 0xff) }),
      Box.make({ "\x00": "\x00\x00" })
    )
    const encoded = Box.encodeAllUnsafe(boxes)
    // odd streams for the receive state machine: random bytes and mutated valid streams
    const streams = fc.sample(
      fc.oneof(
        fc.uint8Array({ maxLength: 120, max: 3 }),
        fc.tuple(fc.array(boxArb, { maxLength: 3 }), fc.nat(), fc.nat(255)).map(([bs, at, byte]) => {
          const bytes = Box.encodeAllUnsafe(bs)
          if (bytes.length > 0) bytes[at % bytes.length] = byte
          return bytes.subarray(0, bytes.length - (at % 3))
        })
      ),
      { numRuns: 200, seed: 7 }
    )
    streams.push(b("\x01\x00"), b("\x00\x01k\x00\x01v\x01\x00"), b("\x00\x01k\x00\x01v\x00\x00\x01\x00"))

    const pairs = (box: Box.Box) => Array.from(box, ([k, v]) => [hex(fromLatin1(k)), hex(v)])
    const request = JSON.stringify({ boxes: boxes.map(pairs), encoded: hex(encoded), streams: streams.map(hex) })
    const response = JSON.parse(runPython([Path.join(twistedDir, "box_vectors.py")], request).toString("utf8")) as {
      serialized: Array<string>
      parsed: Array<Array<[string, string]>>
      streams: Array<{ boxes: Array<Array<[string, string]>>; disconnected: boolean }>
    }

    assert.strictEqual(response.serialized.length, boxes.length)
    boxes.forEach((box, i) => {
      assert.strictEqual(hex(Box.encodeUnsafe(box)), response.serialized[i], `box ${i}`)
    })

    // Twisted's pairs are sorted by key bytes; our canon sorts latin1 keys, the same order
    const asTwisted = (box: Box.Box) => canon(box).map(([k, v]) => [hex(fromLatin1(k)), v])
    assert.deepStrictEqual(response.parsed, boxes.map(asTwisted))

    streams.forEach((bytes, i) => {
      const ours = feedAll([bytes])
      const theirs = response.streams[i]!
      assert.deepStrictEqual(ours.boxes.map(asTwisted), theirs.boxes, `stream ${i}: ${hex(bytes)}`)
      assert.strictEqual(ours.error !== undefined, theirs.disconnected, `stream ${i}: ${hex(bytes)}`)
    })
  })
})

describe("Box.ValuePool: recycled buffers for large values split across chunks", () => {
  /** A box `{k: <n bytes>}` whose value bytes depend on `seed`, encoded and cut inside the value. */
  const splitBox = (n: number, seed: number) => {
    const value = new Uint8Array(n).map((_, i) => (i * 7 + seed) & 0xff)
    const bytes = Box.encodeUnsafe(Box.make({ k: value }))
    // 2 + 1 (key) + 2 (value length) = 5 bytes before the value: cut in its middle
    return { value, chunks: splitAt(bytes, [5 + (n >> 1)]) }
  }
  const decodeWith = (decoder: Box.Decoder, chunks: ReadonlyArray<Uint8Array>): Box.Box => {
    const out: Array<Box.Box> = []
    for (const chunk of chunks) assert.isUndefined(decoder.feed(chunk, out))
    assert.strictEqual(out.length, 1)
    return out[0]!
  }

  it("a split value of 4 KiB or more comes from the pool; once released its buffer is reused", () => {
    const pool = Box.makeValuePool()
    const decoder = Box.makeDecoder({ pool })
    const first = splitBox(10_000, 1)
    const v1 = decodeWith(decoder, first.chunks).get("k")!
    assert.deepStrictEqual(v1, first.value)
    assert.strictEqual(v1.buffer.byteLength, 16384, "the 16 KiB class")
    pool.release(v1)
    assert.strictEqual(pool.idleBytes(), 16384)
    const second = splitBox(9_000, 2)
    const v2 = decodeWith(decoder, second.chunks).get("k")!
    assert.strictEqual(v2.buffer, v1.buffer, "the released buffer is reused")
    assert.deepStrictEqual(v2, second.value)
    assert.strictEqual(pool.idleBytes(), 0)
  })

  it("nothing is reused without release: every kept value stays intact", () => {
    const pool = Box.makeValuePool()
    const decoder = Box.makeDecoder({ pool })
    const sent = Array.from({ length: 20 }, (_, i) => splitBox(4096 + i * 3000, i))
    const kept = sent.map(({ chunks }) => decodeWith(decoder, chunks).get("k")!)
    kept.forEach((value, i) => assert.deepStrictEqual(value, sent[i]!.value, `value ${i}`))
    assert.strictEqual(new Set(kept.map((v) => v.buffer)).size, kept.length, "all buffers distinct")
  })

  it("size classes: the smallest of 4, 8, 16, 32, 64 KiB that fits", () => {
    const pool = Box.makeValuePool()
    for (const [n, size] of [[4096, 4096], [4097, 8192], [32768, 32768], [40000, 65536], [65535, 65536]] as const) {
      const { chunks, value } = splitBox(n, n)
      const got = decodeWith(Box.makeDecoder({ pool }), chunks).get("k")!
      assert.strictEqual(got.buffer.byteLength, size, `${n} bytes`)
      assert.deepStrictEqual(got, value)
    }
  })

  it("values the pool did not give out, small values, and second releases are ignored", () => {
    const pool = Box.makeValuePool()
    const decoder = Box.makeDecoder({ pool })
    // whole in one chunk: a view into the chunk, not pooled
    const whole = Box.encodeUnsafe(Box.make({ k: filled(5000, 3) }))
    const view = decodeWith(decoder, [whole]).get("k")!
    assert.strictEqual(view.buffer, whole.buffer)
    pool.release(view)
    // split but under 4 KiB: a fresh exact-size array
    const small = decodeWith(decoder, splitBox(4000, 4).chunks).get("k")!
    assert.strictEqual(small.buffer.byteLength, 4000)
    pool.release(small)
    pool.release(new Uint8Array(8192))
    assert.strictEqual(pool.idleBytes(), 0)
    // a pooled value released twice is idle once: the next two values get different buffers
    const pooled = decodeWith(decoder, splitBox(5000, 5).chunks).get("k")!
    pool.release(pooled)
    pool.release(pooled)
    assert.strictEqual(pool.idleBytes(), 8192)
    const a = decodeWith(decoder, splitBox(5000, 6).chunks).get("k")!
    const b2 = decodeWith(decoder, splitBox(5000, 7).chunks).get("k")!
    assert.notStrictEqual(a.buffer, b2.buffer)
    assert.deepStrictEqual(a, splitBox(5000, 6).value)
    assert.deepStrictEqual(b2, splitBox(5000, 7).value)
  })

  it("maxIdleBytes bounds what is kept idle", () => {
    const pool = Box.makeValuePool({ maxIdleBytes: 20_000 })
    const decoder = Box.makeDecoder({ pool })
    const values = [1, 2, 3].map((seed) => decodeWith(decoder, splitBox(10_000, seed).chunks).get("k")!)
    for (const value of values) pool.release(value)
    assert.strictEqual(pool.idleBytes(), 16384)
    const off = Box.makeValuePool({ maxIdleBytes: 0 })
    const value = decodeWith(Box.makeDecoder({ pool: off }), splitBox(10_000, 9).chunks).get("k")!
    off.release(value)
    assert.strictEqual(off.idleBytes(), 0)
  })

  it("property: with a pool, any chunking gives the same boxes; released values are reused, kept ones stay intact", () => {
    const valueArb = fc.oneof(
      fc.integer({ min: 0, max: 40 }),
      fc.integer({ min: 3000, max: 65535 })
    ).chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 0, max: 255 })))
    const boxArbLarge = fc.dictionary(fc.constantFrom("a", "b", "data", "_ask"), valueArb, { minKeys: 1, maxKeys: 3 })
      .map((entries) =>
        Box.make(Object.fromEntries(Object.entries(entries).map(([k, [n, seed]]) => [k, filled(n, seed)])))
      )
    fc.assert(
      fc.property(
        fc.array(fc.tuple(boxArbLarge, fc.boolean()), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 0, max: 600_000 }), { maxLength: 12 }),
        (items, cuts) => {
          const boxes = items.map(([box]) => box)
          const bytes = Box.encodeAllUnsafe(boxes)
          const pool = Box.makeValuePool()
          const decoder = Box.makeDecoder({ pool })
          const decoded: Array<Box.Box> = []
          const kept: Array<[Box.Box, Box.Box]> = []
          for (const chunk of splitAt(bytes, cuts)) {
            const out: Array<Box.Box> = []
            assert.isUndefined(decoder.feed(chunk, out))
            for (const box of out) {
              const index = decoded.length
              decoded.push(box)
              assert.deepStrictEqual(canon(box), canon(boxes[index]!), `box ${index}`)
              // release some boxes right away, keep the others to the end
              if (items[index]![1]) for (const value of box.values()) pool.release(value)
              else kept.push([box, boxes[index]!])
            }
          }
          assert.strictEqual(decoded.length, boxes.length)
          for (const [box, expected] of kept) assert.deepStrictEqual(canon(box), canon(expected))
        }
      ),
      { numRuns: 150 }
    )
  })
})

describe("Box.encodeChunksUnsafe (gather writes)", () => {
  it("property: the chunks concatenate to encodeAllUnsafe; values of 16 KiB or more are referenced, not copied", () => {
    const valueArb = fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 16_000, max: 65535 }))
      .chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 0, max: 255 })))
    const boxArbLarge = fc.dictionary(fc.constantFrom("a", "b", "data", "_ask", "zz"), valueArb, { minKeys: 0, maxKeys: 4 })
      .map((entries) =>
        Box.make(Object.fromEntries(Object.entries(entries).map(([k, [n, seed]]) => [k, filled(n, seed)])))
      )
    fc.assert(
      fc.property(fc.array(boxArbLarge, { maxLength: 6 }), (boxes) => {
        const chunks = Box.encodeChunksUnsafe(boxes)
        assert.deepStrictEqual(concat(chunks), Box.encodeAllUnsafe(boxes))
        const large = boxes.flatMap((box) => Array.from(box.values()).filter((v) => v.length >= 16384))
        for (const value of large) assert.isTrue(chunks.includes(value), "a large value is passed through")
        assert.strictEqual(chunks.length, large.length === 0 ? 1 : 2 * large.length + 1)
      }),
      { numRuns: 200 }
    )
  })

  it("fails like encodeAllUnsafe on a box that cannot be framed", () => {
    assert.throws(() => Box.encodeChunksUnsafe([Box.make({ k: filled(20_000, 1) }), new Map([["", new Uint8Array(1)]])]))
    assert.throws(() => Box.encodeChunksUnsafe([new Map([["k", new Uint8Array(65536)]])]))
  })
})
