/**
 * Loads effect-amp's native part (`native/fdpass.c`, built by `npm install` into
 * `native/build/fdpass.node`): Unix-domain sockets that carry file descriptors. Loading is lazy and never
 * throws; without the addon {@link unavailableReason} says why and how to enable it.
 * @internal
 */
import { createRequire } from "node:module"

/** The addon's functions (see native/fdpass.c). Negative numbers are `-errno`. */
export interface Native {
  readonly dup: (fd: number) => number
  readonly close: (fd: number) => number
  readonly pipe: () => [number, number] | number
  readonly open: (fd: number, onReady: (status: number, events: number) => void) => NativeHandle | number
  readonly poll: (handle: NativeHandle, events: number) => number
  readonly recv: (handle: NativeHandle, buffer: Uint8Array) => Array<number> | number
  readonly send: (handle: NativeHandle, buffer: Uint8Array, fds: Int32Array | null) => number
  readonly shutdown: (handle: NativeHandle) => number
  readonly destroy: (handle: NativeHandle) => number
}

/** An opaque native connection. */
export interface NativeHandle {
  readonly __nativeHandle: unique symbol
}

/** libuv poll events. */
export const READABLE = 1
export const WRITABLE = 2

const ENABLE_HINT = "install a C compiler (cc) and run `npm rebuild effect-amp` (in this repository: `npm run build:native`)"

let loaded: Native | undefined
let failure: string | undefined
let tried = false

const load = (): void => {
  tried = true
  if (process.platform === "win32") {
    failure = "file descriptors cannot be passed on Windows"
    return
  }
  if (process.env.EFFECT_AMP_NATIVE === "off") {
    failure = "file-descriptor passing is turned off (EFFECT_AMP_NATIVE=off); unset it to enable it"
    return
  }
  try {
    const require = createRequire(import.meta.url)
    loaded = require("../../native/build/fdpass.node") as Native
  } catch (error) {
    const code = (error as { code?: string }).code
    failure = code === "MODULE_NOT_FOUND"
      ? `effect-amp's native part was not built (no C compiler at install time?); to enable file-descriptor passing, ${ENABLE_HINT}`
      : `effect-amp's native part could not be loaded (${(error as Error).message}); to enable file-descriptor passing, ${ENABLE_HINT}`
  }
}

/** The addon, or undefined when it is not built or cannot be loaded. */
export const native = (): Native | undefined => {
  if (!tried) load()
  return loaded
}

/** Why the addon is unavailable (and how to enable it); undefined when it is available. */
export const unavailableReason = (): string | undefined => {
  if (!tried) load()
  return failure
}

/** Closes a raw fd, ignoring errors. */
export const closeFd = (fd: number): void => {
  const n = native()
  if (n !== undefined) n.close(fd)
}
