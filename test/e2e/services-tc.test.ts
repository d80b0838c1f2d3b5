/* Services for traffic the socket hooks do not see: clients run outside the node's cgroup, so
 * only the endpoint programs on their interface can translate the VIP (DNAT to a backend,
 * reverse NAT of replies through connection tracking). Spread, Maglev, affinity, refusal
 * without backends, held connections across backend removal, policy on the backends, flows
 * and agent restart, all with real packets. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { CtRow, Endpoint } from '../../src/api/types.js';
import type { Flow } from '../../src/flow/types.js';
import { TestNode } from '../harness/node.js';
import { addBackend, HOLD_PORT, ServiceClients, webFromClientOnly } from '../harness/services.js';

const VIP = '10.96.7.7';

describe('services (tc-level translation of traffic outside the cgroup)', () => {
  let node: TestNode;
  let outside: ServiceClients;
  let client: Endpoint;
  let other: Endpoint;
  const backends: Endpoint[] = [];
  const list = (eps: Endpoint[], port = 8080) => eps.map((b) => `${b.ipv4}:${port}`);

  before(async () => {
    node = await TestNode.create({ podCidr: '10.233.0.0/24' });
    outside = new ServiceClients(node, true);
    await node.api.setNamespace('tc');
    client = await node.api.addEndpoint({ namespace: 'tc', name: 'client', labels: ['app=client'] });
    other = await node.api.addEndpoint({ namespace: 'tc', name: 'other', labels: ['app=other'] });
    for (const name of ['web1', 'web2', 'web3']) backends.push(await addBackend(node, 'tc', name));
  });
  after(async () => node?.cleanup());

  it('spreads TCP connections over the backends, with replies from the VIP', async () => {
    await node.api.addService({ name: 'web', frontend: `${VIP}:80/TCP`, backends: list(backends) });
    const got = await outside.who(client, 'tcp', VIP, 80, 150);
    assert.deepEqual(got.errors, {});
    for (const b of backends) assert.ok((got.counts[b.name] ?? 0) >= 25, `${b.name}: ${JSON.stringify(got.counts)}`);
    // The translation happened in the tc program: connection tracking holds the service entries.
    const ct = await node.cliJson<CtRow[]>('bpf', 'ct', 'list');
    const toBackend = ct.filter((c) => c.destination === `${VIP}:80` && c.nat?.backend);
    const fromFrontend = ct.filter((c) => c.nat?.frontend === `${VIP}:80`);
    assert.ok(toBackend.length > 0 && fromFrontend.length > 0, `service entries in CT: ${JSON.stringify(ct.slice(0, 5))}`);
    // Flows show the backend addresses and name the service.
    const r = await node.cli('observe', '--last', '200', '-o', 'json', '--from-pod', 'tc/client', '--type', 'trace');
    const names = new Set(r.stdout.trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { flow: Flow }).flow.destination_service?.name));
    assert.ok(names.has('web'), [...names].join(', '));
  });

  it('translates unconnected UDP both ways', async () => {
    await node.api.addService({ name: 'dns', frontend: `${VIP}:53/UDP`, backends: list(backends) });
    const got = await outside.who(client, 'udp', VIP, 53, 30);
    assert.deepEqual(got.errors, {});
    assert.deepEqual(got.peers, [`${VIP}:53`], 'replies come from the VIP');
    assert.ok(Object.values(got.counts).reduce((a, b) => a + b, 0) === 30);
  });

  it('keeps each flow on its backend with Maglev', async () => {
    await node.api.addService({ name: 'mg', frontend: `${VIP}:90/TCP`, algorithm: 'maglev', backends: list(backends) });
    const first = await outside.who(client, 'tcp', VIP, 90, 60, 42000);
    const again = await outside.who(client, 'tcp', VIP, 90, 60, 42000);
    assert.deepEqual(first.errors, {});
    assert.equal(Object.keys(first.counts).length, 3, JSON.stringify(first.counts));
    assert.deepEqual(again.byPort, first.byPort);
  });

  it('keeps a client address on one backend with session affinity', async () => {
    await node.api.addService({ name: 'sticky', frontend: `${VIP}:91/TCP`, backends: list(backends), affinity: 'client-ip', affinityTimeout: 600 });
    const got = await outside.who(client, 'tcp', VIP, 91, 30);
    assert.deepEqual(got.errors, {});
    assert.equal(Object.keys(got.counts).length, 1, JSON.stringify(got.counts));
  });

  it('refuses at once when the service has no backend, and reports the drop', async () => {
    await node.api.addService({ name: 'empty', frontend: `${VIP}:99/TCP` });
    const started = Date.now();
    const got = await outside.who(client, 'tcp', VIP, 99, 3);
    assert.deepEqual(got.errors, { ECONNREFUSED: 3 }, 'an ICMP port unreachable answers the SYN');
    assert.ok(Date.now() - started < 3000);
    const r = await node.cli('observe', '--all', '-o', 'json', '--from-pod', 'tc/client', '--verdict', 'DROPPED');
    const flows = r.stdout.trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { flow: Flow }).flow);
    assert.ok(
      flows.some((f) => f.drop_reason_desc === 'SERVICE_BACKEND_NOT_FOUND' && f.IP?.destination === VIP),
      `a SERVICE_BACKEND_NOT_FOUND drop: ${r.stdout.slice(0, 500)}`,
    );
  });

  it('lets a held connection finish on a removed backend, while new ones go elsewhere', async () => {
    await node.api.addService({ name: 'hold', frontend: `${VIP}:${HOLD_PORT}/TCP`, backends: list(backends, HOLD_PORT) });
    const conn = await outside.hold(client, VIP);
    try {
      const rest = backends.filter((b) => b.name !== conn.backend);
      await node.api.updateService({ name: 'hold', frontend: `${VIP}:${HOLD_PORT}/TCP`, backends: list(rest, HOLD_PORT) });
      assert.equal(await conn.roundTrip('still there'), 'echo still there');
      for (let i = 0; i < 4; i++) {
        const fresh = await outside.hold(client, VIP);
        assert.notEqual(fresh.backend, conn.backend);
        fresh.close();
      }
    } finally {
      conn.close();
    }
  });

  it("judges the backends' policy with the client's identity", async () => {
    await node.api.importPolicies([webFromClientOnly('tc')]);
    try {
      assert.deepEqual((await outside.who(client, 'tcp', VIP, 80, 10)).errors, {});
      assert.deepEqual((await outside.who(other, 'tcp', VIP, 80, 2)).errors, { timeout: 2 });
    } finally {
      await node.api.deletePolicy({ all: true });
    }
  });

  it('keeps translating while the agent is dead and after it restarts', async () => {
    await node.killAgent('SIGKILL');
    assert.deepEqual((await outside.who(client, 'tcp', VIP, 80, 20)).errors, {}, 'while the agent is dead');
    await node.startAgent();
    const got = await outside.who(client, 'tcp', VIP, 80, 30);
    assert.deepEqual(got.errors, {});
    assert.equal(Object.keys(got.counts).length, 3);
  });
});
