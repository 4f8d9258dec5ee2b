/**
 * AMP's StartTLS: a plain connection becomes a TLS connection in place. The initiator sends the
 * `StartTLS` command and holds every later outgoing box until TLS is up, then flushes them through TLS;
 * the responder writes the plain answer and starts TLS before reading again — the same order on the wire
 * as Twisted. The plain phase of the socket is released and the TLS phase acquired in the connection's
 * scope.
 *
 * **TLS role follows the TCP role**, whoever sends StartTLS: the side that accepted the TCP connection
 * is the TLS server (this is what Twisted does, and what Node needs). Twisted cannot complete a StartTLS
 * initiated by its TCP-server side, so with Twisted peers let the TCP client initiate.
 *
 * **Verification is on by default**: the peer's certificate chain must verify against `ca` (or Node's
 * default roots when `ca` is not given). The client also checks the server's name (`servername`,
 * default the host it connected to). Twisted checks no hostname: to match it, pass
 * `checkHostname: false`. A server asks for a client certificate with `requestClientCert`, and rejects
 * clients without a valid one with `requireClientCert`.
 *
 * A failed handshake ends the connection with `AmpTlsError` (it never falls back to plaintext) and fails
 * every outstanding call. A second StartTLS on the same connection fails with `OnlyOneTLS`.
 *
 * @since 0.1.0
 */
import { Deferred, Duration, Effect, Exit, Schema } from "effect"
import type * as Net from "node:net"
import type { Duplex } from "node:stream"
import * as Tls from "node:tls"
import { ConnectionEnded } from "./AmpError.ts"
import type { Box } from "./Box.ts"
import * as Command from "./Command.ts"
import type { CallError } from "./Dispatcher.ts"
import { type Core, emptyAnswer, errorCodeOf, errorDescriptionOf, refused, type Step } from "./internal/core.ts"
import { Hold, type Transition } from "./internal/dispatcher.ts"
import { wrapDuplex } from "./internal/node.ts"

/**
 * PEM text or bytes.
 *
 * @since 0.1.0
 * @category models
 */
export type Pem = string | Uint8Array

/**
 * TLS material and policy. None of it goes on the wire.
 *
 * @since 0.1.0
 * @category models
 */
export interface TlsOptions {
  /** Our private key (PEM). Required on the TLS server side. */
  readonly key?: Pem | undefined
  /** Our certificate chain (PEM). Required on the TLS server side; a client presents it if given. */
  readonly cert?: Pem | undefined
  /** Passphrase of an encrypted `key`. */
  readonly passphrase?: string | undefined
  /** Authorities the peer's certificate must chain to (PEM, one or several). Default: Node's roots. */
  readonly ca?: Pem | ReadonlyArray<Pem> | undefined
  /** Verify the peer's certificate chain (default true). `false` accepts any certificate: insecure. */
  readonly verify?: boolean | undefined
  /** Client: check the server certificate's name against `servername` (default true; Twisted: false). */
  readonly checkHostname?: boolean | undefined
  /** Client: the name sent by SNI and checked (default: the host connected to). */
  readonly servername?: string | undefined
  /** Server: ask the client for a certificate (verified against `ca` when presented). */
  readonly requestClientCert?: boolean | undefined
  /** Server: reject clients without a valid certificate (implies `requestClientCert`). */
  readonly requireClientCert?: boolean | undefined
  /** Minimum protocol version (default `TLSv1.2`). */
  readonly minVersion?: "TLSv1.2" | "TLSv1.3" | undefined
  /** How long the handshake may take (default 10 seconds). */
  readonly handshakeTimeout?: Duration.Input | undefined
}

/**
 * The `StartTLS` command as it is on the wire: no arguments, empty answer (Twisted's `amp.StartTLS`;
 * its `tls_localCertificate` / `tls_verifyAuthorities` are local-only and never sent).
 *
 * @since 0.1.0
 * @category commands
 */
export const StartTLS = Command.make("StartTLS")

/**
 * A second StartTLS on a connection that already did one (Twisted's `OnlyOneTLS`). Nothing is sent.
 *
 * @since 0.1.0
 * @category errors
 */
export class OnlyOneTLS extends Schema.TaggedError<OnlyOneTLS>()("OnlyOneTLS", {}) {
  override get message(): string {
    return "this connection has already started TLS; only one StartTLS is allowed"
  }
}

/**
 * The TLS handshake failed (certificate rejected by either side, peer closed mid-handshake, timeout,
 * garbage instead of TLS). The connection is closed; it never continues in plaintext.
 *
 * @since 0.1.0
 * @category errors
 */
export class AmpTlsError extends Schema.TaggedError<AmpTlsError>()("AmpTlsError", {
  reason: Schema.String
}) {
  override get message(): string {
    return `TLS handshake failed: ${this.reason}`
  }
}

/**
 * What we answer a StartTLS we cannot honour (no key and certificate on the TLS server side, or a
 * transport without a Node stream): the code Twisted sends when it has no TLS, with its description.
 *
 * @since 0.2.0
 * @category constants
 */
export const TLS_ERROR = "TLS_ERROR"

// --- mechanics (used by Connection) ------------------------------------------------------------------

const pemList = (value: TlsOptions["ca"]): Array<string | Buffer> | undefined =>
  value === undefined
    ? undefined
    : (Array.isArray(value) ? value : [value]).map((v: string | Uint8Array) => typeof v === "string" ? v : Buffer.from(v))
const pem = (value: string | Uint8Array | undefined): string | Buffer | undefined =>
  value === undefined ? undefined : typeof value === "string" ? value : Buffer.from(value)

const makeTlsSocket = (raw: Duplex, role: "client" | "server", options: TlsOptions, host: string | undefined): Tls.TLSSocket => {
  const secureContext = Tls.createSecureContext({
    key: pem(options.key),
    cert: pem(options.cert),
    ca: pemList(options.ca),
    passphrase: options.passphrase,
    minVersion: options.minVersion ?? "TLSv1.2"
  })
  const verify = options.verify !== false
  if (role === "server") {
    const requireCert = options.requireClientCert === true
    return new Tls.TLSSocket(raw as Net.Socket, {
      isServer: true,
      secureContext,
      requestCert: requireCert || options.requestClientCert === true,
      rejectUnauthorized: requireCert && verify
    })
  }
  const servername = options.servername ?? host
  const isIp = servername !== undefined && /^[0-9.]+$|:/.test(servername)
  return Tls.connect({
    socket: raw as Net.Socket,
    secureContext,
    host: servername,
    ...(servername !== undefined && !isIp ? { servername } : {}),
    rejectUnauthorized: verify,
    ...(options.checkHostname === false ? { checkServerIdentity: () => undefined } : {})
  })
}

/**
 * A server-side TLSSocket made without a tls.Server does not set `authorized`: read the verification
 * result as Node's server does. Returns the reason to refuse the client, if any.
 */
const checkClient = (tls: Tls.TLSSocket, options: TlsOptions): string | undefined => {
  const requested = options.requireClientCert === true || options.requestClientCert === true
  if (!requested) return undefined
  const verifyError = (tls as unknown as { _handle?: { verifyError?: () => Error | null } })._handle?.verifyError?.()
  if (verifyError === undefined || verifyError === null) {
    tls.authorized = true
    return undefined
  }
  tls.authorizationError = verifyError
  // like Twisted (verify=True with CA certificates): a certificate that does not verify is refused even
  // when a certificate is only requested, not required
  const presented = Object.keys(tls.getPeerCertificate(false) ?? {}).length > 0
  return options.verify !== false && (options.requireClientCert === true || presented)
    ? `client certificate rejected: ${verifyError.message}`
    : undefined
}

/**
 * Runs the TLS handshake over `raw` in the given role.
 * @internal
 */
export const handshake = (
  raw: Duplex,
  role: "client" | "server",
  options: TlsOptions,
  host: string | undefined
): Effect.Effect<Tls.TLSSocket, AmpTlsError> =>
  Effect.callback<Tls.TLSSocket, AmpTlsError>((resume) => {
    if (role === "server" && (options.key === undefined || options.cert === undefined)) {
      resume(Effect.fail(new AmpTlsError({ reason: "the TLS server side needs a key and a certificate" })))
      return
    }
    let tls: Tls.TLSSocket
    try {
      tls = makeTlsSocket(raw, role, options, host)
    } catch (cause) {
      resume(Effect.fail(new AmpTlsError({ reason: cause instanceof Error ? cause.message : String(cause) })))
      return
    }
    const event = role === "server" ? "secure" : "secureConnect"
    const limit = Duration.fromInputUnsafe(options.handshakeTimeout ?? "10 seconds")
    const timer = setTimeout(() => fail(new Error(`no handshake within ${Duration.format(limit)}`)), Duration.toMillis(limit))
    function cleanup() {
      clearTimeout(timer)
      tls.off(event, succeed)
      tls.off("error", fail)
      tls.off("close", onClose)
    }
    function succeed() {
      cleanup()
      const refused = role === "server" ? checkClient(tls, options) : undefined
      if (refused !== undefined) {
        tls.destroy()
        resume(Effect.fail(new AmpTlsError({ reason: refused })))
        return
      }
      tls.on("error", () => {}) // later errors surface through the reader
      resume(Effect.succeed(tls))
    }
    function fail(cause: Error) {
      cleanup()
      tls.destroy()
      resume(Effect.fail(new AmpTlsError({ reason: cause.message })))
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

/** Our StartTLS request in flight: its hold, the options, and the handshake's failure if any. */
interface TlsTransition extends Transition {
  readonly _tag: "StartTls"
  readonly options: TlsOptions
  failure: AmpTlsError | undefined
}

/**
 * Leaves the plain phase after `hold`, runs the handshake and enters the TLS phase. On failure the
 * connection is ended with the AmpTlsError (never a fallback to plaintext).
 */
const enter = (core: Core, hold: Hold, leftover: Uint8Array, options: TlsOptions, onError?: (error: AmpTlsError) => void) =>
  Effect.gen(function*() {
    const plain = yield* core.leavePhase(hold, leftover)
    const tls = yield* handshake(plain, core.role, options, core.host).pipe(
      Effect.tapError((error) =>
        Effect.andThen(
          // before the end request: the caller must see this error, not the AmpConnectionLost that follows
          Effect.andThen(Effect.sync(() => onError?.(error)), Deferred.succeed(hold.release, false)),
          Effect.andThen(
            Effect.logWarning(`AMP: ${error.message}; closing the connection`),
            core.requestEnd("abort", new ConnectionEnded({ reason: error.message, local: false, cause: error }))
          )
        )
      )
    )
    core.raw = tls
    core.state.to({ _tag: "Tls", confirmed: false })
    const cert = tls.getPeerCertificate(false)
    core.info = {
      ...core.info,
      tls: true,
      authorized: tls.authorized,
      peerCertificate: cert !== null && typeof cert === "object" && Object.keys(cert).length > 0
        ? { subject: cert.subject, raw: cert.raw, fingerprint256: cert.fingerprint256 }
        : undefined
    }
    yield* core.enterPhase(yield* wrapDuplex(tls)).pipe(
      Effect.mapError((error) => new AmpTlsError({ reason: `after the handshake: ${error.message}` }))
    )
    core.resetDecoder()
    yield* Deferred.succeed(hold.release, true)
  })

/**
 * The responder side, run by the reader when the peer asks for TLS: answer in plaintext, then the
 * handshake, before reading on. Refused (non-fatal `TLS_ERROR`, as Twisted) without TLS material.
 * @internal
 */
export const respond = (
  core: Core,
  tls: TlsOptions | undefined,
  ask: Uint8Array | undefined,
  leftover: () => Uint8Array
): Effect.Effect<Step> =>
  Effect.gen(function*() {
    const options = tls ?? {}
    const refuse = (description: string) =>
      Effect.as(
        core.engine.finish(ask, StartTLS.name, { _tag: "Error", code: TLS_ERROR, description, fatal: false }),
        "continue" as const
      )
    if (core.raw === undefined) return yield* refuse(core.noTlsReason ?? "TLS not available on this transport")
    if (core.role === "server" && (options.key === undefined || options.cert === undefined)) {
      return yield* refuse("TLS not available")
    }
    if (core.state.current._tag !== "Plain") return yield* refuse("TLS is already on: only one StartTLS per connection")
    core.state.to({ _tag: "TlsPending" })
    const hold = new Hold("tls")
    yield* ask !== undefined ? core.writer.offer(emptyAnswer(ask), hold) : core.writer.offerHold(hold)
    const exit = yield* Effect.exit(enter(core, hold, leftover(), options))
    return Exit.isSuccess(exit) ? "continue" as const : "stop" as const
  })

/**
 * The initiator side, run by the reader when the answer to our StartTLS arrives: on success the
 * handshake (the held boxes then go out over TLS); on an error answer back to plain AMP.
 * @internal
 */
export const answered = (
  core: Core,
  transition: Transition,
  answer: Box,
  deliver: Effect.Effect<void>,
  leftover: () => Uint8Array
): Effect.Effect<Step> => {
  const t = transition as TlsTransition
  if (answer.has(Command.ERROR)) {
    core.state.to({ _tag: "Plain" })
    return refused(t.hold, deliver)
  }
  return enter(core, t.hold, leftover(), t.options, (error) => {
    t.failure = error
  }).pipe(
    Effect.matchEffect({
      onFailure: () => Effect.as(deliver, "stop" as const),
      onSuccess: () => Effect.as(deliver, "continue" as const)
    })
  )
}

/**
 * Sends StartTLS and waits until TLS is up (or fails). Boxes sent meanwhile are held and go out over TLS.
 * `options`: the connection's TLS options with the call's merged over them.
 * @internal
 */
export const initiate = (core: Core, options: TlsOptions): Effect.Effect<void, OnlyOneTLS | AmpTlsError | CallError> =>
  Effect.suspend((): Effect.Effect<void, OnlyOneTLS | AmpTlsError | CallError> => {
    const state = core.state.current._tag
    if (state === "TlsPending" || state === "Tls") return Effect.fail(new OnlyOneTLS())
    if (core.raw === undefined) return Effect.fail(new AmpTlsError({ reason: core.noTlsReason ?? "this transport cannot start TLS" }))
    if (state !== "Plain") return Effect.fail(new AmpTlsError({ reason: `cannot start TLS now (${state})` }))
    const transition: TlsTransition = {
      _tag: "StartTls",
      hold: new Hold("tls"),
      answered: false,
      options,
      failure: undefined
    }
    core.state.to({ _tag: "TlsPending" })
    return core.engine.request(new Map([[Command.COMMAND, Command.commandNameBytes(StartTLS)]]), transition).pipe(
      Effect.catch((error) => Effect.fail(transition.failure ?? error)),
      Effect.flatMap((answer): Effect.Effect<void, AmpTlsError | CallError> =>
        transition.failure !== undefined
          ? Effect.fail(transition.failure)
          : answer.has(Command.ERROR)
          ? Effect.fail(Command.errorFromWire(StartTLS, errorCodeOf(answer), errorDescriptionOf(answer)))
          : Effect.void
      ),
      // Interrupted before the answer: the peer may still answer and start TLS, and our later boxes are
      // held behind the StartTLS; the connection's state cannot be known, so it is closed.
      Effect.onInterrupt(() =>
        transition.answered ? Effect.void : core.requestEnd(
          "abort",
          new ConnectionEnded({ reason: "StartTLS was interrupted before its answer", local: true })
        )
      )
    )
  })
