/* Cilium-specific policy semantics through the real datapath: deny precedence, deny-only
 * default deny, entities, CIDR rules, empty rules, clusterwide scoping, ICMP, and connection
 * tracking (replies pass; a withdrawn allow stops live connections). */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, afterEach, before, describe, it } from 'node:test';
import { Cluster } from '../harness/matrix.js';
import { allowedExcept, blockedExcept, deleteAllPolicies, expectMatrix, importPolicy } from '../harness/policy.js';
import { waitForLine } from '../harness/node.js';

const cnp = (name: string, namespace: string, spec: string) => `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: ${name}
  namespace: ${namespace}
spec:
${indent(spec)}
`;
const ccnp = (name: string, spec: string) => `apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: ${name}
spec:
${indent(spec)}
`;
function indent(spec: string): string {
  return spec
    .trim()
    .split('\n')
    .map((l) => '  ' + l)
    .join('\n');
}

/** Whether a line sent on a held connection (hold-conn.mjs) comes back within 1.5 s. */
function echoes(conn: ChildProcess, word: string): Promise<boolean> {
  const echoed = waitForLine(conn, (l) => l === `echo ${word}`, 1500).then(
    () => true,
    () => false,
  );
  conn.stdin!.write(word + '\n');
  return echoed;
}

describe('Cilium policy semantics', () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.create({ podCidr: '10.222.0.0/24' });
  });
  after(async () => cluster?.cleanup());
  afterEach(async () => deleteAllPolicies(cluster));

  it('lets a deny win over an allow-all', async () => {
    await importPolicy(
      cluster,
      cnp('deny-b', 'x', `endpointSelector: {matchLabels: {pod: a}}
ingress:
- fromEntities: [all]
ingressDeny:
- fromEndpoints:
  - matchLabels: {pod: b}`),
    );
    const expected = allowedExcept((r) => r.expect('x/b', 'x/a', false));
    await expectMatrix(cluster, 'x/b denied, everyone else allowed', { port: 80, proto: 'tcp', expected }, { port: 81, proto: 'udp', expected });
    const metrics = await cluster.node.api.listMetrics();
    const a = cluster.endpoint('x/a');
    assert.ok(
      metrics.some((m) => m.endpoint === a.id && m.reason === 'POLICY_DENY' && m.remoteIdentity === cluster.endpoint('x/b').identity),
      'the drop is counted as POLICY_DENY on x/a',
    );
  });

  it('puts an endpoint into default deny with a deny-only policy', async () => {
    await importPolicy(
      cluster,
      cnp('deny-only', 'x', `endpointSelector: {matchLabels: {pod: a}}
ingressDeny:
- fromEndpoints:
  - matchLabels: {k8s:io.kubernetes.pod.namespace: y}`),
    );
    const expected = allowedExcept((r) => r.expectAllIngress('x/a', false));
    await expectMatrix(cluster, 'x/a default-deny ingress', { port: 80, proto: 'tcp', expected });
    const metrics = await cluster.node.api.listMetrics();
    const a = cluster.endpoint('x/a');
    const reasons = new Set(metrics.filter((m) => m.endpoint === a.id && m.direction === 'INGRESS').map((m) => m.reason));
    assert.ok(reasons.has('POLICY_DENY') && reasons.has('POLICY_DENIED'), `both deny and default-deny drops: ${[...reasons]}`);
  });

  it('treats ingress: [{}] as selecting nothing (default deny)', async () => {
    await importPolicy(cluster, cnp('empty', 'x', 'endpointSelector: {matchLabels: {pod: a}}\ningress:\n- {}'));
    await expectMatrix(cluster, 'CNP ingress [{}] blocks x/a', { port: 80, proto: 'tcp', expected: allowedExcept((r) => r.expectAllIngress('x/a', false)) });
  });

  it('scopes a namespaced policy to its namespace and a clusterwide one to all', async () => {
    await importPolicy(
      cluster,
      cnp('ns-scoped', 'x', `endpointSelector: {matchLabels: {pod: a}}
ingress:
- fromEndpoints:
  - matchLabels: {pod: b}`),
    );
    await expectMatrix(
      cluster,
      'CNP: only x/b reaches x/a, and only x/a is selected',
      { port: 80, proto: 'tcp', expected: allowedExcept((r) => { r.expectAllIngress('x/a', false); r.expect('x/b', 'x/a', true); }) },
    );
    await deleteAllPolicies(cluster);
    await importPolicy(
      cluster,
      ccnp('cluster-scoped', `endpointSelector: {matchLabels: {pod: a}}
ingress:
- fromEndpoints:
  - matchLabels: {pod: b}`),
    );
    await expectMatrix(
      cluster,
      'CCNP: every */b reaches every */a',
      {
        port: 80,
        proto: 'tcp',
        expected: allowedExcept((r) => {
          r.expectPeers({}, { pod: 'a' }, false);
          r.expectPeers({ pod: 'b' }, { pod: 'a' }, true);
        }),
      },
    );
  });

  it('selects peers by entity', async () => {
    await importPolicy(
      cluster,
      cnp('to-cluster', 'x', `endpointSelector: {matchLabels: {pod: a}}
egress:
- toEntities: [cluster]`),
    );
    await expectMatrix(cluster, 'egress to cluster reaches every pod', { port: 80, proto: 'tcp', expected: allowedExcept(() => undefined) });
    await importPolicy(
      cluster,
      cnp('to-cluster', 'x', `endpointSelector: {matchLabels: {pod: a}}
egress:
- toEntities: [world, host]`),
    );
    await expectMatrix(cluster, 'egress to world/host reaches no pod', { port: 80, proto: 'tcp', expected: allowedExcept((r) => r.expectAllEgress('x/a', false)) });
    assert.ok(await cluster.node.ping(cluster.endpoint('x/a').netns, (await cluster.node.api.status()).node.routerIP), 'host is reachable');
  });

  it('does not let CNP CIDR rules select endpoints', async () => {
    await importPolicy(
      cluster,
      cnp('cidr', 'x', `endpointSelector: {matchLabels: {pod: a}}
ingress:
- fromCIDRSet:
  - cidr: 10.222.0.0/16
    except: [10.222.1.0/24]
- fromCIDR: [10.0.0.0/8]`),
    );
    await expectMatrix(cluster, 'CIDR rules do not cover pods', { port: 80, proto: 'tcp', expected: allowedExcept((r) => r.expectAllIngress('x/a', false)) });
    const ipcache = await cluster.node.api.listIpcache();
    for (const prefix of ['10.222.0.0/16', '10.222.1.0/24', '10.0.0.0/8']) {
      const row = ipcache.find((r) => r.prefix === prefix);
      assert.ok(row && row.identity >= 1 << 24, `${prefix} has a local CIDR identity in the ipcache`);
    }
    // The selectors select CIDR identities: a prefix and everything inside it, minus the except.
    const id = (prefix: string) => ipcache.find((r) => r.prefix === prefix)!.identity;
    const selectors = new Map((await cluster.node.api.policySelectors()).map((sel) => [sel.selector, sel.identities]));
    assert.deepEqual(selectors.get('cidr:10.222.0.0/16 except 10.222.1.0/24'), [id('10.222.0.0/16')]);
    assert.deepEqual(selectors.get('cidr:10.0.0.0/8'), [id('10.0.0.0/8'), id('10.222.0.0/16'), id('10.222.1.0/24')].sort((x, y) => x - y));
  });

  it('matches traffic from outside the cluster by CIDR, with except', async () => {
    const near = await cluster.node.addExternalHost('near', '198.51.100.7');
    const far = await cluster.node.addExternalHost('far', '198.51.100.9');
    const a = cluster.endpoint('x/a');
    await cluster.node.echoServer(near, 80);
    assert.ok(await cluster.node.probe(near, 'tcp', a.ipv4, 80), 'no policy: world reaches x/a');
    assert.ok(await cluster.node.probe(far, 'tcp', a.ipv4, 80), 'no policy: the excepted host reaches x/a too');
    await importPolicy(
      cluster,
      cnp('from-world', 'x', `endpointSelector: {matchLabels: {pod: a}}
ingress:
- fromCIDRSet:
  - cidr: 198.51.100.0/24
    except: [198.51.100.9/32]
egress:
- toCIDR: [198.51.100.7/32]
  toPorts:
  - ports: [{port: "80", protocol: TCP}]`),
    );
    assert.ok(await cluster.node.probe(near, 'tcp', a.ipv4, 80), '198.51.100.7 is inside the block');
    assert.ok(!(await cluster.node.probe(far, 'tcp', a.ipv4, 80, 600)), '198.51.100.9 is excepted');
    assert.ok(await cluster.node.probe(a.netns, 'tcp', '198.51.100.7', 80), 'egress to the CIDR on TCP 80');
    assert.ok(!(await cluster.node.probe(a.netns, 'udp', '198.51.100.7', 80, 600)), 'but not UDP');
    assert.ok(!(await cluster.node.probe(cluster.endpoint('y/a').netns, 'tcp', a.ipv4, 80, 600)), 'pods are not in the CIDR');
  });

  it('admits the world entity from outside the cluster, and no pod', async () => {
    const outside = await cluster.node.addExternalHost('world', '203.0.113.20');
    await importPolicy(cluster, cnp('from-world', 'x', 'endpointSelector: {matchLabels: {pod: a}}\ningress:\n- fromEntities: [world]'));
    const a = cluster.endpoint('x/a');
    assert.ok(await cluster.node.probe(outside, 'tcp', a.ipv4, 80), 'a host outside the cluster is world');
    await expectMatrix(cluster, 'no pod is world', { port: 80, proto: 'tcp', expected: allowedExcept((r) => r.expectAllIngress('x/a', false)) });
  });

  it('lets a deny for the host win over allow-localhost', async () => {
    const a = cluster.endpoint('x/a');
    const fromNode = async () => (await cluster.node.execNode(['ping', '-c', '1', '-W', '1', a.ipv4])).code === 0;
    await importPolicy(cluster, cnp('closed', 'x', 'endpointSelector: {matchLabels: {pod: a}}\ningress: [{}]'));
    assert.ok(await fromNode(), 'default deny: the node still reaches its endpoint (allow-localhost)');
    await importPolicy(cluster, cnp('closed', 'x', 'endpointSelector: {matchLabels: {pod: a}}\ningressDeny:\n- fromEntities: [host]'));
    assert.ok(!(await fromNode()), 'an explicit deny of the host is enforced');
  });

  it('judges ICMP by its type: TCP rules and other types do not cover echo', async () => {
    const a = cluster.endpoint('x/a');
    const from = cluster.endpoint('y/b').netns;
    await importPolicy(cluster, cnp('icmp', 'x', 'endpointSelector: {matchLabels: {pod: a}}\ningress:\n- toPorts: [{ports: [{port: "80", protocol: TCP}]}]'));
    assert.ok(!(await cluster.node.ping(from, a.ipv4)), 'a TCP-only allow does not admit ping');
    await importPolicy(cluster, cnp('icmp', 'x', 'endpointSelector: {matchLabels: {pod: a}}\ningress:\n- icmps: [{fields: [{type: DestinationUnreachable}]}]'));
    assert.ok(!(await cluster.node.ping(from, a.ipv4)), 'another ICMP type does not admit echo requests');
  });

  it('allows ICMP by type', async () => {
    await importPolicy(
      cluster,
      cnp('icmp', 'x', `endpointSelector: {matchLabels: {pod: a}}
ingress:
- icmps:
  - fields:
    - type: EchoRequest`),
    );
    const a = cluster.endpoint('x/a');
    assert.ok(await cluster.node.ping(cluster.endpoint('y/b').netns, a.ipv4), 'echo request allowed, its reply passes');
    await expectMatrix(cluster, 'TCP to x/a blocked', { port: 80, proto: 'tcp', expected: allowedExcept((r) => r.expectAllIngress('x/a', false)) });
  });

  it('lets replies pass under default-deny ingress', async () => {
    await importPolicy(cluster, cnp('deny-in', 'x', 'endpointSelector: {}\ningress: [{}]'));
    const expected = allowedExcept((r) => r.expectPeers({}, { namespace: 'x' }, false));
    // x's pods still reach everyone outside x: their replies come back in.
    await expectMatrix(cluster, 'x is closed to new connections but talks out', { port: 80, proto: 'tcp', expected }, { port: 80, proto: 'udp', expected });
  });

  it('lets replies pass under an explicit ingress deny of everything', async () => {
    await importPolicy(cluster, cnp('deny-all-in', 'x', 'endpointSelector: {}\ningressDeny:\n- fromEntities: [all]'));
    const expected = allowedExcept((r) => r.expectPeers({}, { namespace: 'x' }, false));
    await expectMatrix(cluster, 'x denies every new connection in but its own come back', { port: 80, proto: 'tcp', expected }, { port: 80, proto: 'udp', expected });
  });

  it('stops an established connection when its peer is relabelled out of the allow', async () => {
    await importPolicy(cluster, cnp('allow-b', 'x', 'endpointSelector: {matchLabels: {pod: a}}\ningress:\n- fromEndpoints:\n  - matchLabels: {pod: b}'));
    const a = cluster.endpoint('x/a');
    const conn = cluster.node.holdConnection(cluster.endpoint('x/b').netns, a.ipv4, 80);
    try {
      await waitForLine(conn, (l) => l === 'connected');
      const roundTrip = (word: string) => echoes(conn, word);
      assert.ok(await roundTrip('allowed'));
      await cluster.node.api.updateEndpoint('x', 'b', ['pod=b-moved']);
      assert.ok(!(await roundTrip('relabelled')), 'the live connection is judged with the peer\'s new identity');
    } finally {
      conn.kill('SIGKILL');
      await cluster.node.api.updateEndpoint('x', 'b', ['pod=b']);
    }
  });

  it('stops an established connection when its allow is withdrawn', async () => {
    await importPolicy(
      cluster,
      cnp('allow-b', 'x', `endpointSelector: {matchLabels: {pod: a}}
ingress:
- fromEndpoints:
  - matchLabels: {pod: b}`),
    );
    const a = cluster.endpoint('x/a');
    const conn = cluster.node.holdConnection(cluster.endpoint('x/b').netns, a.ipv4, 80);
    await waitForLine(conn, (l) => l === 'connected');
    const roundTrip = (word: string) => echoes(conn, word);
    assert.ok(await roundTrip('allowed'), 'allowed connection works');
    await importPolicy(
      cluster,
      cnp('allow-b', 'x', `endpointSelector: {matchLabels: {pod: a}}
ingress:
- fromEndpoints:
  - matchLabels: {pod: c}`),
    );
    assert.ok(!(await roundTrip('withdrawn')), 'the established connection no longer passes');
    conn.kill('SIGKILL');
  });

  it('isolates every pod with a clusterwide deny-all, and ignores empty sections', async () => {
    await importPolicy(cluster, ccnp('no-op', 'endpointSelector: {}\ningress: []\negress: []'));
    await expectMatrix(cluster, 'empty sections do not apply', { port: 80, proto: 'tcp', expected: allowedExcept(() => undefined) });
    await deleteAllPolicies(cluster);
    await importPolicy(cluster, ccnp('lockdown', 'endpointSelector: {}\ningress: [{}]\negress: [{}]'));
    await expectMatrix(cluster, 'every pod isolated', { port: 80, proto: 'tcp', expected: blockedExcept(() => undefined) });
  });
});
