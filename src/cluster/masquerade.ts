/* BPF masquerading (bpf/netdev.c, bpf/include/snat.h): the masquerading programs on the
 * interface holding the node's underlay address, and the datapath told which address endpoints'
 * traffic leaving the cluster takes. Like the overlay's, the links are adopted by a restarted
 * agent and the NAT table is a pinned map, so connections to the outside survive a restart.
 * Turned off, the datapath stops translating first, then the programs leave the device. */
import type { Logger } from 'pino';
import type { Datapath } from '../datapath/datapath.js';
import { DevicePrograms, NETDEV_PROGRAMS } from '../datapath/device-programs.js';
import type { Netlink } from '../kernel/netlink.js';
import { underlayDevice } from './node-ip.js';

export interface MasqueradeState {
  programs: DevicePrograms;
  device: string;
  /** The node address endpoints' traffic leaves with. */
  address: string;
  linksAdopted: boolean;
}

/** The programs on the underlay device first, then the datapath translating to `nodeIp`. */
export async function enableMasquerade(nl: Netlink, datapath: Datapath, nodeIp: string, objectDir: string, log: Logger): Promise<MasqueradeState> {
  const device = await underlayDevice(nl, nodeIp);
  const programs = DevicePrograms.load(datapath, objectDir, NETDEV_PROGRAMS);
  const linksAdopted = programs.attach(device.ifindex);
  datapath.configureRouting({ snat_ipv4: nodeIp });
  log.info({ device: device.name, address: nodeIp, linksAdopted }, 'BPF masquerading: traffic leaving the cluster takes the node address');
  return { programs, device: device.name, address: nodeIp, linksAdopted };
}

export function disableMasquerade(datapath: Datapath): void {
  datapath.configureRouting({ snat_ipv4: '0.0.0.0' });
  DevicePrograms.detach(datapath.bpffsDir, NETDEV_PROGRAMS);
}
