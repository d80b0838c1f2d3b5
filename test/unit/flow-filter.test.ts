import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import { UserError } from '../../src/errors.js';
import { checkRequest, matchesFilter, matchesRequest, selectFromRing } from '../../src/flow/filter.js';
import { formatTimestampNs, parseTimestampNs } from '../../src/util/time.js';
import { parseTimeArg } from '../../src/cli/time-args.js';
import type { Flow, FlowFilter, GetFlowsRequest } from '../../src/flow/types.js';
import * as fixtures from '../harness/flows.js';
import { buildRequest, DEFAULT_FLOW_COUNT, OUTPUT_FORMATS, registerObserveOptions, type ObserveFlags } from '../../src/cli/observe-flags.js';

// ---- fixtures: oldest first, as the ring holds them

/** The shared flows (test/harness/flows.ts), with the labels the label-selector filters need. */
const labelled = (f: Flow, source?: string[], destination?: string[]): Flow => ({
  ...f,
  ...(source ? { source: { ...f.source, labels: source } } : {}),
  ...(destination ? { destination: { ...f.destination, labels: destination } } : {}),
});
const drop = labelled(
  fixtures.drop,
  ['k8s:app=client', 'k8s:io.kubernetes.pod.namespace=x', 'k8s:tier=front'],
  ['k8s:app=web', 'k8s:io.kubernetes.pod.namespace=y', 'container:role=db'],
);
const reply = labelled(fixtures.reply, ['k8s:app=web', 'k8s:io.kubernetes.pod.namespace=y'], ['k8s:app=client', 'k8s:io.kubernetes.pod.namespace=x']);
const udp = labelled(fixtures.udp, ['k8s:app=client']);
const icmp = labelled(fixtures.icmp, ['k8s:app=client'], ['k8s:app=cache']);
const fromHost = labelled(fixtures.fromHost, undefined, ['k8s:app=web']);

const ring = [drop, reply, udp, icmp, fromHost];
const ids = (flows: Flow[]) => flows.map((f) => f.uuid);
/** The uuids of the ring's flows that match the filter. */
const hits = (f: FlowFilter) => ids(ring.filter((fl) => matchesFilter(fl, f)));
const isInvalid = (err: unknown) => err instanceof UserError && err.code === 'invalid' && !err.message.includes('\n');

describe('matchesFilter: fields', () => {
  it('uuid is exact', () => {
    assert.deepEqual(hits({ uuid: ['f3-udp', 'nope'] }), ['f3-udp']);
    assert.deepEqual(hits({ uuid: ['f3'] }), []);
  });

  it('ips match exactly or by CIDR, on the right side', () => {
    assert.deepEqual(hits({ source_ip: ['10.0.0.11'] }), ['f1-drop', 'f3-udp', 'f4-icmp']);
    assert.deepEqual(hits({ source_ip: ['10.0.1.0/24'] }), ['f2-reply']);
    assert.deepEqual(hits({ destination_ip: ['10.0.0.0/16'] }), ['f1-drop', 'f2-reply', 'f4-icmp', 'f5-host']);
    assert.deepEqual(hits({ destination_ip: ['10.96.0.10/32', '10.0.0.1'] }), ['f3-udp']);
    assert.deepEqual(hits({ source_ip: ['10.0.0.5/24'] }), ['f1-drop', 'f3-udp', 'f4-icmp', 'f5-host'], 'host bits are masked off');
    assert.deepEqual(hits({ source_ip: ['0.0.0.0/0'] }).length, 5);
    assert.deepEqual(hits({ source_ip: ['fd00::/8'] }), []);
  });

  for (const bad of ['10.0.0.0/33', '10.0.0/24', '300.0.0.1', 'x', '10.0.0.1/']) {
    it(`rejects the ip filter ${JSON.stringify(bad)}`, () => assert.throws(() => hits({ source_ip: [bad] }), isInvalid));
  }

  it('pods: "ns/" is a namespace, "ns/prefix" a name prefix, no slash means namespace default (as Hubble)', () => {
    assert.deepEqual(hits({ source_pod: ['x/'] }), ['f1-drop', 'f3-udp', 'f4-icmp']);
    assert.deepEqual(hits({ destination_pod: ['y/'] }), ['f1-drop', 'f4-icmp', 'f5-host']);
    assert.deepEqual(hits({ destination_pod: ['y/b'] }), ['f1-drop', 'f5-host']);
    assert.deepEqual(hits({ destination_pod: ['y/c', 'x/a'] }), ['f2-reply', 'f4-icmp']);
    assert.deepEqual(hits({ source_pod: ['x/b'] }), []);
    assert.deepEqual(hits({ source_pod: ['a'] }), [], 'x/a is not in namespace default');
    const inDefault: Flow = { ...drop, source: { ...drop.source, namespace: 'default', pod_name: 'api-7d9f' } };
    assert.ok(matchesFilter(inDefault, { source_pod: ['api'] }));
    assert.ok(matchesFilter(inDefault, { source_pod: ['default/api-7'] }));
    assert.ok(!matchesFilter(inDefault, { source_pod: ['default/web'] }));
    assert.throws(() => hits({ source_pod: [''] }), isInvalid);
  });

  it('a world endpoint without namespace or pod matches no pod filter', () => {
    assert.ok(!matchesFilter(udp, { destination_pod: ['/'] }));
  });

  it('labels: selectors with and without a source, set and existence operators, comma is AND', () => {
    assert.deepEqual(hits({ source_label: ['k8s:app=client'] }), ['f1-drop', 'f3-udp', 'f4-icmp']);
    assert.deepEqual(hits({ source_label: ['app=client'] }), ['f1-drop', 'f3-udp', 'f4-icmp']);
    assert.deepEqual(hits({ source_label: ['app==client'] }), ['f1-drop', 'f3-udp', 'f4-icmp']);
    assert.deepEqual(hits({ source_label: ['container:app=client'] }), [], 'the source must match when given');
    assert.deepEqual(hits({ destination_label: ['role=db'] }), ['f1-drop'], 'no source: any source');
    assert.deepEqual(hits({ destination_label: ['k8s:role=db'] }), []);
    assert.deepEqual(hits({ destination_label: ['container:role'] }), ['f1-drop']);
    assert.deepEqual(hits({ destination_label: ['k8s:app in (web, cache)'] }), ['f1-drop', 'f4-icmp', 'f5-host']);
    assert.deepEqual(hits({ destination_label: ['app notin (web,client)'] }), ['f3-udp', 'f4-icmp'], 'notin also matches when the key is absent');
    assert.deepEqual(hits({ destination_label: ['app!=web'] }), ['f2-reply', 'f3-udp', 'f4-icmp']);
    assert.deepEqual(hits({ source_label: ['!app'] }), ['f5-host']);
    assert.deepEqual(hits({ source_label: ['tier'] }), ['f1-drop']);
    assert.deepEqual(hits({ source_label: ['app=client,tier=front'] }), ['f1-drop']);
    assert.deepEqual(hits({ source_label: ['app=client, tier=back'] }), []);
    assert.deepEqual(hits({ destination_label: ['k8s:io.kubernetes.pod.namespace=y'] }), ['f1-drop']);
    assert.deepEqual(hits({ destination_label: ['io.kubernetes.pod.namespace in (x,y),app'] }), ['f1-drop', 'f2-reply']);
  });

  it('labels: reserved labels, with or without the source', () => {
    assert.deepEqual(hits({ destination_label: ['reserved:world'] }), ['f3-udp']);
    assert.deepEqual(hits({ destination_label: ['world'] }), ['f3-udp']);
    assert.deepEqual(hits({ source_label: ['reserved:host'] }), ['f5-host']);
    assert.deepEqual(hits({ source_label: ['k8s:host'] }), []);
  });

  it('labels: several selectors are ORed', () => {
    assert.deepEqual(hits({ source_label: ['reserved:host', 'app=web'] }), ['f2-reply', 'f5-host']);
  });

  for (const bad of ['app in ()', 'app in (a b)', 'app=has space', '=x', 'a b', 'app=(x)']) {
    it(`rejects the label selector ${JSON.stringify(bad)}`, () => assert.throws(() => hits({ source_label: [bad] }), isInvalid));
  }

  it('identities compare the numeric identity', () => {
    assert.deepEqual(hits({ source_identity: [256] }), ['f1-drop', 'f3-udp', 'f4-icmp']);
    assert.deepEqual(hits({ destination_identity: [2, 258] }), ['f3-udp', 'f4-icmp']);
    assert.deepEqual(hits({ source_identity: [1] }), ['f5-host']);
  });

  it('verdicts', () => {
    assert.deepEqual(hits({ verdict: ['DROPPED'] }), ['f1-drop']);
    assert.deepEqual(hits({ verdict: ['DROPPED', 'AUDIT'] }), ['f1-drop']);
    assert.deepEqual(hits({ verdict: ['FORWARDED'] }), ['f2-reply', 'f3-udp', 'f4-icmp', 'f5-host']);
  });

  it('event types: type 0 matches any, sub-types only with match_sub_type', () => {
    assert.deepEqual(hits({ event_type: [{ type: 4 }] }), ['f2-reply', 'f3-udp', 'f5-host']);
    assert.deepEqual(hits({ event_type: [{ type: 4, sub_type: 5 }] }), ['f2-reply', 'f3-udp', 'f5-host'], 'sub_type ignored without match_sub_type');
    assert.deepEqual(hits({ event_type: [{ type: 4, match_sub_type: true, sub_type: 5 }] }), ['f3-udp']);
    assert.deepEqual(hits({ event_type: [{ type: 4, match_sub_type: true, sub_type: 0 }] }), ['f2-reply', 'f5-host'], 'absent sub_type is 0');
    assert.deepEqual(hits({ event_type: [{ type: 1 }, { type: 5 }] }), ['f1-drop', 'f4-icmp']);
    assert.deepEqual(hits({ event_type: [{ type: 0 }] }).length, 5);
  });

  it('protocols follow the l4 oneof, case-insensitively', () => {
    assert.deepEqual(hits({ protocol: ['TCP'] }), ['f1-drop', 'f2-reply', 'f5-host']);
    assert.deepEqual(hits({ protocol: ['udp'] }), ['f3-udp']);
    assert.deepEqual(hits({ protocol: ['icmp'] }), ['f4-icmp']);
    assert.deepEqual(hits({ protocol: ['ICMPv4'] }), ['f4-icmp']);
    assert.deepEqual(hits({ protocol: ['icmpv6', 'sctp', 'http'] }), []);
    assert.deepEqual(hits({ protocol: ['udp', 'icmp'] }), ['f3-udp', 'f4-icmp']);
    assert.throws(() => hits({ protocol: ['gre'] }), isInvalid);
  });

  it('ports match TCP/UDP/SCTP ports on the right side; ICMP has none', () => {
    assert.deepEqual(hits({ destination_port: ['80'] }), ['f1-drop']);
    assert.deepEqual(hits({ source_port: ['80'] }), ['f2-reply']);
    assert.deepEqual(hits({ destination_port: ['53', '8080'] }), ['f3-udp', 'f5-host']);
    assert.deepEqual(hits({ source_port: ['0'] }), []);
    const sctp: Flow = { ...udp, l4: { SCTP: { source_port: 36412, destination_port: 36412 } } };
    assert.ok(matchesFilter(sctp, { source_port: ['36412'], destination_port: ['36412'] }));
  });

  for (const bad of ['65536', 'x', '-1', '', '8o']) {
    it(`rejects the port ${JSON.stringify(bad)}`, () => assert.throws(() => hits({ destination_port: [bad] }), isInvalid));
  }

  it('reply matches is_reply, absent counting as false', () => {
    assert.deepEqual(hits({ reply: [true] }), ['f2-reply']);
    assert.deepEqual(hits({ reply: [false] }), ['f1-drop', 'f3-udp', 'f4-icmp', 'f5-host']);
    assert.deepEqual(hits({ reply: [true, false] }).length, 5);
  });

  it('traffic direction', () => {
    assert.deepEqual(hits({ traffic_direction: ['INGRESS'] }), ['f1-drop', 'f5-host']);
    assert.deepEqual(hits({ traffic_direction: ['EGRESS'] }), ['f2-reply', 'f3-udp', 'f4-icmp']);
    assert.deepEqual(hits({ traffic_direction: ['TRAFFIC_DIRECTION_UNKNOWN'] }), []);
  });

  it('tcp flags: every flag set in a filter value must be set on the flow', () => {
    assert.deepEqual(hits({ tcp_flags: [{ SYN: true }] }), ['f1-drop', 'f2-reply']);
    assert.deepEqual(hits({ tcp_flags: [{ SYN: true, ACK: true }] }), ['f2-reply']);
    assert.deepEqual(hits({ tcp_flags: [{ ACK: true }] }), ['f2-reply', 'f5-host']);
    assert.deepEqual(hits({ tcp_flags: [{ FIN: true }, { RST: true }] }), []);
    assert.deepEqual(hits({ tcp_flags: [{ FIN: true }, { SYN: true, ACK: true }] }), ['f2-reply']);
    assert.deepEqual(hits({ tcp_flags: [{ SYN: false }] }), ['f1-drop', 'f2-reply', 'f5-host'], 'false flags are not required');
  });

  it('node names: exact, wildcards, cluster prefix', () => {
    assert.deepEqual(hits({ node_name: ['node1'] }), ['f1-drop', 'f2-reply', 'f4-icmp', 'f5-host']);
    assert.deepEqual(hits({ node_name: ['node2'] }), ['f3-udp']);
    assert.deepEqual(hits({ node_name: ['node*'] }).length, 5);
    assert.deepEqual(hits({ node_name: ['*2'] }), ['f3-udp']);
    assert.deepEqual(hits({ node_name: ['default/node2'] }), ['f3-udp'], 'a name without a cluster is in cluster "default"');
    assert.deepEqual(hits({ node_name: ['/node2'] }), ['f3-udp'], 'empty cluster pattern matches any cluster');
    assert.deepEqual(hits({ node_name: ['other/node2'] }), []);
    assert.deepEqual(hits({ node_name: ['NODE2.'] }), ['f3-udp'], 'patterns are lowercased, one trailing dot dropped');
    assert.deepEqual(hits({ node_name: ['node'] }), []);
    const inCluster: Flow = { ...udp, node_name: 'c1/worker-3.example.com' };
    assert.ok(matchesFilter(inCluster, { node_name: ['c1/*.example.com'] }));
    assert.ok(matchesFilter(inCluster, { node_name: ['worker-*'] }));
    assert.ok(!matchesFilter(inCluster, { node_name: ['c2/*'] }));
  });

  for (const bad of ['', 'a/b/c', 'node$', 'x..']) {
    it(`rejects the node name pattern ${JSON.stringify(bad)}`, () => assert.throws(() => hits({ node_name: [bad] }), isInvalid));
  }

  it('ip version', () => {
    assert.equal(hits({ ip_version: ['IPv4'] }).length, 5);
    assert.deepEqual(hits({ ip_version: ['IPv6'] }), []);
    assert.ok(matchesFilter({ ...drop, IP: undefined }, { ip_version: ['IP_NOT_USED'] }));
    assert.throws(() => hits({ ip_version: ['IPv5'] }), isInvalid);
  });
});

describe('matchesFilter: services and workloads', () => {
  const toSvc: Flow = { ...drop, destination_service: { name: 'web-svc', namespace: 'default' }, destination: { ...drop.destination, workloads: [{ name: 'web' }] } };
  const fromSvc: Flow = { ...reply, source_service: { name: 'web-svc', namespace: 'default' }, source: { ...reply.source, workloads: [{ name: 'web', kind: 'Deployment' }] } };
  const flows = [toSvc, fromSvc, udp];
  const pick = (f: FlowFilter) => ids(flows.filter((fl) => matchesFilter(fl, f)));

  it('services: [namespace/]name-prefix, no namespace meaning "default", on the right side', () => {
    assert.deepEqual(pick({ destination_service: ['web-svc'] }), ['f1-drop']);
    assert.deepEqual(pick({ destination_service: ['default/web'] }), ['f1-drop']);
    assert.deepEqual(pick({ destination_service: ['default/'] }), ['f1-drop']);
    assert.deepEqual(pick({ destination_service: ['other/web-svc', 'db'] }), []);
    assert.deepEqual(pick({ source_service: ['web-svc'] }), ['f2-reply']);
    assert.deepEqual(pick({ source_service: ['web-svc'], destination_service: ['web-svc'] }), [], 'ANDed');
    assert.throws(() => pick({ source_service: [''] }), (err: unknown) => isInvalid(err) && /invalid service filter/.test((err as Error).message));
  });

  it('workloads: name and kind must match where the filter sets them', () => {
    assert.deepEqual(pick({ destination_workload: [{ name: 'web' }] }), ['f1-drop']);
    assert.deepEqual(pick({ source_workload: [{ name: 'web' }] }), ['f2-reply']);
    assert.deepEqual(pick({ source_workload: [{ kind: 'Deployment' }] }), ['f2-reply']);
    assert.deepEqual(pick({ source_workload: [{ kind: 'Deployment', name: 'web' }] }), ['f2-reply']);
    assert.deepEqual(pick({ destination_workload: [{ kind: 'Deployment', name: 'web' }] }), [], 'a workload without a kind is no Deployment');
    assert.deepEqual(pick({ destination_workload: [{ name: 'db' }, { name: 'web' }] }), ['f1-drop'], 'values are ORed');
    assert.deepEqual(pick({ destination_workload: [{}] }), ['f1-drop'], 'an empty workload matches any workload, not none');
  });
});

describe('matchesFilter: combining fields', () => {
  it('different fields are ANDed', () => {
    assert.deepEqual(hits({ source_pod: ['x/'], verdict: ['FORWARDED'] }), ['f3-udp', 'f4-icmp']);
    assert.deepEqual(hits({ source_pod: ['x/'], verdict: ['FORWARDED'], protocol: ['udp'] }), ['f3-udp']);
    assert.deepEqual(hits({ source_pod: ['x/'], destination_pod: ['y/'], tcp_flags: [{ SYN: true }] }), ['f1-drop']);
  });
  it('values of one field are ORed', () => {
    assert.deepEqual(hits({ verdict: ['DROPPED', 'FORWARDED'], protocol: ['tcp'] }), ['f1-drop', 'f2-reply', 'f5-host']);
  });
  it('an empty array counts as unset; an empty filter matches everything', () => {
    assert.equal(hits({ verdict: [], source_ip: [], uuid: [] }).length, 5);
    assert.equal(hits({}).length, 5);
  });
});

describe('matchesRequest', () => {
  const sel = (req: GetFlowsRequest) => ids(ring.filter((f) => matchesRequest(f, req)));

  it('whitelist filters are ORed; no or empty whitelist is everything', () => {
    assert.deepEqual(sel({ whitelist: [{ verdict: ['DROPPED'] }, { protocol: ['udp'] }] }), ['f1-drop', 'f3-udp']);
    assert.equal(sel({}).length, 5);
    assert.equal(sel({ whitelist: [] }).length, 5);
  });

  it('no blacklist filter may match', () => {
    assert.deepEqual(sel({ blacklist: [{ source_pod: ['x/'] }] }), ['f2-reply', 'f5-host']);
    assert.deepEqual(sel({ blacklist: [{ source_pod: ['x/'] }, { source_identity: [1] }] }), ['f2-reply']);
    assert.deepEqual(sel({ whitelist: [{ protocol: ['tcp'] }], blacklist: [{ reply: [true] }] }), ['f1-drop', 'f5-host']);
  });

  it('since and until are inclusive and compared to the nanosecond', () => {
    assert.deepEqual(sel({ since: '2024-11-21T20:52:01.123456789Z' }), ['f1-drop', 'f2-reply', 'f3-udp', 'f4-icmp', 'f5-host']);
    assert.deepEqual(sel({ since: '2024-11-21T20:52:01.12345679Z' }), ['f2-reply', 'f3-udp', 'f4-icmp', 'f5-host']);
    assert.deepEqual(sel({ until: '2024-11-21T20:52:01.123456789Z' }), ['f1-drop']);
    assert.deepEqual(sel({ until: '2024-11-21T20:52:01.123456790Z' }), ['f1-drop', 'f2-reply']);
    assert.deepEqual(sel({ since: '2024-11-21T20:52:01.123456790Z', until: '2024-11-21T20:52:01.123456790Z' }), ['f2-reply']);
    assert.deepEqual(sel({ since: '2024-11-21T21:52:02.5+01:00' }), ['f3-udp', 'f4-icmp', 'f5-host'], 'offsets are honoured');
    assert.deepEqual(sel({ since: '2024-11-21T20:52:03Z', whitelist: [{ source_pod: ['x/'] }] }), ['f4-icmp']);
  });

  it('a flow with an unreadable time never matches a time bound', () => {
    assert.ok(!matchesRequest({ ...drop, time: 'garbage' }, { since: '2000-01-01T00:00:00Z' }));
    assert.ok(matchesRequest({ ...drop, time: 'garbage' }, {}));
  });

  it('rejects unreadable bounds', () => {
    assert.throws(() => matchesRequest(drop, { since: '2024-11-21' }), isInvalid);
    assert.throws(() => matchesRequest(drop, { until: '2024-11-21T20:52:01.1234567891Z' }), isInvalid);
  });
});

describe('checkRequest', () => {
  it('accepts a good request and rejects bad filters, bounds and first+follow', () => {
    checkRequest({ number: 5, whitelist: [{ source_pod: ['x/'] }], since: '2024-11-21T20:52:01Z' });
    assert.throws(() => checkRequest({ blacklist: [{ destination_port: ['http'] }] }), isInvalid);
    assert.throws(() => checkRequest({ until: 'yesterday' }), isInvalid);
    assert.throws(() => checkRequest({ first: true, follow: true }), isInvalid);
    assert.throws(() => checkRequest({ number: -1 }), isInvalid);
  });
});

describe('selectFromRing', () => {
  it('returns every match, oldest first, without a number', () => {
    assert.deepEqual(ids(selectFromRing(ring, {})), ids(ring));
    assert.deepEqual(ids(selectFromRing(ring, { number: 0 })), ids(ring));
  });
  it('keeps the last N by default and the first N with first', () => {
    assert.deepEqual(ids(selectFromRing(ring, { number: 2 })), ['f4-icmp', 'f5-host']);
    assert.deepEqual(ids(selectFromRing(ring, { number: 2, first: true })), ['f1-drop', 'f2-reply']);
    assert.deepEqual(ids(selectFromRing(ring, { number: 99 })), ids(ring));
  });
  it('counts only matching flows', () => {
    const req: GetFlowsRequest = { number: 2, whitelist: [{ source_pod: ['x/'] }] };
    assert.deepEqual(ids(selectFromRing(ring, req)), ['f3-udp', 'f4-icmp']);
    assert.deepEqual(ids(selectFromRing(ring, { ...req, first: true })), ['f1-drop', 'f3-udp']);
  });
  it('applies the time range before counting', () => {
    assert.deepEqual(ids(selectFromRing(ring, { number: 1, until: '2024-11-21T20:52:02.5Z' })), ['f3-udp']);
    assert.deepEqual(ids(selectFromRing(ring, { number: 1, first: true, since: '2024-11-21T20:52:01.123456790Z' })), ['f2-reply']);
    assert.deepEqual(ids(selectFromRing(ring, { since: '2024-11-21T20:52:03Z' })), ['f4-icmp', 'f5-host']);
  });
});

describe('timestamps', () => {
  it('parses RFC 3339 to nanoseconds and formats back', () => {
    const ns = parseTimestampNs('2024-11-21T20:52:01.123456789Z')!;
    assert.equal(ns, 1732222321123456789n);
    assert.equal(formatTimestampNs(ns), '2024-11-21T20:52:01.123456789Z');
    assert.equal(parseTimestampNs('2024-11-21T21:52:01.123456789+01:00'), ns);
    assert.equal(parseTimestampNs('1969-12-31T23:59:59.5Z'), -500000000n);
    assert.equal(formatTimestampNs(-500000000n), '1969-12-31T23:59:59.500000000Z');
    assert.equal(formatTimestampNs(0n, 0), '1970-01-01T00:00:00Z');
    assert.equal(parseTimestampNs('2024-02-30T00:00:00Z'), undefined);
    assert.equal(parseTimestampNs('2024-11-21 20:52:01Z'), undefined);
  });
});

describe('parseTimeArg', () => {
  const now = new Date('2019-07-01T14:00:00Z');
  const cases: [string, string][] = [
    ['10s', '2019-07-01T13:59:50.000000000Z'],
    ['5m', '2019-07-01T13:55:00.000000000Z'],
    ['20h', '2019-06-30T18:00:00.000000000Z'],
    ['1h43m', '2019-07-01T12:17:00.000000000Z'],
    ['1.5h', '2019-07-01T12:30:00.000000000Z'],
    ['300ms', '2019-07-01T13:59:59.700000000Z'],
    ['1m30s250us', '2019-07-01T13:58:29.999750000Z'],
    ['0', '2019-07-01T14:00:00.000000000Z'],
    ['2019-06-30', '2019-06-30T00:00:00.000000000Z'],
    ['2019-06-30T18Z', '2019-06-30T18:00:00.000000000Z'],
    ['2019-06-30T18+02:00', '2019-06-30T16:00:00.000000000Z'],
    ['2019-06-30T18:45Z', '2019-06-30T18:45:00.000000000Z'],
    ['2019-06-30T18:45', '2019-06-30T18:45:00.000000000Z'],
    ['2019-06-30T18:45:10', '2019-06-30T18:45:10.000000000Z'],
    ['2019-06-30T18:45:10Z', '2019-06-30T18:45:10.000000000Z'],
    ['2019-06-30T18:45:10.5-01:30', '2019-06-30T20:15:10.500000000Z'],
    ['2019-06-30T18:45:10.123456789+02:00', '2019-06-30T16:45:10.123456789Z'],
    ['Sun, 30 Jun 2019 18:00:00 +0200', '2019-06-30T16:00:00.000000000Z'],
    [' 2019-06-30 ', '2019-06-30T00:00:00.000000000Z'],
  ];
  for (const [input, want] of cases) {
    it(`${JSON.stringify(input)} -> ${want}`, () => assert.equal(parseTimeArg(input, now), want));
  }
  it('rejects a relative time against an invalid now', () => assert.throws(() => parseTimeArg('5m', new Date(NaN)), isInvalid));
  it('keeps the sub-millisecond part of a relative time exact', () => {
    assert.equal(parseTimeArg('1ns', new Date('2024-01-01T00:00:00Z')), '2023-12-31T23:59:59.999999999Z');
  });
  for (const bad of ['', '5x', 'yesterday', '1h-5m', '-5m', '.s', '2019-13-01', '2019-02-29', '2019-06-30T25:00:00Z', '2019-06-30T18', '2019-06-30T18:45:10.1234567890Z', '2019-06-30T18:45:10+25:00']) {
    it(`rejects ${JSON.stringify(bad)} with a one-line UserError`, () => assert.throws(() => parseTimeArg(bad, now), isInvalid));
  }
});

describe('buildRequest', () => {
  const now = new Date('2024-11-21T21:00:00Z');
  const build = (flags: ObserveFlags) => buildRequest(flags, now);

  it('asks for the last 20 flows by default, as the Hubble CLI', () => {
    assert.deepEqual(build({}), { number: DEFAULT_FLOW_COUNT });
    assert.equal(DEFAULT_FLOW_COUNT, 20);
  });

  it('turns an either-side flag into a source filter and a destination filter', () => {
    assert.deepEqual(build({ pod: ['x/a'] }).whitelist, [{ source_pod: ['x/a'] }, { destination_pod: ['x/a'] }]);
    assert.deepEqual(build({ ip: ['10.0.0.0/24', '10.0.1.22'] }).whitelist, [
      { source_ip: ['10.0.0.0/24', '10.0.1.22'] },
      { destination_ip: ['10.0.0.0/24', '10.0.1.22'] },
    ]);
    assert.deepEqual(build({ label: ['app=web'] }).whitelist, [{ source_label: ['app=web'] }, { destination_label: ['app=web'] }]);
    assert.deepEqual(build({ identity: ['256', 'world'] }).whitelist, [{ source_identity: [256, 2] }, { destination_identity: [256, 2] }]);
    assert.deepEqual(build({ port: ['80'] }).whitelist, [{ source_port: ['80'] }, { destination_port: ['80'] }]);
  });

  it('copies the other flags into both filters', () => {
    assert.deepEqual(build({ pod: ['x/a'], verdict: ['dropped'], protocol: ['TCP'], toPort: ['80'] }).whitelist, [
      { source_pod: ['x/a'], destination_port: ['80'], verdict: ['DROPPED'], protocol: ['tcp'] },
      { destination_pod: ['x/a'], destination_port: ['80'], verdict: ['DROPPED'], protocol: ['tcp'] },
    ]);
  });

  it('pairs several either-side flags side by side, as Hubble does', () => {
    assert.deepEqual(build({ pod: ['x/a'], port: ['80'] }).whitelist, [
      { source_pod: ['x/a'], source_port: ['80'] },
      { destination_pod: ['x/a'], destination_port: ['80'] },
    ]);
  });

  it('--namespace adds the namespace to the source side of one filter and the destination side of the other', () => {
    assert.deepEqual(build({ namespace: ['x'] }).whitelist, [{ source_pod: ['x/'] }, { destination_pod: ['x/'] }]);
    assert.deepEqual(build({ namespace: ['x', 'y'] }).whitelist, [{ source_pod: ['x/', 'y/'] }, { destination_pod: ['x/', 'y/'] }]);
    assert.deepEqual(build({ namespace: ['x'], pod: ['a', 'x/b'] }).whitelist, [{ source_pod: ['x/a', 'x/b'] }, { destination_pod: ['x/a', 'x/b'] }]);
    assert.deepEqual(build({ namespace: ['x', 'y'], pod: ['a'] }).whitelist, [{ source_pod: ['x/a', 'y/a'] }, { destination_pod: ['x/a', 'y/a'] }]);
    assert.deepEqual(build({ namespace: ['x'], fromLabel: ['app=client'] }).whitelist, [
      { source_label: ['app=client'], source_pod: ['x/'] },
      { source_label: ['app=client'], destination_pod: ['x/'] },
    ]);
  });

  it('sends one filter when nothing names either side', () => {
    assert.deepEqual(build({ fromPod: ['x/a'], toPod: ['y/b', 'y/c'], type: ['drop', 'policy-verdict'] }).whitelist, [
      { source_pod: ['x/a'], destination_pod: ['y/b', 'y/c'], event_type: [{ type: 1 }, { type: 5 }] },
    ]);
    assert.deepEqual(build({ fromIdentity: ['host'], toIdentity: ['257'] }).whitelist, [{ source_identity: [1], destination_identity: [257] }]);
    assert.deepEqual(build({ trafficDirection: ['Ingress'], tcpFlags: ['syn', 'syn,ack'], uuid: ['u1'], nodeName: ['node*'] }).whitelist, [
      { uuid: ['u1'], traffic_direction: ['INGRESS'], tcp_flags: [{ SYN: true }, { SYN: true, ACK: true }], node_name: ['node*'] },
    ]);
  });

  it('turns --service, --from-service and --to-service into service filters, as Hubble', () => {
    assert.deepEqual(build({ toService: ['web'] }).whitelist, [{ destination_service: ['web'] }]);
    assert.deepEqual(build({ fromService: ['shop/api', 'db'] }).whitelist, [{ source_service: ['shop/api', 'db'] }]);
    assert.deepEqual(build({ service: ['web'] }).whitelist, [{ source_service: ['web'] }, { destination_service: ['web'] }]);
    assert.deepEqual(build({ service: ['web'], namespace: ['x'] }).whitelist, [{ source_service: ['x/web'] }, { destination_service: ['x/web'] }], 'the namespace applies to services');
    assert.deepEqual(build({ toService: ['web'], fromPod: ['x/a'] }).whitelist, [{ source_pod: ['x/a'], destination_service: ['web'] }]);
  });

  it('turns --workload flags into workload filters ([kind/]name)', () => {
    assert.deepEqual(build({ toWorkload: ['web', 'Deployment/api', 'Job/'] }).whitelist, [
      { destination_workload: [{ name: 'web' }, { kind: 'Deployment', name: 'api' }, { kind: 'Job' }] },
    ]);
    assert.deepEqual(build({ workload: ['web'] }).whitelist, [{ source_workload: [{ name: 'web' }] }, { destination_workload: [{ name: 'web' }] }]);
  });

  it('puts negated flags in the blacklist, built like the whitelist', () => {
    assert.deepEqual(build({ negated: { verdict: ['forwarded'] } }), { number: 20, blacklist: [{ verdict: ['FORWARDED'] }] });
    assert.deepEqual(build({ fromPod: ['x/'], negated: { toService: ['web'], pod: ['y/b'] } }), {
      number: 20,
      whitelist: [{ source_pod: ['x/'] }],
      blacklist: [{ source_pod: ['y/b'], destination_service: ['web'] }, { destination_pod: ['y/b'], destination_service: ['web'] }],
    });
    assert.deepEqual(build({ negated: { namespace: ['kube-system'] } }).blacklist, [{ source_pod: ['kube-system/'] }, { destination_pod: ['kube-system/'] }]);
    // Conflicts are per list: a flag and its negation may be combined.
    assert.deepEqual(build({ label: ['app=a'], negated: { fromLabel: ['tier=x'] } }).blacklist, [{ source_label: ['tier=x'] }]);
    assert.throws(() => build({ negated: { port: ['80'], toPort: ['81'] } }), /--port and --to-port cannot be combined/);
    assert.throws(() => build({ not: true }), (err: unknown) => isInvalid(err) && /--not must be followed by the filter flag/.test((err as Error).message));
  });

  it('selects flows with --not as Hubble does', () => {
    const pick = (flags: ObserveFlags) => ids(selectFromRing(ring, build(flags)));
    assert.deepEqual(pick({ negated: { verdict: ['FORWARDED'] } }), ['f1-drop']);
    assert.deepEqual(pick({ fromPod: ['x/'], negated: { protocol: ['tcp'] } }), ['f3-udp', 'f4-icmp']);
    assert.deepEqual(pick({ negated: { namespace: ['y'] } }), ['f3-udp'], 'neither from nor to namespace y');
  });

  it('parses --type TYPE[:SUBTYPE]', () => {
    assert.deepEqual(build({ type: ['trace'] }).whitelist, [{ event_type: [{ type: 4 }] }]);
    assert.deepEqual(build({ type: ['trace:to-endpoint', 'trace:from-endpoint', 'drop:133', '5'] }).whitelist, [
      {
        event_type: [
          { type: 4, match_sub_type: true, sub_type: 0 },
          { type: 4, match_sub_type: true, sub_type: 5 },
          { type: 1, match_sub_type: true, sub_type: 133 },
          { type: 5 },
        ],
      },
    ]);
  });

  it('selects flows with --last, --first, --all, --since, --until and --follow', () => {
    assert.deepEqual(build({ last: '5' }), { number: 5 });
    assert.deepEqual(build({ first: 3 }), { number: 3, first: true });
    assert.deepEqual(build({ all: true }), {});
    assert.deepEqual(build({ since: '1h' }), { since: '2024-11-21T20:00:00.000000000Z' });
    assert.deepEqual(build({ since: '2024-11-21T20:52:01.123456789Z', until: '2024-11-21T20:52:02Z', last: '2' }), {
      number: 2,
      since: '2024-11-21T20:52:01.123456789Z',
      until: '2024-11-21T20:52:02.000000000Z',
    });
    assert.deepEqual(build({ follow: true }), { follow: true });
    assert.deepEqual(build({ follow: true, last: '10' }), { number: 10, follow: true });
    assert.deepEqual(build({ follow: true, until: '1m' }), { follow: true }, '--until is ignored with --follow, as in Hubble');
  });

  const bad: [string, ObserveFlags, RegExp][] = [
    ['verdict', { verdict: ['ALLOWED'] }, /--verdict ALLOWED/],
    ['type', { type: ['l7x'] }, /--type l7x/],
    ['trace sub-type', { type: ['trace:to-nowhere'] }, /--type/],
    ['port', { port: ['http'] }, /--port http/],
    ['port range', { toPort: ['70000'] }, /--to-port 70000/],
    ['ip', { fromIp: ['10.0.0.300'] }, /--from-ip/],
    ['cidr', { ip: ['10.0.0.0/40'] }, /--ip/],
    ['identity', { identity: ['nobody'] }, /--identity nobody/],
    ['protocol', { protocol: ['gre'] }, /--protocol gre/],
    ['direction', { trafficDirection: ['up'] }, /--traffic-direction up/],
    ['tcp flag', { tcpFlags: ['syn,foo'] }, /--tcp-flags/],
    ['pod', { pod: ['a/b/c'] }, /--pod/],
    ['since', { since: '5 minutes' }, /--since: time "5 minutes"/],
    ['until', { until: '2024-13-01' }, /--until/],
    ['last', { last: '0' }, /--last 0/],
    ['first', { first: 'ten' }, /--first ten/],
    ['first+last', { first: 1, last: 1 }, /--first and --last/],
    ['first+follow', { first: 1, follow: true }, /--first and --follow/],
    ['last+all', { last: 1, all: true }, /--last and --all/],
    ['label+from-label', { label: ['a=b'], fromLabel: ['c=d'] }, /--label and --from-label/],
    ['port+to-port', { port: ['80'], toPort: ['81'] }, /--port and --to-port/],
    ['identity+from-identity', { identity: ['1'], fromIdentity: ['2'] }, /--identity and --from-identity/],
    ['pod+from-pod', { pod: ['x/a'], fromPod: ['y/b'] }, /cannot be combined/],
    ['ip+namespace', { ip: ['10.0.0.1'], namespace: ['x'] }, /--ip and --namespace/],
    ['to-pod+namespace', { toPod: ['x/a'], namespace: ['x'] }, /--to-pod and --namespace/],
    ['label selector', { fromLabel: ['app in ()'] }, /invalid label selector "app in \(\)"/],
    ['node name pattern', { nodeName: ['node$'] }, /invalid node name pattern "node\$"/],
    ['pod outside the namespace', { pod: ['z/b'], namespace: ['x'] }, /--namespace x does not contain --pod z\/b/],
    ['service outside the namespace', { service: ['z/web'], namespace: ['x'] }, /--namespace x does not contain --service z\/web/],
    ['to-service+namespace', { toService: ['web'], namespace: ['x'] }, /--to-service and --namespace cannot be combined/],
    ['service+from-service', { service: ['a'], fromService: ['b'] }, /--service and --from-service cannot be combined/],
    ['service', { toService: ['a/b/c'] }, /--to-service "a\/b\/c"/],
    ['service', { toService: ['/'] }, /--to-service "\/": write \[NAMESPACE\/\]SERVICE/],
    ['workload', { fromWorkload: ['a/b/c'] }, /--from-workload "a\/b\/c"/],
    ['workload+to-workload', { workload: ['a'], toWorkload: ['b'] }, /--workload and --to-workload cannot be combined/],
  ];
  for (const [what, flags, msg] of bad) {
    it(`rejects a bad ${what}`, () =>
      assert.throws(
        () => build(flags),
        (err: unknown) => isInvalid(err) && msg.test((err as Error).message),
      ));
  }

  it('selects the right flows end to end', () => {
    const pick = (flags: ObserveFlags) => ids(selectFromRing(ring, build(flags)));
    assert.deepEqual(pick({ pod: ['x/a'], verdict: ['DROPPED'] }), ['f1-drop']);
    assert.deepEqual(pick({ namespace: ['y'], protocol: ['tcp'] }), ['f1-drop', 'f2-reply', 'f5-host']);
    assert.deepEqual(pick({ pod: ['y/b'], port: ['80'] }), ['f1-drop', 'f2-reply']);
    assert.deepEqual(pick({ label: ['reserved:world'] }), ['f3-udp']);
    assert.deepEqual(pick({ identity: ['host'] }), ['f5-host']);
    assert.deepEqual(pick({ type: ['trace:to-endpoint'] }), ['f2-reply', 'f5-host']);
    assert.deepEqual(pick({ fromPod: ['x/'], last: '1' }), ['f4-icmp']);
    assert.deepEqual(pick({ fromPod: ['x/'], first: '1' }), ['f1-drop']);
  });
});

describe('registerObserveOptions', () => {
  const parse = (args: string[]) => {
    const cmd = registerObserveOptions(new Command('observe'))
      .exitOverride()
      .configureOutput({ writeErr: () => {}, writeOut: () => {} });
    cmd.parse(args, { from: 'user' });
    return cmd.opts<ObserveFlags>();
  };

  it('collects repeatable flags and defaults the output to compact', () => {
    const o = parse(['--pod', 'a', '--pod', 'z/b', '-n', 'z', '--from-label', 'app=web', '--to-port', '80', '-t', 'drop', '--last', '5']);
    assert.deepEqual(o.pod, ['a', 'z/b']);
    assert.deepEqual(o.namespace, ['z']);
    assert.deepEqual(o.fromLabel, ['app=web']);
    assert.deepEqual(o.toPort, ['80']);
    assert.deepEqual(o.type, ['drop']);
    assert.equal(o.output, 'compact');
    assert.deepEqual(buildRequest(o, new Date()), {
      number: 5,
      whitelist: [
        { source_pod: ['z/a', 'z/b'], source_label: ['app=web'], destination_port: ['80'], event_type: [{ type: 1 }] },
        { destination_pod: ['z/a', 'z/b'], source_label: ['app=web'], destination_port: ['80'], event_type: [{ type: 1 }] },
      ],
    });
  });

  it('maps every flag to the ObserveFlags field buildRequest reads', () => {
    const ipFlags = parse(['--from-ip', '10.0.0.1', '--to-ip', '10.0.0.0/8', '--ip', '10.0.0.3']);
    assert.deepEqual({ fromIp: ipFlags.fromIp, toIp: ipFlags.toIp, ip: ipFlags.ip }, { fromIp: ['10.0.0.1'], toIp: ['10.0.0.0/8'], ip: ['10.0.0.3'] });
    assert.throws(() => buildRequest(ipFlags, new Date()), /--from-ip and --ip cannot be combined/);
    const o = parse([
      '--from-pod', 'x/a', '--to-pod', 'y/', '--from-identity', '1',
      '--to-identity', '2', '--from-port', '1', '--verdict', 'DROPPED', '--protocol', 'tcp', '--traffic-direction', 'egress',
      '--tcp-flags', 'syn', '--node-name', 'n1', '--uuid', 'u', '--to-label', 'a', '--since', '1m', '--until', '1s',
      '--first', '2', '-o', 'json', '--print-node-name',
    ]);
    assert.deepEqual(
      { fromPod: o.fromPod, toPod: o.toPod, fromIdentity: o.fromIdentity, toIdentity: o.toIdentity },
      { fromPod: ['x/a'], toPod: ['y/'], fromIdentity: ['1'], toIdentity: ['2'] },
    );
    assert.deepEqual(
      { fromPort: o.fromPort, verdict: o.verdict, protocol: o.protocol, trafficDirection: o.trafficDirection, tcpFlags: o.tcpFlags },
      { fromPort: ['1'], verdict: ['DROPPED'], protocol: ['tcp'], trafficDirection: ['egress'], tcpFlags: ['syn'] },
    );
    assert.deepEqual({ nodeName: o.nodeName, uuid: o.uuid, toLabel: o.toLabel }, { nodeName: ['n1'], uuid: ['u'], toLabel: ['a'] });
    assert.deepEqual({ since: o.since, until: o.until, first: o.first, output: o.output, printNodeName: o.printNodeName }, {
      since: '1m',
      until: '1s',
      first: '2',
      output: 'json',
      printNodeName: true,
    });
    const req = buildRequest(o, new Date('2024-11-21T21:00:00Z'));
    assert.equal(req.number, 2);
    assert.equal(req.first, true);
    assert.equal(req.since, '2024-11-21T20:59:00.000000000Z');
    assert.equal(req.whitelist?.length, 1);
  });

  it('offers exactly the Hubble output formats and rejects others', () => {
    assert.deepEqual([...OUTPUT_FORMATS], ['compact', 'json', 'jsonpb', 'table', 'dict']);
    for (const f of OUTPUT_FORMATS) assert.equal(parse(['-o', f]).output, f);
    assert.throws(() => parse(['-o', 'yaml']));
  });

  it('maps --service, --from-service, --to-service and the workload flags', () => {
    const o = parse(['--to-service', 'web', '--from-service', 'x/api', '--from-workload', 'Deployment/api', '--to-workload', 'web']);
    assert.deepEqual({ toService: o.toService, fromService: o.fromService, fromWorkload: o.fromWorkload, toWorkload: o.toWorkload }, {
      toService: ['web'],
      fromService: ['x/api'],
      fromWorkload: ['Deployment/api'],
      toWorkload: ['web'],
    });
    assert.deepEqual(parse(['--service', 'db']).service, ['db']);
    assert.deepEqual(parse(['--workload', 'db']).workload, ['db']);
  });

  it('--not negates exactly the filter flag that follows it, wherever it is', () => {
    const o = parse(['--not', '--verdict', 'FORWARDED', '--verdict', 'DROPPED', '--last', '3', '--not', '-n', 'kube-system', '--to-service', 'web']);
    assert.deepEqual(o.verdict, ['DROPPED']);
    assert.deepEqual(o.toService, ['web']);
    assert.deepEqual(o.negated, { verdict: ['FORWARDED'], namespace: ['kube-system'] });
    assert.equal(o.not, undefined, 'no --not left waiting');
    assert.deepEqual(buildRequest(o, new Date()), {
      number: 3,
      whitelist: [{ destination_service: ['web'], verdict: ['DROPPED'] }],
      blacklist: [{ verdict: ['FORWARDED'], source_pod: ['kube-system/'] }, { verdict: ['FORWARDED'], destination_pod: ['kube-system/'] }],
    });
    // A non-filter flag in between does not take the --not: the next filter flag does, as in Hubble.
    const skipped = parse(['--not', '--last', '2', '--pod', 'x/a']);
    assert.deepEqual([skipped.pod ?? [], skipped.negated], [[], { pod: ['x/a'] }]);
  });

  it('refuses --not --not, and a --not with no filter flag after it', () => {
    assert.throws(() => parse(['--not', '--not', '--pod', 'x/a']), (err: unknown) => isInvalid(err) && /--not --not/.test((err as Error).message));
    const trailing = parse(['--pod', 'x/a', '--not']);
    assert.equal(trailing.not, true);
    assert.throws(() => buildRequest(trailing, new Date()), /--not must be followed by the filter flag it negates/);
  });

  it('has boolean --all and -f/--follow', () => {
    const o = parse(['--all', '-f']);
    assert.equal(o.all, true);
    assert.equal(o.follow, true);
  });
});
