/* A cluster's shared state through a real etcd: three agents in node namespaces on one
 * underlay, etcd in the network's namespace. Nodes register (and are refused when their name
 * or pod CIDR clashes), label sets get one identity across the cluster even when nodes race,
 * every node's ipcache learns the others' endpoints and nodes, a dead node's entries expire
 * with its lease, an etcd outage keeps known identities usable and refuses new ones until etcd
 * is back, a restart keeps the node's lease, and identities no node uses are freed. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ClusterNode, Endpoint, Identity, IpcacheRow, Status } from '../../src/api/types.js';
import { TestCluster } from '../harness/cluster.js';
import { eventually, repoRoot, run, type TestNode } from '../harness/node.js';

const LEASE_TTL = 8;
const GC_INTERVAL = 2;
const bin = path.join(repoRoot, 'bin/membrane');

describe('a cluster through etcd', { concurrency: false }, () => {
  let cluster: TestCluster;
  let nodes: TestNode[];

  before(async () => {
    cluster = await TestCluster.create({ nodes: 3, extraAgentArgs: ['--kvstore-lease-ttl', String(LEASE_TTL), '--identity-gc-interval', String(GC_INTERVAL)] });
    nodes = cluster.nodes;
    // A namespace set on one node is every node's.
    await nodes[0]!.api.setNamespace('default');
    for (const n of nodes) assert.ok(await eventually(async () => (await n.api.listNamespaces()).some((x) => x.name === 'default'), 5000), `namespace default on ${n.name}`);
  });
  after(async () => {
    await cluster?.cleanup();
  });

  /**
   * `nsenter` arguments of a second agent in `host`'s namespace, with files of its own named by
   * `tag` (and no TCP listeners), joining the cluster through `etcdUrl`.
   */
  const extraAgent = (host: TestNode, tag: string, name: string, podCidr: string, etcdUrl: string) => [
    `--net=/run/netns/${host.netns}`,
    bin,
    '--socket', path.join(cluster.dir, `${tag}.sock`),
    'agent',
    '--node-name', name,
    '--pod-cidr', podCidr,
    '--state-dir', path.join(cluster.dir, `${tag}-state`),
    '--bpffs-dir', `/sys/fs/bpf/${cluster.prefix}-${tag}`,
    '--hubble-address', '', '--hubble-socket', '', '--metrics-address', '',
    '--cgroup-root', host.cgroupDir,
    '--kvstore', 'etcd', '--kvstore-endpoints', etcdUrl,
  ];
  const nodeList = (n: TestNode) => n.cliJson<ClusterNode[]>('node', 'list');
  const ipcache = async (n: TestNode) => new Map((await n.cliJson<IpcacheRow[]>('ipcache', 'list')).map((r) => [r.prefix, r]));
  const addEp = (n: TestNode, name: string, labels: string[]) => n.api.addEndpoint({ namespace: 'default', name, labels });

  it('lists every node on every node, with its address, pod CIDR and health; status shows etcd', async () => {
    for (const n of nodes) {
      let list: ClusterNode[] = [];
      assert.ok(await eventually(async () => (list = await nodeList(n)).length === 3, 10_000), `node list on ${n.name}: ${JSON.stringify(list)}`);
      assert.deepEqual(
        list.map((x) => [x.name, x.ip, x.podCIDR, x.health]),
        nodes.map((m, i) => [m.name, cluster.nodeIp(i), cluster.podCidr(i), 'ok']).sort(),
      );
    }
    const s = await nodes[0]!.cliJson<Status>('status');
    assert.equal(s.kvstore.backend, 'etcd');
    assert.ok(s.kvstore.backend === 'etcd' && s.kvstore.connected && s.kvstore.endpoints[0] === cluster.etcd.url);
    assert.deepEqual(s.cluster, { nodes: 3, healthy: 3 });
    const table = await nodes[1]!.cli('node', 'list');
    assert.match(table.stdout, /^NAME\s+ADDRESS\s+POD CIDR\s+HEALTH\s+LAST SEEN\s+ENDPOINTS/);
  });

  it('refuses a second agent with a taken node name, or a pod CIDR that overlaps another node, in one line', async () => {
    const tryAgent = (name: string, podCidr: string) => run('nsenter', extraAgent(nodes[1]!, 'intruder', name, podCidr, cluster.etcd.url), { timeoutMs: 30_000 });
    const taken = await tryAgent(nodes[0]!.name, '10.99.0.0/24');
    assert.equal(taken.code, 1);
    assert.equal(taken.stderr.trim().split('\n').length, 1, taken.stderr);
    assert.match(taken.stderr, new RegExp(`node name ${nodes[0]!.name} is taken by a running agent at ${cluster.nodeIp(0)}`));
    const overlapping = await tryAgent(`${cluster.prefix}-other`, '10.210.0.0/16');
    assert.equal(overlapping.code, 1);
    assert.match(overlapping.stderr, /--pod-cidr 10\.210\.0\.0\/16 overlaps node \S+'s 10\.210\.\d\.0\/24: give this node a pod CIDR of its own/);
    // Refused before touching the machine: nothing pinned, and the cluster still has three nodes.
    assert.equal((await run('ls', [`/sys/fs/bpf/${cluster.prefix}-intruder`])).code, 2);
    assert.equal((await nodeList(nodes[2]!)).length, 3);
  });

  it('gives a label set one identity on every node, also when nodes race to number it', async () => {
    // Every node adds endpoints of the same five new label sets at once.
    const sets = ['alpha', 'beta', 'gamma', 'delta', 'epsilon'];
    const added = await Promise.all(nodes.flatMap((n, i) => sets.map((s) => addEp(n, `race-${s}-${i}`, [`app=${s}`]))));
    const byLabels = new Map<string, Set<number>>();
    for (const ep of added) {
      const app = ep.labels.find((l) => l.startsWith('k8s:app='))!;
      byLabels.set(app, (byLabels.get(app) ?? new Set()).add(ep.identity));
    }
    for (const [app, ids] of byLabels) assert.equal(ids.size, 1, `${app} got identities ${[...ids]}`);
    const numbers = [...byLabels.values()].map((ids) => [...ids][0]!);
    assert.equal(new Set(numbers).size, sets.length, 'two label sets share a number');
    for (const id of numbers) assert.ok(id >= 256 && id <= 65535);
    // Each node knows every identity, also those it has no endpoint of.
    const lone = await addEp(nodes[0]!, 'lone', ['app=lone']);
    for (const n of nodes) {
      assert.ok(await eventually(async () => (await n.api.listIdentities()).some((i: Identity) => i.id === lone.identity && i.labels.includes('k8s:app=lone'))), `identity of app=lone on ${n.name}`);
    }
  });

  it("puts the other nodes' endpoints, addresses and pod CIDRs in every node's ipcache", async () => {
    const web = await addEp(nodes[0]!, 'web', ['app=web']);
    const remote = nodes[1]!;
    let rows = new Map<string, IpcacheRow>();
    assert.ok(await eventually(async () => (rows = await ipcache(remote)).has(`${web.ipv4}/32`), 5000), 'the endpoint of node 0 in node 1 ipcache');
    const entry = (prefix: string) => {
      const r = rows.get(prefix);
      return r && { identity: r.identity, tunnelEndpoint: r.tunnelEndpoint };
    };
    assert.deepEqual(entry(`${web.ipv4}/32`), { identity: web.identity, tunnelEndpoint: cluster.nodeIp(0) });
    assert.equal(rows.get(`${cluster.nodeIp(0)}/32`)?.identity, 6, 'another node is remote-node');
    assert.equal(rows.get(`${cluster.nodeIp(2)}/32`)?.identity, 6);
    assert.deepEqual(entry(cluster.podCidr(0)), { identity: 2, tunnelEndpoint: cluster.nodeIp(0) });
    // Deleted on its node: gone from the others.
    await nodes[0]!.api.deleteEndpoint('default', 'web');
    assert.ok(await eventually(async () => !(await ipcache(remote)).has(`${web.ipv4}/32`), 5000), 'a deleted endpoint leaves the other ipcaches');
  });

  it('applies a policy imported on one node on every node, against remote identities; deletes it everywhere', async () => {
    const server = await addEp(nodes[1]!, 'db', ['app=db']);
    const client = await addEp(nodes[0]!, 'api', ['app=api']);
    const yaml = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: db-from-api, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: db}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: api}}]
    toPorts: [{ports: [{port: "5432", protocol: TCP}]}]
`;
    await nodes[2]!.api.importPolicies([{ name: 'db.yaml', content: yaml }]);
    for (const n of nodes) {
      assert.ok(await eventually(async () => (await n.api.listPolicies()).policies.some((p) => p.name === 'db-from-api'), 5000), `policy on ${n.name}`);
    }
    // Enforced on the server's node for the client's identity, which lives on another node.
    const entries = async () => (await nodes[1]!.api.endpointPolicy('default', 'db')).entries;
    assert.ok(await eventually(async () => (await entries()).some((e) => e.direction === 'INGRESS' && e.identity === client.identity && e.port === '5432/TCP'), 5000), JSON.stringify(await entries()));
    assert.ok(server.identity !== client.identity);
    await nodes[0]!.api.deletePolicy({ namespace: 'default', name: 'db-from-api' });
    for (const n of nodes) {
      assert.ok(await eventually(async () => !(await n.api.listPolicies()).policies.some((p) => p.name === 'db-from-api'), 5000), `policy still on ${n.name}`);
    }
    // Namespace labels set on one node relabel the endpoints of every node.
    await nodes[1]!.api.setNamespace('default', ['team=blue']);
    assert.ok(await eventually(async () => (await nodes[0]!.api.getEndpoint('default', 'api')).labels.includes('k8s:io.cilium.k8s.namespace.labels.team=blue'), 5000), 'relabelled on another node');
    await nodes[1]!.api.setNamespace('default', []);
  });

  it('shares a service added on one node with every node, its selector choosing backends on any node', async () => {
    const b0 = await addEp(nodes[0]!, 'shop-0', ['app=shop']);
    const b1 = await addEp(nodes[1]!, 'shop-1', ['app=shop']);
    await nodes[2]!.api.addService({ name: 'shop', frontend: '10.96.0.50:80/TCP', selector: ['app=shop'], targetPort: 8080 });
    const backends = async (n: TestNode) => {
      const svc = (await n.api.listServices()).find((x) => x.name === 'shop');
      return svc ? svc.activeBackends.map((b) => `${b.ip}:${b.port}`).sort() : undefined;
    };
    const want = [`${b0.ipv4}:8080`, `${b1.ipv4}:8080`].sort();
    for (const n of nodes) {
      assert.ok(await eventually(async () => JSON.stringify(await backends(n)) === JSON.stringify(want), 5000), `service on ${n.name}: ${JSON.stringify(await backends(n))}`);
    }
    // A backend that goes away on its node leaves the service everywhere.
    await nodes[1]!.api.deleteEndpoint('default', 'shop-1');
    assert.ok(await eventually(async () => JSON.stringify(await backends(nodes[2]!)) === JSON.stringify([`${b0.ipv4}:8080`]), 5000));
    await nodes[0]!.api.deleteService('shop');
    for (const n of nodes) assert.ok(await eventually(async () => (await backends(n)) === undefined, 5000), `service still on ${n.name}`);
    await nodes[0]!.api.deleteEndpoint('default', 'shop-0');
  });

  it('keeps known identities usable while etcd is down, refuses new label sets clearly, and catches up when it is back', async () => {
    const known = await addEp(nodes[1]!, 'known-1', ['app=known']);
    await cluster.etcd.kill();
    try {
      const again = await addEp(nodes[1]!, 'known-2', ['app=known']);
      assert.equal(again.identity, known.identity, 'labels with a known identity are added while etcd is down');
      await assert.rejects(addEp(nodes[1]!, 'fresh-1', ['app=fresh']), /need a new cluster-wide identity and etcd does not answer/);
      assert.equal((await nodes[1]!.api.listEndpoints()).some((e: Endpoint) => e.name === 'fresh-1'), false, 'nothing left of the refused add');
      // Cluster-wide intent is refused whole too.
      const before = (await nodes[1]!.api.listPolicies()).revision;
      await assert.rejects(
        nodes[1]!.api.importPolicies([{ name: 'p.yaml', content: 'apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: during-outage}\nspec:\n  endpointSelector: {}\n  ingress: [{}]\n' }]),
        /policy is shared through etcd, which does not answer .*nothing was changed/,
      );
      assert.equal((await nodes[1]!.api.listPolicies()).revision, before);
      await assert.rejects(nodes[1]!.api.setNamespace('outage', []), /a namespace is shared through etcd, which does not answer/);
      await assert.rejects(nodes[1]!.api.addService({ name: 'outage', frontend: '10.96.0.51:80/TCP' }), /a service is shared through etcd, which does not answer/);
      assert.equal((await nodes[1]!.api.listServices()).some((x) => x.name === 'outage'), false);
      const s = (await nodes[1]!.api.status()).kvstore;
      assert.ok(s.backend === 'etcd' && !s.connected && s.outageSince, `status shows the outage: ${JSON.stringify(s)}`);
    } finally {
      await cluster.etcd.restart();
    }
    assert.ok(await eventually(async () => {
      const s = (await nodes[1]!.api.status()).kvstore;
      return s.backend === 'etcd' && s.connected;
    }, 20_000), 'reconnected');
    const fresh = await addEp(nodes[1]!, 'fresh-1', ['app=fresh']);
    assert.ok(fresh.identity >= 256);
    // What node 1 did while etcd was down reaches the others.
    const k2 = (await nodes[1]!.api.getEndpoint('default', 'known-2')).ipv4;
    assert.ok(await eventually(async () => (await ipcache(nodes[0]!)).has(`${k2}/32`), 20_000), 'an endpoint added during the outage is published afterwards');
  });

  it('adopts its lease across a restart: the node never leaves the others\' lists', async (t) => {
    const n = nodes[2]!;
    const logBefore = n.agentLog().length;
    const peerLogBefore = nodes[0]!.agentLog().length;
    await n.killAgent();
    const killedAt = Date.now();
    await n.startAgent();
    // The lease outlives the kill by at least TTL minus one keepalive period (TTL / 3). A restart slower than that
    // on a loaded machine must find it expired, which is right, and is checked as such.
    const leaseCheck = n.agentLog().slice(logBefore).split('\n').map((l) => (l.startsWith('{') ? (JSON.parse(l) as { msg: string; time: number }) : undefined))
      .find((l) => l && /adopted the lease of this node's previous run|the previous run's lease has expired/.test(l.msg));
    assert.ok(leaseCheck, 'the restarted agent said nothing of its previous lease');
    if (/has expired/.test(leaseCheck.msg)) {
      assert.ok(leaseCheck.time - killedAt >= ((LEASE_TTL * 2) / 3 - 1) * 1000, `the lease was not adopted ${leaseCheck.time - killedAt} ms after the kill`);
      t.diagnostic(`restart took ${leaseCheck.time - killedAt} ms: longer than the lease could outlive the kill`);
      assert.ok(await eventually(async () => (await nodeList(nodes[0]!)).length === 3, 10_000), 'the restarted node did not join again');
      return;
    }
    assert.doesNotMatch(n.agentLog().slice(logBefore), /the node lease expired/);
    const left = nodes[0]!.agentLog().slice(peerLogBefore).split('\n').filter((l) => l.includes('node left the cluster') && l.includes(`"peer":"${n.name}"`));
    assert.deepEqual(left, [], 'the restarting node left the other nodes\' lists');
    assert.equal((await nodeList(nodes[0]!)).length, 3);
  });

  it("removes a dead node's entry, endpoints and service backends once its lease expires", async () => {
    const n = nodes[2]!;
    const ep = await addEp(n, 'doomed', ['app=doomed']);
    await nodes[0]!.api.addService({ name: 'doomed', frontend: '10.96.0.60:80/TCP', selector: ['app=doomed'] });
    const backends = async () => (await nodes[0]!.api.getService('doomed')).activeBackends.map((b) => b.ip);
    assert.ok(await eventually(async () => (await backends()).includes(ep.ipv4), 5000), 'the remote backend is selected');
    assert.ok(await eventually(async () => (await ipcache(nodes[0]!)).has(`${ep.ipv4}/32`), 5000));
    await n.killAgent();
    const t0 = Date.now();
    assert.ok(await eventually(async () => (await nodeList(nodes[0]!)).length === 2, (LEASE_TTL + 10) * 1000), 'the dead node is still listed');
    assert.ok(await eventually(async () => !(await ipcache(nodes[0]!)).has(`${ep.ipv4}/32`), 5000), "the dead node's endpoint is still in the ipcache");
    assert.ok(!(await ipcache(nodes[0]!)).has(cluster.podCidr(2)), "the dead node's pod CIDR is still in the ipcache");
    assert.deepEqual(await backends(), [], "the dead node's endpoint is still a backend");
    await nodes[0]!.api.deleteService('doomed');
    assert.ok(Date.now() - t0 >= (LEASE_TTL - 1) * 1000, 'removed before the lease could expire');
  });

  it('waits for an etcd that does not answer, saying so, with backoff; Ctrl-C stops it at once', async () => {
    // Nothing listens on port 2399.
    const agent = spawn('nsenter', extraAgent(nodes[0]!, 'waiting', `${cluster.prefix}-waiting`, '10.99.1.0/24', `http://${cluster.gatewayIp}:2399`), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    agent.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => agent.once('exit', (code) => resolve(code)));
    try {
      assert.ok(await eventually(() => (stderr.match(/waiting for etcd at http:\/\/172\.30\.0\.1:2399/g) ?? []).length >= 3, 15_000), stderr);
      const waits = [...stderr.matchAll(/"retryInMs":(\d+)/g)].map((m) => Number(m[1]));
      assert.ok(waits[1]! > waits[0]! && waits[2]! > waits[1]!, `no backoff: ${waits}`);
      agent.kill('SIGINT');
      assert.equal(await exited, 1);
      assert.match(stderr, /Error: stopped while waiting for etcd/);
      assert.equal((await run('ls', [`/sys/fs/bpf/${cluster.prefix}-waiting`])).code, 2, 'the waiting agent touched the machine');
    } finally {
      agent.kill('SIGKILL');
    }
  });

  it('claims a pod CIDR block from the cluster pool, a different one per node, and keeps it across a restart', async () => {
    const pool = { pool: '10.220.0.0/16', maskSize: 24 };
    const a = await cluster.addNode({ podCidr: pool });
    const b = await cluster.addNode({ podCidr: pool });
    assert.match(a.podCidr, /^10\.220\.\d+\.0\/24$/);
    assert.match(b.podCidr, /^10\.220\.\d+\.0\/24$/);
    assert.notEqual(a.podCidr, b.podCidr);
    await a.api.setNamespace('default');
    const ep = await addEp(a, 'pooled', ['app=pooled']);
    assert.ok(ep.ipv4.startsWith(a.podCidr.slice(0, a.podCidr.lastIndexOf('.'))), `${ep.ipv4} outside ${a.podCidr}`);
    const before = a.podCidr;
    await a.killAgent();
    await a.startAgent();
    assert.equal(a.podCidr, before, 'the node claimed another block after a restart');
    assert.equal((await a.api.getEndpoint('default', 'pooled')).ipv4, ep.ipv4);
    assert.ok(await eventually(async () => (await nodeList(nodes[0]!)).some((n) => n.name === b.name && n.podCIDR === b.podCidr), 5000));
    // --pod-cidr and the pool exclude each other.
    const both = await a.cli('agent', '--node-name', 'x', '--pod-cidr', '10.9.0.0/24', '--cluster-pool-ipv4-cidr', '10.220.0.0/16');
    assert.match(both.stderr, /--pod-cidr and --cluster-pool-ipv4-cidr exclude each other/);
    await a.cleanup();
    await b.cleanup();
  });

  it('frees an identity no node uses any more, after the grace period', async () => {
    const ep = await addEp(nodes[0]!, 'passing', ['app=passing']);
    const key = `membrane/state/identities/v1/id/${ep.identity}`;
    const has = async () => (await cluster.etcd.etcdctl(['get', key, '--keys-only'])).stdout.includes(key);
    assert.ok(await has());
    await nodes[0]!.api.deleteEndpoint('default', 'passing');
    assert.ok(await eventually(async () => !(await has()), GC_INTERVAL * 3000 + 20_000), 'the unused identity is still in etcd');
    // An identity still in use stays.
    const used = (await nodes[0]!.api.getEndpoint('default', 'lone')).identity;
    assert.match((await cluster.etcd.etcdctl(['get', `membrane/state/identities/v1/id/${used}`])).stdout, /k8s:app=lone/);
  });
});
