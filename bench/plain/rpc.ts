/**
 * A plain-Node AMP client and server for two commands, `Sum(a: Integer, b: Integer) -> total: Integer`
 * and `Text(text: Unicode) -> length: Integer`, with no Effect: node:net, Buffers, a Map of tag → pending call. It speaks real AMP framing (the
 * codec in ./codec.ts), so either side can talk to Twisted. It is the `plainNode` baseline of the rpc
 * benchmarks: written the way a competent developer would, not deliberately slow (writes are batched
 * per tick on both sides).
 *
 *   node bench/plain/rpc.ts server [--port 0] [--host 127.0.0.1]
 *       prints `LISTENING <port>`, then serves until SIGTERM/SIGINT
 *   node bench/plain/rpc.ts client --connect 127.0.0.1:PORT --mode sequential|pipelined
 *                                  [--outstanding N] [--seconds S] [--warmup S] [--workload sum|text]
 *       prints `WINDOW` when the timed window starts, then {"calls": n, "seconds": s, "rate": r, "errors": e,
 *       "cpuSeconds": c, "p50ms": x, "p99ms": y}; every answer is checked; p50/p99 are the latencies of the
 *       counted calls (issue to answer, in milliseconds); cpuSeconds is this process's CPU time in the window
 *
 * `sequential`: one call at a time (send, wait for the answer, send the next).
 * `pipelined`: N calls kept in flight (N workers, each sending its next call when its answer arrives).
 * Calls stop being issued after S seconds; the ones in flight are awaited and counted.
 * `--workload sum` (the default) calls `Sum`; `--workload text` calls `Text` with a 60 KiB ASCII text
 * (61440 bytes) and checks that every answer is 61440.
 */
import * as Net from "node:net"
import { Latencies } from "../latencies.ts"
import { PlainParser, type PlainBox, serialize } from "./codec.ts"

const enc = (s: string): Buffer => Buffer.from(s, "latin1")
const text = (v: Uint8Array | undefined): string | undefined =>
  v === undefined ? undefined : Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("latin1")

const pyBytesRepr = (s: string): string => {
  let out = "b'"
  for (const ch of s) {
    const c = ch.charCodeAt(0)
    if (ch === "'" || ch === "\\") out += "\\" + ch
    else if (c < 0x20 || c >= 0x7f) out += "\\x" + c.toString(16).padStart(2, "0")
    else out += ch
  }
  return out + "'"
}

/** Python's `int()` on the common forms: optional sign, digits, surrounding whitespace. */
const parseInteger = (s: string | undefined): number | undefined => {
  if (s === undefined || !/^\s*[+-]?\d+\s*$/.test(s)) return undefined
  return Number.parseInt(s, 10)
}

/** The `Text` workload's text: 61440 printable ASCII characters (the same in all three implementations). */
const largeText = Array.from({ length: 61440 }, (_, i) => String.fromCharCode(32 + (i % 95))).join("")

// ------------------------------------------------------------------------------------------ server

const serve = (host: string, port: number): void => {
  const server = Net.createServer((socket) => {
    socket.setNoDelay(true)
    const parser = new PlainParser()
    socket.on("data", (chunk: Buffer) => {
      let boxes: Array<PlainBox>
      try {
        boxes = parser.push(chunk)
      } catch {
        socket.destroy() // key length over 255: Twisted drops the connection
        return
      }
      const replies: Array<Buffer> = []
      let close = false
      for (const box of boxes) {
        const ask = box.get("_ask")
        const command = text(box.get("_command"))
        if (command === undefined) {
          close = true // NoEmptyBoxes (or an unexpected answer): Twisted drops the connection
          break
        }
        let reply: PlainBox
        if (command === "Sum") {
          const a = parseInteger(text(box.get("a")))
          const b = parseInteger(text(box.get("b")))
          if (a === undefined || b === undefined) {
            reply = new Map([["_error_code", enc("UNKNOWN")], ["_error_description", enc("Unknown Error")]])
            close = true
          } else {
            reply = new Map([["total", enc(String(a + b))]])
          }
        } else if (command === "Text") {
          const raw = box.get("text")
          if (raw === undefined) {
            reply = new Map([["_error_code", enc("UNKNOWN")], ["_error_description", enc("Unknown Error")]])
            close = true
          } else {
            // decoded to a JS string, as a real server would; its length in UTF-16 code units is its
            // length in characters for the ASCII text the benchmark sends
            const value = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("utf8")
            reply = new Map([["length", enc(String(value.length))]])
          }
        } else {
          reply = new Map([
            ["_error_code", enc("UNHANDLED")],
            ["_error_description", Buffer.from(`Unhandled Command: ${pyBytesRepr(command)}`, "utf8")]
          ])
        }
        if (ask !== undefined) {
          reply.set(reply.has("_error_code") ? "_error" : "_answer", ask)
          replies.push(serialize(reply))
        }
        if (close) break
      }
      if (replies.length > 0) socket.write(replies.length === 1 ? replies[0]! : Buffer.concat(replies))
      if (close) socket.end()
    })
    socket.on("error", () => socket.destroy())
  })
  server.listen(port, host, () => {
    const address = server.address() as Net.AddressInfo
    process.stdout.write(`LISTENING ${address.port}\n`)
  })
  const stop = () => server.close(() => process.exit(0))
  process.on("SIGTERM", stop)
  process.on("SIGINT", stop)
}

// ------------------------------------------------------------------------------------------ client

interface Pending {
  /** The answer's key holding the integer result, and its expected value. */
  readonly key: string
  readonly expected: number
  readonly resolve: (ok: boolean) => void
}

class AmpClient {
  private readonly socket: Net.Socket
  private readonly parser = new PlainParser()
  private readonly pending = new Map<string, Pending>()
  private counter = 0
  private queue: Array<Buffer> = []
  private flushScheduled = false
  private readonly batch: boolean
  closed: Error | undefined

  constructor(socket: Net.Socket, batch: boolean) {
    this.socket = socket
    this.batch = batch
    socket.setNoDelay(true)
    socket.on("data", (chunk: Buffer) => this.onData(chunk))
    const fail = (error: Error) => {
      this.closed ??= error
      for (const call of this.pending.values()) call.resolve(false)
      this.pending.clear()
    }
    socket.on("error", fail)
    socket.on("close", () => fail(new Error("connection closed")))
  }

  /** Calls Sum(a, b); resolves true if the answer's total is a + b. */
  sum(a: number, b: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(false)
    const tag = (++this.counter).toString(16)
    const frame = serialize(new Map([["_ask", enc(tag)], ["_command", enc("Sum")], ["a", enc(String(a))], ["b", enc(String(b))]]))
    return this.send(tag, frame, "total", a + b)
  }

  /** Calls Text(text); resolves true if the answer's length is the text's length. */
  text(value: string): Promise<boolean> {
    if (this.closed) return Promise.resolve(false)
    const tag = (++this.counter).toString(16)
    const frame = serialize(new Map([["_ask", enc(tag)], ["_command", enc("Text")], ["text", Buffer.from(value, "utf8")]]))
    return this.send(tag, frame, "length", value.length)
  }

  private send(tag: string, frame: Buffer, key: string, expected: number): Promise<boolean> {
    const promise = new Promise<boolean>((resolve) => this.pending.set(tag, { key, expected, resolve }))
    if (!this.batch) this.socket.write(frame)
    else {
      this.queue.push(frame)
      if (!this.flushScheduled) {
        this.flushScheduled = true
        process.nextTick(this.flush)
      }
    }
    return promise
  }

  private readonly flush = (): void => {
    this.flushScheduled = false
    const frames = this.queue
    this.queue = []
    if (frames.length > 0) this.socket.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames))
  }

  private onData(chunk: Buffer): void {
    let boxes: Array<PlainBox>
    try {
      boxes = this.parser.push(chunk)
    } catch (error) {
      this.socket.destroy(error as Error)
      return
    }
    for (const box of boxes) {
      const answer = text(box.get("_answer"))
      const tag = answer ?? text(box.get("_error"))
      const call = tag === undefined ? undefined : this.pending.get(tag)
      if (call === undefined) {
        this.socket.destroy(new Error(`unexpected box ${JSON.stringify([...box.keys()])}`))
        return
      }
      this.pending.delete(tag!)
      call.resolve(answer !== undefined && parseInteger(text(box.get(call.key))) === call.expected)
    }
  }

  close(): void {
    this.socket.end()
  }
}

const connect = (host: string, port: number): Promise<Net.Socket> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect({ host, port })
    socket.once("connect", () => {
      socket.off("error", reject)
      resolve(socket)
    })
    socket.once("error", reject)
  })

const runClient = async (options: {
  host: string
  port: number
  mode: "sequential" | "pipelined"
  outstanding: number
  seconds: number
  warmup: number
  workload: "sum" | "text"
}): Promise<void> => {
  const client = new AmpClient(await connect(options.host, options.port), options.mode === "pipelined")
  const workers = options.mode === "pipelined" ? options.outstanding : 1
  let calls = 0
  let errors = 0
  let n = 0
  const latencies = new Latencies()
  const drive = async (until: number, count: boolean): Promise<void> => {
    const worker = async () => {
      while (performance.now() < until && !client.closed) {
        const t0 = performance.now()
        let ok: boolean
        if (options.workload === "text") ok = await client.text(largeText)
        else {
          const a = n++ % 100_000
          const b = (n * 7919) % 100_000
          ok = await client.sum(a, b)
        }
        if (count) {
          calls++
          latencies.add(performance.now() - t0)
          if (!ok) errors++
        } else if (!ok) errors++
      }
    }
    await Promise.all(Array.from({ length: workers }, worker))
  }
  if (options.warmup > 0) await drive(performance.now() + options.warmup * 1000, false)
  process.stdout.write("WINDOW\n") // the harness samples the server's CPU time now and at the result line
  const cpuStart = process.cpuUsage()
  const start = performance.now()
  await drive(start + options.seconds * 1000, true)
  const cpu = process.cpuUsage(cpuStart)
  const cpuSeconds = (cpu.user + cpu.system) / 1e6
  const seconds = (performance.now() - start) / 1000
  if (client.closed) errors++
  client.close()
  process.stdout.write(
    JSON.stringify({ calls, seconds, rate: calls / seconds, errors, cpuSeconds, ...latencies.summary() }) + "\n"
  )
  process.exitCode = errors === 0 ? 0 : 1
}

// ------------------------------------------------------------------------------------------ main

const usage = `usage:
  node bench/plain/rpc.ts server [--port 0] [--host 127.0.0.1]
  node bench/plain/rpc.ts client --connect HOST:PORT --mode sequential|pipelined [--outstanding N] [--seconds S] [--warmup S]
                                 [--workload sum|text]`

const main = async (): Promise<void> => {
  const [role, ...rest] = process.argv.slice(2)
  const flags = new Map<string, string>()
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i]!
    const value = rest[i + 1]
    if (!flag.startsWith("--") || value === undefined) throw new Error(`bad arguments\n${usage}`)
    flags.set(flag.slice(2), value)
    i++
  }
  const number = (name: string, fallback: number): number => {
    const raw = flags.get(name)
    if (raw === undefined) return fallback
    const value = Number(raw)
    if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a non-negative number\n${usage}`)
    return value
  }
  if (role === "server") {
    serve(flags.get("host") ?? "127.0.0.1", number("port", 0))
  } else if (role === "client") {
    const target = flags.get("connect")
    const match = target === undefined ? null : /^(.*):(\d+)$/.exec(target)
    if (match === null) throw new Error(`--connect HOST:PORT is required\n${usage}`)
    const mode = flags.get("mode") ?? "sequential"
    if (mode !== "sequential" && mode !== "pipelined") throw new Error(`--mode must be sequential or pipelined\n${usage}`)
    const workload = flags.get("workload") ?? "sum"
    if (workload !== "sum" && workload !== "text") throw new Error(`--workload must be sum or text\n${usage}`)
    await runClient({
      host: match[1]!,
      port: Number(match[2]),
      mode,
      outstanding: Math.max(1, Math.floor(number("outstanding", 1))),
      seconds: number("seconds", 5),
      warmup: number("warmup", 0),
      workload
    })
  } else {
    throw new Error(usage)
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
  process.exitCode = 2
})
