/** Bounded waiting helpers shared by the test suites. */
import { Effect, Option } from "effect"
import type * as Connection from "../../src/Connection.ts"

/** Has the connection ended (within `millis`)? */
export const endedWithin = (connection: Connection.Connection, millis: number) =>
  Effect.map(Effect.timeoutOption(connection.ended, millis), Option.isSome)

/** Waits (bounded) until `check` holds; dies with `what` when it does not within `millis`. */
export const eventually = (what: string, check: Effect.Effect<boolean>, millis = 5_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + millis
    while (!(yield* check)) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting for: ${what}`))
      yield* Effect.sleep(2)
    }
  })
