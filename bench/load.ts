/* Load between a client and a server workload, for the benchmarks that compare a datapath with
 * a baseline (bench/datapath, bench/cluster): TCP stream (iperf3), request/response latency
 * (sockperf ping-pong over TCP) and connection rate (test/harness/tools/connect-rate.mjs), with
 * servers that stay up for a whole run, and the pairing of a candidate's run with a baseline's
 * run right next to it. The workloads run with `ip netns exec` in their namespaces, outside any
 * agent's cgroup, so only the datapath between them is measured (the socket-level service hooks
 * are bench/services'). */
import type { ChildProcess } from 'node:child_process';
import { run } from '../test/harness/node.js';
import type { RatioRow } from './stats.js';
import { background, connectionRate as measureConnectionRate, echoServerArgv, execIn, stop } from './topology.js';

/** A client and a server workload: their namespaces and addresses. */
export interface Ends {
  client: { netns: string; ip: string };
  server: { netns: string; ip: string };
}

export const PORT = { iperf: 5201, udp: 9000, rr: 9001, crr: 9002 } as const;

/** Resolves once something in `netns` listens on `port` (TCP) or is bound to it (UDP). */
export async function waitForListener(netns: string, proto: 'tcp' | 'udp', port: number): Promise<void> {
  for (let tries = 0; tries < 200; tries++) {
    const r = await run('ip', ['netns', 'exec', netns, 'ss', proto === 'tcp' ? '-Hltn' : '-Hlun', `sport = :${port}`]);
    if (r.stdout.trim()) return;
    await new Promise((res) => setTimeout(res, 25));
  }
  throw new Error(`nothing listens on ${proto} port ${port} in ${netns}`);
}

/** Servers that stay up for the whole run, one per server namespace and workload, so a measurement pays no server start. */
export class Servers {
  private readonly running = new Map<string, ChildProcess>();

  async ensure(ends: Ends, proto: 'tcp' | 'udp', port: number, argv: string[]): Promise<void> {
    const key = `${ends.server.netns}/${proto}/${port}`;
    if (this.running.has(key)) return;
    const child = background(ends.server.netns, argv);
    // Nobody reads what the servers print: drain it so a full pipe never blocks them.
    child.stdout?.resume();
    child.stderr?.resume();
    this.running.set(key, child);
    await waitForListener(ends.server.netns, proto, port);
  }

  async stopAll(): Promise<void> {
    for (const c of this.running.values()) await stop(c);
    this.running.clear();
  }
}

/**
 * One iperf3 stream for `seconds`, in Gbit/s. The congestion control is named (cubic, Linux's
 * default) so the result does not hang on the machine's sysctl: BBR paces by timer, and on a
 * link with no queue that alone swung runs between 9 and 22 Gbit/s here.
 */
export async function tcpStream(servers: Servers, ends: Ends, seconds: number): Promise<number> {
  await servers.ensure(ends, 'tcp', PORT.iperf, ['iperf3', '-s', '-p', String(PORT.iperf)]);
  const r = await run('ip', ['netns', 'exec', ends.client.netns, 'iperf3', '-c', ends.server.ip, '-p', String(PORT.iperf), '-t', String(seconds), '-C', 'cubic', '-J'], { timeoutMs: 60_000 });
  const report = JSON.parse(r.stdout) as { end?: { sum_received?: { bits_per_second: number } }; error?: string };
  if (!report.end?.sum_received) throw new Error(`iperf3 to ${ends.server.ip}: ${report.error ?? r.stderr}`);
  return report.end.sum_received.bits_per_second / 1e9;
}

/**
 * One-way latency in microseconds as sockperf reports it (half the round trip): the mean, and
 * the median. On a machine shared with other work the mean follows the scheduler (a few round
 * trips that wait milliseconds for a CPU move it by 2×), while the median follows the datapath.
 */
export async function requestResponse(servers: Servers, ends: Ends, seconds: number): Promise<{ mean: number; median: number }> {
  await servers.ensure(ends, 'tcp', PORT.rr, ['sockperf', 'sr', '--tcp', '-i', ends.server.ip, '-p', String(PORT.rr)]);
  const r = await run('ip', ['netns', 'exec', ends.client.netns, 'sockperf', 'pp', '--tcp', '-i', ends.server.ip, '-p', String(PORT.rr), '-t', String(seconds)], { timeoutMs: 60_000 });
  const out = r.stdout + r.stderr;
  const mean = /avg-latency=([\d.]+)/.exec(out) ?? /Latency is ([\d.]+) usec/.exec(out);
  const median = /percentile 50\.000 =\s*([\d.]+)/.exec(out);
  if (!mean || !median) throw new Error(`sockperf pp printed no latency: ${out}`);
  return { mean: Number(mean[1]), median: Number(median[1]) };
}

/** New TCP connections per second, each carrying one request and its reply (TCP_CRR style). */
export async function connectionRate(servers: Servers, ends: Ends, seconds: number): Promise<number> {
  await servers.ensure(ends, 'tcp', PORT.crr, echoServerArgv(PORT.crr));
  return await measureConnectionRate(execIn(ends.client.netns), ends.server.ip, PORT.crr, seconds);
}

/**
 * Pairs each candidate run with a baseline run right next to it, the order alternating from
 * pair to pair, so the machine's drift (it swings by ±15 % within seconds here) favours neither
 * side; a row's ratio is then the median over its pairs.
 */
export class Alternating {
  private flip = false;

  /** Measures `base` and `candidate` back to back into `row`; returns the baseline's value. */
  async pair<T>(measure: (t: T) => Promise<number>, base: T, candidate: T, row: RatioRow): Promise<number> {
    this.flip = !this.flip;
    const [first, second] = this.flip ? [base, candidate] : [candidate, base];
    const got = new Map([[first, await measure(first)]]);
    got.set(second, await measure(second));
    row.baseline.push(got.get(base)!);
    row.value.push(got.get(candidate)!);
    return got.get(base)!;
  }
}
