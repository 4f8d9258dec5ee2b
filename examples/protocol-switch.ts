/**
 * Protocol switches (Twisted's `ProtocolSwitchCommand`): after an AMP call, both ends stop speaking
 * AMP and the same TCP connection carries another protocol. Here a line protocol: the server answers
 * each line with it upper-cased, until the client sends `bye`.
 *
 *     npm run example -- protocol-switch
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect } from "effect"
import { Argument, Client, ProtocolSwitch, Responders, Server } from "effect-amp"
import type * as Socket from "effect/socket/Socket"
import { Sum } from "./calculator-protocol.ts"

/** After its (empty) answer the connection speaks the line protocol. */
const SwitchToShouting = ProtocolSwitch.make("SwitchToShouting", { arguments: { greeting: Argument.Unicode } })

/**
 * Reads a socket line by line (in the current scope): each `next` is the following line, or undefined
 * once the peer has closed. (Open the reader before writing: it is what opens the socket.)
 */
const lineReader = (socket: Socket.Socket) =>
  Effect.map(socket.reader, (reader) => {
    const decoder = new TextDecoder()
    let buffer = ""
    const next: Effect.Effect<string | undefined> = Effect.suspend(() => {
      const newline = buffer.indexOf("\n")
      if (newline >= 0) {
        const line = buffer.slice(0, newline)
        buffer = buffer.slice(newline + 1)
        return Effect.succeed(line)
      }
      return reader.pull.pipe(
        Effect.flatMap((chunks) => {
          for (const c of chunks) buffer += typeof c === "string" ? c : decoder.decode(c, { stream: true })
          return next
        }),
        Effect.catch(() => Effect.succeed(undefined)) // closed
      )
    })
    return next
  })

/** The server's side of the line protocol. When it returns, the connection is closed. */
const shouting = (greeting: string): ProtocolSwitch.InnerProtocol<Socket.SocketError> => ({ socket }) =>
  Effect.gen(function*() {
    const nextLine = yield* lineReader(socket)
    const writer = yield* socket.writer
    yield* writer.write(`${greeting.toUpperCase()}\n`)
    while (true) {
      const line = yield* nextLine
      if (line === undefined || line === "bye") break
      yield* writer.write(`${line.toUpperCase()}\n`)
    }
    yield* writer.write("BYE\n")
  }).pipe(Effect.scoped)

const ServerResponders = Responders.layer(
  Responders.handle(Sum, ({ a, b }) => Effect.succeed({ total: a + b })),
  ProtocolSwitch.handle(SwitchToShouting, ({ greeting }) => Effect.succeed(shouting(greeting)))
)

const program = Effect.gen(function*() {
  const server = yield* Server.make({ port: 0 }).pipe(Effect.provide(ServerResponders))
  const port = server.port
  const connection = yield* Client.connect({ port }).pipe(Effect.provide(Responders.empty))

  const { total } = yield* connection.dispatcher.callRemote(Sum, { a: 1n, b: 2n })
  yield* Console.log(`AMP: Sum(1, 2) = ${total}`)

  // the answer to SwitchToShouting is the last AMP box; every byte after it is the line protocol
  const { socket } = yield* connection.switchProtocol(SwitchToShouting, { greeting: "switched" })
  yield* Console.log("switched: this connection now speaks the line protocol")

  const nextLine = yield* lineReader(socket)
  const writer = yield* socket.writer
  yield* Console.log(`< ${yield* nextLine}`)
  for (const line of ["hello", "protocol switch", "bye"]) {
    yield* Console.log(`> ${line}`)
    yield* writer.write(`${line}\n`)
    yield* Console.log(`< ${yield* nextLine}`)
  }

  // AMP is over on this connection
  const after = yield* connection.dispatcher.callRemote(Sum, { a: 1n, b: 2n }).pipe(Effect.flip)
  yield* Console.log(`AMP after the switch: callRemote fails with ${after._tag}`)
}).pipe(Effect.scoped)

NodeRuntime.runMain(program)
