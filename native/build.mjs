// Builds effect-amp's native part (native/fdpass.c -> native/build/fdpass.node), run by `npm install`.
// Node-API is ABI-stable, so the one build serves every Node version >= 20. Nothing is downloaded: the
// Node-API headers come from the Node installation (or the `node` / `node-api-headers` npm packages, if
// present). This script never fails the install: without a C compiler or headers it prints why and
// effect-amp works without file-descriptor passing (`Argument.Descriptor` then fails with a typed error).
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const root = dirname(here)
const out = join(here, "build", "fdpass.node")
const quiet = process.argv.includes("--quiet")
const say = (text) => {
  if (!quiet) console.log(`effect-amp native: ${text}`)
}

const headerDirs = () => {
  const dirs = []
  const add = (dir) => {
    if (dir && existsSync(join(dir, "node_api.h")) && !dirs.includes(dir)) dirs.push(dir)
  }
  if (process.env.EFFECT_AMP_NODE_HEADERS) add(process.env.EFFECT_AMP_NODE_HEADERS)
  add(join(dirname(dirname(process.execPath)), "include", "node"))
  try {
    add(join(dirname(createRequire(join(root, "package.json")).resolve("node-api-headers/package.json")), "include"))
  } catch {}
  // the `node` npm package (a devDependency here) ships the headers in node-<os>-<arch>
  for (const base of [join(root, "node_modules", "node", "node_modules"), join(root, "..", "node", "node_modules")]) {
    try {
      for (const name of readdirSync(base)) if (name.startsWith("node-")) add(join(base, name, "include", "node"))
    } catch {}
  }
  for (const dir of ["/usr/include/node", "/usr/local/include/node", "/opt/homebrew/include/node"]) add(dir)
  return dirs
}

const build = () => {
  if (process.platform === "win32") return "Windows has no SCM_RIGHTS: file-descriptor passing is unavailable"
  const include = headerDirs()[0]
  if (include === undefined) return "no Node-API headers found (node_api.h); set EFFECT_AMP_NODE_HEADERS to their directory"
  const cc = process.env.CC || "cc"
  mkdirSync(dirname(out), { recursive: true })
  const tmp = `${out}.${process.pid}.tmp`
  const args = ["-shared", "-fPIC", "-O2", "-std=c11", "-Wall", "-I", include, "-o", tmp, join(here, "fdpass.c")]
  if (process.platform === "darwin") args.unshift("-undefined", "dynamic_lookup")
  try {
    execFileSync(cc, args, { stdio: ["ignore", "pipe", "pipe"] })
  } catch (error) {
    rmSync(tmp, { force: true })
    if (error.code === "ENOENT") return `no C compiler (${cc}) on PATH`
    return `the build failed: ${String(error.stderr || error.message).trim()}`
  }
  renameSync(tmp, out)
  return undefined
}

const failure = build()
if (failure === undefined) say(`built ${out}`)
else {
  say(`not built (${failure}).`)
  say("Everything works except file-descriptor passing (Argument.Descriptor). To enable it, install a C compiler and run `npm rebuild effect-amp` (or `node native/build.mjs` in the package).")
}
