/* Reading a BPF ring buffer from JavaScript without a call per event: the ring is mmap-ed once
 * and records are parsed in place. The main thread looks at the ring on a timer and drains it in
 * bounded batches (yielding to the event loop in between), so a backlog never stalls the agent.
 * No thread waits in poll(): poll() returns at once while any record is unread, and each round
 * trip through a waiting thread is a cross-CPU wakeup (an IPI, a VM exit here) — an idle agent
 * spent ~5% of a CPU on them. The ring (8 MiB) holds far more than the datapath writes between
 * two looks, so the datapath never wakes the reader either. Layout (kernel/bpf/ringbuf.c): a consumer page (read-write) holding the
 * consumer position, then a producer page holding the producer position followed by the data
 * area mapped twice so that a record that wraps around is contiguous. Each record starts with an
 * 8-byte header: length with BUSY (bit 31) and DISCARD (bit 30) flags, then the page offset. */
import koffi from 'koffi';
import { mapInfo } from './bpf-map.js';
import { errno, libc } from './libc.js';
import { KernelError } from '../errors.js';

const { mmap, munmap, sysconf } = libc;

const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const MAP_FAILED = 0xffffffffffffffffn;
const SC_PAGESIZE = 30;
const BUSY = 0x80000000;
const DISCARD = 0x40000000;
const HEADER = 8;

/** A record's bytes, at `offset` in a view of the whole data area (valid only during the call). */
export type RecordHandler = (data: DataView, offset: number, length: number) => void;

/** How long the reader waits between looks at the ring once it has drained it. */
const POLL_INTERVAL_MS = 10;
/** Unread bytes past which the reader goes on at once rather than after the interval. */
const CATCH_UP_BYTES = 64 * 1024;

export class RingBufferReader {
  private readonly pageSize = Number(sysconf(SC_PAGESIZE));
  private readonly size: number;
  private readonly mask: number;
  private readonly consumerPtr: bigint;
  private readonly producerPtr: bigint;
  private readonly consumer: DataView;
  private readonly producer: DataView;
  /** The data area. A DataView read is one load; Buffer's readUInt32LE and friends are checked calls. */
  private readonly data: DataView;
  private running = false;
  private timer?: NodeJS.Timeout;
  /** Records read since creation. */
  records = 0;

  constructor(
    readonly fd: number,
    private readonly onRecord: RecordHandler,
    private readonly batch = 4096,
  ) {
    this.size = mapInfo(fd).maxEntries;
    this.mask = this.size - 1;
    this.consumerPtr = this.map(this.pageSize, PROT_READ | PROT_WRITE, 0);
    this.producerPtr = this.map(this.pageSize + 2 * this.size, PROT_READ, this.pageSize);
    this.consumer = new DataView(koffi.view(this.consumerPtr, this.pageSize));
    this.producer = new DataView(koffi.view(this.producerPtr, this.pageSize));
    this.data = new DataView(koffi.view(this.producerPtr + BigInt(this.pageSize), 2 * this.size));
  }

  private map(len: number, prot: number, offset: number): bigint {
    // koffi returns a uint64_t as a number when it fits; pointers are BigInt everywhere here.
    const p = BigInt(mmap(0, len, prot, MAP_SHARED, this.fd, offset) as number | bigint);
    if (p === MAP_FAILED) throw new KernelError('mmap of the events ring buffer', errno());
    return p;
  }

  /** Bytes written by the kernel and not yet read. */
  get backlog(): number {
    return Number(this.producer.getBigUint64(0, true) - this.consumer.getBigUint64(0, true));
  }

  /** Parses at most `max` records; returns how many were read. */
  drain(max = this.batch): number {
    let pos = Number(this.consumer.getBigUint64(0, true));
    const prod = Number(this.producer.getBigUint64(0, true));
    let n = 0;
    while (pos < prod && n < max) {
      const off = pos & this.mask;
      const word = this.data.getUint32(off, true);
      if (word & BUSY) break; // the producer has not committed it yet
      const len = word & ~(BUSY | DISCARD);
      if (!(word & DISCARD)) {
        this.onRecord(this.data, off + HEADER, len);
        n++;
      }
      pos += (len + HEADER + 7) & ~7;
    }
    this.consumer.setBigUint64(0, BigInt(pos), true);
    this.records += n;
    return n;
  }

  /** Drains continuously: a look every POLL_INTERVAL_MS, and at once again while batches come out full. */
  start(): void {
    if (this.running) return;
    this.running = true;
    const loop = () => {
      if (!this.running) return;
      // Behind (a full batch, or much still unread: a record being written stops a drain short):
      // yield to the event loop, then go on. Caught up: look again after the interval.
      if (this.drain() === this.batch || this.backlog >= CATCH_UP_BYTES) setImmediate(loop);
      else this.timer = setTimeout(loop, POLL_INTERVAL_MS);
    };
    loop();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
  }

  close(): void {
    this.stop();
    munmap(this.consumerPtr, this.pageSize);
    munmap(this.producerPtr, this.pageSize + 2 * this.size);
  }
}
