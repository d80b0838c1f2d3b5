/* One node's flows as the relay asks for them, whether the node is this one (its own ring, read
 * in place: the relay never dials itself) or a peer (its Observer over mutual TLS, peer.ts). The
 * relay asks for history and for the live stream separately, so that it can put the whole
 * cluster's history in order and cut it to `number` before live flows start. */
import type { Flow, FlowSource, GetFlowsRequest, LostEvents } from '../../flow/types.js';
import { meterSource, type RateMeter } from '../../flow/rate-meter.js';
import { parseTimestampNs } from '../../util/time.js';

/** What a node says of itself (its ServerStatus). */
export interface NodeStats {
  version: string;
  uptime_ns: number;
  num_flows: number;
  max_flows: number;
  seen_flows: number;
  flows_rate: number;
}

export interface FollowHandlers {
  flow(flow: Flow): void;
  lost(lost: LostEvents): void;
  /** The stream is over: `until` passed (no error), or the node went away (the error). */
  end(err?: Error): void;
}

export interface NodeFlows {
  readonly name: string;
  /** The node's flows matching a non-follow request, oldest first, and the events it reported lost. */
  history(req: GetFlowsRequest, signal: AbortSignal): Promise<{ flows: Flow[]; lost: LostEvents[] }>;
  /**
   * New flows matching `req` (its filters and `until`; history is asked for separately). Resolves
   * once the node has subscribed, so no flow after that moment is missed, with the function that
   * ends the stream; rejects when the node cannot be reached.
   */
  follow(req: GetFlowsRequest, on: FollowHandlers): Promise<() => void>;
  stats(): Promise<NodeStats>;
}

/** This node's own ring. */
export class LocalFlows implements NodeFlows {
  private readonly rate: { meter: RateMeter; stop: () => void };
  /** Follows of this node's relay subscribed to the ring now (the ring's other subscribers are peers' relays). */
  subscribed = 0;

  constructor(
    private readonly source: FlowSource,
    private readonly filter: (flow: Flow, req: GetFlowsRequest) => boolean,
    private readonly version: string,
  ) {
    this.rate = meterSource(source);
  }

  get name(): string {
    return this.source.nodeName;
  }

  async history(req: GetFlowsRequest): Promise<{ flows: Flow[]; lost: LostEvents[] }> {
    return { flows: this.source.query({ ...req, follow: false }), lost: [] };
  }

  async follow(req: GetFlowsRequest, on: FollowHandlers): Promise<() => void> {
    const until = req.until === undefined ? undefined : parseTimestampNs(req.until);
    let over = false;
    this.subscribed++;
    const stop = () => {
      if (over) return;
      over = true;
      this.subscribed--;
      unsubscribe();
    };
    const unsubscribe = this.source.subscribe(
      (flow) => {
        if (over) return;
        if (until !== undefined && (parseTimestampNs(flow.time) ?? 0n) > until) {
          stop();
          on.end();
          return;
        }
        if (this.filter(flow, req)) on.flow(flow);
      },
      (n) => on.lost({ source: 'PERF_EVENT_RING_BUFFER', num_events_lost: n }),
    );
    return stop;
  }

  async stats(): Promise<NodeStats> {
    const st = this.source.status();
    return { version: this.version, uptime_ns: st.uptime_ns, num_flows: st.num_flows, max_flows: st.max_flows, seen_flows: st.seen_flows, flows_rate: this.rate.meter.perSecond() };
  }

  close(): void {
    this.rate.stop();
  }
}
