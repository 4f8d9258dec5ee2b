/**
 * Helpers for the conformance checks: expectations, raw calls, and the echo checks' table.
 * @internal
 */
import { Cause, Effect, Exit, Scope } from "effect"
import * as Command from "../Command.ts"
import type * as Connection from "../Connection.ts"
import * as DateTime from "../DateTime.ts"
import * as Decimal from "../Decimal.ts"
import type { TlsOptions } from "../StartTLS.ts"
import * as C from "./commands.ts"
import { SAMPLE_PATH, sampleItems, same, samples, show, UNICODE_TEXT } from "./samples.ts"
import * as Server from "./server.ts"

/**
 * Options of `check` (the `effect-amp check` command line).
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

/** What every check gets besides its connection. */
export interface Context {
  readonly options: CheckOptions
  readonly tls: TlsOptions | undefined
  readonly clientCertCn: string | undefined
  /** What our own responders (Greet, Notify) saw during the checks. */
  readonly state: Server.ConformanceState["Service"]
}

/** A connection under test. */
export type Conn = Connection.Connection

/** One check: its name, what it needs, and how it runs. */
export interface Check {
  readonly name: string
  readonly needsTls?: boolean
  readonly needsUnix?: boolean
  readonly run: (conn: Conn, ctx: Context) => Effect.Effect<void, unknown, Scope.Scope>
}

// --- helpers ---------------------------------------------------------------------------------------------

export const expect = (condition: boolean, message: () => string): Effect.Effect<void, CheckFailed> =>
  condition ? Effect.void : Effect.fail(new CheckFailed(message()))

export const fail = (message: string): Effect.Effect<never, CheckFailed> => Effect.fail(new CheckFailed(message))

export const enc = new TextEncoder()
export const bytes = (s: string): Uint8Array => enc.encode(s)

export const bytesEqual = (a: Uint8Array | undefined, b: Uint8Array | undefined): boolean =>
  a !== undefined && b !== undefined && a.length === b.length && a.every((x, i) => x === b[i])

export const boxEqual = (a: ReadonlyMap<string, Uint8Array>, b: ReadonlyMap<string, Uint8Array>): boolean =>
  a.size === b.size && [...a].every(([k, v]) => bytesEqual(v, b.get(k)))

export const showBox = (box: ReadonlyMap<string, Uint8Array>): string => show(box)

export const toBox = (pairs: Record<string, Uint8Array> | ReadonlyMap<string, Uint8Array>): Map<string, Uint8Array> =>
  pairs instanceof Map ? new Map(pairs) : new Map(Object.entries(pairs))

/** Sends a box as it is; succeeds with the answer box minus `_answer`. */
export const rawCall = (conn: Conn, command: string, pairs: Record<string, Uint8Array> | ReadonlyMap<string, Uint8Array>) =>
  Effect.gen(function*() {
    const answer = yield* conn.dispatcher.callRemoteRaw(command, toBox(pairs))
    yield* expect(answer.has(Command.ANSWER), () => `answer without _answer: ${showBox(answer)}`)
    const rest = new Map(answer)
    rest.delete(Command.ANSWER)
    return rest
  })

/** Sends a box expecting an error answer; succeeds with the code and description. */
export const rawError = (conn: Conn, command: string, pairs: Record<string, Uint8Array>) =>
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
export const expectFailure = <A, E, R>(effect: Effect.Effect<A, E, R>, what: string) =>
  Effect.flatMap(Effect.exit(effect), (exit) => {
    if (Exit.isSuccess(exit)) return fail(`${what}: expected an error, got ${show(exit.value)}`)
    const failure = exit.cause.reasons.find(Cause.isFailReason)
    return failure !== undefined ? Effect.succeed(failure.error) : Effect.failCause(exit.cause as Cause.Cause<never>)
  })

export const stillOpen = (conn: Conn) =>
  Effect.gen(function*() {
    const result = yield* conn.dispatcher.callRemote(C.Sum, { a: 20n, b: 22n })
    yield* expect(result.total === 42n, () => `Sum after the error gave ${show(result)}`)
  })

export const closedSoon = (conn: Conn, after: string) =>
  conn.ended.pipe(
    Effect.timeoutOrElse({
      duration: "5 seconds",
      orElse: () => fail(`connection still open 5 s after ${after}`)
    }),
    Effect.asVoid
  )

export const encodeArgs = <Cmd extends Command.Any>(command: Cmd, args: Command.Arguments<Cmd>) =>
  Effect.map(Command.encodeArguments(command, args), (box) => {
    box.delete(Command.COMMAND)
    return box
  })

// --- echo checks ---------------------------------------------------------------------------------------

export const echoCheck = <Cmd extends Command.Any>(command: Cmd, values: ReadonlyArray<unknown>): Check => ({
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

export const dec = Decimal.fromStringUnsafe
export const dt = (text: string) => DateTime.fromStringUnsafe(text)

export const echoValues = {
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

export const allValues: (typeof C.EchoAll)["argumentsSchema"]["Type"] = {
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
