/* The relay with nodes played by fakes: node statuses first (connected, unavailable with the
 * reason), the cluster's history in time order cut to `number`, only the nodes the node filters
 * can match asked, peers subscribed before this node, live flows merged after the history
 * without repeats, a broken stream reported and the others going on, nodes that come back,
 * join or leave while following; GetNodes and ServerStatus; and a peer read for real over
 * mutual TLS (the Observer server and the relay's client, certificates from the project's own
 * issuer): refused without the cluster's certificate or under another node's name. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { createClusterCa, issueNodeCertificate, loadClusterCa, type PemPair } from '../../src/cluster/certs.js';
import type { ClusterNode } from '../../src/cluster/node-registry.js';
import type { FollowHandlers, NodeFlows, NodeStats } from '../../src/cluster/relay/node-flows.js';
import { PeerFlows } from '../../src/cluster/relay/peer.js';
import type { PoolEntry } from '../../src/cluster/relay/peers.js';
import { Relay } from '../../src/cluster/relay/relay.js';
import type { ClusterFlowsEvent } from '../../src/flow/cluster-view.js';
import { matchesRequest, selectFromRing } from '../../src/flow/filter.js';
import { startObserverServer, type ObserverServer } from '../../src/flow/grpc-server.js';
import { loadObserverProto } from '../../src/flow/proto.js';
import { flowFromProto, flowToProto, getFlowsRequestFromProto, getFlowsRequestToProto } from '../../src/flow/proto-map.js';
import { formatJson } from '../../src/flow/protojson.js';
import type { Flow, FlowSource, GetFlowsRequest } from '../../src/flow/types.js';
import { formatTimestampNs } from '../../src/util/time.js';
import { pino } from 'pino';
import * as story from '../harness/flows.js';
import { eventually } from '../harness/node.js';

const log = pino({ level: 'silent' });
let clock = Date.now() - 60_000;
/** A flow of `node`, each one later than the one before. */
function flow(node: string, extra: Partial<Flow> = {}): Flow {
  clock += 1;
  return { time: formatTimestampNs(BigInt(clock) * 1_000_000n), uuid: `${node}-${clock}`, verdict: 'FORWARDED', Type: 'L3_L4', node_name: node, event_type: { type: 4 }, Summary: '', ...extra };
}

class FakeNode implements NodeFlows {
  flows: Flow[] = [];
  readonly followers = new Set<FollowHandlers>();
  fail?: string;
  /** Runs when history is asked for, before it answers (to publish flows meanwhile). */
  onHistory?: () => void;
  constructor(
    readonly name: string,
    private readonly calls: string[],
  ) {}
  async history(req: GetFlowsRequest) {
    this.calls.push(`history ${this.name}`);
    if (this.fail) throw new Error(this.fail);
    this.onHistory?.();
    return { flows: selectFromRing(this.flows, req), lost: [] };
  }
  async follow(req: GetFlowsRequest, on: FollowHandlers) {
    this.calls.push(`follow ${this.name}`);
    if (this.fail) throw new Error(this.fail);
    const h: FollowHandlers = { ...on, flow: (f) => matchesRequest(f, req) && on.flow(f) };
    this.followers.add(h);
    return () => this.followers.delete(h);
  }
  async stats(): Promise<NodeStats> {
    if (this.fail) throw new Error(this.fail);
    return { version: `v-${this.name}`, uptime_ns: this.flows.length * 1000, num_flows: this.flows.length, max_flows: 100, seen_flows: this.flows.length, flows_rate: 1 };
  }
  publish(f: Flow): void {
    this.flows.push(f);
    for (const h of this.followers) h.flow(f);
  }
  breakStream(why: string): void {
    for (const h of [...this.followers]) h.end(new Error(why));
    this.followers.clear();
  }
}

/** A cluster of fakes; node `self` is the relay's own. */
function fakeCluster(names: string[]) {
  const calls: string[] = [];
  const nodes = new Map(names.map((n) => [n, new FakeNode(n, calls)]));
  let listed = [...names];
  const entry = (name: string): PoolEntry => ({
    node: { name, ip: '192.0.2.1', podCIDR: '10.0.0.0/24', labels: {}, health: 'ok', endpoints: 0, heartbeat: '', version: 'v' } satisfies ClusterNode,
    address: `192.0.2.1:4244`,
    flows: nodes.get(name)!,
  });
  const pool = { selfName: names[0]!, entries: () => listed.map(entry), close: () => undefined };
  const relay = new Relay(pool, { log, sortBuffer: { maxLength: 100, windowMs: 30 }, peerUpdateMs: 20 });
  return { relay, calls, node: (n: string) => nodes.get(n)!, list: (names: string[]) => (listed = names) };
}

/** Runs a GetFlows and collects what it emits. */
function collect(relay: Relay, req: GetFlowsRequest) {
  const events: ClusterFlowsEvent[] = [];
  const abort = new AbortController();
  const done = relay.getFlows(req, (ev) => void events.push(ev), abort.signal);
  const flows = () => events.filter((e): e is Extract<ClusterFlowsEvent, { flow: Flow }> => 'flow' in e).map((e) => e.flow.uuid);
  const statuses = () => events.filter((e): e is Extract<ClusterFlowsEvent, { node_status: unknown }> => 'node_status' in e).map((e) => `${e.node_status.state_change} ${e.node_status.node_names.join(',')}${e.node_status.message ? `: ${e.node_status.message}` : ''}`);
  return { events, abort, done, flows, statuses };
}

describe('relay history', () => {
  it('reports the nodes first, then every node\'s flows in time order, cut to number', async () => {
    const c = fakeCluster(['n1', 'n2', 'n3']);
    const seq = [flow('n2'), flow('n1'), flow('n2'), flow('n1'), flow('n2')];
    for (const f of seq) c.node(f.node_name).flows.push(f);
    c.node('n3').fail = 'connection refused';
    const r = collect(c.relay, { number: 4 });
    await r.done;
    assert.deepEqual(r.statuses(), ['NODE_CONNECTED n1,n2', 'NODE_UNAVAILABLE n3: connection refused']);
    assert.ok(r.events.slice(0, 2).every((e) => 'node_status' in e && e.node_name === 'n1'));
    assert.deepEqual(r.flows(), seq.slice(1).map((f) => f.uuid));
  });

  it('asks only the nodes the node_name filters can match, and passes the filters on', async () => {
    const c = fakeCluster(['n1', 'n2', 'n3']);
    c.node('n3').fail = 'down';
    const dropped = flow('n2', { verdict: 'DROPPED' });
    c.node('n2').flows.push(flow('n2'), dropped);
    const r = collect(c.relay, { whitelist: [{ node_name: ['n2'], verdict: ['DROPPED'] }] });
    await r.done;
    assert.deepEqual(c.calls, ['history n2']);
    assert.deepEqual(r.statuses(), ['NODE_CONNECTED n2']);
    assert.deepEqual(r.flows(), [dropped.uuid]);
  });

  it('groups unavailable nodes by reason', async () => {
    const c = fakeCluster(['n1', 'n2', 'n3', 'n4']);
    c.node('n2').fail = 'refused';
    c.node('n3').fail = 'bad certificate';
    c.node('n4').fail = 'refused';
    const r = collect(c.relay, {});
    await r.done;
    assert.deepEqual(r.statuses(), ['NODE_CONNECTED n1', 'NODE_UNAVAILABLE n2,n4: refused', 'NODE_UNAVAILABLE n3: bad certificate']);
  });
});

describe('relay follow', () => {
  it('subscribes the peers before this node, sends the history, then live flows in order without repeats', async () => {
    const c = fakeCluster(['n1', 'n2', 'n3']);
    const old = [flow('n3'), flow('n1'), flow('n2')];
    for (const f of old) c.node(f.node_name).flows.push(f);
    // A flow that happens while the history is read reaches the relay twice: in n2's history and live.
    const during = flow('n2');
    c.node('n2').onHistory = () => c.node('n2').publish(during);
    const r = collect(c.relay, { follow: true, number: 2 });
    assert.ok(await eventually(() => r.flows().length === 2, 2000));
    assert.deepEqual(c.calls.slice(0, 3).sort(), ['follow n1', 'follow n2', 'follow n3']);
    assert.equal(c.calls[2], 'follow n1', 'this node last: once it counts a follower, the peers are subscribed');
    assert.equal(c.relay.followers, 1, 'counted once every node is subscribed');
    assert.deepEqual(r.statuses(), ['NODE_CONNECTED n1,n2,n3']);
    assert.deepEqual(r.flows(), [old[2]!.uuid, during.uuid], 'the last 2 of the cluster');
    // Live flows of several nodes, published out of order within the window, come out in order.
    const [a, b, d] = [flow('n1'), flow('n3'), flow('n2')];
    c.node('n2').publish(d);
    c.node('n3').publish(b);
    c.node('n1').publish(a);
    assert.ok(await eventually(() => r.flows().length >= 5, 2000), JSON.stringify(r.flows()));
    assert.deepEqual(r.flows(), [old[2]!.uuid, during.uuid, a.uuid, b.uuid, d.uuid], 'in time order, the live copy of `during` skipped');
    r.abort.abort();
    await r.done;
    assert.equal(c.node('n2').followers.size, 0, 'unsubscribed everywhere');
    assert.equal(c.relay.followers, 0);
  });

  it('reports a node whose stream breaks, goes on with the others, and takes it back when it answers again', async () => {
    const c = fakeCluster(['n1', 'n2', 'n3']);
    const r = collect(c.relay, { follow: true });
    assert.ok(await eventually(() => r.statuses().length === 1, 2000));
    c.node('n3').fail = 'connection reset';
    c.node('n3').breakStream('connection reset');
    const later = flow('n2');
    c.node('n2').publish(later);
    assert.ok(await eventually(() => r.flows().includes(later.uuid), 2000));
    assert.deepEqual(r.statuses(), ['NODE_CONNECTED n1,n2,n3', 'NODE_ERROR n3: connection reset']);
    // Retried every peerUpdateMs: reported once, not at every retry.
    assert.ok(await eventually(() => c.calls.filter((x) => x === 'follow n3').length >= 4, 2000));
    assert.equal(r.statuses().length, 2);
    c.node('n3').fail = undefined;
    assert.ok(await eventually(() => r.statuses().includes('NODE_CONNECTED n3'), 2000));
    const back = flow('n3');
    c.node('n3').publish(back);
    assert.ok(await eventually(() => r.flows().includes(back.uuid), 2000));
    r.abort.abort();
    await r.done;
  });

  it('adds a node that joins and drops one that leaves (NODE_GONE)', async () => {
    const c = fakeCluster(['n1', 'n2', 'n3']);
    c.list(['n1', 'n2']);
    const r = collect(c.relay, { follow: true });
    assert.ok(await eventually(() => r.statuses().length === 1, 2000));
    c.list(['n1', 'n3']);
    assert.ok(await eventually(() => r.statuses().length === 3, 2000));
    assert.deepEqual(r.statuses().slice(1).sort(), ['NODE_CONNECTED n3', 'NODE_GONE n2']);
    assert.equal(c.node('n2').followers.size, 0);
    r.abort.abort();
    await r.done;
  });

  it('ends once every node has passed until', async () => {
    const c = fakeCluster(['n1']);
    const until = formatTimestampNs(BigInt(clock + 5) * 1_000_000n);
    const r = collect(c.relay, { follow: true, until });
    assert.ok(await eventually(() => c.node('n1').followers.size === 1, 2000));
    const before = flow('n1');
    c.node('n1').publish(before);
    for (const h of c.node('n1').followers) h.end(); // the node saw a flow past until
    await r.done;
    assert.deepEqual(r.flows(), [before.uuid]);
  });
});

describe('relay GetNodes and ServerStatus', () => {
  it('lists every node with its state, and sums the nodes that answer', async () => {
    const c = fakeCluster(['n1', 'n2', 'n3']);
    c.node('n1').flows.push(flow('n1'));
    c.node('n2').flows.push(flow('n2'), flow('n2'));
    c.node('n3').fail = 'refused';
    const nodes = await c.relay.nodes();
    assert.deepEqual(nodes.map((n) => [n.name, n.state, n.num_flows, n.tls.enabled]), [['n1', 'NODE_CONNECTED', 1, true], ['n2', 'NODE_CONNECTED', 2, true], ['n3', 'NODE_UNAVAILABLE', 0, true]]);
    assert.equal(nodes[1]!.version, 'v-n2');
    const s = await c.relay.status();
    assert.deepEqual([s.num_connected_nodes, s.num_unavailable_nodes, s.unavailable_nodes, s.num_flows, s.max_flows, s.flows_rate, s.uptime_ns], [2, 1, ['n3'], 3, 200, 2, 2000]);
  });
});

describe('flows and requests as a relay sends and reads them', () => {
  const service = (grpc.loadPackageDefinition(loadObserverProto()).observer as grpc.GrpcObject).Observer as grpc.ServiceClientConstructor;
  const wire = service.service.GetFlows!;

  it('reads back every flow of the story as it was (what the JSON printer prints)', () => {
    for (const f of [story.drop, story.reply, story.udp, story.icmp, story.fromHost]) {
      const decoded = wire.responseDeserialize(wire.responseSerialize({ flow: flowToProto(f), node_name: f.node_name })) as { flow: Parameters<typeof flowFromProto>[0] };
      assert.equal(formatJson(flowFromProto(decoded.flow, 'elsewhere')), formatJson(f), f.uuid);
    }
  });

  it('sends a request the node reads as the same request', () => {
    const req: GetFlowsRequest = {
      number: 7,
      follow: true,
      since: '2026-01-01T00:00:00.5Z',
      until: '2026-01-02T00:00:00Z',
      whitelist: [
        { source_pod: ['x/a'], verdict: ['DROPPED'], event_type: [{ type: 5 }, { type: 4, match_sub_type: true, sub_type: 0 }], tcp_flags: [{ SYN: true }], node_name: ['n*'] },
        { destination_workload: [{ name: 'web' }], reply: [false], destination_identity: [256], destination_port: ['80'] },
      ],
      blacklist: [{ traffic_direction: ['EGRESS'], protocol: ['udp'] }],
    };
    const decoded = wire.requestDeserialize(wire.requestSerialize(getFlowsRequestToProto(req)));
    const back = getFlowsRequestFromProto(decoded as Parameters<typeof getFlowsRequestFromProto>[0]);
    assert.deepEqual(back, { ...req, since: '2026-01-01T00:00:00.500000000Z', until: '2026-01-02T00:00:00.000000000Z' });
  });
});

describe('a peer over mutual TLS', () => {
  class Ring implements FlowSource {
    readonly nodeName = 'peer-a';
    readonly flows: Flow[] = [];
    readonly subs = new Set<(f: Flow) => void>();
    query = (req: GetFlowsRequest) => selectFromRing(this.flows, req);
    subscribe(on: (f: Flow) => void) {
      this.subs.add(on);
      return () => this.subs.delete(on);
    }
    status = () => ({ num_flows: this.flows.length, max_flows: 10, seen_flows: this.flows.length, uptime_ns: 1, lost_events: 0, followers: this.subs.size });
  }
  const ring = new Ring();
  let server: ObserverServer;
  let peerA: PemPair;
  let relayNode: PemPair;
  let stranger: PemPair;
  let ca: PemPair;
  let address: string;
  const tls = (p: PemPair, caPem = ca) => ({ ca: Buffer.from(caPem.cert), cert: Buffer.from(p.cert), key: Buffer.from(p.key) });
  const peers: PeerFlows[] = [];
  const peer = (name: string, p: PemPair, caPem = ca, at = address) => {
    const pf = new PeerFlows(name, at, tls(p, caPem), 2000);
    peers.push(pf);
    return pf;
  };

  before(async () => {
    ca = await createClusterCa('test', 1);
    const signer = await loadClusterCa(ca, 'test');
    peerA = await issueNodeCertificate(signer, { name: 'peer-a', ips: ['127.0.0.1'] }, 1);
    relayNode = await issueNodeCertificate(signer, { name: 'relay-node', ips: [] }, 1);
    const otherCa = await createClusterCa('other', 1);
    stranger = await issueNodeCertificate(await loadClusterCa(otherCa, 'other'), { name: 'relay-node', ips: [] }, 1);
    ring.flows.push(flow('peer-a'), flow('peer-a', { verdict: 'DROPPED' }));
    server = await startObserverServer(ring, {
      tcpAddress: '127.0.0.1:0',
      tls: { cert: Buffer.from(peerA.cert), key: Buffer.from(peerA.key), clientCa: Buffer.from(ca.cert) },
      version: 'test',
      filter: matchesRequest,
    });
    address = `127.0.0.1:${server.tcpPort}`;
  });
  after(async () => {
    for (const p of peers) p.close();
    await server?.close();
  });

  it('reads history (filtered at the source), follows, and answers ServerStatus', async () => {
    const p = peer('peer-a', relayNode);
    const { flows } = await p.history({ whitelist: [{ verdict: ['DROPPED'] }] }, new AbortController().signal);
    assert.deepEqual(flows.map((f) => [f.uuid, f.node_name]), [[ring.flows[1]!.uuid, 'peer-a']]);
    const got: Flow[] = [];
    const cancel = await p.follow({ follow: true }, { flow: (f) => got.push(f), lost: () => undefined, end: () => undefined });
    assert.equal(ring.subs.size, 1, 'subscribed on the peer once follow resolves');
    const live = flow('peer-a');
    ring.flows.push(live);
    for (const s of ring.subs) s(live);
    assert.ok(await eventually(() => got.length === 1, 2000));
    assert.equal(got[0]!.uuid, live.uuid);
    cancel();
    assert.ok(await eventually(() => ring.subs.size === 0, 2000), 'unsubscribed on the peer once cancelled');
    assert.equal((await p.stats()).num_flows, 3);
  });

  it('is refused with a certificate of another CA, and refuses a server that is not the node it asked for', async () => {
    await assert.rejects(peer('peer-a', stranger).history({}, new AbortController().signal), (err: Error) => err.message.length > 0 && !err.message.includes('\n'));
    // The server's certificate names peer-a: a relay that expects peer-b does not talk to it.
    await assert.rejects(peer('peer-b', relayNode).history({}, new AbortController().signal), /peer-b|certificate|altname|Hostname/i);
    // A relay trusting another CA does not accept peer-a's certificate.
    await assert.rejects(peer('peer-a', stranger, (await createClusterCa('x', 1))).stats());
  });

  it('reports a node that does not listen within the timeout, quickly', async () => {
    const t0 = Date.now();
    await assert.rejects(peer('peer-a', relayNode, ca, '127.0.0.1:1').follow({ follow: true }, { flow: () => undefined, lost: () => undefined, end: () => undefined }));
    assert.ok(Date.now() - t0 < 2500);
  });
});
