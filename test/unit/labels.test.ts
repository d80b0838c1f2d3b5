import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UserError } from '../../src/errors.js';
import { isIdentityRelevant, identityLabels } from '../../src/identity/filter.js';
import { endpointLabels, formatLabel, namespaceLabels, parseEndpointLabels, parseLabel, parseLabelList } from '../../src/identity/labels.js';

describe('label parsing', () => {
  it('defaults to the k8s source and keeps explicit ones', () => {
    assert.equal(formatLabel(parseLabel('app=web')), 'k8s:app=web');
    assert.equal(formatLabel(parseLabel('container:role=db')), 'container:role=db');
    assert.equal(formatLabel(parseLabel('app.kubernetes.io/name=shop')), 'k8s:app.kubernetes.io/name=shop');
    assert.equal(formatLabel(parseLabel('flag')), 'k8s:flag');
  });
  it('splits comma lists and repeated flags', () => {
    assert.deepEqual(parseLabelList(['a=1,b=2', 'c=3']).map(formatLabel), ['k8s:a=1', 'k8s:b=2', 'k8s:c=3']);
    assert.deepEqual(parseLabelList(undefined), []);
  });
  for (const bad of ['=x', 'a b=c', 'app=bad value', 'x/=1', 'UPPER.example/x=1', 'nosuchsource:a=b', 'a=' + 'v'.repeat(64), '-a=1']) {
    it(`rejects ${JSON.stringify(bad)}`, () => assert.throws(() => parseLabelList(bad), UserError));
  }
  it('rejects a key given twice', () => assert.throws(() => parseLabelList('a=1,a=2'), /given twice/));
});

describe('endpoint labels', () => {
  it('adds namespace-derived labels that a pod cannot override', () => {
    const ns = { name: 'prod', labels: namespaceLabels('prod', parseLabelList('team=blue')) };
    const labels = endpointLabels(parseLabelList('app=web,io.kubernetes.pod.namespace=evil'), ns, 'c1').map(formatLabel);
    assert.deepEqual(labels, [
      'k8s:app=web',
      'k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=prod',
      'k8s:io.cilium.k8s.namespace.labels.team=blue',
      'k8s:io.cilium.k8s.policy.cluster=c1',
      'k8s:io.kubernetes.pod.namespace=prod',
    ]);
  });
  for (const forged of [
    'io.cilium.k8s.namespace.labels.team=b',
    'k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=prod',
    'io.kubernetes.pod.namespace=prod',
    'container:io.kubernetes.pod.namespace=prod',
    'io.cilium.k8s.policy.cluster=c2',
    'io.cilium.k8s.policy.serviceaccount=admin',
  ]) {
    it(`refuses the derived label ${forged} on an endpoint`, () => {
      assert.throws(() => parseEndpointLabels(`app=x,${forged}`), (e: Error) => e instanceof UserError && /is derived by the agent/.test(e.message) && !e.message.includes('\n'));
    });
  }
  it('accepts keys that only resemble derived ones', () => {
    assert.deepEqual(parseEndpointLabels('io.kubernetes.pod.namespaced=x,io.cilium.k8s.policyx=1,team=b').map(formatLabel), [
      'k8s:io.kubernetes.pod.namespaced=x',
      'k8s:io.cilium.k8s.policyx=1',
      'k8s:team=b',
    ]);
  });
  it('always carries kubernetes.io/metadata.name on the namespace', () => {
    assert.deepEqual(namespaceLabels('x', parseLabelList('kubernetes.io/metadata.name=y')), { 'kubernetes.io/metadata.name': 'x' });
  });
});

describe("Cilium's default label filter", () => {
  const relevant = (text: string) => isIdentityRelevant(parseLabel(text));
  it('keeps ordinary labels and the namespace labels', () => {
    assert.ok(relevant('app=web'));
    assert.ok(relevant('io.kubernetes.pod.namespace=x'));
    assert.ok(relevant('io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=x'));
    assert.ok(relevant('app.kubernetes.io/name=x'));
    assert.ok(relevant('io.cilium.k8s.policy.cluster=default'));
    assert.ok(relevant('reserved:host'));
  });
  it('drops high-churn and Kubernetes-internal labels', () => {
    for (const l of [
      'pod-template-hash=abc',
      'controller-revision-hash=1',
      'pod-template-generation=2',
      'statefulset.kubernetes.io/pod-name=db-0',
      'apps.kubernetes.io/pod-index=0',
      'batch.kubernetes.io/job-completion-index=3',
      'kubernetes.io/hostname=n1',
      'io.kubernetes.container.name=x',
      'beta.kubernetes.io/arch=amd64',
      'failure-domain.beta.kubernetes.io/zone=z',
      'k8s.io/thing=1',
      'annotation.foo=bar',
      'etcd_node=x',
    ]) {
      assert.ok(!relevant(l), l);
    }
  });
  it('lets the longer prefix decide', () => {
    // io.kubernetes is ignored but io.kubernetes.pod.namespace is included: the longer one wins.
    assert.deepEqual(identityLabels(parseLabelList('io.kubernetes.pod.namespace=a,io.kubernetes.pod.name=b')).map(formatLabel), [
      'k8s:io.kubernetes.pod.namespace=a',
    ]);
  });
});
