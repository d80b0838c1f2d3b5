/* `membrane service add|update|delete|list|get`: virtual IPs load-balanced in the kernel. */
import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';
import type { ServiceRequest, ServiceView } from '../api/types.js';
import { UserError } from '../errors.js';
import { collect, outputOption, type CliContext } from './context.js';
import { parseFormat, print, type Column } from './output.js';

const serviceColumns: Column<ServiceView>[] = [
  { header: 'ID', value: (s) => s.id },
  { header: 'NAME', value: (s) => s.name },
  { header: 'FRONTEND', value: (s) => `${s.frontend.ip}:${s.frontend.port}/${s.frontend.protocol}` },
  { header: 'ALGORITHM', value: (s) => s.algorithm },
  { header: 'AFFINITY', value: (s) => (s.affinity ? `client-ip (${s.affinity.timeoutSeconds}s)` : 'none') },
  {
    header: 'BACKENDS',
    value: (s) =>
      s.activeBackends.length
        ? s.activeBackends.map((b, i) => `${i + 1} => ${b.ip}:${b.port}${b.weight > 1 ? ` (weight ${b.weight})` : ''}${b.endpoint ? ` (${b.endpoint})` : ''}`)
        : ['(none: connections are refused)'],
  },
];

/** `add` and `update` take the same flags: the whole service. */
function serviceVerb(name: 'add' | 'update', description: string) {
  return new Command(name)
    .argument('<name>')
    .description(description)
    .requiredOption('--frontend <vip:port/proto>', 'virtual address, e.g. 10.96.0.10:80/TCP')
    .option('--backend <ip:port[,weight]>', 'a backend (repeatable)', collect)
    .option('--selector <k=v,...>', 'select backends by endpoint labels, following endpoint churn', collect)
    .option('--target-port <port>', 'port on selected endpoints (default: the frontend port)')
    .option('--algorithm <name>', 'backend selection: random, or maglev (consistent hashing: a flow keeps its backend)', 'random')
    .option('--affinity <kind>', 'session affinity: client-ip (a client keeps its backend), or none', 'none')
    .option('--affinity-timeout <seconds>', 'how long an idle client keeps its backend (default 10800)')
    .addOption(outputOption())
    .addHelpText(
      'after',
      `
Examples:
  membrane service ${name} web --frontend 10.96.0.10:80/TCP --selector app=web --target-port 8080
  membrane service ${name} db --frontend 10.96.0.20:5432/TCP --backend 10.244.0.50:5432 --backend 10.244.0.51:5432,2
  membrane service ${name} api --frontend 10.96.0.30:443/TCP --selector app=api --algorithm maglev --affinity client-ip`,
    );
}

type ServiceFlags = ReturnType<ReturnType<typeof serviceVerb>['opts']>;

/** A flag's value as a number, or one line saying it is not one. */
function numberFlag(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) throw new UserError('invalid', `${flag} ${JSON.stringify(text)} is not a number`);
  return n;
}

function serviceRequest(name: string, o: ServiceFlags): ServiceRequest {
  return {
    name,
    frontend: o.frontend,
    backends: o.backend,
    selector: o.selector,
    targetPort: numberFlag(o.targetPort, '--target-port'),
    algorithm: o.algorithm,
    affinity: o.affinityTimeout !== undefined && o.affinity === 'none' ? 'client-ip' : o.affinity,
    affinityTimeout: numberFlag(o.affinityTimeout, '--affinity-timeout'),
  };
}

export function serviceCommand(ctx: CliContext): CommandUnknownOpts {
  const svc = new Command('service').description('services: a virtual IP load-balanced over backends in the kernel');
  svc.addCommand(
    serviceVerb('add', 'create a service').action(async (name, o) => print(await ctx.client().addService(serviceRequest(name, o)), parseFormat(o.output), serviceColumns)),
  );
  svc.addCommand(
    serviceVerb('update', 'replace a service').action(async (name, o) => print(await ctx.client().updateService(serviceRequest(name, o)), parseFormat(o.output), serviceColumns)),
  );
  svc.command('delete')
    .argument('<name>')
    .action(async (name) => {
      await ctx.client().deleteService(name);
      console.log(`service ${name} deleted`);
    });
  svc.command('list')
    .addOption(outputOption())
    .action(async (o) => print(await ctx.client().listServices(), parseFormat(o.output), serviceColumns));
  svc.command('get')
    .argument('<name>')
    .addOption(outputOption())
    .action(async (name, o) => print(await ctx.client().getService(name), parseFormat(o.output), serviceColumns));
  return svc;
}
