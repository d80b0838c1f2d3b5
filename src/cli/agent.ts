/* `membrane agent`: runs the agent in the foreground; the current network namespace plays the node. */
import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { DEFAULT_SOCKET } from '../api/client.js';
import { UserError } from '../errors.js';
import { MAGLEV_DEFAULT_SIZE, MAGLEV_SIZES } from '../service/maglev.js';
import { collectList } from './context.js';
import { DEFAULT_TUNNEL_PORT } from '../cluster/routing-mode.js';
import type { AgentOptions } from '../agent.js';

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

interface KvstoreFlags {
  kvstore?: 'etcd';
  kvstoreEndpoints?: string[];
  kvstoreTlsCaFile?: string;
  kvstoreTlsCertFile?: string;
  kvstoreTlsKeyFile?: string;
  kvstoreLeaseTtl: string;
  identityGcInterval: string;
}

function kvstoreOptions(o: KvstoreFlags): { kvstore?: NonNullable<AgentOptions['kvstore']> } {
  const endpoints = o.kvstoreEndpoints ?? [];
  if (!o.kvstore) {
    if (endpoints.length) throw new UserError('invalid', '--kvstore-endpoints needs --kvstore etcd');
    return {};
  }
  if (!endpoints.length) throw new UserError('invalid', '--kvstore etcd needs --kvstore-endpoints, e.g. http://192.168.1.2:2379');
  for (const url of endpoints) {
    if (!/^https?:\/\/[^/\s]+(:\d+)?\/?$/.test(url)) throw new UserError('invalid', `--kvstore-endpoints ${url}: give http://HOST:PORT or https://HOST:PORT`);
  }
  return {
    kvstore: {
      endpoints,
      tls: { caFile: o.kvstoreTlsCaFile, certFile: o.kvstoreTlsCertFile, keyFile: o.kvstoreTlsKeyFile },
      leaseTtlSeconds: wholeNumber(o.kvstoreLeaseTtl, '--kvstore-lease-ttl', 2, 3600),
      identityGcSeconds: wholeNumber(o.identityGcInterval, '--identity-gc-interval', 1, 86_400),
    },
  };
}

function clusterPool(o: { podCidr?: string; clusterPoolIpv4Cidr?: string; clusterPoolMaskSize: string }): { clusterPool?: NonNullable<AgentOptions['clusterPool']> } {
  if (o.clusterPoolIpv4Cidr === undefined) return {};
  if (o.podCidr !== undefined) throw new UserError('invalid', '--pod-cidr and --cluster-pool-ipv4-cidr exclude each other: give the node its CIDR, or let it claim one from the pool');
  return { clusterPool: { cidr: o.clusterPoolIpv4Cidr, maskSize: wholeNumber(o.clusterPoolMaskSize, '--cluster-pool-mask-size', 1, 30) } };
}

function nodeLabels(pairs: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UserError('invalid', `--node-labels ${pair}: write key=value, e.g. zone=a`);
    labels[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return labels;
}

export function agentCommand(socketOption: () => string | undefined): CommandUnknownOpts {
  const cmd = new Command('agent')
    .description('run the agent in the foreground; the current network namespace plays the node')
    .requiredOption('--node-name <name>', 'name of this node')
    .option('--pod-cidr <cidr>', 'IPv4 CIDR that endpoint addresses come from, e.g. 10.244.0.0/24 (or claim one with --cluster-pool-ipv4-cidr)')
    .option('--cluster-pool-ipv4-cidr <cidr>', "in a cluster: the pods' range, from which the node claims a block at its first start and keeps it, e.g. 10.0.0.0/8")
    .option('--cluster-pool-mask-size <bits>', 'prefix length of the blocks nodes claim from the cluster pool', '24')
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
    .option('--hubble-peer-address <host:port>', "in a cluster: the Observer other nodes' relays read, mutual TLS only (default: NODE_IP:4244 when the --hubble-peer-tls-* files are given; '' serves none)")
    .option('--hubble-peer-tls-cert-file <path>', "this node's certificate (membrane cluster certs): served to peers and presented to them")
    .option('--hubble-peer-tls-key-file <path>', 'PEM private key of --hubble-peer-tls-cert-file')
    .option('--hubble-peer-tls-ca-file <path>', "the cluster CA: every peer's certificate must be signed by it")
    .option('--metrics-tls-cert-file <path>', 'PEM certificate (chain): serve /metrics over HTTPS; needs --metrics-tls-key-file')
    .option('--metrics-tls-key-file <path>', 'PEM private key of --metrics-tls-cert-file')
    .option('--metrics-tls-client-ca-files <paths>', 'PEM CA files, comma-separated or repeated: scrapers must present a certificate one of them signed (mutual TLS)', collectList)
    .option('--metrics-disable-tls', 'accept plaintext /metrics on a non-loopback --metrics-address')
    .addOption(new Option('--kvstore <backend>', "join a cluster through a shared store: etcd (without it, one node with the embedded store)").choices(['etcd'] as const))
    .option('--kvstore-endpoints <urls>', 'etcd client URLs, comma-separated or repeated, e.g. http://192.168.1.2:2379', collectList)
    .option('--kvstore-tls-ca-file <path>', "PEM CA that signed the etcd server's certificate (https endpoints)")
    .option('--kvstore-tls-cert-file <path>', 'PEM client certificate for an etcd that requires one; needs --kvstore-tls-key-file')
    .option('--kvstore-tls-key-file <path>', 'PEM private key of --kvstore-tls-cert-file')
    .option('--kvstore-lease-ttl <seconds>', "how long a dead node's entries live on in the cluster", '15')
    .option('--identity-gc-interval <seconds>', 'a cluster identity no node has used for this long (twice at most) is freed', '60')
    .addOption(new Option('--routing-mode <mode>', "between nodes: tunnel (VXLAN, the source identity in the VNI) or native (the underlay routes pod CIDRs)").choices(['tunnel', 'native'] as const).default('tunnel' as const))
    .option('--tunnel-port <port>', 'UDP port of the VXLAN overlay (tunnel mode), the same on every node', String(DEFAULT_TUNNEL_PORT))
    .addOption(new Option('--enable-bpf-masquerade <bool>', "endpoints' traffic leaving the cluster takes the node address, translated in eBPF (default: true in a cluster)").choices(['true', 'false'] as const))
    .option('--node-ip <address>', 'IPv4 address the other nodes reach this one at (default: the first non-loopback address)')
    .option('--node-labels <k=v,...>', 'labels of this node in the cluster, comma-separated or repeated', collectList);
  cmd.action(async (o) => {
    const { runAgent, DEFAULT_BPF_OBJECT_DIR } = await import('../agent.js');
    const { dirname, join } = await import('node:path');
    const socket = socketOption() ?? process.env.MEMBRANE_SOCKET ?? DEFAULT_SOCKET;
    // Ctrl-C or SIGTERM during the start stops it at once: a wait for etcd ends with its own
    // message (the rejection runs before the next turn); anything else is left as a crash would
    // leave it, which the next start repairs.
    const starting = new AbortController();
    const stopStarting = () => {
      starting.abort();
      setImmediate(() => process.exit(1));
    };
    process.once('SIGINT', stopStarting);
    process.once('SIGTERM', stopStarting);
    const agent = await runAgent({
      nodeName: o.nodeName,
      ...(o.podCidr !== undefined ? { podCidr: o.podCidr } : {}),
      ...clusterPool(o),
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
      hubblePeer: {
        ...(o.hubblePeerAddress !== undefined ? { address: o.hubblePeerAddress } : {}),
        certFile: o.hubblePeerTlsCertFile,
        keyFile: o.hubblePeerTlsKeyFile,
        caFile: o.hubblePeerTlsCaFile,
      },
      metricsTls: { certFile: o.metricsTlsCertFile, keyFile: o.metricsTlsKeyFile, clientCaFiles: o.metricsTlsClientCaFiles ?? [] },
      metricsDisableTls: o.metricsDisableTls ?? false,
      ...kvstoreOptions(o),
      routingMode: o.routingMode,
      tunnelPort: wholeNumber(o.tunnelPort, '--tunnel-port', 1, 65535),
      ...(o.enableBpfMasquerade !== undefined ? { masquerade: o.enableBpfMasquerade === 'true' } : {}),
      ...(o.nodeIp !== undefined ? { nodeIp: o.nodeIp } : {}),
      nodeLabels: nodeLabels(o.nodeLabels ?? []),
      signal: starting.signal,
    });
    process.off('SIGINT', stopStarting);
    process.off('SIGTERM', stopStarting);
    const shutdown = () => void agent.stop().then(() => process.exit(0));
    process.once('SIGTERM', shutdown);
    process.once('SIGINT', shutdown);
  });
  return cmd;
}
