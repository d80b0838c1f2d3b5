/* Kubernetes NetworkPolicy through the real datapath, checked as full reachability matrices
 * over namespaces x, y, z and pods a, b, c (the Kubernetes network policy e2e model). */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { Cluster } from '../harness/matrix.js';
import { eventually } from '../harness/node.js';
import { allowedExcept, deleteAllPolicies, expectMatrix, importPolicy } from '../harness/policy.js';

const knp = (name: string, namespace: string, spec: string) => `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: ${name}
  namespace: ${namespace}
spec:
${spec
  .trim()
  .split('\n')
  .map((l) => '  ' + l)
  .join('\n')}
`;

describe('Kubernetes NetworkPolicy', () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.create({ podCidr: '10.221.0.0/24' });
  });
  after(async () => cluster?.cleanup());
  afterEach(async () => deleteAllPolicies(cluster));

  it('default-deny ingress for a namespace', async () => {
    await importPolicy(cluster, knp('deny-ingress', 'x', 'podSelector: {}\npolicyTypes: [Ingress]'));
    const expected = allowedExcept((r) => r.expectPeers({}, { namespace: 'x' }, false));
    await expectMatrix(cluster, 'deny all ingress into x', { port: 80, proto: 'tcp', expected }, { port: 81, proto: 'udp', expected });
  });

  it('default-deny egress for a namespace (replies to others still pass)', async () => {
    await importPolicy(cluster, knp('deny-egress', 'x', 'podSelector: {}\npolicyTypes: [Egress]'));
    const expected = allowedExcept((r) => r.expectPeers({ namespace: 'x' }, {}, false));
    await expectMatrix(cluster, 'deny all egress from x', { port: 80, proto: 'tcp', expected }, { port: 80, proto: 'udp', expected });
  });

  it('allows by pod selector', async () => {
    await importPolicy(
      cluster,
      knp('allow-b', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - podSelector: {matchLabels: {pod: b}}`),
    );
    const expected = allowedExcept((r) => {
      r.expectAllIngress('x/a', false);
      r.expect('x/b', 'x/a', true);
    });
    await expectMatrix(cluster, 'only x/b reaches x/a', { port: 80, proto: 'tcp', expected });
  });

  it('allows by namespace selector', async () => {
    await importPolicy(
      cluster,
      knp('allow-ns-y', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - namespaceSelector: {matchLabels: {ns: y}}`),
    );
    const expected = allowedExcept((r) => {
      r.expectAllIngress('x/a', false);
      r.expectPeers({ namespace: 'y' }, { namespace: 'x', pod: 'a' }, true);
    });
    await expectMatrix(cluster, 'namespace y reaches x/a', { port: 80, proto: 'tcp', expected });
  });

  it('allows by namespace and pod selector together (AND)', async () => {
    await importPolicy(
      cluster,
      knp('allow-y-c', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - namespaceSelector: {matchLabels: {ns: y}}
    podSelector: {matchLabels: {pod: c}}`),
    );
    const expected = allowedExcept((r) => {
      r.expectAllIngress('x/a', false);
      r.expect('y/c', 'x/a', true);
    });
    await expectMatrix(cluster, 'only y/c reaches x/a', { port: 80, proto: 'tcp', expected });
  });

  it('allows by matchExpressions', async () => {
    await importPolicy(
      cluster,
      knp('allow-expr', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - namespaceSelector: {matchExpressions: [{key: ns, operator: NotIn, values: [x]}]}
    podSelector: {matchExpressions: [{key: pod, operator: In, values: [b, c]}]}`),
    );
    const expected = allowedExcept((r) => {
      r.expectAllIngress('x/a', false);
      for (const p of ['y/b', 'y/c', 'z/b', 'z/c'] as const) r.expect(p, 'x/a', true);
    });
    await expectMatrix(cluster, 'pods b and c outside x reach x/a', { port: 80, proto: 'tcp', expected });
  });

  it('resolves named ports on the destination pod', async () => {
    await importPolicy(
      cluster,
      knp('named-port', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- ports:
  - port: serve-81-tcp`),
    );
    const blockedToA = allowedExcept((r) => r.expectAllIngress('x/a', false));
    await expectMatrix(
      cluster,
      'only the port named serve-81-tcp is open on x/a',
      { port: 81, proto: 'tcp', expected: allowedExcept(() => undefined) },
      { port: 80, proto: 'tcp', expected: blockedToA },
      { port: 81, proto: 'udp', expected: blockedToA },
    );
  });

  it('allows port ranges with endPort', async () => {
    await importPolicy(
      cluster,
      knp('range', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- ports:
  - protocol: TCP
    port: 80
    endPort: 81`),
    );
    await expectMatrix(
      cluster,
      'TCP 80-81 open on x/a, UDP closed',
      { port: 80, proto: 'tcp', expected: allowedExcept(() => undefined) },
      { port: 81, proto: 'tcp', expected: allowedExcept(() => undefined) },
      { port: 80, proto: 'udp', expected: allowedExcept((r) => r.expectAllIngress('x/a', false)) },
    );
  });

  it('selects pods by ipBlock with except (Kubernetes semantics)', async () => {
    const yb = cluster.endpoint('y/b').ipv4;
    await importPolicy(
      cluster,
      knp('ipblock', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - ipBlock:
      cidr: 10.221.0.0/24
      except: [${yb}/32]`),
    );
    const expected = allowedExcept((r) => r.expect('y/b', 'x/a', false));
    await expectMatrix(cluster, 'everyone but y/b reaches x/a', { port: 80, proto: 'tcp', expected });
  });

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

  it('combines several policies as a union', async () => {
    await importPolicy(
      cluster,
      [
        knp('allow-y', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - namespaceSelector: {matchLabels: {ns: y}}`),
        knp('allow-z-c', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - namespaceSelector: {matchLabels: {ns: z}}
    podSelector: {matchLabels: {pod: c}}`),
      ].join('---\n'),
    );
    const expected = allowedExcept((r) => {
      r.expectAllIngress('x/a', false);
      r.expectPeers({ namespace: 'y' }, { namespace: 'x', pod: 'a' }, true);
      r.expect('z/c', 'x/a', true);
    });
    await expectMatrix(cluster, 'y/* and z/c reach x/a', { port: 80, proto: 'tcp', expected });
  });

  it('restricts egress to selected peers and ports', async () => {
    await importPolicy(
      cluster,
      knp('egress-y-80', 'x', `podSelector: {matchLabels: {pod: a}}
policyTypes: [Egress]
egress:
- to:
  - namespaceSelector: {matchLabels: {ns: y}}
  ports:
  - port: 80`),
    );
    await expectMatrix(
      cluster,
      'x/a reaches only namespace y on TCP 80',
      { port: 80, proto: 'tcp', expected: allowedExcept((r) => { r.expectAllEgress('x/a', false); r.expectPeers({ namespace: 'x', pod: 'a' }, { namespace: 'y' }, true); }) },
      { port: 81, proto: 'tcp', expected: allowedExcept((r) => r.expectAllEgress('x/a', false)) },
    );
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

  it('resolves egress named ports on the destination pods', async () => {
    await importPolicy(
      cluster,
      knp('egress-named', 'x', `podSelector: {matchLabels: {pod: a}}
policyTypes: [Egress]
egress:
- ports:
  - port: serve-80-tcp`),
    );
    await expectMatrix(
      cluster,
      'x/a reaches every pod on the port they name serve-80-tcp, and nothing else',
      { port: 80, proto: 'tcp', expected: allowedExcept(() => undefined) },
      { port: 81, proto: 'tcp', expected: allowedExcept((r) => r.expectAllEgress('x/a', false)) },
      { port: 80, proto: 'udp', expected: allowedExcept((r) => r.expectAllEgress('x/a', false)) },
    );
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

  it('treats an empty ingress rule as allow-all', async () => {
    await importPolicy(cluster, knp('allow-all', 'x', 'podSelector: {}\ningress:\n- {}'));
    await expectMatrix(cluster, 'ingress: [{}] allows everything', { port: 80, proto: 'tcp', expected: allowedExcept(() => undefined) });
  });
});
