/**
 * `npm run example -- <name> [args...]`: runs `examples/<name>.ts` (the `.ts` may be omitted) on the
 * pinned Node, with `effect-amp` resolved to this checkout's sources. Without a name, lists the examples.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const dir = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "..", "examples")
// calculator-protocol.ts is a module shared by the calculator examples, not a program
const names = Fs.readdirSync(dir)
  .filter((f) => f.endsWith(".ts") && f !== "calculator-protocol.ts")
  .map((f) => f.slice(0, -3))
  .sort()

const [name, ...rest] = process.argv.slice(2)
const wanted = name?.replace(/^examples\//, "").replace(/\.ts$/, "")
if (wanted === undefined || !names.includes(wanted)) {
  if (wanted !== undefined) process.stderr.write(`unknown example: ${name}\n`)
  process.stderr.write(`usage: npm run example -- <name> [args...]\nexamples: ${names.join(", ")}\n`)
  process.exit(wanted === undefined ? 0 : 64)
}
const file = Path.join(dir, `${wanted}.ts`)
// the example sees its own arguments, as if run as `node examples/<name>.ts args...`
process.argv = [process.argv[0]!, file, ...rest]
await import(pathToFileURL(file).href)
