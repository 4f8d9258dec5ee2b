/**
 * Every example runs with one command (`npm run example -- <name>`, which is
 * `node --conditions=effect-amp-source scripts/example.ts <name>` on the pinned Node: run here without npm
 * in between), exits 0 by itself (the calculator server runs until SIGTERM, then exits 0) and prints its
 * key lines.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { killRemaining, node, root, run, type RunResult, startServer } from "./support/process.ts"
import { twistedVersion } from "./support/twisted.ts"

/** The `example` npm script's command, with the arguments npm would append. */
const exampleCommand = (name: string, ...args: ReadonlyArray<string>): ReadonlyArray<string> => [
  "--conditions=effect-amp-source",
  Path.join(root, "scripts", "example.ts"),
  name.replace(/\.ts$/, ""),
  ...args
]

const example = (name: string, ...args: ReadonlyArray<string>): Promise<RunResult> =>
  run(node, exampleCommand(name, ...args), { timeoutMillis: 30_000 })

/** Asserts a clean exit and that every expected line is in stdout, in this order. */
const assertLines = (result: RunResult, expected: ReadonlyArray<string>): void => {
  const context = `\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`
  assert.isFalse(result.timedOut, `timed out${context}`)
  assert.strictEqual(result.code, 0, `exit code${context}`)
  const lines = result.stdout.split("\n")
  let from = 0
  for (const line of expected) {
    const at = lines.indexOf(line, from)
    assert.isAtLeast(at, 0, `missing line ${JSON.stringify(line)} (in order)${context}`)
    from = at + 1
  }
}

/** Examples tested below; every `examples/*.ts` must be one of them (or the shared protocol module). */
const tested = [
  "demo.ts",
  "calculator-server.ts",
  "calculator-client.ts",
  "twisted-interop.ts",
  "bidirectional.ts",
  "layer.ts",
  "tls.ts",
  "protocol-switch.ts",
  "websocket.ts",
  "reconnect.ts",
  "python-pool.ts",
  "node-pool.ts",
  "effect-rpc.ts",
  "descriptor.ts"
]

afterAll(() => killRemaining())

describe.concurrent("examples", () => {
  it("every example is tested", () => {
    const files = Fs.readdirSync(Path.join(root, "examples")).filter((f) => f.endsWith(".ts"))
    assert.deepStrictEqual(files.filter((f) => f !== "calculator-protocol.ts").sort(), [...tested].sort())
    const scripts = JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8")).scripts
    assert.strictEqual(scripts.start, "node --conditions=effect-amp-source examples/demo.ts")
    assert.strictEqual(scripts.example, "node --conditions=effect-amp-source scripts/example.ts")
  })

  it("npm run example: lists the examples without a name, refuses an unknown one (exit 64)", async () => {
    const [list, unknown] = await Promise.all([
      run(node, exampleCommand("").slice(0, 2)),
      run(node, exampleCommand("no-such-example"))
    ])
    assert.strictEqual(list.code, 0)
    assert.include(list.stderr, "examples: bidirectional, calculator-client, calculator-server, demo, descriptor, effect-rpc, layer,")
    assert.strictEqual(unknown.code, 64)
    assert.include(unknown.stderr, "unknown example: no-such-example")
  })

  it("demo.ts (npm start): typed calls, a typed error, a server-initiated call, a notification", async () => {
    const r = await example("demo.ts")
    assert.match(r.stdout, /^server listening on 127\.0\.0\.1:\d+$/m)
    assertLines(r, [
      "1. Sum(13, 81) = 94",
      "2. Divide(1234, 0) failed with ZeroDivision: division by zero",
      "3. Hello: the server asked the client WhoAreYou and answered \"Hello, demo client!\"",
      "4. two Log notifications sent (no answers); the server received [\"first\",\"second\"]",
      "done"
    ])
  })

  it("calculator-server.ts + calculator-client.ts --port (Twisted's howto calculator)", async () => {
    const server = await startServer(node, exampleCommand("calculator-server", "--port", "0"))
    try {
      const [client, standalone] = await Promise.all([
        example("calculator-client.ts", "--port", String(server.port)),
        example("calculator-client.ts")
      ])
      const expected = [
        "Sum: 13 + 81 = 94",
        "Divided by zero (float division by zero): returning INF",
        "Done with math: [94, Infinity]"
      ]
      assertLines(client, expected)
      assertLines(standalone, ["(no --port: started a calculator server in this process)", ...expected])
    } finally {
      const exit = await server.stop()
      assert.include(server.output().stdout, "Did a sum: 13 + 81 = 94\n")
      assert.deepStrictEqual(exit, { code: 0, signal: null }, "the server exits 0 on SIGTERM")
    }
  })

  it("python-pool.ts: a pool of four Twisted workers on stdio, called from TypeScript", async () => {
    const r = await run(node, exampleCommand("python-pool"), { timeoutMillis: 150_000 })
    if (twistedVersion === undefined) {
      assertLines(r, ["SKIPPED python-pool: Twisted is not installed"])
      assert.notStrictEqual(process.env.CI, "true", "Twisted is missing under CI=true: install python3-twisted")
      return
    }
    assertLines(r, [
      "1. primes below 100k..800k: 9592, 17984, 25997, 33860, 41538, 49098, 56543, 63951",
      "2. served by 4 Python processes",
      "3. CountPrimes(-1) failed with NegativeInput: below must be >= 0, got -1",
      "4. pool closed: 0 worker processes left"
    ])
  }, 160_000) // five processes start: tens of seconds on a loaded 2-core machine

  it("node-pool.ts: Node workers over fds 3 and 4; one killed mid-call, the pool replaces it", async () => {
    const r = await run(node, exampleCommand("node-pool"), { timeoutMillis: 150_000 })
    assertLines(r, [
      "1. 4 hashes from 2 workers; alpha -> a58b1b48cdb8ce8f929f6ae97608b8cf",
      "2. a worker killed mid-call: 1 call answered, 1 failed",
      "   ChildExited: the worker was killed by SIGKILL",
      "3. after the crash: 4 hashes, 2 workers, 1 replaced"
    ])
  }, 160_000)

  it("twisted-interop.ts: our client against Twisted's calculator server", async () => {
    const r = await example("twisted-interop.ts")
    if (twistedVersion === undefined) {
      // the example skips cleanly, but CI must not pass without Twisted
      assertLines(r, ["SKIPPED twisted-interop: Twisted is not installed"])
      assert.notStrictEqual(process.env.CI, "true", "Twisted is missing under CI=true: install python3-twisted")
      return
    }
    assertLines(r, [
      `Twisted ${twistedVersion} calculator server on port ${/port (\d+)/.exec(r.stdout)?.[1]}`,
      "Sum(13, 81) from Twisted: 94",
      "Sum(2**100, 1) from Twisted: 1267650600228229401496703205377",
      "Divide(1, 3) from Twisted: 0.3333333333333333",
      "Divide(1234, 0) from Twisted failed with ZeroDivision: float division by zero",
      "100 pipelined Sums from Twisted add up to 9900",
      "OK twisted-interop"
    ])
  })

  it("twisted-interop.ts without Twisted: install hint, SKIPPED, exit 0", async () => {
    const r = await run("/usr/bin/env", ["AMP_PYTHON=/nonexistent/python3", node, ...exampleCommand("twisted-interop")])
    assertLines(r, ["  sudo apt-get install python3-twisted", "SKIPPED twisted-interop: Twisted is not installed"])
  })

  it("descriptor.ts: a worker process writes into the parent's log through a passed descriptor", async () => {
    assertLines(await example("descriptor.ts"), [
      "the worker wrote 72 bytes into the log",
      "app.log:",
      "  [parent] log opened",
      "  [worker] hello from the worker",
      "  [worker] it wrote through our descriptor",
      "  [parent] done"
    ])
  })

  it("bidirectional.ts: the server calls the client during a call", async () => {
    assertLines(await example("bidirectional.ts"), [
      "client: Subscribe(fruit)",
      "  client: got fruit/apples from the server",
      "  server: the client refused \"durian\": not in this house",
      "  client: got fruit/plums from the server",
      "client: Subscribe answered: 3 delivered, 1 refused"
    ])
  })

  it("effect-rpc.ts: an RpcGroup served over AMP and called through its client; the README shows it verbatim", async () => {
    assertLines(await example("effect-rpc.ts"), [
      "Sum(40, 2) = 42",
      "Divide(1, 0) failed with ZeroDivision: cannot divide 1 by zero",
      "amp.client.calls.finished{command=Divide,outcome=ZERO_DIVISION} = 1"
    ])
    const readme = Fs.readFileSync(Path.join(root, "README.md"), "utf8")
    const source = Fs.readFileSync(Path.join(root, "examples", "effect-rpc.ts"), "utf8")
    const body = source.slice(source.indexOf("import "))
    assert.include(readme, body, "README's Effect RPC section shows examples/effect-rpc.ts from its imports on")
  })

  it("layer.ts: the client as a Layer under a domain service", async () => {
    assertLines(await example("layer.ts"), [
      "app: 40 + 2 = 42",
      "app: 22 / 7 = 3.142857142857143",
      "app: 1 / 0 = undefined",
      "app done: the connection was closed with the layer"
    ])
  })

  it("tls.ts: StartTLS with certificates made by openssl, verified both ways", async () => {
    assertLines(await example("tls.ts"), [
      "before StartTLS: tls=false",
      "TLS is on: true; the server's certificate: CN=localhost",
      "after StartTLS the server sees: tls=true, client certificate CN=example-client"
    ])
  })

  it("protocol-switch.ts: a line protocol after an AMP call", async () => {
    assertLines(await example("protocol-switch.ts"), [
      "AMP: Sum(1, 2) = 3",
      "switched: this connection now speaks the line protocol",
      "< SWITCHED",
      "> hello",
      "< HELLO",
      "> protocol switch",
      "< PROTOCOL SWITCH",
      "> bye",
      "< BYE",
      "AMP after the switch: callRemote fails with ProtocolSwitched"
    ])
  })

  it("websocket.ts: AMP over WebSocket with the standard (browser) WebSocket client", async () => {
    const r = await example("websocket.ts")
    assert.match(r.stdout, /^WebSocket server at ws:\/\/127\.0\.0\.1:\d+\/amp$/m)
    assertLines(r, [
      "1. Sum(13, 81) over WebSocket = 94",
      "2. Greet: the server asked us WhoAreYou, then answered \"Hello, browser tab!\"",
      "3. 100 concurrent Sums add up to 9900",
      "4. StartTLS over WebSocket fails with AmpTlsError: TLS handshake failed: StartTLS is not possible over a WebSocket " +
      "(there is no raw byte stream to wrap): connect to a wss: URL for TLS",
      "done"
    ])
  })

  it("reconnect.ts: the server restarts; the in-flight call fails, the waiting call succeeds", async () => {
    const r = await example("reconnect.ts")
    const port = /^server on port (\d+)$/m.exec(r.stdout)?.[1]
    assert.isDefined(port, r.stdout)
    assertLines(r, [
      "  [state] connecting (attempt 1)",
      `  [state] connected to 127.0.0.1:${port}`,
      "1. Sum(1, 2) = 3",
      "2. the server goes down while Slow is in flight",
      "   Slow failed with AmpConnectionLost (not re-sent)",
      "3. a call made while the server is down waits; the server comes back",
      `  [state] connected to 127.0.0.1:${port}`,
      "   the waiting call got Sum(40, 2) = 42",
      "done: the layer was closed with the program, and stopped reconnecting"
    ])
    assert.match(r.stdout, /\[state\] disconnected: AMP connection ended: .*; next attempt in 100ms/)
    assert.match(r.stdout, /\[state\] disconnected: cannot connect to 127\.0\.0\.1:\d+: connect ECONNREFUSED/)
  })
})
