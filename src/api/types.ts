/* Wire types of the agent API, shared by the server and the typed client (and so the CLI). */

export interface NamedPort {
  name: string;
  port: number;
  protocol: 'TCP' | 'UDP' | 'SCTP';
}

export type EndpointState = 'ready' | 'not-ready';

export interface Endpoint {
  id: number;
  namespace: string;
  name: string;
  /** Every label of the endpoint, `source:key=value`, including the ones derived from its namespace. */
  labels: string[];
  /** The subset that makes up its identity. */
  identityLabels: string[];
  identity: number;
  ipv4: string;
  ports: NamedPort[];
  /** Network namespace name, usable with `ip netns exec`. */
  netns: string;
  /** True when the agent created the namespace (and deletes it with the endpoint). */
  netnsOwned: boolean;
  /** Host-side interface in the node namespace. */
  interface: string;
  ifindex: number;
  mac: string;
  hostMac: string;
  state: EndpointState;
  stateReason?: string;
  createdAt: string;
}

export interface EndpointAddRequest {
  namespace: string;
  name: string;
  labels?: string[];
  ipv4?: string;
  ports?: string[];
  netns?: string;
}

export interface EndpointUpdateRequest {
  labels: string[];
}

export interface Namespace {
  name: string;
  labels: Record<string, string>;
  endpoints: number;
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
  node: { name: string; podCIDR: string; routerIP: string };
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
    /** Clients following new flows (CLI and Observer API). */
    followers: number;
    aggregation: string;
    eventsRead: number;
    backlogBytes: number;
    decodeErrors: number;
  };
  /** Bound addresses ('' when disabled), and how the TCP ones are secured (absent when disabled). */
  listen: { hubble: string; hubbleSocket: string; metrics: string; hubbleTls?: 'plaintext' | 'tls' | 'mtls'; metricsTls?: 'plaintext' | 'tls' | 'mtls' };
  paths: { stateDir: string; bpffsDir: string; socket: string };
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
  policyRevision: number;
  entries: PolicyEntryRow[];
}

/** One tracked connection: `source` sent its first packet. */
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

export type ServiceProtocol = 'TCP' | 'UDP';

export interface ServiceBackend {
  ip: string;
  port: number;
  weight: number;
  /** Where it comes from: listed, or an endpoint selected by labels (NS/NAME). */
  endpoint?: string;
}

export interface Service {
  name: string;
  id: number;
  frontend: { ip: string; port: number; protocol: ServiceProtocol };
  algorithm: 'random' | 'maglev';
  /** Backends given explicitly. */
  backends: ServiceBackend[];
  /** Endpoint labels (`k=v`) that select backends, following endpoint churn. */
  selector?: Record<string, string>;
  /** Port on selected endpoints (defaults to the frontend port). */
  targetPort?: number;
  /** Session affinity by client (Kubernetes' sessionAffinity: ClientIP): a client keeps its backend
   * while it keeps connecting within the timeout. */
  affinity?: { timeoutSeconds: number };
}

/** A service with the backends it currently balances over. */
export interface ServiceView extends Service {
  activeBackends: ServiceBackend[];
}

export interface ServiceRequest {
  name: string;
  frontend: string;
  backends?: string[];
  selector?: string[];
  targetPort?: number;
  algorithm?: string;
  /** 'client-ip' or 'none' (default). */
  affinity?: string;
  /** Seconds (default 10800, Kubernetes' default). */
  affinityTimeout?: number;
}

export interface LbRow {
  frontend: string;
  serviceId: number;
  count: number;
  algorithm: 'random' | 'maglev' | string;
  /** Entries of the Maglev table in the map (0 for random). */
  maglevEntries: number;
  /** Session affinity timeout in seconds (0: none), and clients remembered. */
  affinityTimeout: number;
  affinityClients: number;
  /** Backend of each slot, in slot order (a weight is several slots). */
  backends: string[];
}
