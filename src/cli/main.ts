/**
 * The `effect-amp` command line: `effect-amp call`, `effect-amp serve`, `effect-amp check`,
 * `effect-amp decode` (`npm run amp -- …` in a checkout).
 *
 * Exit codes: 0 success; 1 an error answer (`call`), a framing error (`decode`), a failed check
 * (`check`); 2 a connection failure (refused, TLS, timeout, lost); 64 a bad command line.
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Cause, Console, Effect, Exit, Logger, Option } from "effect"
import type * as Runtime from "effect/Runtime"
import { Argument, CliError, Command, Flag } from "effect/cli"
import { call, renderAnswer, renderError } from "./call.ts"
import { decodeStream, readInput, render } from "./decode.ts"
import { CliExit, ExitCode, fail, usage } from "./exit.ts"
import { packageVersion } from "../internal/version.ts"
import { parseAssignments, parseHostPort, type Target, UsageError } from "./values.ts"
import { splitCommandLine } from "./words.ts"

/** Runs a synchronous parser that throws `UsageError`, as a usage failure. */
const parsing = <A>(f: () => A): Effect.Effect<A, CliExit> =>
  Effect.suspend(() => {
    try {
      return Effect.succeed(f())
    } catch (e) {
      if (e instanceof UsageError) return usage(e.message)
      throw e
    }
  })

const optionalString = (name: string, description: string) =>
  Flag.String(name).pipe(Flag.withDescription(description), Flag.optional)

// --- effect-amp call ------------------------------------------------------------------------------------------

const callCommand = Command.make(
  "call",
  {
    args: Argument.String("args").pipe(
      Argument.withMetavar("HOST:PORT COMMAND [key=value...]"),
      Argument.withDescription(
        "The peer (HOST:PORT, [IPv6]:PORT or PORT; omit it with --unix), the command name, then its " +
          "arguments: key=text (UTF-8), key=@file (a file's bytes, @- for stdin), key:hex=ff00 (bytes in hex), " +
          "key:text=@literal (text starting with @)"
      ),
      Argument.variadic({ min: 1 })
    ),
    unix: optionalString("unix", "Connect to this Unix socket instead of HOST:PORT"),
    exec: optionalString(
      "exec",
      "Start this command (split into words like a shell would, run without one) and make the call over its " +
        "stdin/stdout instead of HOST:PORT; the process is stopped afterwards"
    ),
    json: Flag.Boolean("json").pipe(
      Flag.withDescription("Print the answer as a JSON object: UTF-8 values as strings, others as { \"hex\": ... }"),
      Flag.withDefault(false)
    ),
    tls: Flag.Boolean("tls").pipe(
      Flag.withDescription("Send StartTLS first and make the call over TLS (the connection starts plain, as AMP does)"),
      Flag.withDefault(false)
    ),
    ca: optionalString("ca", "With --tls: the CA certificate (PEM) the server's certificate must chain to"),
    cert: optionalString("cert", "With --tls: our client certificate (PEM), with --key"),
    key: optionalString("key", "With --tls: the private key (PEM) of --cert"),
    servername: optionalString("servername", "With --tls: the name the server certificate must carry (default: HOST)"),
    noVerify: Flag.Boolean("no-verify").pipe(
      Flag.withoutNegation,
      Flag.withDescription("With --tls: accept any server certificate (insecure)"),
      Flag.withDefault(false)
    ),
    timeout: Flag.Int("timeout").pipe(
      Flag.withDescription("Milliseconds to wait for the connection and the answer"),
      Flag.withDefault(10_000)
    ),
    noAnswer: Flag.Boolean("no-answer").pipe(
      Flag.withoutNegation,
      Flag.withDescription("Send the command without _ask (requiresAnswer false) and exit 0 once it is sent"),
      Flag.withDefault(false)
    )
  },
  Effect.fn(function*(flags) {
    const unix = Option.getOrUndefined(flags.unix)
    const rest = [...flags.args]
    const exec = Option.getOrUndefined(flags.exec)
    const target: Target = yield* parsing(() => {
      if (exec !== undefined && (unix !== undefined || flags.tls)) throw new UsageError("--exec goes without --unix and --tls")
      if (exec !== undefined) return { exec: splitCommandLine(exec) }
      if (unix !== undefined) return { path: unix }
      if (rest.length < 2) throw new UsageError("expected HOST:PORT COMMAND [key=value...] (or --unix PATH COMMAND ...)")
      return parseHostPort(rest.shift()!)
    })
    const command = rest.shift()
    if (command === undefined || command.length === 0) return yield* usage("missing the COMMAND name")
    if (command.includes("=")) return yield* usage(`expected a COMMAND name before the arguments, got ${JSON.stringify(command)}`)
    const box = yield* parsing(() => parseAssignments(rest))
    const ca = Option.getOrUndefined(flags.ca)
    const cert = Option.getOrUndefined(flags.cert)
    const key = Option.getOrUndefined(flags.key)
    const servername = Option.getOrUndefined(flags.servername)
    if (!flags.tls && (ca ?? cert ?? key ?? servername) !== undefined) {
      return yield* usage("--ca, --cert, --key and --servername need --tls")
    }
    if (flags.timeout <= 0) return yield* usage("--timeout must be positive")
    const outcome = yield* parsing(() =>
      call({
        target,
        command,
        box,
        requiresAnswer: !flags.noAnswer,
        timeoutMillis: flags.timeout,
        tls: flags.tls ? { ca, cert, key, servername, verify: !flags.noVerify } : undefined
      })
    ).pipe(Effect.flatten)
    switch (outcome._tag) {
      case "Sent":
        return
      case "Answer":
        for (const line of renderAnswer(outcome.box, flags.json)) yield* Console.log(line)
        return
      case "RemoteError": {
        const line = renderError(outcome.code, outcome.description)
        if (flags.json) {
          yield* Console.log(JSON.stringify({ error: { code: outcome.code, description: outcome.description } }, null, 2))
          yield* Console.error(line)
        } else {
          yield* Console.log(line)
        }
        return yield* Effect.fail(new CliExit(ExitCode.failed))
      }
      case "ConnectionFailed":
        return yield* fail(ExitCode.connection, outcome.reason)
    }
  })
).pipe(
  Command.withDescription(
    "Call one AMP command with raw values and print the answer box, one key=value line per key " +
      "(bytes that are not printable UTF-8 escaped as \\xNN; _answer omitted). An error answer prints " +
      "ERROR <code>: <description> and exits 1; a connection failure exits 2."
  ),
  Command.withExamples([
    { command: "effect-amp call 127.0.0.1:7001 Sum a=13 b=81", description: "Call Sum; prints total=94" },
    { command: "effect-amp call 127.0.0.1:7001 EchoString value:hex=00ff10 --json", description: "Binary value in, JSON out" },
    { command: "effect-amp call 127.0.0.1:7001 EchoString value=@photo.jpg", description: "A file's bytes as the value" },
    { command: "effect-amp call --unix /tmp/amp.sock Greet name=Ada", description: "Over a Unix socket" },
    { command: "effect-amp call --exec \"python3 worker.py\" Sum a=13 b=81", description: "Start a worker, call it over its stdio" },
    { command: "effect-amp call localhost:7001 ConnectionInfo --tls --ca ca.pem", description: "StartTLS first, verify the server" },
    { command: "effect-amp call 127.0.0.1:7001 Notify channel=c message=hi --no-answer", description: "A notification: no answer awaited" }
  ])
)

// --- effect-amp serve -----------------------------------------------------------------------------------------

/**
 * `npm run conformance:server` puts npm between the caller and us, and npm does not pass SIGTERM on: a
 * caller that stops npm would leave the server running. So a server started by npm stops (exit 0, as on
 * SIGTERM) when its parent goes away.
 */
const stopWithParent = (): void => {
  if (process.env.npm_lifecycle_event === undefined) return
  const parent = process.ppid
  const timer = setInterval(() => {
    if (process.ppid !== parent) {
      clearInterval(timer)
      process.kill(process.pid, "SIGTERM")
    }
  }, 250)
  timer.unref()
}

const serveCommand = Command.make(
  "serve",
  {
    port: Flag.Int("port").pipe(Flag.withDescription("TCP port (0 picks a free one)"), Flag.withDefault(0)),
    host: Flag.String("host").pipe(Flag.withDescription("Address to listen on"), Flag.withDefault("127.0.0.1")),
    unix: optionalString("unix", "Listen on this Unix socket instead of TCP (file descriptors pass there); prints LISTENING <path>"),
    tlsCert: optionalString("tls-cert", "Server certificate (PEM) for StartTLS; without it StartTLS is refused (TLS_UNAVAILABLE)"),
    tlsKey: optionalString("tls-key", "Private key (PEM) of --tls-cert"),
    tlsCa: optionalString("tls-ca", "CA certificate (PEM) client certificates are verified against (they are then asked for)"),
    requireClientCert: Flag.Boolean("require-client-cert").pipe(
      Flag.withoutNegation,
      Flag.withDescription("Reject TLS clients without a valid certificate (needs --tls-ca)"),
      Flag.withDefault(false)
    )
  },
  Effect.fn(function*(flags) {
    signalExitCode = 0
    stopWithParent()
    // loaded on demand: `effect-amp call` and `effect-amp decode` do not need the conformance command set
    const Conformance = yield* Effect.promise(() => import("../conformance/server.ts"))
    yield* Conformance.serve({
      port: flags.port,
      host: flags.host,
      unix: Option.getOrUndefined(flags.unix),
      tlsCert: Option.getOrUndefined(flags.tlsCert),
      tlsKey: Option.getOrUndefined(flags.tlsKey),
      tlsCa: Option.getOrUndefined(flags.tlsCa),
      requireClientCert: flags.requireClientCert
    }).pipe(
      Effect.catch((error) =>
        // bad options or unreadable files are usage errors; not being able to listen is a failure
        fail(error._tag === "ServeConfigError" ? ExitCode.usage : ExitCode.failed, error.message)
      )
    )
  })
).pipe(
  Command.withDescription(
    "Run the AMP conformance server (the command set is described in docs/conformance.md of the " +
      "effect-amp package): prints LISTENING <port> once it accepts connections and serves until " +
      "SIGTERM/SIGINT, then exits 0. Same as npm run conformance:server in a checkout."
  ),
  Command.withExamples([
    { command: "effect-amp serve --port 0", description: "Serve on a free port of 127.0.0.1" },
    { command: "effect-amp serve --unix /tmp/amp.sock", description: "Serve on a Unix socket (with ReadDescriptor/OpenDescriptor)" },
    { command: "effect-amp serve --port 7001 --tls-cert server.pem --tls-key server-key.pem", description: "Allow StartTLS" },
    {
      command: "effect-amp serve --port 7001 --tls-cert server.pem --tls-key server-key.pem --tls-ca ca.pem --require-client-cert",
      description: "Require client certificates signed by ca.pem"
    }
  ])
)

// --- effect-amp check -----------------------------------------------------------------------------------------

const checkCommand = Command.make(
  "check",
  {
    connect: optionalString("connect", "The server to check: HOST:PORT"),
    unix: optionalString("unix", "Check the server on this Unix socket instead (adds the file-descriptor checks)"),
    tlsCa: optionalString("tls-ca", "CA certificate (PEM) for the StartTLS checks"),
    tlsCert: optionalString("tls-cert", "Client certificate (PEM) for the StartTLS checks"),
    tlsKey: optionalString("tls-key", "Private key (PEM) of --tls-cert"),
    only: optionalString(
      "only",
      "Run only these checks: comma-separated check names or command names, any case; a name that is not a " +
        "check selects the checks starting with it (Sum runs SumPipelined1000, Echo every Echo check)"
    )
  },
  Effect.fn(function*(flags) {
    const connect = Option.getOrUndefined(flags.connect)
    const path = Option.getOrUndefined(flags.unix)
    if ((connect === undefined) === (path === undefined)) return yield* usage("give either --connect HOST:PORT or --unix PATH")
    const { host, port } = connect === undefined ? { host: "", port: 0 } : yield* parsing(() => parseHostPort(connect))
    const only = Option.getOrUndefined(flags.only)
    const Conformance = yield* Effect.promise(() => import("../conformance/client.ts"))
    const result = yield* Conformance.check({
      host,
      port,
      path,
      tlsCa: Option.getOrUndefined(flags.tlsCa),
      tlsCert: Option.getOrUndefined(flags.tlsCert),
      tlsKey: Option.getOrUndefined(flags.tlsKey),
      only: only === undefined ? undefined : only.split(",").map((s) => s.trim()).filter((s) => s.length > 0)
    }).pipe(
      // unknown check names, inconsistent or unreadable TLS files
      Effect.catch((error) => usage(error.message))
    )
    if (result.failed > 0) return yield* Effect.fail(new CliExit(ExitCode.failed))
  })
).pipe(
  Command.withDescription(
    "Run the AMP conformance client against a server implementing the conformance command set: one " +
      "PASS/FAIL line per check, then 'N passed, M failed'; exits 0 only if every check passed. " +
      "Same as npm run conformance:client in a checkout."
  ),
  Command.withExamples([
    { command: "effect-amp check --connect 127.0.0.1:7001", description: "Every check" },
    { command: "effect-amp check --unix /tmp/amp.sock", description: "Over a Unix socket, with the file-descriptor checks" },
    { command: "effect-amp check --connect 127.0.0.1:7001 --only Sum,DivideByZero", description: "Some checks (names or prefixes)" },
    { command: "effect-amp check --connect 127.0.0.1:7001 --tls-ca ca.pem --tls-cert client.pem --tls-key client-key.pem", description: "With TLS material" }
  ])
)

// --- effect-amp decode ----------------------------------------------------------------------------------------

const decodeCommand = Command.make(
  "decode",
  {
    file: Argument.String("file").pipe(
      Argument.withMetavar("FILE"),
      Argument.withDescription("A captured AMP byte stream; - (the default) reads standard input"),
      Argument.withDefault("-")
    ),
    hex: Flag.Boolean("hex").pipe(
      Flag.withDescription("The input is hex text (whitespace and # comments ignored) instead of raw bytes"),
      Flag.withDefault(false)
    )
  },
  Effect.fn(function*(flags) {
    const bytes = yield* parsing(() => readInput(flags.file, flags.hex))
    const decoded = decodeStream(bytes)
    for (const line of render(decoded)) yield* Console.log(line)
    if (decoded.framingError !== undefined) return yield* Effect.fail(new CliExit(ExitCode.failed))
  })
).pipe(
  Command.withDescription(
    "Decode a captured AMP byte stream: prints 'box N @offset' and one '  key = value' line per key " +
      "(escaped), then marks an incomplete box at the end, or a framing error with its byte offset (exit 1)."
  ),
  Command.withExamples([
    { command: "effect-amp decode capture.bin", description: "Raw bytes from a file" },
    { command: "echo '0003 616263 0001 31 0000' | effect-amp decode --hex", description: "Hex text from stdin" },
    { command: "tcpdump -w - ... | effect-amp decode -", description: "Standard input" }
  ])
)

// --- effect-amp ------------------------------------------------------------------------------------

/** The `effect-amp` command. @since 0.1.0 @category commands */
export const amp = Command.make("effect-amp").pipe(
  Command.withDescription("AMP (Twisted's Asynchronous Messaging Protocol) from the command line"),
  Command.withSubcommands([callCommand, serveCommand, checkCommand, decodeCommand]),
  Command.withExamples([
    { command: "effect-amp call 127.0.0.1:7001 Sum a=13 b=81", description: "Call a command" },
    { command: "effect-amp serve --port 0", description: "Run the conformance server" },
    { command: "effect-amp check --connect 127.0.0.1:7001", description: "Run the conformance checks" },
    { command: "effect-amp decode capture.bin", description: "Decode a captured stream" }
  ])
)

// The exit code when interrupted by SIGINT/SIGTERM: 130, except for `serve`, whose normal end it is.
let signalExitCode = 130

const teardown: Runtime.Teardown = (exit, onExit) => {
  if (Exit.isSuccess(exit)) return onExit(0)
  if (Cause.hasInterruptsOnly(exit.cause)) return onExit(signalExitCode)
  const error = Cause.squash(exit.cause)
  if (error instanceof CliExit) return onExit(error.code)
  if (CliError.isCliError(error)) {
    // ShowHelp without errors: `effect-amp` alone, which prints the help
    return onExit(error._tag === "ShowHelp" && error.errors.length === 0 ? 0 : ExitCode.usage)
  }
  process.stderr.write(`effect-amp: ${error instanceof Error ? error.message : String(error)}\n`)
  return onExit(1)
}

/** The program, reading its arguments from the process. @since 0.1.0 @category running */
export const program = amp.pipe(
  Command.run({ version: packageVersion }),
  // stdout is for answers (and LISTENING lines): the library's log lines go to stderr
  Effect.provideService(Logger.LogToStderr, true),
  Effect.provide(NodeServices.layer)
)

/** Runs `effect-amp` as the process's main program. @since 0.1.0 @category running */
export const main = (): void => NodeRuntime.runMain(program, { teardown, disableErrorReporting: true })
