/* CIDR identities: every prefix named by a policy gets a node-local identity (local scope bit
 * 1<<24) and an ipcache entry, so the longest prefix decides which rules a packet matches. */
import { cidrContains, intToIp, parseCidr, type Cidr } from '../endpoint/ipam.js';

export const LOCAL_IDENTITY_SCOPE = 1 << 24;
export const WORLD_PREFIX = '0.0.0.0/0';

export function cidrInside(inner: Cidr, outer: Cidr): boolean {
  return inner.prefixlen >= outer.prefixlen && cidrContains(outer, inner.base);
}

export function ipInside(ip: string, cidr: Cidr): boolean {
  const parts = ip.split('.').map(Number) as [number, number, number, number];
  return cidrContains(cidr, ((parts[0] << 24) >>> 0) + (parts[1] << 16) + (parts[2] << 8) + parts[3]);
}

export class CidrIdentities {
  private readonly byPrefix = new Map<string, number>();
  private next = 1;

  /** Keeps the numbers of prefixes still in use, drops the others, numbers the new ones. */
  assign(prefixes: Iterable<string>): Map<string, number> {
    const wanted = new Set(prefixes);
    wanted.delete(WORLD_PREFIX); // that prefix is the world identity itself
    for (const p of [...this.byPrefix.keys()]) if (!wanted.has(p)) this.byPrefix.delete(p);
    for (const p of [...wanted].sort()) {
      if (!this.byPrefix.has(p)) this.byPrefix.set(p, LOCAL_IDENTITY_SCOPE | this.next++);
    }
    return new Map(this.byPrefix);
  }

  get current(): ReadonlyMap<string, number> {
    return this.byPrefix;
  }
}

export function normalizeCidr(text: string): string {
  const c = parseCidr(text.includes('/') ? text : `${text}/32`);
  return `${intToIp(c.base)}/${c.prefixlen}`;
}
