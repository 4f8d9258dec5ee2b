/**
 * The conformance checks themselves: each is a name and an Effect run over a fresh connection. The
 * runner (`client.ts`) selects, runs and reports them.
 * @internal
 */
import { Effect } from "effect"
import type * as Socket from "effect/socket/Socket"
import * as C from "./commands.ts"
import * as Descriptors from "./descriptors.ts"
import { expectedWire, same, samples, show } from "./samples.ts"
import {
  allValues,
  boxEqual,
  bytes,
  bytesEqual,
  closedSoon,
  dec,
  echoCheck,
  echoValues,
  encodeArgs,
  expect,
  expectFailure,
  fail,
  rawCall,
  rawError,
  showBox,
  stillOpen,
  toBox,
  type Check
} from "./checkSupport.ts"

// --- the checks ----------------------------------------------------------------------------------------

/** Every check, in order. */
export const checks: ReadonlyArray<Check> = [
  echoCheck(C.EchoInteger, echoValues.integer),
  echoCheck(C.EchoString, echoValues.string),
  echoCheck(C.EchoUnicode, echoValues.unicode),
  echoCheck(C.EchoFloat, echoValues.float),
  echoCheck(C.EchoBoolean, echoValues.boolean),
  echoCheck(C.EchoDecimal, echoValues.decimal),
  echoCheck(C.EchoDateTime, echoValues.datetime),
  echoCheck(C.EchoListOfInteger, echoValues.intList),
  echoCheck(C.EchoListOfUnicode, echoValues.unicodeList),
  echoCheck(C.EchoAmpList, echoValues.ampList),
  echoCheck(C.EchoPath, echoValues.path),
  {
    name: "EchoAll",
    run: (conn) =>
      Effect.gen(function*() {
        const sent = yield* encodeArgs(C.EchoAll, allValues)
        const answer = yield* rawCall(conn, "EchoAll", sent)
        yield* expect(boxEqual(answer, sent), () => `sent ${showBox(sent)}, got back ${showBox(answer)}`)
        const typed = yield* conn.dispatcher.callRemote(C.EchoAll, allValues)
        yield* expect(same(typed, allValues), () => `typed EchoAll gave ${show(typed)}`)
      })
  },
  {
    name: "NameMangling",
    run: (conn) =>
      Effect.gen(function*() {
        const sent = { from: bytes("fr\u00f6m"), "dashed-name": bytes("-17") }
        const answer = yield* rawCall(conn, "NameMangling", sent)
        yield* expect(boxEqual(answer, toBox(sent)), () => `got back ${showBox(answer)}`)
        const typed = yield* conn.dispatcher.callRemote(C.NameMangling, { from: "x", "dashed-name": 5n })
        yield* expect(
          same(typed, { from: "x", "dashed-name": 5n }),
          () => `typed NameMangling gave ${show(typed)}`
        )
      })
  },
  {
    name: "GetSamples",
    run: (conn) =>
      Effect.gen(function*() {
        const answer = yield* rawCall(conn, "GetSamples", {})
        const missing = [...expectedWire.keys()].filter((k) => !answer.has(k)).sort()
        const extra = [...answer.keys()].filter((k) => !expectedWire.has(k)).sort()
        const wrong = [...expectedWire].filter(([k, v]) => answer.has(k) && !bytesEqual(answer.get(k), v)).map(([k]) => k)
          .sort()
        yield* expect(
          missing.length === 0 && extra.length === 0 && wrong.length === 0,
          () =>
            `missing [${missing}], extra [${extra}], wrong [${wrong}]` +
            (wrong.length === 0
              ? ""
              : ` (first: got ${show(answer.get(wrong[0]!))}, want ${show(expectedWire.get(wrong[0]!))})`)
        )
        const typed = yield* conn.dispatcher.callRemote(C.GetSamples, {})
        const bad = Object.keys(samples).filter((k) =>
          !same((typed as Record<string, unknown>)[k], (samples as Record<string, unknown>)[k])
        )
        yield* expect(bad.length === 0, () => `decoded samples differ: [${bad}] (first: ${show((typed as any)[bad[0]!])})`)
      })
  },
  {
    name: "CheckSamples",
    run: (conn) =>
      Effect.gen(function*() {
        const result = yield* conn.dispatcher.callRemote(C.CheckSamples, samples)
        yield* expect(result.ok && result.mismatches.length === 0, () => `with the samples: ${show(result)}`)
        const answer = yield* rawCall(conn, "CheckSamples", expectedWire)
        yield* expect(
          boxEqual(answer, toBox({ ok: bytes("True"), mismatches: new Uint8Array(0) })),
          () => `with the sample wire bytes: ${showBox(answer)}`
        )
      })
  },
  {
    name: "CheckSamplesMismatch",
    run: (conn) =>
      Effect.gen(function*() {
        const altered = {
          ...samples,
          int_zero: 1n,
          string_empty: bytes("x"),
          float_negative_zero: 0,
          float_nan: 1,
          decimal_precise: dec("1.1"),
          unicode_list: ["", "a", "\u2603"]
        }
        const result = yield* conn.dispatcher.callRemote(C.CheckSamples, altered)
        const want = ["decimal_precise", "float_nan", "float_negative_zero", "int_zero", "string_empty", "unicode_list"]
        yield* expect(
          result.ok === false && same(result.mismatches, want),
          () => `got ${show(result)}, want mismatches ${show(want)}`
        )
      })
  },
  {
    name: "Divide",
    run: (conn) =>
      Effect.gen(function*() {
        const result = yield* conn.dispatcher.callRemote(C.Divide, { numerator: 7n, denominator: 2n })
        yield* expect(same(result.result, 3.5), () => `7/2 gave ${show(result)}`)
        const answer = yield* rawCall(conn, "Divide", { numerator: bytes("1"), denominator: bytes("3") })
        yield* expect(
          boxEqual(answer, toBox({ result: bytes("0.3333333333333333") })),
          () => `1/3 gave ${showBox(answer)}`
        )
      })
  },
  {
    name: "DivideByZero",
    run: (conn) =>
      Effect.gen(function*() {
        const { code, description } = yield* rawError(conn, "Divide", { numerator: bytes("1"), denominator: bytes("0") })
        yield* expect(
          code === "ZERO_DIVISION" && description === "division by zero",
          () => `got ${code} ${JSON.stringify(description)}`
        )
        const error = yield* expectFailure(
          conn.dispatcher.callRemote(C.Divide, { numerator: 1n, denominator: 0n }),
          "typed Divide by zero"
        )
        yield* expect(
          error instanceof C.ZeroDivision && error.message === "division by zero",
          () => `typed error ${show(error)}`
        )
        yield* stillOpen(conn)
      })
  },
  {
    name: "Fatal",
    run: (conn) =>
      Effect.gen(function*() {
        const message = "boom \u2603"
        const error = yield* expectFailure(conn.dispatcher.callRemote(C.Fatal, { message }), "Fatal")
        yield* expect(
          error instanceof C.FatalTest && error.message === message,
          () => `got ${show(error)}, want FatalTest(${JSON.stringify(message)})`
        )
        yield* closedSoon(conn, "FATAL_TEST")
      })
  },
  {
    name: "Undeclared",
    run: (conn) =>
      Effect.gen(function*() {
        const error = yield* expectFailure(conn.dispatcher.callRemote(C.Undeclared, {}), "Undeclared")
        yield* expect(
          (error as { _tag?: string })._tag === "UnknownRemoteError" &&
            (error as { code: string }).code === "UNKNOWN" &&
            (error as { description: string }).description === "Unknown Error",
          () => `got ${show(error)}`
        )
        yield* closedSoon(conn, "UNKNOWN")
      })
  },
  {
    name: "UnknownCommand",
    run: (conn) =>
      Effect.gen(function*() {
        const error = yield* expectFailure(
          conn.dispatcher.callRemoteRaw("NoSuchCommand", toBox({ x: bytes("1") })),
          "NoSuchCommand"
        )
        yield* expect(
          error._tag === "UnhandledCommand" && error.description === "Unhandled Command: b'NoSuchCommand'",
          () => `got ${show(error)}`
        )
        yield* stillOpen(conn)
      })
  },
  {
    name: "MalformedArgument",
    run: (conn) =>
      Effect.gen(function*() {
        const { code, description } = yield* rawError(conn, "EchoBoolean", { value: bytes("yes") })
        yield* expect(code === "UNKNOWN" && description === "Unknown Error", () => `got ${code} ${JSON.stringify(description)}`)
        yield* closedSoon(conn, "the malformed argument")
      })
  },
  {
    name: "MissingArgument",
    run: (conn) =>
      Effect.gen(function*() {
        const { code, description } = yield* rawError(conn, "Sum", { a: bytes("1") })
        yield* expect(code === "UNKNOWN" && description === "Unknown Error", () => `got ${code} ${JSON.stringify(description)}`)
        yield* closedSoon(conn, "the missing argument")
      })
  },
  {
    name: "Notify",
    run: (conn) =>
      Effect.gen(function*() {
        const channel = `notify-${process.pid}-${Math.random().toString(36).slice(2)}`
        for (let i = 0; i < 3; i++) {
          yield* conn.dispatcher.callRemote(C.Notify, { channel, message: `m${i} \u2603` })
        }
        const want = ["m0 \u2603", "m1 \u2603", "m2 \u2603"]
        let got = yield* conn.dispatcher.callRemote(C.GetNotifications, { channel })
        yield* expect(same(got.messages, want), () => `GetNotifications gave ${show(got)}`)
        got = yield* conn.dispatcher.callRemote(C.GetNotifications, { channel, clear: true })
        yield* expect(same(got.messages, want), () => `GetNotifications(clear) gave ${show(got)}`)
        got = yield* conn.dispatcher.callRemote(C.GetNotifications, { channel })
        yield* expect(got.messages.length === 0, () => `after clear: ${show(got)}`)
      })
  },
  {
    name: "DelayPipelining",
    run: (conn) =>
      Effect.gen(function*() {
        const order: Array<[bigint, bigint]> = []
        const calls: ReadonlyArray<[bigint, bigint]> = [[600n, 1n], [300n, 2n], [0n, 3n], [450n, 4n]]
        yield* Effect.forEach(calls, ([ms, value]) =>
          Effect.map(conn.dispatcher.callRemote(C.Delay, { ms, value }), (r) => {
            order.push([value, r.value])
          }), { concurrency: "unbounded", discard: true })
        yield* expect(
          same(order, [[3n, 3n], [2n, 2n], [4n, 4n], [1n, 1n]]),
          () => `answers came back as ${show(order)}`
        )
      })
  },
  {
    name: "SumPipelined1000",
    run: (conn) =>
      Effect.gen(function*() {
        const n = 1000
        let maxOutstanding = 0
        const results = yield* Effect.forEach(
          Array.from({ length: n }, (_, i) => i),
          (i) =>
            conn.dispatcher.callRemote(C.Sum, { a: BigInt(i) * 2n ** 40n, b: -BigInt(i) * 7n - 1n }).pipe(
              Effect.tap(() =>
                Effect.map(conn.dispatcher.outstanding, (o) => {
                  maxOutstanding = Math.max(maxOutstanding, o + 1)
                })
              )
            ),
          { concurrency: "unbounded" }
        )
        const wrong = results.map((r, i) => r.total === BigInt(i) * 2n ** 40n - BigInt(i) * 7n - 1n ? -1 : i)
          .filter((i) => i >= 0)
        yield* expect(wrong.length === 0, () => `${wrong.length} wrong totals, first at ${wrong[0]}`)
        yield* expect(maxOutstanding > 1, () => `the calls were not pipelined (at most ${maxOutstanding} outstanding)`)
      })
  },
  {
    name: "PleaseCallMe",
    run: (conn, ctx) =>
      Effect.gen(function*() {
        const before = ctx.state.greeted().length
        const result = yield* conn.dispatcher.callRemote(C.PleaseCallMe, { name: "Ada \u2603" })
        yield* expect(result.greeting === "Hello, Ada \u2603!", () => `got ${show(result)}`)
        const seen = ctx.state.greeted().slice(before)
        yield* expect(same(seen, ["Ada \u2603"]), () => `our Greet responder saw ${show(seen)}`)
      })
  },
  {
    name: "PleaseCallMeRefused",
    run: (conn, ctx) =>
      Effect.gen(function*() {
        const before = ctx.state.greeted().length
        const error = yield* expectFailure(conn.dispatcher.callRemote(C.PleaseCallMe, { name: "" }), "PleaseCallMe('')")
        yield* expect(error instanceof C.GreetRefused, () => `got ${show(error)}, want GreetRefused`)
        const seen = ctx.state.greeted().slice(before)
        yield* expect(same(seen, [""]), () => `our Greet responder saw ${show(seen)}`)
        yield* stillOpen(conn)
      })
  },
  {
    name: "PleaseNotifyMe",
    run: (conn, ctx) =>
      Effect.gen(function*() {
        const channel = `please-notify-${process.pid}-${Math.random().toString(36).slice(2)}`
        const count = 25
        const result = yield* conn.dispatcher.callRemote(C.PleaseNotifyMe, { channel, message: "hi \u2603", count: BigInt(count) })
        const seenAtAnswer = ctx.state.notificationsOf(channel)
        yield* expect(result.sent === BigInt(count), () => `got ${show(result)}`)
        const want = Array.from({ length: count }, (_, i) => `hi \u2603 ${i}`)
        yield* expect(same(seenAtAnswer, want), () => `notifications before the answer: ${show(seenAtAnswer)}`)
        ctx.state.clear(channel)
      })
  },
  {
    name: "ConnectionInfo",
    run: (conn) =>
      Effect.gen(function*() {
        const result = yield* conn.dispatcher.callRemote(C.ConnectionInfo, {})
        yield* expect(result.tls === false, () => `tls is ${result.tls}`)
        yield* expect(result.peer_cert_cn === undefined, () => `peer_cert_cn is ${show(result.peer_cert_cn)}`)
        yield* expect(result.implementation.length > 0, () => "no implementation")
        const answer = yield* rawCall(conn, "ConnectionInfo", {})
        const keys = [...answer.keys()].sort()
        yield* expect(same(keys, ["implementation", "tls"]), () => `answer keys ${show(keys)}`)
      })
  },
  {
    name: "EchoOptional",
    run: (conn) =>
      Effect.gen(function*() {
        const cases: ReadonlyArray<[Record<string, Uint8Array>, ReadonlyArray<string>]> = [
          [{ required: bytes("r") }, []],
          [{ required: bytes(""), opt_int: bytes("5") }, ["opt_int"]],
          [{ required: bytes("r"), opt_text: bytes(""), opt_list: bytes("") }, ["opt_list", "opt_text"]],
          [
            {
              required: bytes("\u2603"),
              opt_int: bytes("-3"),
              opt_text: bytes("t"),
              opt_list: Uint8Array.of(0, 1, 0x31, 0, 1, 0x32)
            },
            ["opt_int", "opt_list", "opt_text"]
          ]
        ]
        for (const [sent, present] of cases) {
          const answer = yield* rawCall(conn, "EchoOptional", sent)
          const want = toBox(sent)
          want.set("present", Uint8Array.from(present.flatMap((p) => [0, p.length, ...bytes(p)])))
          yield* expect(boxEqual(answer, want), () => `sent ${show(sent)}, got ${showBox(answer)}`)
        }
        const typed = yield* conn.dispatcher.callRemote(C.EchoOptional, { required: "x", opt_text: "y" })
        yield* expect(
          same(typed, { required: "x", opt_text: "y", present: ["opt_text"] }),
          () => `typed EchoOptional gave ${show(typed)}`
        )
      })
  },
  {
    name: "RawEcho",
    run: (conn) =>
      Effect.gen(function*() {
        const big = new Uint8Array(25600)
        for (let i = 0; i < big.length; i++) big[i] = i & 0xff
        const sent = { x: Uint8Array.of(0, 0xff), hello: new Uint8Array(0), "Z-key": bytes("1"), big }
        const answer = yield* rawCall(conn, "RawEcho", sent)
        yield* expect(boxEqual(answer, toBox(sent)), () => `got ${showBox(answer)}`)
        const empty = yield* rawCall(conn, "RawEcho", {})
        yield* expect(empty.size === 0, () => `empty RawEcho gave ${showBox(empty)}`)
      })
  },
  {
    name: "SwitchToEcho",
    run: (conn) =>
      Effect.gen(function*() {
        const { socket } = yield* conn.switchProtocol(C.SwitchToEcho, {})
        const sumBox = new Uint8Array([
          ...[0, 4], ...bytes("_ask"), ...[0, 1], ...bytes("1"),
          ...[0, 8], ...bytes("_command"), ...[0, 3], ...bytes("Sum"),
          ...[0, 1], ...bytes("a"), ...[0, 1], ...bytes("1"),
          ...[0, 1], ...bytes("b"), ...[0, 1], ...bytes("2"),
          0, 0
        ])
        const big = new Uint8Array(256 * 400)
        for (let i = 0; i < big.length; i++) big[i] = i & 0xff
        yield* echoRoundTrips(socket, [bytes("hello echo"), sumBox, big])
      })
  },
  {
    name: "StartTLS",
    needsTls: true,
    run: (conn, ctx) =>
      Effect.gen(function*() {
        yield* conn.startTLS(ctx.tls)
        const ours = yield* conn.info.get
        yield* expect(ours.tls, () => "our side is not TLS")
        yield* expect(ours.peerCertificate !== undefined, () => "no server certificate")
        const info = yield* conn.dispatcher.callRemote(C.ConnectionInfo, {})
        yield* expect(info.tls === true, () => `server says tls=${info.tls}`)
        if (ctx.clientCertCn !== undefined) {
          yield* expect(
            info.peer_cert_cn === ctx.clientCertCn,
            () => `server saw peer_cert_cn=${show(info.peer_cert_cn)}, want ${show(ctx.clientCertCn)}`
          )
        }
        const value = new Uint8Array(256 * 50)
        for (let i = 0; i < value.length; i++) value[i] = i & 0xff
        const answer = yield* conn.dispatcher.callRemote(C.EchoString, { value })
        yield* expect(same(answer.value, value), () => "echo over TLS differs")
        const result = yield* conn.dispatcher.callRemote(C.PleaseCallMe, { name: "tls" })
        yield* expect(result.greeting === "Hello, tls!", () => `PleaseCallMe over TLS gave ${show(result)}`)
      })
  },
  ...Descriptors.checks.map(([name, run]): Check => ({ name, needsUnix: true, run }))
]

/** Writes each payload on the switched socket and waits until everything written so far came back. */
const echoRoundTrips = (socket: Socket.Socket, payloads: ReadonlyArray<Uint8Array>) =>
  Effect.gen(function*() {
    const writer = yield* socket.writer
    const reader = yield* socket.reader
    let received = new Uint8Array(0)
    let expected = new Uint8Array(0)
    const append = (a: Uint8Array, b: Uint8Array) => {
      const out = new Uint8Array(a.length + b.length)
      out.set(a)
      out.set(b, a.length)
      return out
    }
    for (const payload of payloads) {
      yield* writer.write(payload)
      expected = append(expected, payload)
      while (received.length < expected.length) {
        const chunks = yield* reader.pull.pipe(
          Effect.timeoutOrElse({
            duration: "5 seconds",
            orElse: () => fail(`echo incomplete: ${received.length} of ${expected.length} bytes`)
          })
        )
        for (const chunk of chunks) received = append(received, typeof chunk === "string" ? bytes(chunk) : chunk)
      }
      yield* expect(bytesEqual(received, expected), () => "echoed bytes differ")
    }
  })

/** The names of every check, in order (`StartTLS` needs `tlsCa`). @since 0.1.0 @category checks */
export const checkNames: ReadonlyArray<string> = checks.filter((c) => c.needsUnix !== true).map((c) => c.name)

/** The checks run only over a Unix socket (file-descriptor passing), after the others. @since 0.1.0 @category checks */
export const unixCheckNames: ReadonlyArray<string> = checks.filter((c) => c.needsUnix === true).map((c) => c.name)
