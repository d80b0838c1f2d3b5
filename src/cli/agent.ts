/* `membrane agent`: runs the agent in the foreground; the current network namespace plays the node. */
import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { DEFAULT_SOCKET } from '../api/client.js';
import { UserError } from '../errors.js';
import { MAGLEV_DEFAULT_SIZE, MAGLEV_SIZES } from '../service/maglev.js';
import { collectList } from './context.js';

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

const ENFORCEMENT = ['default', 'always', 'never'] as const;

export function agentCommand(socketOption: () => string | undefined): CommandUnknownOpts {
  const cmd = new Command('agent')
    .description('run the agent in the foreground; the current network namespace plays the node')
    .requiredOption('--node-name <name>', 'name of this node')
    .requiredOption('--pod-cidr <cidr>', 'IPv4 CIDR that endpoint addresses come from, e.g. 10.244.0.0/24')
    .option('--state-dir <dir>', 'where desired state is persisted', '/var/lib/membrane')
    .option('--bpffs-dir <dir>', 'bpffs directory for pinned maps and links', '/sys/fs/bpf/membrane')
    .option('--cluster-name <name>', 'cluster name (label io.cilium.k8s.policy.cluster)', 'default')
    .option('--bpf-dir <dir>', 'directory holding the compiled BPF objects')
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .addOption(new Option('--log-format <format>', 'json, or text for a person (default: text on a terminal, json otherwise)').choices(['json', 'text'] as const))
    .addOption(new Option('--enforcement <mode>', 'policy enforcement: default (once a rule selects an endpoint), always, never').choices(ENFORCEMENT).default('default' as const))
    .addOption(new Option('--policy-enforcement <mode>', "the same as --enforcement (Cilium's name)").choices(ENFORCEMENT))
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
        .choices(['none', 'low', 'medium', 'maximum'] as const)
        .default('medium' as const),
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
    .option('--metrics-disable-tls', 'accept plaintext /metrics on a non-loopback --metrics-address');
  cmd.action(async (o) => {
    const { runAgent, DEFAULT_BPF_OBJECT_DIR } = await import('../agent.js');
    const { dirname, join } = await import('node:path');
    const socket = socketOption() ?? process.env.MEMBRANE_SOCKET ?? DEFAULT_SOCKET;
    const agent = await runAgent({
      nodeName: o.nodeName,
      podCidr: o.podCidr,
      stateDir: o.stateDir,
      bpffsDir: o.bpffsDir,
      socket,
      cluster: o.clusterName,
      bpfObjectDir: o.bpfDir ?? DEFAULT_BPF_OBJECT_DIR,
      logLevel: o.logLevel,
      logFormat: o.logFormat ?? (process.stderr.isTTY ? 'text' : 'json'),
      enforcement: o.policyEnforcement ?? o.enforcement,
      policyMapMax: wholeNumber(o.policyMapMax, '--policy-map-max', 1024, 16_777_216),
      interfacePool: wholeNumber(o.interfacePool, '--interface-pool', 0, 64),
      allowLocalhost: o.allowLocalhost,
      auditMode: o.policyAuditMode ?? false,
      fastPath: o.fastPath,
      cgroupRoot: o.cgroupRoot ?? (await cgroup2Mount()),
      maglevSize: maglevSize(o.maglevTableSize),
      flowCapacity: wholeNumber(o.flowBufferCapacity, '--flow-buffer-capacity', 1, 1_000_000),
      aggregation: o.monitorAggregation,
      hubbleAddress: o.hubbleAddress,
      hubbleSocket: o.hubbleSocket ?? join(dirname(socket), 'hubble.sock'),
      metricsAddress: o.metricsAddress,
      hubbleTls: { certFile: o.hubbleTlsCertFile, keyFile: o.hubbleTlsKeyFile, clientCaFiles: o.hubbleTlsClientCaFiles ?? [] },
      hubbleDisableTls: o.hubbleDisableTls ?? false,
      metricsTls: { certFile: o.metricsTlsCertFile, keyFile: o.metricsTlsKeyFile, clientCaFiles: o.metricsTlsClientCaFiles ?? [] },
      metricsDisableTls: o.metricsDisableTls ?? false,
    });
    const shutdown = () => void agent.stop().then(() => process.exit(0));
    process.once('SIGTERM', shutdown);
    process.once('SIGINT', shutdown);
  });
  return cmd;
}
