/**
 * Shared pieces of the benchmark harness: the result and group types, the timing loop, and the
 * runner for the Twisted baseline scripts. See `bench/run.ts`.
 */
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

/** Summary of one contender's per-round samples. */
export interface Spread {
  /** The best sample: the highest rate, or the lowest value for lower-is-better units (latency). */
  readonly best: number
  readonly median: number
  readonly min: number
  readonly max: number
  /** Every round's sample, in round order. */
  readonly samples: ReadonlyArray<number>
}

/** Summarizes samples (null when there are none). */
export const spreadOf = (samples: ReadonlyArray<number>, lowerIsBetter = false): Spread | null => {
  if (samples.length === 0) return null
  const sorted = [...samples].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
  const min = sorted[0]!
  const max = sorted[sorted.length - 1]!
  return { best: lowerIsBetter ? min : max, median, min, max, samples }
}

/**
 * One measured benchmark. `--json` prints `name`, `unit`, `value`, `twisted`, `plainNode` (the best
 * round of each) plus `rounds`, `spread` (median/min/max of each contender's rounds) and `ratio`
 * (median/min/max of ours ÷ theirs, computed round by round).
 */
export interface Result {
  readonly name: string
  readonly unit: string
  /** Ours (effect-amp): best round. */
  readonly value: number
  /** The same benchmark on Twisted, measured in the same run; null when not measured. */
  readonly twisted: number | null
  /** The same benchmark on a hand-written plain-Node implementation; null when not measured. */
  readonly plainNode: number | null
  /** True for units where less is better (latency, memory): "best" is then the lowest. */
  readonly lowerIsBetter: boolean
  readonly rounds: number
  readonly spread: {
    readonly value: Spread
    readonly twisted: Spread | null
    readonly plainNode: Spread | null
  }
  /** ours ÷ theirs per round (rounds where both were measured), summarized. */
  readonly ratio: {
    readonly vsTwisted: Spread | null
    readonly vsPlainNode: Spread | null
  }
}

/** The per-round samples of one benchmark, from {@link interleave}. */
export interface Samples {
  readonly ours: Array<number>
  readonly twisted: Array<number | null>
  readonly plainNode: Array<number | null>
}

/** Builds a {@link Result} from per-round samples (ratios round by round). */
export const resultOf = (
  name: string,
  unit: string,
  samples: Samples,
  lowerIsBetter = false
): Result => {
  const value = spreadOf(samples.ours, lowerIsBetter)
  if (value === null) throw new Error(`${name}: no sample of ours`)
  const present = (xs: ReadonlyArray<number | null>) => xs.filter((x): x is number => x !== null)
  const ratios = (xs: ReadonlyArray<number | null>) => {
    const out: Array<number> = []
    for (let i = 0; i < samples.ours.length; i++) {
      const theirs = xs[i]
      if (theirs !== null && theirs !== undefined && theirs !== 0) out.push(samples.ours[i]! / theirs)
    }
    return out
  }
  const twisted = spreadOf(present(samples.twisted), lowerIsBetter)
  const plainNode = spreadOf(present(samples.plainNode), lowerIsBetter)
  return {
    name,
    unit,
    value: value.best,
    twisted: twisted?.best ?? null,
    plainNode: plainNode?.best ?? null,
    lowerIsBetter,
    rounds: samples.ours.length,
    spread: { value, twisted, plainNode },
    ratio: { vsTwisted: spreadOf(ratios(samples.twisted)), vsPlainNode: spreadOf(ratios(samples.plainNode)) }
  }
}

/** The JSON line `--json` prints for a result. */
export const jsonOf = (r: Result): Record<string, unknown> => {
  const brief = (s: Spread | null) => s === null ? null : { median: round(s.median), min: round(s.min), max: round(s.max) }
  return {
    name: r.name,
    unit: r.unit,
    value: round(r.value),
    twisted: r.twisted === null ? null : round(r.twisted),
    plainNode: r.plainNode === null ? null : round(r.plainNode),
    rounds: r.rounds,
    lowerIsBetter: r.lowerIsBetter,
    spread: { value: brief(r.spread.value), twisted: brief(r.spread.twisted), plainNode: brief(r.spread.plainNode) },
    ratio: { vsTwisted: brief(r.ratio.vsTwisted), vsPlainNode: brief(r.ratio.vsPlainNode) }
  }
}

const round = (x: number): number => Number(x.toPrecision(4))

export interface GroupOptions {
  /** Fewer rounds (the same warm-up and the same length of each timed run, so the same picture). */
  readonly quick: boolean
  /** True if a benchmark of this name was asked for (`--only <prefix>`). */
  readonly selected: (name: string) => boolean
  /** Progress and notes: goes to stderr, never stdout. */
  readonly log: (message: string) => void
}

/**
 * A benchmark group: a module measuring related benchmarks, ours and the baselines, and returning one
 * result per benchmark it ran (only the selected ones).
 */
export interface Group {
  readonly name: string
  /** Ratio targets shown in the human table: "median of ours ÷ theirs ≥ factor" (≤ for lower-is-better). */
  readonly targets?: Readonly<Record<string, { readonly vsTwisted?: number; readonly vsPlainNode?: number }>>
  readonly run: (options: GroupOptions) => Promise<Array<Result>>
}

export const benchDir = Path.dirname(fileURLToPath(import.meta.url))

/** The Python with Debian's Twisted, as for the tests. */
export const python = process.env.AMP_BENCH_PYTHON ?? process.env.AMP_TEST_PYTHON ?? "/usr/bin/python3"

/** Folder of the Twisted baseline scripts (overridable, e.g. to try a local copy). */
export const twistedBenchDir = process.env.AMP_BENCH_TWISTED_DIR ?? Path.join(benchDir, "twisted")

/** Timed rounds per benchmark: full and quick differ only in how many rounds they take. */
export const roundsOf = (quick: boolean, full: number, fewer: number): number => quick ? fewer : full

/**
 * Interleaved rounds: round 1 runs ours, Twisted, plain Node one after the other, then round 2 does the
 * same, and so on, so that a slow phase of the shared machine hits all three alike and each round's
 * ratio compares measurements taken seconds apart. A contender returning null (not measurable) is
 * recorded as null for that round.
 */
export const interleave = async (
  rounds: number,
  contenders: {
    readonly ours: () => Promise<number>
    readonly twisted?: (() => Promise<number | null>) | undefined
    readonly plainNode?: (() => Promise<number | null>) | undefined
  }
): Promise<Samples> => {
  const samples: Samples = { ours: [], twisted: [], plainNode: [] }
  for (let r = 0; r < rounds; r++) {
    samples.ours.push(await contenders.ours())
    samples.twisted.push(contenders.twisted ? await contenders.twisted() : null)
    samples.plainNode.push(contenders.plainNode ? await contenders.plainNode() : null)
  }
  return samples
}

/** CPU seconds this process has used (all threads: user + system). */
export const cpuSeconds = (): number => {
  const { system, user } = process.cpuUsage()
  return (user + system) / 1e6
}

/**
 * Rate of synchronous `work` (which returns the units it did) in units per CPU-second of this process,
 * run for `seconds` of CPU time. CPU time, not wall time: on a shared machine the process is often
 * descheduled, and wall time would measure the neighbours (the Twisted worker does the same with
 * `time.process_time`). The process's garbage-collector threads are included.
 */
export const runFor = (work: () => number, seconds: number): number => {
  const start = cpuSeconds()
  const wallStart = performance.now()
  let units = 0
  let elapsed = 0
  do {
    units += work()
    elapsed = cpuSeconds() - start
    // a safety net if CPU time hardly advances (e.g. starved): give up after 20× the budget of wall time
  } while (elapsed < seconds && performance.now() - wallStart < seconds * 20_000)
  return units / elapsed
}

/** The same as {@link runFor} for asynchronous work. */
export const runForAsync = async (work: () => Promise<number>, seconds: number): Promise<number> => {
  const start = cpuSeconds()
  const wallStart = performance.now()
  let units = 0
  let elapsed = 0
  do {
    units += await work()
    elapsed = cpuSeconds() - start
  } while (elapsed < seconds && performance.now() - wallStart < seconds * 20_000)
  return units / elapsed
}

/** Throws if a benchmark's self-check fails, so a broken benchmark never reports a number. */
export const check = (condition: boolean, what: string): void => {
  if (!condition) throw new Error(`benchmark self-check failed: ${what}`)
}

/**
 * A long-lived Twisted baseline process (`python bench/twisted/<script> --serve`) that measures one
 * benchmark per request, so its rounds can be interleaved with ours. Protocol: we write
 * `<name> <seconds>\n` on its stdin, it answers one JSON line `{"name", "unit", "value"}` (a rate) or
 * `{"name", "error"}`. The first request for a name also warms it up (CPython has no JIT; the warm-up
 * fills caches and settles the allocator).
 *
 * When the script is missing or Python/Twisted cannot run, `measure` resolves null and the reason is
 * logged once: the results then carry `twisted: null`.
 */
export interface PythonWorker {
  readonly measure: (name: string, seconds: number, unit: string) => Promise<number | null>
  readonly close: () => void
}

export const startPythonWorker = (script: string, options: GroupOptions): PythonWorker => {
  const file = Path.join(twistedBenchDir, script)
  if (!Fs.existsSync(file)) {
    options.log(`note: ${file} not found: Twisted baselines are null`)
    return { measure: () => Promise.resolve(null), close: () => {} }
  }
  const child = spawn(python, [file, "--serve"], { stdio: ["pipe", "pipe", "pipe"] })
  let dead: string | undefined
  let closing = false
  let err = ""
  let buffered = ""
  const waiting: Array<(line: string | undefined) => void> = []
  child.stderr.setEncoding("utf8").on("data", (d: string) => (err = (err + d).slice(-2000)))
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    buffered += d
    let nl: number
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl)
      buffered = buffered.slice(nl + 1)
      waiting.shift()?.(line)
    }
  })
  const die = (why: string) => {
    if (dead === undefined) {
      dead = why
      if (!closing) options.log(`note: Twisted worker ${script} ${why}: Twisted baselines are null${err.trim() ? `\n${err.trim()}` : ""}`)
    }
    for (const w of waiting.splice(0)) w(undefined)
  }
  child.on("error", (e) => die(`failed: ${String(e)}`))
  child.on("exit", (code) => die(`exited with ${code}`))
  child.stdin.on("error", () => {})
  return {
    measure: (name, seconds, unit) => {
      if (dead !== undefined) return Promise.resolve(null)
      return new Promise((resolve) => {
        const timer = setTimeout(() => child.kill("SIGKILL"), (seconds * 4 + 60) * 1000)
        waiting.push((line) => {
          clearTimeout(timer)
          if (line === undefined) return resolve(null)
          try {
            const parsed = JSON.parse(line) as { unit?: unknown; value?: unknown; error?: unknown }
            if (typeof parsed.value === "number" && Number.isFinite(parsed.value) && parsed.unit === unit) {
              return resolve(parsed.value)
            }
            options.log(`note: Twisted ${name}: ${String(parsed.error ?? line)}`)
          } catch {
            options.log(`note: Twisted ${name}: unreadable answer ${JSON.stringify(line.slice(0, 200))}`)
          }
          resolve(null)
        })
        child.stdin.write(`${name} ${seconds}\n`)
      })
    },
    close: () => {
      closing = true
      child.stdin.end()
      setTimeout(() => child.kill("SIGKILL"), 3000).unref()
    }
  }
}
