/* The state store: a key-value interface shaped like etcd's (prefix reads, atomic multi-key
 * commits) so the embedded store and the cluster store are interchangeable. */
export interface Store {
  get<T>(key: string): T | undefined;
  /** Every key under `prefix`, sorted by key. */
  list<T>(prefix: string): [string, T][];
  /** Applies all puts and deletes at once, durably, or none of them. */
  commit(change: { put?: Record<string, unknown>; delete?: string[] }): void;
}
