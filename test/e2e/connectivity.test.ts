/* Two endpoints on one node reach each other through the endpoint programs, over TCP, UDP and
 * ICMP; the datapath classifies both sides by identity; spoofed sources are dropped. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Endpoint, MetricsRow } from '../../src/api/types.js';
import { TestNode, eventually, run } from '../harness/node.js';
import { LINK_TYPE_TCX, pinnedLinkInfo } from '../../src/kernel/bpf-link.js';
import { closeFd } from '../../src/kernel/libc.js';
import { ctKey, ctValue } from '../../src/datapath/layouts.js';
import { sweepConntrack } from '../../src/datapath/ct-gc.js';
import { probeDatapathClock } from '../../src/kernel/jiffies.js';
import fs from 'node:fs';
import path from 'node:path';

describe('connectivity between endpoints of one node', () => {
  let node: TestNode;
  let a: Endpoint;
  let b: Endpoint;

  before(async () => {
    node = await TestNode.create({ podCidr: '10.211.0.0/24' });
    assert.equal((await node.cli('namespace', 'set', 'default')).code, 0);
    a = await node.cliJson<Endpoint>('endpoint', 'add', 'default/a', '--labels', 'app=a');
    b = await node.cliJson<Endpoint>('endpoint', 'add', 'default/b', '--labels', 'app=b');
    await node.echoServer(b.netns, 8080);
    await node.echoServer(a.netns, 8080);
  });
  after(async () => node?.cleanup());

  it('attaches both programs with pinned tcx links on the host-side interface', () => {
    const pins = fs.readdirSync(path.join(node.bpffsDir, 'links')).filter((f) => f.startsWith(`ep${a.id}-`));
    assert.equal(pins.length, 2, `pinned links of endpoint ${a.id}: ${pins.join(', ')}`);
    const infos = pins.map((p) => pinnedLinkInfo(path.join(node.bpffsDir, 'links', p)));
    for (const info of infos) {
      assert.equal(info.type, LINK_TYPE_TCX);
      assert.equal(info.ifindex, a.ifindex);
    }
    assert.deepEqual(infos.map((i) => i.attachDirection).sort(), ['egress', 'ingress']);
  });

  it('carries TCP both ways', async () => {
    assert.ok(await node.probe(a.netns, 'tcp', b.ipv4, 8080), 'a -> b over TCP');
    assert.ok(await node.probe(b.netns, 'tcp', a.ipv4, 8080), 'b -> a over TCP');
  });

  it('carries UDP', async () => {
    assert.ok(await node.probe(a.netns, 'udp', b.ipv4, 8080), 'a -> b over UDP');
  });

  it('carries ICMP', async () => {
    assert.ok(await node.ping(a.netns, b.ipv4), 'a pings b');
    assert.ok(await node.ping(b.netns, a.ipv4), 'b pings a');
  });

  it('reaches the node router address, which the ipcache labels host', async () => {
    const status = await node.api.status();
    assert.ok(await node.ping(a.netns, status.node.routerIP));
    const cache = await node.api.listIpcache();
    assert.equal(cache.find((r) => r.prefix === `${status.node.routerIP}/32`)?.identity, 1, JSON.stringify(cache));
  });

  it('classifies peers by identity in the kernel', async () => {
    assert.ok(await node.probe(a.netns, 'tcp', b.ipv4, 8080));
    const rows = await node.cliJson<MetricsRow[]>('bpf', 'metrics');
    const bIngressFromA = rows.find(
      (r) => r.endpoint === b.id && r.direction === 'INGRESS' && r.remoteIdentity === a.identity && r.reason === 'FORWARDED',
    );
    const aEgressToB = rows.find(
      (r) => r.endpoint === a.id && r.direction === 'EGRESS' && r.remoteIdentity === b.identity && r.reason === 'FORWARDED',
    );
    assert.ok(bIngressFromA && bIngressFromA.packets > 0, `b saw no packets from identity ${a.identity}: ${JSON.stringify(rows)}`);
    assert.ok(aEgressToB && aEgressToB.packets > 0, `a sent no packets to identity ${b.identity}`);
  });

  it('leaves unused pod addresses unreachable inside the node', async () => {
    const r = await node.execNode(['ip', 'route', 'get', '10.211.0.200']);
    assert.notEqual(r.code, 0, 'route lookup for an unused pod address must fail');
    assert.match(r.stderr, /unreachable|No route/i);
  });

  it('drops packets whose source address is not the endpoint address', async () => {
    const spoofed = '10.211.0.99';
    await node.exec(a.netns, ['ip', 'address', 'add', `${spoofed}/32`, 'dev', 'eth0']);
    try {
      const r = await node.exec(a.netns, ['ping', '-c', '2', '-W', '1', '-I', spoofed, b.ipv4]);
      assert.notEqual(r.code, 0, 'a spoofed ping must not get a reply');
      const dropped = await eventually(async () => {
        const rows = await node.api.listMetrics();
        return rows.some((m) => m.endpoint === a.id && m.reason === 'INVALID_SOURCE_IP' && m.packets >= 2);
      });
      assert.ok(dropped, 'the drop is counted as INVALID_SOURCE_IP on the sending endpoint');
    } finally {
      await node.exec(a.netns, ['ip', 'address', 'del', `${spoofed}/32`, 'dev', 'eth0']);
    }
  });

  it('drops what is not IPv4, so IPv6 cannot go around policy or the source check', async () => {
    // Turn IPv6 back on inside a (the agent disables it) with addresses on both ends of its link.
    const ns = ['ip', 'netns', 'exec', a.netns];
    await node.exec(a.netns, ['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=0', 'net.ipv6.conf.eth0.disable_ipv6=0']);
    await node.execNode(['sysctl', '-qw', `net.ipv6.conf.${a.interface}.disable_ipv6=0`]);
    await node.execNode(['ip', '-6', 'address', 'add', 'fd00:211::1/64', 'dev', a.interface, 'nodad']);
    await node.exec(a.netns, ['ip', '-6', 'address', 'add', 'fd00:211::2/64', 'dev', 'eth0', 'nodad']);
    try {
      const r = await node.exec(a.netns, ['ping', '-6', '-c', '2', '-W', '1', 'fd00:211::1']);
      assert.notEqual(r.code, 0, 'IPv6 from the workload gets nowhere');
      const dropped = await eventually(async () => {
        const rows = await node.api.listMetrics();
        return rows.some((m) => m.endpoint === a.id && m.direction === 'EGRESS' && m.reason === 'UNSUPPORTED_L3_PROTOCOL');
      });
      assert.ok(dropped, 'counted as UNSUPPORTED_L3_PROTOCOL on the sending endpoint');
      const flows = await node.cli('observe', '--all', '-o', 'json', '--verdict', 'DROPPED');
      const ipv6 = flows.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { flow: { drop_reason_desc?: string; Summary?: string; IP?: unknown } });
      assert.ok(ipv6.some((f) => f.flow.drop_reason_desc === 'UNSUPPORTED_L3_PROTOCOL' && f.flow.Summary === 'IPv6' && !f.flow.IP), 'a DROPPED flow says IPv6');
    } finally {
      await run(ns[0]!, [...ns.slice(1), 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
      await node.execNode(['sysctl', '-qw', `net.ipv6.conf.${a.interface}.disable_ipv6=1`]);
    }
  });

  it('sweeps expired connection-tracking entries without disturbing traffic', async () => {
    const ct = node.pinnedMap('mb_ct', ctKey, ctValue);
    try {
      const clock = probeDatapathClock();
      // Entries of the tests before may expire at any moment (a slow run): only the probe's own
      // fresh entry must survive a sweep now.
      assert.ok(await node.probe(a.netns, 'udp', b.ipv4, 8080));
      const probeEntry = () => ct.entries().some(([k]) => k.protocol === 17 && [k.addr_a, k.addr_b].includes(b.ipv4) && [k.port_a, k.port_b].includes(8080));
      assert.ok(probeEntry(), 'the probe is tracked');
      sweepConntrack(ct, clock.nowNs());
      assert.ok(probeEntry(), 'a fresh connection is not idle');
      const dayLater = clock.nowNs() + 86_400n * 1_000_000_000n;
      assert.ok(sweepConntrack(ct, dayLater) > 0, 'a day later every entry is expired');
      assert.equal(ct.entries().length, 0);
    } finally {
      closeFd(ct.raw.fd);
    }
    assert.ok(await node.probe(a.netns, 'udp', b.ipv4, 8080), 'new connections are tracked again');
  });
});
