/* Reading whole maps at the sizes a node reaches: every map type the datapath uses, with the key
 * sizes of its maps, filled far past one batch, must be read back with every entry exactly once
 * and without the agent's memory growing with anything but the entries themselves. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BPF_F_NO_PREALLOC, createMap, MAP_TYPE, type BpfMap } from '../../src/kernel/bpf-map.js';

const N = 100_000;

interface Case {
  type: keyof typeof MAP_TYPE;
  keySize: number;
  valueSize: number;
  /** Where the entry's number goes in the key (LPM keys start with their prefix length). */
  keyOffset: number;
}

const CASES: Case[] = [
  { type: 'HASH', keySize: 4, valueSize: 8, keyOffset: 0 },
  { type: 'HASH', keySize: 12, valueSize: 16, keyOffset: 0 }, // the metrics and LB key shapes
  { type: 'LRU_HASH', keySize: 16, valueSize: 64, keyOffset: 0 }, // connection tracking
  { type: 'LPM_TRIE', keySize: 8, valueSize: 4, keyOffset: 4 },
  { type: 'LPM_TRIE', keySize: 16, valueSize: 8, keyOffset: 4 }, // mb_policy
  { type: 'LPM_TRIE', keySize: 24, valueSize: 12, keyOffset: 4 }, // mb_ipcache
  { type: 'ARRAY', keySize: 4, valueSize: 8, keyOffset: 0 },
  { type: 'PERCPU_HASH', keySize: 12, valueSize: 16, keyOffset: 0 },
];

function keyOf(c: Case, i: number): Buffer {
  const key = Buffer.alloc(c.keySize);
  if (c.type === 'LPM_TRIE') key.writeUInt32LE((c.keySize - 4) * 8, 0); // full length: exact entries
  key.writeUInt32LE(i, c.keyOffset); // an array's key is its index, in host order
  return key;
}

function fill(map: BpfMap, c: Case): void {
  const entries: [Buffer, Buffer][] = [];
  for (let i = 0; i < N; i++) {
    const value = Buffer.alloc(map.valueBytes);
    value.writeUInt32LE(i ^ 0x5a5a5a5a, 0);
    entries.push([keyOf(c, i), value]);
  }
  map.updateMany(entries);
}

describe('reading whole BPF maps', () => {
  for (const c of CASES) {
    it(`visits each of ${N.toLocaleString('en')} entries of a ${c.type} map with ${c.keySize}-byte keys exactly once`, () => {
      const flags = c.type === 'LPM_TRIE' ? BPF_F_NO_PREALLOC : 0;
      // An LRU map evicts before it is completely full (its free lists are per CPU).
      const capacity = c.type === 'LRU_HASH' ? 2 * N : N;
      const map = createMap(MAP_TYPE[c.type], 'mbt_walk', c.keySize, c.valueSize, capacity, flags);
      try {
        fill(map, c);
        const seen = new Uint8Array(N);
        let visits = 0;
        const rssBefore = process.memoryUsage().rss;
        map.forEach((key, value) => {
          // A walk that repeats itself must end the test, not run the process out of memory.
          if (++visits > N) throw new Error(`more than ${N} visits: the walk repeats entries`);
          const i = key.readUInt32LE(c.keyOffset);
          assert.ok(i < N, `key ${key.toString('hex')} was never written`);
          seen[i]!++;
          assert.equal(value.readUInt32LE(0), (i ^ 0x5a5a5a5a) >>> 0, `the value of entry ${i}`);
        });
        const grownMiB = (process.memoryUsage().rss - rssBefore) / 1048576;
        assert.equal(visits, N);
        assert.ok(seen.every((n) => n === 1), 'an entry was visited twice or never');
        assert.ok(grownMiB < 32, `the walk grew the process by ${grownMiB.toFixed(1)} MiB`);
        assert.equal(map.count(), N);
        assert.equal(map.entries().length, N);
      } finally {
        map.close();
      }
    });
  }

  // The datapath deletes and evicts connection-tracking entries while the agent reads them. Hash
  // maps keep their batch cursor in a bucket index, which deletions do not move. (A key cursor,
  // as arrays and LPM tries use, restarts from the first key when the key it holds is deleted;
  // only the agent writes those maps, on the thread that reads them.)
  it('reads a hash map that shrinks while it is read: no entry twice, every entry that stays', () => {
    const c = CASES[2]!;
    const map = createMap(MAP_TYPE.LRU_HASH, 'mbt_walk', c.keySize, c.valueSize, 2 * N);
    try {
      fill(map, c);
      const seen = new Set<number>();
      const deleted = new Set<number>();
      map.forEach((key) => {
        const i = key.readUInt32LE(c.keyOffset);
        assert.ok(!seen.has(i), `entry ${i} was visited twice`);
        seen.add(i);
        // Delete an entry not yet visited every so often, as a concurrent writer would.
        if (seen.size % 1000 === 0) {
          for (let j = 0; j < N; j++) {
            if (!seen.has(j) && !deleted.has(j) && map.delete(keyOf(c, j))) {
              deleted.add(j);
              break;
            }
          }
        }
      });
      // An entry deleted after the kernel copied it into the current batch is still visited.
      for (let i = 0; i < N; i++) assert.ok(seen.has(i) || deleted.has(i), `entry ${i} stayed but was never visited`);
      assert.ok(deleted.size > 50);
    } finally {
      map.close();
    }
  });
});
