/**
 * Summarizes a V8 CPU profile (`node --cpu-prof`) by layer, to see where a call's time goes:
 *
 *   node bench/profile-summary.ts <file.cpuprofile> [--calls N] [--top 25] [--last S]
 *
 * Self time is grouped into layers by the script a function comes from: our code (src/, by file),
 * Effect (node_modules/effect), @effect/platform-node, Node's own JavaScript (node:net, streams, ...),
 * native code called from JavaScript (no script: socket writes, TextDecoder, ...), the garbage
 * collector, "(program)" (V8 and libuv outside JavaScript: the event loop, syscalls, compilation) and
 * idle time. With `--calls N` (calls completed during the profile) each layer is also given in µs per
 * call. Then the top functions by self time. `--last S` keeps only the last S seconds of the profile
 * (the timed window, leaving out start-up: module loading and compilation).
 */
import * as Fs from "node:fs"

interface Node {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly hitCount?: number
}
interface Profile {
  readonly nodes: ReadonlyArray<Node>
  readonly startTime: number
  readonly endTime: number
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const args = process.argv.slice(2)
const file = args.find((a) => !a.startsWith("--"))
if (file === undefined) {
  process.stderr.write("usage: node bench/profile-summary.ts <file.cpuprofile> [--calls N] [--top 25]\n")
  process.exit(2)
}
const flag = (name: string): number | undefined => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? Number(args[i + 1]) : undefined
}
const calls = flag("calls")
const top = flag("top") ?? 25
const last = flag("last")

const profile = JSON.parse(Fs.readFileSync(file, "utf8")) as Profile
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const selfMicros = new Map<number, number>()
const from = last === undefined ? -Infinity : profile.endTime - last * 1e6
let at = profile.startTime
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]!
  at += profile.timeDeltas[i] ?? 0
  if (at < from) continue
  selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
}

const layerOf = (node: Node): string => {
  const { functionName, url } = node.callFrame
  if (url === "") {
    if (functionName === "(garbage collector)") return "GC"
    if (functionName === "(idle)") return "idle"
    if (functionName === "(program)") return "(program): V8/libuv outside JS"
    if (functionName === "(root)") return "(program): V8/libuv outside JS"
    return "native (called from JS)"
  }
  if (url.includes("/node_modules/effect/")) return "Effect"
  if (url.includes("/node_modules/@effect/platform-node")) return "@effect/platform-node"
  if (url.includes("/node_modules/")) return "other packages"
  if (url.startsWith("node:")) return "Node JS (net, streams, timers)"
  const src = /\/src\/(.*)$/.exec(url)
  if (src) return `ours: src/${src[1]}`
  const bench = /\/bench\/(.*)$/.exec(url)
  if (bench) return `bench/${bench[1]}`
  return url
}

const layers = new Map<string, number>()
const functions = new Map<string, number>()
let total = 0
for (const [id, micros] of selfMicros) {
  const node = byId.get(id)!
  const layer = layerOf(node)
  layers.set(layer, (layers.get(layer) ?? 0) + micros)
  const { functionName, lineNumber, url } = node.callFrame
  const where = url === "" ? "" : ` ${url.replace(/^.*\/(node_modules\/|src\/|bench\/)/, "$1")}:${lineNumber + 1}`
  const key = `${functionName || "(anonymous)"}${where}`
  functions.set(key, (functions.get(key) ?? 0) + micros)
  total += micros
}
const busy = total - (layers.get("idle") ?? 0)
const pct = (x: number, of: number) => `${((100 * x) / of).toFixed(1)}%`.padStart(6)
const perCall = (x: number) => (calls === undefined ? "" : `  ${(x / calls).toFixed(2).padStart(7)} µs/call`)

process.stdout.write(
  `${file}\n${(total / 1e6).toFixed(2)} s profiled, ${(busy / 1e6).toFixed(2)} s busy` +
    (calls === undefined ? "" : `, ${calls} calls: ${(busy / calls).toFixed(2)} µs busy per call`) + "\n\n"
)
process.stdout.write("layer (self time; % of busy time)\n")
for (const [layer, micros] of [...layers].sort((a, b) => b[1] - a[1])) {
  if (layer === "idle") continue
  process.stdout.write(`  ${pct(micros, busy)}  ${layer}${perCall(micros)}\n`)
}
process.stdout.write(`  idle: ${pct(layers.get("idle") ?? 0, total)} of the profile\n\ntop functions by self time\n`)
for (const [name, micros] of [...functions].filter(([n]) => n !== "(idle)").sort((a, b) => b[1] - a[1]).slice(0, top)) {
  process.stdout.write(`  ${pct(micros, busy)}  ${name}\n`)
}
