/* Policy files -> the rule model (types.ts). Everything is validated before anything is
 * returned, and the first problem is reported as ONE line that names the file, the document,
 * the policy, the field path and the fix, e.g.
 *   p.yaml: document 2 (CiliumNetworkPolicy default/web): spec.ingress[0].fromEntities[1]: unknown entity "wrld" (...)
 *
 * The translation follows Cilium's: CiliumNetworkPolicy selectors are scoped to the policy's
 * namespace, clusterwide peers to "pods in any namespace", and Kubernetes NetworkPolicy peers
 * become label selectors over the namespace labels Cilium derives for every pod. */
import { UserError, invalid } from '../errors.js';
import { NAMESPACE_LABEL_PREFIX, POD_NAMESPACE_LABEL, parseLabel, type Label } from '../identity/labels.js';
import { POLICY_LIMITS, fileLabel } from './limits.js';
import type { Entity, Peer, PeerRule, PolicyKind, PolicyRef, PortMatch, Protocol, Rule, Selector, SelectorOperator } from './types.js';
import { readYamlDocuments } from './yaml.js';

export { POLICY_LIMITS } from './limits.js';

export interface ParsedPolicy {
  ref: PolicyRef;
  /** The plain JS object of the document (or List item), as given. */
  source: unknown;
  rules: Rule[];
}

type Obj = Record<string, unknown>;

const CNP = 'CiliumNetworkPolicy';
const CCNP = 'CiliumClusterwideNetworkPolicy';
const KNP = 'NetworkPolicy';
const API_VERSIONS: Record<PolicyKind, string> = {
  [CNP]: 'cilium.io/v2',
  [CCNP]: 'cilium.io/v2',
  [KNP]: 'networking.k8s.io/v1',
};
const KIND_LIST = `${CNP}, ${CCNP} or ${KNP}`;
const NS_KEY = `k8s:${POD_NAMESPACE_LABEL}`;

// ---------------------------------------------------------------------------------------------
// Error context and generic shape checks
// ---------------------------------------------------------------------------------------------

/** Where we are in the input: the fixed prefix ("file: document 2 (Kind ns/name)") and the
 * field path below it. Every check fails through `fail`, so every message has the same form. */
class Ctx {
  constructor(
    private readonly where: string,
    readonly path = '',
  ) {}

  /** `a.b`, or `a["app.kubernetes.io/name"]` for keys that are not plain identifiers. */
  field(name: string): Ctx {
    if (!/^[A-Za-z_][A-Za-z0-9_-]{0,79}$/.test(name)) return new Ctx(this.where, `${this.path}[${show(name)}]`);
    return new Ctx(this.where, this.path === '' ? name : `${this.path}.${name}`);
  }

  index(i: number): Ctx {
    return new Ctx(this.where, `${this.path}[${i}]`);
  }

  fail(problem: string): never {
    throw invalid(this.path === '' ? `${this.where}: ${problem}` : `${this.where}: ${this.path}: ${problem}`);
  }
}

/** A value for a message: quoted, escaped onto one line, and clipped so a huge value cannot
 * flood the terminal. */
function show(v: unknown): string {
  // JSON escapes control characters but not the Unicode line and paragraph separators.
  const text = (JSON.stringify(v) ?? String(v)).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `a ${typeof v} (${show(v)})`;
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function asObject(v: unknown, ctx: Ctx): Obj {
  if (!isObj(v)) ctx.fail(`expected a mapping (key: value), not ${typeOf(v)}`);
  return v;
}

function asList(v: unknown, ctx: Ctx): unknown[] {
  if (!Array.isArray(v)) ctx.fail(`expected a list, not ${typeOf(v)}`);
  return v;
}

function asString(v: unknown, ctx: Ctx): string {
  if (typeof v !== 'string') ctx.fail(`expected a string, not ${typeOf(v)}`);
  return v;
}

/** A field's value; null counts as absent, as in the Kubernetes API (`ingress:` with nothing
 * after it decodes to a nil list there too). */
function get(o: Obj, key: string): unknown {
  return Object.hasOwn(o, key) && o[key] !== null ? o[key] : undefined;
}

function required(o: Obj, key: string, ctx: Ctx, hint = ''): unknown {
  const v = get(o, key);
  if (v === undefined) ctx.field(key).fail(`missing${hint ? ` (${hint})` : ''}`);
  return v;
}

/** Optional list field, mapped element by element with the element's path. */
function mapList<T>(o: Obj, key: string, ctx: Ctx, fn: (v: unknown, ctx: Ctx) => T): T[] | undefined {
  const v = get(o, key);
  if (v === undefined) return undefined;
  const lctx = ctx.field(key);
  return asList(v, lctx).map((item, i) => fn(item, lctx.index(i)));
}

/** Rejects fields outside `allowed` so typos do not silently widen or narrow a policy.
 * `unsupported` names Cilium fields we know but do not implement, with their own message. */
function checkFields(o: Obj, ctx: Ctx, allowed: readonly string[], unsupported: Readonly<Record<string, string>> = {}): void {
  for (const key of Object.keys(o)) {
    if (allowed.includes(key)) continue;
    if (Object.hasOwn(unsupported, key)) ctx.field(key).fail(unsupported[key] ?? 'not supported yet');
    const guess = suggest(key, allowed);
    ctx.field(key).fail(`unknown field ${show(key)} (${guess ? `did you mean ${guess}? ` : ''}allowed here: ${allowed.join(', ')})`);
  }
}

/** The allowed field the user most likely meant: the other direction's name (fromX in an
 * egress rule) or one within two edits. */
function suggest(key: string, allowed: readonly string[]): string | undefined {
  const swapped = key.startsWith('from') ? `to${key.slice(4)}` : key.startsWith('to') ? `from${key.slice(2)}` : '';
  if (allowed.includes(swapped)) return swapped;
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of allowed) {
    // The length difference bounds the distance from below; it also spares a huge key the
    // quadratic comparison.
    if (Math.abs(key.length - candidate.length) >= bestDistance) continue;
    const d = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}

// ---------------------------------------------------------------------------------------------
// Files, documents and Lists
// ---------------------------------------------------------------------------------------------

/** Parses one file's text (multi-document YAML or JSON). Throws UserError('invalid', oneLineMessage) at the first problem.
 * A file without any policy is an error too: importing it would only make a new revision. */
export function parsePolicyText(text: string, file: string): ParsedPolicy[] {
  const label = fileLabel(file);
  const out: ParsedPolicy[] = [];
  const seen = new Map<string, string>();
  for (const unit of policyObjects(text, file)) {
    if (out.length >= POLICY_LIMITS.maxDocuments) {
      throw invalid(`${label}: more than ${POLICY_LIMITS.maxDocuments} policies in one file (maxDocuments); split it into several files`);
    }
    const ctx = new Ctx(`${label}: ${unit.location} ${describePolicy(unit.value)}`);
    const parsed = parsePolicyObject(unit.value, ctx);
    // Two documents with the same identity in one file: the second would silently replace the first.
    const id = `${parsed.ref.kind}/${parsed.ref.namespace ?? ''}/${parsed.ref.name}`;
    const earlier = seen.get(id);
    if (earlier) ctx.field('metadata').field('name').fail(`the same policy is already defined in ${earlier} (give each policy its own name)`);
    seen.set(id, unit.location);
    out.push(parsed);
  }
  if (out.length === 0) throw invalid(`${label}: no policy in this file (nothing to import)`);
  return out;
}

interface PolicyObject {
  /** "document 2" or "document 2 item 3". */
  location: string;
  value: unknown;
}

/** The non-empty documents of the file, with `kind: List` documents expanded into their items.
 * A syntax error anywhere fails the whole file before any document is interpreted. */
function policyObjects(text: string, file: string): PolicyObject[] {
  const out: PolicyObject[] = [];
  for (const { index, value } of readYamlDocuments(text, file)) {
    if (value === null || value === undefined) continue;
    const location = `document ${index}`;
    if (isObj(value) && value.kind === 'List') out.push(...listItems(value, new Ctx(`${fileLabel(file)}: ${location} (List)`), location));
    else out.push({ location, value });
  }
  return out;
}

/** A Kubernetes `List` (what `kubectl get -o yaml` prints): each item is a policy of its own. */
function listItems(list: Obj, ctx: Ctx, location: string): PolicyObject[] {
  checkFields(list, ctx, ['apiVersion', 'kind', 'items', 'metadata']);
  if (list.apiVersion !== 'v1') ctx.field('apiVersion').fail(`a List needs apiVersion v1, not ${show(list.apiVersion ?? null)}`);
  const items = asList(get(list, 'items') ?? [], ctx.field('items'));
  return items.map((value, m) => {
    if (isObj(value) && value.kind === 'List') ctx.field('items').index(m).fail('a List cannot contain another List');
    return { location: `${location} item ${m + 1}`, value };
  });
}

/** "(CiliumNetworkPolicy default/web)" from the raw document, before anything is validated,
 * so that even an error about the kind or the name says which policy it is about. */
function describePolicy(value: unknown): string {
  const doc = isObj(value) ? value : {};
  const meta = isObj(doc.metadata) ? doc.metadata : {};
  const text = (v: unknown) => (typeof v === 'string' && v !== '' ? plain(v) : undefined);
  const kind = text(doc.kind) ?? 'unknown kind';
  const name = text(meta.name);
  const ns = doc.kind === CCNP ? undefined : text(meta.namespace);
  const who = name === undefined ? 'no name' : ns === undefined ? name : `${ns}/${name}`;
  return `(${kind} ${who})`;
}

/** A user string inside the header: quoted when it has spaces, quotes or line breaks (the
 * message must stay one line), clipped when long. */
function plain(s: string): string {
  return /^[\x21-\x7e]{1,80}$/.test(s) && !s.includes('"') ? s : show(s);
}

// ---------------------------------------------------------------------------------------------
// One policy object: kind, apiVersion, metadata
// ---------------------------------------------------------------------------------------------

function parsePolicyObject(value: unknown, ctx: Ctx): ParsedPolicy {
  const doc = asObject(value, ctx);
  const kind = parseKind(doc, ctx);
  const ref = parseMetadata(doc, ctx, kind);
  const rules = kind === KNP ? parseK8sPolicy(doc, ctx, ref) : parseCiliumPolicy(doc, ctx, ref);
  return { ref, source: value, rules };
}

function parseKind(doc: Obj, ctx: Ctx): PolicyKind {
  const kind = asString(required(doc, 'kind', ctx, `use ${KIND_LIST}`), ctx.field('kind'));
  if (!Object.hasOwn(API_VERSIONS, kind)) ctx.field('kind').fail(`unknown kind ${show(kind)} (use ${KIND_LIST})`);
  const k = kind as PolicyKind;
  const want = API_VERSIONS[k];
  const apiVersion = required(doc, 'apiVersion', ctx, `${k} needs apiVersion ${want}`);
  if (apiVersion !== want) ctx.field('apiVersion').fail(`${k} needs apiVersion ${want}, not ${show(apiVersion)}`);
  return k;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** The fields of Kubernetes' ObjectMeta: what `kubectl get -o yaml` prints (uid, managedFields
 * and so on) is accepted and ignored; anything else is a typo, as everywhere else. */
const OBJECT_META_FIELDS = [
  'name',
  'namespace',
  'labels',
  'annotations',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'managedFields',
  'ownerReferences',
  'finalizers',
  'generateName',
  'selfLink',
];

function parseMetadata(doc: Obj, ctx: Ctx, kind: PolicyKind): PolicyRef {
  const mctx = ctx.field('metadata');
  const meta = asObject(required(doc, 'metadata', ctx, 'every policy needs metadata.name'), mctx);
  checkFields(meta, mctx, OBJECT_META_FIELDS);
  const name = asString(required(meta, 'name', mctx, 'every policy needs a name'), mctx.field('name'));
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    mctx.field('name').fail(`${show(name)} is not a valid name (use at most 253 lowercase letters, digits, '-' and '.', starting and ending alphanumeric)`);
  }
  // The clusterwide kind ignores metadata.namespace, as the Kubernetes API does for
  // cluster-scoped resources.
  if (kind === CCNP) return { kind, name };
  const hint = `${kind} is namespaced: set metadata.namespace${kind === CNP ? `, or use ${CCNP}` : ''}`;
  const namespace = asString(required(meta, 'namespace', mctx, hint), mctx.field('namespace'));
  if (!DNS_LABEL.test(namespace)) {
    mctx.field('namespace').fail(`${show(namespace)} is not a valid namespace (use at most 63 lowercase letters, digits and '-', starting and ending alphanumeric)`);
  }
  return { kind, namespace, name };
}

/** Counts peers across one Rule, so a single policy cannot make the datapath tables explode. */
class PeerBudget {
  private used = 0;
  take(ctx: Ctx): void {
    if (++this.used > POLICY_LIMITS.maxPeersPerRule) {
      ctx.fail(`more than ${POLICY_LIMITS.maxPeersPerRule} peers in one rule (maxPeersPerRule); split it into several rules`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Selectors and labels
// ---------------------------------------------------------------------------------------------

/** Turns a key as written into the `source:key` form the model uses, validating it. */
type KeyMapper = (key: string, ctx: Ctx) => string;

/** Cilium keys: `source:key` keeps its source, an unprefixed key matches any source. */
const ciliumKey: KeyMapper = (key, ctx) => {
  const label = checkLabel(key, ctx, 'any');
  return `${label.source}:${label.key}`;
};

/** Kubernetes keys have no source; `prefix` says what they select in Cilium's label space. */
function k8sKey(prefix: string): KeyMapper {
  return (key, ctx) => {
    if (key.includes(':')) ctx.fail(`NetworkPolicy label keys cannot have a source prefix such as "k8s:" (write ${show(key.slice(key.indexOf(':') + 1))})`);
    checkLabel(key, ctx, 'k8s');
    return prefix + key;
  };
}
const podKey = k8sKey('any:');
const namespaceKey = k8sKey(`k8s:${NAMESPACE_LABEL_PREFIX}`);

/** Validates a `[source:]key` with the label module's rules. */
function checkLabel(key: string, ctx: Ctx, defaultSource: string): Label {
  if (key.includes('=')) ctx.fail(`invalid label key ${show(key)}: keys cannot contain "="`);
  return labelRules(key, ctx, defaultSource, `invalid label key ${show(key)}: `);
}

function labelValue(v: unknown, ctx: Ctx): string {
  if (typeof v !== 'string') {
    ctx.fail(`label values must be strings (quote it: "${typeof v === 'object' ? '...' : String(v)}")`);
  }
  labelRules(`k8s:v=${v}`, ctx, 'k8s', `invalid label value ${show(v)}: `); // a placeholder key: only the value can be at fault
  return v;
}

/** parseLabel, with its message re-pointed at the field that holds the label. */
function labelRules(text: string, ctx: Ctx, defaultSource: string, what: string): Label {
  try {
    return parseLabel(text, defaultSource);
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    const prefix = `label "${text}": `;
    ctx.fail(what + (err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message));
  }
}

const OPERATORS: readonly SelectorOperator[] = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

function parseSelector(v: unknown, ctx: Ctx, mapKey: KeyMapper): Selector {
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

function parseExpression(v: unknown, ctx: Ctx, mapKey: KeyMapper): Selector['matchExpressions'][number] {
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
function mentions(sel: Selector, key: string): boolean {
  const hit = (k: string) => k.slice(k.indexOf(':') + 1) === key;
  return Object.keys(sel.matchLabels).some(hit) || sel.matchExpressions.some((e) => hit(e.key));
}

function withLabel(sel: Selector, key: string, value: string): Selector {
  return { matchLabels: { ...sel.matchLabels, [key]: value }, matchExpressions: sel.matchExpressions };
}

/** Restricts a selector to pods (endpoints that have a namespace at all). */
function podsOnly(sel: Selector): Selector {
  return { matchLabels: sel.matchLabels, matchExpressions: [...sel.matchExpressions, { key: NS_KEY, operator: 'Exists', values: [] }] };
}

// ---------------------------------------------------------------------------------------------
// CIDRs (IPv4 only for now)
// ---------------------------------------------------------------------------------------------

interface Cidr {
  addr: number;
  bits: number;
}

const mask = (bits: number) => (bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0);
const formatCidr = (c: Cidr) => `${[24, 16, 8, 0].map((s) => (c.addr >>> s) & 255).join('.')}/${c.bits}`;

/** `a.b.c.d/n`, or a bare address meaning /32. Host bits must be clear so that what the
 * user wrote is exactly what is matched. */
function parseCidr(v: unknown, ctx: Ctx): Cidr {
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
function parseCidrBlock(v: unknown, ctx: Ctx, matchEndpoints: boolean, unsupported: Record<string, string> = {}): Peer {
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

// ---------------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------------

const PORT_NAME = /^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$/;

/** A port number (digits in a string count as a number) or a named port. `zeroIsAll`: Cilium
 * reads port 0 as "all ports", returned as undefined. */
function parsePort(v: unknown, ctx: Ctx, zeroIsAll: boolean): number | string | undefined {
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

function parseEndPort(v: unknown, port: number | string | undefined, ctx: Ctx): number | undefined {
  if (v === undefined) return undefined;
  if (typeof port !== 'number') ctx.fail('endPort needs a numeric port to start the range (set port, e.g. "8000")');
  if (typeof v !== 'number' || !Number.isInteger(v)) ctx.fail(`expected a port number, not ${typeOf(v)}`);
  if (v < port || v > 65535) ctx.fail(`endPort ${v} is out of range (it must be from port ${port} to 65535)`);
  return v;
}

function parseProtocol(v: unknown, ctx: Ctx, allowed: readonly Protocol[], fallback: Protocol): Protocol {
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
function portMatch(protocol: Protocol, port?: number | string, endPort?: number): PortMatch {
  const m: PortMatch = { protocol };
  if (port !== undefined) m.port = port;
  if (endPort !== undefined) m.endPort = endPort;
  return m;
}

// ---------------------------------------------------------------------------------------------
// CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy
// ---------------------------------------------------------------------------------------------

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

type Section = 'ingress' | 'egress' | 'ingressDeny' | 'egressDeny';

interface Direction {
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
const ENTRY_UNSUPPORTED: Record<'from' | 'to', Record<string, string>> = {
  from: {
    fromRequires: 'fromRequires is not supported yet',
    fromNodes: 'fromNodes is not supported yet (fromEntities: [remote-node] selects all other nodes)',
    fromGroups: 'fromGroups is not supported yet',
    authentication: 'authentication is not supported yet',
  },
  to: {
    toRequires: 'toRequires is not supported yet',
    toNodes: 'toNodes is not supported yet (toEntities: [remote-node] selects all other nodes)',
    toGroups: 'toGroups is not supported yet',
    toServices: 'toServices is not supported yet (select the backends with toEndpoints)',
    toFQDNs: 'toFQDNs (DNS-based policy) is not supported yet (use toCIDR or toCIDRSet)',
    authentication: 'authentication is not supported yet',
  },
};
const CIDRSET_UNSUPPORTED = {
  cidrGroupRef: 'cidrGroupRef is not supported yet (list the CIDRs)',
  cidrGroupSelector: 'cidrGroupSelector is not supported yet (list the CIDRs)',
};
const L7_FIELDS = ['rules', 'terminatingTLS', 'originatingTLS', 'serverNames', 'listener'];

const ENTITIES: readonly Entity[] = ['all', 'world', 'cluster', 'host', 'remote-node', 'init', 'health', 'unmanaged', 'kube-apiserver', 'ingress', 'none'];

function parseCiliumPolicy(doc: Obj, ctx: Ctx, ref: PolicyRef): Rule[] {
  checkFields(doc, ctx, ['apiVersion', 'kind', 'metadata', 'spec', 'specs', 'status']);
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
  const description = get(o, 'description');
  if (description !== undefined) asString(description, ctx.field('description'));
  const labels = get(o, 'labels');
  if (labels !== undefined) asList(labels, ctx.field('labels')); // metadata for humans; not interpreted
  const rule: Rule = { policy: { ...ref }, subject };
  const budget = new PeerBudget();
  for (const dir of DIRECTIONS) {
    const entries = mapList(o, dir.section, ctx, (e, ectx) => parseCiliumEntry(e, ectx, dir, scope, budget));
    // Cilium: an omitted or empty section does not apply (no default deny); `[{}]` is the deny-all idiom.
    if (entries !== undefined && entries.length > 0) rule[dir.section] = entries;
  }
  return rule;
}

/** One element of ingress/egress/ingressDeny/egressDeny. */
function parseCiliumEntry(v: unknown, ctx: Ctx, dir: Direction, scope: Scope, budget: PeerBudget): PeerRule {
  const o = asObject(v, ctx);
  const p = dir.peer;
  const peerFields = [`${p}Endpoints`, `${p}Entities`, `${p}CIDR`, `${p}CIDRSet`];
  checkFields(o, ctx, [...peerFields, 'toPorts', 'icmps'], ENTRY_UNSUPPORTED[p]);

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
  // Any peer field, even an empty list, makes this an L3 rule over exactly those peers. With
  // none, ports alone make an L4-only rule (every peer); with nothing at all (`{}`) the entry
  // selects nothing, but its section still puts the subject into default deny.
  const hasPeerField = peerFields.some((f) => get(o, f) !== undefined);
  return { peers: hasPeerField ? peers : l4.given ? undefined : [], ports: l4.ports };
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

/** One toPorts element; undefined when it has no ports (all ports). */
function parseToPortsEntry(v: unknown, ctx: Ctx, dir: Direction): PortMatch[] | undefined {
  const o = asObject(v, ctx);
  const unsupported: Record<string, string> = {};
  for (const f of L7_FIELDS) {
    unsupported[f] = dir.deny ? `${f} cannot be used in ${dir.section} (deny rules are L3/L4 only)` : `${f === 'rules' ? 'L7 rules' : f} ${f === 'rules' ? 'are' : 'is'} not supported yet (only L3/L4 policy is enforced)`;
  }
  checkFields(o, ctx, ['ports'], unsupported);
  const ports = mapList(o, 'ports', ctx, parseCiliumPort);
  return ports === undefined || ports.length === 0 ? undefined : ports;
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

// ---------------------------------------------------------------------------------------------
// Kubernetes NetworkPolicy
// ---------------------------------------------------------------------------------------------

function parseK8sPolicy(doc: Obj, ctx: Ctx, ref: PolicyRef): Rule[] {
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
function parsePolicyTypes(spec: Obj, ctx: Ctx): Set<string> {
  const given = mapList(spec, 'policyTypes', ctx, (t, tctx) => {
    if (t !== 'Ingress' && t !== 'Egress') tctx.fail(`unknown policy type ${show(t)} (use Ingress or Egress)`);
    return t as string;
  });
  if (given !== undefined && given.length > 0) return new Set(given);
  const egress = get(spec, 'egress');
  return new Set(Array.isArray(egress) && egress.length > 0 ? ['Ingress', 'Egress'] : ['Ingress']);
}

/** One ingress `{from, ports}` or egress `{to, ports}` rule; an empty or missing list means all. */
function parseK8sRule(v: unknown, ctx: Ctx, peerField: 'from' | 'to', ns: string, budget: PeerBudget): PeerRule {
  const o = asObject(v, ctx);
  checkFields(o, ctx, [peerField, 'ports']);
  const peers = mapList(o, peerField, ctx, (p, pctx) => {
    budget.take(pctx);
    return parseK8sPeer(p, pctx, ns);
  });
  const ports = mapList(o, 'ports', ctx, parseK8sPort);
  return { peers: peers?.length ? peers : undefined, ports: ports?.length ? ports : undefined };
}

function parseK8sPeer(v: unknown, ctx: Ctx, ns: string): Peer {
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

function emptySelector(): Selector {
  return { matchLabels: {}, matchExpressions: [] };
}

function parseK8sPort(v: unknown, ctx: Ctx): PortMatch {
  const o = asObject(v, ctx);
  checkFields(o, ctx, ['protocol', 'port', 'endPort']);
  const protocol = parseProtocol(get(o, 'protocol'), ctx.field('protocol'), ['TCP', 'UDP', 'SCTP'], 'TCP');
  const raw = get(o, 'port');
  const port = raw === undefined ? undefined : parsePort(raw, ctx.field('port'), false);
  const endPort = parseEndPort(get(o, 'endPort'), port, ctx.field('endPort'));
  return portMatch(protocol, port, endPort);
}
