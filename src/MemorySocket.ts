/**
 * An in-memory socket pair for unit tests: two `effect/socket` Sockets joined back to back, no network.
 * Use real TCP (`Client` / `Server`) for anything that claims to test the transport.
 *
 * @example
 * ```ts
 * import { Connection, MemorySocket, Responders } from "effect-amp"
 * import { Effect } from "effect"
 * const program = Effect.gen(function*() {
 *   const [a, b] = yield* MemorySocket.pair
 *   const server = yield* Connection.make(b).pipe(Effect.provide(Handlers))
 *   const client = yield* Connection.make(a).pipe(Effect.provide(Responders.empty))
 *   return yield* client.dispatcher.callRemote(Sum, { a: 1n, b: 2n })
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type * as Socket from "effect/socket/Socket"
import { duplexPair } from "node:stream"
import { destroy, wrapDuplex } from "./internal/node.ts"

/**
 * Two connected sockets, destroyed when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const pair: Effect.Effect<readonly [Socket.Socket, Socket.Socket], never, import("effect").Scope.Scope> = Effect.gen(
  function*() {
    const [left, right] = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const [l, r] = duplexPair()
        // an aborted connection destroys its side with an error (`CloseEvent(1006)`): without a listener
        // Node throws it as an uncaught exception. Errors surface through the socket reader, as for TCP.
        l.on("error", () => {})
        r.on("error", () => {})
        return [l, r] as const
      }),
      ([l, r]) => Effect.andThen(destroy(l), destroy(r))
    )
    return [yield* wrapDuplex(left), yield* wrapDuplex(right)] as const
  }
)
