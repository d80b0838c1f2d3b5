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

/** The struct's members, a nested struct's flattened into `outer_inner` names (as the TypeScript mirror spells them). */
function flatMembers(types: Map<number, BtfType>, struct: BtfType, prefix = '', base = 0): { name: string; offset: number; size: number }[] {
  return struct.members!.flatMap((m) => {
    let t = types.get(m.type_id)!;
    while (t.kind === 'TYPEDEF' || t.kind === 'VOLATILE' || t.kind === 'CONST') t = types.get(t.type_id!)!;
    const offset = base + m.bits_offset / 8;
    if (t.kind === 'STRUCT') return flatMembers(types, t, `${prefix}${m.name}_`, offset);
    return [{ name: `${prefix}${m.name}`, offset, size: sizeOf(types, m.type_id) }];
  });
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
        const members = flatMembers(types, btf);
        assert.deepEqual(struct.fields.map((f) => ({ name: f.name, offset: f.offset, size: f.size })), members);
      });
    }
  }
  it('every shared struct appears in some object', () => {
    const seen = new Set(objects.flatMap((o) => [...loadBtf(path.join(repoRoot, 'build', o)).values()].map((t) => t.name)));
    for (const s of sharedStructs) assert.ok(seen.has(s.name), `${s.name} is in no object's BTF`);
  });
});
