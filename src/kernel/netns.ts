/* Acting inside another network namespace. setns() switches only the calling thread, so this
 * runs synchronously on the main thread and switches back before returning; libuv's pool
 * threads never move. */
import fs from 'node:fs';
import path from 'node:path';
import { check } from './libbpf.js';
import { errno, libc } from './libc.js';

const CLONE_NEWNET = 0x40000000;

export function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}

/** The kernel's longest file name: a namespace name is a file under /run/netns. */
export const NETNS_NAME_MAX = 255;

/** Whether `nsPath` is a network namespace (a file setns() accepts for CLONE_NEWNET). */
export function isNetns(nsPath: string): boolean {
  // NS_GET_NSTYPE would say it exactly; entering it says it as well. Only a failure to enter
  // means "no": a failure to come back (withNetns throws) must not be mistaken for one.
  let entered = false;
  try {
    withNetns(nsPath, () => (entered = true));
  } catch (err) {
    if (entered) throw err;
  }
  return entered;
}

/** Identity of a network namespace (device and inode of its nsfs file): two names, or a name
 * and a process's namespace, are the same namespace when these are equal. */
export function netnsIdentity(nsPath: string): string | undefined {
  try {
    const st = fs.statSync(nsPath);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

export function withNetns<T>(nsPath: string, fn: () => T): T {
  const home = fs.openSync('/proc/thread-self/ns/net', 'r');
  const target = fs.openSync(nsPath, 'r');
  try {
    check(`entering ${nsPath}`, libc.setns(target, CLONE_NEWNET));
    try {
      return fn();
    } finally {
      check('returning to the agent namespace', libc.setns(home, CLONE_NEWNET));
    }
  } finally {
    fs.closeSync(target);
    fs.closeSync(home);
  }
}

/** ifindex of an interface in the current thread's namespace, or 0 when absent. */
export function ifindexOf(name: string): number {
  return libc.ifNameToIndex(name);
}


const MS_BIND = 4096;
const MNT_DETACH = 2;

/**
 * Gives the network namespace at `nsPath` (a process's, /proc/PID/ns/net) the name `name`, as
 * `ip netns attach` does: a bind mount under /run/netns, which also keeps the namespace alive
 * until the name is removed.
 */
export function attachNetns(nsPath: string, name: string): void {
  const target = netnsPath(name);
  fs.mkdirSync(path.dirname(target), { recursive: true }); // absent until a first `ip netns add`
  fs.writeFileSync(target, '', { flag: 'wx', mode: 0o444 });
  if (libc.mount(nsPath, target, null, MS_BIND, null) !== 0) {
    fs.rmSync(target, { force: true });
    throw new Error(`cannot bind ${nsPath} to ${target}`);
  }
}

/**
 * Gives the network namespace named `from` the name `to` instead (a name is a bind mount of the
 * namespace under /run/netns, as `ip netns` makes them): the namespace and everything in it stay.
 */
export function renameNetns(from: string, to: string): void {
  const target = netnsPath(to);
  fs.writeFileSync(target, '', { flag: 'wx', mode: 0o444 });
  try {
    if (libc.mount(netnsPath(from), target, null, MS_BIND, null) !== 0) throw new Error(`cannot bind ${netnsPath(from)} to ${target}`);
  } catch (err) {
    fs.rmSync(target, { force: true });
    throw err;
  }
  libc.umount2(netnsPath(from), MNT_DETACH);
  fs.rmSync(netnsPath(from), { force: true });
}

const RUN_DIR = '/run/netns';
const MS_REC = 16384;
const MS_SHARED = 1 << 20;
const EINVAL = 22;

/**
 * Makes /run/netns a shared mount point, as `ip netns add` does before every namespace it makes:
 * a name unmounted in one mount namespace then goes in all of them, and the namespace with it.
 */
function sharedRunDir(): void {
  fs.mkdirSync(RUN_DIR, { recursive: true, mode: 0o755 });
  for (let bound = false; libc.mount('', RUN_DIR, 'none', MS_SHARED | MS_REC, null) !== 0; bound = true) {
    if (errno() !== EINVAL || bound) throw new Error(`cannot make ${RUN_DIR} a shared mount (errno ${errno()})`);
    if (libc.mount(RUN_DIR, RUN_DIR, 'none', MS_BIND | MS_REC, null) !== 0) throw new Error(`cannot bind ${RUN_DIR} onto itself (errno ${errno()})`);
  }
}

/**
 * A new network namespace named `name`, made as `ip netns add` makes it (a bind mount of the
 * namespace under /run/netns) but without starting a process: forking the agent blocks its
 * event loop for 10-20 ms here, making the namespace about 1 ms. The main thread unshares into
 * the new namespace, names it, and returns to its own before anything else runs.
 */
export function createNetns(name: string): void {
  sharedRunDir();
  const target = netnsPath(name);
  fs.closeSync(fs.openSync(target, fs.constants.O_RDONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0));
  const home = fs.openSync('/proc/thread-self/ns/net', 'r');
  try {
    if (libc.unshare(CLONE_NEWNET) !== 0) throw new Error(`cannot create network namespace ${name} (errno ${errno()})`);
    try {
      if (libc.mount('/proc/thread-self/ns/net', target, 'none', MS_BIND, null) !== 0) throw new Error(`cannot bind network namespace ${name} to ${target} (errno ${errno()})`);
    } finally {
      check('returning to the agent namespace', libc.setns(home, CLONE_NEWNET));
    }
  } catch (err) {
    fs.rmSync(target, { force: true });
    throw err;
  } finally {
    fs.closeSync(home);
  }
}

/** Removes the name `name` (as `ip netns delete`); the namespace goes once nothing else holds it. */
export function deleteNetns(name: string): void {
  const target = netnsPath(name);
  libc.umount2(target, MNT_DETACH);
  fs.rmSync(target);
}
