/**
 * The conformance client against the conformance server, both ours, as separate processes over real TCP
 * on 127.0.0.1: every check passes, in plain AMP and after StartTLS (with and without a client
 * certificate); StartTLS failures (no TLS on the server, wrong CA, missing or foreign client certificate)
 * are reported as FAIL lines; the server exits 0 on SIGTERM.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { check, checkNames } from "../src/conformance/client.ts"
import { makeTestCerts, type TestCerts } from "./support/certs.ts"
import {
  assertAllPassed,
  killRemaining,
  node,
  parseCheckOutput,
  run,
  type Server,
  startServer
} from "./support/process.ts"

const serverMain = ["src/cli/bin.ts", "serve"]
const clientMain = ["src/cli/bin.ts", "check"]

let certs: TestCerts
let plain: Server
let tls: Server
let strict: Server

const client = (server: Server, extra: ReadonlyArray<string> = []) =>
  run(node, [...clientMain, "--connect", `127.0.0.1:${server.port}`, ...extra], { timeoutMillis: 40_000 })

describe("conformance: our client against our server", () => {
  beforeAll(async () => {
    certs = makeTestCerts()
    const tlsArgs = ["--tls-cert", certs.serverCert, "--tls-key", certs.serverKey, "--tls-ca", certs.ca]
    ;[plain, tls, strict] = await Promise.all([
      startServer(node, [...serverMain, "--port", "0"]),
      startServer(node, [...serverMain, "--port", "0", ...tlsArgs]),
      startServer(node, [...serverMain, "--port", "0", ...tlsArgs, "--require-client-cert"])
    ])
  }, 40_000)

  afterAll(async () => {
    await Promise.all([plain, tls, strict].filter((s) => s !== undefined).map((s) => s.stop()))
    killRemaining()
    certs?.cleanup()
  })

  it("passes every check (the plain ones each on a fresh connection, then StartTLS)", async () => {
    const report = assertAllPassed(await client(tls, ["--tls-ca", certs.ca]), checkNames)
    assert.deepStrictEqual([...report.passed], [...checkNames])
    assert.deepStrictEqual(report.summary, { passed: checkNames.length, failed: 0 })
  }, 45_000)

  it("StartTLS with a client certificate: the server sees its CN", async () => {
    const result = await client(tls, ["--tls-ca", certs.ca, "--tls-cert", certs.clientCert, "--tls-key", certs.clientKey, "--only", "StartTLS,ConnectionInfo"])
    assertAllPassed(result, ["ConnectionInfo", "StartTLS"])
  }, 45_000)

  it("with a required client certificate: passes with one signed by the CA", async () => {
    const result = await client(strict, ["--tls-ca", certs.ca, "--tls-cert", certs.clientCert, "--tls-key", certs.clientKey, "--only", "StartTLS"])
    assertAllPassed(result, ["StartTLS"])
  }, 30_000)

  it("reports StartTLS failures as FAIL lines and exits 1", async () => {
    // the server has no TLS material: TLS_UNAVAILABLE (as a process, for the exit code)
    const noTls = await client(plain, ["--tls-ca", certs.ca, "--only", "StartTLS"])
    assert.strictEqual(noTls.code, 1, `exit code\n${noTls.stdout}\n${noTls.stderr}`)
    assert.deepStrictEqual(parseCheckOutput(noTls.stdout).summary, { passed: 0, failed: 1 }, noTls.stdout)
    assert.match(noTls.stdout, /^FAIL StartTLS: .*TLS_UNAVAILABLE/m)
    // the rest in this process, through `check`
    const startTls = async (server: Server, tlsOptions: { tlsCa: string; tlsCert?: string; tlsKey?: string }) => {
      const lines: Array<string> = []
      const result = await Effect.runPromise(
        check({ host: "127.0.0.1", port: server.port, ...tlsOptions, only: ["StartTLS"], print: (line) => lines.push(line) })
      )
      return { result, stdout: lines.join("\n") }
    }
    const cases = await Promise.all([
      // we do not trust the server's CA
      ["wrong CA", startTls(tls, { tlsCa: certs.otherCa })] as const,
      // the server requires a client certificate: none given
      ["no client cert", startTls(strict, { tlsCa: certs.ca })] as const,
      // ... or one from another CA
      ["foreign client cert", startTls(strict, { tlsCa: certs.ca, tlsCert: certs.otherClientCert, tlsKey: certs.otherClientKey })] as const,
      // a client certificate from another CA is not reported as the peer's CN, even when not required
      ["foreign optional client cert", startTls(tls, { tlsCa: certs.ca, tlsCert: certs.otherClientCert, tlsKey: certs.otherClientKey })] as const
    ].map(async ([what, run]) => [what, await run] as const))
    for (const [what, { result, stdout }] of cases) {
      assert.deepStrictEqual(result, { passed: 0, failed: 1 }, `${what}: ${stdout}`)
      assert.match(stdout, /^FAIL StartTLS: .+\n0 passed, 1 failed$/, what)
    }
  }, 45_000)

  it("the server exits 0 on SIGTERM", async () => {
    const server = await startServer(node, [...serverMain, "--port", "0"])
    const exit = await server.stop()
    assert.deepStrictEqual(exit, { code: 0, signal: null })
  }, 30_000)
})
