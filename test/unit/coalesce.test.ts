import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { coalesced } from '../../src/cluster/coalesce.js';
import type { RemotePeer } from '../../src/reconcile/datapath.js';

describe('remote peer changes, coalesced', () => {
  it('writes the changes of one event-loop turn together, the last word on a prefix winning', async () => {
    const writes: { reason: string; changed: RemotePeer[]; removed: string[] }[] = [];
    const listener = coalesced(async (reason, changed, removed) => void writes.push({ reason, changed, removed }));
    listener('a', [{ prefix: '10.0.0.1/32', identity: 300 }], []);
    listener('b', [{ prefix: '10.0.0.2/32', identity: 301 }], []);
    listener('c', [], ['10.0.0.1/32']);
    listener('d', [{ prefix: '10.0.0.2/32', identity: 302, tunnelEndpoint: '172.30.0.11' }], ['10.0.0.9/32']);
    assert.equal(writes.length, 0, 'nothing written before the turn ends');
    await new Promise((r) => setImmediate(r));
    assert.equal(writes.length, 1);
    assert.deepEqual(writes[0]!.changed, [{ prefix: '10.0.0.2/32', identity: 302, tunnelEndpoint: '172.30.0.11' }]);
    assert.deepEqual(writes[0]!.removed.sort(), ['10.0.0.1/32', '10.0.0.9/32']);
    assert.match(writes[0]!.reason, /^a \(and 2 more changes\)$/);
    listener('e', [{ prefix: '10.0.0.3/32', identity: 303 }], []);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(writes[1], { reason: 'e', changed: [{ prefix: '10.0.0.3/32', identity: 303 }], removed: [] });
  });
});
