/* Policies in the shapes of Cilium's own examples (written for this test, not copied) apply
 * unchanged: a namespaced policy without metadata.namespace lands in "default" with a note that
 * says so, `description` is accepted next to metadata, in a rule and in its entries, and empty
 * lists or objects of fields Membrane does not implement yet are the no-ops Cilium makes of them.
 * Non-empty ones are still refused on one line, and an unknown field lists every field known at
 * its place and points to the renamed one. The notes reach the API's import and validate
 * answers, through the worker thread, and are not stored. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { AgentClient } from '../../src/api/client.js';
import { registerPolicyRoutes, type PolicyRouteDeps } from '../../src/api/policy-routes.js';
import { ApiServer } from '../../src/api/server.js';
import { parsePolicyText, type ParsedPolicy } from '../../src/policy/parse.js';
import { PolicyParser } from '../../src/policy/parse-pool.js';
import { PolicyRepository } from '../../src/policy/repository.js';
import type { PeerRule, PolicyRef, Selector } from '../../src/policy/types.js';
import { Mutex } from '../../src/util/mutex.js';
import { MemoryStore } from '../harness/memory-store.js';
import { fails } from '../harness/policy-parse.js';

const NS = 'k8s:io.kubernetes.pod.namespace';
const sel = (matchLabels: Record<string, string> = {}, matchExpressions: Selector['matchExpressions'] = []): Selector => ({ matchLabels, matchExpressions });
const inDefault = (labels: Record<string, string> = {}) => sel({ ...labels, [NS]: 'default' });

/** Cilium-style documents, one of each shape the examples use. */
const EXAMPLES = `# A getting-started style L3/L4 policy: no namespace, a description next to metadata.
apiVersion: "cilium.io/v2"
kind: CiliumNetworkPolicy
description: "Only tellers may reach the ledger, and only on its HTTP port"
metadata:
  name: "ledger-l3-l4"
spec:
  description: "L3-L4 policy for the ledger"
  endpointSelector:
    matchLabels:
      bank: central
      app: ledger
  ingress:
  - description: "tellers, on 80/TCP"
    fromEndpoints:
    - matchLabels:
        role: teller
    toPorts:
    - ports:
      - port: "80"
        protocol: TCP
      rules: {}
---
# Egress with DNS and FQDN fields left empty, as policy generators write them.
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: egress-shapes
spec:
  endpointSelector:
    matchLabels: {app: fetcher}
  egress:
  - toEndpoints:
    - matchLabels:
        "k8s:io.kubernetes.pod.namespace": kube-system
        k8s-app: kube-dns
    toPorts:
    - ports: [{port: "53", protocol: ANY}]
      rules:
        dns: []
  - toFQDNs: []
    toServices: []
    toPorts:
    - ports: [{port: "443", protocol: TCP}]
      rules:
        http: []
  - toFQDNs: []
  - toNodes: []
    toPorts:
    - ports: [{port: "10250", protocol: TCP}]
  - toEntities: [world]
    authentication:
      mode: disabled
  egressDeny:
  - toServices: []
    toGroups: []
    toCIDR: [192.0.2.0/24]
---
# Requirements, groups and nodes left empty; several rules in specs, each with a description.
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: specs-shapes
  namespace: ""
specs:
- description: "api from the frontends"
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromRequires: []
    fromGroups: []
    fromEndpoints: [{matchLabels: {app: frontend}}]
    authentication: {mode: disabled}
  ingressDeny:
  - description: "never from the internet"
    fromRequires: []
    fromEntities: [world]
- description: "deny-all for the batch jobs"
  endpointSelector: {matchLabels: {app: batch}}
  ingress:
  - {}
  - fromNodes: []
  - fromEndpoints: []
    fromEntities: [host]
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
description: "cluster-wide: every pod may resolve names"
metadata:
  name: dns-everywhere
spec:
  description: "DNS to kube-dns"
  endpointSelector: {}
  egress:
  - toEndpoints:
    - matchLabels: {"k8s:io.kubernetes.pod.namespace": kube-system, k8s-app: kube-dns}
    toPorts:
    - ports: [{port: "53", protocol: UDP}]
      rules: {dns: [], http: [], kafka: []}
    toFQDNs: []
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: db-from-api
spec:
  podSelector:
    matchLabels: {app: db}
  ingress:
  - from:
    - podSelector:
        matchLabels: {app: api}
    ports:
    - port: 5432
`;

const ref = (kind: PolicyRef['kind'], name: string): PolicyRef => (kind === 'CiliumClusterwideNetworkPolicy' ? { kind, name } : { kind, namespace: 'default', name });

describe('Cilium-style examples', () => {
  let policies: ParsedPolicy[] = [];
  before(() => {
    policies = parsePolicyText(EXAMPLES, 'examples.yaml');
  });

  it('validates every document unchanged', () => {
    assert.deepEqual(
      policies.map((p) => p.ref),
      [
        ref('CiliumNetworkPolicy', 'ledger-l3-l4'),
        ref('CiliumNetworkPolicy', 'egress-shapes'),
        ref('CiliumNetworkPolicy', 'specs-shapes'),
        ref('CiliumClusterwideNetworkPolicy', 'dns-everywhere'),
        ref('NetworkPolicy', 'db-from-api'),
      ],
    );
  });

  it('imports a namespaced policy without metadata.namespace into "default", and says so', () => {
    assert.deepEqual(
      policies.map((p) => p.notes),
      [
        ['examples.yaml: document 1 (CiliumNetworkPolicy ledger-l3-l4): no metadata.namespace: imported into namespace "default" (as kubectl does)'],
        ['examples.yaml: document 2 (CiliumNetworkPolicy egress-shapes): no metadata.namespace: imported into namespace "default" (as kubectl does)'],
        ['examples.yaml: document 3 (CiliumNetworkPolicy specs-shapes): no metadata.namespace: imported into namespace "default" (as kubectl does)'],
        undefined, // clusterwide: no namespace to give
        ['examples.yaml: document 5 (NetworkPolicy db-from-api): no metadata.namespace: imported into namespace "default" (as kubectl does)'],
      ],
    );
    // Scoped to "default" like a policy that names it; the source stays as written.
    assert.deepEqual(policies[0]!.rules[0]!.subject, inDefault({ 'any:bank': 'central', 'any:app': 'ledger' }));
    assert.deepEqual(policies[4]!.rules[0]!.subject, inDefault({ 'any:app': 'db' }));
    assert.deepEqual((policies[0]!.source as { metadata: unknown }).metadata, { name: 'ledger-l3-l4' });
    assert.deepEqual((policies[2]!.source as { metadata: unknown }).metadata, { name: 'specs-shapes', namespace: '' });
    // A policy that names its namespace gets no note.
    const named = parsePolicyText(EXAMPLES.replace('  name: "ledger-l3-l4"\n', '  name: "ledger-l3-l4"\n  namespace: bank\n'), 'examples.yaml');
    assert.equal(named[0]!.notes, undefined);
    assert.equal(named[0]!.ref.namespace, 'bank');
  });

  it('is the same policy as the one that names "default": a file may not define it twice', () => {
    const text = `${stringify({ apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'web' }, spec: { endpointSelector: {} } })}---
${stringify({ apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'web', namespace: 'default' }, spec: { endpointSelector: {} } })}`;
    fails(text, 'p.yaml: document 2 (CiliumNetworkPolicy default/web): metadata.name: the same policy is already defined in document 1');
  });

  it('keeps descriptions: next to metadata in the source, of rules and entries in the rule model', () => {
    assert.equal((policies[0]!.source as { description: string }).description, 'Only tellers may reach the ledger, and only on its HTTP port');
    assert.equal((policies[3]!.source as { description: string }).description, 'cluster-wide: every pod may resolve names');
    assert.deepEqual(
      policies.flatMap((p) => p.rules.map((r) => r.description)),
      ['L3-L4 policy for the ledger', undefined, 'api from the frontends', 'deny-all for the batch jobs', 'DNS to kube-dns', undefined],
    );
    assert.equal(policies[0]!.rules[0]!.ingress?.[0]?.description, 'tellers, on 80/TCP');
    assert.equal(policies[2]!.rules[0]!.ingressDeny?.[0]?.description, 'never from the internet');
  });

  it('reads `rules: {}` and empty L7 lists as the L4 rule they are', () => {
    assert.deepEqual(policies[0]!.rules[0]!.ingress, [
      {
        peers: [{ type: 'endpoints', selector: inDefault({ 'any:role': 'teller' }) }],
        ports: [{ protocol: 'TCP', port: 80 }],
        description: 'tellers, on 80/TCP',
      },
    ]);
    const dns: PeerRule = {
      peers: [{ type: 'endpoints', selector: sel({ [NS]: 'kube-system', 'any:k8s-app': 'kube-dns' }) }],
      ports: [{ protocol: 'UDP', port: 53 }],
    };
    assert.deepEqual(policies[3]!.rules[0]!.egress, [dns]);
  });

  it('reads empty lists of fields not implemented yet as Cilium does', () => {
    assert.deepEqual(policies[1]!.rules[0]!.egress, [
      {
        peers: [{ type: 'endpoints', selector: sel({ [NS]: 'kube-system', 'any:k8s-app': 'kube-dns' }) }],
        ports: [{ protocol: 'ANY', port: 53 }],
      },
      // Empty toFQDNs/toServices are absent: ports alone make an L4-only rule, every peer.
      { peers: undefined, ports: [{ protocol: 'TCP', port: 443 }] },
      // ... and alone they leave `{}`: the entry selects nothing (the section still enforces).
      { peers: [], ports: undefined },
      // An empty toNodes is an empty L3 peer list, like toEndpoints: [], and selects nothing.
      { peers: [], ports: [{ protocol: 'TCP', port: 10250 }] },
      // authentication: {mode: disabled} requires nothing.
      { peers: [{ type: 'entity', entity: 'world' }], ports: undefined },
    ]);
    assert.deepEqual(policies[1]!.rules[0]!.egressDeny, [{ peers: [{ type: 'cidr', cidr: '192.0.2.0/24', except: [], matchEndpoints: false }], ports: undefined }]);
    const [api, batch] = policies[2]!.rules;
    assert.deepEqual(api!.ingress, [{ peers: [{ type: 'endpoints', selector: inDefault({ 'any:app': 'frontend' }) }], ports: undefined }]);
    assert.deepEqual(api!.ingressDeny, [{ peers: [{ type: 'entity', entity: 'world' }], ports: undefined, description: 'never from the internet' }]);
    assert.deepEqual(batch!.ingress, [
      { peers: [], ports: undefined },
      { peers: [], ports: undefined },
      // Cilium: an explicitly empty L3 list selects no peer, even next to another kind.
      { peers: [], ports: undefined },
    ]);
  });
});


const cnp = (spec: unknown, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumNetworkPolicy',
  metadata: { name: 'web', namespace: 'default' },
  spec,
  ...extra,
});
const AT = 'p.yaml: document 1 (CiliumNetworkPolicy default/web): ';
const base = { endpointSelector: {} };

describe('fields not implemented yet, when not empty', () => {
  const cases: [string, unknown, string, ...string[]][] = [
    ['toFQDNs', cnp({ ...base, egress: [{ toFQDNs: [{ matchName: 'example.com' }] }] }), `${AT}spec.egress[0].toFQDNs: toFQDNs (DNS-based policy) is not supported yet`],
    ['toServices', cnp({ ...base, egress: [{ toServices: [{ k8sService: { serviceName: 'x', namespace: 'default' } }] }] }), `${AT}spec.egress[0].toServices: toServices is not supported yet`],
    ['fromRequires', cnp({ ...base, ingress: [{ fromRequires: [{}], fromEndpoints: [{}] }] }), `${AT}spec.ingress[0].fromRequires: fromRequires is not supported yet`],
    ['toRequires in a deny rule', cnp({ ...base, egressDeny: [{ toRequires: [{}] }] }), `${AT}spec.egressDeny[0].toRequires: toRequires is not supported yet`],
    ['fromNodes', cnp({ ...base, ingress: [{ fromNodes: [{}] }] }), `${AT}spec.ingress[0].fromNodes: fromNodes is not supported yet`],
    ['toGroups', cnp({ ...base, egress: [{ toGroups: [{ aws: {} }] }] }), `${AT}spec.egress[0].toGroups: toGroups is not supported yet`],
    ['an empty list that is not a list', cnp({ ...base, egress: [{ toFQDNs: {} }] }), `${AT}spec.egress[0].toFQDNs: expected a list, not a mapping`],
    ['HTTP rules', cnp({ ...base, ingress: [{ toPorts: [{ ports: [{ port: '80' }], rules: { http: [{ method: 'GET' }] } }] }] }), `${AT}spec.ingress[0].toPorts[0].rules.http: L7 rules (http) are not supported yet`],
    ['DNS rules', cnp({ ...base, egress: [{ toPorts: [{ ports: [{ port: '53' }], rules: { dns: [{ matchPattern: '*' }] } }] }] }), `${AT}spec.egress[0].toPorts[0].rules.dns: L7 rules (dns) are not supported yet`],
    ['l7proto', cnp({ ...base, ingress: [{ toPorts: [{ rules: { l7proto: 'r2d2' } }] }] }), `${AT}spec.ingress[0].toPorts[0].rules.l7proto: `, 'not supported yet'],
    ['an unknown kind of L7 rule', cnp({ ...base, ingress: [{ toPorts: [{ rules: { htp: [] } }] }] }), `${AT}spec.ingress[0].toPorts[0].rules.htp: unknown field "htp" (did you mean http? allowed here: http, kafka, dns, l7; recognised here but not supported: l7proto)`],
    ['rules in a deny rule, even empty', cnp({ ...base, ingressDeny: [{ toPorts: [{ rules: {} }] }] }), `${AT}spec.ingressDeny[0].toPorts[0].rules: rules cannot be used in ingressDeny`],
    ['serverNames', cnp({ ...base, egress: [{ toPorts: [{ serverNames: ['example.com'] }] }] }), `${AT}spec.egress[0].toPorts[0].serverNames: `, 'not supported yet'],
    ['mutual authentication', cnp({ ...base, ingress: [{ fromEntities: ['cluster'], authentication: { mode: 'required' } }] }), `${AT}spec.ingress[0].authentication.mode: mutual authentication (mode required) is not supported yet`],
    ['an unknown authentication mode', cnp({ ...base, ingress: [{ authentication: { mode: 'spiffe' } }] }), `${AT}spec.ingress[0].authentication.mode: unknown mode "spiffe" (use disabled, required, test-always-fail)`],
    ['authentication without a mode', cnp({ ...base, ingress: [{ authentication: {} }] }), `${AT}spec.ingress[0].authentication.mode: missing`],
    ['authentication in a deny rule', cnp({ ...base, egressDeny: [{ toEntities: ['world'], authentication: { mode: 'disabled' } }] }), `${AT}spec.egressDeny[0].authentication: authentication cannot be used in egressDeny`],
    ['toFQDNs in a deny rule, even empty', cnp({ ...base, egressDeny: [{ toFQDNs: [] }] }), `${AT}spec.egressDeny[0].toFQDNs: toFQDNs cannot be used in egressDeny`],
    ['toFQDNs in an ingress rule', cnp({ ...base, ingress: [{ toFQDNs: [] }] }), `${AT}spec.ingress[0].toFQDNs: unknown field "toFQDNs"`],
    ['a description that is not a string', cnp(base, { description: ['a'] }), `${AT}description: expected a string, not a list`],
    ['an entry description that is not a string', cnp({ ...base, ingress: [{ description: 7 }] }), `${AT}spec.ingress[0].description: expected a string`],
  ];
  for (const [title, doc, prefix, ...parts] of cases) {
    it(`refuses ${title} on one line`, () => fails(doc, prefix, ...parts));
  }
});

describe('unknown fields', () => {
  it('list every field known at their place, the ones not implemented yet included', () => {
    fails(
      cnp({ ...base, egress: [{ toEndpoint: [{}] }] }),
      `${AT}spec.egress[0].toEndpoint: unknown field "toEndpoint" (did you mean toEndpoints? allowed here: toEndpoints, toEntities, toCIDR, toCIDRSet, toPorts, icmps, toRequires, toNodes, toGroups, toServices, toFQDNs, authentication, description)`,
    );
    fails(
      cnp({ ...base, ingressDeny: [{ frm: [] }] }),
      `${AT}spec.ingressDeny[0].frm: unknown field "frm" (allowed here: fromEndpoints, fromEntities, fromCIDR, fromCIDRSet, toPorts, icmps, fromRequires, fromNodes, fromGroups, description; recognised here but not supported: authentication)`,
    );
    fails(
      cnp({ ...base, ingres: [] }),
      `${AT}spec.ingres: unknown field "ingres" (did you mean ingress? allowed here: endpointSelector, ingress, egress, ingressDeny, egressDeny, description, labels; recognised here but not supported: nodeSelector, enableDefaultDeny)`,
    );
    fails(
      cnp({ ...base, egress: [{ toPorts: [{ port: [] }] }] }),
      `${AT}spec.egress[0].toPorts[0].port: unknown field "port" (did you mean ports? allowed here: ports, rules, serverNames; recognised here but not supported: terminatingTLS, originatingTLS, listener)`,
    );
    fails(cnp(base, { descripton: 'x' }), `${AT}descripton: unknown field "descripton" (did you mean description? allowed here: apiVersion, kind, metadata, spec, specs, status, description)`);
  });

  it('point to the renamed field', () => {
    fails(cnp({ ...base, ingress: [{ fromEntities: ['cluster'], auth: { mode: 'disabled' } }] }), `${AT}spec.ingress[0].auth: unknown field "auth" (did you mean authentication? Cilium renamed auth to authentication; allowed here: `, 'authentication');
    fails(cnp({ podSelector: {} }), `${AT}spec.podSelector: unknown field "podSelector" (did you mean endpointSelector? podSelector is the NetworkPolicy name; `);
    fails(
      { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'web', namespace: 'default' }, spec: { endpointSelector: {} } },
      'p.yaml: document 1 (NetworkPolicy default/web): spec.endpointSelector: unknown field "endpointSelector" (did you mean podSelector? endpointSelector is the Cilium name; allowed here: podSelector, policyTypes, ingress, egress)',
    );
    // Not where the new name is unknown: `auth` in a toPorts element is just unknown.
    fails(cnp({ ...base, ingress: [{ toPorts: [{ auth: {} }] }] }), `${AT}spec.ingress[0].toPorts[0].auth: unknown field "auth" (allowed here: ports, `);
  });
});


describe('notes in the API', () => {
  let dir: string;
  let server: ApiServer;
  let client: AgentClient;
  let store: MemoryStore;
  const parser = new PolicyParser();

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mb-policy-notes-'));
    server = new ApiServer(pino({ level: 'silent' }));
    store = new MemoryStore();
    const mutex = new Mutex();
    const deps = {
      repo: new PolicyRepository(store),
      realizer: {},
      datapath: {},
      manager: {},
      reconciler: { planPolicy: () => ({}), policyChanged: () => {}, repairPolicy: () => {} },
      metrics: { policyImport: { observe: () => {} } },
      serial: <T>(fn: () => Promise<T> | T) => mutex.run(fn),
      parser,
    } as unknown as PolicyRouteDeps;
    registerPolicyRoutes(server, deps);
    await server.listen(path.join(dir, 'api.sock'));
    client = new AgentClient(path.join(dir, 'api.sock'));
  });
  after(async () => {
    await server.close();
    await parser.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers validate and import with the notes of every file, and stores none', async () => {
    const files = [
      { name: 'examples.yaml', content: EXAMPLES },
      { name: 'named.yaml', content: stringify(cnp(base)) },
    ];
    const notes = parsePolicyText(EXAMPLES, 'examples.yaml').flatMap((p) => p.notes ?? []);
    assert.equal(notes.length, 4);
    const validated = await client.validatePolicies(files);
    assert.deepEqual(validated.notes, notes);
    const imported = await client.importPolicies(files);
    assert.deepEqual(imported.notes, notes);
    assert.deepEqual(
      imported.policies.map((p) => `${p.namespace ?? ''}/${p.name}`),
      ['default/ledger-l3-l4', 'default/egress-shapes', 'default/specs-shapes', '/dns-everywhere', 'default/db-from-api', 'default/web'],
    );
    for (const value of store.data.values()) assert.ok(!(typeof value === 'object' && value !== null && 'notes' in value), 'notes are not stored');
    const list = await client.listPolicies();
    assert.deepEqual((list.policies.find((p) => p.name === 'ledger-l3-l4')?.source as { metadata: unknown }).metadata, { name: 'ledger-l3-l4' });
    // Without anything to say, no notes field at all.
    assert.equal('notes' in (await client.validatePolicies([files[1]!])), false);
  });
});
