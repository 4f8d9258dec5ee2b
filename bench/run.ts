/**
 * The benchmark harness.
 *
 *   npm run bench                                  human table (stdout), progress on stderr
 *   npm run --silent bench -- --json [--quick]     one JSON object per line on stdout, nothing else:
 *                                                  {"name", "unit", "value", "twisted", "plainNode"}
 *   npm run bench -- --only codec.parse            only the benchmarks whose name starts with a prefix
 *                                                  (repeatable, or comma-separated)
 *
 * `value` is ours (effect-amp); `twisted` is the same benchmark on Twisted, measured in the same run by
 * a script in bench/twisted/; `plainNode` is a hand-written plain-Node implementation in bench/plain/.
 * A baseline that is not measured (script missing, Twisted not installed) is `null`, with a note on
 * stderr.
 *
 * Groups run one after another, never concurrently (the machine has 2 cores). To add a group, write a
 * module exporting a {@link Group} (see bench/codec.ts) and list it in `groups` below.
 */
import { codec } from "./codec.ts"
import { rpc } from "./rpc.ts"
import type { Group, GroupOptions, Result } from "./support.ts"

/** Every benchmark group, in run order. */
const groups: ReadonlyArray<Group> = [
  codec,
  rpc
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
const formatRatio = (ours: number, other: number | null): string =>
  other === null || other === 0 ? "—" : `${(ours / other).toFixed(ours / other >= 10 ? 1 : 2)}×`

const table = (results: ReadonlyArray<Result>, targets: ReadonlyMap<string, Group["targets"]>): string => {
  const header = ["benchmark", "unit", "effect-amp", "twisted", "ours/twisted", "plain node", "ours/plain", "target"]
  const rows = results.map((r) => {
    const target = targets.get(r.name)?.[r.name]
    const goals: Array<string> = []
    if (target?.vsTwisted !== undefined) {
      const ok = r.twisted === null ? "?" : r.value >= target.vsTwisted * r.twisted ? "ok" : "MISSED"
      goals.push(`≥${target.vsTwisted}× twisted ${ok}`)
    }
    if (target?.vsPlainNode !== undefined) {
      const ok = r.plainNode === null ? "?" : r.value >= target.vsPlainNode * r.plainNode ? "ok" : "MISSED"
      goals.push(`≥${target.vsPlainNode}× plain ${ok}`)
    }
    return [
      r.name,
      r.unit,
      formatNumber(r.value),
      formatNumber(r.twisted),
      formatRatio(r.value, r.twisted),
      formatNumber(r.plainNode),
      formatRatio(r.value, r.plainNode),
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
        const { name, plainNode, twisted, unit, value } = result
        process.stdout.write(JSON.stringify({ name, unit, value, twisted, plainNode }) + "\n")
      }
    }
  }
  if (results.length === 0) log(`no benchmark matches --only ${args.only.join(",")}`)
  if (!args.json) {
    process.stdout.write(
      `effect-amp benchmarks (${args.quick ? "quick" : "full"}; Node ${process.version}; best of 3 time-boxed runs)\n\n`
    )
    process.stdout.write(table(results, targets) + "\n")
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`[bench] failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  process.exitCode = 1
})
