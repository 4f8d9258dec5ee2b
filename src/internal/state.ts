/**
 * The phase of a connection, as one named state type with its transitions in one place.
 *
 * ```
 *  Plain ──StartTLS──▶ TlsPending ──handshake──▶ Tls
 *    │  ◀──error answer──┘                         │
 *    ├──switch──▶ SwitchPending ──answer──▶ Switched│
 *    │  ◀──error answer──┘    ▲──────switch─────────┘
 *  (any but Closed) ──end──▶ Closing ──▶ Closed
 * ```
 *
 * - `Plain`: AMP over the transport as it came.
 * - `TlsPending`: a StartTLS was sent or accepted; boxes sent meanwhile are held and go out over TLS.
 * - `Tls`: AMP over TLS. `confirmed` is false until the first byte arrives over TLS: a close before it
 *   means the peer rejected the handshake (with TLS 1.3 a client learns that only afterwards).
 * - `SwitchPending`: a protocol switch was sent or accepted; AMP sends fail from now on.
 * - `Switched`: the transport belongs to another protocol.
 * - `Closing`: ending; `amp` says whether boxes may still be queued (answers during a graceful close).
 * - `Closed`: over.
 * @internal
 */

export type State =
  | { readonly _tag: "Plain" }
  | { readonly _tag: "TlsPending" }
  | { readonly _tag: "Tls"; readonly confirmed: boolean }
  | { readonly _tag: "SwitchPending"; readonly tls: boolean }
  | { readonly _tag: "Switched"; readonly tls: boolean }
  | { readonly _tag: "Closing"; readonly amp: boolean; readonly tls: boolean }
  | { readonly _tag: "Closed"; readonly tls: boolean }

/** Which states each state may move to. */
const next: { readonly [K in State["_tag"]]: ReadonlyArray<State["_tag"]> } = {
  Plain: ["TlsPending", "SwitchPending", "Closing"],
  TlsPending: ["Tls", "Plain", "Closing"],
  Tls: ["Tls", "SwitchPending", "Closing"],
  SwitchPending: ["Switched", "Plain", "Tls", "Closing"],
  Switched: ["Closing"],
  Closing: ["Closed"],
  Closed: []
}

/** The state of one connection. Every change goes through `to`, which refuses what the table forbids. */
export class Machine {
  #state: State
  constructor(initial: State) {
    this.#state = initial
  }
  get current(): State {
    return this.#state
  }
  /** Moves to `state`; an illegal transition is a bug in the library (a defect). */
  to(state: State): void {
    if (!next[this.#state._tag].includes(state._tag)) {
      throw new Error(`effect-amp: illegal connection transition ${this.#state._tag} -> ${state._tag}`)
    }
    this.#state = state
  }
  /** Whether TLS is on (or was, for the closing states). */
  get tls(): boolean {
    const s = this.#state
    return s._tag === "Tls" || ("tls" in s && s.tls)
  }
  /** Whether AMP boxes may be queued now. */
  get ampOpen(): boolean {
    const tag = this.#state._tag
    return tag === "Plain" || tag === "TlsPending" || tag === "Tls" || (this.#state._tag === "Closing" && this.#state.amp)
  }
  /** Whether the connection is ending or over. */
  get ending(): boolean {
    return this.#state._tag === "Closing" || this.#state._tag === "Closed"
  }
  /** Whether a switch is pending or done (AMP is locked). */
  get locked(): boolean {
    const tag = this.#state._tag
    return tag === "SwitchPending" || tag === "Switched" || (tag === "Closing" && !(this.#state as { amp: boolean }).amp)
  }
  /** Moves to `Closing` from wherever it is (no-op when already ending). */
  close(): void {
    if (this.ending) return
    const locked = this.locked
    this.to({ _tag: "Closing", amp: !locked, tls: this.tls })
  }
}
