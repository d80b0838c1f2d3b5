/* bench/policy: how long a policy change takes to be enforced on a loaded node. With N endpoints
 * (default 1,000) and M policies (default 1,000) in place, one policy on a server endpoint is
 * flipped between "allow the client" and "allow nobody" over and over; each sample is the time
 * from the start of `policy import` (the API request) to a TCP connect from the client that the
 * new policy lets through. The connect comes from a socket made inside the client's namespace
 * (setns), so no process start-up is measured. The packet-rate and per-packet costs of policy
 * are measured by bench/datapath in the same `make bench` run.
 * Usage: node --import tsx bench/policy/run.ts [--endpoints N] [--policies M] [--samples S] [--quick] [--json FILE] */
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { TestNode } from '../../test/harness/node.js';
import { connectFrom } from '../probe.js';
import { percentile, valueLine } from '../stats.js';
import { runBenchmark } from '../main.js';

const { values: args } = parseArgs({
  options: {
    endpoints: { type: 'string', default: '1000' },
    policies: { type: 'string', default: '1000' },
    samples: { type: 'string', default: '100' },
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const ENDPOINTS = args.quick ? 20 : Number(args.endpoints);
const POLICIES = args.quick ? 20 : Number(args.policies);
const SAMPLES = args.quick ? 5 : Number(args.samples);
/** Distinct label values among the filler endpoints: each is an identity, each policy selects one. */
const APPS = Math.max(1, Math.min(200, Math.floor(ENDPOINTS / 5)));
const PORT = 8080;

const serverPolicy = (from: string) => ({
  name: 'server.yaml',
  content: `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: server, namespace: bench}
spec:
  endpointSelector: {matchLabels: {app: server}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: ${from}}}]
    toPorts: [{ports: [{port: "${PORT}", protocol: TCP}]}]
`,
});

/** M policies over the filler endpoints: app=svcK accepts app=svc(K+1) on one port. */
function fillerPolicies(): { name: string; content: string }[] {
  const docs: string[] = [];
  for (let i = 0; i < POLICIES; i++) {
    docs.push(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p${i}, namespace: bench}
spec:
  endpointSelector: {matchLabels: {app: svc${i % APPS}}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: svc${(i + 1) % APPS}}}]
    toPorts: [{ports: [{port: "${8000 + (i % 50)}", protocol: TCP}]}]
`);
  }
  return [{ name: 'fillers.yaml', content: docs.join('---\n') }];
}

async function main(): Promise<void> {
  const node = await TestNode.create({ podCidr: '10.216.0.0/20', extraAgentArgs: ['--log-level', 'warn'] });
  try {
    await node.api.setNamespace('bench');
    const server = await node.api.addEndpoint({ namespace: 'bench', name: 'server', labels: ['app=server'] });
    const client = await node.api.addEndpoint({ namespace: 'bench', name: 'client', labels: ['app=client'] });
    await node.echoServer(server.netns, PORT);
    for (let i = 2; i < ENDPOINTS; i++) {
      await node.api.addEndpoint({ namespace: 'bench', name: `ep${i}`, labels: [`app=svc${i % APPS}`] });
      if (i % 200 === 0) process.stderr.write(`${i}/${ENDPOINTS} endpoints\n`);
    }
    await node.api.importPolicies(fillerPolicies());
    await node.api.importPolicies([serverPolicy('nobody')]);
    const status = await node.api.status();
    process.stderr.write(`${status.counts.endpoints} endpoints, ${(await node.api.listPolicies()).policies.length} policies loaded\n`);
    if (connectFrom(client.netns, server.ipv4, PORT, 100)) throw new Error('the client reaches the server before any allow');

    const total: number[] = [];
    const importOnly: number[] = [];
    let retries = 0;
    // Warm up (code paths, the first partial plans), then let the machine settle: the namespaces
    // an earlier benchmark removed are torn down by the kernel in the background for a while.
    for (let w = 0; w < 5; w++) {
      await node.api.importPolicies([serverPolicy('client')]);
      await node.api.importPolicies([serverPolicy('nobody')]);
    }
    await new Promise((r) => setTimeout(r, args.quick ? 0 : 5000));
    for (let s = 0; s < SAMPLES; s++) {
      const t0 = performance.now();
      await node.api.importPolicies([serverPolicy('client')]);
      const t1 = performance.now();
      while (!connectFrom(client.netns, server.ipv4, PORT)) {
        retries++;
        if (performance.now() - t0 > 5000) throw new Error('the allow never took effect');
      }
      total.push(performance.now() - t0);
      importOnly.push(t1 - t0);
      await node.api.importPolicies([serverPolicy('nobody')]);
      if (connectFrom(client.netns, server.ipv4, PORT, 100)) throw new Error('the withdrawn allow still lets the client through');
    }
    const p = (xs: number[], q: number) => percentile(xs, q);
    const lines = [
      valueLine(
        `policy import → enforced (probe), ${status.counts.endpoints.toLocaleString('en')} endpoints, ${POLICIES.toLocaleString('en')} policies, ms (p50; p99)`,
        p(total, 50).toFixed(1),
        `p99 ${p(total, 99).toFixed(1)} (${Math.min(...total).toFixed(1)}–${Math.max(...total).toFixed(1)})`,
        'p99 ≤ 50 ms',
        p(total, 99) <= 50,
      ),
      valueLine('of which the import request, ms (p50; p99)', p(importOnly, 50).toFixed(1), `p99 ${p(importOnly, 99).toFixed(1)}`, '', undefined),
    ];
    console.log(['| measure | | value | spread | goal | met |', '|---|---|---|---|---|---|', ...lines].join('\n'));
    process.stderr.write(`probe retries after the import returned: ${retries}\n`);
    if (args.json) {
      fs.writeFileSync(args.json, JSON.stringify({ date: new Date().toISOString(), endpoints: status.counts.endpoints, policies: POLICIES, samples: SAMPLES, totalMs: total, importMs: importOnly, retries, lines }, null, 2));
    }
  } finally {
    await node.cleanup();
  }
}

runBenchmark(main);
