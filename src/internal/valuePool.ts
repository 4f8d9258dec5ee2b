/**
 * The recycler for buffers of large values split across reads. Public as `Box.ValuePool`,
 * `Box.makeValuePool` and `Box.POOLED_MIN_LENGTH` (re-exported by src/Box.ts, which documents them).
 * @internal
 */
import { sizeClass } from "./bytes.ts"
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
  const classOf = (length: number): number => sizeClass(POOLED_MIN_LENGTH, length)
  return {
    take: (length) => {
      const c = classOf(length)
      let buffer = free[c]!.pop()
      if (buffer === undefined) {
        const size = POOLED_MIN_LENGTH << c
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

