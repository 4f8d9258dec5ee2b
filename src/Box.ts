/**
 * AMP boxes and their wire codec: the bottom layer of effect-amp.
 *
 * A box is an ordered set of keys (1–255 bytes) to values (0–65535 bytes). On the wire every key and
 * value is preceded by a big-endian 16-bit length, and an empty key ends the box (Twisted's
 * `BinaryBoxProtocol`). Keys are held as *latin1 strings*: one character per byte, so every byte string
 * is representable, and JavaScript's string order is the bytewise order Twisted sorts keys in.
 *
 * @since 0.1.0
 */
import { Effect, Schema, Stream } from "effect"
import { pyBytesRepr } from "./internal/bytes.ts"
import * as Decoding from "./internal/decoder.ts"
import * as Encoder from "./internal/encoder.ts"
import { LazyBox, OutgoingBox } from "./internal/lazyBox.ts"
import type { OutputPool } from "./internal/outputPool.ts"
import type { ValuePool } from "./internal/valuePool.ts"

/**
 * A box: wire keys (latin1 strings) to raw values. Boxes decoded from the wire are `Map`s whose values
 * may be views into the received chunk (no copy).
 *
 * @since 0.1.0
 * @category models
 */
export type Box = ReadonlyMap<string, Uint8Array>

/** Longest key Twisted accepts: 255 bytes. @since 0.1.0 @category constants */
export const MAX_KEY_LENGTH = 0xff
/** Longest value: 65535 bytes. @since 0.1.0 @category constants */
export const MAX_VALUE_LENGTH = 0xffff

const textEncoder = new TextEncoder()

/**
 * Builds a box from a record or from entries. String values are UTF-8 encoded; keys are taken as given
 * (they must be latin1: one character per byte; ASCII in practice).
 *
 * @example
 * ```ts
 * import { Box } from "effect-amp"
 * const box = Box.make({ _command: "Sum", _ask: "1", a: "13", b: "81" })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  entries: Readonly<Record<string, Uint8Array | string>> | Iterable<readonly [string, Uint8Array | string]>
): Box => {
  const box = new Map<string, Uint8Array>()
  const iterable: Iterable<readonly [string, Uint8Array | string]> = Symbol.iterator in entries
    ? entries as Iterable<readonly [string, Uint8Array | string]>
    : Object.entries(entries as Record<string, Uint8Array | string>)
  for (const [key, value] of iterable) {
    box.set(key, typeof value === "string" ? textEncoder.encode(value) : value)
  }
  return box
}

/**
 * Raised when a key or value does not fit AMP's limits. `isLocal` is true when we tried to *send* it
 * (the box is not written, nothing else happens), false when a peer sent a key-length prefix over 255
 * (the connection is then closed, as Twisted does). Mirrors Twisted's `amp.TooLong`.
 *
 * @since 0.1.0
 * @category errors
 */
export class TooLong extends Schema.TaggedError<TooLong>()("TooLong", {
  isKey: Schema.Boolean,
  isLocal: Schema.Boolean,
  /** The key whose value was too long (latin1), when `isKey` is false. */
  keyName: Schema.optional(Schema.String),
  /** The offending length in bytes. */
  length: Schema.Number
}) {
  override get message(): string {
    const where = this.isLocal ? "local" : "remote"
    const what = this.isKey ? "key" : `value ${pyBytesRepr(latin1ToBytes(this.keyName ?? ""))}`
    return `${where} ${what} too long: ${this.length}`
  }
}

/**
 * Raised when a box cannot be framed: an empty key (it would end the box early on the wire) or a key
 * containing a character above U+00FF (keys are bytes).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidKey extends Schema.TaggedError<InvalidKey>()("InvalidKey", {
  key: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid AMP key ${JSON.stringify(this.key)}: ${this.reason}`
  }
}

/**
 * Raised when a box value is not bytes (a `Uint8Array`), e.g. a JS string slipped past the types through
 * `as any` or untyped code. Nothing is encoded: Twisted's `AmpBox.serialize` likewise refuses a text value
 * (`TypeError: Unicode value for key … not allowed`). Encode text first (`Box.make` does UTF-8).
 *
 * @since 0.2.0
 * @category errors
 */
export class InvalidValue extends Schema.TaggedError<InvalidValue>()("InvalidValue", {
  key: Schema.String,
  /** What the value was instead: `typeof`, or the constructor's name. */
  got: Schema.String
}) {
  override get message(): string {
    return `invalid AMP value for key ${JSON.stringify(this.key)}: ${this.got}, not bytes (Uint8Array)`
  }
}

/**
 * Raised by the decoder when the incoming bytes cannot be a box stream: a key-length prefix over 255.
 * `offset` is the position of the offending prefix in the whole stream. Twisted closes the connection.
 *
 * @since 0.1.0
 * @category errors
 */
export class FramingError extends Schema.TaggedError<FramingError>()("FramingError", {
  offset: Schema.Number,
  keyLength: Schema.Number
}) {
  override get message(): string {
    return `AMP framing error at byte ${this.offset}: key length ${this.keyLength} is over ${MAX_KEY_LENGTH}`
  }
  /** The same condition as Twisted's remote `TooLong` (isKey, not local). */
  toTooLong(): TooLong {
    return new TooLong({ isKey: true, isLocal: false, length: this.keyLength })
  }
}

const latin1ToBytes = (s: string): Uint8Array => {
  const out = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i)
  return out
}

const toError = (fault: Encoder.Fault): TooLong | InvalidKey | InvalidValue => {
  switch (fault._tag) {
    case "NotBytes":
      return new InvalidValue({ key: fault.key, got: fault.got ?? "not bytes" })
    case "EmptyKey":
      return new InvalidKey({ key: fault.key, reason: "empty keys end a box on the wire" })
    case "KeyTooLong":
      return new TooLong({ isKey: true, isLocal: true, length: fault.n })
    case "KeyNotLatin1":
      return new InvalidKey({ key: fault.key, reason: `character ${fault.n} is above U+00FF; keys are bytes (latin1)` })
    case "ValueTooLong":
      return new TooLong({ isKey: false, isLocal: true, keyName: fault.key, length: fault.n })
  }
}

/**
 * The exact number of bytes `box` takes on the wire, or a typed error if it cannot be framed. A text
 * value over 65535 bytes (see {@link Outgoing}) reports `length: -1` (not measured).
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodedLength = (box: Box): number | TooLong | InvalidKey | InvalidValue => {
  const n = Encoder.measure(box)
  return typeof n === "number" ? n : toError(n)
}

/**
 * Serializes boxes back to back into one buffer, keys sorted bytewise in each box: byte-identical to
 * Twisted's `AmpBox.serialize()`. Throws `TooLong` / `InvalidKey` / `InvalidValue` (and writes nothing) if any box
 * cannot be framed. Use {@link encode} for the Effect form.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeAllUnsafe = (boxes: ReadonlyArray<Box>): Uint8Array => Encoder.encodeAll(boxes, toError)

/**
 * Serializes boxes like {@link encodeAllUnsafe}, but as a list of byte arrays whose concatenation is
 * that encoding, for a gather write (`Socket.Writer.writeAll`, `writev`): values of 16 KiB or more are
 * referenced, not copied, and everything between them (including the text values of an
 * {@link Outgoing} box, written as UTF-8 in place) is packed into one shared buffer. Without large byte
 * values the list has one element. The referenced values must not change until the write is done.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeChunksUnsafe = (boxes: ReadonlyArray<Box>): Array<Uint8Array> => Encoder.encodeChunks(boxes, toError)

/**
 * Serializes boxes exactly like {@link encodeChunksUnsafe}, but packs them into a buffer taken from
 * `pool` (see {@link OutputPool}) instead of a fresh one: for a connection's writer, which hands the
 * chunks back with `pool.release(chunks)` once the socket has written them. Throws like
 * {@link encodeChunksUnsafe} (then nothing is taken from the pool).
 *
 * @example
 * ```ts
 * import { Box } from "effect-amp"
 * const pool = Box.makeOutputPool()
 * const chunks = Box.encodeChunksPooled([Box.make({ _ask: "1", _command: "Sum", a: "13", b: "81" })], pool)
 * // socket.write(...chunks), and once the socket is done with them (its write callback):
 * pool.release(chunks)
 * ```
 *
 * @since 0.2.0
 * @category encoding
 */
export const encodeChunksPooled = (boxes: ReadonlyArray<Box>, pool: OutputPool): Array<Uint8Array> =>
  Encoder.encodeChunks(boxes, toError, pool.take)

export {
  /**
   * Creates an {@link OutputPool}: buffers in power-of-two size classes from 4 KiB to 8 MiB, at most
   * `maxIdleBytes` (default 4 MiB) kept idle. Outputs under 4 KiB or over 8 MiB are not pooled. Share
   * one pool among all the connections of a process. See `src/internal/outputPool.ts`.
   *
   * @since 0.2.0
   * @category encoding
   */
  makeOutputPool,
  /**
   * A recycler for the buffers {@link encodeChunksPooled} packs boxes into: nothing is reused until
   * handed back with `release(chunks)`, which must wait until the transport has written them.
   *
   * @since 0.2.0
   * @category encoding
   */
  type OutputPool
} from "./internal/outputPool.ts"

/**
 * Serializes one box; throws `TooLong` / `InvalidKey` / `InvalidValue`. See {@link encode}.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeUnsafe = (box: Box): Uint8Array => Encoder.encodeOne(box, toError)

/**
 * Serializes one box (Twisted's `AmpBox.serialize()`), failing with `TooLong` for a key over 255 bytes
 * or a value over 65535 bytes, `InvalidKey` for an empty or non-latin1 key, and `InvalidValue` for a value
 * that is not bytes (a string, say).
 *
 * @example
 * ```ts
 * import { Box } from "effect-amp"
 * import { Effect } from "effect"
 * // Uint8Array [0, 5, ...'hello', 0, 5, ...'world', 0, 0]
 * const bytes = Effect.runSync(Box.encode(Box.make({ hello: "world" })))
 * ```
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (box: Box): Effect.Effect<Uint8Array, TooLong | InvalidKey | InvalidValue> =>
  Effect.suspend(() => {
    const n = Encoder.measure(box)
    if (typeof n !== "number") return Effect.fail(toError(n))
    return Effect.succeed(Encoder.encodeOne(box, toError))
  })

/**
 * A box being built for sending whose text values are kept as strings and written as UTF-8 straight
 * into the outgoing buffer when the box is encoded (no buffer per value). Reading a text value as bytes
 * (`get`, iteration, copying the map) encodes it then, once, so it is an ordinary box to every reader.
 * The command layer uses it for long `Unicode` arguments and answers.
 *
 * @since 0.1.0
 * @category models
 */
export interface Outgoing extends Map<string, Uint8Array> {
  /**
   * Sets `key` to the UTF-8 encoding of `text`, measured now and written when the box is encoded.
   * `text` must be well-formed UTF-16 (no lone surrogate; check with `String.prototype.isWellFormed`):
   * otherwise throws a `TypeError`. Longer than 65535 bytes: encoding the box fails with `TooLong`.
   */
  setText(key: string, text: string): this
}

/**
 * An empty {@link Outgoing} box.
 *
 * @example
 * ```ts
 * import { Box } from "effect-amp"
 * const box = Box.makeOutgoing().setText("text", "x".repeat(60_000))
 * const bytes = Box.encodeUnsafe(box) // the text is encoded straight into `bytes`
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeOutgoing = (): Outgoing => new OutgoingBox() as unknown as Outgoing

/**
 * The pieces of a value that arrived split across reads and has not been assembled (a decoder made
 * with `pieces: true`), or undefined. Reading the value with `box.get(key)` assembles it; this reads
 * the pieces instead, e.g. to decode text straight from them. The pieces are views of the received
 * chunks: do not change them.
 *
 * @since 0.1.0
 * @category decoding
 */
export const pieces = (box: Box, key: string): ReadonlyArray<Uint8Array> | undefined => {
  if (!(box instanceof LazyBox)) return undefined
  const pending = box.pendingOf(key)
  return pending?._tag === "Pieces" ? pending.pieces : undefined
}

/**
 * The value of `key` if it is bytes already: undefined for a missing key, a text value of an
 * {@link Outgoing} box, or a split value not yet assembled (see {@link pieces}). Unlike `box.get`, it
 * never encodes or assembles anything (for recycling values after decoding, for instance).
 *
 * @since 0.1.0
 * @category decoding
 */
export const bytesIfPresent = (box: Box, key: string): Uint8Array | undefined =>
  box instanceof LazyBox && box.pendingOf(key) !== undefined ? undefined : box.get(key)

export {
  /**
   * The smallest value a decoder takes from a {@link ValuePool}; smaller values that span chunks get a
   * fresh exact-size array (cheap at this size), and releasing them is a no-op.
   *
   * @since 0.1.0
   * @category decoding
   */
  POOLED_MIN_LENGTH,
  /**
   * Creates a {@link ValuePool}: five size classes (4 to 64 KiB), at most `maxIdleBytes` (default 1 MiB)
   * kept idle. See `src/internal/valuePool.ts`.
   *
   * @since 0.1.0
   * @category decoding
   */
  makeValuePool,
  /**
   * A recycler for the buffers of large values that arrive split across chunks: a decoder made with a
   * pool assembles such values in its buffers; nothing is reused until handed back with `release`.
   *
   * @since 0.1.0
   * @category decoding
   */
  type ValuePool
} from "./internal/valuePool.ts"

/**
 * An incremental box decoder: feed it chunks of any size, it returns the boxes they complete. It keeps
 * at most one partial key or value (≤ 65535 bytes, allocated only once its length prefix is read and
 * checked). Values completed inside one chunk are views into that chunk (no copy).
 *
 * After a `FramingError` the decoder is failed and ignores further input.
 *
 * @since 0.1.0
 * @category decoding
 */
export interface Decoder {
  /**
   * Decodes the boxes completed by `chunk`, appending them to `out`. When `ends` is given, the offset in
   * `chunk` just past each box is appended to it (for protocol switches: the bytes after a box belong
   * to the next protocol). Returns a `FramingError` if the stream is malformed; the boxes before the
   * error are still appended.
   */
  readonly feed: (chunk: Uint8Array, out: Array<Box>, ends?: Array<number>) => FramingError | undefined
  /** Bytes held for an incomplete box (0 when the input ended on a box boundary). */
  readonly pending: () => number
  /** Total bytes consumed so far (the stream offset of the next byte). */
  readonly offset: () => number
}

/**
 * Creates an incremental {@link Decoder}.
 *
 * @since 0.1.0
 * @category decoding
 */
export const makeDecoder = (options?: {
  /**
   * Assemble values of 4 KiB or more that span chunks in buffers from this pool (reused only after
   * `pool.release(value)`). Without a pool each gets a fresh buffer.
   */
  readonly pool?: ValuePool | undefined
  /**
   * Keep a value of 4 KiB or more that spans chunks as its pieces (views of the chunks, no copy)
   * instead of assembling it: the box is then one where `box.get(key)` assembles it on first use (in a
   * buffer from `pool` if given) and {@link pieces} reads the pieces, e.g. to decode text straight from
   * them. Default false.
   */
  readonly pieces?: boolean | undefined
}): Decoder =>
  Decoding.make(options?.pool, options?.pieces === true, (offset, keyLength) => new FramingError({ offset, keyLength }))

/**
 * Decodes a whole buffer (Twisted's `amp.parseString`): the complete boxes it contains. An incomplete
 * tail is ignored, as in Twisted; a key-length prefix over 255 fails with `FramingError`.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeAll = (bytes: Uint8Array): Effect.Effect<Array<Box>, FramingError> =>
  Effect.suspend(() => {
    const out: Array<Box> = []
    const error = makeDecoder().feed(bytes, out)
    return error ? Effect.fail(error) : Effect.succeed(out)
  })

/**
 * Turns a stream of byte chunks, split anywhere, into a stream of boxes. Each incoming chunk is decoded
 * in one pass and its boxes are emitted as one chunk. A malformed stream emits every box before the
 * fault, then fails with `FramingError`. An incomplete box at the end of the input is dropped.
 *
 * @example
 * ```ts
 * import { Box } from "effect-amp"
 * import { Stream } from "effect"
 * const boxes = Stream.make(new Uint8Array([0, 1, 97]), new Uint8Array([0, 1, 49, 0, 0])).pipe(Box.decodeStream)
 * ```
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeStream = <E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Box, E | FramingError, R> =>
  Stream.transformPull(self, (pull) =>
    Effect.sync(() => {
      const decoder = makeDecoder()
      let failure: FramingError | undefined
      const loop: Effect.Effect<readonly [Box, ...Array<Box>], E | FramingError | import("effect").Cause.Done<void>> =
        Effect.suspend(() => {
          if (failure) return Effect.fail(failure)
          return Effect.flatMap(pull, (chunks) => {
            const out: Array<Box> = []
            for (const chunk of chunks) {
              const error = decoder.feed(chunk, out)
              if (error) {
                failure = error
                break
              }
            }
            if (out.length > 0) return Effect.succeed(out as unknown as readonly [Box, ...Array<Box>])
            return loop
          })
        })
      return loop
    }))
