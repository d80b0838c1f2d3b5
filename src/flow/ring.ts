/* The last N flows, oldest first, and live subscribers. Old flows are overwritten whether or not
 * anyone read them (like Hubble's ring); `seen` counts every flow ever added. The ring holds
 * captured events and builds their flows only when they are read, so the cost per event stays
 * small when nobody is watching. */
import type { CapturedEvent } from './decoder.js';
import { selectFromRing } from './filter.js';
import type { Flow, FlowSource, GetFlowsRequest } from './types.js';

export class FlowRing implements FlowSource {
  private readonly slots: (CapturedEvent | undefined)[];
  private next = 0;
  private seen = 0;
  private readonly subscribers = new Set<(f: Flow) => void>();
  private readonly lossListeners = new Set<(lost: number) => void>();
  private readonly started = process.hrtime.bigint();
  /** Events the kernel could not put into its ring buffer (never seen here). */
  lostEvents = 0;

  constructor(
    readonly capacity: number,
    readonly nodeName: string,
    private readonly materialize: (ev: CapturedEvent) => Flow,
  ) {
    this.slots = new Array<CapturedEvent | undefined>(capacity);
  }

  /** The event the next push overwrites (undefined until the ring is full), for the decoder to refill in place. */
  oldest(): CapturedEvent | undefined {
    return this.slots[this.next];
  }

  push(ev: CapturedEvent): void {
    this.slots[this.next] = ev;
    this.next = this.next + 1 === this.capacity ? 0 : this.next + 1;
    this.seen++;
    if (this.subscribers.size === 0) return;
    const flow = this.materialize(ev);
    for (const s of this.subscribers) s(flow);
  }

  /** Oldest first. */
  flows(): Flow[] {
    const out: Flow[] = [];
    for (let i = 0; i < this.capacity; i++) {
      const ev = this.slots[(this.next + i) % this.capacity];
      if (ev) out.push(this.materialize(ev));
    }
    return out;
  }

  query(req: GetFlowsRequest): Flow[] {
    return selectFromRing(this.flows(), req);
  }

  /** New flows, and (`onLost`) how many datapath events were lost since the last report. */
  subscribe(onFlow: (flow: Flow) => void, onLost?: (lost: number) => void): () => void {
    this.subscribers.add(onFlow);
    if (onLost) this.lossListeners.add(onLost);
    return () => {
      this.subscribers.delete(onFlow);
      if (onLost) this.lossListeners.delete(onLost);
    };
  }

  /** The kernel's running count of lost events; followers hear of any increase. */
  noteLost(total: number): void {
    const lost = total - this.lostEvents;
    this.lostEvents = total;
    if (lost > 0) for (const l of this.lossListeners) l(lost);
  }

  status() {
    return {
      num_flows: Math.min(this.seen, this.capacity),
      max_flows: this.capacity,
      seen_flows: this.seen,
      uptime_ns: Number(process.hrtime.bigint() - this.started),
      lost_events: this.lostEvents,
      followers: this.subscribers.size,
    };
  }
}
