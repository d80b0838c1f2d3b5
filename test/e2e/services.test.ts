/* Services through socket-level load balancing: a client endpoint reaches a VIP served by
 * backend endpoints; the spread follows the backends, label-selected backends follow endpoint
 * churn, a service without backends refuses at once, UDP replies come from the VIP, policy on
 * the backends applies to VIP traffic, and services survive an agent restart. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Endpoint, ServiceView } from '../../src/api/types.js';
import { TestNode, sleep } from '../harness/node.js';
import { addBackend as startBackend, HOLD_PORT, ServiceClients, webFromClientOnly } from '../harness/services.js';

const VIP = '10.96.0.10';

describe('services (socket-level load balancing)', () => {
  let node: TestNode;
  let clients: ServiceClients;
  let client: Endpoint;
  let other: Endpoint;
  const backends: Endpoint[] = [];

  const who = (from: Endpoint, proto: 'tcp' | 'udp', port: number, n: number, basePort?: number) => clients.who(from, proto, VIP, port, n, basePort);
  const addBackend = (name: string) => startBackend(node, 'svc', name);

  before(async () => {
    node = await TestNode.create({ podCidr: '10.235.0.0/24' });
    clients = new ServiceClients(node, false);
    await node.api.setNamespace('svc');
    client = await node.api.addEndpoint({ namespace: 'svc', name: 'client', labels: ['app=client'] });
    other = await node.api.addEndpoint({ namespace: 'svc', name: 'other', labels: ['app=other'] });
    for (const name of ['web1', 'web2', 'web3']) backends.push(await addBackend(name));
  });
  after(async () => node?.cleanup());

  it('spreads connections to a VIP over its backends', async () => {
    const r = await node.cli(
      'service', 'add', 'web', '--frontend', `${VIP}:80/TCP`,
      ...backends.flatMap((b) => ['--backend', `${b.ipv4}:8080`]), '-o', 'json',
    );
    assert.equal(r.code, 0, r.stderr);
    const got = await who(client, 'tcp', 80, 300);
    assert.deepEqual(got.errors, {});
    for (const name of ['web1', 'web2', 'web3']) {
      assert.ok((got.counts[name] ?? 0) >= 60, `${name} got ${got.counts[name]} of 300: ${JSON.stringify(got.counts)}`);
    }
  });

  it('weights backends', async () => {
    const r = await node.cli('service', 'update', 'web', '--frontend', `${VIP}:80/TCP`, '--backend', `${backends[0]!.ipv4}:8080,3`, '--backend', `${backends[1]!.ipv4}:8080`);
    assert.equal(r.code, 0, r.stderr);
    const got = await who(client, 'tcp', 80, 400);
    assert.ok((got.counts.web1 ?? 0) > 2 * (got.counts.web2 ?? 0), JSON.stringify(got.counts));
    assert.equal(got.counts.web3, undefined);
  });

  it('refuses connections at once when a service has no backend', async () => {
    await node.api.updateService({ name: 'web', frontend: `${VIP}:80/TCP` });
    const started = Date.now();
    const got = await who(client, 'tcp', 80, 5);
    assert.deepEqual(got.errors, { ECONNREFUSED: 5 });
    assert.ok(Date.now() - started < 5000);
    const list = await node.cli('service', 'list');
    assert.match(list.stdout, /none: connections are refused/);
  });

  it('follows endpoints selected by labels', async () => {
    await node.api.deleteService('web');
    await node.api.addService({ name: 'web', frontend: `${VIP}:80/TCP`, selector: ['app=web'], targetPort: 8080 });
    let got = await who(client, 'tcp', 80, 150);
    assert.deepEqual(Object.keys(got.counts).sort(), ['web1', 'web2', 'web3']);
    backends.push(await addBackend('web4'));
    got = await who(client, 'tcp', 80, 200);
    assert.ok((got.counts.web4 ?? 0) > 0, `the new endpoint serves: ${JSON.stringify(got.counts)}`);
    await node.api.deleteEndpoint('svc', 'web1');
    got = await who(client, 'tcp', 80, 150);
    assert.equal(got.counts.web1, undefined, 'a deleted endpoint gets no new connections');
    assert.deepEqual(got.errors, {});
  });

  it('shows the realized maps and names the service in flows', async () => {
    const lb = await node.cliJson<{ frontend: string; count: number; backends: string[] }[]>('bpf', 'lb', 'list');
    const web = lb.find((r) => r.frontend === `${VIP}:80/TCP`);
    assert.equal(web?.count, 3);
    assert.deepEqual([...(web?.backends ?? [])].sort(), backends.slice(1).map((b) => `${b.ipv4}:8080`).sort());
    const r = await node.cli('observe', '--all', '-o', 'json', '--from-pod', 'svc/client', '--type', 'trace');
    const services = new Set(r.stdout.trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { flow: { destination_service?: { name: string } } }).flow.destination_service?.name));
    assert.ok(services.has('web'), `flows to the backends name the service: ${[...services].join(', ')}`);
  });

  it('keeps every flow on its backend with Maglev, and moves only the removed backend\'s flows', async () => {
    const live = backends.filter((b) => b.name !== 'web1');
    await node.api.addService({ name: 'mg', frontend: `${VIP}:90/TCP`, algorithm: 'maglev', backends: live.map((b) => `${b.ipv4}:8080`) });
    const first = await who(client, 'tcp', 90, 120, 41000);
    const again = await who(client, 'tcp', 90, 120, 41000);
    assert.deepEqual(first.errors, {});
    assert.deepEqual(again.byPort, first.byPort, 'the same flows land on the same backends');
    assert.ok(Object.keys(first.counts).length === live.length, `all backends serve: ${JSON.stringify(first.counts)}`);
    const gone = live[0]!;
    await node.api.updateService({ name: 'mg', frontend: `${VIP}:90/TCP`, algorithm: 'maglev', backends: live.slice(1).map((b) => `${b.ipv4}:8080`) });
    const after = await who(client, 'tcp', 90, 120, 41000);
    let moved = 0;
    for (const [port, was] of Object.entries(first.byPort)) {
      if (was === gone.name) assert.notEqual(after.byPort[port], gone.name);
      else if (after.byPort[port] !== was) moved++;
    }
    assert.ok(moved <= 2, `${moved} flows of the remaining backends moved`);
    await node.api.deleteService('mg');
  });

  it('keeps a client on one backend with session affinity, until its backend leaves', async () => {
    const live = backends.filter((b) => b.name !== 'web1');
    const req = { name: 'sticky', frontend: `${VIP}:91/TCP`, backends: live.map((b) => `${b.ipv4}:8080`), affinity: 'client-ip', affinityTimeout: 600 };
    await node.api.addService(req);
    const first = await who(client, 'tcp', 91, 40);
    assert.deepEqual(first.errors, {});
    assert.equal(Object.keys(first.counts).length, 1, `one backend for one client: ${JSON.stringify(first.counts)}`);
    const lb = await node.cliJson<{ frontend: string; affinityTimeout: number; affinityClients: number }[]>('bpf', 'lb', 'list');
    assert.deepEqual(lb.filter((r) => r.frontend === `${VIP}:91/TCP`).map((r) => [r.affinityTimeout, r.affinityClients]), [[600, 1]]);
    const mine = Object.keys(first.counts)[0]!;
    await node.api.updateService({ ...req, backends: live.filter((b) => b.name !== mine).map((b) => `${b.ipv4}:8080`) });
    const moved = await who(client, 'tcp', 91, 30);
    assert.deepEqual(moved.errors, {});
    assert.equal(moved.counts[mine], undefined, 'a backend that left the service gets no remembered clients');
    assert.equal(Object.keys(moved.counts).length, 1, `the client sticks to its new backend: ${JSON.stringify(moved.counts)}`);
    await node.api.deleteService('sticky');
  });

  it('forgets a client whose affinity timed out', async () => {
    const req = { name: 'brief', frontend: `${VIP}:92/TCP`, backends: backends.slice(1).map((b) => `${b.ipv4}:8080`), affinity: 'client-ip', affinityTimeout: 1 };
    await node.api.addService(req);
    const seen = new Set<string>();
    // Each connection comes after the affinity expired: it is a fresh pick among three backends.
    for (let i = 0; i < 8 && seen.size < 2; i++) {
      const got = await who(client, 'tcp', 92, 1);
      for (const name of Object.keys(got.counts)) seen.add(name);
      await sleep(1200);
    }
    assert.ok(seen.size >= 2, `after the timeout a client is balanced anew: ${[...seen].join(', ')}`);
    await node.api.deleteService('brief');
  });

  it('lets connected clients finish on a backend that was removed, while new ones go elsewhere', async () => {
    const live = backends.filter((b) => b.name !== 'web1');
    await node.api.addService({ name: 'hold', frontend: `${VIP}:${HOLD_PORT}/TCP`, backends: live.map((b) => `${b.ipv4}:${HOLD_PORT}`) });
    const conn = await clients.hold(client, VIP);
    try {
      await node.api.updateService({ name: 'hold', frontend: `${VIP}:${HOLD_PORT}/TCP`, backends: live.filter((b) => b.name !== conn.backend).map((b) => `${b.ipv4}:${HOLD_PORT}`) });
      assert.equal(await conn.roundTrip('still there'), 'echo still there', 'the established connection keeps its backend');
      for (let i = 0; i < 5; i++) {
        const fresh = await clients.hold(client, VIP);
        assert.notEqual(fresh.backend, conn.backend, 'new connections avoid the removed backend');
        fresh.close();
      }
    } finally {
      conn.close();
      await node.api.deleteService('hold');
    }
  });

  it('balances UDP per datagram and answers from the VIP', async () => {
    await node.api.addService({ name: 'dns', frontend: `${VIP}:53/UDP`, selector: ['app=web'], targetPort: 8080 });
    const got = await who(client, 'udp', 53, 90);
    assert.deepEqual(got.errors, {});
    assert.ok(Object.keys(got.counts).length >= 2, JSON.stringify(got.counts));
    assert.deepEqual(got.peers, [`${VIP}:53`], 'replies look like they come from the VIP');
  });

  it("applies the backends' policy to VIP traffic, with the client's identity", async () => {
    await node.api.importPolicies([webFromClientOnly('svc')]);
    try {
      const allowed = await who(client, 'tcp', 80, 20);
      assert.deepEqual(allowed.errors, {});
      const denied = await who(other, 'tcp', 80, 3);
      assert.deepEqual(denied.errors, { timeout: 3 });
    } finally {
      await node.api.deletePolicy({ all: true });
    }
  });

  it('keeps services working across an agent restart', async () => {
    await node.killAgent('SIGKILL');
    let got = await who(client, 'tcp', 80, 30);
    assert.deepEqual(got.errors, {}, 'while the agent is dead');
    await node.startAgent();
    const list = await node.cliJson<ServiceView[]>('service', 'list');
    assert.deepEqual(list.map((s) => s.name), ['web', 'dns']);
    got = await who(client, 'tcp', 80, 30);
    assert.deepEqual(got.errors, {});
  });

  const bad: [string, string[], RegExp][] = [
    ['a duplicate frontend', ['service', 'add', 'dup', '--frontend', `${VIP}:80/TCP`], /already used by service web/],
    ['a malformed address', ['service', 'add', 'x', '--frontend', '10.96.0:80'], /not an IPv4 address/],
    ['a port out of range', ['service', 'add', 'x', '--frontend', `${VIP}:70000/TCP`], /out of range/],
    ['a weight out of range', ['service', 'add', 'x', '--frontend', `${VIP}:81/TCP`, '--backend', '10.235.0.5:80,500'], /weight must be/],
    ['an unknown service', ['service', 'delete', 'nope'], /service nope does not exist/],
    ['an unknown algorithm', ['service', 'add', 'x', '--frontend', `${VIP}:82/TCP`, '--algorithm', 'roundrobin'], /choose random or maglev/],
    ['an unknown affinity', ['service', 'add', 'x', '--frontend', `${VIP}:83/TCP`, '--affinity', 'cookie'], /choose client-ip or none/],
    ['an affinity timeout out of range', ['service', 'add', 'x', '--frontend', `${VIP}:84/TCP`, '--affinity', 'client-ip', '--affinity-timeout', '0'], /from 1 to 86400/],
  ];
  for (const [what, args, message] of bad) {
    it(`rejects ${what} with one line and no change`, async () => {
      const before = await node.api.listServices();
      const r = await node.cli(...args);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1);
      assert.deepEqual(await node.api.listServices(), before);
    });
  }
});
