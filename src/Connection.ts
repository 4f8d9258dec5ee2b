/**
 * An AMP connection over an `effect/socket` Socket: the read loop (socket chunks → box Stream →
 * dispatcher), the batched writer, the lifecycle, and the two transitions of the socket's phase:
 * StartTLS (plain → TLS) and protocol switches (AMP → another protocol). A connection lives in a Scope:
 * closing the scope closes the socket and fails every outstanding call with `ConnectionLost`.
 *
 * - Reads are pulled: the next chunk is read only when the previous boxes were dispatched, and the
 *   dispatcher waits for a handler slot when `maxConcurrentHandlers` are busy, so a flood of commands
 *   slows the peer down (TCP backpressure) instead of growing a queue.
 * - Writes are batched: boxes queued in the same turn are serialized into one buffer and written with
 *   one socket write. The send queue is bounded (`maxQueuedBoxes`) and the writer respects the socket's
 *   backpressure, so a peer that never reads cannot grow our memory without bound.
 * - Ends, as in Twisted: a protocol error (unknown answer tag, empty box, …) aborts at once; a key
 *   longer than 255 bytes, an `UNKNOWN` error answer or a fatal error closes after flushing what is
 *   queued; `close({ graceful: true })` stops reading, lets running handlers answer, flushes, then closes.
 * - Each phase of the socket (plain AMP, TLS AMP, switched) holds its reader and writer in scopes of its
 *   own; a transition closes the old phase's scopes (reader first, so the socket is not half-closed)
 *   and acquires the next phase over the same underlying stream.
 *
 * @since 0.1.0
 */
import { Context, Deferred, Effect, Exit, Fiber, Queue, Schema, Scope, Stream } from "effect"
import * as Socket from "effect/socket/Socket"
import type * as Net from "node:net"
import type { Duplex } from "node:stream"
import * as Tls from "node:tls"
import { ArgumentError, ConnectionLost, type ProtocolError, ProtocolSwitched } from "./AmpError.ts"
import * as Box from "./Box.ts"
import * as Command from "./Command.ts"
import { ConnectionInfo, type Snapshot } from "./ConnectionInfo.ts"
import * as Dispatcher from "./Dispatcher.ts"
import { concatBytes, latin1 } from "./internal/bytes.ts"
import { destroy, wrapDuplex } from "./internal/node.ts"
import type { SwitchedSocket } from "./ProtocolSwitch.ts"
import { Responders, type SwitchHandler } from "./Responders.ts"
import { OnlyOneTLS, StartTLS, TLS_UNAVAILABLE, TlsError, type TlsOptions } from "./StartTLS.ts"

/**
 * Why a connection ended.
 *
 * @since 0.1.0
 * @category models
 */
export class ConnectionEnded extends Schema.TaggedError<ConnectionEnded>()("ConnectionEnded", {
  /** Human-readable reason: "closed by peer", "closed locally", "protocol error: …". */
  reason: Schema.String,
  /** Whether we ended it (a local close, a fatal error we sent, a protocol violation by the peer). */
  local: Schema.Boolean,
  /** The typed error behind it, when there is one (ProtocolError, FramingError, TlsError, SocketError). */
  cause: Schema.optional(Schema.Unknown)
}) {
  override get message(): string {
    return `AMP connection ended: ${this.reason}`
  }
}

/**
 * Connection options.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Dispatcher.Options {
  /** Boxes waiting to be written before senders wait (default 1024). */
  readonly maxQueuedBoxes?: number | undefined
  /** How long a graceful close waits for handlers and the flush before aborting (default 10 s). */
  readonly closeTimeoutMillis?: number | undefined
  /**
   * Close the connection if no complete box arrives within this many milliseconds of its start (and of
   * each StartTLS). Off by default; a server facing untrusted peers should set it (e.g. 30000).
   */
  readonly firstBoxTimeoutMillis?: number | undefined
  /** Close the connection after this many milliseconds without receiving a byte. Off by default. */
  readonly idleTimeoutMillis?: number | undefined
  /** Transport description for `ConnectionInfo` (addresses, TLS). */
  readonly info?: Partial<Snapshot> | undefined
  /**
   * TLS material used when the peer sends StartTLS (and the defaults for `startTLS`). Without `key` and
   * `cert` an incoming StartTLS is answered with the error `TLS_UNAVAILABLE`, unless we are the TLS client.
   */
  readonly tls?: TlsOptions | undefined
}

/**
 * Internal options set by the transports.
 *
 * @since 0.1.0
 * @category models
 */
export interface TransportOptions {
  /** Which end of the underlying stream we are: decides the TLS role. */
  readonly role: "client" | "server"
  /** The Node stream under the socket: needed for StartTLS and protocol switches. */
  readonly raw?: Duplex | undefined
  /** The host we connected to (default TLS server name for hostname checks). */
  readonly host?: string | undefined
}

/**
 * A running connection.
 *
 * @since 0.1.0
 * @category models
 */
export interface Connection {
  /** Call the peer. */
  readonly dispatcher: Dispatcher.Dispatcher["Service"]
  readonly info: ConnectionInfo["Service"]
  /** Completes when the connection has ended, with the reason. */
  readonly ended: Effect.Effect<ConnectionEnded>
  /**
   * Ends the connection. Default (abort): stop now, fail outstanding calls, drop unsent boxes.
   * `graceful: true`: stop reading and calling, let running handlers finish and their answers out,
   * flush, then close (bounded by `closeTimeoutMillis`).
   */
  readonly close: (options?: { readonly graceful?: boolean | undefined }) => Effect.Effect<void>
  /**
   * Sends `StartTLS` and upgrades the connection (see the `StartTLS` module). Options are merged over
   * the connection's `tls` options. Boxes sent meanwhile are held and go out through TLS.
   */
  readonly startTLS: (
    options?: TlsOptions
  ) => Effect.Effect<void, OnlyOneTLS | TlsError | Dispatcher.CallError>
  /**
   * Sends a protocol-switch command; on success AMP stops and the returned socket carries the next
   * protocol (see the `ProtocolSwitch` module).
   */
  readonly switchProtocol: <C extends Command.Any>(
    command: C,
    args: Command.Arguments<C>
  ) => Effect.Effect<SwitchedSocket, Command.Error<C> | Dispatcher.CallError>
}

/**
 * The connection was closed because the peer was silent for too long (`firstBoxTimeoutMillis`,
 * `idleTimeoutMillis`).
 *
 * @since 0.1.0
 * @category errors
 */
export class Timeout extends Schema.TaggedError<Timeout>()("Timeout", { reason: Schema.String }) {
  override get message(): string {
    return `AMP connection timed out: ${this.reason}`
  }
}

type Mode = "abort" | "flush" | "graceful"
interface EndRequest {
  readonly mode: Mode
  readonly end: ConnectionEnded
}

/** A marker in the send queue: the writer stops there until released (StartTLS and switches). */
class Hold {
  readonly reached = Deferred.makeUnsafe<void>()
  readonly release = Deferred.makeUnsafe<boolean>()
}

interface Phase {
  readonly pull: Effect.Effect<ReadonlyArray<Uint8Array | string>, Socket.SocketError>
  readonly writer: Socket.Writer
  readonly readerScope: Scope.Closeable
  readonly writerScope: Scope.Closeable
}

interface Batch {
  readonly bytes: Uint8Array
  readonly boxes: Array<Box.Box>
  readonly ends: Array<number>
  readonly error: Box.FramingError | undefined
}

/** What an inline transition did: go on with the rest of the batch, or stop (the bytes left are not AMP). */
type Step = "continue" | "stop"

let shared: Box.ValuePool | undefined
/** The pool connections share unless given one: at most 4 MiB idle for the whole process. */
const sharedValuePool = (): Box.ValuePool => (shared ??= Box.makeValuePool({ maxIdleBytes: 4 * 1024 * 1024 }))

const textEncoder = new TextEncoder()
const toBytes = (chunk: Uint8Array | string): Uint8Array => typeof chunk === "string" ? textEncoder.encode(chunk) : chunk

const socketErrorText = (error: Socket.SocketError): string => {
  const cause = (error.reason as { cause?: unknown }).cause
  return cause instanceof Error ? `${error.message}: ${cause.message}` : error.message
}

const isCleanClose = (error: Socket.SocketError): boolean =>
  error.reason._tag === "SocketCloseError" && (error.reason as { code?: number }).code === 1000


const pemList = (value: TlsOptions["ca"]): Array<string | Buffer> | undefined =>
  value === undefined
    ? undefined
    : (Array.isArray(value) ? value : [value]).map((v: string | Uint8Array) => typeof v === "string" ? v : Buffer.from(v))
const pem = (value: string | Uint8Array | undefined): string | Buffer | undefined =>
  value === undefined ? undefined : typeof value === "string" ? value : Buffer.from(value)

/**
 * Runs the TLS handshake over `raw` in the given role.
 * @internal
 */
export const handshake = (
  raw: Duplex,
  role: "client" | "server",
  options: TlsOptions,
  host: string | undefined
): Effect.Effect<Tls.TLSSocket, TlsError> =>
  Effect.callback<Tls.TLSSocket, TlsError>((resume) => {
    let tls: Tls.TLSSocket
    const verify = options.verify !== false
    try {
      const secureContext = Tls.createSecureContext({
        key: pem(options.key),
        cert: pem(options.cert),
        ca: pemList(options.ca),
        passphrase: options.passphrase,
        minVersion: options.minVersion ?? "TLSv1.2"
      })
      if (role === "server") {
        if (options.key === undefined || options.cert === undefined) {
          resume(Effect.fail(new TlsError({ reason: "the TLS server side needs a key and a certificate" })))
          return
        }
        const requireCert = options.requireClientCert === true
        tls = new Tls.TLSSocket(raw as Net.Socket, {
          isServer: true,
          secureContext,
          requestCert: requireCert || options.requestClientCert === true,
          rejectUnauthorized: requireCert && verify
        })
      } else {
        const servername = options.servername ?? host
        const isIp = servername !== undefined && /^[0-9.]+$|:/.test(servername)
        tls = Tls.connect({
          socket: raw as Net.Socket,
          secureContext,
          host: servername,
          ...(servername !== undefined && !isIp ? { servername } : {}),
          rejectUnauthorized: verify,
          ...(options.checkHostname === false ? { checkServerIdentity: () => undefined } : {})
        })
      }
    } catch (cause) {
      resume(Effect.fail(new TlsError({ reason: cause instanceof Error ? cause.message : String(cause) })))
      return
    }
    const event = role === "server" ? "secure" : "secureConnect"
    const timer = setTimeout(
      () => fail(new Error(`no handshake within ${options.handshakeTimeoutMillis ?? 10_000} ms`)),
      options.handshakeTimeoutMillis ?? 10_000
    )
    function cleanup() {
      clearTimeout(timer)
      tls.off(event, succeed)
      tls.off("error", fail)
      tls.off("close", onClose)
    }
    function succeed() {
      cleanup()
      if (role === "server") {
        // a standalone server-side TLSSocket does not set `authorized` (only tls.Server does): read the
        // verification result the same way Node's server does
        const requested = options.requireClientCert === true || options.requestClientCert === true
        const verifyError = requested
          ? (tls as unknown as { _handle?: { verifyError?: () => Error | null } })._handle?.verifyError?.()
          : undefined
        if (requested && (verifyError === undefined || verifyError === null)) {
          tls.authorized = true
        } else if (verifyError) {
          tls.authorizationError = verifyError as unknown as Error
          // like Twisted (verify=True with CA certificates): a certificate that does not verify is
          // refused even when a certificate is only requested, not required
          const presented = Object.keys(tls.getPeerCertificate(false) ?? {}).length > 0
          if (verify && (options.requireClientCert === true || presented)) {
            tls.destroy()
            resume(Effect.fail(new TlsError({ reason: `client certificate rejected: ${verifyError.message}` })))
            return
          }
        }
      }
      tls.on("error", () => {}) // later errors surface through the reader
      resume(Effect.succeed(tls))
    }
    function fail(cause: Error) {
      cleanup()
      tls.destroy()
      resume(Effect.fail(new TlsError({ reason: cause.message })))
    }
    function onClose() {
      fail(new Error("the peer closed the connection during the TLS handshake"))
    }
    tls.once(event, succeed)
    tls.once("error", fail)
    tls.once("close", onClose)
    return Effect.sync(() => {
      cleanup()
      tls.destroy()
    })
  })

/**
 * Runs AMP over a socket, in the current scope, with the `Responders` from the context. StartTLS and
 * protocol switches need the transport's Node stream (`transport.raw`); `Client` and `Server` pass it.
 *
 * @example
 * ```ts
 * import { Connection, MemorySocket, Responders } from "effect-amp"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const [a, b] = yield* MemorySocket.pair
 *   yield* Connection.make(b).pipe(Effect.provide(Handlers))
 *   const client = yield* Connection.make(a).pipe(Effect.provide(Responders.empty))
 *   return yield* client.dispatcher.callRemote(Sum, { a: 1n, b: 2n })
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(
  socket: Socket.Socket,
  options?: Options,
  transport?: TransportOptions
) {
  const scope = yield* Effect.scope
  const responders = yield* Responders
  const role = transport?.role ?? "client"
  let raw: Duplex | undefined = transport?.raw
  const endRequest = yield* Deferred.make<EndRequest>()
  const ended = yield* Deferred.make<ConnectionEnded>()
  let state: "open" | "closing" | "closed" = "open"
  let locked = false // a protocol switch is pending or done: AMP sends fail
  let tlsState: "none" | "starting" | "on" = options?.info?.tls === true ? "on" : "none"
  // true from the TLS handshake until the first byte over TLS: a close in between means the peer
  // rejected us (with TLS 1.3 a client learns that its certificate was refused only after the handshake)
  let justStartedTls = false
  // until the first complete box arrives, `firstBoxTimeoutMillis` applies instead of the idle timeout
  let awaitingFirstBox = options?.firstBoxTimeoutMillis !== undefined

  let infoSnapshot: Snapshot = { transport: "unknown", ...options?.info, tls: tlsState === "on" }
  const info: ConnectionInfo["Service"] = { get: Effect.sync(() => infoSnapshot) }

  // Parent of every phase's scopes, forked now: a scope closes its finalizers in reverse order, so a
  // phase forked from `scope` after StartTLS would be released *before* the shutdown finalizer below,
  // which then waits forever writing its close event to the released writer.
  const phasesScope = yield* Scope.fork(scope)
  const acquirePhase = (s: Socket.Socket) =>
    Effect.gen(function*() {
      // the reader opens the socket (the writer waits for it); each in its own scope so that the reader
      // can be released first (releasing the writer first would half-close the socket)
      const readerScope = yield* Scope.fork(phasesScope)
      const writerScope = yield* Scope.fork(phasesScope)
      const reader = yield* Scope.provide(s.reader, readerScope)
      const writer = yield* Scope.provide(s.writer, writerScope)
      return { pull: reader.pull, writer, readerScope, writerScope } satisfies Phase
    })
  const releasePhase = (p: Phase) =>
    Effect.andThen(Scope.close(p.readerScope, Exit.void), Scope.close(p.writerScope, Exit.void))

  let phase: Phase = yield* acquirePhase(socket)
  // false between releasing a phase and acquiring the next (a transition, or after a failed handshake):
  // the released phase's writer must not be used then (it would wait forever for a socket)
  let phaseLive = true
  const valuePool = options?.valuePool ?? sharedValuePool()
  let decoder = Box.makeDecoder({ pool: valuePool, pieces: true })

  const queue = yield* Queue.bounded<Box.Box | Hold, import("effect").Cause.Done>(options?.maxQueuedBoxes ?? 1024)

  // completed by any abort request, even one made while a graceful close is already under way: the
  // graceful waits (running handlers, the flush) then stop at once ("abort: stop now")
  const abortRequested = Deferred.makeUnsafe<void>()
  const requestEnd = (mode: Mode, end: ConnectionEnded): Effect.Effect<void> =>
    Effect.sync(() => {
      Deferred.doneUnsafe(endRequest, Exit.succeed({ mode, end }))
      if (mode === "abort") Deferred.doneUnsafe(abortRequested, Exit.void)
    })

  // set by startTLS / switchProtocol just before their box is queued
  let holdAfterNext: Hold | undefined
  let lockAfterNext = false

  const outbox: Dispatcher.Outbox = {
    send: (box) =>
      Effect.suspend((): Effect.Effect<void, Box.TooLong | Box.InvalidKey | ConnectionLost | ProtocolSwitched> => {
        if (state === "closed") return Effect.fail(new ConnectionLost({ reason: "connection closed" }))
        if (locked) {
          return Effect.fail(new ProtocolSwitched({ reason: "This connection has switched: no AMP traffic allowed." }))
        }
        const size = Box.encodedLength(box)
        if (typeof size !== "number") return Effect.fail(size)
        const hold = holdAfterNext
        if (hold !== undefined) {
          holdAfterNext = undefined
          if (lockAfterNext) {
            lockAfterNext = false
            locked = true
          }
          return Effect.asVoid(Queue.offerAll(queue, [box, hold]))
        }
        return Effect.asVoid(Queue.offer(queue, box))
      }),
    close: (reason, graceful) => requestEnd(graceful ? "flush" : "abort", new ConnectionEnded({ reason, local: true }))
  }

  const dispatcherScope = yield* Scope.fork(scope)
  const handle = yield* Scope.provide(Dispatcher.make(outbox, info, { ...options, valuePool }), dispatcherScope)

  // --- writer: batch everything queued, one socket write per batch --------------------------------
  // large values are not copied into the batch: they go to the socket as they are (a gather write)
  const writeBoxes = (boxes: ReadonlyArray<Box.Box>) => {
    const chunks = Box.encodeChunksUnsafe(boxes)
    return chunks.length === 1
      ? phase.writer.write(chunks[0]!)
      : phase.writer.writeAll(chunks as unknown as readonly [Uint8Array, ...Array<Uint8Array>])
  }
  const writeLoop = Effect.gen(function*() {
    while (true) {
      const items = yield* Queue.takeAll(queue)
      let start = 0
      for (let i = 0; i < items.length; i++) {
        const item = items[i]!
        if (item instanceof Hold) {
          if (i > start) yield* writeBoxes(items.slice(start, i) as Array<Box.Box>)
          Deferred.doneUnsafe(item.reached, Exit.void)
          const go = yield* Deferred.await(item.release)
          if (!go) return
          start = i + 1
        }
      }
      if (start < items.length) {
        yield* writeBoxes((start === 0 ? items : items.slice(start)) as Array<Box.Box>)
      }
    }
  }).pipe(
    Effect.catchCause((cause) => {
      // Done: the queue was ended and drained (a close); anything else is a write failure
      if (cause.reasons.every((r) => r._tag === "Fail" && (r.error as { _tag?: string })?._tag === "Done")) {
        return Effect.void
      }
      return requestEnd("abort", new ConnectionEnded({ reason: "write failed", local: false, cause: String(cause) }))
    })
  )

  // --- transitions --------------------------------------------------------------------------------
  /** Initiator-side actions keyed by the tag of the request whose answer triggers them. */
  const transitions = new Map<string, (answer: Box.Box, leftover: () => Uint8Array) => Effect.Effect<Step, ProtocolError>>()

  const handlerContext = Context.merge(
    responders.context,
    Context.make(Dispatcher.Dispatcher, handle.service).pipe(Context.add(ConnectionInfo, info))
  )

  /** Releases the AMP phase after everything before `hold` has been written; returns the raw stream. */
  const leavePhase = (hold: Hold, leftover: Uint8Array) =>
    Effect.gen(function*() {
      yield* Deferred.await(hold.reached)
      yield* releasePhase(phase)
      phaseLive = false
      if (leftover.length > 0) raw!.unshift(Buffer.from(leftover.buffer, leftover.byteOffset, leftover.length))
      return raw!
    })

  const enterTls = (hold: Hold, leftover: Uint8Array, tlsOptions: TlsOptions, onError?: (error: TlsError) => void) =>
    Effect.gen(function*() {
      const plain = yield* leavePhase(hold, leftover)
      const tls = yield* handshake(plain, role, tlsOptions, transport?.host).pipe(
        Effect.tapError((error) =>
          Effect.andThen(
            Effect.andThen(Effect.sync(() => onError?.(error)), Deferred.succeed(hold.release, false)),
            requestEnd("abort", new ConnectionEnded({ reason: error.message, local: false, cause: error }))
          )
        )
      )
      raw = tls
      tlsState = "on"
      justStartedTls = true
      const cert = tls.getPeerCertificate(false)
      infoSnapshot = {
        ...infoSnapshot,
        tls: true,
        authorized: tls.authorized,
        peerCertificate: cert !== null && typeof cert === "object" && Object.keys(cert).length > 0
          ? { subject: cert.subject, raw: cert.raw, fingerprint256: cert.fingerprint256 }
          : undefined
      }
      phase = yield* acquirePhase(yield* wrapDuplex(tls)).pipe(
        Effect.mapError((error) => new TlsError({ reason: `after the handshake: ${error.message}` }))
      )
      phaseLive = true
      decoder = Box.makeDecoder({ pool: valuePool, pieces: true })
      awaitingFirstBox = options?.firstBoxTimeoutMillis !== undefined
      yield* Deferred.succeed(hold.release, true)
    })

  const switchedSocket = (hold: Hold, leftover: Uint8Array) =>
    Effect.gen(function*() {
      const stream = yield* leavePhase(hold, leftover)
      locked = true
      yield* handle.markSwitched
      yield* Deferred.succeed(hold.release, false)
      // the connection ends when the switched stream closes
      stream.once("close", () => {
        Deferred.doneUnsafe(
          endRequest,
          Exit.succeed({ mode: "abort", end: new ConnectionEnded({ reason: "switched protocol closed", local: false }) })
        )
      })
      return { socket: yield* wrapDuplex(stream), info: infoSnapshot } satisfies SwitchedSocket
    })

  /** Responder side of StartTLS, run inline in the read loop. */
  const respondStartTls = (box: Box.Box, leftover: () => Uint8Array): Effect.Effect<Step> =>
    Effect.gen(function*() {
      const ask = box.get(Command.ASK)
      const tlsOptions = options?.tls ?? {}
      const refuse = (description: string) =>
        Effect.as(
          handle.finish(ask, StartTLS.name, { _tag: "Error", code: TLS_UNAVAILABLE, description, fatal: false }),
          "continue" as const
        )
      if (raw === undefined) return yield* refuse("TLS not available on this transport")
      if (role === "server" && (tlsOptions.key === undefined || tlsOptions.cert === undefined)) {
        return yield* refuse("TLS not available")
      }
      if (tlsState !== "none") return yield* refuse("TLS is already on: only one StartTLS per connection")
      tlsState = "starting"
      const hold = new Hold()
      const answer = new Map<string, Uint8Array>()
      if (ask !== undefined) answer.set(Command.ANSWER, ask)
      yield* Queue.offerAll(queue, ask !== undefined ? [answer, hold] : [hold])
      const exit = yield* Effect.exit(enterTls(hold, leftover(), tlsOptions))
      return Exit.isSuccess(exit) ? "continue" as const : "stop" as const
    })

  /** Responder side of a protocol switch, run inline in the read loop. */
  const respondSwitch = (
    handler: SwitchHandler<any, any>,
    box: Box.Box,
    leftover: () => Uint8Array
  ): Effect.Effect<Step> =>
    Effect.gen(function*() {
      const ask = box.get(Command.ASK)
      const command: Command.Any = handler.command
      let args: Record<string, unknown>
      try {
        args = command.compiled.arguments.decode(box)
      } catch (e) {
        yield* handle.finish(ask, command.name, { _tag: "Unknown", reason: `bad arguments: ${String((e as { reason?: string }).reason ?? e)}` })
        return "continue" as const
      }
      const exit = yield* Effect.exit(
        Effect.provideContext(handler.handle(args) as Effect.Effect<any, unknown, never>, handlerContext)
      )
      if (Exit.isFailure(exit)) {
        yield* handle.finish(ask, command.name, Dispatcher.failureOutcome(command, exit.cause))
        return "continue" as const
      }
      if (raw === undefined) {
        yield* handle.finish(ask, command.name, { _tag: "Unknown", reason: "this transport cannot switch protocols" })
        return "continue" as const
      }
      const inner = exit.value as (io: SwitchedSocket) => Effect.Effect<void, unknown, never>
      const hold = new Hold()
      const answer = new Map<string, Uint8Array>()
      if (ask !== undefined) answer.set(Command.ANSWER, ask)
      yield* Queue.offerAll(queue, ask !== undefined ? [answer, hold] : [hold])
      const io = yield* switchedSocket(hold, leftover())
      yield* Effect.forkIn(
        Effect.provideContext(inner(io), handlerContext).pipe(
          Effect.exit,
          Effect.flatMap((innerExit) =>
            requestEnd(
              "abort",
              new ConnectionEnded({
                reason: Exit.isSuccess(innerExit) ? "switched protocol finished" : "switched protocol failed",
                local: true,
                cause: Exit.isFailure(innerExit) ? String(innerExit.cause) : undefined
              })
            )
          )
        ),
        scope
      )
      return "stop" as const
    })

  // --- reader: socket chunks → boxes (Stream) → dispatcher ---------------------------------------
  // Chunks are handed to the box stream one at a time so that, at a transition, every byte already
  // read but not yet parsed can be given to the next phase.
  let pulled: Array<Uint8Array> = []
  const pullWithTimeout = (): Effect.Effect<ReadonlyArray<Uint8Array | string>, Socket.SocketError | Timeout> => {
    const millis = awaitingFirstBox ? options?.firstBoxTimeoutMillis : options?.idleTimeoutMillis
    if (millis === undefined) return phase.pull
    const what = awaitingFirstBox ? "no complete box" : "nothing received"
    return Effect.timeoutOrElse(phase.pull, {
      duration: millis,
      orElse: () => Effect.fail(new Timeout({ reason: `${what} within ${millis} ms` }))
    })
  }
  const nextChunk: Effect.Effect<readonly [Uint8Array], Socket.SocketError | Timeout> = Effect.suspend(() => {
    if (pulled.length > 0) return Effect.succeed([pulled.shift()!] as const)
    return Effect.map(pullWithTimeout(), (chunks) => {
      justStartedTls = false
      for (let i = 1; i < chunks.length; i++) pulled.push(toBytes(chunks[i]!))
      return [toBytes(chunks[0]!)] as const
    })
  })

  const processBatch = (batch: Batch): Effect.Effect<Step, ProtocolError | Box.FramingError> => {
    const { boxes, ends, bytes, error } = batch
    const n = boxes.length
    let i = 0
    const leftoverAt = (index: number) => () => {
      const rest = concatBytes([bytes.subarray(ends[index]!), ...pulled])
      pulled = []
      return rest
    }
    const next: Effect.Effect<Step, ProtocolError | Box.FramingError> = Effect.suspend(() => {
      if (i >= n) return error ? Effect.fail(error) : Effect.succeed("continue" as const)
      const index = i++
      const box = boxes[index]!
      if (transitions.size > 0) {
        const key = box.has(Command.ANSWER) ? Command.ANSWER : box.has(Command.ERROR) ? Command.ERROR : undefined
        const tagBytes = key === undefined ? undefined : box.get(key)!
        const transition = tagBytes === undefined ? undefined : transitions.get(latin1(tagBytes, 0, tagBytes.length))
        if (transition !== undefined) {
          transitions.delete(latin1(tagBytes!, 0, tagBytes!.length))
          return Effect.flatMap(transition(box, leftoverAt(index)), (step) => step === "stop" ? Effect.succeed(step) : next)
        }
      }
      const name = box.get(Command.COMMAND)
      if (name !== undefined && !box.has(Command.ANSWER) && !box.has(Command.ERROR)) {
        const commandName = latin1(name, 0, name.length)
        const handler = responders.handlers.get(commandName)
        if (handler?._tag === "SwitchHandler") {
          return Effect.flatMap(respondSwitch(handler, box, leftoverAt(index)), (step) => step === "stop" ? Effect.succeed(step) : next)
        }
        if (handler === undefined && commandName === StartTLS.name) {
          return Effect.flatMap(respondStartTls(box, leftoverAt(index)), (step) => step === "stop" ? Effect.succeed(step) : next)
        }
      }
      return Effect.flatMap(handle.receive(box), () => next)
    })
    return next
  }

  const readLoop = Stream.fromPull(Effect.succeed(nextChunk)).pipe(
    Stream.map((bytes): Batch => {
      const boxes: Array<Box.Box> = []
      const ends: Array<number> = []
      const error = decoder.feed(bytes, boxes, ends)
      if (boxes.length > 0) awaitingFirstBox = false
      return { bytes, boxes, ends, error }
    }),
    Stream.mapEffect(processBatch),
    Stream.takeUntil((step) => step === "stop"),
    Stream.runDrain,
    Effect.matchCauseEffect({
      onSuccess: () =>
        // stopped by a switch: the connection now belongs to the next protocol; otherwise the peer closed
        locked ? Effect.void : requestEnd("flush", new ConnectionEnded({ reason: "closed by peer", local: false })),
      onFailure: (cause) => {
        const failure = cause.reasons.find((r) => r._tag === "Fail")
        if (failure === undefined) return Effect.void // interrupted: someone else is ending us
        const error = failure.error as ProtocolError | Box.FramingError | Socket.SocketError | Timeout
        switch (error._tag) {
          case "Timeout":
            return requestEnd("abort", new ConnectionEnded({ reason: error.message, local: true, cause: error }))
          case "ProtocolError":
            // Twisted: an exception out of dataReceived aborts without flushing
            return requestEnd("abort", new ConnectionEnded({ reason: error.message, local: true, cause: error }))
          case "FramingError":
            // Twisted: lengthLimitExceeded → loseConnection (flushes), calls fail with TooLong
            return requestEnd("flush", new ConnectionEnded({ reason: error.message, local: true, cause: error }))
          default:
            if (justStartedTls) {
              const tlsError = new TlsError({
                reason: `the peer closed the connection right after the handshake (it rejected our certificate?): ${socketErrorText(error)}`
              })
              return requestEnd("abort", new ConnectionEnded({ reason: tlsError.message, local: false, cause: tlsError }))
            }
            return requestEnd(
              "flush",
              new ConnectionEnded({
                reason: isCleanClose(error) ? "closed by peer" : `socket error: ${socketErrorText(error)}`,
                local: false,
                cause: error
              })
            )
        }
      }
    })
  )

  const writerFiber = yield* Effect.forkIn(writeLoop, scope)
  const readerFiber = yield* Effect.forkIn(readLoop, scope)

  const closeTimeout = options?.closeTimeoutMillis ?? 10_000

  // --- lifecycle ---------------------------------------------------------------------------------
  const shutdown = Effect.gen(function*() {
    const request = yield* Deferred.await(endRequest)
    const end = request.end
    let mode = request.mode
    const unlessAborted = <A, E>(wait: Effect.Effect<A, E>) =>
      Effect.raceFirst(Effect.asVoid(Effect.ignore(wait)), Deferred.await(abortRequested))
    state = "closing"
    yield* Fiber.interrupt(readerFiber)
    yield* handle.failAll(end.reason)
    if (mode === "graceful") {
      yield* unlessAborted(
        handle.awaitHandlers.pipe(Effect.timeoutOrElse({ duration: closeTimeout, orElse: () => Effect.void }))
      )
    }
    yield* Scope.close(dispatcherScope, Exit.void) // interrupts remaining handlers
    if (mode !== "abort" && !locked && !Deferred.isDoneUnsafe(abortRequested)) {
      yield* Queue.end(queue)
      yield* unlessAborted(
        Fiber.join(writerFiber).pipe(Effect.timeoutOrElse({ duration: closeTimeout, orElse: () => Effect.void }))
      )
    }
    if (Deferred.isDoneUnsafe(abortRequested)) mode = "abort"
    state = "closed"
    yield* Fiber.interrupt(writerFiber)
    if (mode === "abort" && !locked && phaseLive) yield* Effect.ignore(phase.writer.write(new Socket.CloseEvent(1006)))
    // Without the Node stream (a socket given to `make`, e.g. MemorySocket), ending the writer is the only
    // way to tell the peer: release it before the reader (the reader's release detaches the socket and
    // the writer's would then do nothing, leaving the peer waiting forever).
    if (mode !== "abort" && !locked && raw === undefined) yield* Scope.close(phase.writerScope, Exit.void)
    yield* releasePhase(phase)
    if (raw !== undefined) {
      const stream = raw
      yield* mode === "abort" ? destroy(stream) : Effect.sync(() => stream.end())
    }
    yield* Deferred.succeed(ended, end)
  })
  yield* Effect.forkIn(shutdown, scope)
  yield* Scope.addFinalizer(
    scope,
    Effect.suspend(() =>
      state === "closed"
        ? Effect.void
        : Effect.andThen(
          requestEnd("abort", new ConnectionEnded({ reason: "connection scope closed", local: true })),
          Deferred.await(ended)
        )
    )
  )

  // --- initiator transitions ----------------------------------------------------------------------
  const startTLS = (tlsOptions?: TlsOptions): Effect.Effect<void, OnlyOneTLS | TlsError | Dispatcher.CallError> =>
    Effect.gen(function*() {
      if (tlsState !== "none") return yield* new OnlyOneTLS()
      if (raw === undefined) return yield* new TlsError({ reason: "this transport cannot start TLS" })
      const merged: TlsOptions = { ...options?.tls, ...tlsOptions }
      tlsState = "starting"
      const hold = new Hold()
      let tlsFailure: TlsError | undefined
      let answered = false
      const answer = yield* handle.request(new Map([[Command.COMMAND, latin1Bytes(StartTLS.name)]]), (tag) => {
        holdAfterNext = hold
        transitions.set(tag, (answer, leftover) => {
          answered = true
          if (answer.has(Command.ERROR)) {
            tlsState = "none"
            return Effect.andThen(Effect.andThen(Deferred.succeed(hold.release, true), handle.receive(answer)), Effect.succeed("continue" as const))
          }
          return enterTls(hold, leftover(), merged, (error) => {
            tlsFailure = error
          }).pipe(
            Effect.matchEffect({
              onFailure: () => Effect.succeed("stop" as const),
              onSuccess: () => Effect.as(handle.receive(answer), "continue" as const)
            })
          )
        })
      }).pipe(
        Effect.catch((error) => Effect.fail(tlsFailure ?? error)),
        // Interrupted before the answer: the peer may still answer and start TLS, and our later boxes
        // are held behind the StartTLS; the connection's state cannot be known, so it is closed.
        Effect.onInterrupt(() =>
          answered ? Effect.void : requestEnd(
            "abort",
            new ConnectionEnded({ reason: "StartTLS was interrupted before its answer", local: true })
          )
        )
      )
      if (answer.has(Command.ERROR)) {
        return yield* Effect.fail(Command.errorFromWire(StartTLS, errorCodeOf(answer), errorDescriptionOf(answer)))
      }
    })

  const switchProtocol = <C extends Command.Any>(
    command: C,
    args: Command.Arguments<C>
  ): Effect.Effect<SwitchedSocket, Command.Error<C> | Dispatcher.CallError> =>
    Effect.gen(function*() {
      if (locked) return yield* new ProtocolSwitched({ reason: "This connection has switched: no AMP traffic allowed." })
      if (raw === undefined) {
        return yield* new ArgumentError({ command: command.name, side: "arguments", key: "", reason: "this transport cannot switch protocols" })
      }
      const box = yield* Effect.try({
        try: () => Command.encodeArgumentsUnsafe(command, args as Record<string, unknown>),
        catch: (e) => e as ArgumentError
      })
      const hold = new Hold()
      const switched = Deferred.makeUnsafe<SwitchedSocket>()
      let answered = false
      const answer = yield* handle.request(box, (tag) => {
        holdAfterNext = hold
        lockAfterNext = true
        transitions.set(tag, (answer, leftover) => {
          answered = true
          if (answer.has(Command.ERROR)) {
            locked = false // Twisted unlocks on an error answer
            return Effect.andThen(Effect.andThen(Deferred.succeed(hold.release, true), handle.receive(answer)), Effect.succeed("continue" as const))
          }
          return Effect.gen(function*() {
            yield* handle.receive(answer)
            yield* Deferred.succeed(switched, yield* switchedSocket(hold, leftover()))
            return "stop" as const
          })
        })
      }).pipe(
        // Interrupted before the answer: the peer may still switch, and AMP is locked; close.
        Effect.onInterrupt(() =>
          answered ? Effect.void : requestEnd(
            "abort",
            new ConnectionEnded({ reason: `${command.name} was interrupted before its answer`, local: true })
          )
        )
      )
      if (answer.has(Command.ERROR)) {
        return yield* Effect.fail(Command.errorFromWire(command, errorCodeOf(answer), errorDescriptionOf(answer)))
      }
      // the answer is delivered just before the socket is handed over: wait for it
      return yield* Deferred.await(switched).pipe(
        Effect.raceFirst(
          Effect.flatMap(Deferred.await(ended), (end) => Effect.fail(new ConnectionLost({ reason: end.reason })))
        )
      )
    })

  const connection: Connection = {
    dispatcher: handle.service,
    info,
    ended: Deferred.await(ended),
    close: (closeOptions) =>
      Effect.andThen(
        requestEnd(
          closeOptions?.graceful === true ? "graceful" : "abort",
          new ConnectionEnded({ reason: "closed locally", local: true })
        ),
        Effect.asVoid(Deferred.await(ended))
      ),
    startTLS,
    switchProtocol
  }
  return connection
})

const latin1Bytes = (s: string): Uint8Array => {
  const out = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i)
  return out
}
const errorCodeOf = (box: Box.Box): string => {
  const b = box.get(Command.ERROR_CODE)
  return b === undefined ? "" : latin1(b, 0, b.length)
}
const errorDescriptionOf = (box: Box.Box): string => {
  const b = box.get(Command.ERROR_DESCRIPTION)
  return b === undefined ? "" : Command.decodeDescription(b)
}
