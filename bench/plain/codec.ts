/**
 * A plain-Node AMP box codec: the straightforward Buffer-based parser and serializer a developer would
 * write in an afternoon, with no Effect. It is the `plainNode` baseline of the codec benchmarks, so it
 * is written to be reasonable, not slow: one leftover Buffer, `readUInt16BE`, latin1 keys, values as
 * views into the received data, and a serializer that sizes the output first and writes into one
 * `Buffer.allocUnsafe`.
 *
 * Semantics match Twisted's for well-formed input (keys sorted on send, last duplicate wins, an empty
 * key ends the box); a key length over 255 throws.
 */

export type PlainBox = Map<string, Uint8Array>

/** Incremental parser: `push(chunk)` returns the boxes completed so far. */
export class PlainParser {
  private buffer: Buffer = Buffer.alloc(0)

  push(chunk: Uint8Array): Array<PlainBox> {
    const data = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    const buf = this.buffer.length === 0 ? data : Buffer.concat([this.buffer, data])
    const boxes: Array<PlainBox> = []
    let start = 0 // start of the box being parsed
    outer: for (;;) {
      const box: PlainBox = new Map()
      let p = start
      for (;;) {
        if (p + 2 > buf.length) break outer
        const keyLength = buf.readUInt16BE(p)
        if (keyLength === 0) {
          p += 2
          boxes.push(box)
          start = p
          break
        }
        if (keyLength > 255) throw new Error(`key length ${keyLength} at ${p} is over 255`)
        if (p + 2 + keyLength + 2 > buf.length) break outer
        const key = buf.toString("latin1", p + 2, p + 2 + keyLength)
        p += 2 + keyLength
        const valueLength = buf.readUInt16BE(p)
        p += 2
        if (p + valueLength > buf.length) break outer
        box.set(key, buf.subarray(p, p + valueLength))
        p += valueLength
      }
    }
    this.buffer = buf.subarray(start)
    return boxes
  }
}

/** Serializes one box, keys sorted (byte-identical to Twisted's `AmpBox.serialize()`). */
export const serialize = (box: ReadonlyMap<string, Uint8Array>): Buffer => {
  const keys = [...box.keys()].sort()
  let size = 2
  for (const key of keys) {
    const value = box.get(key)!
    if (key.length === 0 || key.length > 255) throw new Error(`bad key length ${key.length}`)
    if (value.length > 65535) throw new Error(`value for ${key} too long: ${value.length}`)
    size += 4 + key.length + value.length
  }
  const out = Buffer.allocUnsafe(size)
  let p = 0
  for (const key of keys) {
    const value = box.get(key)!
    p = out.writeUInt16BE(key.length, p)
    p += out.write(key, p, "latin1")
    p = out.writeUInt16BE(value.length, p)
    out.set(value, p)
    p += value.length
  }
  out.writeUInt16BE(0, p)
  return out
}
