/* What users declare for the whole cluster — policies, namespaces and services — lives in etcd:
 *   membrane/state/policies/v1/<cluster>/<kind>/<namespace>/<name> -> { ref, source, rules }
 *   membrane/state/namespaces/v1/<cluster>/<name>                  -> { labels: ["k=v", ...] }
 *   membrane/state/services/v1/<cluster>/<name>                    -> the service as requested
 * A change made through any agent's API is validated there, written to etcd in one transaction
 * (all of an import's policies, or none), then applied by that agent before its API answers, so
 * "returns after the datapath enforces it" still holds on the node the user talks to. Every
 * agent watches both prefixes and applies what the others wrote; its own writes come back as
 * no-ops. etcd is the truth: at start an agent makes its own state equal to etcd's (a policy
 * imported while it was standalone, and not in etcd, goes).
 * Policies are stored parsed (the rule model), so a remote agent never parses YAML again. */
import type { Logger } from 'pino';
import { UserError, errorMessage } from '../errors.js';
import { policyId, type NewPolicy } from '../policy/repository.js';
import type { PolicyRef } from '../policy/types.js';
import type { ITxnResponse } from 'etcd3';
import type { EtcdStore } from '../store/etcd.js';
import type { ServiceRequest } from '../service/types.js';

export const policiesPrefix = (cluster: string) => `membrane/state/policies/v1/${cluster}/`;
export const namespacesPrefix = (cluster: string) => `membrane/state/namespaces/v1/${cluster}/`;
export const servicesPrefix = (cluster: string) => `membrane/state/services/v1/${cluster}/`;

/** How the agent applies what the cluster holds (serialised with its API, by the agent). */
export interface IntentTarget {
  /**
   * In its turn (serialised with the API), asks `decide` which policies to make present
   * (imported or replaced) and which refs absent, and does so. Decided in turn, not when etcd
   * told: an import made through this agent comes back from etcd while its API call may still
   * be applying it, and a change told may be older than one the API applied meanwhile.
   */
  applyPolicies(decide: () => { put: NewPolicy[]; deleted: PolicyRef[] }, reason: string): Promise<void>;
  applyNamespace(name: string, labels: string[] | undefined, reason: string): Promise<void>;
  /** What the agent has now, to reconcile with etcd at start. */
  localPolicies(): NewPolicy[];
  localNamespaces(): { name: string; labels: string[] }[];
  /** Adds or updates a service as requested (undefined: deletes it). */
  applyService(name: string, req: ServiceRequest | undefined, reason: string): Promise<void>;
  localServices(): string[];
}

const unreachable = (what: string, err: unknown) =>
  new UserError('unavailable', `${what} is shared through etcd, which does not answer (${errorMessage(err)}): nothing was changed; retry when etcd is back`);

/** What of `put` and `deleted` differs from the `local` policies: a policy there as given, or a ref absent already, is left out. */
export function policyChanges(local: NewPolicy[], put: NewPolicy[], deleted: PolicyRef[]): { put: NewPolicy[]; deleted: PolicyRef[] } {
  const have = new Map(local.map((p) => [policyId(p.ref), p]));
  const same = (p: NewPolicy) => {
    const h = have.get(policyId(p.ref));
    return h !== undefined && JSON.stringify(h.source) === JSON.stringify(p.source) && JSON.stringify(h.rules) === JSON.stringify(p.rules);
  };
  return { put: put.filter((p) => !same(p)), deleted: deleted.filter((r) => have.has(policyId(r))) };
}

function parse<T>(value: string): T | undefined {
  try {
    return JSON.parse(value) as T;
  } catch {
    return undefined;
  }
}

export class SharedIntent {
  private stops: (() => void)[] = [];
  /**
   * etcd's revision of each policy (by policyId) as this node last applied it, from its own
   * writes (the transaction's revision) and from what it applied of the watch: a change told
   * with a revision no newer is this node's own write coming back, or older than what it has.
   */
  private readonly policyRevisions = new Map<string, bigint>();
  /** Each service as last applied here (its JSON): a watch event that repeats it is a no-op. */
  private readonly appliedServices = new Map<string, string>();

  constructor(
    private readonly kv: EtcdStore,
    private readonly cluster: string,
    private readonly target: IntentTarget,
    private readonly log: Logger,
  ) {}

  private policyKey(ref: PolicyRef): string {
    return policiesPrefix(this.cluster) + policyId(ref).split('/').map(encodeURIComponent).join('/');
  }

  /** Makes the agent's policies and namespaces etcd's, then follows etcd. */
  async start(): Promise<void> {
    const pPrefix = policiesPrefix(this.cluster);
    const nPrefix = namespacesPrefix(this.cluster);
    // Namespaces first: policies and endpoints may name them.
    const ns = await this.kv.list(nPrefix);
    const inEtcd = new Set<string>();
    for (const kv of ns.kvs) {
      const name = decodeURIComponent(kv.key.slice(nPrefix.length));
      inEtcd.add(name);
      await this.applyNamespace(name, parse<{ labels: string[] }>(kv.value)?.labels ?? [], 'namespaces from the cluster');
    }
    for (const n of this.target.localNamespaces()) if (!inEtcd.has(n.name)) await this.applyNamespace(n.name, undefined, 'namespace not in the cluster');
    const sPrefix = servicesPrefix(this.cluster);
    const services = await this.kv.list(sPrefix);
    const sNames = new Set<string>();
    for (const kv of services.kvs) {
      const name = decodeURIComponent(kv.key.slice(sPrefix.length));
      sNames.add(name);
      await this.applyService(name, kv.value, 'services from the cluster');
    }
    for (const name of this.target.localServices()) if (!sNames.has(name)) await this.applyService(name, undefined, 'service not in the cluster');
    const policies = await this.kv.list(pPrefix);
    const wanted = policies.kvs.flatMap((kv): [NewPolicy, bigint][] => {
      const p = parse<NewPolicy>(kv.value);
      return p ? [[p, kv.modRevision]] : [];
    });
    const ids = new Set(wanted.map(([p]) => policyId(p.ref)));
    const gone = this.target.localPolicies().filter((p) => !ids.has(policyId(p.ref))).map((p): [PolicyRef, bigint] => [p.ref, BigInt(policies.revision)]);
    await this.apply(wanted, gone, 'policies from the cluster');
    this.stops.push(
      await this.kv.watchPrefix(pPrefix, {
        put: (_key, value, revision) => {
          const p = parse<NewPolicy>(value);
          if (p) void this.apply([[p, revision]], [], `policy ${policyId(p.ref)} from the cluster`);
        },
        delete: (key, revision) => {
          const [kind, namespace, name] = key.slice(pPrefix.length).split('/').map(decodeURIComponent) as [PolicyRef['kind'], string, string];
          void this.apply([], [[{ kind, ...(namespace ? { namespace } : {}), name }, revision]], `policy ${kind}/${namespace}/${name} deleted in the cluster`);
        },
      }),
      await this.kv.watchPrefix(sPrefix, {
        put: (key, value) => void this.applyService(decodeURIComponent(key.slice(sPrefix.length)), value, 'service from the cluster'),
        delete: (key) => void this.applyService(decodeURIComponent(key.slice(sPrefix.length)), undefined, 'service deleted in the cluster'),
      }),
      await this.kv.watchPrefix(nPrefix, {
        put: (key, value) => void this.applyNamespace(decodeURIComponent(key.slice(nPrefix.length)), parse<{ labels: string[] }>(value)?.labels ?? [], 'namespace from the cluster'),
        delete: (key) => void this.applyNamespace(decodeURIComponent(key.slice(nPrefix.length)), undefined, 'namespace deleted in the cluster'),
      }),
    );
  }

  stop(): void {
    for (const s of this.stops) s();
  }

  /** Writes an import's policies, all or none; refuses (nothing changed) when etcd does not answer. */
  async importPolicies(policies: NewPolicy[]): Promise<void> {
    let res: ITxnResponse;
    try {
      res = await this.kv.atomically((c) => policies.map((p) => c.put(this.policyKey(p.ref)).value(JSON.stringify(p))));
    } catch (err) {
      throw unreachable('policy', err);
    }
    this.wrote(policies.map((p) => p.ref), res); // the caller applies them now
  }

  /** After this node could not enforce an import: what it replaced goes back into etcd. */
  async revertImport(imported: NewPolicy[], undo: Map<string, NewPolicy | undefined>): Promise<void> {
    const res = await this.kv.atomically((c) =>
      imported.map((p) => {
        const before = undo.get(policyId(p.ref));
        return before ? c.put(this.policyKey(p.ref)).value(JSON.stringify({ ref: before.ref, source: before.source, rules: before.rules })) : c.delete().key(this.policyKey(p.ref));
      }),
    );
    this.wrote(imported.map((p) => p.ref), res); // the caller has put them back
  }

  /** Deletes these policies in the cluster, or all of them. */
  async deletePolicies(refs: PolicyRef[] | undefined): Promise<void> {
    let res: ITxnResponse;
    try {
      res = await this.kv.atomically((c) => (refs === undefined ? [c.delete().prefix(policiesPrefix(this.cluster))] : refs.map((r) => c.delete().key(this.policyKey(r)))));
    } catch (err) {
      throw unreachable('policy', err);
    }
    this.wrote(refs ?? this.target.localPolicies().map((p) => p.ref), res); // the caller deletes them now
  }

  /** This node wrote these policies in transaction `res` and applies that itself: the watch's echo is not applied again. */
  private wrote(refs: PolicyRef[], res: ITxnResponse): void {
    const revision = BigInt(res.header.revision);
    for (const r of refs) this.policyRevisions.set(policyId(r), revision);
  }

  async setNamespace(name: string, labels: string[]): Promise<void> {
    try {
      await this.kv.atomically((c) => [c.put(namespacesPrefix(this.cluster) + encodeURIComponent(name)).value(JSON.stringify({ labels }))]);
    } catch (err) {
      throw unreachable('a namespace', err);
    }
  }

  async deleteNamespace(name: string): Promise<void> {
    try {
      await this.kv.atomically((c) => [c.delete().key(namespacesPrefix(this.cluster) + encodeURIComponent(name))]);
    } catch (err) {
      throw unreachable('a namespace', err);
    }
  }

  async putService(req: ServiceRequest): Promise<void> {
    const value = JSON.stringify(req);
    try {
      await this.kv.atomically((c) => [c.put(servicesPrefix(this.cluster) + encodeURIComponent(req.name)).value(value)]);
    } catch (err) {
      throw unreachable('a service', err);
    }
    this.appliedServices.set(req.name, value); // the caller applies it now
  }

  async deleteService(name: string): Promise<void> {
    try {
      await this.kv.atomically((c) => [c.delete().key(servicesPrefix(this.cluster) + encodeURIComponent(name))]);
    } catch (err) {
      throw unreachable('a service', err);
    }
    this.appliedServices.delete(name);
  }

  private async applyService(name: string, value: string | undefined, reason: string): Promise<void> {
    if (value !== undefined && this.appliedServices.get(name) === value) return;
    if (value === undefined && !this.appliedServices.has(name) && !this.target.localServices().includes(name)) return;
    const req = value === undefined ? undefined : parse<ServiceRequest>(value);
    if (value !== undefined && !req) return;
    try {
      await this.target.applyService(name, req, reason);
      if (value === undefined) this.appliedServices.delete(name);
      else this.appliedServices.set(name, value);
    } catch (err) {
      this.log.error({ err: errorMessage(err), service: name, reason }, 'a service change from the cluster could not be applied on this node');
    }
  }

  /**
   * Applies what etcd told (each change with its revision), judged in the agent's turn: what is
   * no newer than what this node applied (its own write coming back, or a change overtaken by a
   * later one), and what the node has as given already, is left out. Judged when etcd told, this
   * node's own import looked new (its API call had not applied it yet) and was applied twice.
   */
  private async apply(put: [NewPolicy, bigint][], deleted: [PolicyRef, bigint][], reason: string): Promise<void> {
    const newer = <T>(changes: [T, bigint][], ref: (t: T) => PolicyRef): T[] =>
      changes
        .filter(([t, revision]) => {
          const id = policyId(ref(t));
          if (revision <= (this.policyRevisions.get(id) ?? -1n)) return false;
          this.policyRevisions.set(id, revision);
          return true;
        })
        .map(([t]) => t);
    const decide = () =>
      policyChanges(
        this.target.localPolicies(),
        newer(put, (p) => p.ref),
        newer(deleted, (r) => r),
      );
    try {
      await this.target.applyPolicies(decide, reason);
    } catch (err) {
      this.log.error({ err: errorMessage(err), reason }, 'a policy change from the cluster could not be applied on this node');
    }
  }

  private async applyNamespace(name: string, labels: string[] | undefined, reason: string): Promise<void> {
    try {
      await this.target.applyNamespace(name, labels, reason);
    } catch (err) {
      this.log.error({ err: errorMessage(err), namespace: name, reason }, 'a namespace change from the cluster could not be applied on this node');
    }
  }
}
