/**
 * The rpc benchmark group: calls end to end over TCP on 127.0.0.1, client and server in separate
 * processes, every answer checked by the client.
 *
 *   rpc.sequential       `Sum` calls/s with one call outstanding
 *   rpc.pipelined.100    `Sum` calls/s with 100 calls outstanding
 *   rpc.pipelined.1000   `Sum` calls/s with 1000 calls outstanding
 *   rpc.large.pipelined  `Text` calls/s (60 KiB ASCII text in, its length out) with 16 calls outstanding
 *
 * Each is measured for effect-amp (bench/amp/rpc.ts), Twisted client ↔ Twisted server
 * (bench/twisted/rpc_bench.py) and a plain-Node client ↔ server without Effect (bench/plain/rpc.ts),
 * in the same run, one pair of processes at a time. Best of two rounds, to damp the noise of a shared
 * 2-core machine.
 */
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { benchDir, check, type Group, type GroupOptions, python, type Result, twistedBenchDir } from "./support.ts"

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

const specs = [
  { name: "rpc.sequential", mode: "sequential", outstanding: 1, workload: "sum" },
  { name: "rpc.pipelined.100", mode: "pipelined", outstanding: 100, workload: "sum" },
  { name: "rpc.pipelined.1000", mode: "pipelined", outstanding: 1000, workload: "sum" },
  /** Large values: `Text` calls/s sending a 60 KiB (61440-byte) ASCII text, answered with its length, 16 in flight. */
  { name: "rpc.large.pipelined", mode: "pipelined", outstanding: 16, workload: "text" }
] as const

const startServer = (impl: Implementation): Promise<{ port: number; stop: () => Promise<void> }> =>
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

const runClient = (
  impl: Implementation,
  port: number,
  spec: (typeof specs)[number],
  seconds: number,
  warmup: number
): Promise<{ rate: number; errors: number }> =>
  new Promise((resolve, reject) => {
    const child = spawn(impl.command, [
      impl.script,
      "client",
      "--connect",
      `127.0.0.1:${port}`,
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
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d))
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d))
    child.once("close", (code) => {
      clearTimeout(timer)
      const line = out.split("\n").find((l) => l.trim().startsWith("{"))
      if (code !== 0 || line === undefined) return reject(new Error(`${impl.name} client failed (${code}): ${err}`))
      const parsed = JSON.parse(line) as { rate: number; errors: number }
      resolve(parsed)
    })
  })

const measureImpl = async (
  impl: Implementation,
  spec: (typeof specs)[number],
  options: GroupOptions
): Promise<number | null> => {
  if (!Fs.existsSync(impl.script)) {
    options.log(`note: ${impl.script} not found: ${impl.name} is null`)
    return null
  }
  const seconds = options.quick ? 1 : 3
  const warmup = options.quick ? 0.5 : 1
  let best = 0
  for (let round = 0; round < (options.quick ? 1 : 2); round++) {
    let server: { port: number; stop: () => Promise<void> } | undefined
    try {
      server = await startServer(impl)
      const result = await runClient(impl, server.port, spec, seconds, warmup)
      check(result.errors === 0, `${impl.name} ${spec.name}: ${result.errors} wrong or failed answers`)
      best = Math.max(best, result.rate)
    } catch (error) {
      if (impl.name === "effect-amp") throw error
      options.log(`note: ${impl.name} ${spec.name} not measured: ${(error as Error).message.slice(0, 300)}`)
      return null
    } finally {
      await server?.stop()
    }
  }
  return best
}

export const rpc: Group = {
  name: "rpc",
  targets: {
    "rpc.sequential": { vsTwisted: 3 },
    "rpc.pipelined.1000": { vsTwisted: 10, vsPlainNode: 0.5 }
  },
  run: async (options: GroupOptions): Promise<Array<Result>> => {
    const results: Array<Result> = []
    for (const spec of specs) {
      if (!options.selected(spec.name)) continue
      options.log(`${spec.name} …`)
      const [ours, twisted, plainNode] = [
        await measureImpl(implementations[0]!, spec, options),
        await measureImpl(implementations[1]!, spec, options),
        await measureImpl(implementations[2]!, spec, options)
      ]
      results.push({ name: spec.name, unit: "calls/s", value: ours!, twisted, plainNode })
    }
    return results
  }
}
