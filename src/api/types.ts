/* Wire types of the agent API, shared by the server and the typed client (and so the CLI). The
 * domain types the API carries live with the modules that own them and are re-exported here. */
export type { NamedPort } from '../policy/ports.js';
export type { Endpoint, EndpointAddRequest, EndpointState, Namespace } from '../endpoint/types.js';
export type { ClusterNode } from '../cluster/node-registry.js';
export type { EtcdStatus } from '../store/etcd.js';
export type { LbRow, Service, ServiceBackend, ServiceProtocol, ServiceRequest, ServiceView } from '../service/types.js';

import type { EtcdStatus } from '../store/etcd.js';

export interface EndpointUpdateRequest {
  labels: string[];
}

export interface Identity {
  id: number;
  labels: string[];
  reserved: boolean;
  endpoints: number;
}

export interface IpcacheRow {
  prefix: string;
  identity: number;
  tunnelEndpoint: string;
  encryptKey: number;
  flags: number;
}

export interface MetricsRow {
  endpoint: number;
  direction: 'INGRESS' | 'EGRESS';
  remoteIdentity: number;
  reason: string;
  packets: number;
  bytes: number;
}

export interface MapPressure {
  map: string;
  entries: number;
  maxEntries: number;
  pressure: number;
}

export interface Status {
  health: 'ok' | 'degraded';
  version: string;
  node: { name: string; ip: string; podCIDR: string; routerIP: string };
  uptimeSeconds: number;
  kernel: { release: string; features: Record<string, boolean> };
  counts: { endpoints: number; endpointsNotReady: number; identities: number; namespaces: number };
  /** Interfaces prepared ahead of endpoint adds. */
  interfacePool: { ready: number; size: number };
  ipam: { allocated: number; capacity: number };
  maps: MapPressure[];
  lastSync: { written: number; deleted: number; unchanged: number; at: string; reason: string };
  memory: { rssBytes: number; heapUsedBytes: number; heapTotalBytes: number; externalBytes: number };
  flows: {
    num_flows: number;
    max_flows: number;
    seen_flows: number;
    uptime_ns: number;
    lost_events: number;
    /**
     * Clients following new flows (CLI and Observer API). In a cluster, those following through
     * this node's relay, counted once every node they asked is streaming to them.
     */
    followers: number;
    /** In a cluster: other nodes' relays following this node's flows (through its Observer for peers). */
    peerFollowers?: number;
    aggregation: string;
    eventsRead: number;
    backlogBytes: number;
    decodeErrors: number;
  };
  /**
   * Bound addresses ('' when disabled), and how the TCP ones are secured (absent when disabled);
   * hubblePeer: in a cluster, the Observer other nodes' relays read (mutual TLS only).
   */
  listen: { hubble: string; hubbleSocket: string; metrics: string; hubbleTls?: 'plaintext' | 'tls' | 'mtls'; metricsTls?: 'plaintext' | 'tls' | 'mtls'; hubblePeer?: string };
  paths: { stateDir: string; bpffsDir: string; socket: string };
  /** How policy is enforced, and the repository's revision (what `policy get` shows). */
  policy: { enforcement: 'default' | 'always' | 'never'; auditMode: boolean; revision: number };
  /** The loaded BPF objects by file with their versions (content hashes), and whether the
   * programs an earlier agent verified were adopted rather than loaded again. */
  datapath: { objects: Record<string, string>; programsAdopted: boolean };
  /** Where shared state lives: this node's own store, or a cluster's etcd (with its connection). */
  kvstore: { backend: 'embedded' } | ({ backend: 'etcd' } & EtcdStatus);
  /** The cluster's nodes as this agent sees them (just this one without a kvstore). */
  cluster: { nodes: number; healthy: number };
  /**
   * How traffic leaves the node: to other nodes' endpoints (routing mode, in a cluster, and host
   * routing as Cilium names it: BPF when endpoints' packets to other nodes leave by the
   * datapath's hand, not the node's routing, Legacy when the node's stack routes them), and out
   * of the cluster (BPF masquerading to `address` on `device`, or none).
   */
  routing: { mode?: 'tunnel' | 'native'; hostRouting?: 'BPF' | 'Legacy'; masquerade?: { device: string; address: string } };
}

export interface ApiErrorBody {
  error: { code: string; message: string };
}

export interface PolicyFile {
  name: string;
  content: string;
}

export interface PolicySummary {
  kind: string;
  namespace?: string;
  name: string;
  rules: number;
  revision: number;
}

export interface PolicyImportResult {
  revision: number;
  policies: PolicySummary[];
  /** One-line notes about the files that are not errors (e.g. a policy defaulted into namespace default). */
  notes?: string[];
}

export interface PolicyList {
  revision: number;
  policies: (PolicySummary & { source: unknown })[];
}

export interface SelectorRow {
  selector: string;
  users: number;
  identities: number[];
}

export interface PolicyEntryRow {
  policy: 'Allow' | 'Deny';
  direction: 'INGRESS' | 'EGRESS';
  identity: number;
  labels: string[];
  port: string;
  prefixLength: number;
  rule: string;
}

export interface EndpointPolicyView {
  endpoint: number;
  ingressEnforced: boolean;
  egressEnforced: boolean;
  /** The policy repository's revision the entries realize: what `policy get` shows. */
  policyRevision: number;
  /** Moves whenever this endpoint's own entries or enforcement change (the datapath re-judges its connections then). */
  endpointRevision: number;
  entries: PolicyEntryRow[];
}

/** One tracked connection: `source` sent its first packet. */
/** One entry of BPF masquerading's NAT table, as `cilium bpf nat list` shows it. */
export interface NatRow {
  protocol: string;
  /** OUT: an endpoint's packets leaving (their source is translated); IN: the replies (their destination). */
  direction: 'OUT' | 'IN';
  source: string;
  destination: string;
  /** The address and port the source (OUT) or destination (IN) is translated to. */
  translated: string;
  ageSeconds: number;
}

export interface CtRow {
  protocol: string;
  source: string;
  destination: string;
  /** The endpoints of this node that judged it: the originator (EGRESS), the acceptor (INGRESS). */
  endpoints: { endpoint: number; direction: 'INGRESS' | 'EGRESS'; remoteIdentity: number }[];
  /** A service entry (tc-level translation): the client endpoint it belongs to. */
  serviceOf?: number;
  sourceIdentity: number;
  destinationIdentity: number;
  packets: number;
  bytes: number;
  idleSeconds: number;
  tcpFlags: number;
  /** tc-level service translation: `backend` on a client's entry towards a frontend (which
   * backend its packets go to), `frontend` on the translated connection (where replies seem
   * to come from). */
  nat?: { backend?: string; frontend?: string };
}

