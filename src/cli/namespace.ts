/* `membrane namespace set|list|delete`: namespaces and their labels. */
import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';
import type { Namespace } from '../api/types.js';
import { collect, outputOption, type CliContext } from './context.js';
import { parseFormat, print, type Column } from './output.js';

const namespaceColumns: Column<Namespace>[] = [
  { header: 'NAME', value: (n) => n.name },
  { header: 'ENDPOINTS', value: (n) => n.endpoints },
  { header: 'LABELS', value: (n) => Object.entries(n.labels).map(([k, v]) => `${k}=${v}`) },
];

export function namespaceCommand(ctx: CliContext): CommandUnknownOpts {
  const ns = new Command('namespace').alias('ns').description('namespaces and their labels');
  ns.command('set')
    .argument('<name>')
    .description('create or replace a namespace and its labels')
    .option('--labels <k=v,...>', 'namespace labels', collect)
    .addOption(outputOption())
    .action(async (name, o) => print(await ctx.client().setNamespace(name, o.labels ?? []), parseFormat(o.output), namespaceColumns));
  ns.command('list')
    .addOption(outputOption())
    .action(async (o) => print(await ctx.client().listNamespaces(), parseFormat(o.output), namespaceColumns));
  ns.command('delete')
    .argument('<name>')
    .description('delete an empty namespace')
    .action(async (name) => {
      await ctx.client().deleteNamespace(name);
      console.log(`namespace ${name} deleted`);
    });
  return ns;
}
