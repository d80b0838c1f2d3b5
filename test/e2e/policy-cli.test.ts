/* The policy commands as a user runs them: atomic import with one-line errors naming file,
 * document, object and field; validate, get, delete, selectors and the realized map entries;
 * enforcement surviving an agent restart without rewriting anything; enforcement modes. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import YAML from 'yaml';
import type { Endpoint, EndpointPolicyView, PolicyList } from '../../src/api/types.js';
import { TestNode } from '../harness/node.js';

const allowFromB = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: allow-b, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: a}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: b}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
`;

describe('policy commands', () => {
  let node: TestNode;
  let a: Endpoint;
  let b: Endpoint;
  let c: Endpoint;
  const file = (name: string, content: string) => node.writeFile(name, content);

  before(async () => {
    node = await TestNode.create({ podCidr: '10.224.0.0/24' });
    await node.api.setNamespace('default');
    a = await node.api.addEndpoint({ namespace: 'default', name: 'a', labels: ['app=a'] });
    b = await node.api.addEndpoint({ namespace: 'default', name: 'b', labels: ['app=b'] });
    c = await node.api.addEndpoint({ namespace: 'default', name: 'c', labels: ['app=c'] });
    await node.echoServer(a.netns, 8080, 9090);
  });
  after(async () => node?.cleanup());

  it('imports a file, prints the revision, and enforces before returning', async () => {
    const r = await node.cli('policy', 'import', file('allow.yaml', allowFromB));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Revision: \d+/);
    assert.match(r.stdout, /CiliumNetworkPolicy\s+default\s+allow-b/);
    assert.ok(await node.probe(b.netns, 'tcp', a.ipv4, 8080), 'b -> a:8080 allowed');
    assert.ok(!(await node.probe(c.netns, 'tcp', a.ipv4, 8080, 500)), 'c -> a denied right after import returned');
    assert.ok(!(await node.probe(b.netns, 'tcp', a.ipv4, 9090, 500)), 'b -> a:9090 denied');
  });

  it('shows the realized map entries of an endpoint with identity labels', async () => {
    const view = await node.cliJson<EndpointPolicyView>('bpf', 'policy', 'get', 'default/a');
    assert.equal(view.ingressEnforced, true);
    assert.equal(view.egressEnforced, false);
    assert.deepEqual(
      view.entries.map((e) => [e.policy, e.direction, e.identity, e.port, e.rule]),
      [['Allow', 'INGRESS', b.identity, '8080/TCP', 'CiliumNetworkPolicy default/allow-b']],
    );
    assert.ok(view.entries[0]!.labels.includes('k8s:app=b'));
    const table = await node.cli('bpf', 'policy', 'get', 'default/a');
    assert.match(table.stdout, /POLICY\s+DIRECTION\s+IDENTITY\s+LABELS\s+PORT\/PROTO/);
  });

  it('lists selectors with the identities they select', async () => {
    const r = await node.cli('policy', 'selectors', '-o', 'json');
    const rows = JSON.parse(r.stdout) as { selector: string; identities: number[] }[];
    const peer = rows.find((s) => s.selector.includes('any:app=b'));
    assert.deepEqual(peer?.identities, [b.identity]);
  });

  it('prints imported policies back as YAML', async () => {
    const r = await node.cli('policy', 'get', 'default/allow-b', '-o', 'yaml');
    assert.equal(r.code, 0, r.stderr);
    const docs = YAML.parse(r.stdout) as { metadata: { name: string } }[];
    assert.equal(docs[0]?.metadata.name, 'allow-b');
  });

  const bad: [string, string, RegExp][] = [
    ['an unknown kind', 'apiVersion: cilium.io/v2\nkind: CiliumNetworkPolice\nmetadata: {name: x, namespace: default}\nspec: {}\n', /document 2 \(CiliumNetworkPolice default\/x\): kind: unknown kind/],
    ['a wrong apiVersion', allowFromB.replace('cilium.io/v2', 'cilium.io/v1'), /document 2 \(CiliumNetworkPolicy default\/allow-b\): apiVersion/],
    [
      'a bad selector operator',
      allowFromB.replace('{matchLabels: {app: b}}', '{matchExpressions: [{key: app, operator: Maybe, values: [b]}]}'),
      /allow-b\): spec\.ingress\[0\]\.fromEndpoints\[0\]\.matchExpressions\[0\]\.operator/,
    ],
    ['a malformed CIDR', allowFromB.replace('fromEndpoints: [{matchLabels: {app: b}}]', 'fromCIDR: [10.0.0.300/8]'), /spec\.ingress\[0\]\.fromCIDR\[0\]/],
    ['a port out of range', allowFromB.replace('"8080"', '"70000"'), /spec\.ingress\[0\]\.toPorts\[0\]\.ports\[0\]\.port/],
    ['an unknown entity', allowFromB.replace('fromEndpoints: [{matchLabels: {app: b}}]', 'fromEntities: [wrld]'), /fromEntities\[0\]: unknown entity "wrld"/],
    ['a missing name', allowFromB.replace('name: allow-b, ', ''), /metadata\.name/],
  ];
  for (const [what, content, message] of bad) {
    it(`rejects ${what} whole, with one line, changing nothing`, async () => {
      const before = await node.api.listPolicies();
      const beforeMap = await node.api.endpointPolicy('default', 'a');
      const good = file('good.yaml', allowFromB.replace('allow-b', 'another'));
      const broken = file('broken.yaml', `${allowFromB.replace('allow-b', 'first-ok')}---\n${content}`);
      const r = await node.cli('policy', 'import', good, broken);
      assert.notEqual(r.code, 0);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /^Error: .*broken\.yaml: document 2/);
      assert.match(r.stderr, message);
      assert.deepEqual(await node.api.listPolicies(), before, 'nothing imported, not even the good file');
      assert.deepEqual(await node.api.endpointPolicy('default', 'a'), beforeMap, 'datapath unchanged');
      const v = await node.cli('policy', 'validate', broken);
      assert.notEqual(v.code, 0);
    });
  }

  it('bounds very large inputs', async () => {
    const huge = file('huge.yaml', `# ${'x'.repeat(5 * 1024 * 1024)}\n`);
    const r = await node.cli('policy', 'import', huge);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /larger than 4 MiB/);
  });

  it('validates without changing anything', async () => {
    const before = await node.api.listPolicies();
    const r = await node.cli('policy', 'validate', file('v.yaml', allowFromB.replace('allow-b', 'validated')));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await node.api.listPolicies(), before);
  });

  it('keeps enforcing across an agent restart and rewrites nothing', async () => {
    await node.killAgent('SIGKILL');
    assert.ok(!(await node.probe(c.netns, 'tcp', a.ipv4, 8080, 500)), 'still denied while the agent is dead');
    assert.ok(await node.probe(b.netns, 'tcp', a.ipv4, 8080), 'still allowed while the agent is dead');
    await node.startAgent();
    const status = await node.api.status();
    assert.equal(status.lastSync.written, 0, JSON.stringify(status.lastSync));
    assert.equal(status.lastSync.deleted, 0);
    const list = await node.cliJson<PolicyList['policies'][number]['source'][]>('policy', 'get');
    assert.equal(list.length, 1);
    assert.ok(!(await node.probe(c.netns, 'tcp', a.ipv4, 8080, 500)), 'still denied after the restart');
  });

  it('deletes a policy and traffic is restored', async () => {
    const missing = await node.cli('policy', 'delete', 'default/nope');
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /no policy named default\/nope/);
    const r = await node.cli('policy', 'delete', 'default/allow-b');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(await node.probe(c.netns, 'tcp', a.ipv4, 8080), 'c -> a allowed again');
    const view = await node.api.endpointPolicy('default', 'a');
    assert.equal(view.entries.length, 0);
    assert.equal(view.ingressEnforced, false);
  });

  it('imports a Cilium example without metadata.namespace into default, as written', async () => {
    const example = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
description: "b may reach a on 8080, nothing else may"
metadata: {name: no-namespace}
spec:
  description: "L3/L4 only"
  endpointSelector: {matchLabels: {app: a}}
  ingress:
  - description: "from b"
    fromEndpoints: [{matchLabels: {app: b}}]
    fromRequires: []
    toPorts: [{ports: [{port: "8080", protocol: TCP}], rules: {http: []}}]
  egress:
  - toFQDNs: []
    toPorts: [{ports: [{port: "53", protocol: ANY}], rules: {}}]
`;
    const r = await node.cli('policy', 'import', file('no-namespace.yaml', example));
    assert.equal(r.code, 0, r.stderr);
    const stored = (await node.api.listPolicies()).policies.find((p) => p.name === 'no-namespace');
    assert.equal(stored?.namespace, 'default');
    assert.ok(await node.probe(b.netns, 'tcp', a.ipv4, 8080), 'b -> a:8080 allowed');
    assert.ok(!(await node.probe(c.netns, 'tcp', a.ipv4, 8080, 500)), 'c -> a denied');
    const got = await node.cli('policy', 'get', 'default/no-namespace', '-o', 'yaml');
    assert.equal(got.code, 0, got.stderr);
    const [doc] = YAML.parse(got.stdout) as { description: string; metadata: Record<string, unknown> }[];
    assert.equal(doc?.description, 'b may reach a on 8080, nothing else may');
    assert.deepEqual(doc?.metadata, { name: 'no-namespace' }, 'the source is kept as written');
    assert.equal((await node.cli('policy', 'delete', 'default/no-namespace')).code, 0);
  });
});

describe('enforcement modes', () => {
  it('isolates endpoints without any policy in mode always', async () => {
    const node = await TestNode.create({ podCidr: '10.225.0.0/24', extraAgentArgs: ['--enforcement', 'always'] });
    try {
      await node.api.setNamespace('default');
      const a = await node.api.addEndpoint({ namespace: 'default', name: 'a' });
      const b = await node.api.addEndpoint({ namespace: 'default', name: 'b' });
      await node.echoServer(a.netns, 8080);
      assert.ok(!(await node.probe(b.netns, 'tcp', a.ipv4, 8080, 500)));
      const view = await node.api.endpointPolicy('default', 'a');
      assert.equal(view.ingressEnforced && view.egressEnforced, true);
    } finally {
      await node.cleanup();
    }
  });

  it('ignores policy in mode never', async () => {
    const node = await TestNode.create({ podCidr: '10.226.0.0/24', extraAgentArgs: ['--policy-enforcement', 'never'] });
    try {
      await node.api.setNamespace('default');
      const a = await node.api.addEndpoint({ namespace: 'default', name: 'a', labels: ['app=a'] });
      const b = await node.api.addEndpoint({ namespace: 'default', name: 'b' });
      await node.echoServer(a.netns, 8080);
      await node.api.importPolicies([{ name: 'p.yaml', content: allowFromB }]);
      assert.ok(await node.probe(b.netns, 'tcp', a.ipv4, 8080));
    } finally {
      await node.cleanup();
    }
  });

  it('refuses, whole, a policy set that would not fit the policy map', async () => {
    const node = await TestNode.create({ podCidr: '10.227.0.0/24', extraAgentArgs: ['--policy-map-max', '1024'] });
    try {
      await node.api.setNamespace('default');
      const a = await node.api.addEndpoint({ namespace: 'default', name: 'a', labels: ['app=a'] });
      const b = await node.api.addEndpoint({ namespace: 'default', name: 'b', labels: ['app=b'] });
      await node.echoServer(a.netns, 8080);
      await node.api.importPolicies([{ name: 'p.yaml', content: allowFromB }]);
      const before = { policies: await node.api.listPolicies(), map: await node.api.endpointPolicy('default', 'a') };
      // 1,500 single ports from app=b: more entries than the 1,024 the map was given.
      const ports = Array.from({ length: 1500 }, (_, i) => `{port: "${10000 + i * 2}", protocol: TCP}`).join(', ');
      const big = allowFromB.replace('allow-b', 'too-big').replace('[{port: "8080", protocol: TCP}]', `[${ports}]`);
      const dir = fs.mkdtempSync(path.join(node.dir, 'big-'));
      fs.writeFileSync(path.join(dir, 'big.yaml'), big);
      const r = await node.cli('policy', 'import', path.join(dir, 'big.yaml'));
      assert.notEqual(r.code, 0);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /need 1,50\d policy map entries, more than the 1,024 the map holds/);
      assert.deepEqual(await node.api.listPolicies(), before.policies, 'nothing stored');
      assert.deepEqual(await node.api.endpointPolicy('default', 'a'), before.map, 'nothing written');
      assert.ok(await node.probe(b.netns, 'tcp', a.ipv4, 8080), 'enforcement as before');
    } finally {
      await node.cleanup();
    }
  });
});
