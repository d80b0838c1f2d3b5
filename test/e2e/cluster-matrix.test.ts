/* The Kubernetes NetworkPolicy matrix with its nine pods spread over three nodes joined through
 * etcd (pods a on node 0, b on node 1, c on node 2, so every namespace spans the cluster and
 * every pod has peers on its own node and on both others): the cases of
 * test/harness/k8s-policy-cases.ts, imported through node 0 and enforced wherever their pods
 * live, must give the verdicts they give on one node. In tunnel mode the receiving node judges
 * by the identity in the VNI, in native mode by its ipcache: both run. An ipBlock follows the
 * other nodes' endpoints as they come and go, and a pod it splits on its own node keeps its
 * identity on the others. */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { TestCluster } from '../harness/cluster.js';
import { K8S_CASES, knp, podsCidr, runCase } from '../harness/k8s-policy-cases.js';
import { BY_POD, Cluster, Reachability } from '../harness/matrix.js';
import { eventually } from '../harness/node.js';
import { deleteAllPolicies, expectMatrix, importPolicy } from '../harness/policy.js';

for (const mode of ['tunnel', 'native'] as const) {
  describe(`Kubernetes NetworkPolicy matrix over three nodes, ${mode} routing`, { concurrency: false }, () => {
    let nodes: TestCluster;
    let matrix: Cluster;

    before(async () => {
      nodes = await TestCluster.create({ nodes: 3, peerTls: false, extraAgentArgs: ['--routing-mode', mode] });
      matrix = await Cluster.spread(nodes.nodes, BY_POD);
    });
    after(async () => {
      await matrix?.cleanup();
      await nodes?.cleanup();
    });
    afterEach(async () => deleteAllPolicies(matrix));

    it('reaches every pod from every pod without policy, within and across nodes', async () => {
      const all = new Reachability(true);
      await expectMatrix(matrix, 'default allow', { port: 80, proto: 'tcp', expected: all }, { port: 81, proto: 'udp', expected: all });
    });

    for (const c of K8S_CASES) it(c.title, () => runCase(matrix, c));

    it("re-evaluates an ipBlock as another node's endpoints come and go", async () => {
      // x/a (node 0) admits the block of node 1's pods: y/b lives there, with an identity of its own.
      await importPolicy(
        matrix,
        knp('from-node-1', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - ipBlock: {cidr: ${nodes.podCidr(1)}}`),
      );
      const [a, yb] = [matrix.endpoint('x/a'), matrix.endpoint('y/b')];
      const reaches = () => matrix.nodeOf('y/b').probe(yb.netns, 'tcp', a.ipv4, 80, 500);
      assert.ok(await reaches(), 'y/b is inside the block');
      // A pod with y/b's labels on node 2, outside the block: the identity is no longer wholly
      // inside, and its packets cannot tell the two apart, so neither is admitted.
      const twin = await nodes.nodes[2]!.api.addEndpoint({ namespace: 'y', name: 'b-twin', labels: ['pod=b'] });
      try {
        assert.equal(twin.identity, yb.identity);
        if (!(await eventually(async () => !(await reaches()), 20_000))) {
          // What node 0 made of it, to tell a slow cluster from a wrong computation.
          const n0 = nodes.nodes[0]!;
          const entries = (await n0.api.endpointPolicy('x', 'a')).entries.filter((e) => e.direction === 'INGRESS').map((e) => e.identity);
          const ipcache = (await n0.api.listIpcache()).filter((r) => r.prefix === `${twin.ipv4}/32`);
          assert.fail(`y/b is still admitted while its twin on node 2 is outside the block: x/a admits ${entries.join(',')}; node 0's ipcache: ${JSON.stringify(ipcache)}`);
        }
      } finally {
        await nodes.nodes[2]!.api.deleteEndpoint('y', 'b-twin');
      }
      assert.ok(await eventually(reaches, 10_000), 'y/b is admitted again once its twin is gone');
    });

    it('keeps the identity of a pod that an ipBlock of its own node splits, on the other nodes', async () => {
      // Twins with one identity on node 0; x/a (node 0) admits the block but one twin, so node 0
      // sees the other by a node-local address identity; y/b (node 1) admits pod=twin by label.
      const n0 = nodes.nodes[0]!;
      const twin1 = await n0.api.addEndpoint({ namespace: 'z', name: 'twin1', labels: ['pod=twin'] });
      const twin2 = await n0.api.addEndpoint({ namespace: 'z', name: 'twin2', labels: ['pod=twin'] });
      try {
        assert.equal(twin1.identity, twin2.identity);
        await importPolicy(
          matrix,
          [
            knp('block-but-twin2', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - ipBlock: {cidr: ${podsCidr(matrix)}, except: [${twin2.ipv4}/32]}`),
            knp('twins-only', 'y', `podSelector: {matchLabels: {pod: b}}
ingress:
- from:
  - namespaceSelector: {}
    podSelector: {matchLabels: {pod: twin}}`),
          ].join('---\n'),
        );
        const [a, yb] = [matrix.endpoint('x/a'), matrix.endpoint('y/b')];
        const probe = (from: typeof twin1, to: typeof a) => n0.probe(from.netns, 'tcp', to.ipv4, 80, 700);
        assert.ok(await probe(twin1, a), 'twin1 is inside the block');
        assert.ok(!(await probe(twin2, a)), 'twin2 is excepted');
        assert.ok(await probe(twin1, yb), 'twin1 reaches y/b on node 1 by its labels, although node 0 sees it by an address identity');
        assert.ok(await probe(twin2, yb), 'twin2 reaches y/b on node 1');
      } finally {
        await n0.api.deleteEndpoint('z', 'twin1');
        await n0.api.deleteEndpoint('z', 'twin2');
      }
    });
  });
}
