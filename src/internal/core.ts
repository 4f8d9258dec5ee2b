/**
 * What the parts of a connection share: its state machine, the current phase of the socket (its reader
 * and writer, each in a scope of its own), the dispatcher engine, the writer, and the way to end it.
 * `Connection.make` builds one; the reader, the lifecycle and the two transitions (StartTLS.ts,
 * ProtocolSwitch.ts) work on it.
 * @internal
 */
import { Deferred, Effect, Exit, Scope } from "effect"
import type * as Socket from "effect/socket/Socket"
import type { Duplex } from "node:stream"
import type { ConnectionEnded } from "../AmpError.ts"
import type * as Box from "../Box.ts"
import * as Command from "../Command.ts"
import { latin1 } from "./bytes.ts"
import type { Snapshot } from "../ConnectionInfo.ts"
import type { Engine, Hold } from "./dispatcher.ts"
import type { Machine } from "./state.ts"
import type { Writer } from "./writer.ts"

/** How a connection ends: at once, after flushing what is queued, or after running handlers answer. */
export type Mode = "abort" | "flush" | "graceful"

export interface EndRequest {
  readonly mode: Mode
  readonly end: ConnectionEnded
}

/** One phase of the socket (plain AMP, then TLS AMP): its reader and writer, each in its own scope. */
export interface Phase {
  readonly pull: Effect.Effect<ReadonlyArray<Uint8Array | string>, Socket.SocketError>
  readonly writer: Socket.Writer
  readonly readerScope: Scope.Closeable
  readonly writerScope: Scope.Closeable
}

export interface Core {
  readonly role: "client" | "server"
  /** The host we connected to (default TLS server name). */
  readonly host: string | undefined
  /** Why StartTLS is impossible on a transport without a Node stream (e.g. "use wss:" for WebSocket). */
  readonly noTlsReason: string | undefined
  readonly state: Machine
  readonly engine: Engine
  readonly writer: Writer
  /** The Node stream under the socket, when the transport has one (needed by both transitions). */
  raw: Duplex | undefined
  /** The live phase; `undefined` between leaving one phase and entering the next. */
  phase: Phase | undefined
  /** Acquires a phase over `socket` and makes it current. */
  readonly enterPhase: (socket: Socket.Socket) => Effect.Effect<void, Socket.SocketError>
  /**
   * Waits until everything queued before `hold` is written, releases the current phase, and returns
   * the raw stream with `leftover` (bytes read but not parsed as AMP) pushed back into it.
   */
  readonly leavePhase: (hold: Hold, leftover: Uint8Array) => Effect.Effect<Duplex>
  /** Starts a fresh box decoder (after StartTLS). */
  readonly resetDecoder: () => void
  info: Snapshot
  readonly requestEnd: (mode: Mode, end: ConnectionEnded) => Effect.Effect<void>
  readonly ended: Deferred.Deferred<ConnectionEnded>
  /** The connection's scope: fibers that must outlive a phase are forked in it. */
  readonly scope: Scope.Scope
}

/** What a transition run by the reader decided: go on reading AMP, or stop (the rest is not AMP). */
export type Step = "continue" | "stop"

/** Acquires phases under `parent` (closed after the connection's shutdown finalizer). */
export const phases = (parent: Scope.Scope) => ({
  acquire: (socket: Socket.Socket) =>
    Effect.gen(function*() {
      // the reader opens the socket; each in its own scope so that the reader can be released first
      // (releasing the writer first would half-close the socket)
      const readerScope = yield* Scope.fork(parent)
      const writerScope = yield* Scope.fork(parent)
      const reader = yield* Scope.provide(socket.reader, readerScope)
      const writer = yield* Scope.provide(socket.writer, writerScope)
      return { pull: reader.pull, writer, readerScope, writerScope } satisfies Phase
    }),
  release: (phase: Phase) =>
    Effect.andThen(Scope.close(phase.readerScope, Exit.void), Scope.close(phase.writerScope, Exit.void))
})

/**
 * Our StartTLS or switch was answered with an error: the held boxes go out (in the same phase), the
 * caller gets the error answer, and the reader goes on with AMP.
 */
export const refused = (hold: Hold, deliver: Effect.Effect<void>): Effect.Effect<Step> =>
  Effect.andThen(Effect.andThen(Deferred.succeed(hold.release, true), deliver), Effect.succeed("continue" as const))

/** The answer box for a request tag (empty of values): what StartTLS and switches answer with. */
export const emptyAnswer = (ask: Uint8Array): Box.Box => new Map([[Command.ANSWER, ask]])

/** The `_error_code` of an error box (latin-1). */
export const errorCodeOf = (box: Box.Box): string => {
  const b = box.get(Command.ERROR_CODE)
  return b === undefined ? "" : latin1(b, 0, b.length)
}
/** The `_error_description` of an error box (UTF-8 with replacement). */
export const errorDescriptionOf = (box: Box.Box): string => {
  const b = box.get(Command.ERROR_DESCRIPTION)
  return b === undefined ? "" : Command.decodeDescription(b)
}
