/* Services as the user declares them and as the datapath realizes them (bpf lb list). The API
 * carries these as they are (src/api/types.ts). */

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
