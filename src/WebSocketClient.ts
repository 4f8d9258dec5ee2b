/**
 * AMP over a WebSocket, client side: AMP's byte stream is carried in binary WebSocket messages (one
 * message per write; a box may span several messages and a message may hold several boxes, exactly as
 * with TCP reads). The WebSocket comes from effect/socket's `WebSocketConstructor` service, so the same
 * code runs in a browser (`Socket.layerWebSocketConstructorGlobal`, or Node's own global `WebSocket`)
 * and in Node with the `ws` package (`NodeWS.layerWebSocketConstructor` from `@effect/platform-node`).
 * This module imports no Node module itself; serve with `WebSocketServer`.
 *
 * - StartTLS is impossible over a WebSocket (there is no raw byte stream to wrap): `startTLS` fails with
 *   a `AmpTlsError` saying so, and a peer's StartTLS is refused. Use a `wss:` URL for TLS.
 * - Protocol switches are not available either.
 * - Text messages from the peer are taken as their UTF-8 bytes.
 *
 * @example
 * ```ts
 * import { Responders, WebSocketClient } from "effect-amp"
 * import { Effect } from "effect"
 * import * as Socket from "effect/socket/Socket"
 *
 * const program = Effect.gen(function*() {
 *   const connection = yield* WebSocketClient.connect("wss://example.com/amp")
 *   const { total } = yield* connection.dispatcher.callRemote(Sum, { a: 13n, b: 81n })
 * }).pipe(Effect.scoped, Effect.provide(Responders.empty), Effect.provide(Socket.layerWebSocketConstructorGlobal))
 * ```
 *
 * @since 0.1.0
 */
import { type Duration, Effect, Layer, Schema, type Scope } from "effect"
import * as Socket from "effect/socket/Socket"
import * as Connection from "./Connection.ts"
import { Dispatcher } from "./Dispatcher.ts"
import { fromWebSocket, socketErrorText } from "./internal/websocket.ts"
import * as Reconnecting from "./Reconnecting.ts"
import type { Responders } from "./Responders.ts"

/**
 * Why StartTLS fails on a WebSocket connection (the `AmpTlsError` reason, and the refusal sent to a peer
 * that asks for it).
 *
 * @since 0.1.0
 * @category constants
 */
export const NO_STARTTLS =
  "StartTLS is not possible over a WebSocket (there is no raw byte stream to wrap): connect to a wss: URL for TLS"

/**
 * Client options: connection options, plus the WebSocket's.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectOptions extends Connection.Options {
  /** Subprotocols offered in the opening handshake. */
  readonly protocols?: string | Array<string> | undefined
  /**
   * Headers of the opening handshake (e.g. authorization). Node and Bun constructors only: a browser
   * cannot set them, and the connection then fails with `ConnectError`.
   */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** How long the opening handshake may take (default 10 seconds). */
  readonly openTimeout?: Duration.Input | undefined
  /**
   * Bytes received but not yet parsed before reading pauses (`ws`: default 64 KiB). A browser cannot
   * pause a WebSocket: there the connection fails when this is exceeded (default: unbounded).
   */
  readonly highWaterMark?: number | undefined
  /** Bytes buffered for sending (`bufferedAmount`) above which writes wait (default 1 MiB). */
  readonly sendHighWaterMark?: number | undefined
}

/**
 * The WebSocket connection could not be established (bad URL, refused, handshake rejected, timed out).
 * Same tag and fields as `Client.ConnectError`, so `Effect.catchTag("ConnectError", …)` handles both.
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

const checkUrl = (url: string): Effect.Effect<URL, ConnectError> =>
  Effect.suspend(() => {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      return Effect.fail(new ConnectError({ address: url, reason: "not a valid URL" }))
    }
    if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
      return Effect.fail(new ConnectError({ address: url, reason: `expected a ws: or wss: URL, got ${parsed.protocol}` }))
    }
    return Effect.succeed(parsed)
  })

/**
 * Opens a WebSocket to `url` (`ws:` or `wss:`) and runs AMP over it in the current scope (closing the
 * scope closes the WebSocket; outstanding calls fail with `AmpConnectionLost`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = (
  url: string,
  options?: ConnectOptions
): Effect.Effect<Connection.Connection, ConnectError, Scope.Scope | Responders | Socket.WebSocketConstructor> =>
  Effect.gen(function*() {
    const parsed = yield* checkUrl(url)
    const construct = yield* Socket.WebSocketConstructor
    const acquire = Effect.acquireRelease(
      Effect.try({
        try: () =>
          construct(
            url,
            options?.headers === undefined ? options?.protocols : { protocols: options.protocols, headers: options.headers }
          ),
        catch: (cause) => new Socket.SocketError({ reason: new Socket.SocketOpenError({ kind: "Unknown", cause }) })
      }),
      (ws) =>
        Effect.sync(() => {
          try {
            ws.close(1000)
          } catch {
            // already closing
          }
        })
    )
    const socket = yield* fromWebSocket(acquire, options)
    return yield* Connection.make(socket, {
      ...options,
      info: { transport: "websocket", remoteAddress: url, ...options?.info, tls: parsed.protocol === "wss:" }
    }, { role: "client", noTlsReason: NO_STARTTLS }).pipe(
      Effect.mapError((error) => new ConnectError({ address: url, reason: socketErrorText(error) }))
    )
  })

/**
 * A Layer that connects and provides the connection's `Dispatcher`; the WebSocket is closed when the
 * layer's scope closes.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  url: string,
  options?: ConnectOptions
): Layer.Layer<Dispatcher, ConnectError, Responders | Socket.WebSocketConstructor> =>
  Layer.effect(Dispatcher, Effect.map(connect(url, options), (connection) => connection.dispatcher))

/**
 * Like `layer`, but keeps a connection: reconnects with the retry schedule when it drops (see the
 * `Reconnecting` module). Provides `Dispatcher` and `Reconnecting.ReconnectingClient` (the state).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerReconnecting = (
  url: string,
  options?: ConnectOptions & Reconnecting.Options
): Layer.Layer<Dispatcher | Reconnecting.ReconnectingClient, never, Responders | Socket.WebSocketConstructor> =>
  Reconnecting.layer(connect(url, options), options)
