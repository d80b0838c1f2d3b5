/* Turns the engine's per-endpoint policy into map entries and writes them by difference. Each
 * endpoint carries a policy revision in its endpoint entry; it moves whenever the endpoint's
 * entries or enforcement change, which makes the datapath judge established connections again
 * (so a withdrawn allow also stops live connections). */
import type { Logger } from 'pino';
import type { Datapath, PolicyMapEntry } from '../datapath/datapath.js';
import { EP_FLAGS, POLICY_FLAGS, POLICY_PREFIX } from '../datapath/layouts.js';
import { RESERVED_IDENTITIES } from '../identity/reserved.js';
import { collectPrefixes, DIRECTION_CODE, endpointBlocks, PolicyEngine, type EndpointPolicy, type EngineInput, type EngineOutput, type EnforcementMode, type PolicyEndpoint, type PolicyIdentity, type RemoteEndpoint } from './engine.js';
import { LabelSet, matches } from './selector.js';
import type { Rule } from './types.js';
import { invalid } from '../errors.js';
import type { PolicyRepository, RuleOrigin, RuleSet } from './repository.js';

export interface PolicyPlan {
  out: EngineOutput;
  ruleTable: Map<number, RuleOrigin>;
  /** The endpoints computed anew (undefined: all). */
  affected?: Set<number>;
  input: EngineInput;
  prefixes: string;
  endpointsKey: string;
}

/** The CIDR prefixes rules name, and the ipBlocks that select endpoints, as one comparable string. */
function prefixKey(rules: Rule[]): string {
  return [...new Set([...collectPrefixes(rules), ...endpointBlocks(rules).map((b) => `endpoints in ${b.key}`)])].sort().join(',');
}

/** What of the endpoints policy depends on (the other nodes' too, when given), as one comparable string. */
function endpointKey(endpoints: PolicyEndpoint[], remote: RemoteEndpoint[]): string {
  let key = '';
  for (const e of endpoints) {
    key += `${e.id}:${e.identity}:${e.ipv4}`;
    for (const p of e.ports) key += `:${p.name}=${p.port}/${p.protocol}`;
    key += ',';
  }
  if (remote.length) key += `remote:${remote.map((e) => `${e.identity}@${e.ipv4}`).sort().join(',')}`;
  return key;
}

/** Whether rules with these prefixes (prefixKey) have ipBlocks that select endpoints by address. */
const selectsByAddress = (prefixes: string) => prefixes.includes('endpoints in ');

export interface EndpointPolicyState {
  flags: number;
  revision: number;
}

export interface RegenerateResult {
  /** Endpoints whose flags or revision changed: their endpoint entries need rewriting. */
  changed: Set<number>;
  entriesWritten: number;
  entriesDeleted: number;
}

export class PolicyRealizer {
  private readonly engine = new PolicyEngine();
  private readonly states = new Map<number, EndpointPolicyState>();
  /** What the last realized plan computed, and from what. */
  private last?: { output: EngineOutput; prefixes: string; endpointsKey: string; input: EngineInput; selectorsFresh: boolean };
  private ruleTable = new Map<number, RuleOrigin>();

  constructor(
    private readonly repo: PolicyRepository,
    private readonly datapath: Datapath,
    private readonly opts: { cluster: string; enforcement: EnforcementMode; allowLocalhost: boolean; auditMode: boolean },
    private readonly log: Logger,
  ) {
    // Continue the revisions an earlier agent left in the maps, so a restart rewrites nothing.
    for (const [epId, info] of datapath.realizedEndpoints()) {
      this.states.set(epId, { flags: info.flags, revision: info.policy_revision });
    }
  }

  state(epId: number): EndpointPolicyState {
    return this.states.get(epId) ?? { flags: 0, revision: 1 };
  }

  /**
   * Computes endpoints' policy for a rule set (the repository's by default) without touching
   * the kernel, and refuses one that would not fit the policy map (`checkCapacity`): a policy
   * is rejected whole, never half-applied. A change of some policies recomputes only the
   * endpoints their rules select (old or new) — unless it names new CIDR prefixes, which every
   * world and CIDR peer depends on, or the endpoints changed since the last plan.
   * `remote` gives the other nodes' endpoints (in a cluster): asked only while an ipBlock
   * selects endpoints by address, since nothing else in policy depends on where they are.
   */
  plan(
    endpoints: PolicyEndpoint[],
    identities: PolicyIdentity[],
    ruleSet: RuleSet = this.repo.rules(),
    checkCapacity = false,
    remote: () => RemoteEndpoint[] = () => [],
  ): PolicyPlan {
    const last = this.last;
    const changed = ruleSet.changed;
    // The prefix set cannot move when the changed policies name the same prefixes as before.
    const prefixes =
      changed && last && prefixKey(changed.before) === prefixKey(changed.after) ? last.prefixes : prefixKey(ruleSet.rules.map((r) => r.rule));
    const remoteEndpoints = selectsByAddress(prefixes) ? remote() : [];
    const input: EngineInput = {
      rules: ruleSet.rules,
      endpoints: endpoints.map((e) => ({ id: e.id, identity: e.identity, identityLabels: e.identityLabels, ipv4: e.ipv4, ports: e.ports })),
      remoteEndpoints,
      identities: [...RESERVED_IDENTITIES.map((r) => ({ id: r.id, labels: [`reserved:${r.name}`] })), ...identities],
      cluster: this.opts.cluster,
      enforcement: this.opts.enforcement,
    };
    const endpointsKey = endpointKey(endpoints, remoteEndpoints);
    let affected: Set<number> | undefined;
    if (changed && last && last.prefixes === prefixes && last.endpointsKey === endpointsKey) {
      const subjects = [...changed.before, ...changed.after].map((r) => r.subject);
      // Endpoints of one identity share their labels: match once per identity.
      const selected = new Map<number, boolean>();
      affected = new Set();
      for (const e of endpoints) {
        let hit = selected.get(e.identity);
        if (hit === undefined) {
          const labels = new LabelSet(e.identityLabels);
          hit = subjects.some((sel) => matches(sel, labels));
          selected.set(e.identity, hit);
        }
        if (hit) affected.add(e.id);
      }
    }
    const out = this.engine.compute(input, affected);
    if (affected && last) {
      // The others keep what they have.
      for (const [id, p] of last.output.endpoints) if (!affected.has(id)) out.endpoints.set(id, p);
    }
    let entries = 0;
    for (const p of out.endpoints.values()) entries += p.entries.length;
    const capacity = this.datapath.policyCapacity;
    if (checkCapacity && entries > capacity) {
      throw invalid(
        `these policies need ${entries.toLocaleString('en')} policy map entries, more than the ${capacity.toLocaleString('en')} the map holds: narrow their peers or port ranges`,
      );
    }
    return { out, ruleTable: ruleSet.ruleTable, affected, input, prefixes, endpointsKey };
  }

  /** Writes what differs from a plan (computed now from the repository when not given). */
  regenerate(endpoints: PolicyEndpoint[], identities: PolicyIdentity[], planned?: PolicyPlan, remote?: () => RemoteEndpoint[]): RegenerateResult {
    const plan = planned ?? this.plan(endpoints, identities, undefined, false, remote);
    const { out, ruleTable, affected } = plan;
    this.ruleTable = ruleTable;
    for (const w of out.warnings) this.log.warn(w);
    const before = this.last?.output.policyIdentities ?? new Map<number, number>();
    this.last = { output: out, prefixes: plan.prefixes, endpointsKey: plan.endpointsKey, input: plan.input, selectorsFresh: !affected };

    const result: RegenerateResult = { changed: new Set(), entriesWritten: 0, entriesDeleted: 0 };
    // An endpoint seen by another identity now: its ipcache and endpoint entries change.
    for (const ep of endpoints) if (before.get(ep.id) !== out.policyIdentities.get(ep.id)) result.changed.add(ep.id);
    for (const ep of endpoints) {
      if (affected && !affected.has(ep.id)) continue; // its entries and flags did not change
      const policy = out.endpoints.get(ep.id)!;
      const stats = this.datapath.writePolicy(ep.id, toMapEntries(ep.id, policy));
      result.entriesWritten += stats.written;
      result.entriesDeleted += stats.deleted;
      const prev = this.state(ep.id);
      const flags = flagsOf(policy, this.opts);
      const entriesChanged = stats.written + stats.deleted > 0;
      if (entriesChanged || flags !== prev.flags || !this.states.has(ep.id)) {
        this.states.set(ep.id, { flags, revision: entriesChanged || flags !== prev.flags ? prev.revision + 1 : prev.revision });
        result.changed.add(ep.id);
      }
    }
    // Endpoints that are gone: their entries go too.
    const live = new Set(endpoints.map((e) => e.id));
    for (const epId of this.datapath.policyEndpointIds()) {
      if (!live.has(epId)) result.entriesDeleted += this.datapath.writePolicy(epId, []).deleted;
    }
    for (const epId of [...this.states.keys()]) if (!live.has(epId)) this.states.delete(epId);
    return result;
  }

  /** Whether the realized policy depends on the other nodes' endpoints (an ipBlock selects endpoints). */
  dependsOnRemoteEndpoints(): boolean {
    return this.last !== undefined && selectsByAddress(this.last.prefixes);
  }

  /** The identity policy sees an endpoint by: an address identity where ipBlocks split its own. */
  policyIdentityOf(ep: { id: number; identity: number }): number {
    return this.last?.output.policyIdentities.get(ep.id) ?? ep.identity;
  }

  /** The identity an address identity stands for (itself for any other). */
  baseIdentity(id: number): number {
    return this.last?.output.addressIdentities.get(id) ?? id;
  }

  /** CIDR prefixes named by policies, with their identities (for the ipcache). */
  cidrs(): Map<string, number> {
    return this.last?.output.cidrs ?? new Map();
  }

  policyOf(epId: number): EndpointPolicy | undefined {
    return this.last?.output.endpoints.get(epId);
  }

  /** Each peer selector with the identities it selects (a partial plan recounts them all once). */
  selectors() {
    const last = this.last;
    if (!last) return [];
    if (!last.selectorsFresh) {
      last.output = { ...last.output, selectors: this.engine.compute(last.input).selectors };
      last.selectorsFresh = true;
    }
    return last.output.selectors;
  }

  ruleRef(ruleId: number): RuleOrigin | undefined {
    return this.ruleTable.get(ruleId);
  }

  /** The policies (once each) whose rules select the endpoint in a direction. */
  selectingPolicies(epId: number, direction: 'ingress' | 'egress'): RuleOrigin[] {
    const seen = new Map<string, RuleOrigin>();
    for (const id of this.policyOf(epId)?.selectedBy[direction] ?? []) {
      const origin = this.ruleRef(id);
      if (origin) seen.set(`${origin.ref.kind}/${origin.ref.namespace ?? ''}/${origin.ref.name}`, origin);
    }
    return [...seen.values()];
  }
}

function flagsOf(p: EndpointPolicy, opts: { allowLocalhost: boolean; auditMode: boolean }): number {
  return (
    (p.ingressEnforced ? EP_FLAGS.INGRESS_ENFORCED : 0) |
    (p.egressEnforced ? EP_FLAGS.EGRESS_ENFORCED : 0) |
    (opts.allowLocalhost ? EP_FLAGS.ALLOW_HOST_INGRESS : 0) |
    (opts.auditMode ? EP_FLAGS.POLICY_AUDIT : 0)
  );
}

function toMapEntries(epId: number, p: EndpointPolicy): PolicyMapEntry[] {
  return p.entries.map((e) => [
    {
      prefixlen: POLICY_PREFIX.FIXED + e.l4.bits,
      ep_id: epId,
      identity: e.identity,
      direction: DIRECTION_CODE[e.direction],
      protocol: e.l4.protocol,
      dport: e.l4.port,
    },
    { flags: e.deny ? POLICY_FLAGS.DENY : 0, l4_prefixlen: e.l4.bits, rule_id: e.ruleId },
  ]);
}
