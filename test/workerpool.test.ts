/**
 * WorkerPool with real worker processes: Twisted workers (`test/twisted/worker.py` on
 * `twisted.internet.stdio`) and Node workers (`test/support/node-worker.ts`). Many calls over 4 workers,
 * least-busy routing, a worker killed mid-call (that call fails typed, the others go on, the pool
 * recovers), a stuck worker recycled by the call timeout, recycling after K calls, growth and shrinking
 * between min and max, and the drain on close. Bounded in count and time; no process is left behind.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope } from "effect"
import * as Responders from "../src/Responders.ts"
import * as WorkerPool from "../src/WorkerPool.ts"
import { alive } from "./support/process.ts"
import { eventually } from "./support/wait.ts"
import { Delay, Pid, Sum, workerCommand } from "./support/workers.ts"

const kinds = ["python", "node"] as const

/** Runs `body` with a pool in its own scope, then checks that every worker it ever saw is gone. */
const withPool = <A, E>(
  options: WorkerPool.Options,
  body: (pool: WorkerPool.WorkerPool, seen: Set<number>) => Effect.Effect<A, E, Scope.Scope>
) =>
  Effect.gen(function*() {
    const seen = new Set<number>()
    const result = yield* Effect.gen(function*() {
      const pool = yield* WorkerPool.make(options)
      const a = yield* body(pool, seen)
      for (const pid of yield* pool.pids) seen.add(pid)
      return a
    }).pipe(Effect.scoped)
    assert.deepStrictEqual([...seen].filter(alive), [], "every worker is gone after the pool's scope closed")
    return result
  }).pipe(Effect.provide(Responders.empty))

const waitForWorkers = (pool: WorkerPool.WorkerPool, n: number, millis = 60_000) =>
  eventually(`${n} workers ready`, Effect.map(pool.pids, (pids) => pids.length === n), millis)

// real processes: generous per-test bounds, since a loaded 2-core machine may take seconds to start one
describe("WorkerPool", { timeout: 120_000 }, () => {
  for (const kind of kinds) {
    it.live(`${kind}: 400 calls over 4 workers, spread over all of them`, () =>
      withPool({ ...workerCommand(kind), min: 4 }, (pool, seen) =>
        Effect.gen(function*() {
          yield* waitForWorkers(pool, 4)
          // 4 calls at once land on 4 different workers (one call per worker at a time); this also waits
          // for every worker to have started (a worker's first call includes its start-up)
          const first = yield* Effect.forEach([1, 2, 3, 4], () => pool.call(Pid, {}), { concurrency: 4 })
          assert.strictEqual(new Set(first.map((r) => r.pid)).size, 4)
          const results = yield* Effect.forEach(
            Array.from({ length: 400 }, (_, i) => BigInt(i)),
            (i) => pool.call(Sum, { a: i, b: i }),
            { concurrency: 64 }
          )
          assert.deepStrictEqual(results.map((r) => r.total), Array.from({ length: 400 }, (_, i) => BigInt(2 * i)))
          const stats = yield* pool.stats
          assert.strictEqual(stats.completed, 404)
          assert.strictEqual(stats.workers, 4)
          assert.strictEqual(stats.busy, 0)
          assert.strictEqual(stats.perWorker.length, 4)
          for (const w of stats.perWorker) {
            // a faster worker takes more (it is free more often); every one takes a part
            assert.isAtLeast(w.taken, 20, `each worker took a share: ${JSON.stringify(stats.perWorker)}`)
            seen.add(w.pid!)
          }
        })))

    it.live(`${kind}: a worker killed mid-call fails that call with ChildExited; the others go on; the pool recovers`, () =>
      withPool({ ...workerCommand(kind), min: 3 }, (pool, seen) =>
        Effect.gen(function*() {
          yield* waitForWorkers(pool, 3)
          const before = yield* pool.pids
          before.forEach((pid) => seen.add(pid))
          const calls = yield* Effect.forkChild(
            Effect.forEach([400n, 400n, 400n, 100n, 100n, 100n], (ms) => Effect.exit(pool.call(Delay, { ms })), {
              concurrency: "unbounded"
            })
          )
          yield* eventually("3 calls in flight", Effect.map(pool.stats, (s) => s.busy === 3 && s.perWorker.every((w) => w.active === 1)))
          const victim = before[1]!
          process.kill(victim, "SIGKILL")
          const exits = yield* Fiber.join(calls)
          const failures = exits.filter(Exit.isFailure)
          assert.strictEqual(failures.length, 1, "only the killed worker's call failed")
          const error = failures[0]!.cause.reasons.find((r) => r._tag === "Fail")?.error as { _tag: string; signal?: string; pid?: number }
          assert.strictEqual(error._tag, "ChildExited")
          assert.strictEqual(error.signal, "SIGKILL")
          assert.strictEqual(error.pid, victim)
          assert.strictEqual(exits.filter(Exit.isSuccess).length, 5)
          // recovered: a replacement worker, and calls work on all three
          yield* eventually(
            "a replacement worker",
            Effect.map(pool.pids, (pids) => pids.length === 3 && !pids.includes(victim)),
            60_000
          )
          assert.isFalse(alive(victim))
          const pids = yield* Effect.forEach([1, 2, 3, 4, 5, 6], () => pool.call(Pid, {}), { concurrency: "unbounded" })
          pids.forEach(({ pid }) => seen.add(Number(pid)))
          assert.isFalse(pids.some(({ pid }) => Number(pid) === victim))
          const stats = yield* pool.stats
          assert.strictEqual(stats.crashed, 1)
          assert.strictEqual(stats.started, 4)
        })))

    it.live(`${kind}: a stuck worker (ignoring SIGTERM) is recycled by the call timeout`, () =>
      withPool(
        { ...workerCommand(kind, "--ignore-term"), min: 2, callTimeout: "1500 millis", terminateAfter: "100 millis", killAfter: "200 millis" },
        (pool, seen) =>
          Effect.gen(function*() {
            yield* waitForWorkers(pool, 2)
            // a worker's first call includes its start-up (Python importing Twisted, Node loading) and gets
            // startTimeout more: warm both, so that the next calls have only callTimeout
            yield* Effect.all([pool.call(Sum, { a: 0n, b: 0n }), pool.call(Sum, { a: 0n, b: 0n })], { concurrency: 2 })
            assert.deepStrictEqual((yield* pool.stats).perWorker.map((w) => w.taken), [1, 1])
            const before = yield* pool.pids
            before.forEach((pid) => seen.add(pid))
            const [stuck, quick] = yield* Effect.all([
              Effect.flip(pool.call(Delay, { ms: 60_000n })),
              Effect.delay(pool.call(Sum, { a: 1n, b: 2n }), "50 millis")
            ], { concurrency: "unbounded" })
            assert.strictEqual(quick.total, 3n)
            assert.strictEqual(stuck._tag, "CallTimeout")
            assert.include(stuck.message, "no answer from worker")
            const stuckPid = (stuck as WorkerPool.CallTimeout).pid
            assert.include(before, stuckPid)
            yield* eventually("the stuck worker is killed", Effect.sync(() => !alive(stuckPid)), 20_000)
            yield* eventually(
              "a replacement",
              Effect.map(pool.pids, (pids) => pids.length === 2 && !pids.includes(stuckPid)),
              60_000
            )
            const again = yield* Effect.forEach([1n, 2n, 3n, 4n], (a) => pool.call(Sum, { a, b: 0n }), { concurrency: "unbounded" })
            assert.deepStrictEqual(again.map((r) => r.total), [1n, 2n, 3n, 4n])
            for (const pid of yield* pool.pids) seen.add(pid)
            assert.strictEqual((yield* pool.stats).recycled, 1)
          })
      ))
  }

  it.live("least busy: with two workers taking 2 calls each, two slow calls go to different workers", () =>
    withPool({ ...workerCommand("python"), min: 2, concurrency: 2 }, (pool) =>
      Effect.gen(function*() {
        yield* waitForWorkers(pool, 2)
        const slow = yield* Effect.forkChild(
          Effect.all([pool.call(Delay, { ms: 300n }), pool.call(Delay, { ms: 300n })], { concurrency: "unbounded" })
        )
        yield* eventually("2 calls in flight", Effect.map(pool.stats, (s) => s.busy === 2))
        assert.deepStrictEqual((yield* pool.stats).perWorker.map((w) => w.active), [1, 1])
        yield* Fiber.join(slow)
      })))

  it.live("recycleAfter: a worker is replaced after K calls", () =>
    withPool({ ...workerCommand("python"), min: 1, recycleAfter: 5 }, (pool, seen) =>
      Effect.gen(function*() {
        const pids: Array<number> = []
        for (let i = 0; i < 12; i++) pids.push(Number((yield* pool.call(Pid, {})).pid))
        pids.forEach((pid) => seen.add(pid))
        const distinct = [...new Set(pids)]
        assert.strictEqual(distinct.length, 3, `pids: ${pids.join(",")}`)
        assert.deepStrictEqual(pids, [...Array(5).fill(distinct[0]), ...Array(5).fill(distinct[1]), distinct[2], distinct[2]])
        yield* eventually("recycled workers are stopped", Effect.sync(() => !alive(distinct[0]!) && !alive(distinct[1]!)))
      })))

  it.live("grows from min to max under load, shrinks back when idle", () =>
    withPool({ ...workerCommand("python"), min: 1, max: 3, idleWorkerTimeout: "300 millis" }, (pool, seen) =>
      Effect.gen(function*() {
        yield* waitForWorkers(pool, 1)
        const fiber = yield* Effect.forkChild(
          Effect.forEach([1, 2, 3, 4, 5, 6], () => pool.call(Delay, { ms: 200n }), { concurrency: "unbounded" })
        )
        yield* eventually("3 workers", Effect.map(pool.stats, (s) => s.workers === 3), 60_000)
        for (const pid of yield* pool.pids) seen.add(pid)
        yield* Fiber.join(fiber)
        const stats = yield* pool.stats
        assert.strictEqual(stats.started, 3, "never more than max")
        yield* eventually("back to 1 worker", Effect.map(pool.stats, (s) => s.workers === 1), 20_000)
        assert.strictEqual((yield* pool.call(Sum, { a: 2n, b: 2n })).total, 4n)
      })))

  it.live("close drains: calls in flight finish, new calls fail with PoolClosed, then the workers stop", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const pool = yield* WorkerPool.make({ ...workerCommand("python"), min: 2 }).pipe(Scope.provide(scope))
      yield* waitForWorkers(pool, 2)
      const pids = yield* pool.pids
      const inFlight = yield* Effect.forkChild(
        Effect.all([pool.call(Delay, { ms: 400n }), pool.call(Delay, { ms: 300n })], { concurrency: "unbounded" })
      )
      yield* eventually("2 calls in flight", Effect.map(pool.stats, (s) => s.busy === 2))
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* Effect.sleep(50)
      const late = yield* Effect.flip(pool.call(Sum, { a: 1n, b: 1n }))
      assert.strictEqual(late._tag, "PoolClosed")
      const answers = yield* Fiber.join(inFlight)
      assert.deepStrictEqual(answers.map((a) => a.ms), [400n, 300n])
      yield* Fiber.join(closing)
      assert.deepStrictEqual(pids.filter(alive), [])
    }).pipe(Effect.provide(Responders.empty)))

  it.live("closing while a call waits for a starting worker: the call fails with PoolClosed, nothing hangs", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const pool = yield* WorkerPool.make({ ...workerCommand("python"), min: 0, max: 1, drainTimeout: "10 millis" }).pipe(
        Scope.provide(scope)
      )
      const waiting = yield* Effect.forkChild(Effect.flip(pool.call(Sum, { a: 1n, b: 1n })))
      const queued = yield* Effect.forkChild(Effect.flip(pool.call(Sum, { a: 2n, b: 2n })))
      yield* Effect.sleep(5)
      yield* Scope.close(scope, Exit.void)
      const [first, second] = [yield* Fiber.join(waiting), yield* Fiber.join(queued)]
      assert.strictEqual(first._tag, "PoolClosed")
      assert.strictEqual(second._tag, "PoolClosed")
    }).pipe(Effect.provide(Responders.empty)))

  it.live("a worker command that cannot start: calls fail with SpawnError after the retries", () =>
    withPool({ command: "/nonexistent/worker", min: 0, max: 1, spawnRetry: undefined }, (pool) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(pool.call(Sum, { a: 1n, b: 1n }))
        assert.strictEqual(error._tag, "SpawnError")
        assert.include(error.message, "ENOENT")
      })))
})
