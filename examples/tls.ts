/**
 * StartTLS: an AMP connection starts in plaintext and becomes TLS in place when the client sends the
 * `StartTLS` command (that is how AMP does TLS). Both ends verify each other here: certificates for a
 * throwaway CA, the server (CN=localhost) and the client (CN=example-client) are made with the `openssl`
 * CLI in a temporary folder, removed at the end.
 *
 *     npm run example -- tls
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect } from "effect"
import { Argument, Client, Command, ConnectionInfo, Responders, Server } from "effect-amp"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

/** What the server sees of this connection. */
const WhoAmI = Command.make("WhoAmI", {
  response: { tls: Argument.Boolean, client_cn: Argument.optional(Argument.Unicode) }
})

const ServerResponders = Responders.layer(
  Responders.handle(WhoAmI, () =>
    Effect.map(ConnectionInfo.current, (info) => {
      const cn = ConnectionInfo.peerCommonName(info)
      return cn === undefined ? { tls: info.tls } : { tls: info.tls, client_cn: cn }
    }))
)

interface Certs {
  readonly ca: Buffer
  readonly serverCert: Buffer
  readonly serverKey: Buffer
  readonly clientCert: Buffer
  readonly clientKey: Buffer
}

/** A CA, and a server and a client certificate it signed, made with `openssl` in a temporary folder. */
const makeCerts = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-amp-tls-example-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
).pipe(
  Effect.flatMap((dir) =>
    Effect.try({
      try: (): Certs => {
        const openssl = (...args: Array<string>) =>
          execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"], timeout: 30_000 })
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem",
          "-days", "1", "-subj", "/CN=effect-amp example CA",
          "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
        const leaf = (name: string, cn: string, ext: string) => {
          Fs.writeFileSync(Path.join(dir, `${name}.ext`), ext)
          openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}-key.pem`, "-out", `${name}.csr`,
            "-subj", `/CN=${cn}`)
          openssl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca-key.pem",
            "-CAcreateserial", "-days", "1", "-extfile", `${name}.ext`, "-out", `${name}.pem`)
        }
        leaf("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        leaf("client", "example-client", "extendedKeyUsage=clientAuth\n")
        const read = (file: string) => Fs.readFileSync(Path.join(dir, file))
        return {
          ca: read("ca.pem"),
          serverCert: read("server.pem"),
          serverKey: read("server-key.pem"),
          clientCert: read("client.pem"),
          clientKey: read("client-key.pem")
        }
      },
      catch: (e) => new Error(`openssl failed (is the openssl CLI installed?): ${(e as Error).message}`)
    })
  )
)

const program = Effect.gen(function*() {
  const certs = yield* makeCerts
  yield* Console.log("made a CA, a server certificate (CN=localhost) and a client certificate (CN=example-client)")

  // The server's TLS material is used when a client sends StartTLS; requireClientCert asks for and
  // verifies the client's certificate against the CA.
  const server = yield* Server.make({
    port: 0,
    tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca, requireClientCert: true }
  }).pipe(Effect.provide(ServerResponders))
  const port = server.port

  const connection = yield* Client.connect({ host: "localhost", port }).pipe(Effect.provide(Responders.empty))
  const before = yield* connection.dispatcher.callRemote(WhoAmI, {})
  yield* Console.log(`before StartTLS: tls=${before.tls}`)

  // verifies the server's certificate against the CA and its name (localhost); presents ours
  yield* connection.startTLS({ ca: certs.ca, cert: certs.clientCert, key: certs.clientKey })
  const ours = yield* connection.info.get
  yield* Console.log(`TLS is on: ${ours.tls}; the server's certificate: CN=${ConnectionInfo.peerCommonName(ours)}`)

  const after = yield* connection.dispatcher.callRemote(WhoAmI, {})
  yield* Console.log(`after StartTLS the server sees: tls=${after.tls}, client certificate CN=${after.client_cn}`)
}).pipe(Effect.scoped)

NodeRuntime.runMain(program)
