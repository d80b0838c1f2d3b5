/* Policy files -> the rule model (types.ts). Everything is validated before anything is
 * returned, and the first problem is reported as ONE line that names the file, the document,
 * the policy, the field path and the fix, e.g.
 *   p.yaml: document 2 (CiliumNetworkPolicy default/web): spec.ingress[0].fromEntities[1]: unknown entity "wrld" (...)
 *
 * This file reads files, documents, Lists, kinds and metadata; yaml.ts and limits.ts read the
 * YAML within bounds, parse-kit.ts holds the checks every field goes through, parse-common.ts
 * what both dialects share (selectors, CIDRs, ports), parse-cilium.ts and parse-k8s.ts the two
 * dialects.
 *
 * What is not an error but worth knowing (a namespace given by default) becomes a one-line
 * note in the same form, on the ParsedPolicy.
 *
 * The translation follows Cilium's: CiliumNetworkPolicy selectors are scoped to the policy's
 * namespace, clusterwide peers to "pods in any namespace", and Kubernetes NetworkPolicy peers
 * become label selectors over the namespace labels Cilium derives for every pod. */
import { invalid } from '../errors.js';
import { POLICY_LIMITS, fileLabel } from './limits.js';
import type { PolicyKind, PolicyRef, Rule } from './types.js';
import { readYamlDocuments } from './yaml.js';
import { parseCiliumPolicy } from './parse-cilium.js';
import { API_VERSIONS, CCNP, KIND_LIST, KNP } from './parse-common.js';
import { Ctx, type Obj, asList, asObject, asString, checkFields, get, isObj, required, show } from './parse-kit.js';
import { parseK8sPolicy } from './parse-k8s.js';

export { POLICY_LIMITS } from './limits.js';

export interface ParsedPolicy {
  ref: PolicyRef;
  /** The plain JS object of the document (or List item), as given. */
  source: unknown;
  rules: Rule[];
  /** One-line notes for the user about how the document was read (e.g. a namespace it was given
   * by default); absent when there is nothing to say. */
  notes?: string[];
}



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



function parsePolicyObject(value: unknown, ctx: Ctx): ParsedPolicy {
  const doc = asObject(value, ctx);
  const kind = parseKind(doc, ctx);
  const notes: string[] = [];
  const ref = parseMetadata(doc, ctx, kind, notes);
  const rules = kind === KNP ? parseK8sPolicy(doc, ctx, ref) : parseCiliumPolicy(doc, ctx, ref);
  // The source stays as given, even where the ref was completed (a defaulted namespace).
  return notes.length > 0 ? { ref, source: value, rules, notes } : { ref, source: value, rules };
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

/** The namespace a namespaced policy without one is imported into, as kubectl does with a
 * manifest that names none (and no other namespace is configured). */
const DEFAULT_NAMESPACE = 'default';

function parseMetadata(doc: Obj, ctx: Ctx, kind: PolicyKind, notes: string[]): PolicyRef {
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
  // A namespaced policy without a namespace (or with an empty one, which Kubernetes reads as
  // none) goes where kubectl would put it, and the user is told so.
  const given = get(meta, 'namespace');
  if (given === undefined || given === '') {
    notes.push(ctx.message(`no metadata.namespace: imported into namespace "${DEFAULT_NAMESPACE}" (as kubectl does)`));
    return { kind, namespace: DEFAULT_NAMESPACE, name };
  }
  const namespace = asString(given, mctx.field('namespace'));
  if (!DNS_LABEL.test(namespace)) {
    mctx.field('namespace').fail(`${show(namespace)} is not a valid namespace (use at most 63 lowercase letters, digits and '-', starting and ending alphanumeric)`);
  }
  return { kind, namespace, name };
}
