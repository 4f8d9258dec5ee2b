/**
 * The connection's reader: socket chunks → boxes (the box decoder, as a Stream) → the dispatcher engine,
 * one box at a time. A transition asked for by a box (StartTLS, a protocol switch) runs inline, before
 * the next box is parsed, and receives every byte already read but not yet parsed.
 * @internal
 */
import { Duration, Effect, Stream } from "effect"
import type * as Socket from "effect/socket/Socket"
import type { AmpProtocolError } from "../AmpError.ts"
import { AmpTimeout } from "../AmpError.ts"
import * as Box from "../Box.ts"
import { concatBytes } from "./bytes.ts"
import type { Core, Step } from "./core.ts"
import type { Step as EngineStep } from "./dispatcher.ts"

export interface ReaderOptions {
  readonly firstBoxTimeout?: Duration.Input | undefined
  readonly idleTimeout?: Duration.Input | undefined
  /** Told the size of every chunk read (the bytes-received metric). */
  readonly onRead: (bytes: number) => void
}

/** Runs a transition step for the reader; `leftover` takes the bytes read but not parsed. */
export type RunStep = (step: EngineStep, leftover: () => Uint8Array) => Effect.Effect<Step>

interface Batch {
  readonly bytes: Uint8Array
  readonly boxes: Array<Box.Box>
  readonly ends: Array<number>
  readonly error: Box.FramingError | undefined
}

const READ_ON: Effect.Effect<boolean> = Effect.succeed(true)
const STOP_READING: Effect.Effect<boolean> = Effect.succeed(false)
const textEncoder = new TextEncoder()
const toBytes = (chunk: Uint8Array | string): Uint8Array => typeof chunk === "string" ? textEncoder.encode(chunk) : chunk

/**
 * The read loop. Succeeds with "stop" when a transition took the socket over, "continue" when the peer
 * closed; fails with the protocol, framing, socket or timeout error that ended it.
 */
export const run = (
  core: Core,
  decoderOf: () => Box.Decoder,
  runStep: RunStep,
  options: ReaderOptions
): Effect.Effect<Step, AmpProtocolError | Box.FramingError | Socket.SocketError | AmpTimeout> => {
  // until the first complete box arrives (again after StartTLS), `firstBoxTimeout` applies
  let awaitingFirstBox = options.firstBoxTimeout !== undefined
  let lastPhase = core.phase
  // Chunks are handed to the decoder one at a time so that, at a transition, every byte already read
  // but not yet parsed can be given to the next phase.
  let pulled: Array<Uint8Array> = []

  const pull = (): Effect.Effect<ReadonlyArray<Uint8Array | string>, Socket.SocketError | AmpTimeout> => {
    const phase = core.phase!
    if (phase !== lastPhase) {
      lastPhase = phase
      awaitingFirstBox = options.firstBoxTimeout !== undefined
    }
    const limit = awaitingFirstBox ? options.firstBoxTimeout : options.idleTimeout
    if (limit === undefined) return phase.pull
    const what = awaitingFirstBox ? "no complete box" : "nothing received"
    return Effect.timeoutOrElse(phase.pull, {
      duration: limit,
      orElse: () => Effect.fail(new AmpTimeout({ reason: `${what} within ${Duration.format(Duration.fromInputUnsafe(limit))}` }))
    })
  }
  const nextChunk: Effect.Effect<readonly [Uint8Array], Socket.SocketError | AmpTimeout> = Effect.suspend(() => {
    if (pulled.length > 0) return Effect.succeed([pulled.shift()!] as const)
    return Effect.map(pull(), (chunks) => {
      const state = core.state.current
      if (state._tag === "Tls" && !state.confirmed) core.state.to({ _tag: "Tls", confirmed: true })
      for (let i = 1; i < chunks.length; i++) pulled.push(toBytes(chunks[i]!))
      return [toBytes(chunks[0]!)] as const
    })
  })

  // "stop" once a transition has taken the socket over (the stream then ends)
  let last: Step = "continue"

  /** Handles the boxes of one chunk; succeeds with whether to read on. */
  const processBatch = (batch: Batch): Effect.Effect<boolean, AmpProtocolError | Box.FramingError> => {
    const { boxes, ends, bytes, error } = batch
    const n = boxes.length
    let i = 0
    const leftoverAt = (index: number) => () => {
      const rest = concatBytes([bytes.subarray(ends[index]!), ...pulled])
      pulled = []
      return rest
    }
    // Boxes are handled synchronously one after the other; only a box whose handling returns an Effect
    // (a transition, a protocol error, a full command queue) leaves this loop, and it comes back after.
    const loop = (): Effect.Effect<boolean, AmpProtocolError | Box.FramingError> => {
      while (i < n) {
        // an answer or a handler may have ended the connection: the shutdown stops this reader
        if (core.state.ending) return READ_ON
        const index = i++
        const received = core.engine.receive(boxes[index]!)
        if (received === undefined) continue
        return Effect.flatMap(received, (step) =>
          step === undefined
            ? Effect.suspend(loop)
            : Effect.flatMap(runStep(step, leftoverAt(index)), (s) => {
              if (s !== "stop") return Effect.suspend(loop)
              last = "stop"
              return STOP_READING
            }))
      }
      return error ? Effect.fail(error) : READ_ON
    }
    return loop()
  }

  // the box Stream: socket chunks → decoder → boxes, handled chunk by chunk until a transition stops it
  return Stream.fromPull(Effect.succeed(nextChunk)).pipe(
    Stream.runForEachWhile((bytes) => {
      options.onRead(bytes.length)
      const boxes: Array<Box.Box> = []
      const ends: Array<number> = []
      const error = decoderOf().feed(bytes, boxes, ends)
      if (boxes.length > 0) awaitingFirstBox = false
      return processBatch({ bytes, boxes, ends, error })
    }),
    Effect.map(() => last)
  )
}
