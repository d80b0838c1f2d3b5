/* The agent's own listeners are not the endpoints' business: with the Observer API and the
 * metrics bound to every address of the node (consent given), an endpoint still cannot connect
 * to them through the node; the drop is a flow naming the built-in rule, and the node itself
 * and the endpoint's other traffic to the node are untouched. */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Endpoint } from '../../src/api/types.js';
import type { Flow } from '../../src/flow/types.js';
import { eventually, repoRoot, TestNode, waitForLine } from '../harness/node.js';

const tools = path.join(repoRoot, 'test/harness/tools');

describe("the agent's ports, seen from an endpoint", () => {
  let node: TestNode;
  let client: Endpoint;
  let router: string;
  let hubblePort: number;
  let metricsPort: number;

  before(async () => {
    node = await TestNode.create({
      podCidr: '10.234.0.0/24',
      extraAgentArgs: ['--hubble-address', '0.0.0.0:0', '--hubble-disable-tls', '--metrics-address', '0.0.0.0:0', '--metrics-disable-tls'],
    });
    await node.api.setNamespace('default');
    client = await node.api.addEndpoint({ namespace: 'default', name: 'client', labels: ['app=client'] });
    const status = await node.api.status();
    router = status.node.routerIP;
    hubblePort = Number(status.listen.hubble.split(':').at(-1));
    metricsPort = Number(status.listen.metrics.split(':').at(-1));
    assert.ok(hubblePort > 0 && metricsPort > 0, JSON.stringify(status.listen));
  });
  after(async () => node?.cleanup());

  it('answers on every address from the node itself', async () => {
    const r = await node.execNode(['node', path.join(tools, 'probe.mjs'), 'tcp-connect', router, String(metricsPort), '1000']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it("drops an endpoint's connections to the Observer API and the metrics, naming the built-in rule", async () => {
    for (const port of [hubblePort, metricsPort]) {
      const r = await node.exec(client.netns, ['node', path.join(tools, 'probe.mjs'), 'tcp-connect', router, String(port), '1000']);
      assert.notEqual(r.code, 0, `the endpoint reached the agent's port ${port}`);
    }
    const drops = () => node.observeFlows('--from-pod', 'default/client', '--verdict', 'DROPPED');
    let seen: Flow[] = [];
    // A policy denial: a policy verdict (DROPPED) before each drop, as for any denial.
    const types = () => new Set(seen.map((f) => f.event_type?.type));
    assert.ok(await eventually(async () => (seen = await drops()).length >= 4 && types().has(1) && types().has(5)), 'no drop and verdict flows');
    for (const f of seen) {
      assert.equal(f.drop_reason_desc, 'POLICY_DENY');
      assert.deepEqual(f.egress_denied_by?.map((p) => [p.kind, p.name]), [['MembraneBuiltin', 'agent-ports']]);
      assert.equal(f.destination?.identity, 1, 'to the host');
    }
    // SYN retransmissions are dropped too: the set of ports is what counts.
    assert.deepEqual([...new Set(seen.map((f) => f.l4?.TCP?.destination_port))].sort(), [hubblePort, metricsPort].sort());
  });

  it('leaves the endpoint free to reach other services of the node', async () => {
    const server = node.spawnIn(node.netns, ['node', path.join(tools, 'echo-server.mjs'), '7777'], { outsideCgroup: true });
    await waitForLine(server, (l) => l === 'ready');
    assert.ok(await node.probe(client.netns, 'tcp', router, 7777), 'a server of the node on another port');
  });
});
