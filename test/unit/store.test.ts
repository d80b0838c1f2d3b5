import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { EmbeddedStore } from '../../src/store/embedded.js';

describe('embedded store', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mbstore-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('commits atomically and survives a reopen', () => {
    const s = new EmbeddedStore(dir);
    s.commit({ put: { 'endpoints/1': { name: 'a' }, 'endpoints/2': { name: 'b' }, 'meta/x': 1 } });
    s.commit({ put: { 'endpoints/3': { name: 'c' } }, delete: ['endpoints/1'] });
    s.close();
    const again = new EmbeddedStore(dir);
    assert.deepEqual(again.list('endpoints/'), [
      ['endpoints/2', { name: 'b' }],
      ['endpoints/3', { name: 'c' }],
    ]);
    assert.equal(again.get('meta/x'), 1);
    assert.equal(fs.statSync(path.join(dir, 'state.log')).mode & 0o777, 0o600);
  });

  it('keeps the old state when a commit cannot be serialized', () => {
    const s = new EmbeddedStore(dir);
    s.commit({ put: { a: 1 } });
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    assert.throws(() => s.commit({ put: { b: 2, c: circular } }));
    assert.equal(s.get('b'), undefined);
    s.close();
    assert.deepEqual(new EmbeddedStore(dir).list(''), [['a', 1]]);
  });

  it('is not affected by callers mutating what they committed', () => {
    const s = new EmbeddedStore(dir);
    const value = { labels: ['a'] };
    s.commit({ put: { k: value } });
    value.labels.push('b');
    assert.deepEqual(s.get('k'), { labels: ['a'] });
  });

  it('drops a torn last record left by a crash mid-append', () => {
    const s = new EmbeddedStore(dir);
    s.commit({ put: { a: 1 } });
    s.close();
    // The log is preallocated with zeros: the torn record sits where the records end.
    const log = path.join(dir, 'state.log');
    const fd = fs.openSync(log, 'r+');
    fs.writeSync(fd, '{"seq":2,"put":{"b":', fs.readFileSync(log).indexOf(0));
    fs.closeSync(fd);
    const again = new EmbeddedStore(dir);
    assert.deepEqual(again.list(''), [['a', 1]]);
    again.commit({ put: { c: 3 } });
    again.close();
    assert.deepEqual(new EmbeddedStore(dir).list(''), [
      ['a', 1],
      ['c', 3],
    ]);
  });

  it('grows the preallocated log in whole chunks as records fill it', () => {
    const s = new EmbeddedStore(dir);
    const big = 'x'.repeat(600_000);
    for (let i = 0; i < 10; i++) s.commit({ put: { [`big/${i}`]: big } }); // past one 4 MiB chunk
    s.close();
    const log = path.join(dir, 'state.log');
    assert.equal(fs.statSync(log).size % (4 << 20), 0, 'whole chunks');
    const again = new EmbeddedStore(dir);
    assert.equal(again.list('big/').length, 10);
    again.close();
  });

  it('compacts into a snapshot and replays nothing twice after a crash between rename and truncate', () => {
    const s = new EmbeddedStore(dir);
    for (let i = 0; i < 50; i++) s.commit({ put: { [`k/${i}`]: i } });
    const records = () => fs.readFileSync(path.join(dir, 'state.log'), 'utf8').replace(/\0+$/, '');
    const logBefore = records();
    s.compact();
    s.commit({ delete: ['k/0'] });
    s.close();
    assert.equal(records().split('\n').filter(Boolean).length, 1);
    // Simulate the crash: the old log reappears next to the new snapshot.
    fs.writeFileSync(path.join(dir, 'state.log'), logBefore + records());
    const again = new EmbeddedStore(dir);
    assert.equal(again.list('k/').length, 49);
    assert.equal(again.get('k/0'), undefined, 'the delete after the snapshot still applies');
  });
});
