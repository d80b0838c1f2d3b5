/* bench/services: what a service costs a connection, and whether that grows with the number of
 * services. Measured in the same run, round by round:
 *  - connect() rate through a VIP (socket-level translation, client in the node's cgroup) with
 *    10 and with N (default 10,000) services loaded, on two Membrane nodes;
 *  - the same with 10 and N services written as iptables DNAT rules in the node's PREROUTING
 *    (the kube-proxy iptables design: one rule per service in one chain, the measured service
 *    last, as the newest service is), on plain routed veths;
 *  - the same client connecting straight to the backend with no program (the floor);
 * and the time to build a Maglev table (M = 16,381) for 1,000 backends.
 * Usage: node --import tsx bench/services/run.ts [--rounds R] [--seconds S] [--services N] [--quick] [--json FILE] */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { intToIp } from '../../src/net/ipv4.js';
import { MAGLEV_DEFAULT_SIZE, maglevTable } from '../../src/service/maglev.js';
import { TestNode, repoRoot, run, waitForLine } from '../../test/harness/node.js';
import { median, ratioLine, REFERENCE, TABLE_HEADER, valueLine, type RatioRow } from '../stats.js';
import { connectionRate, deleteNamespacesOnExit, echoServer, execIn, plainPair, stop } from '../topology.js';
import { runBenchmark } from '../main.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '3' },
    services: { type: 'string', default: '10000' },
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const ROUNDS = args.quick ? 1 : Number(args.rounds);
const SECONDS = args.quick ? 1 : Number(args.seconds);
const MANY = args.quick ? 200 : Number(args.services);
const FEW = 10;
const SERVER_PORT = 9100;
const VIP_PORT = 80;
/** The i-th service's VIP (1-based): 10.96.0.1, 10.96.0.2, ... */
const vip = (i: number) => intToIp(((10 << 24) | (96 << 16)) + i);

/** A node with a client and a server endpoint and `n` services, all to the server; the last one is measured. */
async function membraneNode(n: number, podCidr: string): Promise<{ node: TestNode; client: string; vip: string; addSeconds: number; stopServer(): Promise<void> }> {
  const node = await TestNode.create({ podCidr, extraAgentArgs: ['--log-level', 'warn'] });
  await node.api.setNamespace('bench');
  const server = await node.api.addEndpoint({ namespace: 'bench', name: 'server', labels: ['role=server'] });
  const client = await node.api.addEndpoint({ namespace: 'bench', name: 'client', labels: ['role=client'] });
  const echo = node.spawnIn(server.netns, ['node', path.join(repoRoot, 'test/harness/tools/echo-server.mjs'), String(SERVER_PORT)]);
  await waitForLine(echo, (l) => l === 'ready');
  const t0 = performance.now();
  for (let i = 1; i <= n; i++) {
    await node.api.addService({ name: `svc-${i}`, frontend: `${vip(i)}:${VIP_PORT}/TCP`, backends: [`${server.ipv4}:${SERVER_PORT}`] });
    if (i % 1000 === 0) process.stderr.write(`  ${i}/${n} services\n`);
  }
  const addSeconds = (performance.now() - t0) / 1000;
  return { node, client: client.netns, vip: vip(n), addSeconds, stopServer: async () => stop(echo) };
}

/** A plain pair whose node DNATs `n` service VIPs to the server with iptables, one rule each. */
async function iptablesPair(prefix: string, subnet: string, n: number) {
  const pair = await plainPair(prefix, subnet);
  const lines = ['*nat', ':MB-SERVICES - [0:0]', '-A PREROUTING -j MB-SERVICES'];
  for (let i = 1; i <= n; i++) lines.push(`-A MB-SERVICES -d ${vip(i)}/32 -p tcp -m tcp --dport ${VIP_PORT} -j DNAT --to-destination ${pair.server.ip}:${SERVER_PORT}`);
  lines.push('COMMIT', '');
  const file = path.join(os.tmpdir(), `mbbench-${crypto.randomBytes(3).toString('hex')}.rules`);
  fs.writeFileSync(file, lines.join('\n'));
  try {
    const r = await run('ip', ['netns', 'exec', pair.nodeNetns, 'iptables-restore', file], { timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`iptables-restore: ${r.stderr}`);
  } finally {
    fs.rmSync(file, { force: true });
  }
  const echo = echoServer(pair.server.netns, SERVER_PORT);
  await waitForLine(echo, (l) => l === 'ready');
  return { ...pair, vip: vip(n), stopServer: () => stop(echo) };
}

function maglevBuildMs(backends: number, rounds: number): number[] {
  const list = Array.from({ length: backends }, (_, i) => ({ name: `10.1.${i >> 8}.${i & 255}:8080`, weight: 1 }));
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    maglevTable(list, MAGLEV_DEFAULT_SIZE);
    times.push(performance.now() - t0);
  }
  return times;
}

async function main(): Promise<void> {
  const prefix = `mbs${crypto.randomBytes(2).toString('hex')}`;
  deleteNamespacesOnExit(prefix);
  const cleanups: (() => Promise<void>)[] = [];
  try {
    process.stderr.write(`setting up: ${FEW} and ${MANY} services on Membrane, ${FEW} and ${MANY} iptables rules\n`);
    const few = await membraneNode(FEW, '10.241.0.0/24');
    cleanups.push(async () => (await few.stopServer(), await few.node.cleanup()));
    const many = await membraneNode(MANY, '10.242.0.0/24');
    cleanups.push(async () => (await many.stopServer(), await many.node.cleanup()));
    const iptFew = await iptablesPair(`${prefix}a`, '10.243.0', FEW);
    cleanups.push(async () => (await iptFew.stopServer(), await iptFew.cleanup()));
    const iptMany = await iptablesPair(`${prefix}b`, '10.244.1', MANY);
    cleanups.push(async () => (await iptMany.stopServer(), await iptMany.cleanup()));

    const rate = {
      direct: [] as number[],
      few: [] as number[],
      many: [] as number[],
      iptFew: [] as number[],
      iptMany: [] as number[],
    };
    for (let round = 0; round < ROUNDS; round++) {
      process.stderr.write(`round ${round + 1}/${ROUNDS}\n`);
      const viaVip = (m: typeof few) => connectionRate((argv) => m.node.exec(m.client, argv, 120_000), m.vip, VIP_PORT, SECONDS);
      // The goal's pair is measured A-B-B-A: a drift of the machine within the round cancels out.
      const fewThenMany = async () => {
        const few1 = await viaVip(few);
        const many1 = await viaVip(many);
        const many2 = await viaVip(many);
        const few2 = await viaVip(few);
        rate.few.push((few1 + few2) / 2);
        rate.many.push((many1 + many2) / 2);
      };
      const steps: (() => Promise<unknown>)[] = [
        async () => rate.direct.push(await connectionRate(execIn(iptFew.client.netns), iptFew.server.ip, SERVER_PORT, SECONDS)),
        fewThenMany,
        async () => rate.iptFew.push(await connectionRate(execIn(iptFew.client.netns), iptFew.vip, VIP_PORT, SECONDS)),
        async () => rate.iptMany.push(await connectionRate(execIn(iptMany.client.netns), iptMany.vip, VIP_PORT, SECONDS)),
      ];
      // Every other round runs backwards, so a slow drift of the machine favours no side.
      if (round % 2) steps.reverse();
      for (const step of steps) await step();
    }
    const n = MANY.toLocaleString('en');
    const rows: RatioRow[] = [
      {
        measure: `connect() through a VIP, Membrane with ${n} services vs ${FEW}`,
        unit: 'conn/s',
        baseline: rate.few,
        value: rate.many,
        higherIsBetter: true,
        goal: { ratio: 0.9, text: '≥ 0.90× (within 10 %)' },
      },
      {
        measure: `connect() through a VIP with ${n} services, Membrane vs iptables DNAT (${n} rules)`,
        unit: 'conn/s',
        baseline: rate.iptMany,
        value: rate.many,
        higherIsBetter: true,
        goal: { ratio: 1, text: '≥ 1×' },
      },
      { measure: `connect() through a VIP, iptables DNAT ${n} rules vs ${FEW}`, unit: 'conn/s', baseline: rate.iptFew, value: rate.iptMany, higherIsBetter: true, goal: REFERENCE },
      {
        measure: `connect() through a VIP (${FEW} services), Membrane vs straight to the backend with no program`,
        unit: 'conn/s',
        baseline: rate.direct,
        value: rate.few,
        higherIsBetter: true,
        goal: REFERENCE,
      },
    ];
    const maglev = maglevBuildMs(1000, args.quick ? 2 : 7);
    const maglevLine = valueLine(
      `Maglev table build, 1,000 backends, M = ${MAGLEV_DEFAULT_SIZE.toLocaleString('en')}`,
      `${median(maglev).toFixed(1)} ms`,
      `(${Math.min(...maglev).toFixed(1)}–${Math.max(...maglev).toFixed(1)})`,
      '≤ 50 ms',
      median(maglev) <= 50,
    );
    const addRate = MANY / many.addSeconds;
    const addLine = valueLine(`services created through the API (${n}, one request each)`, `${Math.round(addRate).toLocaleString('en')}/s`, '', '(reference)', undefined);
    const lines = [...rows.map(ratioLine), maglevLine, addLine];
    console.log([...TABLE_HEADER, ...lines].join('\n'));
    if (args.json) {
      const record = { date: new Date().toISOString(), rounds: ROUNDS, seconds: SECONDS, services: MANY, rows, maglevMs: maglev, servicesAddedPerSecond: addRate, lines };
      fs.writeFileSync(args.json, JSON.stringify(record, null, 2));
    }
  } finally {
    for (const c of cleanups.reverse()) await c().catch((err: unknown) => console.error(err));
  }
}

runBenchmark(main);
