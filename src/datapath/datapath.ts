/* The agent's view of the kernel datapath: loads the endpoint object with its maps pinned
 * under the agent's bpffs directory, attaches endpoints with pinned tcx links, and writes map
 * contents by difference. The writer keeps a mirror of what it realized, read back from the
 * pinned maps at start, so a restarted agent writes only what changed. */
import fs from 'node:fs';
import path from 'node:path';
import { BpfObject } from '../kernel/bpf-object.js';
import type { BpfMap } from '../kernel/bpf-map.js';
import { TypedMap } from './typed-map.js';
import { createTcxLinkAsync, ensureTcxLink, removePinnedLink } from '../kernel/bpf-link.js';
import {
  agentPortKey,
  agentPortValue,
  configKey,
  ctKey,
  ctValue,
  datapathConfig,
  endpointInfo,
  endpointKey,
  ipcacheKey,
  lxcKey,
  ipcacheValue,
  OBJECT_MAPS,
  ROUTING_MODE,
  RULE,
  type EndpointMap,
  metricsKey,
  metricsValue,
  policyKey,
  policyValue,
  snatKey,
  snatValue,
} from './layouts.js';
import { offsetsOf, type StructValue } from './struct.js';
import { addStats, MapMirror, type StructEntry, type SyncStats } from './mirror.js';
import { probeDatapathClock, type DatapathClock } from '../kernel/jiffies.js';

export const ENDPOINT_OBJECT = 'endpoint.o';
const PROGRAMS = { fromEndpoint: 'from_endpoint', toEndpoint: 'to_endpoint' } as const;

/** Desired contents of the maps the agent owns (whole, or the part that changed). */
export interface DesiredDatapath {
  ipcache: StructEntry<typeof ipcacheKey, typeof ipcacheValue>[];
  endpoints: StructEntry<typeof endpointKey, typeof endpointInfo>[];
  lxc: StructEntry<typeof lxcKey, typeof endpointInfo>[];
}

export type PolicyMapEntry = StructEntry<typeof policyKey, typeof policyValue>;

/**
 * How traffic leaves the node: ROUTING_MODE, the VXLAN device's ifindex in tunnel mode, the
 * address endpoints' traffic leaving the cluster is masqueraded to ('0.0.0.0': none), and in
 * native routing the underlay device that traffic between nodes is forwarded through by hand
 * (0: by the node's routes).
 */
export type Routing = Pick<StructValue<typeof datapathConfig>, 'routing_mode' | 'tunnel_ifindex' | 'snat_ipv4' | 'underlay_ifindex'>;

export interface DatapathChange {
  upsert: DesiredDatapath;
  remove: {
    ipcache: Partial<StructValue<typeof ipcacheKey>>[];
    endpoints: Partial<StructValue<typeof endpointKey>>[];
    lxc: Partial<StructValue<typeof lxcKey>>[];
  };
}

const CT_VALUE = offsetsOf(ctValue);
const METRICS_KEY = offsetsOf(metricsKey);

export class Datapath {
  readonly ipcache;
  readonly endpoints;
  readonly lxc;
  readonly metrics;
  readonly policy;
  readonly ct;
  /** BPF masquerading's NAT table (bpf/include/snat.h). */
  readonly snat;
  readonly config;
  readonly events: BpfMap;
  private readonly agentPortsMirror;
  private readonly eventsLostMap: BpfMap;
  private readonly ipcacheMirror;
  private readonly endpointsMirror;
  private readonly lxcMirror;
  private policyMirror;
  private readonly linkDir: string;

  private constructor(
    private readonly obj: BpfObject,
    readonly bpffsDir: string,
  ) {
    const map = (name: EndpointMap) => obj.map(name);
    this.ipcache = new TypedMap(map('mb_ipcache'), ipcacheKey, ipcacheValue);
    this.endpoints = new TypedMap(map('mb_endpoints'), endpointKey, endpointInfo);
    this.lxc = new TypedMap(map('mb_lxc'), lxcKey, endpointInfo);
    this.metrics = new TypedMap(map('mb_metrics'), metricsKey, metricsValue);
    this.policy = new TypedMap(map('mb_policy'), policyKey, policyValue);
    this.ct = new TypedMap(map('mb_ct'), ctKey, ctValue);
    this.snat = new TypedMap(map('mb_snat'), snatKey, snatValue);
    this.config = new TypedMap(map('mb_config'), configKey, datapathConfig);
    this.events = map('mb_events');
    this.eventsLostMap = map('mb_events_lost');
    this.policyMirror = new MapMirror(this.policy, (key) => key.readUInt32LE(4)); // grouped by ep_id
    this.ipcacheMirror = new MapMirror(this.ipcache);
    this.endpointsMirror = new MapMirror(this.endpoints);
    this.lxcMirror = new MapMirror(this.lxc);
    this.agentPortsMirror = new MapMirror(new TypedMap(map('mb_agent_ports'), agentPortKey, agentPortValue));
    this.linkDir = path.join(bpffsDir, 'links');
    fs.mkdirSync(this.linkDir, { recursive: true });
    // Continue the revision an earlier agent left, so its connections stay judged, and its
    // routing, so traffic to other nodes keeps its way until the agent configures it again.
    const realized = this.config.get({ index: 0 });
    this.settings = {
      aggregation: 3,
      report_interval: 5,
      fast_path: 1,
      ipcache_revision: realized?.ipcache_revision ?? 0,
      ns_per_jiffy: this.clock.nsPerJiffy,
      routing_mode: realized?.routing_mode ?? ROUTING_MODE.NATIVE,
      tunnel_ifindex: realized?.tunnel_ifindex ?? 0,
      snat_ipv4: realized?.snat_ipv4 ?? '0.0.0.0',
      underlay_ifindex: realized?.underlay_ifindex ?? 0,
    };
  }

  private settings: StructValue<typeof datapathConfig>;
  /** Connection tracking's clock: what CT timestamps are compared with. */
  readonly clock: DatapathClock = probeDatapathClock();

  static load(objectDir: string, bpffsDir: string, sizes: { policyMapMax?: number } = {}): Datapath {
    const obj = BpfObject.load(path.join(objectDir, ENDPOINT_OBJECT), {
      pinDir: path.join(bpffsDir, 'maps'),
      progPinDir: path.join(bpffsDir, 'progs'),
      ...(sizes.policyMapMax ? { maxEntries: { mb_policy: sizes.policyMapMax } } : {}),
      // Every map of the object, the service maps too: the tc programs translate what the socket hooks did not.
      maps: OBJECT_MAPS.endpoint,
      programs: Object.values(PROGRAMS),
    });
    return new Datapath(obj, bpffsDir);
  }

  get adoptedMaps(): readonly string[] {
    return this.obj.adoptedMaps;
  }

  get replacedMaps(): readonly string[] {
    return this.obj.replacedMaps;
  }

  /** The endpoint object's version (content hash). */
  get objectVersion(): string {
    return this.obj.version;
  }

  /** True when the programs an earlier agent verified (same object file) were adopted, not loaded again. */
  get programsAdopted(): boolean {
    return this.obj.programsAdopted;
  }

  /** Pins of the two links of an endpoint (`ep<ID>`) or of a pooled interface (`pool<slot>`). */
  private linkPaths(owner: string): { ingress: string; egress: string } {
    return {
      ingress: path.join(this.linkDir, `${owner}-from-endpoint`),
      egress: path.join(this.linkDir, `${owner}-to-endpoint`),
    };
  }

  /** Attaches (or re-adopts) both endpoint programs; returns true when both links existed. */
  attachEndpoint(epId: number, ifindex: number): boolean {
    const pins = this.linkPaths(`ep${epId}`);
    const a = ensureTcxLink(pins.ingress, this.obj.programFd(PROGRAMS.fromEndpoint), ifindex, 'ingress');
    const b = ensureTcxLink(pins.egress, this.obj.programFd(PROGRAMS.toEndpoint), ifindex, 'egress');
    return a && b;
  }

  /** Attaches both programs to a new interface, off the main thread. */
  private async attachNew(owner: string, ifindex: number): Promise<void> {
    const pins = this.linkPaths(owner);
    await createTcxLinkAsync(pins.ingress, this.obj.programFd(PROGRAMS.fromEndpoint), ifindex, 'ingress');
    await createTcxLinkAsync(pins.egress, this.obj.programFd(PROGRAMS.toEndpoint), ifindex, 'egress');
  }

  private removeLinks(owner: string): void {
    const pins = this.linkPaths(owner);
    removePinnedLink(pins.ingress);
    removePinnedLink(pins.egress);
  }

  attachNewEndpoint(epId: number, ifindex: number): Promise<void> {
    return this.attachNew(`ep${epId}`, ifindex);
  }

  /** Attaches both programs to an interface kept ready for a future endpoint. */
  attachPooled(slot: number, ifindex: number): Promise<void> {
    return this.attachNew(`pool${slot}`, ifindex);
  }

  removePooledLinks(slot: number): void {
    this.removeLinks(`pool${slot}`);
  }

  /** A pooled interface becomes endpoint `epId`'s: its link pins take the endpoint's names. */
  claimPooled(slot: number, epId: number): void {
    const from = this.linkPaths(`pool${slot}`);
    const to = this.linkPaths(`ep${epId}`);
    fs.renameSync(from.ingress, to.ingress);
    fs.renameSync(from.egress, to.egress);
  }

  detachEndpoint(epId: number): void {
    this.removeLinks(`ep${epId}`);
  }

  /**
   * Removes what the programs wrote about a deleted endpoint: its connections and drop counters.
   * The walk reads the endpoint ids in place (a busy node has 100,000s of connections) and
   * copies only the keys it deletes.
   */
  forgetEndpoint(epId: number): number {
    const ct: Buffer[] = [];
    this.ct.raw.forEach((k, v) => {
      if (v.readUInt32LE(CT_VALUE.egress_ep_id) === epId || v.readUInt32LE(CT_VALUE.ingress_ep_id) === epId) ct.push(Buffer.from(k));
    });
    const counters: Buffer[] = [];
    this.metrics.raw.forEach((k) => {
      if (k.readUInt32LE(METRICS_KEY.ep_id) === epId) counters.push(Buffer.from(k));
    });
    this.ct.raw.deleteMany(ct);
    this.metrics.raw.deleteMany(counters);
    return ct.length + counters.length;
  }

  /** Removes link pins of endpoints that no longer exist (left by a crash mid-delete). */
  removeStaleLinks(liveIds: Set<number>): string[] {
    const removed: string[] = [];
    for (const f of fs.readdirSync(this.linkDir)) {
      // Endpoint links of endpoints that are gone, and links of pooled interfaces (the pool is
      // made anew); other pins (the socket hooks' cgroup links) are not the endpoints' business.
      const m = /^(ep|pool)(\d+)-/.exec(f);
      if (m && (m[1] === 'pool' || !liveIds.has(Number(m[2])))) {
        fs.rmSync(path.join(this.linkDir, f), { force: true });
        removed.push(f);
      }
    }
    return removed;
  }

  /** Makes the maps equal to `desired` (after a restart: everything else is stale). */
  sync(desired: DesiredDatapath): SyncStats {
    // Endpoints first: a new endpoint's interface is known before its address resolves to it.
    const stats = addStats(
      addStats(this.endpointsMirror.sync(desired.endpoints), this.lxcMirror.sync(desired.lxc)),
      this.ipcacheMirror.sync(desired.ipcache),
    );
    this.noteIpcacheChange();
    return stats;
  }

  /** Applies one change; cost depends on the size of the change, not of the state. */
  update(change: DatapathChange): SyncStats {
    const stats = addStats(
      addStats(
        this.endpointsMirror.update(change.upsert.endpoints, change.remove.endpoints),
        this.lxcMirror.update(change.upsert.lxc, change.remove.lxc),
      ),
      this.ipcacheMirror.update(change.upsert.ipcache, change.remove.ipcache),
    );
    this.noteIpcacheChange();
    return stats;
  }

  /**
   * Writes the settings the programs read on every packet (the ipcache revision is the
   * datapath's own; routing is set apart, by configureRouting).
   */
  configure(settings: Omit<StructValue<typeof datapathConfig>, 'ipcache_revision' | 'ns_per_jiffy' | keyof Routing>): void {
    this.settings = { ...this.settings, ...settings, ns_per_jiffy: this.clock.nsPerJiffy };
    this.config.set({ index: 0 }, this.settings);
  }

  /** How traffic leaves: to other nodes' endpoints natively routed or encapsulated, out of the cluster masqueraded or not. */
  configureRouting(routing: Partial<Routing>): void {
    this.settings = { ...this.settings, ...routing };
    this.config.set({ index: 0 }, this.settings);
  }

  /**
   * An address that changed identity or left the ipcache makes tracked connections read their
   * peer's identity again (and be judged again) — a relabelled peer loses what its old labels
   * allowed, also on connections already open.
   */
  private noteIpcacheChange(): void {
    if (this.ipcacheMirror.lastReplacedOrDeleted === 0) return;
    this.settings.ipcache_revision = (this.settings.ipcache_revision + 1) >>> 0;
    this.config.set({ index: 0 }, this.settings);
  }

  /** The agent's own listener ports (TCP): endpoints' new connections to them on the node are dropped. */
  protectAgentPorts(ports: number[]): SyncStats {
    return this.agentPortsMirror.sync(ports.map((port) => [{ port, protocol: 6 }, { rule_id: RULE.AGENT_PORTS }]));
  }

  /** Events the programs could not put into the ring buffer, summed over CPUs. */
  eventsLost(): number {
    const v = this.eventsLostMap.lookup(Buffer.alloc(4));
    let sum = 0n;
    if (v) for (let off = 0; off + 8 <= v.length; off += 8) sum += v.readBigUInt64LE(off);
    return Number(sum);
  }

  /** Makes endpoint `epId`'s policy entries exactly `entries`. */
  writePolicy(epId: number, entries: PolicyMapEntry[]): SyncStats {
    return this.policyMirror.replaceGroup(epId, entries);
  }

  get policyCapacity(): number {
    return this.policy.raw.info.maxEntries;
  }

  /** After a failed write: the policy mirror reads back what the kernel really holds. */
  reloadPolicyMirror(): void {
    this.policyMirror = new MapMirror(this.policy, (key) => key.readUInt32LE(4));
  }

  /** Endpoints that have policy entries in the map. */
  policyEndpointIds(): number[] {
    return this.policyMirror.groupIds();
  }

  /** Endpoint entries as realized in the map (state an earlier agent left). */
  realizedEndpoints(): Map<number, StructValue<typeof endpointInfo>> {
    const out = new Map<number, StructValue<typeof endpointInfo>>();
    for (const [, v] of this.endpointsMirror.values()) out.set(v.ep_id, v);
    return out;
  }

  pressure(): { map: string; entries: number; maxEntries: number; pressure: number }[] {
    const rows: [BpfMap, number][] = [
      [this.ipcache.raw, this.ipcacheMirror.size],
      [this.endpoints.raw, this.endpointsMirror.size],
      [this.lxc.raw, this.lxcMirror.size],
      [this.policy.raw, this.policyMirror.size],
      [this.ct.raw, this.ct.raw.count()],
      [this.metrics.raw, this.metrics.raw.count()],
    ];
    return rows.map(([m, n]) => ({
      map: m.name,
      entries: n,
      maxEntries: m.info.maxEntries,
      pressure: Math.round((n / m.info.maxEntries) * 10000) / 10000,
    }));
  }

  close(): void {
    this.obj.close();
  }
}
