/**
 * The Decimal value type (src/Decimal.ts): Python's str(Decimal) and Decimal() grammar (spec §3.7 and
 * Appendix A.3/A.4, checked against the spec's reference algorithms), representation equality, and
 * conversions. Wire-level agreement with Twisted is in argument.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { BigDecimal, Equal, Hash, Option, Schema } from "effect"
import * as fc from "fast-check"
import * as Decimal from "../src/Decimal.ts"

const d = Decimal.fromStringUnsafe

// Appendix A.3, verbatim: the validated reference for str(Decimal)
function pyDecimalStr(sign: number, coeff: string, exp: number | "F" | "n" | "N"): string {
  const s = sign ? "-" : ""
  if (exp === "F") return s + "Infinity"
  if (exp === "n") return s + "NaN" + (coeff === "0" ? "" : coeff)
  if (exp === "N") return s + "sNaN" + (coeff === "0" ? "" : coeff)
  const leftdigits = exp + coeff.length
  const dotplace = (exp <= 0 && leftdigits > -6) ? leftdigits : 1
  let intpart, fracpart
  if (dotplace <= 0) {
    intpart = "0"
    fracpart = "." + "0".repeat(-dotplace) + coeff
  } else if (dotplace >= coeff.length) {
    intpart = coeff + "0".repeat(dotplace - coeff.length)
    fracpart = ""
  } else {
    intpart = coeff.slice(0, dotplace)
    fracpart = "." + coeff.slice(dotplace)
  }
  const e = leftdigits - dotplace
  return s + intpart + fracpart + (e === 0 ? "" : "E" + (e > 0 ? "+" : "-") + Math.abs(e))
}

// Appendix A.4: the validated reference grammar of Decimal()
const DEC_CORE = /^[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[+-]?[0-9]+)?|inf(?:inity)?|s?nan[0-9]*)$/i
const referenceAccepts = (text: string): boolean => {
  if (/[^\x00-\x7f]/.test(text)) return false
  const stripped = text.replace(/^[ \t\n\v\f\r\x1c-\x1f]+|[ \t\n\v\f\r\x1c-\x1f]+$/g, "").replaceAll("_", "")
  return DEC_CORE.test(stripped)
}

describe("Decimal", () => {
  it("str(Decimal) of the spec's confirmed values", () => {
    const cases: Array<[string, string]> = [
      ["0", "0"],
      ["-0", "-0"],
      ["0.0", "0.0"],
      ["0.00", "0.00"],
      ["-0.00", "-0.00"],
      ["1", "1"],
      ["-1", "-1"],
      ["1.0", "1.0"],
      ["10", "10"],
      ["100", "100"],
      ["1E+2", "1E+2"],
      ["1E-1", "0.1"],
      ["1.5E+2", "1.5E+2"],
      ["1e6", "1E+6"],
      ["0e6", "0E+6"],
      ["0E-7", "0E-7"],
      ["0.000001", "0.000001"],
      ["0.0000001", "1E-7"],
      ["123E-10", "1.23E-8"],
      ["3.141E5", "3.141E+5"],
      ["3.141e-5", "0.00003141"],
      ["3.141E-7", "3.141E-7"],
      ["1.5E-9", "1.5E-9"],
      ["5E-324", "5E-324"],
      ["1E+999999", "1E+999999"],
      ["12345678901234567890.123456789", "12345678901234567890.123456789"],
      ["NaN", "NaN"],
      ["-NaN", "-NaN"],
      ["sNaN", "sNaN"],
      ["-sNaN", "-sNaN"],
      ["NaN123", "NaN123"],
      ["inf", "Infinity"],
      ["-Infinity", "-Infinity"],
      ["1.10", "1.10"],
      ["-123456789012345678901234567890.000000001", "-123456789012345678901234567890.000000001"]
    ]
    for (const [input, out] of cases) {
      assert.strictEqual(Decimal.toString(d(input)), out, input)
      assert.strictEqual(`${d(input)}`, out)
    }
  })

  it("keeps the representation", () => {
    const x = d("1.10")
    assert.deepStrictEqual([x.kind, x.negative, x.coefficient, x.exponent], ["finite", false, "110", -2])
    const z = d("-0E+6")
    assert.deepStrictEqual([z.kind, z.negative, z.coefficient, z.exponent], ["finite", true, "0", 6])
    const n = d("-sNaN0042")
    assert.deepStrictEqual([n.kind, n.negative, n.coefficient], ["snan", true, "42"])
    assert.deepStrictEqual([d("NaN000").coefficient, d("Infinity").coefficient], ["", ""])
    assert.strictEqual(d("007.50").coefficient, "750")
  })

  it("constructors", () => {
    assert.strictEqual(Decimal.make({ coefficient: 110n, exponent: -2 }).toString(), "1.10")
    assert.strictEqual(Decimal.make({ coefficient: -15n, exponent: 8 }).toString(), "-1.5E+9")
    assert.strictEqual(Decimal.make({ coefficient: 0n, negative: true }).toString(), "-0")
    assert.strictEqual(Decimal.make({ coefficient: "000123", exponent: -1 }).toString(), "12.3")
    assert.strictEqual(Decimal.make({ coefficient: 0n, exponent: -0 }).exponent, 0)
    assert.throws(() => Decimal.make({ coefficient: 1n, exponent: 0.5 }), RangeError)
    assert.throws(() => Decimal.make({ coefficient: 1n, exponent: 2 ** 53 }), RangeError)
    assert.throws(() => Decimal.make({ coefficient: "1.5" }), RangeError)
    assert.throws(() => Decimal.make({ coefficient: -1n, negative: false }), RangeError)
    assert.strictEqual(Decimal.infinity().toString(), "Infinity")
    assert.strictEqual(Decimal.infinity(true).toString(), "-Infinity")
    assert.strictEqual(Decimal.nan().toString(), "NaN")
    assert.strictEqual(Decimal.nan({ negative: true, signaling: true, payload: 12n }).toString(), "-sNaN12")
    assert.strictEqual(Decimal.nan({ payload: 0n }).toString(), "NaN")
    assert.throws(() => Decimal.nan({ payload: -1n }), RangeError)
  })

  it("fromString is an Option; fromStringUnsafe throws", () => {
    assert.isTrue(Option.isSome(Decimal.fromString(" 1_000.50 ")))
    assert.strictEqual(Option.getOrThrow(Decimal.fromString(" 1_000.50 ")).toString(), "1000.50")
    for (const bad of ["", "abc", "1e", ".", "1.2.3", "\u0661", "1 0", "0x1", "++1", "1e+9007199254740992"]) {
      assert.isTrue(Option.isNone(Decimal.fromString(bad)), bad)
      assert.throws(() => Decimal.fromStringUnsafe(bad), SyntaxError)
    }
  })

  it("the Decimal() grammar matches the spec's reference (Appendix A.4)", () => {
    const pieces = ["0", "1", "9", "_", "+", "-", " ", "\t", "\x1c", "\x1f", ".", "e", "E", "in", "f", "inity", "nan", "s", "N", "x"]
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...pieces), { maxLength: 10 }).map((p) => p.join("")), (text) => {
        assert.strictEqual(Option.isSome(Decimal.fromString(text)), referenceAccepts(text), JSON.stringify(text))
      }),
      { numRuns: 5000 }
    )
  })

  it("toString matches the reference algorithm (Appendix A.3)", () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.oneof(fc.bigInt({ min: 0n, max: 10n ** 30n }), fc.constant(0n)),
        fc.integer({ min: -40, max: 40 }),
        (negative, coefficient, exponent) => {
          const x = Decimal.make({ coefficient, exponent, negative })
          assert.strictEqual(x.toString(), pyDecimalStr(negative ? 1 : 0, coefficient.toString(), exponent))
        }
      ),
      { numRuns: 3000 }
    )
  })

  it("fromString(toString(x)) keeps the representation", () => {
    const arb = fc.oneof(
      fc.record({
        negative: fc.boolean(),
        coefficient: fc.bigInt({ min: 0n, max: 10n ** 50n }),
        exponent: fc.integer({ min: -1_000_000, max: 1_000_000 })
      }).map((o) => Decimal.make(o)),
      fc.record({ negative: fc.boolean(), signaling: fc.boolean(), payload: fc.bigInt({ min: 0n, max: 10n ** 9n }) }).map((o) =>
        Decimal.nan(o)
      ),
      fc.boolean().map((n) => Decimal.infinity(n))
    )
    fc.assert(fc.property(arb, (x) => assert.isTrue(Decimal.equals(d(x.toString()), x))), { numRuns: 2000 })
  })

  it("equality compares representations", () => {
    assert.isFalse(Decimal.equals(d("1.10"), d("1.1")))
    assert.isFalse(Decimal.equals(d("0"), d("-0")))
    assert.isFalse(Decimal.equals(d("1E+2"), d("100")))
    assert.isTrue(Decimal.equals(d("NaN"), d("nan")))
    assert.isFalse(Decimal.equals(d("NaN"), d("sNaN")))
    assert.isTrue(Decimal.equals(d("1_0.0"), d("10.0")))
    assert.isTrue(Equal.equals(d("1.10"), d("1.10")))
    assert.isFalse(Equal.equals(d("1.10"), d("1.1")))
    assert.strictEqual(Hash.hash(d("1.10")), Hash.hash(d("1.10")))
  })

  it("BigDecimal conversions", () => {
    const bd = Option.getOrThrow(Decimal.toBigDecimal(d("-1.10")))
    assert.isTrue(BigDecimal.equals(bd, BigDecimal.make(-110n, 2)))
    assert.strictEqual(Decimal.fromBigDecimal(BigDecimal.make(-110n, 2)).toString(), "-1.10")
    assert.strictEqual(Decimal.fromBigDecimal(BigDecimal.make(5n, -3)).toString(), "5E+3")
    assert.isTrue(Option.isNone(Decimal.toBigDecimal(d("NaN"))))
    assert.isTrue(Option.isNone(Decimal.toBigDecimal(d("-Infinity"))))
    assert.isTrue(BigDecimal.equals(Option.getOrThrow(Decimal.toBigDecimal(d("0E+6"))), BigDecimal.make(0n, 0)))
  })

  it("schema", () => {
    assert.isTrue(Schema.is(Decimal.schema)(d("1")))
    assert.isFalse(Schema.is(Decimal.schema)("1"))
    assert.strictEqual(Schema.decodeUnknownSync(Decimal.schema)(d("2.5")).toString(), "2.5")
    assert.throws(() => Schema.decodeUnknownSync(Decimal.schema)(2.5))
    assert.isTrue(Decimal.isDecimal(d("1")))
    assert.deepStrictEqual(JSON.parse(JSON.stringify(d("1.10"))), { _id: "Decimal", value: "1.10" })
  })
})
