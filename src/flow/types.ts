/* Flows in Hubble's JSON shape: the proto field names of flow.proto (not lowerCamelCase), enums
 * as strings, default values left out — what `hubble observe -o json` prints inside
 * {"flow": ...}. One type serves the flow ring, the filters, the printers, the API stream and the
 * gRPC server (which maps it onto the same proto fields). */

export type Verdict = 'VERDICT_UNKNOWN' | 'FORWARDED' | 'DROPPED' | 'ERROR' | 'AUDIT' | 'REDIRECTED' | 'TRACED' | 'TRANSLATED';
export type TrafficDirection = 'TRAFFIC_DIRECTION_UNKNOWN' | 'INGRESS' | 'EGRESS';
export type ObservationPoint = 'UNKNOWN_POINT' | 'TO_ENDPOINT' | 'FROM_ENDPOINT' | 'TO_STACK' | 'FROM_STACK' | 'TO_OVERLAY' | 'TO_NETWORK';

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

/** Hubble's Workload: what runs the endpoint. Membrane's endpoints have no owner object; the
 * decoder names the workload after the endpoint's `app.kubernetes.io/name` (else `app`) label. */
export interface Workload {
  name?: string;
  kind?: string;
}

export interface FlowEndpoint {
  ID?: number;
  identity?: number;
  cluster_name?: string;
  namespace?: string;
  labels?: string[];
  pod_name?: string;
  workloads?: Workload[];
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
  /**
   * The service a backend address belongs to (socket load balancing gives packets backend
   * addresses). Services are not namespaced in Membrane: flows put them in "default".
   */
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
  /** `[namespace/][name-prefix]`, as pods ("default" when no namespace is given). */
  source_service?: string[];
  destination_service?: string[];
  /** A workload matches when its name and kind equal the filter's (an empty one matches any). */
  source_workload?: Workload[];
  destination_workload?: Workload[];
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
