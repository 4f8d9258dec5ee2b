/**
 * Exit codes of the `effect-amp` command, as a typed error carrying the code (read by the runtime's teardown).
 * The message has already been printed when this error is raised, so the runtime does not log it.
 *
 * @internal
 */
import { Console, Effect, Runtime } from "effect"

/** The exit codes. */
export const ExitCode = {
  /** Success. */
  ok: 0,
  /** `effect-amp call`: the peer answered with an error box; `effect-amp decode`: a framing error; `effect-amp check`: a check failed. */
  failed: 1,
  /** The connection could not be made or was lost (refused, TLS failure, timeout). */
  connection: 2,
  /** Bad command line (unknown option, malformed `key=value`, unreadable file). */
  usage: 64
} as const

/** Ends the program with `code` (the message was printed already). */
export class CliExit {
  readonly _tag = "CliExit"
  readonly code: number
  readonly [Runtime.errorExitCode]: number
  readonly [Runtime.errorReported] = false
  constructor(code: number) {
    this.code = code
    this[Runtime.errorExitCode] = code
  }
}

/** Prints `effect-amp: <message>` on stderr and fails with `code`. */
export const fail = (code: number, message: string): Effect.Effect<never, CliExit> =>
  Effect.andThen(Console.error(`effect-amp: ${message}`), Effect.fail(new CliExit(code)))

/** A usage error: prints the message and fails with exit code 64. */
export const usage = (message: string): Effect.Effect<never, CliExit> => fail(ExitCode.usage, message)
