/* A Store kept in memory, for unit tests of the layers above the store: it copies values in,
 * as a real store serializes them, so a test cannot see a caller's later mutation through it. */
import type { Store } from '../../src/store/store.js';

export class MemoryStore implements Store {
  readonly data = new Map<string, unknown>();
  get<T>(key: string): T | undefined {
    return this.data.get(key) as T | undefined;
  }
  list<T>(prefix: string): [string, T][] {
    return [...this.data.entries()].filter(([k]) => k.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : 1)) as [string, T][];
  }
  commit(change: { put?: Record<string, unknown>; delete?: string[] }): void {
    for (const [k, v] of Object.entries(change.put ?? {})) this.data.set(k, structuredClone(v));
    for (const k of change.delete ?? []) this.data.delete(k);
  }
}
