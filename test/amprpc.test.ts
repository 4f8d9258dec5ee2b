/**
 * The Effect RPC bridge: an RpcGroup (handlers from `toLayer`, an RpcMiddleware that provides a service
 * and fails with its own error) served over real TCP and called by a real Twisted client
 * (test/twisted/rpc_client.py); a Twisted server (test/twisted/peer.py) called through a group's
 * client; our client against our server; and the Rpcs refused at definition time.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Schema } from "effect"
import * as Rpc from "effect/rpc/Rpc"
import * as RpcGroup from "effect/rpc/RpcGroup"
import * as RpcMiddleware from "effect/rpc/RpcMiddleware"
import * as Path from "node:path"
import * as AmpRpc from "../src/AmpRpc.ts"
import * as Argument from "../src/Argument.ts"
import * as Client from "../src/Client.ts"
import * as Responders from "../src/Responders.ts"
import * as Server from "../src/Server.ts"
import { killRemaining, run, type Server as ProcessServer, startServer } from "./support/process.ts"
import { describeTwisted, python, twistedDir } from "./support/twisted.ts"

// --- the group -----------------------------------------------------------------------------------

class ZeroDivision extends Schema.TaggedError<ZeroDivision>()("ZeroDivision", { message: Schema.String }) {}
class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", { message: Schema.String }) {}

class CurrentUser extends Context.Service<CurrentUser, string>()("test/CurrentUser") {}
class Auth extends RpcMiddleware.Service<Auth, { provides: CurrentUser }>()("test/Auth", { error: Forbidden }) {}

const Calc = RpcGroup.make(
  Rpc.make("Sum", {
    payload: { a: Argument.Integer, b: Argument.Integer },
    success: Schema.Struct({ total: Argument.Integer })
  }),
  Rpc.make("Divide", {
    payload: { numerator: Argument.Integer, denominator: Argument.Integer },
    success: Schema.Struct({ result: Argument.Float }),
    error: ZeroDivision
  }),
  Rpc.make("Whoami", {
    payload: { token: Argument.Unicode },
    success: Schema.Struct({ user: Argument.Unicode, greeting: Argument.optional(Argument.Unicode) })
  }).middleware(Auth),
  Rpc.make("Ping")
)
const options: AmpRpc.Options = { errorCodes: { ZeroDivision: "ZERO_DIVISION" } }

const HandlersLive = Calc.toLayer({
  Sum: ({ a, b }) => Effect.succeed({ total: a + b }),
  Divide: ({ denominator, numerator }) =>
    denominator === 0n
      ? Effect.fail(new ZeroDivision({ message: `cannot divide ${numerator} by zero` }))
      : Effect.succeed({ result: Number(numerator) / Number(denominator) }),
  Whoami: () =>
    Effect.gen(function*() {
      const user = yield* CurrentUser
      return { user, greeting: `hi ${user}` }
    }),
  Ping: () => Effect.void
})

const AuthLive = Layer.succeed(Auth)((effect, { payload }) =>
  (payload as { readonly token: string }).token === "secret"
    ? Effect.provideService(effect, CurrentUser, "alice")
    : Effect.fail(new Forbidden({ message: "bad token" })))

const RespondersLive = AmpRpc.layer(Calc, options).pipe(Layer.provide([HandlersLive, AuthLive]))

/** Our server for the group, in the current scope. */
const serveCalc = Effect.flatMap(Effect.service(Responders.Responders), (responders) =>
  Server.make({ port: 0 }).pipe(Effect.provideService(Responders.Responders, responders))).pipe(
    Effect.provide(RespondersLive)
  )

describe("AmpRpc: our client and our server", () => {
  it.live("calls, declared errors, middleware (provided service and its error), void Rpcs", () =>
    Effect.gen(function*() {
      const server = yield* serveCalc
      const port = server.address._tag === "Tcp" ? server.address.port : 0
      const connection = yield* Client.connect({ port }).pipe(Effect.provide(Responders.empty))
      const client = AmpRpc.makeClient(connection.dispatcher, Calc, options)
      assert.strictEqual((yield* client.Sum({ a: 2n ** 70n, b: 1n })).total, 2n ** 70n + 1n)
      assert.strictEqual((yield* client.Divide({ numerator: 1n, denominator: 4n })).result, 0.25)
      const error = yield* Effect.flip(client.Divide({ numerator: 1n, denominator: 0n }))
      assert.instanceOf(error, ZeroDivision)
      assert.strictEqual(error.message, "cannot divide 1 by zero")
      assert.deepStrictEqual(yield* client.Whoami({ token: "secret" }), { user: "alice", greeting: "hi alice" })
      const forbidden = yield* Effect.flip(client.Whoami({ token: "nope" }))
      assert.instanceOf(forbidden, Forbidden)
      assert.strictEqual(forbidden.message, "bad token")
      assert.isUndefined(yield* client.Ping())
    }).pipe(Effect.scoped), 10_000)

  it("the derived commands carry the mapped error codes", () => {
    const commands = AmpRpc.commands(Calc, options)
    assert.deepStrictEqual(Object.keys(commands).sort(), ["Divide", "Ping", "Sum", "Whoami"])
    assert.deepStrictEqual(Object.keys(commands.Divide.errors), ["ZERO_DIVISION"])
    assert.deepStrictEqual(Object.keys(commands.Whoami.errors), ["Forbidden"])
    assert.deepStrictEqual(Object.keys(commands.Whoami.response), ["user", "greeting"])
  })
})

describe("AmpRpc: what cannot map is refused at definition time", () => {
  const refused = (rpc: Rpc.Any, pattern: RegExp) => {
    const group = RpcGroup.make(rpc)
    try {
      AmpRpc.commands(group)
    } catch (e) {
      assert.instanceOf(e, AmpRpc.UnmappableRpc)
      assert.match((e as AmpRpc.UnmappableRpc).message, pattern)
      return
    }
    assert.fail("expected UnmappableRpc")
  }
  it("streams", () =>
    refused(Rpc.make("Ticks", { success: Schema.Struct({ n: Argument.Integer }), stream: true }), /Rpc "Ticks".*stream/))
  it("a payload field that is not an AMP argument type", () =>
    refused(Rpc.make("Bad", { payload: { name: Schema.String } }), /payload field "name" is not an AMP argument type/))
  it("a success that is not a struct", () =>
    refused(Rpc.make("Bad", { success: Argument.Integer }), /success is not a struct of AMP argument types/))
  it("an error with fields besides message", () => {
    class Rich extends Schema.TaggedError<Rich>()("Rich", { message: Schema.String, code: Schema.Number }) {}
    refused(Rpc.make("Bad", { error: Rich }), /error Rich has fields besides "message" \(code\)/)
  })
  it("an error schema that is not a class", () =>
    refused(Rpc.make("Bad", { error: Schema.String }), /errors must be Schema.TaggedError classes/))
  it("client-side middleware (headers)", () => {
    class Token extends RpcMiddleware.Service<Token>()("test/Token", { requiredForClient: true }) {}
    const group = RpcGroup.make(Rpc.make("Secured").middleware(Token))
    assert.throws(
      () => AmpRpc.makeClient({} as never, group),
      /Rpc "Secured" cannot be an AMP command: middleware test\/Token is required for the client/
    )
  })
})

// --- against real Twisted -----------------------------------------------------------------------------

const PeerGroup = RpcGroup.make(
  Rpc.make("Sum", { payload: { a: Argument.Integer, b: Argument.Integer }, success: Schema.Struct({ total: Argument.Integer }) }),
  Rpc.make("Divide", {
    payload: { numerator: Argument.Integer, denominator: Argument.Integer },
    success: Schema.Struct({ result: Argument.Float }),
    error: ZeroDivision
  }),
  Rpc.make("Greet", { payload: { name: Argument.Unicode }, success: Schema.Struct({ greeting: Argument.Unicode }) }),
  Rpc.make("Undeclared")
)

describeTwisted("AmpRpc with Twisted", () => {
  let twisted: ProcessServer | undefined
  beforeAll(async () => {
    twisted = await startServer(python, [Path.join(twistedDir, "peer.py"), "server", "--port", "0"])
  }, 30_000)
  afterAll(async () => {
    await twisted?.stop()
    killRemaining()
  })

  it.live("a Twisted client calls our RpcGroup (handlers, declared error, middleware, void)", () =>
    Effect.gen(function*() {
      const server = yield* serveCalc
      const port = server.address._tag === "Tcp" ? server.address.port : 0
      const result = yield* Effect.promise(() =>
        run(python, [Path.join(twistedDir, "rpc_client.py"), String(port)], { timeoutMillis: 30_000 })
      )
      assert.strictEqual(result.code, 0, result.stderr)
      assert.deepStrictEqual(JSON.parse(result.stdout), {
        sum: 94,
        big: String(2n ** 70n + 1n),
        divide: 0.25,
        divzero: "ZeroDivision: cannot divide 1 by zero",
        whoami: ["alice", "hi alice"],
        forbidden: "Forbidden: bad token",
        ping: []
      })
    }).pipe(Effect.scoped), 40_000)

  it.live("the group's client calls a Twisted server", () =>
    Effect.gen(function*() {
      const connection = yield* Client.connect({ port: twisted!.port }).pipe(Effect.provide(Responders.empty))
      const client = AmpRpc.makeClient(connection.dispatcher, PeerGroup, options)
      assert.strictEqual((yield* client.Sum({ a: 13n, b: 81n })).total, 94n)
      assert.strictEqual((yield* client.Divide({ numerator: 3n, denominator: 4n })).result, 0.75)
      const error = yield* Effect.flip(client.Divide({ numerator: 1n, denominator: 0n }))
      assert.instanceOf(error, ZeroDivision)
      assert.strictEqual(error.message, "division by zero")
      assert.strictEqual((yield* client.Greet({ name: "effect" })).greeting, "Hello, effect!")
      const unknown = yield* Effect.flip(client.Undeclared())
      assert.strictEqual(unknown._tag, "UnknownRemoteError")
    }).pipe(Effect.scoped), 20_000)
})
