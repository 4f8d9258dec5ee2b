/**
 * Serving AMP over TCP or a Unix domain socket: every accepted connection gets its own dispatcher and
 * runs the `Responders` from the context, with the services of the fiber that started the server (its
 * logger, tracer, …). The server lives in the current Scope; closing the scope (for example SIGTERM
 * through `NodeRuntime.runMain`) stops accepting and closes every connection gracefully: each stops
 * reading, lets its running and queued handlers answer, flushes, and closes, within `closeTimeout`
 * (default 10 seconds). `shutdown: "abort"` ends them at once instead.
 *
 * @example
 * ```ts
 * import { Argument, Command, Responders, Server } from "effect-amp"
 * import { Effect } from "effect"
 *
 * const Sum = Command.make("Sum", {
 *   arguments: { a: Argument.Integer, b: Argument.Integer },
 *   response: { total: Argument.Integer }
 * })
 * const Handlers = Responders.layer(Responders.handle(Sum, ({ a, b }) => Effect.succeed({ total: a + b })))
 *
 * const program = Effect.gen(function*() {
 *   const server = yield* Server.make({ port: 7001 })
 *   yield* Effect.log(`listening on port ${server.port}`)
 *   return yield* Effect.never
 * }).pipe(Effect.scoped, Effect.provide(Handlers))
 * ```
 *
 * @since 0.1.0
 */
import { Context, Effect, Fiber, Layer, Schema, Scope } from "effect"
import * as Net from "node:net"
import * as Connection from "./Connection.ts"
import * as FdSocket from "./internal/fdSocket.ts"
import { describe, destroy, wrapDuplex } from "./internal/node.ts"
import { Responders } from "./Responders.ts"

/**
 * Where to listen: TCP (`host` defaults to `127.0.0.1`, `port` 0 picks a free port) or a Unix socket.
 *
 * @since 0.1.0
 * @category models
 */
export type ListenAddress =
  | { readonly host?: string | undefined; readonly port?: number | undefined; readonly path?: undefined }
  | { readonly path: string; readonly host?: undefined; readonly port?: undefined }

/**
 * Server options.
 *
 * @since 0.1.0
 * @category models
 */
export type ServeOptions = ListenAddress & Connection.Options & {
  /** Connections served at once; further ones are closed at once (default 10000). */
  readonly maxConnections?: number | undefined
  /**
   * How connections end when the server's scope closes: `"graceful"` (the default: in-flight answers go
   * out, within `closeTimeout`) or `"abort"` (at once; outstanding calls fail with `AmpConnectionLost`).
   */
  readonly shutdown?: "graceful" | "abort" | undefined
}

/**
 * The bound address.
 *
 * @since 0.1.0
 * @category models
 */
export type BoundAddress =
  | { readonly _tag: "Tcp"; readonly host: string; readonly port: number }
  | { readonly _tag: "Unix"; readonly path: string }

/**
 * A running server.
 *
 * @since 0.1.0
 * @category models
 */
export interface Server {
  readonly address: BoundAddress
  /** The TCP port listened on (`undefined` for a Unix socket server). */
  readonly port: number | undefined
  /** Connections being served now. */
  readonly connections: Effect.Effect<number>
  /**
   * Stops accepting and ends every connection: abort by default, or graceful (each connection stops
   * reading, lets its running handlers answer, flushes, closes).
   */
  readonly shutdown: (options?: { readonly graceful?: boolean | undefined }) => Effect.Effect<void>
}

/**
 * A server listening on TCP: its `port` is a number.
 *
 * @since 0.2.0
 * @category models
 */
export interface TcpServer extends Server {
  readonly address: Extract<BoundAddress, { readonly _tag: "Tcp" }>
  readonly port: number
}

/**
 * A server listening on a Unix domain socket.
 *
 * @since 0.2.0
 * @category models
 */
export interface UnixServer extends Server {
  readonly address: Extract<BoundAddress, { readonly _tag: "Unix" }>
  readonly port: undefined
}

/**
 * The server could not listen.
 *
 * @since 0.1.0
 * @category errors
 */
export class ServeError extends Schema.TaggedError<ServeError>()("ServeError", {
  address: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `cannot listen on ${this.address}: ${this.reason}`
  }
}

/** Default of `maxConnections` in {@link ServeOptions}. @since 0.1.0 @category constants */
export const DEFAULT_MAX_CONNECTIONS = 10_000

const makeServer = Effect.fnUntraced(function*(options: ServeOptions) {
  const scope = yield* Effect.scope
  // connections run with the services of the fiber that made the server (logger, tracer, Responders)
  const context = yield* Effect.context<Responders>()
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS
  const live = new Set<Connection.Connection>()
  const fibers = new Set<Fiber.Fiber<void>>()
  let accepting = true
  const addressText = options.path ?? `${options.host ?? "127.0.0.1"}:${options.port ?? 0}`

  const serveConnection = (accepted: Net.Socket) =>
    Effect.gen(function*() {
      yield* Effect.addFinalizer(() => destroy(accepted))
      const info = { ...describe(accepted, options.path !== undefined ? "unix" : "tcp", options.path), ...options.info }
      const { raw, descriptors } = yield* FdSocket.adopt(accepted, options.path !== undefined) // Unix: fd passing
      const socket = yield* wrapDuplex(raw)
      const connection = yield* Connection.make(socket, {
        ...options,
        info
      }, { role: "server", raw, descriptors })
      live.add(connection)
      yield* Effect.addFinalizer(() => Effect.sync(() => live.delete(connection)))
      yield* connection.ended
    }).pipe(
      Effect.scoped,
      Effect.catchCause((cause) => Effect.logError("AMP: serving a connection failed", cause))
    )

  const server = yield* Effect.acquireRelease(
    Effect.sync(() => Net.createServer({ pauseOnConnect: true })),
    (server) =>
      Effect.callback<void>((resume) => {
        server.close(() => resume(Effect.void))
      })
  )

  server.on("connection", (raw) => {
    raw.on("error", () => {}) // surfaced through the reader
    if (options.path === undefined) raw.setNoDelay(true) // we batch writes ourselves
    if (!accepting || fibers.size >= maxConnections) {
      raw.destroy()
      return
    }
    const fiber = Effect.runForkWith(context)(serveConnection(raw))
    fibers.add(fiber)
    fiber.addObserver(() => fibers.delete(fiber))
  })

  yield* Effect.callback<void, ServeError>((resume) => {
    const onError = (error: Error) => resume(Effect.fail(new ServeError({ address: addressText, reason: error.message })))
    server.once("error", onError)
    const listening = () => {
      server.off("error", onError)
      resume(Effect.void)
    }
    if (options.path !== undefined) server.listen(options.path, listening)
    else server.listen(options.port ?? 0, options.host ?? "127.0.0.1", listening)
  })
  server.on("error", () => {})

  const bound = server.address()
  const address: BoundAddress = typeof bound === "string" || bound === null
    ? { _tag: "Unix", path: options.path ?? String(bound) }
    : { _tag: "Tcp", host: bound.address, port: bound.port }

  const shutdown = (shutdownOptions?: { readonly graceful?: boolean | undefined }) =>
    Effect.gen(function*() {
      accepting = false
      server.close()
      yield* Effect.forEach([...live], (c) => c.close(shutdownOptions), { concurrency: "unbounded", discard: true })
      yield* Effect.forEach([...fibers], Fiber.interrupt, { concurrency: "unbounded", discard: true })
    })

  yield* Scope.addFinalizer(scope, shutdown({ graceful: options.shutdown !== "abort" }))

  const port = address._tag === "Tcp" ? address.port : undefined
  return { address, port, connections: Effect.sync(() => live.size), shutdown } as Server
})

/**
 * Starts listening and serving in the current scope. A TCP server's `port` is a number (the one picked
 * when `port` is 0).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: {
  (options: Extract<ListenAddress, { readonly path: string }> & Omit<ServeOptions, "path" | "host" | "port">): Effect.Effect<
    UnixServer,
    ServeError,
    Scope.Scope | Responders
  >
  (options: ServeOptions & { readonly path?: undefined }): Effect.Effect<TcpServer, ServeError, Scope.Scope | Responders>
  (options: ServeOptions): Effect.Effect<Server, ServeError, Scope.Scope | Responders>
} = makeServer as (options: ServeOptions) => Effect.Effect<never, ServeError, Scope.Scope | Responders>

/**
 * The server as a service, for `layer`.
 *
 * @since 0.1.0
 * @category services
 */
export class AmpServer extends Context.Service<AmpServer, Server>()("effect-amp/Server") {}

/**
 * A Layer that listens and serves until the layer's scope closes.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: ServeOptions): Layer.Layer<AmpServer, ServeError, Responders> =>
  Layer.effect(AmpServer, make(options))
