/**
 * AMP commands as Schema definitions. A command has a wire name, argument and response fields (each an
 * `Argument`: a `Schema.Codec<A, Uint8Array>`), declared errors (wire code ↔ `Schema.TaggedError`
 * class), fatal errors (sent, then the connection is closed), and `requiresAnswer`.
 *
 * From one definition both ends get their types: `callRemote(Sum, { a, b })` is checked against the
 * arguments, succeeds with the decoded response and fails with the declared errors in the typed error
 * channel; a responder for `Sum` receives the decoded arguments and must return the response.
 *
 * @example
 * ```ts
 * import { Argument, Command } from "effect-amp"
 * import { Schema } from "effect"
 *
 * class DivideByZero extends Schema.TaggedError<DivideByZero>()("DivideByZero", { message: Schema.String }) {}
 *
 * const Divide = Command.make("Divide", {
 *   arguments: { numerator: Argument.Integer, denominator: Argument.Integer },
 *   response: { result: Argument.Float },
 *   errors: { ZERO_DIVISION: DivideByZero }
 * })
 * ```
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import { type Pipeable, pipeArguments } from "effect/Pipeable"
import { AmpArgumentError, UnhandledCommand, UnknownRemoteError } from "./AmpError.ts"
import { type Box, makeOutgoing } from "./Box.ts"
import type * as Argument from "./Argument.ts"
import { compileFields, FieldFailure, type FieldsCodec } from "./internal/argument.ts"
import { fromLatin1, utf8Encoder, utf8Replace } from "./internal/bytes.ts"

/**
 * One field of a command: an argument type, or `Argument.optional(type)` (`Schema.optionalKey`) for a
 * key that may be absent.
 *
 * @since 0.1.0
 * @category models
 */
export type Field = Argument.Field

/**
 * Argument or response fields: wire key → field. Keys are the wire names, so `from` or `dashed-name`
 * are used as they are (`args["dashed-name"]`).
 *
 * @since 0.1.0
 * @category models
 */
export type Fields = { readonly [key: string]: Field }

/**
 * An error class a command can declare: a `Schema.TaggedError` (or any class) constructed from
 * `{ message }`. On the wire the description is the error's `message`; on the caller side the class is
 * constructed with the received description as `message`. Subclass instances match, as in Twisted.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * class GreetRefused extends Schema.TaggedError<GreetRefused>()("GreetRefused", { message: Schema.String }) {}
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ErrorClass<E extends DeclaredError = DeclaredError> {
  new(props: { readonly message: string }): E
}

/**
 * What a declared error instance looks like.
 *
 * @since 0.1.0
 * @category models
 */
export interface DeclaredError {
  readonly _tag: string
  readonly message: string
}

/**
 * Wire error code → error class.
 *
 * @since 0.1.0
 * @category models
 */
export type ErrorMap = { readonly [code: string]: ErrorClass<any> }

const TypeId = "~effect-amp/Command" as const

/** @internal compiled codecs of a command */
export interface Compiled {
  readonly arguments: FieldsCodec
  readonly response: FieldsCodec
  readonly errorList: ReadonlyArray<{ readonly code: string; readonly cls: ErrorClass<any>; readonly fatal: boolean }>
  readonly byCode: ReadonlyMap<string, ErrorClass<any>>
}

/**
 * A command definition. Build one with {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Command<
  out Name extends string,
  Args extends Fields,
  Resp extends Fields,
  out Errors extends ErrorMap,
  out Fatal extends ErrorMap,
  out RequiresAnswer extends boolean
> extends Pipeable {
  readonly [TypeId]: typeof TypeId
  /** The wire command name (`_command`), a latin1 string (ASCII in practice). */
  readonly name: Name
  readonly arguments: Args
  readonly response: Resp
  readonly errors: Errors
  readonly fatalErrors: Fatal
  /** When false, calls carry no `_ask` and complete as soon as the box is queued (Twisted's notifications). */
  readonly requiresAnswer: RequiresAnswer
  /** The arguments as one Schema: decoded type = the arguments object, encoded = wire key → bytes. */
  readonly argumentsSchema: Schema.Struct<Args>
  /** The response as one Schema. */
  readonly responseSchema: Schema.Struct<Resp>
  /** @internal */
  readonly compiled: Compiled
}

/**
 * Any command.
 *
 * @since 0.1.0
 * @category models
 */
export interface Any extends Command<string, Fields, Fields, ErrorMap, ErrorMap, boolean> {}

/**
 * The arguments object type of a command.
 *
 * @since 0.1.0
 * @category type-level
 */
export type Arguments<C extends Any> = C["argumentsSchema"]["Type"]

/**
 * The response object type of a command.
 *
 * @since 0.1.0
 * @category type-level
 */
export type Response<C extends Any> = C["responseSchema"]["Type"]

/**
 * The union of a command's declared errors (regular and fatal).
 *
 * @since 0.1.0
 * @category type-level
 */
export type Error<C extends Any> =
  | InstanceType<C["errors"][keyof C["errors"]]>
  | InstanceType<C["fatalErrors"][keyof C["fatalErrors"]]>

/**
 * What `callRemote` succeeds with: the response, or `void` for a command that requires no answer.
 *
 * @since 0.1.0
 * @category type-level
 */
export type Result<C extends Any> = C["requiresAnswer"] extends false ? void : Response<C>

/**
 * Is this value a command?
 *
 * @since 0.1.0
 * @category guards
 */
export const isCommand = (u: unknown): u is Any => typeof u === "object" && u !== null && TypeId in u

const Proto = {
  [TypeId]: TypeId,
  pipe() {
    return pipeArguments(this, arguments)
  }
}

/**
 * Defines a command. `name` is the wire name; omitted parts default to none (`arguments`, `response`,
 * `errors`, `fatalErrors`) and `requiresAnswer` to `true`.
 *
 * To extend a command the Twisted way (a subclass inheriting its base's errors), spread the base:
 * `errors: { ...Base.errors, NEW_CODE: NewError }`.
 *
 * @example
 * ```ts
 * import { Argument, Command } from "effect-amp"
 * const Sum = Command.make("Sum", {
 *   arguments: { a: Argument.Integer, b: Argument.Integer },
 *   response: { total: Argument.Integer }
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <
  const Name extends string,
  const Args extends Fields = {},
  const Resp extends Fields = {},
  const Errors extends ErrorMap = {},
  const Fatal extends ErrorMap = {},
  const RequiresAnswer extends boolean = true
>(
  name: Name,
  options?: {
    readonly arguments?: Args | undefined
    readonly response?: Resp | undefined
    readonly errors?: Errors | undefined
    readonly fatalErrors?: Fatal | undefined
    readonly requiresAnswer?: RequiresAnswer | undefined
  }
): Command<Name, Args, Resp, Errors, Fatal, RequiresAnswer> => {
  if (name.length === 0 || name.length > 255) {
    throw new globalThis.Error(`AMP command name must be 1..255 bytes, got ${name.length}`)
  }
  const args = (options?.arguments ?? {}) as Args
  const resp = (options?.response ?? {}) as Resp
  const errors = (options?.errors ?? {}) as Errors
  const fatalErrors = (options?.fatalErrors ?? {}) as Fatal
  for (const key of [...Object.keys(args), ...Object.keys(resp)]) {
    if (key.length === 0 || key.length > 255 || key.startsWith("_") && reservedKeys.has(key)) {
      throw new globalThis.Error(`${name}: invalid AMP field name ${JSON.stringify(key)}`)
    }
  }
  const errorList: Array<{ code: string; cls: ErrorClass<any>; fatal: boolean }> = []
  const byCode = new Map<string, ErrorClass<any>>()
  for (const [code, cls] of Object.entries(errors)) {
    errorList.push({ code, cls, fatal: false })
    byCode.set(code, cls)
  }
  for (const [code, cls] of Object.entries(fatalErrors)) {
    errorList.push({ code, cls, fatal: true })
    byCode.set(code, cls) // Twisted: on a code collision the fatal class wins
  }
  const self = Object.create(Proto)
  self.name = name
  self.arguments = args
  self.response = resp
  self.errors = errors
  self.fatalErrors = fatalErrors
  self.requiresAnswer = options?.requiresAnswer ?? true
  self.argumentsSchema = Schema.Struct(args)
  self.responseSchema = Schema.Struct(resp)
  self.compiled = {
    arguments: compileFields(args),
    response: compileFields(resp),
    errorList,
    byCode
  } satisfies Compiled
  return self
}

const reservedKeys = new Set(["_command", "_ask", "_answer", "_error", "_error_code", "_error_description"])

/** Special box keys. @since 0.1.0 @category constants */
export const COMMAND = "_command"
/** @since 0.1.0 @category constants */
export const ASK = "_ask"
/** @since 0.1.0 @category constants */
export const ANSWER = "_answer"
/** @since 0.1.0 @category constants */
export const ERROR = "_error"
/** @since 0.1.0 @category constants */
export const ERROR_CODE = "_error_code"
/** @since 0.1.0 @category constants */
export const ERROR_DESCRIPTION = "_error_description"
/** The code a responder sends for an undeclared failure. @since 0.1.0 @category constants */
export const UNKNOWN_ERROR_CODE = "UNKNOWN"
/** The code a responder sends for an unknown command. @since 0.1.0 @category constants */
export const UNHANDLED_ERROR_CODE = "UNHANDLED"


const nameBytes = new WeakMap<Any, Uint8Array>()
/** @internal the wire bytes of a command name */
export const commandNameBytes = (command: Any): Uint8Array => {
  let bytes = nameBytes.get(command)
  if (bytes === undefined) {
    bytes = fromLatin1(command.name)
    nameBytes.set(command, bytes)
  }
  return bytes
}

/**
 * Encodes arguments into a request box (without `_ask`), synchronously; throws `AmpArgumentError`. A key
 * that is not a declared argument is refused (Twisted's `InvalidSignature`), so a misspelt optional
 * argument is not silently dropped: the check costs one `Object.keys` per call.
 * @internal
 */
export const encodeArgumentsUnsafe = (command: Any, args: Readonly<Record<string, unknown>>): Map<string, Uint8Array> => {
  const fields = command.compiled.arguments
  // long text arguments stay strings until the writer encodes them into its buffer
  const box = fields.hasText ? makeOutgoing() : new Map<string, Uint8Array>()
  let present: number
  try {
    present = fields.encode(args, box)
  } catch (e) {
    throw toArgumentError(command, "arguments", e)
  }
  // more own keys than declared fields present: either undefined optionals or an undeclared key
  if (args != null && Object.keys(args).length !== present) {
    const extra = fields.undeclaredKey(args)
    if (extra !== undefined) {
      throw new AmpArgumentError({
        command: command.name,
        side: "arguments",
        key: extra,
        reason: `not a declared argument (declared: ${fields.keys.length === 0 ? "none" : fields.keys.join(", ")})`
      })
    }
  }
  box.set(COMMAND, commandNameBytes(command))
  return box
}

const toArgumentError = (command: Any, side: "arguments" | "response", e: unknown): AmpArgumentError =>
  e instanceof FieldFailure
    ? new AmpArgumentError({ command: command.name, side, key: e.key, reason: e.reason })
    : new AmpArgumentError({ command: command.name, side, key: "", reason: String(e) })

/**
 * Builds the request box for a call (`_command` plus the encoded arguments; the dispatcher adds `_ask`).
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeArguments = <C extends Any>(
  command: C,
  args: Arguments<C>
): Effect.Effect<Map<string, Uint8Array>, AmpArgumentError> =>
  Effect.try({ try: () => encodeArgumentsUnsafe(command, args as any), catch: (e) => e as AmpArgumentError })

/**
 * Decodes the arguments of a received request box (extra keys are ignored, as in Twisted).
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeArguments = <C extends Any>(command: C, box: Box): Effect.Effect<Arguments<C>, AmpArgumentError> =>
  Effect.try({
    try: () => command.compiled.arguments.decode(box) as Arguments<C>,
    catch: (e) => toArgumentError(command, "arguments", e)
  })

/**
 * Encodes a response object into an answer box (without `_answer`).
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeResponse = <C extends Any>(command: C, response: Response<C>): Effect.Effect<Map<string, Uint8Array>, AmpArgumentError> =>
  Effect.try({
    try: () => {
      const box = new Map<string, Uint8Array>()
      command.compiled.response.encode(response as any, box)
      return box
    },
    catch: (e) => toArgumentError(command, "response", e)
  })

/**
 * Decodes an answer box into the response object (extra keys ignored).
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeResponse = <C extends Any>(command: C, box: Box): Effect.Effect<Response<C>, AmpArgumentError> =>
  Effect.try({
    try: () => command.compiled.response.decode(box) as Response<C>,
    catch: (e) => toArgumentError(command, "response", e)
  })

/** @internal */
export const decodeResponseUnsafe = (command: Any, box: Box): unknown => {
  try {
    return command.compiled.response.decode(box)
  } catch (e) {
    throw toArgumentError(command, "response", e)
  }
}

/**
 * Finds the wire code for a failure of a responder: the first declared class the error is an instance
 * of. `fatal` says whether the connection must be closed after sending it.
 *
 * @since 0.1.0
 * @category errors
 */
export const errorCodeFor = (
  command: Any,
  error: unknown
): { readonly code: string; readonly fatal: boolean } | undefined => {
  for (const entry of command.compiled.errorList) {
    if (error instanceof entry.cls) return { code: entry.code, fatal: entry.fatal }
  }
  return undefined
}

/**
 * Turns a received error answer into the caller's error: the declared class for a declared code,
 * `UnhandledCommand` for `UNHANDLED`, `UnknownRemoteError` for anything else.
 *
 * @since 0.1.0
 * @category errors
 */
export const errorFromWire = <C extends Any>(
  command: C,
  code: string,
  description: string
): Error<C> | UnhandledCommand | UnknownRemoteError => {
  const cls = command.compiled.byCode.get(code)
  if (cls !== undefined) return new cls({ message: description })
  if (code === UNHANDLED_ERROR_CODE) return new UnhandledCommand({ command: command.name, description })
  return new UnknownRemoteError({ code, description })
}

/**
 * Builds an error answer box: `_error` (the request's tag), `_error_code`, `_error_description`
 * (UTF-8). Exactly what Twisted sends.
 *
 * @since 0.1.0
 * @category encoding
 */
export const errorBox = (tag: Uint8Array, code: string, description: string): Map<string, Uint8Array> => {
  const box = new Map<string, Uint8Array>()
  box.set(ERROR, tag)
  box.set(ERROR_CODE, fromLatin1(code))
  box.set(ERROR_DESCRIPTION, utf8Encoder.encode(description.isWellFormed() ? description : description.toWellFormed()))
  return box
}

/** @internal decodes an `_error_description` like Twisted: UTF-8 with replacement */
export const decodeDescription = (bytes: Uint8Array): string => utf8Replace.decode(bytes)
