/* `membrane bpf policy get|ct list|nat list|lb list|metrics`: raw views of the kernel maps. */
import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';
import type { CtRow, LbRow, MetricsRow, NatRow, PolicyEntryRow } from '../api/types.js';
import { parseEndpointRef } from '../endpoint/validate.js';
import { outputOption, type CliContext } from './context.js';
import { parseFormat, print, type Column } from './output.js';

const policyEntryColumns: Column<PolicyEntryRow>[] = [
  { header: 'POLICY', value: (e) => e.policy },
  { header: 'DIRECTION', value: (e) => e.direction },
  { header: 'IDENTITY', value: (e) => e.identity },
  { header: 'LABELS', value: (e) => e.labels },
  { header: 'PORT/PROTO', value: (e) => e.port },
  { header: 'PREFIX', value: (e) => e.prefixLength },
  { header: 'RULE', value: (e) => e.rule },
];

const ctColumns: Column<CtRow>[] = [
  { header: 'PROTO', value: (c) => c.protocol },
  { header: 'SOURCE', value: (c) => c.source },
  { header: 'DESTINATION', value: (c) => c.destination },
  { header: 'ENDPOINTS', value: (c) => c.endpoints.map((e) => `${e.endpoint} ${e.direction.toLowerCase()}`).join(', ') || (c.serviceOf ? `${c.serviceOf} service` : '') },
  { header: 'IDENTITIES', value: (c) => (c.serviceOf ? '' : `${c.sourceIdentity} -> ${c.destinationIdentity}`) },
  { header: 'PACKETS', value: (c) => c.packets },
  { header: 'IDLE', value: (c) => `${c.idleSeconds}s` },
  { header: 'NAT', value: (c) => (c.nat?.backend ? `to backend ${c.nat.backend}` : c.nat?.frontend ? `replies from ${c.nat.frontend}` : '') },
];

const natColumns: Column<NatRow>[] = [
  { header: 'PROTO', value: (n) => n.protocol },
  { header: 'DIRECTION', value: (n) => n.direction },
  { header: 'SOURCE', value: (n) => n.source },
  { header: 'DESTINATION', value: (n) => n.destination },
  { header: 'TRANSLATED', value: (n) => `${n.direction === 'OUT' ? 'source' : 'destination'} ${n.translated}` },
  { header: 'AGE', value: (n) => `${n.ageSeconds}s` },
];

const lbColumns: Column<LbRow>[] = [
  { header: 'SERVICE ID', value: (r) => r.serviceId },
  { header: 'FRONTEND', value: (r) => r.frontend },
  { header: 'SLOTS', value: (r) => r.count },
  { header: 'ALGORITHM', value: (r) => (r.algorithm === 'maglev' ? `maglev (${r.maglevEntries} entries)` : r.algorithm) },
  { header: 'AFFINITY', value: (r) => (r.affinityTimeout ? `${r.affinityTimeout}s, ${r.affinityClients} clients` : 'none') },
  { header: 'BACKENDS (slot order)', value: (r) => (r.backends.length ? r.backends.map((b, i) => `${i + 1} => ${b}`) : ['(none)']) },
];

const metricsColumns: Column<MetricsRow>[] = [
  { header: 'ENDPOINT', value: (m) => m.endpoint },
  { header: 'DIRECTION', value: (m) => m.direction },
  { header: 'REMOTE IDENTITY', value: (m) => m.remoteIdentity },
  { header: 'REASON', value: (m) => m.reason },
  { header: 'PACKETS', value: (m) => m.packets },
  { header: 'BYTES', value: (m) => m.bytes },
];

export function bpfCommand(ctx: CliContext): CommandUnknownOpts {
  const bpf = new Command('bpf').description('raw views of the kernel maps');
  bpf
    .command('policy')
    .description('policy map entries')
    .command('get')
    .argument('<ref>')
    .description('the realized policy map entries of endpoint NS/NAME, with identity labels')
    .addOption(outputOption())
    .action(async (ref, o) => {
      const format = parseFormat(o.output);
      const r = parseEndpointRef(ref);
      const view = await ctx.client().endpointPolicy(r.namespace, r.name);
      if (format !== 'table') return print(view, format, []);
      console.log(
        `Endpoint ${view.endpoint}: ingress ${view.ingressEnforced ? 'enforced' : 'not enforced'}, egress ${view.egressEnforced ? 'enforced' : 'not enforced'}, policy revision ${view.policyRevision}, endpoint revision ${view.endpointRevision}`,
      );
      print(view.entries, format, policyEntryColumns);
    });
  bpf
    .command('ct')
    .description('connection tracking entries')
    .command('list')
    .addOption(outputOption())
    .action(async (o) => print(await ctx.client().listCt(), parseFormat(o.output), ctColumns));
  bpf
    .command('nat')
    .description("BPF masquerading's NAT table: endpoints' connections out of the cluster, both ways")
    .command('list')
    .addOption(outputOption())
    .action(async (o) => print(await ctx.client().listNat(), parseFormat(o.output), natColumns));
  bpf
    .command('lb')
    .description('service load-balancing maps')
    .command('list')
    .addOption(outputOption())
    .action(async (o) => print(await ctx.client().listLb(), parseFormat(o.output), lbColumns));
  bpf
    .command('metrics')
    .description('datapath counters per endpoint, direction, peer identity and outcome')
    .addOption(outputOption())
    .action(async (o) => print(await ctx.client().listMetrics(), parseFormat(o.output), metricsColumns));
  return bpf;
}
