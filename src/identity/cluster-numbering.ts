/* Cluster-wide identity numbers through etcd: one number per label set across every node, and
 * never one number for two label sets. The keys (membrane/state/identities/v1/...):
 *   id/<n>             -> the label key (identityKey) that owns number n
 *   labels/<sha256>    -> { id, labels }: which number a label set has
 *   users/<n>/<node>   -> '' under the node's lease, while the node has an endpoint with it
 * A new label set is numbered by one transaction that creates both id/<n> and labels/<hash>
 * only if neither exists: of two nodes racing on the same labels, one creates them and the
 * other finds the winner's number in labels/<hash>; two label sets racing for one number
 * cannot both create id/<n>. Numbers are drawn at random among the free ones, so racing nodes
 * rarely collide at all (Cilium's allocator does the same).
 *
 * Every agent watches id/, so the numbers of the labels it has seen are known without asking
 * etcd: while etcd is out of reach an endpoint with known labels can still be added, while a
 * new label set waits for etcd rather than take a number that could collide.
 *
 * A number nobody uses any more (no users/<n>/ key) for a whole grace period is freed by
 * whichever agent sees it first; a transaction on id/<n>'s revision makes that safe against a
 * node that starts using it meanwhile (it finds id/<n> gone and numbers the labels anew). */
import crypto from 'node:crypto';
import type { Logger } from 'pino';
import { UserError, errorMessage } from '../errors.js';
import type { EtcdStore } from '../store/etcd.js';
import { identityKey, type AllocatedIdentity } from './allocator.js';
import type { Label } from './labels.js';
import { MAX_ALLOCATED_IDENTITY, MIN_ALLOCATED_IDENTITY } from './reserved.js';

const PREFIX = 'membrane/state/identities/v1/';
const ID = `${PREFIX}id/`;
const LABELS = `${PREFIX}labels/`;
const USERS = `${PREFIX}users/`;

/** Tries of a numbering while etcd does not answer, before the add is refused. */
const RESOLVE_ATTEMPTS = 3;

/** Attempts at a free number before giving up (each one a transaction). */
const MAX_ATTEMPTS = 16;

const labelsPath = (key: string) => LABELS + crypto.createHash('sha256').update(key).digest('hex');
const splitKey = (key: string) => (key === '' ? [] : key.split(';'));

/** How the local allocator gets numbers in a cluster (see LocalIdentityAllocator). */
export interface IdentityNumbering {
  /** The cluster's number for a label set, numbering it if new (waits for etcd). */
  resolve(labels: Label[]): Promise<number>;
  /** The number the cluster gave a label key, if this agent has seen it. */
  known(key: string): number | undefined;
  /** Every identity of the cluster. */
  list(): AllocatedIdentity[];
  labelsOf(id: number): string[] | undefined;
}

export class ClusterNumbering implements IdentityNumbering {
  private readonly byId = new Map<number, string>();
  private readonly byKey = new Map<string, number>();
  /** Numbers seen without users at the last sweep: freed if still unused at the next. */
  private unusedSince = new Set<number>();
  private stopWatch?: () => void;
  private gcTimer?: NodeJS.Timeout;
  /** Told when identities appear or go anywhere in the cluster (policy must follow). */
  onChange?: () => void;

  constructor(
    private readonly kv: EtcdStore,
    private readonly node: string,
    private readonly log: Logger,
    private readonly gcIntervalMs = 60_000,
  ) {}

  async start(): Promise<void> {
    this.stopWatch = await this.kv.watchPrefix(ID, {
      put: (key, value) => {
        const id = Number(key.slice(ID.length));
        const old = this.byId.get(id);
        if (old !== undefined && old !== value) this.byKey.delete(old);
        this.byId.set(id, value);
        this.byKey.set(value, id);
        this.onChange?.();
      },
      delete: (key) => {
        const id = Number(key.slice(ID.length));
        const old = this.byId.get(id);
        this.byId.delete(id);
        if (old !== undefined && this.byKey.get(old) === id) this.byKey.delete(old);
        this.onChange?.();
      },
    });
    this.gcTimer = setInterval(() => void this.collect().catch((err) => this.log.debug({ err: errorMessage(err) }, 'identity sweep skipped')), this.gcIntervalMs);
    this.gcTimer.unref();
  }

  stop(): void {
    clearInterval(this.gcTimer);
    this.stopWatch?.();
  }

  known(key: string): number | undefined {
    return this.byKey.get(key);
  }

  list(): AllocatedIdentity[] {
    return [...this.byId].map(([id, key]) => ({ id, labels: splitKey(key) })).sort((a, b) => a.id - b.id);
  }

  labelsOf(id: number): string[] | undefined {
    const key = this.byId.get(id);
    return key === undefined ? undefined : splitKey(key);
  }

  async resolve(labels: Label[]): Promise<number> {
    const key = identityKey(labels);
    const seen = this.byKey.get(key);
    if (seen !== undefined) return seen;
    // A connection being re-established (after an etcd restart, say) fails a call or two: a new
    // label set waits a little for etcd before the add is refused.
    let lastError: unknown;
    for (let attempt = 0; attempt < RESOLVE_ATTEMPTS; attempt++) {
      try {
        return await this.number(key);
      } catch (err) {
        if (err instanceof UserError) throw err;
        lastError = err;
        await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
      }
    }
    {
      const err = lastError;
      throw new UserError(
        'unavailable',
        `labels ${key || '(none)'} need a new cluster-wide identity and etcd does not answer (${errorMessage(err)}): add the endpoint again once etcd is back (endpoints whose labels already have an identity can still be added)`,
      );
    }
  }

  /** Marks number `id` used by this node (a key under its lease) or no longer used. */
  async used(id: number, inUse: boolean): Promise<void> {
    const key = `${USERS}${id}/${this.node}`;
    if (inUse) await this.kv.putLeased(key, '');
    else await this.kv.deleteLeased(key);
  }

  /**
   * Makes sure number `id` still means `key` in the cluster after a restart (recreating it if a
   * sweep freed it meanwhile); false when another label set took the number.
   */
  async reclaim(id: number, key: string): Promise<boolean> {
    const { created, value } = await this.kv.createIfAbsent(ID + id, key, false);
    if (!created && value !== key) return false;
    await this.kv.createIfAbsent(labelsPath(key), JSON.stringify({ id, labels: key }), false);
    return true;
  }

  private async number(key: string): Promise<number> {
    const record = labelsPath(key);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const candidate = this.freeCandidate();
      const res = await this.kv.txn((c) =>
        c
          .if(record, 'Create', '==', 0)
          .and(ID + candidate, 'Create', '==', 0)
          .then(c.put(record).value(JSON.stringify({ id: candidate, labels: key })), c.put(ID + candidate).value(key))
          .else(c.get(record)),
      );
      if (res.succeeded) {
        this.learn(candidate, key);
        this.log.info({ identity: candidate, labels: key }, 'numbered a new identity for the cluster');
        return candidate;
      }
      const existing = res.responses[0]?.response_range?.kvs[0];
      if (existing) {
        const { id } = JSON.parse(existing.value.toString()) as { id: number };
        // Numbered by another node; id/<n> may be gone (freed) while labels/ lingers: recreate.
        if (await this.reclaim(id, key)) {
          this.learn(id, key);
          return id;
        }
        await this.kv.deleteIfValue(record, existing.value.toString());
      }
      // The candidate number was taken meanwhile: draw another.
    }
    throw new UserError('unavailable', `no free cluster-wide identity for labels ${key || '(none)'} after ${MAX_ATTEMPTS} attempts: delete unused endpoints`);
  }

  /** Known before the watch tells: the caller uses the number right away. */
  private learn(id: number, key: string): void {
    this.byId.set(id, key);
    this.byKey.set(key, id);
  }

  private freeCandidate(): number {
    const span = MAX_ALLOCATED_IDENTITY - MIN_ALLOCATED_IDENTITY + 1;
    if (this.byId.size >= span) throw new UserError('unavailable', `all identities ${MIN_ALLOCATED_IDENTITY}-${MAX_ALLOCATED_IDENTITY} are in use in the cluster: delete unused endpoints`);
    for (;;) {
      const n = MIN_ALLOCATED_IDENTITY + crypto.randomInt(span);
      if (!this.byId.has(n)) return n;
    }
  }

  /** Frees numbers that had no user at this sweep and the one before. */
  async collect(): Promise<number> {
    const users = new Set((await this.kv.list(USERS)).kvs.map((kv) => Number(kv.key.slice(USERS.length).split('/')[0])));
    const { kvs } = await this.kv.list(ID);
    const unused = new Set<number>();
    let freed = 0;
    for (const kv of kvs) {
      const id = Number(kv.key.slice(ID.length));
      if (users.has(id)) continue;
      unused.add(id);
      if (!this.unusedSince.has(id)) continue;
      const res = await this.kv.txn((c) => c.if(kv.key, 'Mod', '==', kv.modRevision.toString()).then(c.delete().key(kv.key), c.delete().key(labelsPath(kv.value))));
      if (res.succeeded) {
        freed++;
        this.log.info({ identity: id, labels: kv.value }, 'freed a cluster identity no node used for a grace period');
      }
    }
    this.unusedSince = unused;
    return freed;
  }
}
