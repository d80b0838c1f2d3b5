/* bench/flows: how fast datapath events become flows, what that costs, and how soon a packet
 * shows up in `observe --follow`.
 *  1. decode rate: the agent is paused (SIGSTOP) while a UDP flood fills the 8 MiB events ring
 *     (aggregation none: every packet is an event), then resumed; the time to drain the backlog
 *     gives events/s decoded into the flow ring on the agent's single thread, and its CPU time
 *     gives CPU seconds per 100k events;
 *  2. sustained: a flood while the agent reads, with a follower building every Flow: events/s
 *     from the kernel into the ring, events lost (the goal: none), agent CPU per 100k events/s;
 *  3. latency: a follower (`membrane observe --follow -o json`) and single TCP connections; the
 *     time from connect() to the flow line arriving, p50/p99.
 * Usage: node --import tsx bench/flows/run.ts [--rounds N] [--latency N] [--json FILE] */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { TestNode, repoRoot } from '../../test/harness/node.js';
import { median, percentile as pct } from '../stats.js';
import { runBenchmark } from '../main.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    latency: { type: 'string', default: '50' },
    json: { type: 'string' },
  },
});

function cpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime in clock ticks (USER_HZ 100)
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const node = await TestNode.create({ podCidr: '10.230.0.0/24', extraAgentArgs: ['--monitor-aggregation', 'none', '--log-level', 'warn'] });
  try {
    await node.api.setNamespace('bench');
    const a = await node.api.addEndpoint({ namespace: 'bench', name: 'a' });
    const b = await node.api.addEndpoint({ namespace: 'bench', name: 'b' });
    await node.echoServer(a.netns, 80);
    const pid = node.agent!.pid!;

    const rates: number[] = [];
    const cpuPer100k: number[] = [];
    for (let round = 0; round < Number(args.rounds); round++) {
      const before = await node.api.status();
      process.kill(pid, 'SIGSTOP');
      try {
        await node.exec(b.netns, ['node', path.join(repoRoot, 'test/harness/tools/udp-flood.mjs'), a.ipv4, '9', '120000'], 120_000);
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      const cpu0 = cpuSeconds(pid);
      const t0 = performance.now();
      let s = await node.api.status();
      while (s.flows.backlogBytes > 0) {
        await sleep(Number(process.env.POLL_MS ?? 20));
        s = await node.api.status();
      }
      const seconds = (performance.now() - t0) / 1000;
      const events = s.flows.eventsRead - before.flows.eventsRead;
      const cpu = cpuSeconds(pid) - cpu0;
      rates.push(events / seconds);
      cpuPer100k.push((cpu / events) * 100_000);
      process.stderr.write(`round ${round + 1}: ${events} events in ${seconds.toFixed(3)} s, ${cpu.toFixed(2)} CPU s, lost so far ${s.flows.lost_events}\n`);
    }

    // The agent reads the kernel's lost-event counter once a second: the losses the stalled
    // rounds above caused must be counted before the sustained floods take their baseline.
    await sleep(1200);

    // Sustained: the agent reads while a flood runs: the rate the kernel delivered events into
    // the flow ring, what was lost (the goal: nothing) and the agent's CPU for it. Then once more
    // with a follower (`observe --follow -o json`) that makes the agent build every Flow and
    // JSON line, for what a reader can take.
    const flood = async (follow: boolean) => {
      let followed = 0;
      let told = 0;
      const follower = follow ? await node.follow(['-o', 'json', '--from-pod', 'bench/b', '--type', 'trace']) : undefined;
      if (follower) {
        readline.createInterface({ input: follower.stdout! }).on('line', () => followed++);
        readline.createInterface({ input: follower.stderr! }).on('line', (l) => (told += Number(/EVENTS LOST: \S+ (\d+)/.exec(l)?.[1] ?? 0)));
      }
      const before = await node.api.status();
      const cpu0 = cpuSeconds(pid);
      const t0 = performance.now();
      await node.exec(b.netns, ['node', path.join(repoRoot, 'test/harness/tools/udp-flood.mjs'), a.ipv4, '9', '100000'], 120_000);
      const floodSeconds = (performance.now() - t0) / 1000;
      let s = await node.api.status();
      while (s.flows.backlogBytes > 0) {
        await sleep(20);
        s = await node.api.status();
      }
      const cpu = cpuSeconds(pid) - cpu0;
      await sleep(1200); // the lost-event counter is read once a second
      s = await node.api.status();
      const events = s.flows.eventsRead - before.flows.eventsRead;
      const lost = s.flows.lost_events - before.flows.lost_events;
      const followSeconds = (performance.now() - t0) / 1000;
      follower?.kill('SIGINT');
      const eventsPerSecond = events / floodSeconds;
      process.stderr.write(`flood${follow ? ' with a follower' : ''}: ${events} events at ${Math.round(eventsPerSecond)}/s, lost ${lost}${follow ? `, ${followed} followed, ${told} told lost` : ''}\n`);
      return { eventsPerSecond, lost, cpuPer100kPerSecond: cpu / floodSeconds / (eventsPerSecond / 100_000), followedPerSecond: followed / followSeconds };
    };
    const sustained: Awaited<ReturnType<typeof flood>>[] = [];
    for (let round = 0; round < Number(args.rounds); round++) sustained.push(await flood(false));
    const followed = await flood(true);

    // Latency: TCP connects observed by a follower.
    const follower = await node.follow(['-o', 'json', '--from-pod', 'bench/b', '--to-port', '80', '--type', 'trace'], 'inherit');
    const lines = readline.createInterface({ input: follower.stdout! });
    const waiting = new Map<number, (t: number) => void>();
    lines.on('line', (l) => {
      const m = /"source_port":(\d+)/.exec(l);
      const resolve = m && waiting.get(Number(m[1]));
      if (resolve) {
        waiting.delete(Number(m[1]));
        resolve(performance.now());
      }
    });
    const latencies: number[] = [];
    const prober = spawn('ip', ['netns', 'exec', b.netns, 'node', '-e', PROBER], { stdio: ['pipe', 'pipe', 'inherit'] });
    const probeLines = readline.createInterface({ input: prober.stdout! });
    const probeOut: string[] = [];
    let wake: (() => void) | undefined;
    probeLines.on('line', (l) => {
      probeOut.push(l);
      wake?.();
    });
    const nextLine = async () => {
      while (probeOut.length === 0) await new Promise<void>((r) => (wake = r));
      return probeOut.shift()!;
    };
    await nextLine(); // ready
    for (let i = 0; i < Number(args.latency); i++) {
      const sentAt = performance.now(); // before the connect: an upper bound on the latency
      prober.stdin!.write(`${a.ipv4}\n`);
      const sentLine = await nextLine(); // "<source port> sent"
      const sport = Number(sentLine.split(' ')[0]);
      const seenAt = await Promise.race([new Promise<number>((r) => waiting.set(sport, r)), sleep(3000).then(() => -1)]);
      if (seenAt > 0) latencies.push(Math.max(0, seenAt - sentAt));
      await sleep(20);
    }
    prober.kill();
    follower.kill('SIGINT');

    const result = {
      date: new Date().toISOString(),
      decodeEventsPerSecond: { median: median(rates), min: Math.min(...rates), max: Math.max(...rates) },
      cpuSecondsPer100kEvents: { median: median(cpuPer100k), min: Math.min(...cpuPer100k), max: Math.max(...cpuPer100k) },
      followLatencyMs: latencies.length ? { n: latencies.length, p50: pct(latencies, 50), p99: pct(latencies, 99), max: Math.max(...latencies) } : null,
      sustained: {
        eventsPerSecond: median(sustained.map((x) => x.eventsPerSecond)),
        lost: sustained.reduce((sum, x) => sum + x.lost, 0),
        cpuSecondsPer100kPerSecond: median(sustained.map((x) => x.cpuPer100kPerSecond)),
      },
      followerFlowsPerSecond: followed.followedPerSecond,
    };
    const f = (x: number) => x.toFixed(2);
    console.log('| measure | median | min | max | goal | met |');
    console.log('|---|---|---|---|---|---|');
    console.log(`| events decoded into the flow ring per second (one core) | ${Math.round(result.decodeEventsPerSecond.median)} | ${Math.round(result.decodeEventsPerSecond.min)} | ${Math.round(result.decodeEventsPerSecond.max)} | ≥ 1,000,000 | ${result.decodeEventsPerSecond.median >= 1e6 ? 'yes' : 'NO'} |`);
    console.log(`| CPU seconds per 100k events | ${f(result.cpuSecondsPer100kEvents.median)} | ${f(result.cpuSecondsPer100kEvents.min)} | ${f(result.cpuSecondsPer100kEvents.max)} | | |`);
    console.log(`| sustained flood: events/s from the kernel into the flow ring | ${Math.round(result.sustained.eventsPerSecond)} | | | 0 lost | ${result.sustained.lost === 0 ? 'yes' : 'NO'} (${result.sustained.lost} lost) |`);
    console.log(`| sustained flood: agent CPU seconds per second, per 100k events/s | ${f(result.sustained.cpuSecondsPer100kPerSecond)} | | | | |`);
    console.log(`| flows/s an observe --follow -o json reader takes (every flow built and printed) | ${Math.round(result.followerFlowsPerSecond)} | | | | |`);
    if (result.followLatencyMs) {
      console.log(`| connect → observe --follow line, ms (p50 / p99 of ${result.followLatencyMs.n}) | ${f(result.followLatencyMs.p50)} | | ${f(result.followLatencyMs.p99)} (p99) | ≤ 100 | ${result.followLatencyMs.p99 <= 100 ? 'yes' : 'NO'} |`);
    }
    if (args.json) fs.writeFileSync(args.json, JSON.stringify(result, null, 2));
  } finally {
    await node.cleanup();
  }
}

/** Inside the client namespace: on each line (an address), one TCP connect to port 80; prints its source port. */
const PROBER = `
const net = require('net');
console.log('ready');
require('readline').createInterface({ input: process.stdin }).on('line', (host) => {
  const s = net.connect(80, host, () => { console.log(s.localPort + ' sent'); s.end(); });
  s.on('error', () => console.log('0 error'));
});`;

runBenchmark(main);
