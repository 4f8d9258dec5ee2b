/**
 * The AMP client as a Layer in an Effect application. `Client.layer` connects and provides the
 * connection's `Dispatcher`; a domain service (`Calculator`) is built on it, and the program only knows
 * `Calculator`. The connection opens when the layer is built and closes when the program ends.
 *
 *     npm run example -- layer
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Context, Effect, Layer } from "effect"
import { Client, Dispatcher, Responders, Server } from "effect-amp"
import { CalculatorResponders, Divide, Sum } from "./calculator-protocol.ts"

/** A domain service; its users do not know it speaks AMP. */
class Calculator extends Context.Service<Calculator, {
  readonly add: (a: bigint, b: bigint) => Effect.Effect<bigint>
  readonly divide: (a: bigint, b: bigint) => Effect.Effect<number | "undefined">
}>()("examples/Calculator") {}

/** `Calculator` over AMP: needs a `Dispatcher`. */
const CalculatorAmp = Layer.effect(
  Calculator,
  Effect.gen(function*() {
    const amp = yield* Dispatcher.Dispatcher
    return {
      add: (a, b) => amp.callRemote(Sum, { a, b }).pipe(Effect.map((r) => r.total), Effect.orDie),
      divide: (a, b) =>
        amp.callRemote(Divide, { numerator: a, denominator: b }).pipe(
          Effect.map((r): number | "undefined" => r.result),
          Effect.catchTag("ZeroDivision", () => Effect.succeed("undefined" as const)),
          Effect.orDie
        )
    }
  })
)

/** The application layer: Calculator ← Dispatcher (Client.layer) ← Responders (we answer nothing). */
const AppLayer = (port: number) =>
  CalculatorAmp.pipe(
    Layer.provide(Client.layer({ host: "127.0.0.1", port })),
    Layer.provide(Responders.empty)
  )

/** The application: it only needs Calculator. */
const app = Effect.gen(function*() {
  const calculator = yield* Calculator
  const sum = yield* calculator.add(40n, 2n)
  yield* Console.log(`app: 40 + 2 = ${sum}`)
  const quotient = yield* calculator.divide(22n, 7n)
  yield* Console.log(`app: 22 / 7 = ${quotient}`)
  const undefinedQuotient = yield* calculator.divide(1n, 0n)
  yield* Console.log(`app: 1 / 0 = ${undefinedQuotient}`)
})

const main = Effect.gen(function*() {
  // a calculator server for the example, in the same process (Server.layer works the same way)
  const server = yield* Server.make({ port: 0 }).pipe(Effect.provide(CalculatorResponders))
  const port = server.port
  yield* Console.log(`calculator server on port ${port}`)
  yield* app.pipe(Effect.provide(AppLayer(port)))
  yield* Console.log("app done: the connection was closed with the layer")
}).pipe(Effect.scoped)

NodeRuntime.runMain(main)
