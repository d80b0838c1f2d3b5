/* Hostile and empty policy files against a real agent (dist/, the compiled worker thread): each
 * is refused with one line naming the file, within 2 s, while the agent keeps answering other
 * requests; a file without policy makes no revision; DELETE takes only "all": true. */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { TestNode } from '../harness/node.js';

const allowFromB = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: allow-b, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: a}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: b}}]
`;

describe('policy input limits on a running agent', () => {
  let node: TestNode;
  const file = (name: string, content: string) => node.writeFile(name, content);

  before(async () => {
    node = await TestNode.create({ podCidr: '10.238.0.0/24' });
    await node.api.setNamespace('default');
    await node.api.importPolicies([{ name: 'allow.yaml', content: allowFromB }]);
  });
  after(async () => node?.cleanup());

  it('refuses hostile files quickly, on one line, and keeps answering meanwhile', async () => {
    const n = 1 << 20;
    const hostile: [string, string, RegExp][] = [
      ['deep.yaml', '['.repeat(n) + ']'.repeat(n), /maxDepth/],
      ['keys.yaml', Array.from({ length: 40_000 }, (_, i) => `k${i}: v`).join('\n'), /maxKeysPerMapping/],
      ['anchors.yaml', Array.from({ length: 100_000 }, (_, i) => `k${i}: &a${i} v`).join('\n'), /maxAnchors/],
      ['bomb.yaml', ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 8 }, (_, i) => `a${i + 1}: &a${i + 1} [${Array(10).fill(`*a${i}`).join(', ')}]`)].join('\n'), /maxNodes/],
      ['blank.yaml', '\n'.repeat(4 * 1024 * 1024 - 1), /maxTokens/],
    ];
    const before = await node.api.listPolicies();
    for (const [name, content, limit] of hostile) {
      const p = file(name, content);
      const started = performance.now();
      let done = false;
      const importing = node.api.importPolicies([{ name: p, content }]).then(
        () => assert.fail(`${name} was imported`),
        (err: Error) => {
          done = true;
          return err.message;
        },
      );
      // Status requests made meanwhile are answered while the file is read (off the event loop):
      // before, the agent answered nothing until it had read the whole file.
      let answeredMeanwhile = 0;
      while (!done) {
        await node.api.status();
        if (!done) answeredMeanwhile++;
        await new Promise((r) => setTimeout(r, 10));
      }
      const message = await importing;
      const ms = performance.now() - started;
      assert.ok(message.startsWith(`${p}: `), message);
      assert.match(message, limit);
      assert.ok(!message.includes('\n'), message);
      // A refusal that took a while must have let other requests through in between.
      if (ms > 200) assert.ok(answeredMeanwhile > 0, `${name}: no status answered in the ${Math.round(ms)} ms it took`);
      // The CLI says the same, on one line.
      const r = await node.cli('policy', 'validate', p);
      assert.notEqual(r.code, 0);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, limit);
    }
    assert.deepEqual(await node.api.listPolicies(), before);
  });

  it('refuses a file without any policy and makes no revision', async () => {
    const before = await node.api.listPolicies();
    for (const content of ['', '# nothing yet\n', '---\n---\n']) {
      const r = await node.cli('policy', 'import', file('empty.yaml', content));
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /^Error: .*empty\.yaml: no policy in this file \(nothing to import\)\n$/);
    }
    assert.deepEqual(await node.api.listPolicies(), before);
  });

  it('deletes every policy only for "all": true', async () => {
    const send = (body: string) =>
      new Promise<number>((resolve, reject) => {
        const req = http.request(
          { socketPath: node.socket, method: 'DELETE', path: '/v1/policies', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    for (const body of ['{"all":"yes"}', '{"all":1}', '{"all":"true"}', '{"name":["allow-b"]}']) assert.equal(await send(body), 400, body);
    assert.equal((await node.api.listPolicies()).policies.length, 1, 'nothing deleted');
    const r = await node.cli('policy', 'delete', 'default/no\u2028pe');
    assert.equal(r.stderr.trim().split(/[\n\u2028]/).length, 1, r.stderr);
    assert.equal(await send('{"all":true}'), 200);
    assert.equal((await node.api.listPolicies()).policies.length, 0);
  });
});
