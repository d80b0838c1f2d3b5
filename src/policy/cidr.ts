/* CIDR identities: every prefix named by a policy gets a node-local identity (local scope bit
 * 1<<24) and an ipcache entry, so the longest prefix decides which rules a packet matches. */
import { cidrContains, intToIp, ipToInt, parseCidr, type Cidr } from '../net/ipv4.js';

export const LOCAL_IDENTITY_SCOPE = 1 << 24;
export const WORLD_PREFIX = '0.0.0.0/0';

export function ipInside(ip: string, cidr: Cidr): boolean {
  return cidrContains(cidr, ipToInt(ip));
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

/** Address identities (see AddressIdentities) live above the CIDR identities in the local scope. */
export const ADDRESS_IDENTITY_BASE = LOCAL_IDENTITY_SCOPE | (1 << 23);

export interface EndpointBlock {
  /** Identifies the block and its excepts. */
  key: string;
  cidr: Cidr;
  except: Cidr[];
}

/**
 * A Kubernetes ipBlock selects pods by address, while policy speaks in identities. When the
 * ipBlocks split the endpoints of one identity (some inside, some not), each group of them with
 * the same blocks around it gets an address identity: a node-local number that policy sees
 * instead (in the ipcache and the endpoint's entry), with the labels of the identity, so every
 * other rule treats it as that identity. Numbers stay while their group exists.
 */
export class AddressIdentities {
  private readonly byKey = new Map<string, number>();
  private next = 1;

  assign(
    endpoints: { id: number; identity: number; ipv4: string }[],
    blocks: EndpointBlock[],
  ): { byEndpoint: Map<number, number>; base: Map<number, number> } {
    const byEndpoint = new Map<number, number>();
    const base = new Map<number, number>();
    const signature = (ip: string) =>
      blocks
        .filter((b) => ipInside(ip, b.cidr) && !b.except.some((x) => ipInside(ip, x)))
        .map((b) => b.key)
        .join('|');
    const groups = new Map<number, { id: number; sig: string }[]>();
    for (const e of endpoints) {
      const list = groups.get(e.identity) ?? [];
      list.push({ id: e.id, sig: blocks.length ? signature(e.ipv4) : '' });
      groups.set(e.identity, list);
    }
    const used = new Set<string>();
    for (const [identity, list] of groups) {
      if (new Set(list.map((x) => x.sig)).size < 2) continue; // not split: the identity says it all
      for (const { id, sig } of list) {
        if (sig === '') continue; // outside every block: keeps its identity
        const key = `${identity}#${sig}`;
        let n = this.byKey.get(key);
        if (n === undefined) this.byKey.set(key, (n = ADDRESS_IDENTITY_BASE | this.next++));
        used.add(key);
        byEndpoint.set(id, n);
        base.set(n, identity);
      }
    }
    for (const key of [...this.byKey.keys()]) if (!used.has(key)) this.byKey.delete(key);
    return { byEndpoint, base };
  }
}
