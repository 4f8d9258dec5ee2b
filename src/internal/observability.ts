/**
 * The observers behind `Observability`: what the dispatcher and the connection call around calls,
 * handler runs, transitions and I/O. Each is built once per dispatcher / connection, from its options
 * and the context it was made in (whose `MetricRegistry` receives the metrics); with tracing and
 * metrics off every hook is the identity.
 * @internal
 */
import { Cause, Clock, Context, Effect, Exit, type Fiber, LogLevel, Metric, Option, References, type Scope, Tracer } from "effect"
import * as Command from "../Command.ts"
import type { ConnectionInfo, Snapshot } from "../ConnectionInfo.ts"
import { Attributes, metrics, type Options, type Outcome, TRACE_CONTEXT_KEY } from "../Observability.ts"

/** The outcome of a handler run as the dispatcher computes it (mirrors `internal/outcome.ts`). */
export type HandlerOutcome =
  | { readonly _tag: "Answer" }
  | { readonly _tag: "AnswerThenClose" }
  | { readonly _tag: "Error"; readonly code: string; readonly description: string }
  | { readonly _tag: "Unknown"; readonly reason: string }

const MAX_SERIES = 4096

/**
 * A metric with fixed attributes (labels). `Metric.withAttributes` would copy the whole fiber context
 * on every update (to add the attributes to it); a series instead keeps, per metric registry and set of
 * contextual attributes, one small context holding just those two, and updates the metric with it. The
 * metric's series key (and so what a snapshot shows) is the same as with `withAttributes`.
 */
class Series {
  readonly metric: Metric.Metric<number, any>
  readonly attributes: Record<string, string>
  #contexts = new WeakMap<object, WeakMap<object, Context.Context<never>>>()
  constructor(metric: Metric.Metric<number, any>, attributes: Record<string, string>) {
    this.metric = metric
    this.attributes = attributes
  }
  // the last registry and contextual attributes seen, and their small context (the usual case: one)
  #lastRegistry: object | undefined
  #lastExtra: object | undefined
  #lastContext: Context.Context<never> | undefined
  updateUnsafe(value: number, context: Context.Context<never>): void {
    const registry = Context.get(context, Metric.MetricRegistry)
    const extra = Context.get(context, Metric.CurrentMetricAttributes)
    if (registry === this.#lastRegistry && extra === this.#lastExtra) return this.metric.updateUnsafe(value, this.#lastContext!)
    let byExtra = this.#contexts.get(registry)
    if (byExtra === undefined) this.#contexts.set(registry, byExtra = new WeakMap())
    let small = byExtra.get(extra)
    if (small === undefined) {
      small = Context.make(Metric.MetricRegistry, registry).pipe(
        Context.add(Metric.CurrentMetricAttributes, { ...extra, ...this.attributes })
      )
      byExtra.set(extra, small)
    }
    this.#lastRegistry = registry
    this.#lastExtra = extra
    this.#lastContext = small
    this.metric.updateUnsafe(value, small)
  }
}

const series = new Map<string, Series>()
/** A labelled metric, cached (label values are bounded: command names this side knows, outcomes). */
const labelled = (metric: Metric.Metric<number, any>, attributes: Record<string, string>): Series => {
  let key = metric.id
  for (const k in attributes) key += `\u0000${k}=${attributes[k]}`
  let found = series.get(key)
  if (found === undefined) {
    found = new Series(metric, attributes)
    if (series.size < MAX_SERIES) series.set(key, found)
  }
  return found
}
interface CommandSeries {
  readonly started: Series
  readonly finished: Map<string, Series>
  readonly duration: Map<string, Series>
}
const bySide = { client: new Map<string, CommandSeries>(), server: new Map<string, CommandSeries>() }
/** The labelled series of one command on one side (cached: no label strings built per call). */
const commandSeries = (side: "client" | "server", command: string): CommandSeries => {
  let found = bySide[side].get(command)
  if (found === undefined) {
    found = {
      started: labelled(side === "client" ? metrics.clientCallsStarted : metrics.serverCallsStarted, { command }),
      finished: new Map(),
      duration: new Map()
    }
    if (bySide[side].size < MAX_SERIES) bySide[side].set(command, found)
  }
  return found
}
const outcomeSeries = (
  side: "client" | "server",
  which: "finished" | "duration",
  series: CommandSeries,
  command: string,
  outcome: string
): Series => {
  let found = series[which].get(outcome)
  if (found === undefined) {
    const metric = side === "client"
      ? which === "finished" ? metrics.clientCallsFinished : metrics.clientCallDuration
      : which === "finished"
      ? metrics.serverCallsFinished
      : metrics.serverCallDuration
    found = labelled(metric, { command, outcome })
    if (series[which].size < 64) series[which].set(outcome, found)
  }
  return found
}

/** Span attributes per connection snapshot and command (a snapshot changes only at StartTLS). */
const attributeCache = new WeakMap<Snapshot, Map<string, Record<string, unknown>>>()
const cachedAttributes = (snapshot: Snapshot, method: string): Record<string, unknown> => {
  let byMethod = attributeCache.get(snapshot)
  if (byMethod === undefined) attributeCache.set(snapshot, byMethod = new Map())
  let found = byMethod.get(method)
  if (found === undefined) {
    found = connectionAttributes(snapshot, method)
    if (byMethod.size < 1024) byMethod.set(method, found)
  }
  return found
}

/** Classifies a call's exit. */
export const callOutcome = (command: Command.Any, exit: Exit.Exit<unknown, unknown>): Outcome => {
  if (Exit.isSuccess(exit)) return "ok"
  const error = Cause.findErrorOption(exit.cause)
  if (Option.isNone(error)) return Cause.hasInterruptsOnly(exit.cause) ? "interrupted" : "UNKNOWN"
  const value = error.value as { readonly _tag?: string; readonly code?: string }
  const declared = Command.errorCodeFor(command, value)
  if (declared !== undefined) return declared.code
  switch (value?._tag) {
    case "UnknownRemoteError":
      return typeof value.code === "string" ? value.code : "UNKNOWN"
    case "UnhandledCommand":
      return "UNHANDLED"
    case "AmpConnectionLost":
      return "connection_lost"
    case "ProtocolSwitched":
      return "protocol_switched"
    case "AmpArgumentError":
      return "argument_error"
    case "TooLong":
      return "too_long"
    case "InvalidKey":
      return "invalid_key"
    default:
      return "UNKNOWN"
  }
}

const handlerOutcome = (outcome: HandlerOutcome): Outcome =>
  outcome._tag === "Answer" || outcome._tag === "AnswerThenClose" ? "ok" : outcome._tag === "Error" ? outcome.code : "UNKNOWN"

/** Span attributes describing the connection. */
export const connectionAttributes = (snapshot: Snapshot, method?: string): Record<string, unknown> => {
  const attributes: Record<string, unknown> = {
    [Attributes.system]: "amp",
    [Attributes.transport]: snapshot.transport,
    [Attributes.tls]: snapshot.tls
  }
  if (method !== undefined) attributes[Attributes.method] = method
  const remote = snapshot.remoteAddress
  if (remote !== undefined) {
    const match = /^\[?(.*?)\]?:(\d+)$/.exec(remote)
    if (match !== null && snapshot.transport === "tcp") {
      attributes[Attributes.peerAddress] = match[1]
      attributes[Attributes.peerPort] = Number(match[2])
    } else {
      attributes[Attributes.peerAddress] = remote
    }
  }
  return attributes
}

/** Encodes a span as the value of {@link TRACE_CONTEXT_KEY}. */
export const encodeTraceContext = (span: Tracer.AnySpan): Uint8Array => {
  const text = `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`
  const out = new Uint8Array(text.length)
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff
  return out
}

/** Decodes the value of {@link TRACE_CONTEXT_KEY}; undefined when malformed. */
export const decodeTraceContext = (bytes: Uint8Array | undefined): Tracer.ExternalSpan | undefined => {
  if (bytes === undefined || bytes.length > 256) return undefined
  const parts = String.fromCharCode(...bytes).split("-")
  if (parts.length !== 4 || parts[1]!.length === 0 || parts[2]!.length === 0) return undefined
  return Tracer.externalSpan({ traceId: parts[1]!, spanId: parts[2]!, sampled: parts[3] === "01" })
}

/** Marks a handler run that answered with an error, so its span ends as failed. */
class HandlerFailed extends Error {
  readonly outcome: HandlerOutcome
  constructor(outcome: HandlerOutcome) {
    super(outcome._tag === "Error" ? `${outcome.code}: ${outcome.description}` : `UNKNOWN: ${(outcome as { reason: string }).reason}`)
    this.outcome = outcome
    this.name = "AmpHandlerFailed"
  }
}

/** What the dispatcher calls. */
export interface DispatcherObserver {
  /**
   * Starts observing a call made by `fiber` (its client span, under the fiber's current span, and the
   * call metrics); with propagation on, adds the trace key to `box`. Undefined when nothing is observed.
   */
  readonly startCall: (command: Command.Any, box: Map<string, Uint8Array>, fiber: Fiber.Fiber<unknown, unknown>) => CallObservation | undefined
  /** Ends a call's observation with how the call ended (once per started call). */
  readonly endCall: (observation: CallObservation, exit: Exit.Exit<unknown, unknown>) => void
  /** Wraps a handler run (inside the handler's context): server span, handler metrics. */
  readonly serve: <O extends HandlerOutcome, R>(name: string, box: ReadonlyMap<string, Uint8Array>, run: Effect.Effect<O, never, R>) => Effect.Effect<O, never, R>
  /** A timestamp for `served` (milliseconds; 0 when nothing is observed). */
  readonly now: () => number
  /**
   * Records a handler run that finished without running an Effect (its result was an `Exit`), started
   * at `started` (from `now`): the same server span (started then, ended now) and metrics as `serve`.
   */
  readonly served: (name: string, box: ReadonlyMap<string, Uint8Array>, started: number, outcome: HandlerOutcome) => void
}

/** One observed call: what `endCall` needs. */
export interface CallObservation {
  readonly command: Command.Any
  readonly span: Tracer.Span | undefined
  /** The settings the span was made with (its clock). */
  readonly settings: SpanSettings | undefined
  readonly started: number
  readonly series: CommandSeries | undefined
}

const now = (): number => performance.now()

/** What `Effect.useSpan` reads from a fiber to make a span, read through `get` (a fiber's or a context's refs). */
const spanSettings = (get: <A>(ref: Context.Reference<A>) => A) => ({
  enabled: get(References.TracerEnabled),
  tracer: get(Tracer.Tracer),
  clock: get(Clock.Clock),
  timing: get(References.TracerTimingEnabled),
  sampledByLevel: !LogLevel.isGreaterThan(get(Tracer.MinimumTraceLevel), get(Tracer.CurrentTraceLevel)),
  annotations: get(References.TracerSpanAnnotations),
  links: get(References.TracerSpanLinks)
})
type SpanSettings = ReturnType<typeof spanSettings>

const noParent = Option.none<Tracer.AnySpan>()
/** The parent a new span gets under `span` (skipping spans that disable propagation), as Effect does. */
const parentUnder = (span: Tracer.AnySpan | undefined): Option.Option<Tracer.AnySpan> => {
  if (span === undefined) return noParent
  if (!Context.get(span.annotations, Tracer.DisablePropagation)) return Option.some(span)
  return span._tag === "Span" ? parentUnder(Option.getOrUndefined(span.parent)) : noParent
}

/** Makes a span as `Effect.useSpan` would (same tracer, parent, sampling, environment attributes). */
const makeSpan = (
  settings: SpanSettings,
  name: string,
  kind: Tracer.SpanKind,
  parent: Option.Option<Tracer.AnySpan>,
  startTime: bigint,
  attributes: Record<string, unknown>
): Tracer.Span => {
  const span = settings.tracer.span({
    name,
    parent,
    annotations: Context.empty(),
    links: settings.links.length === 0 ? [] : settings.links.slice(),
    startTime,
    kind,
    root: false,
    sampled: parent._tag === "Some" && parent.value.sampled === false ? false : settings.sampledByLevel
  })
  for (const key in settings.annotations) span.attribute(key, settings.annotations[key])
  for (const key in attributes) span.attribute(key, attributes[key])
  return span
}

/** A connection's `ConnectionInfo` service, with a synchronous read of its snapshot. */
export type InfoSource = ConnectionInfo["Service"] & {
  readonly current: () => Snapshot
}

/** Builds the dispatcher's observer from its options and the current context. */
export const dispatcherObserver = (
  info: InfoSource,
  options: Options | undefined,
  /** The services the responders captured (handlers run with them over the connection's). */
  handlerServices: Context.Context<never> = Context.empty()
): Effect.Effect<DispatcherObserver> =>
  Effect.map(Effect.context<never>(), (context) => {
    const tracing = options?.disableTracing !== true
    const metered = options?.disableMetrics !== true
    const propagate = tracing && options?.propagateTraceContext === true
    const prefix = options?.spanPrefix
    // Handlers run with the services their Responders captured; when those hold no tracer, the
    // tracer of the context the connection was made in is used for the server spans.
    const connectionTracer = context.mapUnsafe.has(Tracer.TracerKey) ? Context.get(context, Tracer.Tracer) : undefined
    const spanName = (name: string) => prefix === undefined ? name : `${prefix}.${name}`
    /** `active`: the call was counted in the outstanding/active gauge, which it now leaves. */
    const record = (side: "client" | "server", series: CommandSeries, name: string, outcome: Outcome, started: number, active = true) => {
      outcomeSeries(side, "finished", series, name, outcome).updateUnsafe(1, context)
      outcomeSeries(side, "duration", series, name, outcome).updateUnsafe(now() - started, context)
      if (active) (side === "client" ? metrics.clientCallsOutstanding : metrics.serverHandlersActive).updateUnsafe(-1, context)
    }

    let lastCaller: Context.Context<never> | undefined
    let lastSettings: SpanSettings | undefined
    let lastParent: Option.Option<Tracer.AnySpan> = noParent
    const startCall: DispatcherObserver["startCall"] = (command, box, fiber) => {
      let span: Tracer.Span | undefined
      let settings: SpanSettings | undefined
      if (tracing) {
        // what the span needs from the caller's fiber depends only on its context: read once per context
        if (fiber.context !== lastCaller) {
          lastCaller = fiber.context
          lastSettings = spanSettings((ref) => fiber.getRef(ref))
          lastParent = parentUnder(Option.getOrUndefined(Context.getOption(fiber.context, Tracer.ParentSpan)))
        }
        settings = lastSettings!
        if (settings.enabled) {
          const parent = lastParent
          const start = settings.timing ? settings.clock.currentTimeNanosUnsafe() : 0n
          span = makeSpan(settings, spanName(command.name), "client", parent, start, cachedAttributes(info.current(), command.name))
          if (propagate) box.set(TRACE_CONTEXT_KEY, encodeTraceContext(span))
        }
      }
      const series = metered ? commandSeries("client", command.name) : undefined
      if (series !== undefined) {
        series.started.updateUnsafe(1, context)
        metrics.clientCallsOutstanding.updateUnsafe(1, context)
      }
      return span === undefined && series === undefined ? undefined : { command, span, settings, started: metered ? now() : 0, series }
    }
    const endCall: DispatcherObserver["endCall"] = (observation, exit) => {
      const { command, series, settings, span } = observation
      const outcome = callOutcome(command, exit)
      if (span !== undefined) {
        span.attribute(Attributes.outcome, outcome)
        if (outcome !== "ok" && command.compiled.byCode.has(outcome)) span.attribute(Attributes.errorCode, outcome)
        span.end(settings !== undefined && settings.timing ? settings.clock.currentTimeNanosUnsafe() : 0n, exit)
      }
      if (series !== undefined) record("client", series, command.name, outcome, observation.started)
    }

    const serve: DispatcherObserver["serve"] = (name, box, run) => {
      if (!tracing && !metered) return run
      const instrumented = (span: Tracer.Span | undefined) =>
        Effect.suspend(() => {
          const started = metered ? now() : 0
          const series = metered ? commandSeries("server", name) : undefined
          if (series !== undefined) {
            series.started.updateUnsafe(1, context)
            metrics.serverHandlersActive.updateUnsafe(1, context)
          }
          const inner = span === undefined ? run : Effect.withParentSpan(run, span, { captureStackTrace: false })
          const annotated = span === undefined ? inner : Effect.map(inner, (outcome) => {
            span.attribute(Attributes.outcome, handlerOutcome(outcome))
            if (outcome._tag === "Error") span.attribute(Attributes.errorCode, outcome.code)
            return outcome
          })
          if (series === undefined) return annotated
          // interrupted handlers (the connection closed) are counted too
          return Effect.onExit(annotated, (exit) => {
            record("server", series, name, Exit.isSuccess(exit) ? handlerOutcome(exit.value) : "interrupted", started)
            return Effect.void
          })
        })
      if (!tracing) return instrumented(undefined)
      const parent = propagate ? decodeTraceContext(box.get(TRACE_CONTEXT_KEY)) : undefined
      const traced = Effect.flatMap(info.get, (snapshot) =>
        Effect.catch(
          Effect.useSpan(spanName(name), {
            kind: "server",
            attributes: cachedAttributes(snapshot, name),
            ...(parent !== undefined ? { parent } : {})
          }, (span) =>
            Effect.flatMap(instrumented(span), (outcome) =>
              outcome._tag === "Answer" || outcome._tag === "AnswerThenClose"
                ? Effect.succeed(outcome)
                : Effect.fail(new HandlerFailed(outcome)))),
          (failed) => Effect.succeed(failed.outcome as typeof failed.outcome & Effect.Success<typeof run>)
        ))
      return connectionTracer === undefined ? traced : Effect.withFiber((fiber) =>
        fiber.context.mapUnsafe.has(Tracer.TracerKey) ? traced : Effect.withTracer(traced, connectionTracer))
    }
    // what `Effect.useSpan` reads from a handler's fiber, read once (on first use) from the context
    // handlers run with
    let handlerSpans: { readonly settings: SpanSettings; readonly parent: Option.Option<Tracer.AnySpan> } | undefined
    const servedSpan = (name: string, box: ReadonlyMap<string, Uint8Array>, started: number, outcome: HandlerOutcome): void => {
      if (handlerSpans === undefined) {
        const handlers = Context.merge(context, handlerServices)
        handlerSpans = {
          settings: spanSettings((ref) => Context.get(handlers, ref)),
          parent: parentUnder(Option.getOrUndefined(Context.getOption(handlers, Tracer.ParentSpan)))
        }
      }
      const { parent: contextParent, settings } = handlerSpans
      if (!settings.enabled) return
      const propagated = propagate ? decodeTraceContext(box.get(TRACE_CONTEXT_KEY)) : undefined
      const parent = propagated !== undefined ? Option.some<Tracer.AnySpan>(propagated) : contextParent
      const end = settings.timing ? settings.clock.currentTimeNanosUnsafe() : 0n
      const start = settings.timing ? end - BigInt(Math.round((now() - started) * 1e6)) : 0n
      const span = makeSpan(settings, spanName(name), "server", parent, start, cachedAttributes(info.current(), name))
      span.attribute(Attributes.outcome, handlerOutcome(outcome))
      if (outcome._tag === "Error") span.attribute(Attributes.errorCode, outcome.code)
      const ok = outcome._tag === "Answer" || outcome._tag === "AnswerThenClose"
      span.end(end, ok ? Exit.void : Exit.fail(new HandlerFailed(outcome)))
    }
    const served: DispatcherObserver["served"] = (name, box, started, outcome) => {
      if (metered) {
        // (never active across a turn: the active-handlers gauge is left as it is)
        const series = commandSeries("server", name)
        series.started.updateUnsafe(1, context)
        record("server", series, name, handlerOutcome(outcome), started, false)
      }
      if (tracing) servedSpan(name, box, started, outcome)
    }
    return { startCall, endCall, serve, now: tracing || metered ? now : () => 0, served }
  })

/** What the connection calls. */
export interface ConnectionObserver {
  /** Wraps a transition (StartTLS, switch) in a span. */
  readonly span: (name: string, kind: "client" | "server", method: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  readonly received: (bytes: number) => void
  readonly sent: (bytes: number) => void
}

/**
 * Builds the connection's observer from its options and the current context, and counts the
 * connection as open until the current scope closes.
 */
export const connectionObserver = (
  info: ConnectionInfo["Service"],
  role: "client" | "server",
  options: Options | undefined
): Effect.Effect<ConnectionObserver, never, Scope.Scope> =>
  Effect.gen(function*() {
    const context = yield* Effect.context<never>()
    const tracing = options?.disableTracing !== true
    const metered = options?.disableMetrics !== true
    const labels = { role }
    const received = labelled(metrics.bytesReceived, labels)
    const sent = labelled(metrics.bytesSent, labels)
    if (metered) {
      const open = labelled(metrics.connectionsOpen, labels)
      open.updateUnsafe(1, context)
      yield* Effect.addFinalizer(() => Effect.sync(() => open.updateUnsafe(-1, context)))
    }
    return {
      span: (name, kind, method) => (effect) =>
        tracing
          ? Effect.flatMap(info.get, (snapshot) =>
            Effect.withSpan(effect, name, { kind, attributes: connectionAttributes(snapshot, method), captureStackTrace: false }))
          : effect,
      received: metered ? (bytes) => received.updateUnsafe(bytes, context) : () => {},
      sent: metered ? (bytes) => sent.updateUnsafe(bytes, context) : () => {}
    } satisfies ConnectionObserver
  })

/** A span around `Client.connect` (identity when tracing is off). */
export const connectSpan = (options: Options & { readonly address: string }) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  options.disableTracing === true ? effect : Effect.withSpan(effect, "amp.connect", {
    kind: "client",
    attributes: { [Attributes.system]: "amp", "server.address": options.address },
    captureStackTrace: false
  })
