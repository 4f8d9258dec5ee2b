/**
 * The connection's writer: a bounded queue of boxes and transition markers ({@link Hold}), drained by one
 * fiber that writes everything queued in a turn with one socket write (a gather write: large values go
 * to the socket as they are, not copied into the batch). The queue's bound and the socket's drain give
 * backpressure: a peer that never reads cannot grow our memory.
 * @internal
 */
import { Cause, Deferred, Effect, Exit, Queue } from "effect"
import type * as Socket from "effect/socket/Socket"
import * as Box from "../Box.ts"
import { Hold } from "./dispatcher.ts"

/** Default of `Options.maxQueuedBoxes`. */
export const DEFAULT_MAX_QUEUED_BOXES = 1024

export interface Writer {
  /** Queues a box, then `hold` if given (atomically: nothing can come between them). */
  readonly offer: (box: Box.Box, hold?: Hold) => Effect.Effect<void>
  /** Queues a hold alone (a responder's transition with no answer to send). */
  readonly offerHold: (hold: Hold) => Effect.Effect<void>
  /**
   * The write loop over the current phase's socket writer (`current()`, read at each write: it changes
   * at StartTLS). Ends when the queue has been ended and drained, or at a hold released with `false`.
   */
  readonly run: (current: () => Socket.Writer) => Effect.Effect<void, Socket.SocketError>
  /** Ends the queue: the loop writes what is queued, then stops. */
  readonly end: Effect.Effect<void>
}

/** `onWrite` is told the size of every chunk written (the bytes-sent metric). */
export const make = (maxQueuedBoxes: number | undefined, onWrite: (bytes: number) => void): Effect.Effect<Writer> =>
  Effect.map(Queue.bounded<Box.Box | Hold, Cause.Done>(maxQueuedBoxes ?? DEFAULT_MAX_QUEUED_BOXES), (queue) => {
    const writeBoxes = (writer: Socket.Writer, boxes: ReadonlyArray<Box.Box>) => {
      const chunks = Box.encodeChunksUnsafe(boxes)
      for (let i = 0; i < chunks.length; i++) onWrite(chunks[i]!.length)
      return chunks.length === 1
        ? writer.write(chunks[0]!)
        : writer.writeAll(chunks as unknown as readonly [Uint8Array, ...Array<Uint8Array>])
    }
    const run = (current: () => Socket.Writer) =>
      Effect.gen(function*() {
        while (true) {
          const items = yield* Queue.takeAll(queue)
          let start = 0
          for (let i = 0; i < items.length; i++) {
            const item = items[i]!
            if (item instanceof Hold) {
              if (i > start) yield* writeBoxes(current(), items.slice(start, i) as Array<Box.Box>)
              Deferred.doneUnsafe(item.reached, Exit.void)
              const go: boolean = yield* Deferred.await(item.release)
              if (!go) return
              start = i + 1
            }
          }
          if (start < items.length) {
            yield* writeBoxes(current(), (start === 0 ? items : items.slice(start)) as Array<Box.Box>)
          }
        }
      }).pipe(
        // the queue was ended and drained: a close
        Effect.catchIf((e): e is Cause.Done => Cause.isDone(e), () => Effect.void)
      ) as Effect.Effect<void, Socket.SocketError>
    return {
      offer: (box, hold) => hold === undefined ? Effect.asVoid(Queue.offer(queue, box)) : Effect.asVoid(Queue.offerAll(queue, [box, hold])),
      offerHold: (hold) => Effect.asVoid(Queue.offer(queue, hold)),
      run,
      end: Effect.asVoid(Queue.end(queue))
    }
  })
