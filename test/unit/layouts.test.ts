/* One source of truth between C and TypeScript: the agent's structs, constants and map names
 * (src/datapath/bpf.generated.ts) are generated from the BTF of the compiled objects, so they
 * cannot drift from bpf/include/layouts.h; this test fails when the generated file is edited by
 * hand or was not regenerated after the C changed, when a program object disagrees with the
 * layouts it was compiled with, and when a number both sides share with Hubble (drop reasons,
 * verdicts, directions) is not Hubble's. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { generate, OBJECTS, readBtf } from '../../scripts/gen-bpf-types.js';
import * as generated from '../../src/datapath/bpf.generated.js';
import { hubbleEnum } from '../../src/flow/proto.js';
import type { Struct } from '../../src/datapath/struct.js';
import { repoRoot } from '../harness/node.js';

const GENERATED = path.join(repoRoot, 'src/datapath/bpf.generated.ts');

type Btf = ReturnType<typeof readBtf>;
type BtfType = Btf extends Map<number, infer T> ? T : never;

function sizeOf(types: Btf, id: number): number {
  const t = types.get(id)!;
  if (['TYPEDEF', 'VOLATILE', 'CONST'].includes(t.kind)) return sizeOf(types, t.type_id!);
  if (t.kind === 'ARRAY') return sizeOf(types, t.type_id!) * t.nr_elems!;
  return t.size!;
}

/** The struct's members, a nested struct's flattened into `outer_inner` names (as the codecs name them). */
function flatMembers(types: Btf, struct: BtfType, prefix = '', base = 0): { name: string; offset: number; size: number }[] {
  return struct.members!.flatMap((m) => {
    let t = types.get(m.type_id)!;
    while (['TYPEDEF', 'VOLATILE', 'CONST'].includes(t.kind)) t = types.get(t.type_id!)!;
    const offset = base + m.bits_offset / 8;
    if (t.kind === 'STRUCT') return flatMembers(types, t, `${prefix}${m.name}_`, offset);
    return [{ name: `${prefix}${m.name}`, offset, size: sizeOf(types, m.type_id) }];
  });
}

type AnyStruct = Pick<Struct<never>, 'name' | 'size' | 'fields'>;
const structs = (Object.values(generated) as unknown[]).filter((v): v is AnyStruct => typeof v === 'object' && v !== null && 'fields' in v && 'encode' in v);

describe('the generated layouts are the datapath\'s', () => {
  it('bpf.generated.ts is exactly what the objects\' BTF generates (edit bpf/include/layouts.h and rebuild, never the file)', () => {
    assert.equal(fs.readFileSync(GENERATED, 'utf8'), generate(OBJECTS));
  });

  for (const [object, file] of Object.entries(OBJECTS.programs)) {
    const types = readBtf(file);
    const byName = new Map([...types.values()].filter((t) => t.kind === 'STRUCT').map((t) => [t.name, t]));
    it(`${object}.o was compiled with the same structs`, () => {
      let checked = 0;
      for (const struct of structs) {
        const btf = byName.get(struct.name);
        if (!btf) continue; // this object does not use the struct
        assert.equal(struct.size, btf.size, `struct ${struct.name}: size`);
        assert.deepEqual(
          struct.fields.map((f) => ({ name: f.name, offset: f.offset, size: f.size })),
          flatMembers(types, btf),
          `struct ${struct.name}`,
        );
        checked++;
      }
      assert.ok(checked >= 5, `only ${checked} structs in ${object}.o`);
    });
  }

  it('carries byte order in the types: ports are be16, addresses ipv4', () => {
    const type = (s: AnyStruct, name: string) => s.fields.find((f) => f.name === name)?.type;
    assert.equal(type(generated.policyKey, 'dport'), 'be16');
    assert.equal(type(generated.flowEvent, 'saddr'), 'ipv4');
    assert.equal(type(generated.ctKey, 'port_a'), 'be16');
    assert.equal(type(generated.endpointInfo, 'mac'), 'mac');
  });
});

describe('the numbers shared with Hubble are Hubble\'s', () => {
  it('every drop reason has Hubble\'s DropReason name for its number (flow.proto)', () => {
    const hubble = hubbleEnum('flow.DropReason');
    for (const [name, code] of Object.entries(generated.DROP_REASON)) {
      if (code === generated.DROP_REASON.FORWARDED) continue; // no drop: 0 is DROP_REASON_UNKNOWN to Hubble
      assert.equal(hubble.get(code), name, `MB_DROP_${name} = ${code}`);
    }
  });

  it('verdicts and traffic directions have Hubble\'s numbers', () => {
    const verdicts = hubbleEnum('flow.Verdict');
    for (const [name, n] of Object.entries(generated.VERDICT)) assert.equal(verdicts.get(n), name, `MB_VERDICT_${name}`);
    const directions = hubbleEnum('flow.TrafficDirection');
    for (const [name, n] of Object.entries(generated.DIRECTION)) assert.equal(directions.get(n), name, `MB_DIR_${name}`);
  });
});
