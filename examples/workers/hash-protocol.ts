/** The commands of examples/workers/hash-worker.ts (shared by the worker and examples/node-pool.ts). */
import { Argument, Command } from "effect-amp"

/** Hashes `text` with scrypt (CPU work); answers the hex digest and the worker's pid. */
export const Hash = Command.make("Hash", {
  arguments: { text: Argument.Unicode },
  response: { hex: Argument.Unicode, pid: Argument.Integer }
})

/** Answers after `ms` milliseconds (a long call, to show what happens when its worker dies). */
export const Sleep = Command.make("Sleep", {
  arguments: { ms: Argument.Integer },
  response: { pid: Argument.Integer }
})
