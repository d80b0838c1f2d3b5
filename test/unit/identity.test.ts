import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LocalIdentityAllocator, identityKey } from '../../src/identity/allocator.js';
import { parseLabelList } from '../../src/identity/labels.js';

const L = (s: string) => parseLabelList(s);

describe('identity allocation', () => {
  it('starts at 256 and gives one number per label set, whatever the order', () => {
    const a = new LocalIdentityAllocator();
    const x = a.acquire(L('app=web,tier=fe'));
    const y = a.acquire(L('tier=fe,app=web'));
    const z = a.acquire(L('app=db'));
    assert.equal(x.id, 256);
    assert.equal(y.id, 256);
    assert.equal(z.id, 257);
    assert.deepEqual(x.labels, ['k8s:app=web', 'k8s:tier=fe']);
  });
  it('releases an identity with its last user and does not reuse the number at once', () => {
    const a = new LocalIdentityAllocator();
    const x = a.acquire(L('app=web'));
    a.acquire(L('app=web'));
    a.release(x.id);
    assert.ok(a.get(x.id), 'one user left');
    a.release(x.id);
    assert.equal(a.get(x.id), undefined);
    assert.equal(a.acquire(L('app=other')).id, 257);
    assert.equal(a.acquire(L('app=web')).id, 258, 'a returning label set gets a fresh number');
  });
  it('restores numbers and drops the ones nobody takes back', () => {
    const a = new LocalIdentityAllocator(
      [
        { id: 300, labels: ['k8s:app=web'] },
        { id: 301, labels: ['k8s:app=gone'] },
      ],
      302,
    );
    assert.equal(a.acquire(L('app=web')).id, 300);
    a.releaseUnused();
    assert.deepEqual(a.list().map((i) => i.id), [300]);
    assert.equal(a.acquire(L('app=new')).id, 302);
  });
  it('wraps around and fails clearly when the range is full', () => {
    const a = new LocalIdentityAllocator([], 256, 256, 258);
    a.acquire(L('a=1'));
    a.acquire(L('a=2'));
    a.acquire(L('a=3'));
    assert.throws(() => a.acquire(L('a=4')), /all identities 256-258 are in use/);
    a.release(257);
    assert.equal(a.acquire(L('a=5')).id, 257);
  });
  it('keys are sorted source:key=value lists', () => {
    assert.equal(identityKey(L('b=2,a=1')), 'k8s:a=1;k8s:b=2');
  });
});
