/* What a relay offers the readers of flows: in a cluster the Observer gRPC server (on
 * --hubble-address and hubble.sock) and the agent API (`membrane observe`) answer GetFlows,
 * GetNodes and ServerStatus for every node through it, as Hubble Relay does. Declared here,
 * below the cluster layer that implements it (src/cluster/relay/), so those readers need not know
 * where the flows come from. Names and shapes are Hubble's (observer.proto, relay.proto). */
import type { Flow, GetFlowsRequest, LostEvents } from './types.js';

/** Hubble's relay.NodeState. */
export type NodeState = 'NODE_CONNECTED' | 'NODE_UNAVAILABLE' | 'NODE_GONE' | 'NODE_ERROR';

/** Hubble's relay.NodeStatusEvent: which nodes a relay's stream now includes, or lost. */
export interface NodeStatusEvent {
  state_change: NodeState;
  node_names: string[];
  message?: string;
}

/**
 * One response of a cluster-wide GetFlows, as Hubble's GetFlowsResponse: exactly one of a flow,
 * a node status or lost events, with the node it concerns (the relay's own for a node status)
 * and when it was observed.
 */
export type ClusterFlowsEvent =
  | { flow: Flow; node_name: string; time: string }
  | { node_status: NodeStatusEvent; node_name: string; time: string }
  | { lost_events: LostEvents; node_name: string; time: string };

/** Hubble's observer.Node: one node of the cluster as the relay reaches it. */
export interface ObserverNode {
  name: string;
  version: string;
  /** host:port of its Observer for peers ('' when it serves none). */
  address: string;
  state: NodeState;
  tls: { enabled: boolean; server_name?: string };
  uptime_ns: number;
  num_flows: number;
  max_flows: number;
  seen_flows: number;
}

/** Hubble Relay's ServerStatusResponse: the sums over the nodes that answered. */
export interface ClusterStatus {
  num_flows: number;
  max_flows: number;
  seen_flows: number;
  /** The longest uptime among the nodes (a sum would mean nothing). */
  uptime_ns: number;
  flows_rate: number;
  num_connected_nodes: number;
  num_unavailable_nodes: number;
  /** At most ten, as Hubble Relay reports. */
  unavailable_nodes: string[];
}

export interface ClusterObserver {
  /**
   * Streams the responses to `req` (already checked) into `emit`: node statuses first, then the
   * flows of every node that can match, in time order. Without follow it resolves once every
   * node has answered or failed; with follow it runs until `signal` aborts (or every node's
   * stream has reached `until`). A node that does not answer is reported, never fatal.
   * `emit` returns a promise when the reader is behind: history waits for it before sending more
   * (a relay holds every node's history at once); followed flows do not wait, the reader's
   * bounded queue counts what it cannot take as lost.
   */
  getFlows(req: GetFlowsRequest, emit: (ev: ClusterFlowsEvent) => void | Promise<void>, signal: AbortSignal): Promise<void>;
  /** Every node of the cluster, this one included, with its state. */
  nodes(): Promise<ObserverNode[]>;
  status(): Promise<ClusterStatus>;
}
