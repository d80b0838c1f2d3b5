/* Shared e2e harness: a network namespace that plays the node, the agent running inside it
 * (entered with nsenter --net, which keeps the host's mount namespace so bpffs stays visible),
 * and helpers to run the CLI and workloads. Every name carries a unique prefix, and cleanup
 * removes every namespace, pin, file and process this harness created, even after a failure. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { AgentClient } from '../../src/api/client.js';
import type { FieldList, Struct } from '../../src/datapath/struct.js';
import { TypedMap } from '../../src/datapath/typed-map.js';
import type { Flow } from '../../src/flow/types.js';
import { BpfMap } from '../../src/kernel/bpf-map.js';
import { openPinned } from '../../src/kernel/bpf-link.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(repoRoot, 'bin/membrane');
const tools = path.join(repoRoot, 'test/harness/tools');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // the command may exit before reading its input
      child.stdin.end(opts.input);
    }
  });
}

/** Resolves with the first stdout line of `child` that matches, or rejects on exit/timeout. */
export function waitForLine(child: ChildProcess, match: (line: string) => boolean, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: child.stdout! });
    const timer = setTimeout(() => {
      rl.close();
      reject(new Error('timed out waiting for output'));
    }, timeoutMs);
    rl.on('line', (line) => {
      if (match(line)) {
        clearTimeout(timer);
        rl.close();
        resolve(line);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`process exited with ${code} before the expected output`));
    });
  });
}

export interface NodeOptions {
  /** The node's pod CIDR, or `{ pool }`: claimed from a cluster pool (then read back from the agent). */
  podCidr?: string | { pool: string; maskSize: number };
  extraAgentArgs?: string[];
  /**
   * The node's prefix (default `mbt` + random hex). Every name the node makes starts with
   * `PREFIX-` (namespaces, temp dir) or is `PREFIX` (bpffs dir, cgroup), and its cleanup removes
   * only namespaces named `PREFIX-…`, so nodes of one cluster can share a common stem
   * (`mbcXXXXXX-n0`, `mbcXXXXXX-n1`, …) without one node's cleanup touching another's.
   */
  prefix?: string;
  /** Runs after the node namespace exists (lo up) and before the agent starts, e.g. to wire its underlay. */
  beforeAgent?: (node: TestNode) => Promise<void>;
}

export class TestNode {
  readonly prefix: string;
  readonly name: string;
  readonly netns: string;
  readonly dir: string;
  readonly socket: string;
  readonly stateDir: string;
  readonly bpffsDir: string;
  readonly logFile: string;
  podCidr: string;
  /** This node's cgroup: workloads run in it, so the socket-level service hooks apply to them. */
  readonly cgroupDir: string;
  readonly api: AgentClient;
  agent?: ChildProcess;
  private readonly children = new Set<ChildProcess>();
  /** Followers started by `follow` that have not exited. */
  private readonly followers = new Set<ChildProcess>();
  private readonly opts: NodeOptions;

  private constructor(opts: NodeOptions) {
    this.opts = opts;
    this.prefix = opts.prefix ?? `mbt${crypto.randomBytes(3).toString('hex')}`;
    this.name = `${this.prefix}-node`;
    this.netns = this.name;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `${this.prefix}-`));
    this.socket = path.join(this.dir, 'agent.sock');
    this.stateDir = path.join(this.dir, 'state');
    this.bpffsDir = `/sys/fs/bpf/${this.prefix}`;
    this.logFile = path.join(this.dir, 'agent.log');
    this.cgroupDir = path.join(cgroup2Mount(), this.prefix);
    this.api = new AgentClient(this.socket);
    this.podCidr = typeof opts.podCidr === 'string' ? opts.podCidr : opts.podCidr ? '' : '10.210.0.0/24';
    fs.mkdirSync(this.cgroupDir, { recursive: true });
    registerForExitCleanup(this);
  }

  static async create(opts: NodeOptions = {}): Promise<TestNode> {
    const node = new TestNode(opts);
    try {
      spawnSync('ip', ['netns', 'add', node.netns], { stdio: 'inherit' });
      spawnSync('ip', ['-n', node.netns, 'link', 'set', 'lo', 'up']);
      if (opts.beforeAgent) await opts.beforeAgent(node);
      await node.startAgent();
    } catch (err) {
      await node.cleanup();
      throw err;
    }
    return node;
  }

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, MEMBRANE_SOCKET: this.socket };
  }

  /** Starts the agent (with `extraArgs` after the node's own) and waits until its API answers. */
  async startAgent(extraArgs: string[] = []): Promise<void> {
    const log = fs.openSync(this.logFile, 'a');
    this.agent = spawn(
      'nsenter',
      [
        `--net=/run/netns/${this.netns}`,
        bin,
        'agent',
        '--node-name', this.name,
        ...(typeof this.opts.podCidr === 'object'
          ? ['--cluster-pool-ipv4-cidr', this.opts.podCidr.pool, '--cluster-pool-mask-size', String(this.opts.podCidr.maskSize)]
          : ['--pod-cidr', this.podCidr]),
        '--state-dir', this.stateDir,
        '--bpffs-dir', this.bpffsDir,
        '--log-level', 'debug',
        '--cgroup-root', this.cgroupDir,
        ...(this.opts.extraAgentArgs ?? []),
        ...extraArgs,
      ],
      { env: this.env, stdio: ['ignore', log, log] },
    );
    fs.closeSync(log);
    const agent = this.agent;
    // Generous: on a shared 2-core machine under load an agent joining a cluster was seen to need more than 15 s.
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (agent.exitCode !== null) throw new Error(`agent exited with ${agent.exitCode}:\n${this.agentLog()}`);
      try {
        const status = await this.api.status();
        this.podCidr = status.node.podCIDR; // claimed from a pool: known once the agent answers
        return;
      } catch {
        await sleep(50);
      }
    }
    await this.killAgent(); // not left running behind a failed start
    throw new Error(`agent did not answer within 30 s:\n${this.agentLog()}`);
  }

  /** SIGKILL: nothing runs on the way out, like a crash. Another signal is followed by SIGKILL after 10 s. */
  async killAgent(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const agent = this.agent;
    if (!agent || agent.exitCode !== null || agent.signalCode !== null) return;
    const exited = new Promise((r) => agent.once('exit', r));
    agent.kill(signal);
    const escalate = signal === 'SIGKILL' ? undefined : setTimeout(() => agent.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(escalate);
    this.agent = undefined;
  }

  /**
   * Starts `membrane observe ARGS` (with --follow) and resolves once the agent counts it as a
   * follower, so nothing sent afterwards can be missed; a loaded machine may take seconds to start the CLI.
   */
  async follow(args: string[], stdio: 'pipe' | 'inherit' = 'pipe'): Promise<ChildProcess> {
    // Followers told to stop must be gone, and no longer counted by the agent, before we count anew.
    await Promise.all([...this.followers].filter((c) => c.killed).map((c) => new Promise((r) => c.once('exit', r))));
    if (!(await eventually(async () => (await this.api.status()).flows.followers <= this.followers.size, 10_000))) {
      throw new Error('followers that were told to stop are still counted by the agent');
    }
    const before = (await this.api.status()).flows.followers;
    const child = spawn(bin, ['observe', '--follow', ...args], { env: this.env, stdio: ['ignore', 'pipe', stdio] });
    this.children.add(child);
    this.followers.add(child);
    child.once('exit', () => {
      this.children.delete(child);
      this.followers.delete(child);
    });
    const connected = await eventually(async () => child.exitCode === null && (await this.api.status()).flows.followers > before, 30_000);
    if (!connected) {
      child.kill('SIGKILL');
      throw new Error(`membrane observe --follow ${args.join(' ')} did not connect within 30 s`);
    }
    return child;
  }

  /** Writes a file into this node's own directory (removed by cleanup); returns its path. */
  writeFile(name: string, content: string): string {
    const p = path.join(this.dir, name);
    fs.writeFileSync(p, content);
    return p;
  }

  agentLog(): string {
    return fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8') : '';
  }

  /** Runs `membrane ARGS` against this node's agent. */
  cli(...args: string[]): Promise<RunResult> {
    return run(bin, args, { env: this.env });
  }

  /** `membrane observe ARGS -o json`, expected to succeed: its flows, oldest first. */
  async observeFlows(...args: string[]): Promise<Flow[]> {
    const r = await this.cli('observe', ...args, '-o', 'json');
    if (r.code !== 0) throw new Error(`membrane observe ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { flow: Flow }).flow);
  }

  /** One of the agent's pinned maps, read directly (what the datapath sees, not what the agent says). */
  pinnedMap<K extends FieldList, V extends FieldList>(name: string, key: Struct<K>, value: Struct<V>): TypedMap<K, V> {
    return new TypedMap(new BpfMap(openPinned(path.join(this.bpffsDir, 'maps', name))), key, value);
  }

  /** Runs the CLI, expects success and parses its JSON output. */
  async cliJson<T>(...args: string[]): Promise<T> {
    const r = await this.cli(...args, '-o', 'json');
    if (r.code !== 0) throw new Error(`membrane ${args.join(' ')} failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  /**
   * `ip netns exec NETNS ARGS`, started inside this node's cgroup (as a workload of the node, so
   * the socket-level service hooks apply), or outside it (`outsideCgroup`: only the endpoint
   * programs on the interface see what it sends).
   */
  private workload(netns: string, args: string[], outsideCgroup = false): [string, string[]] {
    if (outsideCgroup) return ['ip', ['netns', 'exec', netns, ...args]];
    return ['sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', this.cgroupDir, 'ip', 'netns', 'exec', netns, ...args]];
  }

  /** Runs a command inside a workload namespace. */
  exec(netns: string, args: string[], timeoutMs?: number, opts: { outsideCgroup?: boolean } = {}): Promise<RunResult> {
    const [cmd, argv] = this.workload(netns, args, opts.outsideCgroup);
    return run(cmd, argv, { timeoutMs });
  }

  /** Runs a command inside the node namespace. */
  execNode(args: string[]): Promise<RunResult> {
    return run('ip', ['netns', 'exec', this.netns, ...args]);
  }

  /** Starts a long-running process in a namespace; it is killed by cleanup. */
  spawnIn(netns: string, args: string[], opts: { outsideCgroup?: boolean } = {}): ChildProcess {
    const [cmd, argv] = this.workload(netns, args, opts.outsideCgroup);
    const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Echo server on the given ports (TCP and UDP) inside `netns`. */
  async echoServer(netns: string, ...ports: number[]): Promise<ChildProcess> {
    const child = this.spawnIn(netns, ['node', path.join(tools, 'echo-server.mjs'), ...ports.map(String)]);
    await waitForLine(child, (l) => l === 'ready');
    return child;
  }

  /** True when `proto` traffic from `netns` to host:port comes back. */
  async probe(netns: string, proto: 'tcp' | 'udp', host: string, port: number, timeoutMs = 1500): Promise<boolean> {
    const r = await this.exec(netns, ['node', path.join(tools, 'probe.mjs'), proto, host, String(port), String(timeoutMs)]);
    return r.code === 0;
  }

  async ping(netns: string, host: string): Promise<boolean> {
    const r = await this.exec(netns, ['ping', '-c', '1', '-W', '1', host]);
    return r.code === 0;
  }

  holdConnection(netns: string, host: string, port: number, opts: { outsideCgroup?: boolean } = {}): ChildProcess {
    return this.spawnIn(netns, ['node', path.join(tools, 'hold-conn.mjs'), host, String(port)], opts);
  }

  /**
   * A host outside the cluster ("world"): its own namespace joined to the node by a veth, with
   * an address outside the pod CIDR and a route back to the pods. Everything stays inside this
   * harness's namespaces.
   */
  async addExternalHost(name: string, ip: string): Promise<string> {
    const netns = `${this.prefix}-ext-${name}`;
    const nodeSide = `ext-${name}`.slice(0, 15);
    const steps: string[][] = [
      ['netns', 'add', netns],
      ['-n', this.netns, 'link', 'add', nodeSide, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns],
      ['-n', this.netns, 'link', 'set', nodeSide, 'up'],
      ['-n', this.netns, 'route', 'add', `${ip}/32`, 'dev', nodeSide],
      ['-n', netns, 'link', 'set', 'lo', 'up'],
      ['-n', netns, 'address', 'add', `${ip}/32`, 'dev', 'eth0'],
      ['-n', netns, 'link', 'set', 'eth0', 'up'],
      ['-n', netns, 'route', 'add', this.podCidr, 'dev', 'eth0'],
    ];
    for (const args of steps) {
      const r = await run('ip', args);
      if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
    }
    // The node answers ARP for the pods on the external host's link, at once (proxy answers
    // are otherwise delayed up to 0.8 s, longer than a short probe waits).
    await this.execNode(['sysctl', '-qw', `net.ipv4.conf.${nodeSide}.proxy_arp=1`, `net.ipv4.neigh.${nodeSide}.proxy_delay=0`]);
    return netns;
  }

  async cleanup(): Promise<void> {
    for (const child of this.children) child.kill('SIGKILL');
    await this.killAgent('SIGTERM').catch(() => undefined);
    cleanupSync(this);
  }
}

/** Namespaces named `PREFIX-…`: the separator keeps node `…-n1` from matching node `…-n10`'s. */
export function namespacesWithPrefix(prefix: string): string[] {
  const out = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  return out
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(`${prefix}-`));
}

/** Synchronous so it can also run from a process 'exit' handler. */
function cleanupSync(node: TestNode): void {
  if (node.agent && node.agent.exitCode === null) node.agent.kill('SIGKILL');
  for (const ns of namespacesWithPrefix(node.prefix)) spawnSync('ip', ['netns', 'delete', ns]);
  fs.rmSync(node.bpffsDir, { recursive: true, force: true });
  fs.rmSync(node.dir, { recursive: true, force: true });
  removeCgroup(node.cgroupDir);
  liveNodes.delete(node);
}

/** The cgroup can only go once its processes have: kill stragglers, then retry briefly. */
function removeCgroup(dir: string): void {
  if (!fs.existsSync(dir)) return;
  for (let attempt = 0; attempt < 50; attempt++) {
    const pids = fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    try {
      fs.rmdirSync(dir);
      return;
    } catch {
      spawnSync('sleep', ['0.05']);
    }
  }
}

let cgroup2Root: string | undefined;
export function cgroup2Mount(): string {
  if (!cgroup2Root) {
    const line = fs.readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[2] === 'cgroup2');
    if (!line) throw new Error('no cgroup2 filesystem is mounted');
    cgroup2Root = line.split(' ')[1]!;
  }
  return cgroup2Root;
}

const liveNodes = new Set<TestNode>();
let exitHookInstalled = false;
function registerForExitCleanup(node: TestNode): void {
  liveNodes.add(node);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const n of liveNodes) cleanupSync(n);
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `fn` until it returns true or the deadline passes (for state that settles asynchronously). */
export async function eventually(fn: () => Promise<boolean> | boolean, timeoutMs = 5000, stepMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > deadline) return false;
    await sleep(stepMs);
  }
}
