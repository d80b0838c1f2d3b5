/* Composition root of the agent: checks the machine, prepares the node namespace, loads the
 * datapath, restores state and serves the API. Runs in the foreground in the current network
 * namespace, which plays the node. */
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { ApiServer } from './api/server.js';
import { StartupError, errorMessage } from './errors.js';
import type { Status } from './api/types.js';
import { sweepConntrack } from './datapath/ct-gc.js';
import { Datapath, ENDPOINT_OBJECT } from './datapath/datapath.js';
import { Ipam } from './endpoint/ipam.js';
import { formatCidr, parseCidr } from './net/ipv4.js';
import { EndpointManager } from './endpoint/manager.js';
import { DatapathReconciler } from './reconcile/datapath.js';
import { InterfacePool } from './endpoint/pool.js';
import { ensureBpffs } from './kernel/bpffs.js';
import { ESSENTIAL, probeFeatures, type KernelFeatures } from './kernel/features.js';
import { libc } from './kernel/libc.js';
import type { Netlink } from './kernel/netlink.js';
import { RtNetlink } from './kernel/rtnetlink.js';
import { EmbeddedStore } from './store/embedded.js';
import { EtcdStore, type EtcdTlsFiles } from './store/etcd.js';
import { NodeRegistry, type ClusterNode } from './cluster/node-registry.js';
import { nodeIp } from './cluster/node-ip.js';
import { claimPodCidr, type ClusterPool } from './cluster/cluster-pool.js';
import { SharedIpcache } from './cluster/shared-ipcache.js';
import { NETDEV_PROGRAMS, OVERLAY_PROGRAMS } from './datapath/device-programs.js';
import { disableUnderlay, enableUnderlay, type UnderlayState } from './cluster/underlay.js';
import { disableTunnel, enableTunnel, TUNNEL_DEVICE, type TunnelState } from './cluster/overlay.js';
import { NodeRouting } from './cluster/routing.js';
import { endpointMtu, underlayMtu } from './cluster/mtu.js';
import { coalesced } from './cluster/coalesce.js';
import { SharedIntent, type IntentTarget } from './cluster/shared-intent.js';
import { ClusterNumbering } from './identity/cluster-numbering.js';
import type { IdentityListener } from './identity/allocator.js';
import { registerNodeRoutes } from './api/node-routes.js';
import { Mutex } from './util/mutex.js';
import { VERSION } from './util/version.js';
import { checkListener, checkPeerAddress, checkPeerTls, type PeerTlsFiles, type TlsFiles } from './util/listen.js';
import { registerEndpointRoutes } from './api/endpoint-routes.js';
import { registerServiceRoutes } from './api/service-routes.js';
import { LbDatapath, SOCK_OBJECT } from './service/datapath.js';
import { ServiceManager, type BackendCandidate } from './service/manager.js';
import { registerPolicyRoutes } from './api/policy-routes.js';
import { PolicyParser } from './policy/parse-pool.js';
import { registerFlowRoutes } from './api/flow-routes.js';
import type { AggregationLevel } from './datapath/layouts.js';
import { AgentEventLog } from './flow/agent-events.js';
import { flowContext } from './flow/context.js';
import { FlowDecoder } from './flow/decoder.js';
import { matchesRequest } from './flow/filter.js';
import { startObserverServer } from './flow/grpc-server.js';
import { LocalFlows } from './cluster/relay/node-flows.js';
import { PeerPool } from './cluster/relay/peers.js';
import { Relay } from './cluster/relay/relay.js';
import { Metrics } from './flow/metrics.js';
import { FlowMonitor } from './flow/monitor.js';
import { FlowRing } from './flow/ring.js';
import type { EnforcementMode } from './policy/engine.js';
import { PolicyRealizer } from './policy/realize.js';
import { PolicyRepository } from './policy/repository.js';

export interface AgentOptions {
  nodeName: string;
  /** This node's pod CIDR; in a cluster it may be claimed from `clusterPool` instead. */
  podCidr?: string;
  clusterPool?: ClusterPool;
  stateDir: string;
  bpffsDir: string;
  socket: string;
  cluster: string;
  bpfObjectDir: string;
  logLevel: string;
  /** json: one JSON object a line (pino); text: readable lines for a person at a terminal. */
  logFormat: 'json' | 'text';
  enforcement: EnforcementMode;
  /** Interfaces kept ready (programs attached) for endpoint adds. */
  interfacePool: number;
  /** Capacity of the policy map (all endpoints' entries together). */
  policyMapMax: number;
  allowLocalhost: boolean;
  /** Report policy drops as AUDIT flows and let the traffic through. */
  auditMode: boolean;
  /** Deliver to local endpoints with bpf_redirect_peer instead of the node's routing. */
  fastPath: boolean;
  /** cgroup v2 directory whose processes get socket-level service translation. */
  cgroupRoot: string;
  /** Entries of each Maglev table (prime). */
  maglevSize: number;
  /** Flows kept in memory (Hubble's ring). */
  flowCapacity: number;
  aggregation: AggregationLevel;
  /** Observer gRPC on TCP (host:port; '' disables) and on a unix socket ('' disables). */
  hubbleAddress: string;
  hubbleSocket: string;
  /** Prometheus /metrics (host:port; '' disables). */
  metricsAddress: string;
  /** TLS of the TCP listeners; without it a non-loopback address needs the *DisableTls consent. */
  hubbleTls?: TlsFiles;
  hubbleDisableTls?: boolean;
  metricsTls?: TlsFiles;
  metricsDisableTls?: boolean;
  /**
   * In a cluster: the Observer for the other nodes' relays (mutual TLS only) and the files this
   * node serves and dials its peers with. address undefined: NODE_IP:4244 when the files are
   * given; '' serves nothing (this node still relays its peers' flows).
   */
  hubblePeer?: PeerTlsFiles & { address?: string };
  /** A cluster's etcd: the agent joins it (nodes registry); without it, one node on its own. */
  kvstore?: { endpoints: string[]; tls?: EtcdTlsFiles; leaseTtlSeconds: number; identityGcSeconds: number };
  /** Between nodes: encapsulated (VXLAN, identity in the VNI) or routed as is. */
  routingMode: 'tunnel' | 'native';
  /** UDP port of the VXLAN overlay (tunnel mode), the same on every node. */
  tunnelPort: number;
  /** Underlay address the other nodes reach this one at (default: detected). */
  nodeIp?: string;
  /** BPF masquerading of endpoints' traffic leaving the cluster to the node address (default: in a cluster). */
  masquerade?: boolean;
  nodeLabels?: Record<string, string>;
  /** Aborts the start while it waits (for etcd): Ctrl-C stops a waiting agent at once. */
  signal?: AbortSignal;
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_BPF_OBJECT_DIR = path.join(repoRoot, 'build');

const CT_GC_INTERVAL_MS = 30_000;
/**
 * How long a relay waits for a peer's Observer to answer before it reports the node unavailable
 * (a refused connection fails at once; this bounds a node that is gone from the network, or busy).
 */
const PEER_TIMEOUT_MS = 5000;


/** Capabilities the agent needs (bit numbers of linux/capability.h). CAP_SYS_ADMIN also covers BPF. */
const CAPABILITIES = { CAP_NET_ADMIN: 12, CAP_SYS_ADMIN: 21 } as const;

/** Names of the needed capabilities missing from this process's effective set. */
function missingCapabilities(): string[] {
  const line = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('CapEff:'));
  const eff = BigInt(`0x${line?.split(/\s+/)[1] ?? '0'}`);
  return Object.entries(CAPABILITIES)
    .filter(([, bit]) => !(eff & (1n << BigInt(bit))))
    .map(([name]) => name);
}

function preflight(opts: AgentOptions): KernelFeatures {
  if (libc.geteuid() !== 0) {
    throw new StartupError('membrane agent must run as root: it needs CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN (try sudo)');
  }
  const missingCaps = missingCapabilities();
  if (missingCaps.length) {
    throw new StartupError(
      `membrane agent lacks ${missingCaps.join(' and ')}: it needs CAP_NET_ADMIN and CAP_SYS_ADMIN to load BPF programs, mount bpffs and configure namespaces (run it as root with full capabilities)`,
    );
  }
  const features = probeFeatures();
  const missing = Object.keys(ESSENTIAL).filter((f) => !features.features[f]);
  if (missing.length) {
    throw new StartupError(`this kernel lacks ${missing.map((m) => ESSENTIAL[m]).join(', ')}: membrane needs them to run`);
  }
  for (const name of ['endpoint.o', 'sock.o', 'overlay.o']) {
    const obj = path.join(opts.bpfObjectDir, name);
    if (!fs.existsSync(obj)) throw new StartupError(`BPF object ${obj} is missing: build it with 'make build'`);
  }
  if (!fs.existsSync(path.join(opts.cgroupRoot, 'cgroup.procs'))) {
    throw new StartupError(`--cgroup-root ${opts.cgroupRoot} is not a cgroup v2 directory (mount cgroup2 or point at one)`);
  }
  return features;
}

/**
 * Forwarding on, the router address on the node's loopback (this kernel has no dummy driver;
 * an address on lo is still chosen as the source towards endpoints), and the pod CIDR
 * unreachable by default so a packet to an unused pod address dies here.
 */
async function prepareNode(nl: Netlink, ipam: Ipam): Promise<void> {
  fs.writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
  await nl.apply([
    { op: 'up', name: 'lo' },
    { op: 'address', dev: 'lo', cidr: `${ipam.router}/32` },
    { op: 'route', dst: formatCidr(ipam.cidr), unreachable: true },
  ]);
}

function parsePodCidr(text: string) {
  try {
    return parseCidr(text);
  } catch (err) {
    throw new StartupError(`--pod-cidr: ${(err as Error).message}`);
  }
}

function agentMemory(): Status['memory'] {
  const m = process.memoryUsage();
  return { rssBytes: m.rss, heapUsedBytes: m.heapUsed, heapTotalBytes: m.heapTotal, externalBytes: m.external };
}

export async function runAgent(opts: AgentOptions): Promise<{ stop: () => Promise<void> }> {
  // Synchronous either way: a line is on stderr before the agent goes on (or dies).
  const destination = opts.logFormat === 'text' ? pretty({ destination: 2, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }) : pino.destination(2);
  const log: Logger = pino({ level: opts.logLevel, base: { node: opts.nodeName } }, destination);
  // A stray rejection in a background task is logged; it must not take the agent down.
  process.on('unhandledRejection', (err) => log.error({ err: err instanceof Error ? err.message : String(err) }, 'unhandled rejection'));
  // Flags alone decide these: refused before anything on the machine is touched.
  const hubbleTcp = checkListener('hubble', { address: opts.hubbleAddress, ...opts.hubbleTls, disableTls: opts.hubbleDisableTls ?? false });
  const metricsTcp = checkListener('metrics', { address: opts.metricsAddress, ...opts.metricsTls, disableTls: opts.metricsDisableTls ?? false });
  const peerTls = checkPeerTls(opts.hubblePeer ?? {}, opts.nodeName);
  if ((peerTls || opts.hubblePeer?.address) && !opts.kvstore) {
    throw new StartupError('--hubble-peer-* serve and reach the other nodes of a cluster: add --kvstore etcd --kvstore-endpoints URL, or leave them out');
  }
  const features = preflight(opts);
  const started = Date.now();
  if (opts.clusterPool && !opts.kvstore) throw new StartupError('--cluster-pool-ipv4-cidr needs a cluster: add --kvstore etcd --kvstore-endpoints URL (or give --pod-cidr)');
  if (!opts.podCidr && !opts.clusterPool) throw new StartupError('give this node its pod CIDR with --pod-cidr, or a cluster pool to claim one from with --cluster-pool-ipv4-cidr');
  const nl = new RtNetlink();
  const underlayIp = await nodeIp(nl, opts.nodeIp, opts.kvstore !== undefined);
  const peerAddress = opts.kvstore ? checkPeerAddress(opts.hubblePeer?.address, peerTls, underlayIp) : undefined;
  // Late-bound: the registry's heartbeat reads what the rest of the agent builds below.
  let local: { health: () => ClusterNode['health']; endpoints: () => number } = { health: () => 'ok', endpoints: () => 0 };
  let kv: EtcdStore | undefined;
  let registry: NodeRegistry | undefined;
  let podCidr = opts.podCidr !== undefined ? parsePodCidr(opts.podCidr) : undefined;
  if (opts.kvstore) {
    // Joined before anything on the machine changes: a refusal (name taken, CIDR overlapping)
    // leaves this node as it was.
    fs.mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
    kv = await EtcdStore.connect({ ...opts.kvstore, leaseFile: path.join(opts.stateDir, 'etcd-lease') }, log, opts.signal);
    try {
      podCidr ??= parsePodCidr(await claimPodCidr(kv, opts.cluster, opts.nodeName, opts.clusterPool!, path.join(opts.stateDir, 'pod-cidr'), log));
    } catch (err) {
      kv.close();
      throw err;
    }
  }
  const self = { name: opts.nodeName, ip: underlayIp, podCIDR: formatCidr(podCidr!), labels: opts.nodeLabels ?? {}, version: VERSION };
  if (kv) {
    registry = new NodeRegistry(kv, opts.cluster, self, { health: () => local.health(), endpoints: () => local.endpoints() }, log);
    try {
      await registry.join();
    } catch (err) {
      registry.stop();
      kv.close();
      throw err;
    }
  }
  const mutex = new Mutex();
  const serial = <T>(fn: () => Promise<T> | T) => mutex.run(fn);
  const ipam = new Ipam(podCidr!);
  ensureBpffs(opts.bpffsDir);
  await prepareNode(nl, ipam);
  const nodeAddresses = (await nl.addresses()).map((a) => a.address).filter((a) => a !== ipam.router);

  const store = new EmbeddedStore(opts.stateDir);
  const datapath = Datapath.load(opts.bpfObjectDir, opts.bpffsDir, { policyMapMax: opts.policyMapMax });
  log.info({ adoptedMaps: datapath.adoptedMaps, programsAdopted: datapath.programsAdopted }, 'datapath loaded');
  if (datapath.replacedMaps.length) {
    log.warn({ maps: datapath.replacedMaps }, 'pinned maps had another layout (an upgrade): created anew; their contents are rewritten from desired state');
  }
  const repo = new PolicyRepository(store);
  const realizer = new PolicyRealizer(repo, datapath, { cluster: opts.cluster, enforcement: opts.enforcement, allowLocalhost: opts.allowLocalhost, auditMode: opts.auditMode }, log);
  // In a cluster: endpoints leave room for the encapsulation (tunnel mode), and the node reaches
  // the other nodes' pods through the overlay device or its routes. Outside tunnel mode a device
  // an earlier run made goes, and the datapath stops encapsulating.
  const mtu = registry ? endpointMtu(opts.routingMode, await underlayMtu(nl, self.ip)) : undefined;
  let tunnel: TunnelState | undefined;
  if (registry && opts.routingMode === 'tunnel') {
    tunnel = await enableTunnel(nl, datapath, { port: opts.tunnelPort, mtu: mtu!, objectDir: opts.bpfObjectDir }, log);
    log.info({ device: TUNNEL_DEVICE, ifindex: tunnel.ifindex, created: tunnel.created, linksAdopted: tunnel.linksAdopted, mtu }, 'tunnel mode: overlay ready');
  } else if (await disableTunnel(nl, datapath)) {
    log.info({ device: TUNNEL_DEVICE }, 'no tunnel mode: the tunnel device of an earlier run removed');
  }
  const underlayJobs = { masquerade: opts.masquerade ?? registry !== undefined, nativeRouting: registry !== undefined && opts.routingMode === 'native' };
  let underlay: UnderlayState | undefined;
  if (underlayJobs.masquerade || underlayJobs.nativeRouting) {
    if (!underlayIp) throw new StartupError('--enable-bpf-masquerade true needs an address for the node: give one with --node-ip');
    underlay = await enableUnderlay(nl, datapath, underlayIp, opts.bpfObjectDir, underlayJobs, log);
  } else {
    disableUnderlay(datapath);
  }
  const routing = registry ? new NodeRouting(nl, { nodeName: opts.nodeName, mode: opts.routingMode, routerIp: ipam.router, device: TUNNEL_DEVICE, mtu: mtu! }, log) : undefined;
  const manager = new EndpointManager({ nodeName: opts.nodeName, cluster: opts.cluster, ipam, stateDir: opts.stateDir, ...(mtu ? { mtu } : {}) }, store, nl, datapath, log);
  const reconciler = new DatapathReconciler(manager, { router: ipam.router, nodeAddresses }, datapath, realizer, log);
  manager.changes = reconciler;
  const agentEvents = new AgentEventLog(opts.nodeName);

  /**
   * In a cluster: identity numbers from etcd, and the other nodes' endpoints and nodes in the
   * ipcache. Followed before the restore, so that its resync keeps the remote entries an earlier
   * run wrote (connections to other nodes survive a restart); changes after it go straight to
   * the datapath.
   */
  async function joinClusterState(kv: EtcdStore, registry: NodeRegistry) {
    const numbering = new ClusterNumbering(kv, opts.nodeName, log, opts.kvstore!.identityGcSeconds * 1000);
    await numbering.start();
    manager.numbering = numbering;
    const events = agentEvents.identityListener();
    const used = (id: number, inUse: boolean) => void numbering.used(id, inUse).catch(() => undefined); // retried by the store
    manager.identityListener = {
      allocated: (i) => (events.allocated?.(i), used(i.id, true)),
      released: (i) => (events.released?.(i), used(i.id, false)),
    } satisfies IdentityListener;
    let policyPending = false;
    numbering.onChange = () => {
      if (policyPending) return;
      policyPending = true;
      setImmediate(() => void serial(() => ((policyPending = false), reconciler.policyChanged('cluster identities changed'))).catch((err) => log.error({ err: errorMessage(err) }, 'policy not recomputed after an identity change')));
    };
    const shared = new SharedIpcache(kv, opts.cluster, opts.nodeName, log);
    reconciler.remote = shared;
    registry.listener = {
      nodeChanged: (n) => (shared.nodeChanged(n), void routing?.nodeChanged(n)),
      nodeRemoved: (name) => (shared.nodeRemoved(name), void routing?.nodeRemoved(name)),
    };
    await routing?.sync(registry.list());
    for (const n of registry.list()) shared.nodeChanged(n);
    await shared.start();
    const intent = new SharedIntent(kv, opts.cluster, intentTarget(), log);
    return {
      shared,
      numbering,
      intent,
      /** After the restore: the restored identities reclaimed and marked used, this node's endpoints published. */
      restored: async () => {
        for (const i of manager.localIdentities()) {
          const key = i.labels.join(';');
          if (!(await numbering.reclaim(i.id, key).catch(() => true))) log.error({ identity: i.id, labels: key }, 'another label set took this identity in the cluster while the node was away: update the endpoints that use it');
          used(i.id, true);
        }
        shared.listener = coalesced((reason, changed, removed) =>
          serial(() => reconciler.remoteChanged(reason, changed, removed)).catch((err) => log.error({ err: errorMessage(err) }, 'remote peers not written')),
        );
        reconciler.onChange(() => void shared.publish(manager.listEndpoints()));
        await shared.publish(manager.listEndpoints());
      },
      remoteEndpointsIn: (namespace: string) => shared.remoteEndpoints().filter((e) => e.namespace === namespace).length,
      stop: () => (numbering.stop(), shared.stop(), intent.stop()),
    };
  }

  /** How policies and namespaces from the cluster are applied here: as the API would, serialised with it. */
  function intentTarget(): IntentTarget {
    return {
      applyPolicies: (decide, reason) =>
        serial(() => {
          const { put, deleted } = decide();
          if (deleted.length) {
            const plan = reconciler.planPolicy(repo.previewDelete(deleted));
            const revision = repo.delete(deleted);
            reconciler.policyChanged(`policy revision ${revision} (${reason})`, plan);
          }
          if (put.length) {
            const plan = reconciler.planPolicy(repo.preview(put));
            const { revision } = repo.import(put);
            reconciler.policyChanged(`policy revision ${revision} (${reason})`, plan);
          }
        }),
      applyNamespace: (name, labels, reason) =>
        serial(async () => {
          const have = manager.namespaceUserLabels(name);
          if (labels === undefined) {
            if (have !== undefined) manager.deleteNamespace(name);
            return;
          }
          if (have !== undefined && JSON.stringify(have) === JSON.stringify([...labels].sort())) return;
          log.info({ namespace: name, reason }, 'namespace set from the cluster');
          await manager.setNamespace(name, labels);
        }),
      localPolicies: () => repo.list().map((p) => ({ ref: p.ref, source: p.source, rules: p.rules })),
      localNamespaces: () => manager.listNamespaces().map((n) => ({ name: n.name, labels: manager.namespaceUserLabels(n.name) ?? [] })),
      applyService: (name, req, reason) =>
        serial(() => {
          log.info({ service: name, reason }, req ? 'service set from the cluster' : 'service deleted from the cluster');
          if (!req) services.delete(name);
          else if (services.has(name)) services.update(req);
          else services.add(req);
        }),
      localServices: () => services.names(),
    };
  }
  repo.listener = agentEvents.policyListener();
  manager.listener = agentEvents.endpointListener();
  manager.identityListener = agentEvents.identityListener();
  reconciler.regeneration = agentEvents.regenerationListener();
  const cluster = kv && registry ? await joinClusterState(kv, registry) : undefined;
  await manager.restore();
  await cluster?.restored();
  manager.pool = new InterfacePool(nl, datapath, opts.nodeName, ipam.router, opts.interfacePool, log, mtu);
  const lb = LbDatapath.load(opts.bpfObjectDir, opts.bpffsDir);
  lb.attach(opts.cgroupRoot, opts.bpffsDir);
  // A service's selector chooses among this node's endpoints and, in a cluster, the others'.
  const backendCandidates = (): BackendCandidate[] => [
    ...manager.listEndpoints(),
    ...(cluster?.shared.remoteEndpoints().map((e) => ({ state: 'ready' as const, labels: e.labels, ipv4: e.ip, namespace: e.namespace, name: e.name })) ?? []),
  ];
  const services = new ServiceManager(store, lb, backendCandidates, log, opts.maglevSize);
  services.syncAll();
  await cluster?.intent.start(); // policies, namespaces and services as the cluster has them
  reconciler.onChange(() => services.endpointsChanged());
  reconciler.onRemoteChange(() => services.endpointsChanged()); // backends on other nodes
  log.info({ endpoints: manager.listEndpoints().length, sync: reconciler.lastSync }, 'state restored');
  const health = (): ClusterNode['health'] => (manager.listEndpoints().every((e) => e.state === 'ready') ? 'ok' : 'degraded');
  local = { health, endpoints: () => manager.listEndpoints().length };
  const clusterNodes = (): ClusterNode[] =>
    registry?.list() ?? [{ ...self, health: health(), endpoints: manager.listEndpoints().length, heartbeat: new Date().toISOString() }];

  const listening = { hubble: '', metrics: '', hubblePeer: '' };
  /**
   * Who follows flows. In a cluster every reader of this agent follows through its relay, and the
   * ring's other subscribers are the other nodes' relays.
   */
  const followers = (): Pick<Status['flows'], 'followers' | 'peerFollowers'> =>
    relay && localFlows ? { followers: relay.followers, peerFollowers: Math.max(0, ring.status().followers - localFlows.subscribed) } : { followers: ring.status().followers };

  const api = new ApiServer(log)
    .route('GET', '/v1/status', (): Status => {
      const eps = manager.listEndpoints();
      const maps = datapath.pressure();
      const notReady = eps.filter((e) => e.state !== 'ready').length;
      return {
        health: notReady === 0 ? 'ok' : 'degraded',
        version: VERSION,
        node: { name: opts.nodeName, ip: self.ip, podCIDR: formatCidr(ipam.cidr), routerIP: ipam.router },
        uptimeSeconds: Math.round((Date.now() - started) / 1000),
        kernel: features,
        counts: { endpoints: eps.length, endpointsNotReady: notReady, identities: manager.identityCount, namespaces: manager.namespaceCount },
        interfacePool: { ready: manager.pool?.readyCount ?? 0, size: opts.interfacePool },
        ipam: { allocated: ipam.allocated, capacity: ipam.capacity },
        maps,
        lastSync: reconciler.lastSync,
        memory: agentMemory(),
        flows: { ...ring.status(), ...followers(), aggregation: opts.aggregation, eventsRead: monitor.eventsRead, backlogBytes: monitor.backlogBytes, decodeErrors: monitor.decodeErrors },
        listen: { hubble: listening.hubble, hubbleSocket: opts.hubbleSocket, metrics: listening.metrics, hubbleTls: hubbleTcp?.mode, metricsTls: metricsTcp?.mode, ...(listening.hubblePeer ? { hubblePeer: listening.hubblePeer } : {}) },
        paths: { stateDir: opts.stateDir, bpffsDir: opts.bpffsDir, socket: opts.socket },
        policy: { enforcement: opts.enforcement, auditMode: opts.auditMode, revision: repo.revision },
        datapath: {
          objects: {
            [ENDPOINT_OBJECT]: datapath.objectVersion,
            [SOCK_OBJECT]: lb.objectVersion,
            ...(tunnel ? { [OVERLAY_PROGRAMS.object]: tunnel.overlay.objectVersion } : {}),
            ...(underlay?.masquerade ? { [NETDEV_PROGRAMS.object]: underlay.masquerade.programs.objectVersion } : {}),
          },
          programsAdopted: datapath.programsAdopted,
        },
        kvstore: kv ? { backend: 'etcd', ...kv.status() } : { backend: 'embedded' },
        cluster: { nodes: clusterNodes().length, healthy: clusterNodes().filter((n) => n.health === 'ok').length },
        routing: {
          ...(registry ? { mode: opts.routingMode, hostRouting: opts.fastPath ? 'BPF' : 'Legacy' } : {}),
          ...(underlay?.masquerade ? { masquerade: { device: underlay.device, address: underlay.masquerade.address } } : {}),
        },
      };
    });
  // Diagnostics: a full garbage collection when the agent runs with node's --expose-gc (the
  // memory benchmark measures what the agent really holds).
  api.route('POST', '/v1/debug/gc', () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc) gc();
    return { collected: gc !== undefined, memory: agentMemory() };
  });
  registerEndpointRoutes(api, { manager, datapath, serial, ...(cluster ? { shared: cluster.intent, remoteEndpointsIn: cluster.remoteEndpointsIn } : {}) });
  registerServiceRoutes(api, { services, lb, serial, ...(cluster ? { shared: cluster.intent } : {}) });
  registerNodeRoutes(api, clusterNodes);

  const decoder = new FlowDecoder(flowContext(opts.nodeName, reconciler, realizer, services, cluster?.shared));
  const ring = new FlowRing(opts.flowCapacity, opts.nodeName, (ev) => decoder.materialize(ev));
  const metrics = new Metrics({
    endpoints: () => manager.listEndpoints().length,
    identities: () => manager.identityCount,
    policyRevision: () => repo.revision,
    mapPressure: () => datapath.pressure(),
    lostEvents: () => ring.lostEvents,
    flowFollowers: () => ring.status().followers,
  });
  const monitor = new FlowMonitor(datapath, ring, metrics, decoder, log);
  monitor.configure(opts.aggregation, opts.fastPath);
  monitor.start();
  const parser = new PolicyParser();
  registerPolicyRoutes(api, { repo, realizer, manager, reconciler, datapath, serial, metrics, parser, ...(cluster ? { shared: cluster.intent } : {}) });
  // In a cluster this agent is also a relay: what its readers ask for flows (the API, the
  // Observer on --hubble-address and hubble.sock) covers every node, read over mutual TLS.
  const localFlows = registry ? new LocalFlows(ring, matchesRequest, VERSION) : undefined;
  const relay = localFlows ? new Relay(new PeerPool(localFlows, () => registry!.list(), peerTls, PEER_TIMEOUT_MS), { log }) : undefined;
  registerFlowRoutes(api, ring, metrics, relay);
  // Both listeners disabled ('' and ''): no Observer server at all.
  const observer = !hubbleTcp && !opts.hubbleSocket ? undefined : await startObserverServer(ring, {
    ...(hubbleTcp ? { tcpAddress: opts.hubbleAddress, ...(hubbleTcp.tls ? { tls: hubbleTcp.tls } : {}) } : {}),
    ...(opts.hubbleSocket ? { unixSocket: opts.hubbleSocket } : {}),
    version: VERSION,
    filter: matchesRequest,
    agentEvents,
    ...(relay ? { cluster: relay } : {}),
  });
  // The Observer the other nodes' relays read: this node's own flows, on the underlay, mutual TLS
  // only (a client without a certificate the cluster CA signed fails the handshake).
  const peerObserver = peerAddress === undefined || !peerTls ? undefined : await startObserverServer(ring, {
    tcpAddress: peerAddress,
    tls: { cert: peerTls.cert, key: peerTls.key, clientCa: peerTls.ca },
    version: VERSION,
    filter: matchesRequest,
    agentEvents,
  });
  if (registry && !peerObserver) log.warn('this node serves no Observer to its peers (no --hubble-peer-tls-* files): the other nodes report it unavailable in cluster-wide flows');
  if (registry && !peerTls) log.warn('this node has no certificate to reach its peers with (--hubble-peer-tls-*): its cluster-wide flows report them unavailable');
  const metricsServer = metricsTcp ? await metrics.serve(opts.metricsAddress, metricsTcp.tls) : undefined;
  for (const warning of [hubbleTcp?.warning, metricsTcp?.warning]) if (warning) log.warn(warning);
  const ctGc = setInterval(() => {
    const removed = sweepConntrack(datapath.ct, datapath.clock.nowNs());
    if (removed) log.debug({ removed }, 'expired connection-tracking entries removed');
  }, CT_GC_INTERVAL_MS);
  ctGc.unref();
  listening.hubble = observer?.tcpPort !== undefined ? `${opts.hubbleAddress.slice(0, opts.hubbleAddress.lastIndexOf(':'))}:${observer.tcpPort}` : '';
  listening.metrics = metricsServer?.address ?? '';
  listening.hubblePeer = peerObserver?.tcpPort !== undefined && peerAddress ? `${peerAddress.slice(0, peerAddress.lastIndexOf(':'))}:${peerObserver.tcpPort}` : '';
  // Endpoints may not reach the agent's own listeners through the node, whatever address they bind.
  const metricsPort = (metricsServer?.server.address() as AddressInfo | null)?.port;
  datapath.protectAgentPorts([observer?.tcpPort, peerObserver?.tcpPort, metricsPort].filter((p): p is number => p !== undefined));
  // Peers find this node's Observer in its registry entry.
  if (registry && peerObserver?.tcpPort !== undefined) await registry.advertise({ observerPort: peerObserver.tcpPort });

  fs.mkdirSync(path.dirname(opts.socket), { recursive: true, mode: 0o700 });
  await api.listen(opts.socket);
  log.info({ socket: opts.socket, podCidr: formatCidr(ipam.cidr) }, 'agent ready');
  agentEvents.agentStarted();
  // Prepared interfaces and a started policy parser only speed up later requests: made once the agent is ready.
  manager.pool.fill();
  parser.warm();

  return {
    stop: async () => {
      clearInterval(ctGc);
      monitor.stop();
      await observer?.close();
      await peerObserver?.close();
      relay?.close();
      metricsServer?.server.close();
      await api.close();
      datapath.close(); // links stay pinned: traffic keeps flowing while the agent is away
      tunnel?.overlay.close(); // the device, its links and the routes stay too
      underlay?.masquerade?.programs.close(); // its links and the NAT table stay: connections to the outside live on
      lb.close();
      registry?.stop();
      cluster?.stop();
      kv?.close(); // the lease lives on until its TTL: a restart adopts it, a dead node's keys expire
      fs.rmSync(opts.socket, { force: true });
    },
  };
}
