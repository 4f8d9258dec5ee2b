/**
 * Load and soak program (`npm run load`; not a test). Starts an effect-amp server in another process
 * (bench/amp/rpc.ts), opens N connections to it from this process, keeps M `Sum` calls outstanding on
 * each for a fixed time, and checks every answer (none lost, none duplicated, none wrong). Prints calls/s,
 * p50/p99 latency, peak RSS of both processes, and RSS at the start and end of the soak.
 *
 *   npm run load -- [--connections 500] [--outstanding 4] [--seconds 20] [--json]
 *
 * RSS of both processes is sampled every `--sample` seconds (default 5) while the load runs; the first
 * and last samples after the first quarter of the run are the soak figures (no growth expected once
 * warm).
 *
 * Loopback only; bounded in count (connections × outstanding) and time.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { Argument, Client, Command, Responders } from "../src/index.ts"

const Sum = Command.make("Sum", {
  arguments: { a: Argument.Integer, b: Argument.Integer },
  response: { total: Argument.Integer }
})

const args = process.argv.slice(2)
const flag = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? Number(args[i + 1]) : fallback
}
const json = args.includes("--json")
const connections = Math.min(flag("connections", 500), 2000)
const outstanding = Math.min(flag("outstanding", 4), 100)
const seconds = Math.min(flag("seconds", 20), 600)
const sampleEvery = Math.max(1, flag("sample", 5))

const here = Path.dirname(fileURLToPath(import.meta.url))

/** RSS and peak RSS (kB) of a process, from /proc. */
const procRss = (pid: number): { rss: number; peak: number } => {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const field = (name: string) => Number(/^(\w+):\s+(\d+)/m.exec(status.split("\n").find((l) => l.startsWith(name)) ?? "")?.[2] ?? 0)
  return { rss: field("VmRSS"), peak: field("VmHWM") }
}

const startServer = Effect.acquireRelease(
  Effect.callback<{ pid: number; port: number; kill: () => void }, Error>((resume) => {
    const child = spawn(process.execPath, [Path.join(here, "amp", "rpc.ts"), "server", "--port", "0"], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    let out = ""
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString()
      const m = /LISTENING (\d+)/.exec(out)
      if (m) resume(Effect.succeed({ pid: child.pid!, port: Number(m[1]), kill: () => child.kill("SIGTERM") }))
    })
    child.once("exit", (code) => resume(Effect.fail(new Error(`server exited with ${code}`))))
  }),
  (server) => Effect.sync(server.kill)
)

const percentile = (sorted: Float64Array, p: number): number =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!

const program = Effect.gen(function*() {
  const server = yield* startServer
  const conns = yield* Effect.forEach(
    Array.from({ length: connections }),
    () => Client.connect({ port: server.port }),
    { concurrency: 50 }
  )
  const serverStart = procRss(server.pid)
  const clientStart = process.memoryUsage().rss / 1024
  let calls = 0
  let wrong = 0
  let failed = 0
  const latencies: Array<number> = []
  const deadline = performance.now() + seconds * 1000
  let counter = 0
  const worker = (amp: (typeof conns)[number]["dispatcher"]) =>
    Effect.gen(function*() {
      while (performance.now() < deadline) {
        const a = BigInt(counter++)
        const t0 = performance.now()
        const result = yield* Effect.result(amp.callRemote(Sum, { a, b: 1n }))
        if (result._tag === "Failure") failed++
        else if (result.success.total !== a + 1n) wrong++
        else {
          calls++
          if (latencies.length < 2_000_000) latencies.push(performance.now() - t0)
        }
      }
    })
  const start = performance.now()
  const samples: Array<{ t: number; server: number; client: number }> = []
  const sampler = setInterval(() => {
    samples.push({
      t: (performance.now() - start) / 1000,
      server: procRss(server.pid).rss,
      client: Math.round(process.memoryUsage().rss / 1024)
    })
  }, sampleEvery * 1000)
  yield* Effect.forEach(
    conns.flatMap((c) => Array.from({ length: outstanding }, () => c.dispatcher)),
    worker,
    { concurrency: "unbounded", discard: true }
  )
  clearInterval(sampler)
  const elapsed = (performance.now() - start) / 1000
  const serverEnd = procRss(server.pid)
  const warm = samples.filter((s) => s.t >= elapsed / 4)
  const soak = warm.length >= 2 ? { first: warm[0]!, last: warm[warm.length - 1]! } : undefined
  const clientEnd = process.memoryUsage().rss / 1024
  const sorted = Float64Array.from(latencies).sort()
  const report = {
    connections,
    outstanding: connections * outstanding,
    seconds: elapsed,
    calls,
    rate: calls / elapsed,
    wrong,
    failed,
    p50ms: percentile(sorted, 0.5),
    p99ms: percentile(sorted, 0.99),
    serverRssStartKiB: serverStart.rss,
    serverRssEndKiB: serverEnd.rss,
    serverPeakRssKiB: serverEnd.peak,
    clientRssStartKiB: Math.round(clientStart),
    clientRssEndKiB: Math.round(clientEnd),
    clientPeakRssKiB: process.resourceUsage().maxRSS,
    soak: soak === undefined ? null : {
      fromSecond: Math.round(soak.first.t),
      toSecond: Math.round(soak.last.t),
      serverRssKiB: [soak.first.server, soak.last.server],
      clientRssKiB: [soak.first.client, soak.last.client]
    },
    samples
  }
  if (json) process.stdout.write(JSON.stringify(report) + "\n")
  else {
    const line = (k: string, v: string) => process.stdout.write(`${k.padEnd(28)} ${v}\n`)
    line("connections × outstanding", `${connections} × ${outstanding} = ${report.outstanding}`)
    line("calls checked", `${calls} in ${elapsed.toFixed(1)} s (${Math.round(report.rate)} calls/s)`)
    line("wrong / failed answers", `${wrong} / ${failed}`)
    line("latency p50 / p99", `${report.p50ms.toFixed(2)} ms / ${report.p99ms.toFixed(2)} ms`)
    line("server RSS start → end", `${(serverStart.rss / 1024).toFixed(0)} → ${(serverEnd.rss / 1024).toFixed(0)} MiB (peak ${(serverEnd.peak / 1024).toFixed(0)} MiB)`)
    line("client RSS start → end", `${(clientStart / 1024).toFixed(0)} → ${(clientEnd / 1024).toFixed(0)} MiB (peak ${(report.clientPeakRssKiB / 1024).toFixed(0)} MiB)`)
    if (soak !== undefined) {
      const mib = (k: number) => (k / 1024).toFixed(0)
      line(
        `soak ${Math.round(soak.first.t)} s → ${Math.round(soak.last.t)} s`,
        `server ${mib(soak.first.server)} → ${mib(soak.last.server)} MiB, client ${mib(soak.first.client)} → ${mib(soak.last.client)} MiB`
      )
    }
  }
  if (wrong > 0 || failed > 0) return yield* Effect.fail(new Error(`${wrong} wrong and ${failed} failed answers`))
}).pipe(Effect.scoped, Effect.provide(Responders.empty))

NodeRuntime.runMain(program)
