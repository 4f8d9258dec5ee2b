/**
 * The conformance command set (described in `docs/conformance.md`) as `Command` definitions, with the
 * exact wire names and argument types. Twisted's side of the same set is `test/twisted/peer.py`.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import * as Argument from "../Argument.ts"
import * as Command from "../Command.ts"
import * as ProtocolSwitch from "../ProtocolSwitch.ts"

// --- declared errors ---------------------------------------------------------------------------------

/** `ZERO_DIVISION` (Divide). @since 0.1.0 @category errors */
export class ZeroDivision extends Schema.TaggedError<ZeroDivision>()("ZeroDivision", { message: Schema.String }) {}

/** `FATAL_TEST` (Fatal): a fatal error, the connection is closed after it. @since 0.1.0 @category errors */
export class FatalTest extends Schema.TaggedError<FatalTest>()("FatalTest", { message: Schema.String }) {}

/** `GREET_REFUSED` (Greet, PleaseCallMe). @since 0.1.0 @category errors */
export class GreetRefused extends Schema.TaggedError<GreetRefused>()("GreetRefused", { message: Schema.String }) {}

/** What `Undeclared` fails with: in no command's errors, so it goes out as `UNKNOWN` and closes. @since 0.1.0 @category errors */
export class UndeclaredError extends Schema.TaggedError<UndeclaredError>()("UndeclaredError", { message: Schema.String }) {}

// --- argument types ----------------------------------------------------------------------------------

/** An `ITEM` child: `x: Integer, label?: Unicode`. @since 0.1.0 @category arguments */
export const Child = Argument.AmpList({
  x: Argument.Integer,
  label: Argument.optional(Argument.Unicode)
})

/** `ITEM`s: `id, name, tags, weight?, children`. @since 0.1.0 @category arguments */
export const Items = Argument.AmpList({
  id: Argument.Integer,
  name: Argument.Unicode,
  tags: Argument.ListOf(Argument.Unicode),
  weight: Argument.optional(Argument.Float),
  children: Child
})

/** One `ITEM` value. @since 0.1.0 @category models */
export type Item = (typeof Items)["Type"][number]

const echo = <const Name extends string, A extends Command.Field>(name: Name, argument: A) =>
  Command.make(name, { arguments: { value: argument }, response: { value: argument } })

// --- commands ----------------------------------------------------------------------------------------

/** @since 0.1.0 @category commands */
export const Sum = Command.make("Sum", {
  arguments: { a: Argument.Integer, b: Argument.Integer },
  response: { total: Argument.Integer }
})

/** @since 0.1.0 @category commands */
export const EchoInteger = echo("EchoInteger", Argument.Integer)
/** @since 0.1.0 @category commands */
export const EchoString = echo("EchoString", Argument.String)
/** @since 0.1.0 @category commands */
export const EchoUnicode = echo("EchoUnicode", Argument.Unicode)
/** @since 0.1.0 @category commands */
export const EchoFloat = echo("EchoFloat", Argument.Float)
/** @since 0.1.0 @category commands */
export const EchoBoolean = echo("EchoBoolean", Argument.Boolean)
/** @since 0.1.0 @category commands */
export const EchoDecimal = echo("EchoDecimal", Argument.Decimal)
/** @since 0.1.0 @category commands */
export const EchoDateTime = echo("EchoDateTime", Argument.DateTime)
/** @since 0.1.0 @category commands */
export const EchoListOfInteger = echo("EchoListOfInteger", Argument.ListOf(Argument.Integer))
/** @since 0.1.0 @category commands */
export const EchoListOfUnicode = echo("EchoListOfUnicode", Argument.ListOf(Argument.Unicode))
/** @since 0.1.0 @category commands */
export const EchoAmpList = echo("EchoAmpList", Items)
/** @since 0.1.0 @category commands */
export const EchoPath = echo("EchoPath", Argument.Path)

const optionalFields = {
  required: Argument.Unicode,
  opt_int: Argument.optional(Argument.Integer),
  opt_text: Argument.optional(Argument.Unicode),
  opt_list: Argument.optional(Argument.ListOf(Argument.Integer))
}

/** @since 0.1.0 @category commands */
export const EchoOptional = Command.make("EchoOptional", {
  arguments: optionalFields,
  response: { ...optionalFields, present: Argument.ListOf(Argument.Unicode) }
})

const allFields = {
  int: Argument.Integer,
  string: Argument.String,
  unicode: Argument.Unicode,
  float: Argument.Float,
  boolean: Argument.Boolean,
  decimal: Argument.Decimal,
  datetime: Argument.DateTime,
  int_list: Argument.ListOf(Argument.Integer),
  unicode_list: Argument.ListOf(Argument.Unicode),
  items: Items,
  path: Argument.Path
}

/** @since 0.1.0 @category commands */
export const EchoAll = Command.make("EchoAll", { arguments: allFields, response: allFields })

const mangled = { from: Argument.Unicode, "dashed-name": Argument.Integer }

/** @since 0.1.0 @category commands */
export const NameMangling = Command.make("NameMangling", { arguments: mangled, response: mangled })

/** The sample keys and their types (`GetSamples` response, `CheckSamples` arguments). @since 0.1.0 @category arguments */
export const sampleFields = {
  int_zero: Argument.Integer,
  int_negative: Argument.Integer,
  int_big: Argument.Integer,
  int_big_negative: Argument.Integer,
  string_binary: Argument.String,
  string_empty: Argument.String,
  unicode_text: Argument.Unicode,
  unicode_empty: Argument.Unicode,
  float_simple: Argument.Float,
  float_tenth: Argument.Float,
  float_negative_zero: Argument.Float,
  float_big: Argument.Float,
  float_tiny: Argument.Float,
  float_nan: Argument.Float,
  float_inf: Argument.Float,
  float_neg_inf: Argument.Float,
  bool_true: Argument.Boolean,
  bool_false: Argument.Boolean,
  decimal_precise: Argument.Decimal,
  decimal_big: Argument.Decimal,
  decimal_exp: Argument.Decimal,
  decimal_neg_zero: Argument.Decimal,
  decimal_inf: Argument.Decimal,
  decimal_neg_inf: Argument.Decimal,
  decimal_nan: Argument.Decimal,
  datetime_utc: Argument.DateTime,
  datetime_plus: Argument.DateTime,
  datetime_minus: Argument.DateTime,
  int_list: Argument.ListOf(Argument.Integer),
  int_list_empty: Argument.ListOf(Argument.Integer),
  unicode_list: Argument.ListOf(Argument.Unicode),
  items: Items,
  items_empty: Items,
  path: Argument.Path
}

/** @since 0.1.0 @category commands */
export const GetSamples = Command.make("GetSamples", { response: sampleFields })

/** @since 0.1.0 @category commands */
export const CheckSamples = Command.make("CheckSamples", {
  arguments: sampleFields,
  response: { ok: Argument.Boolean, mismatches: Argument.ListOf(Argument.Unicode) }
})

/** @since 0.1.0 @category commands */
export const Divide = Command.make("Divide", {
  arguments: { numerator: Argument.Integer, denominator: Argument.Integer },
  response: { result: Argument.Float },
  errors: { ZERO_DIVISION: ZeroDivision }
})

/** @since 0.1.0 @category commands */
export const Fatal = Command.make("Fatal", {
  arguments: { message: Argument.Unicode },
  fatalErrors: { FATAL_TEST: FatalTest }
})

/** @since 0.1.0 @category commands */
export const Undeclared = Command.make("Undeclared")

/** @since 0.1.0 @category commands */
export const Notify = Command.make("Notify", {
  arguments: { channel: Argument.Unicode, message: Argument.Unicode },
  requiresAnswer: false
})

/** @since 0.1.0 @category commands */
export const GetNotifications = Command.make("GetNotifications", {
  arguments: { channel: Argument.Unicode, clear: Argument.optional(Argument.Boolean) },
  response: { messages: Argument.ListOf(Argument.Unicode) }
})

/** @since 0.1.0 @category commands */
export const Delay = Command.make("Delay", {
  arguments: { ms: Argument.Integer, value: Argument.Integer },
  response: { value: Argument.Integer }
})

/** @since 0.1.0 @category commands */
export const Greet = Command.make("Greet", {
  arguments: { name: Argument.Unicode },
  response: { greeting: Argument.Unicode },
  errors: { GREET_REFUSED: GreetRefused }
})

/** @since 0.1.0 @category commands */
export const PleaseCallMe = Command.make("PleaseCallMe", {
  arguments: { name: Argument.Unicode },
  response: { greeting: Argument.Unicode },
  errors: { GREET_REFUSED: GreetRefused }
})

/** @since 0.1.0 @category commands */
export const PleaseNotifyMe = Command.make("PleaseNotifyMe", {
  arguments: { channel: Argument.Unicode, message: Argument.Unicode, count: Argument.Integer },
  response: { sent: Argument.Integer }
})

/** @since 0.1.0 @category commands */
export const ConnectionInfo = Command.make("ConnectionInfo", {
  response: {
    tls: Argument.Boolean,
    peer_cert_cn: Argument.optional(Argument.Unicode),
    implementation: Argument.Unicode
  }
})

/** @since 0.1.0 @category commands */
export const SwitchToEcho = ProtocolSwitch.make("SwitchToEcho")

/** The raw responder's wire name. @since 0.1.0 @category constants */
export const RAW_ECHO = "RawEcho"

/** Reads the received descriptor to its end (at most 65535 bytes), closes it. Unix only. @since 0.1.0 @category commands */
export const ReadDescriptor = Command.make("ReadDescriptor", {
  arguments: { fd: Argument.Descriptor },
  response: { data: Argument.String }
})

/** Answers the read end of a new pipe holding `data` (write end closed). Unix only. @since 0.1.0 @category commands */
export const OpenDescriptor = Command.make("OpenDescriptor", {
  arguments: { data: Argument.String },
  response: { fd: Argument.Descriptor }
})
