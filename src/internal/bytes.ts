/**
 * Byte helpers shared by the codec layers. Private to effect-amp.
 * @internal
 */

/** Decodes bytes as latin1 (one character per byte): the lossless bytes → string mapping used for keys. */
export const latin1 = (bytes: Uint8Array, start: number, end: number): string => {
  const len = end - start
  if (len <= 32) {
    let s = ""
    for (let i = start; i < end; i++) s += String.fromCharCode(bytes[i]!)
    return s
  }
  let s = ""
  for (let i = start; i < end; i += 4096) {
    s += String.fromCharCode.apply(null, Array.from(bytes.subarray(i, Math.min(end, i + 4096))))
  }
  return s
}

/** Encodes a latin1 string (every char ≤ U+00FF) to bytes. */
export const fromLatin1 = (s: string): Uint8Array => {
  const out = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i)
  return out
}

/** Python's `repr(bytes)`, e.g. `b'WTF'`, `b"it's"` (Twisted's `UNHANDLED` description uses it). */
export const pyBytesRepr = (buf: Uint8Array): string => {
  const quote = buf.includes(0x27) && !buf.includes(0x22) ? 0x22 : 0x27
  let s = "b" + String.fromCharCode(quote)
  for (const c of buf) {
    if (c === quote || c === 0x5c) s += "\\" + String.fromCharCode(c)
    else if (c === 0x09) s += "\\t"
    else if (c === 0x0a) s += "\\n"
    else if (c === 0x0d) s += "\\r"
    else if (c < 0x20 || c >= 0x7f) s += "\\x" + c.toString(16).padStart(2, "0")
    else s += String.fromCharCode(c)
  }
  return s + String.fromCharCode(quote)
}

/** Encodes an ASCII string to bytes (callers guarantee ASCII). */
export const asciiBytes = fromLatin1

/** Strict UTF-8 decoder: invalid sequences (and encoded surrogates) throw a TypeError. */
export const utf8Strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
/** Lenient UTF-8 decoder (U+FFFD for invalid sequences), like Python's `decode("utf-8", "replace")`. */
export const utf8Replace = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true })
export const utf8Encoder = new TextEncoder()

/** Byte equality. */
export const bytesEqual = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Concatenates byte arrays into one new array. */
export const concatBytes = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  let size = 0
  for (const p of parts) size += p.length
  const out = new Uint8Array(size)
  let pos = 0
  for (const p of parts) {
    out.set(p, pos)
    pos += p.length
  }
  return out
}

/** ASCII-only upper-casing, as Python's `bytes.upper()` (latin1 letters above 0x7f are left alone). */
export const asciiUpper = (name: string): string => name.replace(/[a-z]+/g, (s) => s.toUpperCase())
// scratch for measuring UTF-8 lengths: one byte more than the longest value, so "does not fit" is visible
let lengthScratch: Uint8Array | undefined

/**
 * The UTF-8 length of `text` (a well-formed string), or -1 if it is over `max` bytes (max ≤ 65535).
 * One encoding pass into a reused scratch buffer: much cheaper than `Buffer.byteLength` or allocating
 * the encoding.
 */
export const utf8Length = (text: string, max: number): number => {
  if (text.length > max) return -1
  const scratch = (lengthScratch ??= new Uint8Array(0x10000))
  const { read, written } = utf8Encoder.encodeInto(text, scratch.subarray(0, max + 1))
  return read === text.length && written <= max ? written : -1
}

/**
 * Writes the UTF-8 of `text` into `out` at `at` (room for `length` bytes, its exact UTF-8 length);
 * returns the bytes written.
 */
export const encodeUtf8Into = (text: string, out: Uint8Array, at: number, length: number): number =>
  utf8Encoder.encodeInto(text, out.subarray(at, at + length)).written

let piecesDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/**
 * Strict UTF-8 decoding of a value given as consecutive pieces (a value that arrived across several
 * reads), without assembling them: a multi-byte character may straddle two pieces. Throws a TypeError
 * on invalid UTF-8, as `utf8Strict.decode` does.
 */
export const decodeUtf8Pieces = (pieces: ReadonlyArray<Uint8Array>): string => {
  const last = pieces.length - 1
  try {
    let text = ""
    for (let i = 0; i < last; i++) text += piecesDecoder.decode(pieces[i], { stream: true })
    return text + piecesDecoder.decode(pieces[last])
  } catch (error) {
    // a failed streaming decode may leave state behind: start the next value with a fresh decoder
    piecesDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
    throw error
  }
}

/** The power-of-two size class of `length` for a pool whose smallest buffers are `min` bytes. */
export const sizeClass = (min: number, length: number): number => {
  let c = 0
  while ((min << c) < length) c++
  return c
}
