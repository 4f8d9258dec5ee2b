/**
 * ChildProcess: AMP over a child's pipes with real processes — a Twisted worker on
 * `twisted.internet.stdio` and a Node worker on `ChildProcess.serveParent`, over stdin/stdout and over
 * trial's descriptors 3 and 4, and our Node worker under a Twisted parent that speaks trial's convention.
 * Crashes, kills and exits fail calls with `ChildExited` (code or signal,
 * last stderr lines); closing the scope leaves no process, no zombie and no descriptor behind.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as Fs from "node:fs"
import * as ChildProcess from "../src/ChildProcess.ts"
import * as Responders from "../src/Responders.ts"
import * as Path from "node:path"
import { alive, node, root, run } from "./support/process.ts"
import { Crash, Delay, Pid, Sum, workerCommand } from "./support/workers.ts"
import { eventually } from "./support/wait.ts"

const fdCount = () => Fs.readdirSync("/proc/self/fd").length

const kinds = ["python", "node"] as const
const layouts = [
  { name: "stdin/stdout", extra: [] as Array<string>, fds: undefined },
  { name: "fds 3 and 4 (trial)", extra: ["--fds", "3,4"], fds: { write: 3, read: 4 } }
] as const

const spawnWorker = (kind: (typeof kinds)[number], layout: (typeof layouts)[number] = layouts[0], ...more: Array<string>) =>
  ChildProcess.spawn({
    ...workerCommand(kind, ...layout.extra, ...more),
    ...(layout.fds === undefined ? {} : { fds: layout.fds })
  })

// real processes: generous per-test bounds, since a loaded 2-core machine may take seconds to start one
describe("ChildProcess", { timeout: 90_000 }, () => {
  for (const kind of kinds) {
    for (const layout of layouts) {
      it.live(`${kind} worker over ${layout.name}: calls, then nothing left after the scope closes`, () =>
        Effect.gen(function*() {
          const before = fdCount()
          const pid = yield* Effect.gen(function*() {
            const child = yield* spawnWorker(kind, layout)
            const results = yield* Effect.forEach(
              Array.from({ length: 20 }, (_, i) => BigInt(i)),
              (i) => child.callRemote(Sum, { a: i, b: 1000n }),
              { concurrency: "unbounded" }
            )
            assert.deepStrictEqual(results.map((r) => r.total), Array.from({ length: 20 }, (_, i) => BigInt(i) + 1000n))
            const { pid } = yield* child.callRemote(Pid, {})
            assert.strictEqual(Number(pid), child.pid)
            assert.isTrue(alive(child.pid))
            return child.pid
          }).pipe(Effect.scoped)
          // the scope waited for the exit: the process is gone and reaped (no zombie), every pipe closed
          assert.isFalse(alive(pid), `pid ${pid} still exists`)
          yield* eventually("descriptors closed", Effect.sync(() => fdCount() <= before), 2_000)
        }).pipe(Effect.provide(Responders.empty)))
    }

    it.live(`${kind} worker crashes mid-call: every outstanding call fails with ChildExited (code, stderr)`, () =>
      Effect.gen(function*() {
        const child = yield* spawnWorker(kind)
        const slow = yield* Effect.forkChild(Effect.flip(child.callRemote(Delay, { ms: 10_000n })))
        yield* child.callRemote(Sum, { a: 1n, b: 1n })
        const crash = yield* Effect.flip(child.callRemote(Crash, { code: 3n, message: "worker blew up: ValueError" }))
        const lost = yield* Fiber.join(slow)
        for (const error of [crash, lost]) {
          assert.strictEqual(error._tag, "ChildExited")
          if (error._tag !== "ChildExited") continue
          assert.strictEqual(error.exitCode, 3)
          assert.isNull(error.signal)
          assert.strictEqual(error.pid, child.pid)
          assert.include(error.stderr, "worker blew up: ValueError")
          assert.include(error.message, "exited with code 3")
          assert.include(error.message, "worker blew up: ValueError")
        }
        // later calls fail the same way, at once
        const later = yield* Effect.flip(child.callRemote(Sum, { a: 1n, b: 2n }))
        assert.strictEqual(later._tag, "ChildExited")
        assert.deepStrictEqual(yield* child.exited, { exitCode: 3, signal: null })
      }).pipe(Effect.scoped, Effect.provide(Responders.empty)))

    it.live(`${kind} worker killed by SIGKILL mid-call: ChildExited with the signal`, () =>
      Effect.gen(function*() {
        const child = yield* spawnWorker(kind)
        yield* child.callRemote(Sum, { a: 1n, b: 1n })
        const slow = yield* Effect.forkChild(Effect.flip(child.callRemote(Delay, { ms: 10_000n })))
        yield* Effect.sleep(50)
        process.kill(child.pid, "SIGKILL")
        const error = yield* Fiber.join(slow)
        assert.strictEqual(error._tag, "ChildExited")
        if (error._tag === "ChildExited") {
          assert.strictEqual(error.signal, "SIGKILL")
          assert.isNull(error.exitCode)
          assert.include(error.message, "was killed by SIGKILL")
        }
      }).pipe(Effect.scoped, Effect.provide(Responders.empty)))

    it.live(`${kind} worker that ignores SIGTERM: SIGKILL after killAfter, no process left`, () =>
      Effect.gen(function*() {
        let pid = 0
        const started = Date.now()
        yield* Effect.gen(function*() {
          const child = yield* ChildProcess.spawn({
            ...workerCommand(kind, "--ignore-term"),
            terminateAfter: "100 millis",
            killAfter: "300 millis"
          })
          pid = child.pid
          yield* child.callRemote(Sum, { a: 1n, b: 1n })
          // a call in flight keeps the worker busy (the Node worker would otherwise exit at end of input)
          yield* Effect.forkChild(Effect.ignore(child.callRemote(Delay, { ms: 60_000n })))
          yield* Effect.sleep(20)
        }).pipe(Effect.scoped)
        const took = Date.now() - started
        assert.isFalse(alive(pid), `pid ${pid} still exists`)
        assert.isAtLeast(took, 300, "SIGTERM was ignored, so the scope waited for killAfter before SIGKILL")
      }).pipe(Effect.provide(Responders.empty)))
  }

  it.live("the child's side under a Twisted parent speaking trial's fds 3 and 4 (serveParent)", () =>
    Effect.gen(function*() {
      const parent = Path.join(root, "test", "twisted", "trial_parent.py")
      const r = yield* Effect.promise(() =>
        run("/usr/bin/python3", [parent, node, Path.join(root, "test", "support", "node-worker.ts"), "--fds", "3,4"], {
          timeoutMillis: 80_000
        })
      )
      assert.strictEqual(r.code, 0, r.stderr)
      // the answer, then the worker exits 0 by itself once Twisted closes the pipe
      assert.strictEqual(r.stdout, "total=5\nexit 0\n", r.stderr)
    }))

  it.live("a command that does not exist fails with SpawnError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(ChildProcess.spawn({ command: "/nonexistent/amp-worker", args: ["x y"] }))
      assert.strictEqual(error._tag, "SpawnError")
      assert.include(error.message, "cannot start /nonexistent/amp-worker 'x y'")
      assert.include(error.message, "ENOENT")
    }).pipe(Effect.scoped, Effect.provide(Responders.empty)))

  it.live("a child that exits at once without speaking AMP: calls fail with ChildExited, no unhandled EPIPE", () =>
    Effect.gen(function*() {
      const child = yield* ChildProcess.spawn({
        command: "/bin/sh",
        args: ["-c", "echo 'no such module: worker' >&2; exit 7"]
      })
      yield* child.exited
      const errors = yield* Effect.forEach(
        [1n, 2n, 3n],
        (a) => Effect.flip(child.callRemote(Sum, { a, b: 1n })),
        { concurrency: "unbounded" }
      )
      for (const error of errors) {
        assert.strictEqual(error._tag, "ChildExited")
        if (error._tag === "ChildExited") {
          assert.strictEqual(error.exitCode, 7)
          assert.deepStrictEqual(error.stderr, ["no such module: worker"])
        }
      }
    }).pipe(Effect.scoped, Effect.provide(Responders.empty)))

  it.live("a child that closed its input: our writes hit EPIPE, which is an error value, not a crash", () =>
    Effect.gen(function*() {
      const child = yield* ChildProcess.spawn({
        command: "/bin/sh",
        args: ["-c", "exec 0<&-; echo 'closed stdin' >&2; sleep 1; exit 4"]
      })
      yield* Effect.sleep(200)
      const errors = yield* Effect.forEach(
        [1n, 2n, 3n],
        (a) => Effect.flip(child.callRemote(Sum, { a, b: 1n })),
        { concurrency: "unbounded" }
      )
      for (const error of errors) {
        assert.strictEqual(error._tag, "ChildExited", String(error))
        if (error._tag === "ChildExited") {
          assert.strictEqual(error.exitCode, 4)
          assert.include(error.stderr, "closed stdin")
        }
      }
    }).pipe(Effect.scoped, Effect.provide(Responders.empty)))

  it.live("many children started and closed leave no descriptor behind", () =>
    Effect.gen(function*() {
      const before = fdCount()
      const pids: Array<number> = []
      for (let i = 0; i < 4; i++) {
        yield* Effect.gen(function*() {
          const child = yield* spawnWorker(i % 2 === 0 ? "node" : "python", layouts[i % 4 < 2 ? 0 : 1])
          pids.push(child.pid)
          yield* child.callRemote(Sum, { a: 1n, b: 2n })
        }).pipe(Effect.scoped)
      }
      assert.deepStrictEqual(pids.filter(alive), [])
      yield* eventually("descriptors closed", Effect.sync(() => fdCount() <= before), 2_000)
    }).pipe(Effect.provide(Responders.empty)))
})
