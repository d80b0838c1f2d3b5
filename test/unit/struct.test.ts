import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { endpointInfo, ipcacheKey, metricsKey } from '../../src/datapath/layouts.js';
import { ipcacheKeyFor, ipcachePrefixOf } from '../../src/datapath/ipcache.js';

describe('struct codec', () => {
  it('lays out fields with C alignment and round-trips values', () => {
    const buf = endpointInfo.encode({ ep_id: 7, identity: 300, ipv4: '10.0.0.5', mac: '02:00:00:00:00:01', node_mac: 'aa:bb:cc:dd:ee:ff' });
    assert.equal(buf.length, 40);
    assert.deepEqual([...buf.subarray(8, 12)], [10, 0, 0, 5], 'addresses are network order');
    const back = endpointInfo.decode(buf);
    assert.equal(back.ipv4, '10.0.0.5');
    assert.equal(back.node_mac, 'aa:bb:cc:dd:ee:ff');
    assert.equal(back.identity, 300);
  });
  it('zeroes padding and unset fields so map keys compare by bytes', () => {
    const into = Buffer.alloc(metricsKey.size, 0xff);
    metricsKey.encode({ ep_id: 1 }, into);
    assert.deepEqual([...into], [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });
  it('encodes ipcache prefixes with the family bits counted', () => {
    const key = ipcacheKeyFor('10.1.2.0/24');
    assert.equal(key.prefixlen, 56);
    assert.equal(ipcachePrefixOf(ipcacheKey.decode(ipcacheKey.encode(key))), '10.1.2.0/24');
    assert.equal(ipcacheKeyFor('10.1.2.3').prefixlen, 64);
  });
});
