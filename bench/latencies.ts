/**
 * Call latencies recorded by the rpc benchmark clients (bench/amp/rpc.ts, bench/plain/rpc.ts): a
 * preallocated array (no allocation per call), capped at 2^20 samples, summarized as p50/p99 in ms.
 */
export class Latencies {
  private readonly samples = new Float64Array(1 << 20)
  private count = 0

  /** Records one latency in milliseconds (ignored once the cap is reached). */
  add(ms: number): void {
    if (this.count < this.samples.length) this.samples[this.count++] = ms
  }

  /** p50 and p99 in milliseconds (null without samples), rounded to 0.1 µs. */
  summary(): { p50ms: number | null; p99ms: number | null } {
    if (this.count === 0) return { p50ms: null, p99ms: null }
    const sorted = this.samples.subarray(0, this.count).sort()
    const at = (p: number) => Math.round(sorted[Math.min(this.count - 1, Math.floor(p * this.count))]! * 1e4) / 1e4
    return { p50ms: at(0.5), p99ms: at(0.99) }
  }
}
