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
 * A failed handshake ends the connection with `TlsError` (it never falls back to plaintext) and fails
 * every outstanding call. A second StartTLS on the same connection fails with `OnlyOneTLS`.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import * as Command from "./Command.ts"

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
  /** Handshake timeout in milliseconds (default 10000). */
  readonly handshakeTimeoutMillis?: number | undefined
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
export class TlsError extends Schema.TaggedError<TlsError>()("TlsError", {
  reason: Schema.String
}) {
  override get message(): string {
    return `TLS handshake failed: ${this.reason}`
  }
}

/**
 * The responder has no TLS configuration: the `StartTLS` answer is an error box with code
 * `TLS_UNAVAILABLE` (the conformance service's code; Twisted without pyOpenSSL uses `TLS_ERROR`).
 *
 * @since 0.1.0
 * @category constants
 */
export const TLS_UNAVAILABLE = "TLS_UNAVAILABLE"
