/* The flow pipeline without the kernel: flow_event records (encoded with the shared layout) are
 * decoded into Hubble flows with the agent's context, kept in the ring, and counted in the
 * Prometheus metrics. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Endpoint } from '../../src/api/types.js';
import { flowEvent } from '../../src/datapath/layouts.js';
import { ipToInt } from '../../src/net/ipv4.js';
import { FlowDecoder, type FlowContext } from '../../src/flow/decoder.js';
import { Metrics } from '../../src/flow/metrics.js';
import { FlowRing } from '../../src/flow/ring.js';
import type { Flow } from '../../src/flow/types.js';

const ep = (id: number, name: string, ip: string, identity: number): Endpoint =>
  ({ id, name, namespace: 'app', ipv4: ip, identity, labels: [`k8s:app=${name}`], interface: `lxc${id}` }) as Endpoint;
const web = ep(1, 'web', '10.0.0.2', 256);
const client = ep(2, 'client', '10.0.0.3', 257);
/** An endpoint of another node (ID 0), as this node last heard of it. */
const remote = ep(0, 'remote', '10.0.1.4', 300);
const policy = { ref: { kind: 'CiliumNetworkPolicy' as const, namespace: 'app', name: 'web-policy' }, revision: 7 };

const ctx: FlowContext = {
  nodeName: 'node1',
  endpointByIp: (ip) => [web, client, remote].find((e) => ipToInt(e.ipv4) === ip),
  identityLabels: (id) => (id === 2 ? ['reserved:world'] : id === 301 ? ['k8s:app=relabelled'] : []),
  rulePolicy: (ruleId) => (ruleId === 3 ? policy : undefined),
  defaultDenyPolicies: (epId, dir) => (epId === web.id && dir === 'ingress' ? [policy] : []),
  serviceOfBackend: (ip, port) => (ip === ipToInt(web.ipv4) && port === 80 ? 'web-svc' : undefined),
};

/** The decoder reads records through a view, as the ring reader hands them over. */
const viewOf = (b: Buffer) => new DataView(b.buffer, b.byteOffset, b.byteLength);

const base = {
  timestamp_ns: 5_000_000_000n,
  protocol: 6,
  ep_id: web.id,
  ifindex: 11,
  src_identity: client.identity,
  dst_identity: web.identity,
  saddr: client.ipv4,
  daddr: web.ipv4,
  sport: 40000,
  dport: 80,
  ethertype: 0x0800,
  orig_len: 74,
  src_mac: '02:00:00:00:00:01',
  dst_mac: '02:00:00:00:00:02',
};
const decode = (fields: Partial<Parameters<typeof flowEvent.encode>[0]>): Flow => {
  const decoder = new FlowDecoder(ctx);
  return decoder.materialize(decoder.capture(viewOf(flowEvent.encode({ ...base, ...fields })), 0));
};

describe('flow decoding', () => {
  it('turns a default-deny drop into a DROPPED flow naming the policies behind the default deny', () => {
    const f = decode({ type: 1, subtype: 133, direction: 1, verdict: 2, tcp_flags: 0x02 });
    assert.equal(f.verdict, 'DROPPED');
    assert.equal(f.drop_reason_desc, 'POLICY_DENIED');
    assert.deepEqual(f.event_type, { type: 1, sub_type: 133 });
    assert.equal(f.traffic_direction, 'INGRESS');
    assert.deepEqual(f.IP, { source: client.ipv4, destination: web.ipv4, ipVersion: 'IPv4' });
    assert.deepEqual(f.l4, { TCP: { source_port: 40000, destination_port: 80, flags: { SYN: true } } });
    assert.deepEqual([f.source?.pod_name, f.source?.identity, f.destination?.ID], ['client', 257, 1]);
    assert.deepEqual(f.default_deny_by?.map((p) => p.name), ['web-policy']);
    assert.equal(f.destination_service?.name, 'web-svc');
    assert.equal(f.is_reply, undefined, 'drops are not classified by connection tracking');
    assert.equal(f.node_name, 'node1');
    assert.deepEqual(f.ethernet, { source: '02:00:00:00:00:01', destination: '02:00:00:00:00:02' });
  });

  it('gives the policy verdict that precedes a policy drop its reason and the policies behind it, as Hubble does', () => {
    const denied = decode({ type: 5, subtype: 133, direction: 1, verdict: 2, tcp_flags: 0x02 });
    assert.equal(denied.verdict, 'DROPPED');
    assert.deepEqual(denied.event_type, { type: 5, sub_type: 0 });
    assert.equal(denied.drop_reason, 133);
    assert.equal(denied.drop_reason_desc, 'POLICY_DENIED');
    assert.deepEqual(denied.default_deny_by?.map((p) => p.name), ['web-policy']);
    assert.equal(denied.policy_match_type, undefined, 'match none');
    const byRule = decode({ type: 5, subtype: 181, direction: 1, verdict: 2, rule_id: 3, match_type: 1 });
    assert.equal(byRule.drop_reason_desc, 'POLICY_DENY');
    assert.deepEqual(byRule.ingress_denied_by?.map((p) => p.name), ['web-policy']);
    assert.equal(byRule.policy_match_type, 1);
    const audited = decode({ type: 5, subtype: 133, direction: 1, verdict: 4 });
    assert.equal(audited.verdict, 'AUDIT');
    assert.equal(audited.drop_reason_desc, undefined, 'an audited verdict dropped nothing');
  });

  it('carries the workload named by an app label, and services in namespace "default"', () => {
    const f = decode({ type: 4, subtype: 0, direction: 1, verdict: 1 });
    assert.deepEqual(f.destination?.workloads, [{ name: 'web' }], 'from k8s:app=web');
    assert.deepEqual(f.destination_service, { name: 'web-svc', namespace: 'default' });
    assert.equal(f.source_service, undefined);
  });

  it("names another node's endpoint by the identity the datapath judged, with that identity's labels", () => {
    // As this node knows it: its entry's identity and labels.
    const known = decode({ type: 1, subtype: 133, direction: 1, verdict: 2, saddr: remote.ipv4, src_identity: 300 });
    assert.deepEqual([known.source?.identity, known.source?.labels, known.source?.pod_name, known.source?.ID], [300, ['k8s:app=remote'], 'remote', undefined]);
    // Its packets carry an identity this node has not yet heard it has (relabelled while etcd was away).
    const judged = decode({ type: 1, subtype: 133, direction: 1, verdict: 2, saddr: remote.ipv4, src_identity: 301 });
    assert.deepEqual([judged.source?.identity, judged.source?.labels, judged.source?.pod_name], [301, ['k8s:app=relabelled'], 'remote']);
    assert.deepEqual(judged.source?.workloads, [{ name: 'relabelled' }]);
    // A local endpoint keeps its own identity whatever the event says (an address identity).
    const local = decode({ type: 1, subtype: 133, direction: 1, verdict: 2, src_identity: 25165825 });
    assert.equal(local.source?.identity, client.identity);
  });

  it('names the allowing policy of a policy verdict, with its match type', () => {
    const f = decode({ type: 5, subtype: 0, direction: 1, verdict: 1, rule_id: 3, match_type: 2 });
    assert.equal(f.verdict, 'FORWARDED');
    assert.deepEqual(f.ingress_allowed_by?.map((p) => `${p.namespace}/${p.name} rev ${p.revision}`), ['app/web-policy rev 7']);
    assert.equal(f.policy_match_type, 2);
  });

  it("uses Cilium's trace sub-types: to-endpoint is 0, from-endpoint 5", () => {
    const to = decode({ type: 4, subtype: 0, direction: 2, verdict: 1, ct_state: 2 });
    assert.deepEqual(to.event_type, { type: 4, sub_type: 0 });
    assert.equal(to.trace_observation_point, 'TO_ENDPOINT');
    assert.equal(to.is_reply, true);
    const from = decode({ type: 4, subtype: 5, direction: 2, verdict: 1, ct_state: 0 });
    assert.equal(from.trace_observation_point, 'FROM_ENDPOINT');
    assert.equal(from.is_reply, false);
  });

  it('leaves the IP out of a drop of something that is not IPv4', () => {
    const f = decode({ type: 1, subtype: 139, direction: 2, verdict: 2, ethertype: 0x86dd, saddr: '0.0.0.0', daddr: '0.0.0.0' });
    assert.equal(f.drop_reason_desc, 'UNSUPPORTED_L3_PROTOCOL');
    assert.equal(f.IP, undefined);
    assert.equal(f.l4, undefined);
    assert.equal(f.Summary, 'IPv6');
  });
});

describe('flow ring', () => {
  const decoder = new FlowDecoder(ctx);
  const event = (dport: number) => decoder.capture(viewOf(flowEvent.encode({ ...base, type: 4, verdict: 1, dport })), 0);

  it('keeps the last N flows, oldest first, and counts every one seen', () => {
    const ring = new FlowRing(3, 'node1', (ev) => decoder.materialize(ev));
    for (let port = 1; port <= 5; port++) ring.push(event(port));
    assert.deepEqual(ring.flows().map((f) => f.l4?.TCP?.destination_port), [3, 4, 5]);
    assert.deepEqual([ring.status().num_flows, ring.status().seen_flows], [3, 5]);
    assert.deepEqual(ring.query({ number: 2 }).map((f) => f.l4?.TCP?.destination_port), [4, 5]);
    assert.deepEqual(ring.query({ number: 1, first: true }).map((f) => f.l4?.TCP?.destination_port), [3]);
  });

  it('refills a full ring in place, and flows handed out before keep what they said', () => {
    const ring = new FlowRing(2, 'node1', (ev) => decoder.materialize(ev));
    const handedOut: Flow[] = [];
    ring.subscribe((f) => handedOut.push(f));
    const encode = (fields: Partial<Parameters<typeof flowEvent.encode>[0]>) => viewOf(flowEvent.encode({ ...base, ...fields }));
    assert.equal(ring.oldest(), undefined, 'nothing to refill before the ring is full');
    ring.push(decoder.capture(encode({ type: 5, verdict: 1, direction: 1, rule_id: 3, dport: 1 }), 0, ring.oldest())); // names its policy
    ring.push(decoder.capture(encode({ type: 4, verdict: 1, dport: 2 }), 0, ring.oldest()));
    const verdictSlot = ring.oldest();
    assert.ok(verdictSlot, 'a full ring offers its oldest slot');
    // A verdict that names no rule, in the slot of one that did.
    const next = decoder.capture(encode({ type: 5, verdict: 1, direction: 1, rule_id: 0, dport: 3 }), 0, verdictSlot);
    assert.equal(next, verdictSlot, 'filled in place');
    ring.push(next);
    assert.deepEqual(ring.flows().map((f) => f.l4?.TCP?.destination_port), [2, 3]);
    const refilled = ring.flows()[1]!;
    assert.equal(refilled.event_type.type, 5);
    assert.equal(refilled.ingress_allowed_by, undefined, 'no policy left over from the slot before');
    assert.deepEqual(handedOut.map((f) => f.l4?.TCP?.destination_port), [1, 2, 3]);
    assert.deepEqual(handedOut[0]!.ingress_allowed_by?.map((p) => p.name), ['web-policy'], 'the verdict handed out still names its policy');
  });

  it('hands new flows and lost-event counts to followers until they leave', () => {
    const ring = new FlowRing(8, 'node1', (ev) => decoder.materialize(ev));
    const got: number[] = [];
    const lost: number[] = [];
    const stop = ring.subscribe((f) => got.push(f.l4?.TCP?.destination_port ?? -1), (n) => lost.push(n));
    ring.push(event(80));
    ring.noteLost(4);
    ring.noteLost(4); // no new loss
    ring.noteLost(10);
    stop();
    ring.push(event(81));
    ring.noteLost(12);
    assert.deepEqual(got, [80]);
    assert.deepEqual(lost, [4, 6]);
    assert.equal(ring.status().lost_events, 12);
  });
});

describe('flow metrics', () => {
  it("counts flows, drops and verdicts with Hubble's names and labels, and lost events by source", async () => {
    let lost = 0;
    const metrics = new Metrics({ endpoints: () => 2, identities: () => 5, policyRevision: () => 9, mapPressure: () => [{ map: 'mb_ct', pressure: 0.25 }], lostEvents: () => lost, flowFollowers: () => 2 });
    const decoder = new FlowDecoder(ctx);
    const capture = (fields: Partial<Parameters<typeof flowEvent.encode>[0]>) => decoder.capture(viewOf(flowEvent.encode({ ...base, ...fields })), 0);
    // Two denials: each is a policy verdict (DROPPED) and then a drop, as the datapath emits them.
    for (let i = 0; i < 2; i++) {
      metrics.count(capture({ type: 5, subtype: 133, direction: 1, verdict: 2 }));
      metrics.count(capture({ type: 1, subtype: 133, direction: 1, verdict: 2 }));
    }
    metrics.count(capture({ type: 5, direction: 1, verdict: 1, match_type: 2 }));
    metrics.count(capture({ type: 4, subtype: 0, direction: 1, verdict: 1 }));
    lost = 3;
    const text = await metrics.text();
    assert.match(text, /hubble_drop_total\{reason="POLICY_DENIED",protocol="TCP"\} 2/);
    assert.match(text, /hubble_flows_processed_total\{protocol="TCP",type="Trace",subtype="to-endpoint",verdict="FORWARDED"\} 1/);
    assert.match(text, /hubble_policy_verdicts_total\{direction="ingress",match="l3-l4",action="forwarded"\} 1/);
    assert.match(text, /hubble_policy_verdicts_total\{direction="ingress",match="none",action="dropped"\} 2/, 'each denial counted once');
    assert.match(text, /hubble_flows_processed_total\{protocol="TCP",type="PolicyVerdict",subtype="",verdict="DROPPED"\} 2/);
    assert.match(text, /hubble_lost_events_total\{source="perf_event_ring_buffer"\} 3/);
    assert.match(text, /membrane_identities 5/);
    assert.match(text, /membrane_policy_revision 9/);
    assert.match(text, /membrane_flow_followers 2/);
    assert.match(text, /membrane_bpf_map_pressure\{map_name="mb_ct"\} 0.25/);
    lost = 5;
    assert.match(await metrics.text(), /hubble_lost_events_total\{source="perf_event_ring_buffer"\} 5/);
  });

  it("counts TCP flags and destination ports of forwarded flows with Hubble's labels", async () => {
    const metrics = new Metrics({ endpoints: () => 0, identities: () => 0, policyRevision: () => 0, mapPressure: () => [], lostEvents: () => 0, flowFollowers: () => 0 });
    const decoder = new FlowDecoder(ctx);
    const capture = (fields: Partial<Parameters<typeof flowEvent.encode>[0]>) => decoder.capture(viewOf(flowEvent.encode({ ...base, ...fields })), 0);
    metrics.count(capture({ type: 5, direction: 1, verdict: 1, tcp_flags: 0x02 })); // SYN: its verdict
    metrics.count(capture({ type: 4, direction: 1, verdict: 1, tcp_flags: 0x02 })); // and its trace
    metrics.count(capture({ type: 4, direction: 1, verdict: 1, ct_state: 2, tcp_flags: 0x12, sport: 80, dport: 40000 })); // SYN-ACK reply
    metrics.count(capture({ type: 4, direction: 1, verdict: 1, ct_state: 1, tcp_flags: 0x11 })); // FIN-ACK
    metrics.count(capture({ type: 4, direction: 1, verdict: 1, ct_state: 1, tcp_flags: 0x14 })); // RST-ACK
    metrics.count(capture({ type: 4, direction: 1, verdict: 1, ct_state: 1, tcp_flags: 0x18 })); // PSH-ACK: no flag counted
    metrics.count(capture({ type: 1, subtype: 133, direction: 1, verdict: 2, tcp_flags: 0x02 })); // dropped: not counted
    metrics.count(capture({ type: 4, direction: 2, verdict: 1, protocol: 17, dport: 53 }));
    metrics.count(capture({ type: 4, direction: 2, verdict: 1, protocol: 1, sport: 0, dport: 0 }));
    metrics.count(capture({ type: 4, direction: 2, verdict: 1, protocol: 1, sport: 0, dport: 0, ct_state: 2 })); // echo reply
    const text = await metrics.text();
    assert.match(text, /hubble_tcp_flags_total\{flag="SYN",family="IPv4"\} 2/);
    assert.match(text, /hubble_tcp_flags_total\{flag="SYN-ACK",family="IPv4"\} 1/);
    assert.match(text, /hubble_tcp_flags_total\{flag="FIN",family="IPv4"\} 1/);
    assert.match(text, /hubble_tcp_flags_total\{flag="RST",family="IPv4"\} 1/);
    assert.doesNotMatch(text, /hubble_tcp_flags_total\{flag="(PSH|ACK)"/);
    // Replies are left out: the SYN-ACK's port 40000 is not a service port.
    assert.match(text, /hubble_port_distribution_total\{protocol="TCP",port="80"\} 5/);
    assert.doesNotMatch(text, /port="40000"/);
    assert.match(text, /hubble_port_distribution_total\{protocol="UDP",port="53"\} 1/);
    assert.match(text, /hubble_port_distribution_total\{protocol="ICMPv4",port="0"\} 1/);
  });
});
