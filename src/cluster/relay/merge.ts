/* Putting several nodes' flows into one time order, the two ways Hubble Relay needs:
 *
 *  - history (no follow): every node answers with its own matching flows, each list already in
 *    time order; the union is sorted, then `number` is applied to the whole (the last N, or the
 *    first N with `first`). Asking every node for its own last N is enough: the cluster's last N
 *    are among them.
 *  - follow: flows arrive as each node sends them, and a node's flow may arrive after a later one
 *    of another node (each agent reads its ring every 10 ms, then the network). A sort buffer
 *    holds them in a heap and lets a flow out once it is older than `windowMs` by the wall clock
 *    (flow times are wall-clock times), or when the buffer is full, oldest first — Hubble Relay's
 *    sort buffer (--sort-buffer-len-max, --sort-buffer-drain-timeout). A flow that arrives later
 *    than the window (a node whose clock is behind, a stalled peer) still comes out, just not in
 *    order: a relay never drops a flow to keep order.
 *
 * Pure: no I/O, and time comes in as an argument where it matters, so the unit tests drive it. */
import { parseTimestampNs } from '../../util/time.js';
import type { Flow, GetFlowsRequest } from '../../flow/types.js';

/** A flow's time as nanoseconds since the epoch; a time that cannot be read sorts first. */
export function flowTimeNs(flow: Flow): bigint {
  return parseTimestampNs(flow.time) ?? 0n;
}

const byTime = (a: { t: bigint; node: string }, b: { t: bigint; node: string }) => (a.t < b.t ? -1 : a.t > b.t ? 1 : a.node < b.node ? -1 : a.node > b.node ? 1 : 0);

/**
 * The answer to a non-follow request from each node's answer: oldest first, ties broken by node
 * name (so the order does not depend on which node answered first), then limited by `number`
 * as one node's ring would be (absent or 0: every flow).
 */
export function mergeHistory(perNode: readonly Flow[][], req: Pick<GetFlowsRequest, 'number' | 'first'>): Flow[] {
  const keyed = perNode.flat().map((flow) => ({ flow, t: flowTimeNs(flow), node: flow.node_name ?? '' }));
  keyed.sort(byTime);
  const all = keyed.map((k) => k.flow);
  const n = req.number ?? 0;
  if (n <= 0 || n >= all.length) return all;
  return req.first ? all.slice(0, n) : all.slice(all.length - n);
}

interface Entry {
  flow: Flow;
  t: bigint;
  /** Arrival order: equal times leave in the order they came. */
  seq: number;
}

const before = (a: Entry, b: Entry) => a.t < b.t || (a.t === b.t && a.seq < b.seq);

export interface SortBufferOptions {
  /** Most flows held; one more lets the oldest out (Hubble Relay: 100). */
  maxLength: number;
  /** How long a flow waits, by its own time, for older ones from other nodes (Hubble Relay: 1 s). */
  windowMs: number;
}

/** Followed flows of several nodes put back into time order within a window (see the header). */
export class SortBuffer {
  private readonly heap: Entry[] = [];
  private seq = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly emit: (flow: Flow) => void,
    private readonly opts: SortBufferOptions,
  ) {}

  get size(): number {
    return this.heap.length;
  }

  push(flow: Flow): void {
    this.insert({ flow, t: flowTimeNs(flow), seq: this.seq++ });
    // Inserted first: when the newcomer is the oldest of all, it is the one let out.
    if (this.heap.length > this.opts.maxLength) this.emit(this.pop()!.flow);
  }

  /** Lets out, oldest first, every flow older than `nowMs - windowMs`. */
  drain(nowMs: number): void {
    const cutoff = BigInt(Math.floor(nowMs - this.opts.windowMs)) * 1_000_000n;
    while (this.heap.length > 0 && this.heap[0]!.t <= cutoff) this.emit(this.pop()!.flow);
  }

  /** Lets every flow out, oldest first (the stream is ending). */
  flush(): void {
    while (this.heap.length > 0) this.emit(this.pop()!.flow);
  }

  /** Drains by the wall clock a few times per window until stop(). */
  start(): void {
    this.timer ??= setInterval(() => this.drain(Date.now()), Math.max(10, this.opts.windowMs / 4));
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private insert(e: Entry): void {
    const h = this.heap;
    h.push(e);
    for (let i = h.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private pop(): Entry | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
