/**
 * Flow control: the call-back pattern at high concurrency. A peer sends thousands of concurrent calls whose
 * handlers call the peer back before answering; every call must be answered (before the redesign the
 * connection stopped reading when its handler slots were busy, and those handlers waited for answers that
 * sat unread behind them: a deadlock beyond 256 calls). Over real TCP, ours↔ours in both directions, and
 * with real Twisted on the other side (Twisted client → our server, our client → Twisted server).
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Path from "node:path"
import { Argument, Client, Command, Dispatcher, Responders } from "../src/index.ts"
import * as C from "../src/conformance/commands.ts"
import { layer as conformanceResponders } from "../src/conformance/server.ts"
import * as Server from "../src/Server.ts"
import { killRemaining, node, run, type Server as ServerProcess, startServer } from "./support/process.ts"
import { describeTwisted, python, twistedDir } from "./support/twisted.ts"

const STORM = 5000

const greet = Responders.handle(C.Greet, ({ name }) => Effect.succeed({ greeting: `Hello, ${name}!` }))
const pleaseCallMe = Responders.handle(C.PleaseCallMe, ({ name }) =>
  Dispatcher.callRemote(C.Greet, { name }).pipe(Effect.orDie))

/** Asks the server to call us `count` times at once with PleaseCallMe (each of ours calls it back). */
const Storm = Command.make("Storm", { arguments: { count: Argument.Integer }, response: { answered: Argument.Integer } })
const storm = Responders.handle(Storm, ({ count }) =>
  Effect.forEach(
    Array.from({ length: Number(count) }, (_, i) => i),
    (i) => Dispatcher.callRemote(C.PleaseCallMe, { name: `n${i}` }),
    { concurrency: "unbounded" }
  ).pipe(Effect.map((answers) => ({ answered: BigInt(answers.length) })), Effect.orDie))

const names = Array.from({ length: STORM }, (_, i) => `caller ${i}`)

describe("call-back storm, ours ↔ ours over TCP", () => {
  it.live(`${STORM} concurrent calls whose server handlers call the client back: all answered`, () =>
    Effect.gen(function*() {
      const server = yield* Server.make({ port: 0 }).pipe(Effect.provide(conformanceResponders))
      const port = server.port
      const client = yield* Client.connect({ port }).pipe(Effect.provide(Responders.layer(greet)))
      const answers = yield* Effect.forEach(names, (name) => client.dispatcher.callRemote(C.PleaseCallMe, { name }), {
        concurrency: "unbounded"
      })
      assert.strictEqual(answers.length, STORM)
      assert.deepStrictEqual(answers.map((a) => a.greeting), names.map((n) => `Hello, ${n}!`))
      assert.strictEqual(yield* client.dispatcher.outstanding, 0)
    }).pipe(Effect.scoped), 60_000)

  it.live(`the other way: the server makes ${STORM} concurrent calls whose client handlers call it back`, () =>
    Effect.gen(function*() {
      const server = yield* Server.make({ port: 0 }).pipe(Effect.provide(Responders.layer(greet, storm)))
      const port = server.port
      const client = yield* Client.connect({ port }).pipe(Effect.provide(Responders.layer(pleaseCallMe)))
      const { answered } = yield* client.dispatcher.callRemote(Storm, { count: BigInt(STORM) })
      assert.strictEqual(answered, BigInt(STORM))
    }).pipe(Effect.scoped), 60_000)

  it.live("with a small handler limit (4) the queue still lets every call-back through", () =>
    Effect.gen(function*() {
      const server = yield* Server.make({ port: 0, maxConcurrentHandlers: 4 }).pipe(Effect.provide(conformanceResponders))
      const port = server.port
      const client = yield* Client.connect({ port, maxConcurrentHandlers: 4 }).pipe(Effect.provide(Responders.layer(greet)))
      const answers = yield* Effect.forEach(names.slice(0, 1000), (name) => client.dispatcher.callRemote(C.PleaseCallMe, { name }), {
        concurrency: "unbounded"
      })
      assert.strictEqual(answers.length, 1000)
    }).pipe(Effect.scoped), 60_000)
})

describeTwisted("call-back storm with real Twisted", () => {
  const storm = Path.join(twistedDir, "callback_storm.py")
  const peer = Path.join(twistedDir, "peer.py")
  let ours: ServerProcess
  let twisted: ServerProcess
  beforeAll(async () => {
    ;[ours, twisted] = await Promise.all([
      startServer(node, ["src/cli/bin.ts", "serve", "--port", "0"]),
      startServer(python, [peer, "server", "--port", "0"])
    ])
  }, 40_000)
  afterAll(async () => {
    await Promise.all([ours, twisted].filter((s) => s !== undefined).map((s) => s.stop()))
    killRemaining()
  })

  it(`a Twisted client sends ${STORM} concurrent PleaseCallMe to our server: all answered`, async () => {
    const r = await run(python, [storm, "--port", String(ours.port), "--count", String(STORM)], { timeoutMillis: 60_000 })
    assert.strictEqual(r.code, 0, `${r.stdout}\n${r.stderr}`)
    assert.strictEqual(r.stdout.trim(), `answered ${STORM} of ${STORM}`)
  }, 70_000)

  it.live(`our client sends ${STORM} concurrent PleaseCallMe to Twisted's server: all answered`, () =>
    Effect.gen(function*() {
      const client = yield* Client.connect({ port: twisted.port }).pipe(Effect.provide(Responders.layer(greet)))
      const answers = yield* Effect.forEach(names, (name) => client.dispatcher.callRemote(C.PleaseCallMe, { name }), {
        concurrency: "unbounded"
      })
      assert.strictEqual(answers.length, STORM)
      assert.strictEqual(answers[STORM - 1]!.greeting, `Hello, caller ${STORM - 1}!`)
    }).pipe(Effect.scoped), 70_000)
})
