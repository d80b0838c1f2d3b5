/* `membrane endpoint add|update|delete|list|get`: workload endpoints. */
import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';
import type { Endpoint } from '../api/types.js';
import { parseEndpointRef } from '../endpoint/validate.js';
import { UserError } from '../errors.js';
import { collect, outputOption, type CliContext } from './context.js';
import { parseFormat, print, type Column } from './output.js';

/** `[source:]key[=value]` as a test of one label `source:key=value`; a key without a source matches any. */
function parseRequirement(text: string): (label: string) => boolean {
  const eq = text.indexOf('=');
  const keyPart = eq >= 0 ? text.slice(0, eq) : text;
  const value = eq >= 0 ? text.slice(eq + 1) : undefined;
  if (keyPart === '' || /\s/.test(text)) throw new UserError('invalid', `--selector ${JSON.stringify(text)}: write KEY=VALUE or KEY, e.g. app=web`);
  const sourced = keyPart.includes(':');
  return (label) => {
    const at = label.indexOf(':');
    const leq = label.indexOf('=', at);
    const key = label.slice(sourced ? 0 : at + 1, leq >= 0 ? leq : undefined);
    return key === keyPart && (value === undefined || (leq >= 0 ? label.slice(leq + 1) : '') === value);
  };
}

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
  const ep = new Command('endpoint').alias('ep').description('workload endpoints');
  ep.command('add')
    .argument('<ref>')
    .description('create an endpoint NS/NAME: network namespace, veth, address, routes and programs')
    .option('--labels <k=v,...>', 'endpoint labels', collect)
    .option('--ipv4 <address>', 'address from the pod CIDR (default: the next free one)')
    .option('--port <name:port/proto>', 'named container port (repeatable)', collect)
    .option('--netns <name|path>', 'wire an existing network namespace instead of creating one: a name (ip netns), /run/netns/NAME or /proc/PID/ns/net')
    .addOption(outputOption())
    .addHelpText(
      'after',
      `
Examples:
  membrane endpoint add default/web --labels app=web,tier=front --port http:80/TCP
  membrane endpoint add default/db --ipv4 10.244.0.50 --labels app=db
  membrane endpoint add default/ctr --netns /proc/4242/ns/net   # a process's namespace`,
    )
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
    .description('endpoints of every namespace, or of one (-n), selected by labels (--selector)')
    .option('-n, --namespace <ns>', 'only endpoints of this namespace')
    .option('-l, --selector <k=v,...>', 'only endpoints with every one of these labels (k=v, or k for any value; a key without a source matches any source)', collect)
    .addOption(outputOption())
    .action(async (o) => {
      const format = parseFormat(o.output);
      const wanted = (o.selector ?? []).flatMap((s) => s.split(',')).filter((s) => s !== '').map(parseRequirement);
      const endpoints = (await ctx.client().listEndpoints()).filter(
        (e) => (o.namespace === undefined || e.namespace === o.namespace) && wanted.every((r) => e.labels.some((l) => r(l))),
      );
      print(endpoints, format, endpointColumns);
    });
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
