/* Prometheus metrics: Hubble's flow, drop and policy-verdict counters (same names and labels)
 * plus the agent's own gauges. Served as text on the metrics address and through the API. */
import http from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Flow } from './types.js';
import { EVENT_TYPE } from './types.js';

const MATCH: Record<number, string> = { 0: 'none', 1: 'l3-only', 2: 'l3-l4', 3: 'l4-only', 4: 'all' };

function protocolOf(f: Flow): string {
  if (f.l4?.TCP) return 'TCP';
  if (f.l4?.UDP) return 'UDP';
  if (f.l4?.SCTP) return 'SCTP';
  if (f.l4?.ICMPv4) return 'ICMPv4';
  return 'Unknown';
}

function typeOf(f: Flow): { type: string; subtype: string } {
  switch (f.event_type.type) {
    case EVENT_TYPE.DROP:
      return { type: 'Drop', subtype: '' };
    case EVENT_TYPE.POLICY_VERDICT:
      return { type: 'PolicyVerdict', subtype: '' };
    default:
      return { type: 'Trace', subtype: f.trace_observation_point === 'TO_ENDPOINT' ? 'to-endpoint' : 'from-endpoint' };
  }
}

export interface AgentGauges {
  endpoints(): number;
  identities(): number;
  policyRevision(): number;
  mapPressure(): { map: string; pressure: number }[];
  lostEvents(): number;
}

export class Metrics {
  readonly registry = new Registry();
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
    gauge('hubble_lost_events_total', 'Datapath events lost because the ring buffer was full', gauges.lostEvents);
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

  observe(f: Flow): void {
    const protocol = protocolOf(f);
    const { type, subtype } = typeOf(f);
    this.flows.inc({ protocol, type, subtype, verdict: f.verdict });
    if (f.verdict === 'DROPPED') this.drops.inc({ reason: f.drop_reason_desc ?? 'UNKNOWN', protocol });
    const policyDrop = f.drop_reason_desc === 'POLICY_DENIED' || f.drop_reason_desc === 'POLICY_DENY';
    if (f.event_type.type === EVENT_TYPE.POLICY_VERDICT || policyDrop) {
      this.verdicts.inc({
        direction: f.traffic_direction === 'INGRESS' ? 'ingress' : 'egress',
        match: MATCH[f.policy_match_type ?? 0] ?? 'none',
        action: f.verdict === 'DROPPED' ? 'dropped' : 'forwarded',
      });
    }
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** Serves /metrics on host:port (port 0 picks one); resolves with the bound address. */
  serve(address: string): Promise<{ server: http.Server; address: string }> {
    const [host, port] = splitHostPort(address);
    const server = http.createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end('see /metrics\n');
        return;
      }
      this.text().then(
        (body) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(body),
        (err: Error) => res.writeHead(500).end(err.message),
      );
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        const a = server.address() as { address: string; port: number };
        resolve({ server, address: `${a.address}:${a.port}` });
      });
    });
  }
}

export function splitHostPort(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  const port = Number(address.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`"${address}" is not HOST:PORT (e.g. 127.0.0.1:9965)`);
  }
  return [address.slice(0, i), port];
}
