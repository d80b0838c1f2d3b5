/* Cluster-wide flows through a real etcd, real agents and real mutual TLS: three nodes, each
 * serving its Observer to its peers on NODE_IP:4244 with a certificate of the cluster's CA. A
 * flow on node 1 (a ping between two endpoints of node 1: the datapath between nodes is not
 * needed) is seen by `membrane observe` on node 0 with node 1's name; `--node` narrows; history
 * and followed flows of several nodes come in time order; GetNodes and ServerStatus on node 0
 * cover the cluster; the peer port refuses plaintext and certificates of another CA, and a
 * plaintext peer listener is refused at start; a node with another CA's certificate and a dead
 * node are reported unavailable while the others' flows still stream, and a node that comes
 * back streams again. */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { ClusterNode, Endpoint } from '../../src/api/types.js';
import { createClusterCa, issueNodeCertificate, loadClusterCa } from '../../src/cluster/certs.js';
import { loadObserverProto } from '../../src/flow/proto.js';
import type { Flow } from '../../src/flow/types.js';
import { TestCluster } from '../harness/cluster.js';
import { eventually, repoRoot, run, type TestNode } from '../harness/node.js';

const bin = path.join(repoRoot, 'bin/membrane');
type Line = { flow?: Flow; node_status?: { state_change: string; node_names: string[]; message?: string }; node_name?: string };

/** One Observer call with grpc-js from this checkout, run inside a namespace: prints the answer as JSON or "error CODE: DETAILS". */
const PEER_CLIENT = `
import fs from 'node:fs';
import { createRequire } from 'node:module';
const [repo, address, serverName, ca, cert, key] = process.argv.slice(2);
const require = createRequire(repo + '/package.json');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const def = loader.loadSync('observer/observer.proto', { includeDirs: [repo + '/proto'], keepCase: true, enums: String, longs: Number, defaults: false, oneofs: true });
const creds = ca === '-' ? grpc.credentials.createInsecure() : cert === '-' ? grpc.credentials.createSsl(fs.readFileSync(ca)) : grpc.credentials.createSsl(fs.readFileSync(ca), fs.readFileSync(key), fs.readFileSync(cert));
const client = new (grpc.loadPackageDefinition(def).observer.Observer)(address, creds, { 'grpc.ssl_target_name_override': serverName });
client.ServerStatus({}, { deadline: Date.now() + 5000 }, (err, res) => {
  console.log(err ? 'error ' + err.code + ': ' + err.details : JSON.stringify(res));
  client.close();
});
`;

describe('cluster-wide flows', { concurrency: false }, () => {
  let cluster: TestCluster;
  let nodes: TestNode[];
  const eps: Record<string, Endpoint> = {};
  let observer: grpc.ServiceClientConstructor;
  const clients: grpc.Client[] = [];

  /** node i's endpoints `a<i>` and `b<i>`: a ping from a to b gives flows on node i alone. */
  const ping = async (i: number) => assert.ok(await nodes[i]!.ping(eps[`a${i}`]!.netns, eps[`b${i}`]!.ipv4), `ping on node ${i}`);
  const observe = async (n: TestNode, ...args: string[]) => {
    const r = await n.cli('observe', '-o', 'json', ...args);
    assert.equal(r.code, 0, r.stderr);
    return { flows: r.stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as Line).flow!), stderr: r.stderr };
  };
  /** Echo requests from the `a` endpoints (one flow per ping at the default aggregation: to-endpoint). */
  const requests = (flows: Flow[]) => flows.filter((f) => f.Summary === 'ICMPv4 EchoRequest' && f.source?.pod_name?.startsWith('a'));
  const sorted = (flows: Flow[]) => flows.every((f, i) => i === 0 || Date.parse(flows[i - 1]!.time) <= Date.parse(f.time)) && flows.map((f) => f.time).join() === [...flows.map((f) => f.time)].sort().join();
  /** The Observer on node `i`'s hubble.sock (plaintext, root only): the cluster view. */
  const grpcOn = (i: number) => {
    const c = new observer(`unix:${path.join(nodes[i]!.dir, 'hubble.sock')}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, Function>;
    clients.push(c);
    return c;
  };
  const unary = <T>(c: grpc.Client & Record<string, Function>, method: string) =>
    new Promise<T>((resolve, reject) => c[method]!({}, { deadline: Date.now() + 15_000 }, (err: Error | null, res: T) => (err ? reject(err) : resolve(res))));
  /** Lines a follower prints (stdout, or stderr for node statuses), parsed as they come. */
  const lines = (child: ChildProcess, stream: 'stdout' | 'stderr' = 'stdout') => {
    const out: Line[] = [];
    readline.createInterface({ input: child[stream]! }).on('line', (l) => {
      try {
        out.push(JSON.parse(l) as Line);
      } catch {
        // a line that is not JSON is not ours to read
      }
    });
    return out;
  };

  before(async () => {
    observer = (grpc.loadPackageDefinition(loadObserverProto()).observer as grpc.GrpcObject).Observer as grpc.ServiceClientConstructor;
    // A long lease: a node killed below stays listed (and reported unavailable) for the test's length.
    cluster = await TestCluster.create({ nodes: 3, extraAgentArgs: ['--kvstore-lease-ttl', '120'] });
    nodes = [...cluster.nodes]; // the three: a node added below is not one of them
    await nodes[0]!.api.setNamespace('default');
    for (const n of nodes) assert.ok(await eventually(async () => (await n.api.listNamespaces()).some((x) => x.name === 'default'), 10_000));
    for (let i = 1; i < 3; i++) {
      eps[`a${i}`] = await nodes[i]!.api.addEndpoint({ namespace: 'default', name: `a${i}`, labels: [`app=a${i}`] });
      eps[`b${i}`] = await nodes[i]!.api.addEndpoint({ namespace: 'default', name: `b${i}`, labels: [`app=b${i}`] });
    }
    // Every node has found every other's Observer in the registry.
    for (const n of nodes) {
      assert.ok(await eventually(async () => (await n.api.listNodes()).filter((x: ClusterNode) => x.observerPort === 4244).length === 3, 15_000), `peers' Observers known to ${n.name}`);
    }
  });
  after(async () => {
    for (const c of clients) c.close();
    await cluster?.cleanup();
  });

  it("shows node 1's flows on node 0, named after node 1, and every node's history in one time order", async () => {
    for (const i of [1, 2, 1, 2]) await ping(i);
    let flows: Flow[] = [];
    assert.ok(await eventually(async () => requests((flows = (await observe(nodes[0]!, '--all')).flows)).length === 4, 10_000), JSON.stringify(flows.map((f) => f.Summary)));
    assert.deepEqual(requests(flows).map((f) => f.node_name), [1, 2, 1, 2].map((i) => nodes[i]!.name));
    const fromA1 = flows.filter((f) => f.source?.pod_name === 'a1');
    assert.ok(fromA1.length > 0 && fromA1.every((f) => f.node_name === nodes[1]!.name && f.IP?.source === eps.a1!.ipv4 && f.source?.identity === eps.a1!.identity));
    assert.ok(sorted(flows), 'the whole answer in time order');
    const compact = await nodes[0]!.cli('observe', '--all', '--print-node-name', '--from-pod', 'default/a1');
    assert.match(compact.stdout, new RegExp(`\\[${nodes[1]!.name}\\]: default/a1 \\(ID:${eps.a1!.identity}\\) -> default/b1`));
    assert.equal(compact.stderr, '', 'no node is unavailable');
  });

  it('narrows to a node with --node, and counts --last across the cluster', async () => {
    const only2 = (await observe(nodes[0]!, '--all', '--node', nodes[2]!.name)).flows;
    assert.ok(only2.length > 0 && only2.every((f) => f.node_name === nodes[2]!.name));
    // Hubble's patterns work too.
    const both = (await observe(nodes[0]!, '--all', '--node', `${cluster.prefix}-n1-*`, '--node', nodes[2]!.name)).flows;
    assert.deepEqual(new Set(both.map((f) => f.node_name)), new Set([nodes[1]!.name, nodes[2]!.name]));
    const all = (await observe(nodes[0]!, '--all')).flows;
    const last3 = (await observe(nodes[0]!, '--last', '3')).flows;
    assert.deepEqual(last3.map((f) => f.uuid), all.slice(-3).map((f) => f.uuid));
  });

  it("follows every node's flows as they happen, in time order", async () => {
    const follower = await nodes[0]!.follow(['-o', 'json', '--from-pod', 'default/a']);
    const got = lines(follower);
    // Node 0 counts the follower only once its peers have subscribed: nothing sent now is missed.
    for (const i of [1, 2]) assert.equal((await nodes[i]!.api.status()).flows.peerFollowers, 1, `node 0's relay subscribed on node ${i}`);
    for (const i of [2, 1, 2]) await ping(i);
    const flows = () => got.map((l) => l.flow).filter((f): f is Flow => f !== undefined);
    assert.ok(await eventually(() => requests(flows()).length === 3, 10_000), JSON.stringify(got));
    assert.deepEqual(requests(flows()).map((f) => f.node_name), [2, 1, 2].map((i) => nodes[i]!.name));
    assert.ok(sorted(flows()), 'followed flows in time order');
    // Narrowed to node 2, on node 1 (whose ring node 0's relay also follows): counted as following
    // there, though node 1 itself is not asked.
    const narrowed = await nodes[1]!.follow(['-o', 'json', '--node', nodes[2]!.name, '--from-pod', 'default/a']);
    const got2 = lines(narrowed);
    assert.equal((await nodes[1]!.api.status()).flows.followers, 1);
    await ping(2);
    await ping(1);
    assert.ok(await eventually(() => got2.some((l) => l.flow?.node_name === nodes[2]!.name), 10_000));
    assert.ok(await eventually(() => requests(flows()).length === 5, 10_000), 'both pings on the first follower');
    assert.ok(got2.every((l) => !l.flow || l.flow.node_name === nodes[2]!.name), 'only node 2 on the narrowed one');
    narrowed.kill('SIGINT');
    follower.kill('SIGINT');
  });

  it('lists every node and its state with GetNodes, counts them in ServerStatus, and relays GetFlows over gRPC', async () => {
    const c = grpcOn(0);
    const { nodes: listed } = await unary<{ nodes: { name: string; state: string; address: string; tls?: { enabled?: boolean; server_name?: string }; num_flows?: number }[] }>(c, 'GetNodes');
    assert.deepEqual(
      listed.map((n) => [n.name, n.state, n.address, n.tls?.enabled, n.tls?.server_name]),
      nodes.map((n, i) => [n.name, 'NODE_CONNECTED', `${cluster.nodeIp(i)}:4244`, true, n.name]),
    );
    assert.ok((listed[1]!.num_flows ?? 0) > 0, "node 1's own ring");
    const status = await unary<{ num_connected_nodes?: { value?: number }; num_unavailable_nodes?: { value?: number }; num_flows?: number }>(c, 'ServerStatus');
    assert.equal(status.num_connected_nodes?.value, 3);
    assert.equal(status.num_unavailable_nodes?.value ?? 0, 0);
    const responses: { flow?: { node_name?: string }; node_status?: { state_change?: string; node_names?: string[] } }[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = c.GetFlows!({ number: 5, whitelist: [{ node_name: [nodes[1]!.name] }] }) as grpc.ClientReadableStream<(typeof responses)[number]>;
      call.on('data', (r) => responses.push(r));
      call.on('end', resolve);
      call.on('error', reject);
    });
    assert.deepEqual(responses[0]!.node_status, { state_change: 'NODE_CONNECTED', node_names: [nodes[1]!.name] });
    const relayed = responses.filter((r) => r.flow);
    assert.equal(relayed.length, 5);
    assert.ok(relayed.every((r) => r.flow!.node_name === nodes[1]!.name));
  });

  it('serves peers with mutual TLS only: no plaintext, no certificate of another CA, and a plaintext peer listener is refused at start', async () => {
    const script = path.join(cluster.dir, 'peer-client.mjs');
    fs.writeFileSync(script, PEER_CLIENT);
    const other = await createClusterCa('other', 1);
    const impostor = await issueNodeCertificate(await loadClusterCa(other, 'other'), { name: nodes[0]!.name, ips: [cluster.nodeIp(0)] }, 1);
    for (const [name, content] of [['other-ca.crt', other.cert], ['impostor.crt', impostor.cert], ['impostor.key', impostor.key]] as const) fs.writeFileSync(path.join(cluster.dir, name), content);
    const c = (f: string) => path.join(cluster.certDir, f);
    const o = (f: string) => path.join(cluster.dir, f);
    const n1 = nodes[1]!.name;
    // From the network between the nodes, as any host on the underlay would.
    const call = async (ca: string, cert: string, key: string) =>
      (await run('ip', ['netns', 'exec', cluster.net, 'node', script, repoRoot, `${cluster.nodeIp(1)}:4244`, n1, ca, cert, key])).stdout.trim();
    assert.match(await call(c('ca.crt'), c(`${nodes[0]!.name}.crt`), c(`${nodes[0]!.name}.key`)), /"num_flows"/, 'a node of the cluster reads its peer');
    assert.match(await call('-', '-', '-'), /^error 14/, 'plaintext');
    assert.match(await call(c('ca.crt'), '-', '-'), /^error 14/, 'TLS without a client certificate');
    assert.match(await call(c('ca.crt'), o('impostor.crt'), o('impostor.key')), /^error 14/, "another CA's certificate, though it names a node of the cluster");
    assert.match(await call(o('other-ca.crt'), c(`${nodes[0]!.name}.crt`), c(`${nodes[0]!.name}.key`)), /^error 14/, 'a server the client cannot trust');

    const tryAgent = (...args: string[]) =>
      run('nsenter', [`--net=/run/netns/${nodes[1]!.netns}`, bin, '--socket', path.join(cluster.dir, 'refused.sock'), 'agent', '--node-name', 'refused', '--pod-cidr', '10.99.0.0/24',
        '--state-dir', path.join(cluster.dir, 'refused-state'), '--bpffs-dir', `/sys/fs/bpf/${cluster.prefix}-refused`, '--hubble-address', '', '--hubble-socket', '', '--metrics-address', '',
        '--cgroup-root', nodes[1]!.cgroupDir, '--kvstore', 'etcd', '--kvstore-endpoints', cluster.etcd.url, ...args], { timeoutMs: 30_000 });
    const plaintext = await tryAgent('--hubble-peer-address', `${cluster.nodeIp(1)}:4255`);
    assert.equal(plaintext.code, 1);
    assert.equal(plaintext.stderr.trim().split('\n').length, 1, plaintext.stderr);
    assert.match(plaintext.stderr, /--hubble-peer-address "172\.30\.0\.11:4255" serves flows to other nodes, over mutual TLS only: give --hubble-peer-tls-cert-file/);
    const notMine = await tryAgent('--hubble-peer-tls-cert-file', c(`${n1}.crt`), '--hubble-peer-tls-key-file', c(`${n1}.key`), '--hubble-peer-tls-ca-file', c('ca.crt'));
    assert.match(notMine.stderr, /does not name this node \(refused\)/);
    const wrongCa = await tryAgent('--hubble-peer-tls-cert-file', c(`${n1}.crt`), '--hubble-peer-tls-key-file', c(`${n1}.key`), '--hubble-peer-tls-ca-file', o('other-ca.crt'));
    assert.match(wrongCa.stderr, /is not signed by the CA in --hubble-peer-tls-ca-file/);
    assert.equal((await run('ls', [`/sys/fs/bpf/${cluster.prefix}-refused`])).code, 2, 'refused before touching the machine');
  });

  it("reports a node with another CA's certificate as unavailable, and it reads no other node either", async () => {
    const rogue = await cluster.addNode({
      peerTlsArgs: async (name, ip) => {
        const ca = await createClusterCa('rogue', 1);
        const pair = await issueNodeCertificate(await loadClusterCa(ca, 'rogue'), { name, ips: [ip] }, 1);
        const files = ['ca.crt', 'node.crt', 'node.key'].map((f) => path.join(cluster.dir, `rogue-${f}`));
        [ca.cert, pair.cert, pair.key].forEach((content, i) => fs.writeFileSync(files[i]!, content, { mode: 0o600 }));
        return ['--hubble-peer-tls-ca-file', files[0]!, '--hubble-peer-tls-cert-file', files[1]!, '--hubble-peer-tls-key-file', files[2]!];
      },
    });
    try {
      assert.ok(await eventually(async () => (await nodes[0]!.api.listNodes()).some((n: ClusterNode) => n.name === rogue.name && n.observerPort === 4244), 10_000));
      const seen = await observe(nodes[0]!, '--last', '5');
      assert.equal(seen.flows.length, 5, 'the other nodes still answer');
      assert.match(seen.stderr, new RegExp(`"node_status":\\{"state_change":"NODE_UNAVAILABLE","node_names":\\["${rogue.name}"\\]`));
      const compact = await nodes[0]!.cli('observe', '--last', '1');
      assert.match(compact.stderr, new RegExp(`\\[${nodes[0]!.name}\\]: 1 nodes are unavailable: ${rogue.name} \\(`));
      const fromRogue = await rogue.cli('observe', '--last', '1');
      assert.equal(fromRogue.code, 0);
      assert.match(fromRogue.stderr, new RegExp(`3 nodes are unavailable: ${nodes.map((n) => n.name).join(', ')}`));
    } finally {
      await rogue.cleanup();
      // Gone before its lease would expire: the next tests count three nodes.
      await cluster.etcd.etcdctl(['del', `membrane/state/nodes/v1/default/${rogue.name}`]);
    }
    assert.ok(await eventually(async () => (await nodes[0]!.api.listNodes()).length === 3, 10_000));
  });

  it("reports a dead node unavailable while the others' flows still stream, and streams it again when it is back", async () => {
    const follower = await nodes[0]!.follow(['-o', 'json', '--from-pod', 'default/a']);
    const out = lines(follower);
    const err = lines(follower, 'stderr');
    const seen = () => requests(out.map((l) => l.flow).filter((f): f is Flow => f !== undefined));
    await nodes[2]!.killAgent();
    // The follower hears it as Hubble's NODE_ERROR, on stderr.
    assert.ok(await eventually(() => err.some((l) => l.node_status?.state_change === 'NODE_ERROR' && l.node_status.node_names.includes(nodes[2]!.name)), 10_000), JSON.stringify(err));
    await ping(1);
    assert.ok(await eventually(() => seen().some((f) => f.node_name === nodes[1]!.name), 10_000), "node 1's flows still stream");

    const once = await nodes[0]!.cli('observe', '--last', '3', '--print-node-name');
    assert.equal(once.code, 0, once.stderr);
    assert.match(once.stderr, new RegExp(`1 nodes are unavailable: ${nodes[2]!.name} \\(.*ECONNREFUSED`));
    assert.equal(once.stdout.trim().split('\n').length, 3);
    const narrowed = await nodes[0]!.cli('observe', '--last', '3', '--node', nodes[1]!.name);
    assert.equal(narrowed.stderr, '', 'a node the request does not name is not asked, so not reported');
    const c = grpcOn(0);
    const status = await unary<{ num_connected_nodes?: { value?: number }; num_unavailable_nodes?: { value?: number }; unavailable_nodes?: string[] }>(c, 'ServerStatus');
    assert.deepEqual([status.num_connected_nodes?.value, status.num_unavailable_nodes?.value, status.unavailable_nodes], [2, 1, [nodes[2]!.name]]);
    const { nodes: listed } = await unary<{ nodes: { name: string; state: string }[] }>(c, 'GetNodes');
    assert.deepEqual(listed.map((n) => n.state), ['NODE_CONNECTED', 'NODE_CONNECTED', 'NODE_UNAVAILABLE']);

    // Back: the same follower takes its flows again, without being restarted.
    await nodes[2]!.startAgent();
    assert.ok(await eventually(async () => {
      await ping(2);
      return seen().some((f) => f.node_name === nodes[2]!.name && Date.parse(f.time) > Date.now() - 5000);
    }, 20_000, 500), 'node 2 streams again');
    follower.kill('SIGINT');
  });
});
