/* The socket load-balancing datapath: bpf/sock.o's programs attached to the agent's cgroup with
 * pinned links, and its service/backend maps written by difference. */
import fs from 'node:fs';
import path from 'node:path';
import type { LbRow } from './types.js';
import { protocolName } from '../net/protocols.js';
import { addStats, MapMirror, type StructEntry, type SyncStats } from '../datapath/mirror.js';
import {
  LB_ALGORITHM,
  OBJECT_MAPS,
  type SockMap,
  lbAffinityKey,
  lbAffinityValue,
  lbBackendKey,
  lbBackendValue,
  lbMaglevKey,
  lbMaglevValue,
  lbMemberKey,
  lbMemberValue,
  lbServiceKey,
  lbServiceValue,
} from '../datapath/layouts.js';
import { TypedMap } from '../datapath/typed-map.js';
import { BpfObject } from '../kernel/bpf-object.js';
import { CGROUP_ATTACH, ensureCgroupLink, type CgroupHook } from '../kernel/bpf-link.js';

export const SOCK_OBJECT = 'sock.o';
const PROGRAMS: Record<CgroupHook, string> = {
  connect4: 'sock4_connect',
  sendmsg4: 'sock4_sendmsg',
  recvmsg4: 'sock4_recvmsg',
  getpeername4: 'sock4_getpeername',
};

export interface DesiredLb {
  services: StructEntry<typeof lbServiceKey, typeof lbServiceValue>[];
  backends: StructEntry<typeof lbBackendKey, typeof lbBackendValue>[];
  maglev: StructEntry<typeof lbMaglevKey, typeof lbMaglevValue>[];
  members: StructEntry<typeof lbMemberKey, typeof lbMemberValue>[];
}

export type LbKeys = { [P in keyof DesiredLb]: DesiredLb[P][number][0][] };

export function emptyLb(): DesiredLb {
  return { services: [], backends: [], maglev: [], members: [] };
}

/** Keys of `before` that `after` no longer has. */
export function keysOnlyIn<K, V>(before: StructEntry<K, V>[], after: StructEntry<K, V>[]): StructEntry<K, V>[0][] {
  const kept = new Set(after.map(([k]) => JSON.stringify(k)));
  return before.filter(([k]) => !kept.has(JSON.stringify(k))).map(([k]) => k);
}

export class LbDatapath {
  readonly services;
  readonly backends;
  readonly maglev;
  readonly members;
  readonly affinity;
  private readonly servicesMirror;
  private readonly backendsMirror;
  private readonly maglevMirror;
  private readonly membersMirror;

  private constructor(private readonly obj: BpfObject) {
    const map = (name: SockMap) => obj.map(name);
    this.services = new TypedMap(map('mb_lb_services'), lbServiceKey, lbServiceValue);
    this.backends = new TypedMap(map('mb_lb_backends'), lbBackendKey, lbBackendValue);
    this.maglev = new TypedMap(map('mb_lb_maglev'), lbMaglevKey, lbMaglevValue);
    this.members = new TypedMap(map('mb_lb_members'), lbMemberKey, lbMemberValue);
    this.affinity = new TypedMap(map('mb_lb_affinity'), lbAffinityKey, lbAffinityValue);
    this.servicesMirror = new MapMirror(this.services);
    this.backendsMirror = new MapMirror(this.backends);
    this.maglevMirror = new MapMirror(this.maglev);
    this.membersMirror = new MapMirror(this.members);
  }

  static load(objectDir: string, bpffsDir: string): LbDatapath {
    return new LbDatapath(
      BpfObject.load(path.join(objectDir, SOCK_OBJECT), {
        pinDir: path.join(bpffsDir, 'maps'),
        progPinDir: path.join(bpffsDir, 'progs'),
        maps: OBJECT_MAPS.sock,
        programs: Object.values(PROGRAMS),
      }),
    );
  }

  /** The socket object's version (content hash). */
  get objectVersion(): string {
    return this.obj.version;
  }

  /** Attaches every socket hook to the cgroup (v2) whose processes get service translation. */
  attach(cgroupDir: string, bpffsDir: string): void {
    const linkDir = path.join(bpffsDir, 'links');
    fs.mkdirSync(linkDir, { recursive: true });
    for (const hook of Object.keys(CGROUP_ATTACH) as CgroupHook[]) {
      ensureCgroupLink(path.join(linkDir, `cgroup-${hook}`), this.obj.programFd(PROGRAMS[hook]), cgroupDir, hook);
    }
  }

  sync(desired: DesiredLb): SyncStats {
    // Leaving backends stop being members first (no remembered affinity sends a new connection
    // to them); new backend slots go in before the services that count them, stale slots only
    // after: a connection never picks a slot that is not there.
    const left = this.membersMirror.sync(desired.members);
    const added = addStats(this.backendsMirror.update(desired.backends, []), this.maglevMirror.update(desired.maglev, []));
    const services = this.servicesMirror.sync(desired.services);
    const removed = addStats(this.backendsMirror.sync(desired.backends), this.maglevMirror.sync(desired.maglev));
    return addStats(addStats(addStats(left, added), services), { written: 0, deleted: removed.deleted, unchanged: 0 });
  }

  /** Writes `upsert` and removes `remove`, leaving other services alone; same ordering as sync. */
  update(upsert: DesiredLb, remove: LbKeys): SyncStats {
    const left = this.membersMirror.update([], remove.members);
    const added = addStats(
      addStats(this.membersMirror.update(upsert.members, []), this.backendsMirror.update(upsert.backends, [])),
      this.maglevMirror.update(upsert.maglev, []),
    );
    const services = this.servicesMirror.update(upsert.services, remove.services);
    const removed = addStats(this.backendsMirror.update([], remove.backends), this.maglevMirror.update([], remove.maglev));
    return addStats(addStats(addStats(left, added), services), removed);
  }

  /** The realized maps, for `membrane bpf lb list`. */
  realized(): LbRow[] {
    const backends = new Map<number, string[]>();
    for (const [k, v] of this.backends.entries()) {
      const list = backends.get(k.service_id) ?? [];
      list[k.slot - 1] = `${v.ip}:${v.port}`;
      backends.set(k.service_id, list);
    }
    const count = (entries: Iterable<{ service_id: number }>) => {
      const n = new Map<number, number>();
      for (const e of entries) n.set(e.service_id, (n.get(e.service_id) ?? 0) + 1);
      return n;
    };
    const maglev = count([...this.maglevMirror.values()].map(([k]) => k));
    const clients = count(this.affinity.entries().map(([k]) => k));
    const algorithm: Record<number, string> = Object.fromEntries(Object.entries(LB_ALGORITHM).map(([name, n]) => [n, name.toLowerCase()]));
    return this.services.entries().map(([k, v]) => ({
      frontend: `${k.vip}:${k.port}/${protocolName(k.protocol)}`,
      serviceId: v.service_id,
      count: v.count,
      algorithm: algorithm[v.algorithm] ?? String(v.algorithm),
      maglevEntries: maglev.get(v.service_id) ?? 0,
      affinityTimeout: v.affinity_timeout,
      affinityClients: clients.get(v.service_id) ?? 0,
      backends: backends.get(v.service_id) ?? [],
    }));
  }

  close(): void {
    this.obj.close();
  }
}
