/* Endpoint plumbing made ready before it is needed. Attaching a program with tcx waits for an
 * RCU grace period (about 10 ms here, twice per endpoint), and moving an interface between
 * namespaces waits for another; together they would dominate the time to add an endpoint. So the
 * agent keeps a few complete sets ready: a namespace (`<node>.pool<N>`, a name no endpoint can
 * have) whose eth0 is up with its route and neighbour entry for the router, joined by a veth to
 * `lxcp<N>` in the node namespace with both endpoint programs attached (pinned as pool links).
 * Adding an endpoint in a namespace of its own takes a set: the namespace gets the endpoint's
 * name, the host side becomes lxc<ID>, the pins become the endpoint's, and only the address and
 * the host route are left to configure. Sets left by a crash are removed at restore. */
import type { Logger } from 'pino';
import type { Datapath } from '../datapath/datapath.js';
import type { Netlink } from '../kernel/netlink.js';
import { ifindexOf } from '../kernel/netns.js';
import { disableIpv6, gatewayOps, randomMac, WORKLOAD_IFNAME } from './plumbing.js';

export interface Prewired {
  slot: number;
  netns: string;
  /** Host side, in the node namespace, while it waits: lxcp<slot>. */
  hostName: string;
  ifindex: number;
  hostMac: string;
  mac: string;
}

/** Quiet time after an endpoint add before the pool prepares more (an add burst runs undisturbed). */
const REFILL_AFTER_MS = 25;
const MAX_FAILURES = 3;

export const poolNetnsPattern = (nodeName: string) => new RegExp(`^${nodeName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.pool\\d+$`);

export class InterfacePool {
  private readonly ready: Prewired[] = [];
  private filling = false;
  /** Failures in a row; after a few the pool stops trying and endpoints are plumbed directly. */
  private failures = 0;
  private nextSlot = 1;

  constructor(
    private readonly nl: Netlink,
    private readonly datapath: Datapath,
    private readonly nodeName: string,
    private readonly routerIP: string,
    readonly size: number,
    private readonly log: Logger,
    /** MTU of the prepared veths (see Plumbing.mtu). */
    private readonly mtu?: number,
  ) {}

  private refill?: NodeJS.Timeout;

  /** A prepared set, if one is ready. The pool refills once adds pause, so it does not compete with them. */
  take(): Prewired | undefined {
    const p = this.ready.shift();
    clearTimeout(this.refill);
    this.refill = setTimeout(() => this.fill(), REFILL_AFTER_MS);
    this.refill.unref();
    return p;
  }

  get readyCount(): number {
    return this.ready.length;
  }

  /** Prepares sets until the pool is full; one at a time, in the background. */
  fill(): void {
    if (this.filling || this.failures >= MAX_FAILURES || this.ready.length >= this.size) return;
    this.filling = true;
    void this.prepare()
      .then((p) => {
        this.ready.push(p);
        this.failures = 0;
      })
      .catch((err: Error) => {
        // e.g. a name an earlier agent's set still holds while the kernel tears it down: the
        // next try uses the next slot.
        if (++this.failures >= MAX_FAILURES) this.log.warn({ err: err.message }, 'could not prepare pooled endpoint plumbing; endpoints are plumbed directly');
      })
      .finally(() => {
        this.filling = false;
        this.fill();
      });
  }

  private async prepare(): Promise<Prewired> {
    const slot = this.nextSlot++;
    const p: Prewired = { slot, netns: `${this.nodeName}.pool${slot}`, hostName: `lxcp${slot}`, ifindex: 0, hostMac: randomMac(), mac: randomMac() };
    await this.nl.addNetns(p.netns);
    try {
      await this.nl.apply([
        { op: 'veth', name: p.hostName, mac: p.hostMac, peer: WORKLOAD_IFNAME, peerMac: p.mac, peerNetns: p.netns, ...(this.mtu ? { mtu: this.mtu } : {}) },
      ]);
      p.ifindex = ifindexOf(p.hostName);
      if (!p.ifindex) throw new Error(`${p.hostName} vanished right after it was created`);
      await Promise.all([disableIpv6(p.hostName), disableIpv6('all', p.netns)]);
      await Promise.all([this.datapath.attachPooled(slot, p.ifindex), this.nl.apply(gatewayOps(this.routerIP, p.hostMac), p.netns)]);
      return p;
    } catch (err) {
      await this.discard(p);
      throw err;
    }
  }

  private async discard(p: Prewired): Promise<void> {
    this.datapath.removePooledLinks(p.slot);
    await this.nl.apply([{ op: 'delete-link', name: p.hostName }]).catch(() => undefined);
    await this.nl.deleteNetns(p.netns).catch(() => undefined);
  }
}
