/**
 * WorkerPool throughput against the number of workers (1, 2, 4), for Twisted workers
 * (`test/twisted/worker.py`, on `twisted.internet.stdio`) and Node workers (`test/support/node-worker.ts`).
 *
 *   npm run bench:pool                       table on stdout, progress on stderr
 *   npm run bench:pool -- --quick            fewer and shorter runs
 *   npm run --silent bench:pool -- --json    one JSON object per line:
 *                                            {"name","unit","median","min","max","runs"}
 *
 * Two workloads, each with 64 calls in flight:
 * - `tiny`: Sum(a, b), nothing to compute: the cost of a call through the pool (parent, pipes, worker
 *   framing). The parent is one process, so this does not scale with workers beyond the cores left.
 * - `cpu`: Spin(5 ms), a worker busy 5 ms per call: the parallel work the pool buys. Perfect scaling
 *   would be 200 calls/s per worker, up to the number of free cores.
 *
 * Each configuration is measured `runs` times (5, or 3 with --quick) after a warm-up, and reported as
 * median with min–max: the machine may be shared, so look at the spread, not one number.
 */
import { Effect } from "effect"
import * as Responders from "../src/Responders.ts"
import * as WorkerPool from "../src/WorkerPool.ts"
import { Pid, Spin, Sum, workerCommand } from "../test/support/workers.ts"

const argv = process.argv.slice(2)
const quick = argv.includes("--quick")
const json = argv.includes("--json")
const runs = quick ? 3 : 5
const seconds = quick ? 0.5 : 1.5
const inFlight = 64
const spinMs = 5n

interface Row {
  readonly name: string
  readonly unit: string
  readonly median: number
  readonly min: number
  readonly max: number
  readonly runs: ReadonlyArray<number>
}

/** Calls/s of `call` with `inFlight` callers for about `seconds`. */
const rate = (call: Effect.Effect<unknown, unknown>) =>
  Effect.gen(function*() {
    const start = performance.now()
    const deadline = start + seconds * 1000
    let done = 0
    yield* Effect.forEach(
      Array.from({ length: inFlight }),
      () =>
        Effect.gen(function*() {
          while (performance.now() < deadline) {
            yield* call
            done++
          }
        }),
      { concurrency: "unbounded", discard: true }
    )
    return done / ((performance.now() - start) / 1000)
  })

const measurePool = (kind: "python" | "node", workers: number) =>
  Effect.gen(function*() {
    const pool = yield* WorkerPool.make({ ...workerCommand(kind), min: workers })
    // warm-up: every worker started and answering (calls at once land on different workers)
    const pids = yield* Effect.forEach(Array.from({ length: workers }), () => pool.call(Pid, {}), { concurrency: workers })
    if (new Set(pids.map((p) => p.pid)).size !== workers) throw new Error("warm-up did not reach every worker")
    const check = yield* pool.call(Sum, { a: 20n, b: 22n })
    if (check.total !== 42n) throw new Error("Sum is wrong")
    const rows: Array<Row> = []
    for (const [workload, call] of [
      ["tiny", pool.call(Sum, { a: 1n, b: 2n })],
      ["cpu", pool.call(Spin, { ms: spinMs })]
    ] as const) {
      yield* rate(call) // warm-up run, not counted
      const results: Array<number> = []
      for (let i = 0; i < runs; i++) results.push(yield* rate(call))
      const sorted = [...results].sort((a, b) => a - b)
      rows.push({
        name: `pool.${kind}.${workload}.workers=${workers}`,
        unit: "calls/s",
        median: sorted[Math.floor(sorted.length / 2)]!,
        min: sorted[0]!,
        max: sorted[sorted.length - 1]!,
        runs: results.map((r) => Math.round(r))
      })
      process.stderr.write(`  ${rows.at(-1)!.name}: ${results.map((r) => Math.round(r)).join(", ")}\n`)
    }
    return rows
  }).pipe(Effect.scoped, Effect.provide(Responders.empty))

const main = Effect.gen(function*() {
  const all: Array<Row> = []
  for (const kind of ["python", "node"] as const) {
    for (const workers of [1, 2, 4]) {
      process.stderr.write(`${kind} workers=${workers}\n`)
      all.push(...(yield* measurePool(kind, workers)))
    }
  }
  if (json) {
    for (const row of all) process.stdout.write(JSON.stringify(row) + "\n")
    return
  }
  const fmt = (n: number) => Math.round(n).toLocaleString("en-US")
  process.stdout.write(`${"benchmark".padEnd(34)} ${"median".padStart(8)}  min–max (calls/s, ${runs} runs, ${inFlight} in flight)\n`)
  for (const row of all) {
    process.stdout.write(`${row.name.padEnd(34)} ${fmt(row.median).padStart(8)}  ${fmt(row.min)}–${fmt(row.max)}\n`)
  }
})

Effect.runPromise(main).catch((error: unknown) => {
  process.stderr.write(`bench:pool failed: ${String(error)}\n`)
  process.exit(1)
})
