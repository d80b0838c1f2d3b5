/* Kubernetes NetworkPolicy -> rules: peers become label selectors over the namespace labels
 * Cilium derives for every pod; ipBlocks also select pods by address (Kubernetes' semantics). */
import type { Peer, PeerRule, PolicyRef, PortMatch, Rule, Selector } from './types.js';
import { NS_KEY, PeerBudget, namespaceKey, parseCidrBlock, parseEndPort, parsePort, parseProtocol, parseSelector, podKey, podsOnly, portMatch, withLabel } from './parse-common.js';
import { Ctx, type Obj, asObject, checkFields, get, mapList, required, show } from './parse-kit.js';

export function parseK8sPolicy(doc: Obj, ctx: Ctx, ref: PolicyRef): Rule[] {
  checkFields(doc, ctx, ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  const ns = ref.namespace ?? '';
  const sctx = ctx.field('spec');
  const spec = asObject(required(doc, 'spec', ctx, 'a NetworkPolicy needs spec.podSelector'), sctx);
  checkFields(spec, sctx, ['podSelector', 'policyTypes', 'ingress', 'egress']);
  const podSelector = required(spec, 'podSelector', sctx, '{} selects every pod in the namespace');
  const subject = withLabel(parseSelector(podSelector, sctx.field('podSelector'), podKey), NS_KEY, ns);
  const types = parsePolicyTypes(spec, sctx);
  const budget = new PeerBudget();
  // Rules of a direction not in policyTypes are still validated, then ignored (as Kubernetes does).
  const ingress = mapList(spec, 'ingress', sctx, (r, rctx) => parseK8sRule(r, rctx, 'from', ns, budget)) ?? [];
  const egress = mapList(spec, 'egress', sctx, (r, rctx) => parseK8sRule(r, rctx, 'to', ns, budget)) ?? [];
  const rule: Rule = { policy: { ...ref }, subject };
  if (types.has('Ingress')) rule.ingress = ingress;
  if (types.has('Egress')) rule.egress = egress;
  return [rule];
}

/** Explicit policyTypes, or Kubernetes' default: Ingress, plus Egress when there are egress
 * rules (the API server checks for a non-empty list, and so do we). */
export function parsePolicyTypes(spec: Obj, ctx: Ctx): Set<string> {
  const given = mapList(spec, 'policyTypes', ctx, (t, tctx) => {
    if (t !== 'Ingress' && t !== 'Egress') tctx.fail(`unknown policy type ${show(t)} (use Ingress or Egress)`);
    return t as string;
  });
  if (given !== undefined && given.length > 0) return new Set(given);
  const egress = get(spec, 'egress');
  return new Set(Array.isArray(egress) && egress.length > 0 ? ['Ingress', 'Egress'] : ['Ingress']);
}

/** One ingress `{from, ports}` or egress `{to, ports}` rule; an empty or missing list means all. */
export function parseK8sRule(v: unknown, ctx: Ctx, peerField: 'from' | 'to', ns: string, budget: PeerBudget): PeerRule {
  const o = asObject(v, ctx);
  checkFields(o, ctx, [peerField, 'ports']);
  const peers = mapList(o, peerField, ctx, (p, pctx) => {
    budget.take(pctx);
    return parseK8sPeer(p, pctx, ns);
  });
  const ports = mapList(o, 'ports', ctx, parseK8sPort);
  return { peers: peers?.length ? peers : undefined, ports: ports?.length ? ports : undefined };
}

export function parseK8sPeer(v: unknown, ctx: Ctx, ns: string): Peer {
  const o = asObject(v, ctx);
  checkFields(o, ctx, ['podSelector', 'namespaceSelector', 'ipBlock']);
  const pods = get(o, 'podSelector');
  const namespaces = get(o, 'namespaceSelector');
  const ipBlock = get(o, 'ipBlock');
  if (ipBlock !== undefined) {
    if (pods !== undefined || namespaces !== undefined) {
      ctx.field('ipBlock').fail('ipBlock cannot be combined with podSelector or namespaceSelector (make them separate peers)');
    }
    return parseCidrBlock(ipBlock, ctx.field('ipBlock'), true);
  }
  if (pods === undefined && namespaces === undefined) ctx.fail('a peer needs podSelector, namespaceSelector or ipBlock');
  const podSel = pods === undefined ? undefined : parseSelector(pods, ctx.field('podSelector'), podKey);
  if (namespaces === undefined) return { type: 'endpoints', selector: withLabel(podSel ?? emptySelector(), NS_KEY, ns) };
  // Namespaces are selected through the namespace labels Cilium puts on every pod; the Exists
  // term keeps non-pod identities (host, world) out even for `namespaceSelector: {}`.
  const nsSel = podsOnly(parseSelector(namespaces, ctx.field('namespaceSelector'), namespaceKey));
  if (podSel === undefined) return { type: 'endpoints', selector: nsSel };
  return {
    type: 'endpoints',
    selector: { matchLabels: { ...podSel.matchLabels, ...nsSel.matchLabels }, matchExpressions: [...podSel.matchExpressions, ...nsSel.matchExpressions] },
  };
}

export function emptySelector(): Selector {
  return { matchLabels: {}, matchExpressions: [] };
}

export function parseK8sPort(v: unknown, ctx: Ctx): PortMatch {
  const o = asObject(v, ctx);
  checkFields(o, ctx, ['protocol', 'port', 'endPort']);
  const protocol = parseProtocol(get(o, 'protocol'), ctx.field('protocol'), ['TCP', 'UDP', 'SCTP'], 'TCP');
  const raw = get(o, 'port');
  const port = raw === undefined ? undefined : parsePort(raw, ctx.field('port'), false);
  const endPort = parseEndPort(get(o, 'endPort'), port, ctx.field('endPort'));
  return portMatch(protocol, port, endPort);
}
