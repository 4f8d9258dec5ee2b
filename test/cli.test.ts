/**
 * The `effect-amp` command line, run as a real process (`node src/cli/bin.ts …`, the built package's bin is
 * run by package.test.ts): `call` against our conformance server (plain and StartTLS), an in-process server
 * on a Unix socket, and real Twisted servers; `decode` on captured streams; `serve` / `check`; help, version
 * and usage errors.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll } from "vitest"
import * as Box from "../src/Box.ts"
import { layer as conformanceResponders } from "../src/conformance/server.ts"
import { decodeStream } from "../src/cli/decode.ts"
import { checkNames, resolveCheckNames } from "../src/conformance/client.ts"
import { escape } from "../src/cli/format.ts"
import * as Client from "../src/Client.ts"
import * as C from "../src/conformance/commands.ts"
import * as Responders from "../src/Responders.ts"
import * as Server from "../src/Server.ts"
import { makeTestCerts, type TestCerts } from "./support/certs.ts"
import { killRemaining, node, root, run, type RunResult, type Server as Process, startServer } from "./support/process.ts"
import { describeTwisted, python, twistedDir } from "./support/twisted.ts"

const amp = (...args: ReadonlyArray<string>): Promise<RunResult> =>
  run(node, [Path.join(root, "src", "cli", "bin.ts"), ...args], { timeoutMillis: 20_000 })

/** A port nobody listens on. */
const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as Net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

let certs: TestCerts
let tmp: string
let ours: Process
let unixPath: string
const unixScope = Effect.runSync(Scope.make())

beforeAll(async () => {
  certs = makeTestCerts()
  tmp = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-amp-cli-"))
  unixPath = Path.join(tmp, "amp.sock")
  // our conformance server with StartTLS enabled (plain calls work the same)
  const serving = startServer(node, [
    Path.join(root, "src", "cli", "bin.ts"), "serve", "--port", "0",
    "--tls-cert", certs.serverCert, "--tls-key", certs.serverKey, "--tls-ca", certs.ca
  ])
  // an in-process server on a Unix socket
  await Effect.runPromise(
    Server.make({ path: unixPath }).pipe(Effect.provide(conformanceResponders), Scope.provide(unixScope))
  )
  ours = await serving
})

afterAll(async () => {
  await Effect.runPromise(Scope.close(unixScope, Exit.void))
  killRemaining()
  certs?.cleanup()
  if (tmp !== undefined) Fs.rmSync(tmp, { recursive: true, force: true })
})

describe.concurrent("amp call (our conformance server)", () => {
  it("prints the answer box, one key=value line per key, _answer omitted", async () => {
    const r = await amp("call", `127.0.0.1:${ours.port}`, "Sum", "a=13", "b=81")
    assert.strictEqual(r.stdout, "total=94\n", r.stderr)
    assert.strictEqual(r.code, 0)
  })

  it("key:hex= sends bytes; non-printable bytes are escaped in the output", async () => {
    const r = await amp("call", `127.0.0.1:${ours.port}`, "EchoString", "value:hex=00 ff 5c 0a 41")
    assert.strictEqual(r.stdout, "value=\\x00\\xff\\\\\\x0aA\n", r.stderr)
    assert.strictEqual(r.code, 0)
  })

  it("--json: UTF-8 values as strings, other bytes as { hex }", async () => {
    const [text, binary] = await Promise.all([
      amp("call", `127.0.0.1:${ours.port}`, "EchoUnicode", "value=héllo ☃", "--json"),
      amp("call", `127.0.0.1:${ours.port}`, "EchoString", "value:hex=00ff", "--json")
    ])
    assert.deepStrictEqual(JSON.parse(text.stdout), { value: "héllo ☃" })
    assert.deepStrictEqual(JSON.parse(binary.stdout), { value: { hex: "00ff" } })
    assert.strictEqual(text.code, 0)
    assert.strictEqual(binary.code, 0)
  })

  it("key=@file sends the file's bytes", async () => {
    const file = Path.join(tmp, "value.bin")
    const bytes = new Uint8Array(300)
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff
    Fs.writeFileSync(file, bytes)
    const r = await amp("call", `127.0.0.1:${ours.port}`, "EchoString", `value=@${file}`, "--json")
    assert.deepStrictEqual(JSON.parse(r.stdout), { value: { hex: Buffer.from(bytes).toString("hex") } })
    assert.strictEqual(r.code, 0)
  })

  it("an error box prints ERROR <code>: <description> and exits 1", async () => {
    const [declared, unhandled] = await Promise.all([
      amp("call", `127.0.0.1:${ours.port}`, "Divide", "numerator=1", "denominator=0"),
      amp("call", `127.0.0.1:${ours.port}`, "NoSuchCommand")
    ])
    assert.strictEqual(declared.stdout, "ERROR ZERO_DIVISION: division by zero\n")
    assert.strictEqual(declared.code, 1)
    assert.strictEqual(unhandled.stdout, "ERROR UNHANDLED: Unhandled Command: b'NoSuchCommand'\n")
    assert.strictEqual(unhandled.code, 1)
  })

  it("--no-answer sends without _ask and exits 0 at once; the box arrived", async () => {
    const channel = `cli-${Date.now()}`
    const sent = await amp("call", `127.0.0.1:${ours.port}`, "Notify", `channel=${channel}`, "message=hi", "--no-answer")
    assert.strictEqual(sent.code, 0, sent.stderr)
    assert.strictEqual(sent.stdout, "")
    const got = await amp("call", `127.0.0.1:${ours.port}`, "GetNotifications", `channel=${channel}`, "--json")
    // ListOf(Unicode) on the wire: a 2-byte length, then "hi"
    assert.deepStrictEqual(JSON.parse(got.stdout), { messages: "\u0000\u0002hi" })
  })

  it("connection refused exits 2 with a clear message", async () => {
    const port = await freePort()
    const r = await amp("call", `127.0.0.1:${port}`, "Sum", "a=1", "b=2")
    assert.strictEqual(r.code, 2)
    assert.include(r.stderr, `cannot connect to 127.0.0.1:${port}`)
    assert.include(r.stderr, "ECONNREFUSED")
    assert.strictEqual(r.stdout, "")
  })

  it("--timeout: no answer in time exits 2", async () => {
    const r = await amp("call", `127.0.0.1:${ours.port}`, "Delay", "ms=5000", "value=1", "--timeout", "300")
    assert.strictEqual(r.code, 2)
    assert.include(r.stderr, "within 300 ms")
  })

  it("--unix connects to a Unix socket", async () => {
    const r = await amp("call", "--unix", unixPath, "Sum", "a=2", "b=3")
    assert.strictEqual(r.stdout, "total=5\n", r.stderr)
    assert.strictEqual(r.code, 0)
  })

  it("--tls sends StartTLS first; the server's certificate is verified, ours presented", async () => {
    const [plain, server, client] = await Promise.all([
      amp("call", `127.0.0.1:${ours.port}`, "ConnectionInfo"),
      amp("call", `127.0.0.1:${ours.port}`, "ConnectionInfo", "--tls", "--ca", certs.ca),
      amp(
        "call", `localhost:${ours.port}`, "ConnectionInfo",
        "--tls", "--ca", certs.ca, "--cert", certs.clientCert, "--key", certs.clientKey
      )
    ])
    assert.include(plain.stdout, "tls=False\n")
    assert.include(server.stdout, "tls=True\n", server.stderr)
    assert.notInclude(server.stdout, "peer_cert_cn")
    assert.strictEqual(server.code, 0)
    assert.include(client.stdout, "peer_cert_cn=client1\n", client.stderr)
    assert.include(client.stdout, "tls=True\n")
    assert.strictEqual(client.code, 0)
  })

  it("--tls fails with exit 2 when the server's certificate does not verify (never plaintext)", async () => {
    const [wrongCa, wrongName, noVerify] = await Promise.all([
      amp("call", `127.0.0.1:${ours.port}`, "Sum", "a=1", "b=2", "--tls", "--ca", certs.otherCa),
      amp("call", `127.0.0.1:${ours.port}`, "Sum", "a=1", "b=2", "--tls", "--ca", certs.ca, "--servername", "example.org"),
      amp("call", `127.0.0.1:${ours.port}`, "Sum", "a=1", "b=2", "--tls", "--no-verify")
    ])
    assert.strictEqual(wrongCa.code, 2)
    assert.include(wrongCa.stderr, "TLS handshake failed")
    assert.strictEqual(wrongCa.stdout, "")
    assert.strictEqual(wrongName.code, 2)
    assert.include(wrongName.stderr, "example.org")
    assert.strictEqual(noVerify.stdout, "total=3\n", noVerify.stderr)
  })

  it("bad command lines exit 64", async () => {
    const results = await Promise.all([
      amp("call", `127.0.0.1:${ours.port}`, "Sum", "novalue"),
      amp("call", `127.0.0.1:${ours.port}`, "EchoString", "value:hex=0g"),
      amp("call", `127.0.0.1:${ours.port}`, "EchoString", `value=@${Path.join(tmp, "missing")}`),
      amp("call", "Sum"),
      amp("call", `127.0.0.1:${ours.port}`, "Sum", "--bogus")
    ])
    for (const r of results) assert.strictEqual(r.code, 64, `${r.stdout}\n${r.stderr}`)
    assert.include(results[0]!.stderr, "expected key=value")
    assert.include(results[1]!.stderr, "not a hex digit")
    assert.include(results[2]!.stderr, "cannot read")
  })
})

describeTwisted("amp call against Twisted", () => {
  let calculator: Process
  beforeAll(async () => {
    calculator = await startServer(python, [Path.join(root, "examples", "twisted", "calculator_server.py"), "--port", "0"])
  })
  afterAll(async () => {
    await calculator?.stop()
  })

  it("calls Twisted's calculator: answers, declared errors, unknown commands", async () => {
    const [sum, zero, unknown] = await Promise.all([
      amp("call", `127.0.0.1:${calculator.port}`, "Sum", "a=13", "b=81"),
      amp("call", `127.0.0.1:${calculator.port}`, "Divide", "numerator=1234", "denominator=0"),
      amp("call", `127.0.0.1:${calculator.port}`, "Nope")
    ])
    assert.strictEqual(sum.stdout, "total=94\n", sum.stderr)
    assert.strictEqual(sum.code, 0)
    assert.strictEqual(zero.stdout, "ERROR ZERO_DIVISION: float division by zero\n")
    assert.strictEqual(zero.code, 1)
    assert.strictEqual(unknown.stdout, "ERROR UNHANDLED: Unhandled Command: b'Nope'\n")
    assert.strictEqual(unknown.code, 1)
  })

  it("raw bytes and StartTLS against Twisted's conformance peer", async () => {
    const peer = await startServer(python, [
      Path.join(twistedDir, "peer.py"), "server", "--port", "0",
      "--tls-cert", certs.serverCert, "--tls-key", certs.serverKey
    ])
    try {
      const [raw, tls] = await Promise.all([
        amp("call", `127.0.0.1:${peer.port}`, "RawEcho", "blob:hex=00ff0a", "text=héllo"),
        amp("call", `127.0.0.1:${peer.port}`, "ConnectionInfo", "--tls", "--ca", certs.ca)
      ])
      assert.strictEqual(raw.stdout, "blob=\\x00\\xff\\x0a\ntext=héllo\n", raw.stderr)
      assert.include(tls.stdout, "tls=True\n", tls.stderr)
      assert.include(tls.stdout, "implementation=twisted")
    } finally {
      await peer.stop()
    }
  })

  it("amp check exits 1 when checks fail (Twisted's calculator lacks the conformance commands)", async () => {
    const r = await amp("check", "--connect", `127.0.0.1:${calculator.port}`, "--only", "EchoString")
    assert.strictEqual(r.code, 1)
    assert.match(r.stdout, /^FAIL EchoString: /m)
    assert.include(r.stdout, "0 passed, 1 failed")
  })
})

describe("amp serve / amp check", () => {
  it("check exits 0 when every selected check passes", async () => {
    const r = await amp("check", "--connect", `127.0.0.1:${ours.port}`, "--only", "Divide,DivideByZero,PleaseCallMe")
    assert.strictEqual(r.code, 0, r.stdout + r.stderr)
    assert.include(r.stdout, "PASS DivideByZero\n")
    assert.include(r.stdout, "3 passed, 0 failed")
  })

  it("SIGTERM lets an in-flight answer out before the server exits (graceful by default)", async () => {
    const server = await startServer(node, [Path.join(root, "src", "cli", "bin.ts"), "serve", "--port", "0"])
    const answer = Effect.runPromise(
      Effect.scoped(Effect.gen(function*() {
        const client = yield* Client.connect({ port: server.port }).pipe(Effect.provide(Responders.empty))
        return yield* client.dispatcher.callRemote(C.Delay, { ms: 1500n, value: 42n })
      }))
    )
    await new Promise((resolve) => setTimeout(resolve, 500)) // the handler is sleeping now
    const exit = await server.stop(8_000)
    assert.deepStrictEqual(await answer, { value: 42n })
    assert.deepStrictEqual(exit, { code: 0, signal: null })
  }, 20_000)
  it("check --only takes what a user types: command names, prefixes, any case (the README's example)", async () => {
    const r = await amp("check", "--connect", `127.0.0.1:${ours.port}`, "--only", "Sum,DivideByZero")
    assert.strictEqual(r.code, 0, r.stdout + r.stderr)
    assert.strictEqual(r.stdout, "PASS DivideByZero\nPASS SumPipelined1000\n2 passed, 0 failed\n")
    assert.deepStrictEqual(resolveCheckNames(["divide"]), { names: ["Divide"], unknown: [] })
    assert.deepStrictEqual(
      resolveCheckNames(["echo"]).names,
      checkNames.filter((name) => name.startsWith("Echo"))
    )
    assert.isAtLeast(resolveCheckNames(["Echo"]).names.length, 10)
  })

  it("check --only with a name that selects nothing exits 64 and lists the checks", async () => {
    const r = await amp("check", "--connect", `127.0.0.1:${ours.port}`, "--only", "Sum,Nope")
    assert.strictEqual(r.code, 64, r.stdout + r.stderr)
    assert.include(r.stderr, "unknown check(s): Nope (the checks: EchoInteger,")
    assert.strictEqual(r.stdout, "")
  })

  it("serve exits 0 on SIGTERM", async () => {
    const server = await startServer(node, [Path.join(root, "src", "cli", "bin.ts"), "serve", "--port", "0"])
    assert.match(server.output().stdout, /^LISTENING \d+\n$/)
    const exit = await server.stop()
    assert.deepStrictEqual(exit, { code: 0, signal: null })
  })
})

describe("amp decode", () => {
  const request = Box.encodeUnsafe(Box.make({ _command: "Sum", _ask: "1", a: "13", b: "81" })) // 40 bytes
  const answer = Box.encodeUnsafe(Box.make({ _answer: "1", total: "94", raw: new Uint8Array([0, 0xff, 0x5c]) }))

  it("prints each box with its offset and marks a truncated tail", async () => {
    assert.strictEqual(request.length, 40)
    const file = Path.join(tmp, "truncated.bin")
    Fs.writeFileSync(file, new Uint8Array([...request, ...answer, ...request.subarray(0, 7)]))
    const r = await amp("decode", file)
    const end = 40 + answer.length
    assert.strictEqual(
      r.stdout,
      [
        "box 1 @0",
        "  _ask = 1",
        "  _command = Sum",
        "  a = 13",
        "  b = 81",
        "box 2 @40",
        "  _answer = 1",
        "  raw = \\x00\\xff\\\\",
        "  total = 94",
        `truncated: 7 bytes of an incomplete box at offset ${end}`,
        `2 boxes, ${end + 7} bytes`,
        ""
      ].join("\n")
    )
    assert.strictEqual(r.code, 0)
  })

  it("reports a framing error at its exact offset and exits 1 (hex input)", async () => {
    // a box, then a key-length prefix of 0x0100 (256) at offset 40
    const bytes = new Uint8Array([...request, 0x00, 0x03, 0x61, 0x62, 0x63, 0x00, 0x00, 0x01, 0x00, 0x41])
    const file = Path.join(tmp, "framing.hex")
    Fs.writeFileSync(file, `# a capture\n${Buffer.from(bytes).toString("hex").replace(/(..)/g, "$1 ")}\n`)
    const r = await amp("decode", file, "--hex")
    assert.include(r.stdout, "box 1 @0\n")
    assert.include(r.stdout, "framing error at offset 47: key length 256 is over 255\n")
    assert.notInclude(r.stdout, "truncated")
    assert.strictEqual(r.code, 1)
  })

  it("decodeStream: offsets, truncation and framing errors, in-process", () => {
    const clean = decodeStream(new Uint8Array([...request, ...answer]))
    assert.deepStrictEqual(clean.boxes.map((b) => b.offset), [0, 40])
    assert.isUndefined(clean.truncated)
    const cut = decodeStream(request.subarray(0, 1))
    assert.deepStrictEqual(cut.truncated, { offset: 0, bytes: 1 })
    const bad = decodeStream(new Uint8Array([0x01, 0x00]))
    assert.strictEqual(bad.framingError?.offset, 0)
    assert.strictEqual(bad.boxes.length, 0)
  })

  it("escape: printable UTF-8 as is, everything else recoverable", () => {
    const enc = new TextEncoder()
    assert.strictEqual(escape(enc.encode("héllo ☃")), "héllo ☃")
    assert.strictEqual(escape(new Uint8Array([0x00, 0x0a, 0x5c, 0x7f, 0xff, 0xc3])), "\\x00\\x0a\\\\\\x7f\\xff\\xc3")
    assert.strictEqual(escape(enc.encode("\u00a0\u200b")), "\\u{a0}\\u{200b}")
  })
})

describe("effect-amp --help / --version", () => {
  it("every subcommand has help with examples, under the bin's name, pointing nowhere outside the package", async () => {
    const results = await Promise.all(["call", "serve", "check", "decode"].map((sub) => amp(sub, "--help")))
    for (const r of results) {
      assert.strictEqual(r.code, 0)
      assert.include(r.stdout, "EXAMPLES")
      assert.include(r.stdout, "effect-amp ")
      assert.notMatch(r.stdout, /(^|\s)amp (call|serve|check|decode)/m, "examples use the bin's name")
      assert.notInclude(r.stdout, "shared/")
    }
    assert.include(results[1]!.stdout, "docs/conformance.md")
    assert.isTrue(Fs.existsSync(Path.join(root, "docs", "conformance.md")))
  })

  it("docs/conformance.md lists every check, in the order they run", () => {
    const doc = Fs.readFileSync(Path.join(root, "docs", "conformance.md"), "utf8")
    const section = doc.slice(doc.indexOf("## The checks"))
    const listed = section.slice(0, section.indexOf("\n\n", section.indexOf("In the order"))).match(/`[A-Za-z0-9]+`/g)
    assert.deepStrictEqual(listed?.map((name) => name.slice(1, -1)), [...checkNames])
  })

  it("--version is package.json's version", async () => {
    const { version } = JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8"))
    const r = await amp("--version")
    assert.strictEqual(r.code, 0)
    assert.strictEqual(r.stdout.trim(), `effect-amp v${version}`)
  })
})
