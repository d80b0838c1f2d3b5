/* Typed client of the agent API, used by the CLI, tests and benchmarks. */
import http from 'node:http';
import { AgentUnreachable, ApiError } from '../errors.js';
import type {
  ApiErrorBody,
  ClusterNode,
  CtRow,
  NatRow,
  EndpointPolicyView,
  PolicyFile,
  PolicyImportResult,
  PolicyList,
  SelectorRow,
  ServiceRequest,
  ServiceView,
  Endpoint,
  EndpointAddRequest,
  Identity,
  IpcacheRow,
  LbRow,
  MetricsRow,
  Namespace,
  Status,
} from './types.js';

/** The errors a caller of the client handles. */
export { AgentUnreachable, ApiError };

export const DEFAULT_SOCKET = '/run/membrane/membrane.sock';

export class AgentClient {
  constructor(readonly socketPath: string) {}

  request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socketPath,
          method,
          path,
          headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              return reject(new ApiError(res.statusCode ?? 0, 'internal', `agent sent a non-JSON reply: ${text.slice(0, 200)}`));
            }
            if ((res.statusCode ?? 500) >= 400) {
              const e = (parsed as ApiErrorBody | undefined)?.error;
              return reject(new ApiError(res.statusCode ?? 500, e?.code ?? 'internal', e?.message ?? `HTTP ${res.statusCode}`));
            }
            resolve(parsed as T);
          });
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) => {
        reject(
          new AgentUnreachable(
            `cannot reach the agent at ${this.socketPath} (${err.code ?? err.message}): start it with 'make run' or 'membrane agent', or point --socket / MEMBRANE_SOCKET at it`,
          ),
        );
      });
      req.end(payload);
    });
  }

  status = () => this.request<Status>('GET', '/v1/status');
  setNamespace = (name: string, labels?: string[]) =>
    this.request<Namespace>('PUT', `/v1/namespaces/${encodeURIComponent(name)}`, { labels });
  deleteNamespace = (name: string) => this.request<void>('DELETE', `/v1/namespaces/${encodeURIComponent(name)}`);
  listNamespaces = () => this.request<Namespace[]>('GET', '/v1/namespaces');
  addEndpoint = (req: EndpointAddRequest) => this.request<Endpoint>('POST', '/v1/endpoints', req);
  listEndpoints = () => this.request<Endpoint[]>('GET', '/v1/endpoints');
  getEndpoint = (ns: string, name: string) => this.request<Endpoint>('GET', epPath(ns, name));
  updateEndpoint = (ns: string, name: string, labels: string[]) =>
    this.request<Endpoint>('PATCH', epPath(ns, name), { labels });
  deleteEndpoint = (ns: string, name: string) => this.request<void>('DELETE', epPath(ns, name));
  listIdentities = () => this.request<Identity[]>('GET', '/v1/identities');
  listIpcache = () => this.request<IpcacheRow[]>('GET', '/v1/ipcache');
  listMetrics = () => this.request<MetricsRow[]>('GET', '/v1/bpf/metrics');
  importPolicies = (files: PolicyFile[]) => this.request<PolicyImportResult>('POST', '/v1/policies', { files });
  listNodes = () => this.request<ClusterNode[]>('GET', '/v1/nodes');
  validatePolicies = (files: PolicyFile[]) => this.request<PolicyImportResult>('POST', '/v1/policies/validate', { files });
  listPolicies = () => this.request<PolicyList>('GET', '/v1/policies');
  deletePolicy = (ref: { namespace?: string; name: string } | { all: true }) =>
    this.request<{ revision: number }>('DELETE', '/v1/policies', ref);
  policySelectors = () => this.request<SelectorRow[]>('GET', '/v1/policies/selectors');
  endpointPolicy = (ns: string, name: string) =>
    this.request<EndpointPolicyView>('GET', `/v1/bpf/policy/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`);
  listCt = () => this.request<CtRow[]>('GET', '/v1/bpf/ct');
  listNat = () => this.request<NatRow[]>('GET', '/v1/bpf/nat');
  addService = (req: ServiceRequest) => this.request<ServiceView>('POST', '/v1/services', req);
  updateService = (req: ServiceRequest) => this.request<ServiceView>('PUT', `/v1/services/${encodeURIComponent(req.name)}`, req);
  deleteService = (name: string) => this.request<void>('DELETE', `/v1/services/${encodeURIComponent(name)}`);
  listServices = () => this.request<ServiceView[]>('GET', '/v1/services');
  collectGarbage = () => this.request<{ collected: boolean; memory: { rssBytes: number; heapUsedBytes: number } }>('POST', '/v1/debug/gc', {});
  getService = (name: string) => this.request<ServiceView>('GET', `/v1/services/${encodeURIComponent(name)}`);
  listLb = () => this.request<LbRow[]>('GET', '/v1/bpf/lb');

  /** Prometheus text exposition of the agent's metrics. */
  metricsText(): Promise<string> {
    return new Promise((resolve, reject) => {
      http
        .get({ socketPath: this.socketPath, path: '/v1/metrics' }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => resolve(text));
        })
        .on('error', reject);
    });
  }
}

function epPath(ns: string, name: string): string {
  return `/v1/endpoints/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
}

/**
 * Streams flows (one `GetFlowsResponse` JSON line each) to `onLine` until the agent ends the
 * response or `signal` aborts it.
 */
export function streamFlows(
  socketPath: string,
  req: unknown,
  onLine: (line: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(req);
    const httpReq = http.request(
      { socketPath, method: 'POST', path: '/v1/flows', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }, signal },
      (res) => {
        let buf = '';
        res.setEncoding('utf8');
        if ((res.statusCode ?? 500) >= 400) {
          res.on('data', (d: string) => (buf += d));
          res.on('end', () => {
            const e = (JSON.parse(buf || '{}') as ApiErrorBody).error;
            reject(new ApiError(res.statusCode ?? 500, e?.code ?? 'internal', e?.message ?? `HTTP ${res.statusCode}`));
          });
          return;
        }
        res.on('data', (d: string) => {
          buf += d;
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if (line) onLine(line);
          }
        });
        let ended = false;
        res.on('end', () => {
          ended = true;
          resolve();
        });
        // The agent going away mid-stream (stopped, restarted) ends a follow with one line.
        const gone = () => {
          if (ended) return;
          ended = true;
          if (signal?.aborted) resolve();
          else reject(new AgentUnreachable(`the agent at ${socketPath} closed the stream (it stopped or restarted): run the command again`));
        };
        res.on('error', gone);
        res.on('close', gone);
      },
    );
    httpReq.on('error', (err: NodeJS.ErrnoException) => {
      if (signal?.aborted) return resolve();
      reject(new AgentUnreachable(`cannot reach the agent at ${socketPath} (${err.code ?? err.message}): start it with 'make run' or 'membrane agent', or point --socket / MEMBRANE_SOCKET at it`));
    });
    httpReq.end(payload);
  });
}
