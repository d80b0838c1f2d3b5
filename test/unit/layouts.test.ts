/* The TypeScript mirror of bpf/include/layouts.h must match the compiled objects' BTF: same
 * struct size, same member names in the same order, same offsets and sizes. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { sharedStructs } from '../../src/datapath/layouts.js';
import { repoRoot } from '../harness/node.js';

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
}

function loadBtf(object: string): Map<number, BtfType> {
  const out = execFileSync('bpftool', ['btf', 'dump', 'file', object, '-j'], { encoding: 'utf8' });
  return new Map((JSON.parse(out) as { types: BtfType[] }).types.map((t) => [t.id, t]));
}

function sizeOf(types: Map<number, BtfType>, id: number): number {
  const t = types.get(id)!;
  switch (t.kind) {
    case 'TYPEDEF':
    case 'VOLATILE':
    case 'CONST':
      return sizeOf(types, t.type_id!);
    case 'ARRAY':
      return sizeOf(types, t.type_id!) * t.nr_elems!;
    default:
      return t.size!;
  }
}

const objects = fs.readdirSync(path.join(repoRoot, 'build')).filter((f) => f.endsWith('.o'));

describe('shared struct layouts match the BTF of the BPF objects', () => {
  it('has objects to check (run make build)', () => assert.ok(objects.length > 0));
  for (const object of objects) {
    const types = loadBtf(path.join(repoRoot, 'build', object));
    const byName = new Map([...types.values()].filter((t) => t.kind === 'STRUCT').map((t) => [t.name, t]));
    for (const struct of sharedStructs) {
      const btf = byName.get(struct.name);
      if (!btf) continue; // this object does not use the struct
      it(`${object}: struct ${struct.name}`, () => {
        assert.equal(struct.size, btf.size, 'struct size');
        const members = btf.members!.map((m) => ({ name: m.name, offset: m.bits_offset / 8, size: sizeOf(types, m.type_id) }));
        assert.deepEqual(struct.fields.map((f) => ({ name: f.name, offset: f.offset, size: f.size })), members);
      });
    }
  }
  it('every shared struct appears in some object', () => {
    const seen = new Set(objects.flatMap((o) => [...loadBtf(path.join(repoRoot, 'build', o)).values()].map((t) => t.name)));
    for (const s of sharedStructs) assert.ok(seen.has(s.name), `${s.name} is in no object's BTF`);
  });
});
