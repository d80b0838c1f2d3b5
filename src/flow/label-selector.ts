/* Label selectors over a flow's labels, as Hubble's --label filters read them: Kubernetes
 * selector grammar (=, ==, !=, in, notin, exists, !, gt, lt) with Cilium source prefixes. */
import { invalid } from '../errors.js';

export interface FlowLabel {
  source: string;
  key: string;
  value: string;
}

/** `source:key=value` as the flow carries it; a label without a source gets "unspec" as in Cilium. */
export function parseFlowLabel(text: string): FlowLabel {
  const eq = text.indexOf('=');
  const keyPart = eq >= 0 ? text.slice(0, eq) : text;
  const value = eq >= 0 ? text.slice(eq + 1) : '';
  const colon = keyPart.indexOf(':');
  return colon >= 0 ? { source: keyPart.slice(0, colon), key: keyPart.slice(colon + 1), value } : { source: 'unspec', key: keyPart, value };
}

type Requirement =
  | { op: 'exists' | '!'; source: string; key: string }
  | { op: 'in' | 'notin'; source: string; key: string; values: string[] }
  | { op: 'gt' | 'lt'; source: string; key: string; n: number };

const SELECTOR_KEY_RE = /^(?:([A-Za-z0-9][-A-Za-z0-9_.]*):)?([A-Za-z0-9][-A-Za-z0-9_./]*)$/;
const SELECTOR_VALUE_RE = /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/** Splits on commas outside parentheses. */
function splitTopLevel(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

function parseRequirement(text: string, selector: string): Requirement {
  const bad = (why: string) => invalid(`invalid label selector "${selector}": ${why}`);
  const key = (k: string) => {
    const m = SELECTOR_KEY_RE.exec(k);
    if (!m) throw bad(`"${k}" is not a label key`);
    return { source: m[1] ?? 'any', key: m[2]! };
  };
  const value = (v: string) => {
    if (!SELECTOR_VALUE_RE.test(v)) throw bad(`"${v}" is not a label value`);
    return v;
  };
  const t = text.trim();
  if (t === '') throw bad('empty requirement');
  let m = /^!\s*([^\s=!<>(),]+)$/.exec(t);
  if (m) return { op: '!', ...key(m[1]!) };
  m = /^([^\s=!<>(),]+)\s+(in|notin)\s*\((.*)\)$/.exec(t);
  if (m) {
    const values = m[3]!.split(',').map((v) => v.trim());
    if (values.length === 1 && values[0] === '') throw bad(`"${m[2]}" needs at least one value`);
    return { op: m[2] as 'in' | 'notin', ...key(m[1]!), values: values.map(value) };
  }
  m = /^([^\s=!<>(),]+)\s*(==|=|!=)\s*([^\s,()]*)$/.exec(t);
  if (m) return { op: m[2] === '!=' ? 'notin' : 'in', ...key(m[1]!), values: [value(m[3]!)] };
  m = /^([^\s=!<>(),]+)\s*([<>])\s*(-?\d+)$/.exec(t);
  if (m) return { op: m[2] === '>' ? 'gt' : 'lt', ...key(m[1]!), n: Number(m[3]) };
  m = /^([^\s=!<>(),]+)$/.exec(t);
  if (m) return { op: 'exists', ...key(m[1]!) };
  throw bad(`cannot parse "${t}"`);
}

/**
 * A Kubernetes label selector with Cilium source prefixes, as Hubble translates it: `k8s:app=web`
 * only matches k8s labels, a key without a source (`app=web`) matches any source, commas AND the
 * requirements. `!=` and `notin` also match when the key is absent (Kubernetes semantics).
 */
export function compileSelector(selector: string): (labels: FlowLabel[]) => boolean {
  const reqs = selector.trim() === '' ? [] : splitTopLevel(selector).map((r) => parseRequirement(r, selector));
  return (labels) =>
    reqs.every((r) => {
      const found = labels.filter((l) => l.key === r.key && (r.source === 'any' || l.source === r.source));
      switch (r.op) {
        case 'exists':
          return found.length > 0;
        case '!':
          return found.length === 0;
        case 'in':
          return found.some((l) => r.values.includes(l.value));
        case 'notin':
          return !found.some((l) => r.values.includes(l.value));
        case 'gt':
        case 'lt':
          return found.some((l) => /^-?\d+$/.test(l.value) && (r.op === 'gt' ? Number(l.value) > r.n : Number(l.value) < r.n));
      }
    });
}
