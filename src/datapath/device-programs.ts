/* A pair of programs on one device of the node, at its tcx ingress and egress, from an object
 * that shares every map with the endpoint object: it is loaded with the same pin directory and
 * the same capacities, so nothing is created twice and no pinned map is ever taken for another
 * layout and replaced. Links are pinned beside the endpoints' and adopted (the program swapped
 * in place) by a restarted agent, so traffic through the device flows through a restart.
 * Two such pairs exist: the overlay programs (bpf/overlay.c) on the VXLAN device, and the
 * masquerading programs (bpf/netdev.c) on the underlay device. */
import fs from 'node:fs';
import path from 'node:path';
import { BpfObject } from '../kernel/bpf-object.js';
import { ensureTcxLink, removePinnedLink } from '../kernel/bpf-link.js';
import type { Datapath } from './datapath.js';
import { OBJECT_MAPS } from './layouts.js';

export interface DeviceProgramsSpec {
  /** The object file, in the agent's object directory. */
  object: string;
  ingress: string;
  egress: string;
  maps: readonly string[];
}

export const OVERLAY_PROGRAMS: DeviceProgramsSpec = { object: 'overlay.o', ingress: 'from_overlay', egress: 'to_overlay', maps: OBJECT_MAPS.overlay };
export const NETDEV_PROGRAMS: DeviceProgramsSpec = { object: 'netdev.o', ingress: 'from_netdev', egress: 'to_netdev', maps: OBJECT_MAPS.netdev };

/** Pins of the device's two links (under the agent's links directory, beside the endpoints'). */
export function deviceLinkPins(bpffsDir: string, spec: DeviceProgramsSpec): { ingress: string; egress: string } {
  const dir = path.join(bpffsDir, 'links');
  const pin = (program: string) => path.join(dir, `${path.basename(spec.object, '.o')}-${program.replaceAll('_', '-')}`);
  return { ingress: pin(spec.ingress), egress: pin(spec.egress) };
}

export class DevicePrograms {
  private constructor(
    private readonly obj: BpfObject,
    private readonly bpffsDir: string,
    private readonly spec: DeviceProgramsSpec,
  ) {}

  /** Loads (or adopts) the object on the maps `datapath` pinned. */
  static load(datapath: Datapath, objectDir: string, spec: DeviceProgramsSpec): DevicePrograms {
    const obj = BpfObject.load(path.join(objectDir, spec.object), {
      pinDir: path.join(datapath.bpffsDir, 'maps'),
      progPinDir: path.join(datapath.bpffsDir, 'progs'),
      // The one capacity the agent chooses: the same as the endpoint object's, or the pinned map would differ.
      maxEntries: { mb_policy: datapath.policyCapacity },
      maps: spec.maps,
      programs: [spec.ingress, spec.egress],
    });
    return new DevicePrograms(obj, datapath.bpffsDir, spec);
  }

  get objectVersion(): string {
    return this.obj.version;
  }

  get programsAdopted(): boolean {
    return this.obj.programsAdopted;
  }

  /**
   * Attaches both programs to the device `ifindex`, adopting links an earlier agent pinned for
   * it (the programs swapped in place); returns whether both links existed.
   */
  attach(ifindex: number): boolean {
    fs.mkdirSync(path.join(this.bpffsDir, 'links'), { recursive: true });
    const pins = deviceLinkPins(this.bpffsDir, this.spec);
    const a = ensureTcxLink(pins.ingress, this.obj.programFd(this.spec.ingress), ifindex, 'ingress');
    const b = ensureTcxLink(pins.egress, this.obj.programFd(this.spec.egress), ifindex, 'egress');
    return a && b;
  }

  /** Removes both links (the programs leave the device; a device deleted takes them anyway). */
  static detach(bpffsDir: string, spec: DeviceProgramsSpec): void {
    const pins = deviceLinkPins(bpffsDir, spec);
    removePinnedLink(pins.ingress);
    removePinnedLink(pins.egress);
  }

  close(): void {
    this.obj.close();
  }
}
