import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ctExpired } from '../../src/datapath/ct-gc.js';
import { connectionOf } from '../../src/datapath/conntrack.js';
import { CT_FLAGS, DIRECTION } from '../../src/datapath/layouts.js';

const S = 1_000_000_000n;
const entry = (lastSeenS: number, flags: number) => ({
  last_seen_ns: BigInt(lastSeenS) * S,
  packets: 1n,
  bytes: 60n,
  src_identity: 256,
  dst_identity: 300,
  egress_ep_id: 1,
  egress_policy_revision: 1,
  egress_ipcache_revision: 0,
  ingress_ep_id: 0,
  ingress_policy_revision: 0,
  ingress_ipcache_revision: 0,
  tcp_flags_seen: flags,
  tx_flags_seen: flags,
  rx_flags_seen: 0,
  flags: 0,
  last_tx_report: 0,
  last_rx_report: 0,
  nat_addr: '0.0.0.0',
  nat_port: 0,
  pad: 0,
  tunnel_endpoint: '0.0.0.0',
});

describe('connection-tracking expiry (mirrors bpf/include/conntrack.h)', () => {
  const now = 100_000n * S;
  it('keeps established TCP for six hours', () => {
    assert.equal(ctExpired(entry(100_000 - 21_000, 0x12), 6, now), false);
    assert.equal(ctExpired(entry(100_000 - 21_601, 0x12), 6, now), true);
  });
  it('gives half-open TCP a minute and closing TCP ten seconds', () => {
    assert.equal(ctExpired(entry(100_000 - 59, 0x02), 6, now), false);
    assert.equal(ctExpired(entry(100_000 - 61, 0x02), 6, now), true);
    assert.equal(ctExpired(entry(100_000 - 11, 0x11), 6, now), true);
    assert.equal(ctExpired(entry(100_000 - 9, 0x14), 6, now), false);
  });
  it('gives UDP and ICMP a minute', () => {
    assert.equal(ctExpired(entry(100_000 - 59, 0), 17, now), false);
    assert.equal(ctExpired(entry(100_000 - 61, 0), 1, now), true);
  });
});

describe('connection-tracking entries as connections', () => {
  const key = { addr_a: '10.0.0.2', addr_b: '10.0.0.3', port_a: 40000, port_b: 80, protocol: 6, pad: Buffer.alloc(3) };
  it('orients the canonical key by who sent the first packet', () => {
    assert.equal(connectionOf(key, entry(1, 0x12)).source, '10.0.0.2:40000');
    const fromB = { ...entry(1, 0x12), flags: CT_FLAGS.ORIG_B };
    assert.deepEqual([connectionOf(key, fromB).source, connectionOf(key, fromB).destination], ['10.0.0.3:80', '10.0.0.2:40000']);
  });
  it('names each local endpoint that judged it, with its peer', () => {
    const both = { ...entry(1, 0x12), ingress_ep_id: 7 };
    assert.deepEqual(connectionOf(key, both).sides, [
      { endpoint: 1, direction: DIRECTION.EGRESS, remoteIdentity: 300 },
      { endpoint: 7, direction: DIRECTION.INGRESS, remoteIdentity: 256 },
    ]);
    assert.deepEqual(connectionOf(key, { ...both, flags: CT_FLAGS.SERVICE }).sides, [], 'a service entry is no connection of its own');
  });
});
