/**
 * A connected Unix-domain stream socket that passes file descriptors, as a Node `Duplex`, so that the
 * rest of the library (effect's `NodeSocket.fromDuplex`, StartTLS, protocol switches) uses it like any
 * `net.Socket`. The native part polls the socket in the event loop (libuv): nothing blocks, no thread.
 *
 * Receiving: each read is one `recvmsg`; its fds go to the connection's {@link Channel} *before* its
 * bytes are pushed, as Twisted delivers `fileDescriptorReceived` before `dataReceived`.
 * Sending: the fds queued in the channel ride one per byte on the next bytes written (Twisted's
 * `_SendmsgMixin`); the duplicates are closed once sent.
 * @internal
 */
import { Effect } from "effect"
import type * as Net from "node:net"
import { Duplex } from "node:stream"
import { Channel, errnoName, MAX_UNCLAIMED, NOT_UNIX, type State } from "./descriptors.ts"
import { type Native, native, type NativeHandle, READABLE, unavailableReason, WRITABLE } from "./native.ts"

const READ_SIZE = 65536
const EAGAIN_CODES = new Set(["EAGAIN", "EWOULDBLOCK"])

const errnoError = (syscall: string, errno: number): NodeJS.ErrnoException => {
  const code = errnoName(errno)
  const error: NodeJS.ErrnoException = new Error(`${syscall} ${code}`)
  error.code = code
  error.errno = -errno
  error.syscall = syscall
  return error
}

// A bundle for the browser stubs out `node:stream` (Duplex is then undefined): this module is still
// imported through the package's barrel, so defining the class must not throw there.
const DuplexBase: typeof Duplex = Duplex ?? (class {} as unknown as typeof Duplex)

/** The Duplex over the native socket. */
export class FdSocket extends DuplexBase {
  readonly channel = new Channel()
  private readonly addon: Native
  private handle: NativeHandle | undefined
  private events = 0
  private wantRead = false
  private pending: { chunks: Array<Uint8Array>; index: number; offset: number; callback: (error?: Error | null) => void } | undefined
  /** One receive buffer, reused: each read's bytes are copied out (exactly their size). */
  private readonly receive = Buffer.allocUnsafe(READ_SIZE)

  constructor(addon: Native, fd: number) {
    super({ allowHalfOpen: false })
    this.addon = addon
    const handle = addon.open(fd, (status, events) => this.ready(status, events))
    if (typeof handle === "number") throw errnoError("dup", -handle)
    this.handle = handle
    this.channel.onOverflow = () =>
      this.destroy(new Error(`the peer sent more than ${MAX_UNCLAIMED} file descriptors that were never claimed`))
  }

  private setPolling(): void {
    if (this.handle === undefined) return
    const events = (this.wantRead ? READABLE : 0) | (this.pending !== undefined ? WRITABLE : 0)
    if (events === this.events) return
    this.events = events
    const rc = this.addon.poll(this.handle, events)
    if (rc < 0) this.destroy(errnoError("poll", -rc))
  }

  private ready(status: number, events: number): void {
    if (this.handle === undefined) return
    if (status < 0) {
      this.destroy(errnoError("poll", -status))
      return
    }
    if ((events & WRITABLE) !== 0 && this.pending !== undefined) this.flush()
    if ((events & READABLE) !== 0 && this.wantRead) this.readSome()
  }

  private readSome(): void {
    while (this.wantRead && this.handle !== undefined) {
      const buffer = this.receive
      const result = this.addon.recv(this.handle, buffer)
      if (typeof result === "number") {
        if (EAGAIN_CODES.has(errnoName(-result))) break
        this.destroy(errnoError("recvmsg", -result))
        return
      }
      const n = result[0]!
      // fds first: the bytes they came with may complete a box that claims them
      if (result.length > 1) this.channel.received(result.slice(1))
      if (n === 0) {
        this.wantRead = false
        this.setPolling()
        this.push(null)
        return
      }
      if (!this.push(Buffer.from(buffer.subarray(0, n)))) this.wantRead = false
      if (n < READ_SIZE && result.length === 1) break
    }
    this.setPolling()
  }

  override _read(): void {
    this.wantRead = true
    this.setPolling()
  }

  private flush(): void {
    const pending = this.pending
    if (pending === undefined || this.handle === undefined) return
    const chunks = pending.chunks
    while (pending.index < chunks.length) {
      const chunk = chunks[pending.index]!
      const rest = chunk.length - pending.offset
      if (rest > 0) {
        const queue = this.channel.queue
        const fds = queue.length === 0 ? null : Int32Array.from(queue.slice(0, rest))
        const written = this.addon.send(this.handle, pending.offset === 0 ? chunk : chunk.subarray(pending.offset), fds)
        if (written < 0) {
          this.pending = undefined
          this.setPolling()
          pending.callback(errnoError("sendmsg", -written))
          return
        }
        if (fds !== null) {
          for (const fd of queue.splice(0, Math.min(written, fds.length))) this.addon.close(fd)
        }
        pending.offset += written
        if (written < rest) {
          this.setPolling() // the socket is full: wait until writable
          return
        }
      }
      pending.index++
      pending.offset = 0
    }
    this.pending = undefined
    this.setPolling()
    pending.callback()
  }

  private start(chunks: Array<Uint8Array>, callback: (error?: Error | null) => void): void {
    this.pending = { chunks, index: 0, offset: 0, callback }
    this.flush()
  }

  override _write(chunk: Uint8Array, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.start([chunk], callback)
  }

  override _writev(chunks: Array<{ chunk: Uint8Array }>, callback: (error?: Error | null) => void): void {
    // small chunks are joined (fewer syscalls); large ones go as they are (no copy)
    const out: Array<Uint8Array> = []
    let small: Array<Uint8Array> = []
    let smallBytes = 0
    const join = () => {
      if (small.length > 0) out.push(small.length === 1 ? small[0]! : Buffer.concat(small, smallBytes))
      small = []
      smallBytes = 0
    }
    for (const { chunk } of chunks) {
      if (chunk.length >= 16384) {
        join()
        out.push(chunk)
      } else {
        small.push(chunk)
        smallBytes += chunk.length
      }
    }
    join()
    this.start(out, callback)
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.handle !== undefined) {
      const rc = this.addon.shutdown(this.handle)
      if (rc < 0 && errnoName(-rc) !== "ENOTCONN") return callback(errnoError("shutdown", -rc))
    }
    callback()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.handle !== undefined) {
      this.addon.destroy(this.handle)
      this.handle = undefined
    }
    this.channel.close()
    const pending = this.pending
    this.pending = undefined
    if (pending !== undefined) pending.callback(error ?? new Error("socket destroyed"))
    callback(error)
  }
}

/** What a Unix connection runs over: the stream and the fd state for its dispatcher. */
export interface Adopted {
  readonly raw: Duplex
  readonly descriptors: State | undefined
}

/**
 * Takes over a freshly connected, paused (never read) `net.Socket`: for a Unix-domain socket with the
 * native part available, its fd is duplicated into an {@link FdSocket} and the `net.Socket` destroyed;
 * otherwise it is returned as it is, with the reason fds cannot pass. The result is destroyed when the
 * current scope closes.
 */
export const adopt = (raw: Net.Socket, unix: boolean) =>
  Effect.acquireRelease(
    Effect.sync((): Adopted => {
      if (!unix) return { raw, descriptors: NOT_UNIX }
      const addon = native()
      const fd = (raw as unknown as { _handle?: { fd?: unknown } })._handle?.fd
      if (addon === undefined || typeof fd !== "number" || fd < 0) {
        return { raw, descriptors: { reason: unavailableReason() ?? "this socket has no file descriptor" } }
      }
      let socket: FdSocket
      try {
        socket = new FdSocket(addon, fd)
      } catch (error) {
        return { raw, descriptors: { reason: `cannot take over the socket: ${(error as Error).message}` } }
      }
      raw.destroy()
      socket.on("error", () => {}) // surfaced through the reader
      return { raw: socket, descriptors: socket.channel }
    }),
    ({ raw }) =>
      Effect.sync(() => {
        if (!raw.destroyed) raw.destroy()
      })
  )
