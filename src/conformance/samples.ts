/**
 * The sample values of the conformance service (`GetSamples` / `CheckSamples`), their exact wire bytes
 * as the spec lists them (built by hand, independent of the library's encoders), and the comparison
 * `CheckSamples` uses: Decimal by representation, floats with NaN = NaN and -0 ≠ 0, DateTime by every
 * field including the offset, bytes byte for byte, lists and AmpList elements member by member.
 *
 * @since 0.1.0
 */
import * as DateTime from "../DateTime.ts"
import * as Decimal from "../Decimal.ts"
import type * as C from "./commands.ts"
import { concatBytes } from "../internal/bytes.ts"

/** The type of the sample set (the `GetSamples` response). @since 0.1.0 @category models */
export type Samples = (typeof C.GetSamples)["responseSchema"]["Type"]

const bytesRange = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => i)

/** The two sample ITEMs. @since 0.1.0 @category samples */
export const sampleItems = (): Samples["items"] => [
  {
    id: 1n,
    name: "first",
    tags: ["a", "b"],
    weight: 2.5,
    children: [{ x: 1n, label: "one" }, { x: 2n }]
  },
  { id: 2n, name: "☃", tags: [], children: [] }
]

/** `héllo ☃ 🎉 日本語`. @since 0.1.0 @category samples */
export const UNICODE_TEXT = "h\u00e9llo \u2603 \u{1f389} \u65e5\u672c\u8a9e"

/** `/tmp/amp peer/ü.txt`. @since 0.1.0 @category samples */
export const SAMPLE_PATH = "/tmp/amp peer/\u00fc.txt"

/** The sample values. @since 0.1.0 @category samples */
export const samples: Samples = {
  int_zero: 0n,
  int_negative: -42n,
  int_big: 2n ** 100n,
  int_big_negative: -(2n ** 80n) - 1n,
  string_binary: bytesRange(256),
  string_empty: new Uint8Array(0),
  unicode_text: UNICODE_TEXT,
  unicode_empty: "",
  float_simple: 1.5,
  float_tenth: 0.1,
  float_negative_zero: -0,
  float_big: 1e300,
  float_tiny: 5e-324,
  float_nan: NaN,
  float_inf: Infinity,
  float_neg_inf: -Infinity,
  bool_true: true,
  bool_false: false,
  decimal_precise: Decimal.fromStringUnsafe("1.10"),
  decimal_big: Decimal.fromStringUnsafe("-123456789012345678901234567890.000000001"),
  decimal_exp: Decimal.fromStringUnsafe("1E+2"),
  decimal_neg_zero: Decimal.fromStringUnsafe("-0"),
  decimal_inf: Decimal.fromStringUnsafe("Infinity"),
  decimal_neg_inf: Decimal.fromStringUnsafe("-Infinity"),
  decimal_nan: Decimal.fromStringUnsafe("NaN"),
  datetime_utc: DateTime.makeUnsafe({
    year: 2012, month: 3, day: 4, hour: 5, minute: 6, second: 7, microsecond: 890123, offsetMinutes: 0
  }),
  datetime_plus: DateTime.makeUnsafe({
    year: 1999, month: 12, day: 31, hour: 23, minute: 59, second: 59, microsecond: 999999, offsetMinutes: 330
  }),
  datetime_minus: DateTime.makeUnsafe({
    year: 2000, month: 1, day: 1, hour: 0, minute: 0, second: 0, microsecond: 0, offsetMinutes: -480
  }),
  int_list: [0n, -1n, 2n ** 64n, 7n],
  int_list_empty: [],
  unicode_list: ["", "a", "\u2603", "\u{1f389}"],
  items: sampleItems(),
  items_empty: [],
  path: SAMPLE_PATH
}

// --- exact wire bytes ----------------------------------------------------------------------------------

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)
const ascii = utf8

const u16 = (n: number): Uint8Array => Uint8Array.of(n >> 8, n & 0xff)

/** Length-prefixed strings, as in a `ListOf`. */
const strings = (values: ReadonlyArray<Uint8Array>): Uint8Array => concatBytes(values.flatMap((v) => [u16(v.length), v]))

const compareBytes = (a: Uint8Array, b: Uint8Array): number => {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!
  return a.length - b.length
}

/** A box serialized by hand: keys sorted bytewise, each pair length-prefixed, then the empty key. */
const ser = (pairs: Record<string, Uint8Array>): Uint8Array => {
  const entries = Object.entries(pairs).map(([k, v]) => [ascii(k), v] as const).sort((x, y) => compareBytes(x[0], y[0]))
  return concatBytes([...entries.flatMap(([k, v]) => [u16(k.length), k, u16(v.length), v]), u16(0)])
}

/** The exact wire bytes of every sample key (from the spec's table). @since 0.1.0 @category samples */
export const expectedWire: ReadonlyMap<string, Uint8Array> = new Map<string, Uint8Array>([
  ["int_zero", ascii("0")],
  ["int_negative", ascii("-42")],
  ["int_big", ascii("1267650600228229401496703205376")],
  ["int_big_negative", ascii("-1208925819614629174706177")],
  ["string_binary", bytesRange(256)],
  ["string_empty", new Uint8Array(0)],
  ["unicode_text", utf8(UNICODE_TEXT)],
  ["unicode_empty", new Uint8Array(0)],
  ["float_simple", ascii("1.5")],
  ["float_tenth", ascii("0.1")],
  ["float_negative_zero", ascii("-0.0")],
  ["float_big", ascii("1e+300")],
  ["float_tiny", ascii("5e-324")],
  ["float_nan", ascii("nan")],
  ["float_inf", ascii("inf")],
  ["float_neg_inf", ascii("-inf")],
  ["bool_true", ascii("True")],
  ["bool_false", ascii("False")],
  ["decimal_precise", ascii("1.10")],
  ["decimal_big", ascii("-123456789012345678901234567890.000000001")],
  ["decimal_exp", ascii("1E+2")],
  ["decimal_neg_zero", ascii("-0")],
  ["decimal_inf", ascii("Infinity")],
  ["decimal_neg_inf", ascii("-Infinity")],
  ["decimal_nan", ascii("NaN")],
  ["datetime_utc", ascii("2012-03-04T05:06:07.890123-00:00")],
  ["datetime_plus", ascii("1999-12-31T23:59:59.999999+05:30")],
  ["datetime_minus", ascii("2000-01-01T00:00:00.000000-08:00")],
  ["int_list", strings([ascii("0"), ascii("-1"), ascii("18446744073709551616"), ascii("7")])],
  ["int_list_empty", new Uint8Array(0)],
  ["unicode_list", strings([utf8(""), utf8("a"), utf8("\u2603"), utf8("\u{1f389}")])],
  [
    "items",
    concatBytes([
      ser({
        id: ascii("1"),
        name: ascii("first"),
        tags: strings([ascii("a"), ascii("b")]),
        weight: ascii("2.5"),
        children: concatBytes([ser({ x: ascii("1"), label: ascii("one") }), ser({ x: ascii("2") })])
      }),
      ser({ id: ascii("2"), name: utf8("\u2603"), tags: new Uint8Array(0), children: new Uint8Array(0) })
    ])
  ],
  ["items_empty", new Uint8Array(0)],
  ["path", utf8(SAMPLE_PATH)]
])

// --- comparison ----------------------------------------------------------------------------------------

/**
 * Equality of decoded AMP values: NaN equals NaN, -0 differs from 0, Decimal by representation,
 * DateTime by every field (offset included), bytes byte for byte, arrays and records member by member
 * (an absent optional key equals `undefined`).
 *
 * @since 0.1.0
 * @category comparison
 */
export const same = (a: unknown, b: unknown): boolean => {
  if (typeof a === "number" && typeof b === "number") {
    if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b)
    return Object.is(a, b)
  }
  if (typeof a !== typeof b) return false
  if (typeof a !== "object" || a === null || b === null) return a === b
  if (a instanceof Decimal.Decimal || b instanceof Decimal.Decimal) {
    return a instanceof Decimal.Decimal && b instanceof Decimal.Decimal && Decimal.equals(a, b)
  }
  if (a instanceof DateTime.DateTime || b instanceof DateTime.DateTime) {
    return a instanceof DateTime.DateTime && b instanceof DateTime.DateTime && DateTime.equals(a, b)
  }
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && compareBytes(a, b) === 0
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]))
  }
  const ra = a as Record<string, unknown>
  const rb = b as Record<string, unknown>
  const keys = new Set([...Object.keys(ra), ...Object.keys(rb)])
  for (const key of keys) if (!same(ra[key], rb[key])) return false
  return true
}

/**
 * The sorted names of the sample keys whose value differs from the sample (what `CheckSamples` answers).
 *
 * @since 0.1.0
 * @category comparison
 */
export const compareSamples = (received: Readonly<Record<string, unknown>>): Array<string> =>
  Object.keys(samples)
    .filter((key) => !same(received[key], (samples as Record<string, unknown>)[key]))
    .sort()

/**
 * A short, readable rendering of a value for failure messages.
 *
 * @since 0.1.0
 * @category comparison
 */
export const show = (value: unknown, limit = 160): string => {
  const text = render(value)
  return text.length <= limit ? text : text.slice(0, limit) + "…"
}

const render = (value: unknown): string => {
  if (typeof value === "bigint") return `${value}n`
  if (typeof value === "number") return Object.is(value, -0) ? "-0" : String(value)
  if (typeof value === "string") return JSON.stringify(value)
  if (value instanceof Uint8Array) return `bytes(${Buffer.from(value).toString("hex")})`
  if (value instanceof Decimal.Decimal) return `Decimal(${Decimal.toString(value)})`
  if (value instanceof DateTime.DateTime) return `DateTime(${DateTime.toString(value)})`
  if (value instanceof Map) return `{${[...value].map(([k, v]) => `${k}: ${render(v)}`).join(", ")}}`
  if (Array.isArray(value)) return `[${value.map(render).join(", ")}]`
  if (typeof value === "object" && value !== null) {
    return `{${Object.entries(value).map(([k, v]) => `${k}: ${render(v)}`).join(", ")}}`
  }
  return String(value)
}
