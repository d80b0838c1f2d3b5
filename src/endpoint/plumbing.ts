/* The network plumbing of one endpoint: its namespace, a veth pair (host side in the node
 * namespace, eth0 inside), its address, and routes both ways. Inside, the node's router address
 * is the gateway, resolved by a permanent neighbour entry so no ARP round trip delays the first
 * packet; outside, a /32 route per endpoint overrides the node's unreachable pod-CIDR route. */
import fs from 'node:fs';
import type { Netlink, NetOp } from '../kernel/netlink.js';
import { ifindexOf, netnsPath, renameNetns, withNetns } from '../kernel/netns.js';

export const WORKLOAD_IFNAME = 'eth0';

/**
 * The datapath carries IPv4 only (and drops the rest): no IPv6 chatter on an interface (or `all`)
 * of namespace `netns` (the agent's own when absent). The sysctl file is opened on this thread,
 * inside the namespace (a sysctl file belongs to the namespace that opened it), and written from
 * a pool thread: the kernel needs the RTNL lock for it and retries the write while another holds
 * it (a tcx attach anywhere on the machine holds it across an RCU grace period, about 10 ms).
 */
export async function disableIpv6(conf: string, netns?: string): Promise<void> {
  const file = `/proc/sys/net/ipv6/conf/${conf}/disable_ipv6`;
  const fd = netns ? withNetns(netnsPath(netns), () => fs.openSync(file, 'w')) : fs.openSync(file, 'w');
  try {
    await new Promise<void>((resolve, reject) => fs.write(fd, '1', (err) => (err ? reject(err) : resolve())));
  } finally {
    fs.closeSync(fd);
  }
}

/** Inside a workload namespace: loopback and eth0 up, the router as the gateway, resolved by a permanent neighbour entry. */
export function gatewayOps(routerIP: string, hostMac: string): NetOp[] {
  return [
    { op: 'up', name: 'lo' },
    { op: 'up', name: WORKLOAD_IFNAME },
    { op: 'route', dst: `${routerIP}/32`, dev: WORKLOAD_IFNAME, scope: 'link' },
    { op: 'route', dst: 'default', via: routerIP, dev: WORKLOAD_IFNAME },
    { op: 'neighbour', ip: routerIP, mac: hostMac, dev: WORKLOAD_IFNAME },
  ];
}

export interface Plumbing {
  /** The namespace playing the node; the caller's own when absent (the agent's case). */
  nodeNetns?: string;
  ipv4: string;
  netns: string;
  netnsOwned: boolean;
  /** The agent named the namespace (see Endpoint.netnsAttached): the name is removed with it. */
  netnsAttached?: boolean;
  interface: string;
  mac: string;
  hostMac: string;
  routerIP: string;
  /** MTU of both ends of the veth; the kernel's default (1500) when absent. In tunnel mode the
   * underlay's less the encapsulation, or large transfers stall (src/cluster/mtu.ts). */
  mtu?: number;
}

/**
 * Creates everything; returns the ifindex of the host-side interface. `onHostInterface` runs
 * (and is awaited) as soon as the host side exists: the agent attaches its programs there. For
 * a namespace created here nothing can run inside yet, so that overlaps with configuring the
 * inside; for a namespace that already exists the inside comes up only after it finished, so
 * no workload packet ever passes unprogrammed.
 */
export async function plumb(nl: Netlink, p: Plumbing, onHostInterface: (ifindex: number) => Promise<void>): Promise<number> {
  let createNetns = !nl.netnsExists(p.netns);
  if (createNetns && !p.netnsOwned) {
    throw new Error(`network namespace ${p.netns} does not exist: create it with 'ip netns add ${p.netns}'`);
  }
  if (createNetns && p.nodeNetns) {
    // `ip -n` runs in a private mount namespace, where `netns add` could not publish the name.
    await nl.addNetns(p.netns);
    createNetns = false;
  }
  await nl.apply(
    [
      ...(createNetns ? [{ op: 'add-netns' as const, name: p.netns }] : []),
      { op: 'veth', name: p.interface, mac: p.hostMac, peer: WORKLOAD_IFNAME, peerMac: p.mac, peerNetns: p.netns, ...(p.mtu ? { mtu: p.mtu } : {}) },
      { op: 'up', name: p.interface },
      { op: 'route', dst: `${p.ipv4}/32`, dev: p.interface, scope: 'link' },
      { op: 'neighbour', ip: p.ipv4, mac: p.mac, dev: p.interface },
    ],
    p.nodeNetns,
  );
  const ifindex = p.nodeNetns ? withNetns(netnsPath(p.nodeNetns), () => ifindexOf(p.interface)) : ifindexOf(p.interface);
  if (!ifindex) throw new Error(`interface ${p.interface} vanished right after it was created`);
  // No IPv6 on the host side, nor from a workload namespace the agent made.
  await Promise.all([disableIpv6(p.interface, p.nodeNetns), p.netnsOwned ? disableIpv6('all', p.netns) : undefined]);
  const inside = () =>
    nl.apply(
      [{ op: 'address', dev: WORKLOAD_IFNAME, cidr: `${p.ipv4}/32` }, ...gatewayOps(p.routerIP, p.hostMac)],
      p.netns,
    );
  if (p.netnsOwned) {
    await Promise.all([onHostInterface(ifindex), inside()]);
  } else {
    await onHostInterface(ifindex);
    await inside();
  }
  return ifindex;
}

/**
 * Finishes a prepared set (see pool.ts) for an endpoint: its namespace takes the endpoint's name,
 * its host side the endpoint's interface name; the address and the host route are all that is
 * left. Returns the ifindex of the host-side interface.
 */
export async function plumbPrewired(nl: Netlink, p: Plumbing, prewired: { netns: string; hostName: string; ifindex: number }): Promise<number> {
  renameNetns(prewired.netns, p.netns);
  await Promise.all([
    nl.apply(
      [
        { op: 'rename-link', name: prewired.hostName, newName: p.interface },
        { op: 'up', name: p.interface },
        { op: 'route', dst: `${p.ipv4}/32`, dev: p.interface, scope: 'link' },
        { op: 'neighbour', ip: p.ipv4, mac: p.mac, dev: p.interface },
      ],
      p.nodeNetns,
    ),
    nl.apply([{ op: 'address', dev: WORKLOAD_IFNAME, cidr: `${p.ipv4}/32` }], p.netns),
  ]);
  return prewired.ifindex;
}

/**
 * Gives both ends of an existing endpoint's veth the MTU `mtu` (an endpoint plumbed before the
 * node's routing mode or underlay changed). The inside first: a workload never sends more than
 * the host side takes.
 */
export async function setEndpointMtu(nl: Netlink, p: Pick<Plumbing, 'interface' | 'netns' | 'nodeNetns'>, mtu: number): Promise<void> {
  await nl.apply([{ op: 'set-link', name: WORKLOAD_IFNAME, mtu }], p.netns);
  await nl.apply([{ op: 'set-link', name: p.interface, mtu }], p.nodeNetns);
}

/** Removes the veth pair (both ends go together) and the namespace when the agent owns it. */
export async function unplumb(nl: Netlink, p: Pick<Plumbing, 'interface' | 'netns' | 'netnsOwned' | 'netnsAttached'>): Promise<void> {
  if (ifindexOf(p.interface)) await nl.apply([{ op: 'delete-link', name: p.interface }]);
  // Removing a name ends a namespace only when nothing else holds it (a process's stays).
  if (p.netnsOwned || p.netnsAttached) await nl.deleteNetns(p.netns);
}

export function randomMac(): string {
  const b = Buffer.alloc(6);
  for (let i = 0; i < 6; i++) b[i] = Math.floor(Math.random() * 256);
  b[0] = ((b[0] as number) & 0xfe) | 0x02; // unicast, locally administered
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}
