/* Flows in Hubble's JSON shape: the proto field names of flow.proto (not lowerCamelCase), enums
 * as strings, default values left out — what `hubble observe -o json` prints inside
 * {"flow": ...}. One type serves the flow ring, the filters, the printers, the API stream and the
 * gRPC server (which maps it onto the same proto fields). */

export type Verdict = 'VERDICT_UNKNOWN' | 'FORWARDED' | 'DROPPED' | 'ERROR' | 'AUDIT' | 'REDIRECTED' | 'TRACED' | 'TRANSLATED';
export type TrafficDirection = 'TRAFFIC_DIRECTION_UNKNOWN' | 'INGRESS' | 'EGRESS';
export type ObservationPoint = 'UNKNOWN_POINT' | 'TO_ENDPOINT' | 'FROM_ENDPOINT' | 'TO_STACK' | 'FROM_STACK';

export interface TCPFlags {
  FIN?: boolean;
  SYN?: boolean;
  RST?: boolean;
  PSH?: boolean;
  ACK?: boolean;
  URG?: boolean;
  ECE?: boolean;
  CWR?: boolean;
  NS?: boolean;
}

export interface Layer4 {
  TCP?: { source_port?: number; destination_port?: number; flags?: TCPFlags };
  UDP?: { source_port?: number; destination_port?: number };
  SCTP?: { source_port?: number; destination_port?: number };
  ICMPv4?: { type?: number; code?: number };
}

export interface FlowEndpoint {
  ID?: number;
  identity?: number;
  cluster_name?: string;
  namespace?: string;
  labels?: string[];
  pod_name?: string;
}

export interface FlowPolicy {
  name: string;
  namespace?: string;
  labels?: string[];
  revision?: number;
  kind: string;
}

export interface Flow {
  time: string; // RFC 3339 with nanoseconds
  uuid: string;
  verdict: Verdict;
  drop_reason?: number;
  drop_reason_desc?: string;
  ethernet?: { source: string; destination: string };
  IP?: { source: string; destination: string; ipVersion: 'IPv4' };
  l4?: Layer4;
  source?: FlowEndpoint;
  destination?: FlowEndpoint;
  Type: 'L3_L4';
  node_name: string;
  event_type: { type: number; sub_type?: number };
  traffic_direction?: TrafficDirection;
  policy_match_type?: number;
  trace_observation_point?: ObservationPoint;
  is_reply?: boolean;
  interface?: { index: number; name?: string };
  Summary: string;
  /** The service a backend address belongs to (socket load balancing gives packets backend addresses). */
  source_service?: { name: string; namespace?: string };
  destination_service?: { name: string; namespace?: string };
  egress_allowed_by?: FlowPolicy[];
  ingress_allowed_by?: FlowPolicy[];
  egress_denied_by?: FlowPolicy[];
  ingress_denied_by?: FlowPolicy[];
  /**
   * Beyond Hubble: on a drop by default deny (no allow matched), the policies whose rules put the
   * endpoint into default deny in that direction.
   */
  default_deny_by?: FlowPolicy[];
}

/** Hubble's FlowFilter (observer.proto): every set field must match; a repeated field matches any of its values. */
export interface FlowFilter {
  uuid?: string[];
  source_ip?: string[];
  destination_ip?: string[];
  source_pod?: string[];
  destination_pod?: string[];
  source_label?: string[];
  destination_label?: string[];
  source_identity?: number[];
  destination_identity?: number[];
  verdict?: Verdict[];
  event_type?: { type: number; match_sub_type?: boolean; sub_type?: number }[];
  protocol?: string[];
  source_port?: string[];
  destination_port?: string[];
  reply?: boolean[];
  traffic_direction?: TrafficDirection[];
  tcp_flags?: TCPFlags[];
  node_name?: string[];
  ip_version?: string[];
}

/** Monitor message types (Cilium's numbers) carried in event_type.type. */
export const EVENT_TYPE = { DROP: 1, TRACE: 4, POLICY_VERDICT: 5 } as const;

/** Drop reasons by Cilium's code, as Hubble's DropReason enum names them (proto/flow/flow.proto). */
export const DROP_REASONS: Record<number, string> = {
  130: 'INVALID_SOURCE_MAC',
  131: 'INVALID_DESTINATION_MAC',
  132: 'INVALID_SOURCE_IP',
  133: 'POLICY_DENIED',
  134: 'INVALID_PACKET_DROPPED',
  135: 'CT_TRUNCATED_OR_INVALID_HEADER',
  136: 'CT_MISSING_TCP_ACK_FLAG',
  137: 'CT_UNKNOWN_L4_PROTOCOL',
  138: 'CT_CANNOT_CREATE_ENTRY_FROM_PACKET',
  139: 'UNSUPPORTED_L3_PROTOCOL',
  140: 'MISSED_TAIL_CALL',
  141: 'ERROR_WRITING_TO_PACKET',
  142: 'UNKNOWN_L4_PROTOCOL',
  143: 'UNKNOWN_ICMPV4_CODE',
  144: 'UNKNOWN_ICMPV4_TYPE',
  145: 'UNKNOWN_ICMPV6_CODE',
  146: 'UNKNOWN_ICMPV6_TYPE',
  147: 'ERROR_RETRIEVING_TUNNEL_KEY',
  148: 'ERROR_RETRIEVING_TUNNEL_OPTIONS',
  149: 'INVALID_GENEVE_OPTION',
  150: 'UNKNOWN_L3_TARGET_ADDRESS',
  151: 'STALE_OR_UNROUTABLE_IP',
  152: 'NO_MATCHING_LOCAL_CONTAINER_FOUND',
  153: 'ERROR_WHILE_CORRECTING_L3_CHECKSUM',
  154: 'ERROR_WHILE_CORRECTING_L4_CHECKSUM',
  155: 'CT_MAP_INSERTION_FAILED',
  156: 'INVALID_IPV6_EXTENSION_HEADER',
  157: 'IP_FRAGMENTATION_NOT_SUPPORTED',
  158: 'SERVICE_BACKEND_NOT_FOUND',
  160: 'NO_TUNNEL_OR_ENCAPSULATION_ENDPOINT',
  161: 'FAILED_TO_INSERT_INTO_PROXYMAP',
  162: 'REACHED_EDT_RATE_LIMITING_DROP_HORIZON',
  163: 'UNKNOWN_CONNECTION_TRACKING_STATE',
  164: 'LOCAL_HOST_IS_UNREACHABLE',
  165: 'NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION',
  166: 'UNSUPPORTED_L2_PROTOCOL',
  167: 'NO_MAPPING_FOR_NAT_MASQUERADE',
  168: 'UNSUPPORTED_PROTOCOL_FOR_NAT_MASQUERADE',
  169: 'FIB_LOOKUP_FAILED',
  170: 'ENCAPSULATION_TRAFFIC_IS_PROHIBITED',
  171: 'INVALID_IDENTITY',
  172: 'UNKNOWN_SENDER',
  173: 'NAT_NOT_NEEDED',
  174: 'IS_A_CLUSTERIP',
  175: 'FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND',
  176: 'FORBIDDEN_ICMPV6_MESSAGE',
  177: 'DENIED_BY_LB_SRC_RANGE_CHECK',
  178: 'SOCKET_LOOKUP_FAILED',
  179: 'SOCKET_ASSIGN_FAILED',
  180: 'PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL',
  181: 'POLICY_DENY',
  182: 'VLAN_FILTERED',
  183: 'INVALID_VNI',
  184: 'INVALID_TC_BUFFER',
  185: 'NO_SID',
  186: 'MISSING_SRV6_STATE',
  187: 'NAT46',
  188: 'NAT64',
  189: 'AUTH_REQUIRED',
  190: 'CT_NO_MAP_FOUND',
  191: 'SNAT_NO_MAP_FOUND',
  192: 'INVALID_CLUSTER_ID',
  193: 'UNSUPPORTED_PROTOCOL_FOR_DSR_ENCAP',
  194: 'NO_EGRESS_GATEWAY',
  195: 'UNENCRYPTED_TRAFFIC',
  196: 'TTL_EXCEEDED',
  197: 'NO_NODE_ID',
  198: 'DROP_RATE_LIMITED',
  199: 'IGMP_HANDLED',
  200: 'IGMP_SUBSCRIBED',
  201: 'MULTICAST_HANDLED',
  202: 'DROP_HOST_NOT_READY',
  203: 'DROP_EP_NOT_READY',
  204: 'DROP_NO_EGRESS_IP',
  205: 'DROP_PUNT_PROXY',
};

export interface GetFlowsRequest {
  number?: number;
  first?: boolean;
  follow?: boolean;
  since?: string;
  until?: string;
  whitelist?: FlowFilter[];
  blacklist?: FlowFilter[];
}

export interface GetFlowsResponse {
  flow: Flow;
  node_name: string;
  time: string;
}

export interface LostEvents {
  source: 'PERF_EVENT_RING_BUFFER' | 'OBSERVER_EVENTS_QUEUE' | 'HUBBLE_RING_BUFFER';
  num_events_lost: number;
}

/** What the flow store offers to its readers (API stream, gRPC server, metrics). */
export interface FlowSource {
  /** Flows in the ring matching the request (without follow). */
  query(req: GetFlowsRequest): Flow[];
  /** Calls `onFlow` for every new flow (and `onLost` with events the datapath lost) until the returned function is called. */
  subscribe(onFlow: (flow: Flow) => void, onLost?: (lost: number) => void): () => void;
  status(): { num_flows: number; max_flows: number; seen_flows: number; uptime_ns: number; lost_events: number; followers: number };
  nodeName: string;
}
