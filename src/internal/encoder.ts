/**
 * The box encoder behind `Box.encode*` and the connection writer. Private to effect-amp.
 *
 * Each box's entries are read once: validated, measured and insertion-sorted by key into scratch arrays
 * reused across calls (no allocation per box), then written. Pending text values (`LazyBox`) are
 * written as UTF-8 straight into the output, without a buffer of their own.
 * @internal
 */
import { encodeUtf8Into } from "./bytes.ts"
import { LazyBox, type PendingText } from "./lazyBox.ts"

type Box = ReadonlyMap<string, Uint8Array>

/** Why a box cannot be framed; `Box.ts` turns it into `TooLong` / `InvalidKey`. */
export interface Fault {
  readonly _tag: "EmptyKey" | "KeyTooLong" | "KeyNotLatin1" | "ValueTooLong" | "NotBytes"
  readonly key: string
  /** NotBytes: what the value was instead (a JS string that slipped past the types, …). */
  readonly got?: string
  /** Key length, value length (-1: text longer than 65535 bytes, not measured), or the offending index. */
  readonly n: number
}

const MAX_KEY = 0xff
const MAX_VALUE = 0xffff
/** Values at least this long are referenced, not copied, by {@link encodeChunks}. */
const GATHER_MIN = 16 * 1024

/**
 * A byte array whose every byte the caller overwrites before anyone sees it. From 4 KiB up it skips the
 * zero fill (`Buffer.allocUnsafeSlow`, still a plain `Uint8Array` over its own exact-size buffer).
 */
export const allocUninitialized: (n: number) => Uint8Array = typeof globalThis.Buffer === "function"
  ? (n) => (n < 4096 ? new Uint8Array(n) : new Uint8Array(globalThis.Buffer.allocUnsafeSlow(n).buffer, 0, n))
  : (n) => new Uint8Array(n)

// the sorted entries of the box being encoded (encoding is synchronous; see `busy`)
let keys: Array<string> = []
let values: Array<Uint8Array> = []
let texts: Array<PendingText | undefined> = []
let count = 0
let hasText = false
let busy = false

const insert = (key: string, value: Uint8Array, text: PendingText | undefined): void => {
  let j = count
  while (j > 0 && keys[j - 1]! > key) {
    keys[j] = keys[j - 1]!
    values[j] = values[j - 1]!
    texts[j] = texts[j - 1]
    j--
  }
  keys[j] = key
  values[j] = value
  texts[j] = text
  count++
}

const checkKey = (key: string): Fault | undefined => {
  const k = key.length
  if (k === 0) return { _tag: "EmptyKey", key, n: 0 }
  if (k > MAX_KEY) return { _tag: "KeyTooLong", key, n: k }
  for (let i = 0; i < k; i++) if (key.charCodeAt(i) > 0xff) return { _tag: "KeyNotLatin1", key, n: i }
  return undefined
}

/**
 * Reads `box` into the scratch, sorted by key (the bytewise order Twisted sorts in: `<` on latin1
 * strings); returns its encoded length or why it cannot be framed. With `fill` false it only checks
 * and measures, leaving the scratch alone (no sorting: the length does not depend on the order).
 */
const collect = (box: Box, fill = true): number | Fault => {
  if (fill) {
    count = 0
    hasText = false
  }
  let size = 2
  if (box instanceof LazyBox && box.pending !== undefined && box.pending.size > 0) {
    for (const [key, stored] of box.rawEntries()) {
      const fault = checkKey(key)
      if (fault !== undefined) return fault
      const pending = box.pendingOf(key)
      let value = stored
      let text: PendingText | undefined
      if (pending !== undefined) {
        if (pending._tag === "Text") {
          if (pending.length < 0) return { _tag: "ValueTooLong", key, n: -1 }
          text = pending
          if (fill) hasText = true
        } else value = box.get(key)! // pieces: only a decoded box has them; assemble
      }
      if (text === undefined && !(value instanceof Uint8Array)) return { _tag: "NotBytes", key, n: 0, got: describeValue(value) }
      const v = text === undefined ? value.length : text.length
      if (v > MAX_VALUE) return { _tag: "ValueTooLong", key, n: v }
      size += 4 + key.length + v
      if (fill) insert(key, value, text)
    }
    return size
  }
  for (const [key, value] of box) {
    const fault = checkKey(key)
    if (fault !== undefined) return fault
    if (!(value instanceof Uint8Array)) return { _tag: "NotBytes", key, n: 0, got: describeValue(value) }
    const v = value.length
    if (v > MAX_VALUE) return { _tag: "ValueTooLong", key, n: v }
    size += 4 + key.length + v
    if (fill) insert(key, value, undefined)
  }
  return size
}

const describeValue = (value: unknown): string =>
  typeof value === "object" && value !== null ? `an instance of ${value.constructor?.name ?? "Object"}` : `a ${typeof value}`

/** Drops the scratch's references to the last box's values (so they can be collected). */
const release = (): void => {
  for (let i = 0; i < count; i++) {
    values[i] = EMPTY
    texts[i] = undefined
  }
  count = 0
}
const EMPTY = new Uint8Array(0)

const writeHeader = (out: Uint8Array, pos: number, key: string, valueLength: number): number => {
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

/** Writes the collected box at `pos` (room checked by the caller); returns the end. */
const writeCollected = (out: Uint8Array, pos: number): number => {
  for (let e = 0; e < count; e++) {
    const text = hasText ? texts[e] : undefined
    if (text !== undefined) {
      pos = writeHeader(out, pos, keys[e]!, text.length)
      if (encodeUtf8Into(text.text, out, pos, text.length) !== text.length) {
        throw new Error("AMP box changed while it was being encoded")
      }
      pos += text.length
      continue
    }
    const value = values[e]!
    const v = value.length
    pos = writeHeader(out, pos, keys[e]!, v)
    if (v <= 16) for (let i = 0; i < v; i++) out[pos + i] = value[i]!
    else out.set(value, pos)
    pos += v
  }
  out[pos] = 0
  out[pos + 1] = 0
  return pos + 2
}

/**
 * Runs `f` with the scratch; a re-entrant call (a custom map whose iterator encodes a box) gets its own
 * scratch for the time being.
 */
const withScratch = <A>(f: () => A): A => {
  if (!busy) {
    busy = true
    try {
      return f()
    } finally {
      release()
      busy = false
    }
  }
  const saved = { keys, values, texts, count, hasText }
  keys = []
  values = []
  texts = []
  try {
    return f()
  } finally {
    ;({ keys, values, texts, count, hasText } = saved)
  }
}

/** The encoded length of `box`, or why it cannot be framed. */
export const measure = (box: Box): number | Fault => collect(box, false)

const encodeOneCollected = (box: Box, fail: (fault: Fault) => Error): Uint8Array => {
  const n = collect(box)
  if (typeof n !== "number") throw fail(n)
  const out = allocUninitialized(n)
  if (writeCollected(out, 0) !== n) throw new Error("AMP box changed while it was being encoded")
  return out
}

/** Encodes one box into a fresh exact-size array; throws the fault. */
export const encodeOne = (box: Box, fail: (fault: Fault) => Error): Uint8Array => {
  if (busy) return withScratch(() => encodeOneCollected(box, fail))
  // `withScratch` inlined: no closure per call on this, the commonest path
  busy = true
  try {
    return encodeOneCollected(box, fail)
  } finally {
    release()
    busy = false
  }
}

/** Encodes boxes back to back into one fresh array; throws the first fault (then nothing is encoded). */
export const encodeAll = (boxes: ReadonlyArray<Box>, fail: (fault: Fault) => Error): Uint8Array =>
  withScratch(() => {
    let total = 0
    for (let i = 0; i < boxes.length; i++) {
      const n = collect(boxes[i]!)
      if (typeof n !== "number") throw fail(n)
      total += n
    }
    const out = allocUninitialized(total)
    let pos = 0
    for (let i = 0; i < boxes.length; i++) {
      collect(boxes[i]!)
      pos = writeCollected(out, pos)
    }
    if (pos !== total) throw new Error("AMP box changed while it was being encoded")
    return out
  })

/**
 * Encodes boxes as a list of arrays whose concatenation is their encoding (for a gather write): values
 * of 16 KiB or more (bytes, not pending text) are referenced, everything else is packed into one
 * buffer from `alloc` (default: a fresh one). Each box is read once. Throws the first fault.
 */
export const encodeChunks = (
  boxes: ReadonlyArray<Box>,
  fail: (fault: Fault) => Error,
  alloc: (length: number) => Uint8Array = allocUninitialized
): Array<Uint8Array> =>
  withScratch(() => {
    // sizes first (validating every box before anything is built), counting referenced values apart
    let copied = 0
    let referenced = 0
    for (let i = 0; i < boxes.length; i++) {
      const n = collect(boxes[i]!)
      if (typeof n !== "number") throw fail(n)
      copied += n
      for (let e = 0; e < count; e++) {
        if ((!hasText || texts[e] === undefined) && values[e]!.length >= GATHER_MIN) {
          copied -= values[e]!.length
          referenced++
        }
      }
    }
    const out = alloc(copied)
    if (referenced === 0) {
      // the last box is still collected: write the others (collecting each again), then it
      const last = boxes.length - 1
      let pos = 0
      if (last > 0) {
        for (let i = 0; i < last; i++) {
          collect(boxes[i]!)
          pos = writeCollected(out, pos)
        }
        collect(boxes[last]!)
      }
      if (last >= 0) pos = writeCollected(out, pos)
      if (pos !== copied) throw new Error("AMP box changed while it was being encoded")
      return [out]
    }
    const chunks: Array<Uint8Array> = []
    let pos = 0
    let start = 0
    for (let b = 0; b < boxes.length; b++) {
      collect(boxes[b]!)
      for (let e = 0; e < count; e++) {
        const text = hasText ? texts[e] : undefined
        if (text !== undefined) {
          pos = writeHeader(out, pos, keys[e]!, text.length)
          pos += encodeUtf8Into(text.text, out, pos, text.length)
          continue
        }
        const value = values[e]!
        const v = value.length
        pos = writeHeader(out, pos, keys[e]!, v)
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
  })
