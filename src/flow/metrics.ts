/* Prometheus metrics: Hubble's flow, drop, policy-verdict, TCP-flag and port-distribution
 * counters (same names and labels) plus the agent's own gauges. Served as text on the metrics
 * address and through the API.
 *
 * Like Hubble's handlers they count flows (events), not packets: hubble_policy_verdicts_total
 * counts policy-verdict events (a denial is one, DROPPED, followed by its drop); hubble_tcp_flags_total
 * and hubble_port_distribution_total count FORWARDED flows, so at the default aggregation a new
 * connection's SYN is counted in its policy verdict and in its trace, as in Cilium. One Membrane
 * difference: hubble_drop_total counts drop events only, where Hubble counts every DROPPED flow
 * (the verdict before a policy drop too): here one dropped packet is one drop. */
import http from 'node:http';
import https from 'node:https';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { CT_STATE, DIRECTION, ETHERTYPE_IPV4, EVENT_TYPE, MATCH_TYPE, TRACE_POINT, VERDICT } from '../datapath/layouts.js';
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

/** hubble_port_distribution_total's slots: (protocol index - 1) << 16 | port for TCP, UDP, SCTP; one for ICMP. */
const ICMP_SLOT = 3 << 16;
const PORT_SLOTS = ICMP_SLOT + 1;
const portSlot = (proto: number, port: number) => (proto === 4 ? ICMP_SLOT : ((proto - 1) << 16) | port);

const TCP_FIN = 0x01;
const TCP_SYN = 0x02;
const TCP_RST = 0x04;
const TCP_ACK = 0x10;

export class Metrics {
  readonly registry = new Registry();
  private readonly pending = new Map<number, number>();
  /**
   * FORWARDED TCP flows by their FIN, SYN, RST and ACK bits, and FORWARDED flows that are not
   * replies by portSlot(): array indexes, no hashing on the hot path (measured: about 4 ns an
   * event more than before these two metrics, where Maps cost about 13). Float64 counts stay
   * exact however long nobody scrapes; the pages of ports never seen are never touched.
   */
  private readonly pendingTcpFlags = new Float64Array((TCP_FIN | TCP_SYN | TCP_RST | TCP_ACK) + 1);
  private readonly pendingPorts = new Float64Array(PORT_SLOTS);
  private readonly portsTouched: number[] = [];
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
  private readonly tcpFlags = new Counter({
    name: 'hubble_tcp_flags_total',
    help: 'TCP flag occurrences',
    labelNames: ['flag', 'family'],
    registers: [this.registry],
  });
  private readonly ports = new Counter({
    name: 'hubble_port_distribution_total',
    help: 'Numbers of packets distributed by destination port',
    labelNames: ['protocol', 'port'],
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
    const proto = PROTO_INDEX[ev.protocol] ?? 0;
    const key = ev.type | (ev.subtype << 8) | (ev.verdict << 16) | proto << 20 | (ev.direction << 24) | (ev.matchType << 26);
    this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
    // Hubble's tcp and port-distribution handlers: forwarded flows only (an IPv4 one, with L4).
    if (ev.verdict !== VERDICT.FORWARDED || proto === 0 || ev.ethertype !== ETHERTYPE_IPV4) return;
    if (proto === 1 && ev.tcpFlags & (TCP_FIN | TCP_SYN | TCP_RST)) this.pendingTcpFlags[ev.tcpFlags & (TCP_FIN | TCP_SYN | TCP_RST | TCP_ACK)]!++;
    if (ev.ctState !== CT_STATE.REPLY && ev.ctState !== CT_STATE.RELATED) {
      const slot = portSlot(proto, ev.dport);
      if (this.pendingPorts[slot]!++ === 0) this.portsTouched.push(slot);
    }
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
      // Policy verdict events only: a policy drop has its own verdict event (DROPPED) before it.
      if (type === EVENT_TYPE.POLICY_VERDICT) {
        this.verdicts.inc(
          { direction: direction === DIRECTION.INGRESS ? 'ingress' : 'egress', match: MATCH.get(match) ?? 'none', action: verdict === VERDICT.DROPPED ? 'dropped' : verdict === VERDICT.AUDIT ? 'audit' : 'forwarded' },
          n,
        );
      }
    }
    this.pending.clear();
    this.pendingTcpFlags.forEach((n, bits) => {
      if (n === 0) return;
      // Hubble's labels: FIN, SYN or SYN-ACK, RST; one packet can count under several.
      if (bits & TCP_FIN) this.tcpFlags.inc({ flag: 'FIN', family: 'IPv4' }, n);
      if (bits & TCP_SYN) this.tcpFlags.inc({ flag: bits & TCP_ACK ? 'SYN-ACK' : 'SYN', family: 'IPv4' }, n);
      if (bits & TCP_RST) this.tcpFlags.inc({ flag: 'RST', family: 'IPv4' }, n);
    });
    this.pendingTcpFlags.fill(0);
    for (const slot of this.portsTouched) {
      // ICMP has no port: Hubble labels it "0".
      const label = slot === ICMP_SLOT ? { protocol: 'ICMPv4', port: '0' } : { protocol: PROTO_NAMES[(slot >>> 16) + 1]!, port: String(slot & 0xffff) };
      this.ports.inc(label, this.pendingPorts[slot]!);
      this.pendingPorts[slot] = 0;
    }
    this.portsTouched.length = 0;
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
