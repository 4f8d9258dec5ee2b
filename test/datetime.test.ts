/**
 * The DateTime value type (src/DateTime.ts): validation like Python's datetime, Twisted's 32-character
 * wire form and lenient parsing (spec §3.8), equality, and conversions to JS Date and effect's
 * DateTime. Wire-level agreement with Twisted is in argument.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { DateTime as EffectDateTime, Equal, Option, Schema } from "effect"
import * as fc from "fast-check"
import * as DateTime from "../src/DateTime.ts"

const make = DateTime.makeUnsafe

const isLeap = (y: number) => y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0)
const daysIn = (y: number, m: number) => [31, isLeap(y) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]!

const arb = fc.record({
  year: fc.integer({ min: 1, max: 9999 }),
  month: fc.integer({ min: 1, max: 12 }),
  day: fc.integer({ min: 1, max: 31 }),
  hour: fc.integer({ min: 0, max: 23 }),
  minute: fc.integer({ min: 0, max: 59 }),
  second: fc.integer({ min: 0, max: 59 }),
  microsecond: fc.integer({ min: 0, max: 999999 }),
  offsetMinutes: fc.integer({ min: -1439, max: 1439 })
}).map((p) => make({ ...p, day: Math.min(p.day, daysIn(p.year, p.month)) }))

describe("DateTime", () => {
  it("wire form: 32 characters, UTC as -00:00, + only for positive offsets", () => {
    assert.strictEqual(make({ year: 2010, month: 12, day: 25 }).toString(), "2010-12-25T00:00:00.000000-00:00")
    assert.strictEqual(
      DateTime.toString(make({ year: 9876, month: 1, day: 23, hour: 12, minute: 34, second: 56, microsecond: 54321, offsetMinutes: -83 })),
      "9876-01-23T12:34:56.054321-01:23"
    )
    assert.strictEqual(make({ year: 1, month: 1, day: 1, microsecond: 1, offsetMinutes: 210 }).toString(), "0001-01-01T00:00:00.000001+03:30")
    assert.strictEqual(make({ year: 2012, month: 3, day: 4, offsetMinutes: 1439 }).toString(), "2012-03-04T00:00:00.000000+23:59")
    assert.strictEqual(make({ year: 2012, month: 3, day: 4, offsetMinutes: -1439 }).toString(), "2012-03-04T00:00:00.000000-23:59")
    assert.strictEqual(make({ year: 2012, month: 3, day: 4, offsetMinutes: -0 }).toString(), "2012-03-04T00:00:00.000000-00:00")
    fc.assert(fc.property(arb, (x) => assert.strictEqual(x.toString().length, 32)))
  })

  it("validates fields like Python's datetime", () => {
    const ok = { year: 2000, month: 1, day: 1 }
    assert.isTrue(Option.isSome(DateTime.make({ year: 2000, month: 2, day: 29 })))
    assert.isTrue(Option.isSome(DateTime.make({ year: 2004, month: 2, day: 29 })))
    assert.isTrue(Option.isNone(DateTime.make({ year: 1900, month: 2, day: 29 })))
    assert.isTrue(Option.isNone(DateTime.make({ year: 2001, month: 2, day: 29 })))
    assert.isTrue(Option.isNone(DateTime.make({ year: 2001, month: 4, day: 31 })))
    assert.isTrue(Option.isSome(DateTime.make({ year: 2001, month: 12, day: 31 })))
    assert.isTrue(Option.isSome(DateTime.make({ year: 1, month: 1, day: 1 })))
    assert.isTrue(Option.isSome(DateTime.make({ year: 9999, month: 12, day: 31, hour: 23, minute: 59, second: 59, microsecond: 999999 })))
    for (
      const bad of [
        { year: 0 },
        { year: 10000 },
        { month: 0 },
        { month: 13 },
        { day: 0 },
        { day: 32 },
        { hour: 24 },
        { hour: -1 },
        { minute: 60 },
        { second: 60 },
        { microsecond: 1_000_000 },
        { microsecond: -1 },
        { offsetMinutes: 1440 },
        { offsetMinutes: -1440 },
        { year: 2000.5 },
        { microsecond: 0.5 },
        { offsetMinutes: 0.5 },
        { day: NaN }
      ]
    ) {
      assert.isTrue(Option.isNone(DateTime.make({ ...ok, ...bad })), JSON.stringify(bad))
      assert.throws(() => make({ ...ok, ...bad }), RangeError)
    }
  })

  it("parses the wire form as Twisted does", () => {
    const parsed = DateTime.fromStringUnsafe("9876-01-23T12:34:56.054321-01:23")
    assert.deepStrictEqual(
      [parsed.year, parsed.month, parsed.day, parsed.hour, parsed.minute, parsed.second, parsed.microsecond, parsed.offsetMinutes],
      [9876, 1, 23, 12, 34, 56, 54321, -83]
    )
    assert.strictEqual(DateTime.fromStringUnsafe("2010-12-25T00:00:00.000000+00:60").offsetMinutes, 60)
    assert.strictEqual(DateTime.fromStringUnsafe("2010-12-25T00:00:00.000000-00:00").offsetMinutes, 0)
    assert.strictEqual(DateTime.fromStringUnsafe("2010-12-25T00:00:00.000000+00:00").offsetMinutes, 0)
    assert.strictEqual(DateTime.fromStringUnsafe(" 999-12-25T00:00:00.000000+00:00").year, 999)
    assert.isTrue(Option.isNone(DateTime.fromString("abc")))
    assert.isTrue(Option.isNone(DateTime.fromString("2010-12-25T00:00:00.000000\u00b100:00")))
    assert.throws(() => DateTime.fromStringUnsafe("2010-12-25T00:00:00.000000?00:00"), /invalid sign/)
    fc.assert(fc.property(arb, (x) => assert.isTrue(DateTime.equals(DateTime.fromStringUnsafe(x.toString()), x))))
  })

  it("equality is field equality", () => {
    const a = make({ year: 2010, month: 12, day: 25, hour: 1, offsetMinutes: 60 })
    const b = make({ year: 2010, month: 12, day: 25, hour: 0, offsetMinutes: 0 })
    assert.isFalse(DateTime.equals(a, b)) // the same instant
    assert.strictEqual(DateTime.toEpochMicros(a), DateTime.toEpochMicros(b))
    assert.isTrue(Equal.equals(a, make({ year: 2010, month: 12, day: 25, hour: 1, offsetMinutes: 60 })))
    assert.isFalse(Equal.equals(a, b))
  })

  it("JS Date conversions (millisecond precision)", () => {
    const x = make({ year: 2010, month: 12, day: 25, hour: 0, minute: 30, microsecond: 123999, offsetMinutes: 60 })
    assert.strictEqual(DateTime.toDate(x).toISOString(), "2010-12-24T23:30:00.123Z")
    assert.strictEqual(DateTime.toEpochMicros(x), BigInt(Date.UTC(2010, 11, 24, 23, 30, 0, 123)) * 1000n + 999n)
    const back = DateTime.fromDateUnsafe(new Date("2010-12-24T23:30:00.123Z"), 60)
    assert.strictEqual(back.toString(), "2010-12-25T00:30:00.123000+01:00")
    assert.strictEqual(DateTime.fromDateUnsafe(new Date(Date.UTC(2012, 2, 4, 5, 6, 7, 890))).toString(), "2012-03-04T05:06:07.890000-00:00")
    // years below 100 are not shifted to 19xx
    const early = make({ year: 12, month: 3, day: 4 })
    assert.strictEqual(DateTime.fromDateUnsafe(DateTime.toDate(early)).toString(), "0012-03-04T00:00:00.000000-00:00")
    assert.strictEqual(DateTime.toDate(early).getUTCFullYear(), 12)
    assert.isTrue(Option.isNone(DateTime.fromDate(new Date(NaN))))
    assert.isTrue(Option.isNone(DateTime.fromDate(new Date(Date.UTC(10000, 0, 1)))))
    assert.isTrue(Option.isNone(DateTime.fromDate(new Date(0), 1440)))
    assert.throws(() => DateTime.fromDateUnsafe(new Date(NaN)), RangeError)
    fc.assert(
      fc.property(arb, (x) => {
        const ms = make({ ...x, microsecond: x.microsecond - (x.microsecond % 1000) })
        assert.isTrue(DateTime.equals(DateTime.fromDateUnsafe(DateTime.toDate(ms), ms.offsetMinutes), ms))
      })
    )
  })

  it("effect DateTime conversions", () => {
    const x = make({ year: 1999, month: 12, day: 31, hour: 23, minute: 59, second: 59, microsecond: 999000, offsetMinutes: 330 })
    const zoned = DateTime.toEffect(x)
    assert.strictEqual(EffectDateTime.zonedOffset(zoned), 330 * 60_000)
    assert.strictEqual(EffectDateTime.toEpochMillis(zoned), DateTime.toDate(x).getTime())
    assert.isTrue(DateTime.equals(Option.getOrThrow(DateTime.fromEffect(zoned)), x))
    const utc = EffectDateTime.makeUnsafe(Date.UTC(2012, 2, 4, 5, 6, 7, 890))
    assert.strictEqual(Option.getOrThrow(DateTime.fromEffect(utc)).toString(), "2012-03-04T05:06:07.890000-00:00")
    // an offset with seconds is floored to minutes, keeping the wall clock (as Twisted does)
    const odd = EffectDateTime.makeZonedUnsafe(Date.UTC(2012, 2, 4, 12, 0, 30), { timeZone: EffectDateTime.zoneMakeOffset(-30_000) })
    assert.strictEqual(Option.getOrThrow(DateTime.fromEffect(odd)).toString(), "2012-03-04T12:00:00.000000-00:01")
    fc.assert(
      fc.property(arb, (x) => {
        const ms = make({ ...x, microsecond: x.microsecond - (x.microsecond % 1000) })
        assert.isTrue(DateTime.equals(Option.getOrThrow(DateTime.fromEffect(DateTime.toEffect(ms))), ms))
      }),
      { numRuns: 300 }
    )
  })

  it("schema", () => {
    const x = make({ year: 2000, month: 1, day: 1 })
    assert.isTrue(Schema.is(DateTime.schema)(x))
    assert.isFalse(Schema.is(DateTime.schema)(new Date()))
    assert.throws(() => Schema.decodeUnknownSync(DateTime.schema)("2000-01-01T00:00:00.000000-00:00"))
    assert.deepStrictEqual(JSON.parse(JSON.stringify(x)), { _id: "AmpDateTime", value: "2000-01-01T00:00:00.000000-00:00" })
  })
})
