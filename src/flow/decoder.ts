/* Turns datapath events (struct flow_event) into Hubble flows, enriched with what the agent
 * knows: endpoints (namespace, pod, labels) by address, identity labels for everything else,
 * and the policies behind a verdict — including, beyond Hubble, the policies that put an
 * endpoint into default deny when a packet matched no allow. */
import crypto from 'node:crypto';
import type { Endpoint } from '../api/types.js';
import { CT_STATE, DIRECTION, flowEvent, TRACE_POINT } from '../datapath/layouts.js';
import type { StructValue } from '../datapath/struct.js';
import type { PolicyRef } from '../policy/types.js';
import { DROP_REASONS, EVENT_TYPE, type Flow, type FlowEndpoint, type FlowPolicy, type Layer4, type TCPFlags } from './types.js';

export type FlowEventRecord = StructValue<typeof flowEvent>;

export interface FlowContext {
  nodeName: string;
  endpointByIp(ip: string): Endpoint | undefined;
  identityLabels(identity: number): string[];
  rulePolicy(ruleId: number): { ref: PolicyRef; revision: number } | undefined;
  /** Policies whose rules select the endpoint in that direction (the cause of default deny). */
  defaultDenyPolicies(epId: number, direction: 'ingress' | 'egress'): { ref: PolicyRef; revision: number }[];
  interfaceName(ifindex: number): string | undefined;
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

export function rfc3339Nano(wallNs: bigint): string {
  const ms = Number(wallNs / 1_000_000n);
  const iso = new Date(ms).toISOString(); // 2026-11-21T21:40:01.123Z
  const nanos = (wallNs % 1_000_000_000n).toString().padStart(9, '0');
  return `${iso.slice(0, 19)}.${nanos}Z`;
}

function tcpFlags(bits: number): TCPFlags {
  const flags: TCPFlags = {};
  for (const [name, bit] of TCP_FLAG_BITS) if (bits & bit) flags[name] = true;
  return flags;
}

function layer4(ev: FlowEventRecord): { l4?: Layer4; summary: string } {
  switch (ev.protocol) {
    case 6: {
      const flags = tcpFlags(ev.tcp_flags);
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
        l4: { ICMPv4: { ...(ev.icmp_type ? { type: ev.icmp_type } : {}), ...(ev.icmp_code ? { code: ev.icmp_code } : {}) } },
        summary: `ICMPv4 ${ICMP_NAMES[ev.icmp_type] ?? `type ${ev.icmp_type}`}`,
      };
    default:
      return { summary: `IP protocol ${ev.protocol}` };
  }
}

export function flowPolicy(p: { ref: PolicyRef; revision: number }): FlowPolicy {
  const labels = [
    `k8s:io.cilium.k8s.policy.derived-from=${p.ref.kind}`,
    `k8s:io.cilium.k8s.policy.name=${p.ref.name}`,
    ...(p.ref.namespace ? [`k8s:io.cilium.k8s.policy.namespace=${p.ref.namespace}`] : []),
  ];
  return { name: p.ref.name, ...(p.ref.namespace ? { namespace: p.ref.namespace } : {}), labels, revision: p.revision, kind: p.ref.kind };
}

export class FlowDecoder {
  private readonly epochNs = monotonicEpochNs();

  constructor(private readonly ctx: FlowContext) {}

  private endpoint(ip: string, identity: number): FlowEndpoint {
    const ep = this.ctx.endpointByIp(ip);
    if (ep) return { ID: ep.id, identity, namespace: ep.namespace, labels: ep.labels, pod_name: ep.name };
    return { identity, labels: this.ctx.identityLabels(identity) };
  }

  decode(ev: FlowEventRecord): Flow {
    const direction = ev.direction === DIRECTION.INGRESS ? 'ingress' : 'egress';
    const { l4, summary } = layer4(ev);
    const flow: Flow = {
      time: rfc3339Nano(this.epochNs + ev.timestamp_ns),
      uuid: crypto.randomUUID(),
      verdict: ev.verdict === 2 ? 'DROPPED' : 'FORWARDED',
      ethernet: { source: ev.src_mac, destination: ev.dst_mac },
      IP: { source: ev.saddr, destination: ev.daddr, ipVersion: 'IPv4' },
      ...(l4 ? { l4 } : {}),
      source: this.endpoint(ev.saddr, ev.src_identity),
      destination: this.endpoint(ev.daddr, ev.dst_identity),
      Type: 'L3_L4',
      node_name: this.ctx.nodeName,
      event_type: { type: ev.type, sub_type: ev.subtype },
      traffic_direction: direction === 'ingress' ? 'INGRESS' : 'EGRESS',
      is_reply: ev.ct_state === CT_STATE.REPLY || ev.ct_state === CT_STATE.RELATED,
      interface: { index: ev.ifindex, ...(this.ctx.interfaceName(ev.ifindex) ? { name: this.ctx.interfaceName(ev.ifindex)! } : {}) },
      Summary: summary,
    };
    if (ev.type === EVENT_TYPE.TRACE) {
      flow.trace_observation_point = ev.subtype === TRACE_POINT.TO_ENDPOINT ? 'TO_ENDPOINT' : 'FROM_ENDPOINT';
    }
    if (ev.type === EVENT_TYPE.DROP) {
      flow.drop_reason = ev.subtype;
      flow.drop_reason_desc = DROP_REASONS[ev.subtype] ?? `DROP_REASON_${ev.subtype}`;
      delete flow.is_reply; // drops are not classified by connection tracking
    }
    if (ev.type === EVENT_TYPE.POLICY_VERDICT || ev.type === EVENT_TYPE.DROP) {
      if (ev.match_type) flow.policy_match_type = ev.match_type;
      this.attribute(flow, ev, direction);
    }
    return flow;
  }

  private attribute(flow: Flow, ev: FlowEventRecord, direction: 'ingress' | 'egress'): void {
    const rule = ev.rule_id ? this.ctx.rulePolicy(ev.rule_id) : undefined;
    if (ev.type === EVENT_TYPE.POLICY_VERDICT && rule) {
      flow[`${direction}_allowed_by`] = [flowPolicy(rule)];
    } else if (flow.drop_reason_desc === 'POLICY_DENY' && rule) {
      flow[`${direction}_denied_by`] = [flowPolicy(rule)];
    } else if (flow.drop_reason_desc === 'POLICY_DENIED') {
      const causes = this.ctx.defaultDenyPolicies(ev.ep_id, direction);
      if (causes.length) flow.default_deny_by = causes.map(flowPolicy);
    }
  }
}
