/* Ports as policy sees them: named ports that endpoints declare and rules refer to, and the L4
 * keys of the policy map (protocol plus a power-of-two aligned port prefix; a port range becomes
 * the fewest such prefixes that cover it exactly). */
import { IP_PROTOCOL } from '../net/protocols.js';

/** A port an endpoint names (Kubernetes' containerPort name): rules may allow it by name. */
export interface NamedPort {
  name: string;
  port: number;
  protocol: 'TCP' | 'UDP' | 'SCTP';
}

export const PROTO = IP_PROTOCOL;

export interface L4Key {
  /** 0 = any protocol. */
  protocol: number;
  port: number;
  /** Bits of protocol+port that must match: 0 (anything), 8 (protocol, any port), 8+n (port prefix of n bits). */
  bits: number;
}

export const ANY_L4: L4Key = { protocol: 0, port: 0, bits: 0 };

export function protocolOnly(protocol: number): L4Key {
  return { protocol, port: 0, bits: 8 };
}

/** The prefixes covering [start, end] exactly. */
export function rangeToPrefixes(protocol: number, start: number, end: number): L4Key[] {
  const out: L4Key[] = [];
  let port = start;
  while (port <= end) {
    let size = 1;
    let len = 16;
    // Grow the block while it stays aligned and inside the range.
    while (len > 0 && port % (size * 2) === 0 && port + size * 2 - 1 <= end) {
      size *= 2;
      len--;
    }
    out.push({ protocol, port, bits: 8 + len });
    port += size;
  }
  return out;
}

/** Whether `outer` matches every packet `inner` matches. */
export function covers(outer: L4Key, inner: L4Key): boolean {
  if (outer.bits === 0) return true;
  if (inner.bits < outer.bits || outer.protocol !== inner.protocol) return false;
  const portBits = outer.bits - 8;
  if (portBits === 0) return true;
  const shift = 16 - portBits;
  return outer.port >>> shift === inner.port >>> shift;
}

export function describeL4(k: L4Key): string {
  const proto = Object.entries(PROTO).find(([, n]) => n === k.protocol)?.[0] ?? String(k.protocol);
  if (k.bits === 0) return 'ANY';
  if (k.bits === 8) return `${proto}/ANY`;
  const size = 2 ** (24 - k.bits);
  if (k.protocol === PROTO.ICMP) return `ICMP type ${k.port}`;
  return size === 1 ? `${k.port}/${proto}` : `${k.port}-${k.port + size - 1}/${proto}`;
}
