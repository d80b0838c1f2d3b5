/* Pieces the benchmarks share: a pair of workloads joined by a node namespace with no program
 * (the baseline, and the host of nftables or iptables rules), background processes inside a
 * namespace, and the connection-rate measurement. Everything lives in namespaces the caller's
 * prefix names. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { randomMac, plumb, type Plumbing } from '../src/endpoint/plumbing.js';
import { IprouteNetlink } from '../src/kernel/netlink.js';
import { repoRoot, run, type RunResult } from '../test/harness/node.js';

const nl = new IprouteNetlink();
const tools = path.join(repoRoot, 'test/harness/tools');

export interface Pair {
  name: string;
  client: { netns: string; ip: string };
  server: { netns: string; ip: string };
  nodeNetns: string;
}

/** Two workloads joined by a node namespace with no program: the baseline (and the host of netfilter rules). */
export async function plainPair(prefix: string, subnet: string): Promise<Pair & { cleanup(): Promise<void> }> {
  const nodeNetns = `${prefix}-node`;
  await nl.addNetns(nodeNetns);
  const router = `${subnet}.1`;
  await run('ip', ['netns', 'exec', nodeNetns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  await nl.apply(
    [
      { op: 'up', name: 'lo' },
      { op: 'address', dev: 'lo', cidr: `${router}/32` },
      { op: 'route', dst: `${subnet}.0/24`, unreachable: true },
    ],
    nodeNetns,
  );
  const side = async (name: string, ip: string) => {
    const p: Plumbing = { nodeNetns, ipv4: ip, netns: `${prefix}-${name}`, netnsOwned: true, interface: `veth${name}`, mac: randomMac(), hostMac: randomMac(), routerIP: router };
    await plumb(nl, p, async () => undefined);
    return { netns: p.netns, ip };
  };
  const client = await side('c', `${subnet}.2`);
  const server = await side('s', `${subnet}.3`);
  return {
    name: 'no program',
    client,
    server,
    nodeNetns,
    cleanup: async () => {
      for (const ns of [client.netns, server.netns, nodeNetns]) await nl.deleteNetns(ns);
    },
  };
}

export function background(netns: string, cmd: string[]): ChildProcess {
  return spawn('ip', ['netns', 'exec', netns, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await done;
}

/** The command line of the echo server connectionRate talks to, on `port`. */
export function echoServerArgv(port: number): string[] {
  return ['node', path.join(tools, 'echo-server.mjs'), String(port)];
}

/** The echo server connectionRate talks to, started in `netns` on `port`. */
export function echoServer(netns: string, port: number): ChildProcess {
  return background(netns, echoServerArgv(port));
}

/**
 * New TCP connections per second (connect, one request, its reply, close) to host:port for
 * `seconds`. `exec` runs the client where it must run (a plain `ip netns exec`, or a workload
 * inside a node's cgroup so its socket hooks apply).
 */
export async function connectionRate(exec: (argv: string[]) => Promise<RunResult>, host: string, port: number, seconds: number): Promise<number> {
  const r = await exec(['node', path.join(tools, 'connect-rate.mjs'), host, String(port), String(seconds)]);
  const rate = Number(r.stdout.trim());
  if (r.code !== 0 || !Number.isFinite(rate) || rate <= 0) throw new Error(`connect-rate to ${host}:${port} failed: ${r.stdout}${r.stderr}`);
  return rate;
}

export const execIn = (netns: string) => (argv: string[]) => run('ip', ['netns', 'exec', netns, ...argv], { timeoutMs: 120_000 });

/** Interrupted runs still clean up: the namespaces named with `prefix` go when the process exits. */
export function deleteNamespacesOnExit(prefix: string): void {
  process.once('exit', () => {
    const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
    for (const ns of list.split('\n').map((l) => l.split(' ')[0] ?? '')) if (ns.startsWith(prefix)) spawnSync('ip', ['netns', 'delete', ns]);
  });
}
