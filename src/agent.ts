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
import { StartupError } from './errors.js';
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
import { IprouteNetlink, type Netlink } from './kernel/netlink.js';
import { EmbeddedStore } from './store/embedded.js';
import { Mutex } from './util/mutex.js';
import { VERSION } from './util/version.js';
import { checkListener, type TlsFiles } from './util/listen.js';
import { registerEndpointRoutes } from './api/endpoint-routes.js';
import { registerServiceRoutes } from './api/service-routes.js';
import { LbDatapath, SOCK_OBJECT } from './service/datapath.js';
import { ServiceManager } from './service/manager.js';
import { registerPolicyRoutes } from './api/policy-routes.js';
import { registerFlowRoutes } from './api/flow-routes.js';
import type { AggregationLevel } from './datapath/layouts.js';
import { AgentEventLog } from './flow/agent-events.js';
import { flowContext } from './flow/context.js';
import { FlowDecoder } from './flow/decoder.js';
import { matchesRequest } from './flow/filter.js';
import { startObserverServer } from './flow/grpc-server.js';
import { Metrics } from './flow/metrics.js';
import { FlowMonitor } from './flow/monitor.js';
import { FlowRing } from './flow/ring.js';
import type { EnforcementMode } from './policy/engine.js';
import { PolicyRealizer } from './policy/realize.js';
import { PolicyRepository } from './policy/repository.js';

export interface AgentOptions {
  nodeName: string;
  podCidr: string;
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
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_BPF_OBJECT_DIR = path.join(repoRoot, 'build');

const CT_GC_INTERVAL_MS = 30_000;


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
  for (const name of ['endpoint.o', 'sock.o']) {
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
  const features = preflight(opts);
  const started = Date.now();
  let podCidr;
  try {
    podCidr = parseCidr(opts.podCidr);
  } catch (err) {
    throw new StartupError(`--pod-cidr: ${(err as Error).message}`);
  }
  const ipam = new Ipam(podCidr);
  const nl = new IprouteNetlink();
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
  const manager = new EndpointManager({ nodeName: opts.nodeName, cluster: opts.cluster, ipam, stateDir: opts.stateDir }, store, nl, datapath, log);
  const reconciler = new DatapathReconciler(manager, { router: ipam.router, nodeAddresses }, datapath, realizer, log);
  manager.changes = reconciler;
  const agentEvents = new AgentEventLog(opts.nodeName);
  repo.listener = agentEvents.policyListener();
  manager.listener = agentEvents.endpointListener();
  manager.identityListener = agentEvents.identityListener();
  reconciler.regeneration = agentEvents.regenerationListener();
  await manager.restore();
  manager.pool = new InterfacePool(nl, datapath, opts.nodeName, ipam.router, opts.interfacePool, log);
  const lb = LbDatapath.load(opts.bpfObjectDir, opts.bpffsDir);
  lb.attach(opts.cgroupRoot, opts.bpffsDir);
  const services = new ServiceManager(store, lb, () => manager.listEndpoints(), log, opts.maglevSize);
  services.syncAll();
  reconciler.onChange(() => services.endpointsChanged());
  log.info({ endpoints: manager.listEndpoints().length, sync: reconciler.lastSync }, 'state restored');

  const listening = { hubble: '', metrics: '' };
  const mutex = new Mutex();
  const serial = <T>(fn: () => Promise<T> | T) => mutex.run(fn);
  const api = new ApiServer(log)
    .route('GET', '/v1/status', (): Status => {
      const eps = manager.listEndpoints();
      const maps = datapath.pressure();
      const notReady = eps.filter((e) => e.state !== 'ready').length;
      return {
        health: notReady === 0 ? 'ok' : 'degraded',
        version: VERSION,
        node: { name: opts.nodeName, podCIDR: formatCidr(ipam.cidr), routerIP: ipam.router },
        uptimeSeconds: Math.round((Date.now() - started) / 1000),
        kernel: features,
        counts: { endpoints: eps.length, endpointsNotReady: notReady, identities: manager.identityCount, namespaces: manager.namespaceCount },
        interfacePool: { ready: manager.pool?.readyCount ?? 0, size: opts.interfacePool },
        ipam: { allocated: ipam.allocated, capacity: ipam.capacity },
        maps,
        lastSync: reconciler.lastSync,
        memory: agentMemory(),
        flows: { ...ring.status(), aggregation: opts.aggregation, eventsRead: monitor.eventsRead, backlogBytes: monitor.backlogBytes, decodeErrors: monitor.decodeErrors },
        listen: { hubble: listening.hubble, hubbleSocket: opts.hubbleSocket, metrics: listening.metrics, hubbleTls: hubbleTcp?.mode, metricsTls: metricsTcp?.mode },
        paths: { stateDir: opts.stateDir, bpffsDir: opts.bpffsDir, socket: opts.socket },
        policy: { enforcement: opts.enforcement, auditMode: opts.auditMode, revision: repo.revision },
        datapath: { objects: { [ENDPOINT_OBJECT]: datapath.objectVersion, [SOCK_OBJECT]: lb.objectVersion }, programsAdopted: datapath.programsAdopted },
      };
    });
  // Diagnostics: a full garbage collection when the agent runs with node's --expose-gc (the
  // memory benchmark measures what the agent really holds).
  api.route('POST', '/v1/debug/gc', () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc) gc();
    return { collected: gc !== undefined, memory: agentMemory() };
  });
  registerEndpointRoutes(api, { manager, datapath, serial });
  registerServiceRoutes(api, { services, lb, serial });

  const decoder = new FlowDecoder(flowContext(opts.nodeName, reconciler, realizer, services));
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
  registerPolicyRoutes(api, { repo, realizer, manager, reconciler, datapath, serial, metrics });
  registerFlowRoutes(api, ring, metrics);
  const observer = await startObserverServer(ring, {
    ...(hubbleTcp ? { tcpAddress: opts.hubbleAddress, ...(hubbleTcp.tls ? { tls: hubbleTcp.tls } : {}) } : {}),
    ...(opts.hubbleSocket ? { unixSocket: opts.hubbleSocket } : {}),
    version: VERSION,
    filter: matchesRequest,
    agentEvents,
  });
  const metricsServer = metricsTcp ? await metrics.serve(opts.metricsAddress, metricsTcp.tls) : undefined;
  for (const warning of [hubbleTcp?.warning, metricsTcp?.warning]) if (warning) log.warn(warning);
  const ctGc = setInterval(() => {
    const removed = sweepConntrack(datapath.ct, datapath.clock.nowNs());
    if (removed) log.debug({ removed }, 'expired connection-tracking entries removed');
  }, CT_GC_INTERVAL_MS);
  ctGc.unref();
  listening.hubble = observer.tcpPort !== undefined ? `${opts.hubbleAddress.slice(0, opts.hubbleAddress.lastIndexOf(':'))}:${observer.tcpPort}` : '';
  listening.metrics = metricsServer?.address ?? '';
  // Endpoints may not reach the agent's own listeners through the node, whatever address they bind.
  const metricsPort = (metricsServer?.server.address() as AddressInfo | null)?.port;
  datapath.protectAgentPorts([observer.tcpPort, metricsPort].filter((p): p is number => p !== undefined));

  fs.mkdirSync(path.dirname(opts.socket), { recursive: true, mode: 0o700 });
  await api.listen(opts.socket);
  log.info({ socket: opts.socket, podCidr: formatCidr(ipam.cidr) }, 'agent ready');
  agentEvents.agentStarted();
  // Prepared interfaces only speed up later endpoint adds: made once the agent is ready.
  manager.pool.fill();

  return {
    stop: async () => {
      clearInterval(ctGc);
      monitor.stop();
      await observer.close();
      metricsServer?.server.close();
      await api.close();
      datapath.close(); // links stay pinned: traffic keeps flowing while the agent is away
      lb.close();
      fs.rmSync(opts.socket, { force: true });
    },
  };
}
