/**
 * Fault injection against a live server on loopback (bounded counts and time): garbage, truncated and
 * oversize input, large and flooding traffic, unknown answer tags, peers vanishing at bad moments,
 * server shutdown with calls in flight, random interruptions — while a separate healthy connection
 * keeps getting correct answers. Ends with a check that no socket handle is left behind.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Ref, Scope } from "effect"
import * as fc from "fast-check"
import { beforeAll } from "vitest"
import * as Box from "../src/Box.ts"
import * as Client from "../src/Client.ts"
import type * as Connection from "../src/Connection.ts"
import * as Responders from "../src/Responders.ts"
import * as Server from "../src/Server.ts"
import {
  clientHandlers,
  Delay,
  Echo,
  Gate,
  makeObserved,
  type Observed,
  responders,
  serverHandlers,
  Sum,
  WaitForever
} from "./support/commands.ts"
import { clientToRawPeer, memory, rawConnectTo, socketHandles, tcp } from "./support/transports.ts"
import { eventually } from "./support/wait.ts"

const text = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : Buffer.from(bytes).toString("latin1"))

/** Runs a fast-check property whose body is a scoped Effect. */
const property = <T>(arbitrary: fc.Arbitrary<T>, body: (value: T) => Effect.Effect<void, unknown, Scope.Scope>, numRuns: number) =>
  Effect.promise(() =>
    fc.assert(
      fc.asyncProperty(arbitrary, (value) => Effect.runPromise(Effect.scoped(body(value)) as Effect.Effect<void>)),
      { numRuns, endOnFailure: true }
    )
  )

const connectClient = (server: Server.Server, options?: Connection.Options) =>
  Client.connect({ port: (server.address as { port: number }).port, ...options }).pipe(
    Effect.provideService(Responders.Responders, responders(...clientHandlers)),
    Effect.orDie
  )

/**
 * A live server with the standard responders and a healthy client that calls Sum in a loop in the
 * background; `check` stops the loop and asserts that every call got the right answer.
 */
const liveServer = (options?: Partial<Server.ServeOptions>) =>
  Effect.gen(function*() {
    const observed = yield* makeObserved
    const server = yield* Server.make({ port: 0, ...options } as Server.ServeOptions).pipe(
      Effect.provideService(Responders.Responders, responders(...serverHandlers(observed))),
      Effect.orDie
    )
    const healthy = yield* connectClient(server)
    const calls = yield* Ref.make(0)
    const loop = yield* Effect.forkChild(
      Effect.gen(function*() {
        for (let i = 0n;; i++) {
          const { total } = yield* healthy.dispatcher.callRemote(Sum, { a: i + 1000n, b: i })
          if (total !== 2n * i + 1000n) return yield* Effect.die(new Error(`wrong total ${total} for ${i}`))
          yield* Ref.update(calls, (n) => n + 1)
          yield* Effect.sleep(1)
        }
      })
    )
    const check = Effect.gen(function*() {
      const before = yield* Ref.get(calls)
      yield* eventually("the healthy connection answers", Effect.map(Ref.get(calls), (n) => n > before + 2))
      assert.isUndefined(loop.pollUnsafe(), "the healthy call loop stopped")
      yield* Fiber.interrupt(loop)
      assert.strictEqual((yield* healthy.dispatcher.callRemote(Sum, { a: 1n, b: 2n })).total, 3n)
      // only the healthy connection is left
      yield* eventually("faulty connections closed", Effect.map(server.connections, (n) => n === 1))
    })
    return { observed, server, healthy, check }
  })

let handlesBefore: ReturnType<typeof socketHandles>
beforeAll(() => {
  handlesBefore = socketHandles()
})

describe("garbage in", () => {
  it.live("random bytes", () =>
    Effect.gen(function*() {
      const { check, server } = yield* liveServer()
      yield* property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 3000 }), { minLength: 1, maxLength: 4 }),
        (chunks) =>
          Effect.gen(function*() {
            const peer = yield* rawConnectTo(server)
            for (const chunk of chunks) yield* peer.write(chunk)
            // the server either closes on us (a protocol error) or waits for more bytes: then we leave
            yield* Effect.ignore(peer.waitClosed(40))
          }),
        25
      )
      yield* check
    }), 30_000)

  it.live("truncated boxes, then the peer vanishes mid-box", () =>
    Effect.gen(function*() {
      const { check, server } = yield* liveServer()
      const whole = Box.encodeUnsafe(Box.make({ _command: "Sum", _ask: "1", a: "1", b: "2", pad: "x".repeat(300) }))
      yield* property(
        fc.integer({ min: 1, max: whole.length - 1 }),
        (cut) =>
          Effect.gen(function*() {
            const peer = yield* rawConnectTo(server)
            yield* peer.write(whole.subarray(0, cut))
            yield* Effect.sleep(5)
            assert.isFalse(peer.isClosed())
            assert.strictEqual(peer.received().length, 0)
          }),
        25
      )
      yield* check
    }), 30_000)

  it.live("oversize key prefixes anywhere: the server closes that connection cleanly", () =>
    Effect.gen(function*() {
      const { check, observed, server } = yield* liveServer()
      yield* property(
        fc.record({
          before: fc.integer({ min: 0, max: 3 }),
          prefix: fc.integer({ min: 256, max: 0xffff }),
          inside: fc.boolean()
        }),
        ({ before, inside, prefix }) =>
          Effect.gen(function*() {
            const peer = yield* rawConnectTo(server)
            const boxes = Array.from({ length: before }, () => Box.make({ _command: "Notify", n: "1" }))
            const bad = new Uint8Array([prefix >> 8, prefix & 0xff])
            yield* peer.write(...boxes, ...(inside ? [new Uint8Array([0, 1, 107, 0, 1, 118])] : []), bad)
            yield* peer.waitClosed()
            assert.isTrue(peer.gotEof())
          }),
        20
      )
      assert.isAbove((yield* Ref.get(observed.notified)).length, 0)
      yield* check
    }), 30_000)

  it.live("answers for unknown tags on several connections", () =>
    Effect.gen(function*() {
      const { check, server } = yield* liveServer()
      yield* property(
        fc.array(fc.tuple(fc.stringMatching(/^[0-9a-z]{1,6}$/), fc.boolean()), { minLength: 1, maxLength: 4 }),
        (tags) =>
          Effect.forEach(tags, ([tag, isError]) =>
            Effect.gen(function*() {
              const peer = yield* rawConnectTo(server)
              yield* peer.write(
                isError
                  ? Box.make({ _error: tag, _error_code: "X", _error_description: "y" })
                  : Box.make({ _answer: tag, total: "1" })
              )
              yield* peer.waitClosed()
            }), { concurrency: "unbounded", discard: true }),
        15
      )
      yield* check
    }), 30_000)
})

describe("heavy traffic", () => {
  it.live("hundreds of boxes with 64 KiB values", () =>
    Effect.gen(function*() {
      const { check, server } = yield* liveServer()
      const peer = yield* rawConnectTo(server)
      const count = 300
      const value = (i: number) => new Uint8Array(65535).fill(i & 0xff)
      for (let i = 0; i < count; i++) {
        yield* peer.write(Box.make({ _command: "Echo", _ask: (i + 1).toString(16), data: value(i) }))
      }
      const boxes = yield* peer.waitForBoxes((boxes) => boxes.length === count, 20_000)
      const seen = new Set<string>()
      for (const box of boxes) {
        const tag = text(box.get("_answer"))!
        const i = parseInt(tag, 16) - 1
        assert.deepStrictEqual(box.get("data"), value(i))
        seen.add(tag)
      }
      assert.strictEqual(seen.size, count)
      // and a typed client doing the same
      const client = yield* connectClient(server)
      const results = yield* Effect.forEach(
        Array.from({ length: 50 }, (_, i) => i),
        (i) => client.dispatcher.callRemote(Echo, { data: value(i) }),
        { concurrency: "unbounded" }
      )
      results.forEach((r, i) => assert.deepStrictEqual(r.data, value(i)))
      yield* client.close()
      yield* peer.destroy
      yield* check
    }), 40_000)

  it.live("a flood of answerless commands is all executed, nothing answered", () =>
    Effect.gen(function*() {
      const { check, observed, server } = yield* liveServer()
      const peer = yield* rawConnectTo(server)
      const count = 5000
      const boxes = Array.from({ length: count }, (_, i) => Box.make({ _command: "Notify", n: String(i + 1000) })) // clear of 13 (its responder fails)
      for (let i = 0; i < count; i += 500) yield* peer.write(...boxes.slice(i, i + 500))
      yield* eventually("all executed", Effect.map(Ref.get(observed.notified), (n) => n.length === count), 20_000)
      const notified = yield* Ref.get(observed.notified)
      assert.strictEqual(new Set(notified.map(String)).size, count)
      assert.strictEqual(peer.received().length, 0) // nothing is answered
      yield* peer.destroy
      yield* check
    }), 30_000)
})

describe("a peer that never reads", () => {
  it.live("the server stops reading instead of buffering answers; nothing is lost once the peer reads", () =>
    Effect.gen(function*() {
      const { check, healthy, server } = yield* liveServer({ maxConcurrentHandlers: 4, maxQueuedBoxes: 8, maxQueuedCommandBytes: 1024 * 1024 })
      const peer = yield* rawConnectTo(server)
      peer.socket.pause() // we read nothing: the answers (60 KiB each) pile up on the server's side
      const count = 400
      const payload = new Uint8Array(60 * 1024).fill(0x61)
      for (let i = 0; i < count; i++) {
        yield* peer.write(Box.make({ _command: "Echo", _ask: (i + 1).toString(16), data: payload }))
      }
      yield* Effect.sleep(1_500)
      // 24 MB were offered; with the server no longer reading, most of it is still in our own send buffer
      // (the kernel's socket buffers hold a few MB at most)
      assert.isAbove(peer.socket.writableLength, 10 * 1024 * 1024, "the server kept reading a peer that never reads")
      // other connections are served meanwhile
      assert.strictEqual((yield* healthy.dispatcher.callRemote(Sum, { a: 20n, b: 22n })).total, 42n)
      // once the peer reads, every answer arrives, each once
      peer.socket.resume()
      const boxes = yield* peer.waitForBoxes((boxes) => boxes.length >= count, 30_000)
      assert.strictEqual(boxes.length, count)
      const tags = new Set(boxes.map((b) => Buffer.from(b.get("_answer")!).toString("latin1")))
      assert.strictEqual(tags.size, count)
      assert.isTrue(boxes.every((b) => b.get("data")?.length === payload.length))
      yield* peer.destroy
      yield* check
    }), 60_000)
})

describe("peers vanishing", () => {
  it.live("while a handler runs: the handler is interrupted, the connection goes away", () =>
    Effect.gen(function*() {
      const { check, observed, server } = yield* liveServer()
      for (let i = 1; i <= 5; i++) {
        const peer = yield* rawConnectTo(server)
        yield* peer.write(Box.make({ _command: "WaitForever", _ask: "1" }))
        yield* eventually("handler started", Effect.map(Ref.get(observed.waitStarted), (n) => n === i))
        yield* peer.destroy
        yield* eventually("handler interrupted", Effect.map(Ref.get(observed.waitInterrupted), (n) => n === i))
      }
      yield* check
    }), 20_000)

  it.live("while a call is outstanding: typed AmpConnectionLost, no hang", () =>
    Effect.gen(function*() {
      for (let i = 0; i < 5; i++) {
        yield* Effect.scoped(Effect.gen(function*() {
          const { client, peer } = yield* clientToRawPeer()
          const calls = yield* Effect.forEach(
            [1, 2, 3],
            () => Effect.forkChild(client.dispatcher.callRemote(WaitForever, {}))
          )
          yield* peer.waitForBoxes((boxes) => boxes.length === 3)
          // vanish mid-box on the way back, too
          yield* peer.write(new Uint8Array([0, 7, 95, 97]))
          yield* peer.destroy
          for (const call of calls) {
            assert.strictEqual((yield* Effect.flip(Fiber.join(call)).pipe(Effect.timeout(5_000)))._tag, "AmpConnectionLost")
          }
          yield* client.ended.pipe(Effect.timeout(5_000))
          assert.strictEqual(yield* client.dispatcher.outstanding, 0)
        }))
      }
    }), 20_000)
})

describe("server shutdown with calls in flight", () => {
  const gated = (observed: Observed, clients: ReadonlyArray<Connection.Connection>) =>
    Effect.gen(function*() {
      const fibers = yield* Effect.forEach(clients, (client, c) =>
        Effect.forEach([1n, 2n, 3n], (n) => Effect.forkChild(client.dispatcher.callRemote(Gate, { n: n + BigInt(c * 10) }))))
      yield* eventually("all handlers started", Effect.map(Ref.get(observed.gateStarted), (n) => n === clients.length * 3))
      return fibers.flat()
    })

  it.live("graceful: in-flight answers arrive, then new calls and connections are refused", () =>
    Effect.gen(function*() {
      const { healthy, observed, server } = yield* liveServer()
      const clients = [healthy, yield* connectClient(server), yield* connectClient(server)]
      const fibers = yield* gated(observed, clients)
      const shutdown = yield* Effect.forkChild(server.shutdown({ graceful: true }))
      yield* Effect.sleep(30)
      yield* Deferred.succeed(observed.gate, undefined)
      const answers = yield* Effect.forEach(fibers, (f) => Fiber.join(f).pipe(Effect.timeout(5_000)))
      assert.deepStrictEqual(answers.map((a) => Number(a.n)).sort((x, y) => x - y), [1, 2, 3, 11, 12, 13, 21, 22, 23])
      yield* Fiber.join(shutdown).pipe(Effect.timeout(5_000))
      for (const client of clients) {
        yield* client.ended.pipe(Effect.timeout(5_000))
        assert.strictEqual((yield* Effect.flip(client.dispatcher.callRemote(Sum, { a: 1n, b: 1n })))._tag, "AmpConnectionLost")
        assert.strictEqual(yield* client.dispatcher.outstanding, 0)
      }
      const refused = yield* Effect.flip(
        Client.connect({ port: (server.address as { port: number }).port, connectTimeout: "2 seconds" }).pipe(
          Effect.provideService(Responders.Responders, responders()),
          Effect.flatMap((c) => c.dispatcher.callRemote(Sum, { a: 1n, b: 1n }))
        )
      )
      assert.include(["ConnectError", "AmpConnectionLost"], refused._tag)
      assert.strictEqual(yield* server.connections, 0)
    }), 20_000)

  it.live("abort: outstanding calls fail with AmpConnectionLost", () =>
    Effect.gen(function*() {
      const { healthy, observed, server } = yield* liveServer()
      const clients = [healthy, yield* connectClient(server)]
      const fibers = yield* gated(observed, clients)
      yield* server.shutdown().pipe(Effect.timeout(5_000))
      for (const fiber of fibers) {
        assert.strictEqual((yield* Effect.flip(Fiber.join(fiber)).pipe(Effect.timeout(5_000)))._tag, "AmpConnectionLost")
      }
      for (const client of clients) {
        yield* client.ended.pipe(Effect.timeout(5_000))
        assert.strictEqual(yield* client.dispatcher.outstanding, 0)
      }
      assert.strictEqual(yield* server.connections, 0)
    }), 20_000)
})

describe("close escalation", () => {
  for (const transport of [tcp, memory]) {
    it.live(`${transport.name}: an abort close during a graceful close (stuck handler) takes effect at once`, () =>
      Effect.gen(function*() {
        const observed = yield* makeObserved
        // the default closeTimeoutMillis (10 s) would let the graceful close wait for the stuck handler
        const pair = yield* transport.connect({ server: serverHandlers(observed), client: clientHandlers })
        const stuck = yield* Effect.forkChild(pair.client.dispatcher.callRemote(WaitForever, {}))
        yield* eventually("handler started", Effect.map(Ref.get(observed.waitStarted), (n) => n === 1))
        const graceful = yield* Effect.forkChild(pair.shutdownServer({ graceful: true }))
        yield* Effect.sleep(50)
        yield* pair.shutdownServer().pipe(Effect.timeout(1_000))
        yield* Fiber.await(graceful).pipe(Effect.timeout(1_000))
        assert.strictEqual((yield* Effect.flip(Fiber.join(stuck)).pipe(Effect.timeout(1_000)))._tag, "AmpConnectionLost")
        assert.strictEqual(yield* Ref.get(observed.waitInterrupted), 1)
      }), 10_000)
  }
})

describe("random interruptions", () => {
  it.live("interrupting callers, handlers and connections at random points leaves nothing outstanding", () =>
    property(
      fc.record({
        calls: fc.array(
          fc.record({ ms: fc.integer({ min: 0, max: 30 }), interruptAfter: fc.option(fc.integer({ min: 0, max: 30 })) }),
          { minLength: 1, maxLength: 12 }
        ),
        closeAfter: fc.integer({ min: 0, max: 40 }),
        closeSide: fc.constantFrom("client", "server", "client-graceful", "server-graceful"),
        forever: fc.integer({ min: 0, max: 3 })
      }),
      ({ calls, closeAfter, closeSide, forever }) =>
        Effect.gen(function*() {
          const observed = yield* makeObserved
          // a graceful close waits for running handlers at most closeTimeoutMillis (WaitForever never ends)
          const pair = yield* tcp.connect({
            server: serverHandlers(observed),
            client: clientHandlers,
            serverOptions: { closeTimeout: 200 },
            clientOptions: { closeTimeout: 200 }
          })
          const amp = pair.client.dispatcher
          const fibers = yield* Effect.forEach(calls, ({ interruptAfter, ms }) =>
            Effect.gen(function*() {
              const fiber = yield* Effect.forkChild(amp.callRemote(Delay, { ms: BigInt(ms) }))
              if (interruptAfter !== null) {
                yield* Effect.forkChild(Effect.andThen(Effect.sleep(interruptAfter), Fiber.interrupt(fiber)))
              }
              return fiber
            }))
          const stuck = yield* Effect.forEach(
            Array.from({ length: forever }),
            () => Effect.forkChild(amp.callRemote(WaitForever, {}))
          )
          yield* Effect.sleep(closeAfter)
          if (closeSide.startsWith("client")) {
            yield* pair.client.close({ graceful: closeSide === "client-graceful" })
          } else {
            yield* pair.shutdownServer({ graceful: closeSide === "server-graceful" })
          }
          yield* pair.client.ended.pipe(Effect.timeout(5_000))
          // every caller completes (answer, AmpConnectionLost or interrupted): none hangs
          for (const fiber of [...fibers, ...stuck]) yield* Fiber.await(fiber).pipe(Effect.timeout(5_000))
          assert.strictEqual(yield* amp.outstanding, 0)
          yield* eventually("server side ended", Effect.map(pair.serverConnections, (n) => n === 0))
        }),
      30
    ), 60_000)
})

describe("leaks", () => {
  it.live("no socket handles are left after the suite", () =>
    Effect.gen(function*() {
      // let closed sockets finish closing
      const deadline = Date.now() + 3_000
      let now = socketHandles()
      while (Date.now() < deadline) {
        now = socketHandles()
        if (
          now.TCPSocketWrap <= handlesBefore.TCPSocketWrap && now.TCPServerWrap <= handlesBefore.TCPServerWrap &&
          now.PipeWrap <= handlesBefore.PipeWrap
        ) break
        yield* Effect.sleep(20)
      }
      assert.deepStrictEqual(now, {
        TCPSocketWrap: Math.min(now.TCPSocketWrap, handlesBefore.TCPSocketWrap),
        TCPServerWrap: Math.min(now.TCPServerWrap, handlesBefore.TCPServerWrap),
        PipeWrap: Math.min(now.PipeWrap, handlesBefore.PipeWrap)
      }, `handles before the suite: ${JSON.stringify(handlesBefore)}`)
    }), 10_000)
})
