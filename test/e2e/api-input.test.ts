/* The agent API under malformed requests: every one gets a 4xx with a one-line JSON error (never
 * a 500, never a crash), and the agent stays healthy. Besides the cases found by hand, a seeded
 * generator sends every route bodies of the wrong types and shapes. */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { TestNode } from '../harness/node.js';

interface Answer {
  status: number;
  body: string;
}

function send(socketPath: string, method: string, path: string, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    // A length, not chunks: node sends no chunked framing for DELETE, so its body would be read as the next request.
    const headers = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
    const req = http.request({ socketPath, method, path, headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A 4xx whose body is {error: {code, message}} with a one-line message. */
function assertRefused(a: Answer, context: string): void {
  assert.ok(a.status >= 400 && a.status < 500, `${context}: status ${a.status} ${a.body.slice(0, 200)}`);
  let parsed: { error?: { code?: string; message?: string } };
  try {
    parsed = JSON.parse(a.body) as typeof parsed;
  } catch {
    assert.fail(`${context}: status ${a.status} with a body that is not JSON: ${JSON.stringify(a.body.slice(0, 200))}`);
  }
  assert.equal(typeof parsed.error?.code, 'string', context);
  assert.equal(typeof parsed.error?.message, 'string', context);
  assert.ok(!parsed.error!.message!.includes('\n'), `${context}: the message has a line break`);
}

/** A small deterministic PRNG (mulberry32): the same seed makes the same requests. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('the agent API refuses malformed requests cleanly', () => {
  let node: TestNode;
  before(async () => {
    node = await TestNode.create({ podCidr: '10.232.0.0/24' });
    await node.api.setNamespace('default');
  });
  after(async () => node?.cleanup());

  it('answers a malformed percent-escape in the path with 400', async () => {
    assertRefused(await send(node.socket, 'GET', '/v1/endpoints/%E0%A4%A/x'), 'bad escape');
    assertRefused(await send(node.socket, 'DELETE', '/v1/namespaces/%ZZ'), 'bad escape');
  });

  it('answers flow requests with filters of the wrong type with 400', async () => {
    for (const body of [
      { whitelist: [{ source_ip: [1] }] },
      { whitelist: [{ source_pod: 'default/a' }] },
      { blacklist: [{ verdict: ['NOT_A_VERDICT'] }] },
      { whitelist: { source_ip: ['10.0.0.1'] } },
      { follow: 'yes' },
      { number: -1 },
      { whitelist: [{ http_status_code: ['200'] }] },
      [],
      'flows',
    ]) {
      const a = await send(node.socket, 'POST', '/v1/flows', JSON.stringify(body));
      assertRefused(a, JSON.stringify(body));
      assert.match(a.body, /GetFlowsRequest/);
    }
  });

  it('answers request bodies that are not JSON with 400', async () => {
    assertRefused(await send(node.socket, 'POST', '/v1/endpoints', '{"namespace":'), 'truncated JSON');
  });

  it('never answers 500 to bodies of the wrong shape on any route (seeded)', async () => {
    const random = prng(20261203);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const scalars = [null, true, false, 0, -1, 1.5, 1e308, 65536, '', 'x', 'default', 'yes', 'a\nb', '\u2028', '%', '../..', 'ü'.repeat(300), '10.232.0.010'];
    const value = (depth: number): unknown => {
      const r = random();
      if (depth > 2 || r < 0.55) return pick(scalars);
      if (r < 0.8) return Array.from({ length: Math.floor(random() * 3) }, () => value(depth + 1));
      return Object.fromEntries(Array.from({ length: Math.floor(random() * 3) }, () => [pick(FIELDS), value(depth + 1)]));
    };
    const FIELDS = ['namespace', 'name', 'labels', 'ipv4', 'ports', 'netns', 'files', 'content', 'all', 'frontend', 'backends', 'selector', 'targetPort', 'algorithm', 'affinity', 'affinityTimeout', 'whitelist', 'follow', 'number', 'since'] as const;
    const routes: [string, string][] = [
      ['PUT', '/v1/namespaces/fz'],
      ['POST', '/v1/endpoints'],
      ['PATCH', '/v1/endpoints/default/nobody'],
      ['POST', '/v1/policies'],
      ['POST', '/v1/policies/validate'],
      ['DELETE', '/v1/policies'],
      ['POST', '/v1/services'],
      ['PUT', '/v1/services/fz'],
      ['POST', '/v1/flows'],
    ];
    let refused = 0;
    for (let i = 0; i < 300; i++) {
      const [method, path] = pick(routes);
      // Objects with the routes' own field names, and anything else now and then.
      const body = random() < 0.8 ? Object.fromEntries(Array.from({ length: 1 + Math.floor(random() * 3) }, () => [pick(FIELDS), value(0)])) : value(0);
      const a = await send(node.socket, method, path, JSON.stringify(body));
      assert.notEqual(a.status, 500, `${method} ${path} ${JSON.stringify(body)}: ${a.body}`);
      if (a.status >= 400) {
        assertRefused(a, `${method} ${path} ${JSON.stringify(body)}`);
        refused++;
      }
    }
    assert.ok(refused > 200, `only ${refused} of 300 malformed requests were refused`);
    const s = await node.api.status();
    assert.equal(s.health, 'ok');
    assert.equal(node.agent?.exitCode, null);
  });
});
