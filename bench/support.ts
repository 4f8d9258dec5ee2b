/**
 * Shared pieces of the benchmark harness: the result and group types, the timing loop, and the
 * runner for the Twisted baseline scripts. See `bench/run.ts`.
 */
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

/** One measured benchmark. This is exactly what `--json` prints, one object per line. */
export interface Result {
  readonly name: string
  readonly unit: string
  /** Ours (effect-amp). */
  readonly value: number
  /** The same benchmark on Twisted, measured in the same run; null when not measured. */
  readonly twisted: number | null
  /** The same benchmark on a hand-written plain-Node implementation; null when not measured. */
  readonly plainNode: number | null
}

export interface GroupOptions {
  /** Shorter runs (≈0.25 s instead of ≈1 s per timed run). */
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
  /** Ratio targets shown in the human table: "ours ≥ factor × twisted". */
  readonly targets?: Readonly<Record<string, { readonly vsTwisted?: number; readonly vsPlainNode?: number }>>
  readonly run: (options: GroupOptions) => Promise<Array<Result>>
}

export const benchDir = Path.dirname(fileURLToPath(import.meta.url))

/** The Python with Debian's Twisted, as for the tests. */
export const python = process.env.AMP_BENCH_PYTHON ?? process.env.AMP_TEST_PYTHON ?? "/usr/bin/python3"

/** Folder of the Twisted baseline scripts (overridable, e.g. to try a local copy). */
export const twistedBenchDir = process.env.AMP_BENCH_TWISTED_DIR ?? Path.join(benchDir, "twisted")

/**
 * Rate of `work` (which returns the units it did) in units/s: a warm-up, then three time-boxed runs,
 * best of three.
 */
export const measure = (work: () => number, quick: boolean): number => {
  const seconds = quick ? 0.25 : 1
  runFor(work, seconds / 2)
  let best = 0
  for (let run = 0; run < 3; run++) best = Math.max(best, runFor(work, seconds))
  return best
}

const runFor = (work: () => number, seconds: number): number => {
  const start = performance.now()
  const budget = seconds * 1000
  let units = 0
  let elapsed = 0
  do {
    units += work()
    elapsed = performance.now() - start
  } while (elapsed < budget)
  return units / (elapsed / 1000)
}

/** The same as {@link measure} for asynchronous work. */
export const measureAsync = async (work: () => Promise<number>, quick: boolean): Promise<number> => {
  const seconds = quick ? 0.25 : 1
  await runForAsync(work, seconds / 2)
  let best = 0
  for (let run = 0; run < 3; run++) best = Math.max(best, await runForAsync(work, seconds))
  return best
}

const runForAsync = async (work: () => Promise<number>, seconds: number): Promise<number> => {
  const start = performance.now()
  const budget = seconds * 1000
  let units = 0
  let elapsed = 0
  do {
    units += await work()
    elapsed = performance.now() - start
  } while (elapsed < budget)
  return units / (elapsed / 1000)
}

/** Throws if a benchmark's self-check fails, so a broken benchmark never reports a number. */
export const check = (condition: boolean, what: string): void => {
  if (!condition) throw new Error(`benchmark self-check failed: ${what}`)
}

/**
 * Runs a Twisted baseline script (`python bench/twisted/<script> [--quick] [...args]`), which prints one
 * JSON object per line: `{"name", "unit", "value"}`. Returns name → value. When the script is missing,
 * Twisted cannot run, or the script fails, returns an empty map and logs why: the results then carry
 * `twisted: null`.
 */
export const runTwistedScript = async (
  script: string,
  options: GroupOptions,
  args: ReadonlyArray<string> = []
): Promise<Map<string, { unit: string; value: number }>> => {
  const results = new Map<string, { unit: string; value: number }>()
  const file = Path.join(twistedBenchDir, script)
  if (!Fs.existsSync(file)) {
    options.log(`note: ${file} not found: Twisted baselines are null`)
    return results
  }
  const argv = [file, ...(options.quick ? ["--quick"] : []), ...args]
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
    (resolve) => {
      const child = spawn(python, argv, { stdio: ["ignore", "pipe", "pipe"] })
      let out = ""
      let err = ""
      const timer = setTimeout(() => child.kill("SIGKILL"), 600_000)
      child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d))
      child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d))
      child.on("error", (e) => {
        clearTimeout(timer)
        resolve({ code: null, stdout: out, stderr: err + String(e) })
      })
      child.on("close", (c) => {
        clearTimeout(timer)
        resolve({ code: c, stdout: out, stderr: err })
      })
    }
  )
  for (const line of stdout.split("\n")) {
    const text = line.trim()
    if (!text.startsWith("{")) continue
    try {
      const parsed = JSON.parse(text) as { name?: unknown; unit?: unknown; value?: unknown }
      if (typeof parsed.name === "string" && typeof parsed.value === "number" && Number.isFinite(parsed.value)) {
        results.set(parsed.name, { unit: String(parsed.unit ?? ""), value: parsed.value })
      }
    } catch {
      // not a result line
    }
  }
  if (code !== 0) {
    options.log(
      `note: ${python} ${Path.relative(process.cwd(), file)} exited with ${code}` +
        (results.size > 0 ? ` (keeping its ${results.size} results)` : ": Twisted baselines are null") +
        (stderr.trim() ? `\n${stderr.trim().split("\n").slice(-5).join("\n")}` : "")
    )
  } else if (results.size === 0) {
    options.log(`note: ${Path.relative(process.cwd(), file)} printed no results: Twisted baselines are null`)
  }
  return results
}

/** `twisted` value for `name` if the script measured it in the same unit. */
export const baseline = (
  results: ReadonlyMap<string, { unit: string; value: number }>,
  name: string,
  unit: string,
  log: (message: string) => void
): number | null => {
  const found = results.get(name)
  if (found === undefined) return null
  if (found.unit !== unit) {
    log(`note: Twisted reported ${name} in ${found.unit}, expected ${unit}: ignored`)
    return null
  }
  return found.value
}
