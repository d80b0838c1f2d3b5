/* Numeric identities for label sets. The key of an identity is its sorted identity-relevant
 * labels; each distinct key holds one number from 256 up while some endpoint uses it. Numbers
 * are not reused right away (the cursor moves on) so a stale flow never names a new owner. */
import { UserError } from '../errors.js';
import { formatLabel, sortLabels, type Label } from './labels.js';
import { MAX_ALLOCATED_IDENTITY, MIN_ALLOCATED_IDENTITY } from './reserved.js';

export interface AllocatedIdentity {
  id: number;
  labels: string[];
}

export interface IdentityAllocator {
  /** Takes a reference on the identity of `labels`, allocating it when new. */
  acquire(labels: Label[]): AllocatedIdentity;
  /** Drops a reference; the identity is released when nobody uses it. */
  release(id: number): void;
  list(): AllocatedIdentity[];
  get(id: number): AllocatedIdentity | undefined;
}

/** Told when a number is given to a new label set and when it is freed (for agent events). */
export interface IdentityListener {
  allocated?(identity: AllocatedIdentity): void;
  released?(identity: AllocatedIdentity): void;
}

export function identityKey(labels: Label[]): string {
  return sortLabels(labels).map(formatLabel).join(';');
}

export class LocalIdentityAllocator implements IdentityAllocator {
  private readonly byKey = new Map<string, AllocatedIdentity>();
  private readonly byId = new Map<number, AllocatedIdentity>();
  private readonly refs = new Map<number, number>();
  private cursor: number;
  listener?: IdentityListener;
  /** In a cluster: where numbers come from instead of this allocator's own counter. */
  numbering?: { known(key: string): number | undefined };

  constructor(
    restored: AllocatedIdentity[] = [],
    cursor = MIN_ALLOCATED_IDENTITY,
    private readonly min = MIN_ALLOCATED_IDENTITY,
    private readonly max = MAX_ALLOCATED_IDENTITY,
  ) {
    for (const ident of restored) {
      this.byKey.set(ident.labels.join(';'), ident);
      this.byId.set(ident.id, ident);
      this.refs.set(ident.id, 0);
    }
    this.cursor = cursor;
  }

  /** Where the next search starts; persisted so numbers are not reused across restarts. */
  get nextCursor(): number {
    return this.cursor;
  }

  acquire(labels: Label[]): AllocatedIdentity {
    const key = identityKey(labels);
    let ident = this.byKey.get(key);
    if (!ident) {
      ident = { id: this.numbering ? this.clusterNumber(key) : this.freeNumber(), labels: key === '' ? [] : key.split(';') };
      this.byKey.set(key, ident);
      this.byId.set(ident.id, ident);
      this.listener?.allocated?.(ident);
    }
    this.refs.set(ident.id, (this.refs.get(ident.id) ?? 0) + 1);
    return ident;
  }

  release(id: number): void {
    const n = (this.refs.get(id) ?? 0) - 1;
    if (n > 0) {
      this.refs.set(id, n);
      return;
    }
    const ident = this.byId.get(id);
    this.refs.delete(id);
    this.byId.delete(id);
    if (ident) {
      this.byKey.delete(ident.labels.join(';'));
      this.listener?.released?.(ident);
    }
  }

  /** Drops restored identities that no endpoint took back after a restart. */
  releaseUnused(): void {
    for (const [id, n] of this.refs) if (n === 0) this.release(id);
  }

  list(): AllocatedIdentity[] {
    return [...this.byId.values()].sort((a, b) => a.id - b.id);
  }

  get(id: number): AllocatedIdentity | undefined {
    return this.byId.get(id);
  }

  /** In a cluster the number is the cluster's (resolved beforehand, see ClusterNumbering). */
  private clusterNumber(key: string): number {
    const id = this.numbering!.known(key);
    if (id === undefined) throw new UserError('unavailable', `labels ${key || '(none)'} have no cluster-wide identity yet: retry once etcd answers`);
    if (this.byId.has(id)) throw new UserError('conflict', `cluster identity ${id} of labels ${key} is held here by labels ${this.byId.get(id)!.labels.join(';')}: restart the agent to resynchronise`);
    return id;
  }

  private freeNumber(): number {
    const span = this.max - this.min + 1;
    for (let i = 0; i < span; i++) {
      const candidate = this.min + ((this.cursor - this.min + i) % span);
      if (!this.byId.has(candidate)) {
        this.cursor = candidate + 1 > this.max ? this.min : candidate + 1;
        return candidate;
      }
    }
    throw new UserError('unavailable', `all identities ${this.min}-${this.max} are in use: delete unused endpoints`);
  }
}
