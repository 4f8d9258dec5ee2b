/**
 * Runnable conformance server (until `amp serve` exists):
 * `node src/cli/conformance/server-main.ts --port 0 [--host 127.0.0.1] [--tls-cert c --tls-key k]
 * [--tls-ca ca --require-client-cert]`. Prints `LISTENING <port>`; SIGTERM/SIGINT end it with exit 0.
 * @internal
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { parseFlags } from "./flags.ts"
import { serve, teardown } from "./server.ts"

const flags = parseFlags(process.argv.slice(2), ["port", "host", "tls-cert", "tls-key", "tls-ca"], ["require-client-cert"])
NodeRuntime.runMain(
  serve({
    port: Number(flags.values["port"] ?? "0"),
    host: flags.values["host"] ?? "127.0.0.1",
    tlsCert: flags.values["tls-cert"],
    tlsKey: flags.values["tls-key"],
    tlsCa: flags.values["tls-ca"],
    requireClientCert: flags.switches.has("require-client-cert")
  }),
  { teardown, disableErrorReporting: true }
)
