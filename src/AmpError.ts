/**
 * The protocol-level errors of AMP: what `callRemote` can fail with besides a command's declared errors,
 * and why a connection ended. Every error is a `Schema.TaggedError` with a readable `message`.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * The connection ended (or was already closed) before the answer arrived. Every outstanding call fails
 * with this when a connection ends, whatever the reason: none waits forever. Twisted's `ConnectionDone`
 * / `AmpConnectionLost`.
 *
 * @since 0.1.0
 * @category errors
 */
export class AmpConnectionLost extends Schema.TaggedError<AmpConnectionLost>()("AmpConnectionLost", {
  /** Why the connection ended, e.g. "closed by peer", "protocol error: …". */
  reason: Schema.String
}) {
  override get message(): string {
    return `AMP connection lost: ${this.reason}`
  }
}

/**
 * The peer answered with an error code the command does not declare (Twisted's `UnknownRemoteError`).
 * Unlike Twisted, the real `code` is kept. `UNKNOWN` / `Unknown Error` is what a Twisted responder sends
 * for an undeclared exception (and it then closes the connection).
 *
 * @since 0.1.0
 * @category errors
 */
export class UnknownRemoteError extends Schema.TaggedError<UnknownRemoteError>()("UnknownRemoteError", {
  /** The `_error_code` as sent (latin1). */
  code: Schema.String,
  /** The `_error_description`, decoded as UTF-8 with replacement characters. */
  description: Schema.String
}) {
  /** Twisted's `RemoteAmpError` text: `Code<CODE>: description`, code bytes ≥ 0x80 escaped as `\xff`. */
  override get message(): string {
    return `Code<${this.code.replace(/[\x80-\xff]/g, (c) => `\\x${c.charCodeAt(0).toString(16)}`)}>: ${this.description}`
  }
}

/**
 * The peer has no responder for the command (`_error_code UNHANDLED`). The connection stays open.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnhandledCommand extends Schema.TaggedError<UnhandledCommand>()("UnhandledCommand", {
  command: Schema.String,
  description: Schema.String
}) {
  override get message(): string {
    return this.description
  }
}

/**
 * A value could not be encoded for sending, or a received value could not be decoded.
 * `side` says which: `"arguments"` (ours, before sending: nothing was sent), `"response"` (the peer's
 * answer did not match the command's response schema).
 *
 * @since 0.1.0
 * @category errors
 */
export class AmpArgumentError extends Schema.TaggedError<AmpArgumentError>()("AmpArgumentError", {
  command: Schema.String,
  side: Schema.Literals(["arguments", "response"]),
  key: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.command}: cannot ${this.side === "arguments" ? "encode argument" : "decode response key"} ` +
      `'${this.key}': ${this.reason}`
  }
}

/**
 * The connection has switched to another protocol (or is locked while a switch is pending), so no AMP
 * traffic is allowed. Twisted's `ProtocolSwitched`.
 *
 * @since 0.1.0
 * @category errors
 */
export class ProtocolSwitched extends Schema.TaggedError<ProtocolSwitched>()("ProtocolSwitched", {
  reason: Schema.String
}) {
  override get message(): string {
    return this.reason
  }
}

/**
 * The peer broke the protocol: a box with none of `_command`/`_answer`/`_error` (Twisted's
 * `NoEmptyBoxes`), an answer for a tag we never asked, an error box without a code, a key longer than
 * 255 bytes. The connection is closed, as Twisted does.
 *
 * @since 0.1.0
 * @category errors
 */
export class AmpProtocolError extends Schema.TaggedError<AmpProtocolError>()("AmpProtocolError", {
  reason: Schema.String
}) {
  override get message(): string {
    return `AMP protocol error: ${this.reason}`
  }
}

/**
 * Why a connection ended (what `Connection.ended` completes with).
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionEnded extends Schema.TaggedError<ConnectionEnded>()("ConnectionEnded", {
  /** Human-readable reason: "closed by peer", "closed locally", "protocol error: …". */
  reason: Schema.String,
  /** Whether we ended it (a local close, a fatal error we sent, a protocol violation by the peer). */
  local: Schema.Boolean,
  /** The typed error or `Cause` behind it, when there is one (AmpProtocolError, FramingError, AmpTlsError, SocketError, a defect). */
  cause: Schema.optional(Schema.Unknown)
}) {
  override get message(): string {
    return `AMP connection ended: ${this.reason}`
  }
}

/**
 * The connection was closed because the peer was silent for too long (`firstBoxTimeout`, `idleTimeout`).
 *
 * @since 0.1.0
 * @category errors
 */
export class AmpTimeout extends Schema.TaggedError<AmpTimeout>()("AmpTimeout", { reason: Schema.String }) {
  override get message(): string {
    return `AMP connection timed out: ${this.reason}`
  }
}
