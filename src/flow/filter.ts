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
import type { Flow, FlowEndpoint, FlowFilter, GetFlowsRequest, TCPFlags } from './types.js';

// ---------------------------------------------------------------------------------------------
// Timestamps

const NS_PER_SECOND = 1_000_000_000n;
const NS_PER_DAY = 86_400n * NS_PER_SECOND;

/** Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function civilFromDays(z: number): { y: number; m: number; d: number } {
  const zz = z + 719468;
  const era = Math.floor(zz / 146097);
  const doe = zz - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return { y: era * 400 + yoe + (m <= 2 ? 1 : 0), m, d };
}

const daysInMonth = (y: number, m: number) =>
  m === 2 ? (y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0) ? 29 : 28) : [4, 6, 9, 11].includes(m) ? 30 : 31;

interface Civil {
  y: number;
  mo: number;
  d: number;
  h: number;
  mi: number;
  s: number;
  frac: string; // up to 9 digits
  offsetMinutes: number;
}

/** Nanoseconds since the epoch of a validated civil time, or undefined when a field is out of range. */
function civilToNs(c: Civil): bigint | undefined {
  if (c.mo < 1 || c.mo > 12 || c.d < 1 || c.d > daysInMonth(c.y, c.mo)) return undefined;
  if (c.h > 23 || c.mi > 59 || c.s > 59) return undefined;
  const days = BigInt(daysFromCivil(c.y, c.mo, c.d));
  const secs = BigInt(c.h * 3600 + c.mi * 60 + c.s - c.offsetMinutes * 60);
  const nanos = BigInt((c.frac + '000000000').slice(0, 9));
  return days * NS_PER_DAY + secs * NS_PER_SECOND + nanos;
}

function parseOffset(z: string | undefined): number | undefined {
  if (z === undefined || z === 'Z') return 0;
  const m = /^([+-])(\d{2}):(\d{2})$/.exec(z) ?? /^([+-])(\d{2})(\d{2})$/.exec(z);
  if (!m) return undefined;
  const h = Number(m[2]);
  const mi = Number(m[3]);
  if (h > 23 || mi > 59) return undefined;
  return (m[1] === '-' ? -1 : 1) * (h * 60 + mi);
}

const RFC3339_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/** Parses an RFC 3339 timestamp (fraction of up to 9 digits, `Z` or `±hh:mm`) to nanoseconds since the epoch. */
export function parseTimestampNs(text: string): bigint | undefined {
  const m = RFC3339_RE.exec(text);
  if (!m) return undefined;
  const offsetMinutes = parseOffset(m[8]);
  if (offsetMinutes === undefined) return undefined;
  return civilToNs({
    y: Number(m[1]),
    mo: Number(m[2]),
    d: Number(m[3]),
    h: Number(m[4]),
    mi: Number(m[5]),
    s: Number(m[6]),
    frac: m[7] ?? '',
    offsetMinutes,
  });
}

/** UTC parts of a nanosecond timestamp. */
export function utcParts(ns: bigint): { y: number; m: number; d: number; h: number; mi: number; s: number; nanos: number } {
  let days = ns / NS_PER_DAY;
  let rest = ns % NS_PER_DAY;
  if (rest < 0n) {
    rest += NS_PER_DAY;
    days -= 1n;
  }
  const { y, m, d } = civilFromDays(Number(days));
  const secOfDay = Number(rest / NS_PER_SECOND);
  return { y, m, d, h: Math.floor(secOfDay / 3600), mi: Math.floor(secOfDay / 60) % 60, s: secOfDay % 60, nanos: Number(rest % NS_PER_SECOND) };
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** RFC 3339 in UTC with a fraction of `digits` digits (default 9: nanoseconds; 0: none). */
export function formatTimestampNs(ns: bigint, digits = 9): string {
  const p = utcParts(ns);
  const frac = digits > 0 ? '.' + pad(p.nanos, 9).slice(0, digits) : '';
  return `${pad(p.y, 4)}-${pad(p.m)}-${pad(p.d)}T${pad(p.h)}:${pad(p.mi)}:${pad(p.s)}${frac}Z`;
}

// ---------------------------------------------------------------------------------------------
// parseTimeArg: --since / --until

const DURATION_UNITS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  µs: 1_000n, // U+00B5
  μs: 1_000n, // U+03BC
  ms: 1_000_000n,
  s: NS_PER_SECOND,
  m: 60n * NS_PER_SECOND,
  h: 3600n * NS_PER_SECOND,
};

/** Go's time.ParseDuration without a sign ("3s", "1h43m", "1.5h", "300ms", "0"), in nanoseconds. */
function parseDurationNs(text: string): bigint | undefined {
  if (text === '0') return 0n;
  if (text === '') return undefined;
  const re = /(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)/y;
  let total = 0n;
  let pos = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) return undefined;
    const intPart = m[1] ?? '';
    const fracPart = m[2] ?? '';
    if (intPart === '' && fracPart === '') return undefined;
    const unit = DURATION_UNITS[m[3]!]!;
    total += BigInt(intPart || '0') * unit;
    if (fracPart) total += (BigInt(fracPart) * unit) / 10n ** BigInt(fracPart.length);
    pos = re.lastIndex;
  }
  return total;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function parseAbsoluteNs(text: string): bigint | undefined {
  const civil = (y: string, mo: string, d: string, h = '0', mi = '0', s = '0', frac = '', zone?: string) => {
    const offsetMinutes = parseOffset(zone);
    if (offsetMinutes === undefined) return undefined;
    return civilToNs({ y: +y, mo: +mo, d: +d, h: +h, mi: +mi, s: +s, frac, offsetMinutes });
  };
  let m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (m) return civil(m[1]!, m[2]!, m[3]!);
  // Hubble's YearMonthDayHour requires a zone ("2019-06-30T18Z")
  m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})(Z|[+-]\d{2}:\d{2})$/.exec(text);
  if (m) return civil(m[1]!, m[2]!, m[3]!, m[4]!, '0', '0', '', m[5]);
  m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(Z|[+-]\d{2}:\d{2})?$/.exec(text);
  if (m) return civil(m[1]!, m[2]!, m[3]!, m[4]!, m[5]!, '0', '', m[6]);
  m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})?$/.exec(text);
  if (m) return civil(m[1]!, m[2]!, m[3]!, m[4]!, m[5]!, m[6]!, m[7] ?? '', m[8]);
  // RFC 1123 with a numeric zone, as Hubble accepts: "Mon, 02 Jan 2006 15:04:05 -0700"
  m = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-]\d{4})$/.exec(text);
  if (m) {
    const mo = MONTHS.indexOf(m[2]!) + 1;
    if (mo === 0) return undefined;
    return civil(m[3]!, String(mo), m[1]!, m[4]!, m[5]!, m[6]!, '', m[7]);
  }
  return undefined;
}

/**
 * Parses a --since/--until value like Hubble: a duration in the past (Go syntax: `3s`, `4m`,
 * `1h43m`, `1.5h`, `300ms`) or an absolute time (`2024-11-21`, `2024-11-21T20:52Z`,
 * `2024-11-21T20:52:01`, RFC 3339 with up to nanoseconds, RFC 1123 with a numeric zone). Unlike
 * Hubble, a time of day without a zone is accepted and read as UTC. Returns RFC 3339 in UTC with
 * nine fraction digits.
 */
export function parseTimeArg(text: string, now: Date): string {
  const t = text.trim();
  const d = parseDurationNs(t);
  const nowMs = now.getTime();
  const ns = d !== undefined ? (Number.isNaN(nowMs) ? undefined : BigInt(nowMs) * 1_000_000n - d) : parseAbsoluteNs(t);
  if (ns === undefined) {
    throw invalid(`time "${text}" is not valid: give a duration like 3s, 4m or 1h43m, or a time like 2024-11-21, 2024-11-21T20:52:01 or 2024-11-21T20:52:01.5+02:00`);
  }
  return formatTimestampNs(ns);
}

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
 * `[namespace/][pod-name-prefix]` as Hubble parses it (k8s.ParseNamespaceName): "x/" is every pod
 * in x, "x/a" pods of x whose name starts with "a", and "a" without a slash means namespace
 * "default" — Hubble's documented behaviour ("If namespace is not provided, 'default' is used").
 */
function compilePods(values: string[], get: (f: Flow) => FlowEndpoint | undefined): Predicate {
  const parsed = values.map((v) => {
    const parts = v.split('/');
    if (parts.length > 1) return { ns: parts[0]!, prefix: parts[1]! };
    if (v === '') throw invalid(`invalid pod filter, must be [namespace/][<name>], got ""`);
    return { ns: 'default', prefix: v };
  });
  return (flow) => {
    const ep = get(flow);
    const ns = ep?.namespace ?? '';
    const pod = ep?.pod_name ?? '';
    if (ns === '' && pod === '') return false;
    return parsed.some((p) => p.ns === ns && (p.prefix === '' || pod.startsWith(p.prefix)));
  };
}

// ---- label selectors

interface FlowLabel {
  source: string;
  key: string;
  value: string;
}

/** `source:key=value` as the flow carries it; a label without a source gets "unspec" as in Cilium. */
function parseFlowLabel(text: string): FlowLabel {
  const eq = text.indexOf('=');
  const keyPart = eq >= 0 ? text.slice(0, eq) : text;
  const value = eq >= 0 ? text.slice(eq + 1) : '';
  const colon = keyPart.indexOf(':');
  return colon >= 0 ? { source: keyPart.slice(0, colon), key: keyPart.slice(colon + 1), value } : { source: 'unspec', key: keyPart, value };
}

type Requirement =
  | { op: 'exists' | '!'; source: string; key: string }
  | { op: 'in' | 'notin'; source: string; key: string; values: string[] }
  | { op: 'gt' | 'lt'; source: string; key: string; n: number };

const SELECTOR_KEY_RE = /^(?:([A-Za-z0-9][-A-Za-z0-9_.]*):)?([A-Za-z0-9][-A-Za-z0-9_./]*)$/;
const SELECTOR_VALUE_RE = /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/** Splits on commas outside parentheses. */
function splitTopLevel(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

function parseRequirement(text: string, selector: string): Requirement {
  const bad = (why: string) => invalid(`invalid label selector "${selector}": ${why}`);
  const key = (k: string) => {
    const m = SELECTOR_KEY_RE.exec(k);
    if (!m) throw bad(`"${k}" is not a label key`);
    return { source: m[1] ?? 'any', key: m[2]! };
  };
  const value = (v: string) => {
    if (!SELECTOR_VALUE_RE.test(v)) throw bad(`"${v}" is not a label value`);
    return v;
  };
  const t = text.trim();
  if (t === '') throw bad('empty requirement');
  let m = /^!\s*([^\s=!<>(),]+)$/.exec(t);
  if (m) return { op: '!', ...key(m[1]!) };
  m = /^([^\s=!<>(),]+)\s+(in|notin)\s*\((.*)\)$/.exec(t);
  if (m) {
    const values = m[3]!.split(',').map((v) => v.trim());
    if (values.length === 1 && values[0] === '') throw bad(`"${m[2]}" needs at least one value`);
    return { op: m[2] as 'in' | 'notin', ...key(m[1]!), values: values.map(value) };
  }
  m = /^([^\s=!<>(),]+)\s*(==|=|!=)\s*([^\s,()]*)$/.exec(t);
  if (m) return { op: m[2] === '!=' ? 'notin' : 'in', ...key(m[1]!), values: [value(m[3]!)] };
  m = /^([^\s=!<>(),]+)\s*([<>])\s*(-?\d+)$/.exec(t);
  if (m) return { op: m[2] === '>' ? 'gt' : 'lt', ...key(m[1]!), n: Number(m[3]) };
  m = /^([^\s=!<>(),]+)$/.exec(t);
  if (m) return { op: 'exists', ...key(m[1]!) };
  throw bad(`cannot parse "${t}"`);
}

/**
 * A Kubernetes label selector with Cilium source prefixes, as Hubble translates it: `k8s:app=web`
 * only matches k8s labels, a key without a source (`app=web`) matches any source, commas AND the
 * requirements. `!=` and `notin` also match when the key is absent (Kubernetes semantics).
 */
function compileSelector(selector: string): (labels: FlowLabel[]) => boolean {
  const reqs = selector.trim() === '' ? [] : splitTopLevel(selector).map((r) => parseRequirement(r, selector));
  return (labels) =>
    reqs.every((r) => {
      const found = labels.filter((l) => l.key === r.key && (r.source === 'any' || l.source === r.source));
      switch (r.op) {
        case 'exists':
          return found.length > 0;
        case '!':
          return found.length === 0;
        case 'in':
          return found.some((l) => r.values.includes(l.value));
        case 'notin':
          return !found.some((l) => r.values.includes(l.value));
        case 'gt':
        case 'lt':
          return found.some((l) => /^-?\d+$/.test(l.value) && (r.op === 'gt' ? Number(l.value) > r.n : Number(l.value) < r.n));
      }
    });
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
