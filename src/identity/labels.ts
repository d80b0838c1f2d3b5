/* Labels in Cilium's model: `source:key=value`. User labels default to the k8s source; the
 * namespace contributes the pod-namespace label and its own labels. */
import { invalid, quoted } from '../errors.js';

export interface Label {
  source: string;
  key: string;
  value: string;
}

export const SOURCE_K8S = 'k8s';
export const SOURCE_RESERVED = 'reserved';
export const POD_NAMESPACE_LABEL = 'io.kubernetes.pod.namespace';
export const NAMESPACE_LABEL_PREFIX = 'io.cilium.k8s.namespace.labels.';
export const CLUSTER_LABEL = 'io.cilium.k8s.policy.cluster';
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

const KNOWN_SOURCES = new Set(['k8s', 'reserved', 'container', 'unspec', 'cidr', 'any', 'cilium-generated']);
const NAME_RE = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const VALUE_RE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

export function formatLabel(l: Label): string {
  return l.value === '' ? `${l.source}:${l.key}` : `${l.source}:${l.key}=${l.value}`;
}

/** Why a Kubernetes label key is invalid, or undefined when it is valid. */
function keyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : '';
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (slash >= 0 && (prefix.length > 253 || !DNS_SUBDOMAIN_RE.test(prefix))) {
    return `prefix ${quoted(prefix)} must be a lowercase DNS subdomain`;
  }
  if (!NAME_RE.test(name)) {
    return 'name must be 1-63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric';
  }
  return undefined;
}

/** Parses one `[source:]key[=value]` label; the source defaults to k8s. */
export function parseLabel(text: string, defaultSource = SOURCE_K8S): Label {
  const eq = text.indexOf('=');
  let keyPart = eq >= 0 ? text.slice(0, eq) : text;
  const value = eq >= 0 ? text.slice(eq + 1) : '';
  let source = defaultSource;
  const colon = keyPart.indexOf(':');
  if (colon >= 0) {
    source = keyPart.slice(0, colon);
    keyPart = keyPart.slice(colon + 1);
    if (!KNOWN_SOURCES.has(source)) {
      throw invalid(`label ${quoted(text)}: unknown source ${quoted(source)} (use k8s:, reserved:, container: or no source)`);
    }
  }
  const problem = keyPart === '' ? 'the key is empty' : keyProblem(keyPart);
  if (problem) throw invalid(`label ${quoted(text)}: ${problem}`);
  if (!VALUE_RE.test(value)) {
    throw invalid(`label ${quoted(text)}: value must be at most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric`);
  }
  return { source, key: keyPart, value };
}

/** Parses `k=v,k2=v2` (as given to --labels). Duplicate keys are an error. */
export function parseLabelList(text: string | string[] | undefined, defaultSource = SOURCE_K8S): Label[] {
  if (text === undefined) return [];
  const parts = (Array.isArray(text) ? text : [text]).flatMap((t) => t.split(',')).map((s) => s.trim());
  const out: Label[] = [];
  const seen = new Set<string>();
  for (const part of parts) {
    if (part === '') continue;
    const l = parseLabel(part, defaultSource);
    const id = `${l.source}:${l.key}`;
    if (seen.has(id)) throw invalid(`label ${quoted(part)}: key "${l.key}" is given twice`);
    seen.add(id);
    out.push(l);
  }
  return out;
}

/** Sources only the agent assigns: a workload cannot claim to be the host or a CIDR. */
const AGENT_SOURCES = new Set(['reserved', 'cidr', 'cilium-generated']);

/** Labels a user gives an endpoint or namespace (`k8s:` by default; never an agent-only source). */
export function parseUserLabels(text: string | string[] | undefined): Label[] {
  const labels = parseLabelList(text);
  for (const l of labels) {
    if (AGENT_SOURCES.has(l.source)) {
      throw invalid(`label "${formatLabel(l)}": the ${l.source}: source is assigned by the agent only; use k8s: (the default) or container:`);
    }
  }
  return labels;
}

/**
 * Label keys the agent derives for every endpoint from its namespace, cluster and policy
 * context (Cilium's pod labels of the same names). An endpoint claiming one could pass for a
 * pod of another namespace: a NetworkPolicy's namespaceSelector matches these keys.
 */
const DERIVED_KEY_PREFIXES = [POD_NAMESPACE_LABEL, NAMESPACE_LABEL_PREFIX, 'io.cilium.k8s.policy.'];

export function isDerivedKey(key: string): boolean {
  return DERIVED_KEY_PREFIXES.some((p) => key === p || key.startsWith(p.endsWith('.') ? p : `${p}.`));
}

/** Labels a user gives an endpoint: user labels, none of them a key the agent derives. */
export function parseEndpointLabels(text: string | string[] | undefined): Label[] {
  const labels = parseUserLabels(text);
  for (const l of labels) {
    if (!isDerivedKey(l.key)) continue;
    const nsKey = l.key.startsWith(NAMESPACE_LABEL_PREFIX) ? l.key.slice(NAMESPACE_LABEL_PREFIX.length) : '';
    const fix = nsKey
      ? `label the namespace instead (membrane namespace set NAMESPACE --labels ${nsKey}${l.value ? `=${l.value}` : ''})`
      : 'the agent sets it from the endpoint\'s namespace and cluster';
    throw invalid(`label "${formatLabel(l)}": ${l.key} is derived by the agent, an endpoint cannot set it: ${fix}`);
  }
  return labels;
}

export function sortLabels(labels: Label[]): Label[] {
  return [...labels].sort((a, b) => (formatLabel(a) < formatLabel(b) ? -1 : formatLabel(a) > formatLabel(b) ? 1 : 0));
}

/** The labels of an endpoint as Cilium derives them from a pod and its namespace. */
export function endpointLabels(
  userLabels: Label[],
  namespace: { name: string; labels: Record<string, string> },
  cluster: string,
): Label[] {
  const derived: Label[] = [
    { source: SOURCE_K8S, key: POD_NAMESPACE_LABEL, value: namespace.name },
    { source: SOURCE_K8S, key: CLUSTER_LABEL, value: cluster },
    ...Object.entries(namespace.labels).map(([k, v]) => ({ source: SOURCE_K8S, key: NAMESPACE_LABEL_PREFIX + k, value: v })),
  ];
  const derivedKeys = new Set(derived.map((l) => l.key));
  // Derived labels win: a pod cannot claim another namespace through its own labels.
  return sortLabels([...userLabels.filter((l) => !derivedKeys.has(l.key)), ...derived]);
}

/** Namespace labels as stored: the metadata.name label is always present and always right. */
export function namespaceLabels(name: string, labels: Label[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of labels) out[l.key] = l.value;
  out[NAMESPACE_NAME_LABEL] = name;
  return out;
}
