/* Flows printed the way `hubble observe` prints them (hubble/pkg/printer in Cilium): compact lines,
 * a table and KEY: VALUE records (JSON, one GetFlowsResponse per line, is protojson.ts's). Timestamps print in UTC with Go's StampMilli layout ("Nov 21 20:52:01.123"),
 * as Hubble does. */
import { styled, type Style } from '../util/style.js';
import { renderTable } from '../util/table.js';
import { RESERVED_IDENTITIES } from '../identity/reserved.js';
import { parseTimestampNs, utcParts } from '../util/time.js';
import { DROP_REASON, EVENT_TYPE } from '../datapath/layouts.js';
import type { NodeStatusEvent } from './cluster-view.js';
import type { Flow, FlowEndpoint, FlowPolicy, Layer4 } from './types.js';

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
  NO_MAPPING_FOR_NAT_MASQUERADE: 'No mapping for NAT masquerade',
  UNSUPPORTED_PROTOCOL_FOR_NAT_MASQUERADE: 'Unsupported protocol for NAT masquerade',
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
  /** Colour the verdict (a terminal): forwarded green, dropped red, audited yellow. */
  colour?: boolean;
}

const VERDICT_STYLE: Partial<Record<string, Style>> = {
  FORWARDED: 'green',
  ALLOWED: 'green',
  DROPPED: 'red',
  DENIED: 'red',
  ERROR: 'red',
  AUDIT: 'yellow',
  AUDITED: 'yellow',
};

/** The verdict as printed, coloured when asked. */
function verdictShown(flow: Flow, colour = false): string {
  const text = verdictText(flow);
  const style = VERDICT_STYLE[text];
  return style ? styled(text, style, colour) : text;
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
    `${flowType(flow)} ${verdictShown(flow, opts.colour)} (${summaryText(flow)})${policies}`
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
export function formatDict(flow: Flow, opts: { nodeName?: boolean; colour?: boolean } = {}): string {
  const [src, dst] = hostNames(flow);
  const pairs: [string, string][] = [
    ['TIMESTAMP', formatStampMilli(flow.time)],
    ...(opts.nodeName ? [['NODE', flow.node_name] as [string, string]] : []),
    ['SOURCE', src],
    ['DESTINATION', dst],
    ['TYPE', flowType(flow)],
    ['VERDICT', verdictShown(flow, opts.colour)],
    ['SUMMARY', summaryText(flow)],
  ];
  const width = 'DESTINATION'.length;
  return pairs.map(([k, v]) => `${k.padStart(width)}: ${v}`).join('\n');
}

/**
 * A relay's node status as Hubble's CLI prints it, for stderr (flows stay alone on stdout): only
 * the nodes it cannot read (NODE_UNAVAILABLE, NODE_ERROR), as `hubble observe` does without
 * --debug; undefined for the informational ones. Compact and table print one line, with the
 * reason after it (Hubble's line leaves it out for unavailable nodes); dict prints a record.
 */
export function formatNodeStatus(ev: { node_status: NodeStatusEvent; node_name: string; time: string }, format: 'compact' | 'table' | 'dict'): string | undefined {
  const s = ev.node_status;
  if (s.state_change !== 'NODE_UNAVAILABLE' && s.state_change !== 'NODE_ERROR') return undefined;
  const names = s.node_names.join(', ');
  if (format === 'dict') {
    const pairs: [string, string][] = [
      ['TIMESTAMP', formatStampMilli(ev.time)],
      ['STATE', s.state_change],
      ['NODES', names],
      ['MESSAGE', s.message ? JSON.stringify(s.message) : 'N/A'],
    ];
    return pairs.map(([k, v]) => `${k.padStart('DESTINATION'.length)}: ${v}`).join('\n');
  }
  const prefix = `${formatStampMilli(ev.time)} [${ev.node_name}]`;
  const n = s.node_names.length;
  if (s.state_change === 'NODE_ERROR') return `${prefix}: Error ${JSON.stringify(s.message ?? '')} on ${n} nodes: ${names}`;
  return `${prefix}: ${n} nodes are unavailable: ${names}${s.message ? ` (${s.message})` : ''}`;
}
