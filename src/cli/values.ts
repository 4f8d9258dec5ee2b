/**
 * Command-line values for `effect-amp call`: `HOST:PORT` targets and `key=value` arguments.
 *
 * - `key=text`: the text's UTF-8 bytes (`key=` is an empty value).
 * - `key=@path`: the bytes of a file (`key=@-` reads standard input).
 * - `key:hex=0a ff 00`: bytes written in hex (whitespace ignored).
 * - `key:text=@literal`: the text as given, even when it starts with `@`.
 * - `key:file=path`: the same as `key=@path`.
 *
 * @internal
 */
import * as Fs from "node:fs"

/** A malformed argument; `message` says which and why. */
export class UsageError {
  readonly _tag = "UsageError"
  readonly message: string
  constructor(message: string) {
    this.message = message
  }
}

/** Where to connect: TCP, a Unix socket, or a command to start (`--exec`: AMP over its stdin/stdout). */
export type Target =
  | { readonly host: string; readonly port: number }
  | { readonly path: string }
  | { readonly exec: ReadonlyArray<string> }

/** Parses `HOST:PORT`, `[IPv6]:PORT`, or a bare `PORT` (host 127.0.0.1). Throws `UsageError`. */
export const parseHostPort = (text: string): { readonly host: string; readonly port: number } => {
  let host = "127.0.0.1"
  let portText = text
  const bracket = /^\[([^\]]+)\]:(\d+)$/.exec(text)
  if (bracket) {
    host = bracket[1]!
    portText = bracket[2]!
  } else if (text.includes(":")) {
    const at = text.lastIndexOf(":")
    host = text.slice(0, at)
    portText = text.slice(at + 1)
    if (host.includes(":")) throw new UsageError(`write an IPv6 address in brackets: [${host}]:${portText}`)
    if (host === "") host = "127.0.0.1"
  }
  if (!/^\d+$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    throw new UsageError(`expected HOST:PORT with a port from 1 to 65535, got ${JSON.stringify(text)}`)
  }
  return { host, port: Number(portText) }
}

const textEncoder = new TextEncoder()

/** Parses hex text (whitespace ignored, an optional `0x` prefix). Throws `UsageError`. */
export const parseHex = (text: string, what = "hex"): Uint8Array => {
  let digits = text.replace(/\s+/g, "")
  if (digits.startsWith("0x") || digits.startsWith("0X")) digits = digits.slice(2)
  const bad = /[^0-9a-fA-F]/.exec(digits)
  if (bad) throw new UsageError(`${what}: ${JSON.stringify(bad[0])} is not a hex digit`)
  if (digits.length % 2 !== 0) throw new UsageError(`${what}: odd number of hex digits (${digits.length})`)
  const out = new Uint8Array(digits.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16)
  return out
}

/** The latin1 key for a command-line key: its UTF-8 bytes, one character per byte. */
const wireKey = (key: string): string => {
  let s = ""
  for (const b of textEncoder.encode(key)) s += String.fromCharCode(b)
  return s
}

const readFile = (path: string, key: string): Uint8Array => {
  try {
    return path === "-" ? Fs.readFileSync(0) : Fs.readFileSync(path)
  } catch (e) {
    throw new UsageError(`${key}: cannot read ${path === "-" ? "standard input" : path}: ${(e as Error).message}`)
  }
}

/** Keys `effect-amp call` sets itself. */
const reserved = new Set(["_command", "_ask"])

/**
 * Parses one `key=value` argument into the wire key (latin1) and the value bytes. Throws `UsageError`.
 */
export const parseAssignment = (arg: string): readonly [string, Uint8Array] => {
  const eq = arg.indexOf("=")
  if (eq < 0) throw new UsageError(`expected key=value, got ${JSON.stringify(arg)}`)
  let key = arg.slice(0, eq)
  const value = arg.slice(eq + 1)
  let kind: "auto" | "hex" | "text" | "file" = "auto"
  const typed = /^(.*):(hex|text|file)$/.exec(key)
  if (typed) {
    key = typed[1]!
    kind = typed[2] as "hex" | "text" | "file"
  }
  if (key.length === 0) throw new UsageError(`empty key in ${JSON.stringify(arg)}`)
  const wire = wireKey(key)
  if (wire.length > 255) throw new UsageError(`key ${JSON.stringify(key)} is longer than 255 bytes`)
  if (reserved.has(wire)) throw new UsageError(`${key} is set by effect-amp call itself`)
  let bytes: Uint8Array
  switch (kind) {
    case "hex":
      bytes = parseHex(value, key)
      break
    case "text":
      bytes = textEncoder.encode(value)
      break
    case "file":
      bytes = readFile(value, key)
      break
    case "auto":
      bytes = value.startsWith("@") ? readFile(value.slice(1), key) : textEncoder.encode(value)
  }
  if (bytes.length > 0xffff) {
    throw new UsageError(`${key}: ${bytes.length} bytes is over AMP's limit of 65535 bytes per value`)
  }
  return [wire, bytes]
}

/** Parses every `key=value` argument; a key given twice is an error. Throws `UsageError`. */
export const parseAssignments = (args: ReadonlyArray<string>): Map<string, Uint8Array> => {
  const box = new Map<string, Uint8Array>()
  for (const arg of args) {
    const [key, value] = parseAssignment(arg)
    if (box.has(key)) throw new UsageError(`key ${JSON.stringify(arg.slice(0, arg.indexOf("=")))} given twice`)
    box.set(key, value)
  }
  return box
}
