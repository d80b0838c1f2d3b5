/* What both policy dialects share: the kinds, label selectors and label keys, CIDRs and
 * ports, and the peer budget of a rule. */
import { NAMESPACE_LABEL_PREFIX, POD_NAMESPACE_LABEL, parseLabel, type Label } from '../identity/labels.js';
import { POLICY_LIMITS } from './limits.js';
import type { Peer, PolicyKind, PortMatch, Protocol, Selector, SelectorOperator } from './types.js';
import { UserError } from '../errors.js';
import { Ctx, asObject, asString, checkFields, get, mapList, required, show, typeOf } from './parse-kit.js';

export const CNP = 'CiliumNetworkPolicy';
export const CCNP = 'CiliumClusterwideNetworkPolicy';
export const KNP = 'NetworkPolicy';
export const API_VERSIONS: Record<PolicyKind, string> = {
  [CNP]: 'cilium.io/v2',
  [CCNP]: 'cilium.io/v2',
  [KNP]: 'networking.k8s.io/v1',
};
export const KIND_LIST = `${CNP}, ${CCNP} or ${KNP}`;
export const NS_KEY = `k8s:${POD_NAMESPACE_LABEL}`;


/** Turns a key as written into the `source:key` form the model uses, validating it. */
export type KeyMapper = (key: string, ctx: Ctx) => string;

/** Cilium keys: `source:key` keeps its source, an unprefixed key matches any source. */
export const ciliumKey: KeyMapper = (key, ctx) => {
  const label = checkLabel(key, ctx, 'any');
  return `${label.source}:${label.key}`;
};

/** Kubernetes keys have no source; `prefix` says what they select in Cilium's label space. */
export function k8sKey(prefix: string): KeyMapper {
  return (key, ctx) => {
    if (key.includes(':')) ctx.fail(`NetworkPolicy label keys cannot have a source prefix such as "k8s:" (write ${show(key.slice(key.indexOf(':') + 1))})`);
    checkLabel(key, ctx, 'k8s');
    return prefix + key;
  };
}
export const podKey = k8sKey('any:');
export const namespaceKey = k8sKey(`k8s:${NAMESPACE_LABEL_PREFIX}`);

/** Validates a `[source:]key` with the label module's rules. */
export function checkLabel(key: string, ctx: Ctx, defaultSource: string): Label {
  if (key.includes('=')) ctx.fail(`invalid label key ${show(key)}: keys cannot contain "="`);
  return labelRules(key, ctx, defaultSource, `invalid label key ${show(key)}: `);
}

export function labelValue(v: unknown, ctx: Ctx): string {
  if (typeof v !== 'string') {
    ctx.fail(`label values must be strings (quote it: "${typeof v === 'object' ? '...' : String(v)}")`);
  }
  labelRules(`k8s:v=${v}`, ctx, 'k8s', `invalid label value ${show(v)}: `); // a placeholder key: only the value can be at fault
  return v;
}

/** parseLabel, with its message re-pointed at the field that holds the label. */
export function labelRules(text: string, ctx: Ctx, defaultSource: string, what: string): Label {
  try {
    return parseLabel(text, defaultSource);
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    const prefix = `label "${text}": `;
    ctx.fail(what + (err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message));
  }
}

export const OPERATORS: readonly SelectorOperator[] = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

export function parseSelector(v: unknown, ctx: Ctx, mapKey: KeyMapper): Selector {
  const o = asObject(v, ctx);
  checkFields(o, ctx, ['matchLabels', 'matchExpressions']);
  const sel: Selector = { matchLabels: {}, matchExpressions: [] };
  const labels = get(o, 'matchLabels');
  if (labels !== undefined) {
    const lctx = ctx.field('matchLabels');
    for (const [rawKey, rawValue] of Object.entries(asObject(labels, lctx))) {
      const kctx = lctx.field(rawKey);
      const key = mapKey(rawKey, kctx);
      const value = labelValue(rawValue, kctx);
      if (Object.hasOwn(sel.matchLabels, key)) kctx.fail(`the key ${key} is given twice`);
      sel.matchLabels[key] = value;
    }
  }
  sel.matchExpressions = mapList(o, 'matchExpressions', ctx, (e, ectx) => parseExpression(e, ectx, mapKey)) ?? [];
  return sel;
}

export function parseExpression(v: unknown, ctx: Ctx, mapKey: KeyMapper): Selector['matchExpressions'][number] {
  const o = asObject(v, ctx);
  checkFields(o, ctx, ['key', 'operator', 'values']);
  const key = mapKey(asString(required(o, 'key', ctx), ctx.field('key')), ctx.field('key'));
  const op = asString(required(o, 'operator', ctx, `use ${OPERATORS.join(', ')}`), ctx.field('operator'));
  if (!OPERATORS.includes(op as SelectorOperator)) ctx.field('operator').fail(`unknown operator ${show(op)} (use ${OPERATORS.join(', ')})`);
  const operator = op as SelectorOperator;
  const values = mapList(o, 'values', ctx, labelValue) ?? [];
  const needsValues = operator === 'In' || operator === 'NotIn';
  if (needsValues && values.length === 0) ctx.field('values').fail(`operator ${operator} needs a non-empty list of values`);
  if (!needsValues && values.length > 0) ctx.field('values').fail(`operator ${operator} takes no values (remove them, or use In/NotIn)`);
  return { key, operator, values };
}

/** Whether a selector says anything about `key` (given without source), under any source. */
export function mentions(sel: Selector, key: string): boolean {
  const hit = (k: string) => k.slice(k.indexOf(':') + 1) === key;
  return Object.keys(sel.matchLabels).some(hit) || sel.matchExpressions.some((e) => hit(e.key));
}

export function withLabel(sel: Selector, key: string, value: string): Selector {
  return { matchLabels: { ...sel.matchLabels, [key]: value }, matchExpressions: sel.matchExpressions };
}

/** Restricts a selector to pods (endpoints that have a namespace at all). */
export function podsOnly(sel: Selector): Selector {
  return { matchLabels: sel.matchLabels, matchExpressions: [...sel.matchExpressions, { key: NS_KEY, operator: 'Exists', values: [] }] };
}



export interface Cidr {
  addr: number;
  bits: number;
}

export const mask = (bits: number) => (bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0);
export const formatCidr = (c: Cidr) => `${[24, 16, 8, 0].map((s) => (c.addr >>> s) & 255).join('.')}/${c.bits}`;

/** `a.b.c.d/n`, or a bare address meaning /32. Host bits must be clear so that what the
 * user wrote is exactly what is matched. */
export function parseCidr(v: unknown, ctx: Ctx): Cidr {
  const text = asString(v, ctx);
  if (text.includes(':')) ctx.fail(`${show(text)}: IPv6 is not supported yet (use an IPv4 CIDR)`);
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(text);
  const octets = m ? m.slice(1, 5).map((s) => (s.length > 1 && s.startsWith('0') ? 256 : Number(s))) : [];
  const bits = m?.[5] === undefined ? 32 : Number(m[5]);
  if (!m || octets.some((o) => o > 255) || bits > 32) {
    ctx.fail(`${show(text)} is not a valid IPv4 CIDR (write a.b.c.d/n, e.g. 10.0.0.0/8, or a bare address for /32)`);
  }
  const addr = octets.reduce((a, o) => (a * 256 + o) >>> 0, 0);
  const network = (addr & mask(bits)) >>> 0;
  if (network !== addr) {
    ctx.fail(`${text}: host bits are set (did you mean ${formatCidr({ addr: network, bits })}?)`);
  }
  return { addr, bits };
}

/** A CIDR peer: `{cidr, except}`, every except inside the cidr. */
export function parseCidrBlock(v: unknown, ctx: Ctx, matchEndpoints: boolean, unsupported: Record<string, string> = {}): Peer {
  const o = asObject(v, ctx);
  checkFields(o, ctx, ['cidr', 'except'], unsupported);
  const cidr = parseCidr(required(o, 'cidr', ctx), ctx.field('cidr'));
  const except =
    mapList(o, 'except', ctx, (e, ectx) => {
      const inner = parseCidr(e, ectx);
      if (inner.bits < cidr.bits || ((inner.addr & mask(cidr.bits)) >>> 0) !== cidr.addr) {
        ectx.fail(`${formatCidr(inner)} is not inside ${formatCidr(cidr)} (an except must be part of its cidr)`);
      }
      return formatCidr(inner);
    }) ?? [];
  return { type: 'cidr', cidr: formatCidr(cidr), except, matchEndpoints };
}



export const PORT_NAME = /^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$/;

/** A port number (digits in a string count as a number) or a named port. `zeroIsAll`: Cilium
 * reads port 0 as "all ports", returned as undefined. */
export function parsePort(v: unknown, ctx: Ctx, zeroIsAll: boolean): number | string | undefined {
  const range = zeroIsAll ? '1-65535, or 0 for all ports' : '1-65535';
  if (typeof v === 'string' && !/^\d+$/.test(v)) {
    if (!PORT_NAME.test(v) || !/[a-z]/.test(v)) {
      ctx.fail(`${show(v)} is not a port: use a number ${range}, or a port name (1-15 lowercase letters, digits and '-', with a letter)`);
    }
    return v;
  }
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n)) ctx.fail(`expected a port number or name, not ${typeOf(v)}`);
  if (n === 0 && zeroIsAll) return undefined;
  if (n < 1 || n > 65535) ctx.fail(`port ${n} is out of range (use ${range})`);
  return n;
}

export function parseEndPort(v: unknown, port: number | string | undefined, ctx: Ctx): number | undefined {
  if (v === undefined) return undefined;
  if (typeof port !== 'number') ctx.fail('endPort needs a numeric port to start the range (set port, e.g. "8000")');
  if (typeof v !== 'number' || !Number.isInteger(v)) ctx.fail(`expected a port number, not ${typeOf(v)}`);
  if (v < port || v > 65535) ctx.fail(`endPort ${v} is out of range (it must be from port ${port} to 65535)`);
  return v;
}

export function parseProtocol(v: unknown, ctx: Ctx, allowed: readonly Protocol[], fallback: Protocol): Protocol {
  if (v === undefined) return fallback;
  const text = asString(v, ctx);
  const p = text.toUpperCase();
  if (allowed.includes(p as Protocol) && p !== text) ctx.fail(`protocol ${show(v)}: protocols are case-sensitive, write it in upper case: ${p}`);
  if (!allowed.includes(p as Protocol)) {
    const icmp = p.startsWith('ICMP') && allowed.includes('ANY') ? '; for ICMP use icmps' : '';
    ctx.fail(`unknown protocol ${show(v)} (use ${allowed.join(', ')}${icmp})`);
  }
  return p as Protocol;
}

/** PortMatch without undefined keys, so results compare equal to hand-written objects. */
export function portMatch(protocol: Protocol, port?: number | string, endPort?: number): PortMatch {
  const m: PortMatch = { protocol };
  if (port !== undefined) m.port = port;
  if (endPort !== undefined) m.endPort = endPort;
  return m;
}


/** Counts peers across one Rule, so a single policy cannot make the datapath tables explode. */
export class PeerBudget {
  private used = 0;
  take(ctx: Ctx): void {
    if (++this.used > POLICY_LIMITS.maxPeersPerRule) {
      ctx.fail(`more than ${POLICY_LIMITS.maxPeersPerRule} peers in one rule (maxPeersPerRule); split it into several rules`);
    }
  }
}
