/**
 * The README's TypeScript must keep working: every ```ts block is extracted from README.md and
 * type-checked (strict, with the project's options) against this checkout, with the declarations the
 * snippet takes for granted (a `dispatcher`, a `connection`, …) put before it; the first example is also
 * run as a program and its output checked. A new ```ts block fails the test until it is listed below.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const root = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "..")
const tsc = Path.join(root, "node_modules", ".bin", "tsc")
// the pinned Node; `effect-amp` resolves to this checkout's sources with the condition (see package.json)
const node = Path.join(root, "node_modules", ".bin", "node")

const imports = `import { AmpError, Argument, Box, Client, Command, Connection, ConnectionInfo, DateTime, Decimal, Dispatcher, MemorySocket, ProtocolSwitch, Responders, Server, StartTLS } from "effect-amp"
import { Effect, Schema } from "effect"
`
const greetRefused =
  `class GreetRefused extends Schema.TaggedError<GreetRefused>()("GreetRefused", { message: Schema.String }) {}\n`

interface Snippet {
  /** A line that identifies the block in README.md. */
  readonly match: string
  /** What the block takes for granted. */
  readonly prelude: string
  /** Checks after the block (e.g. that a comment's type is the real one). */
  readonly postlude?: string
  /** The block uses `yield*` at its top level: it is checked inside `Effect.gen`. */
  readonly insideGen?: boolean
}

const snippets: ReadonlyArray<Snippet> = [
  // "Twenty lines": a whole program, also run below
  { match: "import { Argument, Client, Command, Responders, Server } from \"effect-amp\"", prelude: "" },
  {
    match: "const reply = dispatcher.callRemote(Greet, { name: \"Ada\" })",
    prelude: imports + greetRefused + "declare const dispatcher: Dispatcher.Dispatcher[\"Service\"]\n",
    // the type the README's comment states
    postlude: "export const stated: Effect.Effect<{ readonly greeting: string }, GreetRefused | Dispatcher.CallError> = reply\n" +
      "export const args: Parameters<typeof dispatcher.callRemote<typeof Greet>>[1] = { name: \"Ada\", \"dashed-name\": 1n }\n"
  },
  {
    match: "Responders.handle(PleaseCallMe, ({ name }) =>",
    prelude: imports + greetRefused +
      "const Greet = Command.make(\"Greet\", { arguments: { name: Argument.Unicode }, response: { greeting: Argument.Unicode }, errors: { GREET_REFUSED: GreetRefused } })\n"
  },
  { match: "const Email = Argument.fromUnicode(", prelude: imports },
  { match: "// TypeScript, effect-amp", prelude: imports },
  {
    match: "yield* connection.startTLS({ ca: caPem, key: clientKeyPem, cert: clientCertPem })",
    prelude: imports +
      "declare const connection: Connection.Connection\n" +
      "declare const caPem: string, clientKeyPem: string, clientCertPem: string, key: string, cert: string, ca: string\n",
    insideGen: true
  },
  {
    match: "const pool = yield* WorkerPool.make({ command: \"python3\", args: [\"pool_worker.py\"], min: 4, callTimeout: \"10 seconds\" })",
    prelude: ""
  },
  {
    match: "ChildProcess.serveParent({ fds: { read: 3, write: 4 } })",
    prelude: "import { ChildProcess, Responders } from \"effect-amp\"\nimport { Effect, Layer } from \"effect\"\n" +
      "declare const Handlers: Layer.Layer<Responders.Responders>\n"
  },
  {
    match: "const serve = WebSocketServer.make({ port: 8080, path: \"/amp\" }).pipe(Effect.provide(Handlers))",
    prelude: "import { Argument, Command, Responders } from \"effect-amp\"\nimport { Layer } from \"effect\"\n" +
      "declare const Handlers: Layer.Layer<Responders.Responders>\n" +
      "const Sum = Command.make(\"Sum\", { arguments: { a: Argument.Integer, b: Argument.Integer }, response: { total: Argument.Integer } })\n"
  },
  {
    match: "const AmpLive = Client.layerReconnecting({",
    prelude: "import { Argument as A, Command as C } from \"effect-amp\"\n" +
      "const Sum = C.make(\"Sum\", { arguments: { a: A.Integer, b: A.Integer }, response: { total: A.Integer } })\n"
  },
  {
    match: "const main = program.pipe(Effect.provide(Observability))",
    prelude: "declare const program: import(\"effect\").Effect.Effect<void>\n"
  },
  {
    match: "const Calculator = RpcGroup.make(",
    prelude: ""
  },
  {
    match: "const conn = yield* Client.connect({ path: \"/run/worker.sock\" })",
    prelude: imports + "import * as Fs from \"node:fs\"\n",
    insideGen: true
  },
  {
    match: "NodeRuntime.runMain(main) // SIGTERM: in-flight answers go out, then the process exits",
    prelude: "import { Layer } from \"effect\"\nimport { Responders, Server } from \"effect-amp\"\n" +
      "declare const Handlers: Layer.Layer<Responders.Responders>\n"
  },
  {
    match: "const SwitchToEcho = ProtocolSwitch.make(\"SwitchToEcho\")",
    prelude: imports + "declare const connection: Connection.Connection\ndeclare const echoProtocol: ProtocolSwitch.InnerProtocol\n",
    insideGen: true
  }
]

const readmeBlocks = (): ReadonlyArray<string> => {
  const readme = Fs.readFileSync(Path.join(root, "README.md"), "utf8")
  return [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!)
}

/** A directory inside the package, so that `import ... from "effect-amp"` resolves to this checkout. */
const withTempDir = <A>(f: (dir: string) => A): A => {
  const dir = Fs.mkdtempSync(Path.join(root, ".tmp-readme-"))
  try {
    return f(dir)
  } finally {
    Fs.rmSync(dir, { recursive: true, force: true })
  }
}

describe("README", () => {
  it("every ```ts block type-checks (strict, exactOptionalPropertyTypes)", () => {
    const blocks = readmeBlocks()
    assert.isAtLeast(blocks.length, snippets.length)
    withTempDir((dir) => {
      const files: Array<string> = []
      blocks.forEach((code, i) => {
        const found = snippets.filter((s) => code.includes(s.match))
        assert.strictEqual(found.length, 1, `README ts block ${i + 1} is not listed in readme.test.ts:\n${code}`)
        const s = found[0]!
        const body = s.insideGen === true ? `export const block = Effect.gen(function*() {\n${code}\n})\n` : code
        const file = `block${i + 1}.ts`
        Fs.writeFileSync(Path.join(dir, file), `${s.prelude}${body}\n${s.postlude ?? ""}export {}\n`)
        files.push(file)
      })
      for (const s of snippets) {
        assert.isTrue(blocks.some((code) => code.includes(s.match)), `no README block contains ${JSON.stringify(s.match)}`)
      }
      Fs.writeFileSync(
        Path.join(dir, "tsconfig.json"),
        JSON.stringify({ extends: "../tsconfig.json", compilerOptions: { noUnusedLocals: false }, files })
      )
      const check = spawnSync(tsc, ["--noEmit", "-p", dir], { encoding: "utf8", timeout: 60_000 })
      assert.strictEqual(check.status, 0, `tsc on the README's blocks:\n${check.stdout}${check.stderr}`)
      assert.strictEqual(check.stdout, "")
    })
  }, 70_000)

  it("the twenty-line example runs and prints what its comment says", () => {
    const code = readmeBlocks().find((b) => b.includes(snippets[0]!.match))
    assert.isDefined(code, "the example is in the README")
    withTempDir((dir) => {
      const file = Path.join(dir, "example.ts")
      Fs.writeFileSync(file, code!)
      const run = spawnSync(node, ["--conditions=effect-amp-source", file], { encoding: "utf8", timeout: 30_000 })
      assert.strictEqual(run.status, 0, run.stderr)
      assert.strictEqual(run.stdout.trim(), "3.5 ZeroDivision division by zero")
    })
  }, 40_000)

  it("tells users how to install it and which Node it needs, before the contributor commands", () => {
    const readme = Fs.readFileSync(Path.join(root, "README.md"), "utf8")
    const install = readme.indexOf("npm install effect-amp effect @effect/platform-node")
    const contributor = readme.indexOf("npm test")
    assert.isAtLeast(install, 0)
    assert.isBelow(install, contributor)
    const { engines } = JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8"))
    assert.include(readme.slice(0, contributor), `Node ${engines.node.replace(">=", "≥ ")}`)
    // no user-facing text points outside the repository
    assert.notInclude(readme, "shared/")
  })
})
