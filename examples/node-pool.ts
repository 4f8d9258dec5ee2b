/**
 * A pool of Node AMP workers (examples/workers/hash-worker.ts, talking over file descriptors 3 and 4 as
 * Twisted's trial workers do), and what happens when one dies mid-call: that call fails with a typed
 * `ChildExited` (how it ended, its last stderr lines), the other calls go on, and the pool replaces it.
 *
 *     node examples/node-pool.ts
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Result } from "effect"
import { Responders, WorkerPool } from "effect-amp"
import { fileURLToPath } from "node:url"
import { Hash, Sleep } from "./workers/hash-protocol.ts"

const program = Effect.gen(function*() {
  const pool = yield* WorkerPool.make({
    command: process.execPath, // this Node, with its flags (e.g. the export condition of a checkout)
    args: [...process.execArgv, fileURLToPath(new URL("./workers/hash-worker.ts", import.meta.url))],
    fds: { write: 3, read: 4 }, // we write to the worker's fd 3 and read its fd 4
    min: 2,
    max: 2
  })

  const words = ["alpha", "beta", "gamma", "delta"]
  const hashes = yield* Effect.forEach(words, (text) => pool.call(Hash, { text }), { concurrency: "unbounded" })
  yield* Console.log(`1. ${words.length} hashes from ${new Set(hashes.map((h) => h.pid)).size} workers; alpha -> ${hashes[0]!.hex}`)

  // two long calls, one per worker; then one worker is killed
  const [first, second] = yield* Effect.all(
    [
      Effect.result(pool.call(Sleep, { ms: 1_000n })),
      Effect.result(pool.call(Sleep, { ms: 1_000n })),
      Effect.delay(
        Effect.flatMap(pool.pids, ([victim]) => Effect.sync(() => process.kill(victim!, "SIGKILL"))),
        "300 millis"
      )
    ],
    { concurrency: "unbounded" }
  )
  const failed = [first, second].filter(Result.isFailure).map((r) => r.failure)
  yield* Console.log(`2. a worker killed mid-call: ${2 - failed.length} call answered, ${failed.length} failed`)
  for (const error of failed) {
    yield* Console.log(
      error._tag === "ChildExited"
        ? `   ChildExited: the worker was killed by ${error.signal}`
        : `   unexpected: ${error.message}`
    )
  }

  // the pool replaced the worker
  const again = yield* Effect.forEach(words, (text) => pool.call(Hash, { text }), { concurrency: "unbounded" })
  const stats = yield* pool.stats
  yield* Console.log(`3. after the crash: ${again.length} hashes, ${stats.workers} workers, ${stats.crashed} replaced`)
}).pipe(Effect.scoped, Effect.provide(Responders.empty))

NodeRuntime.runMain(program)
