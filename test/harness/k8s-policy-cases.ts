/* Kubernetes NetworkPolicy cases as data: a policy and the reachability matrices it must give.
 * The same table runs on one node (test/e2e/policy-k8s.test.ts) and with the pods spread over
 * three nodes (test/e2e/cluster-matrix.test.ts), so both are held to the same verdicts.
 * A case computes its policy and its matrices from the matrix it runs on (pod addresses differ
 * between set-ups). Cases that change pods or namespaces stay in the test files. */
import type { Cluster, Reachability } from './matrix.js';
import { allowedExcept, expectMatrix, importPolicy, indentSpec, type Expectation } from './policy.js';

export interface K8sCase {
  /** The test's title. */
  title: string;
  policy: (m: Cluster) => string;
  /** What the matrices show, for the failure message. */
  context: string;
  expect: (m: Cluster) => Expectation[];
}

export function knp(name: string, namespace: string, spec: string): string {
  return `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: ${name}
  namespace: ${namespace}
spec:
${indentSpec(spec)}
`;
}

/** Imports the case's policy (on every node of the matrix) and checks its matrices. */
export async function runCase(m: Cluster, c: K8sCase): Promise<void> {
  await importPolicy(m, c.policy(m));
  await expectMatrix(m, c.context, ...c.expect(m));
}

/** The shortest prefix holding the pod CIDRs of every node of the matrix (one node's: its own). */
export function podsCidr(m: Cluster): string {
  const toInt = (ip: string) => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
  const ends = m.nodes.flatMap((n) => {
    const [ip, len] = n.podCidr.split('/') as [string, string];
    const size = 2 ** (32 - Number(len));
    const base = Math.floor(toInt(ip) / size) * size;
    return [base, base + size - 1];
  });
  let bits = 32;
  while (bits > 0 && new Set(ends.map((i) => Math.floor(i / 2 ** (32 - bits)))).size > 1) bits--;
  const base = Math.floor(ends[0]! / 2 ** (32 - bits)) * 2 ** (32 - bits);
  return `${[24, 16, 8, 0].map((s) => Math.floor(base / 2 ** s) % 256).join('.')}/${bits}`;
}

const open = () => allowedExcept(() => undefined);

/** TCP port 80: everything reachable except what `fn` changes. */
const tcp80 = (fn: (r: Reachability) => void): Expectation => ({ port: 80, proto: 'tcp', expected: allowedExcept(fn) });

export const K8S_CASES: readonly K8sCase[] = [
  {
    title: 'default-deny ingress for a namespace',
    policy: () => knp('deny-ingress', 'x', 'podSelector: {}\npolicyTypes: [Ingress]'),
    context: 'deny all ingress into x',
    expect: () => {
      const expected = allowedExcept((r) => r.expectPeers({}, { namespace: 'x' }, false));
      return [{ port: 80, proto: 'tcp', expected }, { port: 81, proto: 'udp', expected }];
    },
  },
  {
    title: 'default-deny egress for a namespace (replies to others still pass)',
    policy: () => knp('deny-egress', 'x', 'podSelector: {}\npolicyTypes: [Egress]'),
    context: 'deny all egress from x',
    expect: () => {
      const expected = allowedExcept((r) => r.expectPeers({ namespace: 'x' }, {}, false));
      return [{ port: 80, proto: 'tcp', expected }, { port: 80, proto: 'udp', expected }];
    },
  },
  {
    title: 'denies all egress but DNS-like UDP 53',
    policy: () =>
      knp('deny-egress-but-dns', 'x', `podSelector: {}
policyTypes: [Egress]
egress:
- ports:
  - protocol: UDP
    port: 53`),
    context: 'x reaches anyone on UDP 53 and nothing else',
    expect: () => {
      const xBlocked = allowedExcept((r) => r.expectPeers({ namespace: 'x' }, {}, false));
      return [
        { port: 53, proto: 'udp', expected: open() },
        { port: 53, proto: 'tcp', expected: xBlocked },
        { port: 80, proto: 'udp', expected: xBlocked },
      ];
    },
  },
  {
    title: 'allows by pod selector',
    policy: () =>
      knp('allow-b', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - podSelector: {matchLabels: {pod: b}}`),
    context: 'only x/b reaches x/a',
    expect: () => [
      tcp80((r) => {
        r.expectAllIngress('x/a', false);
        r.expect('x/b', 'x/a', true);
      }),
    ],
  },
  {
    title: 'allows by namespace selector',
    policy: () =>
      knp('allow-ns-y', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - namespaceSelector: {matchLabels: {ns: y}}`),
    context: 'namespace y reaches x/a',
    expect: () => [
      tcp80((r) => {
        r.expectAllIngress('x/a', false);
        r.expectPeers({ namespace: 'y' }, { namespace: 'x', pod: 'a' }, true);
      }),
    ],
  },
  {
    title: 'allows by namespace and pod selector together (AND)',
    policy: () =>
      knp('allow-y-c', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - namespaceSelector: {matchLabels: {ns: y}}
    podSelector: {matchLabels: {pod: c}}`),
    context: 'only y/c reaches x/a',
    expect: () => [
      tcp80((r) => {
        r.expectAllIngress('x/a', false);
        r.expect('y/c', 'x/a', true);
      }),
    ],
  },
  {
    title: 'allows by matchExpressions',
    policy: () =>
      knp('allow-expr', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - namespaceSelector: {matchExpressions: [{key: ns, operator: NotIn, values: [x]}]}
    podSelector: {matchExpressions: [{key: pod, operator: In, values: [b, c]}]}`),
    context: 'pods b and c outside x reach x/a',
    expect: () => [
      tcp80((r) => {
        r.expectAllIngress('x/a', false);
        for (const p of ['y/b', 'y/c', 'z/b', 'z/c'] as const) r.expect(p, 'x/a', true);
      }),
    ],
  },
  {
    title: 'resolves named ports on the destination pod',
    policy: () =>
      knp('named-port', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- ports:
  - port: serve-81-tcp`),
    context: 'only the port named serve-81-tcp is open on x/a',
    expect: () => {
      const blockedToA = allowedExcept((r) => r.expectAllIngress('x/a', false));
      return [
        { port: 81, proto: 'tcp', expected: open() },
        { port: 80, proto: 'tcp', expected: blockedToA },
        { port: 81, proto: 'udp', expected: blockedToA },
      ];
    },
  },
  {
    title: 'allows port ranges with endPort',
    policy: () =>
      knp('range', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- ports:
  - protocol: TCP
    port: 80
    endPort: 81`),
    context: 'TCP 80-81 open on x/a, UDP closed',
    expect: () => [
      { port: 80, proto: 'tcp', expected: open() },
      { port: 81, proto: 'tcp', expected: open() },
      { port: 80, proto: 'udp', expected: allowedExcept((r) => r.expectAllIngress('x/a', false)) },
    ],
  },
  {
    title: 'selects pods by ipBlock with except (Kubernetes semantics)',
    policy: (m) =>
      knp('ipblock', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - ipBlock:
      cidr: ${podsCidr(m)}
      except: [${m.endpoint('y/b').ipv4}/32]`),
    context: 'everyone but y/b reaches x/a',
    expect: () => [{ port: 80, proto: 'tcp', expected: allowedExcept((r) => r.expect('y/b', 'x/a', false)) }],
  },
  {
    title: 'combines several policies as a union',
    policy: () =>
      [
        knp('allow-y', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - namespaceSelector: {matchLabels: {ns: y}}`),
        knp('allow-z-c', 'x', `podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - namespaceSelector: {matchLabels: {ns: z}}
    podSelector: {matchLabels: {pod: c}}`),
      ].join('---\n'),
    context: 'y/* and z/c reach x/a',
    expect: () => [
      tcp80((r) => {
        r.expectAllIngress('x/a', false);
        r.expectPeers({ namespace: 'y' }, { namespace: 'x', pod: 'a' }, true);
        r.expect('z/c', 'x/a', true);
      }),
    ],
  },
  {
    title: 'restricts egress to selected peers and ports',
    policy: () =>
      knp('egress-y-80', 'x', `podSelector: {matchLabels: {pod: a}}
policyTypes: [Egress]
egress:
- to:
  - namespaceSelector: {matchLabels: {ns: y}}
  ports:
  - port: 80`),
    context: 'x/a reaches only namespace y on TCP 80',
    expect: () => [
      tcp80((r) => {
        r.expectAllEgress('x/a', false);
        r.expectPeers({ namespace: 'x', pod: 'a' }, { namespace: 'y' }, true);
      }),
      { port: 81, proto: 'tcp', expected: allowedExcept((r) => r.expectAllEgress('x/a', false)) },
    ],
  },
  {
    title: 'resolves egress named ports on the destination pods',
    policy: () =>
      knp('egress-named', 'x', `podSelector: {matchLabels: {pod: a}}
policyTypes: [Egress]
egress:
- ports:
  - port: serve-80-tcp`),
    context: 'x/a reaches every pod on the port they name serve-80-tcp, and nothing else',
    expect: () => [
      { port: 80, proto: 'tcp', expected: open() },
      { port: 81, proto: 'tcp', expected: allowedExcept((r) => r.expectAllEgress('x/a', false)) },
      { port: 80, proto: 'udp', expected: allowedExcept((r) => r.expectAllEgress('x/a', false)) },
    ],
  },
  {
    title: 'treats an empty ingress rule as allow-all',
    policy: () => knp('allow-all', 'x', 'podSelector: {}\ningress:\n- {}'),
    context: 'ingress: [{}] allows everything',
    expect: () => [{ port: 80, proto: 'tcp', expected: open() }],
  },
];
