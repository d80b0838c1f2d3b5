/* The policy repository: imported policies by kind/namespace/name, persisted in the store, with
 * a revision that moves on every change. Importing a policy with the name of an existing one
 * replaces it, like `kubectl apply`. */
import { notFound } from '../errors.js';
import type { Store } from '../store/store.js';
import type { PolicyRef, Rule, StoredPolicy } from './types.js';

const PREFIX = 'policies/';
const REVISION_KEY = 'meta/policy-revision';

export function policyId(ref: PolicyRef): string {
  return `${ref.kind}/${ref.namespace ?? ''}/${ref.name}`;
}

export function describePolicy(ref: PolicyRef): string {
  return ref.namespace ? `${ref.kind} ${ref.namespace}/${ref.name}` : `${ref.kind} ${ref.name}`;
}

/** Where a rule id comes from: the policy, the rule's index in it, the policy's revision. */
export interface RuleOrigin {
  ref: PolicyRef;
  index: number;
  revision: number;
}

export class PolicyRepository {
  private readonly policies = new Map<string, StoredPolicy>();
  private rev: number;

  constructor(private readonly store: Store) {
    for (const [, p] of store.list<StoredPolicy>(PREFIX)) this.policies.set(policyId(p.ref), p);
    this.rev = store.get<number>(REVISION_KEY) ?? 1;
  }

  get revision(): number {
    return this.rev;
  }

  /** Adds or replaces all the policies at once; returns the new revision and how to undo it. */
  import(policies: NewPolicy[]): { revision: number; undo: PolicyUndo } {
    const revision = this.rev + 1;
    const stored = policies.map((p): StoredPolicy => ({ ...p, revision }));
    const undo: PolicyUndo = new Map(stored.map((p) => [policyId(p.ref), this.policies.get(policyId(p.ref))]));
    this.store.commit({
      put: { ...Object.fromEntries(stored.map((p) => [PREFIX + policyId(p.ref), p])), [REVISION_KEY]: revision },
    });
    for (const p of stored) this.policies.set(policyId(p.ref), p);
    this.rev = revision;
    return { revision, undo };
  }

  /** Puts back what an import replaced (after the datapath could not take it); a new revision. */
  revert(undo: PolicyUndo): number {
    const revision = this.rev + 1;
    const put: Record<string, unknown> = { [REVISION_KEY]: revision };
    const del: string[] = [];
    for (const [id, before] of undo) {
      if (before) put[PREFIX + id] = before;
      else del.push(PREFIX + id);
    }
    this.store.commit({ put, delete: del });
    for (const [id, before] of undo) {
      if (before) this.policies.set(id, before);
      else this.policies.delete(id);
    }
    this.rev = revision;
    return revision;
  }

  /** The rules as they will be once `policies` are imported (nothing changes). */
  preview(policies: NewPolicy[]): RuleSet {
    const revision = this.rev + 1;
    const next = new Map(this.policies);
    for (const p of policies) next.set(policyId(p.ref), { ...p, revision });
    return ruleSet(next);
  }

  /** Deletes the named policies (all when `refs` is undefined); returns the new revision. */
  delete(refs?: PolicyRef[]): number {
    const ids = refs ? refs.map(policyId) : [...this.policies.keys()];
    for (const [i, id] of ids.entries()) {
      if (!this.policies.has(id)) throw notFound(`${describePolicy(refs![i]!)} does not exist (see 'membrane policy get')`);
    }
    const revision = this.rev + 1;
    this.store.commit({ put: { [REVISION_KEY]: revision }, delete: ids.map((id) => PREFIX + id) });
    for (const id of ids) this.policies.delete(id);
    this.rev = revision;
    return revision;
  }

  list(): StoredPolicy[] {
    return sorted(this.policies);
  }

  /** Policies matching `namespace/name` in any namespaced kind, or `name` among clusterwide ones. */
  find(namespace: string | undefined, name: string): StoredPolicy[] {
    return this.list().filter((p) => p.ref.name === name && (p.ref.namespace ?? '') === (namespace ?? ''));
  }

  /** Every rule with a stable id for this revision (ids index `ruleTable`). */
  rules(): RuleSet {
    return ruleSet(this.policies);
  }
}

export type NewPolicy = { ref: PolicyRef; source: unknown; rules: Rule[] };
/** What an import replaced, by policy id (undefined: the policy was new). */
export type PolicyUndo = Map<string, StoredPolicy | undefined>;
export interface RuleSet {
  rules: { rule: Rule; ruleId: number }[];
  ruleTable: RuleOrigin[];
}

function sorted(policies: Map<string, StoredPolicy>): StoredPolicy[] {
  return [...policies.values()].sort((a, b) => (policyId(a.ref) < policyId(b.ref) ? -1 : 1));
}

function ruleSet(policies: Map<string, StoredPolicy>): RuleSet {
  const rules: { rule: Rule; ruleId: number }[] = [];
  const ruleTable: RuleOrigin[] = [];
  for (const p of sorted(policies)) {
    p.rules.forEach((rule, index) => {
      ruleTable.push({ ref: p.ref, index, revision: p.revision });
      rules.push({ rule, ruleId: ruleTable.length });
    });
  }
  return { rules, ruleTable };
}
