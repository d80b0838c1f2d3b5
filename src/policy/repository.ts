/* The policy repository: imported policies by kind/namespace/name, persisted in the store, with
 * a revision that moves on every change. Importing a policy with the name of an existing one
 * replaces it, like `kubectl apply`. Every rule has a stable id (what map entries carry for
 * flow attribution): replacing a policy keeps the ids of its rules, so unrelated map entries
 * never need rewriting. */
import { notFound } from '../errors.js';
import type { Store } from '../store/store.js';
import type { PolicyRef, Rule, StoredPolicy } from './types.js';

const PREFIX = 'policies/';
const REVISION_KEY = 'meta/policy-revision';
const NEXT_RULE_ID_KEY = 'meta/next-rule-id';

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

export type NewPolicy = { ref: PolicyRef; source: unknown; rules: Rule[] };
/** What an import replaced, by policy id (undefined: the policy was new). */
export type PolicyUndo = Map<string, StoredPolicy | undefined>;

export interface RuleSet {
  rules: { rule: Rule; ruleId: number }[];
  ruleTable: Map<number, RuleOrigin>;
  /** For a change of some policies: their rules before and after (what the change can affect). */
  changed?: { before: Rule[]; after: Rule[] };
}

/** Told after policies were imported or put back (updated) and deleted (for agent events); optional. */
export interface PolicyListener {
  policiesUpdated?(policies: StoredPolicy[], revision: number): void;
  policiesDeleted?(policies: StoredPolicy[], revision: number): void;
}

export class PolicyRepository {
  private readonly policies = new Map<string, StoredPolicy>();
  private rev: number;
  private nextRuleId: number;
  listener?: PolicyListener;

  constructor(private readonly store: Store) {
    for (const [, p] of store.list<StoredPolicy>(PREFIX)) this.policies.set(policyId(p.ref), p);
    this.rev = store.get<number>(REVISION_KEY) ?? 1;
    this.nextRuleId = store.get<number>(NEXT_RULE_ID_KEY) ?? 1;
    // Policies stored before rule ids were: number their rules in order, as the datapath has them.
    if (sorted(this.policies).some((p) => !p.ruleIds)) {
      let id = 1;
      const put: Record<string, unknown> = {};
      for (const p of sorted(this.policies)) {
        p.ruleIds = p.rules.map(() => id++);
        put[PREFIX + policyId(p.ref)] = p;
      }
      this.nextRuleId = Math.max(this.nextRuleId, id);
      store.commit({ put: { ...put, [NEXT_RULE_ID_KEY]: this.nextRuleId } });
    }
  }

  get revision(): number {
    return this.rev;
  }

  /** Adds or replaces all the policies at once; returns the new revision and how to undo it. */
  import(policies: NewPolicy[]): { revision: number; undo: PolicyUndo } {
    const { next, stored, nextRuleId } = this.withImported(policies);
    const undo: PolicyUndo = new Map(stored.map((p) => [policyId(p.ref), this.policies.get(policyId(p.ref))]));
    const revision = this.rev + 1;
    this.store.commit({
      put: { ...Object.fromEntries(stored.map((p) => [PREFIX + policyId(p.ref), p])), [REVISION_KEY]: revision, [NEXT_RULE_ID_KEY]: nextRuleId },
    });
    this.replaceAll(next);
    this.nextRuleId = nextRuleId;
    this.rev = revision;
    this.listener?.policiesUpdated?.(stored, revision);
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
    const removed = del.map((key) => this.policies.get(key.slice(PREFIX.length))).filter((p): p is StoredPolicy => p !== undefined);
    for (const [id, before] of undo) {
      if (before) this.policies.set(id, before);
      else this.policies.delete(id);
    }
    this.rev = revision;
    const restored = [...undo.values()].filter((p): p is StoredPolicy => p !== undefined);
    if (restored.length) this.listener?.policiesUpdated?.(restored, revision);
    if (removed.length) this.listener?.policiesDeleted?.(removed, revision);
    return revision;
  }

  /** The rules as they will be once `policies` are imported (nothing changes). */
  preview(policies: NewPolicy[]): RuleSet {
    const { next, stored } = this.withImported(policies);
    const before = stored.flatMap((p) => this.policies.get(policyId(p.ref))?.rules ?? []);
    return { ...ruleSet(next), changed: { before, after: stored.flatMap((p) => p.rules) } };
  }

  /** The rules as they will be once `refs` (all when undefined) are deleted (nothing changes). */
  previewDelete(refs?: PolicyRef[]): RuleSet {
    const ids = this.idsToDelete(refs);
    const next = new Map(this.policies);
    for (const id of ids) next.delete(id);
    return { ...ruleSet(next), changed: { before: ids.flatMap((id) => this.policies.get(id)!.rules), after: [] } };
  }

  /** Deletes the named policies (all when `refs` is undefined); returns the new revision. */
  delete(refs?: PolicyRef[]): number {
    const ids = this.idsToDelete(refs);
    const revision = this.rev + 1;
    this.store.commit({ put: { [REVISION_KEY]: revision }, delete: ids.map((id) => PREFIX + id) });
    const removed = ids.map((id) => this.policies.get(id)!);
    for (const id of ids) this.policies.delete(id);
    this.rev = revision;
    if (removed.length) this.listener?.policiesDeleted?.(removed, revision);
    return revision;
  }

  list(): StoredPolicy[] {
    return sorted(this.policies);
  }

  /** Policies matching `namespace/name` in any namespaced kind, or `name` among clusterwide ones. */
  find(namespace: string | undefined, name: string): StoredPolicy[] {
    return this.list().filter((p) => p.ref.name === name && (p.ref.namespace ?? '') === (namespace ?? ''));
  }

  /** Every rule with its stable id. */
  rules(): RuleSet {
    return ruleSet(this.policies);
  }

  private idsToDelete(refs?: PolicyRef[]): string[] {
    const ids = refs ? refs.map(policyId) : [...this.policies.keys()];
    for (const [i, id] of ids.entries()) {
      if (!this.policies.has(id)) throw notFound(`${describePolicy(refs![i]!)} does not exist (see 'membrane policy get')`);
    }
    return ids;
  }

  /** The policy set with `policies` imported: a replaced policy keeps its rules' ids, in order. */
  private withImported(policies: NewPolicy[]): { next: Map<string, StoredPolicy>; stored: StoredPolicy[]; nextRuleId: number } {
    const revision = this.rev + 1;
    let nextRuleId = this.nextRuleId;
    const next = new Map(this.policies);
    const stored = policies.map((p): StoredPolicy => {
      const old = this.policies.get(policyId(p.ref))?.ruleIds ?? [];
      const ruleIds = p.rules.map((_, i) => old[i] ?? nextRuleId++);
      const s = { ...p, revision, ruleIds };
      next.set(policyId(p.ref), s);
      return s;
    });
    return { next, stored, nextRuleId };
  }

  private replaceAll(next: Map<string, StoredPolicy>): void {
    this.policies.clear();
    for (const [id, p] of next) this.policies.set(id, p);
  }
}

function sorted(policies: Map<string, StoredPolicy>): StoredPolicy[] {
  return [...policies.values()].sort((a, b) => (policyId(a.ref) < policyId(b.ref) ? -1 : 1));
}

function ruleSet(policies: Map<string, StoredPolicy>): RuleSet {
  const rules: { rule: Rule; ruleId: number }[] = [];
  const ruleTable = new Map<number, RuleOrigin>();
  for (const p of sorted(policies)) {
    p.rules.forEach((rule, index) => {
      const ruleId = p.ruleIds![index]!;
      ruleTable.set(ruleId, { ref: p.ref, index, revision: p.revision });
      rules.push({ rule, ruleId });
    });
  }
  return { rules, ruleTable };
}
