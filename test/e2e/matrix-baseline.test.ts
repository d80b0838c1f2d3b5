/* Baseline of the reachability matrix: without any policy every pod reaches every pod (default
 * allow), and the harness does observe "blocked" when nothing listens on the probed port. */
import assert from 'node:assert/strict';
import { AssertionError } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { ALL_PODS, Cluster, Reachability, assertReachability, probeAll } from '../harness/matrix.js';

describe('reachability matrix without policy', () => {
  let cluster: Cluster;

  before(async () => {
    cluster = await Cluster.create({ podCidr: '10.216.0.0/24' });
  });
  after(async () => cluster?.cleanup());

  it('creates nine pods with their labels and named ports', () => {
    assert.equal(cluster.pods.size, 9);
    const ips = new Set([...cluster.pods.values()].map((e) => e.ipv4));
    assert.equal(ips.size, 9, 'every pod has its own address');
    const yb = cluster.pods.get('y/b')!;
    assert.ok(yb.labels.some((l) => l.endsWith('pod=b')), `labels of y/b: ${yb.labels.join(', ')}`);
    assert.deepEqual(yb.ports.map((p) => `${p.name}:${p.port}/${p.protocol}`).sort(), [
      'serve-80-tcp:80/TCP',
      'serve-80-udp:80/UDP',
      'serve-81-tcp:81/TCP',
      'serve-81-udp:81/UDP',
    ]);
  });

  for (const [proto, port] of [['tcp', 80], ['udp', 80], ['tcp', 81]] as const) {
    it(`allows every pair on ${proto.toUpperCase()} ${port}`, async () => {
      const t0 = Date.now();
      const observed = await probeAll(cluster, { proto, port });
      const ms = Date.now() - t0;
      assertReachability(new Reachability(true), observed, `default allow, ${proto}/${port}`);
      console.log(`# ${proto}/${port}: 81 probes, all reachable, in ${ms} ms`);
    });
  }

  it('observes every pair blocked on a closed port, quickly because the connection is refused', async () => {
    const t0 = Date.now();
    const observed = await probeAll(cluster, { proto: 'tcp', port: 82, timeoutMs: 3000 });
    const ms = Date.now() - t0;
    assertReachability(new Reachability(false), observed, 'nothing listens on tcp/82');
    for (const from of ALL_PODS) {
      for (const to of ALL_PODS) assert.equal(observed.note(from, to), 'ECONNREFUSED', `${from} -> ${to}`);
    }
    assert.ok(ms < 1500, `refused probes should not wait for their 3 s timeout (took ${ms} ms)`);
    console.log(`# tcp/82: 81 probes (with retries), all blocked, in ${ms} ms`);
  });

  it('reports mismatches with a readable table', () => {
    const expected = new Reachability(true);
    const observed = new Reachability(true).expect('x/a', 'y/b', false).expectAllIngress('z/c', false);
    expected.expectAllIngress('z/c', false).expect('z/c', 'z/c', true);
    assert.throws(
      () => assertReachability(expected, observed, 'self-check'),
      (err: unknown) => {
        assert.ok(err instanceof AssertionError);
        const m = err.message;
        assert.match(m, /^self-check: 2 of 81 pairs/);
        assert.match(m, /x\/a -> y\/b: expected reachable, got blocked/);
        assert.match(m, /z\/c -> z\/c: expected reachable, got blocked/);
        assert.match(m, /\nx\/a +\. +\. +\. +\. +X\* /);
        return true;
      },
    );
  });
});
