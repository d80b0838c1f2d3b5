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
  ['policy_revision', 'u32'],
  ['ifindex', 'u32'],
] as const);

/** mb_lxc: local endpoints by address. */
export const lxcKey = defineStruct('lxc_key', [['ipv4', 'ipv4']] as const);

/** endpoint_info.flags */
export const EP_FLAGS = { INGRESS_ENFORCED: 1 << 0, EGRESS_ENFORCED: 1 << 1, ALLOW_HOST_INGRESS: 1 << 2, POLICY_AUDIT: 1 << 3 } as const;

export const POLICY_PREFIX_FIXED = 72;
export const POLICY_PREFIX_FULL = 96;

export const policyKey = defineStruct('policy_key', [
  ['prefixlen', 'u32'],
  ['ep_id', 'u32'],
  ['identity', 'u32'],
  ['direction', 'u8'],
  ['protocol', 'u8'],
  ['dport', 'be16'],
] as const);

export const policyValue = defineStruct('policy_value', [
  ['flags', 'u8'],
  ['l4_prefixlen', 'u8'],
  ['proxy_port', 'u16'],
  ['rule_id', 'u32'],
] as const);

/** policy_value.flags */
export const POLICY_FLAGS = { DENY: 1 << 0 } as const;

/** mb_agent_ports: the agent's listener ports that endpoints may not reach on the node. */
export const agentPortKey = defineStruct('agent_port_key', [
  ['port', 'be16'],
  ['protocol', 'u8'],
  ['pad', 'u8'],
] as const);
export const agentPortValue = defineStruct('agent_port_value', [['unused', 'u32']] as const);

/** The rule id the datapath gives drops of connections to the agent's ports (MB_RULE_AGENT_PORTS). */
export const RULE_AGENT_PORTS = 0xffffffff;

/** Canonical order: side a is the lower address (then port); CT_FLAGS.ORIG_B says who started it. */
export const ctKey = defineStruct('ct_key', [
  ['addr_a', 'ipv4'],
  ['addr_b', 'ipv4'],
  ['port_a', 'be16'],
  ['port_b', 'be16'],
  ['protocol', 'u8'],
  ['pad', { bytes: 3 }],
] as const);

/** One entry per connection; `egress_*` is the originating local endpoint's judgement, `ingress_*` the accepting one's (ep_id 0: none here). */
export const ctValue = defineStruct('ct_value', [
  ['last_seen_ns', 'u64'],
  ['packets', 'u64'],
  ['bytes', 'u64'],
  ['src_identity', 'u32'],
  ['dst_identity', 'u32'],
  ['egress_ep_id', 'u32'],
  ['egress_policy_revision', 'u32'],
  ['egress_ipcache_revision', 'u32'],
  ['ingress_ep_id', 'u32'],
  ['ingress_policy_revision', 'u32'],
  ['ingress_ipcache_revision', 'u32'],
  ['tcp_flags_seen', 'u8'],
  ['tx_flags_seen', 'u8'],
  ['rx_flags_seen', 'u8'],
  ['flags', 'u8'],
  ['last_tx_report', 'u32'],
  ['last_rx_report', 'u32'],
  ['nat_addr', 'ipv4'],
  ['nat_port', 'be16'],
  ['pad', 'u16'],
] as const);

/** ct_value.flags: SERVICE entries are keyed by a client's tuple to a frontend (nat = the
 * backend); REVNAT entries are translated connections (nat = the frontend replies come from). */
export const CT_FLAGS = { SERVICE: 1 << 0, REVNAT: 1 << 1, ORIG_B: 1 << 2 } as const;

export const configKey = defineStruct('config_key', [['index', 'u32']] as const);

export const datapathConfig = defineStruct('datapath_config', [
  ['aggregation', 'u32'],
  ['report_interval', 'u32'],
  ['fast_path', 'u32'],
  ['ipcache_revision', 'u32'],
  ['ns_per_jiffy', 'u32'],
] as const);

/** Monitor aggregation levels (Cilium's numbers). */
export const AGGREGATION = { none: 0, low: 2, medium: 3, maximum: 4 } as const;
export type AggregationLevel = keyof typeof AGGREGATION;

export const flowEvent = defineStruct('flow_event', [
  ['timestamp_ns', 'u64'],
  ['type', 'u8'],
  ['subtype', 'u8'],
  ['direction', 'u8'],
  ['verdict', 'u8'],
  ['ct_state', 'u8'],
  ['tcp_flags', 'u8'],
  ['protocol', 'u8'],
  ['match_type', 'u8'],
  ['ep_id', 'u32'],
  ['ifindex', 'u32'],
  ['src_identity', 'u32'],
  ['dst_identity', 'u32'],
  ['rule_id', 'u32'],
  ['saddr', 'ipv4'],
  ['daddr', 'ipv4'],
  ['sport', 'be16'],
  ['dport', 'be16'],
  ['icmp_type', 'u8'],
  ['icmp_code', 'u8'],
  ['ethertype', 'be16'],
  ['orig_len', 'u32'],
  ['src_mac', 'mac'],
  ['dst_mac', 'mac'],
  ['pad2', 'u32'],
] as const);

export const lbServiceKey = defineStruct('lb_service_key', [
  ['vip', 'ipv4'],
  ['port', 'be16'],
  ['protocol', 'u8'],
  ['pad', 'u8'],
] as const);

export const lbServiceValue = defineStruct('lb_service_value', [
  ['service_id', 'u32'],
  ['count', 'u16'],
  ['algorithm', 'u8'],
  ['flags', 'u8'],
  ['maglev_size', 'u32'],
  ['affinity_timeout', 'u32'],
] as const);

export const LB_ALGORITHM = { random: 1, maglev: 2 } as const;

export const lbMaglevKey = defineStruct('lb_maglev_key', [
  ['service_id', 'u32'],
  ['index', 'u32'],
] as const);

export const lbMaglevValue = defineStruct('lb_maglev_value', [['slot', 'u32']] as const);

export const lbAffinityKey = defineStruct('lb_affinity_key', [
  ['client', 'u64'],
  ['service_id', 'u32'],
  ['kind', 'u8'],
  ['pad', { bytes: 3 }],
] as const);

/** lb_affinity_key.kind: socket-level translation knows a client by its netns, tc-level by its address. */
export const LB_CLIENT = { NETNS: 1, IP: 2 } as const;

export const lbAffinityValue = defineStruct('lb_affinity_value', [
  ['last_used_ns', 'u64'],
  ['ip', 'ipv4'],
  ['port', 'be16'],
  ['pad', 'u16'],
] as const);

export const lbMemberKey = defineStruct('lb_member_key', [
  ['service_id', 'u32'],
  ['ip', 'ipv4'],
  ['port', 'be16'],
  ['pad', 'u16'],
] as const);

export const lbMemberValue = defineStruct('lb_member_value', [['weight', 'u32']] as const);

export const lbBackendKey = defineStruct('lb_backend_key', [
  ['service_id', 'u32'],
  ['slot', 'u32'],
] as const);

export const lbBackendValue = defineStruct('lb_backend_value', [
  ['ip', 'ipv4'],
  ['port', 'be16'],
  ['pad', 'u16'],
] as const);

export const lbRevnatKey = defineStruct('lb_revnat_key', [
  ['cookie', 'u64'],
  ['ip', 'ipv4'],
  ['port', 'be16'],
  ['pad', 'u16'],
] as const);

export const lbRevnatValue = defineStruct('lb_revnat_value', [
  ['vip', 'ipv4'],
  ['port', 'be16'],
  ['pad', 'u16'],
] as const);

export const CT_STATE = { NEW: 0, ESTABLISHED: 1, REPLY: 2, RELATED: 3 } as const;
/** Trace observation points as Cilium's monitor numbers them (TraceToLxc, TraceFromLxc): Hubble's event_type.sub_type. */
export const TRACE_POINT = { TO_ENDPOINT: 0, FROM_ENDPOINT: 5 } as const;

export const ETHERTYPE_IPV4 = 0x0800;

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
export const sharedStructs = [
  ipcacheKey,
  ipcacheValue,
  endpointInfo,
  metricsKey,
  metricsValue,
  policyKey,
  policyValue,
  agentPortKey,
  ctKey,
  ctValue,
  datapathConfig,
  flowEvent,
  lbServiceKey,
  lbServiceValue,
  lbBackendKey,
  lbBackendValue,
  lbRevnatKey,
  lbRevnatValue,
  lbMaglevKey,
  lbAffinityKey,
  lbAffinityValue,
  lbMemberKey,
];

/** Service maps (bpf/include/lb.h), shared by bpf/sock.c and bpf/endpoint.c. */
export const LB_MAPS = {
  services: 'mb_lb_services',
  backends: 'mb_lb_backends',
  revnat: 'mb_lb_revnat',
  maglev: 'mb_lb_maglev',
  affinity: 'mb_lb_affinity',
  members: 'mb_lb_members',
} as const;

export const DIRECTION = { INGRESS: 1, EGRESS: 2 } as const;

/** A direction as the API and CLI spell it. */
export function directionName(d: number): 'INGRESS' | 'EGRESS' {
  return d === DIRECTION.INGRESS ? 'INGRESS' : 'EGRESS';
}

/** Datapath outcome codes (0 = forwarded; drops use Cilium's drop reason numbers). */
export const REASON = {
  FORWARDED: 0,
  INVALID_SOURCE_IP: 132,
  POLICY_DENIED: 133,
  INVALID_PACKET_DROPPED: 134,
  UNSUPPORTED_L3_PROTOCOL: 139,
  ERROR_WRITING_TO_PACKET: 141,
  CT_MAP_INSERTION_FAILED: 155,
  SERVICE_BACKEND_NOT_FOUND: 158,
  FIB_LOOKUP_FAILED: 169,
  POLICY_DENY: 181,
} as const;
export const reasonNames: Record<number, string> = Object.fromEntries(Object.entries(REASON).map(([name, code]) => [code, name]));

/** Map names as declared in bpf/include/maps.h. */
export const MAPS = {
  ipcache: 'mb_ipcache',
  endpoints: 'mb_endpoints',
  lxc: 'mb_lxc',
  metrics: 'mb_metrics',
  policy: 'mb_policy',
  ct: 'mb_ct',
  events: 'mb_events',
  eventsLost: 'mb_events_lost',
  config: 'mb_config',
  agentPorts: 'mb_agent_ports',
} as const;
