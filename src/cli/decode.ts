/**
 * `effect-amp decode`: shows a captured AMP byte stream box by box.
 *
 * ```text
 * box 1 @0
 *   _ask = 1
 *   _command = Sum
 *   a = 13
 *   b = 81
 * truncated: 7 bytes of an incomplete box at offset 42
 * ```
 *
 * Keys and values are escaped (see `format.ts`). The stream ends in one of three ways: cleanly on a
 * box boundary, with an incomplete box (`truncated: …`, still a success: a capture usually stops
 * mid-box), or with a framing error (a key length over 255) at an exact byte offset (exit code 1).
 *
 * @internal
 */
import * as Fs from "node:fs"
import * as Box from "../Box.ts"
import { boxToLines } from "./format.ts"
import { parseHex, UsageError } from "./values.ts"

/** What decoding a stream found. */
export interface Decoded {
  /** Every complete box, with the stream offset where it starts. */
  readonly boxes: ReadonlyArray<{ readonly offset: number; readonly box: Box.Box }>
  /** Bytes of an incomplete box at the end, and where it starts. */
  readonly truncated: { readonly offset: number; readonly bytes: number } | undefined
  /** A framing error, at the stream offset of the offending key-length prefix. */
  readonly framingError: Box.FramingError | undefined
  /** Total input bytes. */
  readonly length: number
}

/** Decodes a whole captured stream. */
export const decodeStream = (bytes: Uint8Array): Decoded => {
  const decoder = Box.makeDecoder()
  const out: Array<Box.Box> = []
  const ends: Array<number> = []
  const framingError = decoder.feed(bytes, out, ends)
  const boxes = out.map((box, i) => ({ offset: i === 0 ? 0 : ends[i - 1]!, box }))
  const lastEnd = ends.length === 0 ? 0 : ends[ends.length - 1]!
  const truncated = framingError === undefined && lastEnd < bytes.length
    ? { offset: lastEnd, bytes: bytes.length - lastEnd }
    : undefined
  return { boxes, truncated, framingError, length: bytes.length }
}

/** The report lines for a decoded stream. */
export const render = (decoded: Decoded): Array<string> => {
  const lines: Array<string> = []
  decoded.boxes.forEach(({ box, offset }, i) => {
    lines.push(`box ${i + 1} @${offset}`)
    for (const line of boxToLines(box, new Set(), " = ")) lines.push(`  ${line}`)
  })
  if (decoded.truncated !== undefined) {
    lines.push(`truncated: ${decoded.truncated.bytes} bytes of an incomplete box at offset ${decoded.truncated.offset}`)
  }
  if (decoded.framingError !== undefined) {
    const e = decoded.framingError
    lines.push(`framing error at offset ${e.offset}: key length ${e.keyLength} is over 255`)
  }
  const plural = decoded.boxes.length === 1 ? "box" : "boxes"
  lines.push(`${decoded.boxes.length} ${plural}, ${decoded.length} bytes`)
  return lines
}

/** Reads the input: a file, or standard input for `-`; with `hex`, hex text (whitespace ignored). */
export const readInput = (file: string, hex: boolean): Uint8Array => {
  let raw: Uint8Array
  try {
    raw = file === "-" ? Fs.readFileSync(0) : Fs.readFileSync(file)
  } catch (e) {
    throw new UsageError(`cannot read ${file === "-" ? "standard input" : file}: ${(e as Error).message}`)
  }
  if (!hex) return raw
  // also accept `#` comments in hex dumps
  const text = new TextDecoder().decode(raw).replace(/#[^\n]*/g, "")
  return parseHex(text, "hex input")
}
