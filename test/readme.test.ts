/**
 * The README's first example must keep working: it is extracted from README.md, run as a program, and
 * its output checked.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const root = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "..")

describe("README", () => {
  it("the twenty-line example runs and prints what its comment says", () => {
    const readme = Fs.readFileSync(Path.join(root, "README.md"), "utf8")
    const start = readme.indexOf("```ts\nimport { Argument, Client, Command, Responders, Server }")
    assert.isAtLeast(start, 0, "the example is in the README")
    const code = readme.slice(start + "```ts\n".length, readme.indexOf("```", start + 5))
    // inside the package, so that `import ... from "effect-amp"` resolves to this checkout
    const dir = Fs.mkdtempSync(Path.join(root, ".tmp-readme-"))
    try {
      const file = Path.join(dir, "example.ts")
      Fs.writeFileSync(file, code)
      const run = spawnSync(process.execPath, [file], { encoding: "utf8", timeout: 30_000 })
      assert.strictEqual(run.status, 0, run.stderr)
      assert.strictEqual(run.stdout.trim(), "3.5 ZeroDivision division by zero")
    } finally {
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 40_000)
})
