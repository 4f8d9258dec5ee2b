/**
 * AMP over a child process's pipes, both ends: `spawn` starts a command and speaks AMP over its stdin and
 * stdout (as Twisted's process pool `ampoule` does) or over extra descriptors (trial's convention: we
 * write to the child's fd 3 and read its fd 4); `serveParent` is the child's side, a Node program serving
 * AMP on its own stdio (or fds 3 and 4).
 *
 * The child lives in the current Scope. Closing the scope ends the connection, closes the pipes, waits
 * `terminateAfter` for the child to exit on its own (a worker should exit at end of input), then sends
 * SIGTERM, then SIGKILL after `killAfter`, and waits for the exit (Node reaps the process). When the
 * child exits or crashes, outstanding and later calls through `Child.callRemote` fail with
 * {@link ChildExited}, which carries the exit code or signal and the last lines of its stderr.
 *
 * Gotchas: in stdio mode the child's stdout is the protocol, so the child must log to stderr only. The
 * pipes cannot carry StartTLS or a protocol switch (both are refused with a clear error).
 *
 * @since 0.1.0
 */
import { Deferred, Duration, Effect, Exit, Schema, Scope } from "effect"
import * as Cp from "node:child_process"
import type * as Socket from "effect/socket/Socket"
import * as Net from "node:net"
import { Duplex, type Readable, type Writable } from "node:stream"
import { type ConnectionEnded, AmpConnectionLost } from "./AmpError.ts"
import type { Box } from "./Box.ts"
import type * as Command from "./Command.ts"
import * as Connection from "./Connection.ts"
import type * as Dispatcher from "./Dispatcher.ts"
import { wrapDuplex } from "./internal/node.ts"
import type { Responders } from "./Responders.ts"

/**
 * Which descriptors of the child carry AMP: `write` is the child's descriptor we write to (its input),
 * `read` the one we read from. Default `{ write: 0, read: 1 }` (stdin/stdout); trial uses `{ write: 3, read: 4 }`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Descriptors {
  readonly write: number
  readonly read: number
}

/**
 * How to start the child and run AMP with it.
 *
 * @since 0.1.0
 * @category models
 */
export interface SpawnOptions extends Connection.Options {
  /** The program (looked up in PATH; no shell). */
  readonly command: string
  readonly args?: ReadonlyArray<string> | undefined
  readonly cwd?: string | undefined
  /** The environment (default: ours). */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
  /** The descriptors carrying AMP (default stdin/stdout). With other descriptors the child's stdin is
   * closed and its stdout is collected with its stderr. */
  readonly fds?: Descriptors | undefined
  /** How long to wait after closing the pipes for the child to exit by itself before SIGTERM (default 1 s). */
  readonly terminateAfter?: Duration.Input | undefined
  /** How long to wait after SIGTERM before SIGKILL (default 5 s). */
  readonly killAfter?: Duration.Input | undefined
  /** How many of the last stderr lines to keep for errors (default 20). */
  readonly stderrLines?: number | undefined
}

/**
 * How the child ended: an exit code, or the signal that killed it.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExitStatus {
  readonly exitCode: number | null
  readonly signal: string | null
}

/**
 * The command could not be started (not found, not executable, bad descriptors).
 *
 * @since 0.1.0
 * @category errors
 */
export class SpawnError extends Schema.TaggedError<SpawnError>()("SpawnError", {
  command: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `cannot start ${this.command}: ${this.reason}`
  }
}

/**
 * The child exited (or was killed) while calls were outstanding, or before a call. Carries how it
 * ended and the last lines it wrote to stderr.
 *
 * @since 0.1.0
 * @category errors
 */
export class ChildExited extends Schema.TaggedError<ChildExited>()("ChildExited", {
  command: Schema.String,
  pid: Schema.Number,
  exitCode: Schema.NullOr(Schema.Number),
  signal: Schema.NullOr(Schema.String),
  /** The last lines of the child's stderr (at most `stderrLines`). */
  stderr: Schema.Array(Schema.String)
}) {
  override get message(): string {
    const how = this.signal !== null ? `was killed by ${this.signal}` : `exited with code ${this.exitCode}`
    const tail = this.stderr.length === 0 ? "" : `; last stderr lines:\n  ${this.stderr.join("\n  ")}`
    return `${this.command} (pid ${this.pid}) ${how}${tail}`
  }
}

/**
 * A running child with an AMP connection to it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Child {
  readonly pid: number
  /** The command line, for messages. */
  readonly command: string
  readonly connection: Connection.Connection
  /**
   * Calls the child. Like `connection.dispatcher.callRemote`, except that a call lost because the child
   * exited fails with {@link ChildExited} instead of `AmpConnectionLost`.
   */
  readonly callRemote: <C extends Command.Any>(
    command: C,
    args: Command.Arguments<C>
  ) => Effect.Effect<Command.Result<C>, Command.Error<C> | Dispatcher.CallError | ChildExited>
  /** Untyped call (`callRemoteString`), with the same error mapping as `callRemote`. */
  readonly callRemoteRaw: (
    command: string,
    box: Box,
    options?: { readonly requiresAnswer?: boolean | undefined }
  ) => Effect.Effect<Box, Dispatcher.CallError | ChildExited>
  /** Completes when the process has exited. */
  readonly exited: Effect.Effect<ExitStatus>
  /** The last stderr lines so far. */
  readonly stderr: Effect.Effect<ReadonlyArray<string>>
  /** Sends a signal (default SIGTERM); does nothing once the child has exited. */
  readonly kill: (signal?: NodeJS.Signals) => Effect.Effect<void>
}

const quote = (word: string): string => /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`

/** Keeps the last `max` lines written to a stream (the partial last line too). */
const lineRing = (max: number) => {
  const lines: Array<string> = []
  let partial = ""
  return {
    push(text: string) {
      const parts = (partial + text).split("\n")
      partial = parts.pop()!
      for (const line of parts) {
        lines.push(line)
        if (lines.length > max) lines.shift()
      }
    },
    get: (): ReadonlyArray<string> => partial === "" ? lines.slice() : [...lines, partial].slice(-max)
  }
}

const ignoreErrors = (stream: Readable | Writable | null | undefined) => {
  stream?.on("error", () => {})
}

/** Joins a readable and a writable into one duplex stream (for `NodeSocket.fromDuplex`). */
const combine = (readable: Readable, writable: Writable): Duplex => {
  const duplex = Duplex.from({ readable, writable })
  duplex.on("error", () => {})
  return duplex
}

/**
 * Starts `options.command` and runs AMP over its pipes, in the current scope, with the `Responders`
 * from the context (the child may call us too). Fails with `SpawnError` if it cannot be started.
 *
 * @example
 * ```ts
 * import { ChildProcess, Responders } from "effect-amp"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const child = yield* ChildProcess.spawn({ command: "python3", args: ["worker.py"] })
 *   const { total } = yield* child.callRemote(Sum, { a: 13n, b: 81n })
 * }).pipe(Effect.scoped, Effect.provide(Responders.empty))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const spawn = Effect.fnUntraced(function*(options: SpawnOptions) {
  const scope = yield* Effect.scope
  const args = options.args ?? []
  const commandText = [options.command, ...args].map(quote).join(" ")
  const fds = options.fds ?? { write: 0, read: 1 }
  if (fds.write === fds.read || fds.write < 0 || fds.read < 0 || fds.read === 2 || fds.write === 2) {
    return yield* new SpawnError({ command: commandText, reason: "fds: write and read must differ and not be 2 (stderr)" })
  }
  const stdio: Array<"pipe" | "ignore"> = Array.from({ length: Math.max(3, fds.write + 1, fds.read + 1) }, (_, i) =>
    i <= 2 || i === fds.write || i === fds.read ? "pipe" : "ignore")
  if (fds.write !== 0 && fds.read !== 0) stdio[0] = "ignore"
  const ring = lineRing(options.stderrLines ?? 20)
  const exited = Deferred.makeUnsafe<ExitStatus>()
  // every stdio stream is closed and the process has exited: the stderr ring is complete
  const closed = Deferred.makeUnsafe<void>()

  const child = yield* Effect.acquireRelease(
    Effect.callback<Cp.ChildProcess, SpawnError>((resume) => {
      let proc: Cp.ChildProcess
      try {
        proc = Cp.spawn(options.command, args, {
          cwd: options.cwd,
          env: options.env as NodeJS.ProcessEnv | undefined,
          stdio
        })
      } catch (e) {
        resume(Effect.fail(new SpawnError({ command: commandText, reason: e instanceof Error ? e.message : String(e) })))
        return
      }
      for (const stream of proc.stdio) ignoreErrors(stream as Readable | Writable | null)
      for (const index of [1, 2]) {
        if (index === fds.read) continue
        const stream = proc.stdio[index] as Readable | null
        stream?.setEncoding("utf8")
        stream?.on("data", (text: string) => ring.push(text))
      }
      proc.on("exit", (exitCode, signal) => Deferred.doneUnsafe(exited, Exit.succeed({ exitCode, signal })))
      proc.on("close", () => Deferred.doneUnsafe(closed, Exit.void))
      const onError = (error: Error) => {
        proc.off("spawn", onSpawn)
        resume(Effect.fail(new SpawnError({ command: commandText, reason: error.message })))
      }
      const onSpawn = () => {
        proc.off("error", onError)
        proc.on("error", () => {}) // a failed kill: the exit still comes
        resume(Effect.succeed(proc))
      }
      proc.once("error", onError)
      proc.once("spawn", onSpawn)
    }),
    (proc) => terminate(proc, fds, exited, options)
  )

  const writable = child.stdio[fds.write] as Writable
  const readable = child.stdio[fds.read] as Readable
  const duplex = combine(readable, writable)
  yield* Scope.addFinalizer(scope, Effect.sync(() => duplex.destroy()))
  const socket = yield* wrapDuplex(duplex)
  const connection = yield* Connection.make(socket, {
    ...options,
    info: { transport: "unknown", remoteAddress: `pid ${child.pid}`, ...options.info }
  }, { role: "client" }).pipe(Effect.mapError((error) => new SpawnError({ command: commandText, reason: error.message })))

  const status = Deferred.await(exited)
  // the child exited but something else holds its pipes open: end the connection after a moment, so
  // that calls do not wait for an answer that cannot come
  yield* Effect.forkIn(
    Effect.andThen(
      status,
      Effect.andThen(
        Effect.timeoutOrElse(Deferred.await(closed), { duration: "1 second", orElse: () => Effect.void }),
        connection.close()
      )
    ),
    scope
  )

  const exitedError = Effect.gen(function*() {
    yield* Effect.timeoutOrElse(Deferred.await(closed), { duration: "2 seconds", orElse: () => Effect.void })
    if (!Deferred.isDoneUnsafe(exited)) return undefined
    const exit = yield* Deferred.await(exited)
    return new ChildExited({
      command: commandText,
      pid: child.pid!,
      exitCode: exit.exitCode,
      signal: exit.signal,
      stderr: ring.get()
    })
  })

  const explainLost = <E>(error: E): Effect.Effect<never, E | ChildExited> =>
    error instanceof AmpConnectionLost ? Effect.flatMap(exitedError, (exit) => Effect.fail(exit ?? error)) : Effect.fail(error)
  const result: Child = {
    pid: child.pid!,
    command: commandText,
    connection,
    callRemote: (command, args) => Effect.catch(connection.dispatcher.callRemote(command, args), explainLost),
    callRemoteRaw: (command, box, callOptions) =>
      Effect.catch(connection.dispatcher.callRemoteRaw(command, box, callOptions), explainLost),
    exited: status,
    stderr: Effect.sync(() => ring.get()),
    kill: (signal) =>
      Effect.sync(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal ?? "SIGTERM")
      })
  }
  return result
})

/** Closes the pipes, then SIGTERM after `terminateAfter`, SIGKILL after `killAfter`; waits for the exit. */
const terminate = (
  proc: Cp.ChildProcess,
  fds: Descriptors,
  exited: Deferred.Deferred<ExitStatus>,
  options: SpawnOptions
): Effect.Effect<void> => {
  const waitFor = (duration: Duration.Input) =>
    Effect.timeoutOrElse(Effect.as(Deferred.await(exited), true), { duration, orElse: () => Effect.succeed(false) })
  const signal = (name: NodeJS.Signals) =>
    Effect.sync(() => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(name)
    })
  return Effect.gen(function*() {
    ;(proc.stdio[fds.write] as Writable | null)?.end()
    if (yield* waitFor(options.terminateAfter ?? Duration.seconds(1))) return
    yield* signal("SIGTERM")
    if (yield* waitFor(options.killAfter ?? Duration.seconds(5))) return
    yield* signal("SIGKILL")
    if (!(yield* waitFor(Duration.seconds(10)))) {
      yield* Effect.logWarning(`child process ${proc.pid} did not exit 10 s after SIGKILL`)
    }
  }).pipe(
    Effect.ensuring(Effect.sync(() => {
      for (const stream of proc.stdio) (stream as Readable | Writable | null)?.destroy()
    }))
  )
}

/**
 * Options for the child's side.
 *
 * @since 0.1.0
 * @category models
 */
export interface ParentOptions extends Connection.Options {
  /** Our descriptors carrying AMP: `read` is our input (default 0, stdin), `write` our output (default 1,
   * stdout). Trial's convention is `{ read: 3, write: 4 }`. */
  readonly fds?: { readonly read: number; readonly write: number } | undefined
}

/**
 * The child's side: runs AMP over this process's stdin/stdout (or the given descriptors), in the
 * current scope, with the `Responders` from the context. Use {@link serveParent} to serve until the
 * parent closes the pipe. Write logs to stderr: stdout is the protocol.
 *
 * @since 0.1.0
 * @category constructors
 */
export const connectParent = Effect.fnUntraced(function*(options?: ParentOptions) {
  const scope = yield* Effect.scope
  const readFd = options?.fds?.read ?? 0
  const writeFd = options?.fds?.write ?? 1
  const readable: Readable = readFd === 0 ? process.stdin : new Net.Socket({ fd: readFd, readable: true, writable: false })
  const writable: Writable = writeFd === 1
    ? process.stdout
    : new Net.Socket({ fd: writeFd, readable: false, writable: true })
  ignoreErrors(readable)
  ignoreErrors(writable)
  const duplex = combine(readable, writable)
  yield* Scope.addFinalizer(
    scope,
    Effect.sync(() => {
      // process.stdin/stdout must not be destroyed (Node keeps them); our own sockets are
      if (readFd !== 0) readable.destroy()
      else readable.pause()
      if (writeFd !== 1) writable.end()
    })
  )
  const socket = yield* wrapDuplex(duplex)
  return yield* Connection.make(socket, {
    ...options,
    info: { transport: "unknown", remoteAddress: "parent process", ...options?.info }
  }, { role: "server" })
})

/**
 * The child's side, until the parent closes the pipe (or the scope closes): serves the `Responders`
 * from the context and returns how the connection ended.
 *
 * @example
 * ```ts
 * import { ChildProcess, Responders } from "effect-amp"
 * import { NodeRuntime } from "@effect/platform-node"
 * import { Effect } from "effect"
 *
 * ChildProcess.serveParent().pipe(Effect.scoped, Effect.provide(Handlers), NodeRuntime.runMain)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const serveParent = (
  options?: ParentOptions
): Effect.Effect<ConnectionEnded, Socket.SocketError, Responders | Scope.Scope> =>
  Effect.flatMap(connectParent(options), (connection) => connection.ended)
