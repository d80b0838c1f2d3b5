/* The agent at the sizes a real node reaches: 100,000 policy-map entries and 50,000 ipcache
 * entries (two endpoints selected by 50,000 fromCIDR prefixes). Every list over those maps
 * returns each entry exactly once without the agent's memory running away, and a kill -9 and
 * restart becomes ready and writes nothing. (Before the batch cursor was sized for the map's
 * keys, one read past 256 entries ran the agent out of memory.) */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { EndpointPolicyView, IpcacheRow } from '../../src/api/types.js';
import { TestNode } from '../harness/node.js';

const PREFIXES = 50_000;
const PER_POLICY = 10_000; // the parser's limit of peers per rule

/** Distinct /32s in 198.18.0.0/15, the range set aside for benchmarks (never routed here). */
function prefix(i: number): string {
  return `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`;
}

function policies(): { name: string; content: string }[] {
  const files = [];
  for (let p = 0; p < PREFIXES / PER_POLICY; p++) {
    const cidrs = Array.from({ length: PER_POLICY }, (_, i) => `    - ${prefix(p * PER_POLICY + i)}`).join('\n');
    files.push({
      name: `cidrs-${p}.yaml`,
      content: `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: cidrs-${p}, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: x}}
  ingress:
  - fromCIDR:
${cidrs}
`,
    });
  }
  return files;
}

function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

describe('an agent with 100,000 policy entries and 50,000 ipcache entries', () => {
  let node: TestNode;

  before(async () => {
    node = await TestNode.create({ podCidr: '10.231.0.0/24' });
    await node.api.setNamespace('default');
    for (const name of ['a', 'b']) await node.api.addEndpoint({ namespace: 'default', name, labels: ['app=x'] });
    await node.api.importPolicies(policies());
  });
  after(async () => node?.cleanup());

  const mapEntries = async (map: string) => (await node.api.status()).maps.find((m) => m.map === map)?.entries ?? 0;

  it('holds every entry in the maps', async () => {
    assert.equal(await mapEntries('mb_policy'), 2 * PREFIXES);
    assert.ok((await mapEntries('mb_ipcache')) >= PREFIXES);
  });

  it('lists every ipcache entry and every policy entry exactly once, with bounded agent memory', async () => {
    const pid = node.agent!.pid!;
    const before = rssMiB(pid);
    const rows = await node.cliJson<IpcacheRow[]>('ipcache', 'list');
    const prefixes = new Set(rows.map((r) => r.prefix));
    assert.equal(prefixes.size, rows.length, 'a prefix is listed twice');
    for (let i = 0; i < PREFIXES; i += 997) assert.ok(prefixes.has(prefix(i)), `${prefix(i)} is missing`);
    assert.equal(rows.length, await mapEntries('mb_ipcache'));
    for (const ep of ['a', 'b']) {
      const view = await node.cliJson<EndpointPolicyView>('bpf', 'policy', 'get', `default/${ep}`);
      const keys = new Set(view.entries.map((e) => `${e.direction} ${e.identity} ${e.port}`));
      assert.equal(view.entries.length, PREFIXES);
      assert.equal(keys.size, PREFIXES, 'an entry is listed twice');
    }
    const grown = rssMiB(pid) - before;
    assert.ok(grown < 200, `the agent grew by ${grown.toFixed(0)} MiB listing the maps`);
  });

  it('restarts after kill -9, becomes ready and writes nothing', async () => {
    await node.killAgent('SIGKILL');
    await node.startAgent();
    const status = await node.api.status();
    assert.equal(status.lastSync.reason, 'restore');
    assert.equal(status.lastSync.written, 0, JSON.stringify(status.lastSync));
    assert.equal(status.lastSync.deleted, 0);
    assert.ok(status.lastSync.unchanged >= PREFIXES, JSON.stringify(status.lastSync));
    assert.equal(status.maps.find((m) => m.map === 'mb_policy')?.entries, 2 * PREFIXES);
    assert.equal(status.counts.endpoints, 2);
    assert.ok(status.memory.rssBytes < 400 * 1048576, `agent RSS ${status.memory.rssBytes} after the restart`);
  });
});
