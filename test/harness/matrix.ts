/* Reachability matrix harness modelled on the Kubernetes NetworkPolicy e2e tests: three
 * namespaces x, y, z with three pods a, b, c each, every pod serving TCP and UDP on ports 80
 * and 81 (and 53, like DNS), and a long-lived prober per pod so that a full 9x9 matrix is
 * probed concurrently.
 * The pods live on one node, or spread over the nodes of a cluster by a `Placement`.
 * `Reachability` holds an expected or observed matrix for one port/protocol; `probeAll`
 * measures one, `assertReachability` compares two and prints a readable table. */
import { AssertionError } from 'node:assert';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import type { Endpoint } from '../../src/api/types.js';
import { TestNode, repoRoot, sleep } from './node.js';

export const NAMESPACES = ['x', 'y', 'z'] as const;
export const PODS = ['a', 'b', 'c'] as const;
export type NamespaceName = (typeof NAMESPACES)[number];
export type ShortPodName = (typeof PODS)[number];
export type PodName = `${'x' | 'y' | 'z'}/${'a' | 'b' | 'c'}`;

/** Every pod, namespace-major: x/a, x/b, x/c, y/a, ... */
export const ALL_PODS: readonly PodName[] = NAMESPACES.flatMap((ns) => PODS.map((p) => `${ns}/${p}` as PodName));

export const POD_PORTS = ['serve-80-tcp:80/TCP', 'serve-80-udp:80/UDP', 'serve-81-tcp:81/TCP', 'serve-81-udp:81/UDP'];
/** Where every pod's echo server listens (TCP and UDP); 53 plays DNS, which egress policies let out. */
export const SERVED_PORTS = [80, 81, 53];

const proberPath = path.join(repoRoot, 'test/harness/tools/prober.mjs');

export function podName(namespace: string, pod: string): PodName {
  const name = `${namespace}/${pod}`;
  if (!ALL_PODS.includes(name as PodName)) throw new Error(`not a matrix pod: ${name}`);
  return name as PodName;
}

function splitPod(p: PodName): { namespace: NamespaceName; pod: ShortPodName } {
  const [namespace, pod] = p.split('/') as [NamespaceName, ShortPodName];
  return { namespace, pod };
}

function podIndex(p: PodName): number {
  const i = ALL_PODS.indexOf(p);
  if (i < 0) throw new Error(`not a matrix pod: ${p}`);
  return i;
}

export type Proto = 'tcp' | 'udp';

export interface ProbeResult {
  ok: boolean;
  error?: string;
}

/** Client side of one prober process: many requests in flight, matched by id. */
export class Prober {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: ProbeResult) => void; timer: NodeJS.Timeout }>();
  private stderr = '';
  private exited?: string;
  private readonly ready: Promise<void>;

  constructor(readonly child: ChildProcess, readonly pod: PodName) {
    const rl = readline.createInterface({ input: child.stdout! });
    let markReady!: () => void;
    let failReady!: (err: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      failReady = reject;
    });
    // Generous: eighteen node processes (probers and echo servers) start at once on a shared 2-core machine.
    const readyTimer = setTimeout(() => failReady(new Error(`prober in ${pod} did not start within 30 s: ${this.stderr}`)), 30_000);
    rl.on('line', (line) => {
      if (line === 'ready') {
        clearTimeout(readyTimer);
        markReady();
        return;
      }
      let msg: { id?: unknown; ok?: unknown; error?: unknown };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        return;
      }
      const entry = typeof msg.id === 'number' ? this.pending.get(msg.id) : undefined;
      if (!entry) return;
      this.pending.delete(msg.id as number);
      clearTimeout(entry.timer);
      entry.resolve(msg.ok === true ? { ok: true } : { ok: false, error: typeof msg.error === 'string' ? msg.error : 'failed' });
    });
    child.stderr?.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4096);
    });
    child.stdin?.on('error', () => undefined); // the prober may be killed while we write
    child.once('exit', (code, signal) => {
      clearTimeout(readyTimer);
      this.exited = `prober in ${pod} exited (${signal ?? code})${this.stderr ? `: ${this.stderr}` : ''}`;
      failReady(new Error(this.exited));
      for (const [id, entry] of this.pending) {
        clearTimeout(entry.timer);
        entry.resolve({ ok: false, error: this.exited });
        this.pending.delete(id);
      }
    });
  }

  waitReady(): Promise<void> {
    return this.ready;
  }

  /** Resolves (never rejects) once the prober answers, or shortly after the timeout if it does not. */
  probe(proto: Proto, host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
    if (this.exited) return Promise.resolve({ ok: false, error: this.exited });
    const id = this.nextId++;
    return new Promise<ProbeResult>((resolve) => {
      // Safety net in case the prober is stuck; it normally answers within timeoutMs itself.
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve({ ok: false, error: 'prober did not answer' });
      }, timeoutMs + 2000);
      this.pending.set(id, { resolve, timer });
      this.child.stdin!.write(JSON.stringify({ id, proto, host, port, timeoutMs }) + '\n');
    });
  }
}

export interface ClusterOptions {
  podCidr?: string;
}

/** Which node each pod lives on: an index into the nodes the matrix is spread over. */
export type Placement = (pod: PodName) => number;

/** Pod a on node 0, b on node 1, c on node 2: every namespace spans three nodes. */
export const BY_POD: Placement = (p) => PODS.indexOf(splitPod(p).pod);

/**
 * The nine pods, their probers and echo servers, on one node (`create`) or spread over the
 * nodes of a cluster (`spread`). Policy goes in through `node` (the first node); with several
 * nodes, `converged` waits until every node holds what that node holds.
 */
export class Cluster {
  readonly pods = new Map<PodName, Endpoint>();
  readonly probers = new Map<PodName, Prober>();

  private constructor(
    /** The nodes the pods live on; one for `create`. */
    readonly nodes: readonly TestNode[],
    private readonly placement: Placement,
    private readonly teardown: () => Promise<void>,
  ) {}

  /** The node policies are imported through (and, on one node, the only one). */
  get node(): TestNode {
    return this.nodes[0]!;
  }

  /** The matrix on a node of its own, removed by `cleanup`. */
  static async create(opts: ClusterOptions = {}): Promise<Cluster> {
    const node = await TestNode.create({ podCidr: opts.podCidr ?? '10.220.0.0/24' });
    return Cluster.populate(new Cluster([node], () => 0, () => node.cleanup()));
  }

  /**
   * The matrix over the nodes of a cluster that already exists (joined through etcd): pod P
   * lives on nodes[placement(P)]. Resolves once every node knows every pod's address and
   * identity. `cleanup` leaves the nodes to their owner (their cleanup ends the pods' processes).
   */
  static async spread(nodes: readonly TestNode[], placement: Placement): Promise<Cluster> {
    for (const p of ALL_PODS) {
      if (nodes[placement(p)] === undefined) throw new Error(`placement puts ${p} on node ${placement(p)}, of ${nodes.length}`);
    }
    return Cluster.populate(new Cluster(nodes, placement, async () => undefined));
  }

  private static async populate(cluster: Cluster): Promise<Cluster> {
    const node = cluster.node;
    try {
      for (const ns of NAMESPACES) await node.api.setNamespace(ns, [`ns=${ns}`]);
      if (cluster.nodes.length > 1) {
        await cluster.until('every node has namespaces x, y, z', async (n) => {
          const names = new Set((await n.api.listNamespaces()).map((x) => x.name));
          return NAMESPACES.every((ns) => names.has(ns));
        });
      }
      // The agent serializes endpoint changes, so adding them one by one costs nothing.
      for (const p of ALL_PODS) {
        const { namespace, pod } = splitPod(p);
        const ep = await cluster.nodeOf(p).api.addEndpoint({ namespace, name: pod, labels: [`pod=${pod}`], ports: POD_PORTS });
        cluster.pods.set(p, ep);
      }
      if (cluster.nodes.length > 1) {
        // Remote pods are classified by the ipcache (native routing) and selected by their identity's labels.
        await cluster.until("every node knows every pod's address and identity", async (n) => {
          const [ipcache, identities] = await Promise.all([n.api.listIpcache(), n.api.listIdentities()]);
          const byPrefix = new Map(ipcache.map((r) => [r.prefix, r.identity]));
          const known = new Set(identities.map((i) => i.id));
          return [...cluster.pods.values()].every((ep) => byPrefix.get(`${ep.ipv4}/32`) === ep.identity && known.has(ep.identity));
        });
      }
      await Promise.all(
        ALL_PODS.map(async (p) => {
          const ep = cluster.endpoint(p);
          const host = cluster.nodeOf(p);
          const prober = new Prober(host.spawnIn(ep.netns, ['node', proberPath]), p);
          cluster.probers.set(p, prober);
          await Promise.all([host.echoServer(ep.netns, ...SERVED_PORTS), prober.waitReady()]);
        }),
      );
    } catch (err) {
      await cluster.cleanup();
      throw err;
    }
    return cluster;
  }

  /** The node pod `p` lives on. */
  nodeOf(p: PodName): TestNode {
    return this.nodes[this.placement(p)]!;
  }

  endpoint(p: PodName): Endpoint {
    const ep = this.pods.get(p);
    if (!ep) throw new Error(`no endpoint for ${p}`);
    return ep;
  }

  prober(p: PodName): Prober {
    const pr = this.probers.get(p);
    if (!pr) throw new Error(`no prober for ${p}`);
    return pr;
  }

  /**
   * Resolves once every other node lists the policies the first node lists (a node realizes a
   * policy change in the same step that makes it list it); at once on one node.
   */
  async converged(): Promise<void> {
    if (this.nodes.length < 2) return;
    const digest = async (n: TestNode) =>
      JSON.stringify(
        (await n.api.listPolicies()).policies
          .map((p) => [p.kind, p.namespace ?? '', p.name, p.source] as const)
          .sort((a, b) => `${a[0]}/${a[1]}/${a[2]}`.localeCompare(`${b[0]}/${b[1]}/${b[2]}`)),
      );
    const want = await digest(this.node);
    await this.until('every node holds the policies of the first', async (n) => (await digest(n)) === want);
  }

  /** Polls `ok` on every node until it holds on all of them (20 s in all). */
  private async until(what: string, ok: (n: TestNode) => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (const n of this.nodes) {
      while (!(await ok(n))) {
        if (Date.now() > deadline) throw new Error(`${what}: not on ${n.name} within 20 s`);
        await sleep(50);
      }
    }
  }

  async cleanup(): Promise<void> {
    await this.teardown();
  }
}

export interface PeerFilter {
  namespace?: string;
  pod?: string;
}

function matches(p: PodName, f: PeerFilter): boolean {
  const { namespace, pod } = splitPod(p);
  return (f.namespace === undefined || f.namespace === namespace) && (f.pod === undefined || f.pod === pod);
}

/** Expected or observed reachability over the 9x9 pod pairs for one port and protocol. */
export class Reachability {
  private readonly cells: boolean[];
  /** Optional per-pair notes (the probe error for observed matrices). */
  private readonly notes = new Map<string, string>();

  constructor(defaultExpect: boolean) {
    this.cells = new Array<boolean>(ALL_PODS.length * ALL_PODS.length).fill(defaultExpect);
  }

  private idx(from: PodName, to: PodName): number {
    return podIndex(from) * ALL_PODS.length + podIndex(to);
  }

  expect(from: PodName, to: PodName, ok: boolean): this {
    this.cells[this.idx(from, to)] = ok;
    return this;
  }

  /** Every source, including `to` itself. */
  expectAllIngress(to: PodName, ok: boolean): this {
    for (const from of ALL_PODS) this.expect(from, to, ok);
    return this;
  }

  /** Every destination, including `from` itself. */
  expectAllEgress(from: PodName, ok: boolean): this {
    for (const to of ALL_PODS) this.expect(from, to, ok);
    return this;
  }

  expectPeers(fromFilter: PeerFilter, toFilter: PeerFilter, ok: boolean): this {
    for (const from of ALL_PODS) {
      if (!matches(from, fromFilter)) continue;
      for (const to of ALL_PODS) if (matches(to, toFilter)) this.expect(from, to, ok);
    }
    return this;
  }

  /** Sets every pod -> itself pair reachable (not applied automatically). */
  allowSelf(): this {
    for (const p of ALL_PODS) this.expect(p, p, true);
    return this;
  }

  get(from: PodName, to: PodName): boolean {
    return this.cells[this.idx(from, to)]!;
  }

  note(from: PodName, to: PodName, text?: string): string | undefined {
    const key = `${from}>${to}`;
    if (text !== undefined) this.notes.set(key, text);
    return this.notes.get(key);
  }

  counts(): { reachable: number; blocked: number } {
    const reachable = this.cells.filter(Boolean).length;
    return { reachable, blocked: this.cells.length - reachable };
  }
}

export interface ProbeAllOptions {
  port: number;
  proto: Proto;
  /** Per attempt; a failed probe is retried once, so a blocked pair costs up to twice this. */
  timeoutMs?: number;
}

/** Probes all 81 pairs concurrently, each from the source pod's prober to the destination's IPv4. */
export async function probeAll(cluster: Cluster, opts: ProbeAllOptions): Promise<Reachability> {
  const timeoutMs = opts.timeoutMs ?? 500;
  const observed = new Reachability(false);
  await Promise.all(
    ALL_PODS.flatMap((from) =>
      ALL_PODS.map(async (to) => {
        const prober = cluster.prober(from);
        const host = cluster.endpoint(to).ipv4;
        let r = await prober.probe(opts.proto, host, opts.port, timeoutMs);
        // One retry absorbs a lost first UDP datagram or a slow neighbour resolution.
        if (!r.ok) r = await prober.probe(opts.proto, host, opts.port, timeoutMs);
        observed.expect(from, to, r.ok);
        if (!r.ok && r.error) observed.note(from, to, r.error);
      }),
    ),
  );
  return observed;
}

const mark = (ok: boolean): string => (ok ? '.' : 'X');

/** Rows = from, columns = to; each cell shows the observed value, `*` where it differs from expected. */
export function formatTable(expected: Reachability, observed: Reachability): string {
  const w = 4;
  const header = ' '.repeat(w) + ALL_PODS.map((p) => p.padEnd(w)).join('');
  const rows = ALL_PODS.map((from) => {
    const cells = ALL_PODS.map((to) => {
      const o = observed.get(from, to);
      return (mark(o) + (o === expected.get(from, to) ? '' : '*')).padEnd(w);
    });
    return from.padEnd(w) + cells.join('');
  });
  return [header, ...rows].map((l) => l.trimEnd()).join('\n');
}

export function assertReachability(expected: Reachability, observed: Reachability, context: string): void {
  const wrong: string[] = [];
  for (const from of ALL_PODS) {
    for (const to of ALL_PODS) {
      const e = expected.get(from, to);
      const o = observed.get(from, to);
      if (e === o) continue;
      const note = observed.note(from, to);
      wrong.push(
        `${from} -> ${to}: expected ${e ? 'reachable' : 'blocked'}, got ${o ? 'reachable' : 'blocked'}${note ? ` (${note})` : ''}`,
      );
    }
  }
  if (wrong.length === 0) return;
  const message = [
    `${context}: ${wrong.length} of ${ALL_PODS.length ** 2} pairs differ from the expectation`,
    ...wrong,
    '',
    'observed (rows = from, columns = to; . reachable, X blocked, * differs from expected):',
    formatTable(expected, observed),
  ].join('\n');
  // No actual/expected objects: the table says it all, and reporters would dump 81 booleans twice.
  throw new AssertionError({ message, operator: 'reachability' });
}
