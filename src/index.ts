/**
 * effect-amp: AMP (Twisted's Asynchronous Messaging Protocol) for Effect.
 *
 * Layers, bottom to top: `Box` (wire codec) → `Argument` / `Command` (typed arguments and commands)
 * → `Dispatcher` / `Responders` (calls and handlers) → `Connection`, `Client`, `Server`, `WebSocketClient`, `WebSocketServer` (transports), `Reconnecting`.
 *
 * @since 0.1.0
 */
export * as AmpError from "./AmpError.ts"
export * as Argument from "./Argument.ts"
export * as Box from "./Box.ts"
export * as Client from "./Client.ts"
export * as Command from "./Command.ts"
export * as Connection from "./Connection.ts"
export * as ConnectionInfo from "./ConnectionInfo.ts"
export * as DateTime from "./DateTime.ts"
export * as Decimal from "./Decimal.ts"
export * as Dispatcher from "./Dispatcher.ts"
export * as MemorySocket from "./MemorySocket.ts"
export * as ProtocolSwitch from "./ProtocolSwitch.ts"
export * as Reconnecting from "./Reconnecting.ts"
export * as Responders from "./Responders.ts"
export * as Server from "./Server.ts"
export * as StartTLS from "./StartTLS.ts"
export * as WebSocketClient from "./WebSocketClient.ts"
export * as WebSocketServer from "./WebSocketServer.ts"
