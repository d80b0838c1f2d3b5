/* The limits on policy files (src/policy/limits.ts, yaml.ts): each is refused with one line that
 * names the file, the place, the limit and the fix, and refused quickly, before the expensive
 * part; inputs that took seconds and a GiB before (deep nesting, 40,000 keys, alias bombs, 4 MiB
 * of blank lines) are bounded in time and heap. Times are CPU times, with generous bounds (cold
 * code); each is far below what the same input cost before. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UserError } from '../../src/errors.js';
import { POLICY_LIMITS, parsePolicyText } from '../../src/policy/parse.js';

const L = POLICY_LIMITS;

/** CPU time of this process since `start` (process.cpuUsage()), in ms: unlike the wall clock, it
 * does not grow when other test files load the machine. */
const cpuMs = (start: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
};

/** Runs the parser on `text`, which must be refused with one line starting with `prefix` and
 * containing each of `parts`; returns the CPU time it took in ms and the heap it left behind. */
function refused(text: string, prefix: string, ...parts: string[]): { ms: number; heapMb: number } {
  global.gc?.();
  const heap = process.memoryUsage().heapUsed;
  const started = process.cpuUsage();
  let error: unknown;
  try {
    parsePolicyText(text, 'p.yaml');
  } catch (err) {
    error = err;
  }
  const ms = cpuMs(started);
  const heapMb = (process.memoryUsage().heapUsed - heap) / 2 ** 20;
  assert.ok(error instanceof UserError, `not refused with a UserError: ${String(error)}`);
  assert.equal(error.code, 'invalid');
  assert.ok(!/[\n\r\u2028\u2029]/.test(error.message), `not one line: ${error.message}`);
  assert.ok(error.message.startsWith(prefix), `${JSON.stringify(error.message)}\n  should start with ${JSON.stringify(prefix)}`);
  for (const p of parts) assert.ok(error.message.includes(p), `${JSON.stringify(error.message)}\n  should contain ${JSON.stringify(p)}`);
  return { ms, heapMb };
}

const policy = (matchLabels: string) => `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: default}
spec:
  endpointSelector:
    matchLabels:
${matchLabels}`;

describe('nesting', () => {
  it('refuses 2 MB of [[[...]]] at the 65th bracket, without recursing or filling the heap', () => {
    const n = 1024 * 1024;
    const { ms, heapMb } = refused('['.repeat(n) + ']'.repeat(n), `p.yaml: line 1, column ${L.maxDepth + 1}: nested more than ${L.maxDepth} levels deep (maxDepth`, 'check the brackets');
    // Before: 10 s, 1 GiB of heap, and "Maximum call stack size exceeded".
    assert.ok(ms < 500, `${ms} ms`);
    assert.ok(heapMb < 64, `${heapMb} MB of heap left behind`);
  });

  it('refuses deep flow mappings, block mappings and compact lists alike', () => {
    refused('{a: '.repeat(100_000) + '}'.repeat(100_000), 'p.yaml: line 1, column ', 'maxDepth');
    const block = Array.from({ length: 200 }, (_, i) => `${' '.repeat(i)}k:`).join('\n');
    refused(block, `p.yaml: line ${L.maxDepth + 1}, column `, 'maxDepth');
    refused('- '.repeat(1_000_000), 'p.yaml: line 1, column ', 'maxDepth');
  });

  it('accepts nesting up to the limit', () => {
    const text = `apiVersion: v1\nkind: List\nitems: [${'['.repeat(L.maxDepth - 2)}${']'.repeat(L.maxDepth - 2)}]\n`;
    assert.throws(() => parsePolicyText(text, 'p.yaml'), (err: unknown) => err instanceof UserError && !err.message.includes('maxDepth'));
  });
});

describe('keys', () => {
  it('refuses a mapping of 40,000 keys quickly (13 s before)', () => {
    const labels = Array.from({ length: 40_000 }, (_, i) => `      k${i}: v`).join('\n');
    const { ms } = refused(policy(labels), `p.yaml: line ${6 + L.maxKeysPerMapping + 1}, column 1: more than ${L.maxKeysPerMapping} keys in one mapping (maxKeysPerMapping)`);
    assert.ok(ms < 1000, `${ms} ms`);
  });

  it('refuses a flow mapping over the limit too', () => {
    const keys = Array.from({ length: L.maxKeysPerMapping + 5 }, (_, i) => `k${i}: v`).join(', ');
    refused(`{${keys}}`, 'p.yaml: line 1, column ', 'maxKeysPerMapping');
  });

  it('reads a mapping of exactly the limit, in well under a second', () => {
    const labels = Array.from({ length: L.maxKeysPerMapping }, (_, i) => `      k${i}: v`).join('\n');
    const started = process.cpuUsage();
    const [p] = parsePolicyText(policy(labels), 'p.yaml');
    assert.equal(Object.keys(p!.rules[0]!.subject.matchLabels).length, L.maxKeysPerMapping + 1); // + the namespace
    assert.ok(cpuMs(started) < 1000, `${cpuMs(started)} ms of CPU`);
  });
});

describe('anchors and aliases', () => {
  it('refuses an alias bomb by what it expands to, in a small file', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++) lines.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`);
    const text = lines.join('\n');
    assert.ok(text.length < 1000);
    const { ms } = refused(text, 'p.yaml: line ', '(document 1): more than', `values in one file, aliases expanded (maxNodes)`);
    assert.ok(ms < 500, `${ms} ms`);
  });

  it('refuses too many anchors and too many aliases, counted before composing', () => {
    const anchors = Array.from({ length: 100_000 }, (_, i) => `k${i}: &a${i} v`).join('\n');
    const { ms } = refused(anchors, `p.yaml: line ${L.maxAnchors + 1}, column `, `more than ${L.maxAnchors} anchors (&name) in one file (maxAnchors)`);
    assert.ok(ms < 500, `${ms} ms`);
    const aliases = ['- &a x', ...Array.from({ length: L.maxAliases + 1 }, () => '- *a')].join('\n');
    refused(aliases, `p.yaml: line ${L.maxAliases + 2}, column 3: more than ${L.maxAliases} aliases (*name) in one file (maxAliases)`);
  });

  it('resolves aliases to the latest anchor before them, and refuses cycles and unknown anchors', () => {
    const text = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: default}
spec:
  endpointSelector: &sel {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [*sel]
`;
    const [p] = parsePolicyText(text, 'p.yaml');
    assert.equal(p!.rules[0]!.ingress![0]!.peers!.length, 1);
    refused('a: &x [1, *x]\n', 'p.yaml: line 1, column 11 (document 1): invalid YAML: alias "*x" is inside the node it refers to (a cycle)');
    refused('a: *nope\n', 'p.yaml: line 1, column 4 (document 1): invalid YAML: alias "*nope" has no anchor of that name before it');
    refused('a: &x 1\n---\nb: *x\n', 'p.yaml: line 3, column 4 (document 2): invalid YAML: alias "*x"');
  });

  it('refuses merge keys instead of half supporting them', () => {
    refused('%YAML 1.1\n---\nbase: &b {a: 1}\nc:\n  <<: *b\n', 'p.yaml: line 5, column 3 (document 1): invalid YAML: merge keys (<<) are not supported');
  });
});

describe('size', () => {
  it('refuses 4 MiB of blank lines or comments by token count, quickly and in bounded heap', () => {
    for (const text of ['\n'.repeat(L.maxFileBytes - 1), '#\n'.repeat(L.maxFileBytes / 2 - 1)]) {
      const { ms, heapMb } = refused(text, 'p.yaml: line ', `more than ${L.maxTokens} YAML tokens`, '(maxTokens); split it into several files');
      // Before: 6 s and 370 MB of heap for the parser alone.
      assert.ok(ms < 2000, `${ms} ms`);
      assert.ok(heapMb < 150, `${heapMb} MB`);
    }
  });

  it('counts each alias as what it expands to', () => {
    const aliases = Math.ceil(L.maxNodes / 1000) + 1;
    const text = `a: &a [${'x,'.repeat(999)}x]\nb: [${'*a,'.repeat(aliases - 1)}*a]\n`;
    refused(text, 'p.yaml: line 2, column ', `more than ${L.maxNodes} values in one file, aliases expanded (maxNodes)`);
  });

  it('refuses many empty documents before composing them', () => {
    const { ms } = refused('---\n'.repeat(250_000), `p.yaml: line ${L.maxDocuments + 1}, column 1: more than ${L.maxDocuments} empty documents in one file (maxDocuments)`);
    assert.ok(ms < 500, `${ms} ms`);
  });

  it('keeps the file size limit', () => {
    refused(`a: ${'x'.repeat(L.maxFileBytes)}`, `p.yaml: ${L.maxFileBytes + 3} bytes is larger than the limit of ${L.maxFileBytes} bytes per file (maxFileBytes)`);
    refused(`a: ${'é'.repeat(L.maxFileBytes / 2)}`, 'p.yaml: ', 'maxFileBytes');
  });
});
