/* Every benchmark runs one short round so none can rot; timing goals are judged by `make bench`,
 * never here. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { run } from '../harness/node.js';

describe('benchmarks (smoke)', () => {
  // About four minutes on a busy 2-core machine (scripts/test.sh gives this file 480 s):
  // bench/cluster alone builds two clusters and two plain topologies for its rows between nodes
  // (about 45 s of it).
  it('make bench runs every benchmark and prints one table', async () => {
    const r = await run('node', ['--import', 'tsx', 'bench/run-all.ts', '--quick'], { timeoutMs: 450_000 });
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    for (const row of ['TCP stream', '64-byte UDP', 'request/response', 'per-packet run time', 'endpoint add', 'flow events decoded', 'connect() through a VIP', 'Maglev table build', 'policy import → enforced', 'vs plain kernel VXLAN', 'vs plain kernel routing']) {
      assert.ok(r.stdout.includes(row), `the table has a "${row}" row:\n${r.stdout}`);
    }
  });
});

