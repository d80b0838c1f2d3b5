/* A BPF map whose keys and values are structs of the datapath's layouts (bpf.generated.ts),
 * checked against the map's key and value sizes when it is opened. */
import type { BpfMap } from '../kernel/bpf-map.js';
import type { Decoded, FieldList, Struct } from './struct.js';

export class TypedMap<K extends FieldList, V extends FieldList> {
  constructor(
    readonly raw: BpfMap,
    readonly key: Struct<K>,
    readonly value: Struct<V>,
  ) {
    if (raw.info.keySize !== key.size || raw.info.valueSize !== value.size) {
      throw new Error(
        `map ${raw.name} has key/value sizes ${raw.info.keySize}/${raw.info.valueSize}, ` +
          `the agent expects ${key.size}/${value.size}: rebuild the BPF objects (make build)`,
      );
    }
  }

  get(k: Partial<Decoded<K>>): Decoded<V> | undefined {
    const v = this.raw.lookup(this.key.encode(k));
    return v && this.value.decode(v);
  }

  set(k: Partial<Decoded<K>>, v: Partial<Decoded<V>>): void {
    this.raw.update(this.key.encode(k), this.value.encode(v));
  }

  delete(k: Partial<Decoded<K>>): boolean {
    return this.raw.delete(this.key.encode(k));
  }

  entries(): [Decoded<K>, Decoded<V>][] {
    return this.raw.entries().map(([k, v]) => [this.key.decode(k), this.value.decode(v)]);
  }

  /** Per-CPU maps: one decoded value per possible CPU. */
  entriesPerCpu(): [Decoded<K>, Decoded<V>[]][] {
    const stride = Math.ceil(this.value.size / 8) * 8;
    return this.raw.entries().map(([k, v]) => {
      const perCpu: Decoded<V>[] = [];
      for (let off = 0; off + this.value.size <= v.length; off += stride) perCpu.push(this.value.decode(v, off));
      return [this.key.decode(k), perCpu];
    });
  }
}
