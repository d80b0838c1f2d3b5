/* Agent events from the layers that cause them: the identity allocator, the policy repository
 * and the datapath reconciler announce changes through their optional listeners, and the agent
 * event log (src/flow/agent-events.ts) turns them into Hubble's AgentEvent shapes, keeps the last
 * N and answers queries by number and time range. The endpoint manager's hooks need the kernel;
 * the e2e flows test covers them. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import type { Endpoint } from '../../src/endpoint/types.js';
import { AgentEventLog, type AgentEventRecord } from '../../src/flow/agent-events.js';
import { LocalIdentityAllocator } from '../../src/identity/allocator.js';
import { parseLabel } from '../../src/identity/labels.js';
import { PolicyRepository } from '../../src/policy/repository.js';
import type { Rule } from '../../src/policy/types.js';
import { DatapathReconciler } from '../../src/reconcile/datapath.js';
import { MemoryStore } from '../harness/memory-store.js';


const types = (log: AgentEventLog) => log.query({}).map((r) => r.agent_event.type);
const rule = {} as Rule;

describe('identity allocator listener', () => {
  it('tells of a number given to a new label set and of its release, not of every reference', () => {
    const log = new AgentEventLog('n1');
    const allocator = new LocalIdentityAllocator();
    allocator.listener = log.identityListener();
    const web = [parseLabel('k8s:app=web')];
    const a = allocator.acquire(web);
    allocator.acquire(web); // a second reference: nothing new
    allocator.release(a.id);
    assert.equal(log.size, 1);
    allocator.release(a.id); // the last reference
    const events = log.query({}).map((r) => r.agent_event);
    assert.deepEqual(events, [
      { type: 'AGENT_EVENT_UNKNOWN', unknown: { type: 'IdentityAllocated', notification: JSON.stringify({ id: a.id, labels: ['k8s:app=web'] }) } },
      { type: 'AGENT_EVENT_UNKNOWN', unknown: { type: 'IdentityReleased', notification: JSON.stringify({ id: a.id, labels: ['k8s:app=web'] }) } },
    ]);
  });
});

describe('policy repository listener', () => {
  it('tells of imports, deletions and an import put back', () => {
    const log = new AgentEventLog('n1');
    const repo = new PolicyRepository(new MemoryStore());
    repo.listener = log.policyListener();
    const a = { kind: 'CiliumNetworkPolicy' as const, namespace: 'shop', name: 'a' };
    const b = { kind: 'NetworkPolicy' as const, namespace: 'shop', name: 'b' };
    const r1 = repo.import([{ ref: a, source: {}, rules: [rule, rule] }]).revision;
    const { revision: r2, undo } = repo.import([{ ref: a, source: {}, rules: [rule] }, { ref: b, source: {}, rules: [rule] }]);
    const r3 = repo.revert(undo); // a back to its two rules, b gone
    const r4 = repo.delete([a]);
    const updates = log.query({}).map((r) => [r.agent_event.type, r.agent_event.policy_update]);
    const labels = (...refs: { kind: string; namespace: string; name: string }[]) => [
      ...new Set(refs.flatMap((r) => [`k8s:io.cilium.k8s.policy.derived-from=${r.kind}`, `k8s:io.cilium.k8s.policy.name=${r.name}`, `k8s:io.cilium.k8s.policy.namespace=${r.namespace}`])),
    ];
    assert.deepEqual(updates, [
      ['POLICY_UPDATED', { labels: labels(a), revision: r1, rule_count: 2 }],
      ['POLICY_UPDATED', { labels: labels(a, b), revision: r2, rule_count: 2 }],
      ['POLICY_UPDATED', { labels: labels(a), revision: r3, rule_count: 2 }],
      ['POLICY_DELETED', { labels: labels(b), revision: r3, rule_count: 1 }],
      ['POLICY_DELETED', { labels: labels(a), revision: r4, rule_count: 2 }],
    ]);
  });
});

describe('reconciler regeneration listener', () => {
  const ep = (id: number): Endpoint => ({ id, name: `e${id}`, namespace: 'x', labels: [`k8s:app=e${id}`], identity: 256, ipv4: `10.0.0.${id}`, ifindex: id + 10 }) as Endpoint;
  const endpoints = [ep(1), ep(2)];
  let failNext = false;
  const datapath = {
    update: () => {
      if (failNext) {
        failNext = false;
        throw new Error('policy map full');
      }
      return { written: 1, deleted: 0, unchanged: 0 };
    },
    sync: () => ({ written: 0, deleted: 0, unchanged: 0 }),
  };
  let policyChanged = new Set<number>();
  const realizer = {
    regenerate: () => ({ changed: policyChanged }),
    dependsOnRemoteEndpoints: () => false,
    cidrs: () => new Map(),
    state: () => ({ flags: 0, revision: 1 }),
    policyIdentityOf: (e: Endpoint) => e.identity,
  };
  const source = {
    listEndpoints: () => endpoints,
    endpointById: (id: number) => endpoints.find((e) => e.id === id),
    allocatedIdentities: () => [],
    allocatedLabels: () => undefined,
  };
  const make = () => {
    const reconciler = new DatapathReconciler(source, { router: '10.0.0.254', nodeAddresses: [] }, datapath as never, realizer as never, pino({ level: 'silent' }));
    const log = new AgentEventLog('n1');
    reconciler.regeneration = log.regenerationListener();
    return { reconciler, log };
  };

  it('tells of each endpoint whose datapath state was written: the changed ones and those whose policy changed', () => {
    const { reconciler, log } = make();
    policyChanged = new Set([2]);
    reconciler.endpointsChanged('endpoint x/e1 added', [endpoints[0]!]);
    policyChanged = new Set();
    reconciler.endpointsChanged('endpoint x/e1 deleted', [], [endpoints[0]!]); // nobody regenerated
    reconciler.resync('restore');
    const events = log.query({}).map((r) => r.agent_event);
    assert.deepEqual(events, [
      { type: 'ENDPOINT_REGENERATE_SUCCESS', endpoint_regenerate: { id: 1, labels: ['k8s:app=e1'] } },
      { type: 'ENDPOINT_REGENERATE_SUCCESS', endpoint_regenerate: { id: 2, labels: ['k8s:app=e2'] } },
      { type: 'ENDPOINT_REGENERATE_SUCCESS', endpoint_regenerate: { id: 1, labels: ['k8s:app=e1'] } },
      { type: 'ENDPOINT_REGENERATE_SUCCESS', endpoint_regenerate: { id: 2, labels: ['k8s:app=e2'] } },
    ]);
  });

  it('tells a change of the other nodes\' endpoints to its remote listeners only: nothing of this node changed', () => {
    const { reconciler, log } = make();
    const told: string[] = [];
    reconciler.onChange(() => told.push('local'));
    reconciler.onRemoteChange(() => told.push('remote'));
    reconciler.remoteChanged('remote endpoint changed', [{ prefix: '10.1.0.5/32', identity: 300, tunnelEndpoint: '172.30.0.11' }], ['10.1.0.6/32']);
    assert.deepEqual(told, ['remote']);
    reconciler.endpointsChanged('endpoint x/e1 added', [endpoints[0]!]);
    assert.deepEqual(told, ['remote', 'local']);
    assert.equal(log.query({}).length, 1, 'a remote change regenerates no endpoint');
  });

  it('logs the first remote batch at once and the next ones of that second in one line', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'debug' }, { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) });
    const reconciler = new DatapathReconciler(source, { router: '10.0.0.254', nodeAddresses: [] }, datapath as never, realizer as never, log);
    for (let i = 0; i < 5; i++) reconciler.remoteChanged(`remote endpoint changed ${i}`, [{ prefix: `10.1.0.${i}/32`, identity: 300 }], []);
    assert.deepEqual(lines.map((l) => l.msg), ['datapath synced']);
    t.mock.timers.tick(1000);
    assert.deepEqual(
      lines.map((l) => [l.msg, l.batches, l.written, l.reason]),
      [
        ['datapath synced', undefined, 1, 'remote endpoint changed 0'],
        ['datapath synced (remote changes in the last second)', 4, 4, 'remote endpoint changed 4'],
      ],
    );
    reconciler.endpointsChanged('endpoint x/e1 added', [endpoints[0]!]); // local syncs: a line each, as before
    assert.equal(lines.at(-1)?.reason, 'endpoint x/e1 added');
  });

  it('tells of a failed write, with its error, and still throws it', () => {
    const { reconciler, log } = make();
    failNext = true;
    assert.throws(() => reconciler.endpointsChanged('relabel', [endpoints[1]!]), /policy map full/);
    assert.deepEqual(log.query({}).map((r) => r.agent_event), [
      { type: 'ENDPOINT_REGENERATE_FAILURE', endpoint_regenerate: { id: 2, labels: ['k8s:app=e2'], error: 'policy map full' } },
    ]);
  });
});

describe('agent event log', () => {
  it('keeps the last N events, oldest first, and selects by number and time', () => {
    const log = new AgentEventLog('n1', 3);
    for (let i = 1; i <= 5; i++) log.push({ type: 'AGENT_EVENT_UNKNOWN', unknown: { type: 'test', notification: String(i) } });
    const n = (rs: AgentEventRecord[]) => rs.map((r) => r.agent_event.unknown!.notification);
    assert.deepEqual(n(log.query({})), ['3', '4', '5']);
    assert.deepEqual(n(log.query({ number: 2 })), ['4', '5']);
    assert.deepEqual(n(log.query({ number: 2, first: true })), ['3', '4']);
    const all = log.query({});
    assert.ok(all.every((r, i) => i === 0 || r.time > all[i - 1]!.time), 'times strictly increase');
    assert.deepEqual(n(log.query({ since: all[1]!.time })), ['4', '5']);
    assert.deepEqual(n(log.query({ until: all[1]!.time })), ['3', '4']);
    assert.deepEqual(n(log.query({ since: all[1]!.time, until: all[1]!.time })), ['4']);
    assert.throws(() => log.query({ since: 'yesterday' }), /since "yesterday" is not an RFC 3339 timestamp/);
    assert.ok(all.every((r) => r.node_name === 'n1'));
  });

  it('hands new events to followers until they leave; one failing follower does not stop the others', () => {
    const log = new AgentEventLog('n1');
    const got: string[] = [];
    const stopBad = log.subscribe(() => {
      throw new Error('broken follower');
    });
    const stop = log.subscribe((r) => got.push(r.agent_event.type));
    log.agentStarted();
    stop();
    stopBad();
    log.agentStarted();
    assert.deepEqual(got, ['AGENT_STARTED']);
    assert.equal(log.followers, 0);
    assert.deepEqual(types(log), ['AGENT_STARTED', 'AGENT_STARTED']);
    assert.match(log.query({})[0]!.agent_event.agent_start!.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  });

  it('turns endpoint adds and deletes into ENDPOINT_CREATED and ENDPOINT_DELETED', () => {
    const log = new AgentEventLog('n1');
    const l = log.endpointListener();
    const e = { id: 9, name: 'web-0', namespace: 'shop', labels: ['k8s:app=web', 'k8s:io.kubernetes.pod.namespace=shop'] } as Endpoint;
    l.endpointCreated!(e);
    l.endpointDeleted!(e);
    const update = { id: 9, labels: ['k8s:app=web', 'k8s:io.kubernetes.pod.namespace=shop'], pod_name: 'web-0', namespace: 'shop' };
    assert.deepEqual(log.query({}).map((r) => r.agent_event), [
      { type: 'ENDPOINT_CREATED', endpoint_update: update },
      { type: 'ENDPOINT_DELETED', endpoint_update: update },
    ]);
  });
});
