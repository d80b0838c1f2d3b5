/* The cluster's ipcache: every agent publishes its endpoints under
 * membrane/state/ip/v1/<cluster>/<ip> (held by its lease, so a dead node's endpoints expire)
 * and follows everyone's. What it learns of other nodes — their endpoints (address, identity,
 * hosting node, and the namespace, name and labels that flows show), their underlay addresses
 * (remote-node) and their pod CIDRs — becomes ipcache entries through the reconciler, with the
 * hosting node as tunnel endpoint: the node the datapath encapsulates to in tunnel mode, and
 * forwards to by hand in native routing.
 *
 * Publishing diffs against what this node last wrote (seeded from etcd at start, so an endpoint
 * deleted while the agent was down is withdrawn); entries are small JSON objects, one key each,
 * so one endpoint change is one etcd write and one watch event on every other node. */
import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';
import type { Endpoint } from '../endpoint/types.js';
import type { FlowPeer } from '../flow/decoder.js';
import { IDENTITY_REMOTE_NODE, IDENTITY_WORLD } from '../identity/reserved.js';
import { ipToInt, parseCidr } from '../net/ipv4.js';
import { routerAddress } from '../endpoint/ipam.js';

const routerOf = (podCidr: string) => routerAddress(parseCidr(podCidr));
import type { RemotePeer, RemoteSource } from '../reconcile/datapath.js';
import type { EtcdStore } from '../store/etcd.js';
import type { ClusterNode } from './node-registry.js';

/** One endpoint as the shared ipcache holds it. */
export interface SharedEndpoint {
  ip: string;
  identity: number;
  node: string;
  namespace: string;
  name: string;
  labels: string[];
}

export const ipcachePrefix = (cluster: string) => `membrane/state/ip/v1/${cluster}/`;

function parseEntry(value: string): SharedEndpoint | undefined {
  try {
    const e = JSON.parse(value) as SharedEndpoint;
    return typeof e.ip === 'string' && typeof e.identity === 'number' && typeof e.node === 'string' && Array.isArray(e.labels) ? e : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Remote endpoints repeat a few values (their node, namespace, label set) thousands of times;
 * JSON.parse makes a fresh copy of each. Holding one copy keeps memory per remote endpoint small.
 */
class Interner {
  private readonly strings = new Map<string, string>();
  private readonly lists = new Map<string, string[]>();
  string(s: string): string {
    const have = this.strings.get(s);
    if (have !== undefined) return have;
    this.strings.set(s, s);
    return s;
  }
  list(l: string[]): string[] {
    const key = l.join('\n');
    const have = this.lists.get(key);
    if (have) return have;
    this.lists.set(key, l);
    return l;
  }
}

/** What the shared ipcache tells: remote peers that appeared or changed, and prefixes gone. */
export type PeersListener = (reason: string, changed: RemotePeer[], removed: string[]) => void;

export class SharedIpcache implements RemoteSource {
  /** What this node has written, by address (the JSON, to write only differences). */
  private readonly published = new Map<string, string>();
  private readonly remote = new Map<string, SharedEndpoint>();
  private readonly remoteByInt = new Map<number, SharedEndpoint>();
  private readonly nodes = new Map<string, ClusterNode>();
  private readonly intern = new Interner();
  private stopWatch?: () => void;
  /** The peers' prefixes until the next change (see prefixes()). */
  private peerPrefixes?: Set<string>;
  listener?: PeersListener;

  constructor(
    private readonly kv: EtcdStore,
    private readonly cluster: string,
    private readonly self: string,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const prefix = ipcachePrefix(this.cluster);
    this.stopWatch = await this.kv.watchPrefix(prefix, {
      put: (_key, value) => {
        const parsed = parseEntry(value);
        if (!parsed) return;
        if (parsed.node === this.self) {
          this.published.set(parsed.ip, value);
          return;
        }
        const e: SharedEndpoint = {
          ip: parsed.ip,
          identity: parsed.identity,
          node: this.intern.string(parsed.node),
          namespace: this.intern.string(parsed.namespace),
          name: parsed.name,
          labels: this.intern.list(parsed.labels),
        };
        this.remote.set(e.ip, e);
        this.peerPrefixes = undefined;
        this.remoteByInt.set(ipToInt(e.ip), e);
        const peer = this.endpointPeer(e);
        if (peer) this.listener?.('remote endpoint changed', [peer], []);
      },
      delete: (key) => {
        const ip = key.slice(prefix.length);
        const e = this.remote.get(ip);
        if (!e) return;
        this.remote.delete(ip);
        this.peerPrefixes = undefined;
        this.remoteByInt.delete(ipToInt(ip));
        this.listener?.('remote endpoint gone', [], [`${ip}/32`]);
      },
    });
  }

  stop(): void {
    this.stopWatch?.();
  }

  /** Writes this node's endpoints as they are now: only what changed since the last call. */
  async publish(local: Endpoint[]): Promise<void> {
    const prefix = ipcachePrefix(this.cluster);
    const now = new Map(
      local.map((ep) => {
        const entry: SharedEndpoint = { ip: ep.ipv4, identity: ep.identity, node: this.self, namespace: ep.namespace, name: ep.name, labels: ep.labels };
        return [ep.ipv4, JSON.stringify(entry)];
      }),
    );
    const writes: Promise<void>[] = [];
    for (const [ip, value] of now) {
      if (this.published.get(ip) === value) continue;
      this.published.set(ip, value);
      writes.push(this.kv.putLeased(prefix + ip, value));
    }
    for (const ip of [...this.published.keys()]) {
      if (now.has(ip)) continue;
      this.published.delete(ip);
      writes.push(this.kv.deleteLeased(prefix + ip));
    }
    // A failed write is retried by the store when etcd answers again.
    const failed = (await Promise.allSettled(writes)).filter((r) => r.status === 'rejected');
    if (failed.length) this.log.warn({ failed: failed.length, err: errorMessage((failed[0] as PromiseRejectedResult).reason) }, 'endpoints not yet published to the cluster (etcd unreachable); written when it answers');
  }

  /** The node registry's news: a node's address and pod CIDR become (or stop being) peers. */
  nodeChanged(node: ClusterNode): void {
    if (node.name === this.self) return;
    const old = this.nodes.get(node.name);
    this.nodes.set(node.name, node);
    if (old && old.ip === node.ip && old.podCIDR === node.podCIDR) return; // a heartbeat
    this.peerPrefixes = undefined;
    const keep = new Set(this.nodePeers(node).map((p) => p.prefix));
    const removed = old ? this.nodePeers(old).map((p) => p.prefix).filter((p) => !keep.has(p)) : [];
    // The node's endpoints wait for their node to be known (to forward to it) and follow its address.
    const moved = !old || old.ip !== node.ip ? [...this.remote.values()].filter((e) => e.node === node.name).map((e) => this.endpointPeer(e)!) : [];
    this.listener?.(`node ${node.name} changed`, [...this.nodePeers(node), ...moved], removed);
  }

  nodeRemoved(name: string): void {
    const old = this.nodes.get(name);
    if (!old) return;
    this.nodes.delete(name);
    this.peerPrefixes = undefined;
    this.listener?.(`node ${name} left`, [], this.nodePeers(old).map((p) => p.prefix));
  }

  prefixes(): ReadonlySet<string> {
    this.peerPrefixes ??= new Set(this.peers().map((p) => p.prefix));
    return this.peerPrefixes;
  }

  peers(): RemotePeer[] {
    const out: RemotePeer[] = [];
    for (const node of this.nodes.values()) out.push(...this.nodePeers(node));
    for (const e of this.remote.values()) {
      const peer = this.endpointPeer(e);
      if (peer) out.push(peer);
    }
    return out;
  }

  /** For flows: another node's endpoint by address (a host-order integer). */
  endpointByIp(ip: number): FlowPeer | undefined {
    const e = this.remoteByInt.get(ip);
    return e ? { id: 0, identity: e.identity, namespace: e.namespace, name: e.name, labels: e.labels } : undefined;
  }

  /** Remote endpoints, for `ipcache list` and tests. */
  remoteEndpoints(): SharedEndpoint[] {
    return [...this.remote.values()];
  }

  private nodePeers(node: ClusterNode): RemotePeer[] {
    return [
      { prefix: `${node.ip}/32`, identity: IDENTITY_REMOTE_NODE },
      // The node's router address (the first of its pod CIDR) is the node too, reached like its pods.
      { prefix: `${routerOf(node.podCIDR)}/32`, identity: IDENTITY_REMOTE_NODE, tunnelEndpoint: node.ip },
      // Addresses of the node's pod CIDR that no endpoint holds yet still go to that node.
      { prefix: node.podCIDR, identity: IDENTITY_WORLD, tunnelEndpoint: node.ip },
    ];
  }

  /** An endpoint's entry; undefined while its node is not known (no address to forward to). */
  private endpointPeer(e: SharedEndpoint): RemotePeer | undefined {
    const node = this.nodes.get(e.node);
    return node && { prefix: `${e.ip}/32`, identity: e.identity, tunnelEndpoint: node.ip };
  }
}
