/* Label selectors over identity labels (`source:key=value` strings). A key `any:app` matches
 * the key from every source; `k8s:app` only from k8s. NotIn and DoesNotExist also match when
 * the key is absent, as in Kubernetes. */
import type { Selector } from './types.js';

interface ParsedLabel {
  source: string;
  key: string;
  value: string;
}

function parse(label: string): ParsedLabel {
  const colon = label.indexOf(':');
  const source = label.slice(0, colon);
  const rest = label.slice(colon + 1);
  const eq = rest.indexOf('=');
  return eq < 0 ? { source, key: rest, value: '' } : { source, key: rest.slice(0, eq), value: rest.slice(eq + 1) };
}

/** Values of `selectorKey` (`source:key`) among the labels. */
function valuesOf(labels: ParsedLabel[], selectorKey: string): string[] {
  const colon = selectorKey.indexOf(':');
  const source = colon < 0 ? 'any' : selectorKey.slice(0, colon);
  const key = colon < 0 ? selectorKey : selectorKey.slice(colon + 1);
  return labels.filter((l) => l.key === key && (source === 'any' || l.source === source)).map((l) => l.value);
}

export class LabelSet {
  private readonly parsed: ParsedLabel[];
  constructor(readonly labels: readonly string[]) {
    this.parsed = labels.map(parse);
  }
  values(selectorKey: string): string[] {
    return valuesOf(this.parsed, selectorKey);
  }
}

export function matches(sel: Selector, labels: LabelSet): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels)) if (!labels.values(k).includes(v)) return false;
  for (const e of sel.matchExpressions) {
    const vals = labels.values(e.key);
    switch (e.operator) {
      case 'In':
        if (!vals.some((v) => e.values.includes(v))) return false;
        break;
      case 'NotIn':
        if (vals.some((v) => e.values.includes(v))) return false;
        break;
      case 'Exists':
        if (vals.length === 0) return false;
        break;
      case 'DoesNotExist':
        if (vals.length > 0) return false;
        break;
    }
  }
  return true;
}

/** A stable text form, used to share one cache entry among equal selectors and to print them. */
export function selectorString(sel: Selector): string {
  const parts = Object.entries(sel.matchLabels)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`);
  for (const e of sel.matchExpressions) {
    parts.push(e.values.length ? `${e.key} ${e.operator} (${[...e.values].sort().join(',')})` : `${e.operator === 'Exists' ? '' : '!'}${e.key}`);
  }
  return parts.length ? parts.join(', ') : '(all)';
}
