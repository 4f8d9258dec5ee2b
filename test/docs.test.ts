/**
 * The API reference builds (`npm run docs`: TypeDoc from its tool-only install in docs/tool/, any warning
 * fails it) and has a page for every public module and every export of it, each with its doc comment.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { node, root, run } from "./support/process.ts"

const pkg = JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8"))
const api = Path.join(root, "docs", "api")

/** The public modules: package.json's export subpaths (`./Box` → `Box`). */
const modules = Object.entries(pkg.exports as Record<string, unknown>)
  .filter(([subpath, target]) => target !== null && typeof target === "object" && subpath !== ".")
  .map(([subpath]) => subpath.slice(2))

/** The names a module exports, from its source, except those its doc comment marks `@internal`. */
const exportsOf = (module: string): ReadonlyArray<string> => {
  const source = Fs.readFileSync(Path.join(root, "src", `${module}.ts`), "utf8")
  const names = [...source.matchAll(/^export (?:declare )?(?:const|function|class|interface|type|enum) ([A-Za-z_$][\w$]*)/gm)]
    .filter((m) => {
      const before = source.slice(0, m.index)
      const comment = /\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*$/.exec(before)
      return comment === null || !comment[1]!.includes("@internal")
    })
    .map((m) => m[1]!)
  return [...new Set(names)]
}

describe("API reference", () => {
  it("npm run docs builds it without a warning; every export has a page with its doc comment", async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${Path.dirname(node)}${Path.delimiter}${process.env.PATH ?? ""}` }
    const r = await run(node, [Path.join(root, "scripts", "docs.ts")], { env, timeoutMillis: 420_000 })
    const output = `\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`
    assert.isFalse(r.timedOut, `timed out${output}`)
    assert.strictEqual(r.code, 0, output)
    assert.notInclude(r.stdout + r.stderr, "[warning]", output)
    assert.match(r.stdout, /docs: docs\/api\/index\.html in [\d.]+ s/)
    console.log(r.stdout.trim().split("\n").at(-1))

    // every module of the barrel (src/index.ts) has a subpath export and so a page
    const barrel = [...Fs.readFileSync(Path.join(root, "src", "index.ts"), "utf8").matchAll(/^export \* as (\w+) from/gm)].map((m) => m[1]!)
    assert.deepStrictEqual([...modules].filter((m) => m !== "internal/*").sort(), [...barrel].sort())
    const pages = new Map<string, string>()
    for (const dir of Fs.readdirSync(api, { withFileTypes: true })) {
      if (!dir.isDirectory() || dir.name === "assets") continue
      for (const file of Fs.readdirSync(Path.join(api, dir.name))) pages.set(`${dir.name}/${file}`, file)
    }
    let checked = 0
    for (const module of modules) {
      const page = Fs.readFileSync(Path.join(api, "modules", `${module}.html`), "utf8")
      // the module's own comment (its file's first doc comment)
      assert.include(page, "tsd-comment", `${module}: module comment`)
      for (const name of exportsOf(module)) {
        const found = [...pages.keys()].filter((key) => key.endsWith(`/${module}.${name}.html`))
        assert.isAtLeast(found.length, 1, `${module}.${name} has a page`)
        for (const key of found) {
          const html = Fs.readFileSync(Path.join(api, key), "utf8")
          assert.include(html, "tsd-comment", `${key} shows a doc comment`)
        }
        checked++
      }
    }
    assert.isAtLeast(checked, 100)
  }, 450_000)
})
