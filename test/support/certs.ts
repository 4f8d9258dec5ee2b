/**
 * Test certificates made with the `openssl` CLI in a temporary folder: a CA, a server certificate
 * (CN=localhost, SAN DNS:localhost, IP:127.0.0.1) and a client certificate (CN=client1) signed by it,
 * and a second, unrelated CA (with its own client certificate) for wrong-CA tests.
 */
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

export interface TestCerts {
  readonly dir: string
  /** The CA certificate (PEM file) that signed `server` and `client`. */
  readonly ca: string
  readonly serverCert: string
  readonly serverKey: string
  readonly clientCert: string
  readonly clientKey: string
  /** An unrelated CA and a client certificate it signed (CN=stranger). */
  readonly otherCa: string
  readonly otherClientCert: string
  readonly otherClientKey: string
  /** Removes the folder. */
  readonly cleanup: () => void
}

const openssl = (args: ReadonlyArray<string>, cwd: string): void => {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"], timeout: 30_000 })
}

const makeCa = (dir: string, name: string, cn: string) => {
  openssl(["genrsa", "-out", `${name}-key.pem`, "2048"], dir)
  openssl([
    "req", "-x509", "-new", "-key", `${name}-key.pem`, "-sha256", "-days", "3650", "-subj", `/CN=${cn}`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    "-out", `${name}.pem`
  ], dir)
}

const makeLeaf = (dir: string, name: string, ca: string, cn: string, extensions: string) => {
  Fs.writeFileSync(Path.join(dir, `${name}.ext`), extensions)
  openssl(["genrsa", "-out", `${name}-key.pem`, "2048"], dir)
  openssl(["req", "-new", "-key", `${name}-key.pem`, "-subj", `/CN=${cn}`, "-out", `${name}.csr`], dir)
  openssl([
    "x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}-key.pem`, "-CAcreateserial",
    "-days", "3650", "-sha256", "-extfile", `${name}.ext`, "-out", `${name}.pem`
  ], dir)
}

/** Generates the certificates (about a second of CPU). */
export const makeTestCerts = (): TestCerts => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-amp-certs-"))
  makeCa(dir, "ca", "effect-amp test CA")
  makeLeaf(
    dir,
    "server",
    "ca",
    "localhost",
    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n" +
      "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
  )
  makeLeaf(
    dir,
    "client",
    "ca",
    "client1",
    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
  )
  makeCa(dir, "other-ca", "unrelated test CA")
  makeLeaf(
    dir,
    "other-client",
    "other-ca",
    "stranger",
    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
  )
  const p = (name: string) => Path.join(dir, name)
  return {
    dir,
    ca: p("ca.pem"),
    serverCert: p("server.pem"),
    serverKey: p("server-key.pem"),
    clientCert: p("client.pem"),
    clientKey: p("client-key.pem"),
    otherCa: p("other-ca.pem"),
    otherClientCert: p("other-client.pem"),
    otherClientKey: p("other-client-key.pem"),
    cleanup: () => Fs.rmSync(dir, { recursive: true, force: true })
  }
}
