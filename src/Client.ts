/**
 * Connecting to an AMP peer over TCP or a Unix domain socket. The connection lives in the current
 * Scope; its `Responders` (what we answer when the peer calls us: AMP is symmetric) come from the
 * context — use `Responders.empty` for a pure client.
 *
 * @example
 * ```ts
 * import { Client, Responders } from "effect-amp"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const connection = yield* Client.connect({ host: "127.0.0.1", port: 7001 })
 *   const { total } = yield* connection.dispatcher.callRemote(Sum, { a: 13n, b: 81n })
 * }).pipe(Effect.scoped, Effect.provide(Responders.empty))
 * ```
 *
 * @since 0.1.0
 */
import { Duration, Effect, Layer, Schema } from "effect"
import * as Net from "node:net"
import * as Connection from "./Connection.ts"
import { Dispatcher } from "./Dispatcher.ts"
import * as FdSocket from "./internal/fdSocket.ts"
import { describe, destroy, wrapDuplex } from "./internal/node.ts"
import * as Reconnecting from "./Reconnecting.ts"
import { connectSpan } from "./internal/observability.ts"
import type { Responders } from "./Responders.ts"

/**
 * Where to connect: TCP (`host` defaults to `127.0.0.1`) or a Unix socket `path`.
 *
 * @since 0.1.0
 * @category models
 */
export type Address =
  | { readonly host?: string | undefined; readonly port: number; readonly path?: undefined }
  | { readonly path: string; readonly host?: undefined; readonly port?: undefined }

/**
 * Client options: the address, connection options, and a connect timeout (default 10 s).
 *
 * @since 0.1.0
 * @category models
 */
export type ConnectOptions = Address & Connection.Options & {
  readonly connectTimeout?: Duration.Input | undefined
}

/**
 * The connection could not be established (refused, unreachable, timed out).
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectError extends Schema.TaggedError<ConnectError>()("ConnectError", {
  address: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `cannot connect to ${this.address}: ${this.reason}`
  }
}

/** @internal */
export const addressText = (address: Address): string =>
  address.path !== undefined ? address.path : `${address.host ?? "127.0.0.1"}:${address.port}`

/**
 * Opens a raw connected `net.Socket` in the current scope (destroyed when the scope closes).
 *
 * @since 0.1.0
 * @category constructors
 */
export const openSocket = (options: Address & { readonly connectTimeout?: Duration.Input | undefined }) =>
  Effect.acquireRelease(
    Effect.callback<Net.Socket, ConnectError>((resume) => {
      const raw = options.path !== undefined
        ? Net.createConnection({ path: options.path })
        : Net.createConnection({ host: options.host ?? "127.0.0.1", port: options.port })
      raw.pause()
      const timer = setTimeout(() => {
        cleanup()
        raw.destroy()
        resume(Effect.fail(new ConnectError({ address: addressText(options), reason: "timed out" })))
      }, Duration.toMillis(options.connectTimeout ?? "10 seconds"))
      const onConnect = () => {
        cleanup()
        if (options.path === undefined) raw.setNoDelay(true) // we batch writes ourselves
        resume(Effect.succeed(raw))
      }
      const onError = (error: Error) => {
        cleanup()
        raw.destroy()
        resume(Effect.fail(new ConnectError({ address: addressText(options), reason: error.message })))
      }
      function cleanup() {
        clearTimeout(timer)
        raw.off("connect", onConnect)
        raw.off("error", onError)
      }
      raw.once("connect", onConnect)
      raw.once("error", onError)
      return Effect.sync(() => {
        cleanup()
        raw.destroy()
      })
    }),
    destroy
  )

/**
 * Connects and runs AMP over the socket in the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = (options: ConnectOptions) => connectSpan({ ...options, address: addressText(options) })(connectUntraced(options))

const connectUntraced = Effect.fnUntraced(function*(options: ConnectOptions) {
  const opened = yield* openSocket(options)
  // a late socket error (after connect) surfaces through the reader; keep Node from throwing meanwhile
  opened.on("error", () => {})
  const info = { ...describe(opened, options.path !== undefined ? "unix" : "tcp", options.path), ...options.info }
  const { raw, descriptors } = yield* FdSocket.adopt(opened, options.path !== undefined) // Unix: fd passing
  const socket = yield* wrapDuplex(raw)
  return yield* Connection.make(socket, {
    ...options,
    info
  }, { role: "client", raw, descriptors, host: options.path !== undefined ? undefined : options.host ?? "127.0.0.1" }).pipe(Effect.mapError((error) => new ConnectError({ address: addressText(options), reason: error.message })))
})

/**
 * A Layer that connects and provides the connection's `Dispatcher`. The connection is closed when the
 * layer's scope closes.
 *
 * @example
 * ```ts
 * import { Client, Dispatcher, Responders } from "effect-amp"
 * import { Effect, Layer } from "effect"
 * const AmpLive = Client.layer({ port: 7001 }).pipe(Layer.provide(Responders.empty))
 * const program = Dispatcher.callRemote(Sum, { a: 1n, b: 2n }).pipe(Effect.provide(AmpLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: ConnectOptions): Layer.Layer<Dispatcher, ConnectError, Responders> =>
  Layer.effect(Dispatcher, Effect.map(connect(options), (connection) => connection.dispatcher))

/**
 * Like `layer`, but keeps a connection: reconnects with a retry `Schedule` when it drops; calls made
 * meanwhile wait (bounded) or fail fast; calls outstanding at a drop fail with `AmpConnectionLost`. Also
 * provides the connection state (`Reconnecting.ReconnectingClient`). See the `Reconnecting` module.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerReconnecting = (
  options: ConnectOptions & Reconnecting.Options
): Layer.Layer<Dispatcher | Reconnecting.ReconnectingClient, never, Responders> =>
  Reconnecting.layer(connect(options), options)
