/* Assertions for policy parser unit tests: a refusal is one line, coded `invalid`, naming where. */
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { UserError } from '../../src/errors.js';
import { parsePolicyText } from '../../src/policy/parse.js';

/** Asserts a one-line `invalid` UserError that starts with `prefix` (file, document, policy,
 * field path) and contains each of `parts`; `input` is YAML text or an object to write as YAML. */
export function fails(input: unknown, prefix: string, ...parts: string[]): void {
  const text = typeof input === 'string' ? input : stringify(input);
  assert.throws(
    () => parsePolicyText(text, 'p.yaml'),
    (err: unknown) => {
      assert.ok(err instanceof UserError, String(err));
      assert.equal(err.code, 'invalid');
      assert.ok(!err.message.includes('\n'), `not one line: ${err.message}`);
      assert.ok(err.message.startsWith(prefix), `${JSON.stringify(err.message)}\n  should start with ${JSON.stringify(prefix)}`);
      for (const p of parts) assert.ok(err.message.includes(p), `${JSON.stringify(err.message)}\n  should contain ${JSON.stringify(p)}`);
      return true;
    },
  );
}
