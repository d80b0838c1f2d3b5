/* bench/cluster's datapath rows: traffic between pods on two nodes, Membrane against the same
 * topology built from plain kernel parts with no BPF program anywhere, measured in the same run:
 *  - tunnel mode against a plain kernel VXLAN overlay: a `vxlan` device per node (VNI 1, port
 *    8472, no learning, no outer UDP checksum as Membrane's tunnel keys ask: the kernel's default
 *    for a device made by `ip` is to compute it), a permanent neighbour and FDB entry for the
 *    other node's device and a route to its pod CIDR through it (flannel's vxlan backend, with
 *    static entries);
 *  - native mode against plain kernel routing: a route to the other node's pod CIDR via its
 *    underlay address.
 * Both sides have the same shape: a namespace with a bridge plays the underlay (MTU 1500), each
 * node a namespace joined to it by a veth, and one workload per node behind a veth plumbed by
 * Membrane's own code (src/endpoint/plumbing.ts: /32 route, permanent neighbour, the router
 * address on the node's loopback, the pod CIDR unreachable otherwise), so the baseline differs
 * only in what moves packets between the nodes. The baseline's workloads (and its VXLAN device)
 * get the MTU Membrane gave its endpoints (in tunnel mode the underlay's less the encapsulation;
 * src/cluster/mtu.ts), read from Membrane's client, so a change there is followed here.
 * Membrane's side is a TestCluster (etcd, two agents, --routing-mode MODE) with a client pod on
 * node 0, a server pod on node 1 and a policy on the server that allows the client (so the
 * receiving node judges the remote identity, as it would in use). One mode at a time, each
 * cluster removed before the next: idle agents of the other mode would only add noise.
 * Measures (bench/load.ts): iperf3 stream, sockperf TCP ping-pong as transactions/s at the median
 * round trip, connection rate; each ratio the median over pairs of back-to-back runs in
 * alternating order. */
import crypto from 'node:crypto';
import path from 'node:path';
import type { RoutingMode } from '../../src/cluster/routing-mode.js';
import { DEFAULT_TUNNEL_PORT } from '../../src/cluster/routing-mode.js';
import { plumb, randomMac } from '../../src/endpoint/plumbing.js';
import { IprouteNetlink } from '../../src/kernel/netlink.js';
import { TestCluster } from '../../test/harness/cluster.js';
import { eventually, repoRoot, run, type TestNode } from '../../test/harness/node.js';
import { Alternating, PORT, Servers, connectionRate, requestResponse, tcpStream, type Ends } from '../load.js';
import type { RatioRow } from '../stats.js';
import { deleteNamespacesOnExit, echoServerArgv } from '../topology.js';

const nl = new IprouteNetlink();

export interface DatapathOptions {
  rounds: number;
  seconds: number;
  /** Back-to-back pairs a round, for every row: on this shared machine one pair swings by 2×. */
  pairs: number;
}

/** The labels of the two pods and the policy that lets the client reach the server. */
const POLICY = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: bench-dp, namespace: bench}
spec:
  endpointSelector: {matchLabels: {role: dp-server}}
  ingress:
  - fromEndpoints: [{matchLabels: {role: dp-client}}]
`;

async function ip(args: string[]): Promise<void> {
  const r = await run('ip', args);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

/** The MTU of `dev` inside `netns`. */
async function mtuOf(netns: string, dev: string): Promise<number> {
  const r = await run('ip', ['netns', 'exec', netns, 'cat', `/sys/class/net/${dev}/mtu`]);
  if (r.code !== 0) throw new Error(`reading ${dev}'s MTU in ${netns}: ${r.stderr}`);
  return Number(r.stdout.trim());
}

export interface Topology extends Ends {
  /** The node namespaces, node 0 first. */
  nodes: string[];
  cleanup(): Promise<void>;
}

/**
 * Two nodes with no program: underlay 172.31.0.0/24 (node i .(10+i)), pod CIDRs 10.211.i.0/24,
 * a client workload on node 0 and a server on node 1, both with MTU `mtu`; everything in
 * namespaces named `PREFIX-…`. The same addresses' shape as TestCluster's, in other ranges so
 * that nobody reading `ip` output mistakes one for the other.
 */
export async function plainCluster(prefix: string, mode: RoutingMode, mtu: number): Promise<Topology> {
  const net = `${prefix}-net`;
  const nodes = [0, 1].map((i) => ({ netns: `${prefix}-n${i}`, ip: `172.31.0.${10 + i}`, pods: `10.211.${i}`, vxlanMac: randomMac() }));
  const created: string[] = [];
  const cleanup = async () => {
    for (const ns of created.reverse()) await nl.deleteNetns(ns);
  };
  const netns = async (name: string) => {
    await nl.addNetns(name);
    created.push(name);
    await ip(['-n', name, 'link', 'set', 'lo', 'up']);
  };
  try {
    await netns(net);
    await ip(['-n', net, 'link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
    await ip(['-n', net, 'address', 'add', '172.31.0.1/24', 'dev', 'br0']);
    await ip(['-n', net, 'link', 'set', 'br0', 'up']);
    for (const [i, n] of nodes.entries()) {
      await netns(n.netns);
      await run('ip', ['netns', 'exec', n.netns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      await ip(['-n', n.netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `n${i}`, 'netns', net]);
      await ip(['-n', net, 'link', 'set', `n${i}`, 'master', 'br0']);
      await ip(['-n', net, 'link', 'set', `n${i}`, 'up']);
      await ip(['-n', n.netns, 'address', 'add', `${n.ip}/24`, 'dev', 'eth0']);
      await ip(['-n', n.netns, 'link', 'set', 'eth0', 'up']);
      // What the agent's prepareNode does: the router address, and the pod CIDR unreachable.
      await ip(['-n', n.netns, 'address', 'add', `${n.pods}.1/32`, 'dev', 'lo']);
      await ip(['-n', n.netns, 'route', 'add', 'unreachable', `${n.pods}.0/24`]);
      if (mode === 'tunnel') {
        await ip(['-n', n.netns, 'link', 'add', 'vxlan0', 'address', n.vxlanMac, 'mtu', String(mtu), 'type', 'vxlan', 'id', '1', 'dstport', String(DEFAULT_TUNNEL_PORT), 'local', n.ip, 'dev', 'eth0', 'nolearning', 'noudpcsum']);
        // As Membrane's device: IPv4 only, no router solicitations or MLD into the overlay.
        await run('ip', ['netns', 'exec', n.netns, 'sysctl', '-qw', 'net.ipv6.conf.vxlan0.disable_ipv6=1']);
        await ip(['-n', n.netns, 'link', 'set', 'vxlan0', 'up']);
      }
    }
    for (const n of nodes) {
      for (const peer of nodes.filter((p) => p !== n)) {
        if (mode === 'tunnel') {
          // flannel's static triple: the peer's gateway resolves to its device's MAC, which the
          // FDB sends to the peer's underlay address.
          await ip(['-n', n.netns, 'neighbour', 'add', `${peer.pods}.1`, 'lladdr', peer.vxlanMac, 'dev', 'vxlan0', 'nud', 'permanent']);
          const fdb = await run('bridge', ['-n', n.netns, 'fdb', 'append', peer.vxlanMac, 'dev', 'vxlan0', 'dst', peer.ip]);
          if (fdb.code !== 0) throw new Error(`bridge fdb append in ${n.netns}: ${fdb.stderr}`);
          await ip(['-n', n.netns, 'route', 'add', `${peer.pods}.0/24`, 'via', `${peer.pods}.1`, 'dev', 'vxlan0', 'onlink']);
        } else {
          await ip(['-n', n.netns, 'route', 'add', `${peer.pods}.0/24`, 'via', peer.ip, 'dev', 'eth0']);
        }
      }
    }
    const workload = async (n: (typeof nodes)[number], name: string) => {
      const p = { nodeNetns: n.netns, ipv4: `${n.pods}.2`, netns: `${n.netns}-${name}`, netnsOwned: true, interface: `veth${name}`, mac: randomMac(), hostMac: randomMac(), routerIP: `${n.pods}.1`, mtu };
      created.push(p.netns); // before plumb: a half-made workload is removed too
      await plumb(nl, p, async () => undefined);
      return { netns: p.netns, ip: p.ipv4 };
    };
    return { client: await workload(nodes[0]!, 'c'), server: await workload(nodes[1]!, 's'), nodes: nodes.map((n) => n.netns), cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** Membrane's cluster in `mode`: a client pod on node 0, a server pod on node 1 that allows it. */
export async function membraneCluster(mode: RoutingMode): Promise<Topology> {
  // No peer TLS: the agents' Hubble peer service carries no packets between pods, and its
  // certificates cost seconds of every --quick run.
  const cluster = await TestCluster.create({ nodes: 2, peerTls: false, extraAgentArgs: ['--routing-mode', mode, '--log-level', 'warn'] });
  try {
    const [a, b] = cluster.nodes as [TestNode, TestNode];
    for (const n of [a, b]) await n.api.setNamespace('bench');
    const client = await a.api.addEndpoint({ namespace: 'bench', name: 'dp-client', labels: ['role=dp-client'] });
    const server = await b.api.addEndpoint({ namespace: 'bench', name: 'dp-server', labels: ['role=dp-server'] });
    await b.api.importPolicies([{ name: 'bench-dp.yaml', content: POLICY }]);
    return { client: { netns: client.netns, ip: client.ipv4 }, server: { netns: server.netns, ip: server.ipv4 }, nodes: [a.netns, b.netns], cleanup: () => cluster.cleanup() };
  } catch (err) {
    await cluster.cleanup();
    throw err;
  }
}

/**
 * Resolves once the client's echo reaches it through the server (the connection-rate server,
 * started here): for Membrane that waits for each node to learn the other's pod (ipcache,
 * identity, policy, route) through etcd.
 */
async function ready(servers: Servers, ends: Ends, what: string): Promise<void> {
  await servers.ensure(ends, 'tcp', PORT.crr, echoServerArgv(PORT.crr));
  const probe = path.join(repoRoot, 'test/harness/tools/probe.mjs');
  const ok = await eventually(async () => (await run('ip', ['netns', 'exec', ends.client.netns, 'node', probe, 'tcp', ends.server.ip, String(PORT.crr), '500'])).code === 0, 30_000, 100);
  if (!ok) throw new Error(`${what}: the client never reached the server at ${ends.server.ip}:${PORT.crr}`);
}

const BASELINE: Record<RoutingMode, { membrane: string; plain: string }> = {
  tunnel: { membrane: 'Membrane tunnel (VXLAN)', plain: 'plain kernel VXLAN' },
  native: { membrane: 'Membrane native routing', plain: 'plain kernel routing' },
};

/** The rows of one routing mode: Membrane in `mode` against its plain-kernel baseline. */
async function measureMode(mode: RoutingMode, opts: DatapathOptions): Promise<RatioRow[]> {
  const prefix = `mbx${crypto.randomBytes(3).toString('hex')}`;
  deleteNamespacesOnExit(prefix);
  const servers = new Servers();
  const membrane = await membraneCluster(mode);
  let plain: Topology | undefined;
  try {
    const mtu = await mtuOf(membrane.client.netns, 'eth0');
    plain = await plainCluster(prefix, mode, mtu);
    process.stderr.write(`cluster datapath, ${mode}: Membrane's nodes ${membrane.nodes.join(', ')}; the baseline's ${plain.nodes.join(', ')}\n`);
    await ready(servers, plain, BASELINE[mode].plain);
    await ready(servers, membrane, BASELINE[mode].membrane);
    const vs = `${BASELINE[mode].membrane} vs ${BASELINE[mode].plain}`;
    const rows: RatioRow[] = [];
    const row = (measure: string, unit: string, goal: number): RatioRow => {
      const r: RatioRow = { measure, unit, baseline: [], value: [], higherIsBetter: true, goal: { ratio: goal, text: `≥ ${goal.toFixed(2)}×` } };
      rows.push(r);
      return r;
    };
    const stream = row(`TCP stream between nodes, ${vs} (MTU ${mtu})`, 'Gbit/s', 1);
    const rr = row(`TCP request/response between nodes, transactions/s (1 / median round trip), ${vs}`, 'trans/s', 0.95);
    const crr = row(`TCP connections/s between nodes (connect, request, reply, close), ${vs}`, 'conn/s', 0.95);
    const alternating = new Alternating();
    const s = opts.seconds;
    // At the median round trip: the mean follows the other work on this shared machine (bench/load.ts).
    const transactions = async (ends: Ends) => 1e6 / (2 * (await requestResponse(servers, ends, s)).median);
    for (let round = 0; round < opts.rounds; round++) {
      process.stderr.write(`cluster datapath, ${mode}: round ${round + 1}/${opts.rounds}\n`);
      for (let i = 0; i < opts.pairs; i++) await alternating.pair((e) => tcpStream(servers, e, s), plain, membrane, stream);
      for (let i = 0; i < opts.pairs; i++) await alternating.pair(transactions, plain, membrane, rr);
      for (let i = 0; i < opts.pairs; i++) await alternating.pair((e) => connectionRate(servers, e, s), plain, membrane, crr);
    }
    return rows;
  } finally {
    await servers.stopAll();
    await plain?.cleanup();
    await membrane.cleanup();
  }
}

/** Every datapath row, tunnel mode first. */
export async function clusterDatapathRows(opts: DatapathOptions): Promise<RatioRow[]> {
  return [...(await measureMode('tunnel', opts)), ...(await measureMode('native', opts))];
}
