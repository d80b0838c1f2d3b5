/* `membrane cluster certs` as an operator runs it at cluster set-up (no agent needed): a CA and
 * one certificate per node, keys 0600, certificates that openssl verifies against the CA with the
 * node's name and address and both TLS uses; a later run signs a new node with the same CA; bad
 * input refused in one line, nothing written. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { repoRoot, run } from '../harness/node.js';

const bin = path.join(repoRoot, 'bin/membrane');

describe('membrane cluster certs', () => {
  let dir: string;
  const out = () => path.join(dir, 'certs');
  const f = (name: string) => path.join(out(), name);
  const mode = (name: string) => fs.statSync(f(name)).mode & 0o777;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'membrane-certs-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes a CA and each node\'s certificate and key, keys readable by root only', async () => {
    const r = await run(bin, ['cluster', 'certs', '--out', out(), '--node', 'node1=192.0.2.11,node2=192.0.2.12', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const written = (JSON.parse(r.stdout) as { file: string }[]).map((w) => path.basename(w.file));
    assert.deepEqual(written, ['ca.crt', 'ca.key', 'node1.crt', 'node1.key', 'node2.crt', 'node2.key']);
    assert.equal(fs.statSync(out()).mode & 0o777, 0o700);
    for (const key of ['ca.key', 'node1.key', 'node2.key']) assert.equal(mode(key), 0o600, key);
    for (const crt of ['ca.crt', 'node1.crt']) assert.equal(mode(crt), 0o644, crt);
    assert.equal(execFileSync('openssl', ['verify', '-CAfile', f('ca.crt'), f('node1.crt'), f('node2.crt')], { encoding: 'utf8' }).trim(), `${f('node1.crt')}: OK\n${f('node2.crt')}: OK`);
    const node1 = new crypto.X509Certificate(fs.readFileSync(f('node1.crt')));
    assert.equal(node1.subjectAltName, 'DNS:node1, IP Address:192.0.2.11');
    assert.deepEqual(node1.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], 'server and client authentication');
    assert.ok(node1.checkPrivateKey(crypto.createPrivateKey(fs.readFileSync(f('node1.key')))));
    assert.ok(new crypto.X509Certificate(fs.readFileSync(f('ca.crt'))).ca);
  });

  it('signs a node that joins later with the CA already there', async () => {
    const caBefore = fs.readFileSync(f('ca.crt'), 'utf8');
    const r = await run(bin, ['cluster', 'certs', '--out', out(), '--node', 'node3']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /ca\.crt\s+cluster CA certificate \(already there: it signs the new certificates\)/);
    assert.equal(fs.readFileSync(f('ca.crt'), 'utf8'), caBefore);
    assert.match(execFileSync('openssl', ['verify', '-CAfile', f('ca.crt'), f('node3.crt')], { encoding: 'utf8' }), /OK/);
  });

  it('refuses bad input in one line, writing nothing', async () => {
    const refused = async (args: string[], re: RegExp) => {
      const r = await run(bin, ['cluster', 'certs', ...args]);
      assert.equal(r.code, 1);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, re);
    };
    const empty = path.join(dir, 'empty');
    await refused(['--out', empty, '--node', 'bad name'], /node name "bad name" cannot be a certificate name/);
    await refused(['--out', empty, '--node', 'n1=300.1.1.1'], /"300\.1\.1\.1" \(node n1\) is not an IP address: give NAME=IP/);
    await refused(['--out', empty], /give the nodes with --node NAME=IP/);
    await refused(['--out', empty, '--node', 'n1', '--days', '0'], /--days 0: give a whole number of days/);
    assert.equal(fs.existsSync(empty), false);
    fs.rmSync(f('ca.key'));
    await refused(['--out', out(), '--node', 'n4'], /holds ca\.crt without ca\.key: put the missing file back/);
    assert.equal(fs.existsSync(f('n4.crt')), false);
  });
});
