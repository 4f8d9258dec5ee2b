/**
 * Showing AMP bytes to people: keys and values as readable, unambiguous one-line text, and as JSON.
 *
 * `escape` decodes valid UTF-8 and shows printable characters as they are; everything else is escaped:
 * a byte that is not part of valid UTF-8, and an ASCII control character, as `\xNN`; a backslash as
 * `\\`; an invisible or non-ASCII control character (C1, format characters, separators other than the
 * space) as `\u{XXXX}`. The bytes can always be recovered from the text.
 *
 * @internal
 */
import type { Box } from "../Box.ts"
import { fromLatin1 } from "../internal/bytes.ts"

const hexByte = (b: number): string => "\\x" + b.toString(16).padStart(2, "0")

// Characters shown escaped even when they are valid UTF-8: controls, format characters, unassigned
// and private-use code points, line/paragraph separators, and every space but U+0020.
const invisible = /[\p{C}\p{Zl}\p{Zp}]|(?! )\p{Zs}/u

/** Length of the valid UTF-8 sequence starting at `i` (0 if the byte there does not start one). */
const utf8SequenceLength = (bytes: Uint8Array, i: number): number => {
  const b0 = bytes[i]!
  if (b0 < 0x80) return 1
  let n: number
  let min: number
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    n = 2
    min = 0x80
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    n = 3
    min = 0x800
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    n = 4
    min = 0x10000
  } else return 0
  if (i + n > bytes.length) return 0
  let cp = b0 & (0xff >> (n + 1))
  for (let k = 1; k < n; k++) {
    const b = bytes[i + k]!
    if ((b & 0xc0) !== 0x80) return 0
    cp = (cp << 6) | (b & 0x3f)
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0
  return n
}

/**
 * Readable, unambiguous text for a byte string (see the module comment).
 *
 * @example
 * ```ts
 * escape(new Uint8Array([0x68, 0x69, 0xff, 0x0a])) // "hi\\xff\\x0a"
 * ```
 */
export const escape = (bytes: Uint8Array): string => {
  let out = ""
  let i = 0
  while (i < bytes.length) {
    const b = bytes[i]!
    if (b < 0x80) {
      if (b === 0x5c) out += "\\\\"
      else if (b < 0x20 || b === 0x7f) out += hexByte(b)
      else out += String.fromCharCode(b)
      i++
      continue
    }
    const n = utf8SequenceLength(bytes, i)
    if (n === 0) {
      out += hexByte(b)
      i++
      continue
    }
    const ch = new TextDecoder().decode(bytes.subarray(i, i + n))
    out += invisible.test(ch) ? `\\u{${ch.codePointAt(0)!.toString(16)}}` : ch
    i += n
  }
  return out
}

/** Escapes text that is already a string (a description): the same rules, applied to its UTF-8. */
export const escapeText = (text: string): string => escape(new TextEncoder().encode(text))

/** The bytes of a latin1 key (one character per byte). */
export const keyBytes = fromLatin1

/** A key (latin1 string) as readable text. */
export const escapeKey = (key: string): string => escape(keyBytes(key))

/** Lowercase hex of bytes. */
export const toHex = (bytes: Uint8Array): string => {
  let s = ""
  for (const b of bytes) s += b.toString(16).padStart(2, "0")
  return s
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/** A JSON value for bytes: the UTF-8 string when the bytes are valid UTF-8, else `{ "hex": "…" }`. */
export const jsonValue = (bytes: Uint8Array): string | { readonly hex: string } => {
  try {
    return strictUtf8.decode(bytes)
  } catch {
    return { hex: toHex(bytes) }
  }
}

/**
 * A box as a JSON object (wire order). Keys are decoded as UTF-8 when they are valid UTF-8, else kept
 * as latin1 characters (one per byte); `omit` drops keys (e.g. `_answer`).
 */
export const boxToJson = (box: Box, omit: ReadonlySet<string> = new Set()): Record<string, string | { hex: string }> => {
  const out: Record<string, string | { hex: string }> = {}
  for (const [key, value] of box) {
    if (omit.has(key)) continue
    const k = jsonValue(keyBytes(key))
    out[typeof k === "string" ? k : key] = jsonValue(value)
  }
  return out
}

/** A box as `key=value` lines (wire order), escaped; `omit` drops keys. */
export const boxToLines = (box: Box, omit: ReadonlySet<string> = new Set(), separator = "="): Array<string> => {
  const lines: Array<string> = []
  for (const [key, value] of box) {
    if (omit.has(key)) continue
    // an "=" inside a key would make `key=value` ambiguous
    const shownKey = separator === "=" ? escapeKey(key).replaceAll("=", "\\x3d") : escapeKey(key)
    lines.push(`${shownKey}${separator}${escape(value)}`)
  }
  return lines
}
