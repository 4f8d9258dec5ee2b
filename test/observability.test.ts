/**
 * Spans and metrics over real TCP: a recording Tracer and a fresh MetricRegistry around each test.
 * Outcomes (ok, declared error, UNKNOWN, connection lost), nesting under the caller's span, the
 * connection spans, the off switches, and trace-context propagation (off by default; with it on a real
 * Twisted peer answers as usual and our answers/error boxes carry nothing extra).
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, Fiber, Metric, Option, Schema, Tracer } from "effect"
import * as Path from "node:path"
import * as Argument from "../src/Argument.ts"
import * as Box from "../src/Box.ts"
import * as Fs from "node:fs"
import * as ProtocolSwitch from "../src/ProtocolSwitch.ts"
import { makeTestCerts, type TestCerts } from "./support/certs.ts"
import * as Client from "../src/Client.ts"
import * as Command from "../src/Command.ts"
import { metrics, TRACE_CONTEXT_KEY } from "../src/Observability.ts"
import * as Responders from "../src/Responders.ts"
import { clientHandlers, Delay, makeObserved, serverHandlers, Sum, WaitForever } from "./support/commands.ts"
import { killRemaining, type Server as ProcessServer, startServer } from "./support/process.ts"
import { type PairOptions, tcp } from "./support/transports.ts"
import { describeTwisted, python, twistedDir } from "./support/twisted.ts"
import { eventually } from "./support/wait.ts"

const recording = () => {
  const spans: Array<Tracer.NativeSpan> = []
  const tracer = Tracer.make({
    span(options) {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    }
  })
  const named = (name: string, kind?: Tracer.SpanKind) => spans.filter((s) => s.name === name && (kind === undefined || s.kind === kind))
  const one = (name: string, kind: Tracer.SpanKind) => {
    const found = named(name, kind)
    assert.strictEqual(found.length, 1, `one ${kind} span ${name}, got ${spans.map((s) => `${s.name}/${s.kind}`).join(", ")}`)
    return found[0]!
  }
  return { spans, tracer, named, one }
}

/** Runs `body` with a recording tracer and a fresh metric registry, over a TCP pair. */
const withPair = <A, E>(
  body: (ctx: {
    readonly rec: ReturnType<typeof recording>
    readonly pair: Effect.Success<ReturnType<typeof tcp.connect>>
  }) => Effect.Effect<A, E>,
  options: Partial<PairOptions> = {}
) => {
  const rec = recording()
  return Effect.gen(function*() {
    const observed = yield* makeObserved
    const pair = yield* tcp.connect({ server: serverHandlers(observed), client: clientHandlers, ...options })
    return yield* body({ rec, pair })
  }).pipe(
    Effect.scoped,
    Effect.withTracer(rec.tracer),
    Effect.provideService(Metric.MetricRegistry, new Map())
  )
}

const value = <S>(metric: Metric.Metric<number, S>, attributes: Record<string, string> = {}) =>
  Metric.value(Metric.withAttributes(metric, attributes))

const exitTag = (span: Tracer.NativeSpan) =>
  span.status._tag === "Ended" ? span.status.exit._tag : "not ended"

describe("tracing", () => {
  it.live("a call: client span under the caller's span, server span, attributes", () =>
    withPair(({ pair, rec }) =>
      Effect.gen(function*() {
        const { total } = yield* pair.client.dispatcher.callRemote(Sum, { a: 1n, b: 2n }).pipe(Effect.withSpan("caller"))
        assert.strictEqual(total, 3n)
        const caller = rec.one("caller", "internal")
        const client = rec.one("Sum", "client")
        yield* eventually("server span ended", Effect.sync(() => rec.named("Sum", "server").some((s) => s.status._tag === "Ended")))
        const server = rec.one("Sum", "server")
        assert.strictEqual(Option.getOrUndefined(client.parent)?.spanId, caller.spanId)
        assert.strictEqual(client.traceId, caller.traceId)
        const port = pair.server!.address._tag === "Tcp" ? pair.server!.address.port : -1
        assert.deepInclude(Object.fromEntries(client.attributes), {
          "rpc.system.name": "amp",
          "rpc.method": "Sum",
          "network.transport": "tcp",
          "network.peer.address": "127.0.0.1",
          "network.peer.port": port,
          "amp.tls": false,
          "amp.outcome": "ok"
        })
        assert.deepInclude(Object.fromEntries(server.attributes), {
          "rpc.system.name": "amp",
          "rpc.method": "Sum",
          "network.peer.address": "127.0.0.1",
          "amp.tls": false,
          "amp.outcome": "ok"
        })
        assert.strictEqual(exitTag(client), "Success")
        assert.strictEqual(exitTag(server), "Success")
        // without propagation the server span is not in the caller's trace
        assert.notStrictEqual(server.traceId, client.traceId)
        // the connect span
        const connect = rec.one("amp.connect", "client")
        assert.strictEqual(connect.attributes.get("server.address"), `127.0.0.1:${port}`)
        assert.strictEqual(exitTag(connect), "Success")
      })), 10_000)

  it.live("a handler answered at once (no fiber) and one that suspends: the same server span and metrics", () =>
    withPair(({ pair, rec }) =>
      Effect.gen(function*() {
        // Sum's handler returns Effect.succeed (answered inline); Delay's sleeps (runs in a fiber)
        assert.strictEqual((yield* pair.client.dispatcher.callRemote(Sum, { a: 2n, b: 3n })).total, 5n)
        assert.strictEqual((yield* pair.client.dispatcher.callRemote(Delay, { ms: 20n })).ms, 20n)
        yield* eventually("server spans ended", Effect.sync(() =>
          rec.named("Sum", "server").concat(rec.named("Delay", "server")).filter((s) => s.status._tag === "Ended").length === 2))
        for (const name of ["Sum", "Delay"]) {
          const server = rec.one(name, "server")
          assert.deepInclude(Object.fromEntries(server.attributes), {
            "rpc.system.name": "amp",
            "rpc.method": name,
            "network.transport": "tcp",
            "amp.tls": false,
            "amp.outcome": "ok"
          })
          assert.strictEqual(exitTag(server), "Success")
          if (server.status._tag !== "Ended") return assert.fail("not ended")
          assert.isTrue(server.status.startTime > 0n && server.status.startTime <= server.status.endTime, `${name}: start <= end`)
          const finished = yield* value(metrics.serverCallsFinished, { command: name, outcome: "ok" })
          assert.strictEqual(finished.count, 1, `${name}: finished`)
          assert.strictEqual((yield* value(metrics.serverCallDuration, { command: name, outcome: "ok" })).count, 1)
          assert.strictEqual((yield* value(metrics.serverCallsStarted, { command: name })).count, 1)
        }
        const delay = rec.one("Delay", "server")
        if (delay.status._tag === "Ended") {
          assert.isAtLeast(Number(delay.status.endTime - delay.status.startTime) / 1e6, 15, "the Delay span covers the sleep")
        }
        assert.strictEqual((yield* value(metrics.serverHandlersActive)).count, 0)
      })), 10_000)

  it.live("a declared error: outcome is its code on both sides, spans end failed", () =>
    withPair(({ pair, rec }) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(pair.client.dispatcher.callRemote(Sum, { a: 13n, b: 1n }))
        assert.strictEqual(error._tag, "Oops")
        yield* eventually("server span ended", Effect.sync(() => rec.named("Sum", "server").some((s) => s.status._tag === "Ended")))
        const client = rec.one("Sum", "client")
        const server = rec.one("Sum", "server")
        assert.strictEqual(client.attributes.get("amp.outcome"), "OOPS")
        assert.strictEqual(client.attributes.get("amp.error_code"), "OOPS")
        assert.strictEqual(server.attributes.get("amp.outcome"), "OOPS")
        assert.strictEqual(server.attributes.get("amp.error_code"), "OOPS")
        assert.strictEqual(exitTag(client), "Failure")
        assert.strictEqual(exitTag(server), "Failure")
      })), 10_000)

  it.live("an undeclared failure: outcome UNKNOWN on both sides", () =>
    withPair(({ pair, rec }) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(pair.client.dispatcher.callRemote(Sum, { a: -1n, b: 1n }))
        assert.strictEqual(error._tag, "UnknownRemoteError")
        yield* eventually("server span ended", Effect.sync(() => rec.named("Sum", "server").some((s) => s.status._tag === "Ended")))
        assert.strictEqual(rec.one("Sum", "client").attributes.get("amp.outcome"), "UNKNOWN")
        assert.strictEqual(rec.one("Sum", "server").attributes.get("amp.outcome"), "UNKNOWN")
      })), 10_000)

  it.live("connection lost while waiting: outcome connection_lost", () =>
    withPair(({ pair, rec }) =>
      Effect.gen(function*() {
        const fiber = yield* Effect.forkChild(Effect.flip(pair.client.dispatcher.callRemote(WaitForever, {})))
        yield* eventually("call sent", Effect.map(pair.client.dispatcher.outstanding, (n) => n === 1))
        yield* pair.shutdownServer()
        const error = yield* Fiber.join(fiber)
        assert.strictEqual(error._tag, "AmpConnectionLost")
        assert.strictEqual(rec.one("WaitForever", "client").attributes.get("amp.outcome"), "connection_lost")
      })), 10_000)

  it.live("disableTracing: no spans at all, calls still work", () =>
    withPair(({ pair, rec }) =>
      Effect.gen(function*() {
        assert.strictEqual((yield* pair.client.dispatcher.callRemote(Sum, { a: 1n, b: 2n })).total, 3n)
        yield* Effect.flip(pair.client.dispatcher.callRemote(Sum, { a: 13n, b: 1n }))
        assert.deepStrictEqual(rec.spans.map((s) => s.name), [])
      }), { serverOptions: { disableTracing: true }, clientOptions: { disableTracing: true } }), 10_000)

  it.live("spanPrefix names call spans <prefix>.<Command>", () =>
    withPair(({ pair, rec }) =>
      Effect.gen(function*() {
        yield* pair.client.dispatcher.callRemote(Sum, { a: 1n, b: 2n })
        rec.one("amp.Sum", "client")
      }), { clientOptions: { spanPrefix: "amp" } }), 10_000)
})

describe("connection spans", () => {
  let certs: TestCerts | undefined
  beforeAll(() => {
    certs = makeTestCerts()
  }, 60_000)
  afterAll(() => certs?.cleanup())
  const pem = (path: string) => Fs.readFileSync(path, "utf8")

  it.live("StartTLS: a client and a server span; later call spans have amp.tls = true", () =>
    withPair(({ pair, rec }) =>
      Effect.gen(function*() {
        yield* pair.client.startTLS({ ca: pem(certs!.ca) })
        yield* pair.client.dispatcher.callRemote(Sum, { a: 1n, b: 2n })
        yield* eventually("server StartTLS span ended", Effect.sync(() => rec.named("amp.StartTLS", "server").some((s) => s.status._tag === "Ended")))
        const client = rec.one("amp.StartTLS", "client")
        const server = rec.one("amp.StartTLS", "server")
        assert.strictEqual(exitTag(client), "Success")
        assert.strictEqual(exitTag(server), "Success")
        assert.strictEqual(client.attributes.get("rpc.method"), "StartTLS")
        assert.strictEqual(client.attributes.get("amp.tls"), false)
        assert.strictEqual(rec.one("Sum", "client").attributes.get("amp.tls"), true)
      }), { serverOptions: { tls: { key: pem(certs!.serverKey), cert: pem(certs!.serverCert) } } }), 20_000)

  const Switch = ProtocolSwitch.make("SwitchToNothing", { arguments: { ok: Argument.Boolean } })
  class Refused extends Schema.TaggedError<Refused>()("Refused", { message: Schema.String }) {}
  const Refusing = ProtocolSwitch.make("SwitchRefused", { errors: { REFUSED: Refused } })
  const switchHandlers = [
    ProtocolSwitch.handle(Switch, () => Effect.succeed(() => Effect.void)),
    ProtocolSwitch.handle(Refusing, () => Effect.fail(new Refused({ message: "no" })))
  ]

  it.live("protocol switch: amp.switch spans on both sides; a refused switch ends its span failed", () =>
    withPair(({ pair, rec }) =>
      Effect.gen(function*() {
        const refused = yield* Effect.flip(pair.client.switchProtocol(Refusing, {}))
        assert.strictEqual(refused._tag, "Refused")
        yield* pair.client.switchProtocol(Switch, { ok: true })
        const spans = rec.named("amp.switch", "client")
        assert.deepStrictEqual(spans.map((s) => [s.attributes.get("rpc.method"), exitTag(s)]), [
          ["SwitchRefused", "Failure"],
          ["SwitchToNothing", "Success"]
        ])
        yield* eventually("server switch spans", Effect.sync(() => rec.named("amp.switch", "server").filter((s) => s.status._tag === "Ended").length === 2))
        assert.deepStrictEqual(rec.named("amp.switch", "server").map((s) => s.attributes.get("rpc.method")).sort(), ["SwitchRefused", "SwitchToNothing"])
      }), { server: switchHandlers }), 20_000)
})

/** Reports whether a request carried the trace key, and echoes nothing else. */
const Peek = Command.make("Peek", { response: { seen: Argument.Boolean } })
const peekHandler = Responders.raw("Peek", (box) =>
  Effect.succeed(Box.make({ seen: box.has(TRACE_CONTEXT_KEY) ? "True" : "False" })))

describe("trace-context propagation", () => {
  it.live("off by default: no extra key on the wire", () =>
    withPair(({ pair }) =>
      Effect.gen(function*() {
        assert.isFalse((yield* pair.client.dispatcher.callRemote(Peek, {})).seen)
      }), { server: [peekHandler] }), 10_000)

  it.live("on: the server span continues the caller's trace; answers and error boxes carry nothing extra", () =>
    withPair(({ pair, rec }) =>
      Effect.gen(function*() {
        const amp = pair.client.dispatcher
        assert.isTrue((yield* amp.callRemote(Peek, {})).seen)
        yield* amp.callRemote(Sum, { a: 1n, b: 2n }).pipe(Effect.withSpan("caller"))
        yield* eventually("server span ended", Effect.sync(() => rec.named("Sum", "server").some((s) => s.status._tag === "Ended")))
        const client = rec.one("Sum", "client")
        const server = rec.one("Sum", "server")
        assert.strictEqual(server.traceId, client.traceId)
        assert.strictEqual(Option.getOrUndefined(server.parent)?.spanId, client.spanId)
        // raw calls show the exact answer and error boxes
        const answer = yield* amp.callRemoteRaw("Sum", Box.make({ a: "1", b: "2", [TRACE_CONTEXT_KEY]: "00-abc-def-01" }))
        assert.deepStrictEqual([...answer.keys()].sort(), ["_answer", "total"])
        const error = yield* Effect.flip(amp.callRemoteRaw("Sum", Box.make({ a: "13", b: "2" })))
        assert.strictEqual(error._tag, "UnknownRemoteError")
        assert.strictEqual((error as { code?: string }).code, "OOPS")
      }), {
      server: [peekHandler, ...serverHandlers({} as never).slice(0, 1)],
      serverOptions: { propagateTraceContext: true },
      clientOptions: { propagateTraceContext: true }
    }), 10_000)
})

describe("metrics", () => {
  it.live("calls started/finished by command and outcome, durations, outstanding, handlers, connections, bytes", () =>
    withPair(({ pair }) =>
      Effect.gen(function*() {
        const amp = pair.client.dispatcher
        assert.strictEqual((yield* value(metrics.connectionsOpen, { role: "client" })).count, 1)
        assert.strictEqual((yield* value(metrics.connectionsOpen, { role: "server" })).count, 1)
        yield* amp.callRemote(Sum, { a: 1n, b: 2n })
        yield* amp.callRemote(Sum, { a: 3n, b: 4n })
        yield* Effect.flip(amp.callRemote(Sum, { a: 13n, b: 4n }))
        yield* eventually(
          "server metrics",
          Effect.map(value(metrics.serverCallsFinished, { command: "Sum", outcome: "OOPS" }), (s) => s.count === 1)
        )
        assert.strictEqual((yield* value(metrics.clientCallsStarted, { command: "Sum" })).count, 3)
        assert.strictEqual((yield* value(metrics.clientCallsFinished, { command: "Sum", outcome: "ok" })).count, 2)
        assert.strictEqual((yield* value(metrics.clientCallsFinished, { command: "Sum", outcome: "OOPS" })).count, 1)
        const duration = yield* value(metrics.clientCallDuration, { command: "Sum", outcome: "ok" })
        assert.strictEqual(duration.count, 2)
        assert.isAbove(duration.max, 0)
        assert.strictEqual((yield* value(metrics.clientCallsOutstanding)).count, 0)
        assert.strictEqual((yield* value(metrics.serverCallsStarted, { command: "Sum" })).count, 3)
        assert.strictEqual((yield* value(metrics.serverCallsFinished, { command: "Sum", outcome: "ok" })).count, 2)
        assert.strictEqual((yield* value(metrics.serverCallDuration, { command: "Sum", outcome: "OOPS" })).count, 1)
        assert.strictEqual((yield* value(metrics.serverHandlersActive)).count, 0)
        assert.isAbove((yield* value(metrics.bytesSent, { role: "client" })).count, 3 * 20)
        assert.isAbove((yield* value(metrics.bytesReceived, { role: "server" })).count, 3 * 20)
        assert.isAbove((yield* value(metrics.bytesReceived, { role: "client" })).count, 0)

        // outstanding and handlers-active while a call waits; connection_lost when the server goes
        const fiber = yield* Effect.forkChild(Effect.flip(amp.callRemote(WaitForever, {})))
        yield* eventually("waiting", Effect.map(value(metrics.serverHandlersActive), (s) => s.count === 1))
        assert.strictEqual((yield* value(metrics.clientCallsOutstanding)).count, 1)
        yield* pair.shutdownServer()
        yield* Fiber.join(fiber)
        assert.strictEqual((yield* value(metrics.clientCallsFinished, { command: "WaitForever", outcome: "connection_lost" })).count, 1)
        assert.strictEqual((yield* value(metrics.clientCallsOutstanding)).count, 0)
        yield* eventually("server connection closed", Effect.map(value(metrics.connectionsOpen, { role: "server" }), (s) => s.count === 0))
        assert.strictEqual((yield* value(metrics.serverHandlersActive)).count, 0)
      })), 10_000)

  it.live("disableMetrics: nothing recorded", () =>
    withPair(({ pair }) =>
      Effect.gen(function*() {
        yield* pair.client.dispatcher.callRemote(Sum, { a: 1n, b: 2n })
        yield* Effect.sleep(20)
        assert.strictEqual((yield* value(metrics.clientCallsStarted, { command: "Sum" })).count, 0)
        assert.strictEqual((yield* value(metrics.serverCallsStarted, { command: "Sum" })).count, 0)
        assert.strictEqual((yield* value(metrics.connectionsOpen, { role: "client" })).count, 0)
        assert.strictEqual((yield* value(metrics.bytesSent, { role: "client" })).count, 0)
      }), { serverOptions: { disableMetrics: true }, clientOptions: { disableMetrics: true } }), 10_000)
})

// --- a real Twisted peer with propagation on ----------------------------------------------------------

class ZeroDivision extends Schema.TaggedError<ZeroDivision>()("ZeroDivision", { message: Schema.String }) {}
const Divide = Command.make("Divide", {
  arguments: { numerator: Argument.Integer, denominator: Argument.Integer },
  response: { result: Argument.Float },
  errors: { ZERO_DIVISION: ZeroDivision }
})

describeTwisted("trace-context propagation against Twisted", () => {
  let twisted: ProcessServer | undefined
  beforeAll(async () => {
    twisted = await startServer(python, [Path.join(twistedDir, "peer.py"), "server", "--port", "0"])
  }, 30_000)
  afterAll(async () => {
    await twisted?.stop()
    killRemaining()
  })

  it.live("Twisted ignores the key: answers, declared errors and UNKNOWN are as without it", () => {
    const rec = recording()
    return Effect.gen(function*() {
      const connection = yield* Client.connect({ port: twisted!.port, propagateTraceContext: true })
      const amp = connection.dispatcher
      assert.strictEqual((yield* amp.callRemote(Sum, { a: 40n, b: 2n }).pipe(Effect.withSpan("caller"))).total, 42n)
      assert.strictEqual((yield* amp.callRemote(Divide, { numerator: 1n, denominator: 4n })).result, 0.25)
      const error = yield* Effect.flip(amp.callRemote(Divide, { numerator: 1n, denominator: 0n }))
      assert.strictEqual(error._tag, "ZeroDivision")
      // the raw answer box is exactly what Twisted sends without the key
      const answer = yield* amp.callRemoteRaw("Sum", Box.make({ a: "1", b: "2", [TRACE_CONTEXT_KEY]: "00-abc-def-01" }))
      assert.deepStrictEqual([...answer.keys()].sort(), ["_answer", "total"])
      assert.strictEqual(rec.one("Sum", "client").attributes.get("amp.outcome"), "ok")
      const divides = rec.named("Divide", "client").map((s) => s.attributes.get("amp.outcome"))
      assert.deepStrictEqual(divides, ["ok", "ZERO_DIVISION"])
    }).pipe(
      Effect.scoped,
      Effect.provide(Responders.empty),
      Effect.withTracer(rec.tracer)
    )
  }, 20_000)
})
