/* Where endpoints and policy become map entries: the desired datapath (every endpoint's entries,
 * the node's own addresses, the policies' CIDR prefixes) is computed from the endpoints, the
 * identities and the policy realizer, and handed to the datapath writer, which writes only what
 * differs. After a restart the whole desired state is compared with the pinned maps (resync);
 * after a change only the entries of the endpoints it touched, and of those whose policy changed
 * with it (endpointsChanged, policyChanged).
 *
 * Policy entries are written first (by the realizer), so an endpoint's entry never points at
 * policy that is not there yet. A policy CIDR never replaces the ipcache entry of an endpoint or
 * of the node. */
import type { Logger } from 'pino';
import type { Datapath, DatapathChange, DesiredDatapath } from '../datapath/datapath.js';
import { ipcacheKeyFor } from '../datapath/ipcache.js';
import { IPCACHE_FLAGS } from '../datapath/layouts.js';
import type { SyncStats } from '../datapath/mirror.js';
import type { EndpointChanges } from '../endpoint/manager.js';
import type { Endpoint } from '../endpoint/types.js';
import { IDENTITY_HOST, IDENTITY_WORLD, MIN_ALLOCATED_IDENTITY, RESERVED_IDENTITIES } from '../identity/reserved.js';
import { ipToInt } from '../net/ipv4.js';
import type { PolicyIdentity, RemoteEndpoint } from '../policy/engine.js';
import type { PolicyPlan, PolicyRealizer } from '../policy/realize.js';
import type { RuleSet } from '../policy/repository.js';

/** What the reconciler reads of the endpoints (the endpoint manager). */
export interface EndpointSource {
  listEndpoints(): Endpoint[];
  endpointById(id: number): Endpoint | undefined;
  /** Allocated identities with their labels (reserved ones are the reconciler's). */
  allocatedIdentities(): PolicyIdentity[];
  allocatedLabels(id: number): string[] | undefined;
}

/** The node's own addresses: the router address and the node's interfaces'. */
export interface NodeAddresses {
  router: string;
  nodeAddresses: string[];
}

/**
 * An address the cluster knows beyond this node, as the ipcache holds it: another node's
 * endpoint, another node's pod CIDR or underlay address. `tunnelEndpoint` is the node hosting it,
 * that the datapath encapsulates to (tunnel mode) or forwards to by hand (native routing);
 * without it (a node's own address) the packet is routed by the node's stack.
 */
export interface RemotePeer {
  prefix: string;
  identity: number;
  tunnelEndpoint?: string;
}

/** Where the remote peers come from (the cluster's shared ipcache and node registry). */
export interface RemoteSource {
  peers(): RemotePeer[];
  /** The peers' prefixes, kept between changes: asked on every local change, thousands of peers or not. */
  prefixes(): ReadonlySet<string>;
}

/** Marked as the cluster's: the datapath never masquerades traffic to it. */
const remoteEntry = (p: RemotePeer): DesiredDatapath['ipcache'][number] => [
  ipcacheKeyFor(p.prefix),
  { identity: p.identity, flags: IPCACHE_FLAGS.CLUSTER, ...(p.tunnelEndpoint ? { tunnel_endpoint: p.tunnelEndpoint } : {}) },
];

function appendEntries(into: DesiredDatapath, from: DesiredDatapath): void {
  into.ipcache.push(...from.ipcache);
  into.endpoints.push(...from.endpoints);
  into.lxc.push(...from.lxc);
}

/** Told which endpoints had their datapath state rewritten (regenerated), or failed to (for agent events); optional. */
export interface RegenerationListener {
  regenerated(endpoints: Endpoint[], error?: Error): void;
}

export class DatapathReconciler implements EndpointChanges {
  /** The CIDR prefixes the ipcache holds for policies, with their identities. */
  private realizedCidrs = new Map<string, number>();
  /** Endpoints by address, for the flow decoder; rebuilt after every change. */
  private byIp = new Map<number, Endpoint>();
  private readonly listeners: (() => void)[] = [];
  private readonly remoteListeners: (() => void)[] = [];
  /** Remote batches not logged yet (see logRemote). */
  private readonly remoteLog: SyncStats & { batches: number; reason: string; timer?: NodeJS.Timeout } = { batches: 0, written: 0, deleted: 0, unchanged: 0, reason: '' };
  regeneration?: RegenerationListener;
  /** In a cluster: the other nodes' endpoints and nodes (set before the first resync). */
  remote?: RemoteSource;
  policyRegenerations = 0;
  lastSync: SyncStats & { at: string; reason: string } = { written: 0, deleted: 0, unchanged: 0, at: '', reason: '' };

  constructor(
    private readonly endpoints: EndpointSource,
    private readonly node: NodeAddresses,
    private readonly datapath: Datapath,
    private readonly policy: PolicyRealizer,
    private readonly log: Logger,
  ) {}

  /** Makes the maps equal to the whole desired state (after a restart: everything else is stale). */
  resync(reason: string): void {
    this.regeneratePolicy();
    this.realizedCidrs = this.policyCidrs();
    this.regenerating(this.endpoints.listEndpoints(), () => this.recordSync(reason, this.datapath.sync(this.desired())));
  }

  /**
   * Rewrites the entries of `changed` endpoints (and of every endpoint whose policy changed)
   * and removes those of `removed` ones.
   */
  endpointsChanged(reason: string, changed: Endpoint[], removed: Endpoint[] = [], planned?: PolicyPlan): void {
    const policyChanged = this.regeneratePolicy(planned);
    const touched = new Map(changed.map((e) => [e.id, e]));
    for (const id of policyChanged) {
      const ep = this.endpoints.endpointById(id);
      if (ep) touched.set(id, ep);
    }
    const upsert: DesiredDatapath = { ipcache: [], endpoints: [], lxc: [] };
    for (const ep of touched.values()) appendEntries(upsert, this.entriesOf(ep));
    const cidrs = this.policyCidrs();
    const owned = this.ownedPrefixes();
    for (const [prefix, identity] of cidrs) {
      if (this.realizedCidrs.get(prefix) !== identity) upsert.ipcache.push([ipcacheKeyFor(prefix), { identity }]);
    }
    const remove: DatapathChange['remove'] = {
      ipcache: [
        ...removed.map((ep) => ipcacheKeyFor(`${ep.ipv4}/32`)),
        ...[...this.realizedCidrs.keys()].filter((p) => !cidrs.has(p) && !owned.has(p)).map((p) => ipcacheKeyFor(p)),
      ],
      endpoints: removed.filter((ep) => ep.ifindex > 0).map((ep) => ({ ifindex: ep.ifindex })),
      lxc: removed.map((ep) => ({ ipv4: ep.ipv4 })),
    };
    this.realizedCidrs = new Map(cidrs);
    this.regenerating([...touched.values()], () => this.recordSync(reason, this.datapath.update({ upsert, remove })));
  }

  /** Runs a datapath write for `endpoints` and tells the regeneration listener how it went. */
  private regenerating(endpoints: Endpoint[], write: () => void): void {
    try {
      write();
    } catch (err) {
      if (endpoints.length) this.regeneration?.regenerated(endpoints, err as Error);
      throw err;
    }
    if (endpoints.length) this.regeneration?.regenerated(endpoints);
  }

  /** Computes policy for a prospective rule set against the current endpoints (nothing changes). */
  planPolicy(ruleSet: RuleSet): PolicyPlan {
    return this.policy.plan(this.endpoints.listEndpoints(), this.endpoints.allocatedIdentities(), ruleSet, true, this.remoteEndpoints);
  }

  /** Realizes policy after the repository changed (`planned`: computed for it beforehand). */
  policyChanged(reason: string, planned?: PolicyPlan): void {
    this.endpointsChanged(reason, [], [], planned);
  }

  /**
   * The cluster's remote peers changed: writes the ipcache entries of `changed` ones, removes
   * those of `removed` prefixes (unless a local owner or a policy CIDR keeps the prefix), and
   * realizes policy again when an ipBlock selects endpoints by address.
   */
  remoteChanged(reason: string, changed: RemotePeer[], removed: string[]): void {
    // Only this node's own prefixes can outrank a remote one (the cluster's are the ones changing):
    // O(local endpoints) per batch, however many remote endpoints the cluster has.
    const owned = this.ownedPrefixes(false);
    const released = removed.filter((p) => !owned.has(p));
    // A prefix a policy CIDR also names goes back to the CIDR's identity rather than away.
    const toCidr = released.filter((p) => this.realizedCidrs.has(p));
    this.recordSync(
      reason,
      this.datapath.update({
        upsert: {
          ipcache: [...changed.map(remoteEntry), ...toCidr.map((p): DesiredDatapath['ipcache'][number] => [ipcacheKeyFor(p), { identity: this.realizedCidrs.get(p)! }])],
          endpoints: [],
          lxc: [],
        },
        remove: { ipcache: released.filter((p) => !this.realizedCidrs.has(p)).map((p) => ipcacheKeyFor(p)), endpoints: [], lxc: [] },
      }),
      true,
    );
    // An ipBlock selects the other nodes' endpoints by address: who is inside it may have changed.
    if (this.policy.dependsOnRemoteEndpoints()) this.endpointsChanged(`${reason} (ipBlocks select remote endpoints)`, []);
  }

  /** After a failed policy write: re-read the policy map and realize the repository again. */
  repairPolicy(reason: string): void {
    this.datapath.reloadPolicyMirror();
    this.endpointsChanged(reason, []);
  }

  /** Everything the maps should hold: node entries, policy CIDRs, and every endpoint's. */
  desired(): DesiredDatapath {
    const desired: DesiredDatapath = {
      ipcache: [
        [ipcacheKeyFor('0.0.0.0/0'), { identity: IDENTITY_WORLD }],
        [ipcacheKeyFor(`${this.node.router}/32`), { identity: IDENTITY_HOST }],
        ...this.node.nodeAddresses.map((a): DesiredDatapath['ipcache'][number] => [ipcacheKeyFor(`${a}/32`), { identity: IDENTITY_HOST }]),
        ...[...this.realizedCidrs].map(([prefix, identity]): DesiredDatapath['ipcache'][number] => [ipcacheKeyFor(prefix), { identity }]),
        ...(this.remote?.peers() ?? []).map(remoteEntry),
      ],
      endpoints: [],
      lxc: [],
    };
    for (const ep of this.endpoints.listEndpoints()) appendEntries(desired, this.entriesOf(ep));
    return desired;
  }

  /** By IPv4 address as a host-order integer. */
  endpointByIp(ip: number): Endpoint | undefined {
    return this.byIp.get(ip);
  }

  /** Labels of any identity: reserved, allocated or a policy's CIDR identity. */
  identityLabels(id: number): string[] {
    id = this.policy.baseIdentity(id); // an address identity carries its identity's labels
    const reserved = RESERVED_IDENTITIES.find((r) => r.id === id);
    if (reserved) return [`reserved:${reserved.name}`];
    const allocated = this.endpoints.allocatedLabels(id);
    if (allocated) return allocated;
    for (const [prefix, cid] of this.realizedCidrs) if (cid === id) return [`cidr:${prefix}`, 'reserved:world'];
    return [];
  }

  /** Called after every change to this node's endpoints or policy (what the node publishes, services' backends). */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /**
   * Called after a change to the other nodes' endpoints only (services' backends follow them).
   * Kept apart from onChange: in a busy cluster remote changes come by the thousand per second,
   * and nothing of this node (its published endpoints, its flow index) changes with them.
   */
  onRemoteChange(listener: () => void): void {
    this.remoteListeners.push(listener);
  }

  /** The map entries one endpoint owns. */
  private entriesOf(ep: Endpoint): DesiredDatapath {
    const { flags, revision } = this.policy.state(ep.id);
    // The datapath judges peers by the identity policy sees them by (see AddressIdentities).
    const identity = this.policy.policyIdentityOf(ep);
    const info = { ep_id: ep.id, identity, ipv4: ep.ipv4, flags, mac: ep.mac, node_mac: ep.hostMac, policy_revision: revision, ifindex: ep.ifindex, cluster_identity: ep.identity };
    const ready = ep.ifindex > 0;
    return {
      ipcache: [[ipcacheKeyFor(`${ep.ipv4}/32`), { identity }]],
      endpoints: ready ? [[{ ifindex: ep.ifindex }, info]] : [],
      lxc: ready ? [[{ ipv4: ep.ipv4 }, info]] : [],
    };
  }

  private regeneratePolicy(planned?: PolicyPlan): Set<number> {
    const r = this.policy.regenerate(this.endpoints.listEndpoints(), this.endpoints.allocatedIdentities(), planned, this.remoteEndpoints);
    this.policyRegenerations++;
    return r.changed;
  }

  /** The other nodes' endpoints (policy's ipBlocks select them by address): their /32s with an allocated identity. */
  private readonly remoteEndpoints = (): RemoteEndpoint[] =>
    (this.remote?.peers() ?? [])
      .filter((p) => p.identity >= MIN_ALLOCATED_IDENTITY && p.prefix.endsWith('/32'))
      .map((p) => ({ identity: p.identity, ipv4: p.prefix.slice(0, -3) }));

  /** Addresses the ipcache holds for endpoints and the nodes: a policy CIDR never replaces them. */
  private ownedPrefixes(withRemote = true): { has(prefix: string): boolean } {
    const local = new Set([
      `${this.node.router}/32`,
      ...this.node.nodeAddresses.map((a) => `${a}/32`),
      ...this.endpoints.listEndpoints().map((e) => `${e.ipv4}/32`),
    ]);
    const remote = withRemote ? this.remote?.prefixes() : undefined;
    return { has: (prefix) => local.has(prefix) || (remote?.has(prefix) ?? false) };
  }

  private policyCidrs(): Map<string, number> {
    const owned = this.ownedPrefixes();
    return new Map([...this.policy.cidrs()].filter(([prefix]) => !owned.has(prefix)));
  }

  private recordSync(reason: string, stats: SyncStats, remoteOnly = false): void {
    if (!remoteOnly) this.byIp = new Map(this.endpoints.listEndpoints().map((e) => [ipToInt(e.ipv4), e]));
    this.lastSync = { ...stats, at: new Date().toISOString(), reason };
    if (remoteOnly) this.logRemote(reason, stats);
    else this.log.debug({ ...stats, reason }, 'datapath synced');
    for (const l of remoteOnly ? this.remoteListeners : this.listeners) l();
  }

  /**
   * Remote batches come by the hundred per second in a busy cluster: a debug line each made a
   * debug log unreadable and cost a node 13 % of its CPU in bench/cluster's churn (a synchronous
   * write per line, at the debug level the test harness runs agents at).
   * The first batch after a quiet second is logged at once, the rest in one line a second.
   */
  private logRemote(reason: string, stats: SyncStats): void {
    if (!this.log.isLevelEnabled('debug')) return;
    const r = this.remoteLog;
    if (!r.timer) {
      this.log.debug({ ...stats, reason }, 'datapath synced');
      r.timer = setTimeout(() => {
        const { batches, written, deleted, unchanged, reason: last } = r;
        Object.assign(r, { batches: 0, written: 0, deleted: 0, unchanged: 0, timer: undefined });
        if (batches) this.log.debug({ batches, written, deleted, unchanged, reason: last }, 'datapath synced (remote changes in the last second)');
      }, 1000);
      r.timer.unref();
      return;
    }
    r.batches++;
    r.written += stats.written;
    r.deleted += stats.deleted;
    r.unchanged += stats.unchanged;
    r.reason = reason;
  }
}
