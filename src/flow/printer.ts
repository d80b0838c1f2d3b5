/* Flows printed the way `hubble observe` prints them (hubble/pkg/printer in Cilium): compact lines,
 * JSON (one GetFlowsResponse per line, proto field names, default values left out), a table and
 * KEY: VALUE records. Timestamps print in UTC with Go's StampMilli layout ("Nov 21 20:52:01.123"),
 * as Hubble does. */
import { renderTable } from '../util/table.js';
import { RESERVED_IDENTITIES } from '../identity/reserved.js';
import { formatTimestampNs, parseTimestampNs, utcParts } from '../util/time.js';
import { DROP_REASON, EVENT_TYPE } from '../datapath/layouts.js';
import type { Flow, FlowEndpoint, FlowPolicy, GetFlowsResponse, Layer4 } from './types.js';

// ---------------------------------------------------------------------------------------------
// Pieces shared by the text formats

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Go's time.StampMilli ("Jan _2 15:04:05.000") in UTC; "N/A" when the time cannot be parsed. */
export function formatStampMilli(time: string): string {
  const ns = parseTimestampNs(time);
  if (ns === undefined) return 'N/A';
  const p = utcParts(ns);
  const two = (n: number) => String(n).padStart(2, '0');
  const ms = String(Math.floor(p.nanos / 1_000_000)).padStart(3, '0');
  return `${MONTHS[p.m - 1]} ${String(p.d).padStart(2, ' ')} ${two(p.h)}:${two(p.mi)}:${two(p.s)}.${ms}`;
}

/**
 * How Cilium's monitor words each drop reason the datapath has (pkg/monitor/api/drop.go): what
 * the compact format prints after the verdict. Keyed by the datapath's own enum, so a reason
 * added to bpf/include/drop_reasons.h does not compile until it has its words here.
 */
const DROP_REASON_TEXT: Record<Exclude<keyof typeof DROP_REASON, 'FORWARDED'>, string> = {
  INVALID_SOURCE_IP: 'Invalid source ip',
  POLICY_DENIED: 'Policy denied',
  INVALID_PACKET_DROPPED: 'Invalid packet',
  UNSUPPORTED_L3_PROTOCOL: 'Unsupported L3 protocol',
  ERROR_WRITING_TO_PACKET: 'Error writing to packet',
  CT_MAP_INSERTION_FAILED: 'CT: Map insertion failed',
  SERVICE_BACKEND_NOT_FOUND: 'Service backend not found',
  FIB_LOOKUP_FAILED: 'FIB lookup failed',
  POLICY_DENY: 'Policy denied by denylist',
};
const DROP_TEXT_BY_CODE = new Map<number, string>(Object.entries(DROP_REASON_TEXT).map(([name, text]) => [DROP_REASON[name as keyof typeof DROP_REASON_TEXT], text]));

export function dropReasonText(code: number): string {
  return DROP_TEXT_BY_CODE.get(code) ?? String(code);
}

/** Cilium's trace observation points (pkg/monitor/api TraceObservationPoints) by sub-type. */
const TRACE_POINT_TEXT: Record<number, string> = {
  0: 'to-endpoint',
  1: 'to-proxy',
  2: 'to-host',
  3: 'to-stack',
  4: 'to-overlay',
  5: 'from-endpoint',
  6: 'from-proxy',
  7: 'from-host',
  8: 'from-stack',
  9: 'from-overlay',
  10: 'from-network',
  11: 'to-network',
};

const TRACE_POINT_SUBTYPE: Record<string, number> = {
  TO_ENDPOINT: 0,
  TO_PROXY: 1,
  TO_HOST: 2,
  TO_STACK: 3,
  TO_OVERLAY: 4,
  FROM_ENDPOINT: 5,
  FROM_PROXY: 6,
  FROM_HOST: 7,
  FROM_STACK: 8,
  FROM_OVERLAY: 9,
  FROM_NETWORK: 10,
  TO_NETWORK: 11,
};

const POLICY_MATCH_TEXT: Record<number, string> = { 0: 'none', 1: 'L3-Only', 2: 'L3-L4', 3: 'L4-Only', 4: 'all' };

/** The TYPE column: observation point for traces, drop reason for drops, `policy-verdict:<match> <DIRECTION>`. */
export function flowType(flow: Flow): string {
  const ev = flow.event_type;
  switch (ev?.type) {
    case EVENT_TYPE.TRACE: {
      const sub = ev.sub_type ?? (flow.trace_observation_point ? TRACE_POINT_SUBTYPE[flow.trace_observation_point] : undefined) ?? 0;
      return TRACE_POINT_TEXT[sub] ?? String(sub);
    }
    case EVENT_TYPE.DROP:
      return dropReasonText(ev.sub_type ?? flow.drop_reason ?? 0);
    case EVENT_TYPE.POLICY_VERDICT:
      return `policy-verdict:${POLICY_MATCH_TEXT[flow.policy_match_type ?? 0] ?? 'unknown'} ${flow.traffic_direction ?? 'TRAFFIC_DIRECTION_UNKNOWN'}`;
    default:
      return 'UNKNOWN';
  }
}

/** The VERDICT column: policy verdict events say ALLOWED / DENIED / AUDITED. */
export function verdictText(flow: Flow): string {
  const verdict = flow.verdict ?? 'VERDICT_UNKNOWN';
  if (flow.event_type?.type === EVENT_TYPE.POLICY_VERDICT) {
    if (verdict === 'FORWARDED' || verdict === 'REDIRECTED') return 'ALLOWED';
    if (verdict === 'DROPPED' || verdict === 'ERROR') return 'DENIED';
    if (verdict === 'AUDIT') return 'AUDITED';
  }
  return verdict;
}

const TCP_FLAG_ORDER = ['SYN', 'ACK', 'RST', 'FIN', 'PSH', 'URG', 'ECE', 'CWR', 'NS'] as const;

const ICMPV4_TYPES: Record<number, { name: string; codes?: Record<number, string> }> = {
  0: { name: 'EchoReply' },
  3: {
    name: 'DestinationUnreachable',
    codes: {
      0: 'Net',
      1: 'Host',
      2: 'Protocol',
      3: 'Port',
      4: 'FragmentationNeeded',
      5: 'SourceRoutingFailed',
      6: 'NetUnknown',
      7: 'HostUnknown',
      8: 'SourceIsolated',
      9: 'NetAdminProhibited',
      10: 'HostAdminProhibited',
      11: 'NetTOS',
      12: 'HostTOS',
      13: 'CommAdminProhibited',
      14: 'HostPrecedence',
      15: 'PrecedenceCutoff',
    },
  },
  4: { name: 'SourceQuench' },
  5: { name: 'Redirect', codes: { 0: 'Net', 1: 'Host', 2: 'TOS+Net', 3: 'TOS+Host' } },
  8: { name: 'EchoRequest' },
  9: { name: 'RouterAdvertisement' },
  10: { name: 'RouterSolicitation' },
  11: { name: 'TimeExceeded', codes: { 0: 'TTLExceeded', 1: 'FragmentReassemblyTimeExceeded' } },
  12: { name: 'ParameterProblem', codes: { 0: 'PointerIndicatesError', 1: 'MissingOption', 2: 'BadLength' } },
  13: { name: 'TimestampRequest' },
  14: { name: 'TimestampReply' },
  15: { name: 'InfoRequest' },
  16: { name: 'InfoReply' },
  17: { name: 'AddressMaskRequest' },
  18: { name: 'AddressMaskReply' },
};

/** gopacket's ICMPv4TypeCode.String(), which Hubble puts in the summary. */
function icmpv4Text(type: number, code: number): string {
  const info = ICMPV4_TYPES[type];
  if (!info) return `${type}(${code})`;
  if (!info.codes) return code === 0 ? info.name : `${info.name}(Code: ${code})`;
  const c = info.codes[code];
  return c === undefined ? `${info.name}(Code: ${code})` : `${info.name}(${c})`;
}

/** Hubble's summary of the L4 header: `TCP Flags: SYN, ACK`, `UDP`, `SCTP`, `ICMPv4 EchoRequest`. */
export function l4Summary(l4: Layer4 | undefined): string {
  if (l4?.TCP) {
    const flags = l4.TCP.flags ?? {};
    return `TCP Flags: ${TCP_FLAG_ORDER.filter((f) => flags[f]).join(', ')}`;
  }
  if (l4?.UDP) return 'UDP';
  if (l4?.SCTP) return 'SCTP';
  if (l4?.ICMPv4) return `ICMPv4 ${icmpv4Text(l4.ICMPv4.type ?? 0, l4.ICMPv4.code ?? 0)}`;
  return '';
}

/** The flow's Summary, or one derived from its L4 header when the flow has none. */
export function summaryText(flow: Flow): string {
  return flow.Summary || l4Summary(flow.l4);
}

function ports(flow: Flow): [string, string] {
  const p = flow.l4?.TCP ?? flow.l4?.UDP ?? flow.l4?.SCTP;
  return p ? [String(p.source_port ?? 0), String(p.destination_port ?? 0)] : ['', ''];
}

function hostname(ip: string, port: string, ep: FlowEndpoint | undefined): string {
  const pod = ep?.pod_name ?? '';
  const ns = ep?.namespace ?? '';
  const host = pod !== '' ? (ns !== '' ? `${ns}/${pod}` : pod) : ip;
  if (port === '' || port === '0') return host;
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** SOURCE and DESTINATION as Hubble shows them: `ns/pod:port` when the pod is known, else `ip:port`. */
export function hostNames(flow: Flow): [string, string] {
  if (!flow.IP) {
    return flow.ethernet ? [flow.ethernet.source, flow.ethernet.destination] : ['', ''];
  }
  const [sp, dp] = ports(flow);
  return [hostname(flow.IP.source, sp, flow.source), hostname(flow.IP.destination, dp, flow.destination)];
}

const RESERVED_NAMES = new Map<number, string>([
  [0, 'unknown'],
  ...RESERVED_IDENTITIES.map((r): [number, string] => [r.id, r.name]),
  [9, 'world-ipv4'],
  [10, 'world-ipv6'],
]);

/** `(ID:256)`, or the reserved identity's name: `(host)`, `(world)`. */
export function identityText(id: number | undefined): string {
  const n = id ?? 0;
  const name = RESERVED_NAMES.get(n);
  return name !== undefined ? `(${name})` : `(ID:${n})`;
}

function policyRef(p: FlowPolicy): string {
  const name = p.namespace ? `${p.namespace}/${p.name}` : p.name;
  return p.kind ? `${p.kind} ${name}` : name;
}

/** ` [allowed by …] [denied by …] [default deny by …]` from the policy correlation fields. */
export function policySuffix(flow: Flow): string {
  const part = (label: string, policies: (FlowPolicy[] | undefined)[]) => {
    const all = policies.flatMap((p) => p ?? []);
    return all.length ? ` [${label} ${all.map(policyRef).join(', ')}]` : '';
  };
  return (
    part('allowed by', [flow.ingress_allowed_by, flow.egress_allowed_by]) +
    part('denied by', [flow.ingress_denied_by, flow.egress_denied_by]) +
    part('default deny by', [flow.default_deny_by])
  );
}

// ---------------------------------------------------------------------------------------------
// Formats

export interface CompactOptions {
  /** Print ` [node]` after the timestamp (`--print-node-name`). */
  nodeName?: boolean;
  /** Append the allowed/denied/default-deny policies (default true). */
  policyNames?: boolean;
}

/**
 * One line, as `hubble observe -o compact`:
 * `Nov 21 20:52:01.123: x/a:41234 (ID:256) -> y/b:80 (ID:257) Policy denied DROPPED (TCP Flags: SYN)`.
 * A reply is printed the other way round with `<-` (destination first), as Hubble flips it; an
 * absent is_reply counts as "not a reply" (Hubble prints `<>` when it is unknown).
 */
export function formatCompact(flow: Flow, opts: CompactOptions = {}): string {
  let [src, dst] = hostNames(flow);
  let srcId = identityText(flow.source?.identity);
  let dstId = identityText(flow.destination?.identity);
  let arrow = '->';
  if (flow.is_reply) {
    [src, dst] = [dst, src];
    [srcId, dstId] = [dstId, srcId];
    arrow = '<-';
  }
  const node = opts.nodeName ? ` [${flow.node_name ?? ''}]` : '';
  const policies = opts.policyNames === false ? '' : policySuffix(flow);
  return (
    `${formatStampMilli(flow.time)}${node}: ${src} ${srcId} ${arrow} ${dst} ${dstId} ` +
    `${flowType(flow)} ${verdictText(flow)} (${summaryText(flow)})${policies}`
  );
}

/** `-o table`: TIMESTAMP SOURCE DESTINATION TYPE VERDICT SUMMARY. */
export function formatTable(flows: Flow[], opts: { nodeName?: boolean } = {}): string {
  const rows = flows.map((f) => ({ f, hosts: hostNames(f) }));
  type Row = (typeof rows)[number];
  return renderTable<Row>(rows, [
    { header: 'TIMESTAMP', value: (r) => formatStampMilli(r.f.time) },
    ...(opts.nodeName ? [{ header: 'NODE', value: (r: Row) => r.f.node_name }] : []),
    { header: 'SOURCE', value: (r) => r.hosts[0] },
    { header: 'DESTINATION', value: (r) => r.hosts[1] },
    { header: 'TYPE', value: (r) => flowType(r.f) },
    { header: 'VERDICT', value: (r) => verdictText(r.f) },
    { header: 'SUMMARY', value: (r) => summaryText(r.f) },
  ]);
}

/** What `-o dict` prints between two records. */
export const DICT_SEPARATOR = '------------';

/** `-o dict`: `KEY: VALUE` lines with right-aligned keys, one record (no separator, no trailing newline). */
export function formatDict(flow: Flow, opts: { nodeName?: boolean } = {}): string {
  const [src, dst] = hostNames(flow);
  const pairs: [string, string][] = [
    ['TIMESTAMP', formatStampMilli(flow.time)],
    ...(opts.nodeName ? [['NODE', flow.node_name] as [string, string]] : []),
    ['SOURCE', src],
    ['DESTINATION', dst],
    ['TYPE', flowType(flow)],
    ['VERDICT', verdictText(flow)],
    ['SUMMARY', summaryText(flow)],
  ];
  const width = 'DESTINATION'.length;
  return pairs.map(([k, v]) => `${k.padStart(width)}: ${v}`).join('\n');
}

// ---------------------------------------------------------------------------------------------
// JSON: protojson with proto field names, as `hubble observe -o json` (alias of jsonpb)

interface Schema {
  /** Field order: the declaration order of the proto message. */
  keys: string[];
  messages?: Record<string, Schema>;
  /** Enum fields and their zero value, left out like any default. */
  enums?: Record<string, string>;
  /** google.protobuf.BoolValue fields: printed even when false. */
  wrappers?: string[];
  /** uint64 fields: protojson prints them as strings. */
  uint64?: string[];
}

const PORTS: Schema = { keys: ['source_port', 'destination_port'] };
const POLICY: Schema = { keys: ['name', 'namespace', 'labels', 'revision', 'kind'], uint64: ['revision'] };
const ENDPOINT: Schema = { keys: ['ID', 'identity', 'cluster_name', 'namespace', 'labels', 'pod_name', 'workloads'] };

const FLOW: Schema = {
  keys: [
    'time',
    'uuid',
    'verdict',
    'drop_reason',
    'auth_type',
    'ethernet',
    'IP',
    'l4',
    'source',
    'destination',
    'Type',
    'node_name',
    'node_labels',
    'source_names',
    'destination_names',
    'l7',
    'reply',
    'event_type',
    'source_service',
    'destination_service',
    'traffic_direction',
    'policy_match_type',
    'trace_observation_point',
    'trace_reason',
    'drop_reason_desc',
    'is_reply',
    'debug_capture_point',
    'interface',
    'proxy_port',
    'trace_context',
    'sock_xlate_point',
    'socket_cookie',
    'cgroup_id',
    'Summary',
    'extensions',
    'egress_allowed_by',
    'ingress_allowed_by',
    'egress_denied_by',
    'ingress_denied_by',
    'policy_log',
    'default_deny_by', // Membrane's extension, last
  ],
  enums: {
    verdict: 'VERDICT_UNKNOWN',
    Type: 'UNKNOWN_TYPE',
    traffic_direction: 'TRAFFIC_DIRECTION_UNKNOWN',
    trace_observation_point: 'UNKNOWN_POINT',
    drop_reason_desc: 'DROP_REASON_UNKNOWN',
  },
  wrappers: ['is_reply'],
  uint64: ['socket_cookie', 'cgroup_id'],
  messages: {
    ethernet: { keys: ['source', 'destination'] },
    IP: { keys: ['source', 'destination', 'ipVersion', 'encrypted'], enums: { ipVersion: 'IP_NOT_USED' } },
    l4: {
      keys: ['TCP', 'UDP', 'ICMPv4', 'ICMPv6', 'SCTP'],
      messages: {
        TCP: { keys: ['source_port', 'destination_port', 'flags'], messages: { flags: { keys: ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR', 'NS'] } } },
        UDP: PORTS,
        SCTP: PORTS,
        ICMPv4: { keys: ['type', 'code'] },
        ICMPv6: { keys: ['type', 'code'] },
      },
    },
    source: ENDPOINT,
    destination: ENDPOINT,
    event_type: { keys: ['type', 'sub_type'] },
    interface: { keys: ['index', 'name'] },
    egress_allowed_by: POLICY,
    ingress_allowed_by: POLICY,
    egress_denied_by: POLICY,
    ingress_denied_by: POLICY,
    default_deny_by: POLICY,
  },
};

const isDefault = (v: unknown) =>
  v === undefined || v === null || v === '' || v === 0 || v === false || (Array.isArray(v) && v.length === 0);

/** What encodeMessage looks up per field, built once per schema (it runs for every followed flow). */
interface CompiledSchema {
  known: Set<string>;
  wrappers: Set<string>;
  uint64: Set<string>;
}
const compiled = new WeakMap<Schema, CompiledSchema>();
function compile(schema: Schema): CompiledSchema {
  let c = compiled.get(schema);
  if (!c) {
    c = { known: new Set(schema.keys), wrappers: new Set(schema.wrappers ?? []), uint64: new Set(schema.uint64 ?? []) };
    compiled.set(schema, c);
  }
  return c;
}

function encodeField(out: Record<string, unknown>, key: string, v: unknown, schema: Schema, c: CompiledSchema): void {
  if (c.wrappers.has(key)) {
    if (v !== undefined && v !== null) out[key] = v;
    return;
  }
  if (isDefault(v) || schema.enums?.[key] === v) return;
  const sub = schema.messages?.[key];
  if (sub && Array.isArray(v)) out[key] = v.map((item) => encodeMessage(item as Record<string, unknown>, sub));
  else if (sub && typeof v === 'object') out[key] = encodeMessage(v as Record<string, unknown>, sub);
  else if (c.uint64.has(key) && typeof v === 'number') out[key] = String(v);
  else out[key] = v;
}

function encodeMessage(value: Record<string, unknown>, schema: Schema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const c = compile(schema);
  for (const key of schema.keys) if (key in value) encodeField(out, key, value[key], schema, c);
  // Fields the schema does not know (extensions) come after, in their own order.
  for (const key in value) if (!c.known.has(key)) encodeField(out, key, value[key], schema, c);
  return out;
}

/** protojson's Timestamp: UTC, with 0, 3, 6 or 9 fraction digits. Unparseable text is kept as is. */
function protoTimestamp(time: string): string {
  const ns = parseTimestampNs(time);
  if (ns === undefined) return time;
  const nanos = Number(((ns % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n);
  const digits = nanos === 0 ? 0 : nanos % 1_000_000 === 0 ? 3 : nanos % 1_000 === 0 ? 6 : 9;
  return formatTimestampNs(ns, digits);
}

/** The GetFlowsResponse a flow travels in: the flow, its node and its time. */
export function flowResponse(flow: Flow): GetFlowsResponse {
  return { flow, node_name: flow.node_name, time: flow.time };
}

/**
 * One line of `hubble observe -o json` (= jsonpb): `{"flow":{...},"node_name":"...","time":"..."}`,
 * fields in proto declaration order, defaults left out, enums by name, uint64 as strings and
 * timestamps normalised as protojson does. No trailing newline.
 */
export function formatJson(flow: Flow): string {
  const body = encodeMessage(flow as unknown as Record<string, unknown>, FLOW);
  const time = flow.time ? protoTimestamp(flow.time) : undefined;
  if (typeof body.time === 'string') body.time = time;
  const res: Record<string, unknown> = { flow: body };
  if (flow.node_name) res.node_name = flow.node_name;
  if (time) res.time = time;
  return JSON.stringify(res);
}
