/* Endpoint MTU. In tunnel mode every packet between nodes grows by the encapsulation, so the
 * endpoints' interfaces (both ends of the veth) and the routes into the overlay are that much
 * smaller than the underlay: a full-sized TCP segment that no longer fits would leave as
 * outer fragments, or be dropped, and large transfers stall (measured with the overlay
 * prototype). In native mode packets leave as they are: the underlay's MTU. */
import type { Netlink } from '../kernel/netlink.js';
import { underlayDevice } from './node-ip.js';
import type { RoutingMode } from './routing-mode.js';

/** What VXLAN adds to a packet: outer IPv4 (20), UDP (8), VXLAN (8), inner Ethernet (14). */
export const VXLAN_OVERHEAD = 50;

/** The MTU of the interface holding the node's underlay address. */
export async function underlayMtu(nl: Netlink, nodeIp: string): Promise<number> {
  return (await underlayDevice(nl, nodeIp)).mtu;
}

/** The MTU of endpoints' interfaces and of the routes into the overlay. */
export function endpointMtu(mode: RoutingMode, underlay: number): number {
  return mode === 'tunnel' ? underlay - VXLAN_OVERHEAD : underlay;
}
