/**
 * `effect-amp call`: one AMP command with raw values, as Twisted's `callRemoteString` does it. Connects (TCP,
 * a Unix socket, or a command started with `--exec`, over its stdin/stdout), optionally runs StartTLS first
 * (AMP's TLS starts on a plain connection), sends the box, waits for the answer, and reports it.
 *
 * @internal
 */
import { Effect, Exit } from "effect"
import * as Fs from "node:fs"
import type { Box } from "../Box.ts"
import * as ChildProcess from "../ChildProcess.ts"
import * as Client from "../Client.ts"
import { ANSWER } from "../Command.ts"
import * as Responders from "../Responders.ts"
import type { TlsOptions } from "../StartTLS.ts"
import { boxToJson, boxToLines, escapeKey, escapeText } from "./format.ts"
import { type Target, UsageError } from "./values.ts"

/** TLS settings from the command line (file paths). */
export interface TlsFlags {
  readonly ca?: string | undefined
  readonly cert?: string | undefined
  readonly key?: string | undefined
  /** false: accept any certificate (insecure). */
  readonly verify: boolean
  /** The name the server certificate must carry (default: the host connected to). */
  readonly servername?: string | undefined
}

/** What to call. */
export interface CallOptions {
  readonly target: Target
  readonly command: string
  readonly box: Box
  readonly requiresAnswer: boolean
  readonly timeoutMillis: number
  readonly tls?: TlsFlags | undefined
}

/** How a call ended. */
export type CallOutcome =
  | { readonly _tag: "Answer"; readonly box: Box }
  | { readonly _tag: "Sent" }
  | { readonly _tag: "RemoteError"; readonly code: string; readonly description: string }
  | { readonly _tag: "ConnectionFailed"; readonly reason: string }

const readPem = (path: string, what: string): Uint8Array => {
  try {
    return Fs.readFileSync(path)
  } catch (e) {
    throw new UsageError(`cannot read the ${what} ${path}: ${(e as Error).message}`)
  }
}

/** Reads the TLS files into library options. Throws `UsageError`. */
export const tlsOptions = (flags: TlsFlags): TlsOptions => {
  if ((flags.cert === undefined) !== (flags.key === undefined)) {
    throw new UsageError("--cert and --key go together")
  }
  return {
    ca: flags.ca === undefined ? undefined : readPem(flags.ca, "CA certificate (--ca)"),
    cert: flags.cert === undefined ? undefined : readPem(flags.cert, "certificate (--cert)"),
    key: flags.key === undefined ? undefined : readPem(flags.key, "key (--key)"),
    verify: flags.verify,
    servername: flags.servername
  }
}

const describeTarget = (target: Target): string =>
  "exec" in target ? target.exec.join(" ") : "path" in target ? target.path : `${target.host}:${target.port}`

/** Connects to the target: a socket, or a child process (`--exec`) whose exit fails the call with its status. */
const open = (target: Target, timeoutMillis: number) =>
  "exec" in target
    ? Effect.map(
      ChildProcess.spawn({ command: target.exec[0]!, args: target.exec.slice(1), killAfter: "2 seconds" }),
      (child) => ({ connection: child.connection, callRemoteRaw: child.callRemoteRaw })
    )
    : Effect.map(
      Client.connect({ ...("path" in target ? { path: target.path } : target), connectTimeout: timeoutMillis }),
      (connection) => ({ connection, callRemoteRaw: connection.dispatcher.callRemoteRaw })
    )

/** Calls the command; never fails (every ending is a {@link CallOutcome}). Throws `UsageError` for bad TLS files. */
export const call = (options: CallOptions): Effect.Effect<CallOutcome> =>
  Effect.gen(function*() {
    const tls = options.tls === undefined ? undefined : tlsOptions(options.tls)
    const program = Effect.gen(function*() {
      const { callRemoteRaw, connection } = yield* open(options.target, options.timeoutMillis)
      if (tls !== undefined) {
        const started = yield* Effect.exit(connection.startTLS(tls))
        if (Exit.isFailure(started)) {
          const error = started.cause.reasons.find((r) => r._tag === "Fail")?.error as
            | { _tag: string; message: string; code?: string; description?: string }
            | undefined
          const reason = error === undefined
            ? String(started.cause)
            : error._tag === "UnknownRemoteError"
            ? `the server refused StartTLS: ${error.code}: ${error.description}`
            : error.message
          return { _tag: "ConnectionFailed", reason } satisfies CallOutcome
        }
      }
      if (!options.requiresAnswer) {
        yield* callRemoteRaw(options.command, options.box, { requiresAnswer: false })
        // graceful: the box is flushed before the socket closes
        yield* connection.close({ graceful: true })
        return { _tag: "Sent" } satisfies CallOutcome
      }
      const answer = yield* callRemoteRaw(options.command, options.box)
      return { _tag: "Answer", box: answer } satisfies CallOutcome
    }).pipe(Effect.scoped, Effect.provide(Responders.empty))

    return yield* program.pipe(
      Effect.timeoutOrElse({
        duration: options.timeoutMillis,
        orElse: () =>
          Effect.succeed<CallOutcome>({
            _tag: "ConnectionFailed",
            reason: `no answer from ${describeTarget(options.target)} within ${options.timeoutMillis} ms`
          })
      }),
      Effect.catch((error): Effect.Effect<CallOutcome> => {
        switch (error._tag) {
          case "UnknownRemoteError":
            return Effect.succeed({ _tag: "RemoteError", code: error.code, description: error.description })
          case "UnhandledCommand":
            return Effect.succeed({ _tag: "RemoteError", code: "UNHANDLED", description: error.description })
          case "ConnectError":
            return Effect.succeed({ _tag: "ConnectionFailed", reason: error.message })
          default:
            return Effect.succeed({ _tag: "ConnectionFailed", reason: error.message })
        }
      })
    )
  })

/** The lines to print for an answer: `key=value` (escaped, `_answer` omitted), or JSON. */
export const renderAnswer = (box: Box, json: boolean): Array<string> =>
  json ? [JSON.stringify(boxToJson(box, new Set([ANSWER])), null, 2)] : boxToLines(box, new Set([ANSWER]))

/** The `ERROR <code>: <description>` line (escaped, one line). */
export const renderError = (code: string, description: string): string =>
  `ERROR ${escapeKey(code)}: ${escapeText(description)}`
