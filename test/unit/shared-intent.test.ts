/* Policies through etcd (src/cluster/shared-intent.ts): what the cluster says is applied on a node
 * only where it differs from what the node has when the change gets its turn. An import made
 * through a node's own API comes back from etcd while that call may still be applying it: judged
 * on arrival it looked new and was applied a second time (a second revision, policy computed
 * again on the node that imported it). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { SharedIntent, policyChanges, type IntentTarget } from '../../src/cluster/shared-intent.js';
import type { NewPolicy } from '../../src/policy/repository.js';
import type { Rule } from '../../src/policy/types.js';

const ref = (name: string) => ({ kind: 'CiliumNetworkPolicy' as const, namespace: 'shop', name });
const policy = (name: string, port: number): NewPolicy => ({ ref: ref(name), source: { port }, rules: [{ port } as unknown as Rule] });

describe('policyChanges', () => {
  it('leaves out a policy the node has as given, and a deletion of one it does not have', () => {
    const local = [policy('a', 80), policy('b', 81)];
    assert.deepEqual(policyChanges(local, [policy('a', 80), policy('b', 82), policy('c', 83)], [ref('a'), ref('z')]), {
      put: [policy('b', 82), policy('c', 83)],
      deleted: [ref('a')],
    });
  });
});

describe('SharedIntent', () => {
  /** A SharedIntent on a fake etcd: `tell` plays watch events; `applied` is what the node applied, in its turns. */
  async function setup() {
    const handlers = new Map<string, { put(k: string, v: string, r: bigint): void; delete(k: string, r: bigint): void }>();
    let nextRevision = 100n;
    const kv = {
      list: async () => ({ revision: '1', kvs: [] }),
      watchPrefix: async (prefix: string, h: { put(k: string, v: string, r: bigint): void; delete(k: string, r: bigint): void }) => {
        handlers.set(prefix, h);
        return () => undefined;
      },
      atomically: async () => ({ header: { revision: String(++nextRevision) }, succeeded: true, responses: [] }),
    };
    let local: NewPolicy[] = [];
    const applied: [string[], string[]][] = [];
    // The node's turn comes when the test says (like the agent's mutex behind an API call).
    let turns: (() => void)[] = [];
    const target: IntentTarget = {
      applyPolicies: (decide) =>
        new Promise<void>((resolve) =>
          turns.push(() => {
            const { put, deleted } = decide();
            applied.push([put.map((p) => p.ref.name), deleted.map((r) => r.name)]);
            local = [...local.filter((l) => !put.some((p) => p.ref.name === l.ref.name) && !deleted.some((r) => r.name === l.ref.name)), ...put];
            resolve();
          }),
        ),
      applyNamespace: async () => undefined,
      localPolicies: () => local,
      localNamespaces: () => [],
      applyService: async () => undefined,
      localServices: () => [],
    };
    const intent = new SharedIntent(kv as never, 'default', target, pino({ level: 'silent' }));
    const started = intent.start();
    await new Promise((r) => setImmediate(r));
    for (const t of turns.splice(0)) t();
    await started;
    const key = (name: string) => `membrane/state/policies/v1/default/CiliumNetworkPolicy/shop/${name}`;
    const policies = () => handlers.get('membrane/state/policies/v1/default/')!;
    return {
      intent,
      applied,
      setLocal: (l: NewPolicy[]) => (local = l),
      put: (p: NewPolicy, revision: bigint) => policies().put(key(p.ref.name), JSON.stringify(p), revision),
      del: (name: string, revision: bigint) => policies().delete(key(name), revision),
      /** Runs the node's pending turns, in order. */
      turn: async () => {
        for (const t of turns.splice(0)) t();
        await new Promise((r) => setImmediate(r));
      },
      reset: () => ((turns = []), (applied.length = 0)),
    };
  }

  it("does not apply this node's own import again when etcd tells it back, even before the API call applied it", async () => {
    const s = await setup();
    s.reset();
    await s.intent.importPolicies([policy('a', 80)]); // revision 101; the API applies it next, in the same turn
    s.put(policy('a', 80), 101n); // the echo arrives while the API call still holds the turn
    s.setLocal([policy('a', 80)]); // the API call applied it
    await s.turn();
    assert.deepEqual(s.applied, [[[], []]]);
  });

  it('applies what other nodes wrote, and never a change older than what this node applied since', async () => {
    const s = await setup();
    s.reset();
    s.put(policy('a', 80), 50n); // another node's import
    await s.turn();
    await s.intent.importPolicies([policy('a', 81)]); // revision 101, applied by the API meanwhile
    s.setLocal([policy('a', 81)]);
    s.put(policy('a', 90), 60n); // an older change, told late: not applied over the newer one
    s.put(policy('b', 70), 102n);
    s.del('c', 103n); // nothing to delete here
    await s.turn();
    assert.deepEqual(s.applied, [
      [['a'], []],
      [[], []],
      [['b'], []],
      [[], []],
    ]);
  });
});
