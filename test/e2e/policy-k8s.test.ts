/* Kubernetes NetworkPolicy through the real datapath, checked as full reachability matrices
 * over namespaces x, y, z and pods a, b, c (the Kubernetes network policy e2e model), on one
 * node. The cases kept as data in test/harness/k8s-policy-cases.ts also run with the pods
 * spread over three nodes (test/e2e/cluster-matrix.test.ts). */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { K8S_CASES, knp, runCase } from '../harness/k8s-policy-cases.js';
import { Cluster } from '../harness/matrix.js';
import { eventually } from '../harness/node.js';
import { allowedExcept, deleteAllPolicies, expectMatrix, importPolicy } from '../harness/policy.js';

describe('Kubernetes NetworkPolicy', () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.create({ podCidr: '10.221.0.0/24' });
  });
  after(async () => cluster?.cleanup());
  afterEach(async () => deleteAllPolicies(cluster));

  // The cases the cluster matrix shares (test/harness/k8s-policy-cases.ts), then those of one node.
  for (const c of K8S_CASES) it(c.title, () => runCase(cluster, c));

  it('selects by address within one identity: twins with the same labels, one excepted', async () => {
    // Two pods with the same labels share an identity; the ipBlock lets one in and not the other.
    const twin1 = await cluster.node.api.addEndpoint({ namespace: 'z', name: 'twin1', labels: ['pod=twin'] });
    const twin2 = await cluster.node.api.addEndpoint({ namespace: 'z', name: 'twin2', labels: ['pod=twin'] });
    try {
      assert.equal(twin1.identity, twin2.identity);
      const a = cluster.endpoint('x/a');
      assert.ok(await cluster.node.probe(twin2.netns, 'tcp', a.ipv4, 80), 'before the policy both reach x/a');
      await importPolicy(
        cluster,
        knp('ipblock-twins', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - ipBlock:
      cidr: 10.221.0.0/24
      except: [${twin2.ipv4}/32]`),
      );
      assert.ok(await cluster.node.probe(twin1.netns, 'tcp', a.ipv4, 80), 'twin1 is inside the block');
      assert.ok(!(await cluster.node.probe(twin2.netns, 'tcp', a.ipv4, 80, 500)), 'twin2 is excepted, although its identity is twin1\'s');
      // Flows still show the twins' own identity. Looked at before the matrix below, whose
      // traffic can push the drop out of the flow ring.
      let dropped: { source: { identity: number } } | undefined;
      const seen = await eventually(async () => {
        const drops = await cluster.node.cli('observe', '--all', '-o', 'json', '--from-pod', 'z/twin2', '--verdict', 'DROPPED');
        const last = drops.stdout.trim().split('\n').at(-1);
        dropped = last ? (JSON.parse(last) as { flow: { source: { identity: number } } }).flow : undefined;
        return dropped !== undefined;
      });
      assert.ok(seen, 'the drop of twin2 is in the flows');
      assert.equal(dropped!.source.identity, twin2.identity);
      const expected = allowedExcept(() => undefined);
      await expectMatrix(cluster, 'every matrix pod is inside the block', { port: 80, proto: 'tcp', expected });
    } finally {
      await cluster.node.api.deleteEndpoint('z', 'twin1');
      await cluster.node.api.deleteEndpoint('z', 'twin2');
    }
  });

  it('follows label changes made after the import', async () => {
    await importPolicy(
      cluster,
      knp('allow-b', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - podSelector: {matchLabels: {pod: b}}`),
    );
    const onlyXb = allowedExcept((r) => {
      r.expectAllIngress('x/a', false);
      r.expect('x/b', 'x/a', true);
    });
    await expectMatrix(cluster, 'before relabelling', { port: 80, proto: 'tcp', expected: onlyXb });
    await cluster.node.api.updateEndpoint('x', 'c', ['pod=b']);
    try {
      const withXc = allowedExcept((r) => {
        r.expectAllIngress('x/a', false);
        r.expect('x/b', 'x/a', true);
        r.expect('x/c', 'x/a', true);
      });
      await expectMatrix(cluster, 'x/c relabelled pod=b', { port: 80, proto: 'tcp', expected: withXc });
      await cluster.node.api.setNamespace('y', ['ns=y', 'extra=1']);
      await expectMatrix(cluster, 'namespace labels changed (no effect on this policy)', { port: 80, proto: 'tcp', expected: withXc });
    } finally {
      await cluster.node.api.updateEndpoint('x', 'c', ['pod=c']);
      await cluster.node.api.setNamespace('y', ['ns=y']);
    }
  });

  it('follows namespace label changes made after the import', async () => {
    await importPolicy(
      cluster,
      knp('from-blue', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - namespaceSelector: {matchLabels: {team: blue}}`),
    );
    await expectMatrix(cluster, 'no namespace is blue yet', { port: 80, proto: 'tcp', expected: allowedExcept((r) => r.expectAllIngress('x/a', false)) });
    await cluster.node.api.setNamespace('y', ['ns=y', 'team=blue']);
    try {
      const fromY = allowedExcept((r) => {
        r.expectAllIngress('x/a', false);
        r.expectPeers({ namespace: 'y' }, { pod: 'a', namespace: 'x' }, true);
      });
      await expectMatrix(cluster, 'y became blue: its pods reach x/a', { port: 80, proto: 'tcp', expected: fromY });
    } finally {
      await cluster.node.api.setNamespace('y', ['ns=y']);
    }
    await expectMatrix(cluster, 'y is not blue any more', { port: 80, proto: 'tcp', expected: allowedExcept((r) => r.expectAllIngress('x/a', false)) });
  });

  it('refuses an endpoint that claims a namespace label, so a namespaceSelector cannot be fooled', async () => {
    await importPolicy(
      cluster,
      knp('from-team-b', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - namespaceSelector: {matchLabels: {team: b}}`),
    );
    const node = cluster.node;
    for (const forged of ['io.cilium.k8s.namespace.labels.team=b', 'io.kubernetes.pod.namespace=x', 'io.cilium.k8s.policy.cluster=other']) {
      const add = await node.cli('endpoint', 'add', 'y/evil', '--labels', `pod=evil,${forged}`);
      assert.notEqual(add.code, 0, `endpoint add with ${forged} was accepted`);
      assert.match(add.stderr, /is derived by the agent, an endpoint cannot set it/);
      assert.equal(add.stderr.trim().split('\n').length, 1, add.stderr);
      const update = await node.cli('endpoint', 'update', 'y/b', '--labels', `pod=b,${forged}`);
      assert.notEqual(update.code, 0, `endpoint update with ${forged} was accepted`);
    }
    assert.match((await node.cli('endpoint', 'add', 'y/evil', '--labels', 'io.cilium.k8s.namespace.labels.team=b')).stderr, /label the namespace instead/);
    assert.equal((await node.api.listEndpoints()).filter((e) => e.name === 'evil').length, 0);
    const expected = allowedExcept((r) => r.expectAllIngress('x/a', false));
    await expectMatrix(cluster, 'no namespace is team b: nobody reaches x/a', { port: 80, proto: 'tcp', expected });
  });

  it('applies policy updates and restores traffic on delete', async () => {
    await importPolicy(cluster, knp('p', 'x', 'podSelector: {}\npolicyTypes: [Ingress]'));
    await expectMatrix(cluster, 'deny into x', { port: 80, proto: 'tcp', expected: allowedExcept((r) => r.expectPeers({}, { namespace: 'x' }, false)) });
    await importPolicy(
      cluster,
      knp('p', 'x', `podSelector: {}
ingress:
- from:
  - podSelector: {}`),
    );
    await expectMatrix(
      cluster,
      'updated: x allows itself',
      { port: 80, proto: 'tcp', expected: allowedExcept((r) => { r.expectPeers({}, { namespace: 'x' }, false); r.expectPeers({ namespace: 'x' }, { namespace: 'x' }, true); }) },
    );
    await cluster.node.api.deletePolicy({ namespace: 'x', name: 'p' });
    await expectMatrix(cluster, 'deleted', { port: 80, proto: 'tcp', expected: allowedExcept(() => undefined) });
  });

});
