/* What the agent realized in one map, so it writes only differences. A mirror is read back from
 * the pinned map when the agent starts (a restarted agent compares its desired state with what
 * the kernel holds and writes nothing when nothing changed), then kept in step with every write.
 *
 * Keys and values are kept as latin1 strings of their bytes: one compact one-byte string per
 * entry, compared by content, instead of a Buffer whose slab of native memory would stay alive
 * with it (100,000 policy entries: ~10 MiB). Desired entries are encoded into one scratch buffer
 * and compared as strings too, so a restart that changes nothing allocates no Buffer per entry.
 * Any field change (or padding mistake) shows up as a difference because bytes are compared. */
import type { TypedMap } from './typed-map.js';
import type { Decoded, FieldList, StructValue } from './struct.js';

export interface SyncStats {
  written: number;
  deleted: number;
  unchanged: number;
}

export function addStats(a: SyncStats, b: SyncStats): SyncStats {
  return { written: a.written + b.written, deleted: a.deleted + b.deleted, unchanged: a.unchanged + b.unchanged };
}

/** One desired entry: key and value fields (absent fields are zero). */
export type Entry<K extends FieldList, V extends FieldList> = [Partial<Decoded<K>>, Partial<Decoded<V>>];
export type StructEntry<K, V> = [Partial<StructValue<K>>, Partial<StructValue<V>>];

const bytesOf = (s: string) => Buffer.from(s, 'latin1');

export class MapMirror<K extends FieldList, V extends FieldList> {
  /** Realized value by key, both as latin1 strings of their bytes. */
  private realized = new Map<string, string>();
  /** Keys per group (e.g. per endpoint), when the mirror is grouped. */
  private readonly groups = new Map<number, Set<string>>();
  private readonly keyScratch: Buffer;
  private readonly valueScratch: Buffer;
  /** Entries the last write changed in place or removed (not counting new keys). */
  lastReplacedOrDeleted = 0;

  constructor(
    readonly map: TypedMap<K, V>,
    /** The group of a key (read from its bytes), for mirrors written group by group. */
    private readonly groupOf?: (key: Buffer) => number,
  ) {
    this.keyScratch = Buffer.alloc(map.key.size);
    this.valueScratch = Buffer.alloc(map.value.size);
    map.raw.forEach((key, value) => this.remember(key.toString('latin1'), value.toString('latin1'), key));
  }

  private remember(key: string, value: string, keyBytes: Buffer): void {
    this.realized.set(key, value);
    if (this.groupOf) {
      const g = this.groupOf(keyBytes);
      let set = this.groups.get(g);
      if (!set) this.groups.set(g, (set = new Set()));
      set.add(key);
    }
  }

  private forget(key: string): void {
    this.realized.delete(key);
    if (this.groupOf) {
      const g = this.groupOf(bytesOf(key));
      const set = this.groups.get(g);
      set?.delete(key);
      if (set?.size === 0) this.groups.delete(g);
    }
  }

  /** Realized entries, decoded (e.g. to recover state written by an earlier agent). */
  *values(): Generator<[Decoded<K>, Decoded<V>]> {
    for (const [k, v] of this.realized) yield [this.map.key.decode(bytesOf(k)), this.map.value.decode(bytesOf(v))];
  }

  groupIds(): number[] {
    return [...this.groups.keys()];
  }

  get size(): number {
    return this.realized.size;
  }

  /** Makes group `g` hold exactly `entries`. */
  replaceGroup(g: number, entries: Entry<K, V>[]): SyncStats {
    const want = this.encode(entries);
    const stale = [...(this.groups.get(g) ?? [])].filter((k) => !want.has(k));
    return this.write(want, stale);
  }

  /** Makes the whole map equal to `desired`. */
  sync(desired: Entry<K, V>[]): SyncStats {
    const want = this.encode(desired);
    const stale = [...this.realized.keys()].filter((k) => !want.has(k));
    return this.write(want, stale);
  }

  /** Makes the given keys equal to `upsert` and removes `remove`; other keys are left alone. */
  update(upsert: Entry<K, V>[], remove: Partial<Decoded<K>>[]): SyncStats {
    const want = this.encode(upsert);
    const stale = remove.map((k) => this.keyString(k)).filter((k) => this.realized.has(k) && !want.has(k));
    return this.write(want, stale);
  }

  private keyString(k: Partial<Decoded<K>>): string {
    return this.map.key.encode(k, this.keyScratch).toString('latin1');
  }

  private encode(entries: Entry<K, V>[]): Map<string, string> {
    const want = new Map<string, string>();
    for (const [k, v] of entries) want.set(this.keyString(k), this.map.value.encode(v, this.valueScratch).toString('latin1'));
    return want;
  }

  private write(want: Map<string, string>, stale: string[]): SyncStats {
    const writes: [string, string][] = [];
    let unchanged = 0;
    let replaced = 0;
    for (const [key, value] of want) {
      const have = this.realized.get(key);
      if (have === value) unchanged++;
      else {
        if (have !== undefined) replaced++;
        writes.push([key, value]);
      }
    }
    this.lastReplacedOrDeleted = replaced + stale.length;
    // Writes before deletes: an LPM entry being replaced by a broader one never leaves a gap.
    this.map.raw.updateMany(writes.map(([k, v]) => [bytesOf(k), bytesOf(v)]));
    this.map.raw.deleteMany(stale.map(bytesOf));
    for (const [k, v] of writes) this.remember(k, v, bytesOf(k));
    for (const k of stale) this.forget(k);
    return { written: writes.length, deleted: stale.length, unchanged };
  }
}
