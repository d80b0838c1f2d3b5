/* IPv4 parsing is strict: only the spelling every tool reads the same way is accepted, so the
 * address the agent allocates is the one the kernel gets. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UserError } from '../../src/errors.js';
import { canonicalIpv4, cidrContains, formatCidr, intToIp, ipToInt, isIpv4, parseCidr } from '../../src/net/ipv4.js';

describe('IPv4 addresses', () => {
  it('reads dotted decimal addresses', () => {
    assert.equal(ipToInt('10.242.10.5'), 0x0af20a05);
    assert.equal(ipToInt('0.0.0.0'), 0);
    assert.equal(ipToInt('255.255.255.255'), 0xffffffff);
    assert.equal(intToIp(0x0af20a05), '10.242.10.5');
    assert.equal(intToIp(0xffffffff), '255.255.255.255');
  });

  // Each of these is an address to inet_aton or iproute2, and a different one than it looks.
  for (const bad of ['10.242.010.5', '010.1.1.1', '10.1.1.01', '0x0a.1.1.1', '10.0x1.1.1', '167772165', '10.1.1', '10.1.1.1.1', '10.1.1.256', ' 10.1.1.1', '10.1.1.1 ', '10.1.1.-1', '', '::1', '10.1.1.1/32']) {
    it(`refuses ${JSON.stringify(bad)} with one line`, () => {
      assert.equal(isIpv4(bad), false);
      assert.throws(() => ipToInt(bad), (e: Error) => e instanceof UserError && e.code === 'invalid' && !e.message.includes('\n'));
    });
  }

  it('hands on the canonical spelling only', () => assert.equal(canonicalIpv4('192.0.2.7'), '192.0.2.7'));

  it('reads prefixes strictly', () => {
    assert.equal(formatCidr(parseCidr('10.244.0.0/24')), '10.244.0.0/24');
    assert.ok(cidrContains(parseCidr('10.244.0.0/24'), ipToInt('10.244.0.255')));
    assert.ok(!cidrContains(parseCidr('10.244.0.0/24'), ipToInt('10.244.1.0')));
    for (const bad of ['10.244.0.0/024', '10.244.00.0/24', '10.244.0.0/33', '10.244.0.1/24', '10.244.0.0', '10.244.0.0/24/1']) {
      assert.throws(() => parseCidr(bad), UserError, bad);
    }
  });
});
