/* ipcache entries: IPv4 prefixes in the family-tagged LPM key of bpf/include/layouts.h. */
import { FAMILY, IPCACHE_PREFIX_BASE, type ipcacheKey } from './layouts.js';
import { ipv4ToBuffer, type StructValue } from './struct.js';

export function ipcacheKeyFor(cidr: string): StructValue<typeof ipcacheKey> {
  const [ip, len] = cidr.split('/') as [string, string | undefined];
  const addr = Buffer.alloc(16);
  ipv4ToBuffer(ip).copy(addr);
  return {
    prefixlen: IPCACHE_PREFIX_BASE + (len === undefined ? 32 : Number(len)),
    family: FAMILY.IPV4,
    pad: Buffer.alloc(3),
    addr,
  };
}

export function ipcachePrefixOf(key: StructValue<typeof ipcacheKey>): string {
  const bits = key.prefixlen - IPCACHE_PREFIX_BASE;
  if (key.family === FAMILY.IPV4) return `${Array.from(key.addr.subarray(0, 4)).join('.')}/${bits}`;
  return `${key.addr.toString('hex')}/${bits}`;
}
