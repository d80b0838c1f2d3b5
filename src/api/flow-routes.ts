/* Agent API routes for flows: the flow ring as JSON lines (one GetFlowsResponse per line, exactly
 * as `hubble observe -o json` prints them), following new flows until the client goes away, and
 * the Prometheus text. */
import { checkRequest, matchesRequest } from '../flow/filter.js';
import type { Metrics } from '../flow/metrics.js';
import { formatJson } from '../flow/protojson.js';
import type { FlowRing } from '../flow/ring.js';
import { parseFlowsRequest } from '../flow/request-schema.js';
import { RawResponse, type ApiServer } from './server.js';

/** A follower that cannot keep up loses flows beyond this much unsent output. */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

export function registerFlowRoutes(api: ApiServer, ring: FlowRing, metrics: Metrics): void {
  api
    .route('POST', '/v1/flows', ({ body }) => {
      const req = parseFlowsRequest(body);
      checkRequest(req);
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
