/* Routes to the other nodes' pod CIDRs, one per node, following the node registry:
 *   tunnel: `<podCIDR> dev mb_vxlan src <router> mtu <endpoint MTU>`: the node's own traffic to
 *     remote pods enters the overlay (to_overlay gives it a tunnel key; endpoints' traffic is
 *     encapsulated before it reaches the stack and needs no route). The router address as the
 *     source keeps replies inside the pod CIDRs, which the overlay carries;
 *   native: `<podCIDR> via <node ip>`: packets travel unencapsulated over the underlay, which
 *     must be one L2 segment or route the pod CIDRs itself.
 * Every route carries protocol ROUTE_PROTO, so the agent can tell its own routes from anybody
 * else's: a restarted agent lists them, keeps what is still wanted and removes what is not (a
 * node that left while it was away), and never touches a route it did not make.
 * The registry repeats a node at every heartbeat (10 s): only a route that changed is written,
 * and one whose write failed (e.g. a native next hop not reachable yet) is tried again then.
 * Changes told while a write runs are written together in one batch (a cluster of 100 nodes
 * appearing at once is one `ip -batch`, not 100 processes: each fork of the agent blocks its
 * event loop for about 10 ms here, and 100 of them in a row held up the ipcache for seconds). */
import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';
import type { NetOp, Netlink } from '../kernel/netlink.js';
import { formatCidr, parseCidr } from '../net/ipv4.js';
import type { ClusterNode } from './node-registry.js';
import type { RoutingMode } from './routing-mode.js';

/** Protocol number of the agent's routes (`ip route show proto 77`): unassigned in iproute2's rt_protos. */
export const ROUTE_PROTO = 77;

export type RouteOp = Extract<NetOp, { op: 'route' }>;

export interface LocalRouting {
  /** This node's name: its own entry in the registry gets no route. */
  nodeName: string;
  mode: RoutingMode;
  /** This node's router address: the source of its own traffic into the overlay. */
  routerIp: string;
  /** The tunnel device (tunnel mode). */
  device: string;
  /** MTU of routes into the overlay (tunnel mode): the endpoints' MTU. */
  mtu: number;
}

/** The route to `node`'s pod CIDR, or undefined for this node itself and for a node without a usable CIDR. */
export function nodeRoute(local: LocalRouting, node: Pick<ClusterNode, 'name' | 'ip' | 'podCIDR'>): RouteOp | undefined {
  if (node.name === local.nodeName) return undefined;
  let dst: string;
  try {
    dst = formatCidr(parseCidr(node.podCIDR));
  } catch {
    return undefined;
  }
  return local.mode === 'tunnel'
    ? { op: 'route', dst, dev: local.device, src: local.routerIp, mtu: local.mtu, proto: ROUTE_PROTO }
    : { op: 'route', dst, via: node.ip, proto: ROUTE_PROTO };
}

/** A route's prefix as `ip -j route` prints it (a /32 without its length) in canonical form. */
function canonicalDst(dst: string): string {
  return formatCidr(parseCidr(dst.includes('/') ? dst : `${dst}/32`));
}

/** What to delete and write so that the agent's routes (`existing` prefixes) are exactly `desired`. */
export function routeChanges(existing: string[], desired: RouteOp[]): NetOp[] {
  const wanted = new Set(desired.map((r) => r.dst));
  return [
    ...existing.map(canonicalDst).filter((dst) => !wanted.has(dst)).map((dst): NetOp => ({ op: 'delete-route', dst, proto: ROUTE_PROTO })),
    ...desired,
  ];
}

const same = (a: RouteOp | undefined, b: RouteOp | undefined) => JSON.stringify(a) === JSON.stringify(b);

export class NodeRouting {
  /** Routes written, by node name. */
  private readonly installed = new Map<string, RouteOp>();
  /** Changes run one after another, in the order the registry told them. */
  private queue: Promise<void> = Promise.resolve();
  /** Nodes told since the last flush began, latest state by name (undefined: the node left). */
  private pending = new Map<string, Pick<ClusterNode, 'name' | 'ip' | 'podCIDR'> | undefined>();
  /** The queued flush that will write `pending`, until it starts. */
  private flushing?: Promise<void>;

  constructor(
    private readonly nl: Netlink,
    private readonly local: LocalRouting,
    private readonly log: Logger,
    /** The namespace playing the node; the agent's own when absent. */
    private readonly netns?: string,
  ) {}

  /** Makes the agent's routes exactly those of `nodes` (at start, and after anything was missed). */
  sync(nodes: Pick<ClusterNode, 'name' | 'ip' | 'podCIDR'>[]): Promise<void> {
    return this.enqueue(async () => {
      const desired = new Map<string, RouteOp>();
      for (const n of nodes) {
        const r = nodeRoute(this.local, n);
        if (r) desired.set(n.name, r);
      }
      const existing = (await this.nl.routes(ROUTE_PROTO, this.netns)).map((r) => r.dst);
      const ops = routeChanges(existing, [...desired.values()]);
      this.installed.clear();
      try {
        await this.nl.apply(ops, this.netns);
        for (const [name, r] of desired) this.installed.set(name, r);
      } catch {
        // One bad route must not keep the others out: one at a time, each failure logged.
        for (const op of ops.filter((o) => o.op === 'delete-route')) await this.nl.apply([op], this.netns).catch(() => undefined);
        for (const [name, r] of desired) await this.write(name, r);
      }
      this.log.info({ nodes: desired.size, mode: this.local.mode }, 'routes to the other nodes synchronized');
    });
  }

  /** A node joined or changed (or just beat its heartbeat: then nothing is written). */
  nodeChanged(node: Pick<ClusterNode, 'name' | 'ip' | 'podCIDR'>): Promise<void> {
    return this.tell(node.name, node);
  }

  /** A node left: its route goes. */
  nodeRemoved(name: string): Promise<void> {
    return this.tell(name, undefined);
  }

  /** Resolves when every change told so far has been applied (or has failed and been logged). */
  settled(): Promise<void> {
    return this.queue;
  }

  /** The routes written, by node name. */
  routes(): Map<string, RouteOp> {
    return new Map(this.installed);
  }

  private enqueue(fn: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(fn).catch((err) => this.log.error({ err: errorMessage(err) }, 'routes to the other nodes not changed'));
    return this.queue;
  }

  /** Records a node's latest state (undefined: gone); one flush, queued once, writes all there is then. */
  private tell(name: string, node: Pick<ClusterNode, 'name' | 'ip' | 'podCIDR'> | undefined): Promise<void> {
    this.pending.set(name, node);
    this.flushing ??= this.enqueue(() => this.flush());
    return this.flushing;
  }

  /** Writes the pending changes: the routes that go first (a prefix may move to another node), then the new ones. */
  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    this.flushing = undefined;
    const removes: [string, RouteOp][] = [];
    const writes: [string, RouteOp][] = [];
    for (const [name, node] of batch) {
      const route = node && nodeRoute(this.local, node);
      const before = this.installed.get(name);
      if (node && same(route, before)) continue; // a heartbeat
      if (before && before.dst !== route?.dst) removes.push([name, before]);
      if (route) writes.push([name, route]);
    }
    if (!removes.length && !writes.length) return;
    for (const [name] of removes) this.installed.delete(name);
    try {
      await this.nl.apply([...removes.map(([, r]): NetOp => ({ op: 'delete-route', dst: r.dst, proto: ROUTE_PROTO })), ...writes.map(([, r]) => r)], this.netns);
      for (const [name, route] of writes) this.installed.set(name, route);
      this.log.debug({ written: writes.map(([peer, r]) => `${peer} ${r.dst}`), removed: removes.map(([peer, r]) => `${peer} ${r.dst}`) }, 'routes to nodes written');
    } catch {
      // One bad route must not keep the others out (iproute2 stops at the first error): one at a time.
      for (const [name, route] of removes) await this.remove(name, route);
      for (const [name, route] of writes) await this.write(name, route);
    }
  }

  private async write(name: string, route: RouteOp): Promise<void> {
    try {
      await this.nl.apply([route], this.netns);
      this.installed.set(name, route);
      this.log.debug({ peer: name, route: route.dst, via: route.via ?? route.dev }, 'route to node written');
    } catch (err) {
      this.installed.delete(name);
      this.log.warn({ peer: name, route: route.dst, err: errorMessage(err) }, 'route to node not written (tried again at its next heartbeat)');
    }
  }

  private async remove(name: string, route: RouteOp): Promise<void> {
    this.installed.delete(name);
    try {
      await this.nl.apply([{ op: 'delete-route', dst: route.dst, proto: ROUTE_PROTO }], this.netns);
    } catch (err) {
      // Already gone (the device went, or someone removed it): nothing left to do.
      this.log.debug({ peer: name, route: route.dst, err: errorMessage(err) }, 'route to node already gone');
    }
  }
}
