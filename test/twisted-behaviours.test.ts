/**
 * The rest of Twisted's test_amp.py behaviours (issue 11, item 4): each test is named after the Twisted
 * test it ports, or, where effect-amp deliberately differs, pins our behaviour (the README's "Compared
 * with Twisted" table says why). Real TCP sockets throughout; a real Twisted process for StartTLS
 * without TLS material.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Ref, Schema } from "effect"
import type * as Socket from "effect/socket/Socket"
import * as Path from "node:path"
import { UnknownRemoteError } from "../src/AmpError.ts"
import * as Argument from "../src/Argument.ts"
import * as Box from "../src/Box.ts"
import * as Client from "../src/Client.ts"
import * as Command from "../src/Command.ts"
import * as ConnectionInfo from "../src/ConnectionInfo.ts"
import * as ProtocolSwitch from "../src/ProtocolSwitch.ts"
import * as Responders from "../src/Responders.ts"
import { Hello, makeObserved, responders, serverHandlers, Sum } from "./support/commands.ts"
import { killRemaining, run, startServer } from "./support/process.ts"
import { clientToRawPeer, rawToServer, tcp } from "./support/transports.ts"
import { describeTwisted, python, twistedDir } from "./support/twisted.ts"
import { endedWithin, eventually } from "./support/wait.ts"

const enc = new TextEncoder()
const text = (bytes: Uint8Array | undefined): string | undefined =>
  bytes === undefined ? undefined : Buffer.from(bytes).toString("latin1")

afterAll(killRemaining)

// --- commands of test_amp.py -----------------------------------------------------------------------

/** `DontRejectMe`: an optional AmpList argument. */
const DontRejectMe = Command.make("dontrejectme", {
  arguments: {
    magicWord: Argument.Unicode,
    list: Argument.optional(Argument.AmpList({ name: Argument.Unicode }))
  },
  response: { response: Argument.Unicode }
})

/** `Goodbye`: Twisted's responseType = QuitBox; ours answers with `Responders.quit`. */
const Goodbye = Command.make("Goodbye", { response: { goodbye: Argument.String } })

/** `SimpleGreeting` of the CommandLocator tests. */
const SimpleGreeting = Command.make("simple", {
  arguments: { greeting: Argument.String, cookie: Argument.Integer },
  response: { cookieplus: Argument.Integer }
})
const greeter = (plus: bigint) =>
  Responders.handle(SimpleGreeting, ({ cookie }) => Effect.succeed({ cookieplus: cookie + plus }))

class SpuriousError extends Schema.TaggedError<SpuriousError>()("SpuriousError", { message: Schema.String }) {}
/** `WaitForever` whose responder fails with `SPURIOUS` once released (test_errorAfterSwitch). */
const WaitThenFail = Command.make("wait_forever", { errors: { SPURIOUS: SpuriousError } })

class UnknownProtocol extends Schema.TaggedError<UnknownProtocol>()("UnknownProtocol", { message: Schema.String }) {}
const SwitchProto = ProtocolSwitch.make("Switch-Proto", {
  arguments: { name: Argument.Unicode },
  errors: { UNKNOWN: UnknownProtocol }
})

/** An inner protocol that echoes every chunk until EOF. */
const echo: ProtocolSwitch.InnerProtocol<unknown> = ({ socket }) =>
  Effect.gen(function*() {
    const reader = yield* socket.reader
    const writer = yield* socket.writer
    while (true) yield* writer.writeAll(yield* reader.pull)
  }).pipe(Effect.scoped)

/** The client's switched socket: write, and wait for what came back. Lives in the current scope. */
const openSwitched = (socket: Socket.Socket) =>
  Effect.gen(function*() {
    const reader = yield* socket.reader
    const writer = yield* socket.writer
    const chunks: Array<Uint8Array> = []
    yield* Effect.forkScoped(Effect.ignore(Effect.forever(Effect.map(reader.pull, (c) => {
      chunks.push(...(c as ReadonlyArray<Uint8Array>))
    }))))
    const received = () => Buffer.concat(chunks).toString("latin1")
    return {
      write: (s: string) => writer.write(enc.encode(s)),
      received,
      waitFor: (expected: string) =>
        Effect.gen(function*() {
          const deadline = Date.now() + 5_000
          while (received().length < expected.length && Date.now() < deadline) yield* Effect.sleep(2)
          assert.strictEqual(received(), expected)
        })
    }
  })

// -------------------------------------------------------------------------------------------------
describe("AMPTests", () => {
  const dontRejectMe = Responders.handle(DontRejectMe, ({ list }) =>
    Effect.succeed({ response: list === undefined ? "list omitted" : `${list[0]!.name} accepted` }))

  it.live("test_optionalAmpListOmitted: an omitted optional AmpList reaches the responder as absent", () =>
    Effect.gen(function*() {
      const pair = yield* tcp.connect({ server: [dontRejectMe] })
      const { response } = yield* pair.client.dispatcher.callRemote(DontRejectMe, { magicWord: "please" })
      assert.strictEqual(response, "list omitted")
    }), 10_000)

  it.live("test_optionalAmpListPresent: a present optional AmpList is decoded", () =>
    Effect.gen(function*() {
      const pair = yield* tcp.connect({ server: [dontRejectMe] })
      const { response } = yield* pair.client.dispatcher.callRemote(DontRejectMe, {
        magicWord: "please",
        list: [{ name: "foo" }]
      })
      assert.strictEqual(response, "foo accepted")
    }), 10_000)

  it.live("test_quitBoxQuits: Responders.quit answers, then the connection closes; the next call fails", () =>
    Effect.gen(function*() {
      const observed = yield* makeObserved
      const pair = yield* tcp.connect({
        server: [
          ...serverHandlers(observed),
          Responders.handle(Goodbye, () => Effect.succeed(Responders.quit({ goodbye: enc.encode("everyone") })))
        ]
      })
      const amp = pair.client.dispatcher
      assert.strictEqual((yield* amp.callRemote(Hello, { hello: "world" })).hello, "world|from=<none>|dashed=<none>")
      const { goodbye } = yield* amp.callRemote(Goodbye, {})
      assert.strictEqual(text(goodbye), "everyone")
      const end = yield* pair.client.ended.pipe(Effect.timeout(5_000))
      assert.isFalse(end.local, "the server closed it")
      const later = yield* Effect.flip(amp.callRemote(Hello, { hello: "world" }))
      assert.strictEqual(later._tag, "AmpConnectionLost")
      yield* eventually("server side ended", Effect.map(pair.serverConnections, (n) => n === 0))
    }), 10_000)

  it.live("test_quitBoxQuits (wire): the answer is written in full, then a clean EOF", () =>
    Effect.gen(function*() {
      const { peer } = yield* rawToServer([
        Responders.handle(Goodbye, () => Effect.succeed(Responders.quit({ goodbye: enc.encode("everyone") })))
      ])
      yield* peer.write(Box.make({ _command: "Goodbye", _ask: "1" }))
      yield* peer.waitClosed()
      assert.strictEqual(
        Buffer.from(peer.received()).toString("latin1"),
        "\x00\x07_answer\x00\x011\x00\x07goodbye\x00\x08everyone\x00\x00"
      )
      assert.isTrue(peer.gotEof(), "graceful close (Twisted's loseConnection)")
    }), 10_000)

  it.live("test_protocolSwitchDeferred: a switch responder that decides later still switches", () =>
    Effect.gen(function*() {
      const decide = yield* Deferred.make<void>()
      const started = yield* Ref.make(false)
      const pair = yield* tcp.connect({
        server: [
          ProtocolSwitch.handle(SwitchProto, ({ name }) =>
            Ref.set(started, true).pipe(
              Effect.andThen(Deferred.await(decide)),
              Effect.andThen(
                name === "test-proto"
                  ? Effect.succeed(echo)
                  : Effect.fail(new UnknownProtocol({ message: `no ${name}` }))
              )
            ))
        ]
      })
      const switching = yield* Effect.forkChild(pair.client.switchProtocol(SwitchProto, { name: "test-proto" }))
      yield* eventually("switch responder running", Ref.get(started))
      yield* Effect.sleep(20)
      assert.isUndefined(switching.pollUnsafe(), "the switch waits for the responder's decision")
      yield* Deferred.succeed(decide, undefined)
      const switched = yield* Fiber.join(switching).pipe(Effect.timeout(5_000))
      const io = yield* openSwitched(switched.socket)
      yield* io.write("Success!")
      yield* io.waitFor("Success!")
      yield* io.write("No, really.  Success.")
      yield* io.waitFor("Success!No, really.  Success.")
    }), 10_000)

  it.live("test_errorAfterSwitch: a responder failing after the switch writes nothing into the switched stream", () =>
    Effect.gen(function*() {
      const release = yield* Deferred.make<void>()
      const waiting = yield* Ref.make(0)
      const failed = yield* Ref.make(0)
      const pair = yield* tcp.connect({
        server: [
          Responders.handle(WaitThenFail, () =>
            Ref.update(waiting, (n) => n + 1).pipe(
              Effect.andThen(Deferred.await(release)),
              Effect.andThen(Ref.update(failed, (n) => n + 1)),
              Effect.andThen(Effect.fail(new SpuriousError({ message: "Here's some traffic in the form of an error." })))
            )),
          ProtocolSwitch.handle(SwitchProto, () => Effect.succeed(echo))
        ]
      })
      const amp = pair.client.dispatcher
      const pending = yield* Effect.forkChild(amp.callRemote(WaitThenFail, {}))
      yield* eventually("WaitForever running on the server", Effect.map(Ref.get(waiting), (n) => n === 1))
      const switched = yield* pair.client.switchProtocol(SwitchProto, { name: "test-proto" })
      // while and after switching, AMP traffic is refused (test_trafficAfterSwitch's sendHello)
      assert.strictEqual((yield* Effect.flip(amp.callRemote(Sum, { a: 1n, b: 2n })))._tag, "ProtocolSwitched")
      const lost = yield* Effect.flip(Fiber.join(pending)).pipe(Effect.timeout(5_000))
      assert.isTrue(lost._tag === "AmpConnectionLost" || lost._tag === "ProtocolSwitched", lost._tag)
      const io = yield* openSwitched(switched.socket)
      yield* io.write("Success!")
      yield* io.waitFor("Success!")
      // now the spurious error: its box must be dropped, not written into the echo stream
      yield* Deferred.succeed(release, undefined)
      yield* eventually("the responder failed", Effect.map(Ref.get(failed), (n) => n === 1))
      yield* Effect.sleep(50)
      yield* io.write("No, really.  Success.")
      yield* io.waitFor("Success!No, really.  Success.")
    }), 10_000)
})

// -------------------------------------------------------------------------------------------------
describe("CommandLocatorTests", () => {
  /** Sends SimpleGreeting("ni hao", 5) as raw bytes and returns the answer's cookieplus. */
  const greet = (handlers: ReadonlyArray<Responders.Any>) =>
    Effect.gen(function*() {
      const { peer } = yield* rawToServer(handlers)
      yield* peer.write(Box.make({ _command: "simple", _ask: "1", greeting: "ni hao", cookie: "5" }))
      const [answer] = yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      assert.deepStrictEqual([...answer!.keys()].sort(), ["_answer", "cookieplus"])
      return text(answer!.get("cookieplus"))
    })

  it.live("test_responderDecorator: Responders.handle answers, decoding and encoding through the command", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* greet([greeter(3n)]), "8")
    }), 10_000)

  it.live("test_responderOverriding: a later handler for the same command replaces an earlier one", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* greet([greeter(3n), greeter(4n)]), "9")
      // the same through Responders.make and Responders.layer directly
      const [first, second] = [greeter(3n), greeter(4n)]
      const built = yield* Responders.make(first, second)
      assert.strictEqual(built.handlers.size, 1)
      assert.strictEqual(built.handlers.get("simple"), second)
      const layered = yield* Effect.provide(Responders.Responders, Responders.layer(first, second))
      assert.strictEqual(layered.handlers.get("simple"), second)
    }), 10_000)

  it.live("test_responderInheritance: spreading a base set of handlers inherits its responders", () =>
    Effect.gen(function*() {
      const overriding = [greeter(3n), greeter(4n)] as const // Twisted's OverridingLocator
      const inheriting = [...overriding, Responders.handle(Sum, ({ a, b }) => Effect.succeed({ total: a + b }))]
      assert.strictEqual(yield* greet(inheriting), "9")
    }), 10_000)

  it.live("later wins whatever the kind (ours): a raw handler after a typed one with the same name replaces it", () =>
    Effect.gen(function*() {
      const raw = Responders.raw("simple", () => Effect.succeed(Box.make({ cookieplus: "raw" })))
      assert.strictEqual(yield* greet([greeter(3n), raw]), "raw")
      assert.strictEqual(yield* greet([raw, greeter(3n)]), "8")
    }), 10_000)
})

// -------------------------------------------------------------------------------------------------
describe("raw-responder name lookup (SimpleStringLocator: amp_ + name.upper())", () => {
  const l1 = (s: string) => new Uint8Array(Buffer.from(s, "latin1"))
  const reflect = (name: string) =>
    Responders.raw(name, (box) => Effect.succeed(Box.make({ handler: l1(name), command: box.get("_command")! })))

  const ask = (handlers: ReadonlyArray<Responders.Any>, names: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      const { peer } = yield* rawToServer(handlers)
      yield* peer.write(...names.map((name, i) => Box.make({ _command: l1(name), _ask: (i + 1).toString(16) })))
      const boxes = yield* peer.waitForBoxes((boxes) => boxes.length === names.length)
      return boxes.map((box) =>
        box.has("_error") ? `${text(box.get("_error_code"))}` : `${text(box.get("handler"))}<-${text(box.get("command"))}`
      )
    })

  it.live("test_helloWorld's amp_HELLO: a raw handler answers its name in any ASCII case", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* ask([reflect("HELLO")], ["hello", "Hello", "HELLO", "hellO"]), [
        "HELLO<-hello",
        "HELLO<-Hello",
        "HELLO<-HELLO",
        "HELLO<-hellO"
      ])
      // ours also takes the name as given (Twisted needs amp_ + upper case)
      assert.deepStrictEqual(yield* ask([reflect("hello")], ["hello", "HELLO", "hellO"]), [
        "hello<-hello",
        "hello<-HELLO",
        "hello<-hellO"
      ])
    }), 10_000)

  it.live("an exact name wins over the case-insensitive fallback; typed handlers match exactly only", () =>
    Effect.gen(function*() {
      const typed = Responders.handle(Command.make("Ping", { response: { handler: Argument.Unicode } }), () =>
        Effect.succeed({ handler: "typed" }))
      const answers = yield* ask([reflect("PING"), typed, reflect("ping")], ["PING", "ping", "Ping", "PiNg"])
      // "Ping" is the typed handler's exact name; "PiNg" falls back to the raw handlers by upper-cased
      // name, where (as everywhere) the later of "PING" and "ping" wins
      assert.deepStrictEqual(answers.slice(0, 2), ["PING<-PING", "ping<-ping"])
      assert.strictEqual(answers[2], "typed<-undefined")
      assert.strictEqual(answers[3], "ping<-PiNg")
      // a typed handler has no fallback
      assert.deepStrictEqual(yield* ask([typed], ["PING"]), ["UNHANDLED"])
    }), 10_000)

  it.live("only ASCII letters fold (Python's bytes.upper()); StartTLS never falls back to a raw STARTTLS", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* ask([reflect("CAF\xc9")], ["caf\xc9", "caf\xe9"]), ["CAF\xc9<-caf\xc9", "UNHANDLED"])
      // Twisted's built-in StartTLS responder wins over amp_STARTTLS: without TLS material, TLS_ERROR
      assert.deepStrictEqual(yield* ask([reflect("STARTTLS")], ["StartTLS", "starttls"]), ["TLS_ERROR", "STARTTLS<-starttls"])
    }), 10_000)
})

// -------------------------------------------------------------------------------------------------
describe("AmpBoxTests", () => {
  it.effect("test_serializeUnicodeValueRaises: a string value is refused with InvalidValue, nothing encoded", () =>
    Effect.gen(function*() {
      const box = new Map([["key", "value" as unknown as Uint8Array]])
      const error = yield* Effect.flip(Box.encode(box))
      assert.strictEqual(error._tag, "InvalidValue")
      if (error._tag !== "InvalidValue") return
      assert.strictEqual(error.key, "key")
      assert.strictEqual(error.got, "a string")
      assert.match(error.message, /"key".*string, not bytes/)
      assert.strictEqual(Box.encodedLength(box) instanceof Box.InvalidValue, true)
      assert.throws(() => Box.encodeUnsafe(box), /not bytes/)
      assert.throws(() => Box.encodeAllUnsafe([Box.make({ ok: "1" }), box]), /not bytes/)
      // other non-bytes values likewise
      const numeric = Box.encodedLength(new Map([["n", 5 as unknown as Uint8Array]]))
      assert.strictEqual((numeric as Box.InvalidValue).got, "a number")
      const array = Box.encodedLength(new Map([["a", [1, 2] as unknown as Uint8Array]]))
      assert.strictEqual((array as Box.InvalidValue).got, "an instance of Array")
      // bytes (Buffer is a Uint8Array) are fine
      assert.strictEqual(Box.encodedLength(new Map([["b", Buffer.from("x")]])), 2 + 4 + 1 + 1)
    }))

  it.live("test_serializeUnicodeValueRaises (callRemoteRaw): refused before sending; the connection goes on", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      const error = yield* Effect.flip(
        client.dispatcher.callRemoteRaw("hello", new Map([["hello", "world" as unknown as Uint8Array]]))
      )
      assert.strictEqual(error._tag, "InvalidValue")
      const next = yield* Effect.forkChild(client.dispatcher.callRemoteRaw("hello", Box.make({ hello: "world" })))
      const [request] = yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      assert.strictEqual(text(request!.get("hello")), "world")
      yield* peer.write(Box.make({ _answer: text(request!.get("_ask"))!, ok: "1" }))
      assert.strictEqual(text((yield* Fiber.join(next)).get("ok")), "1")
    }), 10_000)

  it.live("test_serializeUnicodeValueRaises (answer): a raw responder answering a string value sends nothing and closes", () =>
    Effect.gen(function*() {
      const { peer } = yield* rawToServer([
        Responders.raw("Bad", () => Effect.succeed(new Map([["v", "text" as unknown as Uint8Array]])))
      ])
      yield* peer.write(Box.make({ _command: "Bad", _ask: "1" }))
      yield* peer.waitClosed()
      assert.strictEqual(peer.boxes().length, 0, "no answer box (Twisted: TypeError in serialize, loseConnection)")
    }), 10_000)
})

// -------------------------------------------------------------------------------------------------
describe("RemoteAmpErrorTests", () => {
  it("test_stringMessage: Code<CODE>: description", () => {
    const error = new UnknownRemoteError({ code: "BROKEN", description: "Something has broken" })
    assert.strictEqual(error.message, "Code<BROKEN>: Something has broken")
  })

  it("test_stringMessageReplacesNonAsciiText: code bytes >= 0x80 are escaped \\xNN", () => {
    const error = new UnknownRemoteError({ code: "BROKEN-\xff", description: "Something has broken" })
    assert.strictEqual(error.message, "Code<BROKEN-\\xff>: Something has broken")
    assert.strictEqual(error.code, "BROKEN-\xff", "the code itself is kept as received")
    const mixed = new UnknownRemoteError({ code: "\x80A\xe9", description: "d" })
    assert.strictEqual(mixed.message, "Code<\\x80A\\xe9>: d")
  })

  it.live("an undeclared code over the wire: the code is kept (Twisted's callRemote says UNKNOWN)", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      const call = yield* Effect.forkChild(client.dispatcher.callRemote(Sum, { a: 1n, b: 2n }))
      const [request] = yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      yield* peer.write(Box.make([
        ["_error", request!.get("_ask")!],
        ["_error_code", new Uint8Array(Buffer.from("WEIRD\xff", "latin1"))],
        ["_error_description", new Uint8Array([0xff, 0xfe, ...enc.encode("oops")])]
      ]))
      const error = yield* Effect.flip(Fiber.join(call))
      assert.strictEqual(error._tag, "UnknownRemoteError")
      if (error._tag !== "UnknownRemoteError") return
      assert.strictEqual(error.code, "WEIRD\xff")
      // Twisted's callRemoteString gives `Code<WEIRD\xff>: ��oops` (callRemote: `Code<UNKNOWN>: ��oops`)
      assert.strictEqual(error.message, "Code<WEIRD\\xff>: \ufffd\ufffdoops")
    }), 10_000)
})

// -------------------------------------------------------------------------------------------------
describe("CommandTests", () => {
  it.live("test_extraArgumentsDisallowed: an undeclared argument key fails with AmpArgumentError; nothing is sent", () =>
    Effect.gen(function*() {
      const { client, peer } = yield* clientToRawPeer()
      const bogus = { hello: "hello", bogusArgument: 1 } as unknown as Command.Arguments<typeof Hello>
      const error = yield* Effect.flip(client.dispatcher.callRemote(Hello, bogus))
      assert.strictEqual(error._tag, "AmpArgumentError")
      if (error._tag !== "AmpArgumentError") return
      assert.strictEqual(error.side, "arguments")
      assert.strictEqual(error.key, "bogusArgument")
      assert.match(error.message, /Hello: cannot encode argument 'bogusArgument': not a declared argument \(declared: hello, from, dashed-name\)/)
      // the same from Command.encodeArguments (Twisted's makeArguments)
      assert.strictEqual((yield* Effect.flip(Command.encodeArguments(Hello, bogus))).key, "bogusArgument")
      // an optional argument given as undefined is not an extra key
      const box = yield* Command.encodeArguments(Hello, { hello: "x", from: undefined } as unknown as Command.Arguments<typeof Hello>)
      assert.deepStrictEqual([...box.keys()].sort(), ["_command", "hello"])
      // nothing was sent and no tag was used: the next call is the first on the wire, tag 1
      const next = yield* Effect.forkChild(client.dispatcher.callRemote(Hello, { hello: "again" }))
      const [request] = yield* peer.waitForBoxes((boxes) => boxes.length === 1)
      assert.strictEqual(text(request!.get("_ask")), "1")
      assert.strictEqual(text(request!.get("hello")), "again")
      yield* peer.write(Box.make({ _answer: "1", hello: "ok" }))
      assert.strictEqual((yield* Fiber.join(next)).hello, "ok")
    }), 10_000)

  it.effect("test_wireSpellingDisallowed: ours has one spelling, the wire name; Twisted's Python spelling is refused", () =>
    Effect.gen(function*() {
      // Twisted requires `Print=` for wire `print` and refuses `print=`; our keys are the wire names
      const box = yield* Command.encodeArguments(Hello, { hello: "required", from: "me" })
      assert.strictEqual(text(box.get("from")), "me")
      const error = yield* Effect.flip(
        Command.encodeArguments(Hello, { hello: "required", From: "me" } as unknown as Command.Arguments<typeof Hello>)
      )
      assert.strictEqual(error.key, "From")
      const dashed = yield* Effect.flip(
        Command.encodeArguments(Hello, { hello: "x", dashed_name: 1n } as unknown as Command.Arguments<typeof Hello>)
      )
      assert.strictEqual(dashed.key, "dashed_name")
    }))

  /** `ProtocolIncludingCommand`'s `weird` argument: a custom codec that records every use. */
  const makeWeird = () => {
    const log: Array<string> = []
    const Weird = Argument.make({
      name: "Weird",
      type: Schema.String,
      encode: (value: string) => {
        log.push(`encode ${value}`)
        return enc.encode(`<${value}>`)
      },
      decode: (bytes) => {
        const s = new TextDecoder().decode(bytes)
        log.push(`decode ${s}`)
        return s.slice(1, -1)
      }
    })
    const MagicSchemaCommand = Command.make("MagicSchemaCommand", {
      arguments: { weird: Weird },
      response: { weird: Weird }
    })
    return { log, MagicSchemaCommand }
  }

  it.effect("test_makeArguments / test_parseArguments / test_parseResponse: Command.encode*/decode* run the argument codecs", () =>
    Effect.gen(function*() {
      const { log, MagicSchemaCommand } = makeWeird()
      const box = yield* Command.encodeArguments(MagicSchemaCommand, { weird: "whatever" })
      assert.strictEqual(text(box.get("weird")), "<whatever>")
      assert.strictEqual(text(box.get("_command")), "MagicSchemaCommand")
      // test_makeArgumentsUsesCommandType: there is no box class to choose; a box is a Map
      assert.instanceOf(box, Map)
      assert.deepStrictEqual(yield* Command.decodeArguments(MagicSchemaCommand, box), { weird: "whatever" })
      const answer = yield* Command.encodeResponse(MagicSchemaCommand, { weird: "back" })
      assert.deepStrictEqual(yield* Command.decodeResponse(MagicSchemaCommand, answer), { weird: "back" })
      assert.deepStrictEqual(log, ["encode whatever", "decode <whatever>", "encode back", "decode <back>"])
    }))

  it.live("test_callRemoteCallsMakeArguments / test_responderCallsParseArguments / test_callRemoteCallsParseResponse", () =>
    Effect.gen(function*() {
      const { log, MagicSchemaCommand } = makeWeird()
      const pair = yield* tcp.connect({
        server: [
          // Twisted passes the protocol to parseArguments; ours gives the handler its connection instead
          Responders.handle(MagicSchemaCommand, ({ weird }) =>
            Effect.map(ConnectionInfo.current, (info) => ({ weird: `${weird} via ${info.transport}` })))
        ]
      })
      const { weird } = yield* pair.client.dispatcher.callRemote(MagicSchemaCommand, { weird: "weeoo" })
      assert.strictEqual(weird, "weeoo via tcp")
      assert.deepStrictEqual(log, [
        "encode weeoo", // callRemote → the argument's encode (makeArguments)
        "decode <weeoo>", // the responder → its decode (parseArguments)
        "encode weeoo via tcp", // the answer (makeResponse)
        "decode <weeoo via tcp>" // the caller (parseResponse)
      ])
    }), 10_000)
})

// -------------------------------------------------------------------------------------------------
describe("StartTLS without TLS material (TLSNotAvailableTests, PlainVanillaLiveFireTests)", () => {
  it.live("test_liveFireDefaultTLS (ours differs): our server without TLS material refuses with TLS_ERROR and goes on", () =>
    Effect.gen(function*() {
      const observed = yield* makeObserved
      const pair = yield* tcp.connect({ server: serverHandlers(observed) })
      const error = yield* Effect.flip(pair.client.startTLS({ verify: false }))
      assert.strictEqual(error._tag, "UnknownRemoteError")
      if (error._tag !== "UnknownRemoteError") return
      assert.strictEqual(error.code, "TLS_ERROR")
      assert.strictEqual(error.description, "TLS not available")
      assert.strictEqual(error.message, "Code<TLS_ERROR>: TLS not available")
      assert.isFalse(yield* endedWithin(pair.client, 20))
      assert.strictEqual((yield* pair.client.dispatcher.callRemote(Sum, { a: 1n, b: 2n })).total, 3n)
      assert.isFalse((yield* pair.client.info.get).tls)
    }), 10_000)
})

describeTwisted("StartTLS without TLS material, against real Twisted", () => {
  const probe = Path.join(twistedDir, "tls_probe.py")

  it.live("a Twisted client asking our TLS-less server: TLS_ERROR / TLS not available, as Twisted's own answer", () =>
    Effect.gen(function*() {
      const observed = yield* makeObserved
      const { server } = yield* rawToServer(serverHandlers(observed))
      const port = server.address._tag === "Tcp" ? server.address.port : 0
      const result = yield* Effect.promise(() => run(python, [probe, "client", String(port)], { timeoutMillis: 30_000 }))
      assert.strictEqual(result.code, 0, result.stderr)
      assert.deepStrictEqual(result.stdout.trim().split("\n"), [
        "RAW TLS_ERROR TLS not available",
        "SUM 3",
        // Twisted's callRemote maps an undeclared code to UnknownRemoteError, code forced to UNKNOWN
        "TYPED UnknownRemoteError Code<UNKNOWN>: TLS not available"
      ])
    }), 40_000)

  it.live("the error code Twisted answers when TLS is unavailable (amp.ssl = None) is TLS_ERROR, as ours", () =>
    Effect.gen(function*() {
      const twisted = yield* Effect.acquireRelease(
        Effect.promise(() => startServer(python, [probe, "server", "--no-ssl"])),
        (s) => Effect.promise(() => s.stop())
      )
      const client = yield* Client.connect({ host: "127.0.0.1", port: twisted.port }).pipe(
        Effect.provideService(Responders.Responders, responders())
      )
      const error = yield* Effect.flip(client.startTLS({ verify: false }))
      assert.strictEqual(error._tag, "UnknownRemoteError")
      if (error._tag !== "UnknownRemoteError") return
      assert.strictEqual(error.code, "TLS_ERROR")
      assert.strictEqual(error.description, "TLS not available")
      // the connection goes on, on both sides
      assert.strictEqual((yield* client.dispatcher.callRemote(Sum, { a: 20n, b: 22n })).total, 42n)
    }), 40_000)

  it.live("Twisted's default StartTLS responder uses a temporary self-signed certificate (what ours does not do)", () =>
    Effect.gen(function*() {
      const twisted = yield* Effect.acquireRelease(
        Effect.promise(() => startServer(python, [probe, "server"])),
        (s) => Effect.promise(() => s.stop())
      )
      const client = yield* Client.connect({ host: "127.0.0.1", port: twisted.port }).pipe(
        Effect.provideService(Responders.Responders, responders())
      )
      // a certificate nobody can verify: only an unverifying client accepts it (Twisted's own default)
      yield* client.startTLS({ verify: false })
      const SecuredPing = Command.make("SecuredPing", { response: { pinged: Argument.Boolean } })
      assert.isTrue((yield* client.dispatcher.callRemote(SecuredPing, {})).pinged)
      const info = yield* client.info.get
      assert.isTrue(info.tls)
      assert.strictEqual(info.peerCertificate?.subject?.CN, "TEMPORARY CERTIFICATE")
    }), 60_000)
})
