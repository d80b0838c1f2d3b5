/* The relay's ordering of several nodes' flows: history sorted whole and cut to `number` across
 * the cluster; followed flows put back in time order by the sort buffer within its window,
 * oldest first when it is full, late ones let out rather than dropped; and which nodes a
 * request's node_name filters leave worth asking. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeHistory, SortBuffer } from '../../src/cluster/relay/merge.js';
import { mayMatchNode } from '../../src/flow/filter.js';
import type { Flow } from '../../src/flow/types.js';
import { formatTimestampNs } from '../../src/util/time.js';

const BASE_MS = Date.UTC(2026, 0, 1, 12, 0, 0);

/** A flow of `node` at BASE + ms (+ ns): only what ordering reads. */
function flow(node: string, ms: number, ns = 0): Flow {
  const t = (BigInt(BASE_MS + ms) * 1_000_000n) + BigInt(ns);
  return { time: formatTimestampNs(t), uuid: `${node}-${ms}-${ns}`, verdict: 'FORWARDED', Type: 'L3_L4', node_name: node, event_type: { type: 4 }, Summary: '' };
}
const ids = (flows: Flow[]) => flows.map((f) => f.uuid);

describe('mergeHistory', () => {
  const n1 = [flow('n1', 10), flow('n1', 30), flow('n1', 50)];
  const n2 = [flow('n2', 20), flow('n2', 40), flow('n2', 60)];
  const n3 = [flow('n3', 5), flow('n3', 55)];

  it('puts every node\'s answer into one time order', () => {
    assert.deepEqual(ids(mergeHistory([n1, n2, n3], {})), ['n3-5-0', 'n1-10-0', 'n2-20-0', 'n1-30-0', 'n2-40-0', 'n1-50-0', 'n3-55-0', 'n2-60-0']);
  });

  it('keeps the last N of the cluster, or the first N with first; 0 means all', () => {
    assert.deepEqual(ids(mergeHistory([n1, n2, n3], { number: 3 })), ['n1-50-0', 'n3-55-0', 'n2-60-0']);
    assert.deepEqual(ids(mergeHistory([n1, n2, n3], { number: 2, first: true })), ['n3-5-0', 'n1-10-0']);
    assert.equal(mergeHistory([n1, n2, n3], { number: 0 }).length, 8);
    assert.equal(mergeHistory([n1, n2, n3], { number: 100 }).length, 8);
  });

  it('orders by nanoseconds, and equal times by node name, whatever order the nodes answered in', () => {
    const a = [flow('b', 1, 2), flow('b', 1, 3)];
    const b = [flow('a', 1, 3), flow('a', 1, 1)].reverse();
    assert.deepEqual(ids(mergeHistory([a, b], {})), ['a-1-1', 'b-1-2', 'a-1-3', 'b-1-3']);
    assert.deepEqual(ids(mergeHistory([b, a], {})), ids(mergeHistory([a, b], {})));
  });

  it('gives nothing for no answers', () => {
    assert.deepEqual(mergeHistory([], { number: 5 }), []);
    assert.deepEqual(mergeHistory([[], []], {}), []);
  });
});

describe('SortBuffer', () => {
  const buffer = (maxLength = 100, windowMs = 1000) => {
    const out: Flow[] = [];
    return { sb: new SortBuffer((f) => out.push(f), { maxLength, windowMs }), out };
  };

  it('holds flows for the window, then lets them out oldest first', () => {
    const { sb, out } = buffer();
    for (const f of [flow('n1', 300), flow('n2', 100), flow('n3', 200), flow('n1', 900)]) sb.push(f);
    sb.drain(BASE_MS + 1000); // nothing is a window old yet
    assert.deepEqual(out, []);
    sb.drain(BASE_MS + 1250); // 100 and 200 are
    assert.deepEqual(ids(out), ['n2-100-0', 'n3-200-0']);
    sb.drain(BASE_MS + 5000);
    assert.deepEqual(ids(out), ['n2-100-0', 'n3-200-0', 'n1-300-0', 'n1-900-0']);
    assert.equal(sb.size, 0);
  });

  it('when full lets the oldest out, even the one just pushed', () => {
    const { sb, out } = buffer(3);
    for (const f of [flow('n1', 50), flow('n1', 60), flow('n1', 70)]) sb.push(f);
    assert.deepEqual(out, []);
    sb.push(flow('n2', 55));
    assert.deepEqual(ids(out), ['n1-50-0']);
    sb.push(flow('n3', 10)); // older than everything held: out at once
    assert.deepEqual(ids(out), ['n1-50-0', 'n3-10-0']);
    assert.equal(sb.size, 3);
  });

  it('lets a flow that arrives after its window out too: never dropped, only out of order', () => {
    const { sb, out } = buffer();
    sb.push(flow('n1', 2000));
    sb.drain(BASE_MS + 3500);
    sb.push(flow('n2', 1000)); // a lagging node's flow, older than what already left
    sb.drain(BASE_MS + 3500);
    assert.deepEqual(ids(out), ['n1-2000-0', 'n2-1000-0']);
  });

  it('keeps arrival order for equal times and flushes everything in order', () => {
    const { sb, out } = buffer();
    const same = [flow('n2', 7), flow('n1', 7), flow('n3', 7)];
    for (const f of [flow('n9', 9), ...same]) sb.push(f);
    sb.flush();
    assert.deepEqual(ids(out), ['n2-7-0', 'n1-7-0', 'n3-7-0', 'n9-9-0']);
  });

  it('sorts many interleaved streams', () => {
    const { sb, out } = buffer(10_000);
    const all: Flow[] = [];
    for (let node = 0; node < 5; node++) for (let i = 0; i < 200; i++) all.push(flow(`n${node}`, i * 7 + node * 3));
    // Each node's own stream in order, the streams interleaved at random.
    const queues = [0, 1, 2, 3, 4].map((n) => all.filter((f) => f.node_name === `n${n}`));
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    while (queues.some((q) => q.length)) {
      const q = queues.filter((x) => x.length)[Math.floor(rand() * queues.filter((x) => x.length).length)]!;
      sb.push(q.shift()!);
    }
    sb.flush();
    const times = out.map((f) => Date.parse(f.time));
    assert.deepEqual(times, [...times].sort((a, b) => a - b));
    assert.equal(out.length, 1000);
  });
});

describe('mayMatchNode', () => {
  it('asks every node without node filters', () => {
    assert.ok(mayMatchNode({}, 'n1'));
    assert.ok(mayMatchNode({ whitelist: [{ verdict: ['DROPPED'] }] }, 'n1'));
  });

  it('asks only the nodes a whitelist can match, with Hubble\'s node name patterns', () => {
    const req = { whitelist: [{ node_name: ['n1'], verdict: ['DROPPED' as const] }, { node_name: ['k8s*'] }] };
    assert.ok(mayMatchNode(req, 'n1'));
    assert.ok(mayMatchNode(req, 'k8s-worker'));
    assert.ok(!mayMatchNode(req, 'n2'));
    assert.ok(mayMatchNode({ whitelist: [{ node_name: ['default/n2'] }] }, 'n2'));
    assert.ok(!mayMatchNode({ whitelist: [{ node_name: ['other/n2'] }] }, 'n2'));
    // A filter without node_name can match any node's flows.
    assert.ok(mayMatchNode({ whitelist: [{ node_name: ['n1'] }, { verdict: ['DROPPED'] }] }, 'n2'));
  });

  it('skips a node that a blacklist filter names and nothing else', () => {
    assert.ok(!mayMatchNode({ blacklist: [{ node_name: ['n2'] }] }, 'n2'));
    assert.ok(mayMatchNode({ blacklist: [{ node_name: ['n2'] }] }, 'n1'));
    // Only the node's dropped flows are left out: the node still has others.
    assert.ok(mayMatchNode({ blacklist: [{ node_name: ['n2'], verdict: ['DROPPED'] }] }, 'n2'));
  });
});
