/**
 * The memory benchmark group: what an open, idle connection costs a server.
 *
 *   memory.connection  KiB of server RSS per connection: 2000 connections to the server, one `Sum` call
 *                      answered on each, then all held open; (RSS after − RSS before) / 2000
 *
 * Servers: ours is the conformance server (`node src/cli/bin.ts serve`, library defaults), Twisted's is the
 * peer of the interop tests (test/twisted/peer.py server), plain Node's is bench/plain/rpc.ts server.
 * Before the "before" sample each server has served 50 short connections (so code loaded and compiled
 * for the first connection is not counted per connection). RSS is VmRSS from /proc/<pid>/status.
 * The connections are opened from this process with plain `node:net` sockets, 100 at a time, loopback
 * only. Rounds are interleaved (ours, Twisted, plain Node, ...), a fresh server each: 3 rounds, 2 with
 * `--quick`. Lower is better.
 */
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { PlainParser, serialize } from "./plain/codec.ts"
import { benchDir, type Group, type GroupOptions, interleave, python, type Result, resultOf, roundsOf } from "./support.ts"

const NAME = "memory.connection"
const CONNECTIONS = 2000
const WARM_CONNECTIONS = 50
const root = Path.join(benchDir, "..")

interface ServerSpec {
  readonly name: string
  readonly command: string
  readonly args: ReadonlyArray<string>
}

const servers: Record<"ours" | "twisted" | "plainNode", ServerSpec> = {
  ours: { name: "effect-amp", command: process.execPath, args: [Path.join(root, "src", "cli", "bin.ts"), "serve", "--port", "0"] },
  twisted: { name: "twisted", command: python, args: [Path.join(root, "test", "twisted", "peer.py"), "server", "--port", "0"] },
  plainNode: { name: "plain node", command: process.execPath, args: [Path.join(benchDir, "plain", "rpc.ts"), "server", "--port", "0"] }
}

/** VmRSS of a process in KiB. */
const rssKiB = (pid: number): number => {
  const status = Fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
  if (m === null) throw new Error(`no VmRSS for ${pid}`)
  return Number(m[1])
}

/** The soft limit on open files of this process (children inherit it). */
export const openFilesLimit = (): number => {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(Fs.readFileSync("/proc/self/limits", "utf8"))
    return m === null || m[1] === "unlimited" ? Infinity : Number(m[1])
  } catch {
    return Infinity
  }
}

const start = (spec: ServerSpec): Promise<{ pid: number; port: number; stop: () => Promise<void> }> =>
  new Promise((resolve, reject) => {
    const child = spawn(spec.command, [...spec.args], { stdio: ["ignore", "pipe", "pipe"], cwd: root })
    let out = ""
    let err = ""
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`${spec.name} server did not start: ${err.slice(-500)}`))
    }, 30_000)
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err = (err + d).slice(-4000)))
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d
      const m = /LISTENING (\d+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve({
          pid: child.pid!,
          port: Number(m[1]),
          stop: () =>
            new Promise<void>((done) => {
              if (child.exitCode !== null || child.signalCode !== null) return done()
              child.once("exit", () => done())
              child.kill("SIGTERM")
              setTimeout(() => child.kill("SIGKILL"), 3000).unref()
            })
        })
      }
    })
    child.once("error", (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.once("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`${spec.name} server exited with ${code}: ${err.slice(-500)}`))
    })
  })

const enc = (s: string) => Buffer.from(s, "latin1")

/** Opens a connection, makes one `Sum` call on it and checks the answer; resolves the open socket. */
const connectAndSum = (port: number, i: number): Promise<Net.Socket> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    const parser = new PlainParser()
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`connection ${i}: no answer within 20 s`))
    }, 20_000)
    const fail = (e: Error) => {
      clearTimeout(timer)
      socket.destroy()
      reject(e)
    }
    socket.once("error", fail)
    socket.once("connect", () => {
      socket.write(serialize(new Map([["_ask", enc("1")], ["_command", enc("Sum")], ["a", enc(String(i))], ["b", enc("7")]])))
    })
    socket.on("data", (chunk: Buffer) => {
      const boxes = parser.push(chunk)
      if (boxes.length === 0) return
      const total = boxes[0]!.get("total")
      if (total === undefined || Buffer.from(total).toString("latin1") !== String(i + 7)) {
        return fail(new Error(`connection ${i}: wrong answer ${JSON.stringify([...boxes[0]!.keys()])}`))
      }
      clearTimeout(timer)
      socket.removeAllListeners("data")
      socket.off("error", fail)
      socket.on("error", () => {})
      resolve(socket)
    })
  })

const openMany = async (port: number, count: number): Promise<Array<Net.Socket>> => {
  const sockets: Array<Net.Socket> = []
  for (let i = 0; i < count; i += 100) {
    const batch = await Promise.allSettled(
      Array.from({ length: Math.min(100, count - i) }, (_, j) => connectAndSum(port, i + j))
    )
    for (const r of batch) if (r.status === "fulfilled") sockets.push(r.value)
    const failed = batch.find((r) => r.status === "rejected")
    if (failed !== undefined) {
      for (const s of sockets) s.destroy()
      throw (failed as PromiseRejectedResult).reason
    }
  }
  return sockets
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const closeAll = async (sockets: ReadonlyArray<Net.Socket>): Promise<void> => {
  for (const s of sockets) s.destroy()
  await sleep(100)
}

/** One round for one server: KiB of server RSS per held connection. */
const measureOne = async (spec: ServerSpec, connections: number): Promise<number> => {
  const server = await start(spec)
  try {
    await closeAll(await openMany(server.port, WARM_CONNECTIONS))
    await sleep(1000)
    const before = rssKiB(server.pid)
    const sockets = await openMany(server.port, connections)
    await sleep(1500)
    const after = rssKiB(server.pid)
    await closeAll(sockets)
    return (after - before) / connections
  } finally {
    await server.stop()
  }
}

export const memory: Group = {
  name: "memory",
  targets: { [NAME]: { vsTwisted: 4 } },
  run: async (options: GroupOptions): Promise<Array<Result>> => {
    if (!options.selected(NAME)) return []
    const limit = openFilesLimit()
    const connections = Math.min(CONNECTIONS, Math.floor((limit - 200) / 100) * 100)
    if (connections < CONNECTIONS) {
      options.log(`note: open-files limit (ulimit -n) is ${limit}: ${NAME} uses ${connections} connections, not ${CONNECTIONS}`)
    }
    if (connections < 200) return []
    const rounds = roundsOf(options.quick, 3, 2)
    options.log(`${NAME}: ${rounds} interleaved rounds of ${connections} held connections per server`)
    const optional = (spec: ServerSpec) => async (): Promise<number | null> => {
      try {
        return await measureOne(spec, connections)
      } catch (error) {
        options.log(`note: ${spec.name} ${NAME} round not measured: ${(error as Error).message.slice(0, 300)}`)
        return null
      }
    }
    const samples = await interleave(rounds, {
      ours: () => measureOne(servers.ours, connections),
      twisted: optional(servers.twisted),
      plainNode: optional(servers.plainNode)
    })
    return [resultOf(NAME, "KiB/conn", samples, true)]
  }
}
