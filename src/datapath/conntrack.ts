/* Reading connection-tracking entries (bpf/include/conntrack.h): one entry per connection, its
 * key in canonical order, with the local endpoints that judged it. */
import { CT_FLAGS, DIRECTION, type ctKey, type ctValue } from './layouts.js';
import type { StructValue } from './struct.js';

/** A local endpoint's part in a connection: the originator's egress or the acceptor's ingress. */
export interface ConnectionSide {
  endpoint: number;
  direction: (typeof DIRECTION)[keyof typeof DIRECTION];
  remoteIdentity: number;
}

export interface Connection {
  /** `address:port` of the endpoint of the connection that sent its first packet. */
  source: string;
  destination: string;
  sides: ConnectionSide[];
}

export function connectionOf(k: StructValue<typeof ctKey>, v: StructValue<typeof ctValue>): Connection {
  const a = `${k.addr_a}:${k.port_a}`;
  const b = `${k.addr_b}:${k.port_b}`;
  const origB = (v.flags & CT_FLAGS.ORIG_B) !== 0;
  const sides: ConnectionSide[] = [];
  // A service entry only remembers a client's backend; its egress_ep_id names the client.
  const service = (v.flags & CT_FLAGS.SERVICE) !== 0;
  if (v.egress_ep_id && !service) sides.push({ endpoint: v.egress_ep_id, direction: DIRECTION.EGRESS, remoteIdentity: v.dst_identity });
  if (v.ingress_ep_id && !service) sides.push({ endpoint: v.ingress_ep_id, direction: DIRECTION.INGRESS, remoteIdentity: v.src_identity });
  return { source: origB ? b : a, destination: origB ? a : b, sides };
}
