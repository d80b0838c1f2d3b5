/* How traffic to the other nodes' endpoints leaves a node (DESIGN.md §3.13), as the agent's
 * --routing-mode spells it. tunnel (the default, as in Cilium): encapsulated in VXLAN to the
 * hosting node, the sender's security identity in the VNI. native: routed as it is, by routes
 * to each node's pod CIDR through its underlay address; the receiver classifies the source by
 * the ipcache. */

export const ROUTING_MODES = ['tunnel', 'native'] as const;
export type RoutingMode = (typeof ROUTING_MODES)[number];

/** Cilium's VXLAN port (the IANA port 4789 is often taken by other overlays on the same hosts). */
export const DEFAULT_TUNNEL_PORT = 8472;
