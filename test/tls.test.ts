/**
 * StartTLS over real TCP with real TLS (certificates made by `test/support/certs.ts` with the openssl
 * CLI): the happy path, boxes held during the handshake, ConnectionInfo, OnlyOneTLS, rejected
 * certificates, peers misbehaving mid-handshake, servers without TLS, and the hostname check.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Ref } from "effect"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Tls from "node:tls"
import { afterAll, beforeAll } from "vitest"
import * as Box from "../src/Box.ts"
import * as Client from "../src/Client.ts"
import * as Responders from "../src/Responders.ts"
import type { TlsOptions } from "../src/StartTLS.ts"
import { makeTestCerts, type TestCerts } from "./support/certs.ts"
import { clientHandlers, makeObserved, responders, serverHandlers, Sum, WaitForever, WhoAmI } from "./support/commands.ts"
import {
  acceptConnections,
  clientToRawPeer,
  rawConnect,
  type RawPeer,
  rawToServer,
  tcp,
  unix
} from "./support/transports.ts"
import { endedWithin, eventually } from "./support/wait.ts"

let certs: TestCerts
/** Self-signed, CN=TEMPORARY CERTIFICATE, no subjectAltName: what Twisted's default responder uses. */
let temporary: { readonly cert: string; readonly key: string }
const pem = (path: string) => Fs.readFileSync(path, "utf8")

beforeAll(() => {
  certs = makeTestCerts()
  const key = Path.join(certs.dir, "temporary-key.pem")
  const cert = Path.join(certs.dir, "temporary.pem")
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "3650",
    "-subj", "/CN=TEMPORARY CERTIFICATE"
  ], { stdio: ["ignore", "ignore", "pipe"], timeout: 30_000 })
  temporary = { cert: pem(cert), key: pem(key) }
}, 60_000)
afterAll(() => certs?.cleanup())

const serverTls = (extra?: TlsOptions): TlsOptions => ({
  key: pem(certs.serverKey),
  cert: pem(certs.serverCert),
  ca: pem(certs.ca),
  ...extra
})
const clientTls = (extra?: TlsOptions): TlsOptions => ({ ca: pem(certs.ca), ...extra })
const clientCertTls = (extra?: TlsOptions): TlsOptions =>
  clientTls({ key: pem(certs.clientKey), cert: pem(certs.clientCert), ...extra })

const text = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : Buffer.from(bytes).toString("latin1"))

/** Pair over TCP with the standard responders; the server has TLS material. */
const tlsPair = (server?: TlsOptions, client?: TlsOptions) =>
  Effect.gen(function*() {
    const observed = yield* makeObserved
    const pair = yield* tcp.connect({
      server: serverHandlers(observed),
      client: clientHandlers,
      serverOptions: { tls: server ?? serverTls() },
      ...(client !== undefined ? { clientOptions: { tls: client } } : {})
    })
    return { observed, pair, amp: pair.client.dispatcher }
  })

/**
 * A raw TLS server peer: reads the plain StartTLS box, answers it, then runs a Node TLS server socket
 * over the same TCP connection and collects the decrypted bytes.
 */
const tlsPeerAfterStartTls = (peer: RawPeer) =>
  Effect.gen(function*() {
    const [request] = yield* peer.waitForBoxes((boxes) => boxes.length >= 1)
    assert.strictEqual(text(request!.get("_command")), "StartTLS")
    const plainBefore = peer.received().length
    peer.socket.removeAllListeners("data")
    peer.socket.pause()
    yield* peer.write(Box.make({ _answer: text(request!.get("_ask"))! }))
    const decrypted: Array<Buffer> = []
    const secure = new Tls.TLSSocket(peer.socket, {
      isServer: true,
      key: pem(certs.serverKey),
      cert: pem(certs.serverCert)
    })
    secure.on("data", (chunk: Buffer) => decrypted.push(chunk))
    secure.on("error", () => {})
    yield* Effect.addFinalizer(() => Effect.sync(() => secure.destroy()))
    const boxes = () => {
      const out: Array<Box.Box> = []
      Box.makeDecoder().feed(new Uint8Array(Buffer.concat(decrypted)), out)
      return out
    }
    return {
      secure,
      plainBefore,
      boxes,
      waitForBoxes: (n: number) =>
        Effect.gen(function*() {
          const deadline = Date.now() + 5_000
          while (boxes().length < n) {
            if (Date.now() > deadline) return yield* Effect.die(new Error(`expected ${n} boxes over TLS`))
            yield* Effect.sleep(2)
          }
          return boxes()
        })
    }
  })

describe("StartTLS", () => {
  it.live("initiated by the TCP client: calls then go over TLS (test_liveFireCustomTLS)", () =>
    Effect.gen(function*() {
      const { amp, pair } = yield* tlsPair()
      assert.isFalse((yield* amp.callRemote(WhoAmI, {})).tls)
      yield* pair.client.startTLS(clientTls())
      assert.deepStrictEqual(yield* amp.callRemote(WhoAmI, {}), { tls: true })
      const info = yield* pair.client.info.get
      assert.isTrue(info.tls)
      assert.isTrue(info.authorized)
      assert.strictEqual(info.peerCertificate?.subject?.CN, "localhost")
      assert.strictEqual((yield* amp.callRemote(Sum, { a: 2n, b: 3n })).total, 5n)
    }), 15_000)

  it.live("the connection's own `tls` options are the defaults for startTLS", () =>
    Effect.gen(function*() {
      const { amp, pair } = yield* tlsPair(serverTls(), clientTls())
      yield* pair.client.startTLS()
      assert.isTrue((yield* amp.callRemote(WhoAmI, {})).tls)
    }), 15_000)

  it.live("StartTLS over a Unix domain socket", () =>
    Effect.gen(function*() {
      const observed = yield* makeObserved
      const pair = yield* unix.connect({ server: serverHandlers(observed), serverOptions: { tls: serverTls() } })
      yield* pair.client.startTLS(clientTls({ servername: "localhost" }))
      assert.isTrue((yield* pair.client.dispatcher.callRemote(WhoAmI, {})).tls)
    }), 15_000)

  it.live("a call issued right after startTLS is held, then sent over TLS (test_startingTLS)", () =>
    Effect.gen(function*() {
      const { amp, pair } = yield* tlsPair()
      const starting = yield* Effect.forkChild(pair.client.startTLS(clientTls()))
      const call = yield* Effect.forkChild(amp.callRemote(WhoAmI, {}))
      yield* Fiber.join(starting).pipe(Effect.timeout(5_000))
      assert.deepStrictEqual(yield* Fiber.join(call).pipe(Effect.timeout(5_000)), { tls: true })
    }), 15_000)

  it.live("on the wire: only the StartTLS box goes out in plaintext; the held box arrives over TLS", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      const starting = yield* Effect.forkChild(client.startTLS(clientTls({ servername: "localhost" })))
      yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      const call = yield* Effect.forkChild(client.dispatcher.callRemote(Sum, { a: 1n, b: 2n }))
      yield* Effect.sleep(50)
      // exactly the StartTLS request, nothing else in plaintext
      assert.strictEqual(
        Buffer.from(peer.received()).toString("latin1"),
        "\x00\x04_ask\x00\x011\x00\x08_command\x00\x08StartTLS\x00\x00"
      )
      const tls = yield* tlsPeerAfterStartTls(peer)
      yield* Fiber.join(starting).pipe(Effect.timeout(5_000))
      const [sum] = yield* tls.waitForBoxes(1)
      assert.strictEqual(text(sum!.get("_command")), "Sum")
      assert.strictEqual(text(sum!.get("_ask")), "2")
      assert.strictEqual(peer.received().length, tls.plainBefore) // no more plaintext
      tls.secure.write(Box.encodeUnsafe(Box.make({ _answer: "2", total: "3" })))
      assert.strictEqual((yield* Fiber.join(call).pipe(Effect.timeout(5_000))).total, 3n)
    }), 15_000)

  it.live("a second StartTLS fails with OnlyOneTLS and sends nothing (test_startTooManyTimes)", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      const starting = yield* Effect.forkChild(client.startTLS(clientTls({ servername: "localhost" })))
      const tls = yield* tlsPeerAfterStartTls(peer)
      yield* Fiber.join(starting).pipe(Effect.timeout(5_000))
      const again = yield* Effect.flip(client.startTLS(clientTls({ servername: "localhost" })))
      assert.strictEqual(again._tag, "OnlyOneTLS")
      yield* Effect.sleep(50)
      assert.strictEqual(tls.boxes().length, 0)
      assert.strictEqual(peer.received().length, tls.plainBefore)
      // and the connection still works
      const call = yield* Effect.forkChild(client.dispatcher.callRemote(Sum, { a: 1n, b: 1n }))
      const [sum] = yield* tls.waitForBoxes(1)
      assert.strictEqual(text(sum!.get("_ask")), "2") // the refused StartTLS used no tag
      tls.secure.write(Box.encodeUnsafe(Box.make({ _answer: "2", total: "2" })))
      assert.strictEqual((yield* Fiber.join(call).pipe(Effect.timeout(5_000))).total, 2n)
    }), 15_000)

  it.live("a second StartTLS through the real server also fails with OnlyOneTLS", () =>
    Effect.gen(function*() {
      const { amp, pair } = yield* tlsPair()
      yield* pair.client.startTLS(clientTls())
      assert.strictEqual((yield* Effect.flip(pair.client.startTLS(clientTls())))._tag, "OnlyOneTLS")
      assert.isTrue((yield* amp.callRemote(WhoAmI, {})).tls)
    }), 15_000)
})

describe("ConnectionInfo", () => {
  it.live("the server sees tls and the client certificate's CN (requireClientCert)", () =>
    Effect.gen(function*() {
      const { amp, pair } = yield* tlsPair(serverTls({ requireClientCert: true }))
      yield* pair.client.startTLS(clientCertTls())
      assert.deepStrictEqual(yield* amp.callRemote(WhoAmI, {}), { tls: true, peer: "client1" })
    }), 15_000)

  it.live("the server-side Connection's info after StartTLS", () =>
    Effect.gen(function*() {
      const observed = yield* makeObserved
      const { accept, port } = yield* acceptConnections(serverHandlers(observed), {
        tls: serverTls({ requestClientCert: true })
      })
      const client = yield* Client.connect({ port }).pipe(Effect.provideService(Responders.Responders, responders()))
      const server = yield* accept
      yield* client.startTLS(clientCertTls())
      // the client's handshake can finish before the server's: one round trip over TLS settles it
      assert.isTrue((yield* client.dispatcher.callRemote(WhoAmI, {})).tls)
      const info = yield* server.info.get
      assert.isTrue(info.tls)
      assert.isTrue(info.authorized)
      assert.strictEqual(info.peerCertificate?.subject?.CN, "client1")
    }), 15_000)
})

describe("rejections and failures", () => {
  it.live("requestClientCert: a certificate from an unrelated CA is refused (as Twisted), none at all is accepted", () =>
    Effect.gen(function*() {
      const foreign = yield* tlsPair(serverTls({ requestClientCert: true }))
      yield* Effect.exit(
        foreign.pair.client.startTLS(clientTls({ key: pem(certs.otherClientKey), cert: pem(certs.otherClientCert) }))
      )
      // TLS 1.3: the client may only learn it after its handshake; either way no call gets through
      const refused = yield* Effect.flip(foreign.amp.callRemote(WhoAmI, {}))
      assert.include(["AmpConnectionLost", "AmpTlsError"], refused._tag)
      const anonymous = yield* tlsPair(serverTls({ requestClientCert: true }))
      yield* anonymous.pair.client.startTLS(clientTls())
      assert.isTrue((yield* anonymous.amp.callRemote(WhoAmI, {})).tls)
    }), 15_000)

  it.live("wrong CA: AmpTlsError, the connection ends, outstanding calls fail with AmpConnectionLost", () =>
    Effect.gen(function*() {
      const { amp, observed, pair } = yield* tlsPair()
      const waiting = yield* Effect.forkChild(amp.callRemote(WaitForever, {}))
      yield* eventually("the handler started", Effect.map(Ref.get(observed.waitStarted), (n) => n === 1))
      const error = yield* Effect.flip(pair.client.startTLS({ ca: pem(certs.otherCa) }))
      assert.strictEqual(error._tag, "AmpTlsError")
      const end = yield* pair.client.ended.pipe(Effect.timeout(5_000))
      assert.strictEqual((end.cause as { _tag?: string })?._tag, "AmpTlsError")
      assert.strictEqual((yield* Effect.flip(Fiber.join(waiting)).pipe(Effect.timeout(5_000)))._tag, "AmpConnectionLost")
      assert.strictEqual((yield* Effect.flip(amp.callRemote(Sum, { a: 1n, b: 1n })))._tag, "AmpConnectionLost")
      // the server side ends too
      yield* eventually("the server side ended", Effect.map(pair.serverConnections, (n) => n === 0))
    }), 15_000)

  it.live("wrong CA: the connection ends and its scope closes (no hang)", () =>
    Effect.gen(function*() {
      const { pair } = yield* tlsPair()
      yield* Effect.flip(pair.client.startTLS({ ca: pem(certs.otherCa) }))
      yield* pair.client.close().pipe(Effect.timeout(3_000))
      yield* pair.shutdownServer().pipe(Effect.timeout(3_000))
    }), 15_000)

  it.live("a client certificate from another CA is rejected by the server", () =>
    Effect.gen(function*() {
      const { amp, pair } = yield* tlsPair(serverTls({ requireClientCert: true }))
      const result = yield* Effect.exit(
        pair.client.startTLS(clientTls({ key: pem(certs.otherClientKey), cert: pem(certs.otherClientCert) }))
      )
      // TLS 1.3: the client may finish its handshake before the server's verdict arrives
      if (result._tag === "Success") {
        assert.strictEqual((yield* Effect.flip(amp.callRemote(WhoAmI, {})))._tag, "AmpConnectionLost")
      }
      const end = yield* pair.client.ended.pipe(Effect.timeout(5_000))
      assert.match(end.reason, /TLS/)
      yield* pair.shutdownServer().pipe(Effect.timeout(3_000))
    }), 15_000)

  it.live("missing client certificate: the next call fails with AmpConnectionLost mentioning TLS", () =>
    Effect.gen(function*() {
      const { amp, pair } = yield* tlsPair(serverTls({ requireClientCert: true }))
      const failed = yield* pair.client.startTLS(clientTls()).pipe(
        Effect.as(undefined),
        Effect.catch((error) => Effect.succeed(error))
      )
      // TLS 1.3: the client's handshake completes and it learns of the rejection afterwards; if the
      // server's verdict comes first, the handshake itself fails with AmpTlsError
      if (failed !== undefined) assert.strictEqual(failed._tag, "AmpTlsError")
      const error = yield* Effect.flip(amp.callRemote(WhoAmI, {}))
      assert.strictEqual(error._tag, "AmpConnectionLost")
      assert.match((error as { reason: string }).reason, /TLS|certificate/)
      yield* pair.shutdownServer().pipe(Effect.timeout(3_000))
    }), 15_000)

  it.live("the peer closing mid-handshake: AmpTlsError, the connection ends, calls fail", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      const waiting = yield* Effect.forkChild(client.dispatcher.callRemote(WaitForever, {}))
      yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      const starting = yield* Effect.forkChild(client.startTLS(clientTls({ servername: "localhost" })))
      yield* peer.waitForBoxes((boxes) => boxes.length === 2)
      yield* peer.write(Box.make({ _answer: "2" }))
      // wait for the ClientHello (a TLS handshake record, 0x16), then hang up
      const start = peer.received().length
      const deadline = Date.now() + 5_000
      while (peer.received().length === start && Date.now() < deadline) yield* Effect.sleep(2)
      assert.strictEqual(peer.received()[start], 0x16)
      yield* peer.destroy
      const error = yield* Effect.flip(Fiber.join(starting)).pipe(Effect.timeout(5_000))
      assert.strictEqual(error._tag, "AmpTlsError")
      yield* client.ended.pipe(Effect.timeout(5_000))
      assert.strictEqual((yield* Effect.flip(Fiber.join(waiting)).pipe(Effect.timeout(5_000)))._tag, "AmpConnectionLost")
    }), 15_000)

  it.live("garbage instead of a ClientHello: the server ends that connection with AmpTlsError and serves others", () =>
    Effect.gen(function*() {
      const { accept, port } = yield* acceptConnections(serverHandlers(yield* makeObserved), { tls: serverTls() })
      const raw = yield* rawConnect(port)
      const server = yield* accept
      yield* raw.write(Box.make({ _command: "StartTLS", _ask: "1" }), new TextEncoder().encode("this is not TLS at all\r\n\r\n"))
      const end = yield* server.ended.pipe(Effect.timeout(5_000))
      assert.strictEqual((end.cause as { _tag?: string })?._tag, "AmpTlsError")
      yield* raw.waitClosed()
      // the plain answer went out before TLS started
      assert.strictEqual(text(raw.boxes()[0]?.get("_answer")), "1")
      // a healthy connection to the same listener works
      const client = yield* Client.connect({ port }).pipe(Effect.provideService(Responders.Responders, responders()))
      yield* accept
      assert.strictEqual((yield* client.dispatcher.callRemote(Sum, { a: 2n, b: 2n })).total, 4n)
    }), 15_000)

  it.live("garbage instead of a ClientHello through Server: other connections keep being served", () =>
    Effect.gen(function*() {
      const observed = yield* makeObserved
      const { peer, server } = yield* rawToServer(serverHandlers(observed), { tls: serverTls() })
      yield* peer.write(Box.make({ _command: "StartTLS", _ask: "1" }), new Uint8Array(64).fill(0x41))
      yield* peer.waitClosed()
      const client = yield* Client.connect({ port: (server.address as { port: number }).port }).pipe(
        Effect.provideService(Responders.Responders, responders())
      )
      yield* client.startTLS(clientTls())
      assert.isTrue((yield* client.dispatcher.callRemote(WhoAmI, {})).tls)
    }), 15_000)

  it.live("StartTLS to a server without TLS config: TLS_ERROR (as Twisted), the connection stays usable", () =>
    Effect.gen(function*() {
      const observed = yield* makeObserved
      const pair = yield* tcp.connect({ server: serverHandlers(observed) })
      const error = yield* Effect.flip(pair.client.startTLS(clientTls()))
      assert.strictEqual(error._tag, "UnknownRemoteError")
      assert.strictEqual((error as { code: string }).code, "TLS_ERROR")
      assert.isFalse(yield* endedWithin(pair.client, 20))
      assert.deepStrictEqual(yield* pair.client.dispatcher.callRemote(WhoAmI, {}), { tls: false })
      assert.strictEqual((yield* pair.client.dispatcher.callRemote(Sum, { a: 1n, b: 2n })).total, 3n)
      assert.isFalse((yield* pair.client.info.get).tls)
    }), 15_000)

  it.live("the TLS_ERROR answer on the wire, byte for byte as Twisted (test_messageReceivedError)", () =>
    Effect.gen(function*() {
      const observed = yield* makeObserved
      const { peer } = yield* rawToServer(serverHandlers(observed))
      yield* peer.write(Box.make({ _command: "StartTLS", _ask: "1" }))
      const [box] = yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      assert.deepStrictEqual([...box!.keys()].sort(), ["_error", "_error_code", "_error_description"])
      assert.strictEqual(text(box!.get("_error")), "1")
      assert.strictEqual(text(box!.get("_error_code")), "TLS_ERROR")
      assert.strictEqual(text(box!.get("_error_description")), "TLS not available")
      // Twisted's exact bytes for this answer
      assert.deepStrictEqual(
        Buffer.from(Box.encodeUnsafe(box!)).toString("latin1"),
        "\x00\x06_error\x00\x011\x00\x0b_error_code\x00\tTLS_ERROR\x00\x12_error_description\x00\x11TLS not available\x00\x00"
      )
    }), 15_000)
})

describe("hostname check", () => {
  const temporaryServer = () => ({ key: temporary.key, cert: temporary.cert })

  it.live("on by default: a certificate without the host's name is rejected", () =>
    Effect.gen(function*() {
      const { pair } = yield* tlsPair(temporaryServer())
      const error = yield* Effect.flip(pair.client.startTLS({ ca: temporary.cert }))
      assert.strictEqual(error._tag, "AmpTlsError")
      assert.match(error.message, /altnames|IP|host|name/i)
    }), 15_000)

  it.live("checkHostname: false accepts CN=TEMPORARY CERTIFICATE (no SAN), still verifying the chain", () =>
    Effect.gen(function*() {
      const { amp, pair } = yield* tlsPair(temporaryServer())
      yield* pair.client.startTLS({ ca: temporary.cert, checkHostname: false })
      assert.isTrue((yield* amp.callRemote(WhoAmI, {})).tls)
      assert.strictEqual((yield* pair.client.info.get).peerCertificate?.subject?.CN, "TEMPORARY CERTIFICATE")
    }), 15_000)

  it.live("checkHostname: false does not turn off chain verification", () =>
    Effect.gen(function*() {
      const { pair } = yield* tlsPair(temporaryServer())
      const error = yield* Effect.flip(pair.client.startTLS({ ca: pem(certs.ca), checkHostname: false }))
      assert.strictEqual(error._tag, "AmpTlsError")
    }), 15_000)
})

describe("interrupted StartTLS", () => {
  // Interrupting `startTLS` before its answer closes the connection (the peer may still answer and
  // start TLS, and later boxes are held behind the StartTLS): later calls fail, they never hang.
  it.live("a call after a timed-out startTLS neither hangs nor is silently held", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      const timedOut = yield* Effect.flip(client.startTLS(clientTls({ servername: "localhost" })).pipe(Effect.timeout(50)))
      assert.strictEqual(timedOut._tag, "TimeoutError")
      yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      const call = yield* Effect.forkChild(client.dispatcher.callRemote(Sum, { a: 1n, b: 1n }))
      // either the call goes out (the connection is still usable) or it fails with AmpConnectionLost
      const deadline = Date.now() + 1_000
      while (peer.boxes().length < 2 && call.pollUnsafe() === undefined && Date.now() < deadline) {
        yield* Effect.sleep(5)
      }
      const done = call.pollUnsafe()
      assert.isTrue(peer.boxes().length === 2 || done !== undefined, "the call after the interrupted StartTLS hangs")
      assert.strictEqual(peer.boxes().length, 1, "nothing is sent after an interrupted StartTLS")
      assert.isTrue(done !== undefined && done._tag === "Failure", "the call fails")
      const ended = yield* client.ended
      assert.include(ended.reason, "StartTLS was interrupted")
    }), 10_000)
})
