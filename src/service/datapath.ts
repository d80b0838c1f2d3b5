/* The socket load-balancing datapath: bpf/sock.o's programs attached to the agent's cgroup with
 * pinned links, and its service/backend maps written by difference. */
import fs from 'node:fs';
import path from 'node:path';
import { addStats, MapMirror, type StructEntry, type SyncStats } from '../datapath/datapath.js';
import { LB_MAPS, lbBackendKey, lbBackendValue, lbMaglevKey, lbMaglevValue, lbServiceKey, lbServiceValue } from '../datapath/layouts.js';
import { TypedMap } from '../kernel/bpf-map.js';
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
}

export class LbDatapath {
  readonly services;
  readonly backends;
  readonly maglev;
  private readonly servicesMirror;
  private readonly backendsMirror;
  private readonly maglevMirror;

  private constructor(private readonly obj: BpfObject) {
    this.services = new TypedMap(obj.map(LB_MAPS.services), lbServiceKey, lbServiceValue);
    this.backends = new TypedMap(obj.map(LB_MAPS.backends), lbBackendKey, lbBackendValue);
    this.maglev = new TypedMap(obj.map(LB_MAPS.maglev), lbMaglevKey, lbMaglevValue);
    this.servicesMirror = new MapMirror(this.services);
    this.backendsMirror = new MapMirror(this.backends);
    this.maglevMirror = new MapMirror(this.maglev);
  }

  static load(objectDir: string, bpffsDir: string): LbDatapath {
    return new LbDatapath(
      BpfObject.load(path.join(objectDir, SOCK_OBJECT), {
        pinDir: path.join(bpffsDir, 'maps'),
        maps: Object.values(LB_MAPS),
        programs: Object.values(PROGRAMS),
      }),
    );
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
    // New backend slots before the services that count them, stale slots only after: a
    // connect never picks a slot that is not there.
    const added = addStats(this.backendsMirror.update(desired.backends, []), this.maglevMirror.update(desired.maglev, []));
    const services = this.servicesMirror.sync(desired.services);
    const removed = addStats(this.backendsMirror.sync(desired.backends), this.maglevMirror.sync(desired.maglev));
    return addStats(addStats(added, services), { written: 0, deleted: removed.deleted, unchanged: 0 });
  }

  /** The realized maps, for `membrane bpf lb list`. */
  realized(): { frontend: string; serviceId: number; count: number; algorithm: number; backends: string[] }[] {
    const backends = new Map<number, string[]>();
    for (const [k, v] of this.backends.entries()) {
      const list = backends.get(k.service_id) ?? [];
      list[k.slot - 1] = `${v.ip}:${v.port}`;
      backends.set(k.service_id, list);
    }
    const proto: Record<number, string> = { 6: 'TCP', 17: 'UDP' };
    return this.services.entries().map(([k, v]) => ({
      frontend: `${k.vip}:${k.port}/${proto[k.protocol] ?? k.protocol}`,
      serviceId: v.service_id,
      count: v.count,
      algorithm: v.algorithm,
      backends: backends.get(v.service_id) ?? [],
    }));
  }

  close(): void {
    this.obj.close();
  }
}
