/* IPv4 addresses for endpoints from the node's pod CIDR. The network and broadcast addresses
 * are never handed out; the first host address is the node's router address (the endpoints'
 * gateway). */
import { conflict, invalid } from '../errors.js';

export interface Cidr {
  base: number; // host-order integer of the network address
  prefixlen: number;
}

export function ipToInt(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4) throw invalid(`"${ip}" is not an IPv4 address (expected A.B.C.D)`);
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) throw invalid(`"${ip}" is not an IPv4 address (expected A.B.C.D)`);
    n = n * 256 + Number(p);
  }
  return n;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function parseCidr(text: string): Cidr {
  const [ip, len, extra] = text.split('/');
  const prefixlen = Number(len);
  if (ip === undefined || len === undefined || extra !== undefined || !/^\d+$/.test(len) || prefixlen > 32) {
    throw invalid(`"${text}" is not an IPv4 CIDR (expected A.B.C.D/N)`);
  }
  const base = ipToInt(ip);
  const mask = prefixlen === 0 ? 0 : (0xffffffff << (32 - prefixlen)) >>> 0;
  if ((base & mask) >>> 0 !== base) throw invalid(`"${text}" has host bits set (did you mean ${intToIp((base & mask) >>> 0)}/${prefixlen}?)`);
  return { base, prefixlen };
}

export function formatCidr(c: Cidr): string {
  return `${intToIp(c.base)}/${c.prefixlen}`;
}

export function cidrContains(c: Cidr, ip: number): boolean {
  const size = 2 ** (32 - c.prefixlen);
  return ip >= c.base && ip < c.base + size;
}

export class Ipam {
  private readonly used = new Set<number>();
  private readonly first: number;
  private readonly last: number;
  readonly router: string;

  constructor(readonly cidr: Cidr) {
    const size = 2 ** (32 - cidr.prefixlen);
    if (size < 4) throw invalid(`pod CIDR ${formatCidr(cidr)} is too small: use a /30 or larger`);
    this.first = cidr.base + 2; // after the network address and the router
    this.last = cidr.base + size - 2; // before broadcast
    this.router = intToIp(cidr.base + 1);
  }

  /** Allocates `requested` or the lowest free address. */
  allocate(requested?: string): string {
    if (requested !== undefined) {
      const n = ipToInt(requested);
      if (!cidrContains(this.cidr, n) || n < this.first || n > this.last) {
        throw invalid(
          `address ${requested} is outside the usable range ${intToIp(this.first)}-${intToIp(this.last)} of pod CIDR ${formatCidr(this.cidr)}`,
        );
      }
      if (this.used.has(n)) throw conflict(`address ${requested} is already used by another endpoint: pick another or omit --ipv4`);
      this.used.add(n);
      return requested;
    }
    for (let n = this.first; n <= this.last; n++) {
      if (!this.used.has(n)) {
        this.used.add(n);
        return intToIp(n);
      }
    }
    throw conflict(`pod CIDR ${formatCidr(this.cidr)} has no free address left: delete endpoints or use a larger CIDR`);
  }

  /** Marks an address as used (restoring state). */
  claim(ip: string): void {
    this.used.add(ipToInt(ip));
  }

  release(ip: string): void {
    this.used.delete(ipToInt(ip));
  }

  get allocated(): number {
    return this.used.size;
  }

  get capacity(): number {
    return this.last - this.first + 1;
  }
}
