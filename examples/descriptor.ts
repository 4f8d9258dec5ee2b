/**
 * Passing a file descriptor over AMP (`Argument.Descriptor`, Twisted's `Descriptor`): a parent process
 * opens a log file and hands its descriptor to a worker process over a Unix-domain socket; the worker
 * writes into it (it never learns the file's name) and closes its copy. The parent then reads the log.
 *
 *     node examples/descriptor.ts
 *
 * The worker is this same file started with `--worker <socket path>`. Needs effect-amp's native part,
 * which `npm install` builds with the machine's C compiler.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect } from "effect"
import { Argument, Client, Command, Descriptor, Responders, Server } from "effect-amp"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

/** parent → worker: "write these lines into this log" */
const WriteLog = Command.make("WriteLog", {
  arguments: { log: Argument.Descriptor, lines: Argument.ListOf(Argument.Unicode) },
  response: { bytes: Argument.SafeInteger }
})

// --- the worker: serves WriteLog on a Unix socket ------------------------------------------------------

const worker = (path: string) =>
  Effect.gen(function*() {
    yield* Server.make({ path }).pipe(
      Effect.provide(Responders.layer(
        Responders.handle(WriteLog, ({ lines, log }) =>
          Effect.sync(() => {
            // the received descriptor is ours: write, then close it
            const text = lines.map((line) => `[worker] ${line}\n`).join("")
            try {
              return { bytes: Fs.writeSync(log, text) }
            } finally {
              Fs.closeSync(log)
            }
          }))
      ))
    )
    yield* Effect.sync(() => process.stdout.write("LISTENING\n"))
    return yield* Effect.never
  }).pipe(Effect.scoped)

// --- the parent: opens the log, starts the worker, hands it the descriptor -----------------------------

/** Starts the worker and waits for its LISTENING line; the worker is stopped when the scope closes. */
const startWorker = (path: string) =>
  Effect.acquireRelease(
    Effect.callback<ReturnType<typeof spawn>, Error>((resume) => {
      const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, "--worker", path], { stdio: ["ignore", "pipe", "inherit"] })
      child.stdout!.on("data", (data: Buffer) => {
        if (data.toString().includes("LISTENING")) resume(Effect.succeed(child))
      })
      child.once("exit", (code) => resume(Effect.fail(new Error(`the worker exited (${code})`))))
    }),
    (child) => Effect.sync(() => child.kill())
  )

const parent = Effect.gen(function*() {
  if (!Descriptor.isAvailable()) return yield* Console.log(`cannot pass descriptors here: ${Descriptor.unavailableReason()}`)
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "amp-descriptor-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
  const logPath = Path.join(dir, "app.log")
  const log = Fs.openSync(logPath, "a")
  Fs.writeSync(log, "[parent] log opened\n")

  const socketPath = Path.join(dir, "worker.sock")
  yield* startWorker(socketPath)
  const connection = yield* Client.connect({ path: socketPath }).pipe(Effect.provide(Responders.empty))
  const { bytes } = yield* connection.dispatcher.callRemote(WriteLog, { log, lines: ["hello from the worker", "it wrote through our descriptor"] })
  yield* Console.log(`the worker wrote ${bytes} bytes into the log`)

  Fs.writeSync(log, "[parent] done\n") // a duplicate was sent: our descriptor is still ours
  Fs.closeSync(log)
  const lines = Fs.readFileSync(logPath, "utf8").trimEnd().split("\n")
  yield* Console.log("app.log:")
  for (const line of lines) yield* Console.log(`  ${line}`)
}).pipe(Effect.scoped)

const at = process.argv.indexOf("--worker")
NodeRuntime.runMain(at >= 0 ? worker(process.argv[at + 1]!) : parent)
