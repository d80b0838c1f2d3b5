/* IPv4 addresses for endpoints from the node's pod CIDR. The network and broadcast addresses
 * are never handed out; the first host address is the node's router address (the endpoints'
 * gateway). */
import { conflict, invalid } from '../errors.js';
import { cidrContains, formatCidr, intToIp, ipToInt, type Cidr } from '../net/ipv4.js';

/** A node's router address: the first host address of its pod CIDR (other nodes reach it too). */
export function routerAddress(cidr: Cidr): string {
  return intToIp(cidr.base + 1);
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
    this.router = routerAddress(cidr);
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
      return intToIp(n); // the canonical spelling, whatever was accepted
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
