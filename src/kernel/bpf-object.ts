/* Opening and loading a compiled BPF object with its maps pinned under a directory, so a
 * restarted agent (or a second object) shares the same maps. With `progPinDir`, the verified
 * programs are pinned too, under a directory named by the object's content: a restart with the
 * same object file adopts them instead of loading it again (the verifier took ~200 ms of a
 * ~1.6 s restart at 1,000 endpoints), and a changed object is loaded and its programs swapped
 * into the links in place. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { c, check, checkPtr, type Ptr } from './libbpf.js';
import { closeFd, withSignalsBlocked } from './libc.js';
import { KernelError } from '../errors.js';
import { BpfMap, mapInfo } from './bpf-map.js';

const EAGAIN = os.constants.errno.EAGAIN;
const LOAD_ATTEMPTS = 5;

export interface LoadOptions {
  /** Directory where every named map is pinned (and reused from, if already there). */
  pinDir: string;
  /** Directory where the loaded programs are pinned by object content (see above). */
  progPinDir?: string;
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

/** A short digest of the object file: programs pinned for one version are never taken for another. */
function contentHash(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex').slice(0, 16);
}

export class BpfObject {
  private constructor(
    /** The libbpf object; 0n when the programs were adopted from their pins. */
    private readonly obj: Ptr,
    private readonly mapsByName: Map<string, BpfMap>,
    private readonly progFds: Map<string, number>,
    /** Maps that were already pinned before this load (adopted rather than created). */
    readonly adoptedMaps: readonly string[],
    /** Pinned maps whose layout differed from this object's: unpinned and created anew. */
    readonly replacedMaps: readonly string[],
    /** The object file's content hash: its version, as `membrane version` shows it. */
    readonly version: string,
  ) {}

  /** True when the programs are the ones an earlier load verified and pinned (the same object file). */
  get programsAdopted(): boolean {
    return this.obj === 0n;
  }

  /**
   * Adopts the programs pinned for this very object file when there are any (and every map is
   * pinned with the object's shape); otherwise opens and loads `file`, with signals held back
   * while the verifier works (it gives up with EAGAIN when one arrives). Should one still get
   * through (another thread's signal directed at this one), the load is tried again: libbpf
   * cannot load an object twice, so each attempt opens it afresh (a failed load unpins the maps
   * it had pinned).
   */
  static load(file: string, opts: LoadOptions): BpfObject {
    fs.mkdirSync(opts.pinDir, { recursive: true });
    const version = contentHash(file);
    const progDir = opts.progPinDir && path.join(opts.progPinDir, `${path.basename(file, '.o')}-${version}`);
    if (progDir) {
      const adopted = BpfObject.adopt(file, progDir, opts, version);
      if (adopted) return adopted;
    }
    for (let attempt = 1; ; attempt++) {
      try {
        const loaded = BpfObject.loadOnce(file, opts, version);
        if (progDir) loaded.pinPrograms(progDir);
        return loaded;
      } catch (err) {
        if (!(err instanceof KernelError && err.errnoValue === EAGAIN) || attempt >= LOAD_ATTEMPTS) throw err;
      }
    }
  }

  /** The programs and maps pinned for this object, or undefined when anything is missing or differs. */
  private static adopt(file: string, progDir: string, opts: LoadOptions, version: string): BpfObject | undefined {
    if (!opts.programs.every((p) => fs.existsSync(path.join(progDir, p)))) return undefined;
    // The object is opened (not loaded) to read its maps' shapes: a pinned map must match them.
    const obj = checkPtr(`opening ${file}`, c.objectOpenFile(file, null));
    try {
      for (const name of opts.maps) {
        const m = checkPtr(`map ${name} in ${file}`, c.findMapByName(obj, name));
        const max = opts.maxEntries?.[name];
        if (max !== undefined) check(`capacity of ${name}`, c.mapSetMaxEntries(m, max));
        if (!sameShape(path.join(opts.pinDir, name), m)) return undefined;
      }
    } finally {
      c.objectClose(obj);
    }
    const maps = new Map(opts.maps.map((name) => [name, new BpfMap(check(`opening pinned map ${name}`, c.objGet(path.join(opts.pinDir, name))))]));
    const progs = new Map(opts.programs.map((name) => [name, check(`opening pinned program ${name}`, c.objGet(path.join(progDir, name)))]));
    return new BpfObject(0n, maps, progs, [...opts.maps], [], version);
  }

  /** Pins the programs of a fresh load for the next start; pins of any other version go. */
  private pinPrograms(progDir: string): void {
    const parent = path.dirname(progDir);
    const prefix = path.basename(progDir).replace(/-[0-9a-f]+$/, '-');
    fs.mkdirSync(parent, { recursive: true });
    for (const entry of fs.readdirSync(parent)) {
      if (entry.startsWith(prefix)) fs.rmSync(path.join(parent, entry), { recursive: true, force: true });
    }
    fs.mkdirSync(progDir);
    for (const [name, fd] of this.progFds) check(`pinning program ${name}`, c.objPin(fd, path.join(progDir, name)));
  }

  private static loadOnce(file: string, opts: LoadOptions, version: string): BpfObject {
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
      return new BpfObject(obj, maps, progs, adopted, replaced, version);
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
    if (this.obj !== 0n) {
      c.objectClose(this.obj); // closes the object's map and program fds
      return;
    }
    for (const m of this.mapsByName.values()) m.close();
    for (const fd of this.progFds.values()) closeFd(fd);
  }
}
