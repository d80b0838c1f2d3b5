/* Agent API routes for services. */
import { readBody, serviceBody } from './bodies.js';
import type { LbDatapath } from '../service/datapath.js';
import type { ServiceManager } from '../service/manager.js';
import type { ApiServer } from './server.js';
import type { SharedIntent } from '../cluster/shared-intent.js';
import type { ServiceRequest } from './types.js';

export interface ServiceRouteDeps {
  services: ServiceManager;
  lb: LbDatapath;
  serial: <T>(fn: () => Promise<T> | T) => Promise<T>;
  /** In a cluster: services are written there first, for every node to apply. */
  shared?: SharedIntent;
}

/** The service of the body; PUT names it in the path. */
function request(body: unknown, name?: string): ServiceRequest {
  const named = name !== undefined && typeof body === 'object' && body !== null && !Array.isArray(body) ? { ...body, name } : body;
  return readBody(serviceBody, named);
}

export function registerServiceRoutes(api: ApiServer, { services, lb, serial, shared }: ServiceRouteDeps): void {
  // In a cluster a change is checked here, written to etcd (refused there: nothing changes), then applied.
  const change = (req: ServiceRequest, existing: boolean) =>
    serial(async () => {
      services.check(req, existing);
      await shared?.putService(req);
      return existing ? services.update(req) : services.add(req);
    });
  api
    .route('GET', '/v1/bpf/lb', () => lb.realized().sort((a, b) => a.serviceId - b.serviceId))
    .route('GET', '/v1/services', () => services.list())
    .route('GET', '/v1/services/:name', ({ params }) => services.get(params.name!))
    .route('POST', '/v1/services', ({ body }) => change(request(body), false))
    .route('PUT', '/v1/services/:name', ({ params, body }) => change(request(body, params.name), true))
    .route('DELETE', '/v1/services/:name', ({ params }) =>
      serial(async () => {
        services.get(params.name!); // refused when unknown, before the cluster hears of it
        await shared?.deleteService(params.name!);
        services.delete(params.name!);
      }),
    );
}
