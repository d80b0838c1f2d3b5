/* `membrane status`: agent health, kernel features, counts and map pressure. */
import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';
import type { Status } from '../api/types.js';
import { outputOption, type CliContext } from './context.js';
import { parseFormat, print, renderKeyValues } from './output.js';

function routingText(r: Status['routing']): string {
  const between = r.mode ? `${r.mode} between nodes (host routing ${r.hostRouting})` : 'one node';
  return `${between}; out of the cluster ${r.masquerade ? `masqueraded to ${r.masquerade.address} in eBPF (on ${r.masquerade.device})` : 'not masqueraded'}`;
}

function kvstoreText(k: Status['kvstore']): string {
  if (k.backend === 'embedded') return 'embedded (this node only)';
  const state = k.connected ? `connected, last contact ${k.lastContact}` : `UNREACHABLE since ${k.outageSince} (the datapath keeps its last state)`;
  return `etcd ${k.endpoints.join(',')}: ${state}, lease ${k.leaseId} (TTL ${k.leaseTtlSeconds}s)`;
}

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

export function statusCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command('status')
    .description('agent health, kernel features, counts and map pressure')
    .addOption(outputOption())
    .action(async (o) => {
      const format = parseFormat(o.output);
      const s = await ctx.client().status();
      if (format !== 'table') return print(s, format, []);
      const features = Object.entries(s.kernel.features)
        .map(([k, v]) => `${k}=${v ? 'yes' : 'NO'}`)
        .join(' ');
      console.log(
        renderKeyValues([
          ['Health', s.health],
          ['Version', s.version],
          ['Node', `${s.node.name}${s.node.ip ? ` at ${s.node.ip}` : ''} (pod CIDR ${s.node.podCIDR}, router ${s.node.routerIP})`],
          ['KVStore', kvstoreText(s.kvstore)],
          ['Cluster', `${s.cluster.healthy}/${s.cluster.nodes} nodes healthy`],
          ['Routing', routingText(s.routing)],
          ['Uptime', `${s.uptimeSeconds}s`],
          ['Kernel', `${s.kernel.release}: ${features}`],
          ['Endpoints', `${s.counts.endpoints} (${s.counts.endpointsNotReady} not ready)`],
          ['Identities', `${s.counts.identities} allocated (range 256-65535)`],
          ['Namespaces', String(s.counts.namespaces)],
          ['IPAM', `${s.ipam.allocated}/${s.ipam.capacity} addresses allocated`],
          ['Interface pool', `${s.interfacePool.ready}/${s.interfacePool.size} ready`],
          ['Policy', `enforcement ${s.policy.enforcement}${s.policy.auditMode ? ', audit mode (drops reported, not enforced)' : ''}, revision ${s.policy.revision}`],
          ['Observer', [s.listen.hubble ? `${s.listen.hubble} (${s.listen.hubbleTls ?? 'plaintext'})` : 'no TCP listener', s.listen.hubbleSocket].filter(Boolean).join(', ')],
          ...(s.listen.hubblePeer ? [['Observer for peers', `${s.listen.hubblePeer} (mtls)`] as [string, string]] : []),
          ['Metrics', s.listen.metrics ? `${s.listen.metrics}/metrics (${s.listen.metricsTls ?? 'plaintext'})` : 'off'],
          ['Flows', `${s.flows.num_flows}/${s.flows.max_flows} in the ring, ${s.flows.seen_flows} seen, ${s.flows.lost_events} lost, ${s.flows.followers} following${s.flows.peerFollowers !== undefined ? ` (and ${s.flows.peerFollowers} other nodes' relays)` : ''} (aggregation ${s.flows.aggregation})`],
          ['Memory', `RSS ${mib(s.memory.rssBytes)}, heap ${mib(s.memory.heapUsedBytes)} used of ${mib(s.memory.heapTotalBytes)}`],
          ['Last sync', `${s.lastSync.reason}: ${s.lastSync.written} written, ${s.lastSync.deleted} deleted, ${s.lastSync.unchanged} unchanged`],
          ...s.maps.map((m): [string, string] => [`Map ${m.map}`, `${m.entries}/${m.maxEntries} (${(m.pressure * 100).toFixed(2)}%)`]),
        ]),
      );
    });
}
