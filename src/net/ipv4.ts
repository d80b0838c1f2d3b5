/* IPv4 addresses and prefixes: strict parsing (ipaddr.js), host-order integer math and a fast
 * formatter. Pure, no I/O.
 *
 * Parsing is strict on purpose: only four decimal numbers without leading zeros. iproute2 and
 * inet_aton read "010" as octal (8) and "0x0a" as hex, so an address the agent read one way
 * would be installed into the kernel as another — `--ipv4 10.242.010.5` once became a route for
 * 10.242.8.5 that stole another endpoint's traffic. Whatever is accepted is handed on in its
 * canonical form only. */
import ipaddr from 'ipaddr.js';
import { invalid } from '../errors.js';

/** A prefix: the network address as a host-order integer and the prefix length. */
export interface Cidr {
  base: number;
  prefixlen: number;
}

/** Whether `text` is an IPv4 address in the one spelling the agent accepts (A.B.C.D, decimal, no leading zeros). */
export function isIpv4(text: string): boolean {
  return ipaddr.IPv4.isValidFourPartDecimal(text);
}

/** The host-order integer of a strictly spelled IPv4 address; a one-line error otherwise. */
export function ipToInt(text: string): number {
  if (!isIpv4(text)) {
    throw invalid(`${JSON.stringify(text)} is not an IPv4 address: write four decimal numbers 0-255 without leading zeros (A.B.C.D)`);
  }
  const [a, b, c, d] = ipaddr.IPv4.parse(text).octets as [number, number, number, number];
  return ((a << 24) >>> 0) + (b << 16) + (c << 8) + d;
}

const OCTETS = Array.from({ length: 256 }, (_, i) => String(i));

/** Dotted-quad of a host-order integer (a table lookup per octet: flows format addresses on a hot path). */
export function intToIp(n: number): string {
  return `${OCTETS[n >>> 24]}.${OCTETS[(n >>> 16) & 255]}.${OCTETS[(n >>> 8) & 255]}.${OCTETS[n & 255]}`;
}

/** The canonical spelling of an address (after strict parsing). */
export function canonicalIpv4(text: string): string {
  return intToIp(ipToInt(text));
}

/** `A.B.C.D/N` with no host bits set. */
export function parseCidr(text: string): Cidr {
  const [ip, len, extra] = text.split('/');
  const prefixlen = Number(len);
  if (ip === undefined || len === undefined || extra !== undefined || !/^(0|[1-9]\d?)$/.test(len) || prefixlen > 32 || !isIpv4(ip)) {
    throw invalid(`${JSON.stringify(text)} is not an IPv4 CIDR: write A.B.C.D/N with decimal numbers and no leading zeros`);
  }
  const base = ipToInt(ip);
  const mask = prefixlen === 0 ? 0 : (0xffffffff << (32 - prefixlen)) >>> 0;
  if ((base & mask) >>> 0 !== base) throw invalid(`"${text}" has host bits set (did you mean ${intToIp((base & mask) >>> 0)}/${prefixlen}?)`);
  return { base, prefixlen };
}

export function formatCidr(c: Cidr): string {
  return `${intToIp(c.base)}/${c.prefixlen}`;
}

/** Whether the prefix holds the address (a host-order integer). */
export function cidrContains(c: Cidr, ip: number): boolean {
  const size = 2 ** (32 - c.prefixlen);
  return ip >= c.base && ip < c.base + size;
}

/** Whether `inner` lies wholly inside `outer`. */
export function cidrInside(inner: Cidr, outer: Cidr): boolean {
  return inner.prefixlen >= outer.prefixlen && cidrContains(outer, inner.base);
}
