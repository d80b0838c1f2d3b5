/* tcx attachment through BPF links. Links are pinned so they outlive the agent: traffic keeps
 * flowing through a restart, and a restarted agent that loaded new programs swaps them in with
 * bpf_link_update instead of detaching anything. */
import fs from 'node:fs';
import { c, check, objectInfo } from './libbpf.js';
import { closeFd } from './libc.js';
import { KernelError } from '../errors.js';

export type TcxDirection = 'ingress' | 'egress';
const ATTACH_TYPE: Record<TcxDirection, number> = { ingress: 46, egress: 47 }; // BPF_TCX_INGRESS/EGRESS

export function pinFd(fd: number, pinPath: string): void {
  check(`pinning ${pinPath}`, c.objPin(fd, pinPath));
}

export function openPinned(pinPath: string): number {
  return check(`opening pinned ${pinPath}`, c.objGet(pinPath));
}

export const LINK_TYPE_TCX = 11;

export interface LinkInfo {
  type: number;
  progId: number;
  ifindex: number;
  attachType: number;
}

export function linkInfo(fd: number): LinkInfo {
  const info = objectInfo(fd, 'link');
  // struct bpf_link_info: type, id, prog_id, then an 8-aligned union; tcx = {ifindex, attach_type}
  return {
    type: info.readUInt32LE(0),
    progId: info.readUInt32LE(8),
    ifindex: info.readUInt32LE(16),
    attachType: info.readUInt32LE(20),
  };
}

/** The kernel's id of a loaded program. */
export function programId(progFd: number): number {
  return objectInfo(progFd, 'program').readUInt32LE(4); // struct bpf_prog_info: type, id, ...
}

/** Puts `progFd` into the link unless it already runs it (a restart that adopted the same programs). */
function swapProgram(linkFd: number, currentProgId: number, progFd: number, pinPath: string): void {
  if (currentProgId !== programId(progFd)) check(`updating link ${pinPath}`, c.linkUpdate(linkFd, progFd, null));
}

/** A pinned tcx link that still belongs to `ifindex` and `dir`, or undefined (stale pins are removed). */
function reusablePin(pinPath: string, ifindex: number, dir: TcxDirection): { fd: number; progId: number } | undefined {
  if (!fs.existsSync(pinPath)) return undefined;
  const fd = openPinned(pinPath);
  const info = linkInfo(fd);
  if (info.ifindex === ifindex && info.attachType === ATTACH_TYPE[dir]) return { fd, progId: info.progId };
  closeFd(fd);
  fs.unlinkSync(pinPath); // stale: its interface is gone or was recreated
  return undefined;
}

/** Pins a link just created (`what` names the attachment if creating it failed). */
function pinNewLink(fd: number, pinPath: string, what: string): void {
  if (fd < 0) throw new KernelError(what, -fd);
  try {
    pinFd(fd, pinPath);
  } finally {
    closeFd(fd);
  }
}

/**
 * Makes sure `progFd` runs at the tcx hook of `ifindex`, reusing the link pinned at `pinPath`
 * when it still belongs to that interface (program swapped in place, no gap), and creating and
 * pinning a new link otherwise. Returns whether an existing link was adopted.
 */
export function ensureTcxLink(pinPath: string, progFd: number, ifindex: number, dir: TcxDirection): boolean {
  const existing = reusablePin(pinPath, ifindex, dir);
  if (existing !== undefined) {
    try {
      swapProgram(existing.fd, existing.progId, progFd, pinPath);
    } finally {
      closeFd(existing.fd);
    }
    return true;
  }
  pinNewLink(c.linkCreate(progFd, ifindex, ATTACH_TYPE[dir], null), pinPath, `tcx ${dir} attach to ifindex ${ifindex}`);
  return false;
}

/**
 * Creates and pins a new tcx link off the main thread. Each tcx attach waits for an RCU grace
 * period in the kernel (about 10 ms here), so the agent overlaps it with other set-up work.
 */
export async function createTcxLinkAsync(pinPath: string, progFd: number, ifindex: number, dir: TcxDirection): Promise<void> {
  fs.rmSync(pinPath, { force: true });
  const fd = await new Promise<number>((resolve, reject) =>
    c.linkCreate.async(progFd, ifindex, ATTACH_TYPE[dir], null, (err: unknown, ret: number) => (err ? reject(err) : resolve(ret))),
  );
  pinNewLink(fd, pinPath, `tcx ${dir} attach to ifindex ${ifindex}`);
}

export const CGROUP_ATTACH = { connect4: 10, sendmsg4: 14, recvmsg4: 19, getpeername4: 29 } as const;
export type CgroupHook = keyof typeof CGROUP_ATTACH;

/**
 * Makes sure `progFd` runs at the cgroup hook of `cgroupDir` (cgroup v2), reusing the link pinned
 * at `pinPath` when it belongs to that cgroup and hook (program swapped in place).
 */
export function ensureCgroupLink(pinPath: string, progFd: number, cgroupDir: string, hook: CgroupHook): boolean {
  const cgroupId = BigInt(fs.statSync(cgroupDir).ino);
  if (fs.existsSync(pinPath)) {
    const fd = openPinned(pinPath);
    try {
      const info = objectInfo(fd, 'link');
      // struct bpf_link_info: the cgroup member of the union is {cgroup_id u64, attach_type u32}.
      if (info.readBigUInt64LE(16) === cgroupId && info.readUInt32LE(24) === CGROUP_ATTACH[hook]) {
        swapProgram(fd, info.readUInt32LE(8), progFd, pinPath);
        return true;
      }
    } finally {
      closeFd(fd);
    }
    fs.unlinkSync(pinPath);
  }
  const cg = fs.openSync(cgroupDir, 'r');
  try {
    pinNewLink(c.linkCreate(progFd, cg, CGROUP_ATTACH[hook], null), pinPath, `${hook} attach to cgroup ${cgroupDir}`);
  } finally {
    fs.closeSync(cg);
  }
  return false;
}

/** Link info of a pinned link (tests and diagnostics). */
export function pinnedLinkInfo(pinPath: string): LinkInfo & { attachDirection?: TcxDirection } {
  const fd = openPinned(pinPath);
  try {
    const info = linkInfo(fd);
    const dir = (Object.keys(ATTACH_TYPE) as TcxDirection[]).find((d) => ATTACH_TYPE[d] === info.attachType);
    return { ...info, attachDirection: dir };
  } finally {
    closeFd(fd);
  }
}

export function removePinnedLink(pinPath: string): void {
  fs.rmSync(pinPath, { force: true });
}
