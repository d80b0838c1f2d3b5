/* The real agent with TLS flags: the Observer on every interface of the node with mutual TLS
 * (two client CAs given as a comma-separated list), /metrics over HTTPS with one client CA, and
 * `membrane status` saying so. Clients run inside the node's namespace, where the agent listens. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Status } from '../../src/api/types.js';
import { TestNode, repoRoot } from '../harness/node.js';

/** ca signs server and client; other-ca signs stranger. EC keys: quick to make. */
function makePki(dir: string): void {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  for (const ca of ['ca', 'other-ca']) {
    openssl('req', '-x509', ...ec, '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', '2', '-subj', `/CN=${ca}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  }
  const leaves = [
    ['server', 'ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n'],
    ['client', 'ca', 'extendedKeyUsage=clientAuth\n'],
    ['stranger', 'other-ca', 'extendedKeyUsage=clientAuth\n'],
  ];
  for (const [name, ca, ext] of leaves) {
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext!);
    openssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  }
}

/** One ServerStatus call with grpc-js from this checkout; prints the status as JSON or "error CODE". */
const GRPC_CLIENT = `
import fs from 'node:fs';
import { createRequire } from 'node:module';
const [repo, address, ca, cert, key] = process.argv.slice(2);
const require = createRequire(repo + '/package.json');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const def = loader.loadSync('observer/observer.proto', { includeDirs: [repo + '/proto'], keepCase: true, enums: String, longs: Number, defaults: false, oneofs: true });
const creds = ca === '-' ? grpc.credentials.createInsecure() : cert === '-' ? grpc.credentials.createSsl(fs.readFileSync(ca)) : grpc.credentials.createSsl(fs.readFileSync(ca), fs.readFileSync(key), fs.readFileSync(cert));
const client = new (grpc.loadPackageDefinition(def).observer.Observer)(address, creds);
client.ServerStatus({}, { deadline: Date.now() + 10000 }, (err, res) => {
  console.log(err ? 'error ' + err.code : JSON.stringify(res));
  client.close();
});
`;

describe('agent listeners with TLS', () => {
  let node: TestNode;
  let pki: string;
  let status: Status;
  const file = (name: string) => path.join(pki, name);

  before(async () => {
    pki = fs.mkdtempSync(path.join(os.tmpdir(), 'membrane-tls-e2e-'));
    makePki(pki);
    fs.writeFileSync(file('grpc-client.mjs'), GRPC_CLIENT);
    node = await TestNode.create({
      extraAgentArgs: [
        '--hubble-address', '0.0.0.0:0',
        '--hubble-tls-cert-file', file('server.crt'),
        '--hubble-tls-key-file', file('server.key'),
        '--hubble-tls-client-ca-files', `${file('ca.crt')},${file('other-ca.crt')}`,
        '--metrics-address', '0.0.0.0:0',
        '--metrics-tls-cert-file', file('server.crt'),
        '--metrics-tls-key-file', file('server.key'),
        '--metrics-tls-client-ca-files', file('ca.crt'),
      ],
    });
    status = await node.cliJson<Status>('status');
  });

  after(async () => {
    await node?.cleanup();
    if (pki) fs.rmSync(pki, { recursive: true, force: true });
  });

  const port = (address: string) => Number(address.slice(address.lastIndexOf(':') + 1));

  /** ServerStatus from inside the node, with `identity` ('-' for none) and trusting `ca` ('-': plaintext). */
  const serverStatus = async (ca: string, identity: string): Promise<string> => {
    const creds = ca === '-' ? ['-', '-', '-'] : identity === '-' ? [file(ca), '-', '-'] : [file(ca), file(`${identity}.crt`), file(`${identity}.key`)];
    const r = await node.execNode(['node', file('grpc-client.mjs'), repoRoot, `127.0.0.1:${port(status.listen.hubble)}`, ...creds]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };

  it('status shows both TCP listeners on every interface, with mutual TLS', () => {
    assert.match(status.listen.hubble, /^0\.0\.0\.0:\d+$/);
    assert.match(status.listen.metrics, /^(0\.0\.0\.0|\[::\]):\d+$/);
    assert.equal(status.listen.hubbleTls, 'mtls');
    assert.equal(status.listen.metricsTls, 'mtls');
  });

  it('the Observer answers a client certificate from either CA, and nothing else', async () => {
    assert.equal(JSON.parse(await serverStatus('ca.crt', 'client')).num_connected_nodes.value, 1);
    assert.equal(JSON.parse(await serverStatus('ca.crt', 'stranger')).num_connected_nodes.value, 1, 'both CAs of the comma-separated list are trusted');
    assert.equal(await serverStatus('ca.crt', '-'), 'error 14', 'UNAVAILABLE without a client certificate');
    assert.equal(await serverStatus('-', '-'), 'error 14', 'UNAVAILABLE in plaintext');
  });

  it('/metrics answers HTTPS with a client certificate from its CA only', async () => {
    const curl = (...args: string[]) =>
      node.execNode(['curl', '-sS', '--max-time', '10', '--cacert', file('ca.crt'), ...args, `https://127.0.0.1:${port(status.listen.metrics)}/metrics`]);
    const ok = await curl('--cert', file('client.crt'), '--key', file('client.key'));
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^membrane_endpoints 0$/m);
    assert.notEqual((await curl()).code, 0, 'no client certificate');
    assert.notEqual((await curl('--cert', file('stranger.crt'), '--key', file('stranger.key'))).code, 0, 'a client certificate from a CA not given');
    const plain = await node.execNode(['curl', '-sS', '--max-time', '10', `http://127.0.0.1:${port(status.listen.metrics)}/metrics`]);
    assert.doesNotMatch(plain.stdout, /membrane_endpoints/, 'plain HTTP');
  });
});
