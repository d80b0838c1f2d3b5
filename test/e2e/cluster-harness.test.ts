/* The cluster harness itself: three agents on one underlay, each node reaching the others and
 * etcd, etcd data surviving a crash, and nothing left behind by cleanup. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestCluster } from '../harness/cluster.js';
import { cgroup2Mount, namespacesWithPrefix } from '../harness/node.js';

describe('cluster harness', () => {
  let cluster: TestCluster;

  before(async () => {
    cluster = await TestCluster.create({ nodes: 3, kvstore: false });
  });
  after(async () => cluster?.cleanup());

  it('starts one answering agent per node, each with its own pod CIDR', async () => {
    assert.equal(cluster.nodes.length, 3);
    for (const [i, node] of cluster.nodes.entries()) {
      const status = await node.api.status();
      assert.ok(status, `node ${i} answers status`);
      assert.equal(node.podCidr, `10.210.${i}.0/24`);
      assert.ok(node.netns.startsWith(`${cluster.prefix}-n${i}-`), node.netns);
      const r = await node.execNode(['ip', '-4', '-o', 'address', 'show', 'dev', 'eth0']);
      assert.match(r.stdout, new RegExp(`inet ${cluster.nodeIp(i).replaceAll('.', '\\.')}/24 `));
    }
  });

  it('lets every node reach the other nodes and the gateway over the underlay', async () => {
    for (const [i, node] of cluster.nodes.entries()) {
      const targets = [cluster.gatewayIp, ...cluster.nodes.map((_, j) => cluster.nodeIp(j)).filter((_, j) => j !== i)];
      for (const target of targets) {
        const r = await node.execNode(['ping', '-c', '1', '-W', '2', target]);
        assert.equal(r.code, 0, `node ${i} pings ${target}: ${r.stdout}${r.stderr}`);
      }
    }
  });

  it('lets every node write and read etcd', async () => {
    for (const [i, node] of cluster.nodes.entries()) {
      const put = await cluster.etcd.etcdctl(['put', `/harness/n${i}`, `from-${i}`], node.netns);
      assert.equal(put.code, 0, put.stderr);
    }
    for (const node of cluster.nodes) {
      const get = await cluster.etcd.etcdctl(['get', '--prefix', '--print-value-only', '/harness/'], node.netns);
      assert.equal(get.code, 0, get.stderr);
      assert.deepEqual(get.stdout.trim().split('\n'), ['from-0', 'from-1', 'from-2']);
    }
  });

  it('keeps etcd data across a crash and restart', async () => {
    const from = cluster.nodes[1]!.netns;
    assert.equal((await cluster.etcd.etcdctl(['put', '/harness/durable', 'kept'], from)).code, 0);
    const pid = cluster.etcd.pid;
    assert.ok(pid);
    await cluster.etcd.kill();
    assert.equal(cluster.etcd.pid, undefined);
    assert.ok(!fs.existsSync(`/proc/${pid}`) || fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] === 'Z', 'etcd is gone');
    assert.notEqual((await cluster.etcd.etcdctl(['--command-timeout=1s', 'get', '/harness/durable'], from)).code, 0, 'etcd is down');
    await cluster.etcd.restart();
    assert.notEqual(cluster.etcd.pid, pid);
    const get = await cluster.etcd.etcdctl(['get', '--print-value-only', '/harness/durable'], from);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout.trim(), 'kept');
  });
});

/** Processes whose command line mentions `text` (etcd's carries its name and data dir). */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmdline.includes(text)) found.push(`${pid} ${cmdline}`);
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

describe('cluster harness cleanup', () => {
  it('leaves no namespace, process, directory or cgroup behind', async () => {
    const cluster = await TestCluster.create({ nodes: 1, kvstore: false });
    const { prefix } = cluster;
    try {
      const names = namespacesWithPrefix(prefix);
      for (const ns of [`${prefix}-net`, `${prefix}-n0-node`]) assert.ok(names.includes(ns), `${ns} in ${names.join(' ')}`);
      assert.ok(processesMentioning(prefix).some((p) => p.includes('etcd')), 'etcd runs');
    } finally {
      await cluster.cleanup();
    }
    assert.deepEqual(namespacesWithPrefix(prefix), []);
    assert.deepEqual(processesMentioning(prefix), []);
    assert.deepEqual(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(prefix)), []);
    assert.deepEqual(fs.readdirSync('/sys/fs/bpf').filter((f) => f.startsWith(prefix)), []);
    assert.deepEqual(fs.readdirSync(cgroup2Mount()).filter((f) => f.startsWith(prefix)), []);
    assert.equal(fs.existsSync(path.join(os.tmpdir(), prefix)), false);
  });
});
