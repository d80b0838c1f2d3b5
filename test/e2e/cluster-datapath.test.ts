/* The datapath between nodes, in both routing modes, on a cluster of two agents joined through
 * etcd (test/harness/cluster.ts): pods on different nodes reach each other over TCP, UDP and
 * ICMP both ways; a large transfer leaves no fragment on the underlay (the endpoint MTU leaves
 * room for VXLAN in tunnel mode); the node reaches the other node's pods as remote-node; policy
 * imported on the receiving node allows and denies by the labels of a pod on the other node, and
 * the receiving node's flows name the remote identity. Tunnel mode: the identity comes from the
 * VNI (an ipcache entry that lies about the sender changes nothing), and a restarted agent
 * adopts the device, its links and the routes without breaking a connection. Native mode: no
 * device, routes via the other node's underlay address, and a node that leaves takes its route. */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Endpoint, IpcacheRow } from '../../src/api/types.js';
import type { Flow } from '../../src/flow/types.js';
import { ipcacheKeyFor } from '../../src/datapath/ipcache.js';
import { ipcacheKey, ipcacheValue } from '../../src/datapath/layouts.js';
import { ROUTE_PROTO } from '../../src/cluster/routing.js';
import { TUNNEL_DEVICE } from '../../src/cluster/overlay.js';
import { VXLAN_OVERHEAD } from '../../src/cluster/mtu.js';
import { TestCluster } from '../harness/cluster.js';
import { eventually, sleep, waitForLine, type TestNode } from '../harness/node.js';

const PORT = 8080;
const UNDERLAY_MTU = 1500; // the harness's veths to the bridge
const REMOTE_NODE = 6;
/**
 * Lease TTL of the agents: the tunnel suite restarts agents under traffic, which a slow start on
 * a loaded machine must not turn into the node leaving; the native suite waits for a node to leave.
 */
const LEASE_TTL = { tunnel: 15, native: 8 } as const;
const SINK_PORT = 5201;
const TRANSFER_MIB = 64;
/** Counts the bytes of one TCP connection and answers with the count. */
const SINK = `require('node:net').createServer((s) => { let n = 0; s.on('data', (d) => (n += d.length)); s.on('end', () => s.end(String(n))); })
  .listen(Number(process.argv[1]), () => console.log('ready'));`;
/** Sends MiB mebibytes to HOST:PORT as fast as the connection takes them, then prints the answer. */
const SOURCE = `const [host, port, mib] = process.argv.slice(1); const s = require('node:net').connect(Number(port), host, () => {
  const chunk = Buffer.alloc(1 << 20, 7); let sent = 0;
  const more = () => { while (sent < Number(mib)) { sent++; if (!s.write(chunk)) return s.once('drain', more); } s.end(); };
  more(); });
  let answer = ''; s.on('data', (d) => (answer += d)); s.on('end', () => console.log(answer)); s.on('error', (e) => console.log(e.code));`;

/** One line through a held connection (test/harness/tools/hold-conn.mjs) and its echo back. */
async function roundTrip(conn: ChildProcess, word: string): Promise<void> {
  const echoed = waitForLine(conn, (l) => l === `echo ${word}` || l.startsWith('error'), 5000);
  conn.stdin!.write(word + '\n');
  assert.equal(await echoed, `echo ${word}`);
}

/** The flows `node` holds, oldest first. */
const flows = (node: TestNode): Promise<Flow[]> => node.observeFlows('--all');

/** The IPv4 counter `name` of the node's /proc/net/snmp (e.g. FragCreates). */
async function ipCounter(node: TestNode, name: string): Promise<number> {
  const lines = (await node.execNode(['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Ip:'));
  const names = lines[0]!.split(/\s+/);
  return Number(lines[1]!.split(/\s+/)[names.indexOf(name)]);
}

async function mtuOf(node: TestNode, netns: string | undefined, dev: string): Promise<number> {
  const r = netns ? await node.exec(netns, ['cat', `/sys/class/net/${dev}/mtu`]) : await node.execNode(['cat', `/sys/class/net/${dev}/mtu`]);
  assert.equal(r.code, 0, r.stderr);
  return Number(r.stdout.trim());
}

/** What both routing modes must do; `mode` picks the agents' --routing-mode. */
function clusterDatapath(mode: 'tunnel' | 'native', extra: (ctx: () => Ctx) => void): void {
  describe(`pods on two nodes, ${mode} routing`, { concurrency: false }, () => {
    let c: Ctx;
    before(async () => {
      const cluster = await TestCluster.create({ nodes: 2, extraAgentArgs: ['--routing-mode', mode, '--kvstore-lease-ttl', String(LEASE_TTL[mode])] });
      try {
        const [n0, n1] = cluster.nodes as [TestNode, TestNode];
        for (const n of cluster.nodes) await n.api.setNamespace('default');
        const client = await n0.api.addEndpoint({ namespace: 'default', name: 'client', labels: ['app=client'] });
        const intruder = await n0.api.addEndpoint({ namespace: 'default', name: 'intruder', labels: ['app=intruder'] });
        const server = await n1.api.addEndpoint({ namespace: 'default', name: 'server', labels: ['app=server'] });
        await n1.echoServer(server.netns, PORT);
        await n0.echoServer(client.netns, PORT);
        const known = async (n: TestNode, ep: Endpoint) => (await n.cliJson<IpcacheRow[]>('ipcache', 'list')).some((r) => r.prefix === `${ep.ipv4}/32`);
        for (const [n, ep] of [[n0, server], [n1, client], [n1, intruder]] as const) {
          assert.ok(await eventually(() => known(n, ep), 10_000), `${ep.name} in ${n.name}'s ipcache`);
        }
        c = { cluster, n0, n1, client, intruder, server };
      } catch (err) {
        await cluster.cleanup();
        throw err;
      }
    });
    after(async () => c?.cluster.cleanup());

    it('carries TCP, UDP and ICMP between pods on different nodes, both ways', async () => {
      const { n0, n1, client, server } = c;
      assert.ok(await n0.probe(client.netns, 'tcp', server.ipv4, PORT), 'client -> server over TCP');
      assert.ok(await n0.probe(client.netns, 'udp', server.ipv4, PORT), 'client -> server over UDP');
      assert.ok(await n0.ping(client.netns, server.ipv4), 'client pings server');
      assert.ok(await n1.probe(server.netns, 'tcp', client.ipv4, PORT), 'server -> client over TCP');
      assert.ok(await n1.probe(server.netns, 'udp', client.ipv4, PORT), 'server -> client over UDP');
      assert.ok(await n1.ping(server.netns, client.ipv4), 'server pings client');
    });

    it('answers a closed port across nodes with ICMP port unreachable (related traffic passes)', async () => {
      const { n0, client, server } = c;
      const started = Date.now();
      const r = await n0.exec(client.netns, ['node', '-e', `
        const s = require('node:dgram').createSocket('udp4');
        s.on('error', (e) => { console.log(e.code); process.exit(0); });
        s.connect(${PORT + 1}, '${server.ipv4}', () => { s.send('x'); setTimeout(() => s.send('y'), 200); });
        setTimeout(() => { console.log('timeout'); process.exit(0); }, 3000);`]);
      assert.equal(r.stdout.trim(), 'ECONNREFUSED', r.stderr);
      assert.ok(Date.now() - started < 3000);
    });

    it('moves a large TCP transfer at full segment size without fragments on the underlay', async () => {
      const { n0, n1, client, server } = c;
      const want = mode === 'tunnel' ? UNDERLAY_MTU - VXLAN_OVERHEAD : UNDERLAY_MTU;
      assert.equal(await mtuOf(n0, client.netns, 'eth0'), want, "the client's eth0");
      assert.equal(await mtuOf(n0, undefined, client.interface), want, "the client's host side");
      assert.equal(await mtuOf(n1, server.netns, 'eth0'), want, "the server's eth0");
      // The largest datagram that fits, with DF: through the overlay it must arrive whole.
      const df = await n0.exec(client.netns, ['ping', '-c', '1', '-W', '2', '-M', 'do', '-s', String(want - 28), server.ipv4]);
      assert.equal(df.code, 0, `a ${want}-byte packet with DF set: ${df.stdout}${df.stderr}`);
      const fragsBefore = [await ipCounter(n0, 'FragCreates'), await ipCounter(n1, 'FragCreates')];
      const sink = n1.spawnIn(server.netns, ['node', '-e', SINK, String(SINK_PORT)]);
      await waitForLine(sink, (l) => l === 'ready');
      const started = Date.now();
      const r = await n0.exec(client.netns, ['node', '-e', SOURCE, server.ipv4, String(SINK_PORT), String(TRANSFER_MIB)], 60_000);
      sink.kill();
      assert.equal(r.stdout.trim(), String(TRANSFER_MIB << 20), `the server counted what arrived: ${r.stdout}${r.stderr}`);
      assert.ok(Date.now() - started < 30_000, `${TRANSFER_MIB} MiB took ${Date.now() - started} ms`);
      assert.deepEqual([await ipCounter(n0, 'FragCreates'), await ipCounter(n1, 'FragCreates')], fragsBefore, 'no IP fragments were made on either node');
    });

    it("lets the node reach the other node's pods, which see it as remote-node", async () => {
      const { n0, n1, server } = c;
      const r = await n0.execNode(['ping', '-c', '1', '-W', '2', server.ipv4]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      let seen: Flow | undefined;
      const found = await eventually(async () => {
        seen = (await flows(n1)).find((f) => f.IP?.destination === server.ipv4 && f.l4?.ICMPv4 && f.traffic_direction === 'INGRESS' && !f.is_reply && f.source?.identity === REMOTE_NODE);
        return seen !== undefined;
      }, 5000);
      assert.ok(found, `no flow on ${n1.name} from node ${n0.name} as remote-node`);
    });

    it('enforces policy by the labels of a pod on the other node: deny wins, and the receiving node names the remote identity', async () => {
      const { n0, n1, client, intruder, server } = c;
      await n1.api.importPolicies([
        {
          name: 'server.yaml',
          content: `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: server-ingress, namespace: default }
spec:
  endpointSelector: { matchLabels: { app: server } }
  ingress:
    - fromEndpoints: [{}]
  ingressDeny:
    - fromEndpoints: [{ matchLabels: { app: intruder } }]
`,
        },
      ]);
      try {
        assert.ok(await eventually(async () => !(await n0.probe(intruder.netns, 'tcp', server.ipv4, PORT, 500)), 10_000), 'intruder -> server is denied');
        assert.ok(await n0.probe(client.netns, 'tcp', server.ipv4, PORT), 'client -> server is still allowed');
        assert.ok(!(await n0.ping(intruder.netns, server.ipv4)), 'intruder pings are denied too');
        let drop: Flow | undefined;
        assert.ok(
          await eventually(async () => {
            drop = (await flows(n1)).find((f) => f.verdict === 'DROPPED' && f.IP?.source === intruder.ipv4 && f.IP?.destination === server.ipv4 && f.l4?.TCP);
            return drop !== undefined;
          }, 5000),
          `no drop of intruder's traffic on ${n1.name}`,
        );
        assert.equal(drop!.traffic_direction, 'INGRESS');
        assert.equal(drop!.drop_reason_desc, 'POLICY_DENY');
        assert.equal(drop!.source?.identity, intruder.identity, `the drop names the remote identity: ${JSON.stringify(drop!.source)}`);
        assert.ok(drop!.source?.labels?.includes('k8s:app=intruder'), `with its labels: ${JSON.stringify(drop!.source)}`);
        assert.equal(drop!.destination?.identity, server.identity);
      } finally {
        await n1.api.deletePolicy({ all: true });
      }
      assert.ok(await eventually(() => n0.probe(intruder.netns, 'tcp', server.ipv4, PORT, 500), 10_000), 'allowed again once the policy is gone');
    });

    extra(() => c);
  });
}

interface Ctx {
  cluster: TestCluster;
  n0: TestNode;
  n1: TestNode;
  client: Endpoint;
  intruder: Endpoint;
  server: Endpoint;
}

/** Node `node`'s pinned ipcache, as the datapath reads it. */
const ipcacheMap = (node: TestNode) => node.pinnedMap('mb_ipcache', ipcacheKey, ipcacheValue);

clusterDatapath('tunnel', (ctx) => {
  it('runs one external VXLAN device with the overlay programs, and routes the other pod CIDR into it', async () => {
    const { cluster, n0 } = ctx();
    const link = JSON.parse((await n0.execNode(['ip', '-d', '-j', 'link', 'show', 'dev', TUNNEL_DEVICE])).stdout)[0] as {
      mtu: number;
      flags: string[];
      linkinfo: { info_kind: string; info_data: { external: boolean; port: number; learning: boolean } };
    };
    assert.equal(link.linkinfo.info_kind, 'vxlan');
    assert.deepEqual([link.linkinfo.info_data.external, link.linkinfo.info_data.port, link.linkinfo.info_data.learning], [true, 8472, false]);
    assert.equal(link.mtu, UNDERLAY_MTU - VXLAN_OVERHEAD);
    assert.ok(link.flags.includes('NOARP') && link.flags.includes('UP'), link.flags.join(','));
    const pins = fs.readdirSync(path.join(n0.bpffsDir, 'links')).filter((f) => f.startsWith('overlay-'));
    assert.deepEqual(pins.sort(), ['overlay-from-overlay', 'overlay-to-overlay']);
    const routes = (await n0.execNode(['ip', '-4', 'route', 'show', 'proto', String(ROUTE_PROTO)])).stdout.trim();
    const router = (await n0.api.status()).node.routerIP;
    assert.match(routes, new RegExp(`^${cluster.podCidr(1).replace(/\./g, '\\.')} dev ${TUNNEL_DEVICE} scope link src ${router.replace(/\./g, '\\.')} mtu ${UNDERLAY_MTU - VXLAN_OVERHEAD}\\s*$`));
  });

  it('judges a remote pod by the identity in the VNI, never by its inner source address', async () => {
    const { n0, n1, client, intruder, server } = ctx();
    await n1.api.importPolicies([
      {
        name: 'only-client.yaml',
        content: `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: only-client, namespace: default }
spec:
  endpointSelector: { matchLabels: { app: server } }
  ingress:
    - fromEndpoints: [{ matchLabels: { app: client } }]
`,
      },
    ]);
    const ipcache = ipcacheMap(n1);
    const key = ipcacheKeyFor(`${intruder.ipv4}/32`);
    const real = ipcache.get(key);
    assert.ok(real, `intruder in ${n1.name}'s ipcache`);
    try {
      assert.ok(await eventually(async () => !(await n0.probe(intruder.netns, 'tcp', server.ipv4, PORT, 500)), 10_000), 'intruder -> server is denied');
      // The receiving node's ipcache now says the intruder's address is the client: were it
      // trusted, the intruder would pass.
      ipcache.set(key, { ...real, identity: client.identity });
      assert.ok(!(await n0.probe(intruder.netns, 'tcp', server.ipv4, PORT, 800)), 'still denied: the VNI carries the intruder identity');
      assert.ok(await n0.probe(client.netns, 'tcp', server.ipv4, PORT), 'client -> server allowed');
      const drop = (await flows(n1)).reverse().find((f) => f.verdict === 'DROPPED' && f.IP?.source === intruder.ipv4 && f.l4?.TCP);
      assert.equal(drop?.source?.identity, intruder.identity, JSON.stringify(drop?.source));
    } finally {
      ipcache.set(key, real);
      ipcache.raw.close();
      await n1.api.deletePolicy({ all: true });
    }
  });

  it('adopts the device, its links and the routes after an agent restart, keeps a connection across nodes, and repairs an endpoint MTU', async () => {
    const { n0, n1, client, server } = ctx();
    const hold = n0.holdConnection(client.netns, server.ipv4, PORT);
    await waitForLine(hold, (l) => l === 'connected');
    const state = async (n: TestNode) => ({
      ifindex: (JSON.parse((await n.execNode(['ip', '-j', 'link', 'show', 'dev', TUNNEL_DEVICE])).stdout)[0] as { ifindex: number }).ifindex,
      pins: fs.readdirSync(path.join(n.bpffsDir, 'links')).filter((f) => f.startsWith('overlay-')).map((f) => fs.statSync(path.join(n.bpffsDir, 'links', f)).ino),
      routes: (await n.execNode(['ip', '-4', 'route', 'show', 'proto', String(ROUTE_PROTO)])).stdout,
    });
    const before = [await state(n0), await state(n1)];
    await n1.killAgent('SIGKILL');
    await roundTrip(hold, 'while-away'); // the datapath needs no agent
    await n1.startAgent();
    await n0.killAgent('SIGKILL');
    // As if the client had been plumbed before its node ran in tunnel mode: the restart repairs it.
    await n0.execNode(['ip', 'link', 'set', 'dev', client.interface, 'mtu', String(UNDERLAY_MTU)]);
    await n0.exec(client.netns, ['ip', 'link', 'set', 'dev', 'eth0', 'mtu', String(UNDERLAY_MTU)]);
    await n0.startAgent();
    await roundTrip(hold, 'after-restart');
    const mtu = UNDERLAY_MTU - VXLAN_OVERHEAD;
    assert.deepEqual([await mtuOf(n0, client.netns, 'eth0'), await mtuOf(n0, undefined, client.interface)], [mtu, mtu], "the client's MTU, repaired");
    assert.deepEqual([await state(n0), await state(n1)], before, 'same device, same pinned links, same routes');
    assert.ok(await n1.probe(server.netns, 'tcp', client.ipv4, PORT), 'new connections too');
    hold.kill();
  });
});

clusterDatapath('native', (ctx) => {
  it('routes the other pod CIDR via its node address, and makes no tunnel device', async () => {
    const { cluster, n0 } = ctx();
    const routes = (await n0.execNode(['ip', '-4', 'route', 'show', 'proto', String(ROUTE_PROTO)])).stdout.trim();
    assert.match(routes, new RegExp(`^${cluster.podCidr(1).replace(/\./g, '\\.')} via ${cluster.nodeIp(1).replace(/\./g, '\\.')} dev eth0\\s*$`));
    assert.notEqual((await n0.execNode(['ip', 'link', 'show', 'dev', TUNNEL_DEVICE])).code, 0, 'no tunnel device');
  });

  it('sends to the other node in eBPF: only the receiving node routes a pod packet through its stack, traced to-network', async () => {
    const { n0, n1, client, server } = ctx();
    assert.equal((await n0.api.status()).routing.hostRouting, 'BPF');
    const forwarded = async () => [await ipCounter(n0, 'ForwDatagrams'), await ipCounter(n1, 'ForwDatagrams')];
    const before = await forwarded();
    // Each echo request is sent by n0's datapath and routed by n1's stack, each reply the other way round.
    const r = await n0.exec(client.netns, ['ping', '-c', '5', '-i', '0.2', '-W', '2', server.ipv4]);
    assert.match(r.stdout, / 5 received/, r.stdout);
    assert.deepEqual((await forwarded()).map((n, i) => n - before[i]!), [5, 5], 'each node forwards what it receives, and nothing it sends');
    const out = (await flows(n0)).filter((f) => f.IP?.source === client.ipv4 && f.IP.destination === server.ipv4 && f.l4?.ICMPv4);
    assert.ok(out.some((f) => f.trace_observation_point === 'TO_NETWORK'), `no to-network trace: ${JSON.stringify(out.map((f) => f.trace_observation_point))}`);
  });

  it("removes a node's route once it left the cluster (its lease expired)", async () => {
    const { cluster, n0, n1 } = ctx();
    await n1.killAgent('SIGKILL');
    const gone = await eventually(async () => !(await n0.execNode(['ip', '-4', 'route', 'show', 'proto', String(ROUTE_PROTO)])).stdout.includes(cluster.podCidr(1)), (LEASE_TTL.native + 10) * 1000, 200);
    assert.ok(gone, `${n0.name} still routes ${cluster.podCidr(1)}`);
  });
});
