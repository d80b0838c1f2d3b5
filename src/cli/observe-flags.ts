/* `membrane observe` flags turned into a GetFlowsRequest the way the Hubble CLI does it
 * (hubble/cmd/observe/flows_filter.go): values of one flag are ORed, different flags are ANDed.
 * A flag that names either side (--pod, --ip, --label, --identity, --port, --namespace) splits the
 * whitelist into two filters — a "left" one holding the source_* fields and a "right" one holding
 * the destination_* fields — and every one-sided or side-less flag goes into both. Several
 * either-side flags therefore pair up: `--pod x/a --port 80` asks for flows from x/a with source
 * port 80 or to x/a with destination port 80. When both filters end up equal only one is sent.
 *
 * `--not` negates the filter flag that follows it, as in Hubble: every negated flag goes into a
 * second set built the same way, which becomes the request's blacklist (a flow matching it is
 * left out). `--not` is order-sensitive, so registerObserveOptions tracks it while commander
 * parses (`--not --pod x/a --verdict DROPPED`: flows not from or to x/a, that were dropped). */
import { Option, type Command } from 'commander';
import { invalid } from '../errors.js';
import { checkRequest } from '../flow/filter.js';
import { parseTimeArg } from './time-args.js';
import { EVENT_TYPE } from '../datapath/layouts.js';
import type { FlowFilter, GetFlowsRequest, TCPFlags, TrafficDirection, Verdict, Workload } from '../flow/types.js';
import { RESERVED_IDENTITIES } from '../identity/reserved.js';
import { isIP, isIPv4 } from 'node:net';

export const OUTPUT_FORMATS = ['compact', 'json', 'jsonpb', 'table', 'dict'] as const;
export type ObserveOutputFormat = (typeof OUTPUT_FORMATS)[number];

/** What the Hubble CLI asks for when no --last/--first/--all/--since/--until/--follow is given. */
export const DEFAULT_FLOW_COUNT = 20;

/** The filter flags (values of repeatable options), as commander hands them over. */
export interface ObserveFilterFlags {
  pod?: string[];
  fromPod?: string[];
  toPod?: string[];
  namespace?: string[];
  label?: string[];
  fromLabel?: string[];
  toLabel?: string[];
  ip?: string[];
  fromIp?: string[];
  toIp?: string[];
  identity?: string[];
  fromIdentity?: string[];
  toIdentity?: string[];
  port?: string[];
  fromPort?: string[];
  toPort?: string[];
  verdict?: string[];
  type?: string[];
  protocol?: string[];
  trafficDirection?: string[];
  uuid?: string[];
  nodeName?: string[];
  /** The same as nodeName (`--node`, the relay's spelling). */
  node?: string[];
  tcpFlags?: string[];
  service?: string[];
  fromService?: string[];
  toService?: string[];
  workload?: string[];
  fromWorkload?: string[];
  toWorkload?: string[];
}

/** Options as commander hands them over (camelCase of the flag names). */
export interface ObserveFlags extends ObserveFilterFlags {
  /** Filter flags that followed a --not: they make the blacklist. */
  negated?: ObserveFilterFlags;
  /** True while a --not waits for its filter flag: left over at the end, it is an error. */
  not?: boolean;
  since?: string;
  until?: string;
  last?: string | number;
  first?: string | number;
  all?: boolean;
  follow?: boolean;
  /** Formatting, not part of the request. */
  output?: string;
  printNodeName?: boolean;
}

const VERDICTS: Verdict[] = ['VERDICT_UNKNOWN', 'FORWARDED', 'DROPPED', 'ERROR', 'AUDIT', 'REDIRECTED', 'TRACED', 'TRANSLATED'];
const PROTOCOLS = ['tcp', 'udp', 'sctp', 'icmp', 'icmpv4', 'icmpv6', 'dns', 'http', 'kafka'];
const TYPE_NAMES: Record<string, number> = { drop: EVENT_TYPE.DROP, trace: EVENT_TYPE.TRACE, 'policy-verdict': EVENT_TYPE.POLICY_VERDICT };
const TRACE_SUBTYPES: Record<string, number> = {
  'to-endpoint': 0,
  'to-proxy': 1,
  'to-host': 2,
  'to-stack': 3,
  'to-overlay': 4,
  'from-endpoint': 5,
  'from-proxy': 6,
  'from-host': 7,
  'from-stack': 8,
  'from-overlay': 9,
  'from-network': 10,
  'to-network': 11,
};
const TCP_FLAGS = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR', 'NS'] as const;

/**
 * Flag pairs Hubble refuses to combine: adding both would append to the same filter field, which
 * ORs them instead of ANDing (e.g. `--label a --from-label b` would match a source with either).
 */
const CONFLICTS: string[][] = [
  ['from-ip', 'ip', 'namespace'],
  ['from-ip', 'ip', 'from-pod', 'pod'],
  ['to-ip', 'ip', 'namespace'],
  ['to-ip', 'ip', 'to-pod', 'pod'],
  ['to-pod', 'namespace'],
  ['from-pod', 'namespace'],
  ['label', 'from-label'],
  ['label', 'to-label'],
  ['port', 'to-port'],
  ['port', 'from-port'],
  ['identity', 'to-identity'],
  ['identity', 'from-identity'],
  ['to-service', 'namespace'],
  ['from-service', 'namespace'],
  ['service', 'from-service'],
  ['service', 'to-service'],
  ['workload', 'to-workload'],
  ['workload', 'from-workload'],
];

const FLAG_OF: Record<string, keyof ObserveFilterFlags> = {
  pod: 'pod',
  'from-pod': 'fromPod',
  'to-pod': 'toPod',
  namespace: 'namespace',
  label: 'label',
  'from-label': 'fromLabel',
  'to-label': 'toLabel',
  ip: 'ip',
  'from-ip': 'fromIp',
  'to-ip': 'toIp',
  identity: 'identity',
  'from-identity': 'fromIdentity',
  'to-identity': 'toIdentity',
  port: 'port',
  'from-port': 'fromPort',
  'to-port': 'toPort',
  service: 'service',
  'from-service': 'fromService',
  'to-service': 'toService',
  workload: 'workload',
  'from-workload': 'fromWorkload',
  'to-workload': 'toWorkload',
};

const given = (v: string[] | undefined): v is string[] => v !== undefined && v.length > 0;

function checkConflicts(flags: ObserveFilterFlags): void {
  const used = (name: string) => {
    const key = FLAG_OF[name];
    return key !== undefined && given(flags[key] as string[] | undefined);
  };
  for (const group of CONFLICTS) {
    const present = group.filter(used);
    if (present.length > 1) throw invalid(`--${present[0]} and --${present[1]} cannot be combined`);
  }
}

// ---- value parsers (each throws a one-line UserError)

function checkIp(flag: string, v: string): string {
  const slash = v.indexOf('/');
  if (slash < 0) {
    if (!isIP(v)) throw invalid(`--${flag} ${v}: not an IP address (e.g. 10.0.0.5) or CIDR (e.g. 10.0.0.0/24)`);
    return v;
  }
  const addr = v.slice(0, slash);
  const bits = v.slice(slash + 1);
  const max = isIPv4(addr) ? 32 : isIP(addr) === 6 ? 128 : -1;
  if (max < 0 || !/^\d{1,3}$/.test(bits) || Number(bits) > max) {
    throw invalid(`--${flag} ${v}: not an IP address (e.g. 10.0.0.5) or CIDR (e.g. 10.0.0.0/24)`);
  }
  return v;
}

function checkPod(flag: string, v: string): string {
  if (v === '' || v === '/' || v.split('/').length > 2) throw invalid(`--${flag} "${v}": write [NAMESPACE/]POD-NAME-PREFIX, e.g. default/web or default/`);
  return v;
}

function checkService(flag: string, v: string): string {
  if (v === '' || v === '/' || v.split('/').length > 2) throw invalid(`--${flag} "${v}": write [NAMESPACE/]SERVICE-NAME-PREFIX, e.g. default/web or default/`);
  return v;
}

/** Hubble's `[KIND/]NAME` ("web", "Deployment/web", "Deployment/" for every workload of a kind). */
function parseWorkload(flag: string, v: string): Workload {
  if (v.split('/').length > 2) throw invalid(`--${flag} "${v}": write [KIND/]NAME, e.g. web or Deployment/web`);
  const slash = v.indexOf('/');
  const [kind, name] = slash < 0 ? ['', v] : [v.slice(0, slash), v.slice(slash + 1)];
  return { ...(name ? { name } : {}), ...(kind ? { kind } : {}) };
}

function checkPort(flag: string, v: string): string {
  if (!/^\d{1,5}$/.test(v) || Number(v) > 65535) throw invalid(`--${flag} ${v}: give a port number from 0 to 65535`);
  return String(Number(v));
}

function parseIdentity(flag: string, v: string): number {
  if (/^\d+$/.test(v) && Number(v) <= 0xffffffff) return Number(v);
  const reserved = RESERVED_IDENTITIES.find((r) => r.name === v.toLowerCase());
  if (reserved) return reserved.id;
  throw invalid(`--${flag} ${v}: give a numeric identity or one of ${RESERVED_IDENTITIES.map((r) => r.name).join(', ')}`);
}

function parseVerdict(v: string): Verdict {
  const up = v.toUpperCase() as Verdict;
  if (!VERDICTS.includes(up)) throw invalid(`--verdict ${v}: use ${VERDICTS.filter((x) => x !== 'VERDICT_UNKNOWN').join(', ')}`);
  return up;
}

/** `TYPE[:SUBTYPE]`: drop, trace, policy-verdict or a number; trace sub-types by name (to-endpoint) or number. */
function parseType(v: string): NonNullable<FlowFilter['event_type']>[number] {
  const bad = () =>
    invalid(`--type ${v}: use drop, trace, policy-verdict or TYPE:SUBTYPE (e.g. trace:to-endpoint, drop:133)`);
  const colon = v.indexOf(':');
  const typeText = (colon >= 0 ? v.slice(0, colon) : v).toLowerCase();
  const subText = colon >= 0 ? v.slice(colon + 1).toLowerCase() : undefined;
  const type = TYPE_NAMES[typeText] ?? (/^\d{1,3}$/.test(typeText) && Number(typeText) <= 255 ? Number(typeText) : undefined);
  if (type === undefined) throw bad();
  if (subText === undefined) return { type };
  const sub = (type === EVENT_TYPE.TRACE ? TRACE_SUBTYPES[subText] : undefined) ?? (/^\d{1,3}$/.test(subText) && Number(subText) <= 255 ? Number(subText) : undefined);
  if (sub === undefined) throw bad();
  return { type, match_sub_type: true, sub_type: sub };
}

function parseProtocol(v: string): string {
  const p = v.toLowerCase();
  if (!PROTOCOLS.includes(p)) throw invalid(`--protocol ${v}: use ${PROTOCOLS.join(', ')}`);
  return p;
}

function parseDirection(v: string): TrafficDirection {
  const d = v.toLowerCase();
  if (d === 'ingress') return 'INGRESS';
  if (d === 'egress') return 'EGRESS';
  throw invalid(`--traffic-direction ${v}: use ingress or egress`);
}

function parseTcpFlags(v: string): TCPFlags {
  const flags: TCPFlags = {};
  for (const part of v.split(',')) {
    const f = part.trim().toUpperCase() as (typeof TCP_FLAGS)[number];
    if (!TCP_FLAGS.includes(f)) throw invalid(`--tcp-flags ${v}: unknown flag "${part}" (use ${TCP_FLAGS.join(', ').toLowerCase()})`);
    flags[f] = true;
  }
  return flags;
}

function parseCount(flag: string, v: string | number | undefined): number | undefined {
  if (v === undefined) return undefined;
  const text = String(v).trim();
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw invalid(`--${flag} ${v}: give a positive number of flows`);
  }
  return Number(text);
}

function parseTime(flag: string, v: string, now: Date): string {
  try {
    return parseTimeArg(v, now);
  } catch (err) {
    throw invalid(`--${flag}: ${(err as Error).message}`);
  }
}

/** The options key commander gives a flag spec: `-n, --namespace <ns>` -> namespace, `--from-pod <p>` -> fromPod. */
function camelKey(spec: string): string {
  const long = /--([a-z-]+)/.exec(spec)![1]!;
  return long.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

// ---- building the request

type FilterKey = keyof FlowFilter;

function push<K extends FilterKey>(f: FlowFilter, key: K, values: NonNullable<FlowFilter[K]>): void {
  if ((values as unknown[]).length === 0) return;
  const cur = (f[key] ?? []) as unknown[];
  (f as Record<string, unknown>)[key] = [...cur, ...(values as unknown[])];
}

/** Hubble's addNamespacesToFilter: names without a slash get each namespace ("" becomes "ns/"). */
function addNamespaces(names: string[] | undefined, namespaces: string[]): string[] | undefined {
  if (!names?.length) return names;
  return names.flatMap((n) => (n.includes('/') ? [n] : namespaces.map((ns) => `${ns}/${n}`)));
}

/**
 * Hubble's namespace modifier on one side of a filter: the side's pods and services get the
 * namespaces; with neither, the side is every pod of the namespaces.
 */
function applyNamespaces(f: FlowFilter, side: 'source' | 'destination', namespaces: string[]): void {
  const podKey = `${side}_pod` as const;
  const serviceKey = `${side}_service` as const;
  if (!f[podKey]?.length && !f[serviceKey]?.length) f[podKey] = [''];
  const pods = addNamespaces(f[podKey], namespaces);
  const services = addNamespaces(f[serviceKey], namespaces);
  if (pods) f[podKey] = pods;
  if (services) f[serviceKey] = services;
}

const isEmptyFilter = (f: FlowFilter) => Object.values(f).every((v) => v === undefined || (Array.isArray(v) && v.length === 0));

const sameFilter = (a: FlowFilter, b: FlowFilter) => JSON.stringify(a) === JSON.stringify(b);

/**
 * The GetFlowsRequest for `membrane observe` flags, following the Hubble CLI:
 * - number: --last N, or --first N with first=true; with none of --last/--first/--all/--since/
 *   --until/--follow it is 20; --all (and --since/--until without --last) leaves it out, which the
 *   server reads as "every matching flow".
 * - --until is ignored with --follow, as Hubble does.
 * - --first cannot be combined with --last, --all or --follow; --last not with --all.
 */
export function buildRequest(flags: ObserveFlags, now: Date): GetFlowsRequest {
  if (flags.not) throw invalid('--not must be followed by the filter flag it negates, e.g. --not --verdict FORWARDED');
  const last = parseCount('last', flags.last);
  const first = parseCount('first', flags.first);
  if (first !== undefined && last !== undefined) throw invalid('--first and --last cannot be combined');
  if (first !== undefined && flags.all) throw invalid('--first and --all cannot be combined');
  if (first !== undefined && flags.follow) throw invalid('--first and --follow cannot be combined');
  if (last !== undefined && flags.all) throw invalid('--last and --all cannot be combined');

  const whitelist = buildFilters(flags);
  const blacklist = flags.negated ? buildFilters(flags.negated) : undefined;

  const req: GetFlowsRequest = {};
  const since = flags.since !== undefined ? parseTime('since', flags.since, now) : undefined;
  const until = flags.until !== undefined && !flags.follow ? parseTime('until', flags.until, now) : undefined;

  if (first !== undefined) {
    req.number = first;
    req.first = true;
  } else if (last !== undefined) {
    req.number = last;
  } else if (!flags.all && !flags.follow && since === undefined && until === undefined) {
    req.number = DEFAULT_FLOW_COUNT;
  }
  if (flags.follow) req.follow = true;
  if (since !== undefined) req.since = since;
  if (until !== undefined) req.until = until;
  if (whitelist) req.whitelist = whitelist;
  if (blacklist) req.blacklist = blacklist;
  // label selectors and node name patterns are only checked by compiling them
  checkRequest(req);
  return req;
}

/**
 * The filters of one set of flags (the whitelist, or the negated flags' blacklist), as Hubble's
 * filterTracker builds them: a left and a right filter, sent as one when they are equal, none
 * when no flag is given.
 */
function buildFilters(flags: ObserveFilterFlags): FlowFilter[] | undefined {
  checkConflicts(flags);
  const left: FlowFilter = {};
  const right: FlowFilter = {};
  const both = <K extends FilterKey>(key: K, values: NonNullable<FlowFilter[K]>) => {
    push(left, key, values);
    push(right, key, values);
  };
  const sides = <K extends FilterKey, L extends FilterKey>(srcKey: K, dstKey: L, src: NonNullable<FlowFilter[K]>, dst: NonNullable<FlowFilter[L]>) => {
    push(left, srcKey, src);
    push(right, dstKey, dst);
  };
  const list = (v: string[] | undefined) => v ?? [];

  both('uuid', list(flags.uuid));
  // pods and namespaces
  const pod = list(flags.pod).map((v) => checkPod('pod', v));
  sides('source_pod', 'destination_pod', pod, pod);
  both('source_pod', list(flags.fromPod).map((v) => checkPod('from-pod', v)));
  both('destination_pod', list(flags.toPod).map((v) => checkPod('to-pod', v)));
  // ip
  const ip = list(flags.ip).map((v) => checkIp('ip', v));
  sides('source_ip', 'destination_ip', ip, ip);
  both('source_ip', list(flags.fromIp).map((v) => checkIp('from-ip', v)));
  both('destination_ip', list(flags.toIp).map((v) => checkIp('to-ip', v)));
  // labels (selectors are checked by the agent when it compiles the filter)
  const label = list(flags.label);
  sides('source_label', 'destination_label', label, label);
  both('source_label', list(flags.fromLabel));
  both('destination_label', list(flags.toLabel));
  // services
  const service = list(flags.service).map((v) => checkService('service', v));
  sides('source_service', 'destination_service', service, service);
  both('source_service', list(flags.fromService).map((v) => checkService('from-service', v)));
  both('destination_service', list(flags.toService).map((v) => checkService('to-service', v)));
  // workloads
  const workload = list(flags.workload).map((v) => parseWorkload('workload', v));
  sides('source_workload', 'destination_workload', workload, workload);
  both('source_workload', list(flags.fromWorkload).map((v) => parseWorkload('from-workload', v)));
  both('destination_workload', list(flags.toWorkload).map((v) => parseWorkload('to-workload', v)));
  // identities
  const identity = list(flags.identity).map((v) => parseIdentity('identity', v));
  sides('source_identity', 'destination_identity', identity, identity);
  both('source_identity', list(flags.fromIdentity).map((v) => parseIdentity('from-identity', v)));
  both('destination_identity', list(flags.toIdentity).map((v) => parseIdentity('to-identity', v)));
  // ports
  const port = list(flags.port).map((v) => checkPort('port', v));
  sides('source_port', 'destination_port', port, port);
  both('source_port', list(flags.fromPort).map((v) => checkPort('from-port', v)));
  both('destination_port', list(flags.toPort).map((v) => checkPort('to-port', v)));
  // side-less
  both('verdict', list(flags.verdict).map(parseVerdict));
  both('event_type', list(flags.type).map(parseType));
  both('protocol', list(flags.protocol).map(parseProtocol));
  both('traffic_direction', list(flags.trafficDirection).map(parseDirection));
  both('tcp_flags', list(flags.tcpFlags).map(parseTcpFlags));
  // --node is the short spelling of --node-name: its values join the same filter (ORed). In a
  // cluster the relay asks only the nodes these can match.
  both('node_name', [...list(flags.nodeName), ...list(flags.node)].map((v) => {
    if (v.trim() === '') throw invalid('--node/--node-name: give a node name or pattern, e.g. node1 or k8s*');
    return v;
  }));
  // --namespace: the left filter's source pods and services, the right filter's destination ones
  const namespaces = list(flags.namespace).map((ns) => {
    if (ns === '' || ns.includes('/')) throw invalid(`--namespace "${ns}": give a namespace name`);
    return ns;
  });
  for (const ns of namespaces) {
    for (const [flag, values] of [['pod', pod], ['service', service]] as const) {
      const other = values.find((v) => v.includes('/') && v.slice(0, v.indexOf('/')) !== ns);
      if (other !== undefined) throw invalid(`--namespace ${ns} does not contain --${flag} ${other}: drop the namespace from --${flag} or use one namespace`);
    }
  }
  if (namespaces.length) {
    applyNamespaces(left, 'source', namespaces);
    applyNamespaces(right, 'destination', namespaces);
  }

  if (isEmptyFilter(left) && isEmptyFilter(right)) return undefined;
  return sameFilter(left, right) ? [left] : [left, right];
}

/**
 * Adds the `observe` filter, selection and output options to a commander command. A filter flag
 * right after `--not` goes into `negated` instead (commander parses flags in order: `--not` sets
 * `not`, the next filter flag takes it and clears it).
 */
export function registerObserveOptions(cmd: Command): Command {
  let negateNext = false;
  cmd.option('--not', 'negate the filter flag that follows (e.g. --not --verdict FORWARDED); repeat it for each flag to negate');
  cmd.on('option:not', () => {
    if (negateNext) throw invalid('--not --not: each --not negates the one filter flag that follows it');
    negateNext = true;
  });
  const repeat = (flags: string, help: string) => {
    const key = camelKey(flags);
    return cmd.option(flags, `${help} (repeatable)`, (v: string, prev: string[] | undefined) => {
      if (!negateNext) return [...(prev ?? []), v];
      negateNext = false;
      cmd.setOptionValue('not', undefined);
      const negated = (cmd.getOptionValue('negated') ?? {}) as Record<string, string[]>;
      cmd.setOptionValue('negated', { ...negated, [key]: [...(negated[key] ?? []), v] });
      return prev ?? []; // commander stores what this returns ('' for undefined): no values here
    });
  };
  repeat('--pod <[ns/]pod>', 'flows from or to pods whose name starts with the prefix; "ns/" is the whole namespace, no namespace means "default"');
  repeat('--from-pod <[ns/]pod>', 'flows from pods whose name starts with the prefix');
  repeat('--to-pod <[ns/]pod>', 'flows to pods whose name starts with the prefix');
  repeat('-n, --namespace <ns>', 'flows from or to pods of the namespace (with --service, services of it: every service is in "default")');
  repeat('-l, --label <selector>', 'flows from or to endpoints matching the label selector (e.g. app=web, "k8s:app in (a,b)", reserved:world)');
  repeat('--from-label <selector>', 'flows from endpoints matching the label selector');
  repeat('--to-label <selector>', 'flows to endpoints matching the label selector');
  repeat('--ip <ip|cidr>', 'flows from or to the address or CIDR (e.g. 10.0.0.5, 10.0.0.0/24)');
  repeat('--from-ip <ip|cidr>', 'flows from the address or CIDR');
  repeat('--to-ip <ip|cidr>', 'flows to the address or CIDR');
  repeat('--identity <id>', 'flows from or to the security identity (number or reserved name: host, world, ...)');
  repeat('--from-identity <id>', 'flows from the security identity');
  repeat('--to-identity <id>', 'flows to the security identity');
  repeat('--port <port>', 'flows with the port on either side');
  repeat('--from-port <port>', 'flows with the source port');
  repeat('--to-port <port>', 'flows with the destination port');
  repeat('--verdict <verdict>', 'flows with the verdict: FORWARDED, DROPPED, AUDIT, REDIRECTED, ERROR, TRACED, TRANSLATED');
  repeat('-t, --type <type[:subtype]>', 'event type: drop, trace, policy-verdict (e.g. trace:to-endpoint)');
  repeat('--protocol <proto>', 'L4 protocol: tcp, udp, icmp, icmpv4, sctp');
  repeat('--traffic-direction <dir>', 'ingress or egress');
  repeat('--tcp-flags <flags>', 'flows with all these TCP flags set, comma-separated (e.g. syn or syn,ack)');
  repeat('--node-name <pattern>', 'flows observed on nodes matching the pattern (e.g. node1, k8s*, cluster/node1)');
  repeat('--node <name>', 'in a cluster: only the flows of this node (a name or pattern, as --node-name); the others are not asked');
  repeat('--uuid <uuid>', 'the flow with this UUID');
  repeat('--service <[ns/]svc>', 'flows from or to the service (name prefix); no namespace means "default", where flows put every service');
  repeat('--from-service <[ns/]svc>', 'flows from the service (name prefix)');
  repeat('--to-service <[ns/]svc>', 'flows to the service (name prefix), e.g. --to-service web');
  repeat('--workload <[kind/]name>', "flows from or to the workload (an endpoint's app.kubernetes.io/name or app label)");
  repeat('--from-workload <[kind/]name>', 'flows from the workload');
  repeat('--to-workload <[kind/]name>', 'flows to the workload');
  cmd
    .option('--since <time>', 'flows since a duration ago (3s, 4m, 1h43m) or a time (2024-11-21, 2024-11-21T20:52:01Z)')
    .option('--until <time>', 'flows until a duration ago or a time (ignored with --follow)')
    .option('--last <n>', `the last N matching flows (default ${DEFAULT_FLOW_COUNT} when no time range is given)`)
    .option('--first <n>', 'the first N matching flows')
    .option('--all', 'every matching flow in the buffer')
    .option('-f, --follow', 'keep printing new flows as they arrive')
    .addOption(new Option('-o, --output <format>', 'output format').choices([...OUTPUT_FORMATS]).default('compact'))
    .option('--print-node-name', 'print the node name in each line');
  return cmd;
}
