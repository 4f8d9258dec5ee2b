/**
 * An Effect RPC group served over AMP and called through its typed client; a Twisted peer could be
 * either end (the group's Rpcs are plain AMP commands). Prints one of effect-amp's metrics at the end.
 *
 *     node examples/effect-rpc.ts
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Layer, Metric, Schema } from "effect"
import { Rpc, RpcGroup } from "effect/rpc"
import { AmpRpc, Argument, Client, Observability, Responders, Server } from "effect-amp"

class ZeroDivision extends Schema.TaggedError<ZeroDivision>()("ZeroDivision", { message: Schema.String }) {}

// Payloads and successes are structs of AMP argument types; errors are TaggedError classes.
const Calculator = RpcGroup.make(
  Rpc.make("Sum", {
    payload: { a: Argument.Integer, b: Argument.Integer },
    success: Schema.Struct({ total: Argument.Integer })
  }),
  Rpc.make("Divide", {
    payload: { numerator: Argument.Integer, denominator: Argument.Integer },
    success: Schema.Struct({ result: Argument.Float }),
    error: ZeroDivision
  })
)
// the wire code Twisted's calculator uses for this error (default: the class's tag)
const options: AmpRpc.Options = { errorCodes: { ZeroDivision: "ZERO_DIVISION" } }

// The group's handlers, written as for any effect/rpc server.
const Handlers = Calculator.toLayer({
  Sum: ({ a, b }) => Effect.succeed({ total: a + b }),
  Divide: ({ numerator, denominator }) =>
    denominator === 0n
      ? Effect.fail(new ZeroDivision({ message: `cannot divide ${numerator} by zero` }))
      : Effect.succeed({ result: Number(numerator) / Number(denominator) })
})

// An AMP server answering the group's Rpcs as AMP commands.
const ServerLive = Server.layer({ port: 0 }).pipe(
  Layer.provide(AmpRpc.layer(Calculator, options)),
  Layer.provide(Handlers)
)

const program = Effect.gen(function*() {
  const server = yield* Server.AmpServer
  const port = server.address._tag === "Tcp" ? server.address.port : 0
  const connection = yield* Client.connect({ port })
  const calculator = AmpRpc.makeClient(connection.dispatcher, Calculator, options)

  const { total } = yield* calculator.Sum({ a: 40n, b: 2n })
  yield* Console.log(`Sum(40, 2) = ${total}`)
  const error = yield* Effect.flip(calculator.Divide({ numerator: 1n, denominator: 0n }))
  yield* Console.log(`Divide(1, 0) failed with ${error._tag}: ${error.message}`)

  const finished = yield* Metric.value(
    Metric.withAttributes(Observability.metrics.clientCallsFinished, { command: "Divide", outcome: "ZERO_DIVISION" })
  )
  yield* Console.log(`amp.client.calls.finished{command=Divide,outcome=ZERO_DIVISION} = ${finished.count}`)
}).pipe(Effect.scoped, Effect.provide([ServerLive, Responders.empty]))

NodeRuntime.runMain(program)
