/* Links, addresses, routes, neighbours and namespaces behind one small interface. The
 * implementation drives iproute2 in batch mode: one process per namespace per change, which
 * keeps an endpoint's plumbing to a couple of forks and gives iproute2's own error messages. */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export type NetOp =
  | { op: 'add-netns'; name: string }
  | { op: 'veth'; name: string; mac: string; peer: string; peerMac: string; peerNetns?: string; mtu?: number }
  /** A collect_md VXLAN device: every packet's tunnel key (VNI, remote) comes from BPF, no FDB. */
  | { op: 'vxlan'; name: string; port: number; mtu: number }
  | { op: 'rename-link'; name: string; newName: string }
  | { op: 'up'; name: string }
  | { op: 'set-link'; name: string; mtu?: number; arp?: boolean; up?: boolean }
  | { op: 'delete-link'; name: string }
  | { op: 'address'; dev: string; cidr: string }
  | {
      op: 'route';
      dst: string;
      dev?: string;
      via?: string;
      src?: string;
      scope?: 'link' | 'host';
      mtu?: number;
      /** The route's protocol number: who owns it (`ip route show proto N` lists them). */
      proto?: number;
      unreachable?: boolean;
    }
  /** With `proto`, only a route of that protocol goes: never somebody else's for the same prefix. */
  | { op: 'delete-route'; dst: string; unreachable?: boolean; proto?: number }
  | { op: 'neighbour'; ip: string; mac: string; dev: string };

export interface LinkState {
  name: string;
  ifindex: number;
  mac: string;
  up: boolean;
  mtu: number;
}

/** One link with its kind (`ip -d link`): enough to tell whether a device is the one wanted. */
export interface LinkDetails extends LinkState {
  kind?: string;
  noarp: boolean;
  vxlan?: { port: number; external: boolean; learning: boolean };
}

export interface RouteState {
  dst: string;
  dev?: string;
  via?: string;
  src?: string;
  mtu?: number;
}

export interface Netlink {
  /** Applies the operations in order inside `netns` (the agent's own namespace when absent). */
  apply(ops: NetOp[], netns?: string): Promise<void>;
  links(netns?: string): Promise<LinkState[]>;
  /** IPv4 addresses configured in the namespace, with their interface. */
  addresses(netns?: string): Promise<{ dev: string; address: string; prefixlen: number }[]>;
  /** The link named `name`, or undefined when there is none. */
  link(name: string, netns?: string): Promise<LinkDetails | undefined>;
  /** IPv4 routes of the main table with protocol `proto`. */
  routes(proto: number, netns?: string): Promise<RouteState[]>;
  addNetns(name: string): Promise<void>;
  deleteNetns(name: string): Promise<void>;
  netnsExists(name: string): boolean;
}

/** The iproute2 command of an op (one line of `ip -batch`). */
export function render(op: NetOp): string {
  switch (op.op) {
    case 'add-netns':
      return `netns add ${op.name}`;
    case 'veth': {
      const mtu = op.mtu ? ` mtu ${op.mtu}` : '';
      return `link add ${op.name} address ${op.mac}${mtu} type veth peer name ${op.peer} address ${op.peerMac}${mtu}${op.peerNetns ? ` netns ${op.peerNetns}` : ''}`;
    }
    case 'vxlan':
      return `link add ${op.name} mtu ${op.mtu} type vxlan external dstport ${op.port} nolearning`;
    case 'set-link': {
      let s = `link set dev ${op.name}`;
      if (op.mtu !== undefined) s += ` mtu ${op.mtu}`;
      if (op.arp !== undefined) s += ` arp ${op.arp ? 'on' : 'off'}`;
      if (op.up !== undefined) s += op.up ? ' up' : ' down';
      return s;
    }
    case 'rename-link':
      return `link set dev ${op.name} name ${op.newName}`;
    case 'up':
      return `link set ${op.name} up`;
    case 'delete-link':
      return `link del ${op.name}`;
    case 'address':
      return `address replace ${op.cidr} dev ${op.dev}`;
    case 'route': {
      if (op.unreachable) return `route replace unreachable ${op.dst}`;
      let s = `route replace ${op.dst}`;
      if (op.via) s += ` via ${op.via}`;
      if (op.dev) s += ` dev ${op.dev}`;
      if (op.src) s += ` src ${op.src}`;
      if (op.scope) s += ` scope ${op.scope}`;
      if (op.mtu) s += ` mtu ${op.mtu}`;
      if (op.proto !== undefined) s += ` proto ${op.proto}`;
      return s;
    }
    case 'delete-route': {
      const s = op.unreachable ? `route del unreachable ${op.dst}` : `route del ${op.dst}`;
      return op.proto !== undefined ? `${s} proto ${op.proto}` : s;
    }
    case 'neighbour':
      return `neighbour replace ${op.ip} lladdr ${op.mac} dev ${op.dev} nud permanent`;
  }
}

interface IpLink {
  ifname: string;
  ifindex: number;
  address?: string;
  mtu: number;
  flags: string[];
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

function linkState(l: IpLink): LinkState {
  return { name: l.ifname, ifindex: l.ifindex, mac: l.address ?? '', up: l.flags.includes('UP'), mtu: l.mtu };
}

function nsArgs(netns?: string): string[] {
  return netns ? ['-n', netns] : [];
}

export class IprouteNetlink implements Netlink {
  apply(ops: NetOp[], netns?: string): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    const script = ops.map(render).join('\n') + '\n';
    return new Promise((resolve, reject) => {
      const child = spawn('ip', [...nsArgs(netns), '-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => {
        if (code === 0) resolve();
        else reject(new Error(`ip${netns ? ' -n ' + netns : ''}: ${stderr.trim().split('\n').join('; ')}`));
      });
      child.stdin.end(script);
    });
  }

  async links(netns?: string): Promise<LinkState[]> {
    const { stdout } = await execFileP('ip', [...nsArgs(netns), '-j', 'link', 'show']);
    return (JSON.parse(stdout) as IpLink[]).map(linkState);
  }

  async link(name: string, netns?: string): Promise<LinkDetails | undefined> {
    let stdout: string;
    try {
      ({ stdout } = await execFileP('ip', [...nsArgs(netns), '-d', '-j', 'link', 'show', 'dev', name]));
    } catch (err) {
      if (/does not exist/.test((err as { stderr?: string }).stderr ?? '')) return undefined;
      throw err;
    }
    const l = (JSON.parse(stdout) as IpLink[])[0];
    if (!l) return undefined;
    const data = l.linkinfo?.info_data;
    return {
      ...linkState(l),
      kind: l.linkinfo?.info_kind,
      noarp: l.flags.includes('NOARP'),
      ...(l.linkinfo?.info_kind === 'vxlan' ? { vxlan: { port: Number(data?.port ?? 0), external: data?.external === true, learning: data?.learning === true } } : {}),
    };
  }

  async routes(proto: number, netns?: string): Promise<RouteState[]> {
    const { stdout } = await execFileP('ip', [...nsArgs(netns), '-j', '-4', 'route', 'show', 'proto', String(proto)]);
    const parsed = JSON.parse(stdout) as { dst: string; dev?: string; gateway?: string; prefsrc?: string; metrics?: { mtu?: number }[] }[];
    return parsed.map((r) => {
      const mtu = r.metrics?.find((m) => m.mtu !== undefined)?.mtu;
      return { dst: r.dst, ...(r.dev ? { dev: r.dev } : {}), ...(r.gateway ? { via: r.gateway } : {}), ...(r.prefsrc ? { src: r.prefsrc } : {}), ...(mtu ? { mtu } : {}) };
    });
  }

  async addresses(netns?: string): Promise<{ dev: string; address: string; prefixlen: number }[]> {
    const { stdout } = await execFileP('ip', [...nsArgs(netns), '-j', '-4', 'address', 'show']);
    const parsed = JSON.parse(stdout) as { ifname: string; addr_info: { local: string; prefixlen: number }[] }[];
    return parsed.flatMap((l) => l.addr_info.map((a) => ({ dev: l.ifname, address: a.local, prefixlen: a.prefixlen })));
  }

  async addNetns(name: string): Promise<void> {
    await execFileP('ip', ['netns', 'add', name]);
  }

  async deleteNetns(name: string): Promise<void> {
    if (!this.netnsExists(name)) return;
    await execFileP('ip', ['netns', 'delete', name]);
  }

  netnsExists(name: string): boolean {
    return fs.existsSync(`/run/netns/${name}`);
  }
}
