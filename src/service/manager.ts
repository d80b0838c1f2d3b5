/* Services: frontends (VIP:port/protocol) and their backends — listed, or selected by endpoint
 * labels and following endpoint churn — persisted in the store and realized in the socket
 * load-balancing maps. A backend that goes away stops receiving new connections; connected
 * sockets keep the backend they were given. */
import type { Logger } from 'pino';
import type { Endpoint } from '../endpoint/types.js';
import type { Service, ServiceBackend, ServiceRequest, ServiceView } from './types.js';
import type { SyncStats } from '../datapath/mirror.js';
import { LB_ALGORITHM } from '../datapath/layouts.js';
import { conflict, notFound } from '../errors.js';
import type { Store } from '../store/store.js';
import { emptyLb, keysOnlyIn, type DesiredLb, type LbDatapath, type LbKeys } from './datapath.js';
import { parseServiceRequest } from './spec.js';
import { MAGLEV_DEFAULT_SIZE, maglevTable } from './maglev.js';
import { ipToInt } from '../net/ipv4.js';
import { IP_PROTOCOL } from '../net/protocols.js';

const PREFIX = 'services/';
const NEXT_ID = 'meta/next-service-id';

/** What a service's selector chooses from: this node's endpoints and, in a cluster, the others'. */
export type BackendCandidate = Pick<Endpoint, 'state' | 'labels' | 'ipv4' | 'namespace' | 'name'>;

export class ServiceManager {
  private readonly services = new Map<string, Service>();
  private nextId: number;
  /** "ip:port/protocol" of every active backend -> its service (for flows); rebuilt when read after a change. */
  private byBackend?: Map<string, string>;
  /** Frontend ("ip:port/PROTO") -> the service that owns it. */
  private readonly frontends = new Map<string, string>();
  /** What each service (by id) has in the maps. */
  private readonly realized = new Map<number, DesiredLb>();
  lastSync: SyncStats = { written: 0, deleted: 0, unchanged: 0 };

  constructor(
    private readonly store: Store,
    private readonly lb: LbDatapath,
    private readonly endpoints: () => BackendCandidate[],
    private readonly log: Logger,
    private readonly maglevSize = MAGLEV_DEFAULT_SIZE,
  ) {
    for (const [, s] of store.list<Service>(PREFIX)) {
      this.services.set(s.name, s);
      this.frontends.set(frontendKey(s), s.name);
    }
    this.nextId = store.get<number>(NEXT_ID) ?? 1;
  }

  /** Refuses what add (or update, `existing`) would refuse, changing nothing. */
  check(req: ServiceRequest, existing: boolean): void {
    if (existing) this.mustGet(req.name);
    else if (this.services.has(req.name)) throw conflict(`service ${req.name} already exists: use 'membrane service update'`);
    this.checkFrontendFree(parseServiceRequest(req, this.services.get(req.name)?.id ?? this.nextId));
  }

  has(name: string): boolean {
    return this.services.has(name);
  }

  names(): string[] {
    return [...this.services.keys()];
  }

  add(req: ServiceRequest): ServiceView {
    if (this.services.has(req.name)) throw conflict(`service ${req.name} already exists: use 'membrane service update'`);
    const service = parseServiceRequest(req, this.nextId);
    this.checkFrontendFree(service);
    this.store.commit({ put: { [PREFIX + service.name]: service, [NEXT_ID]: this.nextId + 1 } });
    this.nextId++;
    this.services.set(service.name, service);
    this.frontends.set(frontendKey(service), service.name);
    this.syncOne(service.id, service);
    return this.view(service);
  }

  update(req: ServiceRequest): ServiceView {
    const old = this.mustGet(req.name);
    const service = parseServiceRequest(req, old.id);
    this.checkFrontendFree(service);
    this.store.commit({ put: { [PREFIX + service.name]: service } });
    this.services.set(service.name, service);
    this.frontends.delete(frontendKey(old));
    this.frontends.set(frontendKey(service), service.name);
    this.syncOne(service.id, service);
    return this.view(service);
  }

  delete(name: string): void {
    const s = this.mustGet(name);
    this.store.commit({ delete: [PREFIX + name] });
    this.services.delete(name);
    this.frontends.delete(frontendKey(s));
    this.syncOne(s.id);
  }

  list(): ServiceView[] {
    return [...this.services.values()].sort((a, b) => a.id - b.id).map((s) => this.view(s));
  }

  get(name: string): ServiceView {
    return this.view(this.mustGet(name));
  }

  /** Rewrites every service's entries; anything else in the maps (left by an earlier agent) goes. */
  syncAll(): void {
    const desired = emptyLb();
    this.realized.clear();
    for (const s of this.services.values()) {
      const d = this.desiredOf(s);
      this.realized.set(s.id, d);
      desired.services.push(...d.services);
      desired.backends.push(...d.backends);
      desired.maglev.push(...d.maglev);
      desired.members.push(...d.members);
    }
    this.byBackend = undefined;
    this.lastSync = this.lb.sync(desired);
    this.log.debug({ ...this.lastSync }, 'services synced');
  }

  /** After endpoint changes: services that select endpoints by label follow them. */
  endpointsChanged(): void {
    for (const s of this.services.values()) if (s.selector) this.syncOne(s.id, s);
  }

  /** Rewrites what differs for one service (cost: that service's entries, not all services'). */
  private syncOne(id: number, s?: Service): void {
    const before = this.realized.get(id) ?? emptyLb();
    const after = s ? this.desiredOf(s) : emptyLb();
    const remove: LbKeys = {
      services: keysOnlyIn(before.services, after.services),
      backends: keysOnlyIn(before.backends, after.backends),
      maglev: keysOnlyIn(before.maglev, after.maglev),
      members: keysOnlyIn(before.members, after.members),
    };
    if (s) this.realized.set(id, after);
    else this.realized.delete(id);
    this.byBackend = undefined;
    this.lastSync = this.lb.update(after, remove);
    this.log.debug({ service: s?.name ?? id, ...this.lastSync }, 'service synced');
  }

  private desiredOf(s: Service): DesiredLb {
    const d = emptyLb();
    const active = this.activeBackends(s);
    // Random: a backend of weight w holds w slots. Maglev: one slot each; weights shape the table.
    const maglev = s.algorithm === 'maglev';
    const slots = maglev ? active : active.flatMap((b) => Array<ServiceBackend>(b.weight).fill(b));
    d.services.push([
      { vip: s.frontend.ip, port: s.frontend.port, protocol: IP_PROTOCOL[s.frontend.protocol] },
      {
        service_id: s.id,
        count: slots.length,
        algorithm: s.algorithm === 'maglev' ? LB_ALGORITHM.MAGLEV : LB_ALGORITHM.RANDOM,
        maglev_size: maglev ? this.maglevSize : 0,
        affinity_timeout: s.affinity?.timeoutSeconds ?? 0,
      },
    ]);
    for (const b of active) d.members.push([{ service_id: s.id, ip: b.ip, port: b.port }, { weight: b.weight }]);
    slots.forEach((b, i) => d.backends.push([{ service_id: s.id, slot: i + 1 }, { ip: b.ip, port: b.port }]));
    if (maglev && slots.length) {
      const table = this.table(slots.map((b) => ({ name: `${b.ip}:${b.port}`, weight: b.weight })));
      table.forEach((owner, index) => d.maglev.push([{ service_id: s.id, index }, { slot: owner + 1 }]));
    }
    return d;
  }

  private tables = new Map<string, Int32Array>();

  /** Maglev tables by backend set: endpoint changes elsewhere do not rebuild them. */
  private table(backends: { name: string; weight: number }[]): Int32Array {
    const key = backends.map((b) => `${b.name}*${b.weight}`).join(',');
    let t = this.tables.get(key);
    if (!t) {
      t = maglevTable(backends, this.maglevSize);
      if (this.tables.size > 1024) this.tables.clear();
      this.tables.set(key, t);
    }
    return t;
  }

  serviceOfBackend(ip: number, port: number, protocol: number): string | undefined {
    if (!this.byBackend) {
      this.byBackend = new Map();
      for (const s of this.services.values()) {
        for (const b of this.activeBackends(s)) this.byBackend.set(`${ipToInt(b.ip)}:${b.port}/${IP_PROTOCOL[s.frontend.protocol]}`, s.name);
      }
    }
    return this.byBackend.get(`${ip}:${port}/${protocol}`);
  }

  private activeBackends(s: Service): ServiceBackend[] {
    const selected: ServiceBackend[] = [];
    if (s.selector) {
      const want = Object.entries(s.selector).map(([k, v]) => `k8s:${k}=${v}`);
      for (const ep of this.endpoints()) {
        if (ep.state === 'ready' && want.every((l) => ep.labels.includes(l))) {
          selected.push({ ip: ep.ipv4, port: s.targetPort ?? s.frontend.port, weight: 1, endpoint: `${ep.namespace}/${ep.name}` });
        }
      }
    }
    return [...s.backends, ...selected];
  }

  private view(s: Service): ServiceView {
    return { ...s, activeBackends: this.activeBackends(s) };
  }

  private mustGet(name: string): Service {
    const s = this.services.get(name);
    if (!s) throw notFound(`service ${name} does not exist (see 'membrane service list')`);
    return s;
  }

  private checkFrontendFree(s: Service): void {
    const owner = this.frontends.get(frontendKey(s));
    if (owner !== undefined && owner !== s.name) {
      const f = s.frontend;
      throw conflict(`frontend ${f.ip}:${f.port}/${f.protocol} is already used by service ${owner}`);
    }
  }
}

const frontendKey = (s: Service) => `${s.frontend.ip}:${s.frontend.port}/${s.frontend.protocol}`;
