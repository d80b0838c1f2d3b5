/* The node's underlay address: where the other nodes reach it (the tunnel endpoint of its pods,
 * the next hop of routes to its pod CIDR). Given by --node-ip, or the first IPv4 address of an
 * interface other than loopback, as Cilium detects it. A standalone agent needs none. */
import { StartupError } from '../errors.js';
import type { LinkState, Netlink } from '../kernel/netlink.js';
import { canonicalIpv4 } from '../net/ipv4.js';

/** `required`: in a cluster a node needs one; on its own an agent shows what it has ('' for none). */
export async function nodeIp(nl: Netlink, given: string | undefined, required: boolean): Promise<string> {
  const candidates = (await nl.addresses()).filter((a) => a.dev !== 'lo' && !a.address.startsWith('127.'));
  if (given !== undefined) {
    let ip: string;
    try {
      ip = canonicalIpv4(given);
    } catch {
      throw new StartupError(`--node-ip ${given}: give an IPv4 address of this node, e.g. 192.168.1.10`);
    }
    if (!candidates.some((a) => a.address === ip)) {
      const have = candidates.map((a) => `${a.address} (${a.dev})`).join(', ') || 'none';
      throw new StartupError(`--node-ip ${ip} is not an address of this node (its addresses: ${have}): give one of them`);
    }
    return ip;
  }
  const first = candidates[0];
  if (!first && !required) return '';
  if (!first) throw new StartupError('this node has no IPv4 address besides loopback for the other nodes to reach it: give one with --node-ip');
  return first.address;
}

/** The interface holding the node's underlay address (its MTU bounds the endpoints'; masquerading runs on it). */
export async function underlayDevice(nl: Netlink, nodeIp: string): Promise<LinkState> {
  const dev = (await nl.addresses()).find((a) => a.address === nodeIp)?.dev;
  const link = dev === undefined ? undefined : (await nl.links()).find((l) => l.name === dev);
  if (!link) throw new StartupError(`no interface of this node holds its address ${nodeIp}: give the underlay address with --node-ip`);
  return link;
}
