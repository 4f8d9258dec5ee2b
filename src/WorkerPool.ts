/**
 * A pool of AMP worker processes, in the spirit of Twisted's `ampoule`: typed calls go to the least busy
 * of N child processes (Python workers on `twisted.internet.stdio`, Node workers on
 * `ChildProcess.serveParent`, anything that speaks AMP on its pipes).
 *
 * - Size: `min` workers are kept running (started at once); under load the pool grows to `max`, and a
 *   worker beyond `min` idle for `idleWorkerTimeout` is retired.
 * - Each call goes to the worker with the fewest calls in flight; a worker takes at most `concurrency`
 *   calls at once (default 1, as ampoule). Callers beyond `max × concurrency` wait their turn (an Effect
 *   `Semaphore`), so a burst queues instead of piling onto the workers.
 * - `callTimeout`: a call not answered in time fails with {@link CallTimeout} and its worker, presumed
 *   stuck, is recycled (killed: SIGTERM, then SIGKILL; its other calls fail with `ChildExited`). Calls to
 *   a worker that has not answered yet get `startTimeout` more: the worker may still be starting.
 * - A worker that exits or crashes fails its calls with `ChildExited` (exit code or signal, last stderr
 *   lines); the others go on, and a replacement is started (after a growing delay if workers keep dying
 *   before answering anything). Starting a worker is retried with `spawnRetry` (an Effect `Schedule`).
 * - `recycleAfter`: a worker that has taken K calls takes no more and is stopped once they are done.
 * - Closing the pool's scope drains it: new calls fail with {@link PoolClosed}, calls in flight get up to
 *   `drainTimeout` to finish (those still running then fail with `PoolClosed` too), then every worker is
 *   stopped (pipes closed, SIGTERM, SIGKILL) and reaped.
 *
 * Why not `effect/Pool`: its `get` leases the first item with room, filling one worker up to its
 * concurrency before using the next; least-busy routing and the per-worker recycling above need the
 * worker choice in our hands. Effect's `Semaphore`, `Scope`, `Schedule` and `Deferred` do the rest.
 *
 * @since 0.1.0
 */
import { Context, Deferred, Duration, Effect, Exit, Layer, Schedule, Schema, Scope, Semaphore } from "effect"
import { AmpConnectionLost } from "./AmpError.ts"
import * as ChildProcess from "./ChildProcess.ts"
import type * as Command from "./Command.ts"
import type * as Dispatcher from "./Dispatcher.ts"
import type { Responders } from "./Responders.ts"

/**
 * Pool options: how to start a worker (the `ChildProcess.spawn` options) and the pool's policy.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends ChildProcess.SpawnOptions {
  /** Workers kept running (default 1). */
  readonly min?: number | undefined
  /** Most workers at once (default `min`, at least 1). */
  readonly max?: number | undefined
  /** Calls one worker handles at once (default 1). */
  readonly concurrency?: number | undefined
  /**
   * A call not answered within this fails with `CallTimeout` and its worker is recycled. Off by default.
   * Until a worker has answered once, its calls get `startTimeout` more (the worker may still be starting).
   */
  readonly callTimeout?: Duration.Input | undefined
  /** Added to `callTimeout` for calls to a worker that has not answered yet (default 30 s). */
  readonly startTimeout?: Duration.Input | undefined
  /** Stop a worker after it has taken this many calls (a fresh one replaces it). Off by default. */
  readonly recycleAfter?: number | undefined
  /** A worker beyond `min` idle this long is stopped (default 30 s). */
  readonly idleWorkerTimeout?: Duration.Input | undefined
  /** On close, how long calls in flight may take before the workers are stopped anyway (default 30 s). */
  readonly drainTimeout?: Duration.Input | undefined
  /** Retries of a worker start that failed (`SpawnError`); default: 3 retries, exponential from 100 ms. */
  readonly spawnRetry?: Schedule.Schedule<unknown, ChildProcess.SpawnError> | undefined
}

/**
 * A call was not answered within `callTimeout`; its worker was recycled.
 *
 * @since 0.1.0
 * @category errors
 */
export class CallTimeout extends Schema.TaggedError<CallTimeout>()("CallTimeout", {
  command: Schema.String,
  pid: Schema.Number,
  timeout: Schema.String
}) {
  override get message(): string {
    return `${this.command}: no answer from worker ${this.pid} within ${this.timeout}; the worker was recycled`
  }
}

/**
 * The pool is closing or closed: no new calls.
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolClosed extends Schema.TaggedError<PoolClosed>()("PoolClosed", {}) {
  override get message(): string {
    return "the worker pool is closed"
  }
}

/**
 * Everything a pool call can fail with besides the command's declared errors.
 *
 * @since 0.1.0
 * @category errors
 */
export type PoolError = Dispatcher.CallError | ChildProcess.ChildExited | ChildProcess.SpawnError | CallTimeout | PoolClosed

/**
 * Counters, for monitoring and tests.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** Workers running or starting (including ones finishing their last calls before being stopped). */
  readonly workers: number
  /** Calls in flight. */
  readonly busy: number
  /** Calls that got an outcome from a worker (answers and errors alike). */
  readonly completed: number
  /** Workers started since the pool was made. */
  readonly started: number
  /** Workers that exited on their own (crashed or quit). */
  readonly crashed: number
  /** Workers stopped by the pool (timeouts, recycling, idle). */
  readonly recycled: number
  /** Per worker taking calls: its pid (undefined while starting), calls in flight, calls taken. */
  readonly perWorker: ReadonlyArray<{ readonly pid: number | undefined; readonly active: number; readonly taken: number }>
}

/**
 * A running pool.
 *
 * @since 0.1.0
 * @category models
 */
export interface WorkerPool {
  /** Calls a command on the least busy worker (waiting for one when all are full). */
  readonly call: <C extends Command.Any>(
    command: C,
    args: Command.Arguments<C>
  ) => Effect.Effect<Command.Result<C>, Command.Error<C> | PoolError>
  /** The pids of the running workers. */
  readonly pids: Effect.Effect<ReadonlyArray<number>>
  readonly stats: Effect.Effect<Stats>
}

interface Worker {
  readonly scope: Scope.Closeable
  readonly ready: Deferred.Deferred<ChildProcess.Child, ChildProcess.SpawnError | PoolClosed>
  child: ChildProcess.Child | undefined
  active: number
  taken: number
  answered: number
  lastUsed: number
  /** Takes no new calls; stopped when its last call is done. */
  retiring: boolean
  stopped: boolean
}

/**
 * Starts a pool in the current scope (its workers get the `Responders` from the context: workers may
 * call us too). Returns at once; the first `min` workers start in the background.
 *
 * @example
 * ```ts
 * import { Responders, WorkerPool } from "effect-amp"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const pool = yield* WorkerPool.make({ command: "python3", args: ["worker.py"], min: 4 })
 *   const results = yield* Effect.forEach([1n, 2n, 3n], (n) => pool.call(Square, { n }), { concurrency: "unbounded" })
 * }).pipe(Effect.scoped, Effect.provide(Responders.empty))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options: Options) {
  const outer = yield* Effect.scope
  const context = yield* Effect.context<Responders>()
  const min = Math.max(0, options.min ?? 1)
  const max = Math.max(1, min, options.max ?? min)
  const concurrency = Math.max(1, options.concurrency ?? 1)
  const idleMillis = Duration.toMillis(Duration.fromInputUnsafe(options.idleWorkerTimeout ?? "30 seconds"))
  const spawnRetry = options.spawnRetry ?? Schedule.exponential("100 millis")
  const spawnTimes = options.spawnRetry === undefined ? 3 : undefined
  const poolScope = yield* Scope.fork(outer)
  const permits = yield* Semaphore.make(max * concurrency)
  const workers = new Set<Worker>()
  let closing = false
  let busy = 0
  let completed = 0
  let started = 0
  let crashed = 0
  let recycled = 0
  // workers that died before answering anything, in a row: replacements wait longer and longer
  let earlyDeaths = 0

  const live = () => {
    let n = 0
    for (const w of workers) if (!w.retiring) n++
    return n
  }

  const stop = (worker: Worker): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (worker.stopped) return Effect.void
      worker.stopped = true
      worker.retiring = true
      workers.delete(worker)
      return Effect.andThen(Scope.close(worker.scope, Exit.void), ensureMin)
    })
  const stopInBackground = (worker: Worker) => Effect.asVoid(Effect.forkIn(stop(worker), poolScope))

  /** Marks a worker as retiring; it stops once idle. */
  const retire = (worker: Worker): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (worker.retiring) return Effect.void
      worker.retiring = true
      recycled++
      return Effect.andThen(worker.active === 0 ? stopInBackground(worker) : Effect.void, ensureMin)
    })

  const startWorker = (delay: Duration.Duration): Effect.Effect<Worker> =>
    Effect.gen(function*() {
      const scope = yield* Scope.fork(poolScope)
      const worker: Worker = {
        scope,
        ready: Deferred.makeUnsafe(),
        child: undefined,
        active: 0,
        taken: 0,
        answered: 0,
        lastUsed: Date.now(),
        retiring: false,
        stopped: false
      }
      workers.add(worker)
      started++
      // stopped before it started (the pool closing): calls waiting for it fail instead of waiting forever
      yield* Scope.addFinalizer(
        scope,
        Effect.sync(() =>
          Deferred.doneUnsafe(
            worker.ready,
            Exit.fail(new PoolClosed())
          )
        )
      )
      const spawn = ChildProcess.spawn(options).pipe(
        Effect.retry(spawnTimes === undefined ? { schedule: spawnRetry } : { schedule: spawnRetry, times: spawnTimes }),
        Scope.provide(scope),
        Effect.provideContext(context)
      )
      const run = Effect.gen(function*() {
        if (Duration.toMillis(delay) > 0) yield* Effect.sleep(delay)
        const exit = yield* Effect.exit(spawn)
        if (Exit.isFailure(exit)) {
          yield* Deferred.done(worker.ready, exit)
          yield* Effect.logError("worker pool: cannot start a worker", exit.cause)
          return yield* stop(worker)
        }
        const child = exit.value
        worker.child = child
        yield* Deferred.succeed(worker.ready, child)
        // the connection ends when the child exits or closes its pipe: replace it
        const end = yield* child.connection.ended
        if (worker.stopped) return
        crashed++
        if (worker.answered === 0) earlyDeaths++
        const status = yield* Effect.timeoutOrElse(Effect.map(child.exited, (s) => s as ChildProcess.ExitStatus | undefined), {
          duration: "2 seconds",
          orElse: () => Effect.succeed(undefined)
        })
        const how = status === undefined
          ? end.reason
          : status.signal !== null
          ? `killed by ${status.signal}`
          : `exit code ${status.exitCode}`
        const stderr = yield* child.stderr
        yield* Effect.logWarning(
          `worker pool: worker ${child.pid} ended (${how}); replacing it` +
            (stderr.length > 0 ? `; last stderr: ${stderr.slice(-3).join(" | ")}` : "")
        )
        yield* stop(worker)
      })
      yield* Effect.forkIn(run, poolScope)
      return worker
    })

  const ensureMin: Effect.Effect<void> = Effect.suspend(() => {
    if (closing) return Effect.void
    const missing = min - live()
    if (missing <= 0) return Effect.void
    const delay = earlyDeaths === 0 ? 0 : Math.min(100 * 2 ** (earlyDeaths - 1), 5_000)
    return Effect.asVoid(Effect.forEach(Array.from({ length: missing }), () => startWorker(Duration.millis(delay))))
  })

  /** The least busy worker with room (ready ones first), or a new one. A permit guarantees one exists. */
  const pick: Effect.Effect<Worker> = Effect.suspend(() => {
    let best: Worker | undefined
    for (const w of workers) {
      if (w.retiring || w.active >= concurrency) continue
      if (best === undefined || w.active < best.active) best = w
      else if (w.active === best.active) {
        // ties: a worker already running over one starting, then the one that has taken fewer calls
        const wReady = w.child !== undefined
        const bestReady = best.child !== undefined
        if ((wReady && !bestReady) || (wReady === bestReady && w.taken < best.taken)) best = w
      }
    }
    if (best !== undefined) return Effect.succeed(best)
    return startWorker(Duration.zero)
  })

  const idleCheck = (worker: Worker) =>
    Effect.gen(function*() {
      const since = worker.lastUsed
      yield* Effect.sleep(idleMillis)
      if (!worker.retiring && worker.active === 0 && worker.lastUsed === since && live() > min) yield* retire(worker)
    })

  const callTimeout = options.callTimeout === undefined ? undefined : Duration.fromInputUnsafe(options.callTimeout)
  const startTimeout = Duration.fromInputUnsafe(options.startTimeout ?? "30 seconds")
  const callTimeoutText = callTimeout === undefined ? "" : Duration.format(callTimeout)

  const call = <C extends Command.Any>(
    command: C,
    args: Command.Arguments<C>
  ): Effect.Effect<Command.Result<C>, Command.Error<C> | PoolError> =>
    permits.withPermit(
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          if (closing) return yield* new PoolClosed()
          const worker = yield* pick
          worker.active++
          worker.taken++
          busy++
          if (options.recycleAfter !== undefined && worker.taken >= options.recycleAfter) {
            worker.retiring = true
            recycled++
            yield* ensureMin
          }
          const attempt = Effect.flatMap(Deferred.await(worker.ready), (child) => {
            const answer = child.callRemote(command, args)
            if (callTimeout === undefined) return answer
            return answer.pipe(
              Effect.timeoutOrElse({
                duration: worker.answered > 0 ? callTimeout : Duration.sum(callTimeout, startTimeout),
                orElse: () =>
                  Effect.andThen(
                    Effect.andThen(
                      Effect.logWarning(`worker pool: ${command.name} timed out on worker ${child.pid}; recycling it`),
                      Effect.andThen(retire(worker), stopInBackground(worker))
                    ),
                    Effect.fail(new CallTimeout({ command: command.name, pid: child.pid, timeout: callTimeoutText }))
                  )
              })
            )
          })
          return yield* restore(attempt).pipe(
            // the drain timed out and the pool stopped the worker under this call
            Effect.catch((error) =>
              closing && (error instanceof ChildProcess.ChildExited || error instanceof AmpConnectionLost)
                ? Effect.fail(new PoolClosed())
                : Effect.fail(error)
            ),
            Effect.onExit((exit) =>
              Effect.suspend(() => {
                worker.active--
                busy--
                worker.lastUsed = Date.now()
                const reached = Exit.isSuccess(exit) ||
                  !exit.cause.reasons.some((r) => r._tag === "Interrupt") &&
                    !exit.cause.reasons.some((r) =>
                      r._tag === "Fail" && ["ChildExited", "SpawnError", "CallTimeout"].includes((r.error as { _tag: string })._tag)
                    )
                if (reached) {
                  completed++
                  worker.answered++
                  earlyDeaths = 0
                }
                if (worker.retiring) return worker.active === 0 ? stopInBackground(worker) : Effect.void
                if (idleMillis > 0 && worker.active === 0 && live() > min) return Effect.asVoid(Effect.forkIn(idleCheck(worker), poolScope))
                return Effect.void
              })
            )
          )
        })
      )
    )

  // drain on close: added after `poolScope` was forked, so it runs before the workers are stopped
  yield* Scope.addFinalizer(
    outer,
    Effect.gen(function*() {
      closing = true
      // every call holds a permit: holding them all means none is in flight
      yield* Effect.timeoutOrElse(permits.take(max * concurrency), {
        duration: options.drainTimeout ?? "30 seconds",
        orElse: () => Effect.logWarning(`worker pool: ${busy} calls still in flight at the drain timeout; stopping the workers`)
      })
      yield* Scope.close(poolScope, Exit.void)
      // callers still waiting for a permit get one, see `closing` and fail with PoolClosed
      yield* permits.releaseAll
    })
  )
  yield* ensureMin

  const pool: WorkerPool = {
    call,
    pids: Effect.sync(() => [...workers].flatMap((w) => w.child !== undefined && !w.retiring ? [w.child.pid] : [])),
    stats: Effect.sync(() => ({
      workers: workers.size,
      busy,
      completed,
      started,
      crashed,
      recycled,
      perWorker: [...workers].flatMap((w) => w.retiring ? [] : [{ pid: w.child?.pid, active: w.active, taken: w.taken }])
    }))
  }
  return pool
})

/**
 * The pool as a service, for {@link layer}.
 *
 * @since 0.1.0
 * @category services
 */
export class Pool extends Context.Service<Pool, WorkerPool>()("effect-amp/WorkerPool") {}

/**
 * A Layer providing a {@link Pool}; the pool drains and stops its workers when the layer's scope closes.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Pool, never, Responders> => Layer.effect(Pool, make(options))

/**
 * Calls a command on the pool in the context (accessor for {@link Pool}).
 *
 * @since 0.1.0
 * @category accessors
 */
export const call = <C extends Command.Any>(
  command: C,
  args: Command.Arguments<C>
): Effect.Effect<Command.Result<C>, Command.Error<C> | PoolError, Pool> =>
  Effect.gen(function*() {
    const pool = yield* Pool
    return yield* pool.call(command, args)
  })
