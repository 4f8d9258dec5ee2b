/**
 * The commands of Twisted's AMP howto calculator (docs/core/howto/amp.rst, examples/ampserver.py),
 * shared by the calculator examples:
 *
 * ```python
 * class Sum(amp.Command):
 *     arguments = [(b'a', amp.Integer()), (b'b', amp.Integer())]
 *     response = [(b'total', amp.Integer())]
 *
 * class Divide(amp.Command):
 *     arguments = [(b'numerator', amp.Integer()), (b'denominator', amp.Integer())]
 *     response = [(b'result', amp.Float())]
 *     errors = {ZeroDivisionError: b'ZERO_DIVISION'}
 * ```
 *
 * Not an example on its own: the others import it.
 */
import { Console, Effect, Schema } from "effect"
import { Argument, Command, Responders } from "effect-amp"

/** Twisted's `ZeroDivisionError`, sent on the wire as the error code `ZERO_DIVISION`. */
export class ZeroDivision extends Schema.TaggedError<ZeroDivision>()("ZeroDivision", {
  message: Schema.String
}) {}

export const Sum = Command.make("Sum", {
  arguments: { a: Argument.Integer, b: Argument.Integer },
  response: { total: Argument.Integer }
})

export const Divide = Command.make("Divide", {
  arguments: { numerator: Argument.Integer, denominator: Argument.Integer },
  response: { result: Argument.Float },
  errors: { ZERO_DIVISION: ZeroDivision }
})

/** The server side, as in Twisted's `Math(amp.AMP)`: it logs each operation. */
export const CalculatorResponders = Responders.layer(
  Responders.handle(Sum, ({ a, b }) =>
    Effect.gen(function*() {
      const total = a + b
      yield* Console.log(`Did a sum: ${a} + ${b} = ${total}`)
      return { total }
    })),
  Responders.handle(Divide, ({ numerator, denominator }) =>
    Effect.gen(function*() {
      if (denominator === 0n) return yield* new ZeroDivision({ message: "float division by zero" })
      const result = Number(numerator) / Number(denominator)
      yield* Console.log(`Divided: ${numerator} / ${denominator} = ${result}`)
      return { result }
    }))
)
