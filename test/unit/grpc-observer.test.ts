import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { invalid } from '../../src/errors.js';
import { AgentEventLog } from '../../src/flow/agent-events.js';
import { type ObserverServer, startObserverServer } from '../../src/flow/grpc-server.js';
import { flowToProto, getFlowsRequestFromProto, rfc3339FromTimestamp, timestampFromRfc3339 } from '../../src/flow/proto-map.js';
import type { Flow, FlowFilter, FlowSource, GetFlowsRequest } from '../../src/flow/types.js';

// The client is generated from the proto files the way any Hubble client is: nothing from the
// server module, only proto/ and grpc-js.
const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));
const packageDefinition = protoLoader.loadSync('observer/observer.proto', {
  includeDirs: [PROTO_DIR],
  keepCase: true,
  enums: String,
  longs: Number,
  defaults: false,
  oneofs: true,
});
const ObserverClient = (grpc.loadPackageDefinition(packageDefinition).observer as grpc.GrpcObject)
  .Observer as grpc.ServiceClientConstructor;

type Msg = any;

// ---- a fake flow source with a deliberately small filter ----

function matchOne(flow: Flow, f: FlowFilter): boolean {
  if (f.verdict && !f.verdict.includes(flow.verdict)) return false;
  if (f.source_ip && !f.source_ip.includes(flow.IP?.source ?? '')) return false;
  if (f.uuid && !f.uuid.includes(flow.uuid)) return false;
  return true;
}

let filterCalls = 0;
function filter(flow: Flow, req: GetFlowsRequest): boolean {
  filterCalls++;
  if (req.whitelist?.length && !req.whitelist.some((f) => matchOne(flow, f))) return false;
  if (req.blacklist?.some((f) => matchOne(flow, f))) return false;
  return true;
}

class FakeSource implements FlowSource {
  readonly nodeName = 'node-a';
  readonly flows: Flow[] = [];
  readonly subscribers = new Set<(flow: Flow) => void>();
  seen = 0;

  query(req: GetFlowsRequest): Flow[] {
    let out = this.flows.filter((f) => {
      if (req.since && f.time < req.since) return false;
      if (req.until && f.time > req.until) return false;
      return filter(f, req);
    });
    if (req.number !== undefined) out = req.first ? out.slice(0, req.number) : out.slice(-req.number);
    return out;
  }

  subscribe(onFlow: (flow: Flow) => void): () => void {
    const cb = (flow: Flow) => onFlow(flow);
    this.subscribers.add(cb);
    return () => this.subscribers.delete(cb);
  }

  publish(flow: Flow): void {
    this.flows.push(flow);
    this.seen++;
    for (const cb of this.subscribers) cb(flow);
  }

  status() {
    return { num_flows: this.flows.length, max_flows: 4096, seen_flows: 1000 + this.seen, uptime_ns: 5_000_000_123, lost_events: 0, followers: this.subscribers.size };
  }
}

const DROPPED: Flow = {
  time: '2024-05-01T10:00:00.123456789Z',
  uuid: 'f1-dropped',
  verdict: 'DROPPED',
  drop_reason: 133,
  drop_reason_desc: 'POLICY_DENIED',
  ethernet: { source: '02:00:00:00:00:01', destination: '02:00:00:00:00:02' },
  IP: { source: '10.0.0.1', destination: '10.0.0.2', ipVersion: 'IPv4' },
  l4: { TCP: { source_port: 40000, destination_port: 5432, flags: { SYN: true } } },
  source: { ID: 11, identity: 1001, namespace: 'shop', labels: ['k8s:app=web'], pod_name: 'web-1' },
  destination: { ID: 12, identity: 1002, cluster_name: 'c1', namespace: 'shop', labels: ['k8s:app=db'], pod_name: 'db-0' },
  Type: 'L3_L4',
  node_name: 'node-a',
  event_type: { type: 1, sub_type: 133 },
  traffic_direction: 'INGRESS',
  ingress_denied_by: [{ name: 'deny-db', namespace: 'shop', labels: ['k8s:io.cilium.k8s.policy.name=deny-db'], revision: 7, kind: 'CiliumNetworkPolicy' }],
  default_deny_by: [{ name: 'db-ingress', namespace: 'shop', kind: 'NetworkPolicy' }],
  Summary: 'TCP Flags: SYN',
};

const FORWARDED: Flow = {
  time: '2024-05-01T10:00:01.000000001Z',
  uuid: 'f2-forwarded',
  verdict: 'FORWARDED',
  IP: { source: '10.0.0.1', destination: '10.0.0.3', ipVersion: 'IPv4' },
  l4: { TCP: { source_port: 40001, destination_port: 80, flags: { PSH: true, ACK: true } } },
  source: { ID: 11, identity: 1001, namespace: 'shop', pod_name: 'web-1' },
  destination: { ID: 13, identity: 1003, namespace: 'shop', pod_name: 'api-0' },
  Type: 'L3_L4',
  node_name: 'node-a',
  event_type: { type: 4, sub_type: 0 },
  traffic_direction: 'EGRESS',
  trace_observation_point: 'TO_ENDPOINT',
  is_reply: false,
  interface: { index: 7, name: 'lxc0a1b' },
  egress_allowed_by: [{ name: 'allow-api', namespace: 'shop', kind: 'CiliumNetworkPolicy', revision: 3 }],
  Summary: 'TCP Flags: ACK, PSH',
};

const REPLY: Flow = {
  ...FORWARDED,
  time: '2024-05-01T10:00:02.000000500Z',
  uuid: 'f3-reply',
  IP: { source: '10.0.0.3', destination: '10.0.0.1', ipVersion: 'IPv4' },
  l4: { TCP: { source_port: 80, destination_port: 40001, flags: { ACK: true } } },
  is_reply: true,
  egress_allowed_by: undefined,
  Summary: 'TCP Flags: ACK',
};

function nowFlow(uuid: string, verdict: Flow['verdict']): Flow {
  const ms = Date.now();
  const time = rfc3339FromTimestamp({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 + 789 });
  return { ...FORWARDED, uuid, verdict, time, is_reply: undefined, source: { ...FORWARDED.source, namespace: 'live' } };
}

// ---- client helpers ----

function unary(client: grpc.Client, method: string, req: Msg = {}): Promise<Msg> {
  return new Promise((resolve, reject) =>
    (client as Msg)[method](req, (err: grpc.ServiceError | null, res: Msg) => (err ? reject(err) : resolve(res))),
  );
}

function collect(call: grpc.ClientReadableStream<Msg>): Promise<Msg[]> {
  const out: Msg[] = [];
  return new Promise((resolve, reject) => {
    call.on('data', (m) => out.push(m));
    call.on('end', () => resolve(out));
    call.on('error', reject);
  });
}

const getFlows = (client: grpc.Client, req: Msg) => collect((client as Msg).GetFlows(req));

async function waitFor(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function errorOf(call: grpc.ClientReadableStream<Msg>): Promise<grpc.ServiceError> {
  return new Promise((resolve, reject) => {
    call.on('data', () => {});
    call.on('error', resolve);
    call.on('end', () => reject(new Error('stream ended without an error')));
  });
}

// ---- a minimal protobuf wire reader, to pin field numbers independently of proto/ ----

type Field = { wire: number; varint?: bigint; bytes?: Buffer };

function readVarint(buf: Buffer, pos: { at: number }): bigint {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    const b = buf[pos.at++]!;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return result;
    shift += 7n;
  }
}

function fields(buf: Buffer): Map<number, Field[]> {
  const out = new Map<number, Field[]>();
  const pos = { at: 0 };
  while (pos.at < buf.length) {
    const key = readVarint(buf, pos);
    const num = Number(key >> 3n);
    const wire = Number(key & 7n);
    let f: Field;
    if (wire === 0) {
      f = { wire, varint: readVarint(buf, pos) };
    } else {
      const len = wire === 2 ? Number(readVarint(buf, pos)) : wire === 1 ? 8 : wire === 5 ? 4 : NaN;
      if (Number.isNaN(len)) throw new Error(`unexpected wire type ${wire}`);
      f = { wire, bytes: buf.subarray(pos.at, pos.at + len) };
      pos.at += len;
    }
    out.set(num, [...(out.get(num) ?? []), f]);
  }
  return out;
}

const one = (m: Map<number, Field[]>, n: number): Field => {
  const f = m.get(n);
  assert.ok(f && f.length === 1, `field ${n} present once`);
  return f[0]!;
};

// ---- the tests ----

describe('gRPC Observer server (Hubble-compatible)', () => {
  const source = new FakeSource();
  const agentEvents = new AgentEventLog('node-a');
  let checked: GetFlowsRequest | undefined;
  let server: ObserverServer;
  let tmp: string;
  let sock: string;
  let tcp: grpc.Client;
  let unix: grpc.Client;

  before(async () => {
    for (const f of [DROPPED, FORWARDED, REPLY]) source.publish(f);
    source.seen = 0;
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'membrane-observer-'));
    sock = path.join(tmp, 'run', 'hubble.sock');
    server = await startObserverServer(source, {
      tcpAddress: '127.0.0.1:0',
      unixSocket: sock,
      version: '0.1.0-test',
      filter,
      checkRequest: (req) => {
        checked = req;
        for (const f of [...(req.whitelist ?? []), ...(req.blacklist ?? [])]) {
          for (const ip of f.source_ip ?? []) if (!/^[\d.]+$/.test(ip)) throw invalid(`bad source_ip ${ip}`);
        }
      },
      maxQueuedPerStream: 4,
      agentEvents,
    });
    assert.ok(server.tcpPort && server.tcpPort > 0);
    tcp = new ObserverClient(`127.0.0.1:${server.tcpPort}`, grpc.credentials.createInsecure());
    unix = new ObserverClient(`unix:${sock}`, grpc.credentials.createInsecure());
  });

  after(async () => {
    tcp?.close();
    unix?.close();
    await server?.close();
    assert.equal(fs.existsSync(sock), false, 'unix socket removed on close');
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('ServerStatus reports the source status, one connected node and the version', async () => {
    const st = await unary(tcp, 'ServerStatus');
    assert.equal(st.num_flows, 3);
    assert.equal(st.max_flows, 4096);
    assert.equal(st.seen_flows, 1000);
    assert.equal(st.uptime_ns, 5_000_000_123);
    assert.deepEqual(st.num_connected_nodes, { value: 1 });
    assert.ok(st.num_unavailable_nodes, 'num_unavailable_nodes present');
    assert.equal(st.num_unavailable_nodes.value ?? 0, 0);
    assert.equal(st.version, '0.1.0-test');
  });

  test('the unix socket serves the same service, mode 0600', async () => {
    assert.equal(fs.statSync(sock).mode & 0o777, 0o600);
    const st = await unary(unix, 'ServerStatus');
    assert.equal(st.num_flows, 3);
    const flows = await getFlows(unix, { number: 1 });
    assert.deepEqual(flows.map((r) => r.flow.uuid), ['f3-reply']);
  });

  test('GetNodes returns this node, connected', async () => {
    const res = await unary(tcp, 'GetNodes');
    assert.equal(res.nodes.length, 1);
    const node = res.nodes[0];
    assert.equal(node.name, 'node-a');
    assert.equal(node.state, 'NODE_CONNECTED');
    assert.equal(node.version, '0.1.0-test');
    assert.equal(node.address, `127.0.0.1:${server.tcpPort}`);
    assert.equal(node.num_flows, 3);
    assert.equal(node.max_flows, 4096);
    assert.equal(node.uptime_ns, 5_000_000_123);
  });

  test('GetFlows number=2 returns the last two, each with node_name and time', async () => {
    const res = await getFlows(tcp, { number: 2 });
    assert.deepEqual(res.map((r) => r.flow.uuid), ['f2-forwarded', 'f3-reply']);
    for (const r of res) {
      assert.equal(r.response_types, 'flow');
      assert.equal(r.node_name, 'node-a');
      assert.deepEqual(r.time, r.flow.time);
    }
    const first = await getFlows(tcp, { number: 1, first: true });
    assert.deepEqual(first.map((r) => r.flow.uuid), ['f1-dropped']);
  });

  test('GetFlows honours whitelist and blacklist', async () => {
    const before = filterCalls;
    const dropped = await getFlows(tcp, { number: 10, whitelist: [{ verdict: ['DROPPED'] }] });
    assert.deepEqual(dropped.map((r) => r.flow.uuid), ['f1-dropped']);
    const notDropped = await getFlows(tcp, { number: 10, blacklist: [{ verdict: ['DROPPED'] }] });
    assert.deepEqual(notDropped.map((r) => r.flow.uuid), ['f2-forwarded', 'f3-reply']);
    const either = await getFlows(tcp, { number: 10, whitelist: [{ uuid: ['f3-reply'] }, { source_ip: ['10.0.0.1'] }] });
    assert.deepEqual(either.map((r) => r.flow.uuid), ['f1-dropped', 'f2-forwarded', 'f3-reply']);
    assert.ok(filterCalls > before);
  });

  test('GetFlows since/until select a time range', async () => {
    const res = await getFlows(tcp, {
      since: timestampFromRfc3339('2024-05-01T10:00:00.123456790Z'),
      until: timestampFromRfc3339('2024-05-01T10:00:02.000000500Z'),
    });
    assert.deepEqual(res.map((r) => r.flow.uuid), ['f2-forwarded', 'f3-reply']);
  });

  test('field values round-trip', async () => {
    const [d, f, r] = (await getFlows(tcp, { number: 3 })).map((x) => x.flow);

    assert.equal(d.verdict, 'DROPPED');
    assert.equal(d.drop_reason, 133);
    assert.equal(d.drop_reason_desc, 'POLICY_DENIED');
    assert.deepEqual(d.time, { seconds: 1714557600, nanos: 123456789 });
    assert.equal(rfc3339FromTimestamp(d.time), DROPPED.time);
    assert.deepEqual(d.IP, { source: '10.0.0.1', destination: '10.0.0.2', ipVersion: 'IPv4' });
    assert.deepEqual(d.l4, { protocol: 'TCP', TCP: { source_port: 40000, destination_port: 5432, flags: { SYN: true } } });
    assert.deepEqual(d.source, { ID: 11, identity: 1001, namespace: 'shop', labels: ['k8s:app=web'], pod_name: 'web-1' });
    assert.equal(d.destination.cluster_name, 'c1');
    assert.equal(d.Type, 'L3_L4');
    assert.deepEqual(d.event_type, { type: 1, sub_type: 133 });
    assert.equal(d.traffic_direction, 'INGRESS');
    assert.deepEqual(d.ingress_denied_by, [
      { name: 'deny-db', namespace: 'shop', labels: ['k8s:io.cilium.k8s.policy.name=deny-db'], revision: 7, kind: 'CiliumNetworkPolicy' },
    ]);
    assert.deepEqual(d.default_deny_by, [{ name: 'db-ingress', namespace: 'shop', kind: 'NetworkPolicy' }]);
    assert.equal(d.is_reply, undefined); // unknown stays absent
    assert.equal(d.Summary, 'TCP Flags: SYN');

    assert.equal(f.verdict, 'FORWARDED');
    assert.equal(f.drop_reason_desc, undefined);
    assert.deepEqual(f.l4.TCP.flags, { PSH: true, ACK: true });
    assert.ok(f.is_reply, 'is_reply present: "not a reply" rather than "unknown"');
    assert.equal(f.is_reply.value ?? false, false);
    assert.equal(f.trace_observation_point, 'TO_ENDPOINT');
    assert.deepEqual(f.interface, { index: 7, name: 'lxc0a1b' });
    assert.deepEqual(f.egress_allowed_by, [{ name: 'allow-api', namespace: 'shop', kind: 'CiliumNetworkPolicy', revision: 3 }]);
    assert.equal(rfc3339FromTimestamp(f.time), FORWARDED.time);

    assert.deepEqual(r.is_reply, { value: true });
    assert.equal(r.reply, true);
    assert.deepEqual(r.time, { seconds: 1714557602, nanos: 500 });
    assert.equal(rfc3339FromTimestamp(r.time), REPLY.time);
  });

  test('wire format: Hubble field numbers, decoded from raw bytes', async () => {
    const methods = packageDefinition['observer.Observer'] as Msg;
    const raw = new grpc.Client(`127.0.0.1:${server.tcpPort}`, grpc.credentials.createInsecure());
    try {
      const call = raw.makeServerStreamRequest<Msg, Buffer>(
        '/observer.Observer/GetFlows',
        methods.GetFlows.requestSerialize,
        (b: Buffer) => b,
        { number: 3, first: true },
      );
      const [buf] = await collect(call);
      const resp = fields(buf as Buffer);
      assert.equal(one(resp, 1000).bytes!.toString(), 'node-a'); // GetFlowsResponse.node_name
      const time = fields(one(resp, 1001).bytes!); // GetFlowsResponse.time
      assert.equal(one(time, 1).varint, 1714557600n);
      assert.equal(one(time, 2).varint, 123456789n);

      const flow = fields(one(resp, 1).bytes!); // GetFlowsResponse.flow
      assert.equal(one(flow, 2).varint, 2n); // verdict = DROPPED
      assert.equal(one(flow, 3).varint, 133n); // drop_reason
      assert.equal(one(flow, 25).varint, 133n); // drop_reason_desc = POLICY_DENIED
      assert.equal(one(flow, 34).bytes!.toString(), 'f1-dropped'); // uuid
      assert.equal(one(flow, 100000).bytes!.toString(), 'TCP Flags: SYN'); // Summary
      assert.equal(one(flow, 10).varint, 1n); // Type = L3_L4
      assert.equal(one(flow, 11).bytes!.toString(), 'node-a'); // node_name
      assert.equal(one(flow, 22).varint, 1n); // traffic_direction = INGRESS
      const denied = fields(one(flow, 21005).bytes!); // ingress_denied_by
      assert.equal(one(denied, 1).bytes!.toString(), 'deny-db');
      assert.equal(one(denied, 4).varint, 7n); // revision
      assert.equal(one(denied, 5).bytes!.toString(), 'CiliumNetworkPolicy'); // kind
      assert.equal(fields(one(flow, 200001).bytes!).get(1)![0]!.bytes!.toString(), 'db-ingress'); // default_deny_by
      const ip = fields(one(flow, 5).bytes!);
      assert.equal(one(ip, 1).bytes!.toString(), '10.0.0.1');
      assert.equal(one(ip, 3).varint, 1n); // ipVersion = IPv4
      const tcpMsg = fields(one(fields(one(flow, 6).bytes!), 1).bytes!); // l4.TCP
      assert.equal(one(tcpMsg, 2).varint, 5432n);
      assert.equal(one(fields(one(tcpMsg, 3).bytes!), 2).varint, 1n); // flags.SYN
      const dst = fields(one(flow, 9).bytes!); // destination
      assert.equal(one(dst, 7).bytes!.toString(), 'c1'); // cluster_name
      assert.equal(one(dst, 5).bytes!.toString(), 'db-0'); // pod_name
    } finally {
      raw.close();
    }
  });

  test('follow streams a new flow within 100 ms, filtered, and stops on cancel', async () => {
    const subscribers = source.subscribers.size;
    const callsBefore = filterCalls;
    const call = (tcp as Msg).GetFlows({ follow: true, whitelist: [{ verdict: ['DROPPED'] }] }) as grpc.ClientReadableStream<Msg>;
    const received: Msg[] = [];
    call.on('data', (m) => received.push(m));
    const ended = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    await waitFor(() => source.subscribers.size === subscribers + 1, 'the server to subscribe');

    const t0 = performance.now();
    source.publish(nowFlow('live-forwarded', 'FORWARDED'));
    source.publish(nowFlow('live-dropped', 'DROPPED'));
    await waitFor(() => received.length >= 1, 'the followed flow', 1000);
    const elapsed = performance.now() - t0;
    assert.ok(elapsed < 100, `flow arrived after ${elapsed.toFixed(1)} ms`);
    assert.deepEqual(received.map((r) => r.flow.uuid), ['live-dropped']); // history not replayed, FORWARDED filtered
    assert.equal(received[0].node_name, 'node-a');
    assert.ok(filterCalls >= callsBefore + 2, 'the filter function decides for followed flows');

    call.cancel();
    assert.equal((await ended).code, grpc.status.CANCELLED);
    await waitFor(() => source.subscribers.size === subscribers, 'the server to unsubscribe');
    source.publish(nowFlow('after-cancel', 'DROPPED'));
    assert.equal(received.length, 1);
  });

  test('follow with number sends the history first, then new flows without duplicates', async () => {
    const subscribers = source.subscribers.size;
    const call = (tcp as Msg).GetFlows({ number: 2, follow: true }) as grpc.ClientReadableStream<Msg>;
    const received: Msg[] = [];
    call.on('data', (m) => received.push(m));
    const ended = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    await waitFor(() => source.subscribers.size === subscribers + 1, 'the server to subscribe');
    await waitFor(() => received.length === 2, 'the history');
    source.publish(nowFlow('live-2', 'FORWARDED'));
    await waitFor(() => received.length === 3, 'the followed flow');
    assert.deepEqual(received.map((r) => r.flow.uuid), ['live-dropped', 'after-cancel', 'live-2']);
    call.cancel();
    assert.equal((await ended).code, grpc.status.CANCELLED);
    await waitFor(() => source.subscribers.size === subscribers, 'the server to unsubscribe');
  });

  test('a follower that does not read loses flows and is told how many', async () => {
    const subscribers = source.subscribers.size;
    const call = (tcp as Msg).GetFlows({ follow: true }) as grpc.ClientReadableStream<Msg>;
    const received: Msg[] = [];
    const ended = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    await waitFor(() => source.subscribers.size === subscribers + 1, 'the server to subscribe');
    const burst = 300;
    for (let i = 0; i < burst; i++) source.publish(nowFlow(`burst-${i}`, 'FORWARDED')); // one tick: no drain
    call.on('data', (m) => received.push(m));
    const count = () => received.reduce((n, r) => n + (r.flow ? 1 : (r.lost_events?.num_events_lost ?? 0)), 0);
    await waitFor(() => count() === burst, 'all flows delivered or reported lost');
    const lost = received.filter((r) => r.lost_events);
    assert.equal(lost.length, 1);
    assert.equal(lost[0].lost_events.source, 'HUBBLE_RING_BUFFER');
    assert.ok(lost[0].lost_events.num_events_lost > 0);
    const uuids = received.filter((r) => r.flow).map((r) => r.flow.uuid);
    assert.deepEqual(uuids, uuids.slice().sort((a, b) => Number(a.split('-')[1]) - Number(b.split('-')[1]))); // in order
    call.cancel();
    await ended;
    await waitFor(() => source.subscribers.size === subscribers, 'the server to unsubscribe');
  });

  test('ServerStatus flows_rate counts the flows of the last minute', async () => {
    source.publish(nowFlow('rate-1', 'FORWARDED'));
    // The rate is sampled once a second: ask until a sample has seen the flow.
    let st: Msg = {};
    const deadline = Date.now() + 5000;
    while (!((st = await unary(tcp, 'ServerStatus')).flows_rate > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(st.flows_rate > 0, `flows_rate ${st.flows_rate}`);
  });

  test('GetNamespaces lists the namespaces of the last hour', async () => {
    const res = await unary(tcp, 'GetNamespaces');
    assert.deepEqual(res.namespaces, [{ namespace: 'live' }, { namespace: 'shop' }]);
  });

  test('requests Membrane cannot serve are refused, not silently widened', async () => {
    const l7 = await errorOf((tcp as Msg).GetFlows({ whitelist: [{ http_status_code: ['5+'] }] }));
    assert.equal(l7.code, grpc.status.INVALID_ARGUMENT);
    assert.match(l7.details, /whitelist\[0\]: filter field http_status_code not supported/);
    const both = await errorOf((tcp as Msg).GetFlows({ first: true, follow: true }));
    assert.equal(both.code, grpc.status.INVALID_ARGUMENT);
    const checked = await errorOf((tcp as Msg).GetFlows({ follow: true, blacklist: [{ source_ip: ['not-an-ip'] }] }));
    assert.equal(checked.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(checked.details, 'bad source_ip not-an-ip');
    const agent = await errorOf((tcp as Msg).GetAgentEvents({ first: true, follow: true }));
    assert.equal(agent.code, grpc.status.INVALID_ARGUMENT);
  });

  test('service and workload filters reach the server as Hubble sends them', async () => {
    await getFlows(tcp, {
      number: 1,
      whitelist: [{ destination_service: ['default/web'], source_workload: [{ name: 'api', kind: 'Deployment' }] }],
      blacklist: [{ source_service: ['db'], destination_workload: [{ name: 'web' }] }],
    });
    assert.deepEqual(checked?.whitelist, [{ destination_service: ['default/web'], source_workload: [{ name: 'api', kind: 'Deployment' }] }]);
    assert.deepEqual(checked?.blacklist, [{ source_service: ['db'], destination_workload: [{ name: 'web' }] }]);
  });

  test("GetAgentEvents returns the log's history, each event with node_name and time", async () => {
    const log = agentEvents;
    log.agentStarted();
    const ep = { id: 7, name: 'web-1', namespace: 'shop', labels: ['k8s:app=web'] } as Parameters<NonNullable<ReturnType<AgentEventLog['endpointListener']>['endpointCreated']>>[0];
    log.endpointListener().endpointCreated!(ep);
    log.regenerationListener().regenerated([ep]);
    log.regenerationListener().regenerated([ep], new Error('map full'));
    log.policyListener().policiesUpdated!([{ ref: { kind: 'CiliumNetworkPolicy', namespace: 'shop', name: 'web' }, source: {}, rules: [{} as never, {} as never], revision: 4 }], 4);
    log.identityListener().allocated!({ id: 256, labels: ['k8s:app=web'] });
    log.endpointListener().endpointDeleted!(ep);

    const all = await collect((tcp as Msg).GetAgentEvents({}));
    assert.deepEqual(all.map((r) => r.agent_event.type), [
      'AGENT_STARTED',
      'ENDPOINT_CREATED',
      'ENDPOINT_REGENERATE_SUCCESS',
      'ENDPOINT_REGENERATE_FAILURE',
      'POLICY_UPDATED',
      'AGENT_EVENT_UNKNOWN',
      'ENDPOINT_DELETED',
    ]);
    for (const r of all) {
      assert.equal(r.node_name, 'node-a');
      assert.ok(Number(r.time.seconds) > 1_700_000_000, 'a wall-clock time');
    }
    const [started, created, ok, failed, policy, identity, deleted] = all.map((r) => r.agent_event);
    assert.equal(started.notification, 'agent_start');
    assert.ok(Number(started.agent_start.time.seconds) > 1_700_000_000);
    assert.deepEqual(created.endpoint_update, { id: 7, labels: ['k8s:app=web'], pod_name: 'web-1', namespace: 'shop' });
    assert.deepEqual(deleted.endpoint_update, created.endpoint_update);
    assert.deepEqual(ok.endpoint_regenerate, { id: 7, labels: ['k8s:app=web'] });
    assert.deepEqual(failed.endpoint_regenerate, { id: 7, labels: ['k8s:app=web'], error: 'map full' });
    assert.deepEqual(policy.policy_update, {
      labels: ['k8s:io.cilium.k8s.policy.derived-from=CiliumNetworkPolicy', 'k8s:io.cilium.k8s.policy.name=web', 'k8s:io.cilium.k8s.policy.namespace=shop'],
      revision: 4,
      rule_count: 2,
    });
    assert.deepEqual(identity.unknown, { type: 'IdentityAllocated', notification: '{"id":256,"labels":["k8s:app=web"]}' });

    const last2 = await collect((tcp as Msg).GetAgentEvents({ number: 2 }));
    assert.deepEqual(last2.map((r) => r.agent_event.type), ['AGENT_EVENT_UNKNOWN', 'ENDPOINT_DELETED']);
    const first1 = await collect((unix as Msg).GetAgentEvents({ number: 1, first: true }));
    assert.deepEqual(first1.map((r) => r.agent_event.type), ['AGENT_STARTED']);
    const since = await collect((tcp as Msg).GetAgentEvents({ since: all[5].time }));
    assert.deepEqual(since.map((r) => r.agent_event.type), ['AGENT_EVENT_UNKNOWN', 'ENDPOINT_DELETED'], 'since is inclusive');
  });

  test('GetAgentEvents follows new events, without history unless asked', async () => {
    const call = (tcp as Msg).GetAgentEvents({ follow: true }) as grpc.ClientReadableStream<Msg>;
    const received: Msg[] = [];
    call.on('data', (m) => received.push(m));
    const ended = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    await waitFor(() => agentEvents.followers === 1, 'the server to subscribe');
    agentEvents.policyListener().policiesDeleted!([{ ref: { kind: 'CiliumClusterwideNetworkPolicy', name: 'all' }, source: {}, rules: [{} as never], revision: 5 }], 5);
    await waitFor(() => received.length === 1, 'the followed event');
    assert.equal(received[0].agent_event.type, 'POLICY_DELETED');
    assert.deepEqual(received[0].agent_event.policy_update, {
      labels: ['k8s:io.cilium.k8s.policy.derived-from=CiliumClusterwideNetworkPolicy', 'k8s:io.cilium.k8s.policy.name=all'],
      revision: 5,
      rule_count: 1,
    });
    call.cancel();
    assert.equal((await ended).code, grpc.status.CANCELLED);
    await waitFor(() => agentEvents.followers === 0, 'the server to unsubscribe');

    const withHistory = (tcp as Msg).GetAgentEvents({ number: 1, follow: true }) as grpc.ClientReadableStream<Msg>;
    const got: Msg[] = [];
    withHistory.on('data', (m) => got.push(m));
    const done = new Promise<grpc.ServiceError>((resolve) => withHistory.on('error', resolve));
    await waitFor(() => got.length === 1, 'the history');
    agentEvents.identityListener().released!({ id: 256, labels: ['k8s:app=web'] });
    await waitFor(() => got.length === 2, 'the new event');
    assert.deepEqual(got.map((r) => r.agent_event.type), ['POLICY_DELETED', 'AGENT_EVENT_UNKNOWN']);
    assert.equal(got[1].agent_event.unknown.type, 'IdentityReleased');
    withHistory.cancel();
    await done;
  });

  test('GetAgentEvents ends a follower that falls too far behind, rather than buffering without end', async () => {
    await waitFor(() => agentEvents.followers === 0, 'the earlier followers to go');
    const call = (tcp as Msg).GetAgentEvents({ follow: true }) as grpc.ClientReadableStream<Msg>;
    const ended = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    await waitFor(() => agentEvents.followers === 1, 'the server to subscribe');
    const released = agentEvents.identityListener().released!;
    // The client reads nothing: flow control fills up and the server's queue with it. Events go
    // out in rounds, letting the transport move, until the server gives up on the reader.
    for (let round = 0; agentEvents.followers === 1; round++) {
      assert.ok(round < 1000, 'the server kept buffering for an unread stream');
      for (let i = 0; i < 100; i++) released({ id: 1000 + i, labels: [] });
      await new Promise((resolve) => setImmediate(resolve));
    }
    call.on('data', () => undefined); // reading again: the status arrives after what was sent
    const err = await ended;
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(err.details, /fell more than 4 agent events behind/);
    await waitFor(() => agentEvents.followers === 0, 'the server to unsubscribe');
  });

  test('GetAgentEvents: Hubble field numbers on the wire', async () => {
    const methods = packageDefinition['observer.Observer'] as Msg;
    const raw = new grpc.Client(`127.0.0.1:${server.tcpPort}`, grpc.credentials.createInsecure());
    try {
      const call = raw.makeServerStreamRequest<Msg, Buffer>('/observer.Observer/GetAgentEvents', methods.GetAgentEvents.requestSerialize, (b: Buffer) => b, {
        number: 2,
        first: true,
      });
      const [, created] = (await collect(call)) as Buffer[];
      const resp = fields(created!);
      assert.equal(one(resp, 1000).bytes!.toString(), 'node-a'); // node_name
      assert.ok(one(resp, 1001).bytes!.length > 0); // time
      const event = fields(one(resp, 1).bytes!); // agent_event
      assert.equal(one(event, 1).varint, 7n); // type = ENDPOINT_CREATED
      const update = fields(one(event, 104).bytes!); // endpoint_update
      assert.equal(one(update, 1).varint, 7n); // id
      assert.equal(one(update, 2).bytes!.toString(), 'k8s:app=web'); // labels
      assert.equal(one(update, 4).bytes!.toString(), 'web-1'); // pod_name
      assert.equal(one(update, 5).bytes!.toString(), 'shop'); // namespace
    } finally {
      raw.close();
    }
  });

  test('GetDebugEvents answers with an empty stream: at once, or open until cancelled with follow', async () => {
    assert.deepEqual(await collect((tcp as Msg).GetDebugEvents({ number: 10 })), []);
    const call = (tcp as Msg).GetDebugEvents({ follow: true }) as grpc.ClientReadableStream<Msg>;
    const received: Msg[] = [];
    call.on('data', (m) => received.push(m));
    let ended = false;
    const error = new Promise<grpc.ServiceError>((resolve) => call.on('error', (e: grpc.ServiceError) => ((ended = true), resolve(e))));
    call.on('end', () => (ended = true));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(ended, false, 'a follower waits');
    call.cancel();
    assert.equal((await error).code, grpc.status.CANCELLED);
    assert.deepEqual(received, []);
  });
});

describe('a server without an agent event log', () => {
  test('answers GetAgentEvents UNIMPLEMENTED, saying why', async () => {
    const server = await startObserverServer(new FakeSource(), { tcpAddress: '127.0.0.1:0', version: 't', filter });
    const client = new ObserverClient(`127.0.0.1:${server.tcpPort}`, grpc.credentials.createInsecure());
    try {
      const err = await errorOf((client as Msg).GetAgentEvents({}));
      assert.equal(err.code, grpc.status.UNIMPLEMENTED);
      assert.match(err.details, /without an agent event log/);
    } finally {
      client.close();
      await server.close();
    }
  });
});

describe('proto-map', () => {
  test('a flow carries its endpoints\' workloads and its services\' namespaces on the wire', () => {
    const methods = packageDefinition['observer.Observer'] as Msg;
    const flow: Flow = {
      ...FORWARDED,
      source: { ...FORWARDED.source, workloads: [{ name: 'web' }] },
      destination: { ...FORWARDED.destination, workloads: [{ name: 'api', kind: 'Deployment' }] },
      destination_service: { name: 'api-svc', namespace: 'default' },
    };
    const buf = methods.GetFlows.responseSerialize({ flow: flowToProto(flow), node_name: 'n' }) as Buffer;
    const f = fields(one(fields(buf), 1).bytes!);
    const src = fields(one(f, 8).bytes!);
    assert.equal(one(fields(one(src, 6).bytes!), 1).bytes!.toString(), 'web'); // source.workloads[0].name
    const dstWorkload = fields(one(fields(one(f, 9).bytes!), 6).bytes!);
    assert.equal(one(dstWorkload, 1).bytes!.toString(), 'api');
    assert.equal(one(dstWorkload, 2).bytes!.toString(), 'Deployment'); // kind
    const svc = fields(one(f, 21).bytes!); // destination_service
    assert.equal(one(svc, 1).bytes!.toString(), 'api-svc');
    assert.equal(one(svc, 2).bytes!.toString(), 'default'); // namespace
  });

  test('RFC 3339 <-> Timestamp keeps nanoseconds and normalises offsets to UTC', () => {
    assert.deepEqual(timestampFromRfc3339('2024-05-01T10:00:00.000000001Z'), { seconds: 1714557600, nanos: 1 });
    assert.deepEqual(timestampFromRfc3339('2024-05-01T12:00:00.5+02:00'), { seconds: 1714557600, nanos: 500_000_000 });
    assert.deepEqual(timestampFromRfc3339('1970-01-01T00:00:00Z'), { seconds: 0, nanos: 0 });
    assert.equal(rfc3339FromTimestamp({ seconds: 1714557600, nanos: 1 }), '2024-05-01T10:00:00.000000001Z');
    assert.equal(rfc3339FromTimestamp({}), '1970-01-01T00:00:00.000000000Z');
    assert.throws(() => timestampFromRfc3339('2024-05-01 10:00:00'), /not an RFC 3339 timestamp/);
    assert.throws(() => rfc3339FromTimestamp({ seconds: 1, nanos: 1e9 }), /nanos out of range/);
  });

  test('GetFlowsRequest filters are copied field by field', () => {
    const req = getFlowsRequestFromProto({
      number: 5,
      follow: true,
      since: { seconds: 1714557600, nanos: 42 },
      whitelist: [
        {
          source_pod: ['shop/web-'],
          destination_label: ['k8s:app=db'],
          destination_identity: [1002],
          verdict: ['DROPPED'],
          event_type: [{ type: 1 }, { match_sub_type: true, sub_type: 3 }],
          destination_port: ['5432'],
          reply: [false],
          traffic_direction: ['INGRESS'],
          tcp_flags: [{ SYN: true }],
          ip_version: ['IPv4'],
          node_name: ['node-*'],
          destination_service: ['default/web'],
          source_workload: [{ name: 'api', kind: 'Deployment' }, { kind: 'Job' }],
          experimental: {},
        },
      ],
      blacklist: [{ protocol: ['udp'] }],
    });
    assert.deepEqual(req, {
      number: 5,
      follow: true,
      since: '2024-05-01T10:00:00.000000042Z',
      whitelist: [
        {
          source_pod: ['shop/web-'],
          destination_label: ['k8s:app=db'],
          destination_identity: [1002],
          verdict: ['DROPPED'],
          event_type: [{ type: 1 }, { type: 0, match_sub_type: true, sub_type: 3 }],
          destination_port: ['5432'],
          reply: [false],
          traffic_direction: ['INGRESS'],
          tcp_flags: [{ SYN: true }],
          ip_version: ['IPv4'],
          node_name: ['node-*'],
          destination_service: ['default/web'],
          source_workload: [{ name: 'api', kind: 'Deployment' }, { kind: 'Job' }],
        },
      ],
      blacklist: [{ protocol: ['udp'] }],
    });
  });
});
