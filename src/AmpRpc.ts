/**
 * Effect RPC over AMP: serve an `RpcGroup` (`effect/rpc`) to AMP peers, Twisted included, and call an
 * AMP peer through a typed client derived from the same group.
 *
 * Every `Rpc` of the group becomes an AMP `Command` named after its tag, when it maps:
 * - payload: a struct (`payload: { a: Argument.Integer, ... }`) of AMP argument types (or
 *   `Argument.optional(...)` of them), or none;
 * - success: `Schema.Struct({ ... })` of AMP argument types, or none (`Schema.Void`: an empty answer);
 * - error: none, a `Schema.TaggedError` class whose only field is `message`, or a `Schema.Union` of
 *   such classes. Each becomes a declared AMP error whose code is the class's tag, or the code given in
 *   {@link Options.errorCodes} (Twisted codes are often like `ZERO_DIVISION`). The errors of the Rpc's
 *   middleware are declared the same way.
 *
 * What cannot map is refused when the commands are derived (`commands`, `layer`, `client`), with an
 * {@link UnmappableRpc} error naming the Rpc and the reason: streams, schemas that are not AMP
 * argument types, payload or success classes, errors with fields besides `message`, client-side
 * middleware (AMP has no headers to carry what it adds).
 *
 * Server side, the group's handlers (`group.toLayer(...)`) and `RpcMiddleware` run as they would under
 * `RpcServer`: each handler gets its payload, empty `headers`, a `ServerClient` per AMP connection and
 * a request id; the middleware wraps it in the group's order. A failure that is not declared is sent as
 * `UNKNOWN` (and the connection closes, as in Twisted).
 *
 * @example
 * ```ts
 * import { AmpRpc, Argument, Client, Server } from "effect-amp"
 * import { Effect, Layer, Schema } from "effect"
 * import { Rpc, RpcGroup } from "effect/rpc"
 *
 * class Refused extends Schema.TaggedError<Refused>()("Refused", { message: Schema.String }) {}
 * const Math = RpcGroup.make(
 *   Rpc.make("Sum", {
 *     payload: { a: Argument.Integer, b: Argument.Integer },
 *     success: Schema.Struct({ total: Argument.Integer }),
 *     error: Refused
 *   })
 * )
 * const Handlers = Math.toLayer({ Sum: ({ a, b }) => Effect.succeed({ total: a + b }) })
 * const ServerLive = Server.layer({ port: 7001 }).pipe(Layer.provide(AmpRpc.layer(Math)), Layer.provide(Handlers))
 * const call = Effect.gen(function*() {
 *   const client = yield* AmpRpc.client(Math)
 *   return yield* client.Sum({ a: 1n, b: 2n })
 * })
 * ```
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Schema } from "effect"
import * as Headers from "effect/http/Headers"
import * as Rpc from "effect/rpc/Rpc"
import type * as RpcGroup from "effect/rpc/RpcGroup"
import type * as RpcMiddleware from "effect/rpc/RpcMiddleware"
import * as RpcSchema from "effect/rpc/RpcSchema"
import * as Argument from "./Argument.ts"
import * as Command from "./Command.ts"
import { Dispatcher, type CallError } from "./Dispatcher.ts"
import * as Responders from "./Responders.ts"

/**
 * An Rpc that has no AMP form; raised (thrown) when the commands of a group are derived.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnmappableRpc extends Schema.TaggedError<UnmappableRpc>()("UnmappableRpc", {
  rpc: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Rpc "${this.rpc}" cannot be an AMP command: ${this.reason}`
  }
}

/**
 * Options of the bridge.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Wire error code per error class tag (default: the tag itself), e.g. `{ ZeroDivision: "ZERO_DIVISION" }`. */
  readonly errorCodes?: Readonly<Record<string, string>> | undefined
}

/**
 * A typed client for a group: one method per Rpc, named after its tag, taking the payload and
 * failing with the Rpc's errors or the AMP call errors.
 *
 * @since 0.1.0
 * @category models
 */
export type AmpRpcClient<Rpcs extends Rpc.Any> = {
  readonly [Current in Rpcs as Current["_tag"]]: (
    payload: Rpc.PayloadConstructor<Current>
  ) => Effect.Effect<Rpc.Success<Current>, Rpc.Error<Current> | CallError>
}

const fieldsOf = (tag: string, what: "payload" | "success", schema: Schema.Top): Command.Fields => {
  const ast = schema.ast
  if (ast._tag === "Void") return {}
  if (ast._tag !== "Objects" || !("fields" in schema)) {
    throw new UnmappableRpc({
      rpc: tag,
      reason: `its ${what} is not a struct of AMP argument types (got a ${ast._tag} schema)` +
        (ast._tag === "Declaration" ? "; classes are not supported, use Schema.Struct / plain fields" : "")
    })
  }
  const fields = (schema as unknown as { readonly fields: Record<string, unknown> }).fields
  for (const [key, field] of Object.entries(fields)) {
    if (!Argument.isField(field)) {
      throw new UnmappableRpc({
        rpc: tag,
        reason: `${what} field "${key}" is not an AMP argument type (use effect-amp's Argument types, ` +
          "Argument.make or Argument.fromUnicode)"
      })
    }
  }
  return fields as Command.Fields
}

const errorClassesOf = (tag: string, schema: Schema.Top, source: string): Array<Command.ErrorClass & { readonly _tag?: string }> => {
  const ast = schema.ast
  if (ast._tag === "Never") return []
  if (ast._tag === "Union" && "members" in schema) {
    return (schema as unknown as { readonly members: ReadonlyArray<Schema.Top> }).members.flatMap((member) =>
      errorClassesOf(tag, member, source)
    )
  }
  const fields = typeof schema === "function" ? (schema as unknown as { readonly fields?: Record<string, unknown> }).fields : undefined
  const tagValue = (schema as unknown as { readonly identifier?: string }).identifier
  if (ast._tag !== "Declaration" || fields === undefined || typeof tagValue !== "string") {
    throw new UnmappableRpc({
      rpc: tag,
      reason: `${source} must be Schema.TaggedError classes (or a Schema.Union of them), got a ${ast._tag} schema`
    })
  }
  const extra = Object.keys(fields).filter((key) => key !== "_tag" && key !== "message")
  if (extra.length > 0) {
    throw new UnmappableRpc({
      rpc: tag,
      reason: `error ${tagValue} has fields besides "message" (${extra.join(", ")}): an AMP error carries only a code and a description`
    })
  }
  return [schema as unknown as Command.ErrorClass]
}

const commandCache = new WeakMap<object, Map<string, Command.Any>>()

/**
 * The AMP command for one Rpc (throws {@link UnmappableRpc} when it cannot map).
 *
 * @since 0.1.0
 * @category constructors
 */
export const command = (rpc: Rpc.Any, options?: Options): Command.Any => {
  const props = rpc as unknown as Rpc.AnyWithProps
  const key = JSON.stringify(options?.errorCodes ?? {})
  let cached = commandCache.get(rpc)
  const found = cached?.get(key)
  if (found !== undefined) return found
  const tag = props._tag
  if (RpcSchema.isStreamSchema(props.successSchema)) {
    throw new UnmappableRpc({ rpc: tag, reason: "streaming Rpcs have no AMP form (an AMP call has exactly one answer)" })
  }
  const args = fieldsOf(tag, "payload", props.payloadSchema)
  const response = fieldsOf(tag, "success", props.successSchema)
  const classes = errorClassesOf(tag, props.errorSchema, "errors")
  for (const middleware of props.middlewares) {
    classes.push(...errorClassesOf(tag, middleware.error as Schema.Top, `errors of middleware ${middleware.key}`))
  }
  const errors: Record<string, Command.ErrorClass> = {}
  for (const cls of classes) {
    const errorTag = (cls as unknown as { readonly identifier: string }).identifier
    const code = options?.errorCodes?.[errorTag] ?? errorTag
    if (code === Command.UNKNOWN_ERROR_CODE || code === Command.UNHANDLED_ERROR_CODE) {
      throw new UnmappableRpc({ rpc: tag, reason: `error code ${code} is reserved by AMP` })
    }
    errors[code] = cls
  }
  let made: Command.Any
  try {
    made = Command.make(tag, { arguments: args, response, errors }) as unknown as Command.Any
  } catch (e) {
    throw new UnmappableRpc({ rpc: tag, reason: e instanceof Error ? e.message : String(e) })
  }
  if (cached === undefined) commandCache.set(rpc, cached = new Map())
  cached.set(key, made)
  return made
}

/**
 * The AMP commands of a group, by tag (throws {@link UnmappableRpc} for an Rpc that cannot map). Use
 * them with the rest of effect-amp (e.g. `Dispatcher.callRemote`), or to check what Twisted must declare.
 *
 * @since 0.1.0
 * @category constructors
 */
export const commands = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options?: Options
): { readonly [Current in Rpcs as Current["_tag"]]: Command.Any } => {
  const out: Record<string, Command.Any> = {}
  for (const [tag, rpc] of group.requests) out[tag] = command(rpc, options)
  return out as never
}

const serverClients = new WeakMap<object, Rpc.ServerClient>()
let clientIds = 0
let requestIds = 0

/**
 * Responders that run the group's handlers (from `group.toLayer(...)`) with its middleware.
 *
 * @since 0.1.0
 * @category constructors
 */
export const responders = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options?: Options
): Effect.Effect<Responders.Responders["Service"], never, Rpc.ToHandler<Rpcs> | Rpc.Middleware<Rpcs>> => {
  const mapped = [...group.requests.values()].map((rpc) => [rpc as unknown as Rpc.AnyWithProps, command(rpc, options)] as const)
  return Effect.gen(function*() {
    const services = yield* Effect.context<never>()
    const handlers = mapped.map(([rpc, cmd]) => {
      const entry = services.mapUnsafe.get(rpc.key) as Rpc.Handler<string> | undefined
      if (entry === undefined) {
        throw new UnmappableRpc({ rpc: rpc._tag, reason: "no handler in the context (provide group.toLayer(...))" })
      }
      const middlewares = [...rpc.middlewares].map((service) =>
        Context.getUnsafe(services, service as unknown as Context.Key<never, RpcMiddleware.Any>)
      )
      return Responders.handle(cmd, (payload: Record<string, unknown>) =>
        Effect.gen(function*() {
          const dispatcher = yield* Dispatcher
          let client = serverClients.get(dispatcher)
          if (client === undefined) serverClients.set(dispatcher, client = new Rpc.ServerClient(++clientIds))
          const metadata = {
            client,
            requestId: (++requestIds) as never,
            headers: Headers.empty,
            rpc,
            payload
          }
          const result = entry.handler(payload, metadata as never)
          // Rpc.fork: every AMP handler has a fiber of its own already; Rpc.uninterruptible is honoured
          const wrapper = Rpc.isWrapper(result as object) ? (result as unknown as Rpc.Wrapper<any>) : undefined
          let effect = (wrapper !== undefined ? wrapper.value : result) as Effect.Effect<unknown, unknown>
          if (wrapper?.uninterruptible === true) effect = Effect.uninterruptible(effect)
          for (const middleware of middlewares) {
            effect = middleware(effect as never, metadata) as Effect.Effect<unknown, unknown>
          }
          const value = yield* Effect.scoped(
            Effect.updateContext(effect, (fiberContext: Context.Context<never>) => Context.merge(entry.context, fiberContext))
          )
          return (value ?? {}) as Record<string, unknown>
        }) as Effect.Effect<any, any, never>)
    })
    return yield* Responders.make(...handlers)
  })
}

/**
 * A Layer providing `Responders` for the group: pass it to `Server.layer` / `Client.layer`, and provide
 * it the group's handlers (`group.toLayer(...)`) and middleware layers.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options?: Options
): Layer.Layer<Responders.Responders, never, Rpc.ToHandler<Rpcs> | Rpc.Middleware<Rpcs>> =>
  Layer.effect(Responders.Responders, responders(group, options))

/**
 * A typed client for the group over a dispatcher (throws {@link UnmappableRpc} for an Rpc that cannot
 * map, or that has client-side middleware).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeClient = <Rpcs extends Rpc.Any>(
  dispatcher: Dispatcher["Service"],
  group: RpcGroup.RpcGroup<Rpcs>,
  options?: Options
): AmpRpcClient<Rpcs> => {
  const out: Record<string, (payload: unknown) => Effect.Effect<unknown, unknown>> = {}
  for (const [tag, rpc] of group.requests) {
    const props = rpc as unknown as Rpc.AnyWithProps
    for (const middleware of props.middlewares) {
      if (middleware.requiredForClient) {
        throw new UnmappableRpc({
          rpc: tag,
          reason: `middleware ${middleware.key} is required for the client, and AMP has no headers to carry what it adds`
        })
      }
    }
    const cmd = command(rpc, options)
    const voidSuccess = props.successSchema.ast._tag === "Void"
    out[tag] = (payload) => {
      const call = dispatcher.callRemote(cmd, (payload ?? {}) as never)
      return voidSuccess ? Effect.asVoid(call) : call
    }
  }
  return out as never
}

/**
 * A typed client for the group that calls the peer of the current `Dispatcher` (a `Client.layer`, or
 * the connection a handler is serving).
 *
 * @since 0.1.0
 * @category constructors
 */
export const client = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options?: Options
): Effect.Effect<AmpRpcClient<Rpcs>, never, Dispatcher> =>
  Effect.map(Effect.service(Dispatcher), (dispatcher) => makeClient(dispatcher, group, options))
