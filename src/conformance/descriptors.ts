/**
 * The conformance service's file-descriptor part: the `ReadDescriptor` / `OpenDescriptor` responders
 * and the client's checks of them (run only over a Unix-domain socket).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import * as Fs from "node:fs"
import type * as Connection from "../Connection.ts"
import * as Descriptor from "../Descriptor.ts"
import * as Responders from "../Responders.ts"
import * as C from "./commands.ts"

/** The most `ReadDescriptor` reads. @since 0.1.0 @category constants */
export const MAX_READ = 65535

/**
 * Reads `fd` to its end (at most `max` bytes) on the thread pool (never blocking the event loop), then
 * closes it, whatever happened.
 *
 * @since 0.1.0
 * @category descriptors
 */
export const readAll = (fd: number, max: number = MAX_READ): Effect.Effect<Uint8Array, Error> =>
  Effect.callback<Uint8Array, Error>((resume) => {
    const chunks: Array<Buffer> = []
    let total = 0
    const finish = (error: Error | null) => {
      Fs.close(fd, () => resume(error === null ? Effect.succeed(new Uint8Array(Buffer.concat(chunks, total))) : Effect.fail(error)))
    }
    const next = () => {
      if (total >= max) return finish(null)
      const buffer = Buffer.allocUnsafe(max - total)
      Fs.read(fd, buffer, 0, buffer.length, null, (error, n) => {
        if (error !== null) return finish(error)
        if (n === 0) return finish(null)
        chunks.push(buffer.subarray(0, n))
        total += n
        next()
      })
    }
    next()
  })

/**
 * A pipe whose read end yields `data` then end-of-file: `data` is written (it fits in a pipe's buffer:
 * at most 65535 bytes) and the write end closed. The read end is the caller's.
 *
 * @since 0.1.0
 * @category descriptors
 */
export const pipeWith = (data: Uint8Array): Effect.Effect<number, Descriptor.DescriptorUnavailable> =>
  Effect.flatMap(Descriptor.pipe, ([readEnd, writeEnd]) =>
    Effect.sync(() => {
      try {
        let offset = 0
        while (offset < data.length) offset += Fs.writeSync(writeEnd, data, offset)
      } finally {
        Fs.closeSync(writeEnd)
      }
      return readEnd
    }))

/**
 * `ReadDescriptor` and `OpenDescriptor` (the latter gives its pipe's read end up to the connection,
 * which closes it once the answer is written).
 *
 * @since 0.1.0
 * @category responders
 */
export const handlers = [
  Responders.handle(C.ReadDescriptor, ({ fd }) =>
    Effect.map(Effect.orDie(readAll(fd)), (data) => ({ data }))),
  Responders.handle(C.OpenDescriptor, ({ data }) =>
    Effect.map(Effect.orDie(pipeWith(data)), (readEnd) => ({ fd: Descriptor.transfer(readEnd) })))
] as const

const fail = (message: string) => Effect.fail(new Error(message))

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString("latin1")

/**
 * The client's descriptor checks (over a Unix socket): `[name, run]` pairs.
 *
 * @since 0.1.0
 * @category checks
 */
export const checks: ReadonlyArray<readonly [string, (conn: Connection.Connection) => Effect.Effect<void, unknown>]> = [
  [
    "ReadDescriptor",
    (conn) =>
      Effect.gen(function*() {
        const payload = Buffer.from("through a pipe \u2603\u0000end", "utf8")
        const readEnd = yield* pipeWith(payload)
        const result = yield* Effect.ensuring(
          conn.dispatcher.callRemote(C.ReadDescriptor, { fd: readEnd }),
          Effect.sync(() => Fs.closeSync(readEnd))
        )
        if (text(result.data) !== text(payload)) return yield* fail(`read ${JSON.stringify(text(result.data))}`)
        // several in flight, one of them empty
        const sizes = [0, 1, 1000, 65535]
        const results = yield* Effect.forEach(sizes, (size) =>
          Effect.gen(function*() {
            const data = new Uint8Array(size).map((_, i) => (i * 7) & 0xff)
            const fd = yield* pipeWith(data)
            const got = yield* conn.dispatcher.callRemote(C.ReadDescriptor, { fd: Descriptor.transfer(fd) })
            return Buffer.from(got.data).equals(Buffer.from(data))
          }), { concurrency: "unbounded" })
        if (!results.every((ok) => ok)) return yield* fail(`pipes of ${sizes.join("/")} bytes read back: ${results.join(",")}`)
      })
  ],
  [
    "OpenDescriptor",
    (conn) =>
      Effect.gen(function*() {
        for (const data of [Buffer.from("from the server's pipe"), Buffer.alloc(0), Buffer.alloc(65535, 0x61)]) {
          const { fd } = yield* conn.dispatcher.callRemote(C.OpenDescriptor, { data })
          const got = yield* readAll(fd)
          if (!Buffer.from(got).equals(data)) return yield* fail(`read ${got.length} bytes, want ${data.length}`)
        }
      })
  ]
]
