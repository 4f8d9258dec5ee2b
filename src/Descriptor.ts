/**
 * File descriptors for `Argument.Descriptor`: whether this installation can pass them, and the small
 * POSIX pieces Node lacks (a pipe, closing a raw fd). Passing fds needs effect-amp's native part, which
 * `npm install` builds with the machine's C compiler (nothing is downloaded); without it every other
 * feature works and these functions fail with {@link DescriptorUnavailable}.
 *
 * @example
 * ```ts
 * import { Descriptor } from "effect-amp"
 * import { Effect } from "effect"
 * const program = Effect.gen(function*() {
 *   const [readEnd, writeEnd] = yield* Descriptor.pipe
 *   // send readEnd with an Argument.Descriptor, write into writeEnd, close both copies when done
 * })
 * ```
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import { errnoName, transfer as transferFd } from "./internal/descriptors.ts"
import { native, unavailableReason as nativeReason } from "./internal/native.ts"

/**
 * File-descriptor passing is not available here: the native part is not built or cannot be loaded (the
 * `reason` says how to enable it), or an fd operation failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class DescriptorUnavailable extends Schema.TaggedError<DescriptorUnavailable>()("DescriptorUnavailable", {
  reason: Schema.String
}) {
  override get message(): string {
    return `file descriptor passing unavailable: ${this.reason}`
  }
}

/**
 * Whether this installation can pass file descriptors (the native part is built and loads). Connections
 * over Unix-domain sockets pass them when this is true.
 *
 * @since 0.1.0
 * @category getters
 */
export const isAvailable = (): boolean => native() !== undefined

/**
 * Why file descriptors cannot be passed (and how to enable it), or undefined when they can.
 *
 * @since 0.1.0
 * @category getters
 */
export const unavailableReason = (): string | undefined => (native() === undefined ? reasonText() : undefined)

const reasonText = (): string => nativeReason() ?? "unknown"

/**
 * A new pipe, `[readEnd, writeEnd]` (close-on-exec). Both ends are yours to close.
 *
 * @since 0.1.0
 * @category constructors
 */
export const pipe: Effect.Effect<readonly [number, number], DescriptorUnavailable> = Effect.suspend(() => {
  const addon = native()
  if (addon === undefined) return Effect.fail(new DescriptorUnavailable({ reason: reasonText() }))
  const result = addon.pipe()
  if (typeof result === "number") return Effect.fail(new DescriptorUnavailable({ reason: `pipe(): ${errnoName(-result)}` }))
  return Effect.succeed([result[0], result[1]] as const)
})

/**
 * Gives `fd` up to the connection that sends it next: instead of sending a duplicate (and leaving `fd`
 * to you), the library sends `fd` itself and closes it once it has been written, or when the box
 * cannot be sent. Use it for an fd made only to be sent, e.g. a responder's answer
 * `{ fd: Descriptor.transfer(readEnd) }` (Twisted's peer must close its copy "later"; here the library
 * does). Mark the fd right where it is sent: a marked fd that is never encoded stays open.
 *
 * @since 0.1.0
 * @category ownership
 */
export const transfer = (fd: number): number => transferFd(fd)
