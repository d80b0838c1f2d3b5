/* The flow pipeline of the agent: ring buffer -> decoder -> flow ring, metrics and subscribers.
 * Lost events (the kernel could not reserve ring space) are read from a per-CPU counter. */
import type { Logger } from 'pino';
import type { Datapath } from '../datapath/datapath.js';
import { aggregationCode, flowEvent, type AggregationLevel } from '../datapath/layouts.js';
import { RingBufferReader } from '../kernel/ringbuf.js';
import type { FlowDecoder } from './decoder.js';
import type { Metrics } from './metrics.js';
import type { FlowRing } from './ring.js';

export class FlowMonitor {
  private readonly reader: RingBufferReader;
  private lostTimer?: NodeJS.Timeout;
  decodeErrors = 0;

  constructor(
    private readonly datapath: Datapath,
    private readonly ring: FlowRing,
    private readonly metrics: Metrics,
    private readonly decoder: FlowDecoder,
    private readonly log: Logger,
  ) {
    this.reader = new RingBufferReader(datapath.events.fd, (data, offset, length) => this.onRecord(data, offset, length));
  }

  /** Writes the settings the programs read on every packet. */
  configure(level: AggregationLevel, fastPath: boolean, reportIntervalSeconds = 5): void {
    this.datapath.configure({ aggregation: aggregationCode(level), report_interval: reportIntervalSeconds, fast_path: fastPath ? 1 : 0 });
  }

  private onRecord(data: DataView, offset: number, length: number): void {
    if (length < flowEvent.size) {
      this.decodeErrors++;
      return;
    }
    try {
      const ev = this.decoder.capture(data, offset, this.ring.oldest());
      this.metrics.count(ev);
      this.ring.push(ev);
    } catch (err) {
      if (this.decodeErrors++ === 0) this.log.error({ err: (err as Error).message }, 'could not decode a datapath event');
    }
  }

  start(): void {
    this.reader.start();
    this.lostTimer = setInterval(() => this.ring.noteLost(this.datapath.eventsLost()), 1000);
    this.lostTimer.unref();
  }

  get eventsRead(): number {
    return this.reader.records;
  }

  /** Bytes in the kernel ring not read yet. */
  get backlogBytes(): number {
    return this.reader.backlog;
  }

  stop(): void {
    clearInterval(this.lostTimer);
    this.reader.close();
  }
}
