/* The policy API routes over a real ApiServer on a unix socket, with the repository in memory and
 * the endpoint manager faked: the API answers other requests while a hostile file is read, an
 * import whose client went away while it waited is not applied, DELETE takes only `all: true`
 * or a name, a file without policy is refused without a new revision, and names are echoed on
 * one line. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { AgentClient, ApiError } from '../../src/api/client.js';
import { registerPolicyRoutes, type PolicyRouteDeps } from '../../src/api/policy-routes.js';
import { ApiServer } from '../../src/api/server.js';
import { PolicyParser } from '../../src/policy/parse-pool.js';
import { PolicyRepository } from '../../src/policy/repository.js';
import { Mutex } from '../../src/util/mutex.js';
import { MemoryStore } from '../harness/memory-store.js';


const policy = (name: string) => `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: ${name}, namespace: default}
spec: {endpointSelector: {matchLabels: {app: ${name}}}}
`;

describe('policy routes', () => {
  let dir: string;
  let socket: string;
  let server: ApiServer;
  let client: AgentClient;
  let repo: PolicyRepository;
  let mutex: Mutex;
  /** Calls of `serial`, so a test can see an import queue up behind other work. */
  let serialCalls = 0;
  const parser = new PolicyParser();

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mb-policy-routes-'));
    socket = path.join(dir, 'api.sock');
    server = new ApiServer(pino({ level: 'silent' }));
    mutex = new Mutex();
    repo = new PolicyRepository(new MemoryStore());
    const deps = {
      repo,
      realizer: {},
      datapath: {},
      manager: {},
      reconciler: { planPolicy: () => ({}), policyChanged: () => {}, repairPolicy: () => {} },
      metrics: { policyImport: { observe: () => {} } },
      serial: <T>(fn: () => Promise<T> | T) => {
        serialCalls++;
        return mutex.run(fn);
      },
      parser,
    } as unknown as PolicyRouteDeps;
    registerPolicyRoutes(server, deps);
    await server.listen(socket);
    client = new AgentClient(socket);
  });
  after(async () => {
    await server.close();
    await parser.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    if (repo.list().length > 0) await client.deletePolicy({ all: true });
  });

  /** The API error a request ends with (one line, code invalid unless told). */
  async function refused(p: Promise<unknown>, status = 400): Promise<string> {
    const err = await p.then(
      () => assert.fail('the request succeeded'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ApiError, String(err));
    assert.equal(err.status, status, err.message);
    assert.ok(!/[\n\r\u2028\u2029]/.test(err.message), `not one line: ${err.message}`);
    return err.message;
  }

  it('answers other requests while a hostile file is being read', async () => {
    const hostile = [
      { name: 'keys.yaml', content: Array.from({ length: 40_000 }, (_, i) => `k${i}: v`).join('\n') },
      { name: 'deep.yaml', content: '['.repeat(1 << 20) + ']'.repeat(1 << 20) },
      { name: 'blank.yaml', content: '\n'.repeat(4 * 1024 * 1024 - 1) },
    ];
    await client.validatePolicies([{ name: 'warm.yaml', content: policy('warm') }]); // the worker is up
    for (const file of hostile) {
      const started = performance.now();
      const importing = refused(client.importPolicies([file]));
      // Requests made meanwhile are answered while the file is read, off the event loop.
      let answeredMeanwhile = 0;
      let done = false;
      void importing.finally(() => (done = true));
      while (!done) {
        await client.listPolicies();
        if (!done) answeredMeanwhile++;
        await new Promise((r) => setTimeout(r, 5));
      }
      const message = await importing;
      const ms = performance.now() - started;
      assert.ok(message.startsWith(`${file.name}: `), message);
      // A refusal that took a while must have let other requests through in between (the same
      // files blocked the API for 1 to 10 s before; the event loop is measured in policy-pool.test.ts).
      if (ms > 200) assert.ok(answeredMeanwhile > 0, `no listing answered in the ${Math.round(ms)} ms ${file.name} took`);
    }
  });

  it('imports and validates files', async () => {
    const r = await client.importPolicies([{ name: 'a.yaml', content: policy('a') }]);
    assert.deepEqual(
      r.policies.map((p) => p.name),
      ['a'],
    );
    const v = await client.validatePolicies([{ name: 'b.yaml', content: policy('b') }]);
    assert.equal(v.revision, r.revision);
    assert.deepEqual(
      (await client.listPolicies()).policies.map((p) => p.name),
      ['a'],
    );
    assert.match(await refused(client.importPolicies([{ name: 'a.yaml', content: policy('a') }, { name: 'b.yaml', content: policy('a') }])), /CiliumNetworkPolicy default\/a is defined twice/);
  });

  it('refuses a file without any policy, for import and validate, without a new revision', async () => {
    const revision = (await client.listPolicies()).revision;
    for (const content of ['', '# only a comment\n', '---\n---\n']) {
      const files = [
        { name: 'good.yaml', content: policy('good') },
        { name: 'empty.yaml', content },
      ];
      assert.equal(await refused(client.importPolicies(files)), 'empty.yaml: no policy in this file (nothing to import)');
      assert.equal(await refused(client.validatePolicies(files)), 'empty.yaml: no policy in this file (nothing to import)');
    }
    assert.equal((await client.listPolicies()).revision, revision);
    assert.deepEqual((await client.listPolicies()).policies, []);
  });

  it('does not apply an import whose client went away while it waited', async () => {
    let release!: () => void;
    const held = mutex.run(() => new Promise<void>((r) => (release = r))); // other work holds the lock
    const calls = serialCalls;
    const body = JSON.stringify({ files: [{ name: 'late.yaml', content: policy('late') }] });
    const req = http.request({ socketPath: socket, method: 'POST', path: '/v1/policies', headers: { 'content-type': 'application/json' } });
    req.on('error', () => {});
    req.end(body);
    // Once the import has been read and waits for the lock, the client gives up.
    while (serialCalls === calls) await new Promise((r) => setTimeout(r, 5));
    req.destroy();
    // The server has seen the connection close once it has answered requests made after it.
    await new Promise((r) => setTimeout(r, 50));
    await client.listPolicies();
    await client.listPolicies();
    release();
    await held;
    await mutex.run(() => undefined); // the import has had its turn
    assert.deepEqual((await client.listPolicies()).policies, [], 'nothing imported');
    // The same import from a client that waits is applied.
    const waited = client.importPolicies([{ name: 'late.yaml', content: policy('late') }]);
    assert.deepEqual((await waited).policies.map((p) => p.name), ['late']);
  });

  it('deletes everything only for "all": true', async () => {
    await client.importPolicies([{ name: 'a.yaml', content: `${policy('a')}---\n${policy('b')}` }]);
    const bodies: [unknown, RegExp][] = [
      [{ all: 'yes' }, /^"all" must be true or false, not "yes"$/],
      [{ all: 1 }, /^"all" must be true or false, not 1$/],
      [{ all: 'true' }, /"all" must be true or false/],
      [{ all: null }, /"all" must be true or false, not null/],
      [{ all: true, name: 'a' }, /give either "all" or a name, not both/],
      [{ name: 5 }, /^"name" must be a string, not 5$/],
      [{ name: 'a', namespace: ['default'] }, /^"namespace" must be a string/],
      [{ nmae: 'a' }, /^unknown field "nmae"/],
      [{}, /^name the policy to delete/],
      [{ all: false }, /^name the policy to delete/],
      [[], /^the request body must be an object/],
      ['all', /^the request body must be an object/],
    ];
    for (const [body, message] of bodies) {
      assert.match(await refused(client.request('DELETE', '/v1/policies', body)), message, JSON.stringify(body));
    }
    assert.equal((await client.listPolicies()).policies.length, 2, 'nothing deleted');
    await client.request('DELETE', '/v1/policies', { name: 'a', namespace: 'default', all: false });
    assert.equal((await client.listPolicies()).policies.length, 1);
    await client.deletePolicy({ all: true });
    assert.equal((await client.listPolicies()).policies.length, 0);
  });

  it('names a policy that is not there on one line', async () => {
    assert.equal(await refused(client.deletePolicy({ namespace: 'default', name: 'nope' })), "no policy named default/nope (see 'membrane policy get')");
    assert.equal(await refused(client.deletePolicy({ namespace: 'default', name: 'a\nb' })), `no policy named "default/a\\nb" (see 'membrane policy get')`);
    assert.equal(await refused(client.deletePolicy({ name: 'x\u2028y' })), `no policy named "x\\u2028y" (see 'membrane policy get')`);
  });

  it('names the file on one line whatever its name holds', async () => {
    assert.match(await refused(client.importPolicies([{ name: 'evil\nname.yaml', content: 'a: [' }])), /^"evil\\nname\.yaml": line 1, column/);
  });
});
