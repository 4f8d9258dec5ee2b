/**
 * What effect-amp reports to Effect's tracing and metrics: span names, span attributes, metric names and
 * their labels, and the options that turn them off. Everything goes through Effect's own `Tracer` and
 * `Metric` services, so any exporter that reads those (`effect/observability` OTLP, Prometheus, an
 * OpenTelemetry bridge) sees effect-amp without further setup.
 *
 * - Spans: one client span per `callRemote` (kind `client`), one server span per handler run (kind
 *   `server`), both named after the command (`Sum`, or `<spanPrefix>.Sum`); connection spans
 *   `amp.connect`, `amp.StartTLS` and `amp.switch`. Spans nest under the caller's current span.
 * - Metrics: see {@link metrics}. Labels are bounded: `command` is a command this side declared or
 *   handles, `outcome` is one of {@link Outcome}, `role` is `client` or `server`.
 *
 * Tracing is on by default (`disableTracing: true` per client / server / connection turns it off);
 * metrics too (`disableMetrics: true`). Trace-context propagation to the peer is off by default.
 *
 * @since 0.1.0
 */
import { Metric } from "effect"

/**
 * Observability options, accepted by `Connection.make`, `Client.connect` and `Server.make` (through
 * their options) and by `Dispatcher.make`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** No spans at all for this connection (calls, handlers, connect, StartTLS, switches). Default false. */
  readonly disableTracing?: boolean | undefined
  /** No metric updates for this connection. Default false. */
  readonly disableMetrics?: boolean | undefined
  /** Call and handler spans are named `<spanPrefix>.<Command>` instead of `<Command>`. */
  readonly spanPrefix?: string | undefined
  /**
   * Send the current span's trace context to the peer in an extra request key ({@link TRACE_CONTEXT_KEY}),
   * and use that key from incoming commands as the parent of server spans. Off by default. Twisted
   * ignores keys a command does not declare, and answers and error boxes never carry the key, so a
   * Twisted peer is unaffected; a raw responder (`amp_NAME`, `Responders.raw`) does see it.
   */
  readonly propagateTraceContext?: boolean | undefined
}

/**
 * The box key that carries trace context when {@link Options.propagateTraceContext} is on. Its value
 * is a W3C `traceparent`-style string: `00-<traceId>-<spanId>-<01 if sampled, else 00>`.
 *
 * @since 0.1.0
 * @category constants
 */
export const TRACE_CONTEXT_KEY = "_traceparent"

/**
 * How a call or a handler run ended, as the `amp.outcome` span attribute and the `outcome` metric label:
 * `ok`; the declared error code sent or received (e.g. `OOPS`); `UNKNOWN` (an undeclared failure);
 * `UNHANDLED` (the peer has no responder); `connection_lost`; `protocol_switched`; `argument_error`
 * (a value that cannot be encoded or decoded); `too_long` / `invalid_key` (a box that cannot be framed);
 * `interrupted` (the caller gave up, e.g. a timeout).
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome =
  | "ok"
  | "UNKNOWN"
  | "UNHANDLED"
  | "connection_lost"
  | "protocol_switched"
  | "argument_error"
  | "too_long"
  | "invalid_key"
  | "interrupted"
  | (string & {})

/**
 * Span names and attribute keys.
 *
 * @since 0.1.0
 * @category constants
 */
export const SpanNames = {
  /** `Client.connect`: the TCP/Unix connect and the start of AMP over it (kind `client`). */
  connect: "amp.connect",
  /** StartTLS, from the command to the end of the handshake (kind `client` or `server`). */
  startTLS: "amp.StartTLS",
  /** A protocol switch, from the command to the handover (kind `client` or `server`). */
  switchProtocol: "amp.switch"
} as const

/**
 * Span attribute keys set by effect-amp.
 *
 * @since 0.1.0
 * @category constants
 */
export const Attributes = {
  /** Always `amp` (the key effect/rpc uses for its own system name). */
  system: "rpc.system.name",
  /** The command name. */
  method: "rpc.method",
  /** `tcp`, `unix`, `memory`, ... */
  transport: "network.transport",
  /** The peer's address (IP or socket path), when known. */
  peerAddress: "network.peer.address",
  /** The peer's port, when known. */
  peerPort: "network.peer.port",
  /** Whether TLS was on when the span started. */
  tls: "amp.tls",
  /** How the call or handler run ended: an {@link Outcome}. */
  outcome: "amp.outcome",
  /** The AMP error code, when the outcome is an error answer. */
  errorCode: "amp.error_code"
} as const

/**
 * The metrics effect-amp updates (in the `Metric.MetricRegistry` of the context the connection was
 * made in). Durations are in milliseconds. Labels: `command`, `outcome` (an {@link Outcome}), `role`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = {
  /** Calls sent (`callRemote`), label `command`. */
  clientCallsStarted: Metric.counter("amp.client.calls.started", {
    description: "AMP calls sent",
    incremental: true
  }),
  /** Calls ended, labels `command`, `outcome`. */
  clientCallsFinished: Metric.counter("amp.client.calls.finished", {
    description: "AMP calls ended, by outcome",
    incremental: true
  }),
  /** Call duration in ms (from `callRemote` to the answer or failure), labels `command`, `outcome`. */
  clientCallDuration: Metric.histogram("amp.client.call.duration", {
    description: "AMP call duration in milliseconds",
    boundaries: Metric.exponentialBoundaries({ start: 0.05, factor: 2, count: 20 })
  }),
  /** Calls awaiting their answer right now (all connections). */
  clientCallsOutstanding: Metric.counter("amp.client.calls.outstanding", {
    description: "AMP calls awaiting an answer"
  }),
  /** Incoming commands whose handler started, label `command`. */
  serverCallsStarted: Metric.counter("amp.server.calls.started", {
    description: "AMP commands handled",
    incremental: true
  }),
  /** Handler runs ended, labels `command`, `outcome`. */
  serverCallsFinished: Metric.counter("amp.server.calls.finished", {
    description: "AMP handler runs ended, by outcome",
    incremental: true
  }),
  /** Handler duration in ms (decode, handler, encode), labels `command`, `outcome`. */
  serverCallDuration: Metric.histogram("amp.server.call.duration", {
    description: "AMP handler duration in milliseconds",
    boundaries: Metric.exponentialBoundaries({ start: 0.05, factor: 2, count: 20 })
  }),
  /**
   * Handlers running right now (all connections): the handler queue depth, bounded per connection by
   * `maxConcurrentHandlers`.
   */
  serverHandlersActive: Metric.counter("amp.server.handlers.active", {
    description: "AMP handlers running"
  }),
  /** Connections open right now, label `role`. */
  connectionsOpen: Metric.counter("amp.connections.open", {
    description: "AMP connections open"
  }),
  /** Bytes read from connections (after TLS), label `role`. */
  bytesReceived: Metric.counter("amp.connection.bytes.received", {
    description: "Bytes received on AMP connections",
    incremental: true
  }),
  /** Bytes written to connections (before TLS), label `role`. */
  bytesSent: Metric.counter("amp.connection.bytes.sent", {
    description: "Bytes sent on AMP connections",
    incremental: true
  })
} as const
