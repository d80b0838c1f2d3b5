/* Turns datapath events (struct flow_event) into Hubble flows, enriched with what the agent
 * knows: endpoints (namespace, pod, labels) by address, identity labels for everything else,
 * and the policies behind a verdict — including, beyond Hubble, the policies that put an
 * endpoint into default deny when a packet matched no allow. */
import crypto from 'node:crypto';
import type { Endpoint } from '../endpoint/types.js';
import { CT_STATE, DIRECTION, DROP_REASON, ETHERTYPE_IPV4, EVENT_TYPE, flowEvent, TRACE_POINT, VERDICT } from '../datapath/layouts.js';
import { offsetsOf } from '../datapath/struct.js';
import type { PolicyRef } from '../policy/types.js';
import { formatTimestampNs } from '../util/time.js';
import { dropReasonName, hubbleEnum } from './proto.js';
import type { Flow, FlowEndpoint, FlowPolicy, Layer4, ObservationPoint, TCPFlags, Workload } from './types.js';

/**
 * What a flow says of an endpoint at one end: a local one (with its ID and interface) or, in a
 * cluster, one of another node (ID 0: endpoint IDs are per node, as in Hubble).
 */
export type FlowPeer = Pick<Endpoint, 'id' | 'identity' | 'namespace' | 'name' | 'labels'> & { interface?: string };

export interface FlowContext {
  nodeName: string;
  /** By IPv4 address as a host-order integer (what the event carries, without making strings). */
  endpointByIp(ip: number): FlowPeer | undefined;
  identityLabels(identity: number): string[];
  rulePolicy(ruleId: number): PolicyOrigin | undefined;
  /** Policies whose rules select the endpoint in that direction (the cause of default deny). */
  defaultDenyPolicies(epId: number, direction: 'ingress' | 'egress'): PolicyOrigin[];
  /** The service whose backend is ip:port/protocol (ip as a host-order integer), if any. */
  serviceOfBackend?(ip: number, port: number, protocol: number): string | undefined;
}

/** A policy a verdict names: a user's (PolicyRef), or one the agent enforces on its own. */
export type PolicyOrigin = { ref: PolicyRef | { kind: 'MembraneBuiltin'; name: string; namespace?: undefined }; revision: number };

/**
 * One datapath event as read from the ring, with what must be known at event time (the
 * endpoints and policies involved) captured by reference. Turning it into a Flow — strings,
 * timestamps, labels — happens only when somebody reads it.
 */
export interface CapturedEvent {
  seq: number;
  /** Monotonic nanoseconds, as two 32-bit halves (no BigInt on the hot path). */
  tsHi: number;
  tsLo: number;
  type: number;
  subtype: number;
  direction: number;
  verdict: number;
  ctState: number;
  tcpFlags: number;
  protocol: number;
  matchType: number;
  epId: number;
  ifindex: number;
  srcIdentity: number;
  dstIdentity: number;
  /** IPv4 addresses as host-order integers. */
  saddr: number;
  daddr: number;
  sport: number;
  dport: number;
  icmpType: number;
  icmpCode: number;
  ethertype: number;
  /** MAC addresses as their first two and last four bytes. */
  srcMacHi: number;
  srcMacLo: number;
  dstMacHi: number;
  dstMacLo: number;
  srcEp?: FlowPeer;
  dstEp?: FlowPeer;
  policies?: PolicyOrigin[];
  flow?: Flow;
}

const O = offsetsOf(flowEvent);
/** Hubble's Verdict enum by number (the datapath uses the same numbers). */

const OCTET = Array.from({ length: 256 }, (_, i) => String(i));
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function ipString(n: number): string {
  return `${OCTET[n >>> 24]}.${OCTET[(n >>> 16) & 255]}.${OCTET[(n >>> 8) & 255]}.${OCTET[n & 255]}`;
}

function macString(hi: number, lo: number): string {
  return `${HEX[hi >>> 8]}:${HEX[hi & 255]}:${HEX[lo >>> 24]}:${HEX[(lo >>> 16) & 255]}:${HEX[(lo >>> 8) & 255]}:${HEX[lo & 255]}`;
}

const TCP_FLAG_BITS: [keyof TCPFlags, number][] = [
  ['FIN', 0x01],
  ['SYN', 0x02],
  ['RST', 0x04],
  ['PSH', 0x08],
  ['ACK', 0x10],
  ['URG', 0x20],
  ['ECE', 0x40],
  ['CWR', 0x80],
];

/** What the datapath drops as an unsupported L3 protocol, as a summary names it. */
/** The datapath's trace points by number (each TRACE_POINT name is Hubble's TraceObservationPoint name). */
const TRACE_POINT_NAME: Record<number, ObservationPoint> = Object.fromEntries(
  Object.entries(TRACE_POINT).map(([name, code]) => [code, name as ObservationPoint]),
);

const ETHERTYPE_NAMES: Record<number, string> = { 0x86dd: 'IPv6', 0x8100: 'VLAN', 0x88cc: 'LLDP' };

const ICMP_NAMES: Record<number, string> = {
  0: 'EchoReply',
  3: 'DestinationUnreachable',
  5: 'Redirect',
  8: 'EchoRequest',
  11: 'TimeExceeded',
  12: 'ParameterProblem',
};

/** Wall-clock nanoseconds of the monotonic clock's zero (bpf_ktime_get_ns counts from there). */
export function monotonicEpochNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
}

function tcpFlags(bits: number): TCPFlags {
  const flags: TCPFlags = {};
  for (const [name, bit] of TCP_FLAG_BITS) if (bits & bit) flags[name] = true;
  return flags;
}

function layer4(ev: CapturedEvent): { l4?: Layer4; summary: string } {
  switch (ev.protocol) {
    case 6: {
      const flags = tcpFlags(ev.tcpFlags);
      const names = TCP_FLAG_BITS.filter(([n]) => flags[n]).map(([n]) => n);
      return {
        l4: { TCP: { source_port: ev.sport, destination_port: ev.dport, ...(names.length ? { flags } : {}) } },
        summary: names.length ? `TCP Flags: ${names.join(', ')}` : 'TCP',
      };
    }
    case 17:
      return { l4: { UDP: { source_port: ev.sport, destination_port: ev.dport } }, summary: 'UDP' };
    case 132:
      return { l4: { SCTP: { source_port: ev.sport, destination_port: ev.dport } }, summary: 'SCTP' };
    case 1:
      return {
        l4: { ICMPv4: { ...(ev.icmpType ? { type: ev.icmpType } : {}), ...(ev.icmpCode ? { code: ev.icmpCode } : {}) } },
        summary: `ICMPv4 ${ICMP_NAMES[ev.icmpType] ?? `type ${ev.icmpType}`}`,
      };
    default:
      return { summary: `IP protocol ${ev.protocol}` };
  }
}

/**
 * Services are not namespaced in Membrane (a service selects endpoints of any namespace): flows
 * put them in "default", the namespace Hubble's filters assume when none is given, so
 * `--to-service web` and `--to-service default/web` both find them.
 */
const SERVICE_NAMESPACE = 'default';

/** Label keys that name an endpoint's workload, first match wins (Kubernetes' recommended label, then the common one). */
const WORKLOAD_LABEL_KEYS = ['app.kubernetes.io/name', 'app'] as const;

/**
 * The workloads of an endpoint, from its labels: Cilium reads them from a pod's owner references,
 * which Membrane's endpoints do not have, so the workload is what the user names in the
 * `app.kubernetes.io/name` label (else `app`), of any label source, without a kind. An endpoint
 * with neither label has none.
 */
function workloadsOf(labels: readonly string[]): Workload[] | undefined {
  for (const key of WORKLOAD_LABEL_KEYS) {
    for (const label of labels) {
      const colon = label.indexOf(':');
      const eq = label.indexOf('=', colon + 1);
      if (eq < 0 || label.slice(colon + 1, eq) !== key) continue;
      const name = label.slice(eq + 1);
      if (name) return [{ name }];
    }
  }
  return undefined;
}

export function flowPolicy(p: PolicyOrigin): FlowPolicy {
  const labels = [
    `k8s:io.cilium.k8s.policy.derived-from=${p.ref.kind}`,
    `k8s:io.cilium.k8s.policy.name=${p.ref.name}`,
    ...(p.ref.namespace ? [`k8s:io.cilium.k8s.policy.namespace=${p.ref.namespace}`] : []),
  ];
  return { name: p.ref.name, ...(p.ref.namespace ? { namespace: p.ref.namespace } : {}), labels, revision: p.revision, kind: p.ref.kind };
}

/** A captured event with every field present (one object shape for all), to be filled in. */
function blankEvent(): CapturedEvent {
  return {
    seq: 0,
    tsLo: 0,
    tsHi: 0,
    type: 0,
    subtype: 0,
    direction: 0,
    verdict: 0,
    ctState: 0,
    tcpFlags: 0,
    protocol: 0,
    matchType: 0,
    epId: 0,
    ifindex: 0,
    srcIdentity: 0,
    dstIdentity: 0,
    saddr: 0,
    daddr: 0,
    sport: 0,
    dport: 0,
    icmpType: 0,
    icmpCode: 0,
    ethertype: 0,
    srcMacHi: 0,
    srcMacLo: 0,
    dstMacHi: 0,
    dstMacLo: 0,
    srcEp: undefined,
    dstEp: undefined,
    policies: undefined,
    flow: undefined,
  };
}

export class FlowDecoder {
  private readonly epochNs = monotonicEpochNs();
  /** Flow uuids: a random per-agent prefix and the event's sequence number. */
  private readonly uuidPrefix = crypto.randomUUID().slice(0, 23);
  private seq = 0;

  constructor(private readonly ctx: FlowContext) {}

  /**
   * The hot path: fixed offsets from the shared layout, no per-field dispatch, read through a
   * DataView (one load each, where Buffer's readUInt32LE and friends validate their arguments on
   * every call and were most of the decoding time). `into` is the flow
   * ring's oldest event, about to be overwritten: refilling it means a steady stream of events
   * allocates nothing. A new object per event lived a trip round the ring, and the major
   * collections that caused were about half the agent's CPU under a connection-rate load.
   */
  capture(v: DataView, o: number, into?: CapturedEvent): CapturedEvent {
    const type = v.getUint8(o + O.type);
    const direction = v.getUint8(o + O.direction);
    const saddr = v.getUint32(o + O.saddr);
    const daddr = v.getUint32(o + O.daddr);
    // Every field is written, so a refilled slot keeps nothing of the event it held before.
    const c = into ?? blankEvent();
    c.seq = ++this.seq;
    c.tsLo = v.getUint32(o + O.timestamp_ns, true);
    c.tsHi = v.getUint32(o + O.timestamp_ns + 4, true);
    c.type = type;
    c.subtype = v.getUint8(o + O.subtype);
    c.direction = direction;
    c.verdict = v.getUint8(o + O.verdict);
    c.ctState = v.getUint8(o + O.ct_state);
    c.tcpFlags = v.getUint8(o + O.tcp_flags);
    c.protocol = v.getUint8(o + O.protocol);
    c.matchType = v.getUint8(o + O.match_type);
    c.epId = v.getUint32(o + O.ep_id, true);
    c.ifindex = v.getUint32(o + O.ifindex, true);
    c.srcIdentity = v.getUint32(o + O.src_identity, true);
    c.dstIdentity = v.getUint32(o + O.dst_identity, true);
    c.saddr = saddr;
    c.daddr = daddr;
    c.sport = v.getUint16(o + O.sport);
    c.dport = v.getUint16(o + O.dport);
    c.icmpType = v.getUint8(o + O.icmp_type);
    c.icmpCode = v.getUint8(o + O.icmp_code);
    c.ethertype = v.getUint16(o + O.ethertype);
    c.srcMacHi = v.getUint16(o + O.src_mac);
    c.srcMacLo = v.getUint32(o + O.src_mac + 2);
    c.dstMacHi = v.getUint16(o + O.dst_mac);
    c.dstMacLo = v.getUint32(o + O.dst_mac + 2);
    c.srcEp = this.ctx.endpointByIp(saddr);
    c.dstEp = this.ctx.endpointByIp(daddr);
    c.policies = undefined;
    c.flow = undefined;
    if (type === EVENT_TYPE.POLICY_VERDICT || type === EVENT_TYPE.DROP) {
      const ruleId = v.getUint32(o + O.rule_id, true);
      const subtype = c.subtype;
      if (subtype === DROP_REASON.POLICY_DENIED) {
        c.policies = this.ctx.defaultDenyPolicies(c.epId, direction === DIRECTION.INGRESS ? 'ingress' : 'egress');
      } else if (ruleId) {
        const origin = this.ctx.rulePolicy(ruleId);
        if (origin) c.policies = [origin];
      }
    }
    return c;
  }

  private endpoint(ep: FlowPeer | undefined, identity: number): FlowEndpoint {
    // A local endpoint shows its own identity, also where policy saw it by an address identity.
    // Another node's shows the identity the datapath judged it by (in tunnel mode, the one its
    // packets carry), which can be newer than what this node has heard of it (a relabel while
    // etcd is away): a flow never names labels that were not the ones judged.
    if (ep) {
      const judged = !ep.id && identity !== 0 && identity !== ep.identity ? identity : undefined;
      const labels = judged === undefined ? ep.labels : this.ctx.identityLabels(judged);
      const workloads = workloadsOf(labels);
      return { ...(ep.id ? { ID: ep.id } : {}), identity: judged ?? ep.identity, namespace: ep.namespace, labels, pod_name: ep.name, ...(workloads ? { workloads } : {}) };
    }
    return { identity, labels: this.ctx.identityLabels(identity) };
  }

  /** The Hubble flow of a captured event (built once, then cached on the event). */
  materialize(ev: CapturedEvent): Flow {
    if (ev.flow) return ev.flow;
    const direction = ev.direction === DIRECTION.INGRESS ? 'ingress' : 'egress';
    const ipv4 = ev.ethertype === ETHERTYPE_IPV4;
    const { l4, summary } = ipv4 ? layer4(ev) : { l4: undefined, summary: `${ETHERTYPE_NAMES[ev.ethertype] ?? `Ethertype 0x${ev.ethertype.toString(16).padStart(4, '0')}`}` };
    const seqHex = ev.seq.toString(16).padStart(12, '0');
    const flow: Flow = {
      time: formatTimestampNs(this.epochNs + ((BigInt(ev.tsHi) << 32n) | BigInt(ev.tsLo))),
      uuid: `${this.uuidPrefix}-${seqHex.slice(-12)}`,
      verdict: (hubbleEnum('flow.Verdict').get(ev.verdict) ?? 'VERDICT_UNKNOWN') as Flow['verdict'],
      ethernet: { source: macString(ev.srcMacHi, ev.srcMacLo), destination: macString(ev.dstMacHi, ev.dstMacLo) },
      ...(ipv4 ? { IP: { source: ipString(ev.saddr), destination: ipString(ev.daddr), ipVersion: 'IPv4' as const } } : {}),
      ...(l4 ? { l4 } : {}),
      source: this.endpoint(ev.srcEp, ev.srcIdentity),
      destination: this.endpoint(ev.dstEp, ev.dstIdentity),
      Type: 'L3_L4',
      node_name: this.ctx.nodeName,
      // A policy verdict's subtype is the datapath's drop reason, kept in drop_reason below;
      // Hubble's verdict events have sub_type 0.
      event_type: { type: ev.type, sub_type: ev.type === EVENT_TYPE.POLICY_VERDICT ? 0 : ev.subtype },
      traffic_direction: direction === 'ingress' ? 'INGRESS' : 'EGRESS',
      is_reply: ev.ctState === CT_STATE.REPLY || ev.ctState === CT_STATE.RELATED,
      interface: { index: ev.ifindex, ...(this.interfaceName(ev) ? { name: this.interfaceName(ev)! } : {}) },
      Summary: summary,
    };
    const toService = this.ctx.serviceOfBackend?.(ev.daddr, ev.dport, ev.protocol);
    if (toService) flow.destination_service = { name: toService, namespace: SERVICE_NAMESPACE };
    const fromService = this.ctx.serviceOfBackend?.(ev.saddr, ev.sport, ev.protocol);
    if (fromService) flow.source_service = { name: fromService, namespace: SERVICE_NAMESPACE };
    if (ev.type === EVENT_TYPE.TRACE) {
      flow.trace_observation_point = TRACE_POINT_NAME[ev.subtype] ?? 'UNKNOWN_POINT';
    }
    if (ev.type === EVENT_TYPE.DROP) {
      flow.drop_reason = ev.subtype;
      flow.drop_reason_desc = dropReasonName(ev.subtype);
      delete flow.is_reply; // drops are not classified by connection tracking
    } else if (ev.type === EVENT_TYPE.POLICY_VERDICT && ev.verdict === VERDICT.DROPPED) {
      // The verdict that precedes a policy drop carries its reason too, as Hubble's does.
      flow.drop_reason = ev.subtype;
      flow.drop_reason_desc = dropReasonName(ev.subtype);
    }
    if (ev.type === EVENT_TYPE.POLICY_VERDICT || ev.type === EVENT_TYPE.DROP) {
      if (ev.matchType) flow.policy_match_type = ev.matchType;
      // The subtype says why a packet was (or, in audit mode, would have been) dropped.
      const policies = ev.policies?.map(flowPolicy);
      if (policies?.length) {
        if (ev.subtype === DROP_REASON.POLICY_DENY) flow[`${direction}_denied_by`] = policies;
        else if (ev.subtype === DROP_REASON.POLICY_DENIED) flow.default_deny_by = policies;
        else flow[`${direction}_allowed_by`] = policies;
      }
    }
    ev.flow = flow;
    return flow;
  }

  /** The host-side interface of the endpoint that saw the event. */
  private interfaceName(ev: CapturedEvent): string | undefined {
    const self = ev.srcEp?.id === ev.epId ? ev.srcEp : ev.dstEp?.id === ev.epId ? ev.dstEp : undefined;
    return self?.interface;
  }
}
