/**
 * The conformance server: responders for the whole conformance command set, and `serve`, which listens
 * and serves them. The same responders run on the conformance client's connections (AMP is symmetric:
 * the server calls the client's `Greet` and `Notify`).
 *
 * @since 0.1.0
 */
import { Context, Effect, Exit, Layer, Stream } from "effect"
import * as Cause from "effect/Cause"
import type * as Runtime from "effect/Runtime"
import * as Socket from "effect/socket/Socket"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Command from "../Command.ts"
import * as ConnectionInfoModule from "../ConnectionInfo.ts"
import * as Dispatcher from "../Dispatcher.ts"
import * as ProtocolSwitch from "../ProtocolSwitch.ts"
import * as Responders from "../Responders.ts"
import * as Server from "../Server.ts"
import type { TlsOptions } from "../StartTLS.ts"
import * as C from "./commands.ts"
import * as Descriptors from "./descriptors.ts"
import { compareSamples, samples } from "./samples.ts"

/** `effect-amp <version>`, the `implementation` of `ConnectionInfo`. @since 0.1.0 @category constants */
export const IMPLEMENTATION: string = `effect-amp ${
  (createRequire(import.meta.url)("../../package.json") as { version: string }).version
}`

// --- state: what Notify recorded and whom Greet greeted (one per responders layer) -----------------------

/**
 * The conformance responders' state: the messages `Notify` recorded per channel and the names `Greet` saw.
 * Each `layer` build has its own; the conformance client reads its own through `makeState`.
 *
 * @since 0.2.0
 * @category state
 */
export class ConformanceState extends Context.Service<ConformanceState, {
  readonly record: (channel: string, message: string) => void
  /** What `Notify` recorded for a channel (a copy). */
  readonly notificationsOf: (channel: string) => ReadonlyArray<string>
  /** Forgets a channel. */
  readonly clear: (channel: string) => void
  readonly greet: (name: string) => void
  /** Names our `Greet` responder received, in order (a copy). */
  readonly greeted: () => ReadonlyArray<string>
}>()("effect-amp/conformance/ConformanceState") {}

/**
 * A fresh, empty state.
 *
 * @since 0.2.0
 * @category state
 */
export const makeState = (): ConformanceState["Service"] => {
  const notifications = new Map<string, Array<string>>()
  const greeted: Array<string> = []
  return {
    record: (channel, message) => {
      let list = notifications.get(channel)
      if (list === undefined) {
        list = []
        notifications.set(channel, list)
      }
      list.push(message)
    },
    notificationsOf: (channel) => [...(notifications.get(channel) ?? [])],
    clear: (channel) => {
      notifications.delete(channel)
    },
    greet: (name) => {
      greeted.push(name)
    },
    greeted: () => [...greeted]
  }
}

// --- responders --------------------------------------------------------------------------------------

const clamp = (value: bigint, max: bigint): number => Number(value < 0n ? 0n : value > max ? max : value)

/** What `SwitchToEcho` switches to: every byte received is written back. @since 0.1.0 @category protocols */
export const echoProtocol: ProtocolSwitch.InnerProtocol<Socket.SocketError> = ({ socket }) =>
  Effect.gen(function*() {
    const writer = yield* socket.writer
    yield* Socket.toStream(socket).pipe(Stream.runForEach((bytes) => writer.write(bytes)))
  }).pipe(
    Effect.scoped,
    // a clean close by the peer ends the echo normally
    Effect.catchIf(
      (error) => error.reason._tag === "SocketCloseError",
      () => Effect.void
    )
  )

const identity = <A>(args: A): Effect.Effect<A> => Effect.succeed(args)

const echoHandler = <Cmd extends Command.Any>(command: Cmd) =>
  Responders.handle(command, identity as (args: Command.Arguments<Cmd>) => Effect.Effect<Command.Response<Cmd>>)

/** Python's true division of two ints (`int / int`): exact for safe integers, close otherwise. */
const divide = (numerator: bigint, denominator: bigint): number => {
  const n = Number(numerator)
  const d = Number(denominator)
  if (Number.isSafeInteger(n) && Number.isSafeInteger(d)) return n / d
  const bits = (v: bigint) => (v < 0n ? -v : v).toString(2).length
  // scale so that the integer quotient has about 64 significant bits
  const k = bits(denominator) - bits(numerator) + 64
  const q = k >= 0 ? (numerator << BigInt(k)) / denominator : numerator / (denominator << BigInt(-k))
  return Number(q) * 2 ** -k
}

/**
 * Every conformance responder (server and client side alike).
 *
 * @since 0.1.0
 * @category responders
 */
export const handlers = [
  Responders.handle(C.Sum, ({ a, b }) => Effect.succeed({ total: a + b })),
  echoHandler(C.EchoInteger),
  echoHandler(C.EchoString),
  echoHandler(C.EchoUnicode),
  echoHandler(C.EchoFloat),
  echoHandler(C.EchoBoolean),
  echoHandler(C.EchoDecimal),
  echoHandler(C.EchoDateTime),
  echoHandler(C.EchoListOfInteger),
  echoHandler(C.EchoListOfUnicode),
  echoHandler(C.EchoAmpList),
  echoHandler(C.EchoPath),
  echoHandler(C.EchoAll),
  echoHandler(C.NameMangling),
  Responders.handle(C.EchoOptional, (args) =>
    Effect.succeed({
      ...args,
      present: (["opt_int", "opt_list", "opt_text"] as const).filter((key) => args[key] !== undefined)
    })),
  Responders.handle(C.GetSamples, () => Effect.succeed(samples)),
  Responders.handle(C.CheckSamples, (args) => {
    const mismatches = compareSamples(args)
    return Effect.succeed({ ok: mismatches.length === 0, mismatches })
  }),
  Responders.handle(C.Divide, ({ denominator, numerator }) =>
    denominator === 0n
      ? Effect.fail(new C.ZeroDivision({ message: "division by zero" }))
      : Effect.succeed({ result: divide(numerator, denominator) })),
  Responders.handle(C.Fatal, ({ message }) => Effect.fail(new C.FatalTest({ message }))),
  Responders.handle(C.Undeclared, () => Effect.die(new C.UndeclaredError({ message: "this error is not declared" }))),
  Responders.handle(C.Notify, ({ channel, message }) =>
    ConformanceState.useSync((state) => {
      state.record(channel, message)
      return {}
    })),
  Responders.handle(C.GetNotifications, ({ channel, clear }) =>
    ConformanceState.useSync((state) => {
      const messages = state.notificationsOf(channel)
      if (clear === true) state.clear(channel)
      return { messages }
    })),
  Responders.handle(C.Delay, ({ ms, value }) => Effect.as(Effect.sleep(clamp(ms, 10_000n)), { value })),
  Responders.handle(C.Greet, ({ name }) =>
    ConformanceState.use((state) => {
      state.greet(name)
      return name === ""
        ? Effect.fail(new C.GreetRefused({ message: "empty name" }))
        : Effect.succeed({ greeting: `Hello, ${name}!` })
    })),
  Responders.handle(C.PleaseCallMe, ({ name }) =>
    Dispatcher.callRemote(C.Greet, { name }).pipe(
      Effect.map(({ greeting }) => ({ greeting })),
      Effect.catch((error) => error._tag === "GreetRefused" ? Effect.fail(error) : Effect.die(error))
    )),
  Responders.handle(C.PleaseNotifyMe, ({ channel, count, message }) =>
    Effect.gen(function*() {
      const n = clamp(count, 10_000n)
      const dispatcher = yield* Dispatcher.Dispatcher
      for (let i = 0; i < n; i++) {
        yield* Effect.orDie(dispatcher.callRemote(C.Notify, { channel, message: `${message} ${i}` }))
      }
      return { sent: BigInt(n) }
    })),
  Responders.handle(C.ConnectionInfo, () =>
    Effect.map(ConnectionInfoModule.current, (info) => {
      // only a certificate that verified against our CA counts (Twisted rejects the others in the handshake)
      const cn = info.authorized === true ? ConnectionInfoModule.peerCommonName(info) : undefined
      return {
        tls: info.tls,
        ...(cn !== undefined ? { peer_cert_cn: cn } : {}),
        implementation: IMPLEMENTATION
      }
    })),
  Responders.raw(C.RAW_ECHO, (box) =>
    Effect.sync(() => {
      const out = new Map(box)
      out.delete(Command.ASK)
      out.delete(Command.COMMAND)
      return out
    })),
  ProtocolSwitch.handle(C.SwitchToEcho, () => Effect.succeed(echoProtocol)),
  ...Descriptors.handlers
] as const

/**
 * The conformance responders as a Layer.
 *
 * @since 0.1.0
 * @category responders
 */
export const layer: Layer.Layer<Responders.Responders> = Responders.layer(...handlers).pipe(
  Layer.provide(Layer.sync(ConformanceState, makeState))
)

/**
 * The responders over a given state (the conformance client reads what its own responders saw).
 *
 * @since 0.2.0
 * @category responders
 */
export const layerWith = (state: ConformanceState["Service"]): Layer.Layer<Responders.Responders> =>
  Responders.layer(...handlers).pipe(Layer.provide(Layer.succeed(ConformanceState, state)))

/**
 * The conformance server without TLS material answers `StartTLS` with `TLS_UNAVAILABLE` (the service's
 * own code; the library's default answer is Twisted's `TLS_ERROR`).
 */
const layerWithoutTls: Layer.Layer<Responders.Responders> = Responders.layer(
  ...handlers,
  Responders.raw("StartTLS", () => Effect.fail({ code: "TLS_UNAVAILABLE", description: "TLS is not configured on this server" }))
).pipe(Layer.provide(Layer.sync(ConformanceState, makeState)))

// --- serve -------------------------------------------------------------------------------------------

/**
 * Options of {@link serve} (the `effect-amp serve` command line).
 *
 * @since 0.1.0
 * @category models
 */
export interface ServeOptions {
  readonly port: number
  readonly host: string
  /** Listen on this Unix socket instead of TCP (file descriptors pass there); prints `LISTENING <path>`. */
  readonly unix?: string | undefined
  readonly tlsCert?: string | undefined
  readonly tlsKey?: string | undefined
  readonly tlsCa?: string | undefined
  readonly requireClientCert: boolean
}

/**
 * The options are inconsistent or a file cannot be read.
 *
 * @since 0.1.0
 * @category errors
 */
export class ServeConfigError extends Error {
  readonly _tag = "ServeConfigError"
}

const readFile = (path: string): Effect.Effect<string, ServeConfigError> =>
  Effect.try({
    try: () => Fs.readFileSync(path, "utf8"),
    catch: (e) => new ServeConfigError(`cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`)
  })

/** The responder-side TLS material of the server, from the file options. */
export const serverTls = (options: Omit<ServeOptions, "port" | "host">): Effect.Effect<TlsOptions | undefined, ServeConfigError> =>
  Effect.gen(function*() {
    if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) {
      return yield* Effect.fail(new ServeConfigError("--tls-cert and --tls-key go together"))
    }
    if (options.requireClientCert && options.tlsCa === undefined) {
      return yield* Effect.fail(new ServeConfigError("--require-client-cert needs --tls-ca"))
    }
    if (options.tlsCert === undefined || options.tlsKey === undefined) return undefined
    const cert = yield* readFile(options.tlsCert)
    const key = yield* readFile(options.tlsKey)
    const ca = options.tlsCa === undefined ? undefined : yield* readFile(options.tlsCa)
    return {
      cert,
      key,
      ...(ca !== undefined ? { ca, requestClientCert: true } : {}),
      requireClientCert: options.requireClientCert
    } satisfies TlsOptions
  })

/**
 * Listens and serves the conformance responders; prints `LISTENING <port>` (or `LISTENING <path>` with
 * `unix`) on stdout once accepting.
 * Runs until interrupted (then stops accepting and closes every connection). Without `tlsCert`,
 * `StartTLS` is answered `TLS_UNAVAILABLE`.
 *
 * @since 0.1.0
 * @category serve
 */
export const serve = (options: ServeOptions): Effect.Effect<never, ServeConfigError | Server.ServeError> =>
  Effect.gen(function*() {
    const tls = yield* serverTls(options)
    const server = yield* Server.make({
      ...(options.unix !== undefined ? { path: options.unix } : { port: options.port, host: options.host }),
      ...(tls !== undefined ? { tls } : {})
    }).pipe(Effect.provide(tls !== undefined ? layer : layerWithoutTls))
    const where = server.address._tag === "Tcp" ? String(server.address.port) : server.address.path
    yield* Effect.sync(() => process.stdout.write(`LISTENING ${where}\n`))
    return yield* Effect.never
  }).pipe(Effect.scoped)

/**
 * A `runMain` teardown for {@link serve}: being interrupted (SIGTERM/SIGINT) is the normal end, exit 0.
 *
 * @since 0.1.0
 * @category serve
 */
export const teardown: Runtime.Teardown = (exit, onExit) => {
  if (Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)) return onExit(0)
  const error = Cause.squash(exit.cause)
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
  return onExit(1)
}
