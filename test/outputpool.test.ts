/**
 * `Box.encodeChunksPooled` and `Box.makeOutputPool`: the gather encoding packed into recycled buffers.
 * The bytes must be exactly `encodeChunksUnsafe`'s; a buffer is reused only after `release`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as Box from "../src/Box.ts"
import { concatBytes } from "../src/internal/bytes.ts"

const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

const valueArb = fc.oneof(
  fc.uint8Array({ maxLength: 40 }),
  fc.integer({ min: 0, max: 65535 }).map((n) => new Uint8Array(n).fill(n & 0xff))
)
const boxArb = fc.dictionary(fc.string({ unit: "binary-ascii", minLength: 1, maxLength: 12 }), valueArb, { maxKeys: 5 })
  .map((record) => Box.make(record))
/** Some boxes carry a long text value (written straight into the pooled buffer). */
const outgoingArb = fc.tuple(boxArb, fc.option(fc.string({ unit: "grapheme", minLength: 1024, maxLength: 5000 }), { nil: undefined }))
  .map(([box, text]) => {
    if (text === undefined) return box
    const out = Box.makeOutgoing()
    for (const [k, v] of box) out.set(k, v)
    return out.setText("text", text)
  })

describe("Box.encodeChunksPooled", () => {
  it("property: the same chunks as encodeChunksUnsafe, with and without released buffers being reused", () => {
    const pool = Box.makeOutputPool()
    fc.assert(
      fc.property(fc.array(outgoingArb, { maxLength: 6 }), fc.boolean(), (boxes, release) => {
        const expected = Box.encodeChunksUnsafe(boxes)
        const chunks = Box.encodeChunksPooled(boxes, pool)
        assert.deepStrictEqual(chunks.map((c) => c.length), expected.map((c) => c.length))
        assert.strictEqual(hex(concatBytes(chunks)), hex(concatBytes(expected)))
        if (release) pool.release(chunks)
      }),
      { numRuns: 150 }
    )
  })

  it("reuses a buffer only after release; stale bytes never leak into the next output", () => {
    const pool = Box.makeOutputPool()
    const big = Box.make({ _ask: "1", data: new Uint8Array(10_000).fill(0xaa) })
    const first = Box.encodeChunksPooled([big], pool)
    assert.strictEqual(first.length, 1)
    const second = Box.encodeChunksPooled([big], pool)
    assert.notStrictEqual(second[0]!.buffer, first[0]!.buffer, "not released: a new buffer")
    pool.release(first)
    assert.strictEqual(pool.idleBytes(), 16 * 1024)
    // releasing again before reuse, or chunks the pool did not give out, changes nothing
    pool.release(first)
    pool.release([new Uint8Array(8192)])
    assert.strictEqual(pool.idleBytes(), 16 * 1024)
    const other = Box.make({ _ask: "2", data: new Uint8Array(9_000).fill(0x55) })
    const third = Box.encodeChunksPooled([other], pool)
    assert.strictEqual(third[0]!.buffer, first[0]!.buffer, "released: reused")
    assert.strictEqual(pool.idleBytes(), 0)
    assert.strictEqual(hex(third[0]!), hex(Box.encodeUnsafe(other)))
  })

  it("large byte values are referenced, not copied, and never taken into the pool", () => {
    const pool = Box.makeOutputPool()
    const value = new Uint8Array(40_000).fill(7)
    const chunks = Box.encodeChunksPooled([Box.make({ a: utf8("x".repeat(5000)), b: value })], pool)
    assert.strictEqual(chunks.length, 3)
    assert.strictEqual(chunks[1], value)
    pool.release(chunks)
    assert.strictEqual(value[0], 7)
    // the packed part (5 KiB and a bit) went back to the 8 KiB class; the referenced value did not
    assert.strictEqual(pool.idleBytes(), 8 * 1024)
  })

  it("small outputs are not pooled; idle memory stays under maxIdleBytes", () => {
    const pool = Box.makeOutputPool({ maxIdleBytes: 40 * 1024 })
    const small = Box.encodeChunksPooled([Box.make({ a: "1" })], pool)
    pool.release(small)
    assert.strictEqual(pool.idleBytes(), 0)
    const outs = Array.from({ length: 4 }, () => Box.encodeChunksPooled([Box.make({ d: new Uint8Array(12_000) })], pool))
    for (const chunks of outs) pool.release(chunks)
    assert.strictEqual(pool.idleBytes(), 32 * 1024) // two 16 KiB buffers kept, two left to the GC
  })

  it("a box that cannot be framed throws, and nothing is taken from the pool", () => {
    const pool = Box.makeOutputPool()
    const ok = Box.encodeChunksPooled([Box.make({ d: new Uint8Array(5000) })], pool)
    pool.release(ok)
    assert.strictEqual(pool.idleBytes(), 8 * 1024)
    assert.throws(() => Box.encodeChunksPooled([Box.make({ d: new Uint8Array(5000) }), Box.make({ "": "x" })], pool), /empty keys/)
    assert.strictEqual(pool.idleBytes(), 8 * 1024)
  })
})
