import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DICT_SEPARATOR,
  flowType,
  formatCompact,
  formatDict,
  formatStampMilli,
  formatTable,
  identityText,
  l4Summary,
  verdictText,
} from '../../src/flow/printer.js';
import { flowResponse, formatJson } from '../../src/flow/protojson.js';
import type { Flow } from '../../src/flow/types.js';
import * as fixtures from '../harness/flows.js';

// Fixtures (test/harness/flows.ts): the same story the filter tests use.
const { drop, reply, udp, icmp, fromHost } = fixtures;

describe('formatCompact', () => {
  it('prints a policy drop with its default-deny policy', () => {
    assert.equal(
      formatCompact(drop),
      'Nov 21 20:52:01.123: x/a:41234 (ID:256) -> y/b:80 (ID:257) Policy denied DROPPED (TCP Flags: SYN) [default deny by CiliumNetworkPolicy y/web-ingress]',
    );
  });
  it('prints a reply the other way round with <-', () => {
    assert.equal(formatCompact(reply), 'Nov 21 20:52:01.123: x/a:41234 (ID:256) <- y/b:80 (ID:257) to-endpoint FORWARDED (TCP Flags: SYN, ACK)');
  });
  it('prints addresses when no pod is known, and reserved identities by name', () => {
    assert.equal(formatCompact(udp), 'Nov 21 20:52:02.500: x/a:5353 (ID:256) -> 10.96.0.10:53 (world) from-endpoint FORWARDED (UDP)');
    assert.equal(formatCompact(fromHost), 'Nov 21 20:52:04.000: 10.0.0.1:39000 (host) -> y/b:8080 (ID:257) to-endpoint FORWARDED (TCP Flags: ACK)');
  });
  it('prints a policy verdict with match type, direction, ALLOWED and the allowing policy', () => {
    assert.equal(
      formatCompact(icmp),
      'Nov 21 20:52:03.000: x/a (ID:256) -> y/c (ID:258) policy-verdict:L3-Only EGRESS ALLOWED (ICMPv4 EchoRequest) [allowed by CiliumNetworkPolicy x/allow-ping]',
    );
  });
  it('prints a denied policy verdict with the denying policies', () => {
    const denied: Flow = {
      ...drop,
      event_type: { type: 5 },
      policy_match_type: 2,
      default_deny_by: undefined,
      ingress_denied_by: [
        { kind: 'CiliumNetworkPolicy', namespace: 'y', name: 'deny-client' },
        { kind: 'CiliumClusterwideNetworkPolicy', name: 'lockdown' },
      ],
    };
    assert.equal(
      formatCompact(denied),
      'Nov 21 20:52:01.123: x/a:41234 (ID:256) -> y/b:80 (ID:257) policy-verdict:L3-L4 INGRESS DENIED (TCP Flags: SYN) [denied by CiliumNetworkPolicy y/deny-client, CiliumClusterwideNetworkPolicy lockdown]',
    );
    assert.equal(verdictText({ ...denied, verdict: 'AUDIT' }), 'AUDITED');
    assert.equal(verdictText({ ...denied, verdict: 'REDIRECTED' }), 'ALLOWED');
    assert.equal(verdictText({ ...drop, verdict: 'AUDIT' }), 'AUDIT');
  });
  it('adds the node name with nodeName and drops policies with policyNames: false', () => {
    assert.equal(
      formatCompact(drop, { nodeName: true, policyNames: false }),
      'Nov 21 20:52:01.123 [node1]: x/a:41234 (ID:256) -> y/b:80 (ID:257) Policy denied DROPPED (TCP Flags: SYN)',
    );
  });
});

describe('printer pieces', () => {
  it('formats timestamps as StampMilli in UTC: space-padded day, truncated milliseconds', () => {
    assert.equal(formatStampMilli('2024-11-01T09:05:07.999999999Z'), 'Nov  1 09:05:07.999');
    assert.equal(formatStampMilli('2024-01-31T23:30:00.5-01:00'), 'Feb  1 00:30:00.500');
    assert.equal(formatStampMilli('not a time'), 'N/A');
  });

  it('names drop reasons as Cilium does', () => {
    const withReason = (code: number): Flow => ({ ...drop, drop_reason: code, event_type: { type: 1, sub_type: code } });
    assert.equal(flowType(withReason(133)), 'Policy denied');
    assert.equal(flowType(withReason(181)), 'Policy denied by denylist');
    assert.equal(flowType(withReason(132)), 'Invalid source ip');
    assert.equal(flowType(withReason(155)), 'CT: Map insertion failed');
    assert.equal(flowType(withReason(250)), '250');
    assert.equal(flowType({ ...drop, event_type: { type: 1 }, drop_reason: 181 }), 'Policy denied by denylist', 'falls back to drop_reason');
  });

  it('names trace observation points, from sub_type or trace_observation_point', () => {
    assert.equal(flowType(reply), 'to-endpoint');
    assert.equal(flowType(udp), 'from-endpoint');
    assert.equal(flowType({ ...udp, event_type: { type: 4 } }), 'from-endpoint');
    assert.equal(flowType({ ...udp, event_type: { type: 4, sub_type: 3 } }), 'to-stack');
    assert.equal(flowType({ ...udp, event_type: { type: 9 } }), 'UNKNOWN');
    assert.equal(flowType({ ...icmp, traffic_direction: undefined, policy_match_type: undefined }), 'policy-verdict:none TRAFFIC_DIRECTION_UNKNOWN');
  });

  it('shows identities as (ID:n) or the reserved name', () => {
    assert.equal(identityText(256), '(ID:256)');
    assert.equal(identityText(1), '(host)');
    assert.equal(identityText(2), '(world)');
    assert.equal(identityText(6), '(remote-node)');
    assert.equal(identityText(undefined), '(unknown)');
  });

  it('summarises L4 headers as Hubble when the flow has no Summary', () => {
    assert.equal(l4Summary({ TCP: { flags: { ACK: true, SYN: true, FIN: true } } }), 'TCP Flags: SYN, ACK, FIN');
    assert.equal(l4Summary({ UDP: {} }), 'UDP');
    assert.equal(l4Summary({ SCTP: {} }), 'SCTP');
    assert.equal(l4Summary({ ICMPv4: {} }), 'ICMPv4 EchoReply');
    assert.equal(l4Summary({ ICMPv4: { type: 3, code: 3 } }), 'ICMPv4 DestinationUnreachable(Port)');
    assert.equal(l4Summary({ ICMPv4: { type: 8, code: 1 } }), 'ICMPv4 EchoRequest(Code: 1)');
    assert.equal(l4Summary({ ICMPv4: { type: 42, code: 1 } }), 'ICMPv4 42(1)');
    assert.equal(formatCompact({ ...icmp, Summary: '', egress_allowed_by: undefined }).endsWith('(ICMPv4 EchoRequest)'), true);
  });

  it('falls back to MAC addresses without an IP header', () => {
    const l2: Flow = { ...drop, IP: undefined, l4: undefined, Summary: '', default_deny_by: undefined };
    assert.equal(formatCompact(l2), 'Nov 21 20:52:01.123: 02:00:0a:00:00:0b (ID:256) -> 02:00:0a:00:01:16 (ID:257) Policy denied DROPPED ()');
  });
});

describe('formatJson', () => {
  it('prints a GetFlowsResponse with the flow fields in proto order and no defaults', () => {
    assert.equal(
      formatJson(drop),
      '{"flow":{"time":"2024-11-21T20:52:01.123456789Z","uuid":"f1-drop","verdict":"DROPPED","drop_reason":133,' +
        '"ethernet":{"source":"02:00:0a:00:00:0b","destination":"02:00:0a:00:01:16"},' +
        '"IP":{"source":"10.0.0.11","destination":"10.0.1.22","ipVersion":"IPv4"},' +
        '"l4":{"TCP":{"source_port":41234,"destination_port":80,"flags":{"SYN":true}}},' +
        '"source":{"ID":11,"identity":256,"namespace":"x","labels":["k8s:app=client","k8s:io.kubernetes.pod.namespace=x"],"pod_name":"a"},' +
        '"destination":{"ID":22,"identity":257,"namespace":"y","labels":["k8s:app=web","k8s:io.kubernetes.pod.namespace=y"],"pod_name":"b"},' +
        '"Type":"L3_L4","node_name":"node1","event_type":{"type":1,"sub_type":133},"traffic_direction":"INGRESS",' +
        '"drop_reason_desc":"POLICY_DENIED","Summary":"TCP Flags: SYN",' +
        '"default_deny_by":[{"name":"web-ingress","namespace":"y","kind":"CiliumNetworkPolicy"}]},' +
        '"node_name":"node1","time":"2024-11-21T20:52:01.123456789Z"}',
    );
  });

  it('keeps is_reply even when false, prints uint64 as strings and orders the trace fields', () => {
    const keys = (line: string) => Object.keys((JSON.parse(line) as { flow: Record<string, unknown> }).flow);
    assert.deepEqual(keys(formatJson(reply)), [
      'time', 'uuid', 'verdict', 'IP', 'l4', 'source', 'destination', 'Type', 'node_name', 'event_type',
      'traffic_direction', 'trace_observation_point', 'is_reply', 'interface', 'Summary',
    ]);
    const u = JSON.parse(formatJson(udp)) as { flow: Record<string, unknown> };
    assert.equal(u.flow.is_reply, false);
    const i = JSON.parse(formatJson(icmp)) as { flow: { egress_allowed_by: unknown; event_type: unknown; l4: unknown; policy_match_type: unknown } };
    assert.deepEqual(i.flow.egress_allowed_by, [{ name: 'allow-ping', namespace: 'x', revision: '4', kind: 'CiliumNetworkPolicy' }]);
    assert.deepEqual(i.flow.event_type, { type: 5 });
    assert.deepEqual(i.flow.l4, { ICMPv4: { type: 8 } });
    assert.equal(i.flow.policy_match_type, 1);
  });

  it('leaves out zero values and unknown enums but keeps empty messages, as protojson', () => {
    const f = JSON.parse(
      formatJson({
        ...reply,
        verdict: 'VERDICT_UNKNOWN',
        traffic_direction: 'TRAFFIC_DIRECTION_UNKNOWN',
        trace_observation_point: 'UNKNOWN_POINT',
        l4: { ICMPv4: { type: 0, code: 0 } },
        source: { ID: 0, identity: 0, labels: [] },
        is_reply: undefined,
        interface: undefined,
      }),
    ) as { flow: Record<string, unknown> };
    assert.deepEqual(Object.keys(f.flow), ['time', 'uuid', 'IP', 'l4', 'source', 'destination', 'Type', 'node_name', 'event_type', 'Summary']);
    assert.deepEqual(f.flow.l4, { ICMPv4: {} });
    assert.deepEqual(f.flow.source, {});
    assert.deepEqual(f.flow.event_type, { type: 4 });
  });

  it('normalises timestamps to 0, 3, 6 or 9 fraction digits in UTC', () => {
    const times = (t: string) => {
      const r = JSON.parse(formatJson({ ...udp, time: t })) as { time: string; flow: { time: string } };
      assert.equal(r.time, r.flow.time);
      return r.time;
    };
    assert.equal(times('2024-11-21T20:52:03.000000000Z'), '2024-11-21T20:52:03Z');
    assert.equal(times('2024-11-21T20:52:02.5Z'), '2024-11-21T20:52:02.500Z');
    assert.equal(times('2024-11-21T20:52:02.000123Z'), '2024-11-21T20:52:02.000123Z');
    assert.equal(times('2024-11-21T21:52:02.000000001+01:00'), '2024-11-21T20:52:02.000000001Z');
  });

  it('is one line per flow and keeps fields it does not know at the end', () => {
    const extra = { ...udp, proxy_port: 0, future_field: 'x' } as Flow;
    const line = formatJson(extra);
    assert.ok(!line.includes('\n'));
    assert.deepEqual(Object.keys((JSON.parse(line) as { flow: object }).flow).slice(-2), ['Summary', 'future_field']);
  });

  it('builds the response object it prints', () => {
    assert.deepEqual(flowResponse(udp), { flow: udp, node_name: 'node2', time: '2024-11-21T20:52:02.5Z' });
  });
});

describe('formatTable', () => {
  it('prints Hubble columns', () => {
    assert.equal(
      formatTable([drop, reply, udp, icmp, fromHost]),
      [
        'TIMESTAMP             SOURCE           DESTINATION     TYPE                            VERDICT     SUMMARY',
        'Nov 21 20:52:01.123   x/a:41234        y/b:80          Policy denied                   DROPPED     TCP Flags: SYN',
        'Nov 21 20:52:01.123   y/b:80           x/a:41234       to-endpoint                     FORWARDED   TCP Flags: SYN, ACK',
        'Nov 21 20:52:02.500   x/a:5353         10.96.0.10:53   from-endpoint                   FORWARDED   UDP',
        'Nov 21 20:52:03.000   x/a              y/c             policy-verdict:L3-Only EGRESS   ALLOWED     ICMPv4 EchoRequest',
        'Nov 21 20:52:04.000   10.0.0.1:39000   y/b:8080        to-endpoint                     FORWARDED   TCP Flags: ACK',
      ].join('\n'),
    );
  });
  it('prints the header only for no flows and a NODE column on request', () => {
    assert.equal(formatTable([]), 'TIMESTAMP   SOURCE   DESTINATION   TYPE   VERDICT   SUMMARY');
    assert.equal(formatTable([udp], { nodeName: true }).split('\n')[1], 'Nov 21 20:52:02.500   node2   x/a:5353   10.96.0.10:53   from-endpoint   FORWARDED   UDP');
  });
});

describe('formatDict', () => {
  it('prints right-aligned KEY: VALUE lines', () => {
    assert.equal(
      formatDict(drop),
      [
        '  TIMESTAMP: Nov 21 20:52:01.123',
        '     SOURCE: x/a:41234',
        'DESTINATION: y/b:80',
        '       TYPE: Policy denied',
        '    VERDICT: DROPPED',
        '    SUMMARY: TCP Flags: SYN',
      ].join('\n'),
    );
    assert.equal(formatDict(icmp, { nodeName: true }).split('\n')[1], '       NODE: node1');
    assert.equal(DICT_SEPARATOR, '------------');
  });
});
