/* Cluster harness (DESIGN.md "Test topologies"): a namespace plays the network between the nodes
 * (a Linux bridge holding the underlay gateway address), etcd runs in it, and every node is a
 * TestNode whose namespace is joined to the bridge by a veth before its agent starts.
 * Everything lives in namespaces named `mbcXXXXXX-…`; nothing is routed in or out of them, and
 * cleanup removes every namespace, process, file and cgroup, also from a process 'exit' hook. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TestNode, namespacesWithPrefix, run, sleep, type RunResult } from './node.js';

/** The environment for etcd and etcdctl, without the caller's ETCD... and ETCDCTL... settings. */
function etcdEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD')) env[k] = v;
  env.ETCDCTL_API = '3';
  return env;
}

function alive(child: ChildProcess | undefined): boolean {
  return child !== undefined && child.exitCode === null && child.signalCode === null;
}

/** A single-member etcd 3.4 inside a namespace, listening for clients on IP:2379. */
export class TestEtcd {
  readonly url: string;
  readonly name: string;
  readonly dataDir: string;
  readonly logFile: string;
  private proc?: ChildProcess;

  private constructor(
    readonly netns: string,
    readonly ip: string,
    readonly dir: string,
  ) {
    this.url = `http://${ip}:2379`;
    this.name = netns;
    this.dataDir = path.join(dir, 'etcd');
    this.logFile = path.join(dir, 'etcd.log');
  }

  /** Starts etcd in `netns` (data in DIR/etcd, log in DIR/etcd.log) and waits until it is healthy. */
  static async start(netns: string, ip: string, dir: string): Promise<TestEtcd> {
    const etcd = new TestEtcd(netns, ip, dir);
    liveEtcds.add(etcd);
    installExitHook();
    try {
      await etcd.launch();
    } catch (err) {
      await etcd.stop();
      throw err;
    }
    return etcd;
  }

  /** The etcd process's PID (`ip netns exec` execs etcd, so it is etcd's own); undefined when stopped. */
  get pid(): number | undefined {
    return alive(this.proc) ? this.proc!.pid : undefined;
  }

  get running(): boolean {
    return alive(this.proc);
  }

  /** Starts etcd again on the same data dir (after `kill` or `stop`); the data written before survives. */
  async restart(): Promise<void> {
    if (alive(this.proc)) await this.stop();
    liveEtcds.add(this);
    await this.launch();
  }

  /** SIGTERM, SIGKILL after 5 s; resolves once the process has exited. */
  async stop(): Promise<void> {
    const proc = this.proc;
    if (proc && alive(proc)) {
      const exited = new Promise((r) => proc.once('exit', r));
      signal(proc.pid, 'SIGTERM');
      const timer = setTimeout(() => signal(proc.pid, 'SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    liveEtcds.delete(this);
  }

  /** SIGKILL, like a crash (for outage tests); resolves once the process has exited. */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc || !alive(proc)) return;
    const exited = new Promise((r) => proc.once('exit', r));
    signal(proc.pid, 'SIGKILL');
    await exited;
  }

  /** Synchronous SIGKILL, for the process 'exit' hook. */
  killSync(): void {
    if (alive(this.proc)) signal(this.proc!.pid, 'SIGKILL');
    liveEtcds.delete(this);
  }

  /** `etcdctl --endpoints URL ARGS`, run inside `fromNetns` (default: etcd's own namespace). */
  etcdctl(args: string[], fromNetns = this.netns, timeoutMs = 10_000): Promise<RunResult> {
    return run('ip', ['netns', 'exec', fromNetns, 'etcdctl', '--endpoints', this.url, '--dial-timeout=1s', '--command-timeout=3s', ...args], {
      env: etcdEnv(),
      timeoutMs,
    });
  }

  log(): string {
    return fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8') : '';
  }

  private async launch(): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true });
    const peer = 'http://127.0.0.1:2380';
    const log = fs.openSync(this.logFile, 'a');
    const proc = spawn(
      'ip',
      [
        'netns', 'exec', this.netns,
        'etcd',
        '--name', this.name,
        '--data-dir', this.dataDir,
        '--listen-client-urls', this.url,
        '--advertise-client-urls', this.url,
        '--listen-peer-urls', peer,
        '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `${this.name}=${peer}`,
        '--initial-cluster-token', this.name,
        // One member never loses its leadership: short timeouts only make it elect itself
        // quickly after a restart (3.4's initial tick advance does not cover that: ~1.5 s).
        '--heartbeat-interval', '20',
        '--election-timeout', '200',
        '--logger', 'zap',
        '--log-outputs', 'stderr',
        '--log-level', 'warn',
      ],
      { env: etcdEnv(), stdio: ['ignore', log, log] },
    );
    fs.closeSync(log);
    this.proc = proc;
    proc.on('error', () => undefined); // reported below as an early exit
    // etcdctl retries a refused connection until its timeouts expire: first wait (cheaply, no
    // process per poll) until etcd listens, then until it answers a health check (has a leader).
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (!alive(proc)) throw new Error(`etcd in ${this.netns} exited with ${proc.exitCode ?? proc.signalCode}:\n${this.log()}`);
      if (listening(proc.pid!, 2379) && (await this.etcdctl(['endpoint', 'health'], this.netns, 5000)).code === 0) return;
      await sleep(20);
    }
    throw new Error(`etcd in ${this.netns} was not healthy within 20 s:\n${this.log()}`);
  }
}

/** Whether a TCP socket listens on `port` in the network namespace of process `pid`. */
function listening(pid: number, port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  try {
    return fs
      .readFileSync(`/proc/${pid}/net/tcp`, 'utf8')
      .split('\n')
      .slice(1)
      .some((l) => {
        const f = l.trim().split(/\s+/);
        return f[1]?.endsWith(`:${hexPort}`) === true && f[3] === '0A';
      });
  } catch {
    return false;
  }
}

function signal(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

export interface ClusterOptions {
  nodes: number;
  /** Appended to every agent's arguments (after the kvstore flags). */
  extraAgentArgs?: string[];
  /** Join the agents through etcd (`--kvstore etcd --kvstore-endpoints URL --node-ip IP`); default true. */
  kvstore?: boolean;
  /**
   * Give every node a certificate of the cluster's CA (made as `membrane cluster certs` makes
   * them, in DIR/certs) and the --hubble-peer-tls-* flags, so that agents read each other's flows
   * over mutual TLS on NODE_IP:4244; default true (with the kvstore).
   */
  peerTls?: boolean;
}

/**
 * N nodes on one underlay (172.30.0.0/24: the network namespace's bridge .1, node i .(10+i))
 * with etcd on 172.30.0.1:2379. Node i's pod CIDR is 10.210.i.0/24 and its prefix `PREFIX-nI`.
 */
export class TestCluster {
  readonly prefix = `mbc${crypto.randomBytes(3).toString('hex')}`;
  /** The namespace that plays the network: bridge `br0` with the gateway address, and etcd. */
  readonly net = `${this.prefix}-net`;
  readonly gatewayIp = '172.30.0.1';
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), `${this.prefix}-`));
  etcd!: TestEtcd;
  /** The cluster CA and the nodes' certificates (NAME.crt, NAME.key), when peerTls. */
  readonly certDir = path.join(this.dir, 'certs');
  /** nodes[i] is node i (underlay nodeIp(i), pod CIDR podCidr(i)). */
  readonly nodes: TestNode[] = [];
  private nextIndex = 0;

  private constructor(private readonly opts: ClusterOptions) {
    liveClusters.add(this);
    installExitHook();
  }

  static async create(opts: ClusterOptions): Promise<TestCluster> {
    const cluster = new TestCluster(opts);
    try {
      await cluster.createNetwork();
      cluster.etcd = await TestEtcd.start(cluster.net, cluster.gatewayIp, cluster.dir);
      // One at a time: agents starting together on a small, busy machine can miss their deadline.
      for (let i = 0; i < opts.nodes; i++) await cluster.addNode();
    } catch (err) {
      await cluster.cleanup();
      throw err;
    }
    return cluster;
  }

  nodeIp(i: number): string {
    return `172.30.0.${10 + i}`;
  }

  podCidr(i: number): string {
    return `10.210.${i}.0/24`;
  }

  /**
   * One more node, wired to the bridge before its agent starts; it is nodes[nodes.length - 1].
   * `podCidr` a pool: the node claims its CIDR from it instead of getting podCidr(i).
   * `peerTlsArgs` replace the --hubble-peer-tls-* flags of the cluster's CA (e.g. another CA's).
   */
  async addNode(opts: { podCidr?: { pool: string; maskSize: number }; peerTlsArgs?: (name: string, ip: string) => Promise<string[]> } = {}): Promise<TestNode> {
    const i = this.nextIndex++;
    if (i > 244) throw new Error('the underlay has room for 245 nodes');
    const ip = this.nodeIp(i);
    const kvstore = this.opts.kvstore ?? true;
    const prefix = `${this.prefix}-n${i}`;
    const peerTls = !kvstore ? [] : opts.peerTlsArgs ? await opts.peerTlsArgs(`${prefix}-node`, ip) : (this.opts.peerTls ?? true) ? await this.nodeCertificate(`${prefix}-node`, ip) : [];
    const node = await TestNode.create({
      prefix,
      podCidr: opts.podCidr ?? this.podCidr(i),
      extraAgentArgs: [
        ...(kvstore ? ['--kvstore', 'etcd', '--kvstore-endpoints', this.etcd.url, '--node-ip', ip] : []),
        ...peerTls,
        ...(this.opts.extraAgentArgs ?? []),
      ],
      beforeAgent: (n) => this.wire(n, i),
    });
    this.nodes[i] = node;
    return node;
  }

  /**
   * A certificate for node `name` at `ip` signed by the cluster CA (made on first use), written
   * as `membrane cluster certs` writes them; returns the agent flags that use it.
   */
  async nodeCertificate(name: string, ip: string): Promise<string[]> {
    const certs = await import('../../src/cluster/certs.js');
    fs.mkdirSync(this.certDir, { recursive: true, mode: 0o700 });
    const caCert = path.join(this.certDir, 'ca.crt');
    const caKey = path.join(this.certDir, 'ca.key');
    if (!fs.existsSync(caCert)) {
      const ca = await certs.createClusterCa(this.prefix, 1);
      fs.writeFileSync(caKey, ca.key, { mode: 0o600 });
      fs.writeFileSync(caCert, ca.cert);
    }
    const ca = await certs.loadClusterCa({ cert: fs.readFileSync(caCert, 'utf8'), key: fs.readFileSync(caKey, 'utf8') }, this.certDir);
    const pair = await certs.issueNodeCertificate(ca, { name, ips: [ip] }, 1);
    const cert = path.join(this.certDir, `${name}.crt`);
    const key = path.join(this.certDir, `${name}.key`);
    fs.writeFileSync(key, pair.key, { mode: 0o600 });
    fs.writeFileSync(cert, pair.cert);
    return ['--hubble-peer-tls-cert-file', cert, '--hubble-peer-tls-key-file', key, '--hubble-peer-tls-ca-file', caCert];
  }

  /**
   * A host outside the cluster, beyond the underlay: namespace `PREFIX-out-NAME` holding `address`
   * (a documentation address), joined to the network namespace by a veth; the network forwards
   * between it and the nodes, and knows no way to the pod CIDRs, so only traffic masqueraded to
   * a node's address is answered. Every node present gets its default route via the gateway.
   * Nothing leads out of the harness's namespaces. Returns the namespace.
   */
  async addOutsideHost(name: string, address: string): Promise<string> {
    const netns = `${this.prefix}-out-${name}`;
    const netSide = `out-${name}`.slice(0, 15);
    const steps: string[][] = [
      ['netns', 'add', netns],
      ['-n', this.net, 'link', 'add', netSide, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns],
      ['-n', this.net, 'link', 'set', netSide, 'up'],
      ['-n', this.net, 'route', 'add', `${address}/32`, 'dev', netSide],
      ['-n', netns, 'link', 'set', 'lo', 'up'],
      ['-n', netns, 'address', 'add', `${address}/32`, 'dev', 'eth0'],
      ['-n', netns, 'link', 'set', 'eth0', 'up'],
      ['-n', netns, 'route', 'add', 'default', 'dev', 'eth0'],
    ];
    for (const args of steps) await ip(args);
    // The network answers ARP on the host's link for whatever it routes (the nodes), and forwards.
    for (const sysctl of [`net.ipv4.conf.${netSide}.proxy_arp=1`, 'net.ipv4.ip_forward=1']) {
      const r = await run('ip', ['netns', 'exec', this.net, 'sysctl', '-qw', sysctl]);
      if (r.code !== 0) throw new Error(`sysctl ${sysctl}: ${r.stderr.trim()}`);
    }
    for (const node of this.nodes) {
      const r = await run('ip', ['-n', node.netns, 'route', 'replace', 'default', 'via', this.gatewayIp]);
      if (r.code !== 0) throw new Error(`default route of ${node.name}: ${r.stderr.trim()}`);
    }
    return netns;
  }

  /** Nodes, etcd, the network namespace and the files; never throws, safe to call twice. */
  async cleanup(): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => n.cleanup()));
    await this.etcd?.stop().catch(() => undefined);
    cleanupSync(this);
  }

  private async createNetwork(): Promise<void> {
    await ip(['netns', 'add', this.net]);
    await ip(['-n', this.net, 'link', 'set', 'lo', 'up']);
    await ip(['-n', this.net, 'link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
    await ip(['-n', this.net, 'address', 'add', `${this.gatewayIp}/24`, 'dev', 'br0']);
    await ip(['-n', this.net, 'link', 'set', 'br0', 'up']);
  }

  /** A veth from the node (`eth0`, NODE_IP/24) to the bridge (`nI` in the network namespace). */
  private async wire(node: TestNode, i: number): Promise<void> {
    const port = `n${i}`;
    await ip(['-n', node.netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', port, 'netns', this.net]);
    await ip(['-n', this.net, 'link', 'set', port, 'master', 'br0']);
    await ip(['-n', this.net, 'link', 'set', port, 'up']);
    await ip(['-n', node.netns, 'address', 'add', `${this.nodeIp(i)}/24`, 'dev', 'eth0']);
    await ip(['-n', node.netns, 'link', 'set', 'eth0', 'up']);
  }
}

async function ip(args: string[]): Promise<void> {
  const r = await run('ip', args);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

/** Synchronous so it can also run from a process 'exit' handler (TestNode has its own hook). */
function cleanupSync(cluster: TestCluster): void {
  cluster.etcd?.killSync();
  for (const ns of namespacesWithPrefix(cluster.prefix)) spawnSync('ip', ['netns', 'delete', ns]);
  fs.rmSync(cluster.dir, { recursive: true, force: true });
  liveClusters.delete(cluster);
}

const liveEtcds = new Set<TestEtcd>();
const liveClusters = new Set<TestCluster>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const e of liveEtcds) e.killSync();
    for (const c of liveClusters) cleanupSync(c);
  });
}
