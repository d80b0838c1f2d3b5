/* Opening and loading a compiled BPF object with its maps pinned under a directory, so a
 * restarted agent (or a second object) shares the same maps. */
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { c, check, checkPtr, closeFd, KernelError, withSignalsBlocked, type Ptr } from './libbpf.js';
import { BpfMap, mapInfo } from './bpf-map.js';

const EAGAIN = os.constants.errno.EAGAIN;
const LOAD_ATTEMPTS = 5;

export interface LoadOptions {
  /** Directory where every named map is pinned (and reused from, if already there). */
  pinDir: string;
  maps: readonly string[];
  programs: readonly string[];
  /** Capacities that differ from the object's defaults, by map name. */
  maxEntries?: Record<string, number>;
}

/** Whether the map pinned at `pin` has the type, key and value sizes, capacity and flags of `m`. */
function sameShape(pin: string, m: Ptr): boolean {
  const fd = c.objGet(pin);
  if (fd < 0) return false;
  try {
    const info = mapInfo(fd);
    return (
      info.type === c.mapType(m) &&
      info.keySize === c.mapKeySize(m) &&
      info.valueSize === c.mapValueSize(m) &&
      info.maxEntries === c.mapMaxEntries(m) &&
      info.flags === c.mapFlags(m)
    );
  } finally {
    closeFd(fd);
  }
}

export class BpfObject {
  private constructor(
    private readonly obj: Ptr,
    private readonly mapsByName: Map<string, BpfMap>,
    private readonly progFds: Map<string, number>,
    /** Maps that were already pinned before this load (adopted rather than created). */
    readonly adoptedMaps: readonly string[],
    /** Pinned maps whose layout differed from this object's: unpinned and created anew. */
    readonly replacedMaps: readonly string[],
  ) {}

  /**
   * Opens and loads `file`, with signals held back while the verifier works (it gives up with
   * EAGAIN when one arrives). Should one still get through (another thread's signal directed at
   * this one), the load is tried again: libbpf cannot load an object twice, so each attempt opens
   * it afresh (a failed load unpins the maps it had pinned).
   */
  static load(file: string, opts: LoadOptions): BpfObject {
    fs.mkdirSync(opts.pinDir, { recursive: true });
    for (let attempt = 1; ; attempt++) {
      try {
        return BpfObject.loadOnce(file, opts);
      } catch (err) {
        if (!(err instanceof KernelError && err.errnoValue === EAGAIN) || attempt >= LOAD_ATTEMPTS) throw err;
      }
    }
  }

  private static loadOnce(file: string, opts: LoadOptions): BpfObject {
    const obj = checkPtr(`opening ${file}`, c.objectOpenFile(file, null));
    try {
      const handles = new Map<string, Ptr>();
      const adopted: string[] = [];
      const replaced: string[] = [];
      for (const name of opts.maps) {
        const m = checkPtr(`map ${name} in ${file}`, c.findMapByName(obj, name));
        const max = opts.maxEntries?.[name];
        if (max !== undefined) check(`capacity of ${name}`, c.mapSetMaxEntries(m, max));
        const pin = path.join(opts.pinDir, name);
        if (fs.existsSync(pin)) {
          if (sameShape(pin, m)) adopted.push(name);
          else {
            // Pinned by a version with another layout: libbpf would refuse to load. Its contents
            // are desired state the agent rewrites (or connection state that rebuilds itself).
            fs.unlinkSync(pin);
            replaced.push(name);
          }
        }
        check(`pin path of ${name}`, c.mapSetPinPath(m, pin));
        handles.set(name, m);
      }
      check(`loading ${file} (the verifier log is above)`, withSignalsBlocked(() => c.objectLoad(obj)));
      const maps = new Map<string, BpfMap>();
      for (const [name, m] of handles) maps.set(name, new BpfMap(check(`fd of ${name}`, c.mapFd(m))));
      const progs = new Map<string, number>();
      for (const name of opts.programs) {
        const p = checkPtr(`program ${name} in ${file}`, c.findProgramByName(obj, name));
        progs.set(name, check(`fd of ${name}`, c.programFd(p)));
      }
      return new BpfObject(obj, maps, progs, adopted, replaced);
    } catch (err) {
      c.objectClose(obj);
      throw err;
    }
  }

  map(name: string): BpfMap {
    const m = this.mapsByName.get(name);
    if (!m) throw new Error(`map ${name} was not loaded`);
    return m;
  }

  programFd(name: string): number {
    const fd = this.progFds.get(name);
    if (fd === undefined) throw new Error(`program ${name} was not loaded`);
    return fd;
  }

  close(): void {
    c.objectClose(this.obj);
  }
}
