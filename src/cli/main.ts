/* The `membrane` command: `membrane <noun> <verb>`, talking to the agent over its unix socket. */
import { Command, Option } from 'commander';
import type { LbRow, ServiceView } from '../api/types.js';
import { MAGLEV_DEFAULT_SIZE, MAGLEV_SIZES } from '../service/maglev.js';
import { AgentClient, DEFAULT_SOCKET, streamFlows } from '../api/client.js';
import { formatCompact, formatDict, formatTable } from '../flow/printer.js';
import type { Flow } from '../flow/types.js';
import { buildRequest, registerObserveOptions, type ObserveFlags, type ObserveOutputFormat } from './observe-flags.js';
import type {
  CtRow,
  Endpoint,
  Identity,
  IpcacheRow,
  MetricsRow,
  Namespace,
  PolicyEntryRow,
  PolicyFile,
  PolicySummary,
  SelectorRow,
} from '../api/types.js';
import { AgentUnreachable, ApiError, StartupError, UserError } from '../errors.js';
import type { TlsFiles } from '../util/listen.js';
import { parseEndpointRef } from '../endpoint/validate.js';
import { parseFormat, print, renderKeyValues, type Column } from './output.js';

const program = new Command('membrane')
  .description('Connect, secure and observe Linux workloads with eBPF')
  .option('--socket <path>', 'agent API socket (env MEMBRANE_SOCKET)')
  .showHelpAfterError('(run with --help for usage)');

function client(): AgentClient {
  const opts = program.opts<{ socket?: string }>();
  return new AgentClient(opts.socket ?? process.env.MEMBRANE_SOCKET ?? DEFAULT_SOCKET);
}

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;
const outputOption = () => new Option('-o, --output <format>', 'table, json or yaml').default('table');
const collect = (v: string, prev: string[] = []) => [...prev, v];
/** A comma-separated list that may also be repeated. */
const collectList = (v: string, prev: string[] = []) => [...prev, ...v.split(',').filter((s) => s !== '')];

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

// ---- agent ----
program
  .command('agent')
  .description('run the agent in the foreground; the current network namespace plays the node')
  .requiredOption('--node-name <name>', 'name of this node')
  .requiredOption('--pod-cidr <cidr>', 'IPv4 CIDR that endpoint addresses come from, e.g. 10.244.0.0/24')
  .option('--state-dir <dir>', 'where desired state is persisted', '/var/lib/membrane')
  .option('--bpffs-dir <dir>', 'bpffs directory for pinned maps and links', '/sys/fs/bpf/membrane')
  .option('--cluster-name <name>', 'cluster name (label io.cilium.k8s.policy.cluster)', 'default')
  .option('--bpf-dir <dir>', 'directory holding the compiled BPF objects')
  .option('--log-level <level>', 'debug, info, warn or error', 'info')
  .addOption(
    new Option('--enforcement <mode>', 'policy enforcement: default (once a rule selects an endpoint), always, never')
      .choices(['default', 'always', 'never'])
      .default('default'),
  )
  .addOption(new Option('--policy-enforcement <mode>', 'the same as --enforcement (Cilium\'s name)').choices(['default', 'always', 'never']))
  .option('--policy-map-max <n>', 'entries of the policy map, all endpoints together', '1048576')
  .option('--interface-pool <n>', 'veth pairs kept ready with the programs attached, so adding an endpoint skips the attach (0 disables)', '2')
  .option('--no-allow-localhost', 'judge traffic from the node itself by policy too (by default the node always reaches its endpoints)')
  .option('--maglev-table-size <prime>', `entries of each Maglev table (one of ${MAGLEV_SIZES.join(', ')})`, String(MAGLEV_DEFAULT_SIZE))
  .option('--cgroup-root <dir>', 'cgroup v2 directory whose processes get socket-level service translation (default: the cgroup2 mount)')
  .option('--no-fast-path', "route endpoint-to-endpoint traffic through the node's stack instead of bpf_redirect_peer")
  .option('--policy-audit-mode', 'report what policy would drop (flows with verdict AUDIT) but let it through')
  .option('--flow-buffer-capacity <n>', 'flows kept in memory for observe (Hubble ring size)', '4095')
  .addOption(
    new Option('--monitor-aggregation <level>', 'datapath trace events: none (every packet), low, medium (per connection and TCP flag change), maximum')
      .choices(['none', 'low', 'medium', 'maximum'])
      .default('medium'),
  )
  .option('--hubble-address <host:port>', "Observer gRPC API on TCP ('' disables)", '127.0.0.1:4245')
  .option('--hubble-socket <path>', "Observer gRPC API on a unix socket ('' disables; default: hubble.sock next to the agent socket)")
  .option('--metrics-address <host:port>', "Prometheus /metrics ('' disables)", '127.0.0.1:9965')
  .option('--hubble-tls-cert-file <path>', 'PEM certificate (chain) for TLS on --hubble-address; needs --hubble-tls-key-file')
  .option('--hubble-tls-key-file <path>', 'PEM private key of --hubble-tls-cert-file')
  .option('--hubble-tls-client-ca-files <paths>', 'PEM CA files, comma-separated or repeated: clients must present a certificate one of them signed (mutual TLS)', collectList)
  .option('--hubble-disable-tls', 'accept plaintext gRPC on a non-loopback --hubble-address (anyone who reaches it reads every flow)')
  .option('--metrics-tls-cert-file <path>', 'PEM certificate (chain): serve /metrics over HTTPS; needs --metrics-tls-key-file')
  .option('--metrics-tls-key-file <path>', 'PEM private key of --metrics-tls-cert-file')
  .option('--metrics-tls-client-ca-files <paths>', 'PEM CA files, comma-separated or repeated: scrapers must present a certificate one of them signed (mutual TLS)', collectList)
  .option('--metrics-disable-tls', 'accept plaintext /metrics on a non-loopback --metrics-address')
  .action(async (o: Record<string, string>) => {
    const { runAgent, DEFAULT_BPF_OBJECT_DIR } = await import('../agent.js');
    const { dirname, join } = await import('node:path');
    const socket = program.opts<{ socket?: string }>().socket ?? process.env.MEMBRANE_SOCKET ?? DEFAULT_SOCKET;
    const capacity = wholeNumber(o.flowBufferCapacity!, '--flow-buffer-capacity', 1, 1_000_000);
    const agent = await runAgent({
      nodeName: o.nodeName!,
      podCidr: o.podCidr!,
      stateDir: o.stateDir!,
      bpffsDir: o.bpffsDir!,
      socket,
      cluster: o.clusterName!,
      bpfObjectDir: o.bpfDir ?? DEFAULT_BPF_OBJECT_DIR,
      logLevel: o.logLevel!,
      enforcement: (o.policyEnforcement ?? o.enforcement) as 'default' | 'always' | 'never',
      policyMapMax: wholeNumber(o.policyMapMax!, '--policy-map-max', 1024, 16_777_216),
      interfacePool: wholeNumber(o.interfacePool!, '--interface-pool', 0, 64),
      allowLocalhost: (o as unknown as { allowLocalhost: boolean }).allowLocalhost,
      auditMode: (o as unknown as { policyAuditMode?: boolean }).policyAuditMode ?? false,
      fastPath: (o as unknown as { fastPath: boolean }).fastPath,
      cgroupRoot: o.cgroupRoot ?? (await cgroup2Mount()),
      maglevSize: maglevSize(o.maglevTableSize!),
      flowCapacity: capacity,
      aggregation: o.monitorAggregation as 'none' | 'low' | 'medium' | 'maximum',
      hubbleAddress: o.hubbleAddress!,
      hubbleSocket: o.hubbleSocket ?? join(dirname(socket), 'hubble.sock'),
      metricsAddress: o.metricsAddress!,
      hubbleTls: tlsFiles(o, 'hubble'),
      hubbleDisableTls: (o as unknown as { hubbleDisableTls?: boolean }).hubbleDisableTls ?? false,
      metricsTls: tlsFiles(o, 'metrics'),
      metricsDisableTls: (o as unknown as { metricsDisableTls?: boolean }).metricsDisableTls ?? false,
    });
    const shutdown = () => void agent.stop().then(() => process.exit(0));
    process.once('SIGTERM', shutdown);
    process.once('SIGINT', shutdown);
  });

/** --<name>-tls-cert-file, --<name>-tls-key-file and --<name>-tls-client-ca-files as agent options. */
function tlsFiles(o: Record<string, unknown>, name: 'hubble' | 'metrics'): TlsFiles {
  const cert = o[`${name}TlsCertFile`];
  const key = o[`${name}TlsKeyFile`];
  const cas = o[`${name}TlsClientCaFiles`];
  return {
    ...(typeof cert === 'string' ? { certFile: cert } : {}),
    ...(typeof key === 'string' ? { keyFile: key } : {}),
    clientCaFiles: Array.isArray(cas) ? (cas as string[]) : [],
  };
}

function wholeNumber(text: string, flag: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new UserError('invalid', `${flag} ${text}: give a whole number from ${min} to ${max}`);
  return n;
}

function maglevSize(text: string): number {
  const n = Number(text);
  if (!MAGLEV_SIZES.includes(n)) throw new UserError('invalid', `--maglev-table-size ${text}: use one of the primes ${MAGLEV_SIZES.join(', ')}`);
  return n;
}

/** Where cgroup v2 is mounted (/sys/fs/cgroup on unified systems, /sys/fs/cgroup/unified on hybrid ones). */
async function cgroup2Mount(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const line = (await readFile('/proc/mounts', 'utf8')).split('\n').find((l) => l.split(' ')[2] === 'cgroup2');
  if (!line) throw new UserError('invalid', 'no cgroup2 filesystem is mounted: mount one (mount -t cgroup2 none /sys/fs/cgroup/unified) or pass --cgroup-root');
  return line.split(' ')[1]!;
}

// ---- service ----
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
const svc = program.command('service').description('services: a virtual IP load-balanced over backends in the kernel');
const serviceOptions = (cmd: Command) =>
  cmd
    .requiredOption('--frontend <vip:port/proto>', 'virtual address, e.g. 10.96.0.10:80/TCP')
    .option('--backend <ip:port[,weight]>', 'a backend (repeatable)', collect)
    .option('--selector <k=v,...>', 'select backends by endpoint labels, following endpoint churn', collect)
    .option('--target-port <port>', 'port on selected endpoints (default: the frontend port)')
    .option('--algorithm <name>', 'backend selection: random, or maglev (consistent hashing: a flow keeps its backend)', 'random')
    .option('--affinity <kind>', 'session affinity: client-ip (a client keeps its backend), or none', 'none')
    .option('--affinity-timeout <seconds>', 'how long an idle client keeps its backend (default 10800)')
    .addOption(outputOption());
type ServiceFlags = {
  frontend: string;
  backend?: string[];
  selector?: string[];
  targetPort?: string;
  algorithm?: string;
  affinity?: string;
  affinityTimeout?: string;
  output: string;
};
const serviceRequest = (name: string, o: ServiceFlags) => ({
  name,
  frontend: o.frontend,
  backends: o.backend,
  selector: o.selector,
  targetPort: o.targetPort === undefined ? undefined : Number(o.targetPort),
  algorithm: o.algorithm,
  affinity: o.affinityTimeout !== undefined && o.affinity === 'none' ? 'client-ip' : o.affinity,
  affinityTimeout: o.affinityTimeout === undefined ? undefined : Number(o.affinityTimeout),
});
serviceOptions(svc.command('add <name>').description('create a service')).action(async (name: string, o: ServiceFlags) => {
  const format = parseFormat(o.output);
  print(await client().addService(serviceRequest(name, o)), format, serviceColumns);
});
serviceOptions(svc.command('update <name>').description('replace a service')).action(async (name: string, o: ServiceFlags) => {
  const format = parseFormat(o.output);
  print(await client().updateService(serviceRequest(name, o)), format, serviceColumns);
});
svc.command('delete <name>').action(async (name: string) => {
  await client().deleteService(name);
  console.log(`service ${name} deleted`);
});
svc
  .command('list')
  .addOption(outputOption())
  .action(async (o: { output: string }) => print(await client().listServices(), parseFormat(o.output), serviceColumns));
svc
  .command('get <name>')
  .addOption(outputOption())
  .action(async (name: string, o: { output: string }) => print(await client().getService(name), parseFormat(o.output), serviceColumns));

// ---- status ----
program
  .command('status')
  .description('agent health, kernel features, counts and map pressure')
  .addOption(outputOption())
  .action(async (o: { output: string }) => {
    const format = parseFormat(o.output);
    const s = await client().status();
    if (format !== 'table') return print(s, format, []);
    const features = Object.entries(s.kernel.features)
      .map(([k, v]) => `${k}=${v ? 'yes' : 'NO'}`)
      .join(' ');
    console.log(
      renderKeyValues([
        ['Health', s.health],
        ['Version', s.version],
        ['Node', `${s.node.name} (pod CIDR ${s.node.podCIDR}, router ${s.node.routerIP})`],
        ['Uptime', `${s.uptimeSeconds}s`],
        ['Kernel', `${s.kernel.release}: ${features}`],
        ['Endpoints', `${s.counts.endpoints} (${s.counts.endpointsNotReady} not ready)`],
        ['Identities', `${s.counts.identities} allocated (range 256-65535)`],
        ['Namespaces', String(s.counts.namespaces)],
        ['IPAM', `${s.ipam.allocated}/${s.ipam.capacity} addresses allocated`],
        ['Interface pool', `${s.interfacePool.ready}/${s.interfacePool.size} ready`],
        ['Flows', `${s.flows.num_flows}/${s.flows.max_flows} in the ring, ${s.flows.seen_flows} seen, ${s.flows.lost_events} lost, ${s.flows.followers} following (aggregation ${s.flows.aggregation})`],
        ['Memory', `RSS ${mib(s.memory.rssBytes)}, heap ${mib(s.memory.heapUsedBytes)} used of ${mib(s.memory.heapTotalBytes)}`],
        ['Last sync', `${s.lastSync.reason}: ${s.lastSync.written} written, ${s.lastSync.deleted} deleted, ${s.lastSync.unchanged} unchanged`],
        ...s.maps.map((m): [string, string] => [`Map ${m.map}`, `${m.entries}/${m.maxEntries} (${(m.pressure * 100).toFixed(2)}%)`]),
      ]),
    );
  });

// ---- namespace ----
const ns = program.command('namespace').description('namespaces and their labels');
ns.command('set <name>')
  .description('create or replace a namespace and its labels')
  .option('--labels <k=v,...>', 'namespace labels', collect)
  .addOption(outputOption())
  .action(async (name: string, o: { labels?: string[]; output: string }) => {
    const format = parseFormat(o.output);
    print(await client().setNamespace(name, o.labels ?? []), format, namespaceColumns);
  });
const namespaceColumns: Column<Namespace>[] = [
  { header: 'NAME', value: (n) => n.name },
  { header: 'ENDPOINTS', value: (n) => n.endpoints },
  { header: 'LABELS', value: (n) => Object.entries(n.labels).map(([k, v]) => `${k}=${v}`) },
];
ns.command('list')
  .addOption(outputOption())
  .action(async (o: { output: string }) => print(await client().listNamespaces(), parseFormat(o.output), namespaceColumns));
ns.command('delete <name>')
  .description('delete an empty namespace')
  .action(async (name: string) => {
    await client().deleteNamespace(name);
    console.log(`namespace ${name} deleted`);
  });

// ---- endpoint ----
const ep = program.command('endpoint').description('workload endpoints');
ep.command('add <ref>')
  .description('create an endpoint NS/NAME: network namespace, veth, address, routes and programs')
  .option('--labels <k=v,...>', 'endpoint labels', collect)
  .option('--ipv4 <address>', 'address from the pod CIDR (default: the next free one)')
  .option('--port <name:port/proto>', 'named container port (repeatable)', collect)
  .option('--netns <name>', 'wire an existing network namespace instead of creating one')
  .addOption(outputOption())
  .action(async (ref: string, o: { labels?: string[]; ipv4?: string; port?: string[]; netns?: string; output: string }) => {
    const format = parseFormat(o.output);
    const e = await client().addEndpoint({ ...parseEndpointRef(ref), labels: o.labels, ipv4: o.ipv4, ports: o.port, netns: o.netns });
    print(e, format, endpointColumns);
  });
ep.command('update <ref>')
  .description("replace an endpoint's labels (its identity follows)")
  .requiredOption('--labels <k=v,...>', 'the new labels', collect)
  .addOption(outputOption())
  .action(async (ref: string, o: { labels: string[]; output: string }) => {
    const format = parseFormat(o.output);
    const r = parseEndpointRef(ref);
    print(await client().updateEndpoint(r.namespace, r.name, o.labels), format, endpointColumns);
  });
ep.command('delete <ref>').action(async (ref: string) => {
  const r = parseEndpointRef(ref);
  await client().deleteEndpoint(r.namespace, r.name);
  console.log(`endpoint ${ref} deleted`);
});
ep.command('list')
  .addOption(outputOption())
  .action(async (o: { output: string }) => print(await client().listEndpoints(), parseFormat(o.output), endpointColumns));
ep.command('get <ref>')
  .addOption(outputOption())
  .action(async (ref: string, o: { output: string }) => {
    const format = parseFormat(o.output);
    const r = parseEndpointRef(ref);
    print(await client().getEndpoint(r.namespace, r.name), format, endpointColumns);
  });

// ---- identity / ipcache / bpf ----
const identityColumns: Column<Identity>[] = [
  { header: 'ID', value: (i) => i.id },
  { header: 'ENDPOINTS', value: (i) => (i.reserved ? '-' : i.endpoints) },
  { header: 'LABELS', value: (i) => i.labels },
];
program
  .command('identity')
  .description('security identities')
  .command('list')
  .addOption(outputOption())
  .action(async (o: { output: string }) => print(await client().listIdentities(), parseFormat(o.output), identityColumns));

const ipcacheColumns: Column<IpcacheRow>[] = [
  { header: 'PREFIX', value: (r) => r.prefix },
  { header: 'IDENTITY', value: (r) => r.identity },
  { header: 'TUNNEL ENDPOINT', value: (r) => r.tunnelEndpoint || '-' },
];
program
  .command('ipcache')
  .description('IP/prefix to identity, as realized in the kernel map')
  .command('list')
  .addOption(outputOption())
  .action(async (o: { output: string }) => print(await client().listIpcache(), parseFormat(o.output), ipcacheColumns));

// ---- policy ----
async function readPolicyFiles(paths: string[]): Promise<PolicyFile[]> {
  const { readFile, stat } = await import('node:fs/promises');
  return Promise.all(
    paths.map(async (p) => {
      const st = await stat(p).catch(() => undefined);
      if (!st?.isFile()) throw new UserError('invalid', `${p}: no such file`);
      if (st.size > 4 * 1024 * 1024) throw new UserError('invalid', `${p}: larger than 4 MiB; split it into several files`);
      return { name: p, content: await readFile(p, 'utf8') };
    }),
  );
}

const policySummaryColumns: Column<PolicySummary>[] = [
  { header: 'KIND', value: (p) => p.kind },
  { header: 'NAMESPACE', value: (p) => p.namespace ?? '-' },
  { header: 'NAME', value: (p) => p.name },
  { header: 'RULES', value: (p) => p.rules },
  { header: 'REVISION', value: (p) => p.revision },
];

const policy = program.command('policy').description('network policies (CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy, NetworkPolicy)');
policy
  .command('import <files...>')
  .description('validate and apply policy files atomically; returns once the datapath enforces them')
  .addOption(outputOption())
  .action(async (paths: string[], o: { output: string }) => {
    const format = parseFormat(o.output);
    const r = await client().importPolicies(await readPolicyFiles(paths));
    if (format !== 'table') return print(r, format, []);
    console.log(`Revision: ${r.revision}`);
    print(r.policies, format, policySummaryColumns);
  });
policy
  .command('validate <files...>')
  .description('check policy files without changing anything')
  .action(async (paths: string[]) => {
    const r = await client().validatePolicies(await readPolicyFiles(paths));
    console.log(`${r.policies.length} policies are valid`);
  });
policy
  .command('get [ref]')
  .description('imported policies (NAMESPACE/NAME, or NAME for clusterwide ones); -o yaml prints their sources')
  .addOption(outputOption())
  .action(async (ref: string | undefined, o: { output: string }) => {
    const format = parseFormat(o.output);
    const list = await client().listPolicies();
    let policies = list.policies;
    if (ref) {
      const [a, b] = ref.includes('/') ? ref.split('/', 2) : [undefined, ref];
      policies = policies.filter((p) => p.name === b && (p.namespace ?? undefined) === a);
      if (policies.length === 0) throw new UserError('not-found', `no policy named ${ref} (see 'membrane policy get')`);
    }
    if (format === 'table') {
      console.log(`Revision: ${list.revision}`);
      return print(policies, format, policySummaryColumns);
    }
    print(policies.map((p) => p.source), format, []);
  });
policy
  .command('delete [ref]')
  .description('delete NAMESPACE/NAME (or NAME for a clusterwide policy), or every policy with --all')
  .option('--all', 'delete every policy')
  .action(async (ref: string | undefined, o: { all?: boolean }) => {
    if (!ref && !o.all) throw new UserError('invalid', 'name a policy (NAMESPACE/NAME or NAME) or use --all');
    const target = o.all ? { all: true as const } : ref!.includes('/') ? { namespace: ref!.split('/')[0], name: ref!.split('/')[1]! } : { name: ref! };
    const r = await client().deletePolicy(target);
    console.log(`Revision: ${r.revision}`);
  });
policy
  .command('selectors')
  .description('each selector in use and the identities it selects')
  .addOption(outputOption())
  .action(async (o: { output: string }) =>
    print(await client().policySelectors(), parseFormat(o.output), [
      { header: 'SELECTOR', value: (s: SelectorRow) => s.selector },
      { header: 'USERS', value: (s: SelectorRow) => s.users },
      { header: 'IDENTITIES', value: (s: SelectorRow) => s.identities.map(String) },
    ]),
  );

// ---- observe ----
registerObserveOptions(
  program.command('observe').description('show flows: what talked to what, and why it was dropped (filters combine like Hubble\'s)'),
).action(async (o: ObserveFlags) => {
  const req = buildRequest(o, new Date());
  const format = (o.output ?? 'compact') as ObserveOutputFormat;
  if (format === 'table' && req.follow) throw new UserError('invalid', '-o table cannot be used with --follow: use compact, json or dict');
  const nodeName = o.printNodeName ?? false;
  const collected: Flow[] = [];
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  process.once('SIGTERM', () => controller.abort());
  await streamFlows(
    client().socketPath,
    req,
    (line) => {
      const msg = JSON.parse(line) as { flow?: Flow; lost_events?: { source: string; num_events_lost: number } };
      if (msg.lost_events) {
        const why = msg.lost_events.source === 'PERF_EVENT_RING_BUFFER' ? 'the datapath ring buffer was full' : 'this reader fell behind';
        process.stderr.write(`EVENTS LOST: ${msg.lost_events.source} ${msg.lost_events.num_events_lost} (${why})\n`);
        return;
      }
      if (!msg.flow) return;
      if (format === 'json' || format === 'jsonpb') process.stdout.write(line + '\n');
      else if (format === 'table') collected.push(msg.flow);
      else if (format === 'dict') process.stdout.write(formatDict(msg.flow, { nodeName }) + '\n');
      else process.stdout.write(formatCompact(msg.flow, { nodeName }) + '\n');
    },
    controller.signal,
  );
  if (format === 'table') process.stdout.write(formatTable(collected, { nodeName }) + '\n');
});

const metricsColumns: Column<MetricsRow>[] = [
  { header: 'ENDPOINT', value: (m) => m.endpoint },
  { header: 'DIRECTION', value: (m) => m.direction },
  { header: 'REMOTE IDENTITY', value: (m) => m.remoteIdentity },
  { header: 'REASON', value: (m) => m.reason },
  { header: 'PACKETS', value: (m) => m.packets },
  { header: 'BYTES', value: (m) => m.bytes },
];
const bpf = program.command('bpf').description('raw views of the kernel maps');
bpf
  .command('policy')
  .description('policy map entries')
  .command('get <ref>')
  .description('the realized policy map entries of endpoint NS/NAME, with identity labels')
  .addOption(outputOption())
  .action(async (ref: string, o: { output: string }) => {
    const format = parseFormat(o.output);
    const r = parseEndpointRef(ref);
    const view = await client().endpointPolicy(r.namespace, r.name);
    if (format !== 'table') return print(view, format, []);
    console.log(
      `Endpoint ${view.endpoint}: ingress ${view.ingressEnforced ? 'enforced' : 'not enforced'}, egress ${view.egressEnforced ? 'enforced' : 'not enforced'}, policy revision ${view.policyRevision}`,
    );
    print(view.entries, format, [
      { header: 'POLICY', value: (e: PolicyEntryRow) => e.policy },
      { header: 'DIRECTION', value: (e: PolicyEntryRow) => e.direction },
      { header: 'IDENTITY', value: (e: PolicyEntryRow) => e.identity },
      { header: 'LABELS', value: (e: PolicyEntryRow) => e.labels },
      { header: 'PORT/PROTO', value: (e: PolicyEntryRow) => e.port },
      { header: 'PREFIX', value: (e: PolicyEntryRow) => e.prefixLength },
      { header: 'RULE', value: (e: PolicyEntryRow) => e.rule },
    ]);
  });
bpf
  .command('ct')
  .description('connection tracking entries')
  .command('list')
  .addOption(outputOption())
  .action(async (o: { output: string }) =>
    print(await client().listCt(), parseFormat(o.output), [
      { header: 'PROTO', value: (c: CtRow) => c.protocol },
      { header: 'SOURCE', value: (c: CtRow) => c.source },
      { header: 'DESTINATION', value: (c: CtRow) => c.destination },
      { header: 'ENDPOINTS', value: (c: CtRow) => c.endpoints.map((e) => `${e.endpoint} ${e.direction.toLowerCase()}`).join(', ') || (c.serviceOf ? `${c.serviceOf} service` : '') },
      { header: 'IDENTITIES', value: (c: CtRow) => (c.serviceOf ? '' : `${c.sourceIdentity} -> ${c.destinationIdentity}`) },
      { header: 'PACKETS', value: (c: CtRow) => c.packets },
      { header: 'IDLE', value: (c: CtRow) => `${c.idleSeconds}s` },
      { header: 'NAT', value: (c: CtRow) => (c.nat?.backend ? `to backend ${c.nat.backend}` : c.nat?.frontend ? `replies from ${c.nat.frontend}` : '') },
    ]),
  );
bpf
  .command('lb')
  .description('service load-balancing maps')
  .command('list')
  .addOption(outputOption())
  .action(async (o: { output: string }) =>
    print(await client().listLb(), parseFormat(o.output), [
      { header: 'SERVICE ID', value: (r: LbRow) => r.serviceId },
      { header: 'FRONTEND', value: (r: LbRow) => r.frontend },
      { header: 'SLOTS', value: (r: LbRow) => r.count },
      { header: 'ALGORITHM', value: (r: LbRow) => (r.algorithm === 'maglev' ? `maglev (${r.maglevEntries} entries)` : r.algorithm) },
      { header: 'AFFINITY', value: (r: LbRow) => (r.affinityTimeout ? `${r.affinityTimeout}s, ${r.affinityClients} clients` : 'none') },
      { header: 'BACKENDS (slot order)', value: (r: LbRow) => (r.backends.length ? r.backends.map((b, i) => `${i + 1} => ${b}`) : ['(none)']) },
    ]),
  );
bpf
  .command('metrics')
  .description('datapath counters per endpoint, direction, peer identity and outcome')
  .addOption(outputOption())
  .action(async (o: { output: string }) => print(await client().listMetrics(), parseFormat(o.output), metricsColumns));

async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof ApiError || err instanceof AgentUnreachable || err instanceof UserError || err instanceof StartupError) {
      process.stderr.write(`Error: ${err.message}\n`);
    } else {
      process.stderr.write(`Error: ${(err as Error).stack ?? String(err)}\n`);
    }
    process.exit(1);
  }
}

void main();
