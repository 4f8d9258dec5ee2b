/**
 * A `Socket` over a WebSocket (effect/socket's `fromWebSocket`) whose writes wait while too many bytes
 * are buffered for sending: `ws.send` never blocks, so without this a peer that stops reading would
 * grow our memory without bound. Browser-safe: no Node modules.
 * @internal
 */
import { Effect } from "effect"
import * as Socket from "effect/socket/Socket"

/** What we read besides `WebSocketLike`: both the DOM WebSocket and `ws` have `bufferedAmount`. */
export interface BufferedWebSocket extends Socket.WebSocketLike {
  readonly bufferedAmount?: number
}

/** Default bound of the bytes buffered for sending before writes wait (1 MiB). */
export const DEFAULT_SEND_HIGH_WATER_MARK = 1024 * 1024

const OPEN = 1

/** `fromWebSocket` options: effect's `openTimeout` / `highWaterMark`, and our send bound. */
export interface Options {
  readonly openTimeout?: import("effect").Duration.Input | undefined
  readonly highWaterMark?: number | undefined
  readonly sendHighWaterMark?: number | undefined
}

/** Builds the socket; `acquire` runs (in the reader's scope) each time the reader is acquired. */
export const fromWebSocket = <WS extends BufferedWebSocket, R>(
  acquire: Effect.Effect<WS, Socket.SocketError, R>,
  options?: Options
) =>
  Effect.gen(function*() {
    let current: BufferedWebSocket | undefined
    const socket = yield* Socket.fromWebSocket(
      Effect.map(acquire, (ws) => {
        current = ws
        return ws
      }),
      { openTimeout: options?.openTimeout, highWaterMark: options?.highWaterMark }
    )
    const limit = options?.sendHighWaterMark ?? DEFAULT_SEND_HIGH_WATER_MARK
    // no event says "the send buffer drained" (neither in browsers nor in `ws`): poll, only when over
    const drained: Effect.Effect<void> = Effect.suspend(() => {
      const ws = current
      if (ws === undefined || ws.readyState !== OPEN || (ws.bufferedAmount ?? 0) <= limit) return Effect.void
      return Effect.andThen(Effect.sleep(5), drained)
    })
    return Socket.make({
      reader: socket.reader,
      writer: Effect.map(socket.writer, (writer): Socket.Writer => ({
        write: (chunk) => Effect.andThen(writer.write(chunk), drained),
        writeAll: (chunks) => Effect.andThen(writer.writeAll(chunks), drained)
      }))
    })
  })

/** A readable text for a WebSocket error (events carry no message in browsers). */
export const socketErrorText = (error: unknown): string => {
  if (Socket.isSocketError(error)) {
    const reason = error.reason as { readonly _tag: string; readonly cause?: unknown; readonly code?: number; readonly closeReason?: string }
    if (reason._tag === "SocketCloseError") {
      return `closed with code ${reason.code}${reason.closeReason ? ` (${reason.closeReason})` : ""}`
    }
    const cause = reason.cause as { readonly message?: unknown; readonly error?: { readonly message?: unknown } } | undefined
    const text = typeof cause?.message === "string" && cause.message !== ""
      ? cause.message
      : typeof cause?.error?.message === "string"
      ? cause.error.message
      : undefined
    return text === undefined ? error.message : `${error.message}: ${text}`
  }
  return error instanceof Error ? error.message : String(error)
}
