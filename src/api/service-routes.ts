/* Agent API routes for services. */
import { readBody, serviceBody } from './bodies.js';
import type { LbDatapath } from '../service/datapath.js';
import type { ServiceManager } from '../service/manager.js';
import type { ApiServer } from './server.js';
import type { ServiceRequest } from './types.js';

export interface ServiceRouteDeps {
  services: ServiceManager;
  lb: LbDatapath;
  serial: <T>(fn: () => Promise<T> | T) => Promise<T>;
}

/** The service of the body; PUT names it in the path. */
function request(body: unknown, name?: string): ServiceRequest {
  const named = name !== undefined && typeof body === 'object' && body !== null && !Array.isArray(body) ? { ...body, name } : body;
  return readBody(serviceBody, named);
}

export function registerServiceRoutes(api: ApiServer, { services, lb, serial }: ServiceRouteDeps): void {
  api
    .route('GET', '/v1/bpf/lb', () => lb.realized().sort((a, b) => a.serviceId - b.serviceId))
    .route('GET', '/v1/services', () => services.list())
    .route('GET', '/v1/services/:name', ({ params }) => services.get(params.name!))
    .route('POST', '/v1/services', ({ body }) => serial(() => services.add(request(body))))
    .route('PUT', '/v1/services/:name', ({ params, body }) => serial(() => services.update(request(body, params.name))))
    .route('DELETE', '/v1/services/:name', ({ params }) => serial(() => services.delete(params.name!)));
}
