/**
 * The rpc benchmark group: calls end to end over TCP on 127.0.0.1, client and server in separate
 * processes, every answer checked by the client.
 *
 *   rpc.sequential       `Sum` calls/s with one call outstanding
 *   rpc.pipelined.100    `Sum` calls/s with 100 calls outstanding
 *   rpc.pipelined.1000   `Sum` calls/s with 1000 calls outstanding
 *   rpc.large.pipelined  `Text` calls/s (60 KiB ASCII text in, its length out) with 16 calls outstanding
 *
 *   <name>.cpu           the same runs as CPU time per call, client + server (µs): the process's own
 *                        CPU time in the timed window, plus the server's from /proc/<pid>/stat. On a busy
 *                        shared machine this moves much less than calls/s (which also measures waiting)
 *   rpc.latency.100.p50  latency (ms, issue to answer) of a `Sum` call with 100 outstanding: the median
 *   rpc.latency.100.p99  ... and the 99th percentile (both from rpc.pipelined.100's runs)
 *
 * Each is measured for effect-amp (bench/amp/rpc.ts), Twisted client ↔ Twisted server
 * (bench/twisted/rpc_bench.py) and a plain-Node client ↔ server without Effect (bench/plain/rpc.ts).
 * The three servers start once and stay up for the whole group; each round starts a fresh client
 * process per implementation (1 s uncounted warm-up on its connection, then a 1.5 s timed window), in
 * interleaved order: ours, Twisted, plain Node, ours, ... — 5 rounds, 3 with `--quick`. Only one client
 * runs at a time.
 */
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import {
  benchDir,
  check,
  type Group,
  type GroupOptions,
  interleave,
  python,
  type Result,
  resultOf,
  roundsOf,
  twistedBenchDir
} from "./support.ts"

interface Implementation {
  readonly name: "effect-amp" | "twisted" | "plainNode"
  readonly command: string
  readonly script: string
}

const implementations: ReadonlyArray<Implementation> = [
  { name: "effect-amp", command: process.execPath, script: Path.join(benchDir, "amp", "rpc.ts") },
  { name: "twisted", command: python, script: Path.join(twistedBenchDir, "rpc_bench.py") },
  { name: "plainNode", command: process.execPath, script: Path.join(benchDir, "plain", "rpc.ts") }
]

/** Rows derived from rpc.pipelined.100's runs: the latency of a call with 100 outstanding. */
const latencyRows = ["rpc.latency.100.p50", "rpc.latency.100.p99"] as const

const specs = [
  { name: "rpc.sequential", mode: "sequential", outstanding: 1, workload: "sum" },
  { name: "rpc.pipelined.100", mode: "pipelined", outstanding: 100, workload: "sum" },
  { name: "rpc.pipelined.1000", mode: "pipelined", outstanding: 1000, workload: "sum" },
  /** Large values: `Text` calls/s sending a 60 KiB (61440-byte) ASCII text, answered with its length, 16 in flight. */
  { name: "rpc.large.pipelined", mode: "pipelined", outstanding: 16, workload: "text" }
] as const

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat (10 ms resolution). */
const processCpuSeconds = (pid: number): number => {
  const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  // fields[0] is field 3 (state): utime is field 14, stime field 15
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}
const CLOCK_TICKS = 100

const startServer = (impl: Implementation): Promise<Server> =>
  new Promise((resolve, reject) => {
    const child = spawn(impl.command, [impl.script, "server", "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    let err = ""
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`${impl.name} server did not start: ${err}`))
    }, 20_000)
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d))
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d
      const m = /LISTENING (\d+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve({
          port: Number(m[1]),
          pid: child.pid!,
          stop: () =>
            new Promise<void>((done) => {
              if (child.exitCode !== null) return done()
              child.once("exit", () => done())
              child.kill("SIGTERM")
              setTimeout(() => child.kill("SIGKILL"), 3000)
            })
        })
      }
    })
    child.once("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`${impl.name} server exited with ${code}: ${err}`))
    })
  })

interface ClientResult {
  readonly rate: number
  readonly errors: number
  readonly p50ms: number | null
  readonly p99ms: number | null
  /** CPU time of client + server per counted call in the timed window, µs (null if not reported). */
  readonly cpuMicrosPerCall: number | null
}

const runClient = (
  impl: Implementation,
  server: Server,
  spec: (typeof specs)[number],
  seconds: number,
  warmup: number
): Promise<ClientResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(impl.command, [
      impl.script,
      "client",
      "--connect",
      `127.0.0.1:${server.port}`,
      "--mode",
      spec.mode,
      "--outstanding",
      String(spec.outstanding),
      "--seconds",
      String(seconds),
      "--warmup",
      String(warmup),
      // only when not the default, so the Sum benchmarks run the scripts exactly as before
      ...(spec.workload === "sum" ? [] : ["--workload", spec.workload])
    ], { stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    let err = ""
    const timer = setTimeout(() => child.kill("SIGKILL"), (seconds + warmup + 60) * 1000)
    // the server's CPU time is sampled when the client announces its timed window and when it reports
    let serverCpuStart: number | undefined
    let serverCpu: number | undefined
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d
      try {
        if (serverCpuStart === undefined && out.includes("WINDOW\n")) serverCpuStart = processCpuSeconds(server.pid)
        if (serverCpuStart !== undefined && serverCpu === undefined && /\n\{.*\n/.test(out)) {
          serverCpu = processCpuSeconds(server.pid) - serverCpuStart
        }
      } catch {
        // the server is gone: the round fails below
      }
    })
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d))
    child.once("close", (code) => {
      clearTimeout(timer)
      const line = out.split("\n").find((l) => l.trim().startsWith("{"))
      if (code !== 0 || line === undefined) return reject(new Error(`${impl.name} client failed (${code}): ${err}`))
      const parsed = JSON.parse(line) as {
        calls: number
        rate: number
        errors: number
        cpuSeconds?: number
        p50ms?: number | null
        p99ms?: number | null
      }
      const cpuMicrosPerCall = parsed.cpuSeconds !== undefined && serverCpu !== undefined && parsed.calls > 0
        ? ((parsed.cpuSeconds + serverCpu) * 1e6) / parsed.calls
        : null
      resolve({
        rate: parsed.rate,
        errors: parsed.errors,
        p50ms: parsed.p50ms ?? null,
        p99ms: parsed.p99ms ?? null,
        cpuMicrosPerCall
      })
    })
  })

type Server = { port: number; pid: number; stop: () => Promise<void> }

/** Timed window of each client run (the same in full and quick mode). */
const ROUND_SECONDS = 1.5
/**
 * Uncounted calls before each timed window, in the same client process and connection: long enough
 * for V8 to optimize both sides' hot path (the servers stay up across rounds, so they are warmer still).
 */
const WARMUP_SECONDS = 1

export const rpc: Group = {
  name: "rpc",
  targets: {
    "rpc.sequential": { vsTwisted: 3, vsPlainNode: 0.8 },
    "rpc.pipelined.100": { vsPlainNode: 0.8 },
    "rpc.pipelined.1000": { vsTwisted: 10, vsPlainNode: 0.8 },
    "rpc.large.pipelined": { vsTwisted: 1.5, vsPlainNode: 0.9 }
  },
  run: async (options: GroupOptions): Promise<Array<Result>> => {
    const latencyWanted = latencyRows.some((name) => options.selected(name))
    const chosen = specs.filter((spec) =>
      options.selected(spec.name) || (spec.name === "rpc.pipelined.100" && latencyWanted)
    )
    if (chosen.length === 0) return []
    const rounds = roundsOf(options.quick, 5, 3)
    // one server per implementation for the whole group; a client process per round
    const servers = new Map<Implementation["name"], Server | null>()
    const results: Array<Result> = []
    try {
      for (const impl of implementations) {
        if (!Fs.existsSync(impl.script)) {
          if (impl.name === "effect-amp") throw new Error(`${impl.script} not found`)
          options.log(`note: ${impl.script} not found: ${impl.name} is null`)
          servers.set(impl.name, null)
          continue
        }
        try {
          servers.set(impl.name, await startServer(impl))
        } catch (error) {
          if (impl.name === "effect-amp") throw error
          options.log(`note: ${impl.name} server not started: ${(error as Error).message.slice(0, 300)}`)
          servers.set(impl.name, null)
        }
      }
      for (const spec of chosen) {
        options.log(`${spec.name}: ${rounds} interleaved rounds (${WARMUP_SECONDS} s warm-up + ${ROUND_SECONDS} s each)`)
        const latency = { ours: [] as Array<ClientResult>, twisted: [] as Array<ClientResult | null>, plainNode: [] as Array<ClientResult | null> }
        const round = (impl: Implementation, into: Array<ClientResult | null>) => async (): Promise<number | null> => {
          const server = servers.get(impl.name)
          if (server === null || server === undefined) return null
          try {
            const result = await runClient(impl, server, spec, ROUND_SECONDS, WARMUP_SECONDS)
            check(result.errors === 0, `${impl.name} ${spec.name}: ${result.errors} wrong or failed answers`)
            into.push(result)
            return result.rate
          } catch (error) {
            if (impl.name === "effect-amp") throw error
            options.log(`note: ${impl.name} ${spec.name} round not measured: ${(error as Error).message.slice(0, 300)}`)
            into.push(null)
            return null
          }
        }
        const samples = await interleave(rounds, {
          ours: async () => (await round(implementations[0]!, latency.ours as Array<ClientResult | null>)())!,
          twisted: round(implementations[1]!, latency.twisted),
          plainNode: round(implementations[2]!, latency.plainNode)
        })
        if (options.selected(spec.name)) results.push(resultOf(spec.name, "calls/s", samples))
        const cpuName = `${spec.name}.cpu`
        const cpuOf = (xs: ReadonlyArray<ClientResult | null>) => xs.map((x) => x?.cpuMicrosPerCall ?? null)
        const oursCpu = cpuOf(latency.ours).filter((x): x is number => x !== null)
        if (options.selected(cpuName) && oursCpu.length > 0) {
          results.push(
            resultOf(cpuName, "µs CPU/call", { ours: oursCpu, twisted: cpuOf(latency.twisted), plainNode: cpuOf(latency.plainNode) }, true)
          )
        }
        if (spec.name === "rpc.pipelined.100") {
          for (const [name, key] of [["rpc.latency.100.p50", "p50ms"], ["rpc.latency.100.p99", "p99ms"]] as const) {
            if (!options.selected(name)) continue
            const pick = (xs: ReadonlyArray<ClientResult | null>) => xs.map((x) => x?.[key] ?? null)
            const ours = pick(latency.ours).filter((x): x is number => x !== null)
            if (ours.length === 0) continue
            results.push(resultOf(name, "ms", { ours, twisted: pick(latency.twisted), plainNode: pick(latency.plainNode) }, true))
          }
        }
      }
    } finally {
      for (const server of servers.values()) await server?.stop()
    }
    return results
  }
}
