/* bench/datapath: the cost of Membrane's datapath against the same two workloads with no
 * program at all (plain routed veths, built with the same plumbing) and against the same policy
 * written as nftables rules, measured in the same run: TCP stream (iperf3), 64-byte UDP
 * packets/s with 1, 1,000 and 10,000 identities/rules (sockperf), request/response latency
 * (sockperf ping-pong over TCP), connection rate, and the per-packet run time of each program
 * (kernel.bpf_stats_enabled). Each ratio is the median over pairs of back-to-back runs, the order
 * alternating; the servers stay up for the whole run. Every topology lives in namespaces this run
 * creates.
 * Usage: node --import tsx bench/datapath/run.ts [--rounds N] [--seconds S] [--quick] [--json FILE] */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import os from 'node:os';
import { BpfObject } from '../../src/kernel/bpf-object.js';
import { ensureTcxLink, pinnedLinkInfo, removePinnedLink } from '../../src/kernel/bpf-link.js';
import { ensureBpffs } from '../../src/kernel/bpffs.js';
import { ifindexOf, netnsPath, withNetns } from '../../src/kernel/netns.js';
import { TestNode, repoRoot, run } from '../../test/harness/node.js';
import { mean, median, ratioLine, REFERENCE, TABLE_HEADER, valueLine, type RatioRow } from '../stats.js';
import { deleteNamespacesOnExit, plainPair, type Pair } from '../topology.js';
import { Alternating, PORT, Servers, connectionRate as measureConnectionRate, requestResponse as measureRequestResponse, tcpStream as measureTcpStream } from '../load.js';
import { runBenchmark } from '../main.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '3' },
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const QUICK = args.quick;
const ROUNDS = QUICK ? 1 : Number(args.rounds);
const SECONDS = QUICK ? 1 : Number(args.seconds);
const IDENTITY_COUNTS = QUICK ? [1] : [1, 1000, 10000];
const NFT_COUNTS = QUICK ? [1] : [1, 100, 1000];
/** Back-to-back pairs a round for the two rows that swing most from run to run. */
const STREAM_PAIRS = QUICK ? 1 : 3;
const CRR_PAIRS = QUICK ? 1 : 3;
/** The per-packet cost needs many runs of the program, not a long one. */
const COST_SECONDS = Math.min(SECONDS, 1);

/** The same policy as N nftables rules in the node's forward hook, the match last (no conntrack shortcut, like iptables-style rule lists). */
async function loadNftRules(pair: Pair, rules: number): Promise<void> {
  const lines = ['table inet mbbench {', '  chain forward {', '    type filter hook forward priority 0; policy drop;'];
  for (let i = 1; i < rules; i++) lines.push(`    ip saddr 172.16.${(i >> 8) & 255}.${i & 255} ip daddr ${pair.server.ip} accept`);
  lines.push(`    ip saddr ${pair.client.ip} ip daddr ${pair.server.ip} accept`);
  lines.push(`    ip saddr ${pair.server.ip} ip daddr ${pair.client.ip} accept`);
  lines.push('  }', '}');
  const file = path.join('/tmp', `mbbench-${crypto.randomBytes(3).toString('hex')}.nft`);
  fs.writeFileSync(file, `flush ruleset\n${lines.join('\n')}\n`);
  try {
    const r = await run('ip', ['netns', 'exec', pair.nodeNetns, 'nft', '-f', file]);
    if (r.code !== 0) throw new Error(`nft: ${r.stderr}`);
  } finally {
    fs.rmSync(file, { force: true });
  }
}

async function clearNft(pair: Pair): Promise<void> {
  await run('ip', ['netns', 'exec', pair.nodeNetns, 'nft', 'flush', 'ruleset']);
}

function membranePolicy(identities: number): string {
  const cidrs: string[] = [];
  for (let i = 1; i < identities; i++) cidrs.push(`172.16.${(i >> 8) & 255}.${i & 255}/32`);
  return `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: bench, namespace: bench}
spec:
  endpointSelector: {matchLabels: {role: server}}
  ingress:
  - fromEndpoints: [{matchLabels: {role: client}}]
${cidrs.length ? `  - fromCIDR: [${cidrs.join(', ')}]\n` : ''}`;
}

async function membranePair(): Promise<Pair & { node: TestNode; programs(role: 'client' | 'server', dir: 'from' | 'to'): number; setIdentities(n: number): Promise<void> }> {
  const node = await TestNode.create({ podCidr: '10.236.0.0/24', extraAgentArgs: ['--log-level', 'warn'] });
  await node.api.setNamespace('bench');
  const server = await node.api.addEndpoint({ namespace: 'bench', name: 'server', labels: ['role=server'] });
  const client = await node.api.addEndpoint({ namespace: 'bench', name: 'client', labels: ['role=client'] });
  return {
    name: 'membrane',
    node,
    /** Programs attached to the client's and the server's interfaces (this node's only). */
    programs: (role: 'client' | 'server', dir: 'from' | 'to') =>
      pinnedLinkInfo(path.join(node.bpffsDir, 'links', `ep${(role === 'client' ? client : server).id}-${dir}-endpoint`)).progId,
    client: { netns: client.netns, ip: client.ipv4 },
    server: { netns: server.netns, ip: server.ipv4 },
    nodeNetns: node.netns,
    setIdentities: async (n) => {
      await node.api.importPolicies([{ name: 'bench.yaml', content: membranePolicy(n) }]);
    },
  };
}

const servers = new Servers();
const tcpStream = (p: Pair) => measureTcpStream(servers, p, SECONDS);
const requestResponse = async (p: Pair) => (await measureRequestResponse(servers, p, SECONDS)).mean;
const connectionRate = (p: Pair) => measureConnectionRate(servers, p, SECONDS);

async function udpDatagrams(netns: string): Promise<number> {
  const r = await run('ip', ['netns', 'exec', netns, 'cat', '/proc/net/snmp']);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  const [head, values] = [lines[0]!.split(/\s+/), lines[1]!.split(/\s+/)];
  return Number(values[head.indexOf('InDatagrams')]);
}

async function udpPps(pair: Pair, seconds = SECONDS): Promise<number> {
  await servers.ensure(pair, 'udp', PORT.udp, ['sockperf', 'sr', '-i', pair.server.ip, '-p', String(PORT.udp)]);
  const before = await udpDatagrams(pair.server.netns);
  const t0 = performance.now();
  await run('ip', ['netns', 'exec', pair.client.netns, 'sockperf', 'tp', '-i', pair.server.ip, '-p', String(PORT.udp), '-m', '64', '-t', String(seconds)], { timeoutMs: 60_000 });
  const elapsed = (performance.now() - t0) / 1000;
  return ((await udpDatagrams(pair.server.netns)) - before) / elapsed;
}

interface ProgStats {
  name: string;
  run_time_ns?: number;
  run_cnt?: number;
}

async function programStats(): Promise<Map<number, ProgStats>> {
  const r = await run('bpftool', ['-j', 'prog', 'show']);
  return new Map((JSON.parse(r.stdout) as (ProgStats & { id: number })[]).map((p) => [p.id, p]));
}

/**
 * Mean run time per packet of each program in `ids` while `workload` runs, from the kernel's own
 * statistics (kernel.bpf_stats_enabled, switched on for the measurement only).
 */
async function perPacketNs(ids: number[], workload: () => Promise<unknown>): Promise<number[]> {
  const before = await programStats();
  fs.writeFileSync(STATS_KNOB, '1');
  try {
    await workload();
  } finally {
    fs.writeFileSync(STATS_KNOB, '0');
  }
  const after = await programStats();
  return ids.map((id) => {
    const time = (after.get(id)?.run_time_ns ?? 0) - (before.get(id)?.run_time_ns ?? 0);
    const runs = (after.get(id)?.run_cnt ?? 0) - (before.get(id)?.run_cnt ?? 0);
    if (runs < 1000) throw new Error(`program ${id} ran only ${runs} times`);
    return time / runs;
  });
}

const STATS_KNOB = '/proc/sys/kernel/bpf_stats_enabled';

/**
 * The reference programs (bench/datapath/empty.c), compiled here and attached with tcx on
 * `ifname`'s ingress in `netns`, the empty one first: its ids, and the one-lookup program's map
 * filled with `serverIp` among 1,000 addresses.
 */
async function attachReferencePrograms(netns: string, ifname: string, serverIp: string, dir: string, pinDir: string): Promise<{ empty: number; oneLookup: number; close(): void }> {
  const obj = path.join(dir, 'empty.o');
  const cc = await run('clang-19', ['-target', 'bpf', '-O2', '-g', '-I/usr/include/x86_64-linux-gnu', '-c', path.join(repoRoot, 'bench/datapath/empty.c'), '-o', obj]);
  if (cc.code !== 0) throw new Error(`compiling empty.c: ${cc.stderr}`);
  ensureBpffs(pinDir);
  const programs = ['bench_empty', 'bench_one_lookup'] as const;
  const loaded = BpfObject.load(obj, { pinDir, maps: ['bench_by_daddr'], programs });
  const addresses = [serverIp, ...Array.from({ length: 999 }, (_, i) => `172.16.${(i >> 8) & 255}.${i & 255}`)];
  loaded.map('bench_by_daddr').updateMany(addresses.map((ip) => [Buffer.from(ip.split('.').map(Number)), Buffer.alloc(8)]));
  const pins = programs.map((name) => path.join(pinDir, `${name}-link`));
  // The attach resolves the ifindex in the calling thread's namespace: do it all in there.
  withNetns(netnsPath(netns), () => programs.forEach((name, i) => ensureTcxLink(pins[i]!, loaded.programFd(name), ifindexOf(ifname), 'ingress')));
  return {
    empty: pinnedLinkInfo(pins[0]!).progId,
    oneLookup: pinnedLinkInfo(pins[1]!).progId,
    close: () => {
      for (const pin of pins) removePinnedLink(pin);
      loaded.close();
      fs.rmSync(pinDir, { recursive: true, force: true });
    },
  };
}

type Row = RatioRow;

async function main(): Promise<void> {
  const prefix = `mbb${crypto.randomBytes(2).toString('hex')}`;
  deleteNamespacesOnExit(prefix);
  const plain = await plainPair(`${prefix}p`, '10.237.0');
  const nft = await plainPair(`${prefix}n`, '10.238.0');
  const membrane = await membranePair();
  const stats0 = fs.readFileSync(STATS_KNOB, 'utf8').trim();
  const cleanups: (() => Promise<void>)[] = [];
  try {
    await membrane.setIdentities(1);
    await loadNftRules(nft, 1);
    const rows: Row[] = [];
    const row = (measure: string, unit: string, higherIsBetter: boolean, goal?: Row['goal']): Row => {
      const r: Row = { measure, unit, baseline: [], value: [], higherIsBetter, goal };
      rows.push(r);
      return r;
    };
    const atLeast = (ratio: number) => ({ ratio, text: `≥ ${ratio.toFixed(2)}×` });
    const stream = row('TCP stream, Membrane (policy, fast path) vs no program', 'Gbit/s', true, atLeast(1.05));
    const streamNft = row('TCP stream, nftables (same policy) vs no program', 'Gbit/s', true, REFERENCE);
    const pps = new Map(IDENTITY_COUNTS.map((n) => [n, row(`64-byte UDP, Membrane with ${n} identities/rules vs no program`, 'pps', true, atLeast(0.97))]));
    const ppsNft = new Map(NFT_COUNTS.map((n) => [n, row(`64-byte UDP, nftables ${n} rules vs no program`, 'pps', true, REFERENCE)]));
    const vsNft = row(`64-byte UDP, Membrane ${Math.max(...IDENTITY_COUNTS)} identities vs nftables ${Math.max(...NFT_COUNTS)} rules`, 'pps', true, atLeast(4));
    const rr = row('TCP request/response latency, Membrane vs no program', 'µs one-way', false, atLeast(0.97));
    const tps = row('TCP request/response transactions/s (1 / round trip), Membrane vs no program', 'trans/s', true, atLeast(0.97));
    const crr = row('TCP connections/s (connect, request, reply, close), Membrane vs no program', 'conn/s', true, atLeast(0.97));
    const cost = { from: [] as number[], to: [] as number[], empty: [] as number[], oneLookup: [] as number[] };

    const emptyPair = await plainPair(`${prefix}e`, '10.239.0');
    const emptyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mbbench-empty-'));
    const references = await attachReferencePrograms(emptyPair.nodeNetns, 'vethc', emptyPair.server.ip, emptyDir, `/sys/fs/bpf/${prefix}-empty`);
    cleanups.push(async () => {
      references.close();
      fs.rmSync(emptyDir, { recursive: true, force: true });
      await emptyPair.cleanup();
    });
    // Each ratio pairs a candidate's run with a baseline run right next to it (bench/load.ts).
    const alternating = new Alternating();
    const pairOf = (measure: (p: Pair) => Promise<number>, base: Pair, candidate: Pair, r: Row) => alternating.pair(measure, base, candidate, r);
    for (let round = 0; round < ROUNDS; round++) {
      process.stderr.write(`round ${round + 1}/${ROUNDS}\n`);
      const baseStream: number[] = [];
      for (let i = 0; i < STREAM_PAIRS; i++) baseStream.push(await pairOf(tcpStream, plain, membrane, stream));
      // The nftables row is a reference: measured once, against this round's baseline runs.
      streamNft.baseline.push(mean(baseStream));
      streamNft.value.push(await tcpStream(nft));

      const basePps: number[] = [];
      for (const [n, r] of pps) {
        await membrane.setIdentities(n);
        basePps.push(await pairOf(udpPps, plain, membrane, r));
      }
      // nftables rows are references too: measured against this round's baseline runs.
      for (const [n, r] of ppsNft) {
        await loadNftRules(nft, n);
        r.baseline.push(mean(basePps));
        r.value.push(await udpPps(nft));
      }
      vsNft.value.push(pps.get(Math.max(...IDENTITY_COUNTS))!.value.at(-1)!);
      vsNft.baseline.push(ppsNft.get(Math.max(...NFT_COUNTS))!.value.at(-1)!);
      await loadNftRules(nft, 1);
      await membrane.setIdentities(1);

      await pairOf(requestResponse, plain, membrane, rr);
      tps.baseline.push(1e6 / (2 * rr.baseline.at(-1)!));
      tps.value.push(1e6 / (2 * rr.value.at(-1)!));
      for (let i = 0; i < CRR_PAIRS; i++) await pairOf(connectionRate, plain, membrane, crr);

      // Per-packet program cost: 64-byte UDP through from_endpoint (the sender's program, which
      // also judges the receiver on the fast path), through to_endpoint (delivery routed by the
      // node: the node sends), and through the reference programs where from_endpoint runs.
      cost.from.push(...(await perPacketNs([membrane.programs('client', 'from')], () => udpPps(membrane, COST_SECONDS))));
      const fromNode = { ...membrane, client: { netns: membrane.nodeNetns, ip: '' } };
      cost.to.push(...(await perPacketNs([membrane.programs('server', 'to')], () => udpPps(fromNode, COST_SECONDS))));
      const [emptyNs, oneLookupNs] = await perPacketNs([references.empty, references.oneLookup], () => udpPps(emptyPair, COST_SECONDS));
      cost.empty.push(emptyNs!);
      cost.oneLookup.push(oneLookupNs!);
    }

    const costLine = (what: string, xs: number[], goal: string, met: boolean | undefined) =>
      valueLine(`per-packet run time of ${what}, ns (median of ${xs.length} rounds)`, median(xs).toFixed(0), `(${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`, goal, met);
    const costLines = [
      costLine('from_endpoint (policy, fast path: judges both ends)', cost.from, '≤ 100 ns', median(cost.from) <= 100),
      costLine('to_endpoint (policy, routed delivery)', cost.to, '≤ 100 ns', median(cost.to) <= 100),
      costLine("an empty tc program at the same hook (this machine's floor)", cost.empty, '(reference)', undefined),
      costLine('a tc program that parses IPv4 and does one hash lookup, at the same hook', cost.oneLookup, '(reference)', undefined),
    ];
    console.log(TABLE_HEADER.join('\n'));
    for (const r of rows) console.log(ratioLine(r));
    for (const l of costLines) console.log(l);
    if (args.json) fs.writeFileSync(args.json, JSON.stringify({ date: new Date().toISOString(), rounds: ROUNDS, seconds: SECONDS, rows, cost, costLines }, null, 2));
  } finally {
    fs.writeFileSync(STATS_KNOB, stats0);
    await servers.stopAll();
    for (const c of cleanups.reverse()) await c().catch((err: unknown) => console.error(err));
    await plain.cleanup();
    await nft.cleanup();
    await membrane.node.cleanup();
  }
}

runBenchmark(main);
