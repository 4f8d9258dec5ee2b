/**
 * Large values without a buffer per value: text written as UTF-8 straight into the encoded output
 * (`Box.makeOutgoing`), and values split across chunks kept as their pieces (`makeDecoder({ pieces })`),
 * decoded by the text argument types straight from the pieces.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as Argument from "../src/Argument.ts"
import * as Box from "../src/Box.ts"
import * as Command from "../src/Command.ts"
import { compileFields, FieldFailure } from "../src/internal/argument.ts"
import { bytesEqual, concatBytes } from "../src/internal/bytes.ts"

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)
const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")

/** Splits `bytes` at sorted, deduplicated positions (views, like socket reads of one buffer). */
const splitAt = (bytes: Uint8Array, points: ReadonlyArray<number>): Array<Uint8Array> => {
  const cuts = Array.from(new Set(points.map((p) => Math.max(0, Math.min(bytes.length, p))))).sort((x, y) => x - y)
  const chunks: Array<Uint8Array> = []
  let start = 0
  for (const cut of cuts) {
    chunks.push(bytes.slice(start, cut))
    start = cut
  }
  chunks.push(bytes.slice(start))
  return chunks
}

const decodeChunks = (chunks: ReadonlyArray<Uint8Array>, options?: Parameters<typeof Box.makeDecoder>[0]) => {
  const decoder = Box.makeDecoder(options)
  const out: Array<Box.Box> = []
  for (const chunk of chunks) {
    const error = decoder.feed(chunk, out)
    if (error) throw error
  }
  return out
}

/** Any well-formed string, biased towards long ones and multi-byte characters. */
const textArb = fc.oneof(
  fc.string({ unit: "binary", maxLength: 3000 }),
  fc.string({ unit: "grapheme", minLength: 1000, maxLength: 6000 }),
  fc.constantFrom("x".repeat(61440), "é".repeat(30000), "😀".repeat(16000), "a€😀".repeat(5000))
)

describe("Box.makeOutgoing: text encoded straight into the output", () => {
  it("property: encodes exactly like the same text given as UTF-8 bytes, in every encoder", () => {
    fc.assert(
      fc.property(textArb, fc.string({ maxLength: 20 }), (text, other) => {
        const outgoing = Box.makeOutgoing().setText("text", text)
        outgoing.set("_ask", utf8("1"))
        outgoing.set("other", utf8(other))
        const plain = Box.make({ text, _ask: "1", other })
        const expected = Box.encodeUnsafe(plain)
        assert.strictEqual(hex(Box.encodeUnsafe(outgoing)), hex(expected))
        assert.strictEqual(Box.encodedLength(outgoing), expected.length)
        assert.strictEqual(hex(Box.encodeAllUnsafe([outgoing, plain])), hex(concatBytes([expected, expected])))
        assert.strictEqual(hex(concatBytes(Box.encodeChunksUnsafe([plain, outgoing]))), hex(concatBytes([expected, expected])))
        // the text was never turned into a buffer of its own by encoding
        assert.strictEqual(Box.bytesIfPresent(outgoing, "text"), undefined)
        // reading it as bytes encodes it, once; then it is an ordinary value
        const bytes = outgoing.get("text")!
        assert.isTrue(bytesEqual(bytes, utf8(text)))
        assert.strictEqual(outgoing.get("text"), bytes)
        assert.strictEqual(hex(Box.encodeUnsafe(outgoing)), hex(expected))
      }),
      { numRuns: 60 }
    )
  })

  it("iterating, copying and overwriting see ordinary bytes", () => {
    const text = "ü".repeat(3000)
    const box = Box.makeOutgoing().setText("t", text)
    box.set("a", utf8("1"))
    assert.deepStrictEqual([...box.keys()], ["t", "a"])
    assert.strictEqual(box.size, 2)
    const copy = new Map(box)
    assert.isTrue(bytesEqual(copy.get("t")!, utf8(text)))
    const again = Box.makeOutgoing().setText("t", text)
    again.set("t", utf8("short"))
    assert.strictEqual(new TextDecoder().decode(again.get("t")!), "short")
    assert.strictEqual(Box.encodedLength(again), 2 + 4 + 1 + 5)
  })

  it("a text over 65535 UTF-8 bytes fails with TooLong when encoded; a lone surrogate is refused at once", () => {
    const box = Box.makeOutgoing().setText("big", "é".repeat(40000)) // 80000 bytes
    const length = Box.encodedLength(box)
    assert.instanceOf(length, Box.TooLong)
    assert.strictEqual((length as Box.TooLong).keyName, "big")
    assert.throws(() => Box.encodeUnsafe(box), /too long/)
    assert.throws(() => Box.encodeChunksUnsafe([box]), /too long/)
    assert.throws(() => Box.makeOutgoing().setText("bad", "a\ud800b"), TypeError)
  })

  it("a command with a Unicode argument encodes long text as text, short text as bytes", () => {
    const Echo = Command.make("Echo", { arguments: { value: Argument.Unicode }, response: { value: Argument.Unicode } })
    const long = "ß".repeat(5000)
    const box = Command.encodeArgumentsUnsafe(Echo, { value: long })
    assert.strictEqual(Box.bytesIfPresent(box, "value"), undefined)
    assert.isTrue(bytesEqual(Box.encodeUnsafe(box), Box.encodeUnsafe(Box.make({ _command: "Echo", value: long }))))
    const short = Command.encodeArgumentsUnsafe(Echo, { value: "hi" })
    assert.isTrue(bytesEqual(Box.bytesIfPresent(short, "value")!, utf8("hi")))
    // a lone surrogate is still an argument error, long or short
    assert.throws(() => Command.encodeArgumentsUnsafe(Echo, { value: "x".repeat(2000) + "\udc00" }), /lone surrogate/)
  })
})

describe("Box.makeDecoder({ pieces: true }): split values kept as their pieces", () => {
  const boxArb = fc.dictionary(
    fc.constantFrom("_ask", "a", "data", "zz"),
    fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 4000, max: 65535 }).map((n) => new Uint8Array(n).fill(n & 0xff))),
    { minKeys: 1, maxKeys: 4 }
  ).map((entries) => Box.make(entries))

  it("property: the same boxes as assembling, in any chunking; pieces are views of the chunks", () => {
    fc.assert(
      fc.property(fc.array(boxArb, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(300_000), { maxLength: 12 }), (boxes, cuts) => {
        const bytes = Box.encodeAllUnsafe(boxes)
        const chunks = splitAt(bytes, cuts)
        const assembled = decodeChunks(chunks)
        const lazy = decodeChunks(chunks, { pieces: true })
        assert.strictEqual(lazy.length, assembled.length)
        for (let i = 0; i < lazy.length; i++) {
          for (const [key, value] of assembled[i]!) {
            const pieces = Box.pieces(lazy[i]!, key)
            if (pieces !== undefined) {
              assert.isTrue(value.length >= 4096)
              assert.isTrue(bytesEqual(concatBytes(pieces), value))
              for (const piece of pieces) assert.isTrue(chunks.some((c) => c.buffer === piece.buffer))
              assert.strictEqual(Box.bytesIfPresent(lazy[i]!, key), undefined)
            }
          }
          // reading as an ordinary box assembles: the same contents, the same key order
          assert.deepStrictEqual([...lazy[i]!.keys()], [...assembled[i]!.keys()])
          assert.deepStrictEqual([...lazy[i]!].map(([k, v]) => [k, hex(v)]), [...assembled[i]!].map(([k, v]) => [k, hex(v)]))
          assert.strictEqual(hex(Box.encodeUnsafe(lazy[i]!)), hex(Box.encodeUnsafe(assembled[i]!)))
        }
      }),
      { numRuns: 80 }
    )
  })

  it("a pooled decoder assembles on demand into a pool buffer", () => {
    const pool = Box.makeValuePool()
    const value = new Uint8Array(10000).fill(7)
    const bytes = Box.encodeUnsafe(Box.make({ data: value }))
    const [box] = decodeChunks(splitAt(bytes, [100, 5000]), { pool, pieces: true })
    assert.isDefined(Box.pieces(box!, "data"))
    const assembled = box!.get("data")!
    assert.isTrue(bytesEqual(assembled, value))
    assert.strictEqual(Box.pieces(box!, "data"), undefined)
    pool.release(assembled)
    assert.isAbove(pool.idleBytes(), 0) // it came from the pool
  })
})

describe("text arguments decode straight from the pieces", () => {
  const fields = compileFields({ text: Argument.Unicode, path: Argument.optional(Argument.Path) })

  it("property: any text split anywhere (mid-character too) decodes to itself", () => {
    fc.assert(
      fc.property(textArb.filter((t) => utf8(t).length >= 4096 && utf8(t).length <= 65535), fc.array(fc.nat(70_000), { maxLength: 8 }), (text, cuts) => {
        const bytes = Box.encodeUnsafe(Box.make({ text }))
        const [box] = decodeChunks(splitAt(bytes, cuts), { pieces: true })
        const decoded = fields.decode(box!)
        assert.strictEqual(decoded.text, text)
      }),
      { numRuns: 60 }
    )
  })

  it("a value cut at every byte (inside 2-, 3- and 4-byte characters too), in two and three pieces, decodes to itself from the pieces", () => {
    // 1-, 2-, 3- and 4-byte characters in turn, over 4 KiB so that a split value is kept as pieces
    const text = "aé€😀".repeat(420)
    const bytes = Box.encodeUnsafe(Box.make({ text }))
    const start = bytes.length - 2 - utf8(text).length
    for (let cut = start + 1; cut < bytes.length - 2; cut++) {
      const [box] = decodeChunks(splitAt(bytes, [cut]), { pieces: true })
      assert.isDefined(Box.pieces(box!, "text"))
      assert.strictEqual(fields.decode(box!).text, text)
      // decoded from the pieces: they were not assembled into one buffer first
      assert.isDefined(Box.pieces(box!, "text"))
    }
    // two cuts close together: a character spread over three pieces
    for (let cut = start + 4000; cut < start + 4020; cut++) {
      for (let gap = 1; gap <= 4; gap++) {
        const [box] = decodeChunks(splitAt(bytes, [cut, cut + gap]), { pieces: true })
        assert.strictEqual(Box.pieces(box!, "text")!.length, 3)
        assert.strictEqual(fields.decode(box!).text, text)
      }
    }
  })

  it("invalid UTF-8 in pieces is a field failure, and the next value decodes cleanly", () => {
    const bad = new Uint8Array(6000).fill(0x61)
    bad[3000] = 0xe2 // a 3-byte lead byte followed by ASCII: invalid
    const bytes = Box.encodeUnsafe(Box.make({ text: bad }))
    const [box] = decodeChunks(splitAt(bytes, [2000, 3002]), { pieces: true })
    assert.isDefined(Box.pieces(box!, "text"))
    let failure: unknown
    try {
      fields.decode(box!)
    } catch (e) {
      failure = e
    }
    assert.instanceOf(failure, FieldFailure)
    assert.strictEqual((failure as FieldFailure).key, "text")
    // a multi-byte character cut in half at the end of the failed value must not leak into the next one
    const good = "€".repeat(2000)
    const next = Box.encodeUnsafe(Box.make({ text: good }))
    const [box2] = decodeChunks(splitAt(next, [1001, 4000]), { pieces: true })
    assert.strictEqual(fields.decode(box2!).text, good)
  })
})
