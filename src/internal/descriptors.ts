/**
 * The per-connection file-descriptor state behind `Argument.Descriptor`, exactly Twisted's
 * `_DescriptorExchanger`: a send counter and a receive counter (both from 0), a table of received fds
 * keyed by their receive ordinal, and a queue of fds waiting to ride on the next bytes written.
 *
 * Argument codecs are synchronous functions without a connection parameter, so the dispatcher makes the
 * connection's state current while it encodes or decodes a box ({@link within}); the `Descriptor` codec
 * reads it. JavaScript is single-threaded and the codecs are synchronous, so this slot cannot be seen
 * by another connection. Work done inside a failed `within` is rolled back: fds queued by it are
 * un-queued (and the send counter restored), fds it claimed are closed.
 * @internal
 */
import { constants as osConstants } from "node:os"
import { CodecFailure } from "./argument.ts"
import { closeFd, native } from "./native.ts"

/** At most this many received fds wait to be claimed on one connection; more closes the connection. */
export const MAX_UNCLAIMED = 1024

/** A connection that can pass file descriptors. */
export class Channel {
  private sendCounter = 0
  private receiveCounter = 0
  private readonly table = new Map<number, number>()
  /** Duplicates owned by the channel, in send order, not yet written. */
  readonly queue: Array<number> = []
  private closed = false
  /** Called when the peer sends more unclaimed fds than {@link MAX_UNCLAIMED}. */
  onOverflow: (() => void) | undefined

  /**
   * Twisted's `_sendFileDescriptor`: queues a duplicate of `fd` (or `fd` itself when it was given up
   * with {@link transfer}), returns its send ordinal.
   */
  send(fd: number): number {
    const n = native()
    if (n === undefined || this.closed) throw new CodecFailure("the connection is closed")
    if (transferred.delete(fd)) {
      this.queue.push(fd)
      return this.sendCounter++
    }
    const copy = n.dup(fd)
    if (copy < 0) throw new CodecFailure(`cannot send file descriptor ${fd}: ${errnoName(-copy)}`)
    this.queue.push(copy)
    return this.sendCounter++
  }

  /** Twisted's `fileDescriptorReceived`, for each fd of one read (before its bytes are delivered). */
  received(fds: ReadonlyArray<number>): void {
    for (const fd of fds) {
      if (this.closed) {
        closeFd(fd)
        continue
      }
      this.table.set(this.receiveCounter++, fd)
    }
    if (this.table.size > MAX_UNCLAIMED) this.onOverflow?.()
  }

  /** Twisted's `_getDescriptor` (a `dict.pop`): each received fd can be claimed once. */
  claim(ordinal: number): number {
    const fd = this.table.get(ordinal)
    if (fd === undefined) {
      throw new CodecFailure(`no file descriptor was received for ordinal ${ordinal} (not arrived, or already claimed)`)
    }
    this.table.delete(ordinal)
    return fd
  }

  /** How many received fds wait to be claimed. */
  get unclaimed(): number {
    return this.table.size
  }

  /** Closes every unclaimed received fd and every queued duplicate; later arrivals are closed at once. */
  close(): void {
    this.closed = true
    for (const fd of this.table.values()) closeFd(fd)
    this.table.clear()
    for (const fd of this.queue) closeFd(fd)
    this.queue.length = 0
  }

  /** @internal rollback support for {@link within} */
  mark(): { readonly queued: number; readonly counter: number } {
    return { queued: this.queue.length, counter: this.sendCounter }
  }

  /** @internal */
  rollback(mark: { readonly queued: number; readonly counter: number }): void {
    for (const fd of this.queue.splice(mark.queued)) closeFd(fd)
    this.sendCounter = mark.counter
  }
}

/** A connection that cannot pass fds, and why. */
export interface Unavailable {
  readonly reason: string
}

/** What the dispatcher of a connection holds. */
export type State = Channel | Unavailable

/** The state of connections whose transport does not say (TCP, in-memory, TLS from the start). */
export const NOT_UNIX: Unavailable = {
  reason: "file descriptors can only be passed over a Unix-domain connection (this one is not)"
}

/** fds given up by their owner: sent as they are and closed once written (or on failure). */
const transferred = new Set<number>()

/** Marks `fd` to be closed by the library once sent (see `Descriptor.transfer`). */
export const transfer = (fd: number): number => {
  transferred.add(fd)
  return fd
}

let current: State | undefined
let claimed: Array<number> | undefined

/** Runs a synchronous encode/decode with `state` current (see the module comment). */
export const within = <A>(state: State | undefined, f: () => A): A => {
  const previous = current
  const previousClaimed = claimed
  current = state ?? NOT_UNIX
  claimed = undefined
  const mark = state instanceof Channel ? state.mark() : undefined
  try {
    return f()
  } catch (error) {
    if (mark !== undefined) (state as Channel).rollback(mark)
    const taken = claimed as Array<number> | undefined
    if (taken !== undefined) for (const fd of taken) closeFd(fd)
    throw error
  } finally {
    current = previous
    claimed = previousClaimed
  }
}

const MAX_ORDINAL = 2 ** 53

/** The `Descriptor` encoder: sends (a duplicate of) `fd`, returns its ordinal. */
export const encode = (fd: number): number => {
  if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) throw new CodecFailure(`not a file descriptor: ${String(fd)}`)
  const state = current
  if (state === undefined) throw new CodecFailure("a Descriptor can only be encoded by a connection (callRemote or a responder)")
  if (!(state instanceof Channel)) {
    if (transferred.delete(fd)) closeFd(fd)
    throw new CodecFailure(state.reason)
  }
  return state.send(fd)
}

/** The `Descriptor` decoder: claims the fd received under `ordinal`. */
export const decode = (ordinal: bigint): number => {
  const state = current
  if (state === undefined) throw new CodecFailure("a Descriptor can only be decoded by a connection (callRemote or a responder)")
  if (!(state instanceof Channel)) throw new CodecFailure(state.reason)
  if (ordinal < 0n || ordinal >= MAX_ORDINAL) throw new CodecFailure(`no file descriptor was received for ordinal ${ordinal}`)
  const fd = state.claim(Number(ordinal))
  ;(claimed ??= []).push(fd)
  return fd
}

const errnoNames = new Map<number, string>()
/** `EBADF` for 9, etc. */
export const errnoName = (errno: number): string => {
  if (errnoNames.size === 0) {
    for (const [name, value] of Object.entries(osConstants.errno)) errnoNames.set(value, name)
  }
  return errnoNames.get(errno) ?? `errno ${errno}`
}
