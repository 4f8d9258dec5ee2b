/**
 * The worker command set (test/twisted/worker.py and test/support/node-worker.ts answer it) and how to
 * start each kind of worker.
 */
import * as Path from "node:path"
import * as Argument from "../../src/Argument.ts"
import * as Command from "../../src/Command.ts"
import { node, root } from "./process.ts"

/** `Sum(a, b) → total`. */
export const Sum = Command.make("Sum", {
  arguments: { a: Argument.Integer, b: Argument.Integer },
  response: { total: Argument.Integer }
})

/** Answers after `ms` milliseconds. */
export const Delay = Command.make("Delay", {
  arguments: { ms: Argument.Integer },
  response: { ms: Argument.Integer }
})

/** Keeps the worker's CPU busy for `ms` milliseconds (blocking), then answers `{ ms }`. */
export const Spin = Command.make("Spin", {
  arguments: { ms: Argument.Integer },
  response: { ms: Argument.Integer }
})

/** The worker's process id. */
export const Pid = Command.make("Pid", { response: { pid: Argument.Integer } })

/** Writes `message` to stderr and exits with `code` at once (never answers). */
export const Crash = Command.make("Crash", { arguments: { code: Argument.Integer, message: Argument.Unicode } })

export const pythonWorker = Path.join(root, "test", "twisted", "worker.py")
export const nodeWorker = Path.join(root, "test", "support", "node-worker.ts")

/** How to spawn a worker of each kind (extra arguments: `--fds 3,4`, `--ignore-term`). */
export const workerCommand = (kind: "python" | "node", ...extra: ReadonlyArray<string>) =>
  kind === "python"
    ? { command: "/usr/bin/python3", args: [pythonWorker, ...extra] }
    : { command: node, args: [nodeWorker, ...extra] }
