/* The overlay programs (bpf/overlay.o) on the node's VXLAN device: from_overlay at tcx ingress
 * (decapsulated traffic from other nodes: judged with the VNI's identity and delivered to local
 * endpoints), to_overlay at tcx egress (the node's own traffic into the overlay gets its tunnel
 * key). The object shares every map with the endpoint object: it is loaded with the same pin
 * directory and the same capacities, so nothing is created twice and no pinned map is ever
 * taken for another layout and replaced. Links are pinned like the endpoints' and adopted (the
 * program swapped in place) by a restarted agent, so traffic between nodes flows through it. */
import fs from 'node:fs';
import path from 'node:path';
import { BpfObject } from '../kernel/bpf-object.js';
import { ensureTcxLink, removePinnedLink } from '../kernel/bpf-link.js';
import type { Datapath } from './datapath.js';
import { OBJECT_MAPS } from './layouts.js';

export const OVERLAY_OBJECT = 'overlay.o';
const PROGRAMS = { fromOverlay: 'from_overlay', toOverlay: 'to_overlay' } as const;

/** Pins of the device's two links (under the agent's links directory, beside the endpoints'). */
export function overlayLinkPins(bpffsDir: string): { ingress: string; egress: string } {
  const dir = path.join(bpffsDir, 'links');
  return { ingress: path.join(dir, 'overlay-from-overlay'), egress: path.join(dir, 'overlay-to-overlay') };
}

export class OverlayDatapath {
  private constructor(
    private readonly obj: BpfObject,
    private readonly bpffsDir: string,
  ) {}

  /** Loads (or adopts) the overlay object on the maps `datapath` pinned. */
  static load(datapath: Datapath, objectDir: string): OverlayDatapath {
    const obj = BpfObject.load(path.join(objectDir, OVERLAY_OBJECT), {
      pinDir: path.join(datapath.bpffsDir, 'maps'),
      progPinDir: path.join(datapath.bpffsDir, 'progs'),
      // The one capacity the agent chooses: the same as the endpoint object's, or the pinned map would differ.
      maxEntries: { mb_policy: datapath.policyCapacity },
      maps: OBJECT_MAPS.overlay,
      programs: Object.values(PROGRAMS),
    });
    return new OverlayDatapath(obj, datapath.bpffsDir);
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
    const pins = overlayLinkPins(this.bpffsDir);
    const a = ensureTcxLink(pins.ingress, this.obj.programFd(PROGRAMS.fromOverlay), ifindex, 'ingress');
    const b = ensureTcxLink(pins.egress, this.obj.programFd(PROGRAMS.toOverlay), ifindex, 'egress');
    return a && b;
  }

  /** Removes both links (the programs leave the device; a device deleted takes them anyway). */
  static detach(bpffsDir: string): void {
    const pins = overlayLinkPins(bpffsDir);
    removePinnedLink(pins.ingress);
    removePinnedLink(pins.egress);
  }

  close(): void {
    this.obj.close();
  }
}
