/* Prometheus metrics: Hubble's flow, drop and policy-verdict counters (same names and labels)
 * plus the agent's own gauges. Served as text on the metrics address and through the API. */
import http from 'node:http';
import https from 'node:https';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { DIRECTION, DROP_REASON, EVENT_TYPE, MATCH_TYPE, TRACE_POINT, VERDICT } from '../datapath/layouts.js';
import type { CapturedEvent } from './decoder.js';
import { dropReasonName, hubbleEnum } from './proto.js';
import { type ServerTls, joinHostPort, parseHostPort } from '../util/listen.js';

/** Hubble's match label of hubble_policy_verdicts_total for each policy_match_type. */
const MATCH_LABEL: Record<keyof typeof MATCH_TYPE, string> = { NONE: 'none', L3_ONLY: 'l3-only', L3_L4: 'l3-l4', L4_ONLY: 'l4-only', ALL: 'all' };
const MATCH = new Map<number, string>(Object.entries(MATCH_LABEL).map(([k, label]) => [MATCH_TYPE[k as keyof typeof MATCH_TYPE], label]));

export interface AgentGauges {
  endpoints(): number;
  identities(): number;
  policyRevision(): number;
  mapPressure(): { map: string; pressure: number }[];
  lostEvents(): number;
  flowFollowers(): number;
}

const PROTO_NAMES = ['Unknown', 'TCP', 'UDP', 'SCTP', 'ICMPv4'];
const PROTO_INDEX: Record<number, number> = { 6: 1, 17: 2, 132: 3, 1: 4 };

export class Metrics {
  readonly registry = new Registry();
  private readonly pending = new Map<number, number>();
  private readonly flows = new Counter({
    name: 'hubble_flows_processed_total',
    help: 'Total number of flows processed',
    labelNames: ['protocol', 'type', 'subtype', 'verdict'],
    registers: [this.registry],
  });
  private readonly drops = new Counter({
    name: 'hubble_drop_total',
    help: 'Number of drops',
    labelNames: ['reason', 'protocol'],
    registers: [this.registry],
  });
  private readonly verdicts = new Counter({
    name: 'hubble_policy_verdicts_total',
    help: 'Total number of Cilium network policy verdicts',
    labelNames: ['direction', 'match', 'action'],
    registers: [this.registry],
  });
  readonly policyImport = new Histogram({
    name: 'membrane_policy_import_duration_seconds',
    help: 'Time from a policy import request to the datapath enforcing it',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  constructor(gauges: AgentGauges) {
    const gauge = (name: string, help: string, value: () => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(value());
        },
      });
    gauge('membrane_endpoints', 'Endpoints managed by this agent', gauges.endpoints);
    gauge('membrane_identities', 'Allocated security identities', gauges.identities);
    gauge('membrane_policy_revision', 'Current policy revision', gauges.policyRevision);
    gauge('membrane_flow_followers', 'Clients following new flows (CLI and Observer API)', gauges.flowFollowers);
    let lostCounted = 0;
    new Counter({
      name: 'hubble_lost_events_total',
      help: 'Number of lost events',
      labelNames: ['source'],
      registers: [this.registry],
      collect() {
        const total = gauges.lostEvents();
        if (total > lostCounted) this.inc({ source: 'perf_event_ring_buffer' }, total - lostCounted);
        lostCounted = Math.max(lostCounted, total);
      },
    });
    new Gauge({
      name: 'membrane_bpf_map_pressure',
      help: 'Fill level of each BPF map (entries / max entries)',
      labelNames: ['map_name'],
      registers: [this.registry],
      collect() {
        for (const m of gauges.mapPressure()) this.set({ map_name: m.map }, m.pressure);
      },
    });
  }

  /**
   * Counts one event. The hot path only bumps an integer keyed by the label values; the
   * Prometheus counters are brought up to date when they are scraped.
   */
  count(ev: CapturedEvent): void {
    const key = ev.type | (ev.subtype << 8) | (ev.verdict << 16) | (PROTO_INDEX[ev.protocol] ?? 0) << 20 | (ev.direction << 24) | (ev.matchType << 26);
    this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
  }

  private flush(): void {
    for (const [key, n] of this.pending) {
      const type = key & 0xff;
      const subtype = (key >>> 8) & 0xff;
      const verdict = (key >>> 16) & 0xf;
      const protocol = PROTO_NAMES[(key >>> 20) & 0xf]!;
      const direction = (key >>> 24) & 0x3;
      const match = (key >>> 26) & 0x7;
      const verdictName = hubbleEnum('flow.Verdict').get(verdict) ?? 'VERDICT_UNKNOWN';
      const kind =
        type === EVENT_TYPE.DROP
          ? { type: 'Drop', subtype: '' }
          : type === EVENT_TYPE.POLICY_VERDICT
            ? { type: 'PolicyVerdict', subtype: '' }
            : { type: 'Trace', subtype: subtype === TRACE_POINT.TO_ENDPOINT ? 'to-endpoint' : 'from-endpoint' };
      this.flows.inc({ protocol, ...kind, verdict: verdictName }, n);
      if (type === EVENT_TYPE.DROP) this.drops.inc({ reason: dropReasonName(subtype), protocol }, n);
      if (type === EVENT_TYPE.POLICY_VERDICT || (type === EVENT_TYPE.DROP && (subtype === DROP_REASON.POLICY_DENIED || subtype === DROP_REASON.POLICY_DENY))) {
        this.verdicts.inc(
          { direction: direction === DIRECTION.INGRESS ? 'ingress' : 'egress', match: MATCH.get(match) ?? 'none', action: verdict === VERDICT.DROPPED ? 'dropped' : verdict === VERDICT.AUDIT ? 'audit' : 'forwarded' },
          n,
        );
      }
    }
    this.pending.clear();
  }

  text(): Promise<string> {
    this.flush();
    return this.registry.metrics();
  }

  /**
   * Serves /metrics on host:port (port 0 picks one); resolves with the bound address. With `tls`
   * it is HTTPS, and with `tls.clientCa` a client without a certificate signed by one of those
   * CAs fails the handshake.
   */
  serve(address: string, tls?: ServerTls): Promise<{ server: http.Server | https.Server; address: string }> {
    const { host, port } = parseHostPort(address, 'metrics address');
    const handler: http.RequestListener = (req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end('see /metrics\n');
        return;
      }
      this.text().then(
        (body) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(body),
        (err: Error) => res.writeHead(500).end(err.message),
      );
    };
    const server = tls
      ? https.createServer(
          { cert: tls.cert, key: tls.key, ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}) },
          handler,
        )
      : http.createServer(handler);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      // An empty host is every interface: node's default (IPv6 and IPv4) when given none.
      server.listen(port, host || undefined, () => {
        const a = server.address() as { address: string; port: number };
        resolve({ server, address: joinHostPort(a.address, a.port) });
      });
    });
  }
}
