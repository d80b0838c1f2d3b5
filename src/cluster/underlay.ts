/* The interface holding the node's underlay address, for two jobs: BPF masquerading (traffic
 * leaving the cluster takes the node's address, by the programs of bpf/netdev.c on it), and in
 * native routing the device that endpoints' packets to other nodes' endpoints are sent out of
 * by hand (from_endpoint, around the sending node's routing stack; no program on the device).
 * Like the overlay's, the masquerading links are adopted by a restarted agent and the NAT table
 * is a pinned map, so connections to the outside survive a restart. Turned off, the datapath
 * stops using the device first, then the programs leave it. */
import type { Logger } from 'pino';
import type { Datapath } from '../datapath/datapath.js';
import { DevicePrograms, NETDEV_PROGRAMS } from '../datapath/device-programs.js';
import type { Netlink } from '../kernel/netlink.js';
import { underlayDevice } from './node-ip.js';

export interface UnderlayJobs {
  masquerade: boolean;
  /** Native routing: send to other nodes by hand. */
  nativeRouting: boolean;
}

export interface UnderlayState {
  device: string;
  /** The masquerading programs, and the address endpoints' traffic leaves the cluster with. */
  masquerade?: { programs: DevicePrograms; address: string; linksAdopted: boolean };
}

/** The programs on the underlay device first (when masquerading), then the datapath told what to use it for. */
export async function enableUnderlay(nl: Netlink, datapath: Datapath, nodeIp: string, objectDir: string, jobs: UnderlayJobs, log: Logger): Promise<UnderlayState> {
  const device = await underlayDevice(nl, nodeIp);
  let masquerade: UnderlayState['masquerade'];
  if (jobs.masquerade) {
    const programs = DevicePrograms.load(datapath, objectDir, NETDEV_PROGRAMS);
    masquerade = { programs, address: nodeIp, linksAdopted: programs.attach(device.ifindex) };
    log.info({ device: device.name, address: nodeIp, linksAdopted: masquerade.linksAdopted }, 'BPF masquerading: traffic leaving the cluster takes the node address');
  }
  datapath.configureRouting({ snat_ipv4: masquerade ? nodeIp : '0.0.0.0', underlay_ifindex: jobs.nativeRouting ? device.ifindex : 0 });
  if (!masquerade) DevicePrograms.detach(datapath.bpffsDir, NETDEV_PROGRAMS);
  if (jobs.nativeRouting) log.info({ device: device.name }, 'native routing: endpoints\' traffic to other nodes is sent out of the underlay device in eBPF');
  return { device: device.name, ...(masquerade ? { masquerade } : {}) };
}

export function disableUnderlay(datapath: Datapath): void {
  datapath.configureRouting({ snat_ipv4: '0.0.0.0', underlay_ifindex: 0 });
  DevicePrograms.detach(datapath.bpffsDir, NETDEV_PROGRAMS);
}
