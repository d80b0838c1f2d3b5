import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Ipam } from '../../src/endpoint/ipam.js';
import { parseCidr } from '../../src/net/ipv4.js';

describe('IPAM', () => {
  it('reserves network, router and broadcast addresses', () => {
    const ipam = new Ipam(parseCidr('10.0.0.0/30'));
    assert.equal(ipam.router, '10.0.0.1');
    assert.equal(ipam.allocate(), '10.0.0.2');
    assert.throws(() => ipam.allocate(), /no free address/);
  });
  it('hands out the lowest free address and honours requests', () => {
    const ipam = new Ipam(parseCidr('10.1.0.0/24'));
    assert.equal(ipam.allocate('10.1.0.9'), '10.1.0.9');
    assert.equal(ipam.allocate(), '10.1.0.2');
    ipam.release('10.1.0.2');
    assert.equal(ipam.allocate(), '10.1.0.2');
    assert.throws(() => ipam.allocate('10.1.0.9'), /already used/);
    assert.throws(() => ipam.allocate('10.1.0.1'), /outside the usable range/);
    assert.throws(() => ipam.allocate('10.1.0.255'), /outside the usable range/);
    assert.throws(() => ipam.allocate('10.2.0.5'), /outside the usable range/);
    assert.throws(() => ipam.allocate('10.1.0.300'), /not an IPv4 address/);
  });
  it('validates CIDRs', () => {
    assert.throws(() => parseCidr('10.0.0.1/24'), /host bits set/);
    assert.throws(() => parseCidr('10.0.0.0/33'), /not an IPv4 CIDR/);
    assert.throws(() => parseCidr('10.0.0.0'), /not an IPv4 CIDR/);
    assert.throws(() => new Ipam(parseCidr('10.0.0.0/31')), /too small/);
  });
});
