/**
 * Child processes for end-to-end tests: servers that announce `LISTENING <port>` on stdout, and clients
 * that run to completion. Every process started here is killed when the test file ends (and on
 * `stop()`), with timeouts everywhere, so none is left behind.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

/** The project root. */
export const root = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "..", "..")
/** The pinned Node (runs `.ts` directly). */
export const node = Path.join(root, "node_modules", ".bin", "node")

const live = new Set<ChildProcess>()
const killAll = () => {
  for (const child of live) {
    try {
      child.kill("SIGKILL")
    } catch {
      // already gone
    }
  }
}
process.once("exit", killAll)

export interface Server {
  /** The port announced (NaN for a Unix socket: see `listening`). */
  readonly port: number
  /** What followed `LISTENING`: a port, or a Unix socket path. */
  readonly listening: string
  readonly pid: number
  /** Everything written to stdout / stderr so far. */
  readonly output: () => { readonly stdout: string; readonly stderr: string }
  /** SIGTERM, then SIGKILL after `graceMillis`; resolves with the exit code (null if killed by signal). */
  readonly stop: (graceMillis?: number) => Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

const waitExit = (child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode })
      return
    }
    child.once("exit", (code, signal) => resolve({ code, signal }))
  })

/** Starts a server process and waits (at most `timeoutMillis`) for `LISTENING <port>` on its stdout. */
export const startServer = (
  command: string,
  args: ReadonlyArray<string>,
  options?: { readonly timeoutMillis?: number; readonly cwd?: string }
): Promise<Server> =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options?.cwd ?? root, stdio: ["ignore", "pipe", "pipe"] })
    live.add(child)
    let stdout = ""
    let stderr = ""
    let settled = false
    const timeout = options?.timeoutMillis ?? 20_000
    const fail = (why: string) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      child.kill("SIGKILL")
      reject(new Error(`${command} ${args.join(" ")}: ${why}\nstdout: ${stdout}\nstderr: ${stderr}`))
    }
    const timer = setTimeout(() => fail(`no LISTENING line within ${timeout} ms`), timeout)
    child.stdout!.setEncoding("utf8")
    child.stderr!.setEncoding("utf8")
    child.stderr!.on("data", (d: string) => {
      stderr += d
    })
    child.on("error", (e) => fail(`cannot start: ${e.message}`))
    child.on("exit", (code, signal) => {
      live.delete(child)
      fail(`exited (${code ?? signal}) before listening`)
    })
    child.stdout!.on("data", (d: string) => {
      stdout += d
      const match = /^LISTENING (\S+)$/m.exec(stdout)
      if (match && !settled) {
        settled = true
        clearTimeout(timer)
        const stop = async (graceMillis = 5_000) => {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
          const kill = setTimeout(() => child.kill("SIGKILL"), graceMillis)
          const exit = await waitExit(child)
          clearTimeout(kill)
          live.delete(child)
          return exit
        }
        resolve({
          port: Number(match[1]),
          listening: match[1]!,
          pid: child.pid!,
          output: () => ({ stdout, stderr }),
          stop
        })
      }
    })
  })

/** Is a process with this pid still there (running or a zombie)? */
export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

export interface RunResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  readonly timedOut: boolean
}

/** Runs a process to completion (killed after `timeoutMillis`). */
export const run = (
  command: string,
  args: ReadonlyArray<string>,
  options?: { readonly timeoutMillis?: number; readonly cwd?: string; readonly env?: NodeJS.ProcessEnv }
): Promise<RunResult> =>
  new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: options?.cwd ?? root,
      stdio: ["ignore", "pipe", "pipe"],
      ...(options?.env !== undefined ? { env: options.env } : {})
    })
    live.add(child)
    let stdout = ""
    let stderr = ""
    let timedOut = false
    child.stdout!.setEncoding("utf8")
    child.stderr!.setEncoding("utf8")
    child.stdout!.on("data", (d: string) => {
      stdout += d
    })
    child.stderr!.on("data", (d: string) => {
      stderr += d
    })
    const timer = setTimeout(() => {
      timedOut = true
      child.kill("SIGKILL")
    }, options?.timeoutMillis ?? 60_000)
    child.on("error", (e) => {
      stderr += `\ncannot start: ${e.message}`
    })
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      live.delete(child)
      resolve({ code, signal, stdout, stderr, timedOut })
    })
  })

/** Kills every process still running (for `afterAll`). */
export const killRemaining = (): void => {
  killAll()
  live.clear()
}

export interface CheckReport {
  readonly passed: ReadonlyArray<string>
  readonly failed: ReadonlyArray<{ readonly name: string; readonly reason: string }>
  /** The `N passed, M failed` line, parsed (undefined if missing). */
  readonly summary: { readonly passed: number; readonly failed: number } | undefined
}

/** Parses the `PASS <name>` / `FAIL <name>: <reason>` / `N passed, M failed` lines of a conformance client. */
export const parseCheckOutput = (stdout: string): CheckReport => {
  const passed: Array<string> = []
  const failed: Array<{ name: string; reason: string }> = []
  let summary: { passed: number; failed: number } | undefined
  for (const line of stdout.split("\n")) {
    let m = /^PASS (\S+)$/.exec(line)
    if (m) {
      passed.push(m[1]!)
      continue
    }
    m = /^FAIL (\S+): (.*)$/.exec(line)
    if (m) {
      failed.push({ name: m[1]!, reason: m[2]! })
      continue
    }
    m = /^(\d+) passed, (\d+) failed$/.exec(line)
    if (m) summary = { passed: Number(m[1]), failed: Number(m[2]) }
  }
  return { passed, failed, summary }
}

/** Throws with every failed check and its reason (and the process output) unless all passed. */
export const assertAllPassed = (result: RunResult, expected: ReadonlyArray<string>): CheckReport => {
  const report = parseCheckOutput(result.stdout)
  const problems: Array<string> = []
  if (result.timedOut) problems.push("the client timed out")
  for (const f of report.failed) problems.push(`FAIL ${f.name}: ${f.reason}`)
  const missing = expected.filter((name) => !report.passed.includes(name) && !report.failed.some((f) => f.name === name))
  if (missing.length > 0) problems.push(`checks not run: ${missing.join(", ")}`)
  if (report.summary === undefined) problems.push("no 'N passed, M failed' line")
  else if (report.summary.failed !== 0 || report.summary.passed !== report.passed.length) {
    problems.push(`summary says ${report.summary.passed} passed, ${report.summary.failed} failed`)
  }
  if (result.code !== 0 && problems.length === 0) problems.push(`exit code ${result.code ?? result.signal}`)
  if (problems.length > 0) {
    throw new Error(
      `${problems.join("\n")}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr.slice(-4000)}`
    )
  }
  return report
}
