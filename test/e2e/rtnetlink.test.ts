/* The agent's link, address, route and neighbour changes go to the kernel as rtnetlink messages
 * (src/kernel/rtnetlink.ts), and its namespaces are made without `ip netns add`
 * (src/kernel/netns.ts), rather than through iproute2. The same ops applied both ways, each in a
 * fresh pair of namespaces, must leave the kernel in the same state as `ip` shows it; a failure
 * stops the batch where `ip -batch` would, with the kernel's reason. Needs root. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { after, describe, it } from 'node:test';
import { IprouteNetlink, type NetOp } from '../../src/kernel/netlink.js';
import { RtNetlink } from '../../src/kernel/rtnetlink.js';

const prefix = `mbrt${crypto.randomBytes(3).toString('hex')}`;
const made: string[] = [];

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8' });
}

function netns(name: string): string {
  ip('netns', 'add', name);
  made.push(name);
  return name;
}

/** What `ip` shows of a namespace, without what differs between any two namespaces (ifindexes, counters, ids) or
 * settles later by itself (operstate and carrier follow a link coming up asynchronously). */
function state(ns: string): unknown {
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.filter((x) => x !== 'NO-CARRIER' && x !== 'LOWER_UP' && x !== 'linkdown').map(strip); // carrier: settles later too
    if (v && typeof v === 'object') {
      return Object.fromEntries(
        Object.entries(v)
          .filter(([k]) => !['ifindex', 'link_index', 'link_netnsid', 'stats64', 'stats', 'inet6_addr_gen_mode', 'valid_life_time', 'preferred_life_time', 'used', 'confirmed', 'updated', 'refcnt', 'probes', 'link', 'operstate'].includes(k))
          .map(([k, x]) => [k, strip(x)]),
      );
    }
    return v;
  };
  const j = (...a: string[]) => strip(JSON.parse(ip('-n', ns, '-j', ...a) || '[]'));
  return { links: j('-d', 'link', 'show'), addrs: j('-4', 'address', 'show'), routes: j('-4', '-d', 'route', 'show', 'table', 'all'), neigh: j('-4', 'neigh', 'show', 'nud', 'permanent') };
}

after(() => {
  for (const ns of made) spawnQuiet('ip', ['netns', 'delete', ns]);
});

function spawnQuiet(cmd: string, args: string[]): void {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
  } catch {
    // already gone
  }
}

let n = 0;
/** Runs `steps` (each: ops for the node namespace or the workload's) with both implementations; returns both states. */
async function both(steps: (names: { node: string; work: string }) => { ops: NetOp[]; in: 'node' | 'work' }[]): Promise<[unknown, unknown]> {
  const out: unknown[] = [];
  for (const impl of [new IprouteNetlink(), new RtNetlink()]) {
    const i = n++;
    // The workload's namespace is made by the implementation under test (as an endpoint's is).
    const names = { node: netns(`${prefix}-n${i}`), work: `${prefix}-w${i}` };
    made.push(names.work);
    await impl.addNetns(names.work);
    for (const s of steps(names)) await impl.apply(s.ops, s.in === 'node' ? names.node : names.work);
    // The namespace names differ by design: compare with the node's own in place of each.
    out.push(JSON.parse(JSON.stringify([state(names.node), state(names.work)]).replaceAll(names.work, 'WORK').replaceAll(names.node, 'NODE')));
  }
  return out as [unknown, unknown];
}

const MAC_H = '02:00:00:00:00:01';
const MAC_W = '02:00:00:00:00:02';
const ROUTER = '10.77.0.1';

describe('rtnetlink changes equal iproute2 ones', () => {
  it('an endpoint plumbed: veth into the workload namespace, routes, neighbours, address, MTU, rename', async () => {
    const [viaIp, viaNetlink] = await both(({ work }) => [
      { in: 'node', ops: [{ op: 'up', name: 'lo' }, { op: 'address', dev: 'lo', cidr: `${ROUTER}/32` }, { op: 'route', dst: '10.77.0.0/24', unreachable: true }] },
      {
        in: 'node',
        ops: [
          { op: 'veth', name: 'lxcp1', mac: MAC_H, peer: 'eth0', peerMac: MAC_W, peerNetns: work, mtu: 1450 },
          { op: 'rename-link', name: 'lxcp1', newName: 'lxc7' },
          { op: 'up', name: 'lxc7' },
          { op: 'route', dst: '10.77.0.5/32', dev: 'lxc7', scope: 'link' },
          { op: 'neighbour', ip: '10.77.0.5', mac: MAC_W, dev: 'lxc7' },
          { op: 'set-link', name: 'lxc7', mtu: 1400, arp: false },
        ],
      },
      {
        in: 'work',
        ops: [
          { op: 'up', name: 'lo' },
          { op: 'up', name: 'eth0' },
          { op: 'address', dev: 'eth0', cidr: '10.77.0.5/32' },
          { op: 'route', dst: `${ROUTER}/32`, dev: 'eth0', scope: 'link' },
          { op: 'route', dst: 'default', via: ROUTER, dev: 'eth0' },
          { op: 'neighbour', ip: ROUTER, mac: MAC_H, dev: 'eth0' },
          { op: 'set-link', name: 'eth0', mtu: 1400, up: true },
        ],
      },
    ]);
    assert.deepEqual(viaNetlink, viaIp);
  });

  it('routes to other nodes: replaced in place, with source, MTU and protocol; deleted by protocol only', async () => {
    const [viaIp, viaNetlink] = await both(({ work }) => [
      {
        in: 'node',
        ops: [
          { op: 'up', name: 'lo' },
          { op: 'veth', name: 'under', mac: MAC_H, peer: 'peer', peerMac: MAC_W, peerNetns: work },
          { op: 'up', name: 'under' },
          { op: 'address', dev: 'under', cidr: '172.31.9.2/24' },
          { op: 'address', dev: 'lo', cidr: `${ROUTER}/32` },
          { op: 'route', dst: '10.78.1.0/24', dev: 'under', src: ROUTER, mtu: 1450, proto: 77 },
          { op: 'route', dst: '10.78.2.0/24', via: '172.31.9.3', proto: 77 },
          { op: 'route', dst: '10.78.2.0/24', via: '172.31.9.4', proto: 77 },
          { op: 'route', dst: '10.78.3.0/24', via: '172.31.9.5', proto: 77 },
          { op: 'delete-route', dst: '10.78.3.0/24', proto: 77 },
          { op: 'route', dst: '10.78.4.0/24', unreachable: true },
          { op: 'delete-route', dst: '10.78.4.0/24', unreachable: true },
        ],
      },
    ]);
    assert.deepEqual(viaNetlink, viaIp);
  });

  it('deletes links; a failure stops the batch with the kernel\'s reason', async () => {
    const nl = new RtNetlink();
    const node = netns(`${prefix}-f`);
    await nl.apply([{ op: 'veth', name: 'a1', mac: MAC_H, peer: 'b1', peerMac: MAC_W }, { op: 'delete-link', name: 'b1' }], node);
    assert.doesNotMatch(ip('-n', node, 'link', 'show'), /\ba1\b|\bb1\b/, 'deleting one end of a veth removes both');
    await assert.rejects(
      nl.apply(
        [
          { op: 'up', name: 'lo' },
          { op: 'route', dst: '10.79.0.0/24', via: '192.0.2.1' },
          { op: 'up', name: 'not-there' },
        ],
        node,
      ),
      /netlink -n \S+: route replace 10\.79\.0\.0\/24 via 192\.0\.2\.1: .*(Nexthop has invalid gateway|ENETUNREACH)/,
    );
    assert.match(ip('-n', node, 'link', 'show', 'lo'), /UP/, 'what came before the failure is applied');
    await assert.rejects(nl.apply([{ op: 'up', name: 'not-there' }], node), /Cannot find device "not-there"/);
    await assert.rejects(nl.apply([{ op: 'veth', name: 'lo', mac: MAC_H, peer: 'x', peerMac: MAC_W }], node), /EEXIST/);
  });

  it('names, and removes, a namespace as ip netns does: a namespace of its own, listed, and gone with its name', async () => {
    const nl = new RtNetlink();
    const name = `${prefix}-own`;
    made.push(name);
    const home = fs.statSync('/proc/thread-self/ns/net').ino;
    await nl.apply([{ op: 'add-netns', name }, { op: 'up', name: 'lo' }], name);
    assert.match(ip('netns', 'list'), new RegExp(`^${name}\\b`, 'm'));
    assert.match(ip('-n', name, 'link', 'show', 'lo'), /UP/);
    assert.equal(fs.statSync('/proc/thread-self/ns/net').ino, home, 'the thread is back in its own namespace');
    assert.notEqual(fs.statSync(`/run/netns/${name}`).ino, home);
    await assert.rejects(nl.addNetns(name), /EEXIST/);
    await nl.deleteNetns(name);
    assert.doesNotMatch(ip('netns', 'list'), new RegExp(`^${name}\\b`, 'm'));
    await nl.deleteNetns(name); // already gone: nothing to do
  });

  it('mixes with what only iproute2 does, in order (a VXLAN device made mid-batch, then brought up)', async () => {
    const nl = new RtNetlink();
    const node = netns(`${prefix}-m`);
    await nl.apply([{ op: 'up', name: 'lo' }, { op: 'vxlan', name: 'vx0', port: 8472, mtu: 1450 }, { op: 'up', name: 'vx0' }], node);
    assert.match(ip('-n', node, 'link', 'show', 'vx0'), /vx0.*UP/);
  });
});
