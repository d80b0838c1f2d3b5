/* Agent events, as Hubble's Observer serves them (GetAgentEvents): what the agent did, not what
 * packets did. The lower layers announce changes through optional listeners of their own types
 * (EndpointListener, IdentityListener, PolicyListener, RegenerationListener); this module turns
 * them into Hubble's flow.AgentEvent shapes and keeps the last N in a ring with followers, like
 * the flow ring. src/agent.ts wires the listeners.
 *
 * Hubble's event types and what produces them here:
 *   AGENT_STARTED                 the agent finished starting (agent_start: the time)
 *   ENDPOINT_CREATED / _DELETED   an endpoint was added / deleted (endpoint_update)
 *   ENDPOINT_REGENERATE_SUCCESS   an endpoint's datapath state (its entries, its policy) was
 *   ENDPOINT_REGENERATE_FAILURE   rewritten, or the write failed (endpoint_regenerate, error)
 *   POLICY_UPDATED / _DELETED     policies imported (or put back after a failed import) /
 *                                 deleted (policy_update: their labels, revision, rule count)
 * Hubble has no type for identities; an allocation or a release travels as AGENT_EVENT_UNKNOWN
 * with `unknown: {type: "IdentityAllocated" | "IdentityReleased", notification: JSON}`, the shape
 * Hubble gives agent notifications it has no message for. IPCACHE_* and SERVICE_* are not sent. */
import type { Endpoint } from '../endpoint/types.js';
import type { EndpointListener } from '../endpoint/manager.js';
import type { AllocatedIdentity, IdentityListener } from '../identity/allocator.js';
import type { PolicyListener } from '../policy/repository.js';
import type { StoredPolicy } from '../policy/types.js';
import type { RegenerationListener } from '../reconcile/datapath.js';
import { formatTimestampNs, parseTimestampNs } from '../util/time.js';
import { invalid } from '../errors.js';
import { flowPolicy } from './decoder.js';

export type AgentEventType =
  | 'AGENT_EVENT_UNKNOWN'
  | 'AGENT_STARTED'
  | 'POLICY_UPDATED'
  | 'POLICY_DELETED'
  | 'ENDPOINT_REGENERATE_SUCCESS'
  | 'ENDPOINT_REGENERATE_FAILURE'
  | 'ENDPOINT_CREATED'
  | 'ENDPOINT_DELETED';

/** Hubble's flow.AgentEvent with proto field names; exactly one notification is set. */
export interface AgentEvent {
  type: AgentEventType;
  unknown?: { type: string; notification: string };
  /** RFC 3339. */
  agent_start?: { time: string };
  policy_update?: { labels: string[]; revision: number; rule_count: number };
  endpoint_regenerate?: { id: number; labels: string[]; error?: string };
  endpoint_update?: { id: number; labels: string[]; error?: string; pod_name: string; namespace: string };
}

/** One agent event as GetAgentEventsResponse carries it. */
export interface AgentEventRecord {
  agent_event: AgentEvent;
  node_name: string;
  /** RFC 3339 with nanoseconds. */
  time: string;
}

/** observer.GetAgentEventsRequest, timestamps as RFC 3339. */
export interface GetAgentEventsRequest {
  number?: number;
  first?: boolean;
  follow?: boolean;
  since?: string;
  until?: string;
}

/** What the Observer server reads agent events from. */
export interface AgentEventSource {
  /** Events in the log matching the time range, limited to the last (or first) `number`; oldest first. */
  query(req: GetAgentEventsRequest): AgentEventRecord[];
  /** Calls `onEvent` for every new event until the returned function is called. */
  subscribe(onEvent: (record: AgentEventRecord) => void): () => void;
}

const DEFAULT_CAPACITY = 4095;

/** Wall-clock nanoseconds now (Date.now, plus the finer clock for order within a millisecond). */
function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
}

function boundNs(text: string | undefined, name: string): bigint | undefined {
  if (text === undefined) return undefined;
  const ns = parseTimestampNs(text);
  if (ns === undefined) throw invalid(`${name} "${text}" is not an RFC 3339 timestamp`);
  return ns;
}

/** The labels Cilium gives a policy's rules (derived-from, name, namespace): what policy_update lists. */
function policyLabels(policies: StoredPolicy[]): string[] {
  return [...new Set(policies.flatMap((p) => flowPolicy({ ref: p.ref, revision: p.revision }).labels ?? []))];
}

export class AgentEventLog implements AgentEventSource {
  private readonly slots: (AgentEventRecord & { ns: bigint })[] = [];
  private next = 0;
  private lastNs = 0n;
  private readonly subscribers = new Set<(record: AgentEventRecord) => void>();

  constructor(
    readonly nodeName: string,
    readonly capacity = DEFAULT_CAPACITY,
  ) {}

  push(event: AgentEvent): AgentEventRecord {
    let ns = nowNs();
    if (ns <= this.lastNs) ns = this.lastNs + 1n; // strictly increasing: since/until stay exact
    this.lastNs = ns;
    const record = { agent_event: event, node_name: this.nodeName, time: formatTimestampNs(ns), ns };
    if (this.slots.length < this.capacity) this.slots.push(record);
    else this.slots[this.next] = record;
    this.next = (this.next + 1) % this.capacity;
    const { ns: _ns, ...out } = record;
    for (const s of this.subscribers) {
      try {
        s(out);
      } catch {
        // a follower's failure is its own: the others and the agent carry on
      }
    }
    return out;
  }

  /** Oldest first. */
  private records(): (AgentEventRecord & { ns: bigint })[] {
    return this.slots.length < this.capacity ? [...this.slots] : [...this.slots.slice(this.next), ...this.slots.slice(0, this.next)];
  }

  query(req: GetAgentEventsRequest): AgentEventRecord[] {
    const since = boundNs(req.since, 'since');
    const until = boundNs(req.until, 'until');
    const matching = this.records().filter((r) => (since === undefined || r.ns >= since) && (until === undefined || r.ns <= until));
    const n = req.number ?? 0;
    const picked = n <= 0 || n >= matching.length ? matching : req.first ? matching.slice(0, n) : matching.slice(matching.length - n);
    return picked.map(({ ns: _ns, ...r }) => r);
  }

  subscribe(onEvent: (record: AgentEventRecord) => void): () => void {
    this.subscribers.add(onEvent);
    return () => this.subscribers.delete(onEvent);
  }

  /** Events held. */
  get size(): number {
    return this.slots.length;
  }

  /** Subscribers following new events. */
  get followers(): number {
    return this.subscribers.size;
  }

  // ---- what the agent reports

  agentStarted(): void {
    this.push({ type: 'AGENT_STARTED', agent_start: { time: formatTimestampNs(nowNs()) } });
  }

  endpointListener(): EndpointListener {
    const update = (ep: Endpoint) => ({ id: ep.id, labels: [...ep.labels], pod_name: ep.name, namespace: ep.namespace });
    return {
      endpointCreated: (ep) => this.push({ type: 'ENDPOINT_CREATED', endpoint_update: update(ep) }),
      endpointDeleted: (ep) => this.push({ type: 'ENDPOINT_DELETED', endpoint_update: update(ep) }),
    };
  }

  regenerationListener(): RegenerationListener {
    return {
      regenerated: (endpoints, error) => {
        for (const ep of endpoints) {
          this.push(
            error
              ? { type: 'ENDPOINT_REGENERATE_FAILURE', endpoint_regenerate: { id: ep.id, labels: [...ep.labels], error: error.message } }
              : { type: 'ENDPOINT_REGENERATE_SUCCESS', endpoint_regenerate: { id: ep.id, labels: [...ep.labels] } },
          );
        }
      },
    };
  }

  policyListener(): PolicyListener {
    const update = (policies: StoredPolicy[], revision: number) => ({
      labels: policyLabels(policies),
      revision,
      rule_count: policies.reduce((n, p) => n + p.rules.length, 0),
    });
    return {
      policiesUpdated: (policies, revision) => this.push({ type: 'POLICY_UPDATED', policy_update: update(policies, revision) }),
      policiesDeleted: (policies, revision) => this.push({ type: 'POLICY_DELETED', policy_update: update(policies, revision) }),
    };
  }

  identityListener(): IdentityListener {
    const unknown = (type: string, ident: AllocatedIdentity): AgentEvent => ({
      type: 'AGENT_EVENT_UNKNOWN',
      unknown: { type, notification: JSON.stringify({ id: ident.id, labels: ident.labels }) },
    });
    return {
      allocated: (ident) => this.push(unknown('IdentityAllocated', ident)),
      released: (ident) => this.push(unknown('IdentityReleased', ident)),
    };
  }
}
