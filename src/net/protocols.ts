/* IP protocol numbers (IANA) by the names policies, services and flows use. */

export const IP_PROTOCOL = { ICMP: 1, TCP: 6, UDP: 17, SCTP: 132 } as const;

const NAMES = new Map<number, string>(Object.entries(IP_PROTOCOL).map(([name, n]) => [n, name]));

/** TCP, UDP, ... or the number itself for a protocol without a name here. */
export function protocolName(n: number): string {
  return NAMES.get(n) ?? String(n);
}
