/* Flows from the kernel: a denied connection is one policy verdict (DROPPED) and one drop, both
 * with the reason, endpoints, identities and the policy, as in Cilium; allowed traffic gives
 * FORWARDED flows both ways with is_reply right; filters select what they say (services,
 * workloads and --not included); --follow streams; the gRPC Observer returns the same flows and
 * the agent's events; Prometheus counters move, policy verdicts counted once per verdict; a
 * flood keeps memory bounded and counts what was lost. */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { Endpoint } from '../../src/api/types.js';
import { loadObserverProto } from '../../src/flow/proto.js';
import type { Flow } from '../../src/flow/types.js';
import { TestNode, eventually, repoRoot, waitForLine } from '../harness/node.js';

const policy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-from-client, namespace: app}
spec:
  endpointSelector: {matchLabels: {role: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {role: client}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {role: banned}}]
`;

describe('flows', () => {
  let node: TestNode;
  let web: Endpoint;
  let client: Endpoint;
  let stranger: Endpoint;
  let banned: Endpoint;

  const observe = (...args: string[]): Promise<Flow[]> => node.observeFlows('--all', ...args);

  before(async () => {
    node = await TestNode.create({ podCidr: '10.227.0.0/24' });
    await node.api.setNamespace('app');
    web = await node.api.addEndpoint({ namespace: 'app', name: 'web', labels: ['role=web', 'app.kubernetes.io/name=webapp'] });
    client = await node.api.addEndpoint({ namespace: 'app', name: 'client', labels: ['role=client'] });
    stranger = await node.api.addEndpoint({ namespace: 'app', name: 'stranger', labels: ['role=stranger'] });
    banned = await node.api.addEndpoint({ namespace: 'app', name: 'banned', labels: ['role=banned'] });
    await node.echoServer(web.netns, 80, 81);
    await node.api.importPolicies([{ name: 'p.yaml', content: policy }]);
    // web:80 is a backend of a service: flows to it name the service.
    await node.api.addService({ name: 'websvc', frontend: '10.96.0.80:80/TCP', selector: ['role=web'] });
  });
  after(async () => node?.cleanup());

  it('reports a default-deny denial once as a policy verdict and once as a drop, naming the policies behind the default deny', async () => {
    // One SYN: the probe gives up before TCP retransmits.
    assert.ok(!(await node.probe(stranger.netns, 'tcp', web.ipv4, 80, 300)));
    // As Cilium: the policy verdict (DROPPED) comes first, then the drop. Both are DROPPED flows.
    const dropped = await observe('--verdict', 'DROPPED', '--from-pod', 'app/stranger');
    assert.deepEqual(dropped.map((f) => f.event_type.type), [5, 1], JSON.stringify(dropped));
    const [verdict, f] = dropped as [Flow, Flow];
    assert.equal(verdict.drop_reason_desc, 'POLICY_DENIED');
    assert.equal(verdict.traffic_direction, 'INGRESS');
    assert.equal(verdict.policy_match_type, undefined, 'match none');
    assert.deepEqual(verdict.default_deny_by?.map((p) => p.name), ['web-from-client']);
    assert.equal(verdict.l4?.TCP?.flags?.SYN, true);
    const drops = await observe('--type', 'drop', '--from-pod', 'app/stranger');
    assert.equal(drops.length, 1, JSON.stringify(drops));
    assert.equal(drops[0]!.uuid, f.uuid);
    assert.equal(f.drop_reason_desc, 'POLICY_DENIED');
    assert.equal(f.traffic_direction, 'INGRESS');
    assert.deepEqual([f.source?.pod_name, f.source?.namespace, f.source?.identity], ['stranger', 'app', stranger.identity]);
    assert.deepEqual([f.destination?.pod_name, f.destination?.identity, f.destination?.ID], ['web', web.identity, web.id]);
    assert.equal(f.l4?.TCP?.destination_port, 80);
    assert.equal(f.l4?.TCP?.flags?.SYN, true);
    assert.deepEqual(f.default_deny_by?.map((p) => `${p.kind} ${p.namespace}/${p.name}`), ['CiliumNetworkPolicy app/web-from-client']);
    assert.ok(f.source?.labels?.includes('k8s:role=stranger'));
    assert.match(f.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  });

  it('names the deny policy of an explicit deny', async () => {
    assert.ok(!(await node.probe(banned.netns, 'tcp', web.ipv4, 80, 300)));
    const drops = await observe('--verdict', 'DROPPED', '--from-pod', 'app/banned');
    // A policy verdict and a drop (see above): both name the deny.
    assert.deepEqual(drops.map((f) => f.event_type.type), [5, 1]);
    for (const f of drops) {
      assert.equal(f.drop_reason_desc, 'POLICY_DENY');
      assert.deepEqual(f.ingress_denied_by?.map((p) => p.name), ['web-from-client']);
    }
    const verdicts = await observe('--type', 'policy-verdict', '--from-pod', 'app/banned');
    assert.equal(verdicts.length, 1);
    assert.equal(verdicts[0]!.verdict, 'DROPPED');
    const compact = await node.cli('observe', '--all', '--type', 'policy-verdict', '--from-pod', 'app/banned');
    assert.match(compact.stdout, /policy-verdict:\S+ INGRESS DENIED/, compact.stdout);
  });

  it('shows an allowed connection as FORWARDED flows both ways, with is_reply and the allowing policy', async () => {
    assert.ok(await node.probe(client.netns, 'tcp', web.ipv4, 80));
    const flows = await observe('--pod', 'app/client', '--protocol', 'tcp');
    const traces = flows.filter((f) => f.event_type.type === 4);
    const key = (f: Flow) => `${f.trace_observation_point} ${f.source?.pod_name}->${f.destination?.pod_name} reply=${f.is_reply}`;
    const seen = new Set(traces.map(key));
    // At the default aggregation (medium) only the delivering side traces, as in Cilium.
    for (const want of ['TO_ENDPOINT client->web reply=false', 'TO_ENDPOINT web->client reply=true']) {
      assert.ok(seen.has(want), `missing ${want} in ${[...seen].join(', ')}`);
    }
    assert.ok(![...seen].some((k) => k.startsWith('FROM_ENDPOINT')), `no from-endpoint traces at medium: ${[...seen].join(', ')}`);
    assert.ok(traces.every((f) => f.verdict === 'FORWARDED'));
    const verdict = flows.find((f) => f.event_type.type === 5 && f.traffic_direction === 'INGRESS');
    assert.deepEqual(verdict?.ingress_allowed_by?.map((p) => p.name), ['web-from-client']);
    assert.equal(verdict?.policy_match_type, 2, 'L3_L4');
  });

  it('applies filters as Hubble does', async () => {
    await node.probe(client.netns, 'udp', web.ipv4, 81, 300); // denied: UDP not allowed
    const all = await observe();
    const check = async (args: string[], pred: (f: Flow) => boolean) => {
      const got = await observe(...args);
      assert.ok(got.length > 0, `${args.join(' ')} selected nothing`);
      assert.ok(got.every(pred), `${args.join(' ')} let through a flow it should not`);
      assert.equal(got.length, all.filter(pred).length, `${args.join(' ')} missed flows`);
    };
    await check(['--type', 'drop'], (f) => f.event_type.type === 1);
    await check(['--type', 'policy-verdict'], (f) => f.event_type.type === 5);
    await check(['--protocol', 'udp'], (f) => f.l4?.UDP !== undefined);
    await check(['--to-port', '81'], (f) => (f.l4?.UDP?.destination_port ?? f.l4?.TCP?.destination_port) === 81);
    await check(['--from-ip', client.ipv4], (f) => f.IP?.source === client.ipv4);
    await check(['--to-identity', String(web.identity)], (f) => f.destination?.identity === web.identity);
    await check(['--from-label', 'role=banned'], (f) => f.source?.labels?.includes('k8s:role=banned') ?? false);
    await check(['--verdict', 'FORWARDED', '--to-pod', 'app/web'], (f) => f.verdict === 'FORWARDED' && f.destination?.pod_name === 'web');
    await check(['--namespace', 'app'], (f) => f.source?.namespace === 'app' || f.destination?.namespace === 'app');
    await check(['--to-label', 'role=web'], (f) => f.destination?.labels?.includes('k8s:role=web') ?? false);
    await check(['--label', 'role=client'], (f) => [f.source, f.destination].some((e) => e?.labels?.includes('k8s:role=client')));
    await check(['--ip', banned.ipv4], (f) => f.IP?.source === banned.ipv4 || f.IP?.destination === banned.ipv4);
    await check(['--to-ip', web.ipv4, '--protocol', 'tcp'], (f) => f.IP?.destination === web.ipv4 && f.l4?.TCP !== undefined);
    await check(['--from-identity', String(stranger.identity)], (f) => f.source?.identity === stranger.identity);
    await check(['--port', '81'], (f) => [f.l4?.UDP, f.l4?.TCP].some((l) => l?.source_port === 81 || l?.destination_port === 81));
    await check(['--type', 'trace'], (f) => f.event_type.type === 4);
    await check(['--type', 'trace:to-endpoint'], (f) => f.event_type.type === 4 && f.trace_observation_point === 'TO_ENDPOINT');
    // --not negates the next filter flag, as Hubble's.
    await check(['--not', '--type', 'trace'], (f) => f.event_type.type !== 4);
    await check(['--from-pod', 'app/client', '--not', '--verdict', 'FORWARDED'], (f) => f.source?.pod_name === 'client' && f.verdict !== 'FORWARDED');
    const outsideApp = (f: Flow) => f.source?.namespace !== 'app' && f.destination?.namespace !== 'app';
    assert.equal((await observe('--not', '--namespace', 'app')).length, all.filter(outsideApp).length, 'every flow here is from or to app');
    // Services (web:80 backs websvc; services live in "default") and workloads (web's app.kubernetes.io/name).
    await check(['--to-service', 'websvc'], (f) => f.destination_service?.name === 'websvc' && f.destination_service.namespace === 'default');
    await check(['--to-service', 'default/web'], (f) => f.destination_service?.name === 'websvc');
    await check(['--from-service', 'websvc'], (f) => f.source_service?.name === 'websvc');
    await check(['--service', 'websvc', '--verdict', 'DROPPED'], (f) => (f.source_service ?? f.destination_service)?.name === 'websvc' && f.verdict === 'DROPPED');
    await check(['--to-workload', 'webapp'], (f) => f.destination?.workloads?.some((w) => w.name === 'webapp') ?? false);
    await check(['--workload', 'webapp'], (f) => [f.source, f.destination].some((e) => e?.workloads?.some((w) => w.name === 'webapp')));
    assert.ok(all.filter((f) => f.destination?.pod_name === 'web').every((f) => f.destination?.workloads?.[0]?.name === 'webapp'), 'every flow to web carries its workload');
    assert.ok(all.every((f) => f.source?.pod_name === 'web' || !f.source?.workloads), 'endpoints without the label have no workload');
    assert.equal((await observe('--to-service', 'other/websvc')).length, 0, 'websvc is not in namespace other');
    // A time window: everything since the first drop, and nothing before it.
    const firstDrop = all.find((f) => f.verdict === 'DROPPED')!;
    await check(['--since', firstDrop.time], (f) => f.time >= firstDrop.time);
    await check(['--until', firstDrop.time], (f) => f.time <= firstDrop.time);
    const table = await node.cli('observe', '--all', '-o', 'table', '--verdict', 'DROPPED');
    assert.match(table.stdout.split('\n')[0]!, /^TIMESTAMP\s+SOURCE\s+DESTINATION\s+TYPE\s+VERDICT\s+SUMMARY/);
    // A denial's policy verdict prints DENIED in the VERDICT column, as Hubble prints it.
    assert.ok(table.stdout.split('\n').slice(1).filter(Boolean).every((l) => /\bDROPPED\b|policy-verdict:\S+ INGRESS\s+DENIED\b/.test(l)), table.stdout);
    const last2 = await node.cli('observe', '--last', '2', '-o', 'json');
    assert.equal(last2.stdout.trim().split('\n').length, 2);
    const compact = await node.cli('observe', '--last', '1', '--verdict', 'DROPPED');
    assert.match(compact.stdout, /app\/\w+:\d+ \(ID:\d+\) -> app\/web:\d+ \(ID:\d+\) .*DROPPED/);
  });

  it('streams new flows with --follow, starting from now like Hubble', async () => {
    // The ring already holds client -> web:80 flows: a follower must not replay them.
    assert.ok((await observe('--from-pod', 'app/client', '--to-port', '80')).length > 0);
    const follower = await node.follow(['-o', 'json', '--from-pod', 'app/client', '--to-port', '80']);
    try {
      const lines: string[] = [];
      follower.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
      await new Promise((r) => setTimeout(r, 300)); // anything the agent would replay arrives by now
      assert.deepEqual(lines, [], 'no history without --last');
      const sent = new Date().toISOString();
      assert.ok(await node.probe(client.netns, 'tcp', web.ipv4, 80));
      assert.ok(await eventually(() => lines.length > 0, 5000), 'the new connection streams');
      const got = JSON.parse(lines[0]!) as { flow: Flow };
      assert.equal(got.flow.source?.pod_name, 'client');
      assert.ok(got.flow.time >= sent.slice(0, 19), `a flow of the new connection: ${got.flow.time} after ${sent}`);
    } finally {
      follower.kill('SIGINT');
    }
  });

  it('reports a connection to an unused pod address as a drop for lack of a route', async () => {
    const unused = web.ipv4.replace(/\.\d+$/, '.200');
    assert.ok(!(await node.probe(client.netns, 'tcp', unused, 80, 300)));
    const drops = await observe('--verdict', 'DROPPED', '--from-pod', 'app/client', '--to-ip', unused);
    assert.ok(drops.length >= 1, 'a DROPPED flow');
    assert.equal(drops[0]!.drop_reason_desc, 'FIB_LOOKUP_FAILED');
    assert.equal(drops[0]!.traffic_direction, 'EGRESS');
  });

  it('serves the same flows over the Observer gRPC API, filters included', async () => {
    type ObserverClient = grpc.Client & {
      ServerStatus(req: object, cb: (err: Error | null, res: { num_flows: number; seen_flows: number }) => void): void;
      GetFlows(req: object): grpc.ClientReadableStream<{ flow?: { uuid: string; verdict: string; drop_reason_desc?: string } }>;
    };
    const pkg = grpc.loadPackageDefinition(loadObserverProto()) as unknown as {
      observer: { Observer: new (addr: string, creds: grpc.ChannelCredentials) => ObserverClient };
    };
    const status = await node.api.status();
    const grpcClient = new pkg.observer.Observer(`unix:${status.listen.hubbleSocket}`, grpc.credentials.createInsecure());
    try {
      const server = await new Promise<{ num_flows: number; seen_flows: number }>((res, rej) =>
        grpcClient.ServerStatus({}, (err, r) => (err ? rej(err) : res(r))),
      );
      assert.ok(server.num_flows > 0);
      const viaGrpc: { uuid: string; verdict: string; drop_reason_desc?: string }[] = [];
      await new Promise<void>((res, rej) => {
        const call = grpcClient.GetFlows({ whitelist: [{ verdict: ['DROPPED'], source_pod: ['app/stranger'] }] });
        call.on('data', (r: { flow?: { uuid: string; verdict: string; drop_reason_desc?: string } }) => r.flow && viaGrpc.push(r.flow));
        call.on('end', res);
        call.on('error', rej);
      });
      const viaCli = await observe('--verdict', 'DROPPED', '--from-pod', 'app/stranger');
      assert.deepEqual(viaGrpc.map((f) => f.uuid), viaCli.map((f) => f.uuid));
      assert.equal(viaGrpc[0]?.drop_reason_desc, 'POLICY_DENIED');
    } finally {
      grpcClient.close();
    }
  });

  it('streams agent events over GetAgentEvents, and an empty GetDebugEvents', async () => {
    type Event = { agent_event: { type: string; endpoint_update?: { id: number; pod_name: string; namespace: string }; endpoint_regenerate?: { id: number }; policy_update?: { revision: number; rule_count: number; labels: string[] }; unknown?: { type: string; notification: string } }; node_name: string };
    const pkg = grpc.loadPackageDefinition(loadObserverProto()) as unknown as {
      observer: { Observer: new (addr: string, creds: grpc.ChannelCredentials) => grpc.Client & Record<string, (req: object) => grpc.ClientReadableStream<Event>> };
    };
    const status = await node.api.status();
    const observer = new pkg.observer.Observer(`unix:${status.listen.hubbleSocket}`, grpc.credentials.createInsecure());
    const all = <T>(call: grpc.ClientReadableStream<T>) =>
      new Promise<T[]>((res, rej) => {
        const out: T[] = [];
        call.on('data', (m: T) => out.push(m));
        call.on('end', () => res(out));
        call.on('error', rej);
      });
    try {
      const events = await all(observer.GetAgentEvents!({}));
      const of = (type: string) => events.filter((e) => e.agent_event.type === type).map((e) => e.agent_event);
      assert.equal(of('AGENT_STARTED').length, 1);
      assert.deepEqual(
        of('ENDPOINT_CREATED').map((e) => `${e.endpoint_update?.namespace}/${e.endpoint_update?.pod_name} ${e.endpoint_update?.id}`),
        [web, client, stranger, banned].map((e) => `app/${e.name} ${e.id}`),
      );
      assert.ok(of('ENDPOINT_REGENERATE_SUCCESS').some((e) => e.endpoint_regenerate?.id === web.id), 'web regenerated');
      const policies = of('POLICY_UPDATED');
      assert.equal(policies.length, 1);
      const imported = await node.api.listPolicies();
      assert.equal(policies[0]!.policy_update?.revision, imported.revision);
      assert.equal(policies[0]!.policy_update?.rule_count, imported.policies[0]!.rules);
      assert.ok(policies[0]!.policy_update?.labels.includes('k8s:io.cilium.k8s.policy.name=web-from-client'));
      const allocated = of('AGENT_EVENT_UNKNOWN').filter((e) => e.unknown?.type === 'IdentityAllocated').map((e) => (JSON.parse(e.unknown!.notification) as { id: number }).id);
      for (const ep of [web, client, stranger, banned]) assert.ok(allocated.includes(ep.identity), `identity ${ep.identity} of ${ep.name} allocated`);
      assert.ok(events.every((e) => e.node_name === node.name));
      // Following from a moment ago (history since then, then new events: nothing falls between):
      // an endpoint added now is streamed.
      const sinceMs = Date.now() - 1;
      const follow = observer.GetAgentEvents!({ follow: true, since: { seconds: Math.floor(sinceMs / 1000), nanos: (sinceMs % 1000) * 1e6 } });
      const live: Event[] = [];
      follow.on('data', (e: Event) => live.push(e));
      follow.on('error', () => {});
      const extra = await node.api.addEndpoint({ namespace: 'app', name: 'extra', labels: ['role=extra'] });
      await node.api.deleteEndpoint('app', 'extra');
      assert.ok(await eventually(() => live.some((e) => e.agent_event.type === 'ENDPOINT_DELETED'), 5000), 'the delete streams');
      follow.cancel();
      assert.deepEqual(
        live.filter((e) => e.agent_event.endpoint_update).map((e) => `${e.agent_event.type} ${e.agent_event.endpoint_update!.id}`),
        [`ENDPOINT_CREATED ${extra.id}`, `ENDPOINT_DELETED ${extra.id}`],
      );
      assert.deepEqual(await all(observer.GetDebugEvents!({})), [], 'no debug events, and no error');
    } finally {
      observer.close();
    }
  });

  it('counts each policy verdict once: observe --type policy-verdict and hubble_policy_verdicts_total agree', async () => {
    const verdictMetrics = async () => {
      const text = await node.api.metricsText();
      const byAction = new Map<string, number>();
      for (const m of text.matchAll(/^hubble_policy_verdicts_total\{[^}]*action="(\w+)"\} (\d+)$/gm)) byAction.set(m[1]!, (byAction.get(m[1]!) ?? 0) + Number(m[2]));
      return byAction;
    };
    const before = await verdictMetrics();
    assert.ok(!(await node.probe(stranger.netns, 'tcp', web.ipv4, 80, 300)));
    assert.ok(await node.probe(client.netns, 'tcp', web.ipv4, 80));
    let metrics = new Map<string, number>();
    let flows = new Map<string, number>();
    const agree = await eventually(async () => {
      metrics = await verdictMetrics();
      flows = new Map();
      for (const f of await observe('--type', 'policy-verdict')) flows.set(f.verdict.toLowerCase(), (flows.get(f.verdict.toLowerCase()) ?? 0) + 1);
      return JSON.stringify([...metrics].sort()) === JSON.stringify([...flows].sort());
    });
    assert.ok(agree, `metrics ${JSON.stringify([...metrics])} vs policy-verdict flows ${JSON.stringify([...flows])}`);
    assert.equal(metrics.get('dropped'), (before.get('dropped') ?? 0) + 1, 'the new denial counted once');
    assert.ok((metrics.get('forwarded') ?? 0) > (before.get('forwarded') ?? 0));
  });

  it('moves the Prometheus counters', async () => {
    const metric = async (pattern: RegExp) => {
      const m = pattern.exec(await node.api.metricsText());
      return m ? Number(m[1]) : 0;
    };
    const dropsBefore = await metric(/hubble_drop_total\{reason="POLICY_DENIED",protocol="TCP"\} (\d+)/);
    assert.ok(!(await node.probe(stranger.netns, 'tcp', web.ipv4, 80, 300)));
    assert.ok(
      await eventually(async () => (await metric(/hubble_drop_total\{reason="POLICY_DENIED",protocol="TCP"\} (\d+)/)) === dropsBefore + 1),
      'hubble_drop_total moved by one',
    );
    assert.ok((await metric(/hubble_flows_processed_total\{protocol="TCP",type="Trace",subtype="to-endpoint",verdict="FORWARDED"\} (\d+)/)) > 0);
    assert.ok((await metric(/hubble_policy_verdicts_total\{direction="ingress",match="l3-l4",action="forwarded"\} (\d+)/)) > 0);
    assert.ok((await metric(/hubble_policy_verdicts_total\{direction="ingress",match="none",action="dropped"\} (\d+)/)) > 0);
    assert.ok((await metric(/hubble_tcp_flags_total\{flag="SYN",family="IPv4"\} (\d+)/)) > 0);
    assert.ok((await metric(/hubble_tcp_flags_total\{flag="SYN-ACK",family="IPv4"\} (\d+)/)) > 0);
    assert.ok((await metric(/hubble_port_distribution_total\{protocol="TCP",port="80"\} (\d+)/)) > 0);
    assert.equal(await metric(/hubble_port_distribution_total\{protocol="TCP",port="(?!80")(\d+)"\} \d+/), 0, 'only port 80 was connected to over TCP: replies (ephemeral ports) are not counted');
    assert.ok((await metric(/membrane_endpoints (\d+)/)) === 4);
    assert.ok((await metric(/membrane_identities (\d+)/)) >= 4);
    assert.equal(await metric(/membrane_policy_revision (\d+)/), (await node.api.listPolicies()).revision);
    assert.ok((await metric(/membrane_policy_import_duration_seconds_count (\d+)/)) >= 1);
    assert.ok(/membrane_bpf_map_pressure\{map_name="mb_ct"\} [\d.e-]+/.test(await node.api.metricsText()));
    // The TCP listener inside the node namespace serves the same text.
    const status = await node.api.status();
    const r = await node.execNode([
      'node',
      '-e',
      `require('http').get('http://${status.listen.metrics}/metrics', (res) => { let t = ''; res.on('data', (d) => (t += d)); res.on('end', () => console.log(t)); })`,
    ]);
    assert.match(r.stdout, /hubble_drop_total\{reason="POLICY_DENIED"/);
  });
  // Last: it restarts the agent, which starts with an empty flow ring.
  it('ends a follower with one line when the agent goes away, and serves again after a restart', async () => {
    const follower = await node.follow([]);
    let stderr = '';
    follower.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    follower.stdout!.resume();
    const exited = new Promise<number>((r) => follower.once('exit', (code) => r(code ?? -1)));
    await node.killAgent('SIGKILL');
    let code: number;
    try {
      code = await Promise.race([exited, new Promise<number>((r) => setTimeout(() => r(-99), 5000))]);
      if (code === -99) follower.kill('SIGKILL');
    } finally {
      await node.startAgent();
    }
    assert.notEqual(code, -99, 'the follower exits when the agent dies');
    assert.notEqual(code, 0);
    assert.match(stderr.trim(), /^Error: the agent at .* closed the stream/);
    assert.ok(await node.probe(client.netns, 'tcp', web.ipv4, 80));
    const again = await node.cli('observe', '--last', '1', '-o', 'json');
    assert.equal(again.stdout.trim().split('\n').length, 1, 'flows are served again (pinned maps kept the programs running)');
  });

});

describe('flow stress', () => {
  it('keeps memory bounded and counts lost events when the reader stalls', async () => {
    const node = await TestNode.create({ podCidr: '10.228.0.0/24', extraAgentArgs: ['--monitor-aggregation', 'none', '--flow-buffer-capacity', '1023'] });
    try {
      await node.api.setNamespace('s');
      const a = await node.api.addEndpoint({ namespace: 's', name: 'a' });
      const b = await node.api.addEndpoint({ namespace: 's', name: 'b' });
      await node.echoServer(a.netns, 9);
      // Freeze the agent so the ring buffer fills; the programs keep forwarding and count losses.
      const pid = node.agent!.pid!;
      process.kill(pid, 'SIGSTOP');
      let flood;
      try {
        flood = await node.exec(b.netns, ['node', path.join(repoRoot, 'test/harness/tools/udp-flood.mjs'), a.ipv4, '9', '150000'], 120_000);
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      assert.match(flood.stdout, /sent 150000/);
      // The agent answers while it drains the backlog: it reads in bounded batches. The drain
      // takes tens of milliseconds now, so ask often.
      let answeredWhileDraining = 0;
      const settled = await eventually(async () => {
        const s = await node.api.status();
        if (s.flows.backlogBytes > 0) answeredWhileDraining++;
        return s.flows.lost_events > 0 && s.flows.backlogBytes === 0;
      }, 30_000, 2);
      const s = await node.api.status();
      assert.ok(settled, `lost events counted and the backlog drained: ${JSON.stringify(s.flows)}`);
      assert.equal(s.flows.num_flows, 1023, 'the flow ring keeps only its capacity');
      assert.ok(s.flows.eventsRead > 50_000, `the reader drained the backlog: ${JSON.stringify(s.flows)}`);
      assert.ok(s.memory.rssBytes < 300 * 1024 * 1024, `agent RSS ${s.memory.rssBytes} stays bounded`);
      assert.equal(s.health, 'ok');
      assert.ok(answeredWhileDraining >= 2, `the API answered ${answeredWhileDraining} times during the drain`);
      assert.match(await node.api.metricsText(), /hubble_lost_events_total\{source="perf_event_ring_buffer"\} [1-9]/);
    } finally {
      await node.cleanup();
    }
  });
});

describe('policy audit mode', () => {
  it('lets denied traffic through and reports it as AUDIT flows naming the policy', async () => {
    const node = await TestNode.create({ podCidr: '10.232.0.0/24', extraAgentArgs: ['--policy-audit-mode'] });
    try {
      await node.api.setNamespace('app');
      const web = await node.api.addEndpoint({ namespace: 'app', name: 'web', labels: ['role=web'] });
      const stranger = await node.api.addEndpoint({ namespace: 'app', name: 'stranger', labels: ['role=stranger'] });
      const banned = await node.api.addEndpoint({ namespace: 'app', name: 'banned', labels: ['role=banned'] });
      await node.echoServer(web.netns, 80);
      await node.api.importPolicies([{ name: 'p.yaml', content: policy }]);
      assert.ok(await node.probe(stranger.netns, 'tcp', web.ipv4, 80), 'default deny is only audited');
      assert.ok(await node.probe(banned.netns, 'tcp', web.ipv4, 80), 'the deny rule is only audited');
      const r = await node.cli('observe', '--all', '-o', 'json', '--verdict', 'AUDIT');
      const flows = r.stdout.trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { flow: Flow }).flow);
      const fromStranger = flows.find((f) => f.source?.pod_name === 'stranger');
      const fromBanned = flows.find((f) => f.source?.pod_name === 'banned');
      assert.deepEqual(fromStranger?.default_deny_by?.map((p) => p.name), ['web-from-client']);
      assert.deepEqual(fromBanned?.ingress_denied_by?.map((p) => p.name), ['web-from-client']);
      const none = await node.cli('observe', '--all', '-o', 'json', '--verdict', 'DROPPED');
      assert.equal(none.stdout.trim(), '', 'nothing was dropped');
      assert.match(await node.api.metricsText(), /hubble_policy_verdicts_total\{direction="ingress",match="none",action="audit"\} 1/);
    } finally {
      await node.cleanup();
    }
  });
});
