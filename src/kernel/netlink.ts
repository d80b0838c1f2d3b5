/* Links, addresses, routes, neighbours and namespaces behind one small interface. The
 * implementation drives iproute2 in batch mode: one process per namespace per change, which
 * keeps an endpoint's plumbing to a couple of forks and gives iproute2's own error messages. */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export type NetOp =
  | { op: 'add-netns'; name: string }
  | { op: 'veth'; name: string; mac: string; peer: string; peerMac: string; peerNetns?: string }
  | { op: 'rename-link'; name: string; newName: string }
  | { op: 'up'; name: string }
  | { op: 'delete-link'; name: string }
  | { op: 'address'; dev: string; cidr: string }
  | { op: 'route'; dst: string; dev?: string; via?: string; scope?: 'link' | 'host'; unreachable?: boolean }
  | { op: 'delete-route'; dst: string; unreachable?: boolean }
  | { op: 'neighbour'; ip: string; mac: string; dev: string };

export interface LinkState {
  name: string;
  ifindex: number;
  mac: string;
  up: boolean;
}

export interface Netlink {
  /** Applies the operations in order inside `netns` (the agent's own namespace when absent). */
  apply(ops: NetOp[], netns?: string): Promise<void>;
  links(netns?: string): Promise<LinkState[]>;
  /** IPv4 addresses configured in the namespace, with their interface. */
  addresses(netns?: string): Promise<{ dev: string; address: string; prefixlen: number }[]>;
  addNetns(name: string): Promise<void>;
  deleteNetns(name: string): Promise<void>;
  netnsExists(name: string): boolean;
}

function render(op: NetOp): string {
  switch (op.op) {
    case 'add-netns':
      return `netns add ${op.name}`;
    case 'veth':
      return `link add ${op.name} address ${op.mac} type veth peer name ${op.peer} address ${op.peerMac}${op.peerNetns ? ` netns ${op.peerNetns}` : ''}`;
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
      if (op.scope) s += ` scope ${op.scope}`;
      return s;
    }
    case 'delete-route':
      return op.unreachable ? `route del unreachable ${op.dst}` : `route del ${op.dst}`;
    case 'neighbour':
      return `neighbour replace ${op.ip} lladdr ${op.mac} dev ${op.dev} nud permanent`;
  }
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
    const parsed = JSON.parse(stdout) as { ifname: string; ifindex: number; address?: string; flags: string[] }[];
    return parsed.map((l) => ({ name: l.ifname, ifindex: l.ifindex, mac: l.address ?? '', up: l.flags.includes('UP') }));
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
