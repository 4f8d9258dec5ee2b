/**
 * Codec benchmarks: parsing and serializing boxes, ours (src/Box.ts) against Twisted
 * (bench/twisted/codec_bench.py, a worker process asked for one timed run at a time) and a hand-written
 * plain-Node codec (bench/plain/codec.ts) on the same data. Each benchmark: a warm-up, then interleaved
 * rounds of 0.3 s (ours, Twisted, plain Node, ours, ...): 7 rounds, 3 with `--quick`. Rates are boxes
 * per CPU-second of the measuring process (see `runFor`), so a busy machine slows all three alike.
 *
 * Data:
 * - small: the `Sum` command box `{_ask: "1", _command: "Sum", a: "13", b: "81"}` (40 bytes on the wire);
 * - large: `{_ask: "1", _command: "Blob", data: <60 KiB>}`.
 * Parsing feeds many copies back to back in 64 KiB chunks (so boxes straddle chunks, as on a socket)
 * to one incremental decoder producing `Box` maps, which is what a connection does.
 */
import { Effect, Stream } from "effect"
import * as Box from "../src/Box.ts"
import { PlainParser, serialize as plainSerialize } from "./plain/codec.ts"
import {
  check,
  type Group,
  type GroupOptions,
  interleave,
  type Result,
  resultOf,
  roundsOf,
  runFor,
  runForAsync,
  startPythonWorker
} from "./support.ts"

const CHUNK = 64 * 1024
const LARGE_VALUE = 60 * 1024

const smallBox = Box.make({ _ask: "1", _command: "Sum", a: "13", b: "81" })
const largeValue = new Uint8Array(LARGE_VALUE)
for (let i = 0; i < largeValue.length; i++) largeValue[i] = (i * 31 + 7) & 0xff
const largeBox = Box.make({ _ask: "1", _command: "Blob", data: largeValue })

const chunked = (bytes: Uint8Array): Array<Uint8Array> => {
  const chunks: Array<Uint8Array> = []
  // copies, as a socket would deliver fresh buffers
  for (let i = 0; i < bytes.length; i += CHUNK) chunks.push(bytes.slice(i, i + CHUNK))
  return chunks
}

interface Data {
  readonly box: Box.Box
  /** Copies per parse/serialize pass. */
  readonly copies: number
  readonly chunks: Array<Uint8Array>
  /** Checks one decoded box. */
  readonly valid: (box: ReadonlyMap<string, Uint8Array>) => boolean
}

const makeData = (box: Box.Box, copies: number, valid: Data["valid"]): Data => ({
  box,
  copies,
  chunks: chunked(Box.encodeAllUnsafe(Array.from({ length: copies }, () => box))),
  valid
})

const small = makeData(smallBox, 16384, (box) => {
  const b = box.get("b")
  return box.size === 4 && b !== undefined && b.length === 2 && b[0] === 0x38 && b[1] === 0x31
})
const large = makeData(largeBox, 64, (box) => {
  const data = box.get("data")
  return data !== undefined && data.length === LARGE_VALUE && data[LARGE_VALUE - 1] === largeValue[LARGE_VALUE - 1] &&
    data[12345] === largeValue[12345]
})

const parseOurs = (data: Data) => (): number => {
  const decoder = Box.makeDecoder()
  let count = 0
  let last: Box.Box | undefined
  for (const chunk of data.chunks) {
    const out: Array<Box.Box> = []
    const error = decoder.feed(chunk, out)
    if (error) throw error
    count += out.length
    if (out.length > 0) last = out[out.length - 1]
  }
  check(count === data.copies && last !== undefined && data.valid(last), "ours: parsed boxes")
  return count
}

/**
 * The same parse with a `Box.ValuePool`: the consumer checks each box and hands its values back, so
 * a value split across chunks is assembled in a recycled buffer. This is what a connection does for
 * commands whose argument types do not keep their bytes (see `Dispatcher.Options.valuePool`).
 */
const parseRecycled = (data: Data) => {
  const pool = Box.makeValuePool()
  return (): number => {
    const decoder = Box.makeDecoder({ pool })
    let count = 0
    let valid = true
    for (const chunk of data.chunks) {
      const out: Array<Box.Box> = []
      const error = decoder.feed(chunk, out)
      if (error) throw error
      count += out.length
      for (let i = 0; i < out.length; i++) {
        const box = out[i]!
        valid &&= data.valid(box)
        for (const value of box.values()) pool.release(value)
      }
    }
    check(count === data.copies && valid, "ours (recycled): parsed boxes")
    return count
  }
}

const parseStream = (data: Data) => async (): Promise<number> => {
  let last: Box.Box | undefined
  const count = await Effect.runPromise(
    Stream.fromIterable(data.chunks).pipe(
      Box.decodeStream,
      Stream.runFold(() => 0, (n, box) => {
        last = box
        return n + 1
      })
    )
  )
  check(count === data.copies && last !== undefined && data.valid(last), "ours (stream): parsed boxes")
  return count
}

const parsePlain = (data: Data) => (): number => {
  const parser = new PlainParser()
  let count = 0
  let last: ReadonlyMap<string, Uint8Array> | undefined
  for (const chunk of data.chunks) {
    const out = parser.push(chunk)
    count += out.length
    if (out.length > 0) last = out[out.length - 1]
  }
  check(count === data.copies && last !== undefined && data.valid(last), "plain: parsed boxes")
  return count
}

const serializeWith = (data: Data, encode: (box: Box.Box) => Uint8Array, copies: number) => {
  const expected = Box.encodeUnsafe(data.box)
  const size = expected.length
  const at = size - 3
  return (): number => {
    let bytes = 0
    let out: Uint8Array | undefined
    for (let i = 0; i < copies; i++) {
      out = encode(data.box)
      bytes += out.length
    }
    check(bytes === size * copies && out![1] === expected[1] && out![at] === expected[at], "serialized bytes")
    return copies
  }
}

const serializeBatch = (data: Data, copies: number) => {
  const boxes = Array.from({ length: copies }, () => data.box)
  const expected = Box.encodeUnsafe(data.box)
  const size = expected.length
  return (): number => {
    const out = Box.encodeAllUnsafe(boxes)
    check(out.length === size * copies && out[size * copies - 3] === expected[size - 3], "batched bytes")
    return copies
  }
}

const SERIALIZE_SMALL = 10_000
const SERIALIZE_LARGE = 64

interface Spec {
  readonly name: string
  /** Ours: synchronous work, or `oursAsync` for Effect-run work. */
  readonly ours?: () => number
  readonly oursAsync?: () => Promise<number>
  readonly plain?: () => number
  /** Whether this name has a Twisted counterpart in codec_bench.py (or the name of the one to compare with). */
  readonly twisted: boolean | string
}

const specs: ReadonlyArray<Spec> = [
  { name: "codec.parse.small", ours: parseOurs(small), plain: parsePlain(small), twisted: true },
  { name: "codec.parse.large", ours: parseOurs(large), plain: parsePlain(large), twisted: true },
  {
    name: "codec.serialize.small",
    ours: serializeWith(small, Box.encodeUnsafe, SERIALIZE_SMALL),
    plain: serializeWith(small, plainSerialize, SERIALIZE_SMALL),
    twisted: true
  },
  {
    name: "codec.serialize.large",
    ours: serializeWith(large, Box.encodeUnsafe, SERIALIZE_LARGE),
    plain: serializeWith(large, plainSerialize, SERIALIZE_LARGE),
    twisted: true
  },
  // the same data and work as codec.parse.large, so compared with Twisted's codec.parse.large
  { name: "codec.parse.large.recycled", ours: parseRecycled(large), twisted: "codec.parse.large" },
  // extras, ours only: the Stream form of the decoder and the batched encoder
  { name: "codec.parse.small.stream", oursAsync: parseStream(small), twisted: false },
  { name: "codec.serialize.small.batch", ours: serializeBatch(small, SERIALIZE_SMALL), twisted: false }
]

const UNIT = "boxes/s"

/** Length of one timed run, the same in full and quick mode (quick only takes fewer rounds). */
const ROUND_SECONDS = 0.3
/** Warm-up of each in-process contender before its first round (JIT tiers up well within it). */
const WARMUP_SECONDS = 0.6

export const codec: Group = {
  name: "codec",
  targets: {
    "codec.parse.small": { vsTwisted: 40 },
    "codec.serialize.small": { vsTwisted: 10 },
    "codec.parse.large": { vsTwisted: 1 },
    "codec.parse.large.recycled": { vsTwisted: 1 }
  },
  run: async (options: GroupOptions): Promise<Array<Result>> => {
    const selected = specs.filter((s) => options.selected(s.name))
    if (selected.length === 0) return []
    const rounds = roundsOf(options.quick, 7, 3)
    const twisted = selected.some((s) => s.twisted !== false) ? startPythonWorker("codec_bench.py", options) : undefined
    const results: Array<Result> = []
    try {
      for (const spec of selected) {
        options.log(`${spec.name}: warm-up, then ${rounds} interleaved rounds of ${ROUND_SECONDS} s`)
        const ours = spec.ours !== undefined
          ? () => Promise.resolve(runFor(spec.ours!, ROUND_SECONDS))
          : () => runForAsync(spec.oursAsync!, ROUND_SECONDS)
        const plain = spec.plain
        await (spec.ours !== undefined
          ? Promise.resolve(runFor(spec.ours, WARMUP_SECONDS))
          : runForAsync(spec.oursAsync!, WARMUP_SECONDS))
        if (plain) runFor(plain, WARMUP_SECONDS)
        const twistedName = spec.twisted === true ? spec.name : spec.twisted
        const samples = await interleave(rounds, {
          ours,
          twisted: twisted !== undefined && twistedName !== false
            ? () => twisted.measure(twistedName, ROUND_SECONDS, UNIT)
            : undefined,
          plainNode: plain ? () => Promise.resolve(runFor(plain, ROUND_SECONDS)) : undefined
        })
        results.push(resultOf(spec.name, UNIT, samples))
      }
    } finally {
      twisted?.close()
    }
    return results
  }
}
