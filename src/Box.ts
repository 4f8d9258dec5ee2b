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
import { latin1, pyBytesRepr } from "./internal/bytes.ts"

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

/**
 * A byte array whose every byte the caller overwrites before anyone sees it. From 4 KiB up it skips the
 * zero fill (`Buffer.allocUnsafeSlow`, still a plain `Uint8Array` over its own exact-size buffer): fresh
 * 60 KiB arrays are the main cost of encoding large boxes and of decoding values split across chunks.
 */
const allocUninitialized: (n: number) => Uint8Array = typeof globalThis.Buffer === "function"
  ? (n) => (n < 4096 ? new Uint8Array(n) : new Uint8Array(globalThis.Buffer.allocUnsafeSlow(n).buffer, 0, n))
  : (n) => new Uint8Array(n)

/**
 * The box's entries sorted by key, into `keys`/`values` (insertion sort: boxes are small and often
 * already sorted; `<` on latin1 strings is the bytewise order Twisted sorts in). Returns the count.
 */
const sortEntries = (box: Box, keys: Array<string>, values: Array<Uint8Array>): number => {
  let count = 0
  for (const [key, value] of box) {
    let j = count
    while (j > 0 && keys[j - 1]! > key) {
      keys[j] = keys[j - 1]!
      values[j] = values[j - 1]!
      j--
    }
    keys[j] = key
    values[j] = value
    count++
  }
  return count
}

/**
 * The exact number of bytes `box` takes on the wire, or a typed error if it cannot be framed.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodedLength = (box: Box): number | TooLong | InvalidKey | InvalidValue => {
  let size = 2
  for (const [key, value] of box) {
    if (!(value instanceof Uint8Array)) return new InvalidValue({ key, got: describeValue(value) })
    const k = key.length
    if (k === 0) return new InvalidKey({ key, reason: "empty keys end a box on the wire" })
    if (k > MAX_KEY_LENGTH) return new TooLong({ isKey: true, isLocal: true, length: k })
    for (let i = 0; i < k; i++) {
      if (key.charCodeAt(i) > 0xff) {
        return new InvalidKey({ key, reason: `character ${i} is above U+00FF; keys are bytes (latin1)` })
      }
    }
    if (value.length > MAX_VALUE_LENGTH) {
      return new TooLong({ isKey: false, isLocal: true, keyName: key, length: value.length })
    }
    size += 4 + k + value.length
  }
  return size
}

const describeValue = (value: unknown): string =>
  typeof value === "object" && value !== null ? `an instance of ${value.constructor?.name ?? "Object"}` : `a ${typeof value}`

/** Writes an entry's key-length prefix, key and value-length prefix at `pos`; returns where the value goes. */
const writeEntryHeader = (out: Uint8Array, pos: number, key: string, valueLength: number): number => {
  const k = key.length
  out[pos] = 0
  out[pos + 1] = k
  pos += 2
  for (let i = 0; i < k; i++) out[pos + i] = key.charCodeAt(i)
  pos += k
  out[pos] = valueLength >>> 8
  out[pos + 1] = valueLength & 0xff
  return pos + 2
}

const writeBox = (box: Box, out: Uint8Array, pos: number): number => {
  const keys: Array<string> = []
  const values: Array<Uint8Array> = []
  const count = sortEntries(box, keys, values)
  for (let e = 0; e < count; e++) {
    const value = values[e]!
    const v = value.length
    pos = writeEntryHeader(out, pos, keys[e]!, v)
    if (v <= 16) for (let i = 0; i < v; i++) out[pos + i] = value[i]!
    else out.set(value, pos)
    pos += v
  }
  out[pos] = 0
  out[pos + 1] = 0
  return pos + 2
}

/**
 * Writes `box` into a fresh array of its `encodedLength` `n`. The array may be uninitialized, so a box
 * whose contents differ from what was measured (a custom map iterating differently twice) must not hand
 * out stale bytes.
 */
const writeExactly = (box: Box, out: Uint8Array, pos: number, end: number): void => {
  if (writeBox(box, out, pos) !== end) throw new Error("AMP box changed while it was being encoded")
}

/**
 * Serializes boxes back to back into one buffer, keys sorted bytewise in each box: byte-identical to
 * Twisted's `AmpBox.serialize()`. Throws `TooLong` / `InvalidKey` / `InvalidValue` (and writes nothing) if any box
 * cannot be framed. Use {@link encode} for the Effect form.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeAllUnsafe = (boxes: ReadonlyArray<Box>): Uint8Array => {
  let total = 0
  for (let i = 0; i < boxes.length; i++) {
    const n = encodedLength(boxes[i]!)
    if (typeof n !== "number") throw n
    total += n
  }
  const out = allocUninitialized(total)
  let pos = 0
  for (let i = 0; i < boxes.length; i++) pos = writeBox(boxes[i]!, out, pos)
  if (pos !== total) throw new Error("AMP box changed while it was being encoded")
  return out
}

/** Values at least this long are referenced, not copied, by {@link encodeChunksUnsafe}. */
const GATHER_MIN = 16 * 1024

/**
 * Serializes boxes like {@link encodeAllUnsafe}, but as a list of byte arrays whose concatenation is
 * that encoding, for a gather write (`Socket.Writer.writeAll`, `writev`): values of 16 KiB or more are
 * referenced, not copied, and everything between them is packed into one shared buffer. Without large
 * values the list has one element. The referenced values must not change until the write is done.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeChunksUnsafe = (boxes: ReadonlyArray<Box>): Array<Uint8Array> => {
  let copied = 0
  let large = 0
  for (let i = 0; i < boxes.length; i++) {
    const box = boxes[i]!
    const n = encodedLength(box)
    if (typeof n !== "number") throw n
    copied += n
    for (const value of box.values()) {
      if (value.length >= GATHER_MIN) {
        copied -= value.length
        large++
      }
    }
  }
  const out = allocUninitialized(copied)
  if (large === 0) {
    let at = 0
    for (let i = 0; i < boxes.length; i++) at = writeBox(boxes[i]!, out, at)
    if (at !== copied) throw new Error("AMP box changed while it was being encoded")
    return [out]
  }
  const chunks: Array<Uint8Array> = []
  const keys: Array<string> = []
  const values: Array<Uint8Array> = []
  let pos = 0
  let start = 0
  for (let b = 0; b < boxes.length; b++) {
    const count = sortEntries(boxes[b]!, keys, values)
    for (let e = 0; e < count; e++) {
      const value = values[e]!
      const v = value.length
      pos = writeEntryHeader(out, pos, keys[e]!, v)
      if (v >= GATHER_MIN) {
        chunks.push(new Uint8Array(out.buffer, out.byteOffset + start, pos - start), value)
        start = pos
      } else {
        out.set(value, pos)
        pos += v
      }
    }
    out[pos] = 0
    out[pos + 1] = 0
    pos += 2
  }
  if (pos !== copied) throw new Error("AMP box changed while it was being encoded")
  chunks.push(new Uint8Array(out.buffer, out.byteOffset + start, pos - start))
  return chunks
}

/**
 * Serializes one box; throws `TooLong` / `InvalidKey` / `InvalidValue`. See {@link encode}.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeUnsafe = (box: Box): Uint8Array => {
  const n = encodedLength(box)
  if (typeof n !== "number") throw n
  const out = allocUninitialized(n)
  writeExactly(box, out, 0, n)
  return out
}

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
    const n = encodedLength(box)
    if (typeof n !== "number") return Effect.fail(n)
    const out = allocUninitialized(n)
    writeExactly(box, out, 0, n)
    return Effect.succeed(out)
  })

// decoder states
const KeyLength = 0
const Key = 1
const ValueLength = 2
const Value = 3

// Keys repeat (`_ask`, `_command`, argument names), so the decoder reuses the string it made last time
// for the same short key bytes: no new string per key, and Maps reuse the string's cached hash. A small
// direct-mapped cache shared by all decoders; a miss just builds the string and replaces the slot.
const KEY_CACHE_SIZE = 512
const KEY_CACHE_MAX_LENGTH = 32
const keyCache: Array<string> = new Array<string>(KEY_CACHE_SIZE).fill("")

const keyString = (chunk: Uint8Array, start: number, length: number): string => {
  if (length > KEY_CACHE_MAX_LENGTH) return latin1(chunk, start, start + length)
  const last = start + length - 1
  const slot = (length * 31 + chunk[start]! * 7 + chunk[last]! * 3 + chunk[start + (length >> 1)]!) &
    (KEY_CACHE_SIZE - 1)
  const cached = keyCache[slot]!
  if (cached.length === length) {
    let j = 0
    while (j < length && cached.charCodeAt(j) === chunk[start + j]) j++
    if (j === length) return cached
  }
  const key = latin1(chunk, start, start + length)
  keyCache[slot] = key
  return key
}

/**
 * A recycler for the buffers of large values that arrive split across chunks (see {@link makeValuePool}).
 *
 * A decoder made with a pool assembles such a value (4 KiB or more) in a buffer taken from the pool
 * instead of a fresh one. Nothing is ever reused unless you hand a value back with `release`, so a pool
 * is safe by default: a value you never release is simply garbage-collected.
 *
 * Why: V8 frees array buffers only at garbage collection, so a stream of fresh 60 KiB buffers costs a
 * full mark-compact every few dozen megabytes and cold memory on every value. A released buffer is
 * reused while it is still in cache, as CPython does with the block it has just freed.
 *
 * @since 0.1.0
 * @category decoding
 */
export interface ValuePool {
  /**
   * Hands `value` back for reuse: call it only when nothing will read `value` (or any view of its
   * buffer) again. Values the pool did not give out (views into a chunk, small values, values of
   * another pool) and values already released are ignored, so releasing every value of a box is fine.
   */
  readonly release: (value: Uint8Array) => void
  /** Bytes held idle for reuse (at most `maxIdleBytes`). */
  readonly idleBytes: () => number
  /** A buffer for a value of `length` bytes (4096..65535), used by the decoder; its bytes are stale until filled. */
  readonly take: (length: number) => Uint8Array
}

/**
 * The smallest value a decoder takes from a {@link ValuePool}; smaller values that span chunks get a
 * fresh exact-size array (cheap at this size), and releasing them is a no-op.
 *
 * @since 0.1.0
 * @category decoding
 */
export const POOLED_MIN_LENGTH = 4096
const POOLED_MIN = POOLED_MIN_LENGTH

/**
 * Creates a {@link ValuePool}. Buffers come in five size classes (4, 8, 16, 32 and 64 KiB, a value gets
 * the smallest that fits), and at most `maxIdleBytes` (default 1 MiB) are kept idle; beyond that a
 * released buffer is left to the garbage collector.
 *
 * @example
 * ```ts
 * import { Box } from "effect-amp"
 *
 * const pool = Box.makeValuePool()
 * const decoder = Box.makeDecoder({ pool })
 * const boxes: Array<Box.Box> = []
 * decoder.feed(new Uint8Array([0, 1, 97, 0, 1, 49, 0, 0]), boxes)
 * for (const box of boxes) {
 *   // ... use the box, then:
 *   for (const value of box.values()) pool.release(value)
 * }
 * ```
 *
 * @since 0.1.0
 * @category decoding
 */
export const makeValuePool = (options?: { readonly maxIdleBytes?: number | undefined }): ValuePool => {
  const maxIdle = options?.maxIdleBytes ?? 1024 * 1024
  // free[c]: idle buffers of 4096 << c bytes, most recently released last (still in cache)
  const free: Array<Array<ArrayBuffer>> = [[], [], [], [], []]
  const given = new WeakSet<ArrayBuffer>()
  let idle = 0
  const classOf = (length: number): number => {
    let c = 0
    while ((POOLED_MIN << c) < length) c++
    return c
  }
  return {
    take: (length) => {
      const c = classOf(length)
      let buffer = free[c]!.pop()
      if (buffer === undefined) {
        const size = POOLED_MIN << c
        buffer = typeof globalThis.Buffer === "function"
          ? globalThis.Buffer.allocUnsafeSlow(size).buffer as ArrayBuffer
          : new ArrayBuffer(size)
      } else {
        idle -= buffer.byteLength
      }
      given.add(buffer)
      return new Uint8Array(buffer, 0, length)
    },
    release: (value) => {
      const buffer = value.buffer as ArrayBuffer
      if (!given.delete(buffer)) return
      if (idle + buffer.byteLength > maxIdle) return
      idle += buffer.byteLength
      free[classOf(buffer.byteLength)]!.push(buffer)
    },
    idleBytes: () => idle
  }
}

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
}): Decoder => {
  const pool = options?.pool
  let state: number = KeyLength
  let consumed = 0
  let failed: FramingError | undefined
  // partial prefix (one byte of a two-byte length)
  let half = -1
  // partial key or value
  let partial: Uint8Array | undefined
  let partialFill = 0
  // stream offset where the current (incomplete) box started
  let boxStart = 0
  let key = ""
  let box: Map<string, Uint8Array> | undefined

  const feed = (chunk: Uint8Array, out: Array<Box>, ends?: Array<number>): FramingError | undefined => {
    if (failed) return failed
    const n = chunk.length
    let i = 0
    while (i < n) {
      switch (state) {
        case KeyLength:
        case ValueLength: {
          let len: number
          if (half >= 0) {
            len = (half << 8) | chunk[i]!
            half = -1
            i += 1
          } else if (i + 1 < n) {
            len = (chunk[i]! << 8) | chunk[i + 1]!
            i += 2
          } else {
            half = chunk[i]!
            i += 1
            break
          }
          if (state === KeyLength) {
            if (len === 0) {
              out.push(box ?? new Map())
              box = undefined
              boxStart = consumed + i
              if (ends !== undefined) ends.push(i)
              continue
            }
            if (len > MAX_KEY_LENGTH) {
              failed = new FramingError({ offset: consumed + i - 2, keyLength: len })
              consumed += i
              return failed
            }
            if (box === undefined) box = new Map()
            // fast path: whole key in this chunk
            if (i + len <= n) {
              key = keyString(chunk, i, len)
              i += len
              state = ValueLength
            } else {
              partial = new Uint8Array(len)
              partialFill = 0
              state = Key
            }
          } else {
            if (i + len <= n) {
              // a view, not a copy (and cheaper than `subarray`, which looks up a species constructor)
              box!.set(key, new Uint8Array(chunk.buffer, chunk.byteOffset + i, len))
              i += len
              state = KeyLength
            } else {
              partial = pool !== undefined && len >= POOLED_MIN ? pool.take(len) : allocUninitialized(len)
              partialFill = 0
              state = Value
            }
          }
          break
        }
        case Key:
        case Value: {
          const p = partial!
          const take = Math.min(p.length - partialFill, n - i)
          p.set(chunk.subarray(i, i + take), partialFill)
          partialFill += take
          i += take
          if (partialFill === p.length) {
            partial = undefined
            if (state === Key) {
              key = latin1(p, 0, p.length)
              state = ValueLength
            } else {
              box!.set(key, p)
              state = KeyLength
            }
          }
          break
        }
      }
    }
    consumed += n
    return undefined
  }

  return {
    feed,
    pending: () => consumed - boxStart,
    offset: () => consumed
  }
}

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
