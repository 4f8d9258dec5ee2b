/**
 * Twisted's AMP howto calculator server (ampserver.py), on effect-amp.
 *
 *     npm run example -- calculator-server [--port 1234] [--host 127.0.0.1]
 *
 * Prints `LISTENING <port>` once it accepts connections (`--port 0`, the default, picks a free port),
 * logs every operation, and serves until Ctrl-C / SIGTERM (then exits 0). Call it with
 * `npm run example -- calculator-client --port <port>`, with `npx effect-amp call 127.0.0.1:<port> Sum a=13 b=81`, or
 * with Twisted's own ampclient.py.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Console, Effect, Exit } from "effect"
import { Server } from "effect-amp"
import { parseArgs } from "node:util"
import { CalculatorResponders } from "./calculator-protocol.ts"

const { values } = parseArgs({
  options: { port: { type: "string", default: "0" }, host: { type: "string", default: "127.0.0.1" } }
})

const program = Effect.gen(function*() {
  const server = yield* Server.make({ port: Number(values.port), host: values.host })
  yield* Console.log(`LISTENING ${server.port}`)
  return yield* Effect.never
}).pipe(Effect.scoped, Effect.provide(CalculatorResponders))

// Ctrl-C / SIGTERM interrupt the program: that is how this server normally ends, so exit 0
NodeRuntime.runMain(program, {
  teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? 0 : 1)
})
