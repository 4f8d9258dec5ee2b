/**
 * The scalar argument types' codecs: Python's `int()` / `float()` / `repr()` grammars, strict UTF-8,
 * and the Decimal and DateTime text forms, each byte-exact with Twisted. `Argument.ts` exports them
 * under their public names.
 * @internal
 */
import { Schema } from "effect"
import * as NodePath from "node:path"
import * as DateTimeValue from "../DateTime.ts"
import * as DecimalValue from "../Decimal.ts"
import { CodecFailure, makeArgument } from "./argument.ts"
import { asciiBytes, decodeUtf8Pieces, latin1, pyBytesRepr, utf8Encoder, utf8Strict } from "./bytes.ts"
// ---------------------------------------------------------------------------------------------------
// shared helpers

const describeInput = (bytes: Uint8Array): string =>
  pyBytesRepr(bytes.length > 60 ? bytes.subarray(0, 60) : bytes) + (bytes.length > 60 ? "…" : "")

/** `globalThis.String`: this module exports its own `String` (the argument type), which shadows it. */
export const show = (u: unknown): string => globalThis.String(u)

export const typeName = (u: unknown): string => (u === null ? "null" : Array.isArray(u) ? "array" : typeof u)

/** Latin1 of bytes (exact for every byte; non-ASCII bytes then fail the ASCII grammars). */
export const text = (bytes: Uint8Array): string => latin1(bytes, 0, bytes.length)

/** ASCII bytes of a string produced by our own encoders. */
const ascii = asciiBytes

// ---------------------------------------------------------------------------------------------------
// Integer

/** Python `int()` of bytes: ASCII whitespace around, a sign, digits with single `_` between them. */
const INT_RE = /^[ \t\n\v\f\r]*[+-]?[0-9](?:_?[0-9])*[ \t\n\v\f\r]*$/
const INT_STRIP = /^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g
/** CPython's `sys.get_int_max_str_digits()` default. */
const MAX_INT_DIGITS = 4300

/** Fast path: `-?[0-9]{1,15}` exactly, as a number (always safe); undefined otherwise. */
const parseShortInt = (bytes: Uint8Array): number | undefined => {
  const n = bytes.length
  if (n === 0 || n > 15) return undefined
  let i = 0
  let negative = false
  if (bytes[0] === 45) {
    if (n === 1) return undefined
    negative = true
    i = 1
  }
  let value = 0
  for (; i < n; i++) {
    const d = bytes[i]! - 48
    if (d < 0 || d > 9) return undefined
    value = value * 10 + d
  }
  return negative ? -value : value
}

/** True for `-?[0-9]+` exactly (at most 4300 digits): `BigInt()` can take it as it is. */
const isPlainInt = (bytes: Uint8Array): boolean => {
  const n = bytes.length
  let i = bytes[0] === 45 ? 1 : 0
  if (i === n || n - i > MAX_INT_DIGITS) return false
  for (; i < n; i++) {
    const c = bytes[i]!
    if (c < 48 || c > 57) return false
  }
  return true
}

/** Slow path: the full `int()` grammar; throws `CodecFailure`. */
const parseLongInt = (bytes: Uint8Array): bigint => {
  const s = text(bytes)
  if (isPlainInt(bytes)) return BigInt(s)
  if (!INT_RE.test(s)) throw new CodecFailure(`invalid literal for int() with base 10: ${describeInput(bytes)}`)
  let core = s.replace(INT_STRIP, "")
  if (core.includes("_")) core = core.replaceAll("_", "")
  const digits = core.charCodeAt(0) === 43 || core.charCodeAt(0) === 45 ? core.length - 1 : core.length
  if (digits > MAX_INT_DIGITS) {
    throw new CodecFailure(`integer has ${digits} digits, over the limit of ${MAX_INT_DIGITS} (as in CPython)`)
  }
  return BigInt(core)
}

export const encodeBigInt = (value: bigint): Uint8Array => {
  if (typeof value !== "bigint") {
    throw new CodecFailure(`expected a bigint, got ${typeName(value)}${typeof value === "number" ? " (use Argument.SafeInteger for numbers)" : ""}`)
  }
  const s = value.toString()
  if (s.length > MAX_INT_DIGITS && s.length - (value < 0n ? 1 : 0) > MAX_INT_DIGITS) {
    throw new CodecFailure(`integer has more than ${MAX_INT_DIGITS} digits; Twisted (CPython) cannot read or write it`)
  }
  return ascii(s)
}

/** `BigInt(n)` for 0..1023, the most common wire integers. */
const SMALL_BIGINTS: ReadonlyArray<bigint> = Array.from({ length: 1024 }, (_, i) => BigInt(i))

export const IntegerArg = makeArgument({
  name: "Integer",
  keepsBytes: false,
  type: Schema.BigInt,
  encode: encodeBigInt,
  decode: (bytes) => {
    const small = parseShortInt(bytes)
    if (small === undefined) return parseLongInt(bytes)
    return small >= 0 && small < 1024 ? SMALL_BIGINTS[small]! : BigInt(small)
  }
})

export const SafeIntegerArg = makeArgument({
  name: "SafeInteger",
  keepsBytes: false,
  type: Schema.Int,
  encode: (value: number) => {
    if (!Number.isSafeInteger(value)) {
      throw new CodecFailure(`expected a safe integer (|n| ≤ 2^53−1), got ${typeName(value) === "number" ? value : typeName(value)}`)
    }
    return ascii("" + value)
  },
  decode: (bytes) => {
    const small = parseShortInt(bytes)
    if (small !== undefined) return small
    const big = parseLongInt(bytes)
    if (big > 9007199254740991n || big < -9007199254740991n) {
      throw new CodecFailure(`integer ${big.toString().slice(0, 40)} is beyond ±(2^53−1); use Argument.Integer (bigint)`)
    }
    return Number(big)
  }
})

// ---------------------------------------------------------------------------------------------------
// String, Unicode, Path

export const StringArg = makeArgument({
  name: "String",
  keepsBytes: true, // the value is the bytes themselves
  type: Schema.Uint8Array,
  encode: (value: Uint8Array) => {
    if (!(value instanceof Uint8Array)) throw new CodecFailure(`expected a Uint8Array, got ${typeName(value)}`)
    return value
  },
  decode: (bytes) => bytes
})

const loneSurrogate = (): CodecFailure =>
  new CodecFailure("'utf-8' codec can't encode a lone surrogate (the string is not well-formed UTF-16)")

/** `Buffer.from(s, "utf8")` (several times faster than `TextEncoder` in Node), as a plain Uint8Array view. */
const encodeLongUtf8: (value: string) => Uint8Array = typeof globalThis.Buffer === "function"
  ? (value) => {
    const buf = globalThis.Buffer.from(value, "utf8")
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
  }
  : (value) => utf8Encoder.encode(value)

/** Strict UTF-8 encoding (Python's `str.encode("utf-8")`): a lone surrogate fails. */
export const encodeUtf8 = (value: string): Uint8Array => {
  if (typeof value !== "string") throw new CodecFailure(`expected a string, got ${typeName(value)}`)
  const n = value.length
  if (n > 128) {
    if (!value.isWellFormed()) throw loneSurrogate()
    return encodeLongUtf8(value)
  }
  // short strings: two passes in JS (size, then write), no native call
  let size = 0
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i)
    if (c < 0x80) size += 1
    else if (c < 0x800) size += 2
    else if (c < 0xd800 || c > 0xdfff) size += 3
    else if (c <= 0xdbff && i + 1 < n && (value.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      size += 4
      i++
    } else throw loneSurrogate()
  }
  const out = new Uint8Array(size)
  if (size === n) {
    for (let i = 0; i < n; i++) out[i] = value.charCodeAt(i)
    return out
  }
  let pos = 0
  for (let i = 0; i < n; i++) {
    let c = value.charCodeAt(i)
    if (c < 0x80) out[pos++] = c
    else if (c < 0x800) {
      out[pos++] = 0xc0 | (c >> 6)
      out[pos++] = 0x80 | (c & 0x3f)
    } else if (c < 0xd800 || c > 0xdfff) {
      out[pos++] = 0xe0 | (c >> 12)
      out[pos++] = 0x80 | ((c >> 6) & 0x3f)
      out[pos++] = 0x80 | (c & 0x3f)
    } else {
      c = 0x10000 + ((c - 0xd800) << 10) + (value.charCodeAt(++i) - 0xdc00)
      out[pos++] = 0xf0 | (c >> 18)
      out[pos++] = 0x80 | ((c >> 12) & 0x3f)
      out[pos++] = 0x80 | ((c >> 6) & 0x3f)
      out[pos++] = 0x80 | (c & 0x3f)
    }
  }
  return out
}

export const decodeUtf8 = (bytes: Uint8Array): string => {
  const n = bytes.length
  if (n <= 64) {
    let i = 0
    while (i < n && bytes[i]! < 0x80) i++
    if (i === n) return latin1(bytes, 0, n)
  }
  try {
    return utf8Strict.decode(bytes)
  } catch {
    throw new CodecFailure(`'utf-8' codec can't decode ${describeInput(bytes)}: invalid UTF-8`)
  }
}

/** Strict UTF-8 decoding straight from the pieces a value arrived in (see `Box.pieces`). */
const decodeUtf8FromPieces = (pieces: ReadonlyArray<Uint8Array>): string => {
  try {
    return decodeUtf8Pieces(pieces)
  } catch {
    const first = pieces[0] ?? new Uint8Array(0)
    throw new CodecFailure(`'utf-8' codec can't decode ${describeInput(first)}…: invalid UTF-8`)
  }
}

/** The string itself, checked as `encodeUtf8` checks it: written as UTF-8 by the box encoder. */
const utf8Text = (value: string): string => {
  if (typeof value !== "string") throw new CodecFailure(`expected a string, got ${typeName(value)}`)
  if (!value.isWellFormed()) throw loneSurrogate()
  return value
}

export const UnicodeArg = makeArgument({
  name: "Unicode",
  keepsBytes: false,
  type: Schema.String,
  encode: encodeUtf8,
  decode: decodeUtf8,
  text: utf8Text,
  decodePieces: decodeUtf8FromPieces
})

/** Python's `os.path.abspath`: like `path.resolve`, but POSIX keeps exactly two leading slashes. */
const abspath = (p: string): string => {
  const resolved = NodePath.resolve(p)
  return p.startsWith("//") && !p.startsWith("///") && NodePath.sep === "/" ? "/" + resolved : resolved
}

export const PathArg = makeArgument({
  name: "Path",
  keepsBytes: false,
  type: Schema.String,
  encode: encodeUtf8,
  decode: (bytes) => abspath(decodeUtf8(bytes)),
  text: utf8Text,
  decodePieces: (pieces) => abspath(decodeUtf8FromPieces(pieces))
})

// ---------------------------------------------------------------------------------------------------
// Float

/** Python's `repr(float)` (Appendix A.1 of the spec). */
const floatRepr = (x: number): string => {
  if (x !== x) return "nan"
  if (x === Infinity) return "inf"
  if (x === -Infinity) return "-inf"
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0"
  const a = x < 0 ? -x : x
  if (a >= 1e-4 && a < 1e16) {
    // JS prints this range in fixed notation with the same shortest digits; Python adds ".0"
    const s = "" + x
    return s.includes(".") ? s : s + ".0"
  }
  const e = a.toExponential() // shortest round-trip digits, "d[.ddd]e±x"
  const at = e.indexOf("e")
  const exp = e.slice(at + 2)
  return (x < 0 ? "-" : "") + e.slice(0, at) + "e" + e[at + 1] + (exp.length === 1 ? "0" + exp : exp)
}

/** Python `float()` of bytes (Appendix A.4). */
const FLOAT_RE =
  /^[ \t\n\v\f\r]*[+-]?(?:(?:[0-9](?:_?[0-9])*(?:\.(?:[0-9](?:_?[0-9])*)?)?|\.[0-9](?:_?[0-9])*)(?:[eE][+-]?[0-9](?:_?[0-9])*)?|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])[ \t\n\v\f\r]*$/
const SPECIAL_RE = /[a-zA-Z]{3}/

/** True if every byte is one of `0-9 . e E + -`: then JS `Number()` and Python `float()` agree exactly. */
const isPlainFloatText = (bytes: Uint8Array): boolean => {
  const n = bytes.length
  if (n === 0 || n > 64) return false
  for (let i = 0; i < n; i++) {
    const c = bytes[i]!
    if (!((c >= 48 && c <= 57) || c === 46 || c === 101 || c === 69 || c === 43 || c === 45)) return false
  }
  return true
}

const parseFloatBytes = (bytes: Uint8Array): number => {
  if (isPlainFloatText(bytes)) {
    // fast path: in this alphabet both grammars are `[+-]?(d+[.d*]|.d+)([eE][+-]?d+)?`; NaN means invalid
    const v = Number(text(bytes))
    if (v === v) return v
    throw new CodecFailure(`could not convert string to float: ${describeInput(bytes)}`)
  }
  const s = text(bytes)
  if (!FLOAT_RE.test(s)) throw new CodecFailure(`could not convert string to float: ${describeInput(bytes)}`)
  let core = s.replace(INT_STRIP, "")
  if (SPECIAL_RE.test(core)) {
    const negative = core.charCodeAt(0) === 45
    const c = core.charCodeAt(negative || core.charCodeAt(0) === 43 ? 1 : 0) | 0x20
    return c === 0x6e /* n */ ? NaN : negative ? -Infinity : Infinity
  }
  if (core.includes("_")) core = core.replaceAll("_", "")
  return Number(core) // correctly rounded; overflow gives ±Infinity, underflow ±0
}

export const FloatArg = makeArgument({
  name: "Float",
  keepsBytes: false,
  type: Schema.Number,
  encode: (value: number) => {
    if (typeof value !== "number") throw new CodecFailure(`Bad float value: expected a number, got ${typeName(value)}`)
    return ascii(floatRepr(value))
  },
  decode: parseFloatBytes
})

// ---------------------------------------------------------------------------------------------------
// Boolean

export const BooleanArg = makeArgument({
  name: "Boolean",
  keepsBytes: false,
  type: Schema.Boolean,
  encode: (value: boolean) => {
    if (value === true) return new Uint8Array([84, 114, 117, 101])
    if (value === false) return new Uint8Array([70, 97, 108, 115, 101])
    throw new CodecFailure(`expected a boolean, got ${typeName(value)}`)
  },
  decode: (bytes) => {
    const n = bytes.length
    if (n === 4 && bytes[0] === 84 && bytes[1] === 114 && bytes[2] === 117 && bytes[3] === 101) return true
    if (n === 5 && bytes[0] === 70 && bytes[1] === 97 && bytes[2] === 108 && bytes[3] === 115 && bytes[4] === 101) {
      return false
    }
    throw new CodecFailure(`Bad boolean value: ${describeInput(bytes)}`)
  }
})

// ---------------------------------------------------------------------------------------------------
// Decimal, DateTime

export const DecimalArg = makeArgument({
  name: "Decimal",
  keepsBytes: false,
  type: DecimalValue.schema,
  encode: (value: DecimalValue.Decimal) => {
    if (!(value instanceof DecimalValue.Decimal)) {
      throw new CodecFailure(`amp.Decimal can only encode Decimal values, got ${typeName(value)}`)
    }
    return ascii(DecimalValue.toString(value))
  },
  decode: (bytes) => {
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i]! > 0x7f) throw new CodecFailure(`'ascii' codec can't decode ${describeInput(bytes)}`)
    }
    const d = DecimalValue.parse(text(bytes))
    if (d === undefined) throw new CodecFailure(`invalid decimal literal: ${describeInput(bytes)}`)
    return d
  }
})

export const DateTimeArg = makeArgument({
  name: "DateTime",
  keepsBytes: false,
  type: DateTimeValue.schema,
  encode: (value: DateTimeValue.DateTime) => {
    if (!(value instanceof DateTimeValue.DateTime)) {
      throw new CodecFailure(`amp.DateTime can only encode DateTime values, got ${typeName(value)}`)
    }
    const reason = DateTimeValue.invalidReason(
      value.year,
      value.month,
      value.day,
      value.hour,
      value.minute,
      value.second,
      value.microsecond,
      value.offsetMinutes
    )
    if (reason !== undefined) throw new CodecFailure(reason)
    return DateTimeValue.toBytes(value)
  },
  decode: (bytes) => {
    const r = DateTimeValue.parseBytes(bytes)
    if (typeof r === "string") throw new CodecFailure(`${r} in ${describeInput(bytes)}`)
    return r
  }
})
