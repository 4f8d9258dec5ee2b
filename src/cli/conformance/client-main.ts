/**
 * Runnable conformance client (until `amp check` exists):
 * `node src/cli/conformance/client-main.ts --connect 127.0.0.1:PORT [--tls-ca ca] [--tls-cert c --tls-key k]
 * [--only a,b]`. Exits 0 only if every check passed.
 * @internal
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect } from "effect"
import { check } from "./client.ts"
import { parseFlags } from "./flags.ts"

const flags = parseFlags(process.argv.slice(2), ["connect", "tls-ca", "tls-cert", "tls-key", "only"], [])
const connect = flags.values["connect"] ?? ""
const colon = connect.lastIndexOf(":")
const host = connect.slice(0, colon)
const port = Number(connect.slice(colon + 1))
if (colon <= 0 || !Number.isInteger(port)) {
  process.stderr.write("--connect wants HOST:PORT\n")
  process.exit(2)
}
NodeRuntime.runMain(
  check({
    host,
    port,
    tlsCa: flags.values["tls-ca"],
    tlsCert: flags.values["tls-cert"],
    tlsKey: flags.values["tls-key"],
    only: flags.values["only"]?.split(",").filter((s) => s.length > 0)
  }).pipe(
    Effect.match({
      onSuccess: ({ failed }) => {
        process.exitCode = failed === 0 ? 0 : 1
      },
      onFailure: (error) => {
        process.stderr.write(`${error.message}\n`)
        process.exitCode = 2
      }
    })
  )
)
