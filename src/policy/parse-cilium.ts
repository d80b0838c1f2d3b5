/* CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy -> rules. Selectors of a namespaced
 * policy are scoped to its namespace; clusterwide peers select pods of any namespace. Cilium
 * fields we do not implement yet are refused, except in the forms Cilium makes nothing of (an
 * empty toFQDNs, `rules: {}`, `authentication: {mode: disabled}`, ...), so that Cilium's own
 * examples apply unchanged while a policy never silently means less than it says. */
import type { Entity, Peer, PeerRule, PolicyRef, PortMatch, Rule, Selector } from './types.js';
import { POD_NAMESPACE_LABEL } from '../identity/labels.js';
import { POLICY_LIMITS } from './limits.js';
import { CCNP, NS_KEY, PeerBudget, ciliumKey, formatCidr, mentions, parseCidr, parseCidrBlock, parseEndPort, parsePort, parseProtocol, parseSelector, podsOnly, portMatch, withLabel } from './parse-common.js';
import { Ctx, type Obj, asList, asObject, asString, checkFields, emptyListOnly, get, mapList, required, show, typeOf } from './parse-kit.js';

/** How a kind scopes selectors (Cilium's namespace rules). */
interface Scope {
  subject(sel: Selector, ctx: Ctx): Selector;
  peer(sel: Selector): Selector;
}

/** Peers that name the namespace, or select reserved identities (reserved:host and so on, which
 * have no namespace), are left as written, as Cilium does. */
const scopedAlready = (sel: Selector) =>
  mentions(sel, POD_NAMESPACE_LABEL) || [...Object.keys(sel.matchLabels), ...sel.matchExpressions.map((e) => e.key)].some((k) => k.startsWith('reserved:'));

function namespacedScope(ns: string): Scope {
  return {
    // The subject of a namespaced policy is always in its namespace. Cilium overrides a
    // conflicting match with a warning; we refuse it, since it cannot mean what was written.
    subject(sel, ctx) {
      const matchLabels = { ...sel.matchLabels };
      for (const [key, value] of Object.entries(sel.matchLabels)) {
        if (!mentions({ matchLabels: { [key]: value }, matchExpressions: [] }, POD_NAMESPACE_LABEL)) continue;
        if (value !== ns) ctx.field('matchLabels').field(key).fail(`the endpointSelector always applies in the policy's namespace "${ns}" (remove this match, or use ${CCNP})`);
        delete matchLabels[key];
      }
      const expr = sel.matchExpressions.findIndex((e) => mentions({ matchLabels: {}, matchExpressions: [e] }, POD_NAMESPACE_LABEL));
      if (expr >= 0) ctx.field('matchExpressions').index(expr).fail(`the endpointSelector always applies in the policy's namespace "${ns}" (remove this expression, or use ${CCNP})`);
      return withLabel({ matchLabels, matchExpressions: sel.matchExpressions }, NS_KEY, ns);
    },
    peer: (sel) => (scopedAlready(sel) ? sel : withLabel(sel, NS_KEY, ns)),
  };
}

const clusterwideScope: Scope = {
  subject: (sel) => sel,
  // `{}` means every pod in every namespace, not every identity (host, world, ...).
  peer: (sel) => (scopedAlready(sel) ? sel : podsOnly(sel)),
};

export type Section = 'ingress' | 'egress' | 'ingressDeny' | 'egressDeny';

export interface Direction {
  section: Section;
  /** Prefix of the peer fields: fromEndpoints in ingress, toEndpoints in egress. */
  peer: 'from' | 'to';
  deny: boolean;
}

const DIRECTIONS: readonly Direction[] = [
  { section: 'ingress', peer: 'from', deny: false },
  { section: 'egress', peer: 'to', deny: false },
  { section: 'ingressDeny', peer: 'from', deny: true },
  { section: 'egressDeny', peer: 'to', deny: true },
];

const RULE_FIELDS = ['endpointSelector', 'ingress', 'egress', 'ingressDeny', 'egressDeny', 'description', 'labels'];
const RULE_UNSUPPORTED = {
  nodeSelector: 'host policies (nodeSelector) are not supported yet',
  enableDefaultDeny: 'enableDefaultDeny is not supported yet (a non-empty ingress/egress section always enables default deny)',
};

/** What an explicitly empty list of a recognised-but-unimplemented field means in Cilium, which
 * is also how we accept it (a non-empty one is refused with `message`):
 *  - 'absent': as if the field were not there. Requirements, groups, services and FQDNs are not
 *    among the L3 peer lists whose empty list selects nothing, so `{toFQDNs: [], toPorts: P}` is
 *    the L4-only rule `{toPorts: P}` (every peer on P), and `{toFQDNs: []}` alone is `{}`.
 *  - 'no-peers': an L3 peer list, like fromEndpoints: an explicitly empty one selects no peer,
 *    with or without toPorts (Cilium tells an empty list of endpoints, nodes, entities or CIDRs
 *    from an absent one, and selects nothing for it). */
interface EmptyMeans {
  message: string;
  empty: 'absent' | 'no-peers';
}
const ENTRY_EMPTY_LISTS: Record<'from' | 'to', Record<string, EmptyMeans>> = {
  from: {
    fromRequires: { message: 'fromRequires is not supported yet', empty: 'absent' },
    fromNodes: { message: 'fromNodes is not supported yet (fromEntities: [remote-node] selects all other nodes)', empty: 'no-peers' },
    fromGroups: { message: 'fromGroups is not supported yet', empty: 'absent' },
  },
  to: {
    toRequires: { message: 'toRequires is not supported yet', empty: 'absent' },
    toNodes: { message: 'toNodes is not supported yet (toEntities: [remote-node] selects all other nodes)', empty: 'no-peers' },
    toGroups: { message: 'toGroups is not supported yet', empty: 'absent' },
    toServices: { message: 'toServices is not supported yet (select the backends with toEndpoints)', empty: 'absent' },
  },
};
const TO_FQDNS: EmptyMeans = { message: 'toFQDNs (DNS-based policy) is not supported yet (use toCIDR or toCIDRSet)', empty: 'absent' };
const CIDRSET_UNSUPPORTED = {
  cidrGroupRef: 'cidrGroupRef is not supported yet (list the CIDRs)',
  cidrGroupSelector: 'cidrGroupSelector is not supported yet (list the CIDRs)',
};
const L7_FIELDS = ['rules', 'terminatingTLS', 'originatingTLS', 'serverNames', 'listener'];
/** The kinds of L7 rules (`toPorts[].rules`); an empty list of any of them is no rule at all. */
const L7_RULE_LISTS = ['http', 'kafka', 'dns', 'l7'];
const AUTH_MODES = ['disabled', 'required', 'test-always-fail'];

const ENTITIES: readonly Entity[] = ['all', 'world', 'cluster', 'host', 'remote-node', 'init', 'health', 'unmanaged', 'kube-apiserver', 'ingress', 'none'];

export function parseCiliumPolicy(doc: Obj, ctx: Ctx, ref: PolicyRef): Rule[] {
  checkFields(doc, ctx, ['apiVersion', 'kind', 'metadata', 'spec', 'specs', 'status', 'description']);
  // A description next to metadata, as in Cilium's getting-started examples: kept in the source
  // (policy get shows it), not interpreted.
  optionalString(doc, 'description', ctx);
  // `spec` is one rule, `specs` a list; Cilium accepts both together, and so do we.
  const specs: { value: unknown; ctx: Ctx }[] = [];
  const spec = get(doc, 'spec');
  if (spec !== undefined) specs.push({ value: spec, ctx: ctx.field('spec') });
  const list = get(doc, 'specs');
  if (list !== undefined) {
    const lctx = ctx.field('specs');
    asList(list, lctx).forEach((value, i) => specs.push({ value, ctx: lctx.index(i) }));
  }
  if (specs.length === 0) ctx.field('spec').fail('missing (give spec, one rule, or specs, a list of rules)');
  if (specs.length > POLICY_LIMITS.maxRulesPerDocument) {
    ctx.field(list !== undefined ? 'specs' : 'spec').fail(
      `${specs.length} rules is more than the limit of ${POLICY_LIMITS.maxRulesPerDocument} per policy (maxRulesPerDocument); split the policy`,
    );
  }
  const scope = ref.namespace === undefined ? clusterwideScope : namespacedScope(ref.namespace);
  return specs.map((s) => parseCiliumRule(s.value, s.ctx, ref, scope));
}

function parseCiliumRule(v: unknown, ctx: Ctx, ref: PolicyRef, scope: Scope): Rule {
  const o = asObject(v, ctx);
  checkFields(o, ctx, RULE_FIELDS, RULE_UNSUPPORTED);
  const sctx = ctx.field('endpointSelector');
  const subject = scope.subject(parseSelector(required(o, 'endpointSelector', ctx, 'which endpoints the rule applies to; {} for all'), sctx, ciliumKey), sctx);
  const description = optionalString(o, 'description', ctx);
  const labels = get(o, 'labels');
  if (labels !== undefined) asList(labels, ctx.field('labels')); // metadata for humans; not interpreted
  const rule: Rule = { policy: { ...ref }, subject };
  if (description !== undefined) rule.description = description;
  const budget = new PeerBudget();
  for (const dir of DIRECTIONS) {
    const entries = mapList(o, dir.section, ctx, (e, ectx) => parseCiliumEntry(e, ectx, dir, scope, budget));
    // Cilium: an omitted or empty section does not apply (no default deny); `[{}]` is the deny-all idiom.
    if (entries !== undefined && entries.length > 0) rule[dir.section] = entries;
  }
  return rule;
}

/** A string field for humans, validated and returned as given. */
function optionalString(o: Obj, key: string, ctx: Ctx): string | undefined {
  const v = get(o, key);
  return v === undefined ? undefined : asString(v, ctx.field(key));
}

/** One element of ingress/egress/ingressDeny/egressDeny. */
function parseCiliumEntry(v: unknown, ctx: Ctx, dir: Direction, scope: Scope, budget: PeerBudget): PeerRule {
  const o = asObject(v, ctx);
  const p = dir.peer;
  const peerFields = [`${p}Endpoints`, `${p}Entities`, `${p}CIDR`, `${p}CIDRSet`];
  const emptyLists: Record<string, EmptyMeans> = { ...ENTRY_EMPTY_LISTS[p] };
  const refused: Record<string, string> = {};
  // Cilium's deny rules have neither toFQDNs nor authentication, not even empty.
  if (dir.deny) {
    for (const f of p === 'to' ? ['toFQDNs', 'authentication'] : ['authentication']) {
      refused[f] = `${f} cannot be used in ${dir.section} (Cilium's deny rules have no ${f})`;
    }
  } else if (p === 'to') {
    emptyLists.toFQDNs = TO_FQDNS;
  }
  const authentication = dir.deny ? [] : ['authentication'];
  checkFields(o, ctx, [...peerFields, 'toPorts', 'icmps', ...Object.keys(emptyLists), ...authentication, 'description'], refused);

  // Cilium refuses several L3 kinds in one rule (they would read as an AND it does not implement).
  const given = peerFields.filter((f) => {
    const list = get(o, f);
    return Array.isArray(list) && list.length > 0;
  });
  if (given.length > 1) ctx.fail(`combining ${given[0]} and ${given[1]} in one rule is not supported (as in Cilium): put each in its own rule`);
  const icmpsGiven = get(o, 'icmps');
  const toPortsGiven = get(o, 'toPorts');
  if (Array.isArray(icmpsGiven) && icmpsGiven.length && Array.isArray(toPortsGiven) && toPortsGiven.length) {
    ctx.fail('icmps may only be present without toPorts (as in Cilium): put the ports in a separate rule');
  }
  // Recognised, not implemented: accepted only as the no-op Cilium makes of an empty list.
  let emptyL3 = false;
  for (const [f, means] of Object.entries(emptyLists)) {
    if (emptyListOnly(o, f, ctx, means.message) && means.empty === 'no-peers') emptyL3 = true;
  }
  const auth = get(o, 'authentication');
  if (auth !== undefined) parseAuthentication(auth, ctx.field('authentication'));
  const description = optionalString(o, 'description', ctx);

  const peers: Peer[] = [];
  const add = (peer: Peer, pctx: Ctx) => {
    budget.take(pctx);
    peers.push(peer);
  };
  mapList(o, `${p}Endpoints`, ctx, (s, sctx) => add({ type: 'endpoints', selector: scope.peer(parseSelector(s, sctx, ciliumKey)) }, sctx));
  mapList(o, `${p}Entities`, ctx, (e, ectx) => add({ type: 'entity', entity: parseEntity(e, ectx) }, ectx));
  mapList(o, `${p}CIDR`, ctx, (c, cctx) => add({ type: 'cidr', cidr: formatCidr(parseCidr(c, cctx)), except: [], matchEndpoints: false }, cctx));
  mapList(o, `${p}CIDRSet`, ctx, (c, cctx) => add(parseCidrBlock(c, cctx, false, CIDRSET_UNSUPPORTED), cctx));

  const l4 = parseCiliumL4(o, ctx, dir);
  // Any peer field makes this an L3 rule over exactly the peers listed, and an explicitly empty
  // one (fromEndpoints: [], fromNodes: [], ...) selects none, even beside a non-empty list of
  // another kind (as in Cilium). Without any, ports alone make an L4-only rule (every peer);
  // with nothing at all (`{}`) the entry selects nothing, but its section still puts the
  // subject into default deny.
  for (const f of peerFields) {
    const list = get(o, f);
    if (Array.isArray(list) && list.length === 0) emptyL3 = true;
  }
  const hasPeerField = peerFields.some((f) => get(o, f) !== undefined);
  const rule: PeerRule = { peers: emptyL3 ? [] : hasPeerField ? peers : l4.given ? undefined : [], ports: l4.ports };
  if (description !== undefined) rule.description = description;
  return rule;
}

/** `authentication: {mode: disabled}` states what happens anyway: accepted. Mutual
 * authentication itself is not implemented. */
function parseAuthentication(v: unknown, ctx: Ctx): void {
  const o = asObject(v, ctx);
  checkFields(o, ctx, ['mode']);
  const mctx = ctx.field('mode');
  const mode = asString(required(o, 'mode', ctx, `use ${AUTH_MODES.join(', ')}`), mctx);
  if (!AUTH_MODES.includes(mode)) mctx.fail(`unknown mode ${show(mode)} (use ${AUTH_MODES.join(', ')})`);
  if (mode !== 'disabled') mctx.fail(`mutual authentication (mode ${mode}) is not supported yet (only mode: disabled, which requires none)`);
}

function parseEntity(v: unknown, ctx: Ctx): Entity {
  const e = asString(v, ctx);
  if (e === 'world-ipv4') return 'world';
  if (e === 'world-ipv6') ctx.fail('world-ipv6: IPv6 is not supported yet (use world or world-ipv4)');
  if (!ENTITIES.includes(e as Entity)) ctx.fail(`unknown entity ${show(e)} (use one of ${ENTITIES.join(', ')})`);
  return e as Entity;
}

/** toPorts and icmps of an entry. `given`: the entry restricts L4 at all (a non-empty toPorts
 * or icmps; an explicitly empty list adds nothing, as in Cilium). `ports` undefined = all. */
function parseCiliumL4(o: Obj, ctx: Ctx, dir: Direction): { given: boolean; ports: PortMatch[] | undefined } {
  const ports: PortMatch[] = [];
  let allPorts = false;
  const toPorts =
    mapList(o, 'toPorts', ctx, (e, ectx) => {
      const matches = parseToPortsEntry(e, ectx, dir);
      if (matches === undefined) allPorts = true;
      else ports.push(...matches);
    }) ?? [];
  const icmps = mapList(o, 'icmps', ctx, parseIcmpRule) ?? [];
  ports.push(...icmps.flat());
  const given = toPorts.length > 0 || icmps.length > 0;
  return { given, ports: allPorts || ports.length === 0 ? undefined : ports };
}

/** One toPorts element; undefined when it has no ports (all ports). L7 fields are refused in
 * deny sections (Cilium's deny ports have none); elsewhere `rules` without any L7 rule in it
 * (`{}`, `{http: []}`) and an empty serverNames change nothing, as in Cilium, so the element is
 * the L4 rule it would be without them. */
function parseToPortsEntry(v: unknown, ctx: Ctx, dir: Direction): PortMatch[] | undefined {
  const o = asObject(v, ctx);
  const unsupported: Record<string, string> = {};
  const emptyOk = dir.deny ? [] : ['rules', 'serverNames'];
  for (const f of L7_FIELDS) {
    if (emptyOk.includes(f)) continue;
    unsupported[f] = dir.deny ? `${f} cannot be used in ${dir.section} (deny rules are L3/L4 only)` : `${f} is not supported yet (only L3/L4 policy is enforced)`;
  }
  checkFields(o, ctx, ['ports', ...emptyOk], unsupported);
  if (!dir.deny) {
    const rules = get(o, 'rules');
    if (rules !== undefined) parseEmptyL7Rules(rules, ctx.field('rules'));
    emptyListOnly(o, 'serverNames', ctx, 'serverNames (TLS SNI) is not supported yet (only L3/L4 policy is enforced)');
  }
  const ports = mapList(o, 'ports', ctx, parseCiliumPort);
  return ports === undefined || ports.length === 0 ? undefined : ports;
}

/** `rules` of a toPorts element: only without any L7 rule in it. */
function parseEmptyL7Rules(v: unknown, ctx: Ctx): void {
  const o = asObject(v, ctx);
  checkFields(o, ctx, L7_RULE_LISTS, { l7proto: 'L7 rules (l7proto) are not supported yet (only L3/L4 policy is enforced)' });
  for (const f of L7_RULE_LISTS) emptyListOnly(o, f, ctx, `L7 rules (${f}) are not supported yet (only L3/L4 policy is enforced)`);
}

function parseCiliumPort(v: unknown, ctx: Ctx): PortMatch {
  const o = asObject(v, ctx);
  checkFields(o, ctx, ['port', 'endPort', 'protocol']);
  const protocol = parseProtocol(get(o, 'protocol'), ctx.field('protocol'), ['TCP', 'UDP', 'SCTP', 'ANY'], 'ANY');
  const raw = get(o, 'port');
  const port = raw === undefined ? undefined : parsePort(raw, ctx.field('port'), true);
  const endPort = parseEndPort(get(o, 'endPort'), port, ctx.field('endPort'));
  return portMatch(protocol, port, endPort);
}

const ICMP_TYPES: Record<string, number> = {
  EchoReply: 0,
  DestinationUnreachable: 3,
  Redirect: 5,
  EchoRequest: 8,
  RouterAdvertisement: 9,
  RouterSelection: 10,
  TimeExceeded: 11,
  ParameterProblem: 12,
  Timestamp: 13,
  TimestampReply: 14,
  Photuris: 40,
  ExtendedEchoRequest: 42,
  ExtendedEchoReply: 43,
};

function parseIcmpRule(v: unknown, ctx: Ctx): PortMatch[] {
  const o = asObject(v, ctx);
  checkFields(o, ctx, ['fields']);
  const fields = mapList(o, 'fields', ctx, parseIcmpField) ?? [];
  if (fields.length === 0) ctx.field('fields').fail('needs at least one {type: ...} (e.g. type: EchoRequest)');
  return fields;
}

function parseIcmpField(v: unknown, ctx: Ctx): PortMatch {
  const o = asObject(v, ctx);
  checkFields(o, ctx, ['type', 'family']);
  const family = get(o, 'family');
  if (family !== undefined) {
    const f = asString(family, ctx.field('family'));
    if (f.toLowerCase() === 'ipv6') ctx.field('family').fail('ICMPv6 (family IPv6) is not supported yet');
    if (f.toLowerCase() !== 'ipv4') ctx.field('family').fail(`unknown family ${show(f)} (use IPv4)`);
  }
  const t = required(o, 'type', ctx, 'an ICMP type number 0-255 or a name such as EchoRequest');
  return { protocol: 'ICMP', icmpType: parseIcmpType(t, ctx.field('type')) };
}

/** A number 0-255 (digits in a string too) or one of Cilium's names, case-insensitively. */
function parseIcmpType(t: unknown, ctx: Ctx): number {
  if (typeof t === 'string' && !/^\d+$/.test(t)) {
    const named = Object.entries(ICMP_TYPES).find(([name]) => name.toLowerCase() === t.toLowerCase());
    if (!named) ctx.fail(`unknown ICMP type ${show(t)} (use 0-255 or one of ${Object.keys(ICMP_TYPES).join(', ')})`);
    return named[1];
  }
  const n = typeof t === 'string' ? Number(t) : t;
  if (typeof n !== 'number' || !Number.isInteger(n)) ctx.fail(`expected an ICMP type number or name, not ${typeOf(t)}`);
  if (n < 0 || n > 255) ctx.fail(`ICMP type ${n} is out of range (use 0-255)`);
  return n;
}
