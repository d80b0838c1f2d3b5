/* bench/endpoints: how fast an endpoint becomes usable, and what each endpoint costs the agent.
 *  1. time from `endpoint add` (API request sent) to the first successful TCP connect from the
 *     new endpoint to a peer, over N endpoints (p50/p99), each added to a node at rest; the
 *     connect runs from a socket created inside the new endpoint's namespace with setns, so no
 *     process start is measured; back-to-back adds are reported as a rate;
 *  2. the same through the CLI for a few endpoints (adds node start-up of the CLI process);
 *  3. agent RSS growth per endpoint at M endpoints.
 * Usage: node --import tsx bench/endpoints/run.ts [--latency N] [--cli N] [--scale M] [--settle-seconds S] [--json FILE] [--rcu-expedited] */
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { TestNode } from '../../test/harness/node.js';
import { connectFrom } from '../probe.js';
import { percentile } from '../stats.js';
import { runBenchmark } from '../main.js';

const { values: args } = parseArgs({
  options: {
    latency: { type: 'string', default: '200' },
    cli: { type: 'string', default: '20' },
    scale: { type: 'string', default: '1000' },
    json: { type: 'string' },
    /** Idle time before reading RSS (V8's memory reducer runs a few seconds after activity). */
    'settle-seconds': { type: 'string', default: '20' },
    // Diagnostic only: makes the kernel's RCU grace periods expedited for the run (restored
    // afterwards) to show how much of the latency is the grace period each tcx attach waits for.
    'rcu-expedited': { type: 'boolean', default: false },
  },
});
const LATENCY_N = Number(args.latency);
const CLI_N = Number(args.cli);
const SCALE_N = Number(args.scale);

/**
 * RSS once the idle agent's heap has settled: a full garbage collection (the agent runs with
 * --expose-gc here), then a wait until RSS stops moving.
 */
async function settledRssKiB(node: TestNode, pid: number, maxMs = 60_000): Promise<number> {
  const settle = Number(args['settle-seconds']) * 1000;
  if (settle === 0) return rssKiB(pid);
  for (let i = 0; i < 2; i++) await node.api.collectGarbage();
  await new Promise((r) => setTimeout(r, settle));
  await node.api.collectGarbage();
  let last = rssKiB(pid);
  let stableFor = 0;
  for (let waited = 0; waited < maxMs && stableFor < 3; waited += 2000) {
    await new Promise((r) => setTimeout(r, 2000));
    const now = rssKiB(pid);
    stableFor = Math.abs(now - last) < 256 ? stableFor + 1 : 0;
    last = now;
  }
  return last;
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

const summary = (xs: number[]) => ({ n: xs.length, p50: percentile(xs, 50), p99: percentile(xs, 99), min: Math.min(...xs), max: Math.max(...xs) });
const fmt = (x: number) => x.toFixed(2);

const RCU_KNOB = '/sys/kernel/rcu_expedited';

async function main(): Promise<void> {
  const rcuBefore = args['rcu-expedited'] ? fs.readFileSync(RCU_KNOB, 'utf8').trim() : undefined;
  if (rcuBefore !== undefined) {
    fs.writeFileSync(RCU_KNOB, '1');
    const restore = () => fs.writeFileSync(RCU_KNOB, rcuBefore);
    process.once('exit', restore);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGPIPE', 'SIGHUP'] as const) process.once(sig, () => process.exit(1));
  }
  process.env.MEMBRANE_NODE_FLAGS = `${process.env.MEMBRANE_NODE_FLAGS ?? ''} --expose-gc`.trim();
  const node = await TestNode.create({ podCidr: '10.215.0.0/20' });
  try {
    await node.api.setNamespace('bench');
    const server = await node.api.addEndpoint({ namespace: 'bench', name: 'server', labels: ['app=server'] });
    await node.echoServer(server.netns, 8080);
    const agentPid = node.agent!.pid!;
    // Warm up code paths before measuring memory and latency.
    for (let i = 0; i < 5; i++) await node.api.addEndpoint({ namespace: 'bench', name: `warm${i}`, labels: ['app=warm'] });
    const rssStart = await settledRssKiB(node, agentPid);
    const heapStart = (await node.api.collectGarbage()).memory.heapUsedBytes;

    const latencies: number[] = [];
    const agentOnly: number[] = [];
    let retries = 0;
    // Each add meets a node at rest (its pool of prepared interfaces refilled, as between pod
    // starts); back-to-back adds are measured below as a rate.
    const atRest = async () => {
      for (let waited = 0; waited < 3000; waited += 5) {
        const s = await node.api.status();
        if (s.interfacePool.ready >= s.interfacePool.size) return;
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    for (let i = 0; i < LATENCY_N; i++) {
      await atRest();
      const t0 = performance.now();
      const ep = await node.api.addEndpoint({ namespace: 'bench', name: `ep${i}`, labels: [`app=ep${i % 10}`] });
      const t1 = performance.now();
      while (!connectFrom(ep.netns, server.ipv4, 8080)) {
        retries++;
        if (performance.now() - t0 > 5000) throw new Error(`endpoint ${ep.name} never connected`);
      }
      latencies.push(performance.now() - t0);
      agentOnly.push(t1 - t0);
      if ((i + 1) % 50 === 0) process.stderr.write(`latency: ${i + 1}/${LATENCY_N} endpoints\n`);
    }

    const cliTimes: number[] = [];
    for (let i = 0; i < CLI_N; i++) {
      const t0 = performance.now();
      const r = await node.cli('endpoint', 'add', `bench/cli${i}`, '--labels', 'app=cli', '-o', 'json');
      if (r.code !== 0) throw new Error(r.stderr);
      const ep = JSON.parse(r.stdout) as { netns: string };
      while (!connectFrom(ep.netns, server.ipv4, 8080)) if (performance.now() - t0 > 5000) throw new Error('cli endpoint never connected');
      cliTimes.push(performance.now() - t0);
    }

    let count = 1 + 5 + LATENCY_N + CLI_N;
    const scaleStart = performance.now();
    const scaleFirst = count;
    for (let i = count; i < SCALE_N + 6; i++) {
      await node.api.addEndpoint({ namespace: 'bench', name: `scale${i}`, labels: [`app=scale${i % 50}`] });
      count++;
      if (count % 200 === 0) process.stderr.write(`scale: ${count}/${SCALE_N} endpoints\n`);
    }
    const backToBackPerSecond = ((count - scaleFirst) / (performance.now() - scaleStart)) * 1000;
    const rssBusy = rssKiB(agentPid);
    process.stderr.write('waiting for the agent heap to settle...\n');
    const rssEnd = await settledRssKiB(node, agentPid);
    const status = await node.api.status();
    const heapEnd = (await node.api.collectGarbage()).memory.heapUsedBytes;
    const added = status.counts.endpoints - 6;
    const perEndpoint = ((rssEnd - rssStart) / added) * 1024;
    const heapPerEndpoint = (heapEnd - heapStart) / added;

    const lat = summary(latencies);
    const api = summary(agentOnly);
    const cli = summary(cliTimes);
    const result = {
      date: new Date().toISOString(),
      endpointsAtEnd: status.counts.endpoints,
      addToFirstConnectMs: lat,
      apiAddMs: api,
      cliAddToFirstConnectMs: cli,
      connectRetries: retries,
      backToBackAddsPerSecond: backToBackPerSecond,
      rssKiB: { start: rssStart, endRightAfterAdds: rssBusy, endSettled: rssEnd },
      rssBytesPerEndpoint: Math.round(perEndpoint),
      heapUsedBytesPerEndpoint: Math.round(heapPerEndpoint),
    };
    console.log('| measure | n | p50 | p99 | min | max | goal | met |');
    console.log('|---|---|---|---|---|---|---|---|');
    console.log(`| endpoint add → first TCP connect (API), ms | ${lat.n} | ${fmt(lat.p50)} | ${fmt(lat.p99)} | ${fmt(lat.min)} | ${fmt(lat.max)} | p50 ≤ 20 | ${lat.p50 <= 20 ? 'yes' : 'NO'} |`);
    console.log(`| of which the API call, ms | ${api.n} | ${fmt(api.p50)} | ${fmt(api.p99)} | ${fmt(api.min)} | ${fmt(api.max)} | | |`);
    console.log(`| endpoint adds back to back (API), per second | ${count - scaleFirst} | ${fmt(backToBackPerSecond)} | | | | | |`);
    console.log(`| endpoint add → first TCP connect (CLI), ms | ${cli.n} | ${fmt(cli.p50)} | ${fmt(cli.p99)} | ${fmt(cli.min)} | ${fmt(cli.max)} | | |`);
    console.log(`| agent RSS per endpoint at ${status.counts.endpoints} endpoints, idle (settled), KiB | | ${fmt(perEndpoint / 1024)} | | | | ≤ 8 | ${perEndpoint <= 8192 ? 'yes' : 'NO'} |`);
    console.log(`| agent RSS per endpoint right after the last add, KiB | | ${fmt(((rssBusy - rssStart) / added))} | | | | | |`);
    console.log(`| agent JS heap in use per endpoint after a full GC, KiB | | ${fmt(heapPerEndpoint / 1024)} | | | | | |`);
    console.log(`connect retries: ${retries}; agent RSS ${rssStart} KiB → ${rssBusy} KiB right after the adds → ${rssEnd} KiB settled`);
    if (args.json) fs.writeFileSync(args.json, JSON.stringify(result, null, 2));
  } finally {
    process.stderr.write('cleaning up...\n');
    await node.cleanup();
  }
}

runBenchmark(main);
