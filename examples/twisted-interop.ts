/**
 * Our client talking to a real Twisted server: Twisted's AMP howto calculator
 * (examples/twisted/calculator_server.py), started here as a subprocess with Debian's Twisted
 * (`/usr/bin/python3`; set AMP_PYTHON to use another Python).
 *
 *     npm run example -- twisted-interop
 *
 * Without Twisted it prints how to install it and a `SKIPPED` line, and exits 0.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Schema } from "effect"
import { Client, Responders } from "effect-amp"
import { spawn, spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Divide, Sum } from "./calculator-protocol.ts"

const python = process.env.AMP_PYTHON ?? "/usr/bin/python3"
const script = fileURLToPath(new URL("./twisted/calculator_server.py", import.meta.url))

class TwistedServerError extends Schema.TaggedError<TwistedServerError>()("TwistedServerError", {
  message: Schema.String
}) {}

/** Twisted's version, or undefined when `python` cannot import it. */
const twistedVersion = (): string | undefined => {
  const probe = spawnSync(python, ["-c", "import twisted, sys; sys.stdout.write(twisted.__version__)"], {
    encoding: "utf8"
  })
  return probe.status === 0 ? probe.stdout : undefined
}

/** Starts the Twisted server for the current scope (killed when it closes); succeeds with its port. */
const twistedServer = Effect.acquireRelease(
  Effect.callback<{ readonly port: number; readonly child: ReturnType<typeof spawn> }, TwistedServerError>((resume) => {
    const child = spawn(python, [script, "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      resume(Effect.fail(new TwistedServerError({ message: `no LISTENING line within 15 s; stderr: ${stderr}` })))
    }, 15_000)
    child.stderr!.on("data", (d) => (stderr += d))
    child.once("error", (e) => {
      clearTimeout(timer)
      resume(Effect.fail(new TwistedServerError({ message: e.message })))
    })
    child.stdout!.on("data", (d) => {
      stdout += d
      const match = /^LISTENING (\d+)$/m.exec(stdout)
      if (match) {
        clearTimeout(timer)
        resume(Effect.succeed({ port: Number(match[1]), child }))
      }
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      child.kill("SIGKILL")
    })
  }),
  ({ child }) =>
    Effect.callback<void>((resume) => {
      if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
      child.once("exit", () => resume(Effect.void))
      child.kill("SIGTERM")
      setTimeout(() => child.kill("SIGKILL"), 3_000).unref()
    })
)

const program = Effect.gen(function*() {
  const version = twistedVersion()
  if (version === undefined) {
    yield* Console.log(`Twisted is not importable by ${python}. Install it with:`)
    yield* Console.log("  sudo apt-get install python3-twisted")
    yield* Console.log("SKIPPED twisted-interop: Twisted is not installed")
    return
  }
  const { port } = yield* twistedServer
  yield* Console.log(`Twisted ${version} calculator server on port ${port}`)

  const connection = yield* Client.connect({ port }).pipe(Effect.provide(Responders.empty))
  const amp = connection.dispatcher

  const { total } = yield* amp.callRemote(Sum, { a: 13n, b: 81n })
  yield* Console.log(`Sum(13, 81) from Twisted: ${total}`)

  // Integer is arbitrary precision on both sides
  const big = yield* amp.callRemote(Sum, { a: 2n ** 100n, b: 1n })
  yield* Console.log(`Sum(2**100, 1) from Twisted: ${big.total}`)

  const { result } = yield* amp.callRemote(Divide, { numerator: 1n, denominator: 3n })
  yield* Console.log(`Divide(1, 3) from Twisted: ${result}`)

  // Twisted's ZeroDivisionError → ZERO_DIVISION on the wire → our typed ZeroDivision
  const error = yield* amp.callRemote(Divide, { numerator: 1234n, denominator: 0n }).pipe(Effect.flip)
  yield* Console.log(`Divide(1234, 0) from Twisted failed with ${error._tag}: ${error.message}`)

  // 100 calls in flight at once on one connection
  const totals = yield* Effect.forEach(
    Array.from({ length: 100 }, (_, i) => BigInt(i)),
    (i) => Effect.map(amp.callRemote(Sum, { a: i, b: i }), (r) => r.total),
    { concurrency: "unbounded" }
  )
  yield* Console.log(`100 pipelined Sums from Twisted add up to ${totals.reduce((x, y) => x + y, 0n)}`)
  yield* Console.log("OK twisted-interop")
}).pipe(Effect.scoped)

NodeRuntime.runMain(program)
