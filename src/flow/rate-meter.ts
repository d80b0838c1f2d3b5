/* Flows per second over the last minute, as ServerStatus reports it (flows_rate), counted in
 * one-second buckets from a counter sampled once a second: subscribing to every flow would make
 * the flow ring build each flow, which is exactly the work it defers until someone reads. */
import type { FlowSource } from './types.js';

export class RateMeter {
  private readonly buckets = new Array<number>(60).fill(0);
  private readonly started = Date.now();
  private last = Math.floor(Date.now() / 1000);

  add(n = 1): void {
    this.advance();
    this.buckets[this.last % 60]! += n;
  }

  perSecond(): number {
    this.advance();
    const total = this.buckets.reduce((a, b) => a + b, 0);
    const window = Math.min(60, Math.max(1, (Date.now() - this.started) / 1000));
    return total / window;
  }

  private advance(): void {
    const now = Math.floor(Date.now() / 1000);
    for (let s = Math.max(this.last + 1, now - 59); s <= now; s++) this.buckets[s % 60] = 0;
    this.last = Math.max(this.last, now);
  }
}

/** A meter fed from `source`'s seen_flows once a second until the returned stop() is called. */
export function meterSource(source: Pick<FlowSource, 'status'>): { meter: RateMeter; stop: () => void } {
  const meter = new RateMeter();
  let lastSeen = source.status().seen_flows;
  const timer = setInterval(() => {
    const seen = source.status().seen_flows;
    meter.add(seen - lastSeen);
    lastSeen = seen;
  }, 1000);
  timer.unref();
  return { meter, stop: () => clearInterval(timer) };
}
