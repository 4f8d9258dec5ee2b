/**
 * The recycler for the encoder's output buffers. Public as `Box.OutputPool`, `Box.makeOutputPool` and
 * `Box.encodeChunksPooled` (src/Box.ts documents them).
 * @internal
 */
import { sizeClass } from "./bytes.ts"

/**
 * A recycler for the buffers `Box.encodeChunksPooled` packs boxes into (see {@link makeOutputPool}).
 *
 * Why: every write of large values otherwise packs them into a fresh buffer. V8 frees array buffers
 * only at garbage collection and counts them as external memory, so a stream of fresh buffers of a
 * megabyte costs a full mark-compact every few dozen writes, and every fresh buffer's pages are faulted
 * in as they are first written. A buffer handed back once its write is done is reused while it is still
 * mapped and in cache.
 *
 * @since 0.2.0
 * @category encoding
 */
export interface OutputPool {
  /**
   * Hands back the chunks of one `encodeChunksPooled` call for reuse. Call it only once the transport
   * is done with them: the socket has written them (its write callback ran, or its buffered length is
   * back to 0), not merely accepted them. Chunks the pool did not give out (large values referenced
   * as they are, chunks of another pool) are ignored. Release each call's chunks once: a second
   * release is ignored only until the buffer is given out again (then it would free the new owner's).
   */
  readonly release: (chunks: ReadonlyArray<Uint8Array>) => void
  /** Bytes held idle for reuse (at most `maxIdleBytes`). */
  readonly idleBytes: () => number
  /** A buffer for `length` bytes of output, stale until written (used by the encoder). */
  readonly take: (length: number) => Uint8Array
}

/** Outputs shorter than this are not pooled (a fresh small buffer is cheap). */
export const OUTPUT_POOLED_MIN_LENGTH = 4096
/** Size classes: 4 KiB << c for c = 0 .. CLASSES - 1 (4 KiB to 8 MiB); longer outputs are not pooled. */
const CLASSES = 12

/**
 * Creates an {@link OutputPool}: buffers in power-of-two size classes from 4 KiB to 8 MiB (an output
 * gets the smallest that fits), at most `maxIdleBytes` (default 4 MiB) kept idle. Share one pool among
 * all connections of a process: its idle memory is then bounded once, not per connection.
 */
export const makeOutputPool = (options?: { readonly maxIdleBytes?: number | undefined }): OutputPool => {
  const maxIdle = options?.maxIdleBytes ?? 4 * 1024 * 1024
  const free: Array<Array<ArrayBuffer>> = Array.from({ length: CLASSES }, () => [])
  const given = new WeakSet<ArrayBuffer>()
  let idle = 0
  const classOf = (length: number): number => sizeClass(OUTPUT_POOLED_MIN_LENGTH, length)
  const fresh = (size: number): ArrayBuffer =>
    typeof globalThis.Buffer === "function"
      ? globalThis.Buffer.allocUnsafeSlow(size).buffer as ArrayBuffer
      : new ArrayBuffer(size)
  return {
    take: (length) => {
      if (length < OUTPUT_POOLED_MIN_LENGTH) return new Uint8Array(length)
      const c = classOf(length)
      if (c >= CLASSES) return new Uint8Array(fresh(length), 0, length)
      let buffer = free[c]!.pop()
      if (buffer === undefined) buffer = fresh(OUTPUT_POOLED_MIN_LENGTH << c)
      else idle -= buffer.byteLength
      given.add(buffer)
      return new Uint8Array(buffer, 0, length)
    },
    release: (chunks) => {
      for (let i = 0; i < chunks.length; i++) {
        const buffer = chunks[i]!.buffer as ArrayBuffer
        if (!given.delete(buffer)) continue
        if (idle + buffer.byteLength > maxIdle) continue
        idle += buffer.byteLength
        free[classOf(buffer.byteLength)]!.push(buffer)
      }
    },
    idleBytes: () => idle
  }
}
