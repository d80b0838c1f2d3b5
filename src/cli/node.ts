/* `membrane node list`: the cluster's nodes as this agent sees them (only itself without a kvstore). */
import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';
import type { ClusterNode } from '../api/types.js';
import { outputOption, type CliContext } from './context.js';
import { parseFormat, print, type Column } from './output.js';

/** "4s ago": how long since the node last put its entry. */
function age(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s ago` : `${Math.round(s / 60)}m ago`;
}

const columns: Column<ClusterNode>[] = [
  { header: 'NAME', value: (n) => n.name },
  { header: 'ADDRESS', value: (n) => n.ip },
  { header: 'POD CIDR', value: (n) => n.podCIDR },
  { header: 'HEALTH', value: (n) => n.health },
  { header: 'LAST SEEN', value: (n) => age(n.heartbeat) },
  { header: 'ENDPOINTS', value: (n) => n.endpoints },
];

export function nodeCommand(ctx: CliContext): CommandUnknownOpts {
  const node = new Command('node').description("the cluster's nodes");
  node
    .command('list')
    .description('every node of the cluster: address, pod CIDR, health, when last heard of, endpoints')
    .addOption(outputOption())
    .action(async (o) => print(await ctx.client().listNodes(), parseFormat(o.output), columns));
  return node;
}
