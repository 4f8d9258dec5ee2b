/**
 * A Node AMP worker serving the command set of `workers.ts` on its stdio (or `--fds 3,4`), until the
 * parent closes the pipe. `--ignore-term` ignores SIGTERM (a stuck worker only SIGKILL ends).
 */
import { Effect } from "effect"
import * as ChildProcess from "../../src/ChildProcess.ts"
import * as Responders from "../../src/Responders.ts"
import { Crash, Delay, Pid, Spin, Sum } from "./workers.ts"

const argv = process.argv.slice(2)
const fdsAt = argv.indexOf("--fds")
const fds = fdsAt >= 0 ? argv[fdsAt + 1]!.split(",").map(Number) : undefined
if (argv.includes("--ignore-term")) process.on("SIGTERM", () => {})

const Handlers = Responders.layer(
  Responders.handle(Sum, ({ a, b }) => Effect.succeed({ total: a + b })),
  Responders.handle(Delay, ({ ms }) => Effect.as(Effect.sleep(Number(ms)), { ms })),
  Responders.handle(Spin, ({ ms }) =>
    Effect.sync(() => {
      const end = performance.now() + Number(ms)
      while (performance.now() < end) {
        // busy
      }
      return { ms }
    })),
  Responders.handle(Pid, () => Effect.succeed({ pid: BigInt(process.pid) })),
  Responders.handle(Crash, ({ code, message }) =>
    Effect.sync(() => {
      process.stderr.write(message + "\n", () => process.exit(Number(code)))
      return Effect.never
    }).pipe(Effect.flatten))
)

ChildProcess.serveParent(fds === undefined ? undefined : { fds: { read: fds[0]!, write: fds[1]! } }).pipe(
  Effect.scoped,
  Effect.provide(Handlers),
  Effect.runPromise
).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`node-worker: ${String(error)}\n`)
    process.exit(1)
  }
)
