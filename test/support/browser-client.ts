/**
 * The WebSocket client in a browser-like Node: every Node built-in module that effect-amp or its
 * dependencies import is replaced by an empty stub (as a bundler does for a browser build: the names
 * exist, their values are `undefined`), and the WebSocket is the standard global one. (The global
 * `Buffer` stays: Node's own WebSocket needs it; effect-amp's core checks for it before using it.) Connects to the URL in argv[2], makes calls both ways, prints what it saw.
 *
 *     node test/support/browser-client.ts ws://127.0.0.1:PORT/amp
 */
import { isBuiltin, registerHooks } from "node:module"

const stubbed = new Set<string>()
registerHooks({
  resolve: (specifier, context, nextResolve) => {
    if (isBuiltin(specifier)) {
      stubbed.add(specifier.startsWith("node:") ? specifier : `node:${specifier}`)
      return { url: `stub:${specifier}`, shortCircuit: true }
    }
    return nextResolve(specifier, context)
  },
  load: (url, context, nextLoad) => {
    if (url.startsWith("stub:")) {
      const names = Object.keys(process.getBuiltinModule(url.slice("stub:".length)) as object).filter((n) => n !== "default" && /^[A-Za-z_$][\w$]*$/.test(n))
      const source = `export default undefined;\n${names.map((n) => `export const ${n} = undefined;`).join("\n")}\n`
      return { format: "module", source, shortCircuit: true }
    }
    return nextLoad(url, context)
  }
})

const { Effect, Layer } = await import("effect")
const Socket = await import("effect/socket/Socket")
const { WebSocketClient, Responders, Command, Argument } = await import("../../src/index.ts")

const Sum = Command.make("Sum", { arguments: { a: Argument.Integer, b: Argument.Integer }, response: { total: Argument.Integer } })
const Echo = Command.make("Echo", { arguments: { data: Argument.String }, response: { data: Argument.String } })
const CallBack = Command.make("CallBack", { arguments: { a: Argument.Integer, b: Argument.Integer }, response: { total: Argument.Integer } })

const program = Effect.gen(function*() {
  const connection = yield* WebSocketClient.connect(process.argv[2]!)
  const amp = connection.dispatcher
  const { total } = yield* amp.callRemote(Sum, { a: 40n, b: 2n })
  console.log(`Sum: ${total}`)
  const back = yield* amp.callRemote(CallBack, { a: 1n, b: 2n })
  console.log(`CallBack: ${back.total}`)
  const big = new Uint8Array(65_535).map((_, i) => i % 251)
  const echo = yield* amp.callRemote(Echo, { data: big })
  console.log(`Echo: ${echo.data.length === big.length && echo.data.every((b, i) => b === big[i]) ? "same bytes" : "different"}`)
  const tls = yield* Effect.flip(connection.startTLS())
  console.log(`StartTLS: ${tls._tag}`)
})

await Effect.runPromise(
  program.pipe(
    Effect.scoped,
    Effect.provide(Layer.mergeAll(
      Responders.layer(Responders.handle(Sum, ({ a, b }) => Effect.succeed({ total: a + b }))),
      Socket.layerWebSocketConstructorGlobal
    ))
  )
)
console.log(`stubbed: ${[...stubbed].sort().join(",")}`)
