/* The endpoint model: a workload's namespace, interfaces, address, labels and identity, and the
 * namespaces endpoints live in. The API carries these as they are (src/api/types.ts). */
import type { NamedPort } from '../policy/ports.js';

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
  /** True when the agent named a namespace it was given by path (--netns /proc/PID/ns/net): the
   * name goes with the endpoint, the namespace stays its process's. */
  netnsAttached?: boolean;
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

export interface Namespace {
  name: string;
  labels: Record<string, string>;
  endpoints: number;
}
