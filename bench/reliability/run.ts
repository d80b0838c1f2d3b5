/* bench/reliability: the agent killed (SIGKILL) under traffic on a node with a large state, and
 * restarted. With N endpoints (default 1,000) and a policy that puts about 100 entries per
 * endpoint into the policy map (100,000 at the default), while a client streams numbered UDP
 * datagrams to a server, holds TCP connections open and keeps opening new ones, the agent is
 * killed and restarted R times. Reported: restart-to-ready (spawn to the API answering, adopting
 * every pinned map and link), what the restart wrote to the maps (nothing, when nothing
 * changed), the agent's RSS when ready and its peak, datagrams lost, held connections broken,
 * and new connections refused while the agent was away.
 * Usage: node --import tsx bench/reliability/run.ts [--endpoints N] [--rounds R] [--quick] [--json FILE] */
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { repoRoot, TestNode, waitForLine } from '../../test/harness/node.js';
import { connectFrom } from '../probe.js';
import { formatNumber, median, valueLine } from '../stats.js';
import { runBenchmark } from '../main.js';

const { values: args } = parseArgs({
  options: {
    endpoints: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '3' },
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const ENDPOINTS = args.quick ? 30 : Number(args.endpoints);
const ROUNDS = args.quick ? 1 : Number(args.rounds);
/** Filler identities, and ports each accepts from all of them: APPS × PORTS entries per filler. */
const APPS = 10;
const PORTS = 10;
const HELD = 20;
const UDP_RATE = 2000;
const GOALS = { readyMs: 2000, rssMiB: 200 };

const tools = path.join(repoRoot, 'test/harness/tools');

function largePolicy(): string {
  const apps = Array.from({ length: APPS }, (_, i) => `r${i}`).join(', ');
  const ports = Array.from({ length: PORTS }, (_, i) => `{port: "${9000 + i}", protocol: TCP}`).join(', ');
  return `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fillers, namespace: rel}
spec:
  endpointSelector: {matchExpressions: [{key: app, operator: In, values: [${apps}]}]}
  ingress:
  - fromEndpoints: [{matchExpressions: [{key: app, operator: In, values: [${apps}]}]}]
    toPorts: [{ports: [${ports}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: server, namespace: rel}
spec:
  endpointSelector: {matchLabels: {app: server}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "7000", protocol: TCP}, {port: "7001", protocol: UDP}]}]
`;
}

function procStatusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

async function roundTrip(conn: ChildProcess, word: string): Promise<boolean> {
  if (conn.exitCode !== null) return false;
  const echoed = waitForLine(conn, (l) => l === `echo ${word}` || l.startsWith('error'), 5000).catch(() => 'timeout');
  conn.stdin!.write(word + '\n');
  return (await echoed) === `echo ${word}`;
}

async function report(child: ChildProcess): Promise<Record<string, number>> {
  const line = waitForLine(child, (l) => l.startsWith('{'), 5000);
  child.stdin!.write('report\n');
  return JSON.parse(await line) as Record<string, number>;
}

async function main(): Promise<void> {
  const node = await TestNode.create({ podCidr: '10.216.0.0/20' });
  try {
    await node.api.setNamespace('rel');
    const server = await node.api.addEndpoint({ namespace: 'rel', name: 'server', labels: ['app=server'] });
    const client = await node.api.addEndpoint({ namespace: 'rel', name: 'client', labels: ['app=client'] });
    for (let i = 2; i < ENDPOINTS; i++) {
      await node.api.addEndpoint({ namespace: 'rel', name: `f${i}`, labels: [`app=r${i % APPS}`] });
      if (i % 200 === 0) process.stderr.write(`endpoints: ${i}/${ENDPOINTS}\n`);
    }
    await node.api.importPolicies([{ name: 'reliability.yaml', content: largePolicy() }]);
    const loaded = await node.api.status();
    const policyEntries = loaded.maps.find((m) => m.map === 'mb_policy')?.entries ?? 0;
    const ipcacheEntries = loaded.maps.find((m) => m.map === 'mb_ipcache')?.entries ?? 0;
    process.stderr.write(`loaded: ${loaded.counts.endpoints} endpoints, ${policyEntries} policy entries\n`);

    await node.echoServer(server.netns, 7000);
    const receiver = node.spawnIn(server.netns, ['node', path.join(tools, 'udp-seq.mjs'), 'recv', '7001']);
    await waitForLine(receiver, (l) => l === 'ready');
    const held: ChildProcess[] = [];
    for (let i = 0; i < HELD; i++) {
      const conn = node.holdConnection(client.netns, server.ipv4, 7000);
      await waitForLine(conn, (l) => l === 'connected');
      if (!(await roundTrip(conn, 'before'))) throw new Error('a held connection failed before the first kill');
      held.push(conn);
    }
    const sender = node.spawnIn(client.netns, ['node', path.join(tools, 'udp-seq.mjs'), 'send', server.ipv4, '7001', String(UDP_RATE)]);
    await waitForLine(sender, (l) => l === 'ready');

    // New connections all through, a connect attempt every few milliseconds.
    let connects = 0;
    let refused = 0;
    let connecting = true;
    const connector = (async () => {
      while (connecting) {
        connects++;
        if (!connectFrom(client.netns, server.ipv4, 7000, 1000)) refused++;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();

    const rounds: { readyMs: number; written: number; deleted: number; unchanged: number; rssMiB: number; peakMiB: number }[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      await new Promise((res) => setTimeout(res, 500));
      await node.killAgent('SIGKILL');
      const t0 = performance.now();
      await node.startAgent();
      const readyMs = performance.now() - t0;
      const pid = node.agent!.pid!;
      const status = await node.api.status();
      const round = {
        readyMs,
        written: status.lastSync.written,
        deleted: status.lastSync.deleted,
        unchanged: status.lastSync.unchanged,
        rssMiB: procStatusKiB(pid, 'VmRSS') / 1024,
        peakMiB: procStatusKiB(pid, 'VmHWM') / 1024,
      };
      rounds.push(round);
      process.stderr.write(`round ${r + 1}: ready in ${round.readyMs.toFixed(0)} ms, wrote ${round.written}, deleted ${round.deleted}, RSS ${round.rssMiB.toFixed(1)} MiB (peak ${round.peakMiB.toFixed(1)})\n`);
    }
    await new Promise((res) => setTimeout(res, 500));
    connecting = false;
    await connector;
    const { sent } = await report(sender);
    await new Promise((res) => setTimeout(res, 200));
    const { received } = await report(receiver);
    let broken = 0;
    for (const conn of held) if (!(await roundTrip(conn, 'after'))) broken++;

    const lost = (sent ?? 0) - (received ?? 0);
    const worst = {
      readyMs: Math.max(...rounds.map((r) => r.readyMs)),
      rssMiB: Math.max(...rounds.map((r) => r.rssMiB)),
      peakMiB: Math.max(...rounds.map((r) => r.peakMiB)),
      writes: Math.max(...rounds.map((r) => r.written + r.deleted)),
    };
    const f = formatNumber;
    const at = `${loaded.counts.endpoints} endpoints, ${f(policyEntries)} policy entries`;
    const lines = [
      valueLine(`restart (SIGKILL) → ready, ms, at ${at} (median; max)`, f(median(rounds.map((r) => r.readyMs))), `max ${f(worst.readyMs)} over ${ROUNDS}`, `≤ ${GOALS.readyMs} ms`, worst.readyMs <= GOALS.readyMs),
      valueLine('agent RSS when ready after a restart, MiB (max; peak during it)', f(worst.rssMiB), `peak ${f(worst.peakMiB)}`, `≤ ${GOALS.rssMiB} MiB`, worst.rssMiB <= GOALS.rssMiB),
      valueLine('map entries a restart wrote or deleted (nothing changed)', String(worst.writes), `of ${(policyEntries + ipcacheEntries).toLocaleString('en')}+`, '0', worst.writes === 0),
      valueLine(`UDP datagrams lost across ${ROUNDS} kills (${UDP_RATE}/s)`, String(lost), `of ${(sent ?? 0).toLocaleString('en')}`, '0', lost === 0),
      valueLine(`held TCP connections broken across ${ROUNDS} kills`, String(broken), `of ${HELD}`, '0', broken === 0),
      valueLine('new TCP connections refused while the agent was killed and restarted', String(refused), `of ${connects.toLocaleString('en')}`, '0', refused === 0),
    ];
    console.log(lines.join('\n'));
    const result = { endpoints: loaded.counts.endpoints, policyEntries, ipcacheEntries, rounds, udp: { sent, received, lost }, held: { total: HELD, broken }, connects: { total: connects, refused }, lines };
    if (args.json) fs.writeFileSync(args.json, JSON.stringify(result, null, 2));
  } finally {
    process.stderr.write('cleaning up...\n');
    await node.cleanup();
  }
}

runBenchmark(main);
