/**
 * Twisted's AMP howto calculator client (ampclient.py), on effect-amp: a sum, and a division by zero
 * whose `ZERO_DIVISION` error arrives as the typed `ZeroDivision` error, caught by its tag.
 *
 *     npm run example -- calculator-server            # prints LISTENING <port>
 *     npm run example -- calculator-client --port <port>
 *
 * Without `--port` it starts the calculator server in-process first, so it also runs on its own.
 * It works the same against Twisted's ampserver.py (see examples/twisted-interop.ts).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect } from "effect"
import { Client, Responders, Server } from "effect-amp"
import { parseArgs } from "node:util"
import { CalculatorResponders, Divide, Sum } from "./calculator-protocol.ts"

const { values } = parseArgs({
  options: { port: { type: "string" }, host: { type: "string", default: "127.0.0.1" } }
})

/** The port to use: `--port`, or a calculator server started here. */
const serverPort = Effect.gen(function*() {
  if (values.port !== undefined) return Number(values.port)
  const server = yield* Server.make({ port: 0 }).pipe(Effect.provide(CalculatorResponders))
  yield* Console.log("(no --port: started a calculator server in this process)")
  return server.port
})

const doMath = Effect.gen(function*() {
  const port = yield* serverPort
  // AMP is symmetric; this client answers no commands itself
  const connection = yield* Client.connect({ host: values.host, port }).pipe(Effect.provide(Responders.empty))
  const amp = connection.dispatcher

  const { total } = yield* amp.callRemote(Sum, { a: 13n, b: 81n })
  yield* Console.log(`Sum: 13 + 81 = ${total}`)

  const result = yield* amp.callRemote(Divide, { numerator: 1234n, denominator: 0n }).pipe(
    Effect.map(({ result }) => result),
    Effect.catchTag("ZeroDivision", (error) =>
      Effect.as(Console.log(`Divided by zero (${error.message}): returning INF`), Infinity))
  )
  yield* Console.log(`Done with math: [${total}, ${result}]`)
}).pipe(Effect.scoped)

NodeRuntime.runMain(doMath)
