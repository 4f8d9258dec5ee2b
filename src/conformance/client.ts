/**
 * The conformance client: runs every check of the conformance service against a server (ours or
 * Twisted's `test/twisted/peer.py`), each on a fresh connection with a 10 s timeout, and prints one
 * `PASS <name>` / `FAIL <name>: <reason>` line per check and `N passed, M failed`. The check names are
 * the same as peer.py's.
 *
 * Our connections run the same responders as the server (`Greet`, `Notify`, …), since the server calls
 * them back.
 *
 * @since 0.1.0
 */
import { Cause, Effect, Exit, Scope } from "effect"
import type * as Socket from "effect/socket/Socket"
import { X509Certificate } from "node:crypto"
import * as Fs from "node:fs"
import * as Client from "../Client.ts"
import * as Command from "../Command.ts"
import type * as Connection from "../Connection.ts"
import * as DateTime from "../DateTime.ts"
import * as Decimal from "../Decimal.ts"
import type { TlsOptions } from "../StartTLS.ts"
import * as C from "./commands.ts"
import * as Descriptors from "./descriptors.ts"
import { expectedWire, SAMPLE_PATH, sampleItems, same, samples, show, UNICODE_TEXT } from "./samples.ts"
import * as Server from "./server.ts"

/**
 * Options of {@link check} (the `effect-amp check` command line).
 *
 * @since 0.1.0
 * @category models
 */
export interface CheckOptions {
  readonly host: string
  readonly port: number
  /** A Unix socket to connect to instead of `host:port`; adds the file-descriptor checks. */
  readonly path?: string | undefined
  readonly tlsCa?: string | undefined
  readonly tlsCert?: string | undefined
  readonly tlsKey?: string | undefined
  /** Run only these checks: check names or command names, resolved by {@link resolveCheckNames}. */
  readonly only?: ReadonlyArray<string> | undefined
  /** Per-check timeout (default 10 s). */
  readonly timeoutMillis?: number | undefined
  /** Where the lines go (default: stdout). */
  readonly print?: ((line: string) => void) | undefined
}

/**
 * A check did not see what the spec says.
 *
 * @since 0.1.0
 * @category errors
 */
export class CheckFailed {
  readonly _tag = "CheckFailed"
  readonly message: string
  constructor(message: string) {
    this.message = message
  }
}

interface Context {
  readonly options: CheckOptions
  readonly tls: TlsOptions | undefined
  readonly clientCertCn: string | undefined
  /** What our own responders (Greet, Notify) saw during the checks. */
  readonly state: Server.ConformanceState["Service"]
}

type Conn = Connection.Connection

interface Check {
  readonly name: string
  readonly needsTls?: boolean
  readonly needsUnix?: boolean
  readonly run: (conn: Conn, ctx: Context) => Effect.Effect<void, unknown, Scope.Scope>
}

// --- helpers ---------------------------------------------------------------------------------------------

const expect = (condition: boolean, message: () => string): Effect.Effect<void, CheckFailed> =>
  condition ? Effect.void : Effect.fail(new CheckFailed(message()))

const fail = (message: string): Effect.Effect<never, CheckFailed> => Effect.fail(new CheckFailed(message))

const enc = new TextEncoder()
const bytes = (s: string): Uint8Array => enc.encode(s)

const bytesEqual = (a: Uint8Array | undefined, b: Uint8Array | undefined): boolean =>
  a !== undefined && b !== undefined && a.length === b.length && a.every((x, i) => x === b[i])

const boxEqual = (a: ReadonlyMap<string, Uint8Array>, b: ReadonlyMap<string, Uint8Array>): boolean =>
  a.size === b.size && [...a].every(([k, v]) => bytesEqual(v, b.get(k)))

const showBox = (box: ReadonlyMap<string, Uint8Array>): string => show(box)

const toBox = (pairs: Record<string, Uint8Array> | ReadonlyMap<string, Uint8Array>): Map<string, Uint8Array> =>
  pairs instanceof Map ? new Map(pairs) : new Map(Object.entries(pairs))

/** Sends a box as it is; succeeds with the answer box minus `_answer`. */
const rawCall = (conn: Conn, command: string, pairs: Record<string, Uint8Array> | ReadonlyMap<string, Uint8Array>) =>
  Effect.gen(function*() {
    const answer = yield* conn.dispatcher.callRemoteRaw(command, toBox(pairs))
    yield* expect(answer.has(Command.ANSWER), () => `answer without _answer: ${showBox(answer)}`)
    const rest = new Map(answer)
    rest.delete(Command.ANSWER)
    return rest
  })

/** Sends a box expecting an error answer; succeeds with the code and description. */
const rawError = (conn: Conn, command: string, pairs: Record<string, Uint8Array>) =>
  conn.dispatcher.callRemoteRaw(command, toBox(pairs)).pipe(
    Effect.matchEffect({
      onSuccess: (answer) => fail(`expected an error, got the answer ${showBox(answer)}`),
      onFailure: (error) => {
        switch (error._tag) {
          case "UnknownRemoteError":
            return Effect.succeed({ code: error.code, description: error.description })
          case "UnhandledCommand":
            return Effect.succeed({ code: Command.UNHANDLED_ERROR_CODE, description: error.description })
          default:
            return Effect.fail(error)
        }
      }
    })
  )

/** The typed call must fail; succeeds with its error. */
const expectFailure = <A, E, R>(effect: Effect.Effect<A, E, R>, what: string) =>
  Effect.flatMap(Effect.exit(effect), (exit) => {
    if (Exit.isSuccess(exit)) return fail(`${what}: expected an error, got ${show(exit.value)}`)
    const failure = exit.cause.reasons.find(Cause.isFailReason)
    return failure !== undefined ? Effect.succeed(failure.error) : Effect.failCause(exit.cause as Cause.Cause<never>)
  })

const stillOpen = (conn: Conn) =>
  Effect.gen(function*() {
    const result = yield* conn.dispatcher.callRemote(C.Sum, { a: 20n, b: 22n })
    yield* expect(result.total === 42n, () => `Sum after the error gave ${show(result)}`)
  })

const closedSoon = (conn: Conn, after: string) =>
  conn.ended.pipe(
    Effect.timeoutOrElse({
      duration: "5 seconds",
      orElse: () => fail(`connection still open 5 s after ${after}`)
    }),
    Effect.asVoid
  )

const encodeArgs = <Cmd extends Command.Any>(command: Cmd, args: Command.Arguments<Cmd>) =>
  Effect.map(Command.encodeArguments(command, args), (box) => {
    box.delete(Command.COMMAND)
    return box
  })

// --- echo checks ---------------------------------------------------------------------------------------

const echoCheck = <Cmd extends Command.Any>(command: Cmd, values: ReadonlyArray<unknown>): Check => ({
  name: command.name,
  run: (conn) =>
    Effect.forEach(values, (value) =>
      Effect.gen(function*() {
        const sent = yield* encodeArgs(command, { value } as Command.Arguments<Cmd>)
        const answer = yield* rawCall(conn, command.name, sent)
        yield* expect(boxEqual(answer, sent), () => `sent ${showBox(sent)}, got back ${showBox(answer)}`)
        const typed = (yield* conn.dispatcher.callRemote(command, { value } as Command.Arguments<Cmd>)) as unknown as {
          value: unknown
        }
        yield* expect(same(typed.value, value), () => `typed echo of ${show(value)} gave ${show(typed.value)}`)
      }), { discard: true })
})

const dec = Decimal.fromStringUnsafe
const dt = (text: string) => DateTime.fromStringUnsafe(text)

const echoValues = {
  integer: [0n, 1n, -1n, 2n ** 100n, -(2n ** 100n), 2n ** 64n, -(2n ** 80n) - 1n, 10n ** 300n],
  string: [
    new Uint8Array(0),
    Uint8Array.of(0),
    samples.string_binary,
    new Uint8Array(4),
    new Uint8Array(60000).fill(0x78)
  ],
  unicode: ["", "a", "\x00", UNICODE_TEXT, "\ufeffA", "\u2603".repeat(20000)],
  float: [
    0, -0, 1.5, 0.1, 1 / 3, 100, 1e15, 1e16, 1e-4, 1e-5, 1.5e-7, 1e300, 5e-324, 1.7976931348623157e308,
    -2.5e-300, NaN, Infinity, -Infinity
  ],
  boolean: [true, false],
  decimal: [
    "0", "-0", "1.10", "0.00", "-0.00", "1E+2", "0E+6", "1E-7", "0.000001", "123E-10",
    "-123456789012345678901234567890.000000001", "Infinity", "-Infinity", "NaN", "-NaN", "sNaN", "NaN123",
    "1E+999999"
  ].map(dec),
  datetime: [
    samples.datetime_utc,
    samples.datetime_plus,
    samples.datetime_minus,
    dt("0001-01-01T00:00:00.000001+03:30"),
    dt("9999-12-31T23:59:59.999999-23:59"),
    dt("2010-12-25T00:00:00.000000+23:59")
  ],
  intList: [[], [0n], [0n, -1n, 2n ** 64n, 7n], Array.from({ length: 100 }, (_, i) => BigInt(i - 50))],
  unicodeList: [[], [""], ["", "a", "\u2603", "\u{1f389}"], Array.from({ length: 10 }, () => "x".repeat(300))],
  ampList: [
    [],
    sampleItems(),
    [
      { id: -1n, name: "", tags: [""], weight: NaN, children: [{ x: 0n, label: "" }] },
      { id: 2n ** 70n, name: "\u2603", tags: [], weight: -0, children: [] }
    ]
  ],
  path: [SAMPLE_PATH, "/", "/a/b c/d"]
}

const allValues: (typeof C.EchoAll)["argumentsSchema"]["Type"] = {
  int: 2n ** 70n,
  string: Uint8Array.of(0x00, 0xff, ...bytes("bytes")),
  unicode: "\u2603 snow",
  float: -0,
  boolean: false,
  decimal: dec("-0.00"),
  datetime: samples.datetime_plus,
  int_list: [1n, -2n, 3n],
  unicode_list: ["x", ""],
  items: sampleItems(),
  path: SAMPLE_PATH
}

// --- the checks ----------------------------------------------------------------------------------------

const checks: ReadonlyArray<Check> = [
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

/**
 * Resolves the names given to `only` (what a user types: a check's name, or a command's name such as
 * `Sum`) to check names. Case does not matter; a name that is not a check selects every check whose
 * name starts with it (`Sum` → `SumPipelined1000`, `Echo` → every echo check). `unknown` lists the
 * names that select nothing.
 *
 * @since 0.1.0
 * @category checks
 */
export const resolveCheckNames = (
  only: ReadonlyArray<string>
): { readonly names: ReadonlyArray<string>; readonly unknown: ReadonlyArray<string> } => {
  const selected = new Set<string>()
  const unknown: Array<string> = []
  for (const name of only) {
    const wanted = name.toLowerCase()
    const all = [...checkNames, ...unixCheckNames]
    const exact = all.filter((c) => c.toLowerCase() === wanted)
    const matches = exact.length > 0 ? exact : all.filter((c) => c.toLowerCase().startsWith(wanted))
    if (matches.length === 0) unknown.push(name)
    for (const c of matches) selected.add(c)
  }
  return { names: [...checkNames, ...unixCheckNames].filter((c) => selected.has(c)), unknown }
}

const describeError = (error: unknown, timeoutMillis: number): string => {
  let text: string
  if (error instanceof CheckFailed) text = error.message
  else if (Cause.isTimeoutError(error)) text = `timed out after ${timeoutMillis / 1000} s`
  else if (typeof error === "object" && error !== null && "_tag" in error) {
    text = `${String((error as { _tag: unknown })._tag)}: ${String((error as { message?: unknown }).message ?? show(error))}`
  } else if (error instanceof Error) text = `${error.name}: ${error.message}`
  else text = show(error)
  return text.split(/\s+/).join(" ").trim() || "failed"
}

/**
 * The options cannot be used: an unreadable file, an unknown check name, `StartTLS` without `tlsCa`.
 *
 * @since 0.1.0
 * @category errors
 */
export class CheckConfigError extends Error {
  readonly _tag = "CheckConfigError"
}

const readPem = (path: string): Effect.Effect<string, CheckConfigError> =>
  Effect.try({
    try: () => Fs.readFileSync(path, "utf8"),
    catch: (e) => new CheckConfigError(`cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`)
  })

/** The CN of a PEM certificate's subject. */
const certificateCn = (pem: string): string | undefined => {
  try {
    const subject = new X509Certificate(pem).subject
    return /^CN=(.*)$/m.exec(subject)?.[1]
  } catch {
    return undefined
  }
}

/**
 * Runs the checks against `host:port` and prints one line per check, then `N passed, M failed`.
 *
 * @since 0.1.0
 * @category checks
 */
export const check = (options: CheckOptions): Effect.Effect<{ passed: number; failed: number }, CheckConfigError> =>
  Effect.gen(function*() {
    const print = options.print ?? ((line: string) => process.stdout.write(line + "\n"))
    const timeoutMillis = options.timeoutMillis ?? 10_000
    if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) {
      return yield* Effect.fail(new CheckConfigError("--tls-cert and --tls-key go together"))
    }
    const only = options.only === undefined ? undefined : resolveCheckNames(options.only)
    if (only !== undefined && only.unknown.length > 0) {
      return yield* Effect.fail(
        new CheckConfigError(`unknown check(s): ${only.unknown.join(", ")} (the checks: ${[...checkNames, ...unixCheckNames].join(", ")})`)
      )
    }
    const needsUnix = only?.names.find((name) => unixCheckNames.includes(name))
    if (needsUnix !== undefined && options.path === undefined) {
      return yield* Effect.fail(new CheckConfigError(`the ${needsUnix} check needs a Unix socket (--unix PATH)`))
    }
    if (only?.names.includes("StartTLS") === true && options.tlsCa === undefined) {
      return yield* Effect.fail(new CheckConfigError("the StartTLS check needs --tls-ca"))
    }
    let tls: TlsOptions | undefined
    let clientCertCn: string | undefined
    if (options.tlsCa !== undefined) {
      const ca = yield* readPem(options.tlsCa)
      const cert = options.tlsCert !== undefined ? yield* readPem(options.tlsCert) : undefined
      const key = options.tlsKey !== undefined ? yield* readPem(options.tlsKey) : undefined
      tls = { ca, ...(cert !== undefined ? { cert } : {}), ...(key !== undefined ? { key } : {}) }
      clientCertCn = cert !== undefined ? certificateCn(cert) : undefined
    }
    const state = Server.makeState()
    const responders = Server.layerWith(state)
    const ctx: Context = { options, tls, clientCertCn, state }
    const selected = checks.filter((c) =>
      (only === undefined ? true : only.names.includes(c.name)) && (c.needsTls !== true || tls !== undefined) &&
      (c.needsUnix !== true || options.path !== undefined)
    )
    let passed = 0
    let failed = 0
    for (const c of selected) {
      const exit = yield* Effect.gen(function*() {
        const conn = yield* Client.connect(
          options.path !== undefined ? { path: options.path } : { host: options.host, port: options.port }
        )
        yield* c.run(conn, ctx)
      }).pipe(
        Effect.scoped,
        Effect.timeout(timeoutMillis),
        Effect.provide(responders),
        Effect.exit
      )
      if (Exit.isSuccess(exit)) {
        passed++
        print(`PASS ${c.name}`)
      } else {
        failed++
        const failure = exit.cause.reasons.find(Cause.isFailReason)
        const die = exit.cause.reasons.find(Cause.isDieReason)
        const reason = failure !== undefined
          ? describeError(failure.error, timeoutMillis)
          : die !== undefined
          ? `defect: ${describeError(die.defect, timeoutMillis)}`
          : "interrupted"
        print(`FAIL ${c.name}: ${reason}`)
      }
    }
    print(`${passed} passed, ${failed} failed`)
    return { passed, failed }
  })
