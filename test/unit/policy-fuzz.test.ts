/* A seeded fuzz corpus for the policy parser: valid policies mutated (characters flipped,
 * inserted and deleted, lines duplicated and shuffled, deep nesting, huge scalars, many anchors
 * and aliases, oversized files, many documents, odd Unicode such as U+2028 and NUL). Each input
 * must either parse into policies (plain, structured-cloneable, JSON-serializable data) or be
 * refused with a UserError whose message is one line starting with the file name; nothing else
 * may be thrown, and each input and the whole corpus are bounded in time. The corpus is the same
 * on every run (FUZZ_SEED picks another one); a failure names the case to replay. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UserError } from '../../src/errors.js';
import { POLICY_LIMITS, parsePolicyText } from '../../src/policy/parse.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261203);
const CASES = 400;
const PER_INPUT_MS = 2000;
const TOTAL_MS = 20_000;

/** mulberry32: small, fast and good enough to pick mutations. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const VALID = [
  `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: web
  namespace: default
  labels: {app: web}
spec:
  description: "web tier"
  endpointSelector:
    matchLabels: {app: web, "k8s:tier": front}
  ingress:
  - fromEndpoints:
    - matchLabels: {role: lb}
    - matchExpressions: [{key: env, operator: In, values: [prod, staging]}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}, {port: "8000", endPort: 8080}]
  - fromEntities: [host, world]
  egressDeny:
  - toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]
  egress:
  - toEndpoints: [{}]
    icmps: [{fields: [{type: EchoRequest, family: IPv4}]}]
`,
  `apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: all-dns}
specs:
- endpointSelector: {}
  egress:
  - toEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": kube-system, k8s-app: kube-dns}}]
    toPorts: [{ports: [{port: "53", protocol: UDP}]}]
`,
  `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: db
  namespace: prod
spec:
  podSelector:
    matchLabels:
      app: db
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: blue}}
      podSelector: {matchLabels: {app: api}}
    - ipBlock: {cidr: 172.16.0.0/12, except: [172.16.5.0/24]}
    ports:
    - {protocol: TCP, port: 5432}
  egress: []
`,
  `apiVersion: v1
kind: List
items:
- apiVersion: cilium.io/v2
  kind: CiliumNetworkPolicy
  metadata: {name: a, namespace: x, uid: 1234, resourceVersion: "7"}
  spec: {endpointSelector: {matchLabels: {app: a}}, ingress: [{fromEndpoints: [{matchLabels: {app: b}}]}]}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: b, namespace: x}
  spec: {podSelector: {}}
`,
  JSON.stringify(
    {
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNetworkPolicy',
      metadata: { name: 'json', namespace: 'default' },
      spec: { endpointSelector: { matchLabels: { app: 'j' } }, ingress: [{ fromCIDR: ['192.0.2.0/24'], toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }] }] },
    },
    null,
    2,
  ),
];

const ALPHABET = [...' \n\t:-[]{},#&*!|>"\'%@`?\\a0.~', '\r', '\u2028', '\u2029', '\u0000', '\u0085', '\ufeff', '\u00e9', '\u{1f600}', '---\n', '...\n', '\n  ', ': ', '- '];

type Mutator = (text: string, r: () => number) => string;

const pick = <T>(xs: readonly T[], r: () => number): T => xs[Math.floor(r() * xs.length)]!;
const at = (text: string, r: () => number) => Math.floor(r() * (text.length + 1));
const chars = (r: () => number, n: number) => Array.from({ length: n }, () => pick(ALPHABET, r)).join('');
const lines = (text: string) => text.split('\n');

/** Cheap mutations, applied often. */
const SMALL: Mutator[] = [
  (t, r) => {
    const i = at(t, r);
    return t.slice(0, i) + chars(r, 1) + t.slice(i + 1);
  },
  (t, r) => {
    const i = at(t, r);
    return t.slice(0, i) + chars(r, 1 + Math.floor(r() * 8)) + t.slice(i);
  },
  (t, r) => {
    const i = at(t, r);
    return t.slice(0, i) + t.slice(i + 1 + Math.floor(r() * 20));
  },
  (t, r) => {
    const ls = lines(t);
    const i = Math.floor(r() * ls.length);
    ls.splice(i, 0, ls[i]!); // a duplicate key, usually
    return ls.join('\n');
  },
  (t, r) => {
    const ls = lines(t);
    const i = Math.floor(r() * ls.length);
    const j = Math.floor(r() * ls.length);
    [ls[i], ls[j]] = [ls[j]!, ls[i]!];
    return ls.join('\n');
  },
  (t, r) => {
    const ls = lines(t);
    const i = Math.floor(r() * ls.length);
    ls[i] = r() < 0.5 ? ` ${ls[i]}` : ls[i]!.replace(/^ /, '');
    return ls.join('\n');
  },
  (t, r) => t.slice(0, at(t, r)),
  (t, r) => {
    const i = at(t, r);
    return t.slice(0, i) + pick(['\u2028', '\u0000', '\r', '\ufeff', '\u0085', '\t'], r) + t.slice(i);
  },
  (t, r) => t.replace(/name: [a-z-]+/, `name: "${pick(['a\\nb', 'x\\u2028y', 'UPPER', 'a b', '\\0', 'é'], r)}"`),
  (t, r) => t.replace(/(metadata:\s*\{?)/, `$1${pick(['bogus: 1, ', 'lables: {}, ', '"x\\ny": 1, '], r)}`),
];

/** Expensive or oversized mutations, applied to a few cases. */
const LARGE: Mutator[] = [
  (t, r) => {
    const n = 1 + Math.floor(r() * 200_000);
    const open = pick(['[', '{a: ', '- ', '? '], r);
    return open.repeat(n) + t + (open === '[' ? ']' : open === '{a: ' ? '}' : '').repeat(n);
  },
  (t, r) => {
    const n = Math.floor(r() * POLICY_LIMITS.maxFileBytes * 1.2);
    return t.replace(/: [a-z0-9]+/, `: ${'x'.repeat(n)}`);
  },
  (t, r) => {
    const n = Math.floor(r() * 3000);
    const anchors = Array.from({ length: n }, (_, i) => `a${i}: &x${i} [v, v, v]`).join('\n');
    const aliases = Array.from({ length: n }, () => `*x${Math.floor(r() * Math.max(n, 1))}`).join(', ');
    return `${t}\n---\n${anchors}\nall: [${aliases}]\n`;
  },
  // A few copies (the same policy twice), or more documents than the limit allows.
  (t, r) => (r() < 0.5 ? Array.from({ length: 2 + Math.floor(r() * 3) }, () => t).join('\n---\n') : `${'{}\n---\n'.repeat(POLICY_LIMITS.maxDocuments + Math.floor(r() * 100))}${t}`),
  (t, r) => {
    const keys = Array.from({ length: Math.floor(r() * 30_000) }, (_, i) => `      k${i % (r() < 0.5 ? 1e9 : 5000)}: v`).join('\n');
    return t.replace(/matchLabels:/, `matchLabels:\n${keys}\n     `);
  },
  // Blank lines and comments: mostly a few, now and then more than the token limit.
  (t, r) => `${'\n'.repeat(r() < 0.25 ? POLICY_LIMITS.maxTokens + Math.floor(r() * 1000) : Math.floor(r() * 20_000))}${t}`,
  (t, r) => `${'# comment\n'.repeat(r() < 0.25 ? POLICY_LIMITS.maxTokens / 2 + Math.floor(r() * 1000) : Math.floor(r() * 10_000))}${t}`,
];

describe('policy parser fuzz corpus', () => {
  it(`handles ${CASES} mutated and oversized documents (seed ${SEED})`, (t) => {
    const r = prng(SEED);
    // CPU time, not the wall clock: other test files may be loading the machine.
    const cpuMs = (start: NodeJS.CpuUsage) => {
      const used = process.cpuUsage(start);
      return (used.user + used.system) / 1000;
    };
    const started = process.cpuUsage();
    const wallStarted = performance.now();
    let parsed = 0;
    let refused = 0;
    let slowest = { ms: 0, index: -1 };
    for (let index = 0; index < CASES; index++) {
      let text = pick(VALID, r);
      const large = index % 10 === 9; // a tenth of the corpus gets one expensive mutation
      if (large) text = pick(LARGE, r)(text, r);
      for (let m = Math.floor(r() * 3); m > 0; m--) if (text.length < 100_000) text = pick(SMALL, r)(text, r);
      const file = `fuzz-${index}.yaml`;
      const replay = `case ${index} (FUZZ_SEED=${SEED}), input ${JSON.stringify(text.slice(0, 160))}${text.length > 160 ? `... (${text.length} chars)` : ''}`;
      const t0 = process.cpuUsage();
      try {
        const policies = parsePolicyText(text, file);
        assert.ok(policies.length > 0, `no policies and no error: ${replay}`);
        // What crosses the worker boundary and what `policy get` prints must survive.
        structuredClone(policies);
        JSON.stringify(policies.map((p) => p.source));
        parsed++;
      } catch (err) {
        if (!(err instanceof UserError)) assert.fail(`${String(err)} from ${replay}\n${(err as Error).stack}`);
        assert.equal(err.code, 'invalid', replay);
        assert.ok(!/[\n\r\u2028\u2029]/.test(err.message), `not one line: ${JSON.stringify(err.message)} from ${replay}`);
        assert.ok(err.message.startsWith(`${file}: `), `${JSON.stringify(err.message)} does not start with the file name, from ${replay}`);
        refused++;
      }
      const ms = cpuMs(t0);
      if (ms > slowest.ms) slowest = { ms, index };
      assert.ok(ms < PER_INPUT_MS, `${Math.round(ms)} ms of CPU for ${replay}`);
    }
    const total = cpuMs(started);
    t.diagnostic(`${parsed} parsed, ${refused} refused in ${Math.round(total)} ms of CPU (${Math.round(performance.now() - wallStarted)} ms); slowest case ${slowest.index}: ${Math.round(slowest.ms)} ms`);
    assert.ok(parsed > 0 && refused > 0);
    assert.ok(total < TOTAL_MS, `${Math.round(total)} ms of CPU for the corpus`);
  });
});
