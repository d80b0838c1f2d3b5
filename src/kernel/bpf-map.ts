/* A BPF map by file descriptor: raw byte access, iteration and batch operations. Typed access
 * (the struct codecs of the datapath's layouts) is layered on top in src/datapath/typed-map.ts. */
import fs from 'node:fs';
import { c, check, objectInfo } from './libbpf.js';
import { closeFd } from './libc.js';
import { KernelError } from '../errors.js';

export const MAP_TYPE = {
  HASH: 1,
  ARRAY: 2,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  LPM_TRIE: 11,
  RINGBUF: 27,
} as const;

const ENOENT = 2;
const EINTR = 4;
const ENOSPC = 28;
/** Entries a batch syscall returns: large enough that a syscall's cost is spread, small enough to stay in cache. */
const BATCH_CHUNK = 256;
const MAX_BATCH_CHUNK = 65536;
const MAX_INTERRUPTED = 100;

const PERCPU_TYPES = new Set<number>([MAP_TYPE.PERCPU_HASH, MAP_TYPE.PERCPU_ARRAY, MAP_TYPE.LRU_PERCPU_HASH]);

let possibleCpusCache: number | undefined;
/** Number of possible CPUs: per-CPU map values hold one slot for each. */
export function possibleCpus(): number {
  if (possibleCpusCache === undefined) {
    const text = fs.readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim();
    let n = 0;
    for (const part of text.split(',')) {
      const [a, b] = part.split('-').map(Number);
      n += b === undefined ? 1 : b - (a as number) + 1;
    }
    possibleCpusCache = n;
  }
  return possibleCpusCache;
}

export interface MapInfo {
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
}

export function mapInfo(fd: number): MapInfo {
  const info = objectInfo(fd, 'map');
  const nameBytes = info.subarray(24, 40);
  const nul = nameBytes.indexOf(0);
  return {
    type: info.readUInt32LE(0),
    id: info.readUInt32LE(4),
    keySize: info.readUInt32LE(8),
    valueSize: info.readUInt32LE(12),
    maxEntries: info.readUInt32LE(16),
    flags: info.readUInt32LE(20),
    name: nameBytes.subarray(0, nul < 0 ? 16 : nul).toString(),
  };
}

/** struct bpf_map_create_opts of libbpf 1.1: sz, then map_flags at offset 28. */
const CREATE_OPTS_SIZE = 48;
const CREATE_OPTS_FLAGS = 28;
export const BPF_F_NO_PREALLOC = 1;

/** A new unpinned map (tests, scratch maps); closing its fd frees it. */
export function createMap(type: number, name: string, keySize: number, valueSize: number, maxEntries: number, flags = 0): BpfMap {
  const opts = Buffer.alloc(CREATE_OPTS_SIZE);
  opts.writeBigUInt64LE(BigInt(CREATE_OPTS_SIZE), 0);
  opts.writeUInt32LE(flags, CREATE_OPTS_FLAGS);
  return new BpfMap(check(`creating map ${name}`, c.mapCreate(type, name, keySize, valueSize, maxEntries, opts)));
}

export class BpfMap {
  readonly info: MapInfo;
  /** Bytes of one value as the syscalls see it (all CPUs for per-CPU maps). */
  readonly valueBytes: number;
  readonly percpu: boolean;
  private batchUnsupported = false;

  constructor(readonly fd: number) {
    this.info = mapInfo(fd);
    this.percpu = PERCPU_TYPES.has(this.info.type);
    this.valueBytes = this.percpu ? Math.ceil(this.info.valueSize / 8) * 8 * possibleCpus() : this.info.valueSize;
  }

  get name(): string {
    return this.info.name;
  }

  close(): void {
    closeFd(this.fd);
  }

  lookup(key: Buffer): Buffer | undefined {
    const value = Buffer.alloc(this.valueBytes);
    const ret = c.mapLookupElem(this.fd, key, value);
    if (ret === -ENOENT) return undefined;
    check(`lookup in ${this.name}`, ret);
    return value;
  }

  update(key: Buffer, value: Buffer, flags = 0n): void {
    check(`update of ${this.name}`, c.mapUpdateElem(this.fd, key, value, flags));
  }

  /** Returns false when the key was not there. */
  delete(key: Buffer): boolean {
    const ret = c.mapDeleteElem(this.fd, key);
    if (ret === -ENOENT) return false;
    check(`delete from ${this.name}`, ret);
    return true;
  }

  *keys(): Generator<Buffer> {
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.info.keySize);
      const ret = c.mapGetNextKey(this.fd, prev, next);
      if (ret === -ENOENT) return;
      check(`iteration of ${this.name}`, ret);
      yield next;
      prev = next;
    }
  }

  /**
   * Visits every entry; entries deleted concurrently are skipped. `key` and `value` are views
   * valid only during the call (copy what you keep), so a walk of a large map allocates little.
   */
  forEach(visit: (key: Buffer, value: Buffer) => void): void {
    if (this.forEachBatched(visit)) return;
    for (const key of this.keys()) {
      const value = this.lookup(key);
      if (value) visit(key, value);
    }
  }

  /** Every entry; entries deleted concurrently are skipped. */
  entries(): [Buffer, Buffer][] {
    const out: [Buffer, Buffer][] = [];
    this.forEach((key, value) => out.push([Buffer.from(key), Buffer.from(value)]));
    return out;
  }

  count(): number {
    let n = 0;
    this.forEach(() => n++);
    return n;
  }

  /** Writes many entries in one syscall where the map type allows it. */
  updateMany(entries: [Buffer, Buffer][]): void {
    if (entries.length === 0) return;
    if (!this.batchUnsupported && entries.length > 1) {
      const keys = Buffer.concat(entries.map(([k]) => k));
      const values = Buffer.concat(entries.map(([, v]) => v));
      const count = new Uint32Array([entries.length]);
      const ret = c.mapUpdateBatch(this.fd, keys, values, count, null);
      if (ret === 0) return;
      if (!this.markBatchUnsupported(ret)) check(`batch update of ${this.name}`, ret);
      // Part of a failed batch may be written; single updates below are idempotent.
    }
    for (const [k, v] of entries) this.update(k, v);
  }

  deleteMany(keys: Buffer[]): void {
    if (keys.length === 0) return;
    if (!this.batchUnsupported && keys.length > 1) {
      const count = new Uint32Array([keys.length]);
      const ret = c.mapDeleteBatch(this.fd, Buffer.concat(keys), count, null);
      if (ret === 0) return;
      if (!this.markBatchUnsupported(ret) && ret !== -ENOENT) check(`batch delete from ${this.name}`, ret);
    }
    for (const k of keys) this.delete(k);
  }

  private markBatchUnsupported(ret: number): boolean {
    // LPM tries and old kernels have no batch ops: EINVAL/ENOTSUPP/EOPNOTSUPP.
    if (ret === -22 || ret === -524 || ret === -95) {
      this.batchUnsupported = true;
      return true;
    }
    return false;
  }

  /**
   * Visits every entry in batches of lookups a syscall; false where the map type has no batch
   * lookup. The kernel writes its cursor into `out_batch`: hash maps a u32 bucket index, every
   * other type (arrays, LPM tries: the generic batch code) the last key it copied, key_size
   * bytes. A cursor buffer smaller than the key let the kernel write past it into the agent's
   * heap, and the walk never ended: size it for both.
   */
  private forEachBatched(visit: (key: Buffer, value: Buffer) => void): boolean {
    if (this.batchUnsupported) return false;
    const { keySize } = this.info;
    let chunk = BATCH_CHUNK;
    let keys = Buffer.alloc(keySize * chunk);
    let values = Buffer.alloc(this.valueBytes * chunk);
    const cursorBytes = Math.max(keySize, 4);
    let inBatch: Buffer | null = null;
    const outBatch = Buffer.alloc(cursorBytes);
    const count = new Uint32Array(1);
    let interrupted = 0;
    for (;;) {
      count[0] = chunk;
      const ret = c.mapLookupBatch(this.fd, inBatch, outBatch, keys, values, count, null);
      const n = ret === 0 || ret === -ENOENT || ret === -EINTR ? (count[0] as number) : 0;
      if (ret < 0 && ret !== -ENOENT) {
        // Unsupported shows on the first call; later, falling back would visit entries twice.
        if (inBatch === null && this.markBatchUnsupported(ret)) return false;
        if (ret === -ENOSPC && chunk < MAX_BATCH_CHUNK) {
          // A hash bucket holds more entries than the batch: take it whole in a bigger one.
          chunk *= 4;
          keys = Buffer.alloc(keySize * chunk);
          values = Buffer.alloc(this.valueBytes * chunk);
          continue;
        }
        // The generic walk gives up after an entry vanished under it a few times; go on from
        // the last entry it copied.
        if (ret !== -EINTR || ++interrupted > MAX_INTERRUPTED) throw new KernelError(`batch lookup in ${this.name}`, -ret);
      }
      for (let i = 0; i < n; i++) {
        visit(keys.subarray(i * keySize, (i + 1) * keySize), values.subarray(i * this.valueBytes, (i + 1) * this.valueBytes));
      }
      if (ret === -ENOENT) return true; // the walk is complete
      if (n > 0) inBatch = Buffer.from(outBatch);
    }
  }
}
