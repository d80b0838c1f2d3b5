/* The files of the Observer for peers, checked at start: all three or none; the key of the
 * certificate; a certificate the cluster CA signed, that names this node and serves both ends
 * of TLS; and no address for it without them (nothing plaintext on the underlay). */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createClusterCa, issueNodeCertificate, loadClusterCa } from '../../src/cluster/certs.js';
import { checkPeerAddress, checkPeerTls } from '../../src/util/listen.js';

describe('peer TLS files', () => {
  let dir: string;
  const f = (name: string) => path.join(dir, name);
  const files = (node: string, ca = 'ca.crt') => ({ certFile: f(`${node}.crt`), keyFile: f(`${node}.key`), caFile: f(ca) });

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'membrane-peer-tls-'));
    const ca = await createClusterCa('test', 1);
    const other = await createClusterCa('other', 1);
    const signer = await loadClusterCa(ca, 'test');
    const n1 = await issueNodeCertificate(signer, { name: 'node1', ips: ['192.0.2.11'] }, 1);
    const n2 = await issueNodeCertificate(signer, { name: 'node2', ips: [] }, 1);
    for (const [name, content] of Object.entries({ 'ca.crt': ca.cert, 'other.crt': other.cert, 'node1.crt': n1.cert, 'node1.key': n1.key, 'node2.crt': n2.cert, 'node2.key': n2.key })) fs.writeFileSync(f(name), content);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("loads a node's own certificate, key and the CA", () => {
    const tls = checkPeerTls(files('node1'), 'node1');
    assert.ok(tls);
    assert.match(tls.cert.toString(), /BEGIN CERTIFICATE/);
    assert.match(tls.ca.toString(), /BEGIN CERTIFICATE/);
    assert.equal(checkPeerTls({}, 'node1'), undefined, 'none given: no peer TLS');
  });

  it('refuses what would not work between nodes, each in one line naming the flag and the fix', () => {
    const refused = (fl: Parameters<typeof checkPeerTls>[0], node: string, re: RegExp) =>
      assert.throws(() => checkPeerTls(fl, node), (err: Error & { code?: string }) => err.code === 'invalid' && re.test(err.message) && !err.message.includes('\n'));
    refused({ certFile: f('node1.crt'), keyFile: f('node1.key') }, 'node1', /^--hubble-peer-tls-ca-file missing: .*membrane cluster certs/);
    refused({ caFile: f('ca.crt') }, 'node1', /^--hubble-peer-tls-cert-file and --hubble-peer-tls-key-file missing/);
    refused({ ...files('node1'), keyFile: f('node2.key') }, 'node1', /is not the private key of the certificate/);
    refused(files('node1', 'other.crt'), 'node1', /is not signed by the CA in --hubble-peer-tls-ca-file/);
    refused(files('node2'), 'node1', /does not name this node \(node1\): .*--node node1=IP/);
    refused({ ...files('node1'), caFile: f('missing.crt') }, 'node1', /--hubble-peer-tls-ca-file ".*missing.crt" cannot be read/);
  });

  it('serves peers on the underlay address by default, never in plaintext', () => {
    const tls = checkPeerTls(files('node1'), 'node1');
    assert.equal(checkPeerAddress(undefined, tls, '192.0.2.11'), '192.0.2.11:4244');
    assert.equal(checkPeerAddress('192.0.2.11:5000', tls, '192.0.2.11'), '192.0.2.11:5000');
    assert.equal(checkPeerAddress('', tls, '192.0.2.11'), undefined, "'' serves nothing");
    assert.equal(checkPeerAddress(undefined, undefined, '192.0.2.11'), undefined, 'no files, no listener');
    assert.throws(() => checkPeerAddress('192.0.2.11:4244', undefined, '192.0.2.11'), /serves flows to other nodes, over mutual TLS only: give --hubble-peer-tls-cert-file/);
    assert.throws(() => checkPeerAddress('4244', tls, '192.0.2.11'), /--hubble-peer-address "4244" has no port/);
  });
});
