/**
 * The benchmark harness.
 *
 *   npm run bench                                  human table (stdout), progress on stderr
 *   npm run --silent bench -- --json [--quick]     one JSON object per line on stdout, nothing else:
 *                                                  {"name", "unit", "value", "twisted", "plainNode",
 *                                                   "rounds", "lowerIsBetter", "spread", "ratio"}
 *   npm run bench -- --only codec.parse            only the benchmarks whose name starts with a prefix
 *                                                  (repeatable, or comma-separated)
 *
 * `value` is ours (effect-amp); `twisted` is the same benchmark on Twisted, measured in the same run by
 * a script in bench/twisted/; `plainNode` is a hand-written plain-Node implementation in bench/plain/.
 * Each benchmark runs in interleaved rounds (ours, Twisted, plain Node, ours, ...) after a warm-up;
 * `value`/`twisted`/`plainNode` are the best round of each, `spread` gives each one's median, min and
 * max over the rounds, and `ratio` summarizes ours ÷ theirs computed round by round (the targets are
 * checked on its median). `--quick` takes fewer rounds of the same length and the same warm-up, so it
 * shows the same picture with a wider uncertainty.
 * A baseline that is not measured (script missing, Twisted not installed) is `null`, with a note on
 * stderr.
 *
 * Groups run one after another, never concurrently (the machine has 2 cores). To add a group, write a
 * module exporting a {@link Group} (see bench/codec.ts) and list it in `groups` below.
 */
import { codec } from "./codec.ts"
import { memory } from "./memory.ts"
import { rpc } from "./rpc.ts"
import { type Group, type GroupOptions, jsonOf, type Result, type Spread } from "./support.ts"

/** Every benchmark group, in run order. */
const groups: ReadonlyArray<Group> = [
  codec,
  rpc,
  memory
]

interface Args {
  readonly json: boolean
  readonly quick: boolean
  readonly only: ReadonlyArray<string>
}

const usage = "usage: node bench/run.ts [--json] [--quick] [--only <prefix>[,<prefix>...]]..."

const parseArgs = (argv: ReadonlyArray<string>): Args => {
  let json = false
  let quick = false
  const only: Array<string> = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--json") json = true
    else if (arg === "--quick") quick = true
    else if (arg === "--only" || arg.startsWith("--only=")) {
      const value = arg === "--only" ? argv[++i] : arg.slice("--only=".length)
      if (value === undefined || value === "") throw new Error(`--only needs a prefix\n${usage}`)
      only.push(...value.split(",").filter((p) => p !== ""))
    } else if (arg === "--help" || arg === "-h") {
      process.stderr.write(usage + "\n")
      process.exit(0)
    } else throw new Error(`unknown argument ${JSON.stringify(arg)}\n${usage}`)
  }
  return { json, quick, only }
}

const formatNumber = (n: number | null): string => {
  if (n === null) return "—"
  if (n >= 100) return Math.round(n).toLocaleString("en-US")
  return n.toPrecision(3)
}
const short = (n: number): string => {
  if (n >= 1e6) return `${(n / 1e6).toPrecision(3)}M`
  if (n >= 1e4) return `${(n / 1e3).toPrecision(3)}k`
  return formatNumber(n)
}
/** "best (min–max)" of one contender. */
const formatValue = (best: number | null, spread: Spread | null): string =>
  best === null || spread === null ? "—" : spread.samples.length < 2
  ? formatNumber(best)
  : `${formatNumber(best)} (${short(spread.min)}–${short(spread.max)})`
const ratioText = (x: number): string => `${x.toFixed(x >= 10 ? 1 : 2)}×`
/** "median (min–max)" of the per-round ratios. */
const formatRatio = (ratio: Spread | null): string =>
  ratio === null ? "—" : ratio.samples.length < 2
  ? ratioText(ratio.median)
  : `${ratioText(ratio.median)} (${ratio.min.toFixed(2)}–${ratio.max.toFixed(2)})`

const table = (results: ReadonlyArray<Result>, targets: ReadonlyMap<string, Group["targets"]>): string => {
  const header = [
    "benchmark",
    "unit",
    "effect-amp best (min–max)",
    "twisted best (min–max)",
    "ours/twisted median (min–max)",
    "plain node best (min–max)",
    "ours/plain median (min–max)",
    "target (on the median ratio)"
  ]
  const rows = results.map((r) => {
    const target = targets.get(r.name)?.[r.name]
    const goals: Array<string> = []
    const meets = (ratio: Spread | null, factor: number) =>
      ratio === null ? "?" : (r.lowerIsBetter ? ratio.median <= factor : ratio.median >= factor) ? "ok" : "MISSED"
    const sign = r.lowerIsBetter ? "≤" : "≥"
    if (target?.vsTwisted !== undefined) goals.push(`${sign}${target.vsTwisted}× twisted ${meets(r.ratio.vsTwisted, target.vsTwisted)}`)
    if (target?.vsPlainNode !== undefined) {
      goals.push(`${sign}${target.vsPlainNode}× plain ${meets(r.ratio.vsPlainNode, target.vsPlainNode)}`)
    }
    return [
      r.name,
      r.unit + (r.lowerIsBetter ? " ↓" : ""),
      formatValue(r.value, r.spread.value),
      formatValue(r.twisted, r.spread.twisted),
      formatRatio(r.ratio.vsTwisted),
      formatValue(r.plainNode, r.spread.plainNode),
      formatRatio(r.ratio.vsPlainNode),
      goals.join(", ")
    ]
  })
  const all = [header, ...rows]
  const widths = header.map((_, c) => Math.max(...all.map((row) => row[c]!.length)))
  const line = (row: ReadonlyArray<string>) =>
    row.map((cell, c) => (c < 2 || c === row.length - 1 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)))
      .join("  ").trimEnd()
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n")
}

const main = async (): Promise<void> => {
  const args = parseArgs(process.argv.slice(2))
  const started = new Date()
  const log = (message: string) => void process.stderr.write(`[bench] ${message}\n`)
  const options: GroupOptions = {
    quick: args.quick,
    selected: (name) => args.only.length === 0 || args.only.some((prefix) => name.startsWith(prefix)),
    log
  }
  const results: Array<Result> = []
  const targets = new Map<string, Group["targets"]>()
  for (const group of groups) {
    const groupResults = await group.run(options)
    for (const result of groupResults) {
      targets.set(result.name, group.targets)
      results.push(result)
      if (args.json) {
        process.stdout.write(JSON.stringify(jsonOf(result)) + "\n")
      }
    }
  }
  if (results.length === 0) log(`no benchmark matches --only ${args.only.join(",")}`)
  if (!args.json) {
    process.stdout.write(
      `effect-amp benchmarks (${args.quick ? "quick" : "full"}; Node ${process.version}; ${started.toISOString()}; ` +
        `interleaved rounds: best of each, its min–max, and the median of the per-round ratios; ↓ = lower is better)\n\n`
    )
    process.stdout.write(table(results, targets) + "\n")
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`[bench] failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  process.exitCode = 1
})
