/* Hubble's flow filter semantics (pkg/hubble/filters in Cilium): inside one FlowFilter every field
 * that is set must match (AND) and a repeated field matches when any of its values does (OR); an
 * empty array counts as unset. A request's whitelist filters are ORed, then no blacklist filter
 * may match. Timestamps are compared exactly, as nanoseconds since the epoch in a BigInt.
 *
 * Invalid filter values (a bad CIDR, port, label selector, pod or node pattern, protocol) throw a
 * UserError('invalid') with a one-line message, as Hubble rejects the request. Filters are compiled
 * once per FlowFilter object (cached in a WeakMap), so do not mutate a filter after using it. */
import { isIP, isIPv4 } from 'node:net';
import { invalid } from '../errors.js';
import { parseTimestampNs } from '../util/time.js';
import { compileSelector, parseFlowLabel } from './label-selector.js';
import type { Flow, FlowEndpoint, FlowFilter, GetFlowsRequest, TCPFlags, Workload } from './types.js';

// ---------------------------------------------------------------------------------------------
// Compiled filters

type Predicate = (flow: Flow) => boolean;

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

/** Exact addresses (string equality, as Hubble) or CIDRs; IPv6 CIDRs never match our IPv4 flows unless the flow is IPv6. */
function compileIPs(values: string[], get: (f: Flow) => string | undefined): Predicate {
  const exact = new Set<string>();
  const cidrs: { base: number; mask: number }[] = [];
  const v6cidrs: { prefix: string; bits: number }[] = [];
  for (const v of values) {
    const slash = v.indexOf('/');
    if (slash < 0) {
      if (!isIP(v)) throw invalid(`invalid IP address in filter: "${v}"`);
      exact.add(v);
      continue;
    }
    const addr = v.slice(0, slash);
    const bitsText = v.slice(slash + 1);
    const bits = /^\d{1,3}$/.test(bitsText) ? Number(bitsText) : NaN;
    if (isIPv4(addr) && bits <= 32) {
      const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
      cidrs.push({ base: (ipv4ToInt(addr) & mask) >>> 0, mask });
    } else if (isIP(addr) === 6 && bits <= 128) {
      v6cidrs.push({ prefix: expandIPv6(addr), bits });
    } else {
      throw invalid(`invalid CIDR in filter: "${v}"`);
    }
  }
  return (flow) => {
    const ip = get(flow);
    if (!ip) return false;
    if (exact.has(ip)) return true;
    if (cidrs.length && isIPv4(ip)) {
      const n = ipv4ToInt(ip);
      if (cidrs.some((c) => ((n & c.mask) >>> 0) === c.base)) return true;
    }
    if (v6cidrs.length && isIP(ip) === 6) {
      const bin = expandIPv6(ip);
      if (v6cidrs.some((c) => bin.slice(0, c.bits) === c.prefix.slice(0, c.bits))) return true;
    }
    return false;
  };
}

/** An IPv6 address as a 128-character bit string. */
function expandIPv6(ip: string): string {
  let text = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = ipv4ToInt(v4[1]!);
    text = text.slice(0, v4.index) + ((n >>> 16) & 0xffff).toString(16) + ':' + (n & 0xffff).toString(16);
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => parseInt(g, 16).toString(2).padStart(16, '0')).join('');
}

/**
 * `[namespace/][name-prefix]` as Hubble parses it (k8s.ParseNamespaceName) for pods and services:
 * "x/" is everything in x, "x/a" names in x that start with "a", and "a" without a slash means
 * namespace "default" — Hubble's documented behaviour ("If namespace is not provided, 'default'
 * is used").
 */
function compileNamespacedNames(what: 'pod' | 'service', values: string[], get: (f: Flow) => { namespace?: string; name?: string }): Predicate {
  const parsed = values.map((v) => {
    const parts = v.split('/');
    if (parts.length > 1) return { ns: parts[0]!, prefix: parts[1]! };
    if (v === '') throw invalid(`invalid ${what} filter, must be [namespace/][<name>], got ""`);
    return { ns: 'default', prefix: v };
  });
  return (flow) => {
    const { namespace: ns = '', name = '' } = get(flow);
    if (ns === '' && name === '') return false;
    return parsed.some((p) => p.ns === ns && (p.prefix === '' || name.startsWith(p.prefix)));
  };
}

function compilePods(values: string[], get: (f: Flow) => FlowEndpoint | undefined): Predicate {
  return compileNamespacedNames('pod', values, (flow) => {
    const ep = get(flow);
    return { namespace: ep?.namespace, name: ep?.pod_name };
  });
}

function compileServices(values: string[], get: (f: Flow) => { name?: string; namespace?: string } | undefined): Predicate {
  return compileNamespacedNames('service', values, (flow) => get(flow) ?? {});
}

/** Hubble's workload filter: some workload of the endpoint has the filter's name and kind (an empty one matches any). */
function compileWorkloads(values: Workload[], get: (f: Flow) => FlowEndpoint | undefined): Predicate {
  return (flow) =>
    (get(flow)?.workloads ?? []).some((w) =>
      values.some((f) => (!f.name || f.name === (w.name ?? '')) && (!f.kind || f.kind === (w.kind ?? ''))),
    );
}

function compileLabels(values: string[], get: (f: Flow) => FlowEndpoint | undefined): Predicate {
  const selectors = values.map(compileSelector);
  return (flow) => {
    const labels = (get(flow)?.labels ?? []).map(parseFlowLabel);
    return selectors.some((s) => s(labels));
  };
}

// ---- ports, protocols

function l4Ports(flow: Flow): { source_port?: number; destination_port?: number } | undefined {
  const l4 = flow.l4;
  return l4?.TCP ?? l4?.UDP ?? l4?.SCTP;
}

function compilePorts(values: string[], side: 'source_port' | 'destination_port'): Predicate {
  const ports = new Set(
    values.map((p) => {
      const n = /^\d{1,5}$/.test(p) ? Number(p) : NaN;
      if (!(n <= 65535)) throw invalid(`invalid port "${p}": give a number from 0 to 65535`);
      return n;
    }),
  );
  return (flow) => {
    const l4 = l4Ports(flow);
    return l4 !== undefined && ports.has(l4[side] ?? 0);
  };
}

const PROTOCOLS = ['tcp', 'udp', 'sctp', 'icmp', 'icmpv4', 'icmpv6', 'dns', 'http', 'kafka'];

function compileProtocols(values: string[]): Predicate {
  const protos = values.map((p) => {
    const lower = p.toLowerCase();
    if (!PROTOCOLS.includes(lower)) throw invalid(`unknown protocol "${p}": use ${PROTOCOLS.join(', ')}`);
    return lower;
  });
  return (flow) => {
    const l4 = flow.l4 as (Flow['l4'] & { ICMPv6?: unknown }) | undefined;
    return protos.some((p) => {
      switch (p) {
        case 'tcp':
          return l4?.TCP !== undefined;
        case 'udp':
          return l4?.UDP !== undefined;
        case 'sctp':
          return l4?.SCTP !== undefined;
        case 'icmp':
          return l4?.ICMPv4 !== undefined || l4?.ICMPv6 !== undefined;
        case 'icmpv4':
          return l4?.ICMPv4 !== undefined;
        case 'icmpv6':
          return l4?.ICMPv6 !== undefined;
        default:
          return false; // L7 protocols: our flows are L3/L4 only
      }
    });
  };
}

const TCP_FLAG_NAMES = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR', 'NS'] as const;

/** A flow matches a TCPFlags value when every flag set in it is set on the flow (any value of the list). */
function compileTcpFlags(values: TCPFlags[]): Predicate {
  return (flow) => {
    const flags = flow.l4?.TCP?.flags;
    if (!flags) return false;
    return values.some((want) => TCP_FLAG_NAMES.every((n) => !want[n] || flags[n] === true));
  };
}

// ---- node names: Hubble's patterns ("k8s*", "cluster/*.example.com")

const FQDN_RE_SRC = '(?:[-0-9_a-z]+(?:\\.[-0-9_a-z]+)*)';

function fqdnPatternRegexp(pattern: string, whole: string): string {
  let p = pattern.trim().toLowerCase();
  if (p.endsWith('.')) p = p.slice(0, -1);
  if (p === '') throw invalid(`invalid node name pattern "${whole}": empty pattern`);
  if (p.endsWith('.')) throw invalid(`invalid node name pattern "${whole}": multiple trailing dots`);
  let out = '';
  for (const ch of p) {
    if (ch === '.') out += '\\.';
    else if (ch === '*') out += '[-.0-9a-z]*';
    else if (/[-0-9_a-z]/.test(ch)) out += ch;
    else throw invalid(`invalid node name pattern "${whole}": "${ch}" is not allowed`);
  }
  return out;
}

const DEFAULT_CLUSTER_NAME = 'default';

function compileNodeNames(values: string[]): Predicate {
  const alternatives = values.map((v) => {
    if (v === '') throw invalid('invalid node name pattern "": empty pattern');
    const elems = v.split('/');
    if (elems.length > 2) throw invalid(`invalid node name pattern "${v}": too many slashes`);
    const [cluster, node] = elems.length === 2 ? [elems[0]!, elems[1]!] : ['', elems[0]!];
    const c = cluster === '' ? FQDN_RE_SRC : fqdnPatternRegexp(cluster, v);
    const n = node === '' ? FQDN_RE_SRC : fqdnPatternRegexp(node, v);
    return `${c}/${n}`;
  });
  const re = new RegExp(`^(?:${alternatives.join('|')})$`);
  return (flow) => {
    const name = flow.node_name ?? '';
    if (name === '') return false;
    return re.test(name.includes('/') ? name : `${DEFAULT_CLUSTER_NAME}/${name}`);
  };
}

function compileIpVersions(values: string[]): Predicate {
  const wanted = new Set<string>(
    values.map((v) => {
      switch (v.toLowerCase()) {
        case 'ipv4':
        case 'v4':
        case '4':
        case '1':
          return 'IPv4';
        case 'ipv6':
        case 'v6':
        case '6':
        case '2':
          return 'IPv6';
        case 'ip_not_used':
        case 'none':
        case '0':
          return 'IP_NOT_USED';
        default:
          throw invalid(`invalid IP version "${v}": use IPv4, IPv6 or IP_NOT_USED`);
      }
    }),
  );
  return (flow) => wanted.has((flow.IP?.ipVersion as string | undefined) ?? 'IP_NOT_USED');
}

// ---- assembling one FlowFilter

const set = <T>(v: T[] | undefined): v is T[] => v !== undefined && v.length > 0;

function compileFilter(f: FlowFilter): Predicate[] {
  const ps: Predicate[] = [];
  if (set(f.uuid)) {
    const ids = new Set(f.uuid);
    ps.push((flow) => ids.has(flow.uuid));
  }
  if (set(f.source_ip)) ps.push(compileIPs(f.source_ip, (fl) => fl.IP?.source));
  if (set(f.destination_ip)) ps.push(compileIPs(f.destination_ip, (fl) => fl.IP?.destination));
  if (set(f.source_pod)) ps.push(compilePods(f.source_pod, (fl) => fl.source));
  if (set(f.destination_pod)) ps.push(compilePods(f.destination_pod, (fl) => fl.destination));
  if (set(f.source_label)) ps.push(compileLabels(f.source_label, (fl) => fl.source));
  if (set(f.destination_label)) ps.push(compileLabels(f.destination_label, (fl) => fl.destination));
  if (set(f.source_service)) ps.push(compileServices(f.source_service, (fl) => fl.source_service));
  if (set(f.destination_service)) ps.push(compileServices(f.destination_service, (fl) => fl.destination_service));
  if (set(f.source_workload)) ps.push(compileWorkloads(f.source_workload, (fl) => fl.source));
  if (set(f.destination_workload)) ps.push(compileWorkloads(f.destination_workload, (fl) => fl.destination));
  if (set(f.source_identity)) {
    const ids = new Set(f.source_identity);
    ps.push((fl) => ids.has(fl.source?.identity ?? 0));
  }
  if (set(f.destination_identity)) {
    const ids = new Set(f.destination_identity);
    ps.push((fl) => ids.has(fl.destination?.identity ?? 0));
  }
  if (set(f.verdict)) {
    const vs = new Set<string>(f.verdict);
    ps.push((fl) => vs.has(fl.verdict ?? 'VERDICT_UNKNOWN'));
  }
  if (set(f.event_type)) {
    const types = f.event_type;
    ps.push((fl) => {
      const ev = fl.event_type;
      if (!ev) return false;
      return types.some((t) => (!t.type || t.type === ev.type) && (!t.match_sub_type || (t.sub_type ?? 0) === (ev.sub_type ?? 0)));
    });
  }
  if (set(f.protocol)) ps.push(compileProtocols(f.protocol));
  if (set(f.source_port)) ps.push(compilePorts(f.source_port, 'source_port'));
  if (set(f.destination_port)) ps.push(compilePorts(f.destination_port, 'destination_port'));
  if (set(f.reply)) {
    const wanted = f.reply;
    // Our flows leave default values out, so an absent is_reply reads as false.
    ps.push((fl) => wanted.includes(fl.is_reply ?? false));
  }
  if (set(f.traffic_direction)) {
    const ds = new Set<string>(f.traffic_direction);
    ps.push((fl) => ds.has(fl.traffic_direction ?? 'TRAFFIC_DIRECTION_UNKNOWN'));
  }
  if (set(f.tcp_flags)) ps.push(compileTcpFlags(f.tcp_flags));
  if (set(f.node_name)) ps.push(compileNodeNames(f.node_name));
  if (set(f.ip_version)) ps.push(compileIpVersions(f.ip_version));
  return ps;
}

const compiled = new WeakMap<FlowFilter, Predicate[]>();

function predicatesOf(f: FlowFilter): Predicate[] {
  let ps = compiled.get(f);
  if (!ps) {
    ps = compileFilter(f);
    compiled.set(f, ps);
  }
  return ps;
}

/** Whether the flow matches one FlowFilter: every set field matches, any value of a repeated field. */
export function matchesFilter(flow: Flow, f: FlowFilter): boolean {
  return predicatesOf(f).every((p) => p(flow));
}

// ---------------------------------------------------------------------------------------------
// Requests

type RequestFilterPart = Pick<GetFlowsRequest, 'whitelist' | 'blacklist' | 'since' | 'until'>;

function boundNs(text: string | undefined, name: string): bigint | undefined {
  if (text === undefined || text === '') return undefined;
  const ns = parseTimestampNs(text);
  if (ns === undefined) throw invalid(`${name} "${text}" is not an RFC 3339 timestamp`);
  return ns;
}

/**
 * Compiles every filter and time bound of a request, throwing UserError('invalid') on the first bad
 * value — for servers that want to reject a request before streaming anything.
 */
export function checkRequest(req: GetFlowsRequest): void {
  if (req.first && req.follow) throw invalid('first cannot be combined with follow');
  if (req.number !== undefined && !(Number.isInteger(req.number) && req.number >= 0)) {
    throw invalid(`number ${req.number} is not valid: give a non-negative integer`);
  }
  for (const f of [...(req.whitelist ?? []), ...(req.blacklist ?? [])]) predicatesOf(f);
  boundNs(req.since, 'since');
  boundNs(req.until, 'until');
}

/**
 * Whitelist filters are ORed (no whitelist: every flow), then no blacklist filter may match;
 * `since`/`until` are inclusive bounds compared in nanoseconds. A flow whose own time cannot be
 * parsed never matches a request with a time bound.
 */
export function matchesRequest(flow: Flow, req: RequestFilterPart): boolean {
  return requestMatcher(req)(flow);
}

function requestMatcher(req: RequestFilterPart): Predicate {
  const since = boundNs(req.since, 'since');
  const until = boundNs(req.until, 'until');
  const wl = req.whitelist ?? [];
  const bl = req.blacklist ?? [];
  return (flow) => {
    if (since !== undefined || until !== undefined) {
      const t = parseTimestampNs(flow.time);
      if (t === undefined) return false;
      if (since !== undefined && t < since) return false;
      if (until !== undefined && t > until) return false;
    }
    if (wl.length > 0 && !wl.some((f) => matchesFilter(flow, f))) return false;
    return !bl.some((f) => matchesFilter(flow, f));
  };
}

/**
 * The ring's answer to a non-follow request: the flows matching `matchesRequest`, then limited by
 * `number` — the last N by default, the first N with `first` — returned oldest first.
 *
 * `number` absent or 0 means every matching flow. That is what Hubble's server does when it rewinds
 * with number 0, and the Hubble CLI only sends 0 when --since/--until/--all is given (it defaults
 * to 20 otherwise, see buildRequest). Deliberate simplification of two Hubble quirks: Hubble's
 * server, given `since` and a number without `first`, returns the first N flows after `since` (its
 * rewind stops at `since`); given `until` and a number, it picks the last N matching flows before
 * applying `until`. Here the time bounds always filter first and `number` then counts from the end
 * (or from the start with `first`), which is what `--since 1h --last 5` reads as.
 * `follow` is ignored: streaming new flows is the caller's job.
 */
export function selectFromRing(flows: Flow[], req: GetFlowsRequest): Flow[] {
  const matching = flows.filter(requestMatcher(req));
  const n = req.number ?? 0;
  if (n <= 0 || n >= matching.length) return matching;
  return req.first ? matching.slice(0, n) : matching.slice(matching.length - n);
}

/**
 * Whether flows observed on node `nodeName` can pass the request's filters at all, judged by
 * node_name alone: a relay asks only the nodes that can (and does not report the others as
 * unavailable). Every flow of a node carries that node's name, so a whitelist whose every filter
 * names other nodes rules all of them out, and so does a blacklist filter that names nothing but
 * this node.
 */
export function mayMatchNode(req: Pick<GetFlowsRequest, 'whitelist' | 'blacklist'>, nodeName: string): boolean {
  const probe = { node_name: nodeName } as Flow;
  const names = (f: FlowFilter) => !set(f.node_name) || compileNodeNames(f.node_name)(probe);
  const wl = req.whitelist ?? [];
  if (wl.length > 0 && !wl.some(names)) return false;
  const onlyNodeName = (f: FlowFilter) => set(f.node_name) && Object.entries(f).every(([k, v]) => k === 'node_name' || !(Array.isArray(v) && v.length > 0));
  return !(req.blacklist ?? []).some((f) => onlyNodeName(f) && names(f));
}
