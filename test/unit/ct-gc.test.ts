import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ctExpired } from '../../src/datapath/ct-gc.js';

const S = 1_000_000_000n;
const entry = (lastSeenS: number, flags: number) => ({
  last_seen_ns: BigInt(lastSeenS) * S,
  packets: 1n,
  bytes: 60n,
  ep_id: 1,
  remote_identity: 256,
  policy_revision: 1,
  tcp_flags_seen: flags,
  tx_flags_seen: flags,
  rx_flags_seen: 0,
  flags: 0,
  last_tx_report: 0,
  last_rx_report: 0,
  nat_addr: '0.0.0.0',
  nat_port: 0,
  pad: 0,
  ipcache_revision: 0,
  pad2: 0,
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
