/* The cluster store: a client of a real etcd (v3 API, through etcd3 from npm). The model:
 *  - every agent holds one lease; the keys that describe what lives on its node (its node entry,
 *    its endpoints' addresses, its claims on identities) are put under that lease, so when the
 *    node dies and stops renewing it, etcd deletes them after the TTL on everyone's behalf;
 *  - the lease outlives an agent restart: its id is kept in the state directory and adopted by the
 *    next start while etcd still holds it, so a restart does not make the node's keys flap;
 *  - the agent remembers the leased keys it owns; when the lease is lost anyway (etcd unreachable
 *    for longer than the TTL) a new one is granted and every owned key is put again;
 *  - readers list a prefix and then watch it from the revision after the list, so no change
 *    falls between the two (etcd's revisions are totally ordered).
 * Pitfalls: etcd3's own Lease class cannot adopt an existing lease, hence the keeper here; a call
 * to an unreachable etcd hangs until its deadline, so every call (every retry of it) gets one. */
import fs from 'node:fs';
import { Etcd3, type ComparatorBuilder, type DeleteBuilder, type IKeyValue, type PutBuilder, type IOptions, type ITxnResponse, type Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { StartupError, errorMessage } from '../errors.js';

export interface EtcdTlsFiles {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

export interface EtcdOptions {
  endpoints: string[];
  tls?: EtcdTlsFiles;
  /** Seconds a dead node's keys live on (the lease's TTL). */
  leaseTtlSeconds: number;
  /** Where the lease id is kept across restarts. */
  leaseFile: string;
}

export interface EtcdStatus {
  endpoints: string[];
  connected: boolean;
  leaseId: string;
  leaseTtlSeconds: number;
  /** When etcd last answered (ISO time). */
  lastContact: string;
  /** Since when etcd has not answered (ISO time), while it does not. */
  outageSince?: string;
}

export interface StoredKey {
  key: string;
  value: string;
  /** The revision that created the key: who came first. */
  createRevision: bigint;
  /** The revision that last changed it (for transactions that must see it unchanged). */
  modRevision: bigint;
  /** The lease that holds it ('0' for none). */
  lease: string;
}

/**
 * What a prefix watcher is told: the list first (one put per key), then every change, each with
 * etcd's revision of it (the key's mod revision; a deletion's own revision).
 */
export interface PrefixHandler {
  put(key: string, value: string, revision: bigint): void;
  delete(key: string, revision: bigint): void;
}

/** Deadline of one call to etcd. */
const CALL_TIMEOUT_MS = 3000;
const CONNECT_BACKOFF_MAX_MS = 5000;

function readTls(tls: EtcdTlsFiles | undefined): IOptions['credentials'] {
  if (!tls || (!tls.caFile && !tls.certFile && !tls.keyFile)) return undefined;
  if (!tls.caFile) throw new StartupError('--kvstore-tls-ca-file is needed with a client certificate: give the CA that signed the etcd server certificate');
  if (!tls.certFile !== !tls.keyFile) throw new StartupError('--kvstore-tls-cert-file and --kvstore-tls-key-file go together: give both or neither');
  const read = (file: string, flag: string) => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new StartupError(`${flag} ${file}: ${errorMessage(err)}`);
    }
  };
  return {
    rootCertificate: read(tls.caFile, '--kvstore-tls-ca-file'),
    ...(tls.certFile ? { certChain: read(tls.certFile, '--kvstore-tls-cert-file') } : {}),
    ...(tls.keyFile ? { privateKey: read(tls.keyFile, '--kvstore-tls-key-file') } : {}),
  };
}

const deadline = () => ({ deadline: Date.now() + CALL_TIMEOUT_MS });

export class EtcdStore {
  private leaseId = '0';
  private readonly owned = new Map<string, string>();
  /** Owned keys (or deletions) that etcd has not taken yet: written when it answers again. */
  private readonly unwritten = new Set<string>();
  private readonly watchers = new Set<Watcher>();
  private keepalive?: NodeJS.Timeout;
  private lastContact = Date.now();
  private outageSince?: number;
  private closed = false;
  private renewing?: Promise<void>;
  /** Told when etcd stops answering and when it answers again. */
  onConnectivity?: (connected: boolean) => void;

  private constructor(
    readonly client: Etcd3,
    private readonly opts: EtcdOptions,
    private readonly log: Logger,
  ) {}

  /**
   * Connects, waiting with backoff (and saying so) while etcd does not answer, until `signal`
   * aborts; then grants the node's lease, or adopts the one an earlier run of this agent held.
   */
  static async connect(opts: EtcdOptions, log: Logger, signal?: AbortSignal): Promise<EtcdStore> {
    // A deadline per attempt: etcd3 retries failed calls, and a deadline fixed once would have
    // passed before a retry starts ("deadline exceeded after 0.000s").
    const client = new Etcd3({ hosts: opts.endpoints, credentials: readTls(opts.tls), dialTimeout: CALL_TIMEOUT_MS, defaultCallOptions: deadline });
    const store = new EtcdStore(client, opts, log);
    // Resolves when the signal aborts: every wait below races it, so Ctrl-C is never held up.
    const aborted = new Promise<'aborted'>((resolve) => {
      if (signal?.aborted) resolve('aborted');
      signal?.addEventListener('abort', () => resolve('aborted'), { once: true });
    });
    const stop = () => {
      client.close();
      return new StartupError('stopped while waiting for etcd');
    };
    let wait = 250;
    for (let attempt = 1; ; attempt++) {
      const answer = await Promise.race([client.maintenance.status().then(() => 'ok' as const, (err: unknown) => err), aborted]);
      if (answer === 'aborted') throw stop();
      if (answer === 'ok') break;
      log.warn({ endpoints: opts.endpoints, attempt, retryInMs: wait, err: errorMessage(answer) }, `waiting for etcd at ${opts.endpoints.join(',')}`);
      let timer: NodeJS.Timeout | undefined;
      const slept = await Promise.race([new Promise<'slept'>((resolve) => (timer = setTimeout(resolve, wait, 'slept'))), aborted]);
      clearTimeout(timer);
      if (slept === 'aborted') throw stop();
      wait = Math.min(wait * 2, CONNECT_BACKOFF_MAX_MS);
    }
    await store.startLease();
    return store;
  }

  get lease(): string {
    return this.leaseId;
  }

  status(): EtcdStatus {
    return {
      endpoints: this.opts.endpoints,
      connected: this.outageSince === undefined,
      leaseId: this.leaseId,
      leaseTtlSeconds: this.opts.leaseTtlSeconds,
      lastContact: new Date(this.lastContact).toISOString(),
      ...(this.outageSince !== undefined ? { outageSince: new Date(this.outageSince).toISOString() } : {}),
    };
  }

  /** Every key under `prefix`, and the revision the list was read at. */
  async list(prefix: string): Promise<{ revision: string; kvs: StoredKey[] }> {
    const res = await this.call(() => this.client.getAll().prefix(prefix).exec());
    return {
      revision: res.header.revision,
      kvs: res.kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString(), createRevision: BigInt(kv.create_revision), modRevision: BigInt(kv.mod_revision), lease: kv.lease })),
    };
  }

  async get(key: string): Promise<string | undefined> {
    return (await this.call(() => this.client.get(key).string())) ?? undefined;
  }

  /** Puts a key under the node's lease: it goes when the node does; put again after a lease loss. */
  async putLeased(key: string, value: string): Promise<void> {
    this.owned.set(key, value);
    this.unwritten.delete(key);
    try {
      await this.call(() => this.client.put(key).value(value).lease(this.leaseId).exec());
    } catch (err) {
      this.unwritten.add(key);
      throw err;
    }
  }

  async deleteLeased(key: string): Promise<void> {
    this.owned.delete(key);
    this.unwritten.delete(key);
    try {
      await this.call(() => this.client.delete().key(key).exec());
    } catch (err) {
      this.unwritten.add(key);
      throw err;
    }
  }

  /** Writes the node's keys that changed while etcd did not answer (puts, or deletes of keys no longer owned). */
  private async catchUp(): Promise<void> {
    for (const key of [...this.unwritten]) {
      const value = this.owned.get(key);
      await (value === undefined ? this.deleteLeased(key) : this.putLeased(key, value)).catch(() => undefined);
    }
  }

  /**
   * Creates `key` only if no one has (an etcd transaction on its create revision). Returns the
   * value that is there afterwards: `value` if this call created it, the earlier one otherwise.
   */
  async createIfAbsent(key: string, value: string, leased: boolean): Promise<{ created: boolean; value: string }> {
    const res = await this.txn((c) => {
      const put = c.put(key).value(value);
      if (leased) put.lease(this.leaseId);
      return c.if(key, 'Create', '==', 0).then(put).else(c.get(key));
    });
    if (res.succeeded) {
      if (leased) this.owned.set(key, value);
      return { created: true, value };
    }
    const kv = res.responses[0]?.response_range?.kvs[0];
    return { created: false, value: kv ? kv.value.toString() : value };
  }

  /** Commits a transaction built on the client, with a deadline, keeping track of etcd's answers. */
  txn(build: (client: Etcd3) => ComparatorBuilder): Promise<ITxnResponse> {
    return this.call(() => build(this.client).commit());
  }

  /** Commits operations together, all or none (a transaction whose condition always holds). */
  atomically(ops: (client: Etcd3) => (PutBuilder | DeleteBuilder)[]): Promise<ITxnResponse> {
    // etcd's transactions need a comparison: any key's create revision is at least 0.
    return this.txn((c) => c.if('membrane/', 'Create', '>', -1).then(...ops(c)));
  }

  /** Deletes `key` only while it still holds `value` (nobody replaced it meanwhile). */
  async deleteIfValue(key: string, value: string): Promise<boolean> {
    const res = await this.txn((c) => c.if(key, 'Value', '==', value).then(c.delete().key(key)));
    return res.succeeded;
  }

  /** The lease that holds `key` ('0' if none), or undefined when the key does not exist. */
  async leaseOf(key: string): Promise<string | undefined> {
    const res = await this.call(() => this.client.get(key).exec());
    return res.kvs[0]?.lease;
  }

  /** Lists `prefix`, hands every key to `handler.put`, then every later change; returns a stop. */
  async watchPrefix(prefix: string, handler: PrefixHandler): Promise<() => void> {
    const { revision, kvs } = await this.list(prefix);
    for (const kv of kvs) handler.put(kv.key, kv.value, kv.modRevision);
    const watcher = await this.client.watch().prefix(prefix).startRevision(String(BigInt(revision) + 1n)).create();
    this.watchers.add(watcher);
    watcher.on('put', (kv: IKeyValue) => handler.put(kv.key.toString(), kv.value.toString(), BigInt(kv.mod_revision)));
    watcher.on('delete', (kv: IKeyValue) => handler.delete(kv.key.toString(), BigInt(kv.mod_revision)));
    watcher.on('error', (err) => this.log.warn({ prefix, err: errorMessage(err) }, 'etcd watch failed; it reconnects'));
    return () => {
      this.watchers.delete(watcher);
      void watcher.cancel().catch(() => undefined);
    };
  }

  /** Stops renewing; the lease (and the node's keys) stay until its TTL, so a restart adopts them. */
  close(): void {
    this.closed = true;
    clearInterval(this.keepalive);
    for (const w of this.watchers) void w.cancel().catch(() => undefined);
    this.client.close();
  }

  /** Revokes the lease: the node's keys go now (a node leaving for good). */
  async leave(): Promise<void> {
    await this.client.leaseClient.leaseRevoke({ ID: this.leaseId }).catch(() => undefined);
    this.close();
  }

  /** Runs a call, keeping track of whether etcd answers. */
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      const result = await fn();
      this.answered();
      return result;
    } catch (err) {
      this.unanswered();
      throw err;
    }
  }

  private answered(): void {
    this.lastContact = Date.now();
    if (this.outageSince !== undefined) {
      this.log.info({ outageMs: Date.now() - this.outageSince }, 'etcd answers again');
      this.outageSince = undefined;
      void this.catchUp();
      this.onConnectivity?.(true);
    }
  }

  private unanswered(): void {
    if (this.outageSince === undefined) {
      this.outageSince = Date.now();
      this.log.warn({ endpoints: this.opts.endpoints }, 'etcd does not answer; the datapath keeps its last state');
      this.onConnectivity?.(false);
    }
  }

  private async startLease(): Promise<void> {
    const previous = this.readLeaseFile();
    // A keepalive both tells whether etcd still holds the previous lease and renews it.
    if (previous && (await keepAliveOnce(this.client, previous).catch(() => 0)) > 0) this.leaseId = previous;
    if (this.leaseId !== '0') this.log.info({ lease: this.leaseId }, "adopted the lease of this node's previous run");
    else {
      if (previous) this.log.info({ lease: previous }, "the previous run's lease has expired: granting a new one");
      await this.grant();
    }
    const period = Math.max(500, (this.opts.leaseTtlSeconds * 1000) / 3);
    this.keepalive = setInterval(() => void this.renew(), period);
    this.keepalive.unref();
  }

  private async grant(): Promise<void> {
    const res = await this.call(() => this.client.leaseClient.leaseGrant({ TTL: this.opts.leaseTtlSeconds, ID: 0 }));
    this.leaseId = res.ID;
    fs.writeFileSync(this.opts.leaseFile, `${this.leaseId}\n`, { mode: 0o600 });
  }

  private readLeaseFile(): string | undefined {
    try {
      const id = fs.readFileSync(this.opts.leaseFile, 'utf8').trim();
      return /^\d+$/.test(id) && id !== '0' ? id : undefined;
    } catch {
      return undefined;
    }
  }

  /** One keepalive; a lease etcd no longer knows is replaced and the owned keys put again. */
  private renew(): Promise<void> {
    if (this.renewing || this.closed) return this.renewing ?? Promise.resolve();
    this.renewing = (async () => {
      try {
        if ((await this.call(() => keepAliveOnce(this.client, this.leaseId))) > 0) return;
        this.log.warn({ lease: this.leaseId }, 'the node lease expired (etcd was out of reach longer than its TTL): granting a new one and putting the node keys again');
        await this.grant();
        for (const [k, v] of this.owned) await this.call(() => this.client.put(k).value(v).lease(this.leaseId).exec());
      } catch {
        // unanswered() has recorded the outage; the next tick tries again
      } finally {
        this.renewing = undefined;
      }
    })();
    return this.renewing;
  }
}

/**
 * One keepalive over etcd's bidirectional LeaseKeepAlive stream, closed after its answer: the
 * lease's renewed TTL, 0 when etcd no longer holds the lease.
 */
async function keepAliveOnce(client: Etcd3, id: string): Promise<number> {
  const stream = await client.leaseClient.leaseKeepAlive(deadline());
  try {
    return await new Promise<number>((resolve, reject) => {
      stream.on('data', (res) => resolve(Number(res.TTL)));
      stream.on('error', reject);
      stream.write({ ID: id });
    });
  } finally {
    stream.cancel();
  }
}
