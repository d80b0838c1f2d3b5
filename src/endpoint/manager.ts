/* Endpoint and namespace lifecycle. Every change is validated completely first, then applied
 * to the kernel (namespaces, interfaces, links), then committed to the store in one write; a
 * failure part-way undoes what was done, so the agent's accepted state never half-exists. Then
 * the reconciler (EndpointChanges, src/reconcile/datapath.ts) makes the maps follow. */
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Endpoint, EndpointAddRequest, Namespace } from './types.js';
import type { Datapath } from '../datapath/datapath.js';
import { conflict, invalid, notFound, quoted } from '../errors.js';
import { identityLabels } from '../identity/filter.js';
import { LocalIdentityAllocator, type AllocatedIdentity, type IdentityListener } from '../identity/allocator.js';
import type { IdentityNumbering } from '../identity/cluster-numbering.js';
import {
  endpointLabels,
  formatLabel,
  namespaceLabels,
  NAMESPACE_NAME_LABEL,
  parseLabel,
  parseEndpointLabels,
  parseUserLabels,
  isDerivedKey,
  type Label,
} from '../identity/labels.js';
import { RESERVED_IDENTITIES } from '../identity/reserved.js';
import type { Netlink } from '../kernel/netlink.js';
import { attachNetns, ifindexOf, isNetns, NETNS_NAME_MAX, netnsIdentity, netnsPath, withNetns } from '../kernel/netns.js';
import type { Store } from '../store/store.js';
import { poolNetnsPattern, type InterfacePool } from './pool.js';
import type { Ipam } from './ipam.js';
import { plumb, plumbPrewired, randomMac, setEndpointMtu, unplumb, WORKLOAD_IFNAME } from './plumbing.js';
import { PendingAdds } from './pending.js';
import { parseNamedPorts, validateEndpointName, validateNamespaceName } from './validate.js';

const MAX_ENDPOINT_ID = 65535;

export interface ManagerConfig {
  nodeName: string;
  cluster: string;
  ipam: Ipam;
  /** Where adds in progress are recorded (see pending.ts). */
  stateDir: string;
  /** MTU of endpoints' interfaces (see Plumbing.mtu); the kernel's default when absent. */
  mtu?: number;
}

/** Room kept in a namespace name for the suffix that makes it unique (`-<id>-<n>`). */
const NETNS_SUFFIX_ROOM = 16;

/** Marks the name the agent gives a process's namespace (`<node>.attached-<ns>-<name>`). */
const ATTACHED_NETNS_MARK = '.attached';

type StoredEndpoint = Omit<Endpoint, 'ifindex' | 'state' | 'stateReason'>;

const K = {
  ns: (name: string) => `namespaces/${name}`,
  ep: (id: number) => `endpoints/${id}`,
  identity: (id: number) => `identities/${id}`,
  nextEndpointId: 'meta/next-endpoint-id',
  identityCursor: 'meta/identity-cursor',
};

/**
 * Who makes the datapath follow the endpoints (the reconciler, a higher layer): told after
 * every change that was committed, and once after a restart.
 */
export interface EndpointChanges {
  endpointsChanged(reason: string, changed: Endpoint[], removed?: Endpoint[]): void;
  resync(reason: string): void;
}

/** Told after an endpoint was added or deleted (for agent events); optional. */
export interface EndpointListener {
  endpointCreated?(ep: Endpoint): void;
  endpointDeleted?(ep: Endpoint): void;
}

export class EndpointManager {
  private readonly endpoints = new Map<number, Endpoint>();
  private readonly namespaces = new Map<string, Record<string, string>>();
  private readonly allocator: LocalIdentityAllocator;
  private nextEndpointId: number;
  private readonly pending: PendingAdds;
  /** Makes the datapath follow: set once, before restore() (src/reconcile/datapath.ts). */
  changes!: EndpointChanges;
  listener?: EndpointListener;

  /** In a cluster: identity numbers come from the cluster (set before restore). */
  set numbering(numbering: IdentityNumbering | undefined) {
    this.cluster = numbering;
    this.allocator.numbering = numbering;
  }
  private cluster?: IdentityNumbering;

  /** Told when identities are allocated and released. */
  set identityListener(listener: IdentityListener | undefined) {
    this.allocator.listener = listener;
  }

  constructor(
    private readonly cfg: ManagerConfig,
    private readonly store: Store,
    private readonly nl: Netlink,
    private readonly datapath: Datapath,
    private readonly log: Logger,
  ) {
    this.pending = new PendingAdds(path.join(cfg.stateDir, 'pending'));
    for (const [key, ns] of store.list<{ labels: Record<string, string> }>('namespaces/')) {
      this.namespaces.set(key.slice('namespaces/'.length), ns.labels);
    }
    const identities = store.list<{ labels: string[] }>('identities/').map(([key, v]) => ({
      id: Number(key.slice('identities/'.length)),
      labels: v.labels,
    }));
    this.allocator = new LocalIdentityAllocator(identities, store.get<number>(K.identityCursor));
    this.nextEndpointId = store.get<number>(K.nextEndpointId) ?? 1;
    for (const [, ep] of store.list<StoredEndpoint>('endpoints/')) {
      this.endpoints.set(ep.id, { ...ep, ifindex: 0, state: 'not-ready', stateReason: 'restoring' });
      this.cfg.ipam.claim(ep.ipv4);
      this.allocator.acquire(ep.identityLabels.map((l) => parseLabel(l)));
    }
  }

  /**
   * After a restart: re-plumb what is missing, re-adopt pinned links (swapping in the new
   * programs), and write only map differences. Endpoints and identities keep their numbers.
   */
  async restore(): Promise<void> {
    this.allocator.releaseUnused();
    const live = new Set(this.endpoints.keys());
    const removed = this.datapath.removeStaleLinks(live);
    if (removed.length) this.log.info({ removed }, 'removed pinned links of endpoints that no longer exist');
    await this.removeUnfinishedAdds();
    await this.removeStrayInterfaces();
    // Endpoints plumbed before the node's MTU changed (e.g. it joined a cluster in tunnel mode).
    const mtus = this.cfg.mtu ? new Map((await this.nl.links()).map((l) => [l.name, l.mtu])) : undefined;
    for (const ep of this.endpoints.values()) {
      try {
        let ifindex = ifindexOf(ep.interface);
        if (!ifindex || !this.nl.netnsExists(ep.netns)) {
          this.log.warn({ endpoint: ep.id }, 'endpoint plumbing is missing; recreating it');
          // Neither the namespace nor its name goes: not ours to remove, and a name given to a
          // process's namespace cannot be made again once removed.
          await unplumb(this.nl, { ...ep, netnsOwned: false, netnsAttached: false });
          ifindex = await plumb(this.nl, { ...ep, routerIP: this.cfg.ipam.router, mtu: this.cfg.mtu }, (i) => this.datapath.attachNewEndpoint(ep.id, i));
        }
        const mtu = mtus?.get(ep.interface);
        if (this.cfg.mtu && mtu !== undefined && mtu !== this.cfg.mtu) {
          await setEndpointMtu(this.nl, ep, this.cfg.mtu);
          this.log.info({ endpoint: ep.id, from: mtu, to: this.cfg.mtu }, 'endpoint MTU changed');
        }
        const adopted = this.datapath.attachEndpoint(ep.id, ifindex);
        Object.assign(ep, { ifindex, state: 'ready', stateReason: undefined });
        this.log.debug({ endpoint: ep.id, adopted }, 'endpoint restored');
      } catch (err) {
        Object.assign(ep, { state: 'not-ready', stateReason: (err as Error).message });
        this.log.error({ endpoint: ep.id, err: (err as Error).message }, 'could not restore endpoint');
      }
    }
    this.changes.resync('restore');
  }

  /** What adds interrupted by the agent's death created before their endpoint was committed. */
  private async removeUnfinishedAdds(): Promise<void> {
    for (const p of this.pending.leftovers()) {
      const committed = this.endpoints.get(p.id);
      if (!committed || committed.netns !== p.netns) {
        this.log.info({ endpoint: p.id, netns: p.netnsOwned ? p.netns : undefined, interface: p.interface }, 'removing what an interrupted endpoint add created');
        await unplumb(this.nl, p).catch((err: Error) => this.log.warn({ endpoint: p.id, err: err.message }, 'could not remove what an interrupted endpoint add created'));
      }
      this.pending.done(p.id);
    }
  }

  /** Interfaces prepared ahead of endpoint adds (set once the pool exists, after restore). */
  pool?: InterfacePool;

  /** lxc* interfaces in the node namespace that no endpoint owns (a crash between plumbing and commit, or a pool). */
  private async removeStrayInterfaces(): Promise<void> {
    const pooled = poolNetnsPattern(this.cfg.nodeName);
    for (const name of fs.existsSync('/run/netns') ? fs.readdirSync('/run/netns') : []) {
      if (pooled.test(name)) await this.nl.deleteNetns(name); // a pool made by an earlier agent
    }
    const mine = new Set([...this.endpoints.values()].map((e) => e.interface));
    for (const link of await this.nl.links()) {
      if (/^lxcp?\d+$/.test(link.name) && !mine.has(link.name)) {
        this.log.info({ interface: link.name }, 'removing interface left by an interrupted endpoint add or a pool');
        // Its peer's namespace may be going away right now, taking the pair with it.
        await this.nl.apply([{ op: 'delete-link', name: link.name }]).catch((err: Error) => {
          if (ifindexOf(link.name)) this.log.warn({ interface: link.name, err: err.message }, 'could not remove a stray interface');
        });
      }
    }
  }

  // ---- namespaces ----

  async setNamespace(name: string, labelsText: string[] | undefined): Promise<Namespace> {
    validateNamespaceName(name);
    const labels = namespaceLabels(name, parseUserLabels(labelsText));
    const affected = [...this.endpoints.values()].filter((e) => e.namespace === name);
    for (const ep of affected) await this.cluster?.resolve(identityLabels(endpointLabels(this.userLabels(ep), { name, labels }, this.cfg.cluster)));
    const relabelled = affected.map((ep) => this.relabel(ep, this.userLabels(ep), { name, labels }));
    const changes = this.identityChanges(relabelled);
    this.store.commit({
      put: {
        [K.ns(name)]: { labels },
        ...changes.put,
        ...Object.fromEntries(relabelled.map((r) => [K.ep(r.ep.id), this.stored(r.ep)])),
        [K.identityCursor]: this.allocator.nextCursor,
      },
      delete: changes.delete,
    });
    this.namespaces.set(name, labels);
    this.changes.endpointsChanged(`namespace ${name} set`, affected);
    return this.namespaceView(name);
  }

  /** Refuses what setNamespace would refuse, changing nothing (checked before a cluster hears of it). */
  checkNamespace(name: string, labelsText: string[] | undefined): void {
    validateNamespaceName(name);
    parseUserLabels(labelsText);
  }

  /** Refuses what deleteNamespace would refuse, changing nothing. */
  checkNamespaceDeletable(name: string): void {
    if (!this.namespaces.has(name)) throw notFound(`namespace ${quoted(name)} does not exist`);
    const n = [...this.endpoints.values()].filter((e) => e.namespace === name).length;
    if (n > 0) throw conflict(`namespace "${name}" still has ${n} endpoint(s): delete them first`);
  }

  /** A namespace's labels as given by the user (without the one the agent derives), if it exists. */
  namespaceUserLabels(name: string): string[] | undefined {
    const labels = this.namespaces.get(name);
    if (!labels) return undefined;
    return Object.entries(labels)
      .filter(([k]) => k !== NAMESPACE_NAME_LABEL)
      .map(([k, v]) => `${k}=${v}`)
      .sort();
  }

  deleteNamespace(name: string): void {
    this.checkNamespaceDeletable(name);
    this.store.commit({ delete: [K.ns(name)] });
    this.namespaces.delete(name);
  }

  listNamespaces(): Namespace[] {
    return [...this.namespaces.keys()].sort().map((n) => this.namespaceView(n));
  }

  private namespaceView(name: string): Namespace {
    const labels = this.namespaces.get(name) ?? {};
    return { name, labels, endpoints: [...this.endpoints.values()].filter((e) => e.namespace === name).length };
  }

  // ---- endpoints ----

  async addEndpoint(req: EndpointAddRequest): Promise<Endpoint> {
    validateNamespaceName(req.namespace);
    validateEndpointName(req.name);
    const nsLabels = this.namespaces.get(req.namespace);
    if (!nsLabels) {
      throw notFound(`namespace "${req.namespace}" does not exist: create it with 'membrane namespace set ${req.namespace}'`);
    }
    if (this.find(req.namespace, req.name)) {
      throw conflict(`endpoint ${req.namespace}/${req.name} already exists: names are unique per namespace`);
    }
    const userLabels = parseEndpointLabels(req.labels);
    const ports = parseNamedPorts(req.ports);
    const given = req.netns === undefined ? undefined : this.givenNetns(req.netns);
    // The agent names the namespace unless it was given by name: a namespace it made, or a
    // process's it was given by path (marked, so that `make clean-run` leaves its processes alone).
    const netnsBase = given?.name ?? `${this.cfg.nodeName}${given?.attach ? ATTACHED_NETNS_MARK : ''}-${req.namespace}-`;
    if (!given?.name) {
      const longest = NETNS_NAME_MAX - NETNS_SUFFIX_ROOM - netnsBase.length;
      if (req.name.length > longest) {
        throw invalid(
          `endpoint name ${quoted(req.name, 40)} has ${req.name.length} characters, at most ${Math.max(0, longest)} fit here: its network namespace is named ${netnsBase}NAME, and namespace names are at most ${NETNS_NAME_MAX} bytes (shorten the name${given ? '' : ', or wire your own namespace with --netns'})`,
        );
      }
    }
    const labels = endpointLabels(userLabels, { name: req.namespace, labels: nsLabels }, this.cfg.cluster);
    const idLabels = identityLabels(labels);
    await this.cluster?.resolve(idLabels); // before anything is taken: it may wait for etcd
    const ipv4 = this.cfg.ipam.allocate(req.ipv4);
    const id = this.allocateEndpointId();
    const identity = this.allocator.acquire(idLabels);
    const ep: Endpoint = {
      id,
      namespace: req.namespace,
      name: req.name,
      labels: labels.map(formatLabel),
      identityLabels: idLabels.map(formatLabel),
      identity: identity.id,
      ipv4,
      ports,
      netns: given?.name ?? this.freeNetnsName(`${netnsBase}${req.name}`, id),
      netnsOwned: given === undefined,
      ...(given?.attach ? { netnsAttached: true } : {}),
      interface: `lxc${id}`,
      ifindex: 0,
      mac: randomMac(),
      hostMac: randomMac(),
      state: 'not-ready',
      createdAt: new Date().toISOString(),
    };
    const t0 = performance.now();
    const phases: Record<string, number> = {};
    const lap = (name: string) => (phases[name] = Math.round((performance.now() - t0) * 100) / 100);
    // A namespace of its own can come from the pool, already wired with the programs attached.
    const prewired = ep.netnsOwned ? this.pool?.take() : undefined;
    if (prewired) Object.assign(ep, { mac: prewired.mac, hostMac: prewired.hostMac });
    this.pending.begin({ id, netns: ep.netns, netnsOwned: ep.netnsOwned, netnsAttached: ep.netnsAttached, interface: ep.interface });
    try {
      if (given?.attach) attachNetns(given.attach, ep.netns);
      if (prewired) {
        this.datapath.claimPooled(prewired.slot, id);
        ep.ifindex = await plumbPrewired(this.nl, { ...ep, routerIP: this.cfg.ipam.router, mtu: this.cfg.mtu }, prewired);
      } else {
        ep.ifindex = await plumb(this.nl, { ...ep, routerIP: this.cfg.ipam.router, mtu: this.cfg.mtu }, (ifindex) => this.datapath.attachNewEndpoint(id, ifindex));
      }
      lap(prewired ? 'plumbed (prepared)' : 'plumbed');
      ep.state = 'ready';
      this.endpoints.set(id, ep);
      this.store.commit({
        put: {
          [K.ep(id)]: this.stored(ep),
          [K.identity(identity.id)]: { labels: identity.labels },
          [K.nextEndpointId]: this.nextEndpointId,
          [K.identityCursor]: this.allocator.nextCursor,
        },
      });
      lap('committed');
    } catch (err) {
      this.endpoints.delete(id);
      this.datapath.detachEndpoint(id);
      await unplumb(this.nl, ep).catch((e: Error) => this.log.error({ err: e.message }, 'rollback of endpoint plumbing failed'));
      if (prewired) await unplumb(this.nl, { interface: prewired.hostName, netns: prewired.netns, netnsOwned: true }).catch(() => undefined);
      this.cfg.ipam.release(ipv4);
      this.allocator.release(identity.id);
      this.pending.done(id);
      throw err;
    }
    this.pending.done(id);
    // Created (committed) before regenerated, as Cilium tells it, whatever the datapath says next.
    this.listener?.endpointCreated?.(ep);
    this.changes.endpointsChanged(`endpoint ${ep.namespace}/${ep.name} added`, [ep]);
    lap('synced');
    this.log.debug({ endpoint: id, ms: phases }, 'endpoint added');
    return ep;
  }

  /**
   * The namespace `--netns` names: a name of `ip netns` (or its path, /run/netns/NAME), or the
   * path of a process's namespace (/proc/PID/ns/net), which the agent names itself
   * (`<node>.attached-<ns>-<name>`) and unnames on delete. Checked before anything changes.
   */
  private givenNetns(text: string): { name?: string; attach?: string } {
    const named = /^\/run\/netns\/([^/]+)$/.exec(text)?.[1] ?? (text.startsWith('/') ? undefined : text);
    if (named !== undefined && !/^[A-Za-z0-9][-A-Za-z0-9_.]{0,254}$/.test(named)) throw invalid(`--netns ${quoted(text)} is not a valid namespace name`);
    if (named !== undefined && !this.nl.netnsExists(named)) {
      throw notFound(`network namespace "${named}" does not exist: create it with 'ip netns add ${named}' or omit --netns`);
    }
    const nsPath = named === undefined ? text : netnsPath(named);
    if (named === undefined && !isNetns(nsPath)) {
      throw invalid(`--netns ${quoted(text)} is not a network namespace: give a name (ip netns list), /run/netns/NAME or /proc/PID/ns/net`);
    }
    this.refuseSharedNetns(nsPath, named ?? text);
    if (withNetns(nsPath, () => ifindexOf(WORKLOAD_IFNAME))) {
      throw conflict(`network namespace ${quoted(named ?? text)} already has an interface ${WORKLOAD_IFNAME}: remove it or let the agent create the namespace`);
    }
    return named !== undefined ? { name: named } : { attach: nsPath };
  }

  /**
   * Refuses a namespace that is not the workload's alone: the node's own (the agent's), the
   * machine's root namespace, or one another endpoint uses under any name. Wiring an endpoint
   * there replaces that namespace's default route and takes the node (or the machine) off the
   * network.
   */
  private refuseSharedNetns(nsPath: string, name: string): void {
    const target = netnsIdentity(nsPath);
    if (target === netnsIdentity('/proc/self/ns/net')) {
      throw conflict(`network namespace "${name}" is the node's own namespace, where the agent runs: an endpoint needs a namespace of its own (omit --netns)`);
    }
    if (target === netnsIdentity('/proc/1/ns/net')) {
      throw conflict(`network namespace "${name}" is the machine's root namespace: an endpoint needs a namespace of its own (omit --netns)`);
    }
    const user = [...this.endpoints.values()].find((e) => e.netns === name || netnsIdentity(netnsPath(e.netns)) === target);
    if (user) throw conflict(`network namespace "${name}" is already wired to endpoint ${user.namespace}/${user.name}`);
  }

  /**
   * The name of the namespace the agent creates for an endpoint: `<node>-<ns>-<name>`, unless
   * something already has it — another endpoint (`a-b/c` and `a/b-c` read the same), or a
   * namespace the agent did not make for this endpoint, which it must never delete — in which
   * case the endpoint ID makes it unique.
   */
  private freeNetnsName(base: string, id: number): string {
    const taken = (n: string) => this.nl.netnsExists(n) || [...this.endpoints.values()].some((e) => e.netns === n);
    if (!taken(base)) return base;
    for (let i = 0; ; i++) {
      const name = i === 0 ? `${base}-${id}` : `${base}-${id}-${i}`;
      if (!taken(name)) return name;
    }
  }

  async updateEndpoint(namespace: string, name: string, labelsText: string[]): Promise<Endpoint> {
    const ep = this.mustFind(namespace, name);
    const userLabels = parseEndpointLabels(labelsText);
    const nsLabels = this.namespaces.get(namespace) ?? {};
    await this.cluster?.resolve(identityLabels(endpointLabels(userLabels, { name: namespace, labels: nsLabels }, this.cfg.cluster)));
    const r = this.relabel(ep, userLabels, { name: namespace, labels: nsLabels });
    const changes = this.identityChanges([r]);
    this.store.commit({
      put: { [K.ep(ep.id)]: this.stored(ep), [K.identityCursor]: this.allocator.nextCursor, ...changes.put },
      delete: changes.delete,
    });
    this.changes.endpointsChanged(`endpoint ${namespace}/${name} relabelled`, [ep]);
    return ep;
  }

  async deleteEndpoint(namespace: string, name: string): Promise<void> {
    const ep = this.mustFind(namespace, name);
    this.endpoints.delete(ep.id);
    this.changes.endpointsChanged(`endpoint ${namespace}/${name} deleted`, [], [ep]);
    this.datapath.detachEndpoint(ep.id);
    await unplumb(this.nl, ep);
    this.datapath.forgetEndpoint(ep.id);
    this.cfg.ipam.release(ep.ipv4);
    this.allocator.release(ep.identity);
    const stillUsed = this.allocator.get(ep.identity) !== undefined;
    this.store.commit({ delete: [K.ep(ep.id), ...(stillUsed ? [] : [K.identity(ep.identity)])] });
    this.listener?.endpointDeleted?.(ep);
  }

  listEndpoints(): Endpoint[] {
    return [...this.endpoints.values()].sort((a, b) => a.id - b.id);
  }

  getEndpoint(namespace: string, name: string): Endpoint {
    return this.mustFind(namespace, name);
  }

  // ---- identities ----

  listIdentities(): { id: number; labels: string[]; reserved: boolean; endpoints: number }[] {
    const users = new Map<number, number>();
    for (const ep of this.endpoints.values()) users.set(ep.identity, (users.get(ep.identity) ?? 0) + 1);
    return [
      ...RESERVED_IDENTITIES.map((r) => ({ id: r.id, labels: [`reserved:${r.name}`], reserved: true, endpoints: 0 })),
      ...this.allocatedIdentities().map((i) => ({ ...i, reserved: false, endpoints: users.get(i.id) ?? 0 })),
    ];
  }

  get identityCount(): number {
    return this.allocator.list().length;
  }

  get namespaceCount(): number {
    return this.namespaces.size;
  }

  // ---- what the reconciler reads ----

  endpointById(id: number): Endpoint | undefined {
    return this.endpoints.get(id);
  }

  /** The identities this node's endpoints use. */
  localIdentities(): AllocatedIdentity[] {
    return this.allocator.list();
  }

  /** Every identity policy must know: this node's, and in a cluster every other node's too. */
  allocatedIdentities(): { id: number; labels: string[] }[] {
    if (!this.cluster) return this.allocator.list();
    const all = new Map(this.cluster.list().map((i) => [i.id, i]));
    for (const i of this.allocator.list()) all.set(i.id, i);
    return [...all.values()].sort((a, b) => a.id - b.id);
  }

  allocatedLabels(id: number): string[] | undefined {
    return this.allocator.get(id)?.labels ?? this.cluster?.labelsOf(id);
  }

  // ---- helpers ----

  private find(namespace: string, name: string): Endpoint | undefined {
    for (const ep of this.endpoints.values()) if (ep.namespace === namespace && ep.name === name) return ep;
    return undefined;
  }

  private mustFind(namespace: string, name: string): Endpoint {
    const ep = this.find(namespace, name);
    if (!ep) throw notFound(`endpoint ${namespace}/${name} does not exist (see 'membrane endpoint list')`);
    return ep;
  }

  private userLabels(ep: Endpoint): Label[] {
    return ep.labels.map((l) => parseLabel(l)).filter((l) => !isDerivedKey(l.key));
  }

  /** Recomputes an endpoint's labels and identity in memory; returns the identities touched. */
  private relabel(
    ep: Endpoint,
    userLabels: Label[],
    ns: { name: string; labels: Record<string, string> },
  ): { ep: Endpoint; acquired: AllocatedIdentity; released: number } {
    const labels = endpointLabels(userLabels, ns, this.cfg.cluster);
    const idLabels = identityLabels(labels);
    const acquired = this.allocator.acquire(idLabels);
    const released = ep.identity;
    this.allocator.release(released);
    Object.assign(ep, { labels: labels.map(formatLabel), identityLabels: idLabels.map(formatLabel), identity: acquired.id });
    return { ep, acquired, released };
  }

  private identityChanges(rs: { acquired: AllocatedIdentity; released: number }[]): {
    put: Record<string, unknown>;
    delete: string[];
  } {
    const put: Record<string, unknown> = {};
    const del: string[] = [];
    for (const r of rs) {
      put[K.identity(r.acquired.id)] = { labels: r.acquired.labels };
      if (!this.allocator.get(r.released)) del.push(K.identity(r.released));
    }
    return { put, delete: del.filter((k) => !(k in put)) };
  }

  private stored(ep: Endpoint): StoredEndpoint {
    const { ifindex: _i, state: _s, stateReason: _r, ...rest } = ep;
    return rest;
  }

  private allocateEndpointId(): number {
    for (let i = 0; i < MAX_ENDPOINT_ID; i++) {
      const id = ((this.nextEndpointId - 1 + i) % MAX_ENDPOINT_ID) + 1;
      if (!this.endpoints.has(id)) {
        this.nextEndpointId = (id % MAX_ENDPOINT_ID) + 1;
        return id;
      }
    }
    throw conflict('no endpoint ID is free: delete endpoints first');
  }
}
