/**
 * `npm run docs`: the HTML API reference in `docs/api/` (TypeDoc), from every public module's doc comments.
 *
 * TypeDoc does not run on TypeScript 7, so it comes from a tool-only install in `docs/tool/` (TypeDoc with
 * TypeScript 5.9, its own lockfile), installed here with `npm ci` when missing or out of date. Any warning
 * (an undocumented export, a broken `{@link}`) fails the build, so CI keeps the docs from rotting.
 */
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const root = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "..")
const tool = Path.join(root, "docs", "tool")

/** The tool install matches its lockfile (npm's own record of what it installed). */
const installed = (): boolean => {
  const lock = JSON.parse(Fs.readFileSync(Path.join(tool, "package-lock.json"), "utf8")).packages
  try {
    const actual = JSON.parse(Fs.readFileSync(Path.join(tool, "node_modules", ".package-lock.json"), "utf8")).packages
    return Object.keys(lock).every((key) => key === "" || actual[key]?.version === lock[key].version)
  } catch {
    return false
  }
}

const started = performance.now()
if (!installed()) {
  console.log("docs: installing TypeDoc into docs/tool (npm ci)")
  const npm = process.platform === "win32" ? "npm.cmd" : "npm"
  const ci = spawnSync(npm, ["ci", "--prefix", tool, "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], {
    stdio: "inherit"
  })
  if (ci.status !== 0) process.exit(ci.status ?? 1)
}
const typedoc = spawnSync(
  process.execPath,
  [Path.join(tool, "node_modules", "typedoc", "bin", "typedoc"), "--options", Path.join(tool, "typedoc.json")],
  { stdio: "inherit", cwd: root }
)
if (typedoc.status !== 0) {
  console.error("docs: TypeDoc failed (warnings count as errors)")
  process.exit(typedoc.status ?? 1)
}
console.log(`docs: docs/api/index.html in ${((performance.now() - started) / 1000).toFixed(1)} s`)
