/* TLS on the agent's TCP listeners: the flag rules (checkListener) and the real servers, the
 * Observer gRPC one with grpc-js's own client and /metrics with node's https, using a throwaway
 * PKI made by the openssl CLI. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { UserError } from '../../src/errors.js';
import { type ObserverServer, startObserverServer } from '../../src/flow/grpc-server.js';
import { loadObserverProto } from '../../src/flow/proto.js';
import { Metrics } from '../../src/flow/metrics.js';
import type { Flow, FlowSource } from '../../src/flow/types.js';
import { type ListenerFlags, type ServerTls, checkListener, isLoopbackHost, parseHostPort } from '../../src/util/listen.js';

// ---- a throwaway PKI: two CAs, a server certificate and a client certificate from each ----

interface Pki {
  dir: string;
  file: (name: string) => string;
  read: (name: string) => Buffer;
}

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function makeCa(dir: string, name: string): void {
  openssl(dir, 'req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
}

function makeLeaf(dir: string, ca: string, name: string, extensions: string): void {
  fs.writeFileSync(path.join(dir, `${name}.ext`), extensions);
  openssl(dir, 'req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
  openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial',
    '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
}

function makePki(): Pki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'membrane-tls-'));
  makeCa(dir, 'ca');
  makeCa(dir, 'other-ca');
  makeLeaf(dir, 'ca', 'server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  makeLeaf(dir, 'ca', 'client', 'extendedKeyUsage=clientAuth\n');
  makeLeaf(dir, 'other-ca', 'stranger', 'extendedKeyUsage=clientAuth\n');
  const file = (name: string) => path.join(dir, name);
  return { dir, file, read: (name) => fs.readFileSync(file(name)) };
}

let pki: Pki;
before(() => {
  pki = makePki();
});
after(() => {
  if (pki) fs.rmSync(pki.dir, { recursive: true, force: true });
});

/** The error checkListener throws, asserted to be a one-line UserError. */
function refusal(name: string, flags: ListenerFlags): UserError {
  try {
    checkListener(name, flags);
  } catch (err) {
    assert.ok(err instanceof UserError, `a UserError, got ${String(err)}`);
    assert.equal(err.code, 'invalid');
    assert.doesNotMatch(err.message, /\n/);
    return err;
  }
  assert.fail(`${JSON.stringify(flags)} was accepted`);
}

// ---- the rules ----

describe('listener flags', () => {
  test('loopback plaintext is the default and needs nothing', () => {
    for (const address of ['127.0.0.1:4245', '127.1.2.3:0', '[::1]:4245', '[::ffff:127.0.0.1]:9965', 'localhost:4245']) {
      const l = checkListener('hubble', { address });
      assert.equal(l?.loopback, true, address);
      assert.equal(l?.mode, 'plaintext');
      assert.equal(l?.tls, undefined);
    }
    assert.equal(checkListener('hubble', { address: '' }), undefined, "'' disables the listener");
  });

  test('a non-loopback plaintext address is refused with the way out', () => {
    for (const address of ['0.0.0.0:4245', '[::]:4245', ':4245', '10.1.2.3:4245', '[fd00::1]:4245', '[::ffff:10.0.0.1]:4245', 'node1.example:4245']) {
      const err = refusal('hubble', { address });
      assert.equal(
        err.message,
        `--hubble-address ${JSON.stringify(address)} is not a loopback address, and plaintext there is readable by anyone who reaches it: ` +
          'give --hubble-tls-cert-file and --hubble-tls-key-file (with --hubble-tls-client-ca-files for mutual TLS), or pass --hubble-disable-tls to accept plaintext',
      );
    }
    assert.match(refusal('metrics', { address: '0.0.0.0:9965' }).message, /^--metrics-address "0.0.0.0:9965" is not a loopback address.*--metrics-tls-cert-file.*--metrics-disable-tls/);
  });

  test('--hubble-disable-tls is the consent to plaintext on a wider address', () => {
    const l = checkListener('hubble', { address: '0.0.0.0:4245', disableTls: true });
    assert.deepEqual(l, { host: '0.0.0.0', port: 4245, loopback: false, mode: 'plaintext' });
  });

  test('TLS makes a wider address acceptable; client CAs make it mutual', () => {
    const tls = checkListener('hubble', { address: '0.0.0.0:4245', certFile: pki.file('server.crt'), keyFile: pki.file('server.key') });
    assert.equal(tls?.mode, 'tls');
    assert.equal(tls?.tls?.clientCa, undefined);
    assert.match(tls?.warning ?? '', /without --hubble-tls-client-ca-files/, 'server-only TLS on a wide address is worth a warning');
    assert.match(tls!.tls!.cert.toString(), /^-----BEGIN CERTIFICATE-----/);

    const mtls = checkListener('hubble', {
      address: ':4245',
      certFile: pki.file('server.crt'),
      keyFile: pki.file('server.key'),
      clientCaFiles: [pki.file('ca.crt'), pki.file('other-ca.crt')],
    });
    assert.equal(mtls?.mode, 'mtls');
    assert.equal(mtls?.warning, undefined);
    assert.equal(mtls?.tls?.clientCa?.toString().match(/BEGIN CERTIFICATE/g)?.length, 2, 'every CA file is trusted');
  });

  test('cert and key go together; client CAs and --disable-tls need or exclude them', () => {
    const cert = pki.file('server.crt');
    const key = pki.file('server.key');
    const ca = pki.file('ca.crt');
    assert.equal(
      refusal('hubble', { address: '127.0.0.1:4245', certFile: cert }).message,
      "--hubble-tls-cert-file needs --hubble-tls-key-file: give the certificate's private key too",
    );
    assert.equal(
      refusal('hubble', { address: '127.0.0.1:4245', keyFile: key }).message,
      '--hubble-tls-key-file needs --hubble-tls-cert-file: give the certificate the key belongs to',
    );
    assert.match(refusal('metrics', { address: '127.0.0.1:9965', clientCaFiles: [ca] }).message, /^--metrics-tls-client-ca-files needs --metrics-tls-cert-file and --metrics-tls-key-file/);
    assert.match(
      refusal('hubble', { address: '0.0.0.0:4245', certFile: cert, keyFile: key, disableTls: true }).message,
      /^--hubble-disable-tls contradicts --hubble-tls-cert-file/,
    );
  });

  test('unreadable, garbled or mismatched files are named', () => {
    const base = { address: '127.0.0.1:4245', certFile: pki.file('server.crt'), keyFile: pki.file('server.key') };
    const garbage = pki.file('garbage.pem');
    fs.writeFileSync(garbage, 'not a certificate\n');
    const truncated = pki.file('truncated.pem');
    const pem = pki.read('server.crt').toString();
    fs.writeFileSync(truncated, pem.replace(/^(-----BEGIN CERTIFICATE-----\n)[A-Za-z0-9+/]{20}/, '$1'));

    assert.equal(
      refusal('hubble', { ...base, certFile: pki.file('missing.crt') }).message,
      `--hubble-tls-cert-file ${JSON.stringify(pki.file('missing.crt'))} cannot be read (ENOENT: no such file or directory): give a readable PEM file`,
    );
    assert.equal(
      refusal('hubble', { ...base, certFile: garbage }).message,
      `--hubble-tls-cert-file ${JSON.stringify(garbage)} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
    );
    assert.match(refusal('hubble', { ...base, certFile: truncated }).message, /^--hubble-tls-cert-file ".*truncated.pem": certificate 1 of 1 is not a valid X.509 certificate$/);
    assert.equal(
      refusal('hubble', { ...base, keyFile: garbage }).message,
      `--hubble-tls-key-file ${JSON.stringify(garbage)} is not an unencrypted PEM private key`,
    );
    assert.equal(
      refusal('hubble', { ...base, keyFile: pki.file('client.key') }).message,
      `--hubble-tls-key-file ${JSON.stringify(pki.file('client.key'))} is not the private key of the certificate in --hubble-tls-cert-file ${JSON.stringify(base.certFile)}: give the matching pair`,
    );
    assert.match(refusal('hubble', { ...base, clientCaFiles: [pki.file('ca.crt'), garbage] }).message, /^--hubble-tls-client-ca-files ".*garbage.pem" holds no PEM certificate/);
    assert.match(refusal('hubble', { ...base, clientCaFiles: [pki.dir] }).message, /^--hubble-tls-client-ca-files ".*" cannot be read \(EISDIR/);
  });

  test('addresses are HOST:PORT, IPv6 in brackets', () => {
    assert.deepEqual(parseHostPort('[::1]:80', 'x'), { host: '::1', port: 80 });
    assert.deepEqual(parseHostPort(':80', 'x'), { host: '', port: 80 });
    for (const bad of ['127.0.0.1', '127.0.0.1:', '127.0.0.1:65536', '127.0.0.1:-1', '::1:4245', '[127.0.0.1]:80', '127.0.0.1:4245\n']) {
      assert.throws(() => parseHostPort(bad, '--hubble-address'), (err: Error) => err instanceof UserError && /^--hubble-address ".*" .*: write HOST:PORT/.test(err.message), bad);
    }
    assert.equal(isLoopbackHost('127.255.255.254'), true);
    assert.equal(isLoopbackHost('128.0.0.1'), false);
    assert.equal(isLoopbackHost(''), false);
  });
});

// ---- the Observer over TLS ----

const ObserverClient = (grpc.loadPackageDefinition(loadObserverProto()).observer as grpc.GrpcObject).Observer as grpc.ServiceClientConstructor;

const FLOW: Flow = {
  time: '2024-05-01T10:00:00.123456789Z',
  uuid: 'f1',
  verdict: 'FORWARDED',
  IP: { source: '10.0.0.1', destination: '10.0.0.2', ipVersion: 'IPv4' },
  source: { ID: 11, identity: 1001, namespace: 'shop', labels: ['k8s:app=web'], pod_name: 'web-1' },
  destination: { ID: 12, identity: 1002, namespace: 'shop', labels: ['k8s:app=db'], pod_name: 'db-0' },
  Type: 'L3_L4',
  node_name: 'node-a',
  event_type: { type: 4, sub_type: 0 },
  Summary: 'TCP Flags: ACK',
};

const source: FlowSource = {
  nodeName: 'node-a',
  query: () => [FLOW],
  subscribe: () => () => {},
  status: () => ({ num_flows: 1, max_flows: 16, seen_flows: 1, uptime_ns: 1, lost_events: 0, followers: 0 }),
};

type Msg = any;

/** A unary call with a deadline, so a refused handshake fails the call instead of retrying on. */
function unary(client: grpc.Client, method: string): Promise<Msg> {
  return new Promise((resolve, reject) => {
    (client as any)[method]({}, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null, res: Msg) => (err ? reject(err) : resolve(res)));
  });
}

function getFlows(client: grpc.Client): Promise<Msg[]> {
  return new Promise((resolve, reject) => {
    const out: Msg[] = [];
    const call = (client as any).GetFlows({ number: 10 }, { deadline: Date.now() + 10_000 }) as grpc.ClientReadableStream<Msg>;
    call.on('data', (m: Msg) => out.push(m));
    call.on('error', reject);
    call.on('end', () => resolve(out));
  });
}

describe('Observer gRPC over TLS', () => {
  let mtls: ObserverServer;
  let serverOnly: ObserverServer;
  let sock: string;
  const clients: grpc.Client[] = [];
  const client = (address: string, credentials: grpc.ChannelCredentials) => {
    const c = new ObserverClient(address, credentials);
    clients.push(c);
    return c;
  };
  const tlsOf = (flags: Partial<ListenerFlags>): ServerTls =>
    checkListener('hubble', { address: '127.0.0.1:0', certFile: pki.file('server.crt'), keyFile: pki.file('server.key'), ...flags })!.tls!;

  before(async () => {
    sock = path.join(pki.dir, 'run', 'hubble.sock');
    const common = { version: '0.1.0-test', filter: () => true };
    mtls = await startObserverServer(source, { ...common, tcpAddress: '127.0.0.1:0', unixSocket: sock, tls: tlsOf({ clientCaFiles: [pki.file('ca.crt')] }) });
    serverOnly = await startObserverServer(source, { ...common, tcpAddress: 'localhost:0', tls: tlsOf({}) });
  });

  after(async () => {
    for (const c of clients) c.close();
    await mtls?.close();
    await serverOnly?.close();
  });

  const caCert = () => pki.read('ca.crt');
  const withCert = (name: string) => grpc.credentials.createSsl(caCert(), pki.read(`${name}.key`), pki.read(`${name}.crt`));

  test('a client with a certificate from the trusted CA reads status, nodes and flows', async () => {
    const c = client(`127.0.0.1:${mtls.tcpPort}`, withCert('client'));
    const st = await unary(c, 'ServerStatus');
    assert.equal(st.version, '0.1.0-test');
    assert.equal(st.num_flows, 1);
    const nodes = await unary(c, 'GetNodes');
    assert.deepEqual(nodes.nodes[0].tls, { enabled: true });
    const flows = await getFlows(c);
    assert.deepEqual(flows.map((r) => r.flow?.uuid), ['f1']);
  });

  test('TLS without a client certificate is refused', async () => {
    const c = client(`127.0.0.1:${mtls.tcpPort}`, grpc.credentials.createSsl(caCert()));
    await assert.rejects(unary(c, 'ServerStatus'), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE);
  });

  test('a client certificate from another CA is refused', async () => {
    const c = client(`127.0.0.1:${mtls.tcpPort}`, withCert('stranger'));
    await assert.rejects(unary(c, 'ServerStatus'), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE);
    await assert.rejects(getFlows(c), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE);
  });

  test('plaintext to the TLS listener fails', async () => {
    const c = client(`127.0.0.1:${mtls.tcpPort}`, grpc.credentials.createInsecure());
    await assert.rejects(unary(c, 'ServerStatus'), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE);
  });

  test('a client that does not trust the server CA refuses it', async () => {
    const c = client(`127.0.0.1:${mtls.tcpPort}`, grpc.credentials.createSsl(pki.read('other-ca.crt'), pki.read('client.key'), pki.read('client.crt')));
    await assert.rejects(unary(c, 'ServerStatus'), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE);
  });

  test('the root-only unix socket stays plaintext', async () => {
    assert.equal(fs.statSync(sock).mode & 0o777, 0o600);
    const st = await unary(client(`unix:${sock}`, grpc.credentials.createInsecure()), 'ServerStatus');
    assert.equal(st.version, '0.1.0-test');
  });

  test('without client CAs any TLS client is served', async () => {
    const st = await unary(client(`localhost:${serverOnly.tcpPort}`, grpc.credentials.createSsl(caCert())), 'ServerStatus');
    assert.equal(st.num_flows, 1);
    await assert.rejects(
      unary(client(`localhost:${serverOnly.tcpPort}`, grpc.credentials.createInsecure()), 'ServerStatus'),
      (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE,
    );
  });
});

// ---- /metrics over HTTPS ----

describe('/metrics over HTTPS', () => {
  const metrics = new Metrics({
    endpoints: () => 3,
    identities: () => 0,
    policyRevision: () => 0,
    mapPressure: () => [],
    lostEvents: () => 0,
    flowFollowers: () => 0,
  });
  const servers: { close(): unknown }[] = [];
  let port: number;

  before(async () => {
    const tls = checkListener('metrics', {
      address: '127.0.0.1:0',
      certFile: pki.file('server.crt'),
      keyFile: pki.file('server.key'),
      clientCaFiles: [pki.file('ca.crt')],
    })!.tls;
    const served = await metrics.serve('127.0.0.1:0', tls);
    servers.push(served.server);
    port = Number(served.address.split(':').pop());
  });

  after(() => {
    for (const s of servers) s.close();
  });

  /** GET /metrics over HTTPS with the given client identity; a fresh connection each time. */
  const scrape = (opts: https.RequestOptions) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = https.get({ host: '127.0.0.1', port, path: '/metrics', ca: pki.read('ca.crt'), agent: false, timeout: 10_000, ...opts }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', reject);
    });

  test('a scraper with a certificate from the trusted CA gets the metrics', async () => {
    const r = await scrape({ cert: pki.read('client.crt'), key: pki.read('client.key') });
    assert.equal(r.status, 200);
    assert.match(r.body, /^membrane_endpoints 3$/m);
  });

  test('no client certificate, or one from another CA, is refused', async () => {
    await assert.rejects(scrape({}));
    await assert.rejects(scrape({ cert: pki.read('stranger.crt'), key: pki.read('stranger.key') }));
  });

  test('plain HTTP to the HTTPS listener gets no metrics', async () => {
    const got = await new Promise<string>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false, timeout: 10_000 }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(`status ${res.statusCode}: ${body}`));
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (err) => resolve(`error ${err.message}`));
    });
    assert.doesNotMatch(got, /membrane_endpoints/);
  });

  test('plaintext stays the loopback default', async () => {
    const served = await metrics.serve('127.0.0.1:0');
    servers.push(served.server);
    const body = await fetch(`http://${served.address}/metrics`).then((r) => r.text());
    assert.match(body, /^membrane_endpoints 3$/m);
  });
});
