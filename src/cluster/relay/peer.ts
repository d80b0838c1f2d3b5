/* Another node's flows, read from its Observer over the underlay with mutual TLS (DESIGN.md
 * §3.13): this node presents its own certificate as a client certificate, and accepts only a
 * server certificate the cluster CA signed for the node the registry names — the name, not the
 * address, is checked (ssl_target_name_override), so a node holding another node's certificate
 * cannot pose as it, and a node whose address changes needs no new certificate.
 *
 * One channel per peer, kept open between requests (connecting costs a TLS handshake). A node
 * counts as answering once its response headers arrive: a Membrane Observer sends them as soon as
 * it has taken the request (for follow: once it has subscribed to its ring), so the wait is
 * bounded by `timeoutMs` whether the peer refuses, hangs or is not there at all. */
import * as grpc from '@grpc/grpc-js';
import { loadObserverProto } from '../../flow/proto.js';
import { flowFromProto, getFlowsRequestToProto, type ProtoGetFlowsResponse, type ProtoLostEvent } from '../../flow/proto-map.js';
import type { Flow, GetFlowsRequest, LostEvents } from '../../flow/types.js';
import type { PeerTls } from '../../util/listen.js';
import type { FollowHandlers, NodeFlows, NodeStats } from './node-flows.js';


/** The longest a history answer may take once the peer has answered. */
const HISTORY_DEADLINE_MS = 30_000;

let clientClass: grpc.ServiceClientConstructor | undefined;
const observerClient = () => (clientClass ??= (grpc.loadPackageDefinition(loadObserverProto()).observer as grpc.GrpcObject).Observer as grpc.ServiceClientConstructor);

/** A peer's failure as one line: grpc-js's details carry the cause (refused, certificate, ...). */
function peerError(err: unknown): Error {
  const e = err as Partial<grpc.ServiceError>;
  const text = (e.details || e.message || String(err))
    .replace(/\s+/g, ' ')
    .replace(/^No connection established\. Last error: /, '')
    .replace(/ ?Resolution note:.*$/, '')
    .replace(/^Error(?: \[\w+\])?: /, '')
    .replace(/ \(\d{4}-\d\d-\d\dT[^)]*\)/, '')
    .trim()
    .replace(/\.$/, '');
  return new Error(text || 'no answer');
}

function lostEvents(l: ProtoLostEvent): LostEvents {
  return { source: (l.source ?? 'HUBBLE_RING_BUFFER') as LostEvents['source'], num_events_lost: Number(l.num_events_lost ?? 0) };
}

/** The generated client's methods this file calls. */
type ObserverStub = grpc.Client & {
  GetFlows(req: unknown, md: grpc.Metadata, opts: grpc.CallOptions): grpc.ClientReadableStream<ProtoGetFlowsResponse>;
  ServerStatus(req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, s?: Record<string, unknown>) => void): grpc.ClientUnaryCall;
};

interface StreamHandlers {
  data(resp: ProtoGetFlowsResponse): void;
  end(err?: Error): void;
}

export class PeerFlows implements NodeFlows {
  private readonly client: ObserverStub;

  constructor(
    readonly name: string,
    readonly address: string,
    tls: PeerTls,
    private readonly timeoutMs: number,
  ) {
    const Client = observerClient();
    this.client = new Client(address, grpc.credentials.createSsl(tls.ca, tls.key, tls.cert), {
      'grpc.ssl_target_name_override': name,
      'grpc.default_authority': name,
      // grpc-js backs off up to 120 s between attempts on a channel that failed: a node that
      // comes back after a long absence would wait that long to be read again.
      'grpc.max_reconnect_backoff_ms': 5000,
    }) as unknown as ObserverStub;
  }

  /**
   * Starts GetFlows; resolves with its cancel function once the peer answered, rejects when it
   * failed or did not answer within the timeout. After that, `on.end` tells how the stream ended.
   */
  private open(req: GetFlowsRequest, on: StreamHandlers, deadline?: number): Promise<() => void> {
    return new Promise((resolve, reject) => {
      const call = this.client.GetFlows(getFlowsRequestToProto(req), new grpc.Metadata(), deadline === undefined ? {} : { deadline });
      let answered = false;
      let done = false;
      let cancelled = false;
      const cancel = () => {
        cancelled = true;
        call.cancel();
      };
      const timer = setTimeout(() => {
        if (answered) return;
        answered = done = true;
        cancel();
        reject(new Error(`no answer within ${this.timeoutMs / 1000} s`));
      }, this.timeoutMs);
      const answer = () => {
        if (answered) return;
        answered = true;
        clearTimeout(timer);
        resolve(cancel);
      };
      const finish = (err?: Error) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (!answered) {
          answered = true;
          if (err) return reject(err);
          resolve(cancel);
        }
        if (!cancelled) on.end(err);
      };
      call.on('metadata', answer);
      call.on('data', (resp: ProtoGetFlowsResponse) => {
        answer();
        if (!cancelled) on.data(resp);
      });
      call.on('error', (err) => finish(peerError(err)));
      call.on('end', () => finish());
    });
  }

  private read(resp: ProtoGetFlowsResponse, flow: (f: Flow) => void, lost: (l: LostEvents) => void): void {
    if (resp.flow) flow(flowFromProto(resp.flow, resp.node_name ?? this.name));
    else if (resp.lost_events) lost(lostEvents(resp.lost_events));
  }

  history(req: GetFlowsRequest, signal: AbortSignal): Promise<{ flows: Flow[]; lost: LostEvents[] }> {
    const flows: Flow[] = [];
    const lost: LostEvents[] = [];
    return new Promise((resolve, reject) => {
      let bad: Error | undefined;
      this.open({ ...req, follow: false }, {
        data: (resp) => {
          try {
            this.read(resp, (f) => flows.push(f), (l) => lost.push(l));
          } catch (err) {
            bad ??= peerError(err); // a flow that cannot be read (bad time): the node's answer is unusable
          }
        },
        end: (err) => (err || bad ? reject(err ?? bad) : resolve({ flows, lost })),
      }, Date.now() + HISTORY_DEADLINE_MS).then(
        (cancel) => signal.addEventListener('abort', cancel, { once: true }),
        reject,
      );
    });
  }

  follow(req: GetFlowsRequest, on: FollowHandlers): Promise<() => void> {
    return this.open({ ...req, follow: true }, {
      data: (resp) => {
        try {
          this.read(resp, on.flow, on.lost);
        } catch {
          on.lost({ source: 'HUBBLE_RING_BUFFER', num_events_lost: 1 });
        }
      },
      end: on.end,
    });
  }

  stats(): Promise<NodeStats> {
    return new Promise((resolve, reject) => {
      this.client.ServerStatus({}, new grpc.Metadata(), { deadline: Date.now() + this.timeoutMs }, (err, s) => {
        if (err || !s) return reject(peerError(err));
        resolve({
          version: String(s.version ?? ''),
          uptime_ns: Number(s.uptime_ns ?? 0),
          num_flows: Number(s.num_flows ?? 0),
          max_flows: Number(s.max_flows ?? 0),
          seen_flows: Number(s.seen_flows ?? 0),
          flows_rate: Number(s.flows_rate ?? 0),
        });
      });
    });
  }

  close(): void {
    this.client.close();
  }
}
