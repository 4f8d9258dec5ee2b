/**
 * Node socket plumbing shared by the TCP/Unix client and server. The library owns each `net.Socket`
 * and wraps it with `NodeSocket.fromDuplex` (which adds no finalizer of its own), so that a phase of the
 * connection (plain AMP, then TLS or another protocol) can be released without destroying the socket.
 * @internal
 */
// the module, not the package barrel: the barrel loads all of platform-node (HTTP, undici, …), ~1 s
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import { Effect } from "effect"
import type * as Socket from "effect/socket/Socket"
import type * as Net from "node:net"
import type { Duplex } from "node:stream"
import type { Snapshot } from "../ConnectionInfo.ts"

/** Wraps a connected Node stream as an effect Socket without taking ownership of it. */
export const wrapDuplex = (raw: Duplex): Effect.Effect<Socket.Socket> => NodeSocket.fromDuplex(Effect.succeed(raw))

const formatAddress = (address: string | undefined, port: number | undefined): string | undefined =>
  address === undefined ? undefined : port === undefined ? address : address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`

/** Describes a connected socket for `ConnectionInfo`. */
export const describe = (raw: Net.Socket, transport: "tcp" | "unix", path?: string): Partial<Snapshot> =>
  transport === "unix"
    ? { transport, localAddress: path, remoteAddress: path }
    : {
      transport,
      localAddress: formatAddress(raw.localAddress, raw.localPort),
      remoteAddress: formatAddress(raw.remoteAddress, raw.remotePort)
    }

/** Destroys a socket (used as a scope finalizer). */
export const destroy = (raw: Duplex): Effect.Effect<void> =>
  Effect.sync(() => {
    if (!raw.destroyed) raw.destroy()
  })
