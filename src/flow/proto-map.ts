/* Mapping between our flow types (types.ts, Hubble's JSON shape) and the objects @grpc/proto-loader
 * encodes and decodes for proto/flow/flow.proto and proto/observer/observer.proto, loaded with
 * { keepCase: true, enums: String, longs: Number, defaults: false, oneofs: true }.
 *
 * Our Flow already uses the proto field names, so the mapping is mostly a copy; what differs:
 * timestamps (RFC 3339 strings here, google.protobuf.Timestamp there), is_reply (a plain boolean
 * here, google.protobuf.BoolValue there) and drop_reason_desc (sent as Cilium's numeric code when we
 * have it, which is the DropReason enum's value, so a code missing from our enum still travels).
 * Decoded messages leave out fields at their default (defaults: false): a 0, false, "" or empty
 * list arrives as absent. */

import { formatTimestampNs, NS_PER_SECOND, parseTimestampNs } from '../util/time.js';
import type { AgentEventRecord, GetAgentEventsRequest } from './agent-events.js';
import { dropReasonName } from './proto.js';
import type {
  Flow,
  FlowEndpoint,
  FlowFilter,
  FlowPolicy,
  GetFlowsRequest,
  Layer4,
  TCPFlags,
  TrafficDirection,
  Verdict,
  Workload,
} from './types.js';

/** google.protobuf.Timestamp as proto-loader gives it (absent fields are 0). */
export interface ProtoTimestamp {
  seconds?: number | string;
  nanos?: number;
}

/** The same fields as our types (proto-loader keeps the proto field names), all optional. */
export type ProtoPolicy = Partial<FlowPolicy>;
export type ProtoEndpoint = FlowEndpoint;

export interface ProtoFlow {
  time?: ProtoTimestamp;
  uuid?: string;
  verdict?: string;
  drop_reason?: number;
  drop_reason_desc?: string | number;
  ethernet?: { source?: string; destination?: string };
  IP?: { source?: string; destination?: string; ipVersion?: string; encrypted?: boolean };
  l4?: Layer4 & { protocol?: string };
  source?: ProtoEndpoint;
  destination?: ProtoEndpoint;
  Type?: string;
  node_name?: string;
  reply?: boolean;
  event_type?: { type?: number; sub_type?: number };
  traffic_direction?: string;
  policy_match_type?: number;
  trace_observation_point?: string;
  is_reply?: { value?: boolean };
  interface?: { index?: number; name?: string };
  Summary?: string;
  source_service?: { name?: string; namespace?: string };
  destination_service?: { name?: string; namespace?: string };
  egress_allowed_by?: ProtoPolicy[];
  ingress_allowed_by?: ProtoPolicy[];
  egress_denied_by?: ProtoPolicy[];
  ingress_denied_by?: ProtoPolicy[];
  default_deny_by?: ProtoPolicy[];
}

export interface ProtoLostEvent {
  source?: string;
  num_events_lost?: number;
}

/** relay.NodeStatusEvent as decoded (NodeState by name). */
export interface ProtoNodeStatusEvent {
  state_change?: string;
  node_names?: string[];
  message?: string;
}

export interface ProtoGetFlowsResponse {
  flow?: ProtoFlow;
  node_status?: ProtoNodeStatusEvent;
  lost_events?: ProtoLostEvent;
  response_types?: string;
  node_name?: string;
  time?: ProtoTimestamp;
}

/** flow.FlowFilter as decoded: repeated fields hold strings, numbers, booleans or messages. */
export type ProtoFlowFilter = { [field: string]: unknown };

export interface ProtoGetFlowsRequest {
  number?: number | string;
  first?: boolean;
  follow?: boolean;
  blacklist?: ProtoFlowFilter[];
  whitelist?: ProtoFlowFilter[];
  since?: ProtoTimestamp;
  until?: ProtoTimestamp;
  field_mask?: unknown;
  experimental?: unknown;
}

/** A request we cannot serve as asked (bad timestamp, filter field we do not implement). */
export class ProtoMapError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtoMapError';
  }
}

// ---- timestamps ----

// google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
const MIN_SECONDS = -62135596800;
const MAX_SECONDS = 253402300799;

/** An RFC 3339 time (any offset, 0-9 fraction digits) as nanoseconds since the epoch, for exact comparisons. */
export function rfc3339ToNanos(text: string): bigint {
  const ns = parseTimestampNs(text);
  if (ns === undefined) throw new ProtoMapError(`not an RFC 3339 timestamp: ${JSON.stringify(text)}`);
  return ns;
}

/** "2024-05-01T10:00:00.123456789Z" (any offset, 0-9 fraction digits) -> {seconds, nanos} in UTC. */
export function timestampFromRfc3339(text: string): { seconds: number; nanos: number } {
  const ns = rfc3339ToNanos(text);
  let seconds = ns / NS_PER_SECOND;
  let nanos = ns % NS_PER_SECOND;
  if (nanos < 0n) [seconds, nanos] = [seconds - 1n, nanos + NS_PER_SECOND];
  return { seconds: Number(seconds), nanos: Number(nanos) };
}

/** {seconds, nanos} -> "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ": UTC, always nine fraction digits. */
export function rfc3339FromTimestamp(ts: ProtoTimestamp): string {
  const seconds = Number(ts.seconds ?? 0);
  const nanos = ts.nanos ?? 0;
  if (!Number.isInteger(seconds) || seconds < MIN_SECONDS || seconds > MAX_SECONDS) {
    throw new ProtoMapError(`timestamp seconds out of range: ${String(ts.seconds)}`);
  }
  if (!Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999) {
    throw new ProtoMapError(`timestamp nanos out of range: ${String(ts.nanos)}`);
  }
  return formatTimestampNs(BigInt(seconds) * NS_PER_SECOND + BigInt(nanos));
}

// ---- Flow -> proto ----

function policies(list: FlowPolicy[] | undefined): ProtoPolicy[] | undefined {
  return list?.map((p) => ({
    name: p.name,
    namespace: p.namespace,
    labels: p.labels,
    revision: p.revision,
    kind: p.kind,
  }));
}

function endpoint(ep: FlowEndpoint | undefined): ProtoEndpoint | undefined {
  if (!ep) return undefined;
  return {
    ID: ep.ID,
    identity: ep.identity,
    cluster_name: ep.cluster_name,
    namespace: ep.namespace,
    labels: ep.labels,
    pod_name: ep.pod_name,
    workloads: ep.workloads?.map((w) => ({ ...w })),
  };
}

function layer4(l4: Layer4 | undefined): ProtoFlow['l4'] {
  if (!l4) return undefined;
  // Layer4 is a oneof: set exactly one member, in the proto's order of preference.
  if (l4.TCP) return { TCP: { ...l4.TCP, flags: l4.TCP.flags && { ...l4.TCP.flags } } };
  if (l4.UDP) return { UDP: { ...l4.UDP } };
  if (l4.ICMPv4) return { ICMPv4: { ...l4.ICMPv4 } };
  if (l4.SCTP) return { SCTP: { ...l4.SCTP } };
  return {};
}

/** Our Flow as a flow.Flow message object (fields we do not have are left unset). */
export function flowToProto(flow: Flow): ProtoFlow {
  const out: ProtoFlow = {
    time: timestampFromRfc3339(flow.time),
    uuid: flow.uuid,
    verdict: flow.verdict,
    drop_reason: flow.drop_reason,
    // The numeric code is the enum value (Hubble's DropReason mirrors Cilium's codes).
    drop_reason_desc: flow.drop_reason ?? flow.drop_reason_desc,
    ethernet: flow.ethernet && { ...flow.ethernet },
    IP: flow.IP && { ...flow.IP },
    l4: layer4(flow.l4),
    source: endpoint(flow.source),
    destination: endpoint(flow.destination),
    Type: flow.Type,
    node_name: flow.node_name,
    event_type: { ...flow.event_type },
    traffic_direction: flow.traffic_direction,
    policy_match_type: flow.policy_match_type,
    trace_observation_point: flow.trace_observation_point,
    interface: flow.interface && { ...flow.interface },
    Summary: flow.Summary,
    source_service: flow.source_service && { ...flow.source_service },
    destination_service: flow.destination_service && { ...flow.destination_service },
    egress_allowed_by: policies(flow.egress_allowed_by),
    ingress_allowed_by: policies(flow.ingress_allowed_by),
    egress_denied_by: policies(flow.egress_denied_by),
    ingress_denied_by: policies(flow.ingress_denied_by),
    default_deny_by: policies(flow.default_deny_by),
  };
  if (flow.is_reply !== undefined) {
    out.is_reply = { value: flow.is_reply };
    out.reply = flow.is_reply; // Hubble still fills the deprecated twin for older readers
  }
  return out;
}

// ---- proto GetFlowsRequest -> ours ----

const TCP_FLAG_NAMES = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR', 'NS'] as const;

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}
const strings = (value: unknown) => list(value).map((v) => String(v));
const numbers = (value: unknown) => list(value).map((v) => Number(v));

function eventTypeFilter(value: unknown): NonNullable<FlowFilter['event_type']>[number] {
  const e = (value ?? {}) as { type?: number; match_sub_type?: boolean; sub_type?: number };
  return e.match_sub_type ? { type: e.type ?? 0, match_sub_type: true, sub_type: e.sub_type ?? 0 } : { type: e.type ?? 0 };
}

function workload(value: unknown): Workload {
  const w = (value ?? {}) as { name?: unknown; kind?: unknown };
  return { ...(w.name ? { name: String(w.name) } : {}), ...(w.kind ? { kind: String(w.kind) } : {}) };
}

function tcpFlags(value: unknown): TCPFlags {
  const f = (value ?? {}) as Record<string, unknown>;
  const out: TCPFlags = {};
  for (const name of TCP_FLAG_NAMES) if (f[name] === true) out[name] = true;
  return out;
}

/** FlowFilter fields our FlowFilter carries, each with its conversion. */
const SUPPORTED: { [K in keyof FlowFilter]-?: (value: unknown) => NonNullable<FlowFilter[K]> } = {
  uuid: strings,
  source_ip: strings,
  destination_ip: strings,
  source_pod: strings,
  destination_pod: strings,
  source_label: strings,
  destination_label: strings,
  source_service: strings,
  destination_service: strings,
  source_workload: (v) => list(v).map(workload),
  destination_workload: (v) => list(v).map(workload),
  source_identity: numbers,
  destination_identity: numbers,
  verdict: (v) => strings(v) as Verdict[], // an enum number we do not know stays a string that matches nothing
  event_type: (v) => list(v).map(eventTypeFilter),
  protocol: strings,
  source_port: strings,
  destination_port: strings,
  reply: (v) => list(v).map((b) => b === true),
  traffic_direction: (v) => strings(v) as TrafficDirection[],
  tcp_flags: (v) => list(v).map(tcpFlags),
  node_name: strings,
  ip_version: strings,
};

function isSet(value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.values(value).some(isSet); // e.g. experimental {}
  return true;
}

/**
 * One proto FlowFilter as ours, field by field. A field we do not implement (L7, FQDN, cluster,
 * CEL, ...) cannot be ignored without changing which flows match, so it is
 * refused with a ProtoMapError naming it.
 */
export function flowFilterFromProto(filter: ProtoFlowFilter, where = 'filter'): FlowFilter {
  const out: Record<string, unknown> = {};
  const unsupported: string[] = [];
  for (const [field, value] of Object.entries(filter)) {
    if (!isSet(value)) continue;
    const convert = (SUPPORTED as Record<string, ((v: unknown) => unknown) | undefined>)[field];
    if (convert) out[field] = convert(value);
    else unsupported.push(field);
  }
  if (unsupported.length > 0) {
    throw new ProtoMapError(`${where}: filter field${unsupported.length > 1 ? 's' : ''} ${unsupported.join(', ')} not supported by Membrane`);
  }
  return out as FlowFilter;
}

/** Which events a Get*Request asks for (number, first, follow, since, until): the fields every
 * observer request shares; 0 or absent means unset, as in proto3. */
function windowFromProto(req: ProtoGetAgentEventsRequest): GetAgentEventsRequest {
  const out: GetAgentEventsRequest = {};
  const number = Number(req.number ?? 0);
  if (number > 0) out.number = number;
  if (req.first) out.first = true;
  if (req.follow) out.follow = true;
  if (req.since) out.since = rfc3339FromTimestamp(req.since);
  if (req.until) out.until = rfc3339FromTimestamp(req.until);
  return out;
}

/** A decoded observer.GetFlowsRequest as our GetFlowsRequest. Throws ProtoMapError when it cannot be served. */
export function getFlowsRequestFromProto(req: ProtoGetFlowsRequest): GetFlowsRequest {
  const out: GetFlowsRequest = windowFromProto(req);
  if (req.whitelist?.length) out.whitelist = req.whitelist.map((f, i) => flowFilterFromProto(f, `whitelist[${i}]`));
  if (req.blacklist?.length) out.blacklist = req.blacklist.map((f, i) => flowFilterFromProto(f, `blacklist[${i}]`));
  // field_mask (and experimental.field_mask) is optional for servers to honour: whole flows are returned.
  return out;
}

// ---- agent events ----

/** observer.GetAgentEventsRequest as decoded. */
export interface ProtoGetAgentEventsRequest {
  number?: number | string;
  first?: boolean;
  follow?: boolean;
  since?: ProtoTimestamp;
  until?: ProtoTimestamp;
}

/** A decoded GetAgentEventsRequest (or GetDebugEventsRequest, the same fields) as ours. */
export function getAgentEventsRequestFromProto(req: ProtoGetAgentEventsRequest): GetAgentEventsRequest {
  const out = windowFromProto(req);
  if (out.first && out.follow) throw new ProtoMapError('first cannot be combined with follow');
  return out;
}

/** An agent event record as an observer.GetAgentEventsResponse message object. */
export function agentEventResponseToProto(record: AgentEventRecord): { agent_event: unknown; node_name: string; time: ProtoTimestamp } {
  const { agent_start, ...event } = record.agent_event;
  return {
    agent_event: agent_start ? { ...event, agent_start: { time: timestampFromRfc3339(agent_start.time) } } : event,
    node_name: record.node_name,
    time: timestampFromRfc3339(record.time),
  };
}

// ---- the other way: what a relay sends to a node and reads back ----

/** Our FlowFilter as a flow.FlowFilter message object: the same field names and shapes. */
export function flowFilterToProto(filter: FlowFilter): ProtoFlowFilter {
  const out: ProtoFlowFilter = {};
  for (const [field, value] of Object.entries(filter)) {
    if (Array.isArray(value) && value.length > 0) out[field] = value.map((v: unknown) => (typeof v === 'object' && v !== null ? { ...v } : v));
  }
  return out;
}

/** Our GetFlowsRequest as an observer.GetFlowsRequest message object (what a relay asks each node). */
export function getFlowsRequestToProto(req: GetFlowsRequest): ProtoGetFlowsRequest {
  const out: ProtoGetFlowsRequest = {};
  if (req.number !== undefined) out.number = req.number;
  if (req.first) out.first = true;
  if (req.follow) out.follow = true;
  if (req.since !== undefined) out.since = timestampFromRfc3339(req.since);
  if (req.until !== undefined) out.until = timestampFromRfc3339(req.until);
  if (req.whitelist?.length) out.whitelist = req.whitelist.map(flowFilterToProto);
  if (req.blacklist?.length) out.blacklist = req.blacklist.map(flowFilterToProto);
  return out;
}

function policiesFromProto(list: ProtoPolicy[] | undefined): FlowPolicy[] | undefined {
  return list?.length ? list.map((p) => ({ ...p, name: p.name ?? '', kind: p.kind ?? '' })) : undefined;
}

/**
 * A flow.Flow message object (as another node sent it) as our Flow: flowToProto undone.
 * Fields left out on the wire (proto3 defaults) stay absent, which is how the JSON printer
 * leaves them out anyway. A drop reason our enum lacks arrives as its number and keeps it.
 */
export function flowFromProto(p: ProtoFlow, nodeName: string): Flow {
  const flow: Flow = {
    time: rfc3339FromTimestamp(p.time ?? {}),
    uuid: p.uuid ?? '',
    verdict: (p.verdict ?? 'VERDICT_UNKNOWN') as Verdict,
    Type: 'L3_L4',
    node_name: p.node_name || nodeName,
    event_type: { type: p.event_type?.type ?? 0, ...(p.event_type?.sub_type !== undefined ? { sub_type: p.event_type.sub_type } : {}) },
    Summary: p.Summary ?? '',
  };
  if (p.drop_reason !== undefined) flow.drop_reason = p.drop_reason;
  if (p.drop_reason_desc !== undefined) flow.drop_reason_desc = typeof p.drop_reason_desc === 'number' ? dropReasonName(p.drop_reason_desc) : p.drop_reason_desc;
  if (p.ethernet) flow.ethernet = { source: p.ethernet.source ?? '', destination: p.ethernet.destination ?? '' };
  if (p.IP) flow.IP = { source: p.IP.source ?? '', destination: p.IP.destination ?? '', ipVersion: 'IPv4' };
  if (p.l4) {
    const { protocol: _oneofName, ...l4 } = p.l4;
    flow.l4 = l4;
  }
  if (p.source) flow.source = p.source;
  if (p.destination) flow.destination = p.destination;
  if (p.traffic_direction !== undefined) flow.traffic_direction = p.traffic_direction as TrafficDirection;
  if (p.policy_match_type !== undefined) flow.policy_match_type = p.policy_match_type;
  if (p.trace_observation_point !== undefined) flow.trace_observation_point = p.trace_observation_point as Flow['trace_observation_point'];
  if (p.is_reply !== undefined) flow.is_reply = p.is_reply.value === true;
  else if (p.reply !== undefined) flow.is_reply = p.reply;
  if (p.interface) flow.interface = { index: p.interface.index ?? 0, ...(p.interface.name !== undefined ? { name: p.interface.name } : {}) };
  if (p.source_service) flow.source_service = { name: p.source_service.name ?? '', ...(p.source_service.namespace !== undefined ? { namespace: p.source_service.namespace } : {}) };
  if (p.destination_service) flow.destination_service = { name: p.destination_service.name ?? '', ...(p.destination_service.namespace !== undefined ? { namespace: p.destination_service.namespace } : {}) };
  for (const key of ['egress_allowed_by', 'ingress_allowed_by', 'egress_denied_by', 'ingress_denied_by', 'default_deny_by'] as const) {
    const list = policiesFromProto(p[key]);
    if (list) flow[key] = list;
  }
  return flow;
}
