/* Maglev consistent hashing (Eisenbud et al., NSDI 2016): each backend gets a permutation of the
 * table's M slots from two hashes of its name; backends take turns claiming their next free
 * preferred slot (a backend of weight w takes w turns per round) until the table is full. Every
 * node builds the same table from the same backends, and removing a backend moves few other
 * entries. M must be prime. */
import crypto from 'node:crypto';

export const MAGLEV_DEFAULT_SIZE = 16381;
export const MAGLEV_SIZES = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071];
const SEED = 'membrane-maglev';

function hashes(name: string): [number, number] {
  const d = crypto.createHash('sha256').update(SEED).update(name).digest();
  return [d.readUInt32LE(0), d.readUInt32LE(4)];
}

/**
 * The table: for each of the M entries, the index of the backend that owns it. `backends` are
 * stable names (e.g. "10.0.0.5:8080") with their weights.
 */
export function maglevTable(backends: { name: string; weight: number }[], size = MAGLEV_DEFAULT_SIZE): Int32Array {
  const table = new Int32Array(size).fill(-1);
  if (backends.length === 0) return table;
  const offset: number[] = [];
  const skip: number[] = [];
  for (const b of backends) {
    const [h1, h2] = hashes(b.name);
    offset.push(h1 % size);
    skip.push((h2 % (size - 1)) + 1);
  }
  const next = new Array<number>(backends.length).fill(0);
  let filled = 0;
  for (;;) {
    for (let i = 0; i < backends.length; i++) {
      for (let turn = 0; turn < backends[i]!.weight; turn++) {
        let c = (offset[i]! + next[i]! * skip[i]!) % size;
        while (table[c] !== -1) {
          next[i]!++;
          c = (offset[i]! + next[i]! * skip[i]!) % size;
        }
        table[c] = i;
        next[i]!++;
        if (++filled === size) return table;
      }
    }
  }
}
