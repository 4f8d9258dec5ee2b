/**
 * A date and time with microseconds and a fixed UTC offset: the value type of `Argument.DateTime`
 * (Twisted's `amp.DateTime`, a timezone-aware Python `datetime`).
 *
 * The fields are the *wall-clock* time at the offset, exactly as on the wire
 * (`2012-03-04T05:06:07.890123+05:30`), so nothing is lost in either direction: microseconds and the
 * offset survive. Years are 1–9999 like Python's `datetime`. Convert with {@link toDate} (millisecond
 * precision) or {@link toEffect} to compute with it.
 *
 * @example
 * ```ts
 * import { DateTime } from "effect-amp"
 *
 * const dt = DateTime.makeUnsafe({ year: 9876, month: 1, day: 23, hour: 12, minute: 34, second: 56, microsecond: 54321, offsetMinutes: -83 })
 * DateTime.toString(dt) // "9876-01-23T12:34:56.054321-01:23"
 * DateTime.toString(DateTime.makeUnsafe({ year: 2010, month: 12, day: 25 })) // "2010-12-25T00:00:00.000000-00:00"
 * ```
 *
 * @since 0.1.0
 */
import { DateTime as EffectDateTime, Equal, Hash, Option, Schema } from "effect"

/**
 * A timezone-aware date-time with microsecond precision and a fixed offset in minutes. Build one with
 * {@link make} / {@link makeUnsafe} (validated); the constructor does not validate.
 *
 * Equality ({@link equals}, `Equal.equals`) compares every field, so the same instant at two offsets
 * differs (Python compares instants; use {@link toEpochMicros} for that).
 *
 * @since 0.1.0
 * @category models
 */
export class DateTime implements Equal.Equal {
  /** 1–9999 */
  readonly year: number
  /** 1–12 */
  readonly month: number
  /** 1–28/29/30/31 */
  readonly day: number
  /** 0–23 */
  readonly hour: number
  /** 0–59 */
  readonly minute: number
  /** 0–59 */
  readonly second: number
  /** 0–999999 */
  readonly microsecond: number
  /** Offset from UTC in minutes, −1439..1439 (+330 for `+05:30`, 0 for UTC). */
  readonly offsetMinutes: number

  constructor(
    year: number,
    month: number,
    day: number,
    hour: number,
    minute: number,
    second: number,
    microsecond: number,
    offsetMinutes: number
  ) {
    this.year = year
    this.month = month
    this.day = day
    this.hour = hour
    this.minute = minute
    this.second = second
    this.microsecond = microsecond
    this.offsetMinutes = offsetMinutes
  }

  /** The 32-character wire form, e.g. `2010-12-25T00:00:00.000000-00:00`. */
  toString(): string {
    return toString(this)
  }

  /** What `JSON.stringify` and Effect's pretty-printing show: `{ _id, value }`, value the wire form. */
  toJSON(): unknown {
    return { _id: "AmpDateTime", value: toString(this) }
  }

  /** Effect's structural equality (`Equal.equals`): see {@link equals}. */
  [Equal.symbol](that: Equal.Equal): boolean {
    return that instanceof DateTime && equals(this, that)
  }

  /** Effect's hash, consistent with equality: the hash of the wire form. */
  [Hash.symbol](): number {
    return Hash.string(toString(this))
  }
}

/**
 * True for a {@link DateTime}.
 *
 * @since 0.1.0
 * @category guards
 */
export const isDateTime = (u: unknown): u is DateTime => u instanceof DateTime

/**
 * The fields of a {@link DateTime}; time fields and the offset default to 0.
 *
 * @since 0.1.0
 * @category models
 */
export interface Parts {
  readonly year: number
  readonly month: number
  readonly day: number
  readonly hour?: number | undefined
  readonly minute?: number | undefined
  readonly second?: number | undefined
  readonly microsecond?: number | undefined
  readonly offsetMinutes?: number | undefined
}

const isLeap = (y: number): boolean => y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0)
const DAYS = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

/** @internal days in a month of a year */
export const daysInMonth = (year: number, month: number): number =>
  month === 2 && isLeap(year) ? 29 : DAYS[month]!

const inRange = (n: number, min: number, max: number): boolean => Number.isInteger(n) && n >= min && n <= max

/** @internal the reason a set of fields is not a valid DateTime (Python `datetime`'s rules), or undefined */
export const invalidReason = (
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  microsecond: number,
  offsetMinutes: number
): string | undefined => {
  if (!inRange(year, 1, 9999)) return `year ${year} is out of range (1..9999)`
  if (!inRange(month, 1, 12)) return `month must be in 1..12, got ${month}`
  if (!inRange(day, 1, daysInMonth(year, month))) return `day ${day} is out of range for month ${year}-${month}`
  if (!inRange(hour, 0, 23)) return `hour must be in 0..23, got ${hour}`
  if (!inRange(minute, 0, 59)) return `minute must be in 0..59, got ${minute}`
  if (!inRange(second, 0, 59)) return `second must be in 0..59, got ${second}`
  if (!inRange(microsecond, 0, 999999)) return `microsecond must be in 0..999999, got ${microsecond}`
  if (!inRange(offsetMinutes, -1439, 1439)) return `offset must be strictly between -24h and +24h, got ${offsetMinutes} minutes`
  return undefined
}

const build = (p: Parts): DateTime | string => {
  const hour = p.hour ?? 0
  const minute = p.minute ?? 0
  const second = p.second ?? 0
  const microsecond = p.microsecond ?? 0
  const offset = p.offsetMinutes ?? 0
  const reason = invalidReason(p.year, p.month, p.day, hour, minute, second, microsecond, offset)
  if (reason !== undefined) return reason
  return new DateTime(p.year, p.month, p.day, hour, minute, second, microsecond, offset === 0 ? 0 : offset)
}

/**
 * A validated DateTime, or `None` when a field is out of range (Python `datetime`'s rules: year
 * 1..9999, a real day of the month including leap years, hour 0..23, …, offset strictly within ±24h).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (parts: Parts): Option.Option<DateTime> => {
  const r = build(parts)
  return typeof r === "string" ? Option.none() : Option.some(r)
}

/**
 * {@link make} that throws a `RangeError` naming the bad field.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeUnsafe = (parts: Parts): DateTime => {
  const r = build(parts)
  if (typeof r === "string") throw new RangeError(`invalid DateTime: ${r}`)
  return r
}

const pad = (n: number, width: number): string => {
  const s = "" + n
  return s.length >= width ? s : "0".repeat(width - s.length) + s
}

/**
 * Twisted's wire form `'%04i-%02i-%02iT%02i:%02i:%02i.%06i%s%02i:%02i'`: always 32 ASCII characters.
 * The sign is `+` only for a positive offset; **UTC is written `-00:00`**, as Twisted does.
 *
 * @since 0.1.0
 * @category conversions
 */
export const toString = (dt: DateTime): string => {
  const off = dt.offsetMinutes
  const abs = off < 0 ? -off : off
  return pad(dt.year, 4) + "-" + pad(dt.month, 2) + "-" + pad(dt.day, 2) + "T" + pad(dt.hour, 2) + ":" +
    pad(dt.minute, 2) + ":" + pad(dt.second, 2) + "." + pad(dt.microsecond, 6) + (off > 0 ? "+" : "-") +
    pad(Math.floor(abs / 60), 2) + ":" + pad(abs % 60, 2)
}

const isSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13)

/**
 * Python `int()` of a short slice of ASCII bytes (ASCII whitespace around, a sign, single `_` between
 * digits), as a number; undefined if invalid.
 */
const pyIntSlice = (s: Uint8Array, start: number, end: number): number | undefined => {
  // fast path: all digits
  let value = 0
  let i = start
  while (i < end) {
    const d = s[i]! - 48
    if (d < 0 || d > 9) break
    value = value * 10 + d
    i++
  }
  if (i === end) return value
  while (start < end && isSpace(s[start]!)) start++
  while (end > start && isSpace(s[end - 1]!)) end--
  if (start === end) return undefined
  let negative = false
  const c0 = s[start]!
  if (c0 === 43 || c0 === 45) {
    negative = c0 === 45
    start++
  }
  value = 0
  let prevDigit = false
  let digits = 0
  for (let i = start; i < end; i++) {
    const c = s[i]!
    if (c >= 48 && c <= 57) {
      value = value * 10 + (c - 48)
      prevDigit = true
      digits++
    } else if (c === 95 && prevDigit && i + 1 < end) {
      prevDigit = false
    } else {
      return undefined
    }
  }
  if (digits === 0 || !prevDigit) return undefined
  return negative ? -value : value
}

const show = (bytes: Uint8Array): string => {
  let s = ""
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!)
  return JSON.stringify(s)
}

/** @internal parse the wire bytes as Twisted does; returns a DateTime or the failure reason */
export const parseBytes = (s: Uint8Array): DateTime | string => {
  if (s.length !== 32) return `invalid date format: expected 32 characters, got ${s.length}`
  for (let i = 0; i < 32; i++) {
    if (s[i]! > 0x7f) return "invalid date format: not ASCII"
  }
  const year = pyIntSlice(s, 0, 4)
  const month = pyIntSlice(s, 5, 7)
  const day = pyIntSlice(s, 8, 10)
  const hour = pyIntSlice(s, 11, 13)
  const minute = pyIntSlice(s, 14, 16)
  const second = pyIntSlice(s, 17, 19)
  const microsecond = pyIntSlice(s, 20, 26)
  const offHours = pyIntSlice(s, 27, 29)
  const offMinutes = pyIntSlice(s, 30, 32)
  if (
    year === undefined || month === undefined || day === undefined || hour === undefined || minute === undefined ||
    second === undefined || microsecond === undefined || offHours === undefined || offMinutes === undefined
  ) {
    return `invalid date format ${show(s)}: a field is not an integer`
  }
  const sign = s[26]
  if (sign !== 43 && sign !== 45) return `invalid sign for timezone ${show(s.subarray(26, 27))}`
  const magnitude = offHours * 60 + offMinutes
  const offset = sign === 45 ? -magnitude : magnitude
  const reason = invalidReason(year, month, day, hour, minute, second, microsecond, offset)
  if (reason !== undefined) return reason
  return new DateTime(year, month, day, hour, minute, second, microsecond, offset === 0 ? 0 : offset)
}

/** @internal parse the wire form as Twisted does; returns a DateTime or the failure reason */
export const parse = (text: string): DateTime | string => {
  if (text.length !== 32) return `invalid date format: expected 32 characters, got ${text.length}`
  const bytes = new Uint8Array(32)
  for (let i = 0; i < 32; i++) {
    const c = text.charCodeAt(i)
    if (c > 0x7f) return "invalid date format: not ASCII"
    bytes[i] = c
  }
  return parseBytes(bytes)
}

const writeDigits = (out: Uint8Array, pos: number, n: number, width: number): void => {
  for (let i = pos + width - 1; i >= pos; i--) {
    out[i] = 48 + (n % 10)
    n = Math.floor(n / 10)
  }
}

/** @internal the 32 wire bytes of a valid DateTime */
export const toBytes = (dt: DateTime): Uint8Array => {
  const out = new Uint8Array(32)
  const off = dt.offsetMinutes
  const abs = off < 0 ? -off : off
  writeDigits(out, 0, dt.year, 4)
  out[4] = 45
  writeDigits(out, 5, dt.month, 2)
  out[7] = 45
  writeDigits(out, 8, dt.day, 2)
  out[10] = 84 // T
  writeDigits(out, 11, dt.hour, 2)
  out[13] = 58
  writeDigits(out, 14, dt.minute, 2)
  out[16] = 58
  writeDigits(out, 17, dt.second, 2)
  out[19] = 46
  writeDigits(out, 20, dt.microsecond, 6)
  out[26] = off > 0 ? 43 : 45
  writeDigits(out, 27, Math.floor(abs / 60), 2)
  out[29] = 58
  writeDigits(out, 30, abs % 60, 2)
  return out
}

/**
 * Parses the 32-character wire form with Twisted's rules: fixed slices read with Python `int()`
 * leniency (separators are not checked), the sign must be `+` or `-`, offset minutes over 59 carry
 * (`+00:60` is +1h), the offset must be within ±24h and every field valid. `None` otherwise.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromString = (text: string): Option.Option<DateTime> => {
  const r = parse(text)
  return typeof r === "string" ? Option.none() : Option.some(r)
}

/**
 * {@link fromString} that throws a `SyntaxError` with the reason.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromStringUnsafe = (text: string): DateTime => {
  const r = parse(text)
  if (typeof r === "string") throw new SyntaxError(`invalid DateTime: ${r}`)
  return r
}

/**
 * Field equality (representation): the same instant at different offsets is *not* equal.
 *
 * @since 0.1.0
 * @category equivalence
 */
export const equals = (a: DateTime, b: DateTime): boolean =>
  a.year === b.year && a.month === b.month && a.day === b.day && a.hour === b.hour && a.minute === b.minute &&
  a.second === b.second && a.microsecond === b.microsecond && a.offsetMinutes === b.offsetMinutes

/** Milliseconds since the epoch of the wall-clock fields read as UTC (no offset applied). */
const wallMillis = (dt: DateTime): number => {
  const d = new Date(0)
  d.setUTCFullYear(dt.year, dt.month - 1, dt.day) // setUTCFullYear: years 1..99 are not shifted to 19xx
  d.setUTCHours(dt.hour, dt.minute, dt.second, Math.floor(dt.microsecond / 1000))
  return d.getTime()
}

/**
 * The instant in microseconds since 1970-01-01T00:00:00Z (exact).
 *
 * @since 0.1.0
 * @category conversions
 */
export const toEpochMicros = (dt: DateTime): bigint =>
  (BigInt(wallMillis(dt) - dt.offsetMinutes * 60_000) * 1000n) + BigInt(dt.microsecond % 1000)

/**
 * The instant as a JS `Date`. **Lossy:** `Date` has millisecond precision (the microseconds below a
 * millisecond are dropped, rounding toward the past) and no offset.
 *
 * @since 0.1.0
 * @category conversions
 */
export const toDate = (dt: DateTime): Date => new Date(wallMillis(dt) - dt.offsetMinutes * 60_000)

/** From the wall clock (in ms since the epoch, read as UTC) and an offset. */
const fromWall = (wallMs: number, offsetMinutes: number): DateTime | string => {
  if (!Number.isFinite(wallMs)) return "invalid Date"
  if (!inRange(offsetMinutes, -1439, 1439)) return `offset must be strictly between -24h and +24h, got ${offsetMinutes} minutes`
  const d = new Date(wallMs)
  if (Number.isNaN(d.getTime())) return "date out of range"
  const r = build({
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    second: d.getUTCSeconds(),
    microsecond: d.getUTCMilliseconds() * 1000,
    offsetMinutes
  })
  return r
}

/**
 * The DateTime of a JS `Date` at the given offset (default 0, UTC): the wall clock at that offset, with
 * microseconds `ms × 1000`. `None` for an invalid `Date`, a year outside 1..9999, or an offset outside
 * ±1439 minutes.
 *
 * @since 0.1.0
 * @category conversions
 */
export const fromDate = (date: Date, offsetMinutes = 0): Option.Option<DateTime> => {
  const r = fromWall(date.getTime() + offsetMinutes * 60_000, offsetMinutes)
  return typeof r === "string" ? Option.none() : Option.some(r)
}

/**
 * {@link fromDate} that throws a `RangeError`.
 *
 * @since 0.1.0
 * @category conversions
 */
export const fromDateUnsafe = (date: Date, offsetMinutes = 0): DateTime => {
  const r = fromWall(date.getTime() + offsetMinutes * 60_000, offsetMinutes)
  if (typeof r === "string") throw new RangeError(`invalid DateTime: ${r}`)
  return r
}

/**
 * The same instant as an effect `DateTime.Zoned` with a fixed offset zone. **Lossy:** effect's
 * `DateTime` has millisecond precision.
 *
 * @since 0.1.0
 * @category conversions
 */
export const toEffect = (dt: DateTime): EffectDateTime.Zoned =>
  EffectDateTime.makeZonedUnsafe(toDate(dt), { timeZone: EffectDateTime.zoneMakeOffset(dt.offsetMinutes * 60_000) })

/**
 * The DateTime of an effect `DateTime`: a `Utc` gets offset 0; a `Zoned` gets its offset at that
 * instant, floored to whole minutes like Twisted (wall clock kept, `-00:00:30` → `-00:01`). `None` outside years
 * 1..9999.
 *
 * @since 0.1.0
 * @category conversions
 */
export const fromEffect = (dt: EffectDateTime.DateTime): Option.Option<DateTime> => {
  const offsetMs = dt._tag === "Utc" ? 0 : EffectDateTime.zonedOffset(dt)
  // Like Twisted: the wall clock at the real offset, the offset floored to minutes.
  const r = fromWall(EffectDateTime.toEpochMillis(dt) + offsetMs, Math.floor(offsetMs / 60_000))
  return typeof r === "string" ? Option.none() : Option.some(r)
}

/**
 * Schema of the value type (an `instanceof DateTime` check). The wire codec is `Argument.DateTime`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const schema: Schema.declare<DateTime> = Schema.declare(isDateTime, {
  title: "AmpDateTime",
  description: "a date-time with microseconds and a fixed UTC offset (Twisted's amp.DateTime)"
})
