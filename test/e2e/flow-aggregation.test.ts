/* Monitor aggregation, as Cilium's: how many trace events the same exchange produces at each
 * level. Ten UDP datagrams each way between two endpoints of a node:
 *   none:   every packet, where it leaves its sender and where it is delivered;
 *   low:    every packet, only where it is delivered;
 *   medium: once per connection direction (more only on new TCP flags or after the report
 *           interval), where it is delivered. */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { Flow } from '../../src/flow/types.js';
import { TestNode, eventually, repoRoot } from '../harness/node.js';

const DATAGRAMS = 10;

async function traces(level: 'none' | 'low' | 'medium', podCidr: string): Promise<Map<string, number>> {
  const node = await TestNode.create({ podCidr, extraAgentArgs: ['--monitor-aggregation', level] });
  try {
    await node.api.setNamespace('agg');
    const a = await node.api.addEndpoint({ namespace: 'agg', name: 'a' });
    const b = await node.api.addEndpoint({ namespace: 'agg', name: 'b' });
    await node.echoServer(b.netns, 7);
    // One socket, one flow: DATAGRAMS requests, each answered by the echo server.
    const r = await node.exec(a.netns, ['node', path.join(repoRoot, 'test/harness/tools/udp-pingpong.mjs'), b.ipv4, '7', String(DATAGRAMS)]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`answered ${DATAGRAMS}`));
    const count = async () => {
      const out = await node.cli('observe', '--all', '-o', 'json', '--type', 'trace', '--pod', 'agg/a', '--protocol', 'udp');
      const counts = new Map<string, number>();
      for (const l of out.stdout.split('\n').filter(Boolean)) {
        const f = (JSON.parse(l) as { flow: Flow }).flow;
        const k = `${f.trace_observation_point} ${f.is_reply ? 'reply' : 'request'}`;
        counts.set(k, (counts.get(k) ?? 0) + 1);
      }
      return counts;
    };
    // Events reach the ring asynchronously: wait until the count stops growing.
    let last = '';
    const settled = await eventually(async () => {
      const now = JSON.stringify([...(await count())]);
      const stable = now === last;
      last = now;
      return stable;
    }, 5000, 300);
    assert.ok(settled, 'the flow counts kept growing');
    return await count();
  } finally {
    await node.cleanup();
  }
}

describe('monitor aggregation', () => {
  it('none: every packet at both observation points', async () => {
    const t = await traces('none', '10.229.0.0/24');
    for (const k of ['FROM_ENDPOINT request', 'TO_ENDPOINT request', 'FROM_ENDPOINT reply', 'TO_ENDPOINT reply']) {
      assert.equal(t.get(k), DATAGRAMS, `${k}: ${JSON.stringify([...t])}`);
    }
  });

  it('low: every packet, where it is delivered only', async () => {
    const t = await traces('low', '10.230.0.0/24');
    assert.deepEqual(
      [...t].sort(),
      [
        ['TO_ENDPOINT reply', DATAGRAMS],
        ['TO_ENDPOINT request', DATAGRAMS],
      ],
    );
  });

  it('medium: once per connection direction', async () => {
    const t = await traces('medium', '10.231.0.0/24');
    assert.deepEqual(
      [...t].sort(),
      [
        ['TO_ENDPOINT reply', 1],
        ['TO_ENDPOINT request', 1],
      ],
    );
  });
});
