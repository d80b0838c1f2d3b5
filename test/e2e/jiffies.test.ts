import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { probeDatapathClock } from '../../src/kernel/jiffies.js';

describe("connection tracking's clock", () => {
  const clock = probeDatapathClock();
  it('finds the kernel tick on this machine', () => assert.ok([2_500_000, 3_333_333, 4_000_000, 1_000_000, 10_000_000].includes(clock.nsPerJiffy), String(clock.nsPerJiffy)));
  it('moves with CLOCK_MONOTONIC, in whole ticks', () => {
    const mono = process.hrtime.bigint();
    const step = clock.nowNs(mono + 10_000_000_000n) - clock.nowNs(mono);
    assert.ok(step >= 10_000_000_000n - BigInt(clock.nsPerJiffy) && step <= 10_000_000_000n + BigInt(clock.nsPerJiffy), String(step));
    assert.equal(clock.nowNs(mono) % BigInt(clock.nsPerJiffy), 0n);
  });
});
