/* TypeScript mirror of bpf/include/layouts.h: the one place the agent knows map layouts.
 * test/unit/layouts.test.ts compares every struct here with the BTF of the compiled objects. */
import { defineStruct } from './struct.js';

export const FAMILY_IPV4 = 4;
export const FAMILY_IPV6 = 6;
/** Bits of ipcache_key before the address that the LPM always matches (family + pad). */
export const IPCACHE_PREFIX_BASE = 32;

export const ipcacheKey = defineStruct('ipcache_key', [
  ['prefixlen', 'u32'],
  ['family', 'u8'],
  ['pad', { bytes: 3 }],
  ['addr', { bytes: 16 }],
] as const);

export const ipcacheValue = defineStruct('ipcache_value', [
  ['identity', 'u32'],
  ['tunnel_endpoint', 'u32'],
  ['encrypt_key', 'u8'],
  ['flags', 'u8'],
  ['pad', 'u16'],
] as const);

export const endpointKey = defineStruct('endpoint_key', [['ifindex', 'u32']] as const);

export const endpointInfo = defineStruct('endpoint_info', [
  ['ep_id', 'u32'],
  ['identity', 'u32'],
  ['ipv4', 'ipv4'],
  ['flags', 'u32'],
  ['mac', 'mac'],
  ['node_mac', 'mac'],
] as const);

export const metricsKey = defineStruct('metrics_key', [
  ['ep_id', 'u32'],
  ['remote_identity', 'u32'],
  ['direction', 'u8'],
  ['reason', 'u8'],
  ['pad', 'u16'],
] as const);

export const metricsValue = defineStruct('metrics_value', [
  ['packets', 'u64'],
  ['bytes', 'u64'],
] as const);

/** Structs that must match a struct of the same name in the objects' BTF. */
export const sharedStructs = [ipcacheKey, ipcacheValue, endpointInfo, metricsKey, metricsValue];

export const DIRECTION = { INGRESS: 1, EGRESS: 2 } as const;

/** Datapath outcome codes (0 = forwarded; drops use Cilium's drop reason numbers). */
export const REASON = { FORWARDED: 0, INVALID_SOURCE_IP: 132 } as const;
export const reasonNames: Record<number, string> = {
  0: 'FORWARDED',
  132: 'INVALID_SOURCE_IP',
};

/** Map names as declared in bpf/include/maps.h. */
export const MAPS = { ipcache: 'mb_ipcache', endpoints: 'mb_endpoints', metrics: 'mb_metrics' } as const;
