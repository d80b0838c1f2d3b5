import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { UserError } from '../../src/errors.js';
import { POLICY_LIMITS, parsePolicyText } from '../../src/policy/parse.js';
import type { PolicyRef, Rule, Selector } from '../../src/policy/types.js';
import { fails } from '../harness/policy-parse.js';

const NS = 'k8s:io.kubernetes.pod.namespace';
const PODS_ONLY: Selector['matchExpressions'][number] = { key: NS, operator: 'Exists', values: [] };

const sel = (matchLabels: Record<string, string> = {}, matchExpressions: Selector['matchExpressions'] = []): Selector => ({
  matchLabels,
  matchExpressions,
});

const CNP_REF: PolicyRef = { kind: 'CiliumNetworkPolicy', namespace: 'default', name: 'web' };
const CCNP_REF: PolicyRef = { kind: 'CiliumClusterwideNetworkPolicy', name: 'web' };
const KNP_REF: PolicyRef = { kind: 'NetworkPolicy', namespace: 'default', name: 'web' };

function cnp(spec: unknown, extra: Record<string, unknown> = {}) {
  return { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'web', namespace: 'default' }, spec, ...extra };
}
function ccnp(spec: unknown) {
  return { apiVersion: 'cilium.io/v2', kind: 'CiliumClusterwideNetworkPolicy', metadata: { name: 'web' }, spec };
}
function knp(spec: unknown) {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'web', namespace: 'default' }, spec };
}

/** Parses documents given as objects (written out as YAML) and returns the rules of each. */
function rulesOf(...docs: unknown[]): Rule[] {
  const text = docs.map((d) => stringify(d)).join('---\n');
  return parsePolicyText(text, 'p.yaml').flatMap((p) => p.rules);
}

/** The one rule of one document. */
function rule(doc: unknown): Rule {
  const rules = rulesOf(doc);
  assert.equal(rules.length, 1);
  return rules[0]!;
}


const CNP_AT = 'p.yaml: document 1 (CiliumNetworkPolicy default/web): ';

describe('CiliumNetworkPolicy', () => {
  it('translates a rule, scoping selectors to the policy namespace', () => {
    const text = `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: web
  namespace: default
spec:
  description: web tier
  endpointSelector:
    matchLabels: {app: web, "k8s:tier": front}
  ingress:
    - fromEndpoints:
        - matchLabels: {role: lb}
        - matchLabels: {"k8s:io.kubernetes.pod.namespace": monitoring}
        - matchExpressions: [{key: io.kubernetes.pod.namespace, operator: In, values: [a, b]}]
        - matchLabels: {"reserved:host": ""}
      toPorts:
        - ports: [{port: "80", protocol: TCP}, {port: 8443}]
    - fromEntities: [host, world-ipv4]
      toPorts:
        - ports: [{port: "80", protocol: TCP}, {port: 8443}]
  egressDeny:
    - toCIDR: [192.168.1.7]
`;
    const [p] = parsePolicyText(text, 'p.yaml');
    assert.deepEqual(p!.ref, CNP_REF);
    assert.equal((p!.source as { spec: { description: string } }).spec.description, 'web tier');
    assert.deepEqual(p!.rules, [
      {
        policy: CNP_REF,
        subject: sel({ 'any:app': 'web', 'k8s:tier': 'front', [NS]: 'default' }),
        description: 'web tier',
        ingress: [
          {
            peers: [
              { type: 'endpoints', selector: sel({ 'any:role': 'lb', [NS]: 'default' }) },
              { type: 'endpoints', selector: sel({ [NS]: 'monitoring' }) },
              { type: 'endpoints', selector: sel({}, [{ key: 'any:io.kubernetes.pod.namespace', operator: 'In', values: ['a', 'b'] }]) },
              { type: 'endpoints', selector: sel({ 'reserved:host': '' }) },
            ],
            ports: [
              { protocol: 'TCP', port: 80 },
              { protocol: 'ANY', port: 8443 },
            ],
          },
          {
            peers: [
              { type: 'entity', entity: 'host' },
              { type: 'entity', entity: 'world' },
            ],
            ports: [
              { protocol: 'TCP', port: 80 },
              { protocol: 'ANY', port: 8443 },
            ],
          },
        ],
        egressDeny: [{ peers: [{ type: 'cidr', cidr: '192.168.1.7/32', except: [], matchEndpoints: false }], ports: undefined }],
      },
    ]);
  });

  it('refuses what Cilium refuses: several L3 kinds in one rule, icmps with toPorts, lower-case protocols', () => {
    fails(
      cnp({ endpointSelector: {}, ingress: [{ fromEndpoints: [{}], fromCIDR: ['10.0.0.0/8'] }] }),
      `${CNP_AT}spec.ingress[0]: `,
      'combining fromEndpoints and fromCIDR in one rule is not supported',
    );
    fails(
      cnp({ endpointSelector: {}, egress: [{ toEntities: ['world'], toCIDRSet: [{ cidr: '10.0.0.0/8' }] }] }),
      `${CNP_AT}spec.egress[0]: `,
      'combining toEntities and toCIDRSet',
    );
    fails(
      cnp({ endpointSelector: {}, ingress: [{ icmps: [{ fields: [{ type: 8 }] }], toPorts: [{ ports: [{ port: '80' }] }] }] }),
      `${CNP_AT}spec.ingress[0]: `,
      'icmps may only be present without toPorts',
    );
    fails(
      cnp({ endpointSelector: {}, ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'tcp' }] }] }] }),
      `${CNP_AT}spec.ingress[0].toPorts[0].ports[0].protocol: `,
      'write it in upper case: TCP',
    );
  });

  it('keeps a matching namespace in the endpointSelector and refuses another one', () => {
    assert.deepEqual(rule(cnp({ endpointSelector: { matchLabels: { 'io.kubernetes.pod.namespace': 'default' } } })).subject, sel({ [NS]: 'default' }));
    fails(
      cnp({ endpointSelector: { matchLabels: { [NS]: 'other' } } }),
      `${CNP_AT}spec.endpointSelector.matchLabels["k8s:io.kubernetes.pod.namespace"]: `,
      'always applies in the policy\'s namespace "default"',
    );
  });

  it('distinguishes an empty entry, an empty peer list and an L4-only entry', () => {
    const r = rule(
      cnp({
        endpointSelector: {},
        ingress: [{}, { fromEndpoints: [] }, { toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }] }] }, { toPorts: [] }, { toPorts: [{}] }],
        egress: [],
      }),
    );
    assert.deepEqual(r.ingress, [
      { peers: [], ports: undefined }, // `{}` selects nothing, but the section still means default deny
      { peers: [], ports: undefined }, // an explicit empty list contributes no peers
      { peers: undefined, ports: [{ protocol: 'UDP', port: 53 }] }, // L4-only: every peer
      { peers: [], ports: undefined }, // an empty toPorts is no L4 rule at all
      { peers: undefined, ports: undefined }, // a toPorts entry without ports: all ports
    ]);
    assert.equal(r.egress, undefined, 'an empty section does not apply (Cilium)');
    assert.equal(r.ingressDeny, undefined);
    assert.ok(!('egressDeny' in r));
  });

  it('translates named ports, ranges, port 0 and ICMP types by name', () => {
    const r = rule(
      cnp({
        endpointSelector: {},
        egress: [
          {
            toEntities: ['cluster'],
            toPorts: [{ ports: [{ port: 'http-alt' }, { port: '8000', endPort: 8080, protocol: 'TCP' }, { port: 0, protocol: 'SCTP' }] }],
          },
          { toEntities: ['cluster'], icmps: [{ fields: [{ type: 'EchoRequest' }, { type: 0, family: 'IPv4' }, { type: '11' }] }] },
        ],
      }),
    );
    assert.deepEqual(r.egress, [
      {
        peers: [{ type: 'entity', entity: 'cluster' }],
        ports: [
          { protocol: 'ANY', port: 'http-alt' },
          { protocol: 'TCP', port: 8000, endPort: 8080 },
          { protocol: 'SCTP' },
        ],
      },
      {
        peers: [{ type: 'entity', entity: 'cluster' }],
        ports: [
          { protocol: 'ICMP', icmpType: 8 },
          { protocol: 'ICMP', icmpType: 0 },
          { protocol: 'ICMP', icmpType: 11 },
        ],
      },
    ]);
  });

  it('translates CIDR sets with except, normalized', () => {
    const r = rule(cnp({ endpointSelector: {}, egress: [{ toCIDRSet: [{ cidr: '10.0.0.0/8', except: ['10.1.0.0/16', '10.2.3.4'] }] }, { toCIDR: ['0.0.0.0/0'] }] }));
    assert.deepEqual(r.egress?.[0]?.peers, [{ type: 'cidr', cidr: '10.0.0.0/8', except: ['10.1.0.0/16', '10.2.3.4/32'], matchEndpoints: false }]);
    assert.deepEqual(r.egress?.[1]?.peers, [{ type: 'cidr', cidr: '0.0.0.0/0', except: [], matchEndpoints: false }]);
  });

  it('turns every entry of specs into a rule, after spec', () => {
    const rules = rulesOf(
      cnp({ endpointSelector: { matchLabels: { a: '1' } } }, { specs: [{ endpointSelector: { matchLabels: { b: '2' } }, ingress: [] }, { endpointSelector: {} }] }),
    );
    assert.deepEqual(rules, [
      { policy: CNP_REF, subject: sel({ 'any:a': '1', [NS]: 'default' }) },
      { policy: CNP_REF, subject: sel({ 'any:b': '2', [NS]: 'default' }) },
      { policy: CNP_REF, subject: sel({ [NS]: 'default' }) },
    ]);
  });

  it('keeps matchExpressions and their operators', () => {
    const r = rule(
      cnp({
        endpointSelector: {
          matchExpressions: [
            { key: 'app', operator: 'NotIn', values: ['a'] },
            { key: 'k8s:debug', operator: 'DoesNotExist' },
          ],
        },
      }),
    );
    assert.deepEqual(
      r.subject,
      sel({ [NS]: 'default' }, [
        { key: 'any:app', operator: 'NotIn', values: ['a'] },
        { key: 'k8s:debug', operator: 'DoesNotExist', values: [] },
      ]),
    );
  });
});

describe('CiliumClusterwideNetworkPolicy', () => {
  it('does not scope the subject and limits unscoped peers to pods in any namespace', () => {
    const r = rule(
      ccnp({
        endpointSelector: { matchLabels: { app: 'dns' } },
        ingress: [{ fromEndpoints: [{}, { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system' } }, { matchLabels: { 'reserved:host': '' } }] }],
      }),
    );
    assert.deepEqual(r, {
      policy: CCNP_REF,
      subject: sel({ 'any:app': 'dns' }),
      ingress: [
        {
          peers: [
            { type: 'endpoints', selector: sel({}, [PODS_ONLY]) },
            { type: 'endpoints', selector: sel({ [NS]: 'kube-system' }) },
            { type: 'endpoints', selector: sel({ 'reserved:host': '' }) },
          ],
          ports: undefined,
        },
      ],
    });
  });

  it('ignores metadata.namespace and leaves it out of messages', () => {
    const doc = { ...ccnp({ endpointSelector: {}, ingress: [{ fromEntities: ['wrld'] }] }), metadata: { name: 'allow-dns', namespace: 'x' } };
    fails(doc, 'p.yaml: document 1 (CiliumClusterwideNetworkPolicy allow-dns): spec.ingress[0].fromEntities[0]: unknown entity "wrld"');
    assert.deepEqual(parsePolicyText(stringify({ ...doc, spec: { endpointSelector: {} } }), 'p.yaml')[0]!.ref, {
      kind: 'CiliumClusterwideNetworkPolicy',
      name: 'allow-dns',
    });
  });
});

describe('Kubernetes NetworkPolicy', () => {
  const subject = sel({ 'any:app': 'db', [NS]: 'default' });

  it('translates peers: pods, namespaces, both, any namespace, ipBlock', () => {
    const r = rule(
      knp({
        podSelector: { matchLabels: { app: 'db' } },
        ingress: [
          {
            from: [
              { podSelector: { matchLabels: { app: 'api' } } },
              { namespaceSelector: { matchLabels: { team: 'blue' }, matchExpressions: [{ key: 'env', operator: 'In', values: ['prod'] }] } },
              { namespaceSelector: { matchLabels: { team: 'red' } }, podSelector: { matchLabels: { app: 'etl' } } },
              { namespaceSelector: {} },
              { ipBlock: { cidr: '172.16.0.0/12', except: ['172.16.5.0/24'] } },
            ],
            ports: [{ port: 5432 }, { protocol: 'UDP', port: 'metrics' }, { port: 6000, endPort: 6010 }, { protocol: 'SCTP' }],
          },
        ],
      }),
    );
    const nsLabel = (k: string) => `k8s:io.cilium.k8s.namespace.labels.${k}`;
    assert.deepEqual(r, {
      policy: KNP_REF,
      subject,
      ingress: [
        {
          peers: [
            { type: 'endpoints', selector: sel({ 'any:app': 'api', [NS]: 'default' }) },
            {
              type: 'endpoints',
              selector: sel({ [nsLabel('team')]: 'blue' }, [{ key: nsLabel('env'), operator: 'In', values: ['prod'] }, PODS_ONLY]),
            },
            { type: 'endpoints', selector: sel({ 'any:app': 'etl', [nsLabel('team')]: 'red' }, [PODS_ONLY]) },
            { type: 'endpoints', selector: sel({}, [PODS_ONLY]) },
            { type: 'cidr', cidr: '172.16.0.0/12', except: ['172.16.5.0/24'], matchEndpoints: true },
          ],
          ports: [
            { protocol: 'TCP', port: 5432 },
            { protocol: 'UDP', port: 'metrics' },
            { protocol: 'TCP', port: 6000, endPort: 6010 },
            { protocol: 'SCTP' },
          ],
        },
      ],
    });
  });

  it('reads an empty rule as "everything", unlike Cilium', () => {
    assert.deepEqual(rule(knp({ podSelector: {}, ingress: [{}, { from: [], ports: [] }] })).ingress, [
      { peers: undefined, ports: undefined },
      { peers: undefined, ports: undefined },
    ]);
  });

  it('defaults policyTypes to Ingress, plus Egress when there are egress rules', () => {
    const onlyIngress = rule(knp({ podSelector: {} }));
    assert.deepEqual(onlyIngress, { policy: KNP_REF, subject: sel({ [NS]: 'default' }), ingress: [] });

    const both = rule(knp({ podSelector: {}, egress: [{ to: [{ podSelector: {} }] }] }));
    assert.deepEqual(both.ingress, []);
    assert.deepEqual(both.egress, [{ peers: [{ type: 'endpoints', selector: sel({ [NS]: 'default' }) }], ports: undefined }]);
  });

  it('follows explicit policyTypes, ignoring rules of other directions', () => {
    const r = rule(knp({ podSelector: {}, policyTypes: ['Egress'], ingress: [{}] }));
    assert.equal(r.ingress, undefined);
    assert.deepEqual(r.egress, []); // Egress listed without rules: deny all egress
  });
});

describe('files', () => {
  it('reads several documents, skipping empty ones, and numbers them by position', () => {
    const text = `---
${stringify(cnp({ endpointSelector: {} }))}
---
# just a comment
---
${stringify(knp({ podSelector: {} }))}
---
`;
    const policies = parsePolicyText(text, 'p.yaml');
    assert.deepEqual(
      policies.map((p) => p.ref),
      [CNP_REF, KNP_REF],
    );
    fails(`${text}\n${stringify(cnp({ endpointSelector: {}, bogus: 1 }))}`, `p.yaml: document 4 (CiliumNetworkPolicy default/web): spec.bogus: unknown field "bogus"`);
  });

  it('expands a kind: List, naming the item in messages', () => {
    const list = { apiVersion: 'v1', kind: 'List', items: [cnp({ endpointSelector: {} }), knp({ podSelector: {} })] };
    assert.deepEqual(
      parsePolicyText(stringify(list), 'p.yaml').map((p) => p.ref),
      [CNP_REF, KNP_REF],
    );
    const bad = { ...list, items: [ccnp({ endpointSelector: {} }), knp({ podSelector: [] })] };
    fails(bad, 'p.yaml: document 1 item 2 (NetworkPolicy default/web): spec.podSelector: expected a mapping');
  });

  it('reads JSON', () => {
    const text = JSON.stringify(knp({ podSelector: { matchLabels: { app: 'db' } }, policyTypes: ['Ingress'] }), null, 2);
    const [p] = parsePolicyText(text, 'p.json');
    assert.deepEqual(p!.rules, [{ policy: KNP_REF, subject: sel({ 'any:app': 'db', [NS]: 'default' }), ingress: [] }]);
    assert.deepEqual(p!.source, JSON.parse(text));
  });

  it('refuses a file without any policy: empty, comments only, empty documents, an empty List', () => {
    for (const text of ['', '\n\n', '# nothing\n', '# nothing\n---\n', '---\n---\n# x\n...\n', 'null\n', '~\n---\n', 'apiVersion: v1\nkind: List\nitems: []\n']) {
      fails(text, 'p.yaml: no policy in this file (nothing to import)');
    }
  });

  it('keeps messages on one line whatever the file name holds', () => {
    const cases: [string, string][] = [
      ['a\nb.yaml', '"a\\nb.yaml": '],
      ['x\u2028.yaml', '"x\\u2028.yaml": '],
      ['tab\t.yaml', '"tab\\t.yaml": '],
      ['plain name.yaml', 'plain name.yaml: '],
    ];
    for (const [file, prefix] of cases) {
      for (const text of ['', 'a: [', stringify(cnp({ endpointSelector: {}, bogus: 1 }))]) {
        assert.throws(
          () => parsePolicyText(text, file),
          (err: unknown) => err instanceof UserError && err.message.startsWith(prefix) && !/[\n\r\u2028\u2029]/.test(err.message),
        );
      }
    }
  });

  it('accepts the ObjectMeta fields kubectl prints, and ignores them', () => {
    const metadata = {
      name: 'web',
      namespace: 'default',
      labels: { app: 'web' },
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}' },
      uid: '0b6f7e4e-1b1e-4b8e-9d5e-3f1c2a4b5c6d',
      resourceVersion: '123',
      generation: 2,
      creationTimestamp: '2024-01-01T00:00:00Z',
      deletionTimestamp: null,
      deletionGracePeriodSeconds: 30,
      managedFields: [{ manager: 'kubectl', operation: 'Update', fieldsV1: { 'f:spec': {} } }],
      ownerReferences: [],
      finalizers: [],
      generateName: 'web-',
      selfLink: '/apis/cilium.io/v2/namespaces/default/ciliumnetworkpolicies/web',
    };
    assert.deepEqual(parsePolicyText(stringify({ ...cnp({ endpointSelector: {} }), metadata }), 'p.yaml')[0]?.ref, CNP_REF);
  });

  it('reports duplicate keys with the line of the first one, in linear time', () => {
    fails('a: 1\nb: 2\na: 3\n', 'p.yaml: line 3, column 1 (document 1): invalid YAML: duplicate key "a"', 'the first one is on line 1');
    fails('{a: 1, "a": 2}', 'p.yaml: line 1, column 8 (document 1): invalid YAML: duplicate key "a"');
    // 1 and "1" would become the same property: the second one would silently win.
    fails('1: x\n"1": y\n', 'p.yaml: line 2, column 1 (document 1): invalid YAML: duplicate key "1"');
    const keys = Array.from({ length: POLICY_LIMITS.maxKeysPerMapping }, (_, i) => `k${i}: v`);
    const started = process.cpuUsage();
    fails([...keys.slice(0, -1), 'k0: again'].join('\n'), `p.yaml: line ${POLICY_LIMITS.maxKeysPerMapping}, column 1 (document 1): invalid YAML: duplicate key "k0"`);
    const used = process.cpuUsage(started);
    const ms = (used.user + used.system) / 1000;
    assert.ok(ms < 1000, `${POLICY_LIMITS.maxKeysPerMapping} keys took ${ms} ms of CPU`);
  });

  it('refuses keys that are not plain values', () => {
    fails('? [a, b]\n: 1\n', 'p.yaml: line 1, column 3 (document 1): invalid YAML: a mapping key must be a string, not a list');
    fails('? {a: 1}\n: 1\n', 'p.yaml: line 1, column 3 (document 1): invalid YAML: a mapping key must be a string, not a mapping');
    fails('a: &k x\n*k : 1\n', 'p.yaml: line 2, column 1 (document 1): invalid YAML: a mapping key must be a string, not an alias');
  });

  it('reports YAML syntax errors on one line with the line number', () => {
    fails('kind: CiliumNetworkPolicy\nspec:\n  ingress: [a\n  b: c\n', 'p.yaml: line 4, column', 'invalid YAML');
    fails('kind: CiliumNetworkPolicy\n---\n# second\na: 1\na: 2\n', 'p.yaml: line 5, column 1 (document 2): invalid YAML', 'unique');
  });

  it('refuses more documents than the limit', () => {
    const text = Array.from({ length: POLICY_LIMITS.maxDocuments + 1 }, (_, i) => `{kind: x, metadata: {name: p${i}}}`).join('\n---\n');
    fails(text, 'p.yaml: ', `${POLICY_LIMITS.maxDocuments}`, 'maxDocuments');
  });

  it('refuses files over the size limit', () => {
    fails(`# ${'x'.repeat(POLICY_LIMITS.maxFileBytes)}`, 'p.yaml: ', 'maxFileBytes');
  });

  it('refuses too many rules and peers', () => {
    const specs = Array.from({ length: POLICY_LIMITS.maxRulesPerDocument + 1 }, () => ({ endpointSelector: {} }));
    fails({ ...cnp(undefined), spec: undefined, specs }, `${CNP_AT}specs: `, 'maxRulesPerDocument');
    const cidrs = Array.from({ length: POLICY_LIMITS.maxPeersPerRule + 1 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
    fails(cnp({ endpointSelector: {}, egress: [{ toCIDR: cidrs }] }), `${CNP_AT}spec.egress[0].toCIDR[${POLICY_LIMITS.maxPeersPerRule}]: `, 'maxPeersPerRule');
  });

  it('refuses the same policy twice in one file', () => {
    const text = [cnp({ endpointSelector: {} }), cnp({ endpointSelector: {} })].map((d) => stringify(d)).join('---\n');
    fails(text, `p.yaml: document 2 (CiliumNetworkPolicy default/web): metadata.name: `, 'document 1');
  });
});

describe('errors', () => {
  const base = { endpointSelector: {} };
  const cases: [string, unknown, string, ...string[]][] = [
    ['unknown kind', { ...cnp(base), kind: 'CiliumNetworkPolicies' }, 'p.yaml: document 1 (CiliumNetworkPolicies default/web): kind: ', 'unknown kind'],
    ['missing kind', { ...cnp(base), kind: undefined }, 'p.yaml: document 1 (unknown kind default/web): kind: missing'],
    ['wrong apiVersion', { ...cnp(base), apiVersion: 'cilium.io/v1' }, `${CNP_AT}apiVersion: `, 'cilium.io/v2'],
    ['wrong KNP apiVersion', { ...knp({ podSelector: {} }), apiVersion: 'cilium.io/v2' }, 'p.yaml: document 1 (NetworkPolicy default/web): apiVersion: ', 'networking.k8s.io/v1'],
    ['missing name', { ...cnp(base), metadata: { namespace: 'default' } }, 'p.yaml: document 1 (CiliumNetworkPolicy no name): metadata.name: missing'],
    ['a name with a line break', { ...cnp(base), metadata: { name: 'web\nx', namespace: 'default' } }, 'p.yaml: document 1 (CiliumNetworkPolicy default/"web\\nx"): metadata.name: "web\\nx" is not a valid name'],
    ['a name with U+2028', { ...cnp(base), metadata: { name: 'web\u2028', namespace: 'default' } }, 'p.yaml: document 1 (CiliumNetworkPolicy default/"web\\u2028"): metadata.name: "web\\u2028" is not a valid name'],
    ['an unknown metadata field', { ...cnp(base), metadata: { name: 'web', namespace: 'default', lables: { a: 'b' } } }, `${CNP_AT}metadata.lables: unknown field "lables" (did you mean labels? allowed here: name, namespace, labels, annotations, uid,`],
    ['an unknown metadata field with a line break', { ...cnp(base), metadata: { name: 'web', namespace: 'default', 'x\ny': 1 } }, `${CNP_AT}metadata["x\\ny"]: unknown field "x\\ny"`],
    ['invalid name', { ...cnp(base), metadata: { name: 'Web', namespace: 'default' } }, 'p.yaml: document 1 (CiliumNetworkPolicy default/Web): metadata.name: '],
    ['a namespace that is not a string', { ...cnp(base), metadata: { name: 'web', namespace: 7 } }, 'p.yaml: document 1 (CiliumNetworkPolicy web): metadata.namespace: expected a string'],
    ['an invalid namespace', { ...cnp(base), metadata: { name: 'web', namespace: 'Prod' } }, 'p.yaml: document 1 (CiliumNetworkPolicy Prod/web): metadata.namespace: "Prod" is not a valid namespace'],
    ['no spec', { ...cnp(undefined), spec: undefined }, `${CNP_AT}spec: missing`, 'specs'],
    ['missing endpointSelector', cnp({ ingress: [] }), `${CNP_AT}spec.endpointSelector: missing`],
    ['host policy', cnp({ nodeSelector: {} }), `${CNP_AT}spec.nodeSelector: `, 'host policies (nodeSelector) are not supported yet'],
    ['unknown field in spec', cnp({ ...base, ingres: [] }), `${CNP_AT}spec.ingres: unknown field`, 'did you mean ingress?'],
    ['unknown field in an entry', cnp({ ...base, ingress: [{ fromEndpoint: [{}] }] }), `${CNP_AT}spec.ingress[0].fromEndpoint: unknown field`, 'fromEndpoints'],
    ['unknown field in a port', cnp({ ...base, ingress: [{ toPorts: [{ ports: [{ prot: 80 }] }] }] }), `${CNP_AT}spec.ingress[0].toPorts[0].ports[0].prot: unknown field`],
    ['unknown field in a selector', cnp({ endpointSelector: { matchLabel: {} } }), `${CNP_AT}spec.endpointSelector.matchLabel: unknown field`, 'matchLabels'],
    ['unknown top-level field', { ...cnp(base), sepc: {} }, `${CNP_AT}sepc: unknown field`],
    ['bad operator', cnp({ endpointSelector: { matchExpressions: [{ key: 'a', operator: 'Equals', values: ['x'] }] } }), `${CNP_AT}spec.endpointSelector.matchExpressions[0].operator: `, 'unknown operator "Equals"', 'In, NotIn, Exists, DoesNotExist'],
    ['In without values', cnp({ endpointSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } }), `${CNP_AT}spec.endpointSelector.matchExpressions[0].values: `, 'non-empty'],
    ['Exists with values', cnp({ endpointSelector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] } }), `${CNP_AT}spec.endpointSelector.matchExpressions[0].values: `, 'takes no values'],
    ['label value not a string', cnp({ endpointSelector: { matchLabels: { replicas: 3 } } }), `${CNP_AT}spec.endpointSelector.matchLabels.replicas: `, 'label values must be strings'],
    ['bad label key', cnp({ endpointSelector: { matchLabels: { 'nope:app': 'x' } } }), `${CNP_AT}spec.endpointSelector.matchLabels["nope:app"]: `, 'unknown source'],
    ['malformed CIDR', cnp({ ...base, egress: [{ toCIDR: ['10.0.0/8'] }] }), `${CNP_AT}spec.egress[0].toCIDR[0]: `, 'not a valid IPv4 CIDR'],
    ['prefix too long', cnp({ ...base, egress: [{ toCIDR: ['10.0.0.0/33'] }] }), `${CNP_AT}spec.egress[0].toCIDR[0]: `, 'not a valid IPv4 CIDR'],
    ['host bits', cnp({ ...base, egress: [{ toCIDR: ['10.0.0.1/24'] }] }), `${CNP_AT}spec.egress[0].toCIDR[0]: 10.0.0.1/24: host bits are set (did you mean 10.0.0.0/24?)`],
    ['IPv6', cnp({ ...base, egress: [{ toCIDRSet: [{ cidr: 'fd00::/8' }] }] }), `${CNP_AT}spec.egress[0].toCIDRSet[0].cidr: `, 'IPv6 is not supported yet'],
    ['except outside', cnp({ ...base, egress: [{ toCIDRSet: [{ cidr: '10.0.0.0/16', except: ['10.1.0.0/24'] }] }] }), `${CNP_AT}spec.egress[0].toCIDRSet[0].except[0]: `, 'not inside 10.0.0.0/16'],
    ['port out of range', cnp({ ...base, ingress: [{ toPorts: [{ ports: [{ port: '80' }, { port: '70000' }] }] }] }), `${CNP_AT}spec.ingress[0].toPorts[0].ports[1].port: `, 'out of range'],
    ['bad named port', cnp({ ...base, ingress: [{ toPorts: [{ ports: [{ port: 'HTTP' }] }] }] }), `${CNP_AT}spec.ingress[0].toPorts[0].ports[0].port: `, 'port name'],
    ['endPort below port', cnp({ ...base, ingress: [{ toPorts: [{ ports: [{ port: '90', endPort: 80 }] }] }] }), `${CNP_AT}spec.ingress[0].toPorts[0].ports[0].endPort: `, 'out of range'],
    ['endPort with named port', cnp({ ...base, ingress: [{ toPorts: [{ ports: [{ port: 'http', endPort: 80 }] }] }] }), `${CNP_AT}spec.ingress[0].toPorts[0].ports[0].endPort: `, 'numeric port'],
    ['bad protocol', cnp({ ...base, ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'ICMP' }] }] }] }), `${CNP_AT}spec.ingress[0].toPorts[0].ports[0].protocol: `, 'icmps'],
    ['unknown ICMP type', cnp({ ...base, ingress: [{ icmps: [{ fields: [{ type: 'Ping' }] }] }] }), `${CNP_AT}spec.ingress[0].icmps[0].fields[0].type: `, 'EchoRequest'],
    ['ICMPv6', cnp({ ...base, ingress: [{ icmps: [{ fields: [{ type: 128, family: 'IPv6' }] }] }] }), `${CNP_AT}spec.ingress[0].icmps[0].fields[0].family: `, 'not supported yet'],
    ['unknown entity', cnp({ ...base, ingress: [{ fromEntities: ['world', 'wrld'] }] }), `${CNP_AT}spec.ingress[0].fromEntities[1]: unknown entity "wrld" (use one of all, world, cluster, host, remote-node, init, health, unmanaged, kube-apiserver, ingress, none)`],
    ['world-ipv6', cnp({ ...base, ingress: [{ fromEntities: ['world-ipv6'] }] }), `${CNP_AT}spec.ingress[0].fromEntities[0]: `, 'IPv6 is not supported yet'],
    ['L7 rules', cnp({ ...base, ingress: [{ toPorts: [{ ports: [{ port: '80' }], rules: { http: [{}] } }] }] }), `${CNP_AT}spec.ingress[0].toPorts[0].rules.http: `, 'not supported yet'],
    ['L7 rules in deny', cnp({ ...base, ingressDeny: [{ toPorts: [{ rules: {} }] }] }), `${CNP_AT}spec.ingressDeny[0].toPorts[0].rules: `, 'deny'],
    ['toFQDNs', cnp({ ...base, egress: [{ toFQDNs: [{ matchName: 'x.com' }] }] }), `${CNP_AT}spec.egress[0].toFQDNs: `, 'not supported yet'],
    ['fromRequires', cnp({ ...base, ingress: [{ fromRequires: [{}] }] }), `${CNP_AT}spec.ingress[0].fromRequires: `, 'not supported yet'],
    ['ipBlock with a selector', knp({ podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }] }] }), 'p.yaml: document 1 (NetworkPolicy default/web): spec.ingress[0].from[0].ipBlock: ', 'cannot be combined'],
    ['empty KNP peer', knp({ podSelector: {}, egress: [{ to: [{}] }] }), 'p.yaml: document 1 (NetworkPolicy default/web): spec.egress[0].to[0]: ', 'podSelector, namespaceSelector or ipBlock'],
    ['KNP without podSelector', knp({ ingress: [] }), 'p.yaml: document 1 (NetworkPolicy default/web): spec.podSelector: missing'],
    ['KNP policy type', knp({ podSelector: {}, policyTypes: ['ingress'] }), 'p.yaml: document 1 (NetworkPolicy default/web): spec.policyTypes[0]: ', 'Ingress or Egress'],
    ['KNP port 0', knp({ podSelector: {}, ingress: [{ ports: [{ port: 0 }] }] }), 'p.yaml: document 1 (NetworkPolicy default/web): spec.ingress[0].ports[0].port: ', 'out of range'],
    ['not a mapping', 'just a string', 'p.yaml: document 1 (unknown kind no name): expected a mapping'],
  ];
  for (const [title, doc, prefix, ...parts] of cases) {
    it(`reports ${title}`, () => fails(doc, prefix, ...parts));
  }
});
