/**
 * AMP argument types: how each value of a command's arguments and responses is written into, and read
 * from, one box value. Byte-exact with Twisted's `twisted.protocols.amp` argument classes.
 *
 * Every argument type is an ordinary effect `Schema.Codec<A, Uint8Array>` (decoded type `A`, encoded
 * wire bytes), so `Schema.decodeUnknownExit(Argument.Integer)(bytes)` works, and **any**
 * `Schema.Codec<A, Uint8Array>` can be used as an argument. The types made here (and with {@link make})
 * also carry a synchronous fast codec that commands use on the hot path.
 *
 * | AMP (Twisted)  | here               | TypeScript value                     |
 * |----------------|--------------------|--------------------------------------|
 * | `Integer`      | {@link Integer}    | `bigint` (or `number`: {@link SafeInteger}) |
 * | `String`       | {@link String}     | `Uint8Array` (raw bytes)             |
 * | `Unicode`      | {@link Unicode}    | `string` (UTF-8)                     |
 * | `Float`        | {@link Float}      | `number`                             |
 * | `Boolean`      | {@link Boolean}    | `boolean`                            |
 * | `Decimal`      | {@link Decimal}    | `Decimal.Decimal`                    |
 * | `DateTime`     | {@link DateTime}   | `DateTime.DateTime`                  |
 * | `Path`         | {@link Path}       | `string` (absolute path)             |
 * | `ListOf(t)`    | {@link ListOf}     | `ReadonlyArray<T>`                   |
 * | `AmpList(...)` | {@link AmpList}    | `ReadonlyArray<{ ... }>`             |
 * | `Descriptor`   | {@link Descriptor} | `number` (an open fd; Unix sockets)  |
 * | `optional=True`| {@link optional}   | an optional property                 |
 *
 * @example
 * ```ts
 * import { Argument, Command } from "effect-amp"
 *
 * const Sum = Command.make("Sum", {
 *   arguments: { a: Argument.Integer, b: Argument.Integer, note: Argument.optional(Argument.Unicode) },
 *   response: { total: Argument.Integer }
 * })
 * ```
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import * as Box from "./Box.ts"
import * as DateTimeValue from "./DateTime.ts"
import * as DecimalValue from "./Decimal.ts"
import {
  CodecFailure,
  compileFields,
  fastCodecOf,
  FieldFailure,
  type FieldsCodec,
  makeArgument,
  isArgumentField,
  register
} from "./internal/argument.ts"
import * as Descriptors from "./internal/descriptors.ts"
import {
  BooleanArg,
  DateTimeArg,
  DecimalArg,
  FloatArg,
  IntegerArg,
  PathArg,
  SafeIntegerArg,
  StringArg,
  UnicodeArg,
  decodeUtf8,
  encodeBigInt,
  encodeUtf8,
  show,
  typeName
} from "./internal/scalars.ts"

export {
  /**
   * The failure a custom argument's `encode`/`decode` throws (`throw new Argument.CodecFailure("why")`);
   * the command layer reports it as an `AmpArgumentError` naming the key.
   *
   * @since 0.1.0
   * @category errors
   */
  CodecFailure
}

/**
 * Any argument type: a Schema between a value and its wire bytes.
 *
 * @since 0.1.0
 * @category models
 */
export type Any = Schema.Codec<any, Uint8Array, never, never>

/**
 * A field of an argument set: an argument type, or {@link optional} of one.
 *
 * @since 0.1.0
 * @category models
 */
export type Field = Any | Schema.optionalKey<Any>

/**
 * A record of fields, wire key → field (used by {@link AmpList}, and by commands).
 *
 * @since 0.1.0
 * @category models
 */
export type Fields = { readonly [key: string]: Field }

/**
 * An argument type built from synchronous functions: what {@link make} returns.
 *
 * @since 0.1.0
 * @category models
 */
export type Argument<S extends Schema.Codec<any, any, never, never>> = Schema.decodeTo<S, Schema.Uint8Array>

// ---------------------------------------------------------------------------------------------------
// ListOf

/**
 * The schema type of {@link ListOf}.
 *
 * @since 0.1.0
 * @category models
 */
export type ListOf<S extends Any> = Schema.decodeTo<Schema.$Array<Schema.toType<S>>, Schema.Uint8Array>

/**
 * A list of values of one argument type (Twisted's `ListOf(elementType)`): each element is encoded
 * with `element`, prefixed by its length as a big-endian uint16, and the results are concatenated
 * (no count, no terminator; `[]` is the empty value).
 *
 * Decoding drops an incomplete trailing element exactly like Twisted (`\x00\x011\x00\x032` → `[1n]`).
 * Encoding fails for an element over 65535 bytes; the whole value must also fit in 65535 bytes when
 * the box is sent. Works with every argument type, including nested `ListOf` and `AmpList` (Twisted
 * itself cannot put an `AmpList` inside a `ListOf`, so only use that between effect-amp peers).
 *
 * @example
 * ```ts
 * import { Argument } from "effect-amp"
 * import { Schema } from "effect"
 * const Ints = Argument.ListOf(Argument.Integer)
 * Schema.encodeSync(Ints)([1n, 20n, 500n]) // \x00\x011\x00\x0220\x00\x03500
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const ListOf = <S extends Any>(element: S): ListOf<S> => {
  const el = fastCodecOf(element)
  return makeArgument({
    name: `ListOf(${el.name})`,
    keepsBytes: () => el.keepsBytes,
    type: Schema.Array(Schema.toType(element)),
    encode: (values: ReadonlyArray<S["Type"]>) => {
      if (!Array.isArray(values)) throw new CodecFailure(`expected an array, got ${typeName(values)}`)
      const count = values.length
      const parts = new Array<Uint8Array>(count)
      let total = 0
      for (let i = 0; i < count; i++) {
        let b: Uint8Array
        try {
          b = el.encode(values[i])
        } catch (e) {
          throw new CodecFailure(`element ${i}: ${e instanceof CodecFailure ? e.reason : show(e)}`)
        }
        if (b.length > 0xffff) throw new CodecFailure(`element ${i} is ${b.length} bytes, over 65535`)
        parts[i] = b
        total += 2 + b.length
      }
      const out = new Uint8Array(total)
      let pos = 0
      for (let i = 0; i < count; i++) {
        const b = parts[i]!
        out[pos] = b.length >>> 8
        out[pos + 1] = b.length & 0xff
        out.set(b, pos + 2)
        pos += 2 + b.length
      }
      return out
    },
    decode: (bytes): ReadonlyArray<S["Type"]> => {
      const out: Array<S["Type"]> = []
      const n = bytes.length
      let i = 0
      while (i + 2 <= n) {
        const len = (bytes[i]! << 8) | bytes[i + 1]!
        const end = i + 2 + len
        if (end > n) break // incomplete tail: dropped, as Twisted's Int16StringReceiver does
        try {
          out.push(el.decode(bytes.subarray(i + 2, end)))
        } catch (e) {
          throw new CodecFailure(`element ${out.length}: ${e instanceof CodecFailure ? e.reason : show(e)}`)
        }
        i = end
      }
      return out
    }
  }) as ListOf<S>
}

// ---------------------------------------------------------------------------------------------------
// AmpList

/**
 * Default nesting limit of {@link AmpList} decoding: how many `AmpList` values may be being decoded
 * inside one another at once (32).
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_AMP_LIST_MAX_DEPTH = 32

/** AmpList decodes currently on the stack (decoding is synchronous, so one counter suffices). */
let ampListDepth = 0
/**
 * The limit that was hit, while the failure unwinds: layers in between (e.g. `Schema.suspend`) wrap the
 * message, so the outermost AmpList reports the depth failure itself.
 */
let depthExceeded = 0

/**
 * The schema type of {@link AmpList}: an array of objects typed by the fields (with
 * {@link optional} fields as optional properties).
 *
 * @since 0.1.0
 * @category models
 */
export type AmpList<F extends Fields> = Schema.decodeTo<Schema.$Array<Schema.toType<Schema.Struct<F>>>, Schema.Uint8Array>

/**
 * A list of structured elements (Twisted's `AmpList(subargs)`): each element is a whole box, encoded
 * with `fields` (keys sorted, ending with the empty key `\x00\x00`), and the boxes are concatenated.
 * Keys in an element that are not in `fields` are ignored on decode; an incomplete trailing box is
 * dropped, as in Twisted. Elements may contain any argument type, including `ListOf` and other
 * `AmpList`s, to any depth.
 *
 * Decoding fails when this `AmpList` value sits inside `maxDepth` (default
 * {@link DEFAULT_AMP_LIST_MAX_DEPTH}) or more other `AmpList` values being decoded, so a recursive
 * definition (through `Schema.suspend`) cannot be driven into unbounded recursion by hostile input.
 *
 * @example
 * ```ts
 * import { Argument } from "effect-amp"
 * const Items = Argument.AmpList({
 *   id: Argument.Integer,
 *   name: Argument.Unicode,
 *   weight: Argument.optional(Argument.Float),
 *   children: Argument.AmpList({ x: Argument.Integer })
 * })
 * // typeof Items.Type: ReadonlyArray<{ readonly id: bigint; readonly name: string; readonly weight?: number; readonly children: ReadonlyArray<{ readonly x: bigint }> }>
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const AmpList = <const F extends Fields>(
  fields: F,
  options?: { readonly maxDepth?: number | undefined }
): AmpList<F> => {
  const maxDepth = options?.maxDepth ?? DEFAULT_AMP_LIST_MAX_DEPTH
  let compiled: FieldsCodec | undefined // compiled on first use, so fields may refer to schemas defined later
  const codec = (): FieldsCodec => (compiled ??= compileFields(fields))
  const fieldFailure = (i: number, e: unknown): CodecFailure =>
    new CodecFailure(
      e instanceof FieldFailure
        ? `element ${i}, key ${JSON.stringify(e.key)}: ${e.reason}`
        : `element ${i}: ${e instanceof CodecFailure ? e.reason : show(e)}`
    )
  return makeArgument({
    name: "AmpList",
    keepsBytes: () => codec().recyclable.length < codec().keys.length,
    type: Schema.Array(Schema.toType(Schema.Struct(fields))),
    encode: (values: ReadonlyArray<Schema.Struct<F>["Type"]>) => {
      if (!Array.isArray(values)) throw new CodecFailure(`expected an array, got ${typeName(values)}`)
      const c = codec()
      const boxes = new Array<Box.Box>(values.length)
      for (let i = 0; i < values.length; i++) {
        const v = values[i]
        if (typeof v !== "object" || v === null) throw new CodecFailure(`element ${i}: expected an object, got ${typeName(v)}`)
        const box = new Map<string, Uint8Array>()
        try {
          c.encode(v, box)
        } catch (e) {
          throw fieldFailure(i, e)
        }
        boxes[i] = box
      }
      try {
        return Box.encodeAllUnsafe(boxes)
      } catch (e) {
        throw new CodecFailure(e instanceof Error ? e.message : show(e))
      }
    },
    decode: (bytes): ReadonlyArray<Schema.Struct<F>["Type"]> => {
      if (ampListDepth === 0) depthExceeded = 0
      if (ampListDepth >= maxDepth) {
        depthExceeded = maxDepth
        throw new CodecFailure(`AmpList nested deeper than ${maxDepth}`)
      }
      const c = codec()
      const boxes: Array<Box.Box> = []
      const error = Box.makeDecoder().feed(bytes, boxes) // a trailing partial box stays pending: dropped
      if (error !== undefined) throw new CodecFailure(`malformed AmpList element: ${error.message}`)
      const out = new Array<Schema.Struct<F>["Type"]>(boxes.length)
      ampListDepth++
      try {
        for (let i = 0; i < boxes.length; i++) {
          try {
            out[i] = c.decode(boxes[i]!) as Schema.Struct<F>["Type"]
          } catch (e) {
            if (ampListDepth === 1 && depthExceeded !== 0) {
              throw new CodecFailure(`AmpList nested deeper than ${depthExceeded}`)
            }
            throw fieldFailure(i, e)
          }
        }
      } finally {
        ampListDepth--
      }
      return out
    }
  }) as AmpList<F>
}

// ---------------------------------------------------------------------------------------------------
// optional, make, fromUnicode

/**
 * Is this value an AMP argument type (a built-in type, or one made with `make`, `fromUnicode`, `ListOf`,
 * `AmpList`), or `optional(...)` of one? Any other Schema has no AMP wire form.
 *
 * @since 0.1.0
 * @category guards
 */
export const isField = (u: unknown): u is Any | Schema.optionalKey<Any> => isArgumentField(u)

/**
 * Marks a field optional (Twisted's `optional=True`): an absent key on the wire is an absent property,
 * and an absent (or `undefined`) property is not written. It is `Schema.optionalKey`, so the field's
 * property type is `?: A` (with `exactOptionalPropertyTypes`, not `| undefined`). A present but empty
 * value is decoded, not treated as absent.
 *
 * @since 0.1.0
 * @category combinators
 */
export const optional = <S extends Any>(argument: S): Schema.optionalKey<S> => Schema.optionalKey(argument)

/**
 * Makes a new argument type from synchronous `encode`/`decode` functions and the Schema of the value
 * (`type`, used for validation when the codec runs through Schema). Both functions receive and return
 * plain values and report failures by throwing {@link CodecFailure}. The result is a genuine
 * `Schema.Codec<A, Uint8Array>` that commands call without the Schema interpreter.
 *
 * Any other `Schema.Codec<A, Uint8Array>` also works as an argument as it is (it is run through Schema,
 * somewhat slower); for a Schema whose encoded side is a string, see {@link fromUnicode}.
 *
 * @example
 * ```ts
 * import { Argument } from "effect-amp"
 * import { Schema } from "effect"
 *
 * // a comma-separated list of words
 * const Words = Argument.make({
 *   name: "Words",
 *   type: Schema.Array(Schema.String),
 *   encode: (words) => new TextEncoder().encode(words.join(",")),
 *   decode: (bytes) => {
 *     if (bytes.length === 0) return []
 *     return new TextDecoder().decode(bytes).split(",")
 *   }
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <S extends Schema.Codec<S["Type"], S["Type"], never, never>>(options: {
  /** Used in failure messages. */
  readonly name: string
  /** The Schema of the decoded value (its encoded side must be the same type). */
  readonly type: S
  readonly encode: (value: S["Type"]) => Uint8Array
  readonly decode: (bytes: Uint8Array) => S["Type"]
  /**
   * Set to `false` when `decode` never returns or keeps a view of its input (it builds strings,
   * numbers, fresh arrays): connections may then recycle a large input buffer right after decoding.
   * Default `true`, which is always safe.
   */
  readonly keepsBytes?: boolean | undefined
}): Argument<S> => makeArgument<S["Type"], S>(options)

/**
 * The schema type of {@link fromUnicode}.
 *
 * @since 0.1.0
 * @category models
 */
export type FromUnicode<S extends Schema.Codec<any, string, never, never>> = Schema.compose<S, typeof Unicode>

/**
 * An argument type from any Schema whose encoded side is a string, carried as UTF-8 text (like
 * `Unicode`). The schema's own decoding (validation, transformation) runs after the UTF-8 decode.
 *
 * @example
 * ```ts
 * import { Argument } from "effect-amp"
 * import { Schema } from "effect"
 * const Port = Argument.fromUnicode(Schema.FiniteFromString) // "8080" on the wire
 * const Color = Argument.fromUnicode(Schema.Literals(["red", "green"]))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromUnicode = <S extends Schema.Codec<any, string, never, never>>(schema: S): FromUnicode<S> => {
  const composed = UnicodeArg.pipe(Schema.decodeTo(schema))
  const decode = Schema.decodeUnknownExit(schema)
  const encode = Schema.encodeUnknownExit(schema)
  const name = `fromUnicode(${schema.ast._tag})`
  return register(composed, {
    name,
    keepsBytes: false, // the schema decodes a string
    decode: (bytes) => {
      const exit = decode(decodeUtf8(bytes))
      if (exit._tag === "Success") return exit.value
      throw new CodecFailure(show(exit.cause))
    },
    encode: (value) => {
      const exit = encode(value)
      if (exit._tag === "Success") return encodeUtf8(exit.value)
      throw new CodecFailure(show(exit.cause))
    }
  })
}

// ---------------------------------------------------------------------------------------------------
// the exported argument types (declared above under local names: `String` and `Boolean` would shadow
// the globals inside this module)

/**
 * An arbitrary-precision integer as a `bigint` (Twisted's `Integer`). Wire: decimal digits (`-42`,
 * `1267650600228229401496703205376`).
 *
 * Decoding accepts what Python's `int()` accepts: surrounding ASCII whitespace, a `+`/`-` sign, leading
 * zeros and single `_` between digits (`" 1_000 "` → `1000n`); anything else fails (`1.0`, `0x10`,
 * `1e3`, empty). Like CPython, more than 4300 digits fail in both directions.
 * For `number`s use {@link SafeInteger}.
 *
 * @since 0.1.0
 * @category arguments
 */
export const Integer = IntegerArg

/**
 * Twisted's `Integer` as a JS `number`. Encodes only safe integers (|n| ≤ 2^53−1); decoding a value
 * beyond that fails (typed) instead of losing precision. Same wire form and grammar as {@link Integer}.
 *
 * @since 0.1.0
 * @category arguments
 */
export const SafeInteger = SafeIntegerArg

/**
 * Raw bytes (Twisted's `String`, Python `bytes`), passed through unchanged in both directions (any
 * bytes, NUL included). A decoded value may be a view into the received data: copy it (`.slice()`) if
 * you keep it for long and want the rest of the chunk to be collectable.
 *
 * @since 0.1.0
 * @category arguments
 */
export const String = StringArg

/**
 * Text as strict UTF-8 (Twisted's `Unicode`). Encoding a string with a lone surrogate fails (Python's
 * encoder refuses it; `TextEncoder` would silently write U+FFFD). Decoding invalid UTF-8, including
 * encoded surrogates (`ED A0 80`), fails; a byte order mark is kept as U+FEFF.
 *
 * @since 0.1.0
 * @category arguments
 */
export const Unicode = UnicodeArg

/**
 * A double (Twisted's `Float`). Encoding writes Python's `repr(float)`: shortest round-trip digits,
 * `1.0`, `1e+16`, `1e-05`, `-0.0`, `nan`, `inf`, `-inf` (NaN's sign is not written). Decoding follows
 * Python's `float()`: whitespace, sign, `_` between digits, `.5`, `5.`, exponents,
 * `nan`/`inf`/`infinity` in any case; overflow gives ±Infinity and underflow ±0.
 *
 * @since 0.1.0
 * @category arguments
 */
export const Float = FloatArg

/**
 * A boolean (Twisted's `Boolean`): exactly `True` / `False` in both directions; anything else
 * (`true`, `TRUE`, `1`, empty) fails to decode.
 *
 * @since 0.1.0
 * @category arguments
 */
export const Boolean = BooleanArg

/**
 * A lossless decimal (Twisted's `Decimal`, Python `decimal.Decimal`) as a {@link DecimalValue.Decimal}
 * from `effect-amp/Decimal`. Encoding writes Python's `str(Decimal)` (`1.10`, `1E+2`, `-0`, `0E+6`,
 * `NaN`, `-sNaN`, `Infinity`); decoding accepts Python's `Decimal()` grammar (whitespace, `_` anywhere,
 * any-case `inf`/`nan`); non-ASCII bytes fail.
 *
 * @since 0.1.0
 * @category arguments
 */
export const Decimal = DecimalArg

/**
 * A date-time with microseconds and a UTC offset (Twisted's `DateTime`) as a
 * {@link DateTimeValue.DateTime}. Wire: always 32 characters,
 * `'%04i-%02i-%02iT%02i:%02i:%02i.%06i%s%02i:%02i'`; **UTC is written `-00:00`** (the sign is `+` only
 * for a positive offset). Decoding follows Twisted: fixed slices read leniently, sign `+`/`-`, minutes
 * over 59 carry, offset within ±24h, fields valid like Python's `datetime`.
 *
 * @since 0.1.0
 * @category arguments
 */
export const DateTime = DateTimeArg

/**
 * A filesystem path (Twisted's `Path`, a `FilePath`) as a string, UTF-8 on the wire. Decoding makes it
 * absolute and normalized like `FilePath` (relative paths are resolved against this process's working
 * directory, `..` is collapsed). Encoding writes the string as given (Twisted always sends an absolute
 * path, since a `FilePath` holds one; resolve it first if the peer should not see a relative path).
 *
 * @since 0.1.0
 * @category arguments
 */
export const Path = PathArg

const DescriptorArg = makeArgument({
  name: "Descriptor",
  keepsBytes: false,
  type: Schema.Int,
  encode: (fd: number) => encodeBigInt(BigInt(Descriptors.encode(fd))),
  decode: (bytes) => Descriptors.decode(fastCodecOf(IntegerArg).decode(bytes) as bigint)
})

/**
 * An open file descriptor passed over a Unix-domain connection (Twisted's `Descriptor`): a regular
 * file, a pipe, a socket. The TypeScript value is the fd number (use it with `node:fs`, `net.Socket`…).
 * Byte-compatible with Twisted: the wire value is a per-connection ordinal (decimal, counting from 0 in
 * each direction) and the fd itself travels as `SCM_RIGHTS` ancillary data on the box's first bytes.
 *
 * Ownership:
 * - **Sending**: a duplicate of the fd is sent (made when the box is encoded, closed once written), so
 *   the fd stays yours: close it whenever you like once the call has started (its box is encoded as the
 *   `callRemote` effect starts running; not when the effect is merely built). To hand an fd over
 *   instead (typical for a responder's answer), send `Descriptor.transfer(fd)`: the connection then sends
 *   that fd itself and closes it once written.
 * - **Receiving**: the fd belongs to the handler (or caller) that decoded it, which must close it.
 *   Received fds that nobody claims (an abandoned call's answer, a failed decode) are closed when the
 *   connection ends; more than 1024 unclaimed fds close the connection.
 *
 * Needs effect-amp's native part (built by `npm install` with a C compiler) and a Unix-domain
 * connection (`Client.connect({ path })`, `Server.make({ path })`). Otherwise, and over TCP, a call
 * with a `Descriptor` fails with an `AmpArgumentError` before anything is sent, saying why (and how to
 * enable it). A received ordinal whose fd has not arrived fails like a bad argument (`UNKNOWN`, then
 * the connection closes), as in Twisted.
 *
 * @since 0.1.0
 * @category arguments
 */
export const Descriptor = DescriptorArg
