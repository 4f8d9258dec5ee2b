/**
 * Interop with real Twisted, both ways, over TCP on 127.0.0.1: Twisted's conformance client
 * (`test/twisted/peer.py client`) against our server, and our client against Twisted's server
 * (`peer.py server`). Every check of each client must pass: with `--tls-ca` a client runs every plain
 * check (each on a fresh plain connection) plus StartTLS; StartTLS also with a client certificate, and
 * against servers that require one.
 */
import { afterAll, assert, beforeAll, it } from "@effect/vitest"
import * as Path from "node:path"
import { checkNames } from "../src/conformance/client.ts"
import { makeTestCerts, type TestCerts } from "./support/certs.ts"
import { assertAllPassed, killRemaining, node, run, type RunResult, type Server, startServer } from "./support/process.ts"
import { describeTwisted, python, twistedDir } from "./support/twisted.ts"

const peer = Path.join(twistedDir, "peer.py")
const serverMain = ["src/cli/bin.ts", "serve"]
const clientMain = ["src/cli/bin.ts", "check"]

/** peer.py's check names, from `peer.py client --list` (the same names as ours). */
let twistedChecks: ReadonlyArray<string> = []

let certs: TestCerts
const servers: Record<"ours" | "oursStrict" | "twisted" | "twistedStrict", Server | undefined> = {
  ours: undefined,
  oursStrict: undefined,
  twisted: undefined,
  twistedStrict: undefined
}

const twistedClient = (server: Server, extra: ReadonlyArray<string> = []): Promise<RunResult> =>
  run(python, [peer, "client", "--connect", `127.0.0.1:${server.port}`, ...extra], { timeoutMillis: 40_000 })
const ourClient = (server: Server, extra: ReadonlyArray<string> = []): Promise<RunResult> =>
  run(node, [...clientMain, "--connect", `127.0.0.1:${server.port}`, ...extra], { timeoutMillis: 40_000 })

const clientCertArgs = () => ["--tls-cert", certs.clientCert, "--tls-key", certs.clientKey]

describeTwisted("interop with Twisted's conformance peer", () => {
  beforeAll(async () => {
    certs = makeTestCerts()
    const tls = ["--tls-cert", certs.serverCert, "--tls-key", certs.serverKey, "--tls-ca", certs.ca]
    const [list, ours, oursStrict, twisted, twistedStrict] = await Promise.all([
      run(python, [peer, "client", "--list"], { timeoutMillis: 20_000 }),
      startServer(node, [...serverMain, "--port", "0", ...tls]),
      startServer(node, [...serverMain, "--port", "0", ...tls, "--require-client-cert"]),
      startServer(python, [peer, "server", "--port", "0", ...tls]),
      startServer(python, [peer, "server", "--port", "0", ...tls, "--require-client-cert"])
    ])
    Object.assign(servers, { ours, oursStrict, twisted, twistedStrict })
    twistedChecks = list.stdout.split("\n").filter((line) => line.length > 0)
  }, 40_000)

  afterAll(async () => {
    await Promise.all(Object.values(servers).filter((s) => s !== undefined).map((s) => s.stop()))
    killRemaining()
    certs?.cleanup()
  })

  it("both clients know the same checks", () => {
    assert.deepStrictEqual([...twistedChecks].sort(), [...checkNames].sort())
  })

  it("Twisted client → our server: every check, StartTLS with and without a client certificate", async () => {
    const [tls, withCert, strict] = await Promise.all([
      twistedClient(servers.ours!, ["--tls-ca", certs.ca]),
      twistedClient(servers.ours!, ["--tls-ca", certs.ca, ...clientCertArgs(), "--only", "StartTLS,ConnectionInfo"]),
      twistedClient(servers.oursStrict!, ["--tls-ca", certs.ca, ...clientCertArgs(), "--only", "StartTLS"])
    ])
    const tlsReport = assertAllPassed(tls, twistedChecks)
    assert.deepStrictEqual(tlsReport.summary, { passed: twistedChecks.length, failed: 0 })
    assertAllPassed(withCert, ["ConnectionInfo", "StartTLS"])
    assertAllPassed(strict, ["StartTLS"])
  }, 50_000)

  it("our client → Twisted server: every check, StartTLS with and without a client certificate", async () => {
    const [tls, withCert, strict] = await Promise.all([
      ourClient(servers.twisted!, ["--tls-ca", certs.ca]),
      ourClient(servers.twisted!, ["--tls-ca", certs.ca, ...clientCertArgs(), "--only", "StartTLS,ConnectionInfo"]),
      ourClient(servers.twistedStrict!, ["--tls-ca", certs.ca, ...clientCertArgs(), "--only", "StartTLS"])
    ])
    const tlsReport = assertAllPassed(tls, checkNames)
    assert.deepStrictEqual(tlsReport.summary, { passed: checkNames.length, failed: 0 })
    assertAllPassed(withCert, ["ConnectionInfo", "StartTLS"])
    assertAllPassed(strict, ["StartTLS"])
  }, 50_000)

  it("a required client certificate is enforced both ways", async () => {
    const [twistedNoCert, oursNoCert] = await Promise.all([
      twistedClient(servers.oursStrict!, ["--tls-ca", certs.ca, "--only", "StartTLS"]),
      ourClient(servers.twistedStrict!, ["--tls-ca", certs.ca, "--only", "StartTLS"])
    ])
    for (const [what, result] of [["Twisted client, our server", twistedNoCert], ["our client, Twisted server", oursNoCert]] as const) {
      assert.match(result.stdout, /^FAIL StartTLS: /m, `${what}: ${result.stdout}\n${result.stderr}`)
      assert.match(result.stdout, /^0 passed, 1 failed$/m, what)
      assert.strictEqual(result.code, 1, what)
    }
  }, 40_000)
})
