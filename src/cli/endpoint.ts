/* `membrane endpoint add|update|delete|list|get`: workload endpoints. */
import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';
import type { Endpoint } from '../api/types.js';
import { parseEndpointRef } from '../endpoint/validate.js';
import { collect, outputOption, type CliContext } from './context.js';
import { parseFormat, print, type Column } from './output.js';

const endpointColumns: Column<Endpoint>[] = [
  { header: 'ENDPOINT', value: (e) => e.id },
  { header: 'NAMESPACE', value: (e) => e.namespace },
  { header: 'NAME', value: (e) => e.name },
  { header: 'IDENTITY', value: (e) => e.identity },
  { header: 'IPV4', value: (e) => e.ipv4 },
  { header: 'INTERFACE', value: (e) => e.interface },
  { header: 'NETNS', value: (e) => e.netns },
  { header: 'STATE', value: (e) => (e.stateReason ? `${e.state} (${e.stateReason})` : e.state) },
  { header: 'LABELS', value: (e) => e.identityLabels },
];

export function endpointCommand(ctx: CliContext): CommandUnknownOpts {
  const ep = new Command('endpoint').description('workload endpoints');
  ep.command('add')
    .argument('<ref>')
    .description('create an endpoint NS/NAME: network namespace, veth, address, routes and programs')
    .option('--labels <k=v,...>', 'endpoint labels', collect)
    .option('--ipv4 <address>', 'address from the pod CIDR (default: the next free one)')
    .option('--port <name:port/proto>', 'named container port (repeatable)', collect)
    .option('--netns <name>', 'wire an existing network namespace instead of creating one')
    .addOption(outputOption())
    .action(async (ref, o) => {
      const format = parseFormat(o.output);
      const e = await ctx.client().addEndpoint({ ...parseEndpointRef(ref), labels: o.labels, ipv4: o.ipv4, ports: o.port, netns: o.netns });
      print(e, format, endpointColumns);
    });
  ep.command('update')
    .argument('<ref>')
    .description("replace an endpoint's labels (its identity follows)")
    .requiredOption('--labels <k=v,...>', 'the new labels', collect)
    .addOption(outputOption())
    .action(async (ref, o) => {
      const format = parseFormat(o.output);
      const r = parseEndpointRef(ref);
      print(await ctx.client().updateEndpoint(r.namespace, r.name, o.labels), format, endpointColumns);
    });
  ep.command('delete')
    .argument('<ref>')
    .action(async (ref) => {
      const r = parseEndpointRef(ref);
      await ctx.client().deleteEndpoint(r.namespace, r.name);
      console.log(`endpoint ${ref} deleted`);
    });
  ep.command('list')
    .addOption(outputOption())
    .action(async (o) => print(await ctx.client().listEndpoints(), parseFormat(o.output), endpointColumns));
  ep.command('get')
    .argument('<ref>')
    .addOption(outputOption())
    .action(async (ref, o) => {
      const format = parseFormat(o.output);
      const r = parseEndpointRef(ref);
      print(await ctx.client().getEndpoint(r.namespace, r.name), format, endpointColumns);
    });
  return ep;
}
