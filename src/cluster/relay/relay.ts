/* The relay: any agent of a cluster answers GetFlows, GetNodes and ServerStatus for every node,
 * as Hubble Relay does, by asking each node's Observer over mutual TLS (itself directly). The
 * request's filters travel to every node, so each filters at the source and only what matches
 * crosses the underlay; nodes whose flows the request's node_name filters rule out are not asked.
 *
 * GetFlows without follow asks every node at once, then sends node statuses (Hubble's
 * `node_status`: NODE_CONNECTED with the nodes that answered, NODE_UNAVAILABLE with those that
 * did not, one event per distinct reason), then the union of their answers in time order, cut to
 * `number` (merge.ts). A node that does not answer is reported, never fatal.
 *
 * With follow, every node subscribes first (peers, then this node, so that a reader the agent
 * counts as following is connected to the whole cluster), then the history, if asked for, is read
 * and sent as above, then live flows go through a sort buffer (merge.ts) that puts the nodes'
 * streams back into time order within a window. Live flows that arrive while the history is read
 * wait, and those the history already holds are skipped (by uuid). Every `peerUpdateMs` the
 * stream looks at the registry again: a node that joined or came back is added (NODE_CONNECTED),
 * one that left is dropped (NODE_GONE); a node whose stream breaks is NODE_ERROR with the reason
 * until it answers again. */
import type { Logger } from 'pino';
import { errorMessage } from '../../errors.js';
import type { ClusterFlowsEvent, ClusterObserver, ClusterStatus, NodeState, ObserverNode } from '../../flow/cluster-view.js';
import { mayMatchNode } from '../../flow/filter.js';
import type { Flow, GetFlowsRequest, LostEvents } from '../../flow/types.js';
import { formatTimestampNs } from '../../util/time.js';
import { mergeHistory, SortBuffer, type SortBufferOptions } from './merge.js';
import type { PeerPool, PoolEntry } from './peers.js';

export interface RelayOptions {
  log: Logger;
  /** Hubble Relay's defaults: 100 flows, 1 s. */
  sortBuffer?: SortBufferOptions;
  /** How often a follow looks for nodes that joined, came back or left (Hubble Relay re-lists its peers while following too). */
  peerUpdateMs?: number;
}

/** Hubble Relay lists at most this many unavailable nodes in ServerStatus. */
const UNAVAILABLE_REPORT_MAX = 10;
/** Live flows held while a follow's history is read; more are counted lost. */
const PENDING_MAX = 65_536;

const now = () => formatTimestampNs(BigInt(Date.now()) * 1_000_000n);

/** Resolves when `signal` aborts. */
const aborted = (signal: AbortSignal) => new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));

interface Failure {
  name: string;
  why: string;
}

export class Relay implements ClusterObserver {
  private readonly sortBuffer: SortBufferOptions;
  private readonly peerUpdateMs: number;
  /** Follows streaming now, counted once every node they asked has subscribed (or failed). */
  followers = 0;

  constructor(
    private readonly pool: Pick<PeerPool, 'selfName' | 'entries' | 'close'>,
    private readonly opts: RelayOptions,
  ) {
    this.sortBuffer = opts.sortBuffer ?? { maxLength: 100, windowMs: 1000 };
    this.peerUpdateMs = opts.peerUpdateMs ?? 2000;
  }

  private statusEvent(state: NodeState, names: string[], message?: string): ClusterFlowsEvent {
    return { node_status: { state_change: state, node_names: names, ...(message ? { message } : {}) }, node_name: this.pool.selfName, time: now() };
  }

  /** NODE_CONNECTED for the nodes that answered, NODE_UNAVAILABLE once per distinct reason. */
  private async reportStates(emit: (ev: ClusterFlowsEvent) => void | Promise<void>, connected: string[], failed: Failure[]): Promise<void> {
    if (connected.length) await emit(this.statusEvent('NODE_CONNECTED', [...connected].sort()));
    const byReason = new Map<string, string[]>();
    for (const f of failed) byReason.set(f.why, [...(byReason.get(f.why) ?? []), f.name]);
    for (const [why, names] of byReason) {
      this.opts.log.info({ peers: names, reason: why }, 'nodes unavailable to the relay');
      await emit(this.statusEvent('NODE_UNAVAILABLE', names.sort(), why));
    }
  }

  private targets(req: GetFlowsRequest): PoolEntry[] {
    return this.pool.entries().filter((e) => mayMatchNode(req, e.node.name));
  }

  async getFlows(req: GetFlowsRequest, emit: (ev: ClusterFlowsEvent) => void | Promise<void>, signal: AbortSignal): Promise<void> {
    if (req.follow) return this.follow(req, emit, signal);
    const { answers, failed } = await this.collectHistory(this.targets(req), req, signal);
    await this.reportStates(emit, answers.map((a) => a.name), failed);
    await this.sendHistory(answers, req, emit, signal);
  }

  /** Every target's history at once; failures are collected, not thrown. */
  private async collectHistory(targets: PoolEntry[], req: GetFlowsRequest, signal: AbortSignal) {
    const answers: { name: string; flows: Flow[]; lost: LostEvents[] }[] = [];
    const failed: Failure[] = [];
    await Promise.all(
      targets.map(async ({ node, flows, unreachable }) => {
        if (!flows) return failed.push({ name: node.name, why: unreachable ?? 'unreachable' });
        try {
          answers.push({ name: node.name, ...(await flows.history({ ...req, follow: false }, signal)) });
        } catch (err) {
          failed.push({ name: node.name, why: errorMessage(err) });
        }
      }),
    );
    return { answers, failed };
  }

  private async sendHistory(answers: { name: string; flows: Flow[]; lost: LostEvents[] }[], req: GetFlowsRequest, emit: (ev: ClusterFlowsEvent) => void | Promise<void>, signal: AbortSignal): Promise<Set<string>> {
    for (const a of answers) for (const lost of a.lost) await emit({ lost_events: lost, node_name: a.name, time: now() });
    const uuids = new Set<string>();
    for (const flow of mergeHistory(answers.map((a) => a.flows), req)) {
      if (signal.aborted) break;
      if (req.follow && flow.uuid) uuids.add(flow.uuid);
      await emit({ flow, node_name: flow.node_name, time: flow.time });
    }
    return uuids;
  }

  private async follow(req: GetFlowsRequest, emit: (ev: ClusterFlowsEvent) => void | Promise<void>, signal: AbortSignal): Promise<void> {
    const self = this.pool.selfName;
    // Each node streams from now on; the history, if any, is asked for separately.
    const liveReq: GetFlowsRequest = {
      follow: true,
      ...(req.whitelist ? { whitelist: req.whitelist } : {}),
      ...(req.blacklist ? { blacklist: req.blacklist } : {}),
      ...(req.until !== undefined ? { until: req.until } : {}),
    };
    const wantsHistory = req.number !== undefined || req.since !== undefined;
    const send = (ev: ClusterFlowsEvent) => void emit(ev); // live: the reader's queue bounds what waits
    let live = false;
    let pending: Flow[] = [];
    let pendingLost = 0;
    const sorter = new SortBuffer((flow) => send({ flow, node_name: flow.node_name, time: flow.time }), this.sortBuffer);
    const streams = new Map<string, () => void>();
    const connecting = new Set<string>();
    /** Nodes last reported unavailable or broken: reported again only once they are back. */
    const down = new Set<string>();
    let endAll!: () => void;
    const allEnded = new Promise<void>((resolve) => (endAll = resolve));
    const untilReached = () => req.until !== undefined && streams.size === 0 && connecting.size === 0;

    const onFlow = (flow: Flow) => {
      if (signal.aborted) return;
      if (live) sorter.push(flow);
      else if (pending.length < PENDING_MAX) pending.push(flow);
      else pendingLost++;
    };
    /** Subscribes one node; undefined when it is streaming, else why not. */
    const subscribe = async (e: PoolEntry): Promise<string | undefined> => {
      const name = e.node.name;
      if (!e.flows) return e.unreachable ?? 'unreachable';
      connecting.add(name);
      try {
        const cancel = await e.flows.follow(liveReq, {
          flow: onFlow,
          lost: (lost) => send({ lost_events: lost, node_name: name, time: now() }),
          end: (err) => {
            if (!streams.delete(name)) return;
            if (err && !signal.aborted) {
              down.add(name);
              this.opts.log.warn({ peer: name, err: err.message }, 'a node stopped streaming flows to the relay');
              send(this.statusEvent('NODE_ERROR', [name], err.message));
            }
            if (untilReached()) endAll();
          },
        });
        if (signal.aborted) cancel();
        else streams.set(name, cancel);
        return undefined;
      } catch (err) {
        return errorMessage(err);
      } finally {
        connecting.delete(name);
      }
    };

    const initial = this.targets(req);
    const tried = async (entries: PoolEntry[]) => Promise.all(entries.map(async (e) => ({ name: e.node.name, why: await subscribe(e) })));
    const results = [...(await tried(initial.filter((e) => e.node.name !== self))), ...(await tried(initial.filter((e) => e.node.name === self)))];
    const failed = results.filter((r): r is Failure => r.why !== undefined);
    for (const f of failed) down.add(f.name);
    // From here nothing any node sends is missed: the agent may count this reader as following.
    this.followers++;
    try {
      await this.reportStates(emit, results.filter((r) => r.why === undefined).map((r) => r.name), failed);

      let seen = new Set<string>();
      if (wantsHistory) {
        const connected = initial.filter((e) => streams.has(e.node.name));
        const { answers, failed: broke } = await this.collectHistory(connected, { ...req, follow: false }, signal);
        for (const b of broke) await emit(this.statusEvent('NODE_ERROR', [b.name], b.why));
        seen = await this.sendHistory(answers, req, emit, signal);
      }
      for (const flow of pending) if (!flow.uuid || !seen.has(flow.uuid)) sorter.push(flow);
      pending = [];
      if (pendingLost) send({ lost_events: { source: 'HUBBLE_RING_BUFFER', num_events_lost: pendingLost }, node_name: self, time: now() });
      live = true;
      sorter.start();
      if (untilReached()) endAll();

      const update = () => {
        if (signal.aborted) return;
        const entries = this.targets(req);
        const names = new Set(entries.map((e) => e.node.name));
        for (const [name, cancel] of streams) {
          if (names.has(name)) continue;
          streams.delete(name);
          cancel();
          send(this.statusEvent('NODE_GONE', [name]));
        }
        for (const e of entries) {
          const name = e.node.name;
          if (streams.has(name) || connecting.has(name) || !e.flows) continue;
          void subscribe(e).then((why) => {
            if (signal.aborted) return;
            if (why === undefined) {
              down.delete(name);
              send(this.statusEvent('NODE_CONNECTED', [name]));
            } else if (!down.has(name)) {
              down.add(name);
              send(this.statusEvent('NODE_UNAVAILABLE', [name], why));
            }
          });
        }
      };
      const timer = setInterval(update, this.peerUpdateMs);
      try {
        await Promise.race([allEnded, aborted(signal)]);
      } finally {
        clearInterval(timer);
        for (const cancel of streams.values()) cancel();
        streams.clear();
        sorter.stop();
        if (!signal.aborted) sorter.flush();
      }
    } finally {
      this.followers--;
    }
  }

  async nodes(): Promise<ObserverNode[]> {
    return Promise.all(
      this.pool.entries().map(async ({ node, address, flows }): Promise<ObserverNode> => {
        const base = { name: node.name, version: node.version, address, tls: { enabled: address !== '', ...(address ? { server_name: node.name } : {}) }, uptime_ns: 0, num_flows: 0, max_flows: 0, seen_flows: 0 };
        if (!flows) return { ...base, state: 'NODE_UNAVAILABLE' };
        try {
          const s = await flows.stats();
          return { ...base, state: 'NODE_CONNECTED', version: s.version || node.version, uptime_ns: s.uptime_ns, num_flows: s.num_flows, max_flows: s.max_flows, seen_flows: s.seen_flows };
        } catch {
          return { ...base, state: 'NODE_UNAVAILABLE' };
        }
      }),
    );
  }

  async status(): Promise<ClusterStatus> {
    const out: ClusterStatus = { num_flows: 0, max_flows: 0, seen_flows: 0, uptime_ns: 0, flows_rate: 0, num_connected_nodes: 0, num_unavailable_nodes: 0, unavailable_nodes: [] };
    const stats = await Promise.all(this.pool.entries().map(async (e) => ({ name: e.node.name, s: await e.flows?.stats().catch(() => undefined) })));
    for (const { name, s } of stats) {
      if (!s) {
        out.num_unavailable_nodes++;
        if (out.unavailable_nodes.length < UNAVAILABLE_REPORT_MAX) out.unavailable_nodes.push(name);
        continue;
      }
      out.num_connected_nodes++;
      out.num_flows += s.num_flows;
      out.max_flows += s.max_flows;
      out.seen_flows += s.seen_flows;
      out.flows_rate += s.flows_rate;
      out.uptime_ns = Math.max(out.uptime_ns, s.uptime_ns);
    }
    return out;
  }

  close(): void {
    this.pool.close();
  }
}
