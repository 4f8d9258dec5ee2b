/**
 * effect-amp's side of the rpc benchmarks: an effect-amp server and client for
 * `Sum(a: Integer, b: Integer) -> total: Integer` and `Text(text: Unicode) -> length: Integer`, run as
 * separate processes. Same command line and output as the baselines (bench/plain/rpc.ts,
 * bench/twisted/rpc_bench.py):
 *
 *   node bench/amp/rpc.ts server [--port 0] [--host 127.0.0.1]
 *       prints `LISTENING <port>`, then serves until SIGTERM/SIGINT
 *   node bench/amp/rpc.ts client --connect 127.0.0.1:PORT --mode sequential|pipelined
 *                                [--outstanding N] [--seconds S] [--warmup S] [--workload sum|text]
 *       prints `WINDOW` when the timed window starts, then {"calls": n, "seconds": s, "rate": r, "errors": e,
 *       "cpuSeconds": c, "p50ms": x, "p99ms": y}; every answer is checked; p50/p99 are the latencies of the
 *       counted calls (issue to answer, in milliseconds); cpuSeconds is this process's CPU time in the window
 *
 * `pipelined`: N fibers, each issuing its next call when its answer arrives (N calls in flight).
 * `--workload sum` (the default) calls `Sum`; `--workload text` calls `Text` with a 60 KiB ASCII text
 * (61440 bytes) and checks that every answer is 61440.
 *
 * `AMP_BENCH_OBSERVABILITY=off` runs both sides with `disableTracing` and `disableMetrics` (to measure
 * what spans and metrics cost); `=metrics` turns tracing off only. Default: both on, as for users.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { Argument, Client, Command, Responders, Server } from "../../src/index.ts"
import { Latencies } from "../latencies.ts"

const Sum = Command.make("Sum", {
  arguments: { a: Argument.Integer, b: Argument.Integer },
  response: { total: Argument.Integer }
})

const Text = Command.make("Text", {
  arguments: { text: Argument.Unicode },
  response: { length: Argument.SafeInteger }
})

/** The `Text` workload's text: 61440 printable ASCII characters (the same in all three implementations). */
const largeText = Array.from({ length: 61440 }, (_, i) => String.fromCharCode(32 + (i % 95))).join("")

const Handlers = Responders.layer(
  Responders.handle(Sum, ({ a, b }) => Effect.succeed({ total: a + b })),
  // UTF-16 code units; the same as characters for the ASCII text the benchmark sends
  Responders.handle(Text, ({ text }) => Effect.succeed({ length: text.length }))
)

const flags = (argv: ReadonlyArray<string>): Map<string, string> => {
  const out = new Map<string, string>()
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a.startsWith("--")) out.set(a.slice(2), argv[i + 1] ?? "")
  }
  return out
}

const observability = process.env.AMP_BENCH_OBSERVABILITY ?? "on"
const observabilityOptions = observability === "off"
  ? { disableTracing: true, disableMetrics: true }
  : observability === "metrics"
  ? { disableTracing: true }
  : {}

const serve = (host: string, port: number) =>
  Effect.gen(function*() {
    const server = yield* Server.make({ host, port, ...observabilityOptions })
    const bound = server.port
    process.stdout.write(`LISTENING ${bound}\n`)
    return yield* Effect.never
  }).pipe(Effect.scoped, Effect.provide(Handlers))

const client = (options: {
  host: string
  port: number
  mode: "sequential" | "pipelined"
  outstanding: number
  seconds: number
  warmup: number
  workload: "sum" | "text"
}) =>
  Effect.gen(function*() {
    const connection = yield* Client.connect({ host: options.host, port: options.port, ...observabilityOptions })
    const amp = connection.dispatcher
    let calls = 0
    let errors = 0
    let counting = false
    let deadline = 0
    let n = 0
    const latencies = new Latencies()
    const sumWorker = Effect.gen(function*() {
      while (performance.now() < deadline) {
        const a = BigInt(n++)
        const t0 = performance.now()
        const result = yield* Effect.result(amp.callRemote(Sum, { a, b: 7n }))
        if (result._tag === "Success" && result.success.total === a + 7n) {
          if (counting) {
            calls++
            latencies.add(performance.now() - t0)
          }
        } else errors++
      }
    })
    const textWorker = Effect.gen(function*() {
      while (performance.now() < deadline) {
        const t0 = performance.now()
        const result = yield* Effect.result(amp.callRemote(Text, { text: largeText }))
        if (result._tag === "Success" && result.success.length === largeText.length) {
          if (counting) {
            calls++
            latencies.add(performance.now() - t0)
          }
        } else errors++
      }
    })
    const worker = options.workload === "text" ? textWorker : sumWorker
    const workers = options.mode === "pipelined" ? options.outstanding : 1
    const drive = (seconds: number) =>
      Effect.gen(function*() {
        deadline = performance.now() + seconds * 1000
        yield* Effect.forEach(Array.from({ length: workers }), () => worker, {
          concurrency: "unbounded",
          discard: true
        })
      })
    if (options.warmup > 0) yield* drive(options.warmup)
    counting = true
    process.stdout.write("WINDOW\n") // the harness samples the server's CPU time now and at the result line
    const cpuStart = process.cpuUsage()
    const start = performance.now()
    yield* drive(options.seconds)
    const seconds = (performance.now() - start) / 1000
    const cpu = process.cpuUsage(cpuStart)
    const cpuSeconds = (cpu.user + cpu.system) / 1e6
    process.stdout.write(
      JSON.stringify({ calls, seconds, rate: calls / seconds, errors, cpuSeconds, ...latencies.summary() }) + "\n"
    )
  }).pipe(Effect.scoped, Effect.provide(Responders.empty))

const [mode, ...rest] = process.argv.slice(2)
const f = flags(rest)
if (mode === "server") {
  NodeRuntime.runMain(serve(f.get("host") ?? "127.0.0.1", Number(f.get("port") ?? 0)))
} else if (mode === "client") {
  const [host, port] = (f.get("connect") ?? "127.0.0.1:0").split(":")
  const m = f.get("mode") ?? "sequential"
  if (m !== "sequential" && m !== "pipelined") throw new Error("--mode must be sequential or pipelined")
  const workload = f.get("workload") ?? "sum"
  if (workload !== "sum" && workload !== "text") throw new Error("--workload must be sum or text")
  NodeRuntime.runMain(
    client({
      host: host!,
      port: Number(port),
      mode: m,
      outstanding: Number(f.get("outstanding") ?? 1),
      seconds: Number(f.get("seconds") ?? 5),
      warmup: Number(f.get("warmup") ?? 0),
      workload
    })
  )
} else {
  process.stderr.write("usage: node bench/amp/rpc.ts server|client ...\n")
  process.exit(2)
}
