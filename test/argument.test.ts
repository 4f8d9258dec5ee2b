/**
 * The argument types (src/Argument.ts): the spec's §3 vectors and the conformance sample table, the
 * argument-level tests of Twisted's test_amp.py, typed decode failures, round-trip properties, and
 * byte-for-byte agreement with real Twisted (test/twisted/vectors.py) on edge and random values and on
 * fuzzed inputs to the lenient Python grammars.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Schema } from "effect"
import * as fc from "fast-check"
import * as NodePath from "node:path"
import * as Argument from "../src/Argument.ts"
import * as Box from "../src/Box.ts"
import * as DateTime from "../src/DateTime.ts"
import * as Decimal from "../src/Decimal.ts"
import { CodecFailure, compileFields, FieldFailure, fastCodecOf } from "../src/internal/argument.ts"
import { bytesEqual, fromLatin1, latin1 } from "../src/internal/bytes.ts"
import { describeTwisted, runPython, twistedDir } from "./support/twisted.ts"

// ---------------------------------------------------------------------------------------------------
// helpers

/** A Python-style byte literal written as a JS string, one char per byte. */
const b = (s: string): Uint8Array => fromLatin1(s)
const str = (bytes: Uint8Array): string => latin1(bytes, 0, bytes.length)
const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")
const unhex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, "hex"))
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

const encodeFast = <A>(arg: Schema.Codec<A, Uint8Array>, value: A): Uint8Array => fastCodecOf(arg).encode(value)
const decodeFast = <A>(arg: Schema.Codec<A, Uint8Array>, bytes: Uint8Array): A => fastCodecOf(arg).decode(bytes)

/** The `CodecFailure` a fast codec throws, or fails the test. */
const codecFailure = (f: () => unknown): CodecFailure => {
  try {
    f()
  } catch (e) {
    if (e instanceof CodecFailure) return e
    throw new Error(`expected a CodecFailure, got ${String(e)}`)
  }
  throw new Error("expected a CodecFailure, but it succeeded")
}

/** Asserts that decoding fails both through the fast codec and through Schema, and returns the reason. */
const decodeFails = <A>(arg: Schema.Codec<A, Uint8Array>, bytes: Uint8Array): string => {
  const exit = Schema.decodeUnknownExit(arg)(bytes)
  assert.isTrue(Exit.isFailure(exit), `Schema decode of ${JSON.stringify(str(bytes))} should fail`)
  return codecFailure(() => decodeFast(arg, bytes)).reason
}

const encodeFails = <A>(arg: Schema.Codec<A, Uint8Array>, value: unknown): string => {
  const exit = Schema.encodeUnknownExit(arg)(value)
  assert.isTrue(Exit.isFailure(exit), "Schema encode should fail")
  return codecFailure(() => encodeFast(arg, value as A)).reason
}

const dec = (text: string) => Decimal.fromStringUnsafe(text)
const dt = (
  year: number,
  month: number,
  day: number,
  hour = 0,
  minute = 0,
  second = 0,
  microsecond = 0,
  offsetMinutes = 0
) => DateTime.makeUnsafe({ year, month, day, hour, minute, second, microsecond, offsetMinutes })

const isLeap = (y: number) => y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0)
const daysIn = (y: number, m: number) => [31, isLeap(y) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]!

// ---------------------------------------------------------------------------------------------------
// a description of each type: its Twisted spec, JSON form (see vectors.py), equality and generator

interface Kind<A> {
  readonly name: string
  readonly py: unknown
  readonly arg: Schema.Codec<A, Uint8Array>
  readonly toJson: (a: A) => unknown
  readonly fromJson: (j: any) => A
  readonly equals: (x: A, y: A) => boolean
  readonly arb: fc.Arbitrary<A>
}

const floatBits = (x: number): string => {
  const view = new DataView(new ArrayBuffer(8))
  view.setFloat64(0, x)
  return hex(new Uint8Array(view.buffer))
}
const floatFromBits = (h: string): number => new DataView(unhex(h).buffer).getFloat64(0)

const decimalToJson = (d: Decimal.Decimal): unknown => {
  const sign = d.negative ? 1 : 0
  switch (d.kind) {
    case "infinity":
      return [sign, "", "F"]
    case "nan":
      return [sign, d.coefficient, "n"]
    case "snan":
      return [sign, d.coefficient, "N"]
    default:
      return [sign, d.coefficient, d.exponent]
  }
}
const decimalFromJson = ([sign, digits, exp]: [number, string, number | string]): Decimal.Decimal =>
  exp === "F"
    ? Decimal.infinity(sign === 1)
    : exp === "n" || exp === "N"
    ? Decimal.nan({ negative: sign === 1, signaling: exp === "N", payload: digits === "" ? 0n : BigInt(digits) })
    : Decimal.make({ coefficient: digits, exponent: exp as number, negative: sign === 1 })

const dateTimeToJson = (d: DateTime.DateTime): unknown => [
  d.year,
  d.month,
  d.day,
  d.hour,
  d.minute,
  d.second,
  d.microsecond,
  d.offsetMinutes
]
const dateTimeFromJson = (j: Array<number>): DateTime.DateTime =>
  DateTime.makeUnsafe({
    year: j[0]!,
    month: j[1]!,
    day: j[2]!,
    hour: j[3]!,
    minute: j[4]!,
    second: j[5]!,
    microsecond: j[6]!,
    offsetMinutes: j[7]!
  })

const decimalArb: fc.Arbitrary<Decimal.Decimal> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      negative: fc.boolean(),
      coefficient: fc.oneof(fc.bigInt({ min: 0n, max: 10n ** 40n }), fc.constantFrom(0n, 1n, 10n, 100n)),
      exponent: fc.oneof(fc.integer({ min: -12, max: 12 }), fc.integer({ min: -100_000, max: 100_000 }))
    }).map((o) => Decimal.make(o))
  },
  {
    weight: 1,
    arbitrary: fc.record({
      negative: fc.boolean(),
      signaling: fc.boolean(),
      payload: fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: 10n ** 20n }))
    }).map((o) => Decimal.nan(o))
  },
  { weight: 1, arbitrary: fc.boolean().map((n) => Decimal.infinity(n)) }
)

const dateTimeArb: fc.Arbitrary<DateTime.DateTime> = fc.record({
  year: fc.oneof(fc.integer({ min: 1, max: 9999 }), fc.constantFrom(1, 2000, 1900, 9999)),
  month: fc.integer({ min: 1, max: 12 }),
  day: fc.integer({ min: 1, max: 31 }),
  hour: fc.integer({ min: 0, max: 23 }),
  minute: fc.integer({ min: 0, max: 59 }),
  second: fc.integer({ min: 0, max: 59 }),
  microsecond: fc.oneof(fc.integer({ min: 0, max: 999999 }), fc.constantFrom(0, 999999)),
  offsetMinutes: fc.oneof(fc.integer({ min: -1439, max: 1439 }), fc.constantFrom(0, -1439, 1439, 60, -60))
}).map((p) => DateTime.makeUnsafe({ ...p, day: Math.min(p.day, daysIn(p.year, p.month)) }))

const pathSegment = fc.string({ unit: "binary", minLength: 1, maxLength: 8 }).filter((s) =>
  !s.includes("/") && !s.includes("\0") && s !== "." && s !== ".."
)

const Kinds = {
  Integer: {
    name: "Integer",
    py: "Integer",
    arg: Argument.Integer,
    toJson: (n: bigint) => n.toString(),
    fromJson: (j: string) => BigInt(j),
    equals: (x: bigint, y: bigint) => x === y,
    arb: fc.oneof(
      fc.integer().map(BigInt),
      fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
      fc.bigInt({ min: -(10n ** 400n), max: 10n ** 400n })
    )
  } satisfies Kind<bigint>,
  SafeInteger: {
    name: "SafeInteger",
    py: "Integer",
    arg: Argument.SafeInteger,
    toJson: (n: number) => String(n),
    fromJson: (j: string) => Number(j),
    equals: (x: number, y: number) => x === y,
    arb: fc.oneof(fc.maxSafeInteger(), fc.integer(), fc.constantFrom(0, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER))
  } satisfies Kind<number>,
  String: {
    name: "String",
    py: "String",
    arg: Argument.String,
    toJson: (x: Uint8Array) => hex(x),
    fromJson: (j: string) => unhex(j),
    equals: bytesEqual,
    arb: fc.uint8Array({ maxLength: 100 })
  } satisfies Kind<Uint8Array>,
  Unicode: {
    name: "Unicode",
    py: "Unicode",
    arg: Argument.Unicode,
    toJson: (s: string) => s,
    fromJson: (j: string) => j,
    equals: (x: string, y: string) => x === y,
    arb: fc.oneof(fc.string({ unit: "binary", maxLength: 40 }), fc.string({ maxLength: 80 }))
  } satisfies Kind<string>,
  Float: {
    name: "Float",
    py: "Float",
    arg: Argument.Float,
    toJson: floatBits,
    fromJson: floatFromBits,
    equals: (x: number, y: number) => Object.is(x, y),
    arb: fc.oneof(
      fc.double(),
      fc.double({ min: -1e6, max: 1e6 }),
      fc.integer().map((n) => n / 1000),
      fc.constantFrom(1e16, 1e15, 9999999999999998, 1e-4, 1e-5, 0.00009999999999999999, 1e21, 1e22, 123e-20)
    )
  } satisfies Kind<number>,
  Boolean: {
    name: "Boolean",
    py: "Boolean",
    arg: Argument.Boolean,
    toJson: (x: boolean) => x,
    fromJson: (j: boolean) => j,
    equals: (x: boolean, y: boolean) => x === y,
    arb: fc.boolean()
  } satisfies Kind<boolean>,
  Decimal: {
    name: "Decimal",
    py: "Decimal",
    arg: Argument.Decimal,
    toJson: decimalToJson,
    fromJson: decimalFromJson,
    equals: Decimal.equals,
    arb: decimalArb
  } satisfies Kind<Decimal.Decimal>,
  DateTime: {
    name: "DateTime",
    py: "DateTime",
    arg: Argument.DateTime,
    toJson: dateTimeToJson,
    fromJson: dateTimeFromJson,
    equals: DateTime.equals,
    arb: dateTimeArb
  } satisfies Kind<DateTime.DateTime>,
  Path: {
    name: "Path",
    py: "Path",
    arg: Argument.Path,
    toJson: (s: string) => s,
    fromJson: (j: string) => j,
    equals: (x: string, y: string) => x === y,
    arb: fc.array(pathSegment, { maxLength: 4 }).map((segments) => "/" + segments.join("/"))
  } satisfies Kind<string>
}

const listOf = <A>(el: Kind<A>): Kind<ReadonlyArray<A>> => ({
  name: `ListOf(${el.name})`,
  py: { ListOf: el.py },
  arg: Argument.ListOf(el.arg),
  toJson: (xs) => xs.map(el.toJson),
  fromJson: (j: Array<unknown>) => j.map(el.fromJson),
  equals: (xs, ys) => xs.length === ys.length && xs.every((x, i) => el.equals(x, ys[i]!)),
  arb: fc.array(el.arb, { maxLength: 6 })
})

type KindFields = Record<string, { readonly kind: Kind<any>; readonly optional?: boolean }>

const ampList = (fields: KindFields): Kind<ReadonlyArray<Record<string, unknown>>> => {
  const argFields: Record<string, Argument.Field> = {}
  const records: Record<string, fc.Arbitrary<unknown>> = {}
  const required: Array<string> = []
  for (const [key, f] of Object.entries(fields)) {
    argFields[key] = f.optional ? Argument.optional(f.kind.arg) : f.kind.arg
    records[key] = f.kind.arb
    if (!f.optional) required.push(key)
  }
  const mapElement = (e: Record<string, unknown>, g: (k: Kind<any>, v: any) => unknown) => {
    const out: Record<string, unknown> = {}
    for (const [key, f] of Object.entries(fields)) if (key in e) out[key] = g(f.kind, e[key])
    return out
  }
  return {
    name: "AmpList",
    py: { AmpList: Object.entries(fields).map(([key, f]) => [key, f.kind.py, f.optional === true]) },
    arg: Argument.AmpList(argFields) as unknown as Schema.Codec<ReadonlyArray<Record<string, unknown>>, Uint8Array>,
    toJson: (xs) => xs.map((e) => mapElement(e, (k, v) => k.toJson(v))),
    fromJson: (j: Array<Record<string, unknown>>) => j.map((e) => mapElement(e, (k, v) => k.fromJson(v))),
    equals: (xs, ys) =>
      xs.length === ys.length && xs.every((x, i) => {
        const y = ys[i]!
        return Object.keys(fields).every((key) =>
          key in x ? key in y && fields[key]!.kind.equals(x[key], y[key]) : !(key in y)
        )
      }),
    arb: fc.array(fc.record(records, { requiredKeys: required }), { maxLength: 4 })
  }
}

// The conformance ITEM (spec/conformance-service.md)
const Child = ampList({ x: { kind: Kinds.Integer }, label: { kind: Kinds.Unicode, optional: true } })
const Item = ampList({
  id: { kind: Kinds.Integer },
  name: { kind: Kinds.Unicode },
  tags: { kind: listOf(Kinds.Unicode) },
  weight: { kind: Kinds.Float, optional: true },
  children: { kind: Child }
})
const Mangled = ampList({
  from: { kind: Kinds.Unicode },
  "dashed-name": { kind: Kinds.Integer },
  print: { kind: Kinds.Boolean, optional: true }
})
const Deep = ampList({ a: { kind: ampList({ b: { kind: ampList({ c: { kind: listOf(Kinds.Decimal) } }) } }) } })

// ---------------------------------------------------------------------------------------------------
// the spec's vectors: [kind, value, exact wire bytes]

type Vector = readonly [Kind<any>, unknown, string]

const huge = 9999999999999999999999999999999999999999999999999999999999n ** 2n

const specVectors: ReadonlyArray<Vector> = [
  // §3.1 Integer
  [Kinds.Integer, 2n ** 64n, "18446744073709551616"],
  [Kinds.Integer, -(2n ** 100n), "-1267650600228229401496703205376"],
  [listOf(Kinds.Integer), [1n, 20n, 500n], "\x00\x011\x00\x0220\x00\x03500"],
  [listOf(Kinds.Integer), [-1n], "\x00\x02-1"],
  [listOf(Kinds.Integer), [10n], "\x00\x0210"],
  [listOf(Kinds.Integer), [], ""],
  [listOf(Kinds.Integer), [huge], "\x00\x74" + huge.toString()],
  // §3.3 Unicode
  [Kinds.Unicode, "wor\u1234ld", "wor\xe1\x88\xb4ld"],
  [Kinds.Unicode, "\u2603", "\xe2\x98\x83"],
  [Kinds.Unicode, "\u{1F600}", "\xf0\x9f\x98\x80"],
  [Kinds.Unicode, "\ufeffA", "\xef\xbb\xbfA"],
  // §3.5 Float
  ...([
    [0, "0.0"],
    [-0, "-0.0"],
    [1, "1.0"],
    [1.234, "1.234"],
    [0.1, "0.1"],
    [1 / 3, "0.3333333333333333"],
    [100, "100.0"],
    [1e15, "1000000000000000.0"],
    [1e16, "1e+16"],
    [1.5e16, "1.5e+16"],
    [1.2345678901234568e17, "1.2345678901234568e+17"],
    [1e22, "1e+22"],
    [1e21, "1e+21"],
    [1e-4, "0.0001"],
    [1e-5, "1e-05"],
    [0.00012345, "0.00012345"],
    [1.5e-7, "1.5e-07"],
    [5e-324, "5e-324"],
    [1.7976931348623157e308, "1.7976931348623157e+308"],
    [2.5e300, "2.5e+300"],
    [-1e-5, "-1e-05"],
    [NaN, "nan"],
    [Infinity, "inf"],
    [-Infinity, "-inf"]
  ] as const).map(([v, w]): Vector => [Kinds.Float, v, w]),
  [listOf(Kinds.Float), [1.5, NaN], "\x00\x031.5\x00\x03nan"],
  // §3.6 Boolean
  [Kinds.Boolean, true, "True"],
  [Kinds.Boolean, false, "False"],
  [listOf(Kinds.Boolean), [true, false], "\x00\x04True\x00\x05False"],
  // §3.7 Decimal
  ...([
    "0",
    "-0",
    "0.0",
    "0.00",
    "-0.00",
    "1",
    "-1",
    "1.0",
    "10",
    "100",
    "1E+2",
    "0.1",
    "1.5E+2",
    "1E+6",
    "0E+6",
    "0E-7",
    "0.000001",
    "1E-7",
    "1.23E-8",
    "3.141E+5",
    "0.00003141",
    "3.141E-7",
    "1.5E-9",
    "5E-324",
    "1E+999999",
    "12345678901234567890.123456789",
    "NaN",
    "-NaN",
    "sNaN",
    "-sNaN",
    "NaN123",
    "Infinity",
    "-Infinity"
  ]).map((text): Vector => [Kinds.Decimal, dec(text), text]),
  ...([["1e6", "1E+6"], ["0e6", "0E+6"], ["1E-1", "0.1"], ["0.0000001", "1E-7"], ["123E-10", "1.23E-8"], [
    "3.141e-5",
    "0.00003141"
  ]] as const).map(([input, wire]): Vector => [Kinds.Decimal, dec(input), wire]),
  [listOf(Kinds.Decimal), [dec("1.1")], "\x00\x031.1"],
  [listOf(Kinds.Decimal), [dec("Infinity"), dec("-Infinity")], "\x00\x08Infinity\x00\x09-Infinity"],
  [listOf(Kinds.Decimal), ["NaN", "-NaN", "sNaN", "-sNaN"].map(dec), "\x00\x03NaN\x00\x04-NaN\x00\x04sNaN\x00\x05-sNaN"],
  [
    listOf(Kinds.Decimal),
    ["3.141E5", "3.141e-5", "3.141E-7", "-3.141e5", "-3.141E-5", "-3.141e-7"].map(dec),
    "\x00\x083.141E+5\x00\x0a0.00003141\x00\x083.141E-7\x00\x09-3.141E+5\x00\x0b-0.00003141\x00\x09-3.141E-7"
  ],
  [listOf(Kinds.Decimal), [dec("0e6"), dec("1.5E-9")], "\x00\x040E+6\x00\x061.5E-9"],
  // §3.8 DateTime
  [Kinds.DateTime, dt(2010, 12, 25), "2010-12-25T00:00:00.000000-00:00"],
  [Kinds.DateTime, dt(9876, 1, 23, 12, 34, 56, 54321, -83), "9876-01-23T12:34:56.054321-01:23"],
  [Kinds.DateTime, dt(1, 1, 1, 0, 0, 0, 1, 210), "0001-01-01T00:00:00.000001+03:30"],
  [Kinds.DateTime, dt(2010, 12, 25, 0, 0, 0, 0, -300), "2010-12-25T00:00:00.000000-05:00"],
  [Kinds.DateTime, dt(2010, 12, 25, 0, 0, 0, 0, 1439), "2010-12-25T00:00:00.000000+23:59"],
  [Kinds.DateTime, dt(2010, 12, 25, 0, 0, 0, 0, -1439), "2010-12-25T00:00:00.000000-23:59"],
  [
    listOf(Kinds.DateTime),
    [dt(2010, 12, 25), dt(2010, 12, 25, 0, 0, 0, 0, 60), dt(2010, 12, 25, 0, 0, 0, 0, 199), dt(2010, 12, 25, 0, 0, 0, 0, -419)],
    "\x00\x202010-12-25T00:00:00.000000-00:00\x00\x202010-12-25T00:00:00.000000+01:00" +
    "\x00\x202010-12-25T00:00:00.000000+03:19\x00\x202010-12-25T00:00:00.000000-06:59"
  ],
  // §3.9 ListOf
  [listOf(Kinds.String), [b(""), b("a")], "\x00\x00\x00\x01a"],
  [listOf(Kinds.String), [b("bar"), b("baz"), b("quux")], "\x00\x03bar\x00\x03baz\x00\x04quux"],
  [listOf(Kinds.Unicode), ["\u2603", "Hello", "world"], "\x00\x03\xe2\x98\x83\x00\x05Hello\x00\x05world"],
  [listOf(listOf(Kinds.Integer)), [[1n, 2n], []], "\x00\x06\x00\x011\x00\x012\x00\x00"],
  // §3.10 AmpList
  [
    ampList({ a: { kind: Kinds.Integer }, b: { kind: Kinds.Unicode } }),
    [{ a: 7n, b: "hello" }, { a: 9n, b: "goodbye" }],
    "\x00\x01a\x00\x017\x00\x01b\x00\x05hello\x00\x00\x00\x01a\x00\x019\x00\x01b\x00\x07goodbye\x00\x00"
  ],
  [ampList({ a: { kind: Kinds.Integer, optional: true } }), [{}, {}], "\x00\x00\x00\x00"],
  [
    ampList({ x: { kind: ampList({ y: { kind: listOf(Kinds.Integer) } }) } }),
    [{ x: [{ y: [1n, 2n] }] }],
    "\x00\x01x\x00\r\x00\x01y\x00\x06\x00\x011\x00\x012\x00\x00\x00\x00"
  ],
  [
    ampList({ x: { kind: Kinds.Integer } }),
    [{ x: 1n }, { x: 1n }, { x: 1n }],
    "\x00\x01x\x00\x011\x00\x00\x00\x01x\x00\x011\x00\x00\x00\x01x\x00\x011\x00\x00"
  ]
]

// The conformance service's sample values (spec/conformance-service.md)
const allBytes = new Uint8Array(256).map((_, i) => i)
const sampleItems = [
  {
    id: 1n,
    name: "first",
    tags: ["a", "b"],
    weight: 2.5,
    children: [{ x: 1n, label: "one" }, { x: 2n }]
  },
  { id: 2n, name: "\u2603", tags: [], children: [] }
]
const sampleVectors: ReadonlyArray<Vector> = [
  [Kinds.Integer, 0n, "0"],
  [Kinds.Integer, -42n, "-42"],
  [Kinds.Integer, 2n ** 100n, "1267650600228229401496703205376"],
  [Kinds.Integer, -(2n ** 80n) - 1n, "-1208925819614629174706177"],
  [Kinds.String, allBytes, str(allBytes)],
  [Kinds.String, new Uint8Array(0), ""],
  [Kinds.Unicode, "h\u00e9llo \u2603 \u{1F389} \u65e5\u672c\u8a9e", str(utf8("h\u00e9llo \u2603 \u{1F389} \u65e5\u672c\u8a9e"))],
  [Kinds.Unicode, "", ""],
  [Kinds.Float, 1.5, "1.5"],
  [Kinds.Float, 0.1, "0.1"],
  [Kinds.Float, -0, "-0.0"],
  [Kinds.Float, 1e300, "1e+300"],
  [Kinds.Float, 5e-324, "5e-324"],
  [Kinds.Float, NaN, "nan"],
  [Kinds.Float, Infinity, "inf"],
  [Kinds.Float, -Infinity, "-inf"],
  [Kinds.Boolean, true, "True"],
  [Kinds.Boolean, false, "False"],
  ...["1.10", "-123456789012345678901234567890.000000001", "1E+2", "-0", "Infinity", "-Infinity", "NaN"].map((
    text
  ): Vector => [Kinds.Decimal, dec(text), text]),
  [Kinds.DateTime, dt(2012, 3, 4, 5, 6, 7, 890123), "2012-03-04T05:06:07.890123-00:00"],
  [Kinds.DateTime, dt(1999, 12, 31, 23, 59, 59, 999999, 330), "1999-12-31T23:59:59.999999+05:30"],
  [Kinds.DateTime, dt(2000, 1, 1, 0, 0, 0, 0, -480), "2000-01-01T00:00:00.000000-08:00"],
  [listOf(Kinds.Integer), [0n, -1n, 2n ** 64n, 7n], "\x00\x010\x00\x02-1\x00\x1418446744073709551616\x00\x017"],
  [listOf(Kinds.Integer), [], ""],
  [listOf(Kinds.Unicode), ["", "a", "\u2603", "\u{1F389}"], "\x00\x00\x00\x01a\x00\x03\xe2\x98\x83\x00\x04\xf0\x9f\x8e\x89"],
  [
    Item,
    sampleItems,
    str(Box.encodeAllUnsafe([
      Box.make({
        id: "1",
        name: "first",
        tags: b("\x00\x01a\x00\x01b"),
        weight: "2.5",
        children: Box.encodeAllUnsafe([Box.make({ x: "1", label: "one" }), Box.make({ x: "2" })])
      }),
      Box.make({ id: "2", name: "\u2603", tags: "", children: "" })
    ]))
  ],
  [Item, [], ""],
  [Kinds.Path, "/tmp/amp peer/\u00fc.txt", "/tmp/amp peer/\xc3\xbc.txt"]
]

describe("vectors", () => {
  it("spec §3 and the conformance samples: exact encoding, and decoding back", () => {
    for (const [kind, value, wire] of [...specVectors, ...sampleVectors]) {
      const encoded = encodeFast(kind.arg, value)
      assert.strictEqual(str(encoded), wire, `${kind.name} encode`)
      assert.strictEqual(str(Schema.encodeSync(kind.arg)(value)), wire, `${kind.name} encode via Schema`)
      const decoded = decodeFast(kind.arg, b(wire))
      assert.isTrue(kind.equals(decoded, value), `${kind.name} decode of ${JSON.stringify(wire)}`)
      assert.isTrue(kind.equals(Schema.decodeUnknownSync(kind.arg)(b(wire)), value), `${kind.name} decode via Schema`)
    }
  })

  it("the conformance ITEM sample, byte by byte", () => {
    const wire = encodeFast(Item.arg, sampleItems)
    const expected = "\x00\x08children\x00\x1c" +
      "\x00\x05label\x00\x03one\x00\x01x\x00\x011\x00\x00" + "\x00\x01x\x00\x012\x00\x00" +
      "\x00\x02id\x00\x011\x00\x04name\x00\x05first\x00\x04tags\x00\x06\x00\x01a\x00\x01b" +
      "\x00\x06weight\x00\x032.5\x00\x00" +
      "\x00\x08children\x00\x00\x00\x02id\x00\x012\x00\x04name\x00\x03\xe2\x98\x83\x00\x04tags\x00\x00\x00\x00"
    assert.strictEqual(str(wire), expected)
  })

  it("wire keys that are not identifiers are plain object keys", () => {
    const value = [{ from: "x", "dashed-name": 5n }, { from: "", "dashed-name": -1n, print: true }]
    const wire = encodeFast(Mangled.arg, value)
    assert.strictEqual(
      str(wire),
      "\x00\x0bdashed-name\x00\x015\x00\x04from\x00\x01x\x00\x00" +
        "\x00\x0bdashed-name\x00\x02-1\x00\x04from\x00\x00\x00\x05print\x00\x04True\x00\x00"
    )
    assert.isTrue(Mangled.equals(decodeFast(Mangled.arg, wire), value))
    const fields = compileFields({ from: Argument.Unicode, "dashed-name": Argument.Integer })
    const box = new Map<string, Uint8Array>()
    fields.encode({ from: "a", "dashed-name": 1n }, box)
    assert.deepStrictEqual([...box.keys()].sort(), ["dashed-name", "from"])
    assert.deepStrictEqual(fields.decode(box), { from: "a", "dashed-name": 1n })
  })
})

// ---------------------------------------------------------------------------------------------------
// Twisted's own test_amp.py, argument level

describe("Twisted test_amp.py", () => {
  it("ParsingTests.test_booleanValues", () => {
    assert.strictEqual(decodeFast(Argument.Boolean, b("True")), true)
    assert.strictEqual(decodeFast(Argument.Boolean, b("False")), false)
    for (const bad of ["ninja", "true", "TRUE"]) decodeFails(Argument.Boolean, b(bad))
    assert.strictEqual(str(encodeFast(Argument.Boolean, true)), "True")
    assert.strictEqual(str(encodeFast(Argument.Boolean, false)), "False")
  })

  it("ParsingTests.test_pathValueRoundTrip", () => {
    const path = NodePath.resolve("some", "file.txt")
    const back = decodeFast(Argument.Path, encodeFast(Argument.Path, path))
    assert.strictEqual(back, path)
  })

  const listOfCases: ReadonlyArray<readonly [string, Kind<any>, Record<string, readonly [Array<unknown>, string]>]> = [
    ["ListOfStringsTests", Kinds.String, {
      empty: [[], ""],
      single: [[b("foo")], "\x00\x03foo"],
      multiple: [[b("bar"), b("baz"), b("quux")], "\x00\x03bar\x00\x03baz\x00\x04quux"]
    }],
    ["ListOfIntegersTests", Kinds.Integer, {
      empty: [[], ""],
      single: [[10n], "\x00\x0210"],
      multiple: [[1n, 20n, 500n], "\x00\x011\x00\x0220\x00\x03500"],
      huge: [[huge], "\x00\x74" + huge.toString()],
      negative: [[-1n], "\x00\x02-1"]
    }],
    ["ListOfUnicodeTests", Kinds.Unicode, {
      empty: [[], ""],
      single: [["foo"], "\x00\x03foo"],
      multiple: [["\u2603", "Hello", "world"], "\x00\x03\xe2\x98\x83\x00\x05Hello\x00\x05world"]
    }],
    ["ListOfDecimalTests", Kinds.Decimal, {
      empty: [[], ""],
      single: [[dec("1.1")], "\x00\x031.1"],
      extreme: [[dec("Infinity"), dec("-Infinity")], "\x00\x08Infinity\x00\x09-Infinity"],
      scientist: [
        ["3.141E5", "3.141e-5", "3.141E-7", "-3.141e5", "-3.141E-5", "-3.141e-7"].map(dec),
        "\x00\x083.141E+5\x00\x0a0.00003141\x00\x083.141E-7\x00\x09-3.141E+5\x00\x0b-0.00003141\x00\x09-3.141E-7"
      ],
      engineer: [[dec("0e6"), dec("1.5E-9")], "\x00\x040E+6\x00\x061.5E-9"]
    }],
    ["ListOfDecimalNanTests", Kinds.Decimal, {
      nan: [["NaN", "-NaN", "sNaN", "-sNaN"].map(dec), "\x00\x03NaN\x00\x04-NaN\x00\x04sNaN\x00\x05-sNaN"]
    }],
    ["ListOfDateTimeTests", Kinds.DateTime, {
      christmas: [[dt(2010, 12, 25), dt(2010, 12, 25)], "\x00\x202010-12-25T00:00:00.000000-00:00".repeat(2)],
      "christmas in eu": [[dt(2010, 12, 25, 0, 0, 0, 0, 60)], "\x00\x202010-12-25T00:00:00.000000+01:00"],
      "christmas in iran": [[dt(2010, 12, 25, 0, 0, 0, 0, 210)], "\x00\x202010-12-25T00:00:00.000000+03:30"],
      "christmas in nyc": [[dt(2010, 12, 25, 0, 0, 0, 0, -300)], "\x00\x202010-12-25T00:00:00.000000-05:00"],
      "previous tests": [
        [dt(2010, 12, 25, 0, 0, 0, 0, 199), dt(2010, 12, 25, 0, 0, 0, 0, -419)],
        "\x00\x202010-12-25T00:00:00.000000+03:19\x00\x202010-12-25T00:00:00.000000-06:59"
      ]
    }]
  ]
  for (const [name, element, table] of listOfCases) {
    const kind = listOf(element)
    const fields = compileFields(Object.fromEntries(Object.keys(table).map((k) => [k, kind.arg])))
    const objects = Object.fromEntries(Object.entries(table).map(([k, [v]]) => [k, v]))
    const strings = new Map(Object.entries(table).map(([k, [, w]]) => [k, w]))
    it(`${name}.test_toBox`, () => {
      const box = new Map<string, Uint8Array>()
      fields.encode(objects, box)
      assert.deepStrictEqual(new Map([...box].map(([k, v]) => [k, str(v)])), strings)
    })
    it(`${name}.test_fromBox`, () => {
      const decoded = fields.decode(new Map([...strings].map(([k, w]) => [k, b(w)])))
      for (const key of Object.keys(table)) assert.isTrue(kind.equals(decoded[key] as any, objects[key]!), key)
      if (name === "ListOfDecimalNanTests") {
        const n = decoded["nan"] as ReadonlyArray<Decimal.Decimal>
        assert.deepStrictEqual(n.map((d) => [d.kind, d.negative]), [["nan", false], ["nan", true], ["snan", false], [
          "snan",
          true
        ]])
      }
    })
  }

  it("DecimalTests.test_nonDecimal", () => {
    for (const bad of ["1.234", 1.234, 1234]) assert.include(encodeFails(Argument.Decimal, bad), "Decimal")
  })

  it("FloatTests.test_nonFloat (a JS number has no int/float split: 1234 is the float 1234.0)", () => {
    encodeFails(Argument.Float, "1.234")
    encodeFails(Argument.Float, b("1.234"))
    assert.strictEqual(str(encodeFast(Argument.Float, 1234)), "1234.0")
  })

  it("FloatTests.test_float", () => {
    assert.strictEqual(str(encodeFast(Argument.Float, 1.234)), "1.234")
  })

  describe("ListOfOptionalTests", () => {
    const required = compileFields({ omitted: Argument.ListOf(Argument.Integer) })
    const optional = compileFields({ omitted: Argument.optional(Argument.ListOf(Argument.Integer)) })
    const fieldFailure = (f: () => unknown): FieldFailure => {
      try {
        f()
      } catch (e) {
        if (e instanceof FieldFailure) return e
        throw e
      }
      throw new Error("expected a FieldFailure")
    }
    it("test_requiredArgumentWithNoneValueRaisesTypeError", () => {
      assert.strictEqual(fieldFailure(() => required.encode({ omitted: undefined }, new Map())).key, "omitted")
      assert.include(fieldFailure(() => required.encode({ omitted: null }, new Map())).reason, "array")
    })
    it("test_optionalArgumentWithNoneValueOmitted", () => {
      const box = new Map<string, Uint8Array>()
      optional.encode({ omitted: undefined }, box)
      assert.strictEqual(box.size, 0)
    })
    it("test_requiredArgumentWithKeyMissingRaisesKeyError", () => {
      assert.strictEqual(fieldFailure(() => required.encode({ someOtherKey: 0 }, new Map())).key, "omitted")
      assert.strictEqual(fieldFailure(() => required.decode(new Map())).key, "omitted")
    })
    it("test_optionalArgumentWithKeyMissingOmitted", () => {
      const box = new Map<string, Uint8Array>()
      optional.encode({ someOtherKey: 0 }, box)
      assert.strictEqual(box.size, 0)
    })
    it("test_omittedOptionalArgumentDeserializesAsNone (here: an absent property)", () => {
      const decoded = optional.decode(new Map())
      assert.isFalse("omitted" in decoded)
      // and a present-but-empty optional value is decoded, not treated as absent
      assert.deepStrictEqual(optional.decode(new Map([["omitted", new Uint8Array(0)]])), { omitted: [] })
    })
    it("through Schema: optional fields are optional properties", () => {
      const S = Schema.Struct({ a: Argument.Integer, o: Argument.optional(Argument.ListOf(Argument.Integer)) })
      assert.deepStrictEqual(Schema.decodeUnknownSync(S)({ a: b("1") }), { a: 1n })
      assert.deepStrictEqual(Schema.encodeSync(S)({ a: 1n }), { a: b("1") })
    })
  })

  describe("DateTimeTests", () => {
    const wire = "9876-01-23T12:34:56.054321-01:23"
    const object = dt(9876, 1, 23, 12, 34, 56, 54321, -83)
    it("test_invalidString", () => {
      assert.include(decodeFails(Argument.DateTime, b("abc")), "invalid date format")
    })
    it("test_invalidDatetime (no naive values here: an invalid value fails to encode)", () => {
      const bad = new DateTime.DateTime(2010, 13, 25, 0, 0, 0, 0, 0)
      assert.include(encodeFails(Argument.DateTime, bad), "month")
      encodeFails(Argument.DateTime, new Date())
    })
    it("test_fromString", () => {
      assert.isTrue(DateTime.equals(decodeFast(Argument.DateTime, b(wire)), object))
    })
    it("test_toString", () => {
      assert.strictEqual(str(encodeFast(Argument.DateTime, object)), wire)
    })
  })

  it("UTCTests: UTC is offset 0 and goes out as -00:00; test_badSign", () => {
    const utc = decodeFast(Argument.DateTime, b("2010-12-25T00:00:00.000000+00:00"))
    assert.strictEqual(utc.offsetMinutes, 0)
    assert.strictEqual(str(encodeFast(Argument.DateTime, utc)), "2010-12-25T00:00:00.000000-00:00")
    assert.include(decodeFails(Argument.DateTime, b("2010-12-25T00:00:00.000000?00:00")), "invalid sign")
  })
})

// ---------------------------------------------------------------------------------------------------
// decoding and encoding failures

describe("failures", () => {
  it("Integer", () => {
    assert.include(decodeFails(Argument.Integer, b("abc")), "invalid literal for int() with base 10: b'abc'")
    for (const bad of ["", "1.0", "0x10", "1e3", "12a", "-", "+", "1__0", "_1", "1_", "\x1c1", "\xa01", "1\x00", "\u0661"]) {
      decodeFails(Argument.Integer, bad === "\u0661" ? utf8(bad) : b(bad))
    }
    assert.include(decodeFails(Argument.Integer, b("1".repeat(4301))), "4300")
    assert.strictEqual(decodeFast(Argument.Integer, b("1".repeat(4300))), BigInt("1".repeat(4300)))
    assert.strictEqual(decodeFast(Argument.Integer, b("-" + "1_".repeat(4299) + "1")), -BigInt("1".repeat(4300)))
    assert.include(encodeFails(Argument.Integer, 10n ** 4300n), "4300")
    assert.strictEqual(encodeFast(Argument.Integer, -(10n ** 4300n - 1n)).length, 4301)
    assert.include(encodeFails(Argument.Integer, 5), "SafeInteger")
  })

  it("SafeInteger: never a silent loss of precision", () => {
    assert.include(decodeFails(Argument.SafeInteger, b("9007199254740992")), "2^53")
    assert.include(decodeFails(Argument.SafeInteger, b("-9007199254740992")), "2^53")
    assert.strictEqual(decodeFast(Argument.SafeInteger, b("9007199254740991")), 9007199254740991)
    assert.strictEqual(decodeFast(Argument.SafeInteger, b(" -0_9007199254740991 ")), -9007199254740991)
    encodeFails(Argument.SafeInteger, 2 ** 53)
    encodeFails(Argument.SafeInteger, 1.5)
    encodeFails(Argument.SafeInteger, NaN)
    assert.strictEqual(str(encodeFast(Argument.SafeInteger, -0)), "0")
  })

  it("Boolean", () => {
    for (const bad of ["true", "TRUE", "1", "", " True", "True ", "Fals", "Falsey"]) {
      assert.include(decodeFails(Argument.Boolean, b(bad)), "Bad boolean value")
    }
    encodeFails(Argument.Boolean, 1)
  })

  it("Unicode: strict UTF-8 both ways", () => {
    for (const bad of ["\xff", "\xed\xa0\x80", "\xc0\x80", "\xe2\x98", "a\x80b", "\xf4\x90\x80\x80"]) {
      assert.include(decodeFails(Argument.Unicode, b(bad)), "utf-8")
    }
    // long invalid input takes the TextDecoder path
    decodeFails(Argument.Unicode, b("a".repeat(100) + "\xed\xa0\x80"))
    assert.include(encodeFails(Argument.Unicode, "a\ud800b"), "surrogate")
    encodeFails(Argument.Unicode, "x".repeat(100) + "\udc00")
    encodeFails(Argument.Unicode, b("bytes"))
    assert.strictEqual(decodeFast(Argument.Unicode, b("\xef\xbb\xbfA")), "\ufeffA")
    decodeFails(Argument.Path, b("/tmp/\xff"))
  })

  it("Float", () => {
    for (const bad of ["", "1e", "1,5", "0x1p3", "abc", "1_", "_1", "1__0", ".", "e5", ".e5", "1_.5", "infinit", "nana", "\x1c1"]) {
      assert.include(decodeFails(Argument.Float, b(bad)), "could not convert string to float")
    }
  })

  it("Decimal", () => {
    for (const bad of ["", "abc", "1e", "1e+", "in f", ".", "e5", "1.2.3", "--1", "NaN1.5", "0x10", "1E+9007199254740992"]) {
      assert.include(decodeFails(Argument.Decimal, b(bad)), "decimal", bad)
    }
    assert.include(decodeFails(Argument.Decimal, utf8("\u0661")), "ascii")
  })

  it("DateTime", () => {
    for (
      const bad of [
        "abc",
        "2010-12-25T00:00:00.000000-00:0",
        "2010-12-25T00:00:00.000000-00:000",
        "2010-12-25T00:00:00.000000?00:00",
        "2010-12-25T00:00:00.000000+24:00",
        "2010-12-25T00:00:00.000000+23:99",
        "2010-12-25T00:00:00.000000-23:60",
        "2010-13-25T00:00:00.000000+00:00",
        "2010-00-25T00:00:00.000000+00:00",
        "1900-02-29T00:00:00.000000+00:00",
        "2010-04-31T00:00:00.000000+00:00",
        "0000-12-25T00:00:00.000000+00:00",
        "2010-12-25T24:00:00.000000+00:00",
        "2010-12-25T00:60:00.000000+00:00",
        "2010-12-25T00:00:60.000000+00:00",
        "2010-12-25T00:00:00.-00001+00:00",
        "2010-12-25T00:00:00.00000a+00:00",
        "2010-12-25T00:00:00.000000+0_:00",
        "2010-12-25T00:00:00.000000+00:\u00e90"
      ]
    ) {
      decodeFails(Argument.DateTime, b(bad))
    }
  })

  it("Decimal and DateTime refuse values of the wrong type", () => {
    encodeFails(Argument.Decimal, { kind: "finite", negative: false, coefficient: "1", exponent: 0 })
    encodeFails(Argument.DateTime, { year: 2000, month: 1, day: 1 })
  })

  it("ListOf: element failures name the element; oversized elements fail", () => {
    const L = Argument.ListOf(Argument.Integer)
    assert.include(decodeFails(L, b("\x00\x011\x00\x03abc")), "element 1")
    assert.include(encodeFails(L, [1n, 2]), "element 1")
    encodeFails(L, "not a list")
    const S = Argument.ListOf(Argument.String)
    assert.include(encodeFails(S, [new Uint8Array(65536)]), "65535")
    assert.strictEqual(encodeFast(S, [new Uint8Array(65535)]).length, 65537)
  })

  it("AmpList: failures name the element and key", () => {
    const L = Argument.AmpList({ a: Argument.Integer, b: Argument.optional(Argument.Unicode) })
    assert.include(decodeFails(L, b("\x00\x01a\x00\x011\x00\x00\x00\x01a\x00\x01x\x00\x00")), `element 1, key "a"`)
    assert.include(decodeFails(L, b("\x00\x01b\x00\x01x\x00\x00")), "missing required key")
    assert.include(encodeFails(L, [{ a: 1n }, { b: "x" }]), `element 1, key "a"`)
    encodeFails(L, [null])
    assert.include(decodeFails(L, b("\x01\x00")), "malformed") // key length over 255
    // a value too long for a box
    const S = Argument.AmpList({ s: Argument.String })
    assert.include(encodeFails(S, [{ s: new Uint8Array(65536) }]), "too long")
  })
})

// ---------------------------------------------------------------------------------------------------
// decoding leniency (spec Appendix A.4) and Twisted's tolerances

describe("lenient decoding like Python", () => {
  it("Integer: int() grammar", () => {
    const cases: Array<[string, bigint]> = [
      ["-0", 0n],
      ["+5", 5n],
      [" 7 ", 7n],
      ["\t8\n", 8n],
      ["\x0b\x0c\r9\r", 9n],
      ["1_000", 1000n],
      ["00012", 12n],
      [" 1_0 ", 10n],
      ["-000", 0n],
      ["123456789012345", 123456789012345n],
      ["1234567890123456", 1234567890123456n],
      ["-9007199254740993", -9007199254740993n]
    ]
    for (const [input, value] of cases) assert.strictEqual(decodeFast(Argument.Integer, b(input)), value, input)
  })

  it("Float: float() grammar", () => {
    const cases: Array<[string, number]> = [
      ["1.5", 1.5],
      [" -2 ", -2],
      ["1_0.5_1e1_0", 105100000000],
      [".5", 0.5],
      ["5.", 5],
      ["1.e5", 100000],
      ["1E5", 100000],
      ["-nan", NaN],
      ["iNfInItY", Infinity],
      ["-Inf", -Infinity],
      ["+inf", Infinity],
      ["1e400", Infinity],
      ["-1e400", -Infinity],
      ["1e-400", 0],
      ["-1e-400", -0],
      ["-0", -0],
      ["0.1", 0.1],
      ["4.9e-324", 5e-324]
    ]
    for (const [input, value] of cases) assert.isTrue(Object.is(decodeFast(Argument.Float, b(input)), value), input)
  })

  it("Decimal: Decimal() grammar", () => {
    const cases: Array<[string, string]> = [
      ["1__0", "10"],
      ["_inf", "Infinity"],
      ["Infin_ity", "Infinity"],
      ["1e_5", "1E+5"],
      ["\x1c 1.50\x1f", "1.50"],
      ["-INF", "-Infinity"],
      ["nan0", "NaN"],
      ["-snan00123", "-sNaN123"],
      ["1.", "1"],
      [".5", "0.5"],
      ["+0.00", "0.00"],
      ["1e-0", "1"]
    ]
    for (const [input, text] of cases) assert.strictEqual(decodeFast(Argument.Decimal, b(input)).toString(), text, input)
  })

  it("DateTime: unchecked separators, lenient slices, carried minutes", () => {
    const cases: Array<[string, string]> = [
      ["2010x12y25 00:00:00.000000+01:00", "2010-12-25T00:00:00.000000+01:00"],
      ["+010-12-25T00:00:00.000000+00:00", "0010-12-25T00:00:00.000000-00:00"],
      ["2010-12-25T00:00:00.000000+00:60", "2010-12-25T00:00:00.000000+01:00"],
      ["2010-12-25T00:00:00.000000+-1:00", "2010-12-25T00:00:00.000000-01:00"],
      ["2010-12-25T00:00:00.000000- 1:-5", "2010-12-25T00:00:00.000000-00:55"],
      ["2010-12-25T00:00:00.00_001+00:00", "2010-12-25T00:00:00.000001-00:00"],
      ["2000-02-29T00:00:00.000000+00:00", "2000-02-29T00:00:00.000000-00:00"]
    ]
    for (const [input, out] of cases) {
      assert.strictEqual(str(encodeFast(Argument.DateTime, decodeFast(Argument.DateTime, b(input)))), out, input)
    }
  })

  it("ListOf drops a trailing incomplete element, like Twisted", () => {
    const L = Argument.ListOf(Argument.Integer)
    assert.deepStrictEqual(decodeFast(L, b("\x00\x011\x00\x032")), [1n])
    assert.deepStrictEqual(decodeFast(L, b("\x00")), [])
    assert.deepStrictEqual(decodeFast(L, b("")), [])
    assert.deepStrictEqual(decodeFast(L, b("\x00\x011\x00")), [1n])
  })

  it("AmpList ignores extra keys and drops a trailing partial box", () => {
    const L = Argument.AmpList({ a: Argument.Integer })
    assert.deepStrictEqual(decodeFast(L, b("\x00\x01a\x00\x011\x00\x05extra\x00\x01z\x00\x00\x00\x01a\x00\x012")), [{ a: 1n }])
    assert.deepStrictEqual(decodeFast(L, b("")), [])
  })

  it("Path: absolute and normalized like FilePath", () => {
    assert.strictEqual(decodeFast(Argument.Path, b("/a/b/../c")), "/a/c")
    assert.strictEqual(decodeFast(Argument.Path, b("rel")), NodePath.join(process.cwd(), "rel"))
    assert.strictEqual(decodeFast(Argument.Path, b("/a/./b/")), "/a/b")
    assert.strictEqual(decodeFast(Argument.Path, b("//a/../b")), "//b")
    assert.strictEqual(decodeFast(Argument.Path, b("///a")), "/a")
    assert.strictEqual(decodeFast(Argument.Path, b("")), process.cwd())
    // encoding writes the string as given
    assert.strictEqual(str(encodeFast(Argument.Path, "rel/../x")), "rel/../x")
  })
})

// ---------------------------------------------------------------------------------------------------
// nesting, depth limit, custom argument types

describe("AmpList nesting", () => {
  interface Node {
    readonly value: bigint
    readonly children: ReadonlyArray<Node>
  }
  const Tree: Schema.Codec<ReadonlyArray<Node>, Uint8Array> = Argument.AmpList({
    value: Argument.Integer,
    children: Schema.suspend((): Schema.Codec<ReadonlyArray<Node>, Uint8Array> => Tree)
  })
  const chain = (depth: number): ReadonlyArray<Node> => {
    let node: ReadonlyArray<Node> = []
    for (let i = depth; i > 0; i--) node = [{ value: BigInt(i), children: node }]
    return node
  }
  const depthOf = (nodes: ReadonlyArray<Node>): number => nodes.length === 0 ? 0 : 1 + depthOf(nodes[0]!.children)

  it("recursive definitions decode up to the default limit (32) and no further", () => {
    // depth n of nodes = n + 1 AmpList values (the innermost is the empty children list)
    const ok = chain(31)
    assert.strictEqual(depthOf(decodeFast(Tree, encodeFast(Tree, ok))), 31)
    assert.strictEqual(depthOf(Schema.decodeUnknownSync(Tree)(Schema.encodeSync(Tree)(ok))), 31)
    const tooDeep = encodeFast(Tree, chain(40))
    assert.include(decodeFails(Tree, tooDeep), "AmpList nested deeper than 32")
    assert.include(decodeFails(Tree, encodeFast(Tree, chain(32))), "AmpList nested deeper than 32")
    // the depth counter is restored after a failure
    assert.strictEqual(depthOf(decodeFast(Tree, encodeFast(Tree, ok))), 31)
  })

  it("maxDepth is configurable", () => {
    const Inner = Argument.AmpList({ x: Argument.Integer })
    const Outer = Argument.AmpList({ inner: Inner }, { maxDepth: 1 })
    const wire = encodeFast(Outer, [{ inner: [{ x: 1n }] }])
    assert.deepStrictEqual(decodeFast(Outer, wire), [{ inner: [{ x: 1n }] }])
    const Strict = Argument.AmpList({ inner: Argument.AmpList({ x: Argument.Integer }, { maxDepth: 1 }) })
    assert.include(decodeFails(Strict, wire), "deeper than 1")
  })

  it("AmpList inside ListOf works between effect-amp peers", () => {
    const L = Argument.ListOf(Argument.AmpList({ a: Argument.Integer }))
    const value = [[{ a: 1n }], [], [{ a: 2n }, { a: 3n }]]
    assert.deepStrictEqual(decodeFast(L, encodeFast(L, value)), value)
  })

  it("the element type is inferred from the fields", () => {
    const L = Argument.AmpList({
      id: Argument.Integer,
      weight: Argument.optional(Argument.Float),
      children: Argument.AmpList({ x: Argument.Integer })
    })
    type Element = typeof L.Type[number]
    const e: Element = { id: 1n, children: [{ x: 2n }] }
    const f: Element = { id: 1n, weight: 2.5, children: [] }
    // @ts-expect-error: exactOptionalPropertyTypes: an optional property is absent, not undefined
    const g: Element = { id: 1n, weight: undefined, children: [] }
    assert.deepStrictEqual(decodeFast(L, encodeFast(L, [e, f])), [e, f])
    assert.isDefined(g)
  })
})

describe("custom argument types", () => {
  it("Argument.make", () => {
    const Words = Argument.make({
      name: "Words",
      type: Schema.Array(Schema.String),
      encode: (words: ReadonlyArray<string>) => utf8(words.join(",")),
      decode: (bytes) => {
        const text = new TextDecoder().decode(bytes)
        if (text.includes(";")) throw new Argument.CodecFailure("no semicolons")
        return text === "" ? [] : text.split(",")
      }
    })
    assert.strictEqual(str(Schema.encodeSync(Words)(["a", "b"])), "a,b")
    assert.deepStrictEqual(decodeFast(Words, b("x,y")), ["x", "y"])
    assert.include(decodeFails(Words, b("a;b")), "no semicolons")
    // and it composes
    const L = Argument.ListOf(Words)
    assert.deepStrictEqual(decodeFast(L, encodeFast(L, [["a"], []])), [["a"], []])
  })

  it("Argument.fromUnicode", () => {
    const Port = Argument.fromUnicode(Schema.FiniteFromString)
    assert.strictEqual(str(encodeFast(Port, 8080)), "8080")
    assert.strictEqual(decodeFast(Port, b("8080")), 8080)
    decodeFails(Port, b("eighty"))
    const Color = Argument.fromUnicode(Schema.Literals(["red", "gr\u00fcn"]))
    assert.strictEqual(str(Schema.encodeSync(Color)("gr\u00fcn")), "gr\xc3\xbcn")
    assert.strictEqual(Schema.decodeUnknownSync(Color)(b("gr\xc3\xbcn")), "gr\u00fcn")
    decodeFails(Color, b("blue"))
    encodeFails(Color, "blue")
    decodeFails(Color, b("\xff"))
  })

  it("any Schema.Codec<A, Uint8Array> is an argument", () => {
    const Hex = Schema.Uint8Array // identity on bytes
    const fields = compileFields({ raw: Hex, n: Argument.optional(Argument.Integer) })
    const box = new Map<string, Uint8Array>()
    fields.encode({ raw: b("xyz") }, box)
    assert.deepStrictEqual(fields.decode(box), { raw: b("xyz") })
    const L = Argument.ListOf(Hex)
    assert.deepStrictEqual(decodeFast(L, encodeFast(L, [b("a"), b("")])), [b("a"), b("")])
  })

  it.effect("works with Schema's Effect API", () =>
    Effect.gen(function*() {
      const value = yield* Schema.decodeUnknownEffect(Argument.Integer)(b(" 42 "))
      assert.strictEqual(value, 42n)
      const error = yield* Effect.flip(Schema.decodeUnknownEffect(Argument.Boolean)(b("true")))
      assert.include(String(error), "Bad boolean value: b'true'")
      const out = yield* Schema.encodeEffect(Argument.Decimal)(dec("1.10"))
      assert.strictEqual(str(out), "1.10")
    }))
})

// ---------------------------------------------------------------------------------------------------
// properties: decode(encode(x)) == x

describe("which argument types keep their bytes (what a connection may recycle)", () => {
  it("decoders that build strings, numbers or fresh values do not; String and unknown codecs do", () => {
    const keeps = (schema: Parameters<typeof fastCodecOf>[0]) => fastCodecOf(schema).keepsBytes
    for (const arg of [Argument.Integer, Argument.SafeInteger, Argument.Unicode, Argument.Path, Argument.Float,
      Argument.Boolean, Argument.Decimal, Argument.DateTime, Argument.fromUnicode(Schema.String)]) {
      assert.isFalse(keeps(arg))
    }
    assert.isTrue(keeps(Argument.String))
    assert.isFalse(keeps(Argument.ListOf(Argument.Unicode)))
    assert.isTrue(keeps(Argument.ListOf(Argument.String)))
    assert.isFalse(keeps(Argument.AmpList({ a: Argument.Integer, b: Argument.optional(Argument.Unicode) })))
    assert.isTrue(keeps(Argument.AmpList({ a: Argument.Integer, b: Argument.optional(Argument.String) })))
    assert.isTrue(keeps(Argument.AmpList({ inner: Argument.AmpList({ raw: Argument.String }) })))
    const Words = {
      name: "Words",
      type: Schema.String,
      encode: (s: string) => fromLatin1(s),
      decode: (b: Uint8Array) => latin1(b, 0, b.length)
    }
    assert.isTrue(keeps(Argument.make(Words)), "Argument.make: safe default")
    assert.isFalse(keeps(Argument.make({ ...Words, keepsBytes: false })))
    assert.isTrue(keeps(Schema.Uint8Array), "a schema built elsewhere")
    const fields = compileFields({ text: Argument.Unicode, blob: Argument.String, n: Argument.optional(Argument.Integer) })
    assert.deepStrictEqual(fields.recyclable, ["text", "n"])
  })
})

describe("round trips", () => {
  const all: ReadonlyArray<Kind<any>> = [
    ...Object.values(Kinds),
    listOf(Kinds.Integer),
    listOf(Kinds.Unicode),
    listOf(Kinds.Float),
    listOf(Kinds.Decimal),
    listOf(Kinds.DateTime),
    listOf(listOf(Kinds.Integer)),
    listOf(listOf(Kinds.String)),
    Item,
    Mangled,
    Deep
  ]
  for (const kind of all) {
    it(`${kind.name} ${JSON.stringify(kind.py).slice(0, 60)}`, () => {
      fc.assert(
        fc.property(kind.arb, (value) => {
          const wire = encodeFast(kind.arg, value)
          assert.isTrue(kind.equals(decodeFast(kind.arg, wire), value))
          assert.isTrue(bytesEqual(Schema.encodeSync(kind.arg)(value), wire))
          assert.isTrue(kind.equals(Schema.decodeUnknownSync(kind.arg)(wire), value))
        }),
        { numRuns: 200 }
      )
    })
  }

  it("Float decodes every repr back to the same double (bit patterns)", () => {
    fc.assert(
      fc.property(fc.float64Array({ minLength: 1, maxLength: 1 }), ([x]) => {
        assert.isTrue(Object.is(decodeFast(Argument.Float, encodeFast(Argument.Float, x!)), x))
      }),
      { numRuns: 2000 }
    )
  })

  it("Unicode's own UTF-8 encoder agrees with TextEncoder and refuses lone surrogates", () => {
    const encoder = new TextEncoder()
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 300 }), (s) => {
        assert.isTrue(bytesEqual(encodeFast(Argument.Unicode, s), encoder.encode(s)))
      }),
      { numRuns: 2000 }
    )
    fc.assert(
      fc.property(fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 200 }), (s) => {
        if (s.isWellFormed()) assert.isTrue(bytesEqual(encodeFast(Argument.Unicode, s), encoder.encode(s)))
        else codecFailure(() => encodeFast(Argument.Unicode, s))
      }),
      { numRuns: 2000 }
    )
    for (const s of ["\ud800", "a\udc00", "\udbff\udbff\udc00", "x".repeat(200) + "\ud83d"]) codecFailure(() => encodeFast(Argument.Unicode, s))
    assert.strictEqual(str(encodeFast(Argument.Unicode, "\ud83d\ude00")), "\xf0\x9f\x98\x80")
  })

  it("Integer's fast and slow paths agree", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }), (n) => {
        assert.strictEqual(decodeFast(Argument.Integer, encodeFast(Argument.Integer, n)), n)
        assert.strictEqual(decodeFast(Argument.Integer, b(` +${n < 0n ? -n : n} `)), n < 0n ? -n : n)
      })
    )
  })
})

// ---------------------------------------------------------------------------------------------------
// real Twisted

const vectorsPy = NodePath.join(twistedDir, "vectors.py")

interface TwistedResult {
  readonly encoded: ReadonlyArray<string | { readonly error: string }>
  readonly decoded: ReadonlyArray<{ readonly value: unknown; readonly reencoded: string | { error: string } } | { readonly error: string }>
}

interface TwistedRequest {
  readonly py: unknown
  readonly encode: ReadonlyArray<unknown>
  readonly decode: ReadonlyArray<Uint8Array>
}

/** Runs several requests in one Python process. */
const askTwistedBatch = (requests: ReadonlyArray<TwistedRequest>): ReadonlyArray<TwistedResult> =>
  JSON.parse(
    runPython(
      [vectorsPy],
      JSON.stringify(requests.map((r) => ({ type: r.py, encode: r.encode, decode: r.decode.map(hex) })))
    ).toString("utf8")
  )

const askTwisted = (py: unknown, encode: ReadonlyArray<unknown>, decode: ReadonlyArray<Uint8Array>): TwistedResult =>
  askTwistedBatch([{ py, encode, decode }])[0]!

/** Random wire strings for the grammar fuzz: pieces Python's parsers care about. */
const fuzzText = (pieces: ReadonlyArray<string>, maxLength = 8) =>
  fc.array(fc.oneof(fc.constantFrom("0", "1", "5", "9"), fc.constantFrom(...pieces)), { maxLength }).map((p) => p.join(""))

const grammarFuzz: Record<string, fc.Arbitrary<string>> = {
  Integer: fuzzText(["0", "1", "7", "9", "_", "+", "-", " ", "\t", "\n", "\x0b", "\x0c", "\r", "\x1c", ".", "e", "a", "\xa0"]),
  Float: fuzzText([
    "0",
    "1",
    "9",
    "_",
    "+",
    "-",
    " ",
    "\t",
    ".",
    "e",
    "E",
    "inf",
    "INF",
    "inity",
    "nan",
    "NaN",
    "x",
    "\x1c",
    "400",
    "-400"
  ]),
  Decimal: fuzzText([
    "0",
    "1",
    "9",
    "_",
    "__",
    "+",
    "-",
    " ",
    "\t",
    "\x1c",
    "\x1f",
    ".",
    "e",
    "E",
    "inf",
    "Infinity",
    "nan",
    "sNaN",
    "s",
    "x",
    "\xa0"
  ]),
  Boolean: fuzzText(["True", "False", "true", " ", "T", "rue", "\x00"], 3),
  DateTime: fc.tuple(dateTimeArb, fc.array(fc.tuple(fc.nat(31), fc.constantFrom(..."0123456789 +-_x:T.\xe9")), { maxLength: 3 }))
    .map(([d, edits]) => {
      const chars = [...d.toString()]
      for (const [i, c] of edits) chars[i] = c
      return chars.join("")
    })
}

describeTwisted("agreement with real Twisted", () => {
  const cases: ReadonlyArray<Kind<any>> = [
    ...Object.values(Kinds),
    listOf(Kinds.Integer),
    listOf(Kinds.Unicode),
    listOf(Kinds.String),
    listOf(Kinds.Float),
    listOf(Kinds.Boolean),
    listOf(Kinds.Decimal),
    listOf(Kinds.DateTime),
    listOf(listOf(Kinds.Integer)),
    Item,
    Mangled,
    Deep,
    ampList({ a: { kind: Kinds.Integer }, b: { kind: Kinds.Unicode } }),
    ampList({ a: { kind: Kinds.Integer, optional: true } }),
    ampList({ x: { kind: ampList({ y: { kind: listOf(Kinds.Integer) } }) } }),
    ampList({ x: { kind: Kinds.Integer } })
  ]
  // Every case's values, our encodings and fuzz inputs, sent to Twisted in ONE python run (made lazily by
  // the first test that needs it: spawning Python and importing Twisted is the slow part).
  const prepared = cases.map((kind) => {
    const fixed = [...specVectors, ...sampleVectors]
      .filter(([k]) => k.name === kind.name && JSON.stringify(k.py) === JSON.stringify(kind.py))
      .map(([, v]) => v)
    const values = [...fixed, ...fc.sample(kind.arb, { numRuns: 300, seed: 20260101 })]
    const ours = values.map((v) => encodeFast(kind.arg, v))
    const fuzz = kind.name in grammarFuzz && kind !== Kinds.SafeInteger
      ? fc.sample(grammarFuzz[kind.name]!, { numRuns: 1000, seed: 7 }).map(b)
      : []
    return { kind, values, ours, fuzz }
  })
  let batch: ReadonlyArray<TwistedResult> | undefined
  const twistedResults = (): ReadonlyArray<TwistedResult> =>
    (batch ??= askTwistedBatch(
      prepared.map(({ fuzz, kind, ours, values }) => ({ py: kind.py, encode: values.map(kind.toJson), decode: [...ours, ...fuzz] }))
    ))

  prepared.forEach(({ fuzz, kind, ours, values }, index) => {
    it(`${kind.name} ${JSON.stringify(kind.py).slice(0, 70)}: encodings byte-identical, decoded by Twisted to the same value`, () => {
      const result = twistedResults()[index]!
      values.forEach((value, i) => {
        const theirs = result.encoded[i]!
        assert.strictEqual(typeof theirs === "string" ? theirs : theirs.error, hex(ours[i]!), `encode #${i}`)
        const back = result.decoded[i]!
        if ("error" in back) assert.fail(`Twisted failed to decode our encoding #${i}: ${back.error}`)
        assert.isTrue(kind.equals(kind.fromJson(back.value), value), `Twisted decoded #${i} to ${JSON.stringify(back.value)}`)
        assert.strictEqual(back.reencoded, hex(ours[i]!), `Twisted re-encoded #${i}`)
      })
      fuzz.forEach((input, j) => {
        const theirs = result.decoded[values.length + j]!
        const exit = Schema.decodeUnknownExit(kind.arg)(input)
        const label = JSON.stringify(str(input))
        if ("error" in theirs) {
          assert.isTrue(Exit.isFailure(exit), `${label}: Twisted fails (${theirs.error}) but we decoded it`)
        } else {
          assert.isTrue(Exit.isSuccess(exit), `${label}: Twisted decodes it to ${JSON.stringify(theirs.value)}, we fail`)
          if (Exit.isSuccess(exit)) {
            assert.isTrue(kind.equals(exit.value, kind.fromJson(theirs.value)), `${label}: different values`)
          }
        }
      })
    })
  })

  it("Twisted decodes the spec's lenient inputs as we do", () => {
    const inputs: Record<string, ReadonlyArray<string>> = {
      Integer: ["-0", "+5", " 7 ", "\t8\n", "1_000", "00012", "", "1.0", "0x10", "1e3", "12a", "-", "1".repeat(4301)],
      Float: ["-nan", "iNfInItY", "1e400", "-1e-400", "1_0.5", ".5", "5.", "", "1e", "1,5", "0x1p3"],
      Decimal: ["1__0", "_inf", "Infin_ity", "1e_5", "\x1c1\x1f", "NaN00123", "-sNaN0", "1E+999999", "1e+", "in f"],
      DateTime: [
        "2010x12y25 00:00:00.000000+01:00",
        "+010-12-25T00:00:00.000000+00:00",
        "2010-12-25T00:00:00.000000+00:60",
        "2010-12-25T00:00:00.000000+24:00",
        "2010-12-25T00:00:00.000000+23:99",
        "2010-12-25T00:00:00.000000?00:00",
        "1900-02-29T00:00:00.000000+00:00",
        "abc"
      ],
      Boolean: ["True", "False", "true", "TRUE", "ninja", ""]
    }
    const entries = Object.entries(inputs)
    const results = askTwistedBatch(
      entries.map(([name, texts]) => ({ py: Kinds[name as keyof typeof Kinds].py, encode: [], decode: texts.map(b) }))
    )
    entries.forEach(([name, texts], k) => {
      const kind = Kinds[name as keyof typeof Kinds] as Kind<any>
      const result = results[k]!
      texts.forEach((text, i) => {
        const theirs = result.decoded[i]!
        const exit = Schema.decodeUnknownExit(kind.arg)(b(text))
        if ("error" in theirs) assert.isTrue(Exit.isFailure(exit), `${name} ${JSON.stringify(text)}`)
        else {
          assert.isTrue(Exit.isSuccess(exit) && kind.equals(exit.value, kind.fromJson(theirs.value)), `${name} ${JSON.stringify(text)}`)
        }
      })
    })
  })

  it("Twisted refuses what we refuse to encode: >4300-digit integers", () => {
    const result = askTwisted("Integer", [(10n ** 4300n).toString(), (10n ** 4300n - 1n).toString()], [])
    assert.include((result.encoded[0] as { error: string }).error, "4300")
    assert.strictEqual(typeof result.encoded[1], "string")
    encodeFails(Argument.Integer, 10n ** 4300n)
  })

  it("Path: Twisted resolves relative paths against the same working directory", () => {
    const result = askTwisted("Path", [], [b("rel/x/../y"), b("/a/b/../c"), b("//a/../b")])
    const ours = ["rel/x/../y", "/a/b/../c", "//a/../b"].map((p) => decodeFast(Argument.Path, b(p)))
    assert.deepStrictEqual(result.decoded.map((d) => ("value" in d ? d.value : d.error)), ours)
  })
})
