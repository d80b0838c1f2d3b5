/* The way out of the cluster: endpoints reach hosts beyond the underlay (namespaces of their own
 * with documentation addresses, test/harness/cluster.ts addOutsideHost) masqueraded to their
 * node's address by the BPF programs on the node's underlay device. The network between the
 * nodes knows no way back to the pod CIDRs, so every answer proves the translation; the outside
 * host reports the address and port it sees. Covered: TCP, UDP and ICMP echo out and back;
 * an ICMP error about a translated packet comes back translated; source ports kept when free
 * and changed on a collision with another endpoint or with the node's own socket; egress
 * policy on world, toCIDR and deny applied to the pod's own address before translation, with
 * flows naming the pod; nothing within the cluster is translated; a restarted agent keeps a
 * connection to the outside; `bpf nat list` and `status`. Both routing modes. */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Endpoint, IpcacheRow, NatRow, Status } from '../../src/api/types.js';
import type { Flow } from '../../src/flow/types.js';
import { TestCluster } from '../harness/cluster.js';
import { eventually, repoRoot, waitForLine, type TestNode } from '../harness/node.js';

const OUTSIDE = '203.0.113.10';
const OUTSIDE_2 = '203.0.113.11';
const PORT = 8080;
const WORLD = 2;
const peerServer = path.join(repoRoot, 'test/harness/tools/peer-server.mjs');

/** What the host at `host`:PORT saw a TCP connection from `ep` come from ('' if it failed); `localPort` binds the client. */
async function seenFrom(node: TestNode, ep: Endpoint, host: string, localPort?: number): Promise<string> {
  const r = await node.exec(ep.netns, ['node', '-e', `
    const s = require('node:net').connect({ host: '${host}', port: ${PORT}${localPort ? `, localPort: ${localPort}` : ''} });
    s.once('data', (d) => { console.log(String(d).split('\\n')[0]); process.exit(0); });
    s.on('error', (e) => { console.log('error ' + e.code); process.exit(0); });
    setTimeout(() => { console.log('timeout'); process.exit(0); }, 2000);`]);
  const line = r.stdout.trim();
  return /^\d+\.\d+\.\d+\.\d+:\d+$/.test(line) ? line : '';
}

/** The same over UDP (one datagram and its answer). */
async function seenFromUdp(node: TestNode, ep: Endpoint, host: string): Promise<string> {
  const r = await node.exec(ep.netns, ['node', '-e', `
    const s = require('node:dgram').createSocket('udp4');
    s.on('message', (m) => { console.log(String(m)); process.exit(0); });
    s.send('who', ${PORT}, '${host}');
    setTimeout(() => { console.log('timeout'); process.exit(0); }, 2000);`]);
  const line = r.stdout.trim();
  return /^\d+\.\d+\.\d+\.\d+:\d+$/.test(line) ? line : '';
}

/** One line through a held connection and its echo back. */
async function roundTrip(conn: ChildProcess, word: string): Promise<void> {
  const echoed = waitForLine(conn, (l) => l === `echo ${word}` || l.startsWith('error'), 5000);
  conn.stdin!.write(word + '\n');
  assert.equal(await echoed, `echo ${word}`);
}

async function known(n: TestNode, ep: Endpoint): Promise<boolean> {
  return (await n.cliJson<IpcacheRow[]>('ipcache', 'list')).some((r) => r.prefix === `${ep.ipv4}/32`);
}

/** "ADDRESS:any port", as the outside host reports a peer. */
const fromAddress = (address: string) => new RegExp(`^${address.replaceAll('.', '\\.')}:\\d+$`);

interface Ctx {
  cluster: TestCluster;
  n0: TestNode;
  n1: TestNode;
  /** Two endpoints on node 0 and a server (peer-server.mjs) on node 1. */
  client: Endpoint;
  other: Endpoint;
  server: Endpoint;
}

/** Two nodes in routing mode `mode`, their endpoints, and the outside hosts with their servers. */
async function setUp(mode: 'tunnel' | 'native'): Promise<Ctx> {
  const cluster = await TestCluster.create({ nodes: 2, extraAgentArgs: ['--routing-mode', mode] });
  try {
    const [n0, n1] = cluster.nodes as [TestNode, TestNode];
    await n0.api.setNamespace('default');
    const client = await n0.api.addEndpoint({ namespace: 'default', name: 'client', labels: ['app=client'] });
    const other = await n0.api.addEndpoint({ namespace: 'default', name: 'other', labels: ['app=other'] });
    const server = await n1.api.addEndpoint({ namespace: 'default', name: 'server', labels: ['app=server'] });
    await waitForLine(n1.spawnIn(server.netns, ['node', peerServer, String(PORT)]), (l) => l === 'ready');
    assert.ok(await eventually(() => known(n0, server), 10_000), "the server in node 0's ipcache");
    for (const [name, ip] of [['a', OUTSIDE], ['b', OUTSIDE_2]] as const) {
      const netns = await cluster.addOutsideHost(name, ip);
      await waitForLine(n0.spawnIn(netns, ['node', peerServer, String(PORT)], { outsideCgroup: true }), (l) => l === 'ready');
    }
    return { cluster, n0, n1, client, other, server };
  } catch (err) {
    await cluster.cleanup();
    throw err;
  }
}

describe('the way out of the cluster, tunnel routing', { concurrency: false }, () => {
  let cluster: TestCluster;
  let n0: TestNode;
  let client: Endpoint;
  let other: Endpoint;
  let server: Endpoint;

  before(async () => ({ cluster, n0, client, other, server } = await setUp('tunnel')));
  after(async () => cluster?.cleanup());

  it("reaches hosts outside over TCP, UDP and ICMP as its node's address, and flows name the pod", async () => {
    const node0 = cluster.nodeIp(0);
    assert.match(await seenFrom(n0, client, OUTSIDE), fromAddress(node0), 'TCP seen from the node');
    assert.match(await seenFromUdp(n0, client, OUTSIDE), fromAddress(node0), 'UDP seen from the node');
    assert.ok(await n0.ping(client.netns, OUTSIDE), 'ping');
    const flows = await n0.observeFlows('--all', '--ip', OUTSIDE);
    const out = flows.filter((f) => f.IP?.source === client.ipv4 && f.IP?.destination === OUTSIDE);
    assert.ok(out.length > 0, 'flows from the pod address to the outside host');
    assert.ok(out.every((f) => f.verdict === 'FORWARDED' && f.destination?.identity === WORLD), JSON.stringify(out[0]));
    assert.ok(out.some((f) => f.trace_observation_point === 'TO_STACK'), 'traced where it is handed to the stack');
    assert.ok(flows.filter((f) => f.IP?.source === OUTSIDE).every((f) => f.IP?.destination === client.ipv4), 'replies reach the pod address');
  });

  it('keeps a free source port, and gives another to a collision with an endpoint or with the node', async () => {
    const node0 = cluster.nodeIp(0);
    const first = await seenFrom(n0, client, OUTSIDE, 40_000);
    assert.equal(first, `${node0}:40000`, 'the port kept');
    // The first connection is closed but its tracking entry lives on: the port is still taken.
    const second = await seenFrom(n0, other, OUTSIDE, 40_000);
    assert.match(second, fromAddress(node0));
    assert.notEqual(second, first, 'a colliding endpoint gets another port');
    // The node's own connection from port 40001 to the same host and port.
    const own = n0.spawnIn(n0.netns, ['node', '-e', `
      const s = require('node:net').connect({ host: '${OUTSIDE}', port: ${PORT}, localPort: 40001 });
      s.on('data', (d) => process.stdout.write(String(d).split('\\n').filter(Boolean).map((l) => 'echo ' + l + '\\n').join('')));
      s.on('error', (e) => console.log('error ' + e.code));
      require('node:readline').createInterface({ input: process.stdin }).on('line', (l) => s.write(l + '\\n'));`], { outsideCgroup: true });
    assert.equal(await waitForLine(own, (l) => l.startsWith('echo') || l.startsWith('error')), `echo ${node0}:40001`);
    const pod = await seenFrom(n0, client, OUTSIDE, 40_001);
    assert.match(pod, /:\d+$/);
    assert.notEqual(pod, `${node0}:40001`, "the node's socket keeps its port");
    await roundTrip(own, 'still-mine');
    own.kill();
  });

  it('translates an ICMP error about a masqueraded packet back: a closed port outside refuses at once', async () => {
    const r = await n0.exec(client.netns, ['node', '-e', `
      const s = require('node:dgram').createSocket('udp4');
      s.on('error', (e) => { console.log(e.code); process.exit(0); });
      s.connect(${PORT + 1}, '${OUTSIDE}', () => { s.send('x'); setTimeout(() => s.send('y'), 300); });
      setTimeout(() => { console.log('timeout'); process.exit(0); }, 3000);`]);
    assert.equal(r.stdout.trim(), 'ECONNREFUSED', r.stderr);
  });

  it('judges egress to world and CIDRs on the pod address before translation, and flows name the pod', async () => {
    await n0.api.importPolicies([{ name: 'out.yaml', content: `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: only-a, namespace: default }
spec:
  endpointSelector: { matchLabels: { app: client } }
  egress:
  - toCIDR: [${OUTSIDE}/32]
` }]);
    try {
      assert.ok(await eventually(async () => (await seenFrom(n0, client, OUTSIDE_2)) === '', 5000), 'the other outside host is denied');
      assert.notEqual(await seenFrom(n0, client, OUTSIDE), '', 'the allowed CIDR passes');
      const drops = (await n0.observeFlows('--all', '--verdict', 'DROPPED', '--ip', OUTSIDE_2)).filter((f) => f.drop_reason_desc === 'POLICY_DENIED');
      assert.ok(drops.length > 0, 'a policy drop');
      assert.equal(drops[0]!.IP?.source, client.ipv4, 'the drop names the pod address');
      await n0.api.importPolicies([{ name: 'deny.yaml', content: `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: no-world, namespace: default }
spec:
  endpointSelector: { matchLabels: { app: client } }
  egressDeny:
  - toEntities: [world]
` }]);
      assert.ok(await eventually(async () => (await seenFrom(n0, client, OUTSIDE)) === '', 5000), 'deny wins over the CIDR allow');
      assert.ok((await n0.observeFlows('--all', '--verdict', 'DROPPED', '--ip', OUTSIDE)).some((f) => f.drop_reason_desc === 'POLICY_DENY' && f.IP?.source === client.ipv4));
    } finally {
      await n0.api.deletePolicy({ namespace: 'default', name: 'only-a' }).catch(() => undefined);
      await n0.api.deletePolicy({ namespace: 'default', name: 'no-world' }).catch(() => undefined);
    }
  });

  it('translates nothing within the cluster: a pod on the other node sees the pod address', async () => {
    assert.match(await seenFrom(n0, client, server.ipv4), fromAddress(client.ipv4));
  });

  it('lists the NAT table both ways, and status says where traffic leaves', async () => {
    await seenFrom(n0, client, OUTSIDE, 40_002);
    const rows = await n0.cliJson<NatRow[]>('bpf', 'nat', 'list');
    const out = rows.find((r) => r.direction === 'OUT' && r.source === `${client.ipv4}:40002` && r.destination === `${OUTSIDE}:${PORT}`);
    assert.ok(out, JSON.stringify(rows));
    assert.equal(out.protocol, 'TCP');
    const natPort = out.translated.split(':')[1];
    assert.ok(rows.some((r) => r.direction === 'IN' && r.source === `${OUTSIDE}:${PORT}` && r.destination === `${cluster.nodeIp(0)}:${natPort}` && r.translated === `${client.ipv4}:40002`));
    const table = await n0.cli('bpf', 'nat', 'list');
    assert.match(table.stdout, /PROTO\s+DIRECTION\s+SOURCE\s+DESTINATION\s+TRANSLATED/);
    const status = await n0.cliJson<Status>('status');
    assert.deepEqual(status.routing, { mode: 'tunnel', hostRouting: 'BPF', masquerade: { device: 'eth0', address: cluster.nodeIp(0) } });
    assert.ok(status.datapath.objects['netdev.o'], 'the masquerading object is listed');
  });

  it('keeps a connection to the outside across an agent restart', async () => {
    const conn = n0.holdConnection(client.netns, OUTSIDE, PORT);
    assert.match(await waitForLine(conn, (l) => l.startsWith('echo') || l.startsWith('error')), new RegExp(`^echo ${cluster.nodeIp(0)}:`));
    await roundTrip(conn, 'before');
    await n0.killAgent('SIGTERM');
    await roundTrip(conn, 'while-away');
    await n0.startAgent();
    await roundTrip(conn, 'after');
    conn.kill();
  });
});

describe('the way out of the cluster, native routing', { concurrency: false }, () => {
  let c: Ctx;
  before(async () => (c = await setUp('native')));
  after(async () => c?.cluster.cleanup());

  it("masquerades what leaves the cluster, and nothing that goes to the other node's pods over the same device", async () => {
    const { cluster, n0, client, server } = c;
    assert.match(await seenFrom(n0, client, OUTSIDE), fromAddress(cluster.nodeIp(0)));
    assert.ok(await n0.ping(client.netns, OUTSIDE), 'ping');
    assert.match(await seenFrom(n0, client, server.ipv4), fromAddress(client.ipv4));
  });
});
