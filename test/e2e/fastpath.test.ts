/* Endpoint-to-endpoint delivery with bpf_redirect_peer (the default) and through the node's
 * routing stack (--no-fast-path): traffic passes, policy applies on both sides, replies pass and
 * flows appear either way; only the fast path skips the host-side interfaces' transmit path. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { CtRow, Endpoint } from '../../src/api/types.js';
import path from 'node:path';
import { TestNode, repoRoot } from '../harness/node.js';

const policy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: server-from-client, namespace: fp}
spec:
  endpointSelector: {matchLabels: {role: server}}
  ingress:
  - fromEndpoints: [{matchLabels: {role: client}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}, {port: "80", protocol: UDP}]}]
  egress:
  - toEndpoints: [{matchLabels: {role: client}}]
`;

for (const fastPath of [true, false]) {
  describe(`delivery ${fastPath ? 'with the fast path (bpf_redirect_peer)' : 'through the node stack (--no-fast-path)'}`, () => {
    let node: TestNode;
    let server: Endpoint;
    let client: Endpoint;
    let other: Endpoint;

    before(async () => {
      node = await TestNode.create({ podCidr: fastPath ? '10.233.0.0/24' : '10.234.0.0/24', extraAgentArgs: fastPath ? [] : ['--no-fast-path'] });
      await node.api.setNamespace('fp');
      server = await node.api.addEndpoint({ namespace: 'fp', name: 'server', labels: ['role=server'] });
      client = await node.api.addEndpoint({ namespace: 'fp', name: 'client', labels: ['role=client'] });
      other = await node.api.addEndpoint({ namespace: 'fp', name: 'other', labels: ['role=other'] });
      await node.echoServer(server.netns, 80);
      await node.echoServer(other.netns, 80);
      await node.api.importPolicies([{ name: 'p.yaml', content: policy }]);
    });
    after(async () => node?.cleanup());

    const txPackets = async (ifname: string) => {
      const r = await node.execNode(['ip', '-j', '-s', 'link', 'show', ifname]);
      return (JSON.parse(r.stdout) as { stats64: { tx: { packets: number } } }[])[0]!.stats64.tx.packets;
    };

    it('passes allowed traffic and its replies', async () => {
      assert.ok(await node.probe(client.netns, 'tcp', server.ipv4, 80));
      assert.ok(await node.probe(client.netns, 'udp', server.ipv4, 80));
    });

    it('applies ingress and egress policy', async () => {
      assert.ok(!(await node.probe(other.netns, 'tcp', server.ipv4, 80, 400)), 'ingress of server denies other');
      assert.ok(!(await node.probe(server.netns, 'tcp', other.ipv4, 80, 400)), 'egress of server only reaches client');
    });

    it(`${fastPath ? 'skips' : 'uses'} the node's routing to the destination interface`, async () => {
      const before = await txPackets(server.interface);
      const r = await node.exec(client.netns, ['node', path.join(repoRoot, 'test/harness/tools/udp-flood.mjs'), server.ipv4, '80', '200']);
      assert.match(r.stdout, /sent 200/);
      const sent = (await txPackets(server.interface)) - before;
      if (fastPath) assert.ok(sent < 10, `${sent} packets went through ${server.interface}'s transmit path`);
      else assert.ok(sent >= 150, `only ${sent} of 200 packets went through ${server.interface}`);
    });

    it('tracks a connection between two endpoints as one entry, judged for both ends, each packet counted once', async () => {
      const r = await node.exec(server.netns, ['ping', '-c', '3', '-i', '0.2', '-W', '1', client.ipv4]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const pinged = Date.now();
      const ct = await node.cliJson<CtRow[]>('bpf', 'ct', 'list');
      const since = Math.ceil((Date.now() - pinged) / 1000); // a busy machine's CLI takes its time
      const echo = ct.filter((c) => c.protocol === 'ICMP' && c.source.startsWith(`${server.ipv4}:`) && c.destination === `${client.ipv4}:0`);
      assert.equal(echo.length, 1, JSON.stringify(echo));
      assert.deepEqual(echo[0]!.endpoints, [
        { endpoint: server.id, direction: 'EGRESS', remoteIdentity: client.identity },
        { endpoint: client.id, direction: 'INGRESS', remoteIdentity: server.identity },
      ]);
      assert.equal(echo[0]!.packets, 6, 'three requests and three replies, each counted once');
      // The programs stamp entries with the tick clock the agent reads back (src/kernel/jiffies.ts).
      assert.ok(echo[0]!.idleSeconds >= 0 && echo[0]!.idleSeconds <= since + 1, `idle ${echo[0]!.idleSeconds}s, ${since}s after the ping`);
    });

    it('still reports flows on both endpoints', async () => {
      assert.ok(await node.probe(client.netns, 'tcp', server.ipv4, 80));
      const flows = await node.observeFlows('--all', '--pod', 'fp/server', '--type', 'trace');
      const points = new Set(flows.map((f) => `${f.trace_observation_point} ${f.interface?.name} reply=${f.is_reply}`));
      assert.ok(points.has(`TO_ENDPOINT ${server.interface} reply=false`), [...points].join(', '));
      assert.ok(points.has(`TO_ENDPOINT ${client.interface} reply=true`), [...points].join(', '));
      const drops = await node.cli('observe', '--all', '-o', 'json', '--verdict', 'DROPPED', '--from-pod', 'fp/other');
      assert.ok(drops.stdout.includes('POLICY_DENIED'));
    });
  });
}
