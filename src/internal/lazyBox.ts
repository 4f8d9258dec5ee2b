/**
 * Boxes holding values that are not bytes yet. Private to effect-amp; the public face is
 * `Box.makeOutgoing`, `Box.pieces` and `Box.makeDecoder({ pieces: true })`.
 *
 * - Outgoing text: the value is the UTF-8 of a string, written by the box encoder straight into the
 *   outgoing buffer (no buffer per value).
 * - Split values: a value that arrived across several reads, kept as views of those reads (no copy), so
 *   a text decoder can read it straight from the pieces.
 *
 * Reading such a value as bytes (`get`, iteration, `new Map(box)`) turns it into bytes on demand, once:
 * every reader still sees an ordinary `ReadonlyMap<string, Uint8Array>`.
 * @internal
 */
import { utf8Length } from "./bytes.ts"

/** A text value: its UTF-8 is the wire value. `length` is its UTF-8 length, or -1 when over 65535. */
export interface PendingText {
  readonly _tag: "Text"
  readonly text: string
  readonly length: number
}

/** A value split across reads: the views of its pieces, in order, `length` bytes in all. */
export interface PendingPieces {
  readonly _tag: "Pieces"
  readonly pieces: ReadonlyArray<Uint8Array>
  readonly length: number
  /** Where to assemble it if someone asks for the bytes (a `Box.ValuePool`'s `take`). */
  readonly alloc: (length: number) => Uint8Array
}

export type Pending = PendingText | PendingPieces

const EMPTY = new Uint8Array(0)
const textEncoder = new TextEncoder()

const toBytes = (pending: Pending): Uint8Array => {
  if (pending._tag === "Text") return textEncoder.encode(pending.text)
  const out = pending.alloc(pending.length)
  let at = 0
  for (const piece of pending.pieces) {
    out.set(piece, at)
    at += piece.length
  }
  return out
}

const mapGet = Map.prototype.get
const mapSet = Map.prototype.set
const mapEntries = Map.prototype.entries

/**
 * A `Map` of wire keys to values where some values are pending (text or pieces). A pending key holds an
 * empty placeholder in the map itself, so `size`, `has`, `keys` and the key order are right without
 * turning anything into bytes.
 */
export class LazyBox extends Map<string, Uint8Array> {
  /** Pending values by key; undefined or empty when every value is bytes. */
  pending: Map<string, Pending> | undefined = undefined

  /** Sets `key` to a pending value. */
  setPending(key: string, value: Pending): this {
    ;(this.pending ??= new Map()).set(key, value)
    mapSet.call(this, key, EMPTY)
    return this
  }

  /** The pending value of `key`, if it has not been turned into bytes. */
  pendingOf(key: string): Pending | undefined {
    return this.pending === undefined ? undefined : this.pending.get(key)
  }

  /** Entries as stored (pending keys with their empty placeholder), without turning anything into bytes. */
  rawEntries(): MapIterator<[string, Uint8Array]> {
    return mapEntries.call(this) as MapIterator<[string, Uint8Array]>
  }

  private resolve(key: string, pending: Pending): Uint8Array {
    const bytes = toBytes(pending)
    this.pending!.delete(key)
    mapSet.call(this, key, bytes)
    return bytes
  }

  private resolveAll(): void {
    const pending = this.pending
    if (pending === undefined || pending.size === 0) return
    for (const [key, value] of [...pending]) this.resolve(key, value)
  }

  override get(key: string): Uint8Array | undefined {
    const pending = this.pending === undefined ? undefined : this.pending.get(key)
    return pending === undefined ? mapGet.call(this, key) as Uint8Array | undefined : this.resolve(key, pending)
  }

  override set(key: string, value: Uint8Array): this {
    if (this.pending !== undefined) this.pending.delete(key)
    return super.set(key, value)
  }

  override delete(key: string): boolean {
    if (this.pending !== undefined) this.pending.delete(key)
    return super.delete(key)
  }

  override clear(): void {
    this.pending = undefined
    super.clear()
  }

  override forEach(callback: (value: Uint8Array, key: string, map: Map<string, Uint8Array>) => void, thisArg?: unknown): void {
    this.resolveAll()
    super.forEach(callback, thisArg)
  }

  override entries(): MapIterator<[string, Uint8Array]> {
    this.resolveAll()
    return super.entries()
  }

  override values(): MapIterator<Uint8Array> {
    this.resolveAll()
    return super.values()
  }

  override [Symbol.iterator](): MapIterator<[string, Uint8Array]> {
    this.resolveAll()
    return super.entries()
  }
}

/** A box being built for sending (`Box.makeOutgoing`): a {@link LazyBox} with `setText`. */
export class OutgoingBox extends LazyBox {
  /** Sets `key` to the UTF-8 of `text` (well-formed, else TypeError), written when the box is encoded. */
  setText(key: string, text: string): this {
    if (!text.isWellFormed()) throw new TypeError(`text for ${JSON.stringify(key)} has a lone surrogate`)
    return this.setPending(key, pendingText(text))
  }
}

/** Makes a pending text value; `length` is measured now (one UTF-8 pass into a scratch buffer). */
export const pendingText = (text: string): PendingText => ({ _tag: "Text", text, length: utf8Length(text, 0xffff) })
