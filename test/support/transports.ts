/**
 * Connected AMP pairs over every transport (TCP on 127.0.0.1, a Unix domain socket, the in-memory
 * pair), and raw peers: plain `node:net` sockets that write hand-made bytes and record what they read,
 * for wire-level tests. Everything lives in the current Scope (sockets destroyed, servers closed, socket
 * files removed when it closes).
 */
import { Data, Effect, Scope } from "effect"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Box from "../../src/Box.ts"
import * as Client from "../../src/Client.ts"
import * as Connection from "../../src/Connection.ts"
import * as MemorySocket from "../../src/MemorySocket.ts"
import * as Responders from "../../src/Responders.ts"
import * as Server from "../../src/Server.ts"
import * as WebSocketClient from "../../src/WebSocketClient.ts"
import * as WebSocketServer from "../../src/WebSocketServer.ts"
import * as Socket from "effect/socket/Socket"
import { concatBytes } from "../../src/internal/bytes.ts"
import { wrapDuplex } from "../../src/internal/node.ts"
import { responders } from "./commands.ts"

// --- connected pairs -------------------------------------------------------------------------------

export interface PairOptions {
  readonly server: ReadonlyArray<Responders.Any>
  readonly client?: ReadonlyArray<Responders.Any> | undefined
  readonly serverOptions?: Connection.Options | undefined
  readonly clientOptions?: Connection.Options | undefined
}

export interface Pair {
  readonly client: Connection.Connection
  /** Server-side connections alive now (0 once the server side of this connection has ended). */
  readonly serverConnections: Effect.Effect<number>
  /** Ends the server side: `Server.shutdown` (TCP, Unix) or the server connection's `close`. */
  readonly shutdownServer: (options?: { readonly graceful?: boolean | undefined }) => Effect.Effect<void>
  /** The server (TCP, Unix only). */
  readonly server?: Server.Server | undefined
  /** The server-side connection (memory only). */
  readonly serverConnection?: Connection.Connection | undefined
}

export interface Transport {
  readonly name: "tcp" | "unix" | "memory" | "websocket"
  readonly connect: (options: PairOptions) => Effect.Effect<Pair, never, Scope.Scope>
}

let socketCounter = 0
/** A fresh Unix socket path in the temp folder, removed when the scope closes. */
export const tempSocketPath: Effect.Effect<string, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => Path.join(Os.tmpdir(), `effect-amp-${process.pid}-${Date.now().toString(36)}-${socketCounter++}.sock`)),
  (path) => Effect.sync(() => Fs.rmSync(path, { force: true }))
)

const viaServer = (address: { readonly port: 0 } | { readonly path: string }, options: PairOptions) =>
  Effect.gen(function*() {
    const server = yield* Server.make({ ...address, ...options.serverOptions } as Server.ServeOptions).pipe(
      Effect.provideService(Responders.Responders, responders(...options.server)),
      Effect.orDie
    )
    const target = server.address._tag === "Tcp"
      ? { host: "127.0.0.1", port: server.address.port }
      : { path: server.address.path }
    const client = yield* Client.connect({ ...target, ...options.clientOptions } as Client.ConnectOptions).pipe(
      Effect.provideService(Responders.Responders, responders(...(options.client ?? []))),
      Effect.orDie
    )
    // wait until the server has registered the connection
    while ((yield* server.connections) === 0) yield* Effect.sleep(1)
    return {
      client,
      server,
      serverConnections: server.connections,
      shutdownServer: (o) => server.shutdown(o)
    } satisfies Pair
  })

export const tcp: Transport = {
  name: "tcp",
  connect: (options) => viaServer({ port: 0 }, options)
}

export const unix: Transport = {
  name: "unix",
  connect: (options) => Effect.flatMap(tempSocketPath, (path) => viaServer({ path }, options))
}

export const memory: Transport = {
  name: "memory",
  connect: (options) =>
    Effect.gen(function*() {
      const [a, b] = yield* MemorySocket.pair
      const serverConnection = yield* Connection.make(b, { info: { transport: "memory" }, ...options.serverOptions }).pipe(
        Effect.provideService(Responders.Responders, responders(...options.server)),
        Effect.orDie
      )
      const client = yield* Connection.make(a, { info: { transport: "memory" }, ...options.clientOptions }).pipe(
        Effect.provideService(Responders.Responders, responders(...(options.client ?? []))),
        Effect.orDie
      )
      let serverOpen = 1
      yield* Effect.forkScoped(Effect.andThen(serverConnection.ended, Effect.sync(() => {
        serverOpen = 0
      })))
      return {
        client,
        serverConnection,
        serverConnections: Effect.sync(() => serverOpen),
        shutdownServer: (o) => serverConnection.close(o)
      } satisfies Pair
    })
}

/** Our `WebSocketServer` and `WebSocketClient` over ws://127.0.0.1 (the client uses the global, browser-like WebSocket). */
export const websocket: Transport = {
  name: "websocket",
  connect: (options) =>
    Effect.gen(function*() {
      const server = yield* WebSocketServer.make({ port: 0, path: "/amp", ...options.serverOptions }).pipe(
        Effect.provideService(Responders.Responders, responders(...options.server)),
        Effect.orDie
      )
      const client = yield* WebSocketClient.connect(server.url, options.clientOptions).pipe(
        Effect.provideService(Responders.Responders, responders(...(options.client ?? []))),
        Effect.provide(Socket.layerWebSocketConstructorGlobal),
        Effect.orDie
      )
      while ((yield* server.connections) === 0) yield* Effect.sleep(1)
      return {
        client,
        server,
        serverConnections: server.connections,
        shutdownServer: (o) => server.shutdown(o)
      } satisfies Pair
    })
}

export const transports: ReadonlyArray<Transport> = [tcp, unix, memory, websocket]

// --- raw peers -------------------------------------------------------------------------------------

export class WaitTimeout extends Data.TaggedError("WaitTimeout")<{ readonly what: string; readonly seen: string }> {}

/** A plain socket speaking bytes. */
export interface RawPeer {
  readonly socket: Net.Socket
  /** Writes boxes (encoded with `Box.encodeUnsafe`) and/or raw bytes, in one `write`. */
  readonly write: (...parts: ReadonlyArray<Box.Box | Uint8Array>) => Effect.Effect<void>
  /** Every byte received so far. */
  readonly received: () => Uint8Array
  /** The complete boxes received so far (`Box.decodeAll`). */
  readonly boxes: () => Array<Box.Box>
  /** Waits (polling, bounded) until `boxes()` satisfies the predicate. */
  readonly waitForBoxes: (
    predicate: (boxes: Array<Box.Box>) => boolean,
    timeoutMillis?: number
  ) => Effect.Effect<Array<Box.Box>, WaitTimeout>
  /** Waits (bounded) for the peer to close the connection (EOF or reset). */
  readonly waitClosed: (timeoutMillis?: number) => Effect.Effect<void, WaitTimeout>
  readonly isClosed: () => boolean
  /** Whether the other side ended the connection with EOF (graceful) rather than a reset. */
  readonly gotEof: () => boolean
  /** Destroys the socket now. */
  readonly destroy: Effect.Effect<void>
}

/** Encodes boxes / passes bytes through, concatenated. */
export const bytesOf = (...parts: ReadonlyArray<Box.Box | Uint8Array>): Uint8Array =>
  concatBytes(parts.map((p) => p instanceof Uint8Array ? p : Box.encodeUnsafe(p)))

const poll = <A>(what: string, check: () => A | undefined, seen: () => string, timeoutMillis: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMillis
    while (true) {
      const result = check()
      if (result !== undefined) return result
      if (Date.now() > deadline) return yield* new WaitTimeout({ what, seen: seen() })
      yield* Effect.sleep(2)
    }
  })

const wrapRaw = (socket: Net.Socket): RawPeer => {
  const chunks: Array<Uint8Array> = []
  let closed = false
  let eof = false
  socket.on("data", (chunk: Buffer) => chunks.push(new Uint8Array(chunk)))
  socket.on("end", () => {
    eof = true
  })
  socket.on("error", () => {})
  socket.on("close", () => {
    closed = true
  })
  socket.resume()
  const received = () => concatBytes(chunks)
  const boxes = () => {
    const out: Array<Box.Box> = []
    Box.makeDecoder().feed(received(), out)
    return out
  }
  const describeBoxes = () =>
    JSON.stringify(boxes().map((b) => Object.fromEntries([...b].map(([k, v]) => [k, Buffer.from(v).toString("latin1")]))))
  return {
    socket,
    write: (...parts) =>
      Effect.sync(() => {
        if (!socket.destroyed) socket.write(bytesOf(...parts))
      }),
    received,
    boxes,
    waitForBoxes: (predicate, timeoutMillis = 5_000) =>
      poll("boxes", () => {
        const all = boxes()
        return predicate(all) ? all : undefined
      }, describeBoxes, timeoutMillis),
    waitClosed: (timeoutMillis = 5_000) => poll("close", () => (closed ? true : undefined), describeBoxes, timeoutMillis),
    isClosed: () => closed,
    gotEof: () => eof,
    destroy: Effect.sync(() => socket.destroy())
  }
}

/** Connects a raw socket (TCP port or Unix path). */
export const rawConnect = (target: number | string): Effect.Effect<RawPeer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<Net.Socket>((resume) => {
      const socket = typeof target === "number"
        ? Net.createConnection({ host: "127.0.0.1", port: target })
        : Net.createConnection({ path: target })
      socket.setNoDelay?.(true)
      socket.once("connect", () => resume(Effect.succeed(socket)))
      socket.once("error", (e) => resume(Effect.die(e)))
    }),
    (socket) => Effect.sync(() => socket.destroy())
  ).pipe(Effect.map(wrapRaw))

/** Connects a raw socket to a running `Server`. */
export const rawConnectTo = (server: Server.Server) =>
  rawConnect(server.address._tag === "Tcp" ? server.address.port : server.address.path)

/** A raw listening socket on 127.0.0.1: accept raw peers (our `Client` connects to `port`). */
export const rawListen: Effect.Effect<
  {
    readonly port: number
    /** The next accepted socket, as a raw peer (it starts reading at once). */
    readonly accept: Effect.Effect<RawPeer, WaitTimeout>
    /** The next accepted socket, untouched (paused; nobody reads it yet). */
    readonly acceptSocket: Effect.Effect<Net.Socket, WaitTimeout>
  },
  never,
  Scope.Scope
> = Effect.gen(function*() {
  const accepted: Array<Net.Socket> = []
  const server = yield* Effect.acquireRelease(
    Effect.callback<Net.Server>((resume) => {
      const server = Net.createServer({ pauseOnConnect: true }, (socket) => {
        socket.setNoDelay(true)
        accepted.push(socket)
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.callback<void>((resume) => {
        for (const s of accepted) s.destroy()
        server.close(() => resume(Effect.void))
      })
  )
  const port = (server.address() as Net.AddressInfo).port
  let next = 0
  const acceptSocket = poll("accept", () => (accepted.length > next ? accepted[next++] : undefined), () => "", 5_000)
  return { port, accept: Effect.map(acceptSocket, wrapRaw), acceptSocket }
})

/** Our `Client` connected to a raw listening peer: the raw socket plays the server. */
export const clientToRawPeer = (
  handlers: ReadonlyArray<Responders.Any> = [],
  options?: Connection.Options
) =>
  Effect.gen(function*() {
    const listener = yield* rawListen
    const client = yield* Client.connect({ host: "127.0.0.1", port: listener.port, ...options }).pipe(
      Effect.provideService(Responders.Responders, responders(...handlers)),
      Effect.orDie
    )
    const peer = yield* Effect.orDie(listener.accept)
    return { client, peer }
  })

/** Our `Server` with a raw client connected to it. */
export const rawToServer = (
  handlers: ReadonlyArray<Responders.Any>,
  options?: Partial<Server.ServeOptions>
) =>
  Effect.gen(function*() {
    const server = yield* Server.make({ port: 0, ...options } as Server.ServeOptions).pipe(
      Effect.provideService(Responders.Responders, responders(...handlers)),
      Effect.orDie
    )
    const peer = yield* rawConnectTo(server)
    while ((yield* server.connections) === 0) yield* Effect.sleep(1)
    return { server, peer }
  })

/** Counts of the socket-ish handles Node holds open (for leak checks). */
export const socketHandles = (): Record<"TCPSocketWrap" | "TCPServerWrap" | "PipeWrap", number> => {
  const counts = { TCPSocketWrap: 0, TCPServerWrap: 0, PipeWrap: 0 }
  for (const name of process.getActiveResourcesInfo()) {
    if (name in counts) counts[name as keyof typeof counts]++
  }
  return counts
}

/**
 * A listening socket on 127.0.0.1 whose accepted connections each run `Connection.make` (as the TCP
 * server, with the Node stream, like `Server` does), so a test can see the server-side `Connection`
 * (its `ended` reason, its dispatcher).
 */
export const acceptConnections = (
  handlers: ReadonlyArray<Responders.Any>,
  options?: Connection.Options
) =>
  Effect.gen(function*() {
    const listener = yield* rawListen
    /** The next accepted connection, living in the caller's scope. */
    const accept = Effect.gen(function*() {
      const raw = yield* Effect.orDie(listener.acceptSocket)
      raw.on("error", () => {})
      const socket = yield* wrapDuplex(raw)
      return yield* Connection.make(socket, { ...options, info: { transport: "tcp", ...options?.info } }, {
        role: "server",
        raw
      }).pipe(
        Effect.provideService(Responders.Responders, responders(...handlers)),
        Effect.orDie
      )
    })
    return { port: listener.port, accept }
  })
