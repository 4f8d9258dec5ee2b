/**
 * The conformance client: runs every check of the conformance service against a server (ours or
 * Twisted's `test/twisted/peer.py`), each on a fresh connection with a 10 s timeout, and prints one
 * `PASS <name>` / `FAIL <name>: <reason>` line per check and `N passed, M failed`. The check names are
 * the same as peer.py's.
 *
 * Our connections run the same responders as the server (`Greet`, `Notify`, …), since the server calls
 * them back.
 *
 * @since 0.1.0
 */
import { Cause, Effect, Exit } from "effect"
import { X509Certificate } from "node:crypto"
import * as Fs from "node:fs"
import * as Client from "../Client.ts"
import type { TlsOptions } from "../StartTLS.ts"
import { show } from "./samples.ts"
import * as Server from "./server.ts"
import { CheckFailed, type CheckOptions, type Context } from "./checkSupport.ts"
import { checkNames, checks, unixCheckNames } from "./checks.ts"

export { CheckFailed, type CheckOptions } from "./checkSupport.ts"
export { checkNames, unixCheckNames } from "./checks.ts"

/**
 * Resolves the names given to `only` (what a user types: a check's name, or a command's name such as
 * `Sum`) to check names. Case does not matter; a name that is not a check selects every check whose
 * name starts with it (`Sum` → `SumPipelined1000`, `Echo` → every echo check). `unknown` lists the
 * names that select nothing.
 *
 * @since 0.1.0
 * @category checks
 */
export const resolveCheckNames = (
  only: ReadonlyArray<string>
): { readonly names: ReadonlyArray<string>; readonly unknown: ReadonlyArray<string> } => {
  const selected = new Set<string>()
  const unknown: Array<string> = []
  for (const name of only) {
    const wanted = name.toLowerCase()
    const all = [...checkNames, ...unixCheckNames]
    const exact = all.filter((c) => c.toLowerCase() === wanted)
    const matches = exact.length > 0 ? exact : all.filter((c) => c.toLowerCase().startsWith(wanted))
    if (matches.length === 0) unknown.push(name)
    for (const c of matches) selected.add(c)
  }
  return { names: [...checkNames, ...unixCheckNames].filter((c) => selected.has(c)), unknown }
}

const describeError = (error: unknown, timeoutMillis: number): string => {
  let text: string
  if (error instanceof CheckFailed) text = error.message
  else if (Cause.isTimeoutError(error)) text = `timed out after ${timeoutMillis / 1000} s`
  else if (typeof error === "object" && error !== null && "_tag" in error) {
    text = `${String((error as { _tag: unknown })._tag)}: ${String((error as { message?: unknown }).message ?? show(error))}`
  } else if (error instanceof Error) text = `${error.name}: ${error.message}`
  else text = show(error)
  return text.split(/\s+/).join(" ").trim() || "failed"
}

/**
 * The options cannot be used: an unreadable file, an unknown check name, `StartTLS` without `tlsCa`.
 *
 * @since 0.1.0
 * @category errors
 */
export class CheckConfigError extends Error {
  readonly _tag = "CheckConfigError"
}

const readPem = (path: string): Effect.Effect<string, CheckConfigError> =>
  Effect.try({
    try: () => Fs.readFileSync(path, "utf8"),
    catch: (e) => new CheckConfigError(`cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`)
  })

/** The CN of a PEM certificate's subject. */
const certificateCn = (pem: string): string | undefined => {
  try {
    const subject = new X509Certificate(pem).subject
    return /^CN=(.*)$/m.exec(subject)?.[1]
  } catch {
    return undefined
  }
}

/**
 * Runs the checks against `host:port` and prints one line per check, then `N passed, M failed`.
 *
 * @since 0.1.0
 * @category checks
 */
export const check = (options: CheckOptions): Effect.Effect<{ passed: number; failed: number }, CheckConfigError> =>
  Effect.gen(function*() {
    const print = options.print ?? ((line: string) => process.stdout.write(line + "\n"))
    const timeoutMillis = options.timeoutMillis ?? 10_000
    if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) {
      return yield* Effect.fail(new CheckConfigError("--tls-cert and --tls-key go together"))
    }
    const only = options.only === undefined ? undefined : resolveCheckNames(options.only)
    if (only !== undefined && only.unknown.length > 0) {
      return yield* Effect.fail(
        new CheckConfigError(`unknown check(s): ${only.unknown.join(", ")} (the checks: ${[...checkNames, ...unixCheckNames].join(", ")})`)
      )
    }
    const needsUnix = only?.names.find((name) => unixCheckNames.includes(name))
    if (needsUnix !== undefined && options.path === undefined) {
      return yield* Effect.fail(new CheckConfigError(`the ${needsUnix} check needs a Unix socket (--unix PATH)`))
    }
    if (only?.names.includes("StartTLS") === true && options.tlsCa === undefined) {
      return yield* Effect.fail(new CheckConfigError("the StartTLS check needs --tls-ca"))
    }
    let tls: TlsOptions | undefined
    let clientCertCn: string | undefined
    if (options.tlsCa !== undefined) {
      const ca = yield* readPem(options.tlsCa)
      const cert = options.tlsCert !== undefined ? yield* readPem(options.tlsCert) : undefined
      const key = options.tlsKey !== undefined ? yield* readPem(options.tlsKey) : undefined
      tls = { ca, ...(cert !== undefined ? { cert } : {}), ...(key !== undefined ? { key } : {}) }
      clientCertCn = cert !== undefined ? certificateCn(cert) : undefined
    }
    const state = Server.makeState()
    const responders = Server.layerWith(state)
    const ctx: Context = { options, tls, clientCertCn, state }
    const selected = checks.filter((c) =>
      (only === undefined ? true : only.names.includes(c.name)) && (c.needsTls !== true || tls !== undefined) &&
      (c.needsUnix !== true || options.path !== undefined)
    )
    let passed = 0
    let failed = 0
    for (const c of selected) {
      const exit = yield* Effect.gen(function*() {
        const conn = yield* Client.connect(
          options.path !== undefined ? { path: options.path } : { host: options.host, port: options.port }
        )
        yield* c.run(conn, ctx)
      }).pipe(
        Effect.scoped,
        Effect.timeout(timeoutMillis),
        Effect.provide(responders),
        Effect.exit
      )
      if (Exit.isSuccess(exit)) {
        passed++
        print(`PASS ${c.name}`)
      } else {
        failed++
        const failure = exit.cause.reasons.find(Cause.isFailReason)
        const die = exit.cause.reasons.find(Cause.isDieReason)
        const reason = failure !== undefined
          ? describeError(failure.error, timeoutMillis)
          : die !== undefined
          ? `defect: ${describeError(die.defect, timeoutMillis)}`
          : "interrupted"
        print(`FAIL ${c.name}: ${reason}`)
      }
    }
    print(`${passed} passed, ${failed} failed`)
    return { passed, failed }
  })
