/* The agent's view of the datapath's layouts: every shared struct, constant and map name comes
 * from the compiled objects' BTF (bpf.generated.ts, made by scripts/gen-bpf-types.ts; nothing is
 * mirrored by hand), plus the few conveniences the agent adds on top of them. */
import { AGGREGATION, DIRECTION, ipcacheKey, OBJECT_MAPS } from './bpf.generated.js';
import { offsetsOf } from './struct.js';

export * from './bpf.generated.js';

/** Bits of ipcache_key before the address that the LPM always matches (family and padding). */
export const IPCACHE_PREFIX_BASE = (offsetsOf(ipcacheKey).addr - offsetsOf(ipcacheKey).family) * 8;

export const ETHERTYPE_IPV4 = 0x0800;

/** Monitor aggregation as the agent's flag spells it (--monitor-aggregation medium). */
export type AggregationLevel = Lowercase<keyof typeof AGGREGATION>;

export function aggregationCode(level: AggregationLevel): number {
  return AGGREGATION[level.toUpperCase() as keyof typeof AGGREGATION];
}

/** A direction as the API and CLI spell it. */
export function directionName(d: number): 'INGRESS' | 'EGRESS' {
  return d === DIRECTION.INGRESS ? 'INGRESS' : 'EGRESS';
}

/** The name of a map the endpoint object declares (a typo or a removed map fails to compile). */
export type EndpointMap = (typeof OBJECT_MAPS.endpoint)[number];
export type SockMap = (typeof OBJECT_MAPS.sock)[number];



