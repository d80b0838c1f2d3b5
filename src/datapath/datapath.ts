/* The agent's view of the kernel datapath: loads the endpoint object with its maps pinned
 * under the agent's bpffs directory, attaches endpoints with pinned tcx links, and writes map
 * contents by difference. The writer keeps a mirror of what it realized, read back from the
 * pinned maps at start, so a restarted agent writes only what changed. */
import fs from 'node:fs';
import path from 'node:path';
import { BpfObject } from '../kernel/bpf-object.js';
import { TypedMap, type BpfMap } from '../kernel/bpf-map.js';
import { createTcxLinkAsync, ensureTcxLink, removePinnedLink } from '../kernel/bpf-link.js';
import { endpointInfo, endpointKey, ipcacheKey, ipcacheValue, MAPS, metricsKey, metricsValue } from './layouts.js';
import type { Decoded, FieldList, StructValue } from './struct.js';

export const ENDPOINT_OBJECT = 'endpoint.o';
const PROGRAMS = { fromEndpoint: 'from_endpoint', toEndpoint: 'to_endpoint' } as const;

export interface SyncStats {
  written: number;
  deleted: number;
  unchanged: number;
}

/**
 * Desired contents of one map as encoded key/value bytes, keyed by the hex of the key. The
 * writer compares bytes, so any field change (or padding mistake) shows up as a difference.
 */
class MapMirror<K extends FieldList, V extends FieldList> {
  private realized = new Map<string, Buffer>();

  constructor(readonly map: TypedMap<K, V>) {
    for (const [k, v] of map.raw.entries()) this.realized.set(k.toString('hex'), v);
  }

  get size(): number {
    return this.realized.size;
  }

  sync(desired: [Partial<Decoded<K>>, Partial<Decoded<V>>][]): SyncStats {
    const want = new Map<string, Buffer>();
    for (const [k, v] of desired) want.set(this.map.key.encode(k).toString('hex'), this.map.value.encode(v));
    const writes: [Buffer, Buffer][] = [];
    let unchanged = 0;
    for (const [hex, value] of want) {
      const have = this.realized.get(hex);
      if (have && have.equals(value)) unchanged++;
      else writes.push([Buffer.from(hex, 'hex'), value]);
    }
    const deletes = [...this.realized.keys()].filter((hex) => !want.has(hex)).map((hex) => Buffer.from(hex, 'hex'));
    // Writes before deletes: an LPM entry being replaced by a broader one never leaves a gap.
    this.map.raw.updateMany(writes);
    this.map.raw.deleteMany(deletes);
    for (const [k, v] of writes) this.realized.set(k.toString('hex'), v);
    for (const k of deletes) this.realized.delete(k.toString('hex'));
    return { written: writes.length, deleted: deletes.length, unchanged };
  }
}

type Entry<K, V> = [Partial<StructValue<K>>, Partial<StructValue<V>>];

export interface DesiredDatapath {
  ipcache: Entry<typeof ipcacheKey, typeof ipcacheValue>[];
  endpoints: Entry<typeof endpointKey, typeof endpointInfo>[];
}

export class Datapath {
  readonly ipcache;
  readonly endpoints;
  readonly metrics;
  private readonly ipcacheMirror;
  private readonly endpointsMirror;
  private readonly linkDir: string;

  private constructor(
    private readonly obj: BpfObject,
    readonly bpffsDir: string,
  ) {
    this.ipcache = new TypedMap(obj.map(MAPS.ipcache), ipcacheKey, ipcacheValue);
    this.endpoints = new TypedMap(obj.map(MAPS.endpoints), endpointKey, endpointInfo);
    this.metrics = new TypedMap(obj.map(MAPS.metrics), metricsKey, metricsValue);
    this.ipcacheMirror = new MapMirror(this.ipcache);
    this.endpointsMirror = new MapMirror(this.endpoints);
    this.linkDir = path.join(bpffsDir, 'links');
    fs.mkdirSync(this.linkDir, { recursive: true });
  }

  static load(objectDir: string, bpffsDir: string): Datapath {
    const obj = BpfObject.load(path.join(objectDir, ENDPOINT_OBJECT), {
      pinDir: path.join(bpffsDir, 'maps'),
      maps: Object.values(MAPS),
      programs: Object.values(PROGRAMS),
    });
    return new Datapath(obj, bpffsDir);
  }

  get adoptedMaps(): readonly string[] {
    return this.obj.adoptedMaps;
  }

  private linkPaths(epId: number): { ingress: string; egress: string } {
    return {
      ingress: path.join(this.linkDir, `ep${epId}-from-endpoint`),
      egress: path.join(this.linkDir, `ep${epId}-to-endpoint`),
    };
  }

  /** Attaches (or re-adopts) both endpoint programs; returns true when both links existed. */
  attachEndpoint(epId: number, ifindex: number): boolean {
    const pins = this.linkPaths(epId);
    const a = ensureTcxLink(pins.ingress, this.obj.programFd(PROGRAMS.fromEndpoint), ifindex, 'ingress');
    const b = ensureTcxLink(pins.egress, this.obj.programFd(PROGRAMS.toEndpoint), ifindex, 'egress');
    return a && b;
  }

  /** Attaches both programs to a new interface, off the main thread. */
  async attachNewEndpoint(epId: number, ifindex: number): Promise<void> {
    const pins = this.linkPaths(epId);
    await createTcxLinkAsync(pins.ingress, this.obj.programFd(PROGRAMS.fromEndpoint), ifindex, 'ingress');
    await createTcxLinkAsync(pins.egress, this.obj.programFd(PROGRAMS.toEndpoint), ifindex, 'egress');
  }

  detachEndpoint(epId: number): void {
    const pins = this.linkPaths(epId);
    removePinnedLink(pins.ingress);
    removePinnedLink(pins.egress);
  }

  /** Removes link pins of endpoints that no longer exist (left by a crash mid-delete). */
  removeStaleLinks(liveIds: Set<number>): string[] {
    const removed: string[] = [];
    for (const f of fs.readdirSync(this.linkDir)) {
      const m = /^ep(\d+)-/.exec(f);
      if (!m || !liveIds.has(Number(m[1]))) {
        fs.rmSync(path.join(this.linkDir, f), { force: true });
        removed.push(f);
      }
    }
    return removed;
  }

  sync(desired: DesiredDatapath): SyncStats {
    // Endpoints first: a new endpoint's interface is known before its address resolves to it.
    const a = this.endpointsMirror.sync(desired.endpoints);
    const b = this.ipcacheMirror.sync(desired.ipcache);
    return { written: a.written + b.written, deleted: a.deleted + b.deleted, unchanged: a.unchanged + b.unchanged };
  }

  pressure(): { map: string; entries: number; maxEntries: number; pressure: number }[] {
    const rows: [BpfMap, number][] = [
      [this.ipcache.raw, this.ipcacheMirror.size],
      [this.endpoints.raw, this.endpointsMirror.size],
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
