/* Labels become identities with Cilium's rules, the ipcache map in the kernel holds every
 * endpoint and node address with the right identity, and identities follow label changes. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Endpoint, Identity, IpcacheRow } from '../../src/api/types.js';
import { TestNode } from '../harness/node.js';

describe('identities and the ipcache', () => {
  let node: TestNode;

  before(async () => {
    node = await TestNode.create({ podCidr: '10.212.0.0/24' });
    await node.api.setNamespace('prod', ['team=blue']);
    await node.api.setNamespace('dev');
  });
  after(async () => node?.cleanup());

  const ipcache = async () => new Map((await node.cliJson<IpcacheRow[]>('ipcache', 'list')).map((r) => [r.prefix, r.identity]));
  const identities = async () => node.cliJson<Identity[]>('identity', 'list');

  it('lists the reserved identities with their Cilium numbers', async () => {
    const ids = await identities();
    const byId = new Map(ids.map((i) => [i.id, i.labels]));
    assert.deepEqual(byId.get(1), ['reserved:host']);
    assert.deepEqual(byId.get(2), ['reserved:world']);
    assert.deepEqual(byId.get(3), ['reserved:unmanaged']);
    assert.deepEqual(byId.get(4), ['reserved:health']);
    assert.deepEqual(byId.get(5), ['reserved:init']);
    assert.deepEqual(byId.get(6), ['reserved:remote-node']);
  });

  it('derives labels from the endpoint and its namespace and filters them into the identity', async () => {
    const web = await node.cliJson<Endpoint>(
      'endpoint', 'add', 'prod/web', '--labels', 'app=web,pod-template-hash=abc123,app.kubernetes.io/name=shop',
    );
    assert.ok(web.identity >= 256);
    assert.ok(web.labels.includes('k8s:pod-template-hash=abc123'), 'all labels stay on the endpoint');
    assert.deepEqual(web.identityLabels, [
      'k8s:app.kubernetes.io/name=shop',
      'k8s:app=web',
      'k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=prod',
      'k8s:io.cilium.k8s.namespace.labels.team=blue',
      'k8s:io.cilium.k8s.policy.cluster=default',
      'k8s:io.kubernetes.pod.namespace=prod',
    ]);
  });

  it('gives endpoints with the same identity labels the same number, and others a new one', async () => {
    const web = await node.api.getEndpoint('prod', 'web');
    const web2 = await node.api.addEndpoint({ namespace: 'prod', name: 'web2', labels: ['app=web', 'pod-template-hash=zzz999'] });
    const devWeb = await node.api.addEndpoint({ namespace: 'dev', name: 'web', labels: ['app=web'] });
    const api = await node.api.addEndpoint({ namespace: 'prod', name: 'api', labels: ['app=api'] });
    assert.notEqual(web2.identity, web.identity, 'app.kubernetes.io/name differs');
    const web3 = await node.api.addEndpoint({ namespace: 'prod', name: 'web3', labels: ['app=web', 'app.kubernetes.io/name=shop', 'controller-revision-hash=1'] });
    assert.equal(web3.identity, web.identity, 'only ignored labels differ');
    assert.notEqual(devWeb.identity, web.identity, 'the namespace is part of the identity');
    assert.notEqual(api.identity, web.identity);
    const listed = await identities();
    const entry = listed.find((i) => i.id === web.identity);
    assert.equal(entry?.endpoints, 2);
  });

  it('writes every endpoint and node address into the kernel ipcache', async () => {
    const cache = await ipcache();
    for (const ep of await node.api.listEndpoints()) assert.equal(cache.get(`${ep.ipv4}/32`), ep.identity, ep.name);
    const status = await node.api.status();
    assert.equal(cache.get(`${status.node.routerIP}/32`), 1, 'router address is host');
    assert.equal(cache.get('127.0.0.1/32'), 1, 'node loopback is host');
    assert.equal(cache.get('0.0.0.0/0'), 2, 'everything else is world');
  });

  it('moves an endpoint to a new identity when its labels change, and releases the unused one', async () => {
    const before = await node.api.getEndpoint('prod', 'api');
    const r = await node.cli('endpoint', 'update', 'prod/api', '--labels', 'app=api,tier=backend', '-o', 'json');
    assert.equal(r.code, 0, r.stderr);
    const updated = JSON.parse(r.stdout) as Endpoint;
    assert.notEqual(updated.identity, before.identity);
    assert.ok(updated.identityLabels.includes('k8s:tier=backend'));
    assert.equal((await ipcache()).get(`${updated.ipv4}/32`), updated.identity);
    const ids = (await identities()).map((i) => i.id);
    assert.ok(!ids.includes(before.identity), `identity ${before.identity} was released`);
  });

  it('re-evaluates endpoints when their namespace labels change', async () => {
    const before = await node.api.getEndpoint('dev', 'web');
    await node.cli('namespace', 'set', 'dev', '--labels', 'env=test');
    const after = await node.api.getEndpoint('dev', 'web');
    assert.notEqual(after.identity, before.identity);
    assert.ok(after.identityLabels.includes('k8s:io.cilium.k8s.namespace.labels.env=test'));
    assert.equal((await ipcache()).get(`${after.ipv4}/32`), after.identity);
  });

  it('releases identities and ipcache entries when endpoints go away', async () => {
    const web = await node.api.getEndpoint('prod', 'web');
    const web3 = await node.api.getEndpoint('prod', 'web3');
    await node.api.deleteEndpoint('prod', 'web');
    assert.ok((await identities()).some((i) => i.id === web.identity), 'still used by web3');
    await node.api.deleteEndpoint('prod', 'web3');
    assert.ok(!(await identities()).some((i) => i.id === web.identity), 'released after the last user');
    const cache = await ipcache();
    assert.equal(cache.get(`${web.ipv4}/32`), undefined);
    assert.equal(cache.get(`${web3.ipv4}/32`), undefined);
  });
});
