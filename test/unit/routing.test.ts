/* Routes to the other nodes (src/cluster/routing.ts), the endpoint MTU (mtu.ts) and the tunnel
 * device check (overlay.ts): what the agent writes for each routing mode, that a heartbeat
 * writes nothing, that a restart keeps what is wanted and removes only its own stale routes,
 * and that a failed write is tried again. No kernel: a fake Netlink records the operations. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import type { LinkDetails, LinkState, Netlink, NetOp, RouteState } from '../../src/kernel/netlink.js';
import { NodeRouting, nodeRoute, routeChanges, ROUTE_PROTO, type LocalRouting } from '../../src/cluster/routing.js';
import { endpointMtu, underlayMtu, VXLAN_OVERHEAD } from '../../src/cluster/mtu.js';
import { isWantedDevice } from '../../src/cluster/overlay.js';

const log = pino({ level: 'silent' });

class FakeNetlink implements Netlink {
  applied: NetOp[][] = [];
  routeTable: RouteState[] = [];
  linkTable: LinkState[] = [];
  addressTable: { dev: string; address: string; prefixlen: number }[] = [];
  /** Applying a batch with an op for this prefix fails (as iproute2 stops at the first error). */
  failFor?: string;

  async apply(ops: NetOp[]): Promise<void> {
    if (ops.some((o) => o.op === 'route' && o.dst === this.failFor)) throw new Error('ip: Nexthop has invalid gateway');
    this.applied.push(ops);
    for (const op of ops) {
      if (op.op === 'route') this.routeTable = [...this.routeTable.filter((r) => r.dst !== op.dst), { dst: op.dst, ...(op.dev ? { dev: op.dev } : {}), ...(op.via ? { via: op.via } : {}) }];
      if (op.op === 'delete-route') this.routeTable = this.routeTable.filter((r) => r.dst !== op.dst);
    }
  }
  async links(): Promise<LinkState[]> {
    return this.linkTable;
  }
  async addresses(): Promise<{ dev: string; address: string; prefixlen: number }[]> {
    return this.addressTable;
  }
  async link(): Promise<LinkDetails | undefined> {
    return undefined;
  }
  async routes(proto: number): Promise<RouteState[]> {
    assert.equal(proto, ROUTE_PROTO);
    return this.routeTable;
  }
  async addNetns(): Promise<void> {}
  async deleteNetns(): Promise<void> {}
  netnsExists(): boolean {
    return false;
  }
}

const tunnel: LocalRouting = { nodeName: 'n0', mode: 'tunnel', routerIp: '10.210.0.1', device: 'mb_vxlan', mtu: 1450 };
const native: LocalRouting = { ...tunnel, mode: 'native' };
const n1 = { name: 'n1', ip: '172.30.0.11', podCIDR: '10.210.1.0/24' };
const n2 = { name: 'n2', ip: '172.30.0.12', podCIDR: '10.210.2.0/24' };

describe('routes to the other nodes', () => {
  it('tunnel mode: the pod CIDR into the VXLAN device, from the router address, at the endpoint MTU', () => {
    assert.deepEqual(nodeRoute(tunnel, n1), { op: 'route', dst: '10.210.1.0/24', dev: 'mb_vxlan', src: '10.210.0.1', mtu: 1450, proto: ROUTE_PROTO });
  });

  it('native mode: the pod CIDR via the node underlay address, no device', () => {
    assert.deepEqual(nodeRoute(native, n1), { op: 'route', dst: '10.210.1.0/24', via: '172.30.0.11', proto: ROUTE_PROTO });
  });

  it('none to this node itself, nor for a pod CIDR that is not one', () => {
    assert.equal(nodeRoute(tunnel, { ...n1, name: 'n0' }), undefined);
    assert.equal(nodeRoute(tunnel, { ...n1, podCIDR: 'ten/8' }), undefined);
    assert.equal(nodeRoute(native, { ...n1, podCIDR: '10.210.1.7/24' }), undefined);
  });

  it('a sync removes only prefixes no longer wanted (a /32 as ip prints it too) and writes the rest', () => {
    const desired = [nodeRoute(native, n1)!];
    assert.deepEqual(routeChanges(['10.210.1.0/24', '10.210.9.0/24', '10.9.9.9'], desired), [
      { op: 'delete-route', dst: '10.210.9.0/24', proto: ROUTE_PROTO },
      { op: 'delete-route', dst: '10.9.9.9/32', proto: ROUTE_PROTO },
      ...desired,
    ]);
  });

  it('writes a route once: heartbeats of an unchanged node write nothing', async () => {
    const nl = new FakeNetlink();
    const r = new NodeRouting(nl, tunnel, log);
    await r.nodeChanged(n1);
    await r.nodeChanged(n1);
    await r.nodeChanged({ ...n1 });
    assert.equal(nl.applied.length, 1);
    assert.deepEqual([...r.routes().keys()], ['n1']);
  });

  it('follows a node whose pod CIDR or address changed, and removes the route of a node that left', async () => {
    const nl = new FakeNetlink();
    const r = new NodeRouting(nl, native, log);
    await r.nodeChanged(n1);
    await r.nodeChanged({ ...n1, ip: '172.30.0.21' });
    assert.deepEqual(nl.routeTable, [{ dst: '10.210.1.0/24', via: '172.30.0.21' }]);
    await r.nodeChanged({ ...n1, ip: '172.30.0.21', podCIDR: '10.210.7.0/24' });
    assert.deepEqual(nl.routeTable, [{ dst: '10.210.7.0/24', via: '172.30.0.21' }]);
    await r.nodeRemoved('n1');
    await r.nodeRemoved('n1'); // already gone: nothing to do
    assert.deepEqual(nl.routeTable, []);
    assert.equal(r.routes().size, 0);
  });

  it('after a restart keeps the wanted routes, removes those of nodes gone meanwhile, and switches mode in place', async () => {
    const nl = new FakeNetlink();
    nl.routeTable = [
      { dst: '10.210.1.0/24', via: '172.30.0.11' },
      { dst: '10.210.5.0/24', via: '172.30.0.15' },
    ];
    const r = new NodeRouting(nl, tunnel, log);
    await r.sync([{ name: 'n0', ip: '172.30.0.10', podCIDR: '10.210.0.0/24' }, n1, n2]);
    assert.deepEqual(nl.routeTable, [
      { dst: '10.210.1.0/24', dev: 'mb_vxlan' },
      { dst: '10.210.2.0/24', dev: 'mb_vxlan' },
    ]);
    assert.equal(nl.applied.length, 1, 'one batch');
    assert.deepEqual([...r.routes().keys()].sort(), ['n1', 'n2']);
  });

  it('a route the kernel refuses keeps the others, and is tried again at the node\'s next heartbeat', async () => {
    const nl = new FakeNetlink();
    nl.failFor = '10.210.1.0/24';
    const r = new NodeRouting(nl, native, log);
    await r.sync([n1, n2]);
    assert.deepEqual(nl.routeTable, [{ dst: '10.210.2.0/24', via: '172.30.0.12' }]);
    assert.deepEqual([...r.routes().keys()], ['n2']);
    nl.failFor = undefined;
    await r.nodeChanged(n1);
    assert.deepEqual([...r.routes().keys()].sort(), ['n1', 'n2']);
  });

  it('writes the nodes told together in one batch, removals first, and those told meanwhile in the next', async () => {
    const nl = new FakeNetlink();
    const r = new NodeRouting(nl, native, log);
    const many = Array.from({ length: 100 }, (_, i) => ({ name: `s${i}`, ip: `172.30.1.${i + 1}`, podCIDR: `10.100.${i}.0/24` }));
    for (const n of many) void r.nodeChanged(n);
    await r.settled();
    assert.equal(nl.applied.length, 1, 'one batch for 100 nodes');
    assert.equal(nl.routeTable.length, 100);
    // s0 leaves and s1 takes its pod CIDR in the same turn; a change told while that batch is written comes after it.
    void r.nodeChanged({ ...many[1]!, podCIDR: many[0]!.podCIDR });
    const first = r.nodeRemoved('s0');
    void r.nodeChanged({ ...many[2]!, ip: '172.30.9.9' }); // still the same batch
    await Promise.resolve();
    const later = r.nodeChanged({ ...many[3]!, ip: '172.30.9.8' });
    await first;
    assert.deepEqual(nl.applied[1], [
      { op: 'delete-route', dst: '10.100.1.0/24', proto: ROUTE_PROTO },
      { op: 'delete-route', dst: '10.100.0.0/24', proto: ROUTE_PROTO },
      { op: 'route', dst: '10.100.0.0/24', via: '172.30.1.2', proto: ROUTE_PROTO },
      { op: 'route', dst: '10.100.2.0/24', via: '172.30.9.9', proto: ROUTE_PROTO },
    ]);
    await later;
    assert.equal(nl.applied.length, 3);
    assert.deepEqual(nl.routeTable.find((x) => x.dst === '10.100.0.0/24'), { dst: '10.100.0.0/24', via: '172.30.1.2' });
    assert.deepEqual(r.routes().get('s1')?.dst, '10.100.0.0/24');
    assert.equal(r.routes().has('s0'), false);
  });

  it('applies changes in the order they were told', async () => {
    const nl = new FakeNetlink();
    const r = new NodeRouting(nl, native, log);
    void r.nodeChanged(n1);
    void r.nodeRemoved('n1');
    void r.nodeChanged(n2);
    await r.settled();
    assert.deepEqual(nl.routeTable, [{ dst: '10.210.2.0/24', via: '172.30.0.12' }]);
  });
});

describe('endpoint MTU', () => {
  it('leaves room for VXLAN in tunnel mode, and is the underlay\'s in native mode', () => {
    assert.equal(VXLAN_OVERHEAD, 20 + 8 + 8 + 14);
    assert.equal(endpointMtu('tunnel', 1500), 1450);
    assert.equal(endpointMtu('tunnel', 9000), 8950);
    assert.equal(endpointMtu('native', 1500), 1500);
  });

  it('reads the underlay MTU from the interface holding the node address', async () => {
    const nl = new FakeNetlink();
    nl.addressTable = [{ dev: 'eth1', address: '172.30.0.10', prefixlen: 24 }];
    nl.linkTable = [
      { name: 'eth0', ifindex: 2, mac: '', up: true, mtu: 1500 },
      { name: 'eth1', ifindex: 3, mac: '', up: true, mtu: 9000 },
    ];
    assert.equal(await underlayMtu(nl, '172.30.0.10'), 9000);
    await assert.rejects(underlayMtu(nl, '172.30.0.99'), /no interface of this node holds its address 172\.30\.0\.99/);
  });
});

describe('tunnel device', () => {
  it('adopts an external, non-learning VXLAN device on the port; anything else is made anew', () => {
    const dev: LinkDetails = { name: 'mb_vxlan', ifindex: 6, mac: '', up: true, mtu: 1450, kind: 'vxlan', noarp: true, vxlan: { port: 8472, external: true, learning: false } };
    assert.ok(isWantedDevice(dev, 8472));
    assert.ok(isWantedDevice({ ...dev, mtu: 1500, up: false, noarp: false }, 8472), 'MTU, ARP and state are set in place');
    assert.ok(!isWantedDevice(dev, 4789));
    assert.ok(!isWantedDevice({ ...dev, vxlan: { port: 8472, external: false, learning: false } }, 8472));
    assert.ok(!isWantedDevice({ ...dev, vxlan: { port: 8472, external: true, learning: true } }, 8472));
    assert.ok(!isWantedDevice({ ...dev, kind: 'dummy', vxlan: undefined }, 8472));
  });
});
