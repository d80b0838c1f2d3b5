/* Parsing and validation of service requests, with one-line errors that say the fix. */
import type { Service, ServiceBackend, ServiceProtocol, ServiceRequest } from './types.js';
import { invalid } from '../errors.js';
import { canonicalIpv4 } from '../net/ipv4.js';
import { parseLabelList } from '../identity/labels.js';

const NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
export const MAX_WEIGHT = 100;
/** Kubernetes' default sessionAffinityConfig.clientIP.timeoutSeconds, and its maximum (a day). */
export const DEFAULT_AFFINITY_TIMEOUT = 10800;
export const MAX_AFFINITY_TIMEOUT = 86400;

function port(text: string, what: string): number {
  if (!/^\d+$/.test(text)) throw invalid(`${what}: "${text}" is not a port number`);
  const n = Number(text);
  if (n < 1 || n > 65535) throw invalid(`${what}: port ${n} is out of range 1-65535`);
  return n;
}

function address(text: string, what: string): string {
  try {
    return canonicalIpv4(text);
  } catch {
    throw invalid(`${what}: "${text}" is not an IPv4 address (expected A.B.C.D)`);
  }
}

/** `VIP:PORT/PROTO` (protocol TCP by default). */
export function parseFrontend(text: string): Service['frontend'] {
  const m = /^([^:/]+):([^/]+)(?:\/(\w+))?$/.exec(text);
  if (!m) throw invalid(`--frontend "${text}": expected VIP:PORT/PROTO, e.g. 10.96.0.10:80/TCP`);
  const protocol = (m[3] ?? 'TCP').toUpperCase();
  if (protocol !== 'TCP' && protocol !== 'UDP') throw invalid(`--frontend "${text}": protocol must be TCP or UDP`);
  return { ip: address(m[1]!, `--frontend "${text}"`), port: port(m[2]!, `--frontend "${text}"`), protocol: protocol as ServiceProtocol };
}

/** `IP:PORT[,WEIGHT]` (weight 1-100, default 1). */
export function parseBackend(text: string): ServiceBackend {
  const m = /^([^:,]+):([^,]+)(?:,(.+))?$/.exec(text);
  if (!m) throw invalid(`--backend "${text}": expected IP:PORT or IP:PORT,WEIGHT, e.g. 10.244.0.5:8080,2`);
  let weight = 1;
  if (m[3] !== undefined) {
    weight = Number(m[3]);
    if (!Number.isInteger(weight) || weight < 1 || weight > MAX_WEIGHT) {
      throw invalid(`--backend "${text}": weight must be a whole number from 1 to ${MAX_WEIGHT}`);
    }
  }
  return { ip: address(m[1]!, `--backend "${text}"`), port: port(m[2]!, `--backend "${text}"`), weight };
}

export function parseServiceRequest(req: ServiceRequest, id: number): Service {
  if (typeof req.name !== 'string' || !NAME.test(req.name)) {
    throw invalid(`service name "${req.name}": must be a DNS label (lowercase letters, digits and '-')`);
  }
  if (typeof req.frontend !== 'string') throw invalid('--frontend VIP:PORT/PROTO is required');
  const algorithm = req.algorithm ?? 'random';
  if (algorithm !== 'random' && algorithm !== 'maglev') throw invalid(`--algorithm ${algorithm}: choose random or maglev`);
  const frontend = parseFrontend(req.frontend);
  const backends = (req.backends ?? []).map(parseBackend);
  const seen = new Set<string>();
  for (const b of backends) {
    const key = `${b.ip}:${b.port}`;
    if (seen.has(key)) throw invalid(`--backend ${key} is given twice`);
    seen.add(key);
  }
  const service: Service = { name: req.name, id, frontend, algorithm, backends };
  if (req.selector?.length) {
    service.selector = Object.fromEntries(parseLabelList(req.selector).map((l) => [l.key, l.value]));
  }
  if (req.targetPort !== undefined) {
    if (!service.selector) throw invalid('--target-port applies to backends selected with --selector');
    service.targetPort = port(String(req.targetPort), '--target-port');
  }
  const affinity = req.affinity ?? (req.affinityTimeout !== undefined ? 'client-ip' : 'none');
  if (affinity !== 'none' && affinity !== 'client-ip') throw invalid(`--affinity ${affinity}: choose client-ip or none`);
  if (affinity === 'client-ip') {
    const timeout = req.affinityTimeout ?? DEFAULT_AFFINITY_TIMEOUT;
    if (!Number.isInteger(timeout) || timeout < 1 || timeout > MAX_AFFINITY_TIMEOUT) {
      throw invalid(`--affinity-timeout ${timeout}: must be a whole number of seconds from 1 to ${MAX_AFFINITY_TIMEOUT}`);
    }
    service.affinity = { timeoutSeconds: timeout };
  } else if (req.affinityTimeout !== undefined) {
    throw invalid('--affinity-timeout needs --affinity client-ip');
  }
  return service;
}
