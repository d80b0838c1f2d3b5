/* The node registry: every agent of a cluster puts its node under
 * membrane/state/nodes/v1/<cluster>/<name>, held by its lease, and watches everyone's. A node
 * that dies stops renewing its lease and etcd removes its entry after the TTL; its heartbeat
 * (the entry put again every HEARTBEAT_MS) says how long ago it was last heard of meanwhile.
 * Two rules keep the cluster sane, checked at start, before the agent touches anything:
 *  - a name belongs to one running agent: an entry under another live lease refuses the start
 *    (a restart of the same node adopts its own lease, so it is never refused);
 *  - pod CIDRs do not overlap: of two nodes whose CIDRs overlap, the one registered first
 *    (lower create revision) keeps its place and the other withdraws, so two nodes racing to
 *    start cannot both succeed. */
import type { Logger } from 'pino';
import { StartupError, errorMessage } from '../errors.js';
import { cidrInside, parseCidr } from '../net/ipv4.js';
import type { EtcdStore, StoredKey } from '../store/etcd.js';

export interface ClusterNode {
  name: string;
  /** Underlay IPv4 address: where the other nodes reach it. */
  ip: string;
  podCIDR: string;
  labels: Record<string, string>;
  health: 'ok' | 'degraded';
  endpoints: number;
  /** When the node last put its entry (ISO time). */
  heartbeat: string;
  version: string;
  /**
   * Port of the node's Observer for its peers, on `ip`, mutual TLS only (--hubble-peer-address);
   * absent when it serves none. Relays read flows there.
   */
  observerPort?: number;
}

/** What the registry needs to know of its own node, asked at every heartbeat. */
export interface LocalNodeSource {
  health(): ClusterNode['health'];
  endpoints(): number;
}

export interface NodeListener {
  nodeChanged?(node: ClusterNode): void;
  nodeRemoved?(name: string): void;
}

const HEARTBEAT_MS = 10_000;

export const nodesPrefix = (cluster: string) => `membrane/state/nodes/v1/${cluster}/`;

const overlaps = (a: string, b: string) => {
  const x = parseCidr(a);
  const y = parseCidr(b);
  return cidrInside(x, y) || cidrInside(y, x);
};

function parseNode(value: string): ClusterNode | undefined {
  try {
    const n = JSON.parse(value) as ClusterNode;
    return typeof n.name === 'string' && typeof n.ip === 'string' && typeof n.podCIDR === 'string' ? n : undefined;
  } catch {
    return undefined;
  }
}

export class NodeRegistry {
  private readonly nodes = new Map<string, ClusterNode>();
  private heartbeat?: NodeJS.Timeout;
  private stopWatch?: () => void;
  listener?: NodeListener;

  constructor(
    private readonly kv: EtcdStore,
    private readonly cluster: string,
    private self: Omit<ClusterNode, 'health' | 'endpoints' | 'heartbeat'>,
    private readonly local: LocalNodeSource,
    private readonly log: Logger,
  ) {}

  get name(): string {
    return this.self.name;
  }

  private get key(): string {
    return nodesPrefix(this.cluster) + this.self.name;
  }

  private entry(): ClusterNode {
    return { ...this.self, health: this.local.health(), endpoints: this.local.endpoints(), heartbeat: new Date().toISOString() };
  }

  /** Registers this node (see the rules above), then follows every node of the cluster. */
  async join(): Promise<void> {
    const prefix = nodesPrefix(this.cluster);
    // Checked before registering too, so that a refused node never shows up on the others;
    // checked again after, for two nodes that start at the same time.
    await this.refuseOverlap(prefix, undefined);
    const mine = JSON.stringify(this.entry());
    const { created, value } = await this.kv.createIfAbsent(this.key, mine, true);
    if (!created) {
      const holder = await this.kv.leaseOf(this.key);
      if (holder !== undefined && holder !== this.kv.lease) {
        const other = parseNode(value);
        throw new StartupError(
          `node name ${this.self.name} is taken by a running agent${other ? ` at ${other.ip}` : ''} (etcd lease ${holder}): give this node another --node-name, or stop that agent and wait for its lease to expire`,
        );
      }
      await this.kv.putLeased(this.key, mine);
    }
    await this.refuseOverlap(prefix, this.key);
    this.stopWatch = await this.kv.watchPrefix(prefix, {
      put: (key, v) => {
        const node = parseNode(v);
        if (!node) return this.log.warn({ key }, 'ignored a malformed node entry in etcd');
        this.nodes.set(node.name, node);
        this.listener?.nodeChanged?.(node);
      },
      delete: (key) => {
        const name = key.slice(prefix.length);
        if (this.nodes.delete(name)) {
          this.log.info({ peer: name }, 'node left the cluster (its lease expired or it was removed)');
          this.listener?.nodeRemoved?.(name);
        }
      },
    });
    this.heartbeat = setInterval(() => void this.beat(), HEARTBEAT_MS);
    this.heartbeat.unref();
    this.log.info({ nodes: this.nodes.size, lease: this.kv.lease }, 'joined the cluster');
  }

  /** Refuses the start when another node's pod CIDR overlaps ours (withdrawing our entry, if made). */
  private async refuseOverlap(prefix: string, registered: string | undefined): Promise<void> {
    const { kvs } = await this.kv.list(prefix);
    const me = kvs.find((kv) => kv.key === registered);
    const clash = kvs.find((kv) => kv.key !== this.key && this.firstOverlapping(kv, me));
    if (!clash) return;
    if (registered) await this.kv.deleteLeased(registered).catch(() => undefined);
    const other = parseNode(clash.value)!;
    throw new StartupError(`--pod-cidr ${this.self.podCIDR} overlaps node ${other.name}'s ${other.podCIDR}: give this node a pod CIDR of its own`);
  }

  /** An entry of another node that overlaps ours and was there first. */
  private firstOverlapping(other: StoredKey, me: StoredKey | undefined): boolean {
    const node = parseNode(other.value);
    if (!node || !overlaps(node.podCIDR, this.self.podCIDR)) return false;
    return me === undefined || other.createRevision < me.createRevision;
  }

  /** Puts this node's entry again: its heartbeat, health and endpoint count. */
  async beat(): Promise<void> {
    try {
      await this.kv.putLeased(this.key, JSON.stringify(this.entry()));
    } catch (err) {
      this.log.debug({ err: errorMessage(err) }, 'node heartbeat not written (etcd unreachable)');
    }
  }

  /**
   * Adds what this node serves to its entry once it listens (the Observer's peer port, known
   * after the bind) and puts the entry at once, so peers need not wait for the next heartbeat.
   */
  async advertise(extra: Pick<ClusterNode, 'observerPort'>): Promise<void> {
    this.self = { ...this.self, ...extra };
    await this.beat();
  }

  list(): ClusterNode[] {
    const nodes = new Map(this.nodes);
    if (!nodes.has(this.self.name)) nodes.set(this.self.name, this.entry());
    return [...nodes.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  get(name: string): ClusterNode | undefined {
    return this.nodes.get(name);
  }

  stop(): void {
    clearInterval(this.heartbeat);
    this.stopWatch?.();
  }
}
