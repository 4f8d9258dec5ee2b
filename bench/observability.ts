/**
 * What tracing and metrics cost per call, measured as CPU time (less sensitive to a busy machine than
 * wall-clock rates): sequential `Sum` calls between two connections in this process over an in-memory
 * socket pair, both ends instrumented alike, for each setting in turn, interleaved over several rounds.
 *
 *   node bench/observability.ts [--calls 20000] [--rounds 4]
 *
 * Prints one line per round and setting: `round setting µs-CPU-per-call` (client + server side).
 */
import { Effect } from "effect"
import { Argument, Command, Connection, MemorySocket, Responders } from "../src/index.ts"

const arg = (name: string, fallback: number): number => {
  const at = process.argv.indexOf(name)
  return at >= 0 ? Number(process.argv[at + 1]) : fallback
}
const calls = arg("--calls", 20_000)
const rounds = arg("--rounds", 4)

const Sum = Command.make("Sum", {
  arguments: { a: Argument.Integer, b: Argument.Integer },
  response: { total: Argument.Integer }
})
const Handlers = Responders.layer(Responders.handle(Sum, ({ a, b }) => Effect.succeed({ total: a + b })))

const settings: Record<string, Connection.Options> = {
  off: { disableTracing: true, disableMetrics: true },
  metrics: { disableTracing: true },
  tracing: { disableMetrics: true },
  on: {}
}

const measure = (options: Connection.Options) =>
  Effect.gen(function*() {
    const [a, b] = yield* MemorySocket.pair
    yield* Connection.make(b, options).pipe(Effect.provide(Handlers))
    const client = yield* Connection.make(a, options).pipe(Effect.provide(Responders.empty))
    for (let i = 0; i < 1000; i++) yield* client.dispatcher.callRemote(Sum, { a: 1n, b: 2n }) // warm-up
    const start = process.cpuUsage()
    for (let i = 0; i < calls; i++) yield* client.dispatcher.callRemote(Sum, { a: 1n, b: 2n })
    const used = process.cpuUsage(start)
    return (used.user + used.system) / calls
  }).pipe(Effect.scoped)

for (let round = 1; round <= rounds; round++) {
  for (const [name, options] of Object.entries(settings)) {
    const micros = await Effect.runPromise(measure(options))
    process.stdout.write(`${round} ${name} ${micros.toFixed(1)}\n`)
  }
}
