/**
 * What running a responder produced, and how each result becomes boxes on the wire (Twisted's rules).
 * @internal
 */
import { Cause } from "effect"
import * as Command from "../Command.ts"

/**
 * The result of a responder for one incoming command.
 * - `Answer`: send the answer box.
 * - `AnswerThenClose`: send the answer, then close after flushing (Twisted's `QuitBox`).
 * - `Error`: a declared error (or a raw responder's error): send it; `fatal` closes after it.
 * - `Unknown`: anything else (a defect, an undeclared failure, undecodable arguments): send `UNKNOWN`
 *   and close, and log `cause`.
 */
export type Outcome =
  | { readonly _tag: "Answer"; readonly box: Map<string, Uint8Array> }
  | { readonly _tag: "AnswerThenClose"; readonly box: Map<string, Uint8Array> }
  | { readonly _tag: "Error"; readonly code: string; readonly description: string; readonly fatal: boolean }
  | { readonly _tag: "Unknown"; readonly reason: string; readonly cause: Cause.Cause<unknown> }

/** A failure that is not one of the command's declared errors: `UNKNOWN`, with its cause for the log. */
export const unknown = (reason: string, cause: Cause.Cause<unknown>): Outcome => ({ _tag: "Unknown", reason, cause })

/**
 * Maps a responder's failure to the outcome Twisted would produce: a declared error → its code; a defect
 * or anything else → `UNKNOWN` (and a close).
 */
export const fromCause = (command: Command.Any, cause: Cause.Cause<unknown>): Outcome => {
  for (const reason of cause.reasons) {
    if (reason._tag === "Fail") {
      const found = Command.errorCodeFor(command, reason.error)
      if (found !== undefined) {
        return {
          _tag: "Error",
          code: found.code,
          description: String((reason.error as { message?: unknown }).message ?? ""),
          fatal: found.fatal
        }
      }
    }
  }
  return unknown(describeCause(cause), cause)
}

/** One line saying what a cause is: "defect: Error: boom", "undeclared failure: …", "interrupted". */
export const describeCause = (cause: Cause.Cause<unknown>): string => {
  const first = cause.reasons[0]
  if (first === undefined) return "empty cause"
  switch (first._tag) {
    case "Die":
      return `defect: ${errorText(first.defect)}`
    case "Fail":
      return `undeclared failure: ${errorText(first.error)}`
    case "Interrupt":
      return "interrupted"
  }
}

const errorText = (u: unknown): string => {
  if (u instanceof Error) return `${u.name}: ${u.message}`
  if (typeof u === "object" && u !== null && "_tag" in u) {
    const message = (u as { message?: unknown }).message
    return `${String((u as { _tag: unknown })._tag)}${typeof message === "string" && message !== "" ? `: ${message}` : ""}`
  }
  return String(u)
}
