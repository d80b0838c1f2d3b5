/* Link, address, route and neighbour changes as rtnetlink messages on a NETLINK_ROUTE socket
 * (libc through koffi), instead of one `ip -batch` process per change.
 *
 * Why: starting a process forks the agent, and the fork blocks its event loop for 7-17 ms on
 * these VMs (measured with /bin/true; more on a loaded machine), however little the process
 * does. An endpoint add, a pool refill and every route to another node paid that once or twice,
 * and everything else the agent had to do (a remote endpoint for the ipcache, an API answer)
 * waited behind it. A netlink request is handled by the kernel inside sendto(), so its answer
 * (the ack) is already queued when sendto returns: one request costs microseconds.
 *
 * The model: `apply` runs a batch in order and stops at the first failure, like `ip -batch`.
 * The ops this file knows (see NATIVE) are encoded here, namespaces are made by kernel/netns.ts,
 * and the VXLAN device still goes through iproute2, in order with the rest. For another
 * namespace, the socket is made and each message encoded with the main thread inside it (setns,
 * as kernel/netns.ts does): the socket, and the interface names a message refers to, belong to
 * that namespace. Messages are encoded as iproute2 encodes the same commands (flags, scope,
 * table, protocol), so the kernel ends up in the same state (test/e2e/rtnetlink.test.ts
 * compares both).
 *
 * Pitfalls: a request waits for the RTNL lock, which another thread may hold across an RCU
 * grace period (a tcx attach, a veth coming up: about 10 ms here), so requests are sent from a
 * libuv pool thread, never the main one. Errors carry the kernel's extended ack text
 * (NETLINK_EXT_ACK) where it gives one, else the errno name. */
import fs from 'node:fs';
import os from 'node:os';
import { parseCidr, ipToInt } from '../net/ipv4.js';
import { errno, libc } from './libc.js';
import { IprouteNetlink, render, type NetOp } from './netlink.js';
import { createNetns, deleteNetns, netnsPath, withNetns } from './netns.js';

const AF_NETLINK = 16;
const AF_INET = 2;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_ROUTE = 0;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;
const MSG_DONTWAIT = 0x40;

const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
/** In an ack: extended-ack attributes follow the echoed header. */
const NLM_F_ACK_TLVS = 0x200;
const NLMSG_ERROR = 2;
const NLMSGERR_ATTR_MSG = 1;

const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_NEWADDR = 20;
const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const RTM_NEWNEIGH = 28;

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINKINFO = 18;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const IFF_UP = 0x1;
const IFF_NOARP = 0x80;

const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;

const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PREFSRC = 7;
const RTA_METRICS = 8;
const RTAX_MTU = 2;
const RT_TABLE_MAIN = 254;
const RTPROT_UNSPEC = 0;
const RTPROT_BOOT = 3;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RT_SCOPE_HOST = 254;
const RT_SCOPE_NOWHERE = 255;
const RTN_UNSPEC = 0;
const RTN_UNICAST = 1;
const RTN_UNREACHABLE = 7;

const NDA_DST = 1;
const NDA_LLADDR = 2;
const NUD_PERMANENT = 0x80;

/** The ops encoded here; any other goes to iproute2. */
const NATIVE = new Set<NetOp['op']>(['add-netns', 'veth', 'rename-link', 'up', 'set-link', 'delete-link', 'address', 'route', 'delete-route', 'neighbour']);
export const isNative = (op: NetOp) => NATIVE.has(op.op);
export type NativeOp = Exclude<NetOp, { op: 'vxlan' }>;
/** The ops that are rtnetlink messages (a namespace is made by kernel/netns.ts). */
type MessageOp = Exclude<NativeOp, { op: 'add-netns' }>;

/** Attributes: type, then payload (a Buffer, or nested attributes). */
type Attr = [number, Buffer | Attr[]];

const align4 = (n: number) => (n + 3) & ~3;

function attrBytes(attrs: Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const [type, value] of attrs) {
    const payload = Buffer.isBuffer(value) ? value : attrBytes(value);
    const head = Buffer.alloc(4);
    head.writeUInt16LE(4 + payload.length, 0);
    head.writeUInt16LE(type, 2);
    parts.push(head, payload, Buffer.alloc(align4(payload.length) - payload.length));
  }
  return Buffer.concat(parts);
}

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};
/** An IPv4 address in network order. */
const ip4 = (text: string) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ipToInt(text) >>> 0);
  return b;
};
const mac = (text: string) => Buffer.from(text.split(':').map((h) => parseInt(h, 16)));
const cstring = (s: string) => Buffer.from(`${s}\0`);

function ifinfomsg(index = 0, flags = 0, change = 0): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(0, 0); // AF_UNSPEC, as iproute2 sends it
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags, 8);
  b.writeUInt32LE(change, 12);
  return b;
}

/** One message, ready to send: header (its sequence number patched in by the socket) and body. */
export interface Message {
  type: number;
  flags: number;
  body: Buffer;
}

function message(type: number, flags: number, fixed: Buffer, attrs: Attr[]): Message {
  return { type, flags: NLM_F_REQUEST | NLM_F_ACK | flags, body: Buffer.concat([fixed, Buffer.alloc(align4(fixed.length) - fixed.length), attrBytes(attrs)]) };
}

/** A destination as iproute2 reads it: 'default', a prefix, or an address (a /32). */
function destination(dst: string): { len: number; addr?: Buffer } {
  if (dst === 'default') return { len: 0 };
  const c = parseCidr(dst.includes('/') ? dst : `${dst}/32`);
  const b = Buffer.alloc(4);
  b.writeUInt32BE(c.base >>> 0);
  return { len: c.prefixlen, addr: b };
}

export interface EncodeContext {
  /** ifindex of an interface in the batch's namespace (0 when it has none of that name). */
  ifindex(name: string): number;
  /** A file descriptor of a named network namespace (for a veth peer placed there). */
  netnsFd(name: string): number;
}

function device(ctx: EncodeContext, name: string): number {
  const index = ctx.ifindex(name);
  if (!index) throw new Error(`Cannot find device "${name}"`);
  return index;
}

/** The rtnetlink message for `op`, as iproute2 builds it for the same command. */
export function encode(op: MessageOp, ctx: EncodeContext): Message {
  switch (op.op) {
    case 'veth': {
      const mtu: Attr[] = op.mtu ? [[IFLA_MTU, u32(op.mtu)]] : [];
      const peer = Buffer.concat([
        ifinfomsg(),
        attrBytes([[IFLA_IFNAME, cstring(op.peer)], [IFLA_ADDRESS, mac(op.peerMac)], ...mtu, ...(op.peerNetns ? [[IFLA_NET_NS_FD, u32(ctx.netnsFd(op.peerNetns))] as Attr] : [])]),
      ]);
      return message(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifinfomsg(), [
        [IFLA_IFNAME, cstring(op.name)],
        [IFLA_ADDRESS, mac(op.mac)],
        ...mtu,
        [IFLA_LINKINFO, [[IFLA_INFO_KIND, Buffer.from('veth')], [IFLA_INFO_DATA, [[VETH_INFO_PEER, peer]]]]],
      ]);
    }
    case 'rename-link':
      return message(RTM_NEWLINK, 0, ifinfomsg(device(ctx, op.name)), [[IFLA_IFNAME, cstring(op.newName)]]);
    case 'up':
      return message(RTM_NEWLINK, 0, ifinfomsg(device(ctx, op.name), IFF_UP, IFF_UP), []);
    case 'set-link': {
      let flags = 0;
      let change = 0;
      if (op.up !== undefined) {
        change |= IFF_UP;
        if (op.up) flags |= IFF_UP;
      }
      if (op.arp !== undefined) {
        change |= IFF_NOARP;
        if (!op.arp) flags |= IFF_NOARP;
      }
      return message(RTM_NEWLINK, 0, ifinfomsg(device(ctx, op.name), flags, change), op.mtu !== undefined ? [[IFLA_MTU, u32(op.mtu)]] : []);
    }
    case 'delete-link':
      return message(RTM_DELLINK, 0, ifinfomsg(device(ctx, op.name)), []);
    case 'address': {
      // An interface address may have host bits (that is the point): not a prefix.
      const [local = '', len = '32'] = op.cidr.split('/');
      const fixed = Buffer.alloc(8);
      fixed.writeUInt8(AF_INET, 0);
      fixed.writeUInt8(Number(len), 1);
      fixed.writeUInt8(local.startsWith('127.') ? RT_SCOPE_HOST : RT_SCOPE_UNIVERSE, 3);
      fixed.writeUInt32LE(device(ctx, op.dev), 4);
      return message(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, fixed, [
        [IFA_LOCAL, ip4(local)],
        [IFA_ADDRESS, ip4(local)],
      ]);
    }
    case 'route': {
      const dst = destination(op.dst);
      const type = op.unreachable ? RTN_UNREACHABLE : RTN_UNICAST;
      // iproute2: a unicast route without a gateway is on-link unless a scope is given.
      const scope = op.scope === 'link' ? RT_SCOPE_LINK : op.scope === 'host' ? RT_SCOPE_HOST : type === RTN_UNICAST && !op.via ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
      const attrs: Attr[] = [];
      if (dst.addr) attrs.push([RTA_DST, dst.addr]);
      if (op.via) attrs.push([RTA_GATEWAY, ip4(op.via)]);
      if (op.dev) attrs.push([RTA_OIF, u32(device(ctx, op.dev))]);
      if (op.src) attrs.push([RTA_PREFSRC, ip4(op.src)]);
      if (op.mtu) attrs.push([RTA_METRICS, [[RTAX_MTU, u32(op.mtu)]]]);
      return message(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, rtmsg(dst.len, op.proto ?? RTPROT_BOOT, scope, type), attrs);
    }
    case 'delete-route': {
      const dst = destination(op.dst);
      // iproute2: a delete names only what it was given; a unicast one has scope "nowhere" (any).
      return message(
        RTM_DELROUTE,
        0,
        rtmsg(dst.len, op.proto ?? RTPROT_UNSPEC, op.unreachable ? RT_SCOPE_UNIVERSE : RT_SCOPE_NOWHERE, op.unreachable ? RTN_UNREACHABLE : RTN_UNSPEC),
        dst.addr ? [[RTA_DST, dst.addr]] : [],
      );
    }
    case 'neighbour': {
      const fixed = Buffer.alloc(12);
      fixed.writeUInt8(AF_INET, 0);
      fixed.writeInt32LE(device(ctx, op.dev), 4);
      fixed.writeUInt16LE(NUD_PERMANENT, 8);
      return message(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, fixed, [
        [NDA_DST, ip4(op.ip)],
        [NDA_LLADDR, mac(op.mac)],
      ]);
    }
  }
}

function rtmsg(dstLen: number, protocol: number, scope: number, type: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(AF_INET, 0);
  b.writeUInt8(dstLen, 1);
  b.writeUInt8(RT_TABLE_MAIN, 4);
  b.writeUInt8(protocol, 5);
  b.writeUInt8(scope, 6);
  b.writeUInt8(type, 7);
  return b;
}

const errnoNames = new Map<number, string>(Object.entries(os.constants.errno).map(([name, num]) => [num as number, name]));

/** What an ack says: 0 for success, else the errno and the kernel's extended-ack text if any. */
export function parseAck(buf: Buffer, seq: number): { error: number; message?: string } | undefined {
  for (let off = 0; off + 16 <= buf.length; ) {
    const len = buf.readUInt32LE(off);
    if (len < 16) break;
    const type = buf.readUInt16LE(off + 4);
    const flags = buf.readUInt16LE(off + 6);
    if (type === NLMSG_ERROR && buf.readUInt32LE(off + 8) === seq) {
      const error = -buf.readInt32LE(off + 16);
      let text: string | undefined;
      if (flags & NLM_F_ACK_TLVS) {
        // After the error: the request's header (payload capped by NETLINK_CAP_ACK), then attributes.
        for (let a = off + 20 + 16; a + 4 <= off + len; ) {
          const alen = buf.readUInt16LE(a);
          if (alen < 4) break;
          if (buf.readUInt16LE(a + 2) === NLMSGERR_ATTR_MSG) text = buf.toString('utf8', a + 4, a + alen).replace(/\0.*$/s, '');
          a += align4(alen);
        }
      }
      return { error, ...(text ? { message: text } : {}) };
    }
    off += align4(len);
  }
  return undefined;
}

/**
 * A NETLINK_ROUTE socket, made in the namespace of the calling thread (a socket stays in the
 * namespace it was made in, whichever thread uses it later).
 */
class RouteSocket {
  private readonly fd: number;
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private readonly answer = Buffer.alloc(65536);
  private static readonly address = (() => {
    const a = Buffer.alloc(12);
    a.writeUInt16LE(AF_NETLINK, 0);
    return a;
  })();

  constructor() {
    this.fd = libc.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (this.fd < 0) throw new Error(`netlink socket: ${errnoNames.get(errno()) ?? errno()}`);
    const one = u32(1);
    libc.setsockopt(this.fd, SOL_NETLINK, NETLINK_CAP_ACK, one, 4);
    libc.setsockopt(this.fd, SOL_NETLINK, NETLINK_EXT_ACK, one, 4);
  }

  /**
   * Sends one request and reads its ack; rejects with the kernel's reason. The send runs on a
   * libuv pool thread: the kernel handles the request inside it, waiting for the RTNL lock that
   * a tcx attach elsewhere may hold across an RCU grace period, and the event loop must not
   * wait with it. The ack is queued by the time the send returns, so it is read at once.
   */
  async request(m: Message): Promise<void> {
    const seq = (this.seq = (this.seq + 1) >>> 0);
    const head = Buffer.alloc(16);
    head.writeUInt32LE(16 + m.body.length, 0);
    head.writeUInt16LE(m.type, 4);
    head.writeUInt16LE(m.flags, 6);
    head.writeUInt32LE(seq, 8);
    const msg = Buffer.concat([head, m.body]);
    const sent = await new Promise<number>((resolve, reject) =>
      libc.sendto.async(this.fd, msg, msg.length, 0, RouteSocket.address, RouteSocket.address.length, (err: unknown, n: number) => (err ? reject(err) : resolve(Number(n)))),
    );
    if (sent < 0) throw new Error('netlink send failed');
    for (;;) {
      let n = Number(libc.recv(this.fd, this.answer, this.answer.length, MSG_DONTWAIT));
      if (n < 0 && errno() === os.constants.errno.EAGAIN) {
        // Not queued yet (rtnetlink answers inside the send; this is only for safety): wait off the main thread.
        n = await new Promise<number>((resolve, reject) => libc.recv.async(this.fd, this.answer, this.answer.length, 0, (err: unknown, r: number) => (err ? reject(err) : resolve(Number(r)))));
      }
      if (n < 0) {
        if (errno() === os.constants.errno.EINTR) continue;
        throw new Error(`netlink receive: ${errnoNames.get(errno()) ?? errno()}`);
      }
      const ack = parseAck(this.answer.subarray(0, n), seq);
      if (!ack) continue; // not ours (nothing else is asked on this socket, but be sure)
      if (ack.error === 0) return;
      const name = errnoNames.get(ack.error) ?? `errno ${ack.error}`;
      throw new Error(ack.message ? `${ack.message} (${name})` : name);
    }
  }

  close(): void {
    libc.close(this.fd);
  }
}

/**
 * Runs native ops in order in namespace `netns` (the agent's own when absent); stops at the
 * first failure. Each message is encoded inside the namespace (the interface names it refers
 * to are that namespace's, and an earlier op may have just made or renamed one).
 */
async function runNative(ops: NativeOp[], netns: string | undefined): Promise<void> {
  const inside = <T>(fn: () => T): T => (netns ? withNetns(netnsPath(netns), fn) : fn());
  let sock: RouteSocket | undefined; // made at the first message: the batch may make the namespace first
  const fds: number[] = [];
  const ctx: EncodeContext = {
    ifindex: (name) => libc.ifNameToIndex(name),
    netnsFd: (name) => {
      const fd = fs.openSync(netnsPath(name), 'r');
      fds.push(fd);
      return fd;
    },
  };
  try {
    for (const op of ops) {
      try {
        if (op.op === 'add-netns') createNetns(op.name);
        else await (sock ??= inside(() => new RouteSocket())).request(inside(() => encode(op, ctx)));
      } catch (err) {
        throw new Error(`netlink${netns ? ` -n ${netns}` : ''}: ${render(op)}: ${(err as Error).message}`);
      }
    }
  } finally {
    sock?.close();
    for (const fd of fds) fs.closeSync(fd);
  }
}

/**
 * The agent's Netlink: changes through rtnetlink and kernel/netns.ts (iproute2 for the VXLAN
 * device), reads through iproute2 (`ip -j`: at start and on repair only).
 */
export class RtNetlink extends IprouteNetlink {
  override async addNetns(name: string): Promise<void> {
    createNetns(name);
  }

  override async deleteNetns(name: string): Promise<void> {
    if (this.netnsExists(name)) deleteNetns(name);
  }

  override async apply(ops: NetOp[], netns?: string): Promise<void> {
    // Runs of native ops go over a socket; the others, in their place in the order, to iproute2.
    for (let i = 0; i < ops.length; ) {
      let j = i;
      const native = isNative(ops[i]!);
      while (j < ops.length && isNative(ops[j]!) === native) j++;
      const run = ops.slice(i, j);
      if (native) {
        await runNative(run as NativeOp[], netns);
      } else {
        await super.apply(run, netns);
      }
      i = j;
    }
  }
}
