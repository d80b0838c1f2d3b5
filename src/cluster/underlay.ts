/* The programs on the interface holding the node's underlay address (bpf/netdev.c), for two
 * jobs: BPF masquerading (traffic leaving the cluster takes the node's address), and in native
 * routing, forwarding between nodes by hand (endpoints' packets to other nodes' endpoints go
 * straight out of this device; theirs to local endpoints come straight in, around the node's
 * routing stack, as the overlay programs do in tunnel mode). Like the overlay's, the links are
 * adopted by a restarted agent and the NAT table is a pinned map, so connections survive a
 * restart. Turned off, the datapath stops using the device first, then the programs leave it. */
import type { Logger } from 'pino';
import type { Datapath } from '../datapath/datapath.js';
import { DevicePrograms, NETDEV_PROGRAMS } from '../datapath/device-programs.js';
import type { Netlink } from '../kernel/netlink.js';
import { underlayDevice } from './node-ip.js';

export interface UnderlayJobs {
  masquerade: boolean;
  /** Native routing: forward between nodes by hand. */
  nativeRouting: boolean;
}

export interface UnderlayState extends UnderlayJobs {
  programs: DevicePrograms;
  device: string;
  /** The node address: the one endpoints' traffic leaves the cluster with when masquerading. */
  address: string;
  linksAdopted: boolean;
}

/** The programs on the underlay device first, then the datapath told what to use them for. */
export async function enableUnderlay(nl: Netlink, datapath: Datapath, nodeIp: string, objectDir: string, jobs: UnderlayJobs, log: Logger): Promise<UnderlayState> {
  const device = await underlayDevice(nl, nodeIp);
  const programs = DevicePrograms.load(datapath, objectDir, NETDEV_PROGRAMS);
  const linksAdopted = programs.attach(device.ifindex);
  datapath.configureRouting({ snat_ipv4: jobs.masquerade ? nodeIp : '0.0.0.0', underlay_ifindex: jobs.nativeRouting ? device.ifindex : 0 });
  if (jobs.masquerade) log.info({ device: device.name, address: nodeIp, linksAdopted }, 'BPF masquerading: traffic leaving the cluster takes the node address');
  if (jobs.nativeRouting) log.info({ device: device.name, linksAdopted }, 'native routing: traffic between nodes is forwarded through the underlay device in eBPF');
  return { ...jobs, programs, device: device.name, address: nodeIp, linksAdopted };
}

export function disableUnderlay(datapath: Datapath): void {
  datapath.configureRouting({ snat_ipv4: '0.0.0.0', underlay_ifindex: 0 });
  DevicePrograms.detach(datapath.bpffsDir, NETDEV_PROGRAMS);
}
