/**
 * What a responder can learn about the connection it is serving: addresses, whether TLS is on, the
 * peer's certificate. Provided to every handler fiber; the values change when StartTLS completes, so
 * read them with `ConnectionInfo.get` when you need them.
 *
 * @since 0.1.0
 */
import { Context, Effect } from "effect"

/**
 * A snapshot of the connection's state.
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  /** `"tcp"`, `"unix"`, `"memory"`, or another transport name. */
  readonly transport: string
  readonly localAddress?: string | undefined
  readonly remoteAddress?: string | undefined
  /** True once StartTLS has completed (or the transport is TLS from the start). */
  readonly tls: boolean
  /** The peer's certificate as Node reports it (`tls.TLSSocket.getPeerCertificate()`), when one was presented. */
  readonly peerCertificate?: {
    readonly subject?: { readonly CN?: string | ReadonlyArray<string> | undefined } | undefined
    readonly raw?: Uint8Array | undefined
    readonly fingerprint256?: string | undefined
  } | undefined
  /** Whether the peer certificate verified against the configured authorities. */
  readonly authorized?: boolean | undefined
}

/**
 * The current connection's information (a service provided to handlers).
 *
 * @example
 * ```ts
 * import { ConnectionInfo } from "effect-amp"
 * import { Effect } from "effect"
 * const isSecure = Effect.map(ConnectionInfo.current, (info) => info.tls)
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export class ConnectionInfo extends Context.Service<ConnectionInfo, {
  readonly get: Effect.Effect<Snapshot>
}>()("effect-amp/ConnectionInfo") {}

/**
 * The current snapshot, read from the `ConnectionInfo` service.
 *
 * @since 0.1.0
 * @category accessors
 */
export const current: Effect.Effect<Snapshot, never, ConnectionInfo> = Effect.gen(function*() {
  const info = yield* ConnectionInfo
  return yield* info.get
})

/**
 * The common name of the peer certificate's subject, if any.
 *
 * @since 0.1.0
 * @category accessors
 */
export const peerCommonName = (snapshot: Snapshot): string | undefined => {
  const cn = snapshot.peerCertificate?.subject?.CN
  if (cn === undefined) return undefined
  return typeof cn === "string" ? cn : cn[0]
}
