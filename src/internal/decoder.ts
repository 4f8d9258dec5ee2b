/**
 * The incremental box decoder behind `Box.makeDecoder` (which documents it). Private to effect-amp.
 *
 * A state machine over key-length, key, value-length and value, with a fast path for entries whole
 * inside one chunk: values are views into the chunk, keys come from a small cache of recent key strings.
 * @internal
 */
import { latin1 } from "./bytes.ts"
import { allocUninitialized } from "./encoder.ts"
import { LazyBox } from "./lazyBox.ts"
import { POOLED_MIN_LENGTH, type ValuePool } from "./valuePool.ts"

type Box = ReadonlyMap<string, Uint8Array>

const MAX_KEY_LENGTH = 0xff

// decoder states
const KeyLength = 0
const Key = 1
const ValueLength = 2
const Value = 3
const Pieces = 4

// Keys repeat (`_ask`, `_command`, argument names), so the decoder reuses the string it made last time
// for the same short key bytes: no new string per key, and Maps reuse the string's cached hash. A small
// direct-mapped cache shared by all decoders; a miss just builds the string and replaces the slot.
const KEY_CACHE_SIZE = 512
const KEY_CACHE_MAX_LENGTH = 32
const keyCache: Array<string> = new Array<string>(KEY_CACHE_SIZE).fill("")
// the bytes of each cached key, back to back (slot s at s * KEY_CACHE_MAX_LENGTH): comparing bytes with
// bytes is cheaper than with `charCodeAt`
const keyCacheBytes = new Uint8Array(KEY_CACHE_SIZE * KEY_CACHE_MAX_LENGTH)

const keyString = (chunk: Uint8Array, start: number, length: number): string => {
  if (length > KEY_CACHE_MAX_LENGTH) return latin1(chunk, start, start + length)
  const last = start + length - 1
  const slot = (length * 31 + chunk[start]! * 7 + chunk[last]! * 3 + chunk[start + (length >> 1)]!) &
    (KEY_CACHE_SIZE - 1)
  const cached = keyCache[slot]!
  const at = slot * KEY_CACHE_MAX_LENGTH
  if (cached.length === length) {
    let j = 0
    while (j < length && keyCacheBytes[at + j] === chunk[start + j]) j++
    if (j === length) return cached
  }
  const key = latin1(chunk, start, start + length)
  keyCache[slot] = key
  for (let j = 0; j < length; j++) keyCacheBytes[at + j] = chunk[start + j]!
  return key
}

/** The decoder's functions; `E` is the framing error `framingError` makes (`Box.FramingError`). */
export interface Decoder<E> {
  readonly feed: (chunk: Uint8Array, out: Array<Box>, ends?: Array<number>) => E | undefined
  readonly pending: () => number
  readonly offset: () => number
}

/**
 * A decoder assembling split values in `pool`'s buffers (else fresh ones), or keeping split values of
 * 4 KiB or more as their pieces when `keepPieces`; `framingError` makes the error for a key-length
 * prefix over 255 at stream offset `offset`.
 */
export const make = <E>(
  pool: ValuePool | undefined,
  keepPieces: boolean,
  framingError: (offset: number, keyLength: number) => E
): Decoder<E> => {
  const alloc = pool !== undefined ? pool.take : allocUninitialized
  // a split value kept as pieces: the views so far and the bytes still missing
  let pieceList: Array<Uint8Array> | undefined
  let pieceMissing = 0
  let state: number = KeyLength
  let consumed = 0
  let failed: E | undefined
  // partial prefix (one byte of a two-byte length)
  let half = -1
  // partial key or value
  let partial: Uint8Array | undefined
  let partialFill = 0
  // stream offset where the current (incomplete) box started
  let boxStart = 0
  let key = ""
  let box: Map<string, Uint8Array> | undefined

  const feed = (chunk: Uint8Array, out: Array<Box>, ends?: Array<number>): E | undefined => {
    if (failed) return failed
    const n = chunk.length
    // read once: `buffer` is an accessor, not a field
    const buffer = chunk.buffer
    const base = chunk.byteOffset
    let i = 0
    while (i < n) {
      if (state === KeyLength && half < 0) {
        // fast path: entries whole inside this chunk, no state kept between them (in locals, not
        // the closure's variables, until the loop ends)
        let current = box
        let lastEnd = -1
        while (i + 2 <= n) {
          const k = (chunk[i]! << 8) | chunk[i + 1]!
          if (k === 0) {
            out.push(current ?? new Map())
            current = undefined
            i += 2
            lastEnd = i
            if (ends !== undefined) ends.push(i)
            continue
          }
          const at = i + 2 + k
          if (k > MAX_KEY_LENGTH || at + 2 > n) break
          const v = (chunk[at]! << 8) | chunk[at + 1]!
          if (at + 2 + v > n) break
          if (current === undefined) current = new Map()
          // a view, not a copy (and cheaper than `subarray`, which looks up a species constructor)
          current.set(keyString(chunk, i + 2, k), new Uint8Array(buffer, base + at + 2, v))
          i = at + 2 + v
        }
        box = current
        if (lastEnd >= 0) boxStart = consumed + lastEnd
        if (i >= n) break
      }
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
              failed = framingError(consumed + i - 2, len)
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
              box!.set(key, new Uint8Array(buffer, base + i, len))
              i += len
              state = KeyLength
            } else if (keepPieces && len >= POOLED_MIN_LENGTH) {
              pieceList = [new Uint8Array(buffer, base + i, n - i)]
              pieceMissing = len - (n - i)
              i = n
              state = Pieces
            } else {
              partial = pool !== undefined && len >= POOLED_MIN_LENGTH ? pool.take(len) : allocUninitialized(len)
              partialFill = 0
              state = Value
            }
          }
          break
        }
        case Pieces: {
          const take = Math.min(pieceMissing, n - i)
          pieceList!.push(new Uint8Array(buffer, base + i, take))
          pieceMissing -= take
          i += take
          if (pieceMissing === 0) {
            let length = 0
            for (const piece of pieceList!) length += piece.length
            let lazy: LazyBox
            if (box instanceof LazyBox) lazy = box
            else {
              lazy = new LazyBox()
              for (const [k, v] of box!) lazy.set(k, v)
              box = lazy
            }
            lazy.setPending(key, { _tag: "Pieces", pieces: pieceList!, length, alloc })
            pieceList = undefined
            state = KeyLength
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
