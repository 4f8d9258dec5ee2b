/**
 * `Argument.Descriptor` over real Unix-domain sockets, against real Twisted in both directions: the
 * conformance commands `ReadDescriptor` / `OpenDescriptor` (pipes, a regular file, empty, 65535 bytes,
 * many calls in flight), several descriptors in one box, peers that vanish with fds in flight, TCP's
 * typed refusal, and an ordinal that never arrived. After every test the count of this process's open
 * fds (/proc/self/fd) is back where it was.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Argument, Client, Command, Descriptor, Responders, Server } from "../src/index.ts"
import { checkNames, unixCheckNames } from "../src/conformance/client.ts"
import * as C from "../src/conformance/commands.ts"
import { pipeWith, readAll } from "../src/conformance/descriptors.ts"
import { CodecFailure } from "../src/internal/argument.ts"
import * as Descriptors from "../src/internal/descriptors.ts"
import * as Conformance from "../src/conformance/server.ts"
import { killRemaining, node, root, run, type Server as Process, startServer } from "./support/process.ts"
import { describeTwisted, python, twistedDir } from "./support/twisted.ts"

const peer = Path.join(twistedDir, "peer.py")
const fdsPy = Path.join(twistedDir, "fds.py")

/** Every conformance check but StartTLS (which needs certificates; the TLS suites run it). */
const plainChecks = checkNames.filter((name) => name !== "StartTLS")

const openFds = (): number => Fs.readdirSync("/proc/self/fd").length

/** Waits (bounded) until the fd count is back to `baseline`; closes happen in callbacks. */
const settled = async (baseline: number): Promise<number> => {
  const deadline = Date.now() + 3000
  let now = openFds()
  while (now !== baseline && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    now = openFds()
  }
  return now
}

const bytesOf = (size: number, k = 7): Uint8Array => Uint8Array.from({ length: size }, (_, i) => (i * k) & 0xff)
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b))

const ReadMany = Command.make("ReadMany", {
  arguments: { items: Argument.AmpList({ fd: Argument.Descriptor }), extra: Argument.Descriptor },
  response: { data: Argument.ListOf(Argument.String) }
})
const OpenMany = Command.make("OpenMany", {
  arguments: { sizes: Argument.ListOf(Argument.SafeInteger) },
  response: { items: Argument.AmpList({ fd: Argument.Descriptor, size: Argument.SafeInteger }) }
})
const manyHandlers = Responders.layer(
  Responders.handle(ReadMany, ({ extra, items }) =>
    Effect.map(
      Effect.forEach([...items.map((i) => i.fd), extra], (fd) => Effect.orDie(readAll(fd))),
      (data) => ({ data })
    )),
  Responders.handle(OpenMany, ({ sizes }) =>
    Effect.map(
      Effect.forEach(sizes, (size) => Effect.orDie(pipeWith(bytesOf(size, 13)))),
      (fds) => ({ items: fds.map((fd, i) => ({ fd: Descriptor.transfer(fd), size: sizes[i]! })) })
    ))
)

let dir: string
let twisted: Process
let baseline = 0

const sock = (name: string) => Path.join(dir, name)

/** Runs `effect` with a client connected to the Twisted server. */
const withTwisted = <A, E>(f: (conn: import("../src/Connection.ts").Connection) => Effect.Effect<A, E>) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const conn = yield* Client.connect({ path: twisted.listening })
      return yield* f(conn)
    }).pipe(Effect.scoped, Effect.provide(Responders.empty))
  )

/**
 * Suites that need the native part: without it (no C compiler at `npm install`) they are skipped with
 * the reason, except under CI (`CI=true`), where that is a failure.
 */
const nativeReason = Descriptor.unavailableReason()
const describeNative = (name: string, body: () => void, wrap: (name: string, body: () => void) => void = describe) => {
  if (nativeReason === undefined) wrap(name, body)
  else if (process.env.CI === "true") {
    describe(name, () => {
      it("needs the native part (CI=true forbids skipping)", () => {
        throw new Error(nativeReason)
      })
    })
  } else {
    console.warn(`[effect-amp] skipping "${name}": ${nativeReason}`)
    describe.skip(name, body)
  }
}

describeNative("Descriptor: availability", () => {
  it("the native part is built here and loads", () => {
    assert.strictEqual(Descriptor.unavailableReason(), undefined)
    assert.isTrue(Descriptor.isAvailable())
  })

  it("the build script never fails the install: without a compiler it says how to enable fd passing", () => {
    const result = spawnSync(node, [Path.join(root, "native", "build.mjs")], {
      env: { ...process.env, CC: "/nonexistent/cc" },
      encoding: "utf8",
      timeout: 30_000
    })
    assert.strictEqual(result.status, 0)
    assert.include(result.stdout, "not built (no C compiler (/nonexistent/cc) on PATH)")
    assert.include(result.stdout, "npm rebuild effect-amp")
    assert.isTrue(Descriptor.isAvailable()) // the existing build is untouched
  })

  it("without the native part: Unix connections work, a Descriptor fails with a typed error saying how to enable it", async () => {
    // a copy of the sources with no native/build next to them: what a machine without a C compiler has
    const copy = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-amp-nonative-"))
    try {
      Fs.cpSync(Path.join(root, "src"), Path.join(copy, "src"), { recursive: true })
      Fs.copyFileSync(Path.join(root, "package.json"), Path.join(copy, "package.json"))
      Fs.symlinkSync(Path.join(root, "node_modules"), Path.join(copy, "node_modules"))
      Fs.writeFileSync(
        Path.join(copy, "probe.ts"),
        `import { Effect } from "effect"
import { Client, Descriptor, Server } from "./src/index.ts"
import * as C from "./src/conformance/commands.ts"
import * as Conformance from "./src/conformance/server.ts"
const path = ${JSON.stringify(Path.join(copy, "probe.sock"))}
const out = await Effect.runPromise(Effect.gen(function*() {
  yield* Server.make({ path })
  const conn = yield* Client.connect({ path })
  const sum = yield* conn.dispatcher.callRemote(C.Sum, { a: 2n, b: 3n })
  const error = yield* Effect.flip(conn.dispatcher.callRemote(C.ReadDescriptor, { fd: 0 }))
  const pipe = yield* Effect.flip(Descriptor.pipe)
  return { sum: String(sum.total), tag: error._tag, message: error.message, pipe: pipe._tag, available: Descriptor.isAvailable() }
}).pipe(Effect.scoped, Effect.provide(Conformance.layer)))
console.log(JSON.stringify(out))
`
      )
      const result = await run(node, ["probe.ts"], { cwd: copy, timeoutMillis: 30_000 })
      assert.strictEqual(result.code, 0, result.stderr)
      const out = JSON.parse(result.stdout) as Record<string, unknown>
      assert.strictEqual(out.sum, "5")
      assert.strictEqual(out.tag, "AmpArgumentError")
      assert.include(String(out.message), "native part was not built")
      assert.include(String(out.message), "npm rebuild effect-amp")
      assert.strictEqual(out.pipe, "DescriptorUnavailable")
      assert.strictEqual(out.available, false)
    } finally {
      Fs.rmSync(copy, { recursive: true, force: true })
    }
  }, 40_000)

  it("over TCP a Descriptor argument fails with a typed error before anything is sent", async () => {
    let handled = 0
    const start = openFds()
    const exit = await Effect.runPromise(
      Effect.gen(function*() {
        const server = yield* Server.make({ port: 0 }).pipe(
          Effect.provide(Responders.layer(Responders.handle(C.ReadDescriptor, () =>
            Effect.sync(() => {
              handled++
              return { data: new Uint8Array() }
            }))))
        )
        const port = server.address._tag === "Tcp" ? server.address.port : 0
        const conn = yield* Client.connect({ port }).pipe(Effect.provide(Responders.empty))
        const [r, w] = yield* Descriptor.pipe
        const result = yield* Effect.exit(conn.dispatcher.callRemote(C.ReadDescriptor, { fd: r }))
        // the connection is fine and nothing of that call reached the peer
        const echo = yield* conn.dispatcher.callRemote(C.ReadDescriptor, { fd: r }).pipe(Effect.flip)
        Fs.closeSync(r)
        Fs.closeSync(w)
        return { result, echo }
      }).pipe(Effect.scoped)
    )
    assert.isTrue(Exit.isFailure(exit.result))
    const error = Exit.isFailure(exit.result) ? exit.result.cause.reasons[0] : undefined
    assert.strictEqual(error?._tag, "Fail")
    const failure = (error as { error: { _tag: string; key: string; message: string } }).error
    assert.strictEqual(failure._tag, "AmpArgumentError")
    assert.strictEqual(failure.key, "fd")
    assert.include(failure.message, "only be passed over a Unix-domain connection")
    assert.strictEqual(exit.echo._tag, "AmpArgumentError")
    assert.strictEqual(handled, 0)
    assert.strictEqual(await settled(start), start)
  })
})

describeNative("Descriptor: the per-connection state (Twisted's _DescriptorExchanger)", () => {
  const isOpen = (fd: number): boolean => Fs.existsSync(`/proc/self/fd/${fd}`)
  const newPipe = (): [number, number] => Effect.runSync(Descriptor.pipe) as [number, number]
  const throwsCodecFailure = (f: () => unknown, text: string) => {
    try {
      f()
    } catch (e) {
      assert.instanceOf(e, CodecFailure)
      assert.include((e as CodecFailure).reason, text)
      return
    }
    assert.fail("expected a CodecFailure")
  }

  it("send counts from 0 and queues duplicates; a failed encode un-queues its fds and restores the counter", () => {
    const start = openFds()
    const channel = new Descriptors.Channel()
    const [r, w] = newPipe()
    const ordinals = Descriptors.within(channel, () => [Descriptors.encode(r), Descriptors.encode(w)])
    assert.deepStrictEqual(ordinals, [0, 1])
    assert.strictEqual(channel.queue.length, 2)
    assert.notInclude(channel.queue, r)
    assert.throws(() =>
      Descriptors.within(channel, () => {
        Descriptors.encode(r)
        Descriptors.encode(r)
        throw new Error("a later field failed")
      })
    )
    assert.strictEqual(channel.queue.length, 2)
    assert.strictEqual(Descriptors.within(channel, () => Descriptors.encode(w)), 2)
    channel.close()
    Fs.closeSync(r)
    Fs.closeSync(w)
    assert.strictEqual(openFds(), start)
  })

  it("receive ordinals count from 0; each fd is claimed once; unclaimed ones are closed with the connection", () => {
    const channel = new Descriptors.Channel()
    const [r, w] = newPipe()
    channel.received([r, w])
    assert.strictEqual(Descriptors.within(channel, () => Descriptors.decode(1n)), w)
    throwsCodecFailure(() => Descriptors.within(channel, () => Descriptors.decode(1n)), "no file descriptor was received for ordinal 1")
    throwsCodecFailure(() => Descriptors.within(channel, () => Descriptors.decode(7n)), "ordinal 7")
    channel.close()
    assert.isFalse(isOpen(r)) // unclaimed: closed
    assert.isTrue(isOpen(w)) // claimed: the decoder's
    Fs.closeSync(w)
    const [late] = newPipe()
    channel.received([late]) // after the end: closed at once
    assert.isFalse(isOpen(late))
  })

  it("a decode that fails after claiming closes what it claimed", () => {
    const channel = new Descriptors.Channel()
    const [r, w] = newPipe()
    channel.received([r])
    assert.throws(() =>
      Descriptors.within(channel, () => {
        Descriptors.decode(0n)
        throw new Error("a later field failed")
      })
    )
    assert.isFalse(isOpen(r))
    Fs.closeSync(w)
  })

  it("outside a Unix connection: a typed reason; a transferred fd is closed rather than leaked", () => {
    const [r, w] = newPipe()
    throwsCodecFailure(() => Descriptors.within(undefined, () => Descriptors.encode(r)), "Unix-domain connection")
    throwsCodecFailure(() => Descriptors.encode(r), "can only be encoded by a connection")
    throwsCodecFailure(() => Descriptors.within(undefined, () => Descriptors.encode(Descriptor.transfer(w))), "Unix-domain")
    assert.isFalse(isOpen(w))
    assert.isTrue(isOpen(r))
    throwsCodecFailure(() => Descriptors.within(new Descriptors.Channel(), () => Descriptors.encode(-1)), "not a file descriptor")
    Fs.closeSync(r)
  })
})

describeNative("Descriptor: interop with Twisted over Unix sockets", () => {
  beforeAll(async () => {
    dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-amp-fd-"))
    twisted = await startServer(python, [peer, "server", "--unix", sock("twisted.sock")])
    // warm up: the first connection makes process-wide fds (libuv's reserve fd, …)
    await withTwisted((conn) => conn.dispatcher.callRemote(C.Sum, { a: 1n, b: 2n }))
    await Effect.runPromise(Effect.scoped(Server.make({ path: sock("warmup.sock") }).pipe(Effect.provide(Responders.empty))))
    baseline = openFds()
  }, 30_000)

  afterAll(async () => {
    await twisted?.stop()
    killRemaining()
    Fs.rmSync(dir, { recursive: true, force: true })
  })

  const checkLeaks = async () => {
    const now = await settled(baseline)
    assert.strictEqual(now, baseline, `open fds: ${now}, before: ${baseline}`)
  }

  it("we send Twisted pipes and a regular file; it reads them (empty and 65535 bytes too)", async () => {
    const file = sock("regular.txt")
    Fs.writeFileSync(file, "a regular file\n".repeat(200))
    const results = await withTwisted((conn) =>
      Effect.gen(function*() {
        const out: Array<boolean> = []
        for (const size of [23, 0, 65535]) {
          const data = bytesOf(size)
          const fd = yield* pipeWith(data)
          const { data: got } = yield* conn.dispatcher.callRemote(C.ReadDescriptor, { fd })
          Fs.closeSync(fd) // a duplicate was sent: ours stays ours
          out.push(same(got, data))
        }
        const ffd = Fs.openSync(file, "r")
        const { data: got } = yield* conn.dispatcher.callRemote(C.ReadDescriptor, { fd: ffd })
        Fs.closeSync(ffd)
        out.push(Buffer.from(got).toString() === "a regular file\n".repeat(200))
        return out
      })
    )
    assert.deepStrictEqual(results, [true, true, true, true])
    await checkLeaks()
  }, 20_000)

  it("many calls in flight, each with its own pipe, on one connection", async () => {
    const results = await withTwisted((conn) =>
      Effect.forEach(Array.from({ length: 120 }, (_, i) => i), (i) =>
        Effect.gen(function*() {
          const data = bytesOf(i * 97, i + 1)
          const fd = yield* pipeWith(data)
          const { data: got } = yield* conn.dispatcher.callRemote(C.ReadDescriptor, { fd: Descriptor.transfer(fd) })
          return same(got, data)
        }), { concurrency: "unbounded" })
    )
    assert.strictEqual(results.filter((ok) => ok).length, 120)
    await checkLeaks()
  }, 20_000)

  it("Twisted sends us pipes (one per answer, 40 in flight, empty, 65535 bytes); we read them", async () => {
    const results = await withTwisted((conn) =>
      Effect.forEach([0, 65535, ...Array.from({ length: 40 }, (_, i) => i * 31)], (size) =>
        Effect.gen(function*() {
          const data = bytesOf(size, 3)
          const { fd } = yield* conn.dispatcher.callRemote(C.OpenDescriptor, { data })
          const got = yield* readAll(fd)
          return same(got, data)
        }), { concurrency: "unbounded" })
    )
    assert.strictEqual(results.filter((ok) => ok).length, 42)
    await checkLeaks()
  }, 20_000)

  it("our conformance client passes every check against Twisted's server over the Unix socket", async () => {
    const result = await run(node, ["src/cli/bin.ts", "check", "--unix", twisted.listening], { timeoutMillis: 60_000 })
    assert.strictEqual(result.code, 0, result.stdout + result.stderr)
    const passed = result.stdout.split("\n").filter((l) => l.startsWith("PASS ")).map((l) => l.slice(5))
    assert.deepStrictEqual(passed, [...plainChecks, ...unixCheckNames])
    assert.deepStrictEqual(unixCheckNames, ["ReadDescriptor", "OpenDescriptor"])
    assert.include(result.stdout, `${passed.length} passed, 0 failed`)
  }, 70_000)

  it("Twisted's conformance client against our in-process server, every check: it sends us pipes and a file, we send it pipes", async () => {
    const path = sock("ours.sock")
    const result = await Effect.runPromise(
      Effect.gen(function*() {
        yield* Server.make({ path })
        return yield* Effect.promise(() =>
          run(python, [peer, "client", "--unix", path], { timeoutMillis: 60_000 })
        )
      }).pipe(Effect.scoped, Effect.provide(Conformance.layer))
    )
    assert.strictEqual(result.code, 0, result.stdout + result.stderr)
    assert.include(result.stdout, "PASS ReadDescriptor")
    assert.include(result.stdout, "PASS OpenDescriptor")
    assert.include(result.stdout, `${plainChecks.length + unixCheckNames.length} passed, 0 failed`)
    await checkLeaks()
  }, 70_000)

  it("several descriptors in one box, both directions (AmpList of Descriptor plus one more)", async () => {
    const path = sock("many.sock")
    const result = await Effect.runPromise(
      Effect.gen(function*() {
        yield* Server.make({ path })
        return yield* Effect.promise(() => run(python, [fdsPy, "many", path], { timeoutMillis: 40_000 }))
      }).pipe(Effect.scoped, Effect.provide(manyHandlers))
    )
    assert.strictEqual(result.stdout.trim(), "OK", result.stdout + result.stderr)
    assert.strictEqual(result.code, 0)
    await checkLeaks()
  }, 50_000)

  it("a peer that vanishes with fds in flight (received, never claimed): they are closed", async () => {
    const path = sock("vanish.sock")
    const result = await Effect.runPromise(
      Effect.gen(function*() {
        const server = yield* Server.make({ path })
        const outcome = yield* Effect.promise(() => run(python, [fdsPy, "vanish", path], { timeoutMillis: 40_000 }))
        // the connection has ended (and its fds with it) once the server has none left
        for (let i = 0; i < 100 && (yield* server.connections) > 0; i++) yield* Effect.sleep(20)
        return outcome
      }).pipe(Effect.scoped, Effect.provide(manyHandlers))
    )
    assert.strictEqual(result.stdout.trim(), "OK", result.stdout + result.stderr)
    await checkLeaks()
  }, 50_000)

  it("Twisted vanishes mid-call while holding our pipe: the call fails AmpConnectionLost, nothing leaks", async () => {
    const doomed = await startServer(python, [peer, "server", "--unix", sock("doomed.sock")])
    const outcome = await Effect.runPromise(
      Effect.gen(function*() {
        const conn = yield* Client.connect({ path: doomed.listening })
        const [r, w] = yield* Descriptor.pipe
        // the write end stays open here, so Twisted's read blocks until it is killed
        const fiber = yield* Effect.forkChild(Effect.exit(conn.dispatcher.callRemote(C.ReadDescriptor, { fd: r })))
        const [r2, w2] = yield* Descriptor.pipe
        const second = yield* Effect.forkChild(Effect.exit(conn.dispatcher.callRemote(C.ReadDescriptor, { fd: Descriptor.transfer(r2) })))
        yield* Effect.sleep(300)
        yield* Effect.promise(() => doomed.stop(0))
        const exits = [yield* Fiber.join(fiber), yield* Fiber.join(second)]
        for (const fd of [r, w, w2]) Fs.closeSync(fd)
        return exits
      }).pipe(Effect.scoped, Effect.provide(Responders.empty))
    )
    for (const exit of outcome) {
      assert.isTrue(Exit.isFailure(exit))
      const reason = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
      assert.strictEqual((reason as { error?: { _tag: string } })?.error?._tag, "AmpConnectionLost")
    }
    await checkLeaks()
  }, 30_000)

  it("an ordinal whose fd never arrived: UNKNOWN, the connection closes (as in Twisted)", async () => {
    const path = sock("unknown.sock")
    const result = await Effect.runPromise(
      Effect.gen(function*() {
        yield* Server.make({ path })
        const conn = yield* Client.connect({ path }).pipe(Effect.provide(Responders.empty))
        const error = yield* Effect.flip(conn.dispatcher.callRemoteRaw("ReadDescriptor", new Map([["fd", Buffer.from("5")]])))
        const ended = yield* conn.ended
        return { error, ended }
      }).pipe(Effect.scoped, Effect.provide(Conformance.layer))
    )
    assert.strictEqual(result.error._tag, "UnknownRemoteError")
    assert.strictEqual((result.error as { code?: string }).code, "UNKNOWN")
    assert.isDefined(result.ended)
    await checkLeaks()
  }, 20_000)
}, describeTwisted)

afterAll(() => killRemaining())
