import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { EmbeddedStore } from '../../src/store/embedded.js';

describe('embedded store', () => {
  it('commits atomically and survives a reopen', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mbstore-'));
    try {
      const s = new EmbeddedStore(dir);
      s.commit({ put: { 'endpoints/1': { name: 'a' }, 'endpoints/2': { name: 'b' }, 'meta/x': 1 } });
      s.commit({ put: { 'endpoints/3': { name: 'c' } }, delete: ['endpoints/1'] });
      const again = new EmbeddedStore(dir);
      assert.deepEqual(again.list('endpoints/'), [
        ['endpoints/2', { name: 'b' }],
        ['endpoints/3', { name: 'c' }],
      ]);
      assert.equal(again.get('meta/x'), 1);
      assert.deepEqual(fs.readdirSync(dir), ['state.json'], 'no temporary file left');
      assert.equal(fs.statSync(path.join(dir, 'state.json')).mode & 0o777, 0o600);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  it('keeps the old state when a commit cannot be written', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mbstore-'));
    try {
      const s = new EmbeddedStore(dir);
      s.commit({ put: { a: 1 } });
      const circular: Record<string, unknown> = {};
      circular.self = circular;
      assert.throws(() => s.commit({ put: { b: 2, c: circular } }));
      assert.equal(s.get('b'), undefined);
      assert.deepEqual(new EmbeddedStore(dir).list(''), [['a', 1]]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
