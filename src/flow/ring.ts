/* The last N flows, oldest first, and live subscribers. Old flows are overwritten whether or not
 * anyone read them (like Hubble's ring); `seen` counts every flow ever added. */
import { selectFromRing } from './filter.js';
import type { Flow, FlowSource, GetFlowsRequest } from './types.js';

export class FlowRing implements FlowSource {
  private readonly slots: (Flow | undefined)[];
  private next = 0;
  private seen = 0;
  private readonly subscribers = new Set<(f: Flow) => void>();
  private readonly started = process.hrtime.bigint();
  lostEvents = 0;

  constructor(
    readonly capacity: number,
    readonly nodeName: string,
  ) {
    this.slots = new Array<Flow | undefined>(capacity);
  }

  push(flow: Flow): void {
    this.slots[this.next] = flow;
    this.next = (this.next + 1) % this.capacity;
    this.seen++;
    for (const s of this.subscribers) s(flow);
  }

  /** Oldest first. */
  flows(): Flow[] {
    const out: Flow[] = [];
    for (let i = 0; i < this.capacity; i++) {
      const f = this.slots[(this.next + i) % this.capacity];
      if (f) out.push(f);
    }
    return out;
  }

  query(req: GetFlowsRequest): Flow[] {
    return selectFromRing(this.flows(), req);
  }

  subscribe(onFlow: (flow: Flow) => void): () => void {
    this.subscribers.add(onFlow);
    return () => this.subscribers.delete(onFlow);
  }

  status() {
    return {
      num_flows: Math.min(this.seen, this.capacity),
      max_flows: this.capacity,
      seen_flows: this.seen,
      uptime_ns: Number(process.hrtime.bigint() - this.started),
      lost_events: this.lostEvents,
    };
  }
}
