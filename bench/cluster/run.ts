/* bench/cluster: the cluster's control plane through a real etcd, measured where it lands — in
 * the kernel maps of another node.
 *  - endpoint added on node A → its address and identity in node B's ipcache map (ms);
 *  - policy imported on node A → the entry it makes in node B's policy map (ms);
 *  - scale: N simulated nodes and M remote endpoints written to etcd by the benchmark (as that
 *    many agents would) → all of them in node B's ipcache map (s), and B's memory per remote
 *    endpoint;
 *  - churn: R ipcache changes per second written to etcd → each one in B's map (p50, p99 ms).
 * B's maps are read directly (the pinned mb_ipcache and mb_policy), so nothing the agent reports
 * about itself is trusted. The benchmark's etcd client runs in the network's namespace.
 * First, on clusters of their own, the datapath between nodes: TCP stream, request/response and
 * connection rate, tunnel mode against a plain kernel VXLAN overlay and native routing against
 * plain kernel routing (./datapath.ts), as ratios measured in the same run.
 * Usage: node --import tsx bench/cluster/run.ts [--nodes 100] [--endpoints 10000] [--rate 1000]
 *        [--seconds 5] [--samples 50] [--datapath-rounds 3] [--datapath-seconds 1]
 *        [--datapath-only] [--quick] [--json FILE] */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { Etcd3 } from 'etcd3';
import { ipcacheKeyFor } from '../../src/datapath/ipcache.js';
import { ipcacheKey, ipcacheValue, policyKey, policyValue, DIRECTION, POLICY_PREFIX } from '../../src/datapath/layouts.js';
import { check } from '../../src/kernel/libbpf.js';
import { libc } from '../../src/kernel/libc.js';
import { intToIp, ipToInt } from '../../src/net/ipv4.js';
import { TestCluster } from '../../test/harness/cluster.js';
import type { TestNode } from '../../test/harness/node.js';
import { formatNumber, percentile, ratioLine, TABLE_HEADER, valueLine } from '../stats.js';
import { runBenchmark } from '../main.js';
import { clusterDatapathRows } from './datapath.js';

const { values: args } = parseArgs({
  options: {
    nodes: { type: 'string', default: '100' },
    endpoints: { type: 'string', default: '10000' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '5' },
    samples: { type: 'string', default: '50' },
    'datapath-rounds': { type: 'string', default: '3' },
    'datapath-seconds': { type: 'string', default: '1' },
    'datapath-only': { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const SIM_NODES = args.quick ? 5 : Number(args.nodes);
const SIM_ENDPOINTS = args.quick ? 200 : Number(args.endpoints);
const RATE = args.quick ? 100 : Number(args.rate);
const SECONDS = args.quick ? 1 : Number(args.seconds);
const SAMPLES = args.quick ? 5 : Number(args.samples);
// Many short pairs rather than a few long ones: the machine's other work comes and goes within
// seconds, and a ratio's median over many pairs sees it on both sides alike.
const DATAPATH = args.quick
  ? { rounds: 1, seconds: 1, pairs: 1 }
  : { rounds: Number(args['datapath-rounds']), seconds: Number(args['datapath-seconds']), pairs: 3 };
const GOALS = { addP50: 50, addP99: 250, policyP99: 100, syncS: 2, churnP99: 100, bytesPerRemote: 1024 };

const CLONE_NEWNET = 0x40000000;
const ms = () => performance.now();

/** Polls `done` every millisecond until it holds (or `timeoutMs` passes); resolves with when. */
async function until(done: () => boolean, timeoutMs: number): Promise<number> {
  const deadline = ms() + timeoutMs;
  for (;;) {
    if (done()) return ms();
    if (ms() > deadline) throw new Error(`not seen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

function rssBytes(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
}

async function main(): Promise<void> {
  // The datapath first, each mode on a cluster of its own (removed before the next), so the
  // control plane's clusters and their 10,000 remote endpoints are not around while it runs.
  const rows = await clusterDatapathRows(DATAPATH);
  if (args['datapath-only']) {
    console.log([...TABLE_HEADER, ...rows.map(ratioLine)].join('\n'));
    if (args.json) fs.writeFileSync(args.json, JSON.stringify({ datapath: DATAPATH, rows, lines: [] }, null, 2));
    return;
  }
  // --expose-gc: B's memory is measured after full collections.
  process.env.MEMBRANE_NODE_FLAGS = '--expose-gc';
  const cluster = await TestCluster.create({ nodes: 2 });
  let etcd: Etcd3 | undefined;
  try {
    const [a, b] = cluster.nodes as [TestNode, TestNode];
    await a.api.setNamespace('bench');
    const ipcacheB = b.pinnedMap('mb_ipcache', ipcacheKey, ipcacheValue);
    const policyB = b.pinnedMap('mb_policy', policyKey, policyValue);

    // 1. endpoint added on A → in B's ipcache
    const addMs: number[] = [];
    const localAddMs: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const t0 = ms();
      const ep = await a.api.addEndpoint({ namespace: 'bench', name: `e${i}`, labels: [`app=e${i % 5}`] });
      localAddMs.push(ms() - t0);
      const key = ipcacheKeyFor(`${ep.ipv4}/32`);
      addMs.push((await until(() => ipcacheB.get(key)?.identity === ep.identity, 5000)) - t0);
    }
    process.stderr.write(`endpoint add on A → B's ipcache: p50 ${percentile(addMs, 50).toFixed(1)} ms\n`);

    // 2. policy imported on A → B's policy map (a new port each time: one new entry to wait for)
    const server = await b.api.addEndpoint({ namespace: 'bench', name: 'server', labels: ['app=server'] });
    const client = await a.api.addEndpoint({ namespace: 'bench', name: 'client', labels: ['app=client'] });
    const policyMs: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const port = 20000 + i;
      const yaml = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: bench}
spec:
  endpointSelector: {matchLabels: {app: server}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "${port}", protocol: TCP}]}]
`;
      const key = { prefixlen: POLICY_PREFIX.FULL, ep_id: server.id, identity: client.identity, direction: DIRECTION.INGRESS, protocol: 6, dport: port };
      const t0 = ms();
      await a.api.importPolicies([{ name: 'p.yaml', content: yaml }]);
      policyMs.push((await until(() => policyB.get(key) !== undefined, 5000)) - t0);
    }
    process.stderr.write(`policy import on A → B's policy map: p99 ${percentile(policyMs, 99).toFixed(1)} ms\n`);

    // 3. scale: simulated nodes and their endpoints, written to etcd as their agents would
    const pid = b.agent!.pid!;
    const heapBefore = (await b.api.collectGarbage()).memory.heapUsedBytes;
    const rssBefore = rssBytes(pid);
    const netns = fs.openSync(`/run/netns/${cluster.net}`, 'r');
    check('entering the network namespace', libc.setns(netns, CLONE_NEWNET)); // this thread's sockets reach etcd
    fs.closeSync(netns);
    etcd = new Etcd3({ hosts: cluster.etcd.url });
    const perNode = Math.ceil(SIM_ENDPOINTS / SIM_NODES);
    const nodeIp = (n: number) => `172.30.${1 + Math.floor(n / 250)}.${1 + (n % 250)}`;
    const podBase = (n: number) => ipToInt('10.100.0.0') + n * 256;
    const endpoints: string[] = [];
    for (let n = 0; n < SIM_NODES; n++) for (let e = 0; e < perNode && endpoints.length < SIM_ENDPOINTS; e++) endpoints.push(intToIp(podBase(n) + 2 + e));
    const identity = (i: number, gen: number) => 300 + ((i + gen) % 50);
    const entry = (ip: string, i: number, gen: number) =>
      JSON.stringify({ ip, identity: identity(i, gen), node: `sim-${Math.floor(i / perNode)}`, namespace: 'sim', name: `pod-${i}`, labels: [`k8s:app=sim-${i % 50}`, 'k8s:io.kubernetes.pod.namespace=sim'] });
    const t0 = ms();
    for (let n = 0; n < SIM_NODES; n++) {
      const node = { name: `sim-${n}`, ip: nodeIp(n), podCIDR: `${intToIp(podBase(n))}/24`, labels: {}, health: 'ok', endpoints: perNode, heartbeat: new Date().toISOString(), version: 'sim' };
      await etcd.put(`membrane/state/nodes/v1/default/sim-${n}`).value(JSON.stringify(node));
    }
    for (let i = 0; i < endpoints.length; i += 128) {
      const batch = endpoints.slice(i, i + 128);
      await etcd.if('membrane/', 'Create', '>', -1).then(...batch.map((ip, j) => etcd!.put(`membrane/state/ip/v1/default/${ip}`).value(entry(ip, i + j, 0)))).commit();
    }
    const written = ms();
    const last = endpoints.map((ip) => ipcacheKeyFor(`${ip}/32`));
    const synced = await until(() => last.every((k, i) => ipcacheB.get(k)?.identity === identity(i, 0)), 60_000);
    const syncS = (synced - t0) / 1000;
    process.stderr.write(`scale: ${SIM_NODES} nodes, ${endpoints.length} endpoints written in ${((written - t0) / 1000).toFixed(2)} s, in B's map after ${syncS.toFixed(2)} s\n`);
    // The agent's own memory (V8 heap after full collections); RSS also counts heap the
    // collector has freed but not handed back, shown for reference.
    const bytesPerRemote = ((await b.api.collectGarbage()).memory.heapUsedBytes - heapBefore) / endpoints.length;
    const rssPerRemote = (rssBytes(pid) - rssBefore) / endpoints.length;
    const keptUp = (synced - written) / 1000;

    // 4. churn: RATE changes per second, each one timed into B's map
    const churnMs: number[] = [];
    const pending = new Map<number, { t0: number; want: number }>();
    let stop = false;
    const watcher = (async () => {
      while (!stop || pending.size > 0) {
        for (const [i, p] of pending) {
          if (ipcacheB.get(last[i]!)?.identity === p.want) {
            churnMs.push(ms() - p.t0);
            pending.delete(i);
          }
        }
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    const total = RATE * SECONDS;
    const start = ms();
    for (let k = 0; k < total; k++) {
      const due = start + (k * 1000) / RATE;
      if (due > ms()) await new Promise((r) => setTimeout(r, due - ms()));
      const i = (k * 7919) % endpoints.length; // spread over the endpoints, none twice in flight
      const gen = 1 + Math.floor(k / endpoints.length);
      const t = ms();
      // Not awaited: the writes go out at the rate, as independent agents' would.
      etcd
        .put(`membrane/state/ip/v1/default/${endpoints[i]}`)
        .value(entry(endpoints[i]!, i, gen))
        .exec()
        .catch((err: Error) => process.stderr.write(`write failed: ${err.message}\n`));
      // One change in ten is timed: watching every one would make this process the bottleneck.
      if (k % 10 === 0) pending.set(i, { t0: t, want: identity(i, gen) });
    }
    const achieved = total / ((ms() - start) / 1000);
    await new Promise((r) => setTimeout(r, 2000));
    stop = true;
    await Promise.race([watcher, new Promise((r) => setTimeout(r, 10_000))]);
    const unseen = pending.size;
    process.stderr.write(`churn: ${total} changes at ${achieved.toFixed(0)}/s, p99 ${percentile(churnMs, 99).toFixed(1)} ms, ${unseen} unseen\n`);

    // A node joining: from its agent's start to every remote endpoint in its map (ready included).
    const j0 = ms();
    const joiner = await cluster.addNode();
    const readyS = (ms() - j0) / 1000;
    const ipcacheC = joiner.pinnedMap('mb_ipcache', ipcacheKey, ipcacheValue);
    const joinS = ((await until(() => last.every((k) => ipcacheC.get(k) !== undefined), 60_000)) - j0) / 1000;
    process.stderr.write(`join: all ${endpoints.length} remote endpoints in the new node's map ${joinS.toFixed(2)} s after its start\n`);

    const f = formatNumber;
    const count = (n: number) => n.toLocaleString('en');
    const lines = [
      valueLine('endpoint added on node A → in node B\'s ipcache map, ms (p50; p99; the add on A alone)', f(percentile(addMs, 50)), `p99 ${f(percentile(addMs, 99))}; add ${f(percentile(localAddMs, 50))}`, `p50 ≤ ${GOALS.addP50}, p99 ≤ ${GOALS.addP99}`, percentile(addMs, 50) <= GOALS.addP50 && percentile(addMs, 99) <= GOALS.addP99),
      valueLine('policy imported on node A → entry in node B\'s policy map, ms (p99; p50)', f(percentile(policyMs, 99)), `p50 ${f(percentile(policyMs, 50))}`, `p99 ≤ ${GOALS.policyP99}`, percentile(policyMs, 99) <= GOALS.policyP99),
      valueLine(`${SIM_NODES} nodes and ${count(endpoints.length)} remote endpoints written to etcd → all in node B's map, s after the last write`, f(keptUp), `writing took ${f((written - t0) / 1000)} s, all in the map ${f(syncS)} s after the first`, `≤ ${GOALS.syncS} s`, keptUp <= GOALS.syncS),
      valueLine(`a node joining a cluster of ${count(endpoints.length)} remote endpoints: agent start → all in its map, s`, f(joinS), `start → API ready ${f(readyS)} s`, `≤ ${GOALS.syncS} s`, joinS <= GOALS.syncS),
      valueLine(`ipcache changes in etcd → node B's map at ${f(achieved)}/s, ms (p99; p50)`, f(percentile(churnMs, 99)), `p50 ${f(percentile(churnMs, 50))}; ${unseen} of ${count(churnMs.length + unseen)} timed unseen`, `p99 ≤ ${GOALS.churnP99}, all seen`, percentile(churnMs, 99) <= GOALS.churnP99 && unseen === 0 && achieved >= RATE * 0.9),
      valueLine('agent memory per remote endpoint, bytes (heap after GC)', count(Math.round(bytesPerRemote)), `RSS ${count(Math.round(rssPerRemote))}; ${count(endpoints.length)} endpoints`, `≤ ${GOALS.bytesPerRemote}`, bytesPerRemote <= GOALS.bytesPerRemote),
    ];
    console.log([...TABLE_HEADER, ...rows.map(ratioLine), ...lines].join('\n'));
    const result = { datapath: DATAPATH, rows, addMs, policyMs, syncS, keptUp, joinS, readyS, churn: { total, achieved, unseen, p50: percentile(churnMs, 50), p99: percentile(churnMs, 99) }, bytesPerRemote, lines };
    if (args.json) fs.writeFileSync(args.json, JSON.stringify(result, null, 2));
  } finally {
    etcd?.close();
    process.stderr.write('cleaning up...\n');
    await cluster.cleanup();
  }
}

runBenchmark(main);
