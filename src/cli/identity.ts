/* `membrane identity list` and `membrane ipcache list`: identities, and which addresses carry them. */
import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';
import type { Identity, IpcacheRow } from '../api/types.js';
import { outputOption, type CliContext } from './context.js';
import { parseFormat, print, type Column } from './output.js';

const identityColumns: Column<Identity>[] = [
  { header: 'ID', value: (i) => i.id },
  { header: 'ENDPOINTS', value: (i) => (i.reserved ? '-' : i.endpoints) },
  { header: 'LABELS', value: (i) => i.labels },
];

const ipcacheColumns: Column<IpcacheRow>[] = [
  { header: 'PREFIX', value: (r) => r.prefix },
  { header: 'IDENTITY', value: (r) => r.identity },
  { header: 'TUNNEL ENDPOINT', value: (r) => (r.tunnelEndpoint && r.tunnelEndpoint !== '0.0.0.0' ? r.tunnelEndpoint : '-') },
];

export function identityCommand(ctx: CliContext): CommandUnknownOpts {
  const identity = new Command('identity').description('security identities');
  identity
    .command('list')
    .addOption(outputOption())
    .action(async (o) => print(await ctx.client().listIdentities(), parseFormat(o.output), identityColumns));
  return identity;
}

export function ipcacheCommand(ctx: CliContext): CommandUnknownOpts {
  const ipcache = new Command('ipcache').description('IP/prefix to identity, as realized in the kernel map');
  ipcache
    .command('list')
    .addOption(outputOption())
    .action(async (o) => print(await ctx.client().listIpcache(), parseFormat(o.output), ipcacheColumns));
  return ipcache;
}
