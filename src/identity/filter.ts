/* Which labels count towards identity: Cilium's default label filter. When an include and an
 * ignore prefix both match a key, the longer match decides. Labels that are filtered out stay
 * on the endpoint as information but never split identities. */
import type { Label } from './labels.js';

interface FilterRule {
  prefix: string | RegExp;
  include: boolean;
}

const DEFAULT_RULES: FilterRule[] = [
  { prefix: 'io.kubernetes.pod.namespace', include: true },
  { prefix: 'io.cilium.k8s.namespace.labels', include: true },
  { prefix: 'app.kubernetes.io', include: true },
  { prefix: 'io.cilium.k8s.policy.cluster', include: true },
  { prefix: 'io.kubernetes', include: false },
  { prefix: 'kubernetes.io', include: false },
  { prefix: 'statefulset.kubernetes.io/pod-name', include: false },
  { prefix: 'apps.kubernetes.io/pod-index', include: false },
  { prefix: 'batch.kubernetes.io/job-completion-index', include: false },
  { prefix: /^[^/]*beta\.kubernetes\.io/, include: false },
  { prefix: 'k8s.io', include: false },
  { prefix: 'pod-template-generation', include: false },
  { prefix: 'pod-template-hash', include: false },
  { prefix: 'controller-revision-hash', include: false },
  { prefix: 'annotation.', include: false },
  { prefix: 'etcd_node', include: false },
];

function matchLength(rule: FilterRule, key: string): number {
  if (typeof rule.prefix === 'string') return key.startsWith(rule.prefix) ? rule.prefix.length : -1;
  const m = rule.prefix.exec(key);
  return m && m.index === 0 ? m[0].length : -1;
}

export function isIdentityRelevant(label: Label, rules: FilterRule[] = DEFAULT_RULES): boolean {
  if (label.source === 'reserved') return true;
  let best = -1;
  let include = true; // no rule matched: the default filter keeps the label
  for (const rule of rules) {
    const len = matchLength(rule, label.key);
    if (len > best) {
      best = len;
      include = rule.include;
    }
  }
  return include;
}

export function identityLabels(labels: Label[]): Label[] {
  return labels.filter((l) => isIdentityRelevant(l));
}
