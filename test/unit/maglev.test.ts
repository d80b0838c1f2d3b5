import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { maglevTable } from '../../src/service/maglev.js';

const names = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `10.0.${i >> 8}.${i & 255}:80`, weight: 1 }));

describe('Maglev', () => {
  it('fills the table and shares it evenly', () => {
    const t = maglevTable(names(3), 1021);
    assert.ok(t.every((x) => x >= 0 && x < 3));
    const counts = [0, 0, 0];
    for (const x of t) counts[x]!++;
    for (const c of counts) assert.ok(Math.abs(c - 1021 / 3) < 1021 * 0.02, String(counts));
  });
  it('is deterministic: the same backends give the same table', () => {
    assert.deepEqual(maglevTable(names(5), 1021), maglevTable(names(5), 1021));
  });
  it('moves few entries of the remaining backends when one goes away', () => {
    const before = maglevTable(names(10), 16381);
    const fewer = names(10).filter((_, i) => i !== 3);
    const after = maglevTable(fewer, 16381);
    let moved = 0;
    let kept = 0;
    for (let i = 0; i < before.length; i++) {
      if (before[i] === 3) continue;
      const was = names(10)[before[i]!]!.name;
      const now = fewer[after[i]!]!.name;
      if (was === now) kept++;
      else moved++;
    }
    assert.ok(moved / (moved + kept) < 0.02, `${moved} of ${moved + kept} entries of other backends moved`);
  });
  it('gives weighted backends proportionally more entries', () => {
    const t = maglevTable([{ name: 'a', weight: 3 }, { name: 'b', weight: 1 }], 4093);
    const a = t.filter((x) => x === 0).length;
    assert.ok(Math.abs(a / 4093 - 0.75) < 0.02, `a has ${a}`);
  });
});
