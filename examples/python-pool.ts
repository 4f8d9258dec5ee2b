/**
 * A pool of Twisted (Python) AMP workers called from TypeScript: four `python3 pool_worker.py` processes
 * (examples/twisted/pool_worker.py, serving AMP on their stdin/stdout with `twisted.internet.stdio`, as
 * ampoule's workers do), typed calls spread over them, a typed error from Python, and a clean shutdown.
 * Uses Debian's Twisted (`/usr/bin/python3`; set AMP_PYTHON to use another Python).
 *
 *     node examples/python-pool.ts
 *
 * Without Twisted it prints a `SKIPPED` line and exits 0.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Schema } from "effect"
import { Argument, Command, Responders, WorkerPool } from "effect-amp"
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"

const python = process.env.AMP_PYTHON ?? "/usr/bin/python3"
const worker = fileURLToPath(new URL("./twisted/pool_worker.py", import.meta.url))

// the command as declared in pool_worker.py: same wire names, same error code
class NegativeInput extends Schema.TaggedError<NegativeInput>()("NegativeInput", { message: Schema.String }) {}

const CountPrimes = Command.make("CountPrimes", {
  arguments: { below: Argument.Integer },
  response: { count: Argument.Integer, pid: Argument.Integer },
  errors: { NEGATIVE: NegativeInput }
})

const program = Effect.gen(function*() {
  const pool = yield* WorkerPool.make({
    command: python,
    args: [worker],
    min: 4, // four workers, started now
    callTimeout: "10 seconds" // a stuck worker is killed and replaced
  })

  // 8 calls at once: each goes to the least busy worker
  const limits = [100_000n, 200_000n, 300_000n, 400_000n, 500_000n, 600_000n, 700_000n, 800_000n]
  const results = yield* Effect.forEach(limits, (below) => pool.call(CountPrimes, { below }), { concurrency: "unbounded" })
  yield* Console.log(`1. primes below 100k..800k: ${results.map((r) => r.count).join(", ")}`)
  yield* Console.log(`2. served by ${new Set(results.map((r) => r.pid)).size} Python processes`)

  // a declared Python exception arrives in the typed error channel
  const error = yield* Effect.flip(pool.call(CountPrimes, { below: -1n }))
  yield* Console.log(`3. CountPrimes(-1) failed with ${error._tag}: ${error.message}`)

  return results.map((r) => Number(r.pid))
}).pipe(
  // closing the scope drains the pool: calls in flight finish, then every worker is stopped and reaped
  Effect.scoped,
  Effect.provide(Responders.empty),
  Effect.flatMap((pids) => {
    const running = [...new Set(pids)].filter((pid) => {
      try {
        process.kill(pid, 0)
        return true
      } catch {
        return false
      }
    })
    return Console.log(`4. pool closed: ${running.length} worker processes left`)
  })
)

const twisted = spawnSync(python, ["-c", "import twisted"], { encoding: "utf8" })
if (twisted.status !== 0) {
  console.log(`Twisted is not installed for ${python} (apt-get install python3-twisted)`)
  console.log("SKIPPED python-pool: Twisted is not installed")
} else {
  NodeRuntime.runMain(program)
}
