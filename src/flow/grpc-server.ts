/* Hubble-compatible gRPC Observer service (observer.Observer from proto/observer/observer.proto)
 * over the flow ring, so Hubble's own clients (hubble observe, hubble status, hubble-ui through a
 * relay) can read Membrane's flows, on a TCP address and/or a unix socket. The TCP listener speaks
 * TLS when given a certificate, and then, with client CAs, accepts only clients holding a
 * certificate they signed (mutual TLS); the unix socket stays plaintext, its 0600 mode being
 * the access control.
 *
 * GetFlows follows Hubble's semantics: the last (or, with `first`, the first) `number` flows or a
 * since/until range from the ring, then with `follow` every new flow that passes the request's
 * filters until the client cancels. follow without number and since streams new flows only.
 * A follower that reads slower than flows arrive gets a bounded queue; past it flows are dropped
 * and the client is told how many with a lost_events response (HUBBLE_RING_BUFFER), as Hubble does.
 *
 * GetAgentEvents serves the agent's event log (agent-events.ts) the same way: history by number or
 * time range, then with follow every new event. GetDebugEvents answers with an empty stream:
 * Membrane's datapath has no debug events (with follow the stream stays open, silent, until the
 * client cancels, as Hubble's would on an agent without debug mode).
 *
 * In a cluster the agent's main server is given the relay (`cluster`): GetFlows, GetNodes and
 * ServerStatus then answer for every node (src/cluster/relay/), while the server it runs for its
 * peers answers for this node alone. Either way the response headers of GetFlows go out once the
 * request is taken (following: once subscribed), which is how a relay knows a peer is streaming. */

import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { UserError, type UserErrorCode } from '../errors.js';
import { type ServerTls, joinHostPort, parseHostPort } from '../util/listen.js';
import {
  type ProtoGetAgentEventsRequest,
  type ProtoGetFlowsRequest,
  type ProtoGetFlowsResponse,
  ProtoMapError,
  agentEventResponseToProto,
  flowToProto,
  getAgentEventsRequestFromProto,
  getFlowsRequestFromProto,
  rfc3339FromTimestamp,
  rfc3339ToNanos,
  timestampFromRfc3339,
} from './proto-map.js';
import type { AgentEventRecord, AgentEventSource } from './agent-events.js';
import type { ClusterFlowsEvent, ClusterObserver } from './cluster-view.js';
import type { Flow, FlowSource, GetFlowsRequest } from './types.js';
import { loadObserverProto } from './proto.js';
import { meterSource } from './rate-meter.js';

export interface ObserverServerOptions {
  /** host:port to listen on, e.g. "127.0.0.1:4245" (port 0 picks a free one). */
  tcpAddress?: string;
  /** TLS on the TCP listener (mutual with `clientCa`); plaintext without. */
  tls?: ServerTls;
  /** Path of a unix socket to listen on (created 0600, replacing a stale file). */
  unixSocket?: string;
  /** Reported by ServerStatus and GetNodes. */
  version: string;
  /**
   * Whether a flow passes the request's whitelist/blacklist: applied to the flows delivered by
   * `source.subscribe` while following (`source.query` filters the history itself).
   */
  filter: (flow: Flow, req: GetFlowsRequest) => boolean;
  /**
   * Optional validation of a request before anything is streamed (e.g. a malformed CIDR in a
   * filter); a UserError it throws is answered with the matching gRPC status (INVALID_ARGUMENT, ...).
   */
  checkRequest?: (req: GetFlowsRequest) => void;
  /** Most responses queued for one slow follower before flows are dropped (default 8192). */
  maxQueuedPerStream?: number;
  /** The agent's event log for GetAgentEvents; without it GetAgentEvents answers UNIMPLEMENTED. */
  agentEvents?: AgentEventSource;
  /**
   * In a cluster: the relay, through which GetFlows, GetNodes and ServerStatus answer for every
   * node (Hubble Relay's view). Without it they answer for `source`'s node alone.
   */
  cluster?: ClusterObserver;
}

export interface ObserverServer {
  /** Ends open streams (UNAVAILABLE), stops listening and removes the unix socket. */
  close(): Promise<void>;
  /** The TCP port actually bound, when listening on TCP. */
  tcpPort?: number;
}

type Status = { code: grpc.status; details: string };
const failure = (code: grpc.status, details: string): Status => ({ code, details });

const USER_ERROR_STATUS: Record<UserErrorCode, grpc.status> = {
  invalid: grpc.status.INVALID_ARGUMENT,
  'not-found': grpc.status.NOT_FOUND,
  conflict: grpc.status.FAILED_PRECONDITION,
  unavailable: grpc.status.UNAVAILABLE,
};

/** The status for an error about the request; anything else is INTERNAL. */
function statusOf(err: unknown): Status {
  if (err instanceof ProtoMapError) return failure(grpc.status.INVALID_ARGUMENT, err.message);
  if (err instanceof UserError) return failure(USER_ERROR_STATUS[err.code], err.message);
  return failure(grpc.status.INTERNAL, err instanceof Error ? err.message : String(err));
}

export async function startObserverServer(source: FlowSource, opts: ObserverServerOptions): Promise<ObserverServer> {
  if (!opts.tcpAddress && !opts.unixSocket) throw new Error('observer server: neither tcpAddress nor unixSocket given');
  const maxQueued = opts.maxQueuedPerStream ?? 8192;
  const pkg = grpc.loadPackageDefinition(loadObserverProto());
  const service = ((pkg.observer as grpc.GrpcObject).Observer as grpc.ServiceClientConstructor).service;

  const { meter: rate, stop: unsubscribeRate } = meterSource(source);
  /** Open GetFlows streams: each entry ends its stream with the given status. */
  const open = new Set<(status: Status) => void>();
  let nodeAddress = '';
  /** What GetNodes reports: Hubble's relay dials nodeAddress with TLS when it says so. */
  const tcpTls = opts.tls !== undefined && opts.tcpAddress !== undefined;

  /** The response for a flow, or undefined for a flow that cannot be encoded (bad time). */
  const respond = (flow: Flow): ProtoGetFlowsResponse | undefined => {
    try {
      const f = flowToProto(flow);
      return { flow: f, node_name: flow.node_name || source.nodeName, time: f.time };
    } catch {
      return undefined;
    }
  };

  /** The call's request as ours, or undefined once the call has failed with the reason (INVALID_ARGUMENT for a request that cannot be served). */
  const requestOf = <T>(call: grpc.ServerWritableStream<unknown, unknown>, read: () => T): T | undefined => {
    try {
      return read();
    } catch (err) {
      call.emit('error', statusOf(err));
      return undefined;
    }
  };

  /**
   * A server stream's single ending: it unsubscribes (what `unsubscribe` is set to), leaves the
   * set close() ends, and ends or fails the call unless the client cancelled it.
   */
  const track = (call: grpc.ServerWritableStream<unknown, unknown>) => {
    const stream = {
      finished: false,
      unsubscribe: () => {},
      finish: (status?: Status) => {
        if (stream.finished) return;
        stream.finished = true;
        stream.unsubscribe();
        open.delete(stream.finish);
        if (call.cancelled) return;
        if (status && status.code !== grpc.status.OK) call.emit('error', status);
        else call.end();
      },
    };
    open.add(stream.finish);
    call.on('cancelled', () => stream.finish());
    call.on('error', () => stream.finish());
    return stream;
  };

  /** A GetFlows request, checked (answered with the error and undefined when it is refused). */
  const flowsRequestOf = (call: grpc.ServerWritableStream<ProtoGetFlowsRequest, ProtoGetFlowsResponse>) =>
    requestOf(call, (): GetFlowsRequest => {
      const r = getFlowsRequestFromProto(call.request);
      if (r.first && r.follow) throw new ProtoMapError('first cannot be combined with follow');
      opts.checkRequest?.(r);
      return r;
    });

  async function getFlows(call: grpc.ServerWritableStream<ProtoGetFlowsRequest, ProtoGetFlowsResponse>): Promise<void> {
    const req = flowsRequestOf(call);
    if (!req) return;
    const since = req.since === undefined ? undefined : rfc3339ToNanos(req.since);
    const until = req.until === undefined ? undefined : rfc3339ToNanos(req.until);

    const stream = track(call);
    const finish = stream.finish;

    // Following: subscribe before reading the history so that no flow falls between the two.
    // Flows arriving meanwhile wait in `pending`; those the history already holds are skipped.
    const pending: Flow[] = [];
    let live = false;
    const queue: ProtoGetFlowsResponse[] = [];
    let blocked = false;
    let lost = 0;

    const reportLost = () => {
      if (lost === 0 || stream.finished) return;
      blocked = !call.write({ lost_events: { source: 'HUBBLE_RING_BUFFER', num_events_lost: lost } });
      lost = 0;
    };
    const drain = () => {
      blocked = false;
      while (queue.length > 0 && !blocked && !stream.finished) blocked = !call.write(queue.shift()!);
      if (!blocked) reportLost();
    };
    const send = (resp: ProtoGetFlowsResponse) => {
      if (!blocked) blocked = !call.write(resp);
      else if (queue.length < maxQueued) queue.push(resp);
      else lost++;
    };
    // Runs inside source.subscribe's callback: it must not throw into the flow source. A flow
    // that cannot be handled (bad time, failing filter) is counted as lost and reported.
    const follow = (flow: Flow) => {
      if (stream.finished) return;
      try {
        if (since !== undefined || until !== undefined) {
          const t = rfc3339ToNanos(flow.time);
          if (until !== undefined && t > until) return finish();
          if (since !== undefined && t < since) return;
        }
        if (!opts.filter(flow, req)) return;
        const resp = respond(flow);
        if (resp) send(resp);
        else lost++;
      } catch {
        lost++;
      }
    };

    if (req.follow) {
      stream.unsubscribe = source.subscribe(
        (flow) => {
          if (live) follow(flow);
          else if (pending.length < maxQueued) pending.push(flow);
          else lost++;
        },
        // Events the kernel could not queue never become flows: the follower hears how many.
        (n) => send({ lost_events: { source: 'PERF_EVENT_RING_BUFFER', num_events_lost: n } }),
      );
    }

    // The response headers say the request was taken (and, following, that the subscription is
    // in place): a relay waits for them before it counts this node as streaming.
    call.sendMetadata(new grpc.Metadata());

    // Hubble: follow with neither number nor since starts at the ring's end (no history).
    const history = req.follow && req.number === undefined && req.since === undefined ? [] : source.query(req);
    const seen = new Set<string | Flow>();
    for (const flow of history) {
      if (stream.finished) return;
      if (req.follow) seen.add(flow.uuid || flow);
      const resp = respond(flow);
      if (!resp) lost++;
      else if (!call.write(resp)) await new Promise<void>((resolve) => waitDrain(call, resolve));
    }
    if (stream.finished) return;
    if (!req.follow) {
      reportLost();
      return finish();
    }

    for (const flow of pending) if (!seen.has(flow.uuid || flow)) follow(flow);
    pending.length = 0;
    live = true;
    call.on('drain', drain);
    if (!blocked) drain(); // reports flows lost while the history was being sent
    // From here the stream lives on in `follow` until the client cancels, `until` passes or close().
  }

  /**
   * GetFlows through the relay: every node's flows, as the relay emits them. History waits for a
   * slow reader; live responses the reader cannot take wait in the bounded queue, and past it
   * they are counted and reported as lost (HUBBLE_RING_BUFFER), as for this node's own flows.
   */
  async function clusterGetFlows(cluster: ClusterObserver, call: grpc.ServerWritableStream<ProtoGetFlowsRequest, ProtoGetFlowsResponse>): Promise<void> {
    const req = flowsRequestOf(call);
    if (!req) return;
    const stream = track(call);
    const abort = new AbortController();
    stream.unsubscribe = () => abort.abort();
    const queue: ProtoGetFlowsResponse[] = [];
    let blocked = false;
    let lost = 0;
    let waiting: Promise<void> | undefined;
    call.on('drain', () => {
      blocked = false;
      while (queue.length > 0 && !blocked && !stream.finished) blocked = !call.write(queue.shift()!);
      if (!blocked && lost > 0 && !stream.finished) {
        blocked = !call.write({ lost_events: { source: 'HUBBLE_RING_BUFFER', num_events_lost: lost } });
        lost = 0;
      }
    });
    const emit = (ev: ClusterFlowsEvent): Promise<void> | undefined => {
      if (stream.finished) return undefined;
      let resp: ProtoGetFlowsResponse | undefined;
      try {
        resp = clusterEventToProto(ev);
      } catch {
        resp = undefined;
      }
      if (!resp) lost++;
      else if (!blocked) blocked = !call.write(resp);
      else if (queue.length < maxQueued) queue.push(resp);
      else lost++;
      if (!blocked) return undefined;
      return (waiting ??= new Promise<void>((resolve) => waitDrain(call, resolve)).finally(() => (waiting = undefined)));
    };
    await cluster.getFlows(req, emit, abort.signal);
    if (stream.finished) return;
    while (blocked && !stream.finished) await new Promise<void>((resolve) => waitDrain(call, resolve));
    if (lost > 0 && !stream.finished) call.write({ lost_events: { source: 'HUBBLE_RING_BUFFER', num_events_lost: lost } });
    stream.finish();
  }

  /**
   * GetAgentEvents: the log's history (number, first, since, until), then with follow every new
   * event until the client cancels, `until` passes or the server closes.
   */
  async function getAgentEvents(events: AgentEventSource, call: grpc.ServerWritableStream<ProtoGetAgentEventsRequest, unknown>): Promise<void> {
    const req = requestOf(call, () => getAgentEventsRequestFromProto(call.request));
    if (!req) return;
    const until = req.until === undefined ? undefined : rfc3339ToNanos(req.until);
    const stream = track(call);
    const finish = stream.finish;
    // A reader that stops reading must not make the agent buffer without end: its events wait in
    // a bounded queue, and a follower that falls further behind is ended (an agent event stream
    // has no lost-events message to tell it what it missed).
    const queue: unknown[] = [];
    let blocked = false;
    call.on('drain', () => {
      blocked = false;
      while (queue.length > 0 && !blocked && !stream.finished) blocked = !call.write(queue.shift());
    });
    const behind = () => finish(failure(grpc.status.RESOURCE_EXHAUSTED, `the reader fell more than ${maxQueued} agent events behind`));
    const send = (record: AgentEventRecord) => {
      if (stream.finished) return;
      if (until !== undefined && rfc3339ToNanos(record.time) > until) return finish();
      const resp = agentEventResponseToProto(record);
      if (!blocked) blocked = !call.write(resp);
      else if (queue.length < maxQueued) queue.push(resp);
      else behind();
    };
    // As GetFlows: subscribe before reading the history, so no event falls between the two.
    const pending: AgentEventRecord[] = [];
    let live = false;
    if (req.follow) {
      stream.unsubscribe = events.subscribe((record) => {
        if (live) send(record);
        else if (pending.length < maxQueued) pending.push(record);
        else behind();
      });
    }
    const history = req.follow && req.number === undefined && req.since === undefined ? [] : events.query(req);
    const seen = new Set(history.map((r) => r.time)); // a log's times are unique: they identify its events
    for (const record of history) {
      if (stream.finished) return;
      if (!call.write(agentEventResponseToProto(record))) await new Promise<void>((resolve) => waitDrain(call, resolve));
    }
    if (stream.finished) return;
    if (!req.follow) return finish();
    for (const record of pending) if (!seen.has(record.time)) send(record);
    pending.length = 0;
    live = true;
  }

  const implementation: grpc.UntypedServiceImplementation = {
    GetFlows: (call: grpc.ServerWritableStream<ProtoGetFlowsRequest, ProtoGetFlowsResponse>) => {
      (opts.cluster ? clusterGetFlows(opts.cluster, call) : getFlows(call)).catch((err: unknown) => {
        if (!call.cancelled) call.emit('error', statusOf(err)); // e.g. source.query refusing the request
      });
    },
    GetAgentEvents: (call: grpc.ServerWritableStream<ProtoGetAgentEventsRequest, unknown>) => {
      const events = opts.agentEvents;
      if (!events) {
        call.emit('error', failure(grpc.status.UNIMPLEMENTED, 'this server was started without an agent event log'));
        return;
      }
      getAgentEvents(events, call).catch((err: unknown) => {
        if (!call.cancelled) call.emit('error', statusOf(err));
      });
    },
    GetDebugEvents: (call: grpc.ServerWritableStream<ProtoGetAgentEventsRequest, unknown>) => {
      // Membrane's datapath emits no debug events: nothing to send, now or later.
      const req = requestOf(call, () => getAgentEventsRequestFromProto(call.request));
      if (!req) return;
      if (!req.follow) {
        call.end();
        return;
      }
      track(call); // silent until the client cancels or the server closes
    },
    ServerStatus: unary(async () => {
      if (opts.cluster) {
        const c = await opts.cluster.status();
        return {
          num_flows: c.num_flows,
          max_flows: c.max_flows,
          seen_flows: c.seen_flows,
          uptime_ns: c.uptime_ns,
          num_connected_nodes: { value: c.num_connected_nodes },
          num_unavailable_nodes: { value: c.num_unavailable_nodes },
          unavailable_nodes: c.unavailable_nodes,
          version: opts.version,
          flows_rate: c.flows_rate,
        };
      }
      const st = source.status();
      return {
        num_flows: st.num_flows,
        max_flows: st.max_flows,
        seen_flows: st.seen_flows,
        uptime_ns: st.uptime_ns,
        num_connected_nodes: { value: 1 },
        num_unavailable_nodes: { value: 0 },
        version: opts.version,
        flows_rate: rate.perSecond(),
      };
    }),
    GetNodes: unary(async () => {
      if (opts.cluster) return { nodes: await opts.cluster.nodes() };
      const st = source.status();
      return {
        nodes: [
          {
            name: source.nodeName,
            version: opts.version,
            address: nodeAddress,
            state: 'NODE_CONNECTED',
            tls: { enabled: tcpTls },
            uptime_ns: st.uptime_ns,
            num_flows: st.num_flows,
            max_flows: st.max_flows,
            seen_flows: st.seen_flows,
          },
        ],
      };
    }),
    GetNamespaces: unary(() => {
      const ms = Date.now() - 3600_000;
      const hourAgo = rfc3339FromTimestamp({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 });
      const seen = new Map<string, { cluster: string; namespace: string }>();
      for (const flow of source.query({ since: hourAgo })) {
        for (const ep of [flow.source, flow.destination]) {
          if (!ep?.namespace) continue;
          const cluster = ep.cluster_name ?? '';
          seen.set(`${cluster}\0${ep.namespace}`, { cluster, namespace: ep.namespace });
        }
      }
      const namespaces = [...seen.values()]
        .sort((a, b) => a.cluster.localeCompare(b.cluster) || a.namespace.localeCompare(b.namespace))
        .map(({ cluster, namespace }) => (cluster ? { cluster, namespace } : { namespace })); // proto3: "" is unset
      return { namespaces };
    }),
  };

  const server = new grpc.Server();
  server.addService(service, implementation);
  const tls = opts.tls;
  // With client CAs grpc-js asks for a client certificate and fails the handshake without one.
  const tcpCredentials = tls
    ? grpc.ServerCredentials.createSsl(tls.clientCa ?? null, [{ private_key: tls.key, cert_chain: tls.cert }], tls.clientCa !== undefined)
    : grpc.ServerCredentials.createInsecure();
  const bind = (address: string, credentials: grpc.ServerCredentials) =>
    new Promise<number>((resolve, reject) =>
      server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port))),
    );

  let tcpPort: number | undefined;
  const socketPath = opts.unixSocket === undefined ? undefined : path.resolve(opts.unixSocket);
  try {
    if (opts.tcpAddress !== undefined) {
      const { host, port } = parseHostPort(opts.tcpAddress, 'observer TCP address');
      // grpc-js cannot bind an empty host; "every interface" is [::], which takes IPv4 too.
      tcpPort = await bind(joinHostPort(host || '::', port), tcpCredentials);
      nodeAddress = joinHostPort(host, tcpPort);
    }
    if (socketPath !== undefined) {
      fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
      fs.rmSync(socketPath, { force: true });
      const oldMask = process.umask(0o177); // created 0600: flows name workloads and policies
      try {
        await bind(`unix:${socketPath}`, grpc.ServerCredentials.createInsecure());
      } finally {
        process.umask(oldMask);
      }
      fs.chmodSync(socketPath, 0o600);
      if (!nodeAddress) nodeAddress = `unix://${socketPath}`;
    }
  } catch (err) {
    unsubscribeRate();
    server.forceShutdown();
    throw err;
  }

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= new Promise<void>((resolve) => {
      unsubscribeRate();
      for (const finish of [...open]) finish(failure(grpc.status.UNAVAILABLE, 'observer server is shutting down'));
      const timer = setTimeout(() => server.forceShutdown(), 2000);
      server.tryShutdown(() => {
        clearTimeout(timer);
        if (socketPath !== undefined) fs.rmSync(socketPath, { force: true });
        resolve();
      });
    }));

  return { close, tcpPort };
}

/** A unary handler from a function of nothing (these requests are empty); a throw becomes INTERNAL. */
function unary(answer: () => unknown): grpc.handleUnaryCall<unknown, unknown> {
  return (_call, callback) => {
    let response: unknown;
    try {
      response = answer();
    } catch (err) {
      callback(statusOf(err));
      return;
    }
    if (response instanceof Promise) response.then((r) => callback(null, r), (err: unknown) => callback(statusOf(err)));
    else callback(null, response);
  };
}

/** A relay's response as an observer.GetFlowsResponse message object. */
function clusterEventToProto(ev: ClusterFlowsEvent): ProtoGetFlowsResponse {
  const time = timestampFromRfc3339(ev.time);
  if ('flow' in ev) return { flow: flowToProto(ev.flow), node_name: ev.node_name, time };
  if ('node_status' in ev) return { node_status: { ...ev.node_status, node_names: [...ev.node_status.node_names] }, node_name: ev.node_name, time };
  return { lost_events: { ...ev.lost_events }, node_name: ev.node_name, time };
}

/** Resolves once the stream can take more, or is over. */
function waitDrain(call: grpc.ServerWritableStream<unknown, unknown>, resolve: () => void): void {
  const done = () => {
    call.off('drain', done);
    call.off('cancelled', done);
    call.off('close', done);
    resolve();
  };
  call.on('drain', done);
  call.on('cancelled', done);
  call.on('close', done);
}
