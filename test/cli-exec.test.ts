/**
 * `amp call --exec "<command line>"`: the CLI starts a worker (Twisted on `twisted.internet.stdio`, or
 * Node on `ChildProcess.serveParent`), makes the call over its stdin/stdout, prints the answer like any
 * other call, exits as for sockets (0 answer, 1 error answer, 2 the worker failed or timed out, 64 usage),
 * and leaves no process behind.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { splitCommandLine } from "../src/cli/words.ts"
import { alive, killRemaining, node, root, run, type RunResult } from "./support/process.ts"
import { nodeWorker, pythonWorker } from "./support/workers.ts"

const amp = (...args: ReadonlyArray<string>): Promise<RunResult> =>
  run(node, [Path.join(root, "src", "cli", "bin.ts"), ...args], { timeoutMillis: 50_000 })

const python = `/usr/bin/python3 ${pythonWorker}`
const tmp = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-amp-exec-"))
afterAll(() => {
  killRemaining()
  Fs.rmSync(tmp, { recursive: true, force: true })
})

// one at a time: each test starts two processes (amp and its worker), which takes seconds on a loaded 2-core machine
describe("amp call --exec", { timeout: 60_000 }, () => {
  it("a Twisted worker: prints the answer, exit 0, the worker is gone", async () => {
    const [sum, pid] = await Promise.all([amp("call", "--timeout", "40000", "--exec", python, "Sum", "a=13", "b=81"), amp("call", "--timeout", "40000", "--exec", python, "Pid")])
    assert.strictEqual(sum.stdout, "total=94\n", sum.stderr)
    assert.strictEqual(sum.code, 0)
    assert.strictEqual(pid.code, 0, pid.stderr)
    const workerPid = Number(/^pid=(\d+)$/m.exec(pid.stdout)?.[1])
    assert.isAbove(workerPid, 0)
    assert.isFalse(alive(workerPid), "the worker was stopped before amp exited")
  })

  it("a Node worker, --json", async () => {
    const r = await amp("call", "--timeout", "40000", "--exec", `${node} ${nodeWorker}`, "Sum", "a=1", "b=2", "--json")
    assert.strictEqual(r.code, 0, r.stderr)
    assert.deepStrictEqual(JSON.parse(r.stdout), { total: "3" }, r.stderr)
    assert.strictEqual(r.code, 0)
  })

  it("an error answer: ERROR line, exit 1", async () => {
    const r = await amp("call", "--timeout", "40000", "--exec", python, "NoSuchCommand")
    assert.match(r.stdout, /^ERROR UNHANDLED: /)
    assert.strictEqual(r.code, 1)
  })

  it("the worker crashes: exit 2 with its exit code and last stderr lines", async () => {
    const r = await amp("call", "--timeout", "40000", "--exec", python, "Crash", "code=5", "message=ImportError: no module named numpy")
    assert.strictEqual(r.code, 2)
    assert.strictEqual(r.stdout, "")
    assert.include(r.stderr, "exited with code 5")
    assert.include(r.stderr, "ImportError: no module named numpy")
  })

  it("a command that does not exist: exit 2, cannot start", async () => {
    const r = await amp("call", "--exec", "/nonexistent/worker --flag", "Sum")
    assert.strictEqual(r.code, 2)
    assert.include(r.stderr, "cannot start /nonexistent/worker --flag")
  })

  it("no answer within --timeout from a worker that ignores SIGTERM: exit 2, the worker is killed", async () => {
    const pidFile = Path.join(tmp, "stuck.pid")
    // the shell writes its pid, then becomes the worker (exec keeps the pid)
    const r = await amp(
      "call", "--timeout", "1500", "--exec",
      `/bin/sh -c 'echo $$ > ${pidFile}; exec ${python} --ignore-term'`,
      "Delay", "ms=600000"
    )
    assert.strictEqual(r.code, 2, r.stderr)
    assert.include(r.stderr, "no answer from /bin/sh -c")
    const pid = Number(Fs.readFileSync(pidFile, "utf8").trim())
    assert.isAbove(pid, 0)
    assert.isFalse(alive(pid), "the stuck worker was killed before amp exited")
  })

  it("--no-answer: the box is sent, exit 0", async () => {
    const r = await amp("call", "--timeout", "40000", "--exec", python, "Sum", "a=1", "b=2", "--no-answer")
    assert.strictEqual(r.code, 0, r.stderr)
    assert.strictEqual(r.stdout, "")
  })

  it("usage errors: --exec with --unix or --tls, an unclosed quote: exit 64", async () => {
    const results = await Promise.all([
      amp("call", "--exec", python, "--unix", "/tmp/x.sock", "Sum"),
      amp("call", "--exec", python, "--tls", "Sum"),
      amp("call", "--exec", "python3 'worker.py", "Sum")
    ])
    for (const r of results) assert.strictEqual(r.code, 64, r.stderr)
    assert.include(results[2]!.stderr, "unclosed '")
  })
})

describe("splitCommandLine", () => {
  it("splits like a shell for a simple command, without expansion", () => {
    assert.deepStrictEqual(splitCommandLine("python3  worker.py --fds 3,4"), ["python3", "worker.py", "--fds", "3,4"])
    assert.deepStrictEqual(splitCommandLine(`sh -c 'echo $HOME; exit 1'`), ["sh", "-c", "echo $HOME; exit 1"])
    assert.deepStrictEqual(splitCommandLine(`a "b \\"c\\" \\x" d\\ e ''`), ["a", `b "c" \\x`, "d e", ""])
    assert.throws(() => splitCommandLine("   "), /empty command line/)
    assert.throws(() => splitCommandLine(`a "b`), /unclosed "/)
  })
})
