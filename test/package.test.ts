/**
 * The package as a user gets it. `npm pack` (which builds `dist/` first) makes the tarball; it is
 * installed into a fresh project under the OS temp directory next to its peers, `effect@4.1.0` and
 * `@effect/platform-node@4.1.0` (npm's cache makes this fast: `--prefer-offline`), and then:
 *
 * - a plain-JavaScript ESM program imports `effect-amp` (and a subpath), serves a command over TCP on
 *   127.0.0.1 and calls it, on the pinned Node 24;
 * - a strict `NodeNext` TypeScript consumer type-checks against the shipped `.d.ts` with the pinned
 *   TypeScript 7 and with TypeScript 5.9 (installed in the consumer project, as a user would have it),
 *   and a consumer with a type error fails (the types are real, not `any`);
 * - every bin of the package runs with `--help` (through npm's link in `node_modules/.bin`);
 * - there is exactly one copy of `effect` in the consumer's tree.
 *
 * Also, without the network: the lockfile's root entry matches package.json (so `npm install` does
 * not rewrite package-lock.json).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll } from "vitest"
import { killRemaining, node, root, run, type RunResult } from "./support/process.ts"

const pkg = JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8"))
const tsc7 = Path.join(root, "node_modules", ".bin", "tsc")
const npm = process.platform === "win32" ? "npm.cmd" : "npm"

/**
 * The environment for npm and the consumer's processes: without the `npm_*` variables of the `npm test`
 * we may run under (they would point npm at this repository), with the pinned Node first on PATH.
 */
const cleanEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.toLowerCase().startsWith("npm_")) env[key] = value
  }
  env.PATH = `${Path.dirname(node)}${Path.delimiter}${process.env.PATH ?? ""}`
  return env
}

const context = (r: RunResult): string => `\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`
const assertOk = (r: RunResult, what: string): void => {
  assert.isFalse(r.timedOut, `${what}: timed out${context(r)}`)
  assert.strictEqual(r.code, 0, `${what}: exit code${context(r)}`)
}

interface Packed {
  readonly filename: string
  readonly size: number
  readonly unpackedSize: number
  readonly entryCount: number
  readonly files: ReadonlyArray<{ readonly path: string }>
}

let tmp: string
let consumer: string
let packed: Packed

beforeAll(async () => {
  tmp = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-amp-package-"))
  consumer = Path.join(tmp, "consumer")
  Fs.mkdirSync(consumer)
  const pack = await run(npm, ["pack", "--json", "--pack-destination", tmp, "--loglevel=error"], {
    env: cleanEnv(),
    timeoutMillis: 120_000
  })
  assertOk(pack, "npm pack")
  // the prepack build may print before the JSON
  packed = JSON.parse(pack.stdout.slice(pack.stdout.indexOf("[")))[0]
  Fs.writeFileSync(
    Path.join(consumer, "package.json"),
    JSON.stringify({ name: "consumer", version: "1.0.0", private: true, type: "module" }, null, 2)
  )
  const install = await run(npm, [
    "install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error",
    Path.join(tmp, packed.filename), "effect@4.1.0", "@effect/platform-node@4.1.0",
    "typescript@5.9.3", `@types/node@${pkg.devDependencies["@types/node"]}`
  ], { cwd: consumer, env: cleanEnv(), timeoutMillis: 240_000 })
  assertOk(install, "npm install in the consumer project")
}, 400_000)

afterAll(() => {
  killRemaining()
  if (tmp !== undefined) Fs.rmSync(tmp, { recursive: true, force: true })
})

describe("the packed package", () => {
  it("ships dist (JS, .d.ts, maps), src for the maps, LICENSE, README, CHANGELOG; no tests or tooling", () => {
    const files = new Set(packed.files.map((f) => f.path))
    for (const file of ["package.json", "LICENSE", "README.md", "CHANGELOG.md", "docs/conformance.md", "dist/index.js",
      "dist/index.d.ts", "dist/index.js.map", "dist/index.d.ts.map", "dist/cli/bin.js", "src/index.ts"]) {
      assert.isTrue(files.has(file), `${file} is in the tarball`)
    }
    for (const file of files) {
      assert.match(file, /^(package\.json|LICENSE|README\.md|CHANGELOG\.md|docs\/conformance\.md|native\/(fdpass\.c|build\.mjs|README\.md)|dist\/.+|src\/.+\.ts)$/, file)
      assert.notMatch(file, /\.tsbuildinfo$|^src\/.*\.js$/, file)
    }
    // every public module is exported, built and typed
    for (const [subpath, target] of Object.entries(pkg.exports as Record<string, unknown>)) {
      if (target === null || typeof target === "string") continue
      const { types, default: js } = target as { types: string; default: string }
      assert.isTrue(files.has(types.slice(2)) && files.has(js.slice(2)), `${subpath}: ${types}, ${js}`)
    }
    console.log(`package: ${packed.filename}, ${packed.size} bytes packed, ${packed.unpackedSize} unpacked, ${packed.entryCount} files`)
  })

  it("installs beside its peers with exactly one copy of effect (npm ls and node_modules agree)", async () => {
    const installed = JSON.parse(Fs.readFileSync(Path.join(consumer, "node_modules", "effect-amp", "package.json"), "utf8"))
    assert.isUndefined(installed.dependencies, "no runtime dependency of our own")
    assert.deepStrictEqual(installed.peerDependencies, { "@effect/platform-node": "^4.1.0", effect: "^4.1.0" })
    const ls = await run(npm, ["ls", "effect", "--all", "--json"], { cwd: consumer, env: cleanEnv() })
    assertOk(ls, "npm ls effect")
    const versions = new Set<string>()
    const walk = (deps: Record<string, { version?: string; dependencies?: object }> | undefined): void => {
      for (const [name, dep] of Object.entries(deps ?? {})) {
        if (name === "effect") versions.add(dep.version ?? "?")
        walk(dep.dependencies as typeof deps)
      }
    }
    walk(JSON.parse(ls.stdout).dependencies)
    assert.deepStrictEqual([...versions], ["4.1.0"])
    // ... and on disk: one node_modules/effect in the whole tree
    const copies: Array<string> = []
    const scan = (dir: string, depth: number): void => {
      if (depth > 8 || !Fs.existsSync(dir)) return
      for (const entry of Fs.readdirSync(dir, { withFileTypes: true })) {
        if (!entry.isDirectory()) continue
        const full = Path.join(dir, entry.name)
        if (entry.name === "effect") copies.push(full)
        if (entry.name.startsWith("@")) scan(full, depth + 1)
        else scan(Path.join(full, "node_modules"), depth + 1)
      }
    }
    scan(Path.join(consumer, "node_modules"), 0)
    assert.deepStrictEqual(copies, [Path.join(consumer, "node_modules", "effect")])
  })

  it("a plain-JavaScript ESM program serves and calls a command over TCP (Node 24)", async () => {
    Fs.writeFileSync(Path.join(consumer, "main.mjs"), `
import { Argument, Client, Command, Responders, Server } from "effect-amp"
import * as Box from "effect-amp/Box"
import { Effect, Schema } from "effect"

class Negative extends Schema.TaggedError()("Negative", { message: Schema.String }) {}
const Sum = Command.make("Sum", {
  arguments: { a: Argument.Integer, b: Argument.Integer },
  response: { total: Argument.Integer },
  errors: { NEGATIVE: Negative }
})
const Handlers = Responders.layer(
  Responders.handle(Sum, ({ a, b }) =>
    a < 0n ? Effect.fail(new Negative({ message: "no negatives" })) : Effect.succeed({ total: a + b }))
)
const program = Effect.gen(function*() {
  const server = yield* Server.make({ host: "127.0.0.1", port: 0 }).pipe(Effect.provide(Handlers))
  const port = server.address._tag === "Tcp" ? server.address.port : 0
  const client = yield* Client.connect({ host: "127.0.0.1", port }).pipe(Effect.provide(Responders.empty))
  const { total } = yield* client.dispatcher.callRemote(Sum, { a: 13n, b: 81n })
  const error = yield* Effect.flip(client.dispatcher.callRemote(Sum, { a: -1n, b: 0n }))
  console.log("total", String(total))
  console.log("error", error._tag, error.message)
  console.log("box bytes", Box.encodeUnsafe(Box.make({ a: "1" })).length)
}).pipe(Effect.scoped)
await Effect.runPromise(program)
console.log("node", process.version)
`)
    const r = await run(node, ["main.mjs"], { cwd: consumer, env: cleanEnv(), timeoutMillis: 30_000 })
    assertOk(r, "node main.mjs")
    assert.strictEqual(
      r.stdout,
      `total 94\nerror Negative no negatives\nbox bytes 8\nnode v${pkg.devDependencies.node}\n`,
      context(r)
    )
  })

  it("a strict NodeNext TypeScript consumer type-checks against the shipped .d.ts with TypeScript 7 and 5.9", async () => {
    Fs.writeFileSync(Path.join(consumer, "consumer.ts"), `
import { Argument, Client, Command, Dispatcher, Responders, Server } from "effect-amp"
import * as Connection from "effect-amp/Connection"
import { Effect, Schema } from "effect"

class ZeroDivision extends Schema.TaggedError<ZeroDivision>()("ZeroDivision", { message: Schema.String }) {}
export const Divide = Command.make("Divide", {
  arguments: { numerator: Argument.Integer, denominator: Argument.optional(Argument.Integer) },
  response: { result: Argument.Float },
  errors: { ZERO_DIVISION: ZeroDivision }
})
const Handlers = Responders.layer(
  Responders.handle(Divide, ({ numerator, denominator = 1n }) =>
    denominator === 0n
      ? Effect.fail(new ZeroDivision({ message: "division by zero" }))
      : Effect.succeed({ result: Number(numerator) / Number(denominator) }))
)
export const program: Effect.Effect<number, ZeroDivision | Dispatcher.CallError | Server.ServeError | Client.ConnectError> =
  Effect.gen(function*() {
    const server = yield* Server.make({ port: 0 }).pipe(Effect.provide(Handlers))
    const port = server.address._tag === "Tcp" ? server.address.port : 0
    const client: Connection.Connection = yield* Client.connect({ port }).pipe(Effect.provide(Responders.empty))
    const { result } = yield* client.dispatcher.callRemote(Divide, { numerator: 7n })
    return result
  }).pipe(Effect.scoped)
`)
    // the same call with a wrong argument type: must not compile
    Fs.writeFileSync(Path.join(consumer, "wrong.ts"), `
import { Argument, Command, Dispatcher } from "effect-amp"
import { Effect } from "effect"
const Sum = Command.make("Sum", { arguments: { a: Argument.Integer }, response: { total: Argument.Integer } })
export const call = Effect.gen(function*() {
  const { total } = yield* Dispatcher.callRemote(Sum, { a: "1" })
  const text: string = total
  return text
})
`)
    const options = {
      strict: true,
      exactOptionalPropertyTypes: true,
      noUncheckedIndexedAccess: true,
      module: "NodeNext",
      moduleResolution: "NodeNext",
      target: "ES2022",
      // Effect's own declarations use Web Crypto types (CryptoKey), which are in lib "DOM"
      lib: ["ES2022", "DOM"],
      types: ["node"],
      skipLibCheck: false,
      noEmit: true
    }
    Fs.writeFileSync(Path.join(consumer, "tsconfig.json"), JSON.stringify({ compilerOptions: options, files: ["consumer.ts"] }))
    Fs.writeFileSync(Path.join(consumer, "tsconfig.wrong.json"), JSON.stringify({ compilerOptions: options, files: ["wrong.ts"] }))
    const tsc59 = Path.join(consumer, "node_modules", ".bin", "tsc")
    for (const [compiler, version] of [[tsc7, pkg.devDependencies.typescript], [tsc59, "5.9.3"]] as const) {
      const v = await run(compiler, ["--version"], { cwd: consumer, env: cleanEnv() })
      assert.strictEqual(v.stdout.trim(), `Version ${version}`)
      // one full check (skipLibCheck off: our .d.ts are checked too; TypeScript 5.9 takes ~16 s of CPU here)
      const good = await run(compiler, ["-p", "tsconfig.json", "--listFiles"], { cwd: consumer, env: cleanEnv(), timeoutMillis: 300_000 })
      assertOk(good, `TypeScript ${version} on consumer.ts`)
      const lines = good.stdout.split("\n").filter((line) => line.length > 0)
      assert.deepStrictEqual(lines.filter((line) => /error TS\d+/.test(line)), [], `TypeScript ${version}`)
      // resolved through exports to the shipped declarations, never to the .ts sources
      const ours = lines.filter((f) => f.includes("node_modules/effect-amp/"))
      assert.include(ours.join("\n"), "node_modules/effect-amp/dist/index.d.ts")
      assert.include(ours.join("\n"), "node_modules/effect-amp/dist/Connection.d.ts")
      assert.deepStrictEqual(ours.filter((f) => !f.endsWith(".d.ts")), [], `TypeScript ${version}`)
      // the types are real: a wrong call is rejected (only wrong.ts matters here, so skipLibCheck)
      const wrong = await run(compiler, ["-p", "tsconfig.wrong.json", "--skipLibCheck"], { cwd: consumer, env: cleanEnv(), timeoutMillis: 300_000 })
      assert.isFalse(wrong.timedOut)
      assert.notStrictEqual(wrong.code, 0, `TypeScript ${version} must reject wrong.ts${context(wrong)}`)
      assert.match(wrong.stdout, /wrong\.ts\(6,\d+\): error TS2322: Type 'string' is not assignable to type 'bigint'/, version)
      assert.match(wrong.stdout, /wrong\.ts\(7,\d+\): error TS2322: Type 'bigint' is not assignable to type 'string'/, version)
    }
  }, 900_000)

  it("every bin runs with --help (and --version) through npm's link", async () => {
    const installed = JSON.parse(Fs.readFileSync(Path.join(consumer, "node_modules", "effect-amp", "package.json"), "utf8"))
    const bins = Object.keys(installed.bin)
    assert.deepStrictEqual(bins, ["effect-amp"])
    for (const bin of bins) {
      const link = Path.join(consumer, "node_modules", ".bin", bin)
      const [help, version] = await Promise.all([
        run(link, ["--help"], { cwd: consumer, env: cleanEnv(), timeoutMillis: 30_000 }),
        run(link, ["--version"], { cwd: consumer, env: cleanEnv(), timeoutMillis: 30_000 })
      ])
      assertOk(help, `${bin} --help`)
      assert.include(help.stdout, `${bin} call`)
      assert.include(help.stdout, "USAGE")
      assertOk(version, `${bin} --version`)
      assert.strictEqual(version.stdout.trim(), `${bin} v${pkg.version}`)
    }
  })
})

describe("package-lock.json", () => {
  it("its root entry matches package.json, so npm install leaves it as committed", () => {
    const lock = JSON.parse(Fs.readFileSync(Path.join(root, "package-lock.json"), "utf8"))
    const entry = lock.packages[""]
    assert.strictEqual(lock.name, pkg.name)
    assert.strictEqual(entry.version, pkg.version)
    for (const field of ["license", "engines", "dependencies", "devDependencies", "peerDependencies"]) {
      assert.deepStrictEqual(entry[field], pkg[field], field)
    }
    // npm records bin paths without their leading ./
    const bin = Object.fromEntries(Object.entries(pkg.bin as Record<string, string>).map(([k, v]) => [k, v.replace(/^\.\//, "")]))
    assert.deepStrictEqual(entry.bin, bin)
    // the exact pins stay with our own tests
    assert.strictEqual(pkg.devDependencies.effect, "4.1.0")
    assert.strictEqual(pkg.devDependencies["@effect/platform-node"], "4.1.0")
  })
})
