/**
 * The machinery behind `Argument`: every argument type is an `effect/Schema` codec between wire bytes
 * (`Uint8Array`) and a TypeScript value, and additionally carries a synchronous fast codec (registered
 * here) that the command layer uses on the hot path instead of running the general Schema interpreter.
 * @internal
 */
import { Effect, Schema, SchemaIssue, SchemaTransformation } from "effect"
import type { Box } from "../Box.ts"
import { LazyBox, pendingText } from "./lazyBox.ts"

/**
 * Thrown (not returned) by fast codecs when a value cannot be encoded or decoded. Cheap to create; the
 * command layer turns it into a typed `AmpArgumentError` naming the key.
 */
export class CodecFailure {
  readonly reason: string
  constructor(reason: string) {
    this.reason = reason
  }
}

/** Synchronous encoder/decoder pair of one argument type. Both throw `CodecFailure`. */
export interface FastCodec<A> {
  readonly name: string
  readonly encode: (value: A) => Uint8Array
  readonly decode: (bytes: Uint8Array) => A
  /**
   * Whether a decoded value may hold on to the input bytes (a view of them). When false the command
   * layer may recycle the input buffer right after decoding (`Box.ValuePool`).
   */
  readonly keepsBytes: boolean
  /**
   * For text types: the string whose UTF-8 is the wire value (validated; throws `CodecFailure`). When
   * present, a long value sent in an outgoing box (`Box.makeOutgoing`) is kept as that string and
   * written as UTF-8 straight into the outgoing buffer.
   */
  readonly text?: ((value: A) => string) | undefined
  /**
   * Decodes a value given as the pieces it arrived in (`Box.pieces`), without assembling them; throws
   * `CodecFailure`. Text types decode the UTF-8 straight from the pieces.
   */
  readonly decodePieces?: ((pieces: ReadonlyArray<Uint8Array>) => A) | undefined
}

/** Text values at least this long go into an outgoing box as text (shorter ones are cheaper as bytes). */
const TEXT_MIN = 1024

const registry = new WeakMap<object, FastCodec<any>>()

/** Any Schema whose encoded side is bytes: what an argument is. */
export type AnyArgument = Schema.Codec<any, Uint8Array, never, never>

/** The fast codec of an argument schema; schemas built elsewhere fall back to the Schema interpreter. */
export const fastCodecOf = (schema: AnyArgument): FastCodec<any> => {
  const found = registry.get(schema)
  if (found) return found
  const decode = Schema.decodeUnknownExit(schema)
  const encode = Schema.encodeUnknownExit(schema)
  const codec: FastCodec<any> = {
    name: String(schema.ast._tag),
    keepsBytes: true, // unknown: assume it does
    decode: (bytes) => {
      const exit = decode(bytes)
      if (exit._tag === "Success") return exit.value
      throw new CodecFailure(issueText(exit.cause))
    },
    encode: (value) => {
      const exit = encode(value)
      if (exit._tag === "Success") return exit.value
      throw new CodecFailure(issueText(exit.cause))
    }
  }
  registry.set(schema, codec)
  return codec
}

const issueText = (cause: unknown): string => {
  const text = String(cause)
  return text.length > 500 ? text.slice(0, 500) + "…" : text
}

/** Registers the fast codec of a schema built by `makeArgument`. */
export const register = <S extends object>(schema: S, codec: FastCodec<any>): S => {
  registry.set(schema, codec)
  return schema
}

/**
 * Builds an argument type from synchronous encode/decode functions (which throw `CodecFailure`) and the
 * Schema of the decoded value. The result is a genuine `Schema.Codec<A, Uint8Array>`.
 */
export const makeArgument = <A, S extends Schema.Codec<A, A, never, never>>(options: {
  readonly name: string
  readonly type: S
  readonly encode: (value: A) => Uint8Array
  readonly decode: (bytes: Uint8Array) => A
  /** Whether `decode` may return (or keep) a view of its input; default true. A function is asked on first use. */
  readonly keepsBytes?: boolean | (() => boolean) | undefined
  /** See {@link FastCodec.text}. */
  readonly text?: ((value: A) => string) | undefined
  /** See {@link FastCodec.decodePieces}. */
  readonly decodePieces?: ((pieces: ReadonlyArray<Uint8Array>) => A) | undefined
}): Schema.decodeTo<S, Schema.Uint8Array> => {
  const fail = (input: unknown, e: unknown) =>
    Effect.fail(
      new SchemaIssue.InvalidValue(
        { message: e instanceof CodecFailure ? `${options.name}: ${e.reason}` : `${options.name}: ${String(e)}` },
        input
      )
    )
  const transformation = SchemaTransformation.transformEffect<A, Uint8Array>({
    decode: (bytes) => {
      try {
        return Effect.succeed(options.decode(bytes))
      } catch (e) {
        return fail(bytes, e)
      }
    },
    encode: (value) => {
      try {
        return Effect.succeed(options.encode(value))
      } catch (e) {
        return fail(value, e)
      }
    }
  })
  const schema = Schema.Uint8Array.pipe(Schema.decodeTo(options.type, transformation))
  const keepsBytes = options.keepsBytes ?? true
  const extra = { text: options.text, decodePieces: options.decodePieces }
  if (typeof keepsBytes === "boolean") {
    return register(schema, { name: options.name, encode: options.encode, decode: options.decode, keepsBytes, ...extra })
  }
  let known: boolean | undefined
  return register(schema, {
    name: options.name,
    encode: options.encode,
    decode: options.decode,
    ...extra,
    get keepsBytes() {
      if (known === undefined) {
        known = true // a recursive type asking about itself meanwhile gets the safe answer
        known = keepsBytes()
      }
      return known
    }
  })
}

/** One field of a compiled field set. */
interface CompiledField {
  readonly key: string
  readonly optional: boolean
  readonly codec: FastCodec<any>
}

/** The fields of a command's arguments or response, compiled once into a fast box codec. */
export interface FieldsCodec {
  readonly keys: ReadonlyArray<string>
  /**
   * Writes every present field into `into`; throws `FieldFailure`. Returns how many declared fields
   * were present (not `undefined`), so a caller can tell cheaply whether `value` has other keys.
   */
  readonly encode: (value: Readonly<Record<string, unknown>>, into: Map<string, Uint8Array>) => number
  /** The first own key of `value` that is not a declared field, if any (O(keys)). */
  readonly undeclaredKey: (value: Readonly<Record<string, unknown>>) => string | undefined
  /** Reads the declared fields of `box` (extra keys ignored); throws `FieldFailure`. */
  readonly decode: (box: Box) => Record<string, unknown>
  /** The keys whose decoded values never hold on to their bytes (safe to recycle after `decode`). */
  readonly recyclable: ReadonlyArray<string>
  /** Whether a field is of a text type: `encode` into an outgoing box (`Box.makeOutgoing`) pays off. */
  readonly hasText: boolean
}

/** A failure of one named field. */
export class FieldFailure {
  readonly key: string
  readonly reason: string
  constructor(key: string, reason: string) {
    this.key = key
    this.reason = reason
  }
}

const isOptionalKey = (field: unknown): field is Schema.optionalKey<AnyArgument> =>
  (typeof field === "object" || typeof field === "function") && field !== null &&
  (field as any).ast?.context?.isOptional === true && "schema" in (field as object)

/** Is this an argument type (a built-in, `Argument.make`/`fromUnicode`/`ListOf`/`AmpList` result) or an optional one? */
export const isArgumentField = (field: unknown): boolean =>
  (typeof field === "object" || typeof field === "function") && field !== null &&
  registry.has(isOptionalKey(field) ? field.schema : field)

/** Compiles a record of argument schemas (or `Schema.optionalKey` of them). */
export const compileFields = (fields: Readonly<Record<string, unknown>>): FieldsCodec => {
  const compiled: Array<CompiledField> = []
  for (const key of Object.keys(fields)) {
    const field = fields[key]
    if (isOptionalKey(field)) {
      compiled.push({ key, optional: true, codec: fastCodecOf(field.schema) })
    } else {
      compiled.push({ key, optional: false, codec: fastCodecOf(field as AnyArgument) })
    }
  }
  const n = compiled.length
  const declared = new Set(compiled.map((f) => f.key))
  let recyclable: ReadonlyArray<string> | undefined
  return {
    keys: compiled.map((f) => f.key),
    hasText: compiled.some((f) => f.codec.text !== undefined),
    get recyclable() {
      // asked on first use: a lazily compiled AmpList field learns its answer only then
      return (recyclable ??= compiled.filter((f) => !f.codec.keepsBytes).map((f) => f.key))
    },
    encode: (value, into) => {
      let present = 0
      for (let i = 0; i < n; i++) {
        const f = compiled[i]!
        const v = value[f.key]
        if (v === undefined) {
          if (f.optional) continue
          throw new FieldFailure(f.key, "missing required argument")
        }
        try {
          const text = f.codec.text
          if (text !== undefined && into instanceof LazyBox && typeof v === "string" && v.length >= TEXT_MIN) {
            into.setPending(f.key, pendingText(text(v)))
          } else {
            into.set(f.key, f.codec.encode(v))
          }
        } catch (e) {
          throw new FieldFailure(f.key, e instanceof CodecFailure ? e.reason : String(e))
        }
        present++
      }
      return present
    },
    undeclaredKey: (value) => {
      for (const key of Object.keys(value)) if (!declared.has(key)) return key
      return undefined
    },
    decode: (box) => {
      const out: Record<string, unknown> = {}
      for (let i = 0; i < n; i++) {
        const f = compiled[i]!
        // a value split across reads: decoded from its pieces, before `get` would assemble them
        const pending = f.codec.decodePieces !== undefined && box instanceof LazyBox ? box.pendingOf(f.key) : undefined
        const pieces = pending !== undefined && pending._tag === "Pieces" ? pending.pieces : undefined
        const bytes = pieces === undefined ? box.get(f.key) : undefined
        if (bytes === undefined && pieces === undefined) {
          if (f.optional) continue
          throw new FieldFailure(f.key, "missing required key")
        }
        try {
          out[f.key] = pieces !== undefined ? f.codec.decodePieces!(pieces) : f.codec.decode(bytes!)
        } catch (e) {
          throw new FieldFailure(f.key, e instanceof CodecFailure ? e.reason : String(e))
        }
      }
      return out
    }
  }
}
