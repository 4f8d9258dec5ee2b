/**
 * Access to a real Twisted for interop tests. Twisted comes from Debian (`python3-twisted`), run with
 * `/usr/bin/python3`. Without it the interop suites are skipped with a message saying how to install it;
 * under CI (`CI=true`) a missing Twisted is a test failure, so CI never skips them silently.
 */
import { spawnSync } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, it } from "vitest"

/** The Python that has Debian's Twisted. */
export const python = process.env.AMP_TEST_PYTHON ?? "/usr/bin/python3"

/** Folder of the project's Python scripts (the Twisted peer, vector generators). */
export const twistedDir = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "..", "twisted")

const probe = spawnSync(python, ["-c", "import twisted, sys; sys.stdout.write(twisted.__version__)"], {
  encoding: "utf8"
})

/** Twisted's version, or undefined when it cannot be imported. */
export const twistedVersion: string | undefined = probe.status === 0 ? probe.stdout.trim() : undefined

const installHint =
  `Twisted is not importable by ${python}. Install it with: ` +
  "sudo apt-get install python3-twisted python3-openssl python3-service-identity"

/**
 * `describe` for suites that need Twisted: runs them when Twisted is there; otherwise skips them with a
 * printed reason, except under CI where the suite fails.
 */
export const describeTwisted = (name: string, body: () => void): void => {
  if (twistedVersion !== undefined) {
    describe(name, body)
  } else if (process.env.CI === "true") {
    describe(name, () => {
      it("needs Twisted (CI=true forbids skipping)", () => {
        throw new Error(installHint)
      })
    })
  } else {
    console.warn(`[effect-amp] skipping "${name}": ${installHint}`)
    describe.skip(name, body)
  }
}

/**
 * Runs a Python snippet or script file with Twisted's Python and returns its stdout as bytes.
 * Throws with stderr if it exits non-zero.
 */
export const runPython = (args: ReadonlyArray<string>, input?: string | Uint8Array): Buffer => {
  const result = spawnSync(python, args, { input, maxBuffer: 256 * 1024 * 1024, timeout: 120_000 })
  if (result.status !== 0) {
    throw new Error(`python ${args.join(" ").slice(0, 200)} failed (${result.status}): ${result.stderr}`)
  }
  return result.stdout
}
