/* The datapath outlives the agent: after kill -9 established connections keep flowing, and a
 * restarted agent adopts the pinned maps and links, swaps in its programs, writes only the
 * differences, and keeps every endpoint and identity number. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import type { Endpoint } from '../../src/api/types.js';
import { pinnedLinkInfo } from '../../src/kernel/bpf-link.js';
import { repoRoot, TestNode, run, waitForLine } from '../harness/node.js';

async function roundTrip(conn: ChildProcess, word: string): Promise<void> {
  const echoed = waitForLine(conn, (l) => l === `echo ${word}` || l.startsWith('error'), 5000);
  conn.stdin!.write(word + '\n');
  assert.equal(await echoed, `echo ${word}`);
}

describe('agent restart', () => {
  let node: TestNode;
  let a: Endpoint;
  let b: Endpoint;
  let conn: ChildProcess;

  before(async () => {
    node = await TestNode.create({ podCidr: '10.214.0.0/24' });
    await node.api.setNamespace('default');
    a = await node.api.addEndpoint({ namespace: 'default', name: 'a', labels: ['app=a'] });
    b = await node.api.addEndpoint({ namespace: 'default', name: 'b', labels: ['app=b'] });
    await node.echoServer(b.netns, 7000);
    conn = node.holdConnection(a.netns, b.ipv4, 7000);
    await waitForLine(conn, (l) => l === 'connected');
    await roundTrip(conn, 'before');
  });
  after(async () => node?.cleanup());

  const linkPin = (ep: Endpoint) => path.join(node.bpffsDir, 'links', `ep${ep.id}-from-endpoint`);

  /** Connection-tracking entries in the pinned map, read with bpftool (no agent needed). */
  const ctEntries = async () => {
    const r = await run('bpftool', ['-j', 'map', 'dump', 'pinned', path.join(node.bpffsDir, 'maps', 'mb_ct')]);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as unknown[]).length;
  };

  it('keeps an established TCP connection and new connections working while the agent is dead', async () => {
    await node.killAgent('SIGKILL');
    await roundTrip(conn, 'while-dead');
    assert.ok(await node.probe(b.netns, 'tcp', b.ipv4, 7000), 'local connect');
    const tracked = await ctEntries();
    assert.ok(await node.probe(a.netns, 'tcp', b.ipv4, 7000), 'new connection a -> b');
    // Not the plain routing of a detached program: the endpoint programs tracked the new connection.
    assert.ok((await ctEntries()) > tracked, 'the programs still run and track new connections');
  });

  it('makes status fail with one line while the agent is unreachable', async () => {
    const r = await node.cli('status');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^Error: cannot reach the agent at .*agent\.sock/);
  });

  it('adopts the pinned state on restart: same numbers, the same verified programs, nothing rewritten', async () => {
    const progBefore = pinnedLinkInfo(linkPin(a)).progId;
    await node.startAgent();
    const status = await node.api.status();
    assert.equal(status.lastSync.reason, 'restore');
    assert.equal(status.lastSync.written, 0, 'no map entry rewritten');
    assert.equal(status.lastSync.deleted, 0);
    assert.ok(status.lastSync.unchanged >= 4);
    const after = pinnedLinkInfo(linkPin(a));
    assert.equal(after.progId, progBefore, 'the same object file: its pinned programs are adopted, not loaded again');
    assert.match(node.agentLog(), /"programsAdopted":true/);
    assert.equal(after.ifindex, a.ifindex);
    const eps = await node.api.listEndpoints();
    assert.deepEqual(
      eps.map((e) => [e.name, e.id, e.identity, e.ipv4, e.state]),
      [
        ['a', a.id, a.identity, a.ipv4, 'ready'],
        ['b', b.id, b.identity, b.ipv4, 'ready'],
      ],
    );
    await roundTrip(conn, 'after-restart');
  });

  it('swaps the programs of a changed object file into the same links (an upgrade)', async () => {
    const progBefore = pinnedLinkInfo(linkPin(a)).progId;
    await node.killAgent('SIGKILL');
    // Another build of the objects: the same programs, one byte more in the file.
    const dir = path.join(node.dir, 'bpf-upgrade');
    fs.mkdirSync(dir);
    for (const f of fs.readdirSync(path.join(repoRoot, 'build')).filter((f) => f.endsWith('.o'))) {
      fs.copyFileSync(path.join(repoRoot, 'build', f), path.join(dir, f));
    }
    fs.appendFileSync(path.join(dir, 'endpoint.o'), '\0');
    await node.startAgent(['--bpf-dir', dir]);
    const after = pinnedLinkInfo(linkPin(a));
    assert.notEqual(after.progId, progBefore, 'the new program replaced the old one in the same link');
    assert.equal(after.ifindex, a.ifindex);
    assert.equal((await node.api.status()).lastSync.written, 0);
    await roundTrip(conn, 'after-upgrade');
    // Back to the usual objects: a downgrade swaps again.
    await node.killAgent('SIGKILL');
    await node.startAgent();
    assert.notEqual(pinnedLinkInfo(linkPin(a)).progId, after.progId);
    await roundTrip(conn, 'after-downgrade');
  });

  it('adds endpoints after the restart without reusing numbers', async () => {
    const c = await node.api.addEndpoint({ namespace: 'default', name: 'c', labels: ['app=c'] });
    assert.ok(c.id > b.id, `new endpoint id ${c.id} after ${b.id}`);
    assert.ok(c.identity > b.identity);
    assert.ok(await node.probe(c.netns, 'tcp', b.ipv4, 7000));
  });

  it('repairs exactly what changed while it was away', async () => {
    await node.killAgent('SIGKILL');
    // Remove a's ipcache entry behind the agent's back (key: prefixlen 64, family 4, address).
    const key = ['40', '00', '00', '00', '04', '00', '00', '00', ...a.ipv4.split('.').map((o) => Number(o).toString(16).padStart(2, '0')), ...Array(12).fill('00')];
    const del = await run('bpftool', ['map', 'delete', 'pinned', path.join(node.bpffsDir, 'maps', 'mb_ipcache'), 'key', 'hex', ...key]);
    assert.equal(del.code, 0, del.stderr);
    // And delete b's workload namespace (its veth goes with it).
    await run('ip', ['netns', 'delete', b.netns]);
    await node.startAgent();
    const status = await node.api.status();
    // a's ipcache entry, plus b's entries under its new interface index (by ifindex and by address).
    assert.equal(status.lastSync.written, 3, JSON.stringify(status.lastSync));
    assert.equal(status.lastSync.deleted, 1, 'the stale endpoint entry of the old interface');
    const newB = await node.api.getEndpoint('default', 'b');
    assert.equal(newB.state, 'ready');
    assert.equal(newB.ipv4, b.ipv4);
    assert.equal(newB.identity, b.identity);
    await node.echoServer(newB.netns, 7001);
    assert.ok(await node.probe(a.netns, 'tcp', b.ipv4, 7001), 'the recreated endpoint is reachable');
  });

  it('restarts cleanly after SIGTERM as well', async () => {
    await node.killAgent('SIGTERM');
    await roundTrip(conn, 'after-sigterm').catch(() => undefined); // b was recreated: the old connection is gone
    await node.startAgent();
    const status = await node.api.status();
    assert.equal(status.lastSync.written, 0);
    assert.equal(status.counts.endpoints, 3);
  });

  it('recreates pinned maps whose layout changed (an upgrade) and keeps working', async () => {
    await node.killAgent('SIGTERM');
    const pin = path.join(node.bpffsDir, 'maps', 'mb_ipcache');
    await run('rm', ['-f', pin]);
    const made = await run('bpftool', ['map', 'create', pin, 'type', 'hash', 'key', '4', 'value', '4', 'entries', '16', 'name', 'mb_ipcache']);
    assert.equal(made.code, 0, made.stderr);
    await node.startAgent();
    assert.match(node.agentLog(), /pinned maps had another layout/);
    const cache = await node.api.listIpcache();
    assert.ok(cache.some((r) => r.prefix === `${a.ipv4}/32`), 'the ipcache was rewritten from desired state');
    assert.ok(await node.probe(a.netns, 'tcp', (await node.api.getEndpoint('default', 'b')).ipv4, 7001));
  });
});
