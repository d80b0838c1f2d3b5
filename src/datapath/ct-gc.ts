/* Connection-tracking garbage collection. The datapath treats an idle entry as gone (it checks
 * the lifetime on lookup) but leaves it in the LRU map; the agent sweeps such entries now and
 * then so that `bpf ct list` and map pressure show live connections only. The lifetimes are the
 * datapath's own (enum mb_ct_lifetime). */
import type { Datapath } from './datapath.js';
import { CT_LIFETIME, ctKey, ctValue } from './layouts.js';
import { offsetsOf, type StructValue } from './struct.js';

type CtMap = Datapath['ct'];

const NS = 1_000_000_000n;
const LIFETIME = {
  tcp: BigInt(CT_LIFETIME.TCP) * NS,
  tcpSyn: BigInt(CT_LIFETIME.TCP_SYN) * NS,
  tcpClosing: BigInt(CT_LIFETIME.TCP_CLOSING) * NS,
  other: BigInt(CT_LIFETIME.OTHER) * NS,
};
const TCP = 6;
const FIN_OR_RST = 0x01 | 0x04;
const ACK = 0x10;

export function ctExpired(v: Pick<StructValue<typeof ctValue>, 'last_seen_ns' | 'tcp_flags_seen'>, protocol: number, nowNs: bigint): boolean {
  let lifetime = LIFETIME.other;
  if (protocol === TCP) {
    if (v.tcp_flags_seen & FIN_OR_RST) lifetime = LIFETIME.tcpClosing;
    else if (!(v.tcp_flags_seen & ACK)) lifetime = LIFETIME.tcpSyn;
    else lifetime = LIFETIME.tcp;
  }
  return nowNs - v.last_seen_ns > lifetime;
}

const KEY = offsetsOf(ctKey);
const VALUE = offsetsOf(ctValue);

/**
 * Deletes expired entries; returns how many. `nowNs` is the datapath clock (Datapath.clock). It
 * reads the two fields it needs straight from the map's batch buffers: decoding every entry of a
 * busy table made a burst of objects each sweep, big enough to be promoted and cost a major GC.
 */
export function sweepConntrack(ct: CtMap, nowNs: bigint): number {
  const expired: Buffer[] = [];
  ct.raw.forEach((key, value) => {
    const entry = { last_seen_ns: value.readBigUInt64LE(VALUE.last_seen_ns), tcp_flags_seen: value[VALUE.tcp_flags_seen]! };
    if (ctExpired(entry, key[KEY.protocol]!, nowNs)) expired.push(Buffer.from(key));
  });
  ct.raw.deleteMany(expired);
  return expired.length;
}
