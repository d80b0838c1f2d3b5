/* Acting inside another network namespace. setns() switches only the calling thread, so this
 * runs synchronously on the main thread and switches back before returning; libuv's pool
 * threads never move. */
import fs from 'node:fs';
import { c, check, closeFd } from './libbpf.js';

const CLONE_NEWNET = 0x40000000;

export function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}

export function withNetns<T>(nsPath: string, fn: () => T): T {
  const home = fs.openSync('/proc/thread-self/ns/net', 'r');
  const target = fs.openSync(nsPath, 'r');
  try {
    check(`entering ${nsPath}`, c.setns(target, CLONE_NEWNET));
    try {
      return fn();
    } finally {
      check('returning to the agent namespace', c.setns(home, CLONE_NEWNET));
    }
  } finally {
    fs.closeSync(target);
    fs.closeSync(home);
  }
}

/** ifindex of an interface in the current thread's namespace, or 0 when absent. */
export function ifindexOf(name: string): number {
  return c.ifNameToIndex(name);
}

export { closeFd };
