/* The node's side of the overlay: in tunnel mode one VXLAN device (`mb_vxlan`, collect_md: no
 * VNI, remote or FDB of its own; the programs give every packet its tunnel key), the overlay
 * programs on it, and the datapath told to encapsulate into it. In native mode none of that:
 * a device an earlier agent made in tunnel mode is removed.
 * Everything is idempotent and adopts what is there: a restarted agent keeps the device (and
 * its ifindex, which the programs and links refer to) when it is as wanted and only swaps the
 * programs in place, so traffic between nodes flows through a restart. A device that differs
 * where it matters (not VXLAN, not external, another port, learning) is made anew.
 * Pitfalls (measured with the overlay prototype): the device must not answer or send ARP (the
 * programs address every packet; `arp off`), and the endpoints' MTU must leave room for the
 * encapsulation (mtu.ts). */
import type { Logger } from 'pino';
import type { Datapath } from '../datapath/datapath.js';
import { DevicePrograms, OVERLAY_PROGRAMS } from '../datapath/device-programs.js';
import { ROUTING_MODE } from '../datapath/layouts.js';
import { disableIpv6 } from '../endpoint/plumbing.js';
import type { LinkDetails, Netlink } from '../kernel/netlink.js';
import { ifindexOf } from '../kernel/netns.js';

export const TUNNEL_DEVICE = 'mb_vxlan';

export interface TunnelOptions {
  /** UDP port of the VXLAN device, the same on every node. */
  port: number;
  /** The device's MTU: the underlay's less the encapsulation (mtu.ts). */
  mtu: number;
  /** Where the compiled objects are (overlay.o). */
  objectDir: string;
  /** Default TUNNEL_DEVICE. */
  device?: string;
}

export interface TunnelState {
  overlay: DevicePrograms;
  ifindex: number;
  /** The device was made now (it did not exist, or differed). */
  created: boolean;
  /** Both links were there for this device (a restart): the programs were swapped in place. */
  linksAdopted: boolean;
}

/** Whether an existing link is the tunnel device as wanted, apart from what `set-link` fixes in place. */
export function isWantedDevice(link: LinkDetails, port: number): boolean {
  return link.kind === 'vxlan' && link.vxlan?.external === true && link.vxlan.port === port && !link.vxlan.learning;
}

/**
 * Tunnel mode: the device, the overlay programs on it, and the datapath encapsulating into it.
 * The datapath is told last, so nothing is sent into a device without its programs.
 */
export async function enableTunnel(nl: Netlink, datapath: Datapath, opts: TunnelOptions, log: Logger): Promise<TunnelState> {
  const name = opts.device ?? TUNNEL_DEVICE;
  let link = await nl.link(name);
  if (link && !isWantedDevice(link, opts.port)) {
    log.warn({ device: name, kind: link.kind, vxlan: link.vxlan }, 'tunnel device differs from what this agent wants: made anew');
    await nl.apply([{ op: 'delete-link', name }]);
    link = undefined;
  }
  const created = !link;
  const ops = [
    ...(created ? [{ op: 'vxlan' as const, name, port: opts.port, mtu: opts.mtu }] : []),
    ...(created || link!.mtu !== opts.mtu || !link!.noarp || !link!.up ? [{ op: 'set-link' as const, name, mtu: opts.mtu, arp: false, up: true }] : []),
  ];
  await nl.apply(ops);
  await disableIpv6(name); // IPv4 only: no router solicitations or MLD into the overlay
  const ifindex = ifindexOf(name);
  if (!ifindex) throw new Error(`tunnel device ${name} vanished right after it was set up`);
  const overlay = DevicePrograms.load(datapath, opts.objectDir, OVERLAY_PROGRAMS);
  const linksAdopted = overlay.attach(ifindex);
  datapath.configureRouting({ routing_mode: ROUTING_MODE.TUNNEL, tunnel_ifindex: ifindex });
  return { overlay, ifindex, created, linksAdopted };
}

/**
 * Native mode: the datapath stops encapsulating first, then the overlay's links and device go
 * (left by an agent that ran in tunnel mode). Returns whether a device was removed.
 */
export async function disableTunnel(nl: Netlink, datapath: Datapath, device = TUNNEL_DEVICE): Promise<boolean> {
  datapath.configureRouting({ routing_mode: ROUTING_MODE.NATIVE, tunnel_ifindex: 0 });
  DevicePrograms.detach(datapath.bpffsDir, OVERLAY_PROGRAMS);
  const link = await nl.link(device);
  if (link?.kind !== 'vxlan') return false;
  await nl.apply([{ op: 'delete-link', name: device }]);
  return true;
}
