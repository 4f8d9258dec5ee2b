/**
 * The conformance client against the conformance server, both ours, as separate processes over real TCP
 * on 127.0.0.1: every check passes, in plain AMP and after StartTLS (with and without a client
 * certificate); StartTLS failures (no TLS on the server, wrong CA, missing or foreign client certificate)
 * are reported as FAIL lines; the server exits 0 on SIGTERM.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { checkNames } from "../src/cli/conformance/client.ts"
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

const serverMain = "src/cli/conformance/server-main.ts"
const clientMain = "src/cli/conformance/client-main.ts"

const plainChecks = checkNames.filter((name) => name !== "StartTLS")

let certs: TestCerts
let plain: Server
let tls: Server
let strict: Server

const client = (server: Server, extra: ReadonlyArray<string> = []) =>
  run(node, [clientMain, "--connect", `127.0.0.1:${server.port}`, ...extra], { timeoutMillis: 40_000 })

describe("conformance: our client against our server", () => {
  beforeAll(async () => {
    certs = makeTestCerts()
    const tlsArgs = ["--tls-cert", certs.serverCert, "--tls-key", certs.serverKey, "--tls-ca", certs.ca]
    ;[plain, tls, strict] = await Promise.all([
      startServer(node, [serverMain, "--port", "0"]),
      startServer(node, [serverMain, "--port", "0", ...tlsArgs]),
      startServer(node, [serverMain, "--port", "0", ...tlsArgs, "--require-client-cert"])
    ])
  }, 40_000)

  afterAll(async () => {
    await Promise.all([plain, tls, strict].filter((s) => s !== undefined).map((s) => s.stop()))
    killRemaining()
    certs?.cleanup()
  })

  it("passes every check in plain AMP", async () => {
    const report = assertAllPassed(await client(plain), plainChecks)
    assert.deepStrictEqual([...report.passed], plainChecks)
    assert.deepStrictEqual(report.summary, { passed: plainChecks.length, failed: 0 })
  }, 45_000)

  it("passes every check with StartTLS, and the server sees the client certificate's CN", async () => {
    const [all, withCert] = await Promise.all([
      client(tls, ["--tls-ca", certs.ca]),
      client(tls, ["--tls-ca", certs.ca, "--tls-cert", certs.clientCert, "--tls-key", certs.clientKey, "--only", "StartTLS,ConnectionInfo,EchoString"])
    ])
    const report = assertAllPassed(all, checkNames)
    assert.deepStrictEqual([...report.passed], [...checkNames])
    assert.deepStrictEqual(report.summary, { passed: checkNames.length, failed: 0 })
    assertAllPassed(withCert, ["EchoString", "ConnectionInfo", "StartTLS"])
  }, 45_000)

  it("with a required client certificate: passes with one signed by the CA", async () => {
    const result = await client(strict, ["--tls-ca", certs.ca, "--tls-cert", certs.clientCert, "--tls-key", certs.clientKey, "--only", "StartTLS"])
    assertAllPassed(result, ["StartTLS"])
  }, 30_000)

  it("reports StartTLS failures as FAIL lines and exits 1", async () => {
    const [noTls, wrongCa, noCert, foreignCert] = await Promise.all([
      // the server has no TLS material: TLS_UNAVAILABLE
      client(plain, ["--tls-ca", certs.ca, "--only", "StartTLS"]),
      // we do not trust the server's CA
      client(tls, ["--tls-ca", certs.otherCa, "--only", "StartTLS"]),
      // the server requires a client certificate: none given
      client(strict, ["--tls-ca", certs.ca, "--only", "StartTLS"]),
      // ... or one from another CA
      client(strict, ["--tls-ca", certs.ca, "--tls-cert", certs.otherClientCert, "--tls-key", certs.otherClientKey, "--only", "StartTLS"])
    ])
    for (const [what, result] of [["no TLS", noTls], ["wrong CA", wrongCa], ["no client cert", noCert], ["foreign client cert", foreignCert]] as const) {
      const report = parseCheckOutput(result.stdout)
      assert.strictEqual(result.code, 1, `${what}: exit code\n${result.stdout}\n${result.stderr}`)
      assert.deepStrictEqual(report.summary, { passed: 0, failed: 1 }, `${what}: ${result.stdout}`)
      assert.strictEqual(report.failed[0]?.name, "StartTLS", what)
    }
    assert.match(parseCheckOutput(noTls.stdout).failed[0]!.reason, /TLS_UNAVAILABLE/)
  }, 45_000)

  it("the server exits 0 on SIGTERM", async () => {
    const server = await startServer(node, [serverMain, "--port", "0"])
    const exit = await server.stop()
    assert.deepStrictEqual(exit, { code: 0, signal: null })
  }, 30_000)
})
