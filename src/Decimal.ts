/**
 * A lossless decimal number: the value type of `Argument.Decimal` (Python's `decimal.Decimal`).
 *
 * Unlike `BigDecimal`, a `Decimal` keeps its *representation*: the sign, the coefficient digits and the
 * exponent. `1.10` stays `1.10` (coefficient 110, exponent −2), `-0` keeps its sign, `0E+6` its exponent,
 * and the special values `Infinity`, `-Infinity`, `NaN`, `-NaN`, `sNaN` and NaN payloads (`NaN123`)
 * exist. Text goes in with Python's `Decimal()` grammar and out as Python's `str(Decimal)`
 * (to-scientific-string), so values cross the wire exactly as Twisted sends them.
 *
 * This is a carrier, not an arithmetic library: convert with {@link toBigDecimal} to compute.
 *
 * @example
 * ```ts
 * import { Decimal } from "effect-amp"
 *
 * const price = Decimal.fromStringUnsafe("1.10")
 * Decimal.toString(price) // "1.10"
 * Decimal.equals(price, Decimal.fromStringUnsafe("1.1")) // false: different representation
 * Decimal.toString(Decimal.make({ coefficient: 15n, exponent: 8 })) // "1.5E+9"
 * ```
 *
 * @since 0.1.0
 */
import { BigDecimal, Equal, Hash, Option, Schema } from "effect"

/**
 * What kind of number a {@link Decimal} is.
 *
 * @since 0.1.0
 * @category models
 */
export type Kind = "finite" | "infinity" | "nan" | "snan"

/**
 * A decimal number with its exact representation. Build one with {@link make}, {@link fromString},
 * {@link infinity} or {@link nan}; the constructor does not validate.
 *
 * Equality ({@link equals}, and `Equal.equals` from effect) compares the representation: `1.10` and
 * `1.1` differ, `0` and `-0` differ, and two NaNs are equal when sign, kind and payload match.
 *
 * @since 0.1.0
 * @category models
 */
export class Decimal implements Equal.Equal {
  /** `finite`, `infinity`, `nan` (quiet) or `snan` (signaling). */
  readonly kind: Kind
  /** The sign bit (true for `-0`, `-Infinity`, `-NaN` too). */
  readonly negative: boolean
  /**
   * Decimal digits without leading zeros. Finite: the coefficient (`"0"` for zero). NaN/sNaN: the
   * payload (`""` for none). Infinity: `""`.
   */
  readonly coefficient: string
  /** The exponent of a finite number (a safe integer); 0 otherwise. The value is `coefficient × 10^exponent`. */
  readonly exponent: number

  constructor(kind: Kind, negative: boolean, coefficient: string, exponent: number) {
    this.kind = kind
    this.negative = negative
    this.coefficient = coefficient
    this.exponent = exponent
  }

  /** Python's `str(Decimal)`, e.g. `1.10`, `1E+2`, `-Infinity`, `sNaN12`. */
  toString(): string {
    return toString(this)
  }

  /** What `JSON.stringify` and Effect's pretty-printing show: `{ _id, value }`, value the wire form. */
  toJSON(): unknown {
    return { _id: "Decimal", value: toString(this) }
  }

  /** Effect's structural equality (`Equal.equals`): see {@link equals}. */
  [Equal.symbol](that: Equal.Equal): boolean {
    return that instanceof Decimal && equals(this, that)
  }

  /** Effect's hash, consistent with equality: the hash of the wire form. */
  [Hash.symbol](): number {
    return Hash.string(toString(this))
  }
}

/**
 * True for a {@link Decimal}.
 *
 * @since 0.1.0
 * @category guards
 */
export const isDecimal = (u: unknown): u is Decimal => u instanceof Decimal

const DIGITS = /^[0-9]+$/

const stripZeros = (digits: string): string => {
  let i = 0
  while (i < digits.length - 1 && digits.charCodeAt(i) === 48) i++
  return i === 0 ? digits : digits.slice(i)
}

/**
 * A finite decimal `coefficient × 10^exponent`. The sign is taken from `coefficient` unless `negative`
 * is given (needed for `-0`). `coefficient` may also be a string of ASCII digits. Throws a `RangeError`
 * for a non-integer or unsafe exponent, malformed digits, or a negative coefficient with
 * `negative: false`.
 *
 * @example
 * ```ts
 * import { Decimal } from "effect-amp"
 * Decimal.make({ coefficient: 110n, exponent: -2 }).toString() // "1.10"
 * Decimal.make({ coefficient: 0n, negative: true }).toString() // "-0"
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: {
  readonly coefficient: bigint | string
  readonly exponent?: number | undefined
  readonly negative?: boolean | undefined
}): Decimal => {
  const exponent = options.exponent ?? 0
  if (!Number.isSafeInteger(exponent)) throw new RangeError(`Decimal exponent must be a safe integer, got ${exponent}`)
  let digits: string
  let negative: boolean
  if (typeof options.coefficient === "bigint") {
    const c = options.coefficient
    if (c < 0n && options.negative === false) {
      throw new RangeError("Decimal: negative coefficient with negative: false")
    }
    negative = options.negative ?? c < 0n
    digits = (c < 0n ? -c : c).toString()
  } else {
    if (!DIGITS.test(options.coefficient)) {
      throw new RangeError(`Decimal coefficient must be ASCII digits, got ${JSON.stringify(options.coefficient)}`)
    }
    negative = options.negative ?? false
    digits = stripZeros(options.coefficient)
  }
  return new Decimal("finite", negative, digits, exponent === 0 ? 0 : exponent) // normalize -0 exponent
}

/**
 * `Infinity`, or `-Infinity` when `negative`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const infinity = (negative = false): Decimal => new Decimal("infinity", negative, "", 0)

/**
 * A NaN: quiet (`NaN`) by default, signaling (`sNaN`) with `signaling: true`, optionally negative and
 * with a diagnostic payload (`NaN123`). A zero payload is no payload, as in Python.
 *
 * @since 0.1.0
 * @category constructors
 */
export const nan = (options?: {
  readonly negative?: boolean | undefined
  readonly signaling?: boolean | undefined
  readonly payload?: bigint | undefined
}): Decimal => {
  const payload = options?.payload ?? 0n
  if (payload < 0n) throw new RangeError("Decimal NaN payload must not be negative")
  return new Decimal(
    options?.signaling === true ? "snan" : "nan",
    options?.negative ?? false,
    payload === 0n ? "" : payload.toString(),
    0
  )
}

// Python's Decimal(): strip [ \t\n\v\f\r\x1c-\x1f], delete every "_", then this (case-insensitive).
const CORE = /^([+-]?)(?:([0-9]*)(?:\.([0-9]*))?(?:e([+-]?[0-9]+))?|(inf(?:inity)?)|(s?)nan([0-9]*))$/i

const isStripped = (c: number): boolean => c === 32 || (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x1f)

/** @internal parse, `undefined` on a syntax error */
export const parse = (text: string): Decimal | undefined => {
  const n = text.length
  for (let i = 0; i < n; i++) if (text.charCodeAt(i) > 0x7f) return undefined
  let start = 0
  let end = n
  while (start < end && isStripped(text.charCodeAt(start))) start++
  while (end > start && isStripped(text.charCodeAt(end - 1))) end--
  let s = start === 0 && end === n ? text : text.slice(start, end)
  if (s.includes("_")) s = s.replaceAll("_", "")
  const m = CORE.exec(s)
  if (m === null) return undefined
  const negative = m[1] === "-"
  if (m[5] !== undefined) return new Decimal("infinity", negative, "", 0)
  if (m[7] !== undefined) {
    const payload = stripZeros(m[7])
    return new Decimal(m[6] === "" ? "nan" : "snan", negative, payload === "0" || payload === "" ? "" : payload, 0)
  }
  const int = m[2] ?? ""
  const frac = m[3] ?? ""
  if (int.length === 0 && frac.length === 0) return undefined // "", ".", "e5", "+"
  let exponent = 0
  if (m[4] !== undefined) {
    exponent = Number(m[4])
    if (!Number.isSafeInteger(exponent)) return undefined
  }
  exponent -= frac.length
  if (!Number.isSafeInteger(exponent)) return undefined
  return new Decimal("finite", negative, stripZeros(int + frac), exponent === 0 ? 0 : exponent)
}

/**
 * Parses text with Python's `Decimal()` grammar: surrounding whitespace (ASCII and `\x1c`–`\x1f`) is
 * ignored, every `_` is deleted, `e`/`E` exponents, `inf`/`infinity`/`nan`/`snan` in any case with a
 * sign, NaN payload digits. `None` for anything else, for non-ASCII text (Twisted decodes the wire
 * bytes as ASCII first), and for an exponent beyond ±(2^53−1) (Python allows up to about ±10^18).
 *
 * @example
 * ```ts
 * import { Decimal } from "effect-amp"
 * Decimal.fromString(" 1_000.50 ") // Option.some(1000.50)
 * Decimal.fromString("abc") // Option.none()
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromString = (text: string): Option.Option<Decimal> => Option.fromUndefinedOr(parse(text))

/**
 * {@link fromString} for trusted text (literals): throws a `SyntaxError` when the text is not a decimal.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromStringUnsafe = (text: string): Decimal => {
  const d = parse(text)
  if (d === undefined) throw new SyntaxError(`not a decimal: ${JSON.stringify(text.length > 80 ? text.slice(0, 80) + "…" : text)}`)
  return d
}

/**
 * Python's `str(Decimal)`: the General Decimal Arithmetic to-scientific-string. Plain notation when
 * the exponent is ≤ 0 and the adjusted exponent is ≥ −6, otherwise one digit before the point and
 * `E±n`. This is exactly what Twisted puts on the wire.
 *
 * @since 0.1.0
 * @category conversions
 */
export const toString = (d: Decimal): string => {
  const s = d.negative ? "-" : ""
  switch (d.kind) {
    case "infinity":
      return s + "Infinity"
    case "nan":
      return s + "NaN" + d.coefficient
    case "snan":
      return s + "sNaN" + d.coefficient
  }
  const coeff = d.coefficient
  const exp = d.exponent
  if (exp === 0) return s + coeff
  const leftdigits = exp + coeff.length
  const dotplace = exp <= 0 && leftdigits > -6 ? leftdigits : 1
  let body: string
  if (dotplace <= 0) body = "0." + "0".repeat(-dotplace) + coeff
  else if (dotplace >= coeff.length) body = coeff + "0".repeat(dotplace - coeff.length)
  else body = coeff.slice(0, dotplace) + "." + coeff.slice(dotplace)
  const e = leftdigits - dotplace
  return s + body + (e === 0 ? "" : (e > 0 ? "E+" : "E-") + Math.abs(e))
}

/**
 * Representation equality: same kind, sign, digits and exponent. `1.10` ≠ `1.1`, `0` ≠ `-0`,
 * `NaN` = `NaN` (unlike numeric comparison). Use {@link toBigDecimal} for numeric equality.
 *
 * @since 0.1.0
 * @category equivalence
 */
export const equals = (a: Decimal, b: Decimal): boolean =>
  a.kind === b.kind && a.negative === b.negative && a.coefficient === b.coefficient && a.exponent === b.exponent

/**
 * The exact `BigDecimal` of a finite decimal; `None` for Infinity and NaNs. Lossy only in what
 * `BigDecimal` cannot hold: the sign of `-0` and trailing-zero precision as a *representation*
 * (`1.10` becomes value 110, scale 2, which is still numerically exact).
 *
 * @since 0.1.0
 * @category conversions
 */
export const toBigDecimal = (d: Decimal): Option.Option<BigDecimal.BigDecimal> => {
  if (d.kind !== "finite") return Option.none()
  const value = BigInt(d.coefficient)
  return Option.some(BigDecimal.make(d.negative ? -value : value, -d.exponent))
}

/**
 * The decimal of a `BigDecimal`: coefficient `value`, exponent `−scale` (exact).
 *
 * @since 0.1.0
 * @category conversions
 */
export const fromBigDecimal = (bd: BigDecimal.BigDecimal): Decimal => make({ coefficient: bd.value, exponent: -bd.scale })

/**
 * Schema of the value type (an `instanceof Decimal` check). The wire codec is `Argument.Decimal`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const schema: Schema.declare<Decimal> = Schema.declare(isDecimal, {
  title: "Decimal",
  description: "a decimal number with its exact representation (Python's decimal.Decimal)"
})
