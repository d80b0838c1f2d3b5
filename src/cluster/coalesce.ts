/* Remote peers arrive one watch event at a time, thousands at once when a node joins or a busy
 * cluster churns; each datapath write has a fixed cost (the services that follow endpoints are
 * recomputed, the flow decoder's index rebuilt). Changes that arrive in the same turn of the
 * event loop are written together: the last word on a prefix wins. */
import type { RemotePeer } from '../reconcile/datapath.js';
import type { PeersListener } from './shared-ipcache.js';

export function coalesced(write: (reason: string, changed: RemotePeer[], removed: string[]) => Promise<void>): PeersListener {
  let pending: Map<string, RemotePeer | undefined> | undefined;
  let reasons = new Set<string>();
  return (reason, changed, removed) => {
    if (!pending) {
      pending = new Map();
      setImmediate(() => {
        const batch = pending!;
        const why = [...reasons];
        pending = undefined;
        reasons = new Set();
        const up = [...batch.values()].filter((p): p is RemotePeer => p !== undefined);
        const gone = [...batch].filter(([, p]) => p === undefined).map(([prefix]) => prefix);
        void write(why.length === 1 ? why[0]! : `${why[0]} (and ${batch.size - 1} more changes)`, up, gone);
      });
    }
    reasons.add(reason);
    for (const prefix of removed) pending.set(prefix, undefined);
    for (const p of changed) pending.set(p.prefix, p);
  };
}
