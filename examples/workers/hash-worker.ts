/**
 * A Node AMP worker for examples/node-pool.ts: serves `Hash` and `Sleep` to its parent over file
 * descriptors 3 (in) and 4 (out), trial's convention, which leaves stdout and stderr free for logs.
 * Ends when the parent closes the pipe.
 */
import { Effect } from "effect"
import { ChildProcess, Responders } from "effect-amp"
import { scryptSync } from "node:crypto"
import { Hash, Sleep } from "./hash-protocol.ts"

const pid = BigInt(process.pid)

const Handlers = Responders.layer(
  Responders.handle(Hash, ({ text }) =>
    Effect.sync(() => ({ hex: scryptSync(text, "effect-amp", 16).toString("hex"), pid }))),
  Responders.handle(Sleep, ({ ms }) => Effect.as(Effect.sleep(Number(ms)), { pid }))
)

ChildProcess.serveParent({ fds: { read: 3, write: 4 } }).pipe(
  Effect.scoped,
  Effect.provide(Handlers),
  Effect.runPromise
).then(() => process.exit(0), (error: unknown) => {
  console.error(error)
  process.exit(1)
})
