/* Policy between nodes, in both routing modes, on two agents joined through etcd (agents with
 * --no-allow-localhost, so that the node itself is judged by policy like any peer). Node 0 hosts
 * a server pod and a host outside the cluster ("world"); node 1 hosts client pods.
 * - Entities: a policy imported on node 0 admits, by `fromEntities`, exactly its entity among a
 *   pod of node 1, node 1 itself (traffic from its own namespace), node 0 itself and the world
 *   host: `cluster` all but the world, `remote-node` only node 1, `host` only node 0; `toEntities`
 *   likewise for the server's egress.
 * - Labels changed on node 1 (`membrane endpoint update` there) are re-evaluated on node 0: new
 *   and established connections are denied after, and allowed again after the reverse change,
 *   and node 0's flows name the client's new identity.
 * - A service whose backends all live on node 0, reached through its VIP from node 1 both by the
 *   socket-level hooks and by the endpoint program (a client outside the cgroup); the backends'
 *   ingress policy judges the client's identity, and node 0's drop flow names the client. */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Endpoint, IpcacheRow } from '../../src/api/types.js';
import type { Flow } from '../../src/flow/types.js';
import { TestCluster } from '../harness/cluster.js';
import { eventually, repoRoot, waitForLine, type TestNode } from '../harness/node.js';
import { addBackend, ServiceClients } from '../harness/services.js';
import { indentSpec } from '../harness/policy.js';

const PORT = 8080;
const WORLD_IP = '203.0.113.20';
const VIP = '10.96.14.14';

const cnp = (name: string, spec: string) => ({
  name: `${name}.yaml`,
  content: `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: ${name}, namespace: default}
spec:
${indentSpec(spec)}
`,
});

/** A TCP echo from the node's own namespace (not a workload of it) to HOST:PORT. */
async function fromNode(n: TestNode, host: string): Promise<boolean> {
  return (await n.execNode(['node', path.join(repoRoot, 'test/harness/tools/probe.mjs'), 'tcp', host, String(PORT), '700'])).code === 0;
}

/** A probe, tried again once when it fails (a lost first packet is not a verdict). */
async function twice(probe: () => Promise<boolean>): Promise<boolean> {
  return (await probe()) || probe();
}

/** The line a held connection (hold-conn.mjs) prints next, or 'silence' when nothing comes within `ms`. */
function nextLine(conn: ChildProcess, ms: number): Promise<string> {
  return waitForLine(conn, () => true, ms).catch(() => 'silence');
}

for (const mode of ['tunnel', 'native'] as const) {
  describe(`policy between nodes, ${mode} routing`, { concurrency: false }, () => {
    let cluster: TestCluster;
    /** n0 hosts the server, the backends and the world host; n1 the clients. */
    let n0: TestNode;
    let n1: TestNode;
    let server: Endpoint;
    let client: Endpoint;
    let other: Endpoint;
    let world: string;

    /** Who reaches the server on TCP PORT, as [pod on node 1, node 1, node 0, world]. */
    const reach = () =>
      Promise.all([
        twice(() => n1.probe(client.netns, 'tcp', server.ipv4, PORT, 700)),
        twice(() => fromNode(n1, server.ipv4)),
        twice(() => fromNode(n0, server.ipv4)),
        twice(() => n0.probe(world, 'tcp', server.ipv4, PORT, 700)),
      ]);
    /** Node 0's own flows, oldest first. */
    const flows = (): Promise<Flow[]> => n0.observeFlows('--all');

    before(async () => {
      cluster = await TestCluster.create({ nodes: 2, peerTls: false, extraAgentArgs: ['--routing-mode', mode, '--no-allow-localhost'] });
      try {
        [n0, n1] = cluster.nodes as [TestNode, TestNode];
        await n0.api.setNamespace('default');
        assert.ok(await eventually(async () => (await n1.api.listNamespaces()).some((x) => x.name === 'default'), 10_000));
        server = await n0.api.addEndpoint({ namespace: 'default', name: 'server', labels: ['app=server'] });
        client = await n1.api.addEndpoint({ namespace: 'default', name: 'client', labels: ['app=client'] });
        other = await n1.api.addEndpoint({ namespace: 'default', name: 'other', labels: ['app=other'] });
        await n0.echoServer(server.netns, PORT);
        await n1.echoServer(client.netns, PORT);
        world = await n0.addExternalHost('world', WORLD_IP);
        await n0.echoServer(world, PORT);
        // Listeners in the nodes' own namespaces, for the server's egress to them.
        await n0.echoServer(n0.netns, PORT);
        await n1.echoServer(n1.netns, PORT);
        const known = async (n: TestNode, ep: Endpoint) => (await n.cliJson<IpcacheRow[]>('ipcache', 'list')).some((r) => r.prefix === `${ep.ipv4}/32` && r.identity === ep.identity);
        for (const [n, ep] of [[n0, client], [n0, other], [n1, server]] as const) {
          assert.ok(await eventually(() => known(n, ep), 10_000), `${ep.name} in ${n.name}'s ipcache`);
        }
      } catch (err) {
        await cluster.cleanup();
        throw err;
      }
    });
    after(async () => cluster?.cleanup());

    it('reaches the server from a pod of the other node, both nodes and the world without policy', async () => {
      assert.deepEqual(await reach(), [true, true, true, true]);
    });

    for (const [entity, want] of [
      ['cluster', [true, true, true, false]],
      ['remote-node', [false, true, false, false]],
      ['host', [false, false, true, false]],
    ] as const) {
      it(`admits with fromEntities [${entity}] exactly [pod of node 1, node 1, node 0, world] = ${JSON.stringify(want)}`, async () => {
        await n0.api.importPolicies([cnp(`from-${entity}`, `endpointSelector: {matchLabels: {app: server}}\ningress:\n- fromEntities: [${entity}]`)]);
        try {
          assert.deepEqual(await reach(), want);
        } finally {
          await n0.api.deletePolicy({ all: true });
        }
      });
    }

    it('lets the server out with toEntities: [remote-node] to node 1 only, [cluster] to pods of node 1 and not the world', async () => {
      const out = () =>
        Promise.all([
          twice(() => n0.probe(server.netns, 'tcp', client.ipv4, PORT, 700)),
          twice(() => n0.probe(server.netns, 'tcp', cluster.nodeIp(1), PORT, 700)),
          twice(() => n0.probe(server.netns, 'tcp', WORLD_IP, PORT, 700)),
        ]);
      assert.deepEqual(await out(), [true, true, true], 'without policy');
      try {
        await n0.api.importPolicies([cnp('to-remote-node', 'endpointSelector: {matchLabels: {app: server}}\negress:\n- toEntities: [remote-node]')]);
        assert.deepEqual(await out(), [false, true, false], 'toEntities: [remote-node]');
        await n0.api.importPolicies([cnp('to-remote-node', 'endpointSelector: {matchLabels: {app: server}}\negress:\n- toEntities: [cluster]')]);
        assert.deepEqual(await out(), [true, true, false], 'toEntities: [cluster]');
      } finally {
        await n0.api.deletePolicy({ all: true });
      }
    });

    it("re-evaluates labels changed on node 1 on node 0: denied after, allowed after the reverse, node 0's flows naming the new identity", async () => {
      await n0.api.importPolicies([cnp('server-from-client', 'endpointSelector: {matchLabels: {app: server}}\ningress:\n- fromEndpoints: [{matchLabels: {app: client}}]')]);
      const hold = n1.holdConnection(client.netns, server.ipv4, PORT);
      try {
        assert.equal(await nextLine(hold, 10_000), 'connected');
        hold.stdin!.write('before\n');
        assert.equal(await nextLine(hold, 5000), 'echo before');
        const fresh = () => n1.probe(client.netns, 'tcp', server.ipv4, PORT, 700);
        assert.ok(await fresh(), 'app=client is admitted');

        const relabelled = await n1.cliJson<Endpoint>('endpoint', 'update', 'default/client', '--labels', 'app=intruder');
        assert.notEqual(relabelled.identity, client.identity);
        assert.ok(await eventually(async () => !(await fresh()), 10_000), 'new connections are still admitted after the relabel');
        hold.stdin!.write('during\n');
        assert.equal(await nextLine(hold, 1500), 'silence', 'the established connection still passes');
        let drop: Flow | undefined;
        assert.ok(
          await eventually(async () => {
            drop = (await flows()).reverse().find((f) => f.verdict === 'DROPPED' && f.IP?.source === client.ipv4 && f.IP?.destination === server.ipv4);
            return drop?.source?.identity === relabelled.identity;
          }, 5000),
          `no drop on ${n0.name} naming the new identity ${relabelled.identity}: ${JSON.stringify(drop?.source)}`,
        );
        assert.equal(drop!.node_name, n0.name);
        assert.equal(drop!.traffic_direction, 'INGRESS');
        assert.ok(drop!.source?.labels?.includes('k8s:app=intruder'), JSON.stringify(drop!.source));
        assert.equal(drop!.source?.pod_name, 'client');

        // The reverse: the same pod, labelled app=client again, is admitted again, also on the held connection.
        const restored = await n1.cliJson<Endpoint>('endpoint', 'update', 'default/client', '--labels', 'app=client');
        assert.ok(await eventually(fresh, 10_000), 'new connections are still denied after the reverse relabel');
        assert.equal(await nextLine(hold, 15_000), 'echo during', 'the held connection delivers what it retransmits');
        let passed: Flow | undefined;
        assert.ok(
          await eventually(async () => {
            passed = (await flows()).reverse().find((f) => f.verdict === 'FORWARDED' && f.IP?.source === client.ipv4 && f.IP?.destination === server.ipv4 && !f.is_reply);
            return passed?.source?.identity === restored.identity;
          }, 5000),
          `no forwarded flow on ${n0.name} naming identity ${restored.identity}: ${JSON.stringify(passed?.source)}`,
        );
      } finally {
        hold.kill();
        await n1.api.updateEndpoint('default', 'client', ['app=client']);
        await n0.api.deletePolicy({ all: true });
      }
    });

    describe('a service whose backends live on the other node', { concurrency: false }, () => {
      let backends: Endpoint[];
      before(async () => {
        backends = [await addBackend(n0, 'default', 'web1'), await addBackend(n0, 'default', 'web2')];
        await n0.api.addService({ name: 'web', frontend: `${VIP}:80/TCP`, selector: ['app=web'], targetPort: PORT });
        const want = backends.map((b) => `${b.ipv4}:${PORT}`).sort();
        assert.ok(
          await eventually(async () => {
            const svc = (await n1.api.listServices()).find((s) => s.name === 'web');
            return JSON.stringify(svc?.activeBackends.map((b) => `${b.ip}:${b.port}`).sort()) === JSON.stringify(want);
          }, 10_000),
          `node 1 does not serve the service with both backends of node 0`,
        );
      });

      for (const outsideCgroup of [false, true]) {
        const how = outsideCgroup ? 'the endpoint program (client outside the cgroup)' : 'the socket hooks';
        it(`reaches both remote backends through the VIP by ${how}; their policy judges the client's identity`, async () => {
          const clients = new ServiceClients(n1, outsideCgroup);
          const spread = await clients.who(client, 'tcp', VIP, 80, 40);
          assert.deepEqual(spread.errors, {}, JSON.stringify(spread));
          assert.ok((spread.counts.web1 ?? 0) > 0 && (spread.counts.web2 ?? 0) > 0, JSON.stringify(spread.counts));

          await n0.api.importPolicies([cnp('web-from-client', 'endpointSelector: {matchLabels: {app: web}}\ningress:\n- fromEndpoints: [{matchLabels: {app: client}}]')]);
          try {
            const allowed = await clients.who(client, 'tcp', VIP, 80, 6);
            assert.deepEqual(allowed.errors, {}, `app=client is admitted: ${JSON.stringify(allowed)}`);
            const denied = await clients.who(other, 'tcp', VIP, 80, 1);
            assert.deepEqual(denied.errors, { timeout: 1 }, `app=other is dropped: ${JSON.stringify(denied)}`);

            // Only another label: the client itself is dropped on the backends' node, which names it.
            await n0.api.importPolicies([cnp('web-from-client', 'endpointSelector: {matchLabels: {app: web}}\ningress:\n- fromEndpoints: [{matchLabels: {app: other}}]')]);
            const since = new Date().toISOString();
            const dropped = await clients.who(client, 'tcp', VIP, 80, 1);
            assert.deepEqual(dropped.errors, { timeout: 1 }, `app=client is dropped: ${JSON.stringify(dropped)}`);
            assert.deepEqual((await clients.who(other, 'tcp', VIP, 80, 4)).errors, {}, 'app=other is admitted now');
            let drop: Flow | undefined;
            assert.ok(
              await eventually(async () => {
                drop = (await n0.observeFlows('--since', since, '--verdict', 'DROPPED')).find(
                  (f) => f.IP?.source === client.ipv4 && backends.some((b) => f.IP?.destination === b.ipv4),
                );
                return drop !== undefined;
              }, 5000),
              `no drop of the client on ${n0.name}`,
            );
            assert.equal(drop!.traffic_direction, 'INGRESS');
            assert.equal(drop!.source?.identity, client.identity);
            assert.equal(drop!.source?.pod_name, 'client');
            assert.ok(drop!.source?.labels?.includes('k8s:app=client'), JSON.stringify(drop!.source));
            assert.ok(drop!.destination?.labels?.includes('k8s:app=web'), JSON.stringify(drop!.destination));
          } finally {
            await n0.api.deletePolicy({ all: true });
          }
        });
      }
    });
  });
}
