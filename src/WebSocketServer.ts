/**
 * AMP over WebSocket, server side (Node only, with the `ws` package that `@effect/platform-node`
 * already depends on): every accepted WebSocket carries AMP's byte stream in binary messages and gets
 * its own dispatcher running the `Responders` from the context. Clients connect with `WebSocketClient`
 * (in a browser or in Node). Same lifecycle as `Server`: the server lives in the current Scope;
 * closing it stops accepting and aborts every connection; `shutdown({ graceful: true })` first lets
 * in-flight answers out.
 *
 * StartTLS is refused on these connections (there is no raw byte stream to wrap): put TLS in front
 * (a reverse proxy terminating `wss:`).
 *
 * @example
 * ```ts
 * import { WebSocketServer } from "effect-amp"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const server = yield* WebSocketServer.make({ port: 8080, path: "/amp" })
 *   yield* Effect.log(`listening on ${server.url}`)
 *   return yield* Effect.never
 * }).pipe(Effect.scoped, Effect.provide(Handlers))
 * ```
 *
 * @since 0.1.0
 */
import type * as NodeSocketServerModule from "@effect/platform-node/NodeSocketServer"
import { Context, Effect, Exit, Fiber, Layer, Option, Scope } from "effect"
import * as NetAddress from "effect/net/NetAddress"
import * as Socket from "effect/socket/Socket"
import * as Connection from "./Connection.ts"
import { fromWebSocket } from "./internal/websocket.ts"
import { Responders } from "./Responders.ts"
import { type BoundAddress, DEFAULT_MAX_CONNECTIONS, type Server, ServeError } from "./Server.ts"
import { NO_STARTTLS } from "./WebSocketClient.ts"

/**
 * Where and how to listen. `path` restricts the upgrade to one URL path (default: any path).
 *
 * @since 0.1.0
 * @category models
 */
export interface ServeOptions extends Connection.Options {
  /** Interface to listen on (default `127.0.0.1`). */
  readonly host?: string | undefined
  /** Port (default 0: a free port). */
  readonly port?: number | undefined
  /** Accept WebSocket upgrades only on this URL path, e.g. `/amp`. */
  readonly path?: string | undefined
  /** Connections served at once; further ones are closed at once with code 1013 (default 10000). */
  readonly maxConnections?: number | undefined
  /** Largest WebSocket message accepted, in bytes (default 16 MiB); a larger one closes the connection. */
  readonly maxPayload?: number | undefined
  /** Bytes buffered for sending above which writes wait (default 1 MiB). */
  readonly sendHighWaterMark?: number | undefined
}

/**
 * A running WebSocket server: a `Server` plus the URL clients connect to.
 *
 * @since 0.1.0
 * @category models
 */
export interface WebSocketServer extends Server {
  /** `ws://host:port/path` (the bound port). */
  readonly url: string
}

const formatHost = (host: string): string => host.includes(":") ? `[${host}]` : host
const formatAddress = (address: string | undefined, port: number | undefined): string | undefined =>
  address === undefined ? undefined : port === undefined ? address : `${formatHost(address)}:${port}`

// loaded on first use: `ws` and the HTTP server add ~0.1 s of startup to every program importing the
// package, and most do not serve WebSocket
let nodeSocketServer: typeof NodeSocketServerModule | undefined
const loadNodeSocketServer = Effect.promise(async () =>
  nodeSocketServer ??= await import("@effect/platform-node/NodeSocketServer")
)

/**
 * Starts listening and serving in the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options?: ServeOptions
): Effect.Effect<WebSocketServer, ServeError, Scope.Scope | Responders> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const host = options?.host ?? "127.0.0.1"
    const maxConnections = options?.maxConnections ?? DEFAULT_MAX_CONNECTIONS
    const live = new Set<Connection.Connection>()
    let accepting = true
    let serving = 0

    // the listener lives in a scope of its own, closed by `shutdown` (stop accepting) or with the server
    const listenerScope = yield* Scope.fork(scope)
    const NodeSocketServer = yield* loadNodeSocketServer
    const server = yield* NodeSocketServer.makeWebSocket({
      host,
      port: options?.port ?? 0,
      ...(options?.path !== undefined ? { path: options.path } : {}),
      maxPayload: options?.maxPayload ?? 16 * 1024 * 1024,
      perMessageDeflate: false
    }).pipe(
      Scope.provide(listenerScope),
      Effect.mapError((error) =>
        new ServeError({
          address: `${formatHost(host)}:${options?.port ?? 0}`,
          reason: String((error.reason.cause as Error | undefined)?.message ?? error.message)
        })
      )
    )
    const bound = server.address
    const address: BoundAddress = NetAddress.isUnixPathAddress(bound)
      ? { _tag: "Unix", path: bound.path }
      : { _tag: "Tcp", host: NetAddress.formatHost(bound), port: bound.port }
    const url = address._tag === "Tcp"
      ? `ws://${formatHost(address.host)}:${address.port}${options?.path ?? "/"}`
      : `ws+unix://${address.path}`

    const serveConnection = Effect.gen(function*() {
      // the server runs each connection with its WebSocket and its HTTP request in the context
      const services = yield* Effect.context<never>()
      const ws = Option.getOrUndefined(Context.getOption(services, Socket.WebSocket))
      const request = Option.getOrUndefined(Context.getOption(services, NodeSocketServer.IncomingMessage))
      if (ws === undefined) return yield* Effect.die(new Error("no WebSocket in the connection's context"))
      if (!accepting || serving >= maxConnections) {
        ws.close(1013, accepting ? "too many connections" : "shutting down")
        // the server paused it: read again so that the close handshake completes
        ;(ws as { resume?: () => void }).resume?.()
        return
      }
      serving++
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          serving--
        })
      )
      // our own socket over the accepted WebSocket, so that an ordinary close is a clean close (1000)
      const socket = yield* fromWebSocket(
        Effect.acquireRelease(Effect.succeed(ws), (ws) =>
          Effect.sync(() => {
            try {
              ws.close(1000)
            } catch {
              // already closing
            }
          })),
        { sendHighWaterMark: options?.sendHighWaterMark }
      )
      const connection = yield* Connection.make(socket, {
        ...options,
        info: {
          transport: "websocket",
          localAddress: formatAddress(request?.socket.localAddress, request?.socket.localPort),
          remoteAddress: formatAddress(request?.socket.remoteAddress, request?.socket.remotePort),
          ...options?.info,
          tls: false
        }
      }, { role: "server", noTlsReason: NO_STARTTLS })
      live.add(connection)
      yield* Effect.addFinalizer(() => Effect.sync(() => live.delete(connection)))
      yield* connection.ended
    }).pipe(
      Effect.scoped,
      Effect.catchCause((cause) => Effect.logDebug("AMP WebSocket connection failed to start", cause))
    )

    const runFiber = yield* Effect.forkIn(server.run(() => serveConnection), scope)

    const shutdown = (shutdownOptions?: { readonly graceful?: boolean | undefined }) =>
      Effect.gen(function*() {
        accepting = false
        // stop listening first (connections already accepted are not touched by this), then end them
        yield* Effect.forkIn(Scope.close(listenerScope, Exit.void), scope)
        yield* Effect.forEach([...live], (c) => c.close(shutdownOptions), { concurrency: "unbounded", discard: true })
        yield* Fiber.interrupt(runFiber)
      })
    yield* Scope.addFinalizer(scope, shutdown())

    return { address, url, connections: Effect.sync(() => live.size), shutdown } satisfies WebSocketServer
  })

/**
 * The WebSocket server as a service, for `layer`.
 *
 * @since 0.1.0
 * @category services
 */
export class AmpWebSocketServer extends Context.Service<AmpWebSocketServer, WebSocketServer>()(
  "effect-amp/WebSocketServer"
) {}

/**
 * A Layer that listens and serves until the layer's scope closes.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: ServeOptions): Layer.Layer<AmpWebSocketServer, ServeError, Responders> =>
  Layer.effect(AmpWebSocketServer, make(options))
