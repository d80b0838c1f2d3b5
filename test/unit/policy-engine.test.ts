import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NamedPort } from '../../src/api/types.js';
import { ADDRESS_IDENTITY_BASE, LOCAL_IDENTITY_SCOPE } from '../../src/policy/cidr.js';
import {
  PolicyEngine,
  type EndpointPolicy,
  type EnforcementMode,
  type EngineOutput,
  type PolicyEndpoint,
  type PolicyEntry,
  type PolicyIdentity,
  type RemoteEndpoint,
} from '../../src/policy/engine.js';
import { parsePolicyText } from '../../src/policy/parse.js';
import { describeL4 } from '../../src/policy/ports.js';

// ---------------------------------------------------------------------------------------------
// Fixture: a node with four endpoints in two namespaces, plus identities of pods elsewhere.
// ---------------------------------------------------------------------------------------------

const NS = 'k8s:io.kubernetes.pod.namespace';
const CLUSTER = 'k8s:io.cilium.k8s.policy.cluster';

const RESERVED: PolicyIdentity[] = [
  { id: 1, labels: ['reserved:host'] },
  { id: 2, labels: ['reserved:world'] },
  { id: 3, labels: ['reserved:unmanaged'] },
  { id: 4, labels: ['reserved:health'] },
  { id: 5, labels: ['reserved:init'] },
  { id: 6, labels: ['reserved:remote-node'] },
  { id: 7, labels: ['reserved:kube-apiserver'] },
  { id: 8, labels: ['reserved:ingress'] },
];

const podLabels = (pod: string, ns: string, cluster = 'default') => [`k8s:pod=${pod}`, `${NS}=${ns}`, `${CLUSTER}=${cluster}`];

function endpoint(id: number, identity: number, pod: string, ns: string, ipv4: string, ports: NamedPort[] = []): PolicyEndpoint {
  return { id, identity, identityLabels: podLabels(pod, ns), ipv4, ports };
}

const A = endpoint(1, 256, 'a', 'x', '10.200.0.1', [
  { name: 'http', port: 8080, protocol: 'TCP' },
  { name: 'dns', port: 53, protocol: 'UDP' },
]);
const B = endpoint(2, 257, 'b', 'x', '10.200.0.2', [{ name: 'http', port: 9090, protocol: 'TCP' }]);
const C = endpoint(3, 258, 'c', 'y', '10.200.1.3');
/** A second pod with b's labels, hence b's identity. */
const B2 = endpoint(4, 257, 'b', 'x', '10.200.0.4', [{ name: 'http', port: 9090, protocol: 'TCP' }]);
const ENDPOINTS = [A, B, C, B2];

const IDENTITIES: PolicyIdentity[] = [
  ...RESERVED,
  { id: 256, labels: A.identityLabels },
  { id: 257, labels: B.identityLabels },
  { id: 258, labels: C.identityLabels },
  // Pods of this cluster on other nodes, and a pod of another cluster.
  { id: 300, labels: podLabels('r', 'x') },
  { id: 301, labels: podLabels('o', 'x', 'other') },
];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** Strips the common indentation so policies can be written inline as YAML. */
function dedent(text: string): string {
  const lines = text.split('\n');
  const indents = lines.filter((l) => l.trim() !== '').map((l) => /^ */.exec(l)![0].length);
  const cut = Math.min(...indents);
  return lines.map((l) => l.slice(cut)).join('\n');
}

interface RunOptions {
  enforcement?: EnforcementMode;
  endpoints?: PolicyEndpoint[];
  remoteEndpoints?: RemoteEndpoint[];
  identities?: PolicyIdentity[];
  engine?: PolicyEngine;
}

/** Parses the YAML (rule ids 1, 2, ... in order) and computes every endpoint's policy. */
function run(yaml: string, opts: RunOptions = {}): EngineOutput {
  const rules = yaml.trim() === '' ? [] : parsePolicyText(dedent(yaml), 'p.yaml').flatMap((p) => p.rules);
  return (opts.engine ?? new PolicyEngine()).compute({
    rules: rules.map((rule, i) => ({ rule, ruleId: i + 1 })),
    endpoints: opts.endpoints ?? ENDPOINTS,
    remoteEndpoints: opts.remoteEndpoints,
    identities: opts.identities ?? IDENTITIES,
    cluster: 'default',
    enforcement: opts.enforcement ?? 'default',
  });
}

function policyOf(out: EngineOutput, ep: PolicyEndpoint): EndpointPolicy {
  const p = out.endpoints.get(ep.id);
  assert.ok(p, `no policy for endpoint ${ep.id}`);
  return p;
}

/** "in 257 80/TCP", "out 2 ANY deny": one line per entry, sorted. */
function show(e: PolicyEntry): string {
  return `${e.direction === 'ingress' ? 'in' : 'out'} ${e.identity} ${describeL4(e.l4)}${e.deny ? ' deny' : ''}`;
}

function entries(out: EngineOutput, ep: PolicyEndpoint): string[] {
  return policyOf(out, ep).entries.map(show).sort();
}

/** The entries of one direction, as "identity l4[ deny]". */
function dirEntries(out: EngineOutput, ep: PolicyEndpoint, dir: 'in' | 'out'): string[] {
  return entries(out, ep)
    .filter((s) => s.startsWith(`${dir} `))
    .map((s) => s.slice(dir.length + 1));
}

/** The distinct peer identities of one direction. */
function peers(out: EngineOutput, ep: PolicyEndpoint, dir: 'ingress' | 'egress'): number[] {
  return [...new Set(policyOf(out, ep).entries.filter((e) => e.direction === dir).map((e) => e.identity))].sort((a, b) => a - b);
}

function cidrId(out: EngineOutput, prefix: string): number {
  const id = out.cidrs.get(prefix);
  assert.ok(id !== undefined, `no CIDR identity for ${prefix}`);
  return id;
}

const sorted = (xs: string[]) => [...xs].sort();
const nums = (xs: number[]) => [...xs].sort((a, b) => a - b);

// ---------------------------------------------------------------------------------------------
// Enforcement
// ---------------------------------------------------------------------------------------------

describe('enforcement', () => {
  it('a rule with only an ingress section enforces ingress only', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        ingress:
          - fromEndpoints: [{matchLabels: {pod: b}}]
    `);
    const a = policyOf(out, A);
    assert.equal(a.ingressEnforced, true);
    assert.equal(a.egressEnforced, false);
    assert.deepEqual(a.selectedBy, { ingress: [1], egress: [] });
    assert.deepEqual(entries(out, A), ['in 257 ANY']);
  });

  it('a rule with only an egress section enforces egress only', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        egress:
          - toEndpoints: [{matchLabels: {pod: b}}]
    `);
    const a = policyOf(out, A);
    assert.equal(a.ingressEnforced, false);
    assert.equal(a.egressEnforced, true);
    assert.deepEqual(a.selectedBy, { ingress: [], egress: [1] });
    assert.deepEqual(entries(out, A), ['out 257 ANY']);
  });

  it('endpoints no rule selects are not enforced and have no entries', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        ingress: [{fromEntities: [all]}]
        egress: [{toEntities: [all]}]
    `);
    for (const ep of [B, C, B2]) {
      assert.deepEqual(policyOf(out, ep), { ingressEnforced: false, egressEnforced: false, entries: [], selectedBy: { ingress: [], egress: [] } });
    }
    assert.equal(out.endpoints.size, ENDPOINTS.length, 'every endpoint has a policy');
  });

  it('a deny-only rule enforces its direction', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        egressDeny:
          - toEndpoints: [{matchLabels: {pod: b}}]
    `);
    const a = policyOf(out, A);
    assert.equal(a.ingressEnforced, false);
    assert.equal(a.egressEnforced, true);
    assert.deepEqual(a.selectedBy, { ingress: [], egress: [1] });
    assert.deepEqual(entries(out, A), ['out 257 ANY deny']);
  });

  it('selectedBy lists every rule that selects the endpoint, per direction', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      specs:
        - endpointSelector: {matchLabels: {pod: a}}
          ingress: [{fromEndpoints: [{matchLabels: {pod: b}}]}]
        - endpointSelector: {}
          egressDeny: [{toEntities: [world]}]
        - endpointSelector: {matchLabels: {pod: b}}
          ingress: [{fromEntities: [host]}]
        - endpointSelector: {}
          ingress: [{fromEntities: [host]}]
          egress: [{toEntities: [host]}]
    `);
    assert.deepEqual(policyOf(out, A).selectedBy, { ingress: [1, 4], egress: [2, 4] });
    assert.deepEqual(policyOf(out, B).selectedBy, { ingress: [3, 4], egress: [2, 4] });
  });

  it("'always' enforces both directions without any rule", () => {
    const out = run('', { enforcement: 'always' });
    for (const ep of ENDPOINTS) {
      assert.deepEqual(policyOf(out, ep), { ingressEnforced: true, egressEnforced: true, entries: [], selectedBy: { ingress: [], egress: [] } });
    }
  });

  it("'always' still adds the entries of the rules", () => {
    const out = run(
      `
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        ingress: [{fromEndpoints: [{matchLabels: {pod: b}}]}]
    `,
      { enforcement: 'always' },
    );
    assert.equal(policyOf(out, A).egressEnforced, true);
    assert.deepEqual(entries(out, A), ['in 257 ANY']);
  });

  it("'never' yields no entries and no enforcement, whatever the rules", () => {
    const out = run(
      `
      apiVersion: cilium.io/v2
      kind: CiliumClusterwideNetworkPolicy
      metadata: {name: p}
      spec:
        endpointSelector: {}
        ingress: [{fromEntities: [world]}]
        egressDeny: [{toEntities: [all]}]
    `,
      { enforcement: 'never' },
    );
    for (const ep of ENDPOINTS) {
      assert.deepEqual(policyOf(out, ep), { ingressEnforced: false, egressEnforced: false, entries: [], selectedBy: { ingress: [], egress: [] } });
    }
  });

  it('a CNP with `ingress: [{}]` enforces ingress but allows nothing', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: deny-all, namespace: x}
      spec:
        endpointSelector: {}
        ingress: [{}]
    `);
    for (const ep of [A, B]) {
      assert.equal(policyOf(out, ep).ingressEnforced, true);
      assert.equal(policyOf(out, ep).egressEnforced, false);
      assert.deepEqual(policyOf(out, ep).entries, []);
    }
    assert.equal(policyOf(out, C).ingressEnforced, false, 'namespace y is not selected');
  });

  it('a NetworkPolicy with policyTypes [Ingress, Egress] and no rules denies both directions', () => {
    const out = run(`
      apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: deny-all, namespace: x}
      spec:
        podSelector: {}
        policyTypes: [Ingress, Egress]
    `);
    assert.deepEqual(policyOf(out, A), { ingressEnforced: true, egressEnforced: true, entries: [], selectedBy: { ingress: [1], egress: [1] } });
  });

  it(
    'a CNP with an empty `ingress: []` list does not enforce ingress (Cilium: "if omitted or empty, this rule does not apply")',
    () => {
      const out = run(`
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata: {name: p, namespace: x}
        spec:
          endpointSelector: {matchLabels: {pod: a}}
          ingress: []
          egress: []
      `);
      assert.equal(policyOf(out, A).ingressEnforced, false);
      assert.equal(policyOf(out, A).egressEnforced, false);
    },
  );
});

// ---------------------------------------------------------------------------------------------
// Allows, denies and their interplay
// ---------------------------------------------------------------------------------------------

describe('allows and denies', () => {
  it('allows are a union across rules and policies', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: one, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        ingress:
          - fromEndpoints: [{matchLabels: {pod: b}}]
            toPorts: [{ports: [{port: "80", protocol: TCP}]}]
      ---
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: two, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        ingress:
          - fromEndpoints: [{matchLabels: {pod: b}}]
            toPorts: [{ports: [{port: "443", protocol: TCP}]}]
          - fromEndpoints: [{matchLabels: {pod: c, io.kubernetes.pod.namespace: y}}]
            toPorts: [{ports: [{port: "80", protocol: TCP}]}]
    `);
    assert.deepEqual(entries(out, A), sorted(['in 257 80/TCP', 'in 257 443/TCP', 'in 258 80/TCP']));
    const ruleOf = (identity: number, port: number) => policyOf(out, A).entries.find((e) => e.identity === identity && e.l4.port === port)?.ruleId;
    assert.equal(ruleOf(257, 80), 1);
    assert.equal(ruleOf(257, 443), 2);
    assert.equal(ruleOf(258, 80), 2);
  });

  it('equal allows from two rules give one entry', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      specs:
        - endpointSelector: {matchLabels: {pod: a}}
          ingress: [{fromEndpoints: [{matchLabels: {pod: b}}], toPorts: [{ports: [{port: "80", protocol: TCP}]}]}]
        - endpointSelector: {}
          ingress: [{fromEndpoints: [{matchLabels: {pod: b}}], toPorts: [{ports: [{port: "80", protocol: TCP}]}]}]
    `);
    assert.deepEqual(entries(out, A), ['in 257 80/TCP']);
  });

  it('a deny replaces an allow with the same key, whichever rule comes first', () => {
    for (const order of [
      ['ingressDeny', 'ingress'],
      ['ingress', 'ingressDeny'],
    ]) {
      const out = run(`
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata: {name: p, namespace: x}
        specs:
          - endpointSelector: {matchLabels: {pod: a}}
            ${order[0]}: [{fromEndpoints: [{matchLabels: {pod: b}}], toPorts: [{ports: [{port: "80", protocol: TCP}]}]}]
          - endpointSelector: {matchLabels: {pod: a}}
            ${order[1]}: [{fromEndpoints: [{matchLabels: {pod: b}}], toPorts: [{ports: [{port: "80", protocol: TCP}]}]}]
      `);
      const a = policyOf(out, A);
      assert.deepEqual(entries(out, A), ['in 257 80/TCP deny'], order.join(' then '));
      assert.equal(a.entries[0]!.ruleId, order[0] === 'ingressDeny' ? 1 : 2, 'the deny keeps its own rule id');
    }
  });

  it('a deny removes narrower allows of the same identity, but not allows of other identities', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        ingress:
          - fromEndpoints: [{matchLabels: {pod: b}}, {matchLabels: {pod: r}}]
            toPorts: [{ports: [{port: "80", protocol: TCP}, {port: "81", protocol: TCP}, {port: "443", protocol: TCP}]}]
        ingressDeny:
          - fromEndpoints: [{matchLabels: {pod: b}}]
            toPorts: [{ports: [{port: "80", endPort: 81, protocol: TCP}]}]
    `);
    assert.deepEqual(
      entries(out, A),
      sorted(['in 257 80-81/TCP deny', 'in 257 443/TCP', 'in 300 80/TCP', 'in 300 81/TCP', 'in 300 443/TCP']),
    );
  });

  it('an L3 deny removes every allow of that identity', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        egress:
          - toEndpoints: [{matchLabels: {pod: b}}]
            toPorts: [{ports: [{port: "80", protocol: TCP}, {port: "53", protocol: UDP}]}]
          - toEndpoints: [{matchLabels: {pod: b}}]
            icmps: [{fields: [{type: EchoRequest}]}]
          - toEndpoints: [{matchLabels: {pod: r}}]
        egressDeny:
          - toEndpoints: [{matchLabels: {pod: b}}]
    `);
    assert.deepEqual(entries(out, A), sorted(['out 257 ANY deny', 'out 300 ANY']));
  });

  it('a protocol-wide deny removes the allows of that protocol only', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        ingress:
          - fromEndpoints: [{matchLabels: {pod: b}}]
            toPorts: [{ports: [{port: "53", protocol: UDP}, {port: "53", protocol: TCP}]}]
        ingressDeny:
          - fromEndpoints: [{matchLabels: {pod: b}}]
            toPorts: [{ports: [{protocol: UDP}]}]
    `);
    assert.deepEqual(entries(out, A), sorted(['in 257 53/TCP', 'in 257 UDP/ANY deny']));
  });

  it('a deny narrower than an allow leaves both (the longest prefix picks the deny)', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        ingress:
          - fromEndpoints: [{matchLabels: {pod: b}}]
        ingressDeny:
          - fromEndpoints: [{matchLabels: {pod: b}}]
            toPorts: [{ports: [{port: "22", protocol: TCP}]}]
    `);
    assert.deepEqual(entries(out, A), sorted(['in 257 ANY', 'in 257 22/TCP deny']));
  });

  it('directions do not interact', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        ingress: [{fromEndpoints: [{matchLabels: {pod: b}}]}]
        egressDeny: [{toEndpoints: [{matchLabels: {pod: b}}]}]
    `);
    assert.deepEqual(entries(out, A), sorted(['in 257 ANY', 'out 257 ANY deny']));
  });
});

// ---------------------------------------------------------------------------------------------
// L3 and L4
// ---------------------------------------------------------------------------------------------

describe('L3 and L4', () => {
  it('an L3-only rule gives an ANY entry per selected identity', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        ingress:
          - fromEndpoints: [{matchExpressions: [{key: pod, operator: In, values: [b, r]}]}]
    `);
    assert.deepEqual(entries(out, A), sorted(['in 257 ANY', 'in 300 ANY']));
  });

  it('an L4-only rule applies to every peer (identity 0)', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        ingress:
          - toPorts: [{ports: [{port: "80", protocol: TCP}]}]
        egressDeny:
          - toPorts: [{ports: [{port: "25", protocol: TCP}]}]
    `);
    assert.deepEqual(entries(out, A), sorted(['in 0 80/TCP', 'out 0 25/TCP deny']));
  });

  it('an explicitly empty peer list selects nothing, even with ports', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        ingress:
          - fromEndpoints: []
            toPorts: [{ports: [{port: "80", protocol: TCP}]}]
    `);
    assert.equal(policyOf(out, A).ingressEnforced, true);
    assert.deepEqual(entries(out, A), []);
  });

  it('protocol ANY becomes TCP, UDP and SCTP', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        ingress:
          - fromEndpoints: [{matchLabels: {pod: b}}]
            toPorts: [{ports: [{port: "5000"}]}]
    `);
    assert.deepEqual(entries(out, A), sorted(['in 257 5000/TCP', 'in 257 5000/UDP', 'in 257 5000/SCTP']));
  });

  it('a protocol without a port covers the whole protocol', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        ingress:
          - fromEndpoints: [{matchLabels: {pod: b}}]
            toPorts: [{ports: [{protocol: UDP}, {port: "0", protocol: SCTP}]}]
    `);
    assert.deepEqual(entries(out, A), sorted(['in 257 UDP/ANY', 'in 257 SCTP/ANY']));
  });

  it('a port range becomes its aligned prefixes', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        egress:
          - toEndpoints: [{matchLabels: {pod: b}}]
            toPorts: [{ports: [{port: "80", endPort: 90, protocol: TCP}]}]
    `);
    assert.deepEqual(entries(out, A), sorted(['out 257 80-87/TCP', 'out 257 88-89/TCP', 'out 257 90/TCP']));
  });

  it('ICMP types give one entry per type', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        ingress:
          - fromEndpoints: [{matchLabels: {pod: b}}]
            icmps: [{fields: [{type: 8}, {type: EchoReply, family: IPv4}]}]
          - icmps: [{fields: [{type: TimeExceeded}]}]
    `);
    assert.deepEqual(entries(out, A), sorted(['in 257 ICMP type 8', 'in 257 ICMP type 0', 'in 0 ICMP type 11']));
    const echo = policyOf(out, A).entries.find((e) => e.identity === 257 && e.l4.port === 8)!;
    assert.deepEqual(echo.l4, { protocol: 1, port: 8, bits: 24 });
  });

  it('a NetworkPolicy rule without from allows every peer, and ports default to TCP', () => {
    const out = run(`
      apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        podSelector: {matchLabels: {pod: a}}
        ingress:
          - ports: [{port: 80}, {port: 53, protocol: UDP}]
          - {}
    `);
    assert.deepEqual(entries(out, A), sorted(['in 0 80/TCP', 'in 0 53/UDP', 'in 0 ANY']));
  });
});

// ---------------------------------------------------------------------------------------------
// Named ports
// ---------------------------------------------------------------------------------------------

describe('named ports', () => {
  it('resolve on the subject for ingress', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumClusterwideNetworkPolicy
      metadata: {name: p}
      spec:
        endpointSelector: {}
        ingress:
          - fromEntities: [world]
            toPorts: [{ports: [{port: http, protocol: TCP}]}]
    `);
    assert.deepEqual(entries(out, A), ['in 2 8080/TCP']);
    assert.deepEqual(entries(out, B), ['in 2 9090/TCP']);
    assert.deepEqual(entries(out, C), [], 'c has no port named http');
    assert.equal(policyOf(out, C).ingressEnforced, true);
  });

  it('match the protocol of the named port', () => {
    const yaml = (protocol: string) => `
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        ingress:
          - toPorts: [{ports: [{port: dns${protocol ? `, protocol: ${protocol}` : ''}}]}]
    `;
    assert.deepEqual(entries(run(yaml('TCP')), A), [], 'dns is a UDP port');
    assert.deepEqual(entries(run(yaml('UDP')), A), ['in 0 53/UDP']);
    assert.deepEqual(entries(run(yaml('ANY')), A), ['in 0 53/UDP']);
    assert.deepEqual(entries(run(yaml('')), A), ['in 0 53/UDP'], 'the protocol defaults to ANY');
  });

  it('in a NetworkPolicy default to TCP', () => {
    const out = run(`
      apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        podSelector: {matchLabels: {pod: a}}
        ingress:
          - ports: [{port: http}, {port: dns}]
    `);
    assert.deepEqual(entries(out, A), ['in 0 8080/TCP']);
  });

  it('resolve on the destination endpoints, per identity, for egress', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumClusterwideNetworkPolicy
      metadata: {name: p}
      spec:
        endpointSelector: {matchLabels: {pod: c}}
        egress:
          - toEndpoints: [{matchLabels: {pod: a}}, {matchLabels: {pod: b}}, {matchLabels: {pod: r}}]
            toPorts: [{ports: [{port: http}]}]
          - toEndpoints: [{matchLabels: {pod: a}}, {matchLabels: {pod: b}}]
            toPorts: [{ports: [{port: dns, protocol: UDP}]}]
    `);
    // 256 (a) has http 8080 and dns 53; 257 (b, two endpoints) has http 9090; nobody here
    // carries 300 (r), so its named port cannot be resolved.
    assert.deepEqual(entries(out, C), sorted(['out 256 8080/TCP', 'out 256 53/UDP', 'out 257 9090/TCP']));
  });

  it('resolve on every endpoint for an L4-only egress rule', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumClusterwideNetworkPolicy
      metadata: {name: p}
      spec:
        endpointSelector: {matchLabels: {pod: c}}
        egress:
          - toPorts: [{ports: [{port: http, protocol: TCP}]}]
    `);
    assert.deepEqual(entries(out, C), sorted(['out 0 8080/TCP', 'out 0 9090/TCP']));
  });

  it('resolve in deny rules too', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        ingress: [{fromEndpoints: [{matchLabels: {pod: b}}]}]
        ingressDeny: [{fromEndpoints: [{matchLabels: {pod: b}}], toPorts: [{ports: [{port: http}]}]}]
    `);
    assert.deepEqual(entries(out, A), sorted(['in 257 ANY', 'in 257 8080/TCP deny']));
  });
});

// ---------------------------------------------------------------------------------------------
// Entities
// ---------------------------------------------------------------------------------------------

describe('entities', () => {
  const withEntities = (entities: string, extra = '') => `
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        ingress:
          - fromEntities: [${entities}]
      ${extra}
  `;

  it('all is every peer (identity 0)', () => {
    assert.deepEqual(entries(run(withEntities('all')), A), ['in 0 ANY']);
  });

  it('the reserved entities map to their identities', () => {
    const cases: [string, number][] = [
      ['host', 1],
      ['unmanaged', 3],
      ['health', 4],
      ['init', 5],
      ['remote-node', 6],
      ['kube-apiserver', 7],
      ['ingress', 8],
    ];
    for (const [entity, id] of cases) assert.deepEqual(peers(run(withEntities(entity)), A, 'ingress'), [id], entity);
  });

  it('none selects nothing, but still enforces', () => {
    const out = run(withEntities('none'));
    assert.equal(policyOf(out, A).ingressEnforced, true);
    assert.deepEqual(entries(out, A), []);
  });

  it('world is identity 2 plus every CIDR identity', () => {
    const out = run(
      withEntities(
        'world',
        `---
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: cidrs, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: b}}
        egress:
          - toCIDR: [192.0.2.0/24]
          - toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]`,
      ),
    );
    assert.deepEqual(out.cidrs.size, 3);
    assert.deepEqual(peers(out, A, 'ingress'), nums([2, cidrId(out, '192.0.2.0/24'), cidrId(out, '10.0.0.0/8'), cidrId(out, '10.1.0.0/16')]));
  });

  it('world-ipv4 is world', () => {
    assert.deepEqual(entries(run(withEntities('world-ipv4')), A), ['in 2 ANY']);
  });

  it('a reserved:world selector selects what the world entity selects', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        ingress:
          - fromEndpoints: [{matchLabels: {"reserved:world": ""}}]
        egress:
          - toEntities: [world]
          - toCIDR: [192.0.2.1/32]
    `);
    assert.deepEqual(peers(out, A, 'ingress'), nums([2, cidrId(out, '192.0.2.1/32')]));
    assert.deepEqual(peers(out, A, 'egress'), peers(out, A, 'ingress'));
  });

  it('cluster is the reserved cluster identities plus the endpoints of this cluster', () => {
    const out = run(withEntities('cluster'));
    // Not world (2), not the pod of cluster "other" (301).
    assert.deepEqual(peers(out, A, 'ingress'), [1, 3, 4, 5, 6, 7, 8, 256, 257, 258, 300]);
  });

  it('cluster follows the configured cluster name', () => {
    const rules = parsePolicyText(dedent(withEntities('cluster')), 'p.yaml').flatMap((p) => p.rules);
    const out = new PolicyEngine().compute({
      rules: rules.map((rule, i) => ({ rule, ruleId: i + 1 })),
      endpoints: ENDPOINTS,
      identities: IDENTITIES,
      cluster: 'other',
      enforcement: 'default',
    });
    assert.deepEqual(peers(out, A, 'ingress'), [1, 3, 4, 5, 6, 7, 8, 301]);
  });

  it('several entities add up', () => {
    assert.deepEqual(peers(run(withEntities('host, remote-node, world')), A, 'ingress'), [1, 2, 6]);
  });
});

// ---------------------------------------------------------------------------------------------
// CIDRs
// ---------------------------------------------------------------------------------------------

describe('CIDR peers', () => {
  it('select the CIDR identity of the prefix, never the endpoints inside it (CiliumNetworkPolicy)', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        egress:
          - toCIDR: [10.200.0.0/16]
    `);
    const id = cidrId(out, '10.200.0.0/16');
    assert.ok(id >= LOCAL_IDENTITY_SCOPE, `local scope: ${id}`);
    assert.ok(id >= 1 << 24);
    assert.deepEqual(entries(out, A), [`out ${id} ANY`]);
    assert.deepEqual(out.warnings, []);
  });

  it('select the CIDR identities inside the block, minus the excepts', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      specs:
        - endpointSelector: {matchLabels: {pod: a}}
          egress:
            - toCIDRSet: [{cidr: 192.168.0.0/16, except: [192.168.1.0/24]}]
        - endpointSelector: {matchLabels: {pod: b}}
          egress:
            - toCIDR: [192.168.2.0/24, 192.168.1.128/25, 10.0.0.0/8, 192.0.0.0/8]
    `);
    assert.deepEqual(
      [...out.cidrs.keys()].sort(),
      ['10.0.0.0/8', '192.0.0.0/8', '192.168.0.0/16', '192.168.1.0/24', '192.168.1.128/25', '192.168.2.0/24'],
    );
    const ids = [...out.cidrs.values()];
    assert.equal(new Set(ids).size, ids.length, 'one identity per prefix');
    for (const id of ids) assert.ok(id >= LOCAL_IDENTITY_SCOPE);
    // Inside 192.168.0.0/16 and not inside the except; the broader 192.0.0.0/8 is not inside.
    assert.deepEqual(peers(out, A, 'egress'), nums([cidrId(out, '192.168.0.0/16'), cidrId(out, '192.168.2.0/24')]));
  });

  it('0.0.0.0/0 is the world identity plus every CIDR identity, and gets no CIDR identity of its own', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        egress:
          - toCIDRSet: [{cidr: 0.0.0.0/0, except: [10.0.0.0/8]}]
          - toCIDR: [192.0.2.0/24]
    `);
    assert.deepEqual([...out.cidrs.keys()].sort(), ['10.0.0.0/8', '192.0.2.0/24']);
    assert.deepEqual(peers(out, A, 'egress'), nums([2, cidrId(out, '192.0.2.0/24')]));
  });

  it('CIDR identities are listed for the ipcache even when no endpoint is selected', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: nobody}}
        ingressDeny: [{fromCIDR: [203.0.113.0/24]}]
    `);
    assert.deepEqual([...out.cidrs.keys()], ['203.0.113.0/24']);
  });

  it('an ipBlock (NetworkPolicy) also selects identities whose endpoints are all inside', () => {
    const out = run(`
      apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: p, namespace: y}
      spec:
        podSelector: {}
        ingress:
          - from: [{ipBlock: {cidr: 10.200.0.0/24}}]
    `);
    // a (10.200.0.1) and both endpoints of b (10.200.0.2, .4) are inside; c (10.200.1.3) is not.
    assert.deepEqual(peers(out, C, 'ingress'), nums([256, 257, cidrId(out, '10.200.0.0/24')]));
    assert.deepEqual(out.warnings, []);
  });

  it("an ipBlock also selects the other nodes' endpoints by address, unless their identity has endpoints outside it", () => {
    const yaml = `
      apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: p, namespace: y}
      spec:
        podSelector: {}
        ingress:
          - from: [{ipBlock: {cidr: 10.200.0.0/22, except: [10.200.3.0/24]}}]
    `;
    const out = run(yaml, {
      remoteEndpoints: [
        { identity: 300, ipv4: '10.200.2.7' }, // inside: selected
        { identity: 301, ipv4: '10.200.3.7' }, // excepted
        { identity: 302, ipv4: '10.201.0.7' }, // outside
        { identity: 256, ipv4: '10.201.0.8' }, // a's identity, outside: a is not selected either
      ],
    });
    // b (both endpoints) and c are inside, here; 300 is inside, on another node.
    assert.deepEqual(peers(out, C, 'ingress'), nums([257, 258, 300, cidrId(out, '10.200.0.0/22')]));
    assert.match(out.warnings.join('\n'), /identity 256 has endpoints inside and outside the block/);
    // A remote endpoint never gets an address identity: its identity travels with its packets.
    assert.equal(out.addressIdentities.size, 0);
  });

  it('an ipBlock selects, by an address identity, the endpoints of an identity it splits (an except)', () => {
    const out = run(`
      apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: p, namespace: y}
      spec:
        podSelector: {}
        ingress:
          - from: [{ipBlock: {cidr: 10.200.0.0/24, except: [10.200.0.4/32]}}]
    `);
    // b's 10.200.0.2 is inside, its 10.200.0.4 excepted: the first is seen by an address
    // identity (selected), the second keeps 257 (not selected).
    const inside = out.policyIdentities.get(B.id)!;
    assert.ok(inside >= ADDRESS_IDENTITY_BASE);
    assert.equal(out.policyIdentities.get(B2.id), undefined);
    assert.equal(out.addressIdentities.get(inside), 257);
    assert.deepEqual(peers(out, C, 'ingress'), nums([256, cidrId(out, '10.200.0.0/24'), inside]));
    assert.deepEqual(out.warnings, []);
  });

  it('an address identity is the identity for every other rule', () => {
    const out = run(`
      apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: p, namespace: y}
      spec:
        podSelector: {}
        ingress:
          - from: [{ipBlock: {cidr: 10.200.0.0/24, except: [10.200.0.4/32]}}]
          - from: [{namespaceSelector: {}, podSelector: {matchLabels: {pod: b}}}]
            ports: [{port: 80}]
    `);
    const inside = out.policyIdentities.get(B.id)!;
    // The pod-selector rule reaches both of b's endpoints, whatever identity policy sees them by.
    assert.ok(entries(out, C).includes(`in ${inside} 80/TCP`) && entries(out, C).includes('in 257 80/TCP'), entries(out, C).join(', '));
  });

  it('an ipBlock does not select, and does not warn about, an identity entirely outside it', () => {
    const out = run(`
      apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: p, namespace: y}
      spec:
        podSelector: {}
        ingress:
          - from: [{ipBlock: {cidr: 10.200.0.0/24, except: [10.200.0.2/31, 10.200.0.4/32]}}]
    `);
    assert.deepEqual(peers(out, C, 'ingress'), nums([256, cidrId(out, '10.200.0.0/24')]));
    assert.deepEqual(out.warnings, []);
  });

  it('an ipBlock that covers part of an identity selects just that part', () => {
    const out = run(`
      apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: p, namespace: y}
      spec:
        podSelector: {}
        egress:
          - to: [{ipBlock: {cidr: 10.200.0.0/30}}]
    `);
    // 10.200.0.0/30 holds a (.1) and b's .2, not b's .4.
    assert.deepEqual(peers(out, C, 'egress'), nums([256, cidrId(out, '10.200.0.0/30'), out.policyIdentities.get(B.id)!]));
    assert.deepEqual(out.warnings, []);
  });

  it('CIDR identity numbers stay the same while their prefix is still used', () => {
    const engine = new PolicyEngine();
    const policy = (cidrs: string[]) => `
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        egress:
          - toCIDR: [${cidrs.join(', ')}]
    `;
    const first = run(policy(['10.0.0.0/8', '192.168.0.0/16']), { engine });
    const second = run(policy(['192.168.0.0/16', '172.16.0.0/12']), { engine });
    assert.equal(cidrId(second, '192.168.0.0/16'), cidrId(first, '192.168.0.0/16'));
    assert.equal(second.cidrs.has('10.0.0.0/8'), false, 'an unused prefix is dropped');
    assert.equal(second.cidrs.size, 2);
    assert.notEqual(cidrId(second, '172.16.0.0/12'), cidrId(second, '192.168.0.0/16'));
    const third = run(policy(['172.16.0.0/12', '192.168.0.0/16', '10.0.0.0/8']), { engine });
    assert.equal(cidrId(third, '192.168.0.0/16'), cidrId(first, '192.168.0.0/16'));
    assert.equal(cidrId(third, '172.16.0.0/12'), cidrId(second, '172.16.0.0/12'));
    assert.equal(new Set(third.cidrs.values()).size, 3);
    // The entries follow the numbers.
    assert.deepEqual(peers(third, A, 'egress'), nums([...third.cidrs.values()]));
  });

  it('a CIDR deny also covers longer prefixes inside it that other rules allow', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        egress:
          - toCIDR: [10.1.0.0/16, 192.0.2.0/24]
        egressDeny:
          - toCIDR: [10.0.0.0/8]
    `);
    const [wide, narrow, other] = [cidrId(out, '10.0.0.0/8'), cidrId(out, '10.1.0.0/16'), cidrId(out, '192.0.2.0/24')];
    assert.deepEqual(dirEntries(out, A, 'out'), sorted([`${wide} ANY deny`, `${narrow} ANY deny`, `${other} ANY`]));
  });

  it('excepts get CIDR identities of their own (so that the longest prefix finds them)', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        egressDeny:
          - toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]
    `);
    assert.deepEqual([...out.cidrs.keys()].sort(), ['10.0.0.0/8', '10.1.0.0/16']);
    assert.deepEqual(entries(out, A), [`out ${cidrId(out, '10.0.0.0/8')} ANY deny`]);
  });
});

// ---------------------------------------------------------------------------------------------
// Namespaces
// ---------------------------------------------------------------------------------------------

describe('namespace scoping', () => {
  it('a CiliumNetworkPolicy applies to endpoints of its own namespace only', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {}
        ingress: [{fromEntities: [host]}]
    `);
    assert.equal(policyOf(out, A).ingressEnforced, true);
    assert.equal(policyOf(out, B).ingressEnforced, true);
    assert.equal(policyOf(out, B2).ingressEnforced, true);
    assert.equal(policyOf(out, C).ingressEnforced, false);
  });

  it('a CiliumNetworkPolicy peer selects its own namespace unless it names another', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: y}
      spec:
        endpointSelector: {matchLabels: {pod: c}}
        ingress:
          - fromEndpoints: [{matchLabels: {pod: a}}]
            toPorts: [{ports: [{port: "1", protocol: TCP}]}]
          - fromEndpoints: [{}]
            toPorts: [{ports: [{port: "2", protocol: TCP}]}]
          - fromEndpoints: [{matchLabels: {pod: a, "k8s:io.kubernetes.pod.namespace": x}}]
            toPorts: [{ports: [{port: "3", protocol: TCP}]}]
          - fromEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": x}}]
            toPorts: [{ports: [{port: "4", protocol: TCP}]}]
    `);
    // 1: no pod a in y. 2: every pod of y (only c). 3: a in x. 4: every pod of x, on any node.
    assert.deepEqual(entries(out, C), sorted(['in 258 2/TCP', 'in 256 3/TCP', 'in 256 4/TCP', 'in 257 4/TCP', 'in 300 4/TCP', 'in 301 4/TCP']));
  });

  it('a CiliumNetworkPolicy in namespace x does not select endpoints of namespace y', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: c}}
        ingress: [{fromEndpoints: [{matchLabels: {pod: c}}]}]
    `);
    for (const ep of ENDPOINTS) assert.deepEqual(policyOf(out, ep).selectedBy, { ingress: [], egress: [] }, `endpoint ${ep.id}`);
  });

  it('a CiliumClusterwideNetworkPolicy selects subjects and peers in every namespace, pods only', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumClusterwideNetworkPolicy
      metadata: {name: p}
      spec:
        endpointSelector: {}
        egress:
          - toEndpoints: [{}]
          - toEndpoints: [{matchLabels: {pod: c}}]
            toPorts: [{ports: [{port: "443", protocol: TCP}]}]
    `);
    for (const ep of ENDPOINTS) assert.equal(policyOf(out, ep).egressEnforced, true, `endpoint ${ep.id}`);
    // `{}` is every pod of every namespace (and cluster), not host, world or CIDR identities.
    assert.deepEqual(entries(out, A), sorted(['out 256 ANY', 'out 257 ANY', 'out 258 ANY', 'out 258 443/TCP', 'out 300 ANY', 'out 301 ANY']));
  });

  it('a NetworkPolicy scopes podSelector to its namespace and namespaceSelector to pods', () => {
    const out = run(`
      apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        podSelector: {}
        ingress:
          - from: [{podSelector: {matchLabels: {pod: c}}}]
            ports: [{port: 1}]
          - from: [{podSelector: {}}]
            ports: [{port: 2}]
          - from: [{namespaceSelector: {}}]
            ports: [{port: 3}]
    `);
    assert.equal(policyOf(out, C).ingressEnforced, false);
    // 1: no pod c in x. 2: every pod of x. 3: every pod (namespace labels are not in this
    // fixture, so only the empty namespace selector matches), never host or world.
    assert.deepEqual(
      dirEntries(out, A, 'in'),
      sorted(['256 2/TCP', '257 2/TCP', '300 2/TCP', '301 2/TCP', '256 3/TCP', '257 3/TCP', '258 3/TCP', '300 3/TCP', '301 3/TCP']),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Selectors
// ---------------------------------------------------------------------------------------------

describe('selectors', () => {
  it('lists each peer once, with its users and identities', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: a}}
        ingress:
          - fromEndpoints: [{matchLabels: {pod: b}}]
          - fromEndpoints: [{matchLabels: {pod: b}}]
            toPorts: [{ports: [{port: "80", protocol: TCP}]}]
          - fromEndpoints: [{matchLabels: {pod: nobody}}]
          - fromEntities: [world]
        egress:
          - toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]
    `);
    const byName = new Map(out.selectors.map((s) => [s.selector, s]));
    assert.equal(byName.size, out.selectors.length, 'no selector is listed twice');
    assert.deepEqual(byName.get(`any:pod=b, ${NS}=x`), { selector: `any:pod=b, ${NS}=x`, users: 2, identities: [257] });
    assert.deepEqual(byName.get(`any:pod=nobody, ${NS}=x`), { selector: `any:pod=nobody, ${NS}=x`, users: 1, identities: [] });
    const world = byName.get('entity:world');
    assert.ok(world);
    assert.equal(world.users, 1);
    assert.deepEqual(nums(world.identities), nums([2, cidrId(out, '10.0.0.0/8'), cidrId(out, '10.1.0.0/16')]));
    const cidr = byName.get('cidr:10.0.0.0/8 except 10.1.0.0/16');
    assert.ok(cidr, [...byName.keys()].join(' | '));
    assert.deepEqual(cidr.identities, [cidrId(out, '10.0.0.0/8')]);
    assert.equal(out.selectors.length, 4);
  });

  it('names ipBlock peers as also selecting endpoints', () => {
    const out = run(`
      apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: p, namespace: y}
      spec:
        podSelector: {}
        ingress:
          - from: [{ipBlock: {cidr: 10.200.0.0/24}}]
    `);
    assert.deepEqual(out.selectors, [
      { selector: 'cidr:10.200.0.0/24 (and endpoints inside)', users: 1, identities: [cidrId(out, '10.200.0.0/24'), 256, 257] },
    ]);
  });

  it('lists nothing for rules that select no endpoint', () => {
    const out = run(`
      apiVersion: cilium.io/v2
      kind: CiliumNetworkPolicy
      metadata: {name: p, namespace: x}
      spec:
        endpointSelector: {matchLabels: {pod: nobody}}
        ingress: [{fromEntities: [world]}]
    `);
    assert.deepEqual(out.selectors, []);
  });
});
