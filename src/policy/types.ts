/* The rule model every policy kind is translated into (CiliumNetworkPolicy,
 * CiliumClusterwideNetworkPolicy, Kubernetes NetworkPolicy). Selectors here are already
 * namespace-scoped as the source kind requires, so the engine never looks at the kind again. */

export type PolicyKind = 'CiliumNetworkPolicy' | 'CiliumClusterwideNetworkPolicy' | 'NetworkPolicy';

export interface PolicyRef {
  kind: PolicyKind;
  /** Absent for clusterwide policies. */
  namespace?: string;
  name: string;
}

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

/**
 * A label selector over an endpoint's identity labels. Keys carry their source:
 * `k8s:app`, `reserved:host`, or `any:app` (matches the key from any source). Unprefixed keys in
 * the input become `any:`.
 */
export interface Selector {
  matchLabels: Record<string, string>;
  matchExpressions: { key: string; operator: SelectorOperator; values: string[] }[];
}

export type Entity =
  | 'all'
  | 'world'
  | 'cluster'
  | 'host'
  | 'remote-node'
  | 'init'
  | 'health'
  | 'unmanaged'
  | 'kube-apiserver'
  | 'ingress'
  | 'none';

export type Peer =
  | { type: 'endpoints'; selector: Selector }
  | { type: 'entity'; entity: Entity }
  /**
   * Addresses outside the cluster, by prefix, minus `except`. `matchEndpoints` (Kubernetes
   * ipBlock) also selects local endpoints whose address is inside the block and not excepted.
   */
  | { type: 'cidr'; cidr: string; except: string[]; matchEndpoints: boolean };

export type Protocol = 'TCP' | 'UDP' | 'SCTP' | 'ICMP' | 'ANY';

export interface PortMatch {
  protocol: Protocol;
  /** A number, a named port (resolved on the destination endpoint), or undefined for all ports. */
  port?: number | string;
  /** Inclusive end of a numeric range. */
  endPort?: number;
  /** ICMP type, for protocol ICMP. */
  icmpType?: number;
}

export interface PeerRule {
  /** undefined: every peer (an L4-only rule). [] selects nothing. */
  peers?: Peer[];
  /** undefined: every port and protocol. */
  ports?: PortMatch[];
  /** The entry's `description`, as written (for humans; not interpreted). */
  description?: string;
}

export interface Rule {
  policy: PolicyRef;
  /** Endpoints the rule applies to. */
  subject: Selector;
  /** The rule's `description` (a Cilium spec's), as written (for humans; not interpreted). */
  description?: string;
  /**
   * Section present: the subject enters default deny in that direction. Cilium kinds set it only
   * when the YAML list is non-empty; a Kubernetes policy sets `[]` for a listed policyType
   * without rules (deny all).
   */
  ingress?: PeerRule[];
  egress?: PeerRule[];
  ingressDeny?: PeerRule[];
  egressDeny?: PeerRule[];
}

/** A policy as imported: its source document (for `policy get`) and its translated rules. */
export interface StoredPolicy {
  ref: PolicyRef;
  source: unknown;
  rules: Rule[];
  revision: number;
  /** The stable id of each rule (written into map entries; kept while the rule's policy stays). */
  ruleIds?: number[];
}
