/* The agent refuses to start without what it needs, and says exactly what is missing. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot, run } from '../harness/node.js';

const bin = path.join(repoRoot, 'bin/membrane');

describe('agent preflight', () => {
  it('names the missing privilege when not run as root', async (t) => {
    const readable = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'test', '-r', path.join(repoRoot, 'dist/cli/main.js')]);
    if (readable.code !== 0) return t.skip('the checkout is not readable by an unprivileged user');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mbpre-'));
    try {
      const r = await run('setpriv', [
        '--reuid=65534', '--regid=65534', '--clear-groups',
        bin, '--socket', path.join(dir, 's'), 'agent', '--node-name', 'x', '--pod-cidr', '10.9.0.0/24',
        '--state-dir', path.join(dir, 'state'), '--bpffs-dir', path.join(dir, 'bpf'),
      ]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /^Error: membrane agent must run as root: it needs CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN/);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names a missing capability of a root process, before touching anything', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mbpre-'));
    try {
      const r = await run('setpriv', [
        '--bounding-set=-sys_admin', '--inh-caps=-sys_admin',
        bin, '--socket', path.join(dir, 's'), 'agent', '--node-name', 'x', '--pod-cidr', '10.9.0.0/24',
        '--state-dir', path.join(dir, 'state'), '--bpffs-dir', path.join(dir, 'bpf'),
      ]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /^Error: membrane agent lacks CAP_SYS_ADMIN: it needs/);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.ok(!fs.existsSync(path.join(dir, 'bpf')) && !fs.existsSync(path.join(dir, 'state')), 'nothing was created');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects a malformed pod CIDR with one line', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mbpre-'));
    try {
      const r = await run(bin, [
        '--socket', path.join(dir, 's'), 'agent', '--node-name', 'x', '--pod-cidr', '10.9.0.1/24',
        '--state-dir', path.join(dir, 'state'), '--bpffs-dir', path.join(dir, 'bpf'),
      ]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /^Error: --pod-cidr: "10.9.0.1\/24" has host bits set/);
      assert.ok(!fs.existsSync(path.join(dir, 'bpf')), 'nothing was mounted or pinned');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  // The Observer and /metrics carry flows and workload names: off loopback they need TLS or consent.
  for (const [what, flags, message] of [
    ['a plaintext Observer on every interface', ['--hubble-address', '0.0.0.0:0'],
      /^Error: --hubble-address "0.0.0.0:0" is not a loopback address, .*: give --hubble-tls-cert-file and --hubble-tls-key-file .*, or pass --hubble-disable-tls to accept plaintext$/],
    ['plaintext metrics on an empty host', ['--metrics-address', ':0'],
      /^Error: --metrics-address ":0" is not a loopback address, .*: give --metrics-tls-cert-file and --metrics-tls-key-file .*, or pass --metrics-disable-tls to accept plaintext$/],
    ['a TLS certificate without its key', ['--hubble-tls-cert-file', '/nonexistent/tls.crt'],
      /^Error: --hubble-tls-cert-file needs --hubble-tls-key-file: give the certificate's private key too$/],
    ['an unreadable TLS file', ['--hubble-address', '0.0.0.0:0', '--hubble-tls-cert-file', '/nonexistent/tls.crt', '--hubble-tls-key-file', '/nonexistent/tls.key'],
      /^Error: --hubble-tls-cert-file "\/nonexistent\/tls.crt" cannot be read \(ENOENT: no such file or directory\)/],
  ] as const) {
    it(`refuses ${what} with one line, before touching anything`, async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mbpre-'));
      try {
        const r = await run(bin, [
          '--socket', path.join(dir, 's'), 'agent', '--node-name', 'x', '--pod-cidr', '10.9.0.0/24',
          '--state-dir', path.join(dir, 'state'), '--bpffs-dir', path.join(dir, 'bpf'), ...flags,
        ]);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr.trim(), message);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        assert.ok(!fs.existsSync(path.join(dir, 'bpf')) && !fs.existsSync(path.join(dir, 'state')), 'nothing was created');
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
