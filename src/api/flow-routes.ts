/* Agent API routes for flows: the flow ring as JSON lines (one GetFlowsResponse per line, exactly
 * as `hubble observe -o json` prints them), following new flows until the client goes away, and
 * the Prometheus text. In a cluster the flows are every node's, through the relay, and the lines
 * include its node statuses (`{"node_status":{...},"node_name":...,"time":...}`). */
import type { ClusterFlowsEvent, ClusterObserver } from '../flow/cluster-view.js';
import { checkRequest, matchesRequest } from '../flow/filter.js';
import type { Metrics } from '../flow/metrics.js';
import { formatJson } from '../flow/protojson.js';
import type { FlowRing } from '../flow/ring.js';
import { parseFlowsRequest } from '../flow/request-schema.js';
import type { GetFlowsRequest } from '../flow/types.js';
import { RawResponse, type ApiServer } from './server.js';

/** A follower that cannot keep up loses flows beyond this much unsent output. */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

/** One line of the stream for a relay's response. */
function clusterLine(ev: ClusterFlowsEvent): string {
  if ('flow' in ev) return formatJson(ev.flow);
  return JSON.stringify(ev);
}

export function registerFlowRoutes(api: ApiServer, ring: FlowRing, metrics: Metrics, cluster?: ClusterObserver): void {
  api
    .route('POST', '/v1/flows', ({ body }) => {
      const req = parseFlowsRequest(body);
      checkRequest(req);
      if (cluster) return clusterFlows(cluster, req);
      // Like Hubble, following with neither a number nor a start time begins at the ring's end.
      const history = req.follow && req.number === undefined && req.since === undefined ? [] : ring.query(req);
      return new RawResponse((res, httpReq) => {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.flushHeaders(); // a follower with no history yet knows at once that it is connected
        for (const f of history) res.write(formatJson(f) + '\n');
        if (!req.follow) {
          res.end();
          return;
        }
        // Flows this reader missed because it fell behind, told as soon as it catches up.
        let dropped = 0;
        const lost = (source: string, n: number) => res.write(JSON.stringify({ lost_events: { source, num_events_lost: n } }) + '\n');
        const unsubscribe = ring.subscribe(
          (f) => {
            if (!matchesRequest(f, req)) return;
            if (res.writableLength > MAX_BUFFERED_BYTES) {
              dropped++;
              return;
            }
            if (dropped) {
              lost('OBSERVER_EVENTS_QUEUE', dropped);
              dropped = 0;
            }
            res.write(formatJson(f) + '\n');
          },
          (n) => lost('PERF_EVENT_RING_BUFFER', n),
        );
        httpReq.once('close', unsubscribe);
        res.once('close', unsubscribe);
      });
    })
    .route('GET', '/v1/flows/status', () => ring.status())
    .route('GET', '/v1/metrics', async () => {
      const text = await metrics.text();
      return new RawResponse((res) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(text);
      });
    });
}

/**
 * The relay's responses as JSON lines. History waits for a slow reader; a follower that lets more
 * than MAX_BUFFERED_BYTES pile up loses flows, and is told how many once it catches up.
 */
function clusterFlows(cluster: ClusterObserver, req: GetFlowsRequest): RawResponse {
  return new RawResponse((res, httpReq) => {
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    res.flushHeaders();
    const abort = new AbortController();
    const gone = () => abort.abort();
    httpReq.once('close', gone);
    res.once('close', gone);
    let dropped = 0;
    const emit = (ev: ClusterFlowsEvent): Promise<void> | undefined => {
      if (abort.signal.aborted) return undefined;
      if ('flow' in ev && res.writableLength > MAX_BUFFERED_BYTES) {
        dropped++;
        return undefined;
      }
      if (dropped) {
        res.write(JSON.stringify({ lost_events: { source: 'OBSERVER_EVENTS_QUEUE', num_events_lost: dropped } }) + '\n');
        dropped = 0;
      }
      if (res.write(clusterLine(ev) + '\n')) return undefined;
      return new Promise<void>((resolve) => {
        const done = () => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.on('drain', done);
        res.on('close', done);
      });
    };
    cluster.getFlows(req, emit, abort.signal).then(
      () => res.end(),
      (err: unknown) => {
        // Headers are gone: the error travels as the stream's last line, and the stream ends.
        res.end(JSON.stringify({ error: { code: 'internal', message: err instanceof Error ? err.message : String(err) } }) + '\n');
      },
    );
  });
}
