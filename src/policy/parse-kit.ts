/* The validation kit of the policy parser: where we are in the input (Ctx), one-line messages
 * that quote values safely, shape checks (mapping, list, string), and unknown-field errors that
 * suggest the field meant. Every check fails through Ctx.fail, so every message has one form. */
import { invalid } from '../errors.js';

export type Obj = Record<string, unknown>;


/** Where we are in the input: the fixed prefix ("file: document 2 (Kind ns/name)") and the
 * field path below it. Every check fails through `fail`, so every message has the same form. */
export class Ctx {
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
    throw invalid(this.message(problem));
  }

  /** The one-line message `fail` would throw, for a note that is not an error. */
  message(text: string): string {
    return this.path === '' ? `${this.where}: ${text}` : `${this.where}: ${this.path}: ${text}`;
  }
}

/** A value for a message: quoted, escaped onto one line, and clipped so a huge value cannot
 * flood the terminal. */
export function show(v: unknown): string {
  // JSON escapes control characters but not the Unicode line and paragraph separators.
  const text = (JSON.stringify(v) ?? String(v)).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

export function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `a ${typeof v} (${show(v)})`;
}

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function asObject(v: unknown, ctx: Ctx): Obj {
  if (!isObj(v)) ctx.fail(`expected a mapping (key: value), not ${typeOf(v)}`);
  return v;
}

export function asList(v: unknown, ctx: Ctx): unknown[] {
  if (!Array.isArray(v)) ctx.fail(`expected a list, not ${typeOf(v)}`);
  return v;
}

export function asString(v: unknown, ctx: Ctx): string {
  if (typeof v !== 'string') ctx.fail(`expected a string, not ${typeOf(v)}`);
  return v;
}

/** A field's value; null counts as absent, as in the Kubernetes API (`ingress:` with nothing
 * after it decodes to a nil list there too). */
export function get(o: Obj, key: string): unknown {
  return Object.hasOwn(o, key) && o[key] !== null ? o[key] : undefined;
}

export function required(o: Obj, key: string, ctx: Ctx, hint = ''): unknown {
  const v = get(o, key);
  if (v === undefined) ctx.field(key).fail(`missing${hint ? ` (${hint})` : ''}`);
  return v;
}

/** Optional list field, mapped element by element with the element's path. */
export function mapList<T>(o: Obj, key: string, ctx: Ctx, fn: (v: unknown, ctx: Ctx) => T): T[] | undefined {
  const v = get(o, key);
  if (v === undefined) return undefined;
  const lctx = ctx.field(key);
  return asList(v, lctx).map((item, i) => fn(item, lctx.index(i)));
}

/** A list field we recognise but do not implement, where Cilium reads an empty list as nothing:
 * absent, null or `[]` is accepted (true when `[]` was given), anything else fails with
 * `message`, so a policy never silently means less than it says. */
export function emptyListOnly(o: Obj, key: string, ctx: Ctx, message: string): boolean {
  const v = get(o, key);
  if (v === undefined) return false;
  const lctx = ctx.field(key);
  if (asList(v, lctx).length > 0) lctx.fail(message);
  return true;
}

/** Rejects fields outside `allowed` so typos do not silently widen or narrow a policy.
 * `unsupported` names fields we recognise at this place but refuse (Cilium fields we do not
 * implement, or that this place cannot take), each with its own message. An unknown field's
 * message lists every field known here, both kinds, and suggests the one most likely meant. */
export function checkFields(o: Obj, ctx: Ctx, allowed: readonly string[], unsupported: Readonly<Record<string, string>> = {}): void {
  for (const key of Object.keys(o)) {
    if (allowed.includes(key)) continue;
    if (Object.hasOwn(unsupported, key)) ctx.field(key).fail(unsupported[key] ?? 'not supported yet');
    const refused = Object.keys(unsupported);
    const known = [...allowed, ...refused];
    const renamed = Object.hasOwn(RENAMED, key) && known.includes(RENAMED[key]!.to) ? RENAMED[key] : undefined;
    const guess = renamed ? undefined : suggest(key, known);
    const hint = renamed ? `did you mean ${renamed.to}? ${renamed.why}; ` : guess ? `did you mean ${guess}? ` : '';
    const also = refused.length > 0 ? `; recognised here but not supported: ${refused.join(', ')}` : '';
    ctx.field(key).fail(`unknown field ${show(key)} (${hint}allowed here: ${allowed.join(', ')}${also})`);
  }
}

/** Field names people carry over from elsewhere, with the name that replaced them. Typos are
 * left to the edit distance (suggest); this is only for names too far from the right one. The
 * suggestion is made only where the new name is known. */
const RENAMED: Readonly<Record<string, { to: string; why: string }>> = {
  // Mutual authentication was `auth` while Cilium developed it, and is `authentication` since
  // (cilium/cilium#24867); older write-ups still use the first name.
  auth: { to: 'authentication', why: 'Cilium renamed auth to authentication' },
  // The subject selector has a different name in each dialect.
  podSelector: { to: 'endpointSelector', why: 'podSelector is the NetworkPolicy name' },
  endpointSelector: { to: 'podSelector', why: 'endpointSelector is the Cilium name' },
};

/** The allowed field the user most likely meant: the other direction's name (fromX in an
 * egress rule) or one within two edits. */
export function suggest(key: string, allowed: readonly string[]): string | undefined {
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

export function editDistance(a: string, b: string): number {
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
