/* Agent API routes for namespaces, endpoints, identities and the raw ipcache and counters. */
import type { Datapath } from '../datapath/datapath.js';
import { connectionOf } from '../datapath/conntrack.js';
import { ipcachePrefixOf } from '../datapath/ipcache.js';
import { CT_FLAGS, directionName, DROP_REASON } from '../datapath/layouts.js';
import { dropReasonName } from '../flow/proto.js';
import type { EndpointManager } from '../endpoint/manager.js';
import { parseEndpointRef } from '../endpoint/validate.js';
import { endpointAddBody, endpointUpdateBody, namespaceBody, readBody } from './bodies.js';
import type { ApiServer } from './server.js';
import type { SharedIntent } from '../cluster/shared-intent.js';
import { conflict } from '../errors.js';
import type { IpcacheRow, MetricsRow } from './types.js';

export interface EndpointRouteDeps {
  manager: EndpointManager;
  datapath: Datapath;
  serial: <T>(fn: () => Promise<T> | T) => Promise<T>;
  /** In a cluster: namespaces are written there first, for every node to apply. */
  shared?: SharedIntent;
  /** In a cluster: how many endpoints of other nodes a namespace has (it cannot go while it has any). */
  remoteEndpointsIn?: (namespace: string) => number;
}

export function registerEndpointRoutes(api: ApiServer, { manager, datapath, serial, shared, remoteEndpointsIn }: EndpointRouteDeps): void {
  api
    .route('GET', '/v1/namespaces', () => manager.listNamespaces())
    .route('PUT', '/v1/namespaces/:name', ({ params, body: b }) => {
      const labels = readBody(namespaceBody, b).labels;
      return serial(async () => {
        manager.checkNamespace(params.name!, labels); // refused here, nothing reaches the cluster
        await shared?.setNamespace(params.name!, labels ?? []);
        return manager.setNamespace(params.name!, labels);
      });
    })
    .route('DELETE', '/v1/namespaces/:name', ({ params }) =>
      serial(async () => {
        const name = params.name!;
        manager.checkNamespaceDeletable(name);
        const remote = remoteEndpointsIn?.(name) ?? 0;
        if (remote > 0) throw conflict(`namespace "${name}" still has ${remote} endpoint(s) on other nodes: delete them first`);
        await shared?.deleteNamespace(name);
        manager.deleteNamespace(name);
      }),
    )
    .route('GET', '/v1/endpoints', () => manager.listEndpoints())
    .route('POST', '/v1/endpoints', ({ body: b }) => {
      const req = readBody(endpointAddBody, b);
      const ref = parseEndpointRef(`${req.namespace}/${req.name}`);
      return serial(() => manager.addEndpoint({ ...req, ...ref }));
    })
    .route('GET', '/v1/endpoints/:namespace/:name', ({ params }) => manager.getEndpoint(params.namespace!, params.name!))
    .route('PATCH', '/v1/endpoints/:namespace/:name', ({ params, body: b }) =>
      serial(() => manager.updateEndpoint(params.namespace!, params.name!, readBody(endpointUpdateBody, b).labels ?? [])),
    )
    .route('DELETE', '/v1/endpoints/:namespace/:name', ({ params }) =>
      serial(() => manager.deleteEndpoint(params.namespace!, params.name!)),
    )
    .route('GET', '/v1/identities', () => manager.listIdentities())
    .route('GET', '/v1/ipcache', (): IpcacheRow[] =>
      datapath.ipcache
        .entries()
        .map(([k, v]) => ({
          prefix: ipcachePrefixOf(k),
          identity: v.identity,
          tunnelEndpoint: v.tunnel_endpoint ? String(v.tunnel_endpoint) : '',
          encryptKey: v.encrypt_key,
          flags: v.flags,
        }))
        .sort((a, b) => a.prefix.localeCompare(b.prefix, 'en', { numeric: true })),
    )
    .route('GET', '/v1/bpf/metrics', (): MetricsRow[] => {
      // Drops come from the counters map; forwarded traffic from the connections that carried it.
      const rows: MetricsRow[] = datapath.metrics.entriesPerCpu().map(([k, perCpu]) => ({
        endpoint: k.ep_id,
        direction: directionName(k.direction),
        remoteIdentity: k.remote_identity,
        reason: k.reason === DROP_REASON.FORWARDED ? 'FORWARDED' : dropReasonName(k.reason),
        packets: Number(perCpu.reduce((sum, v) => sum + v.packets, 0n)),
        bytes: Number(perCpu.reduce((sum, v) => sum + v.bytes, 0n)),
      }));
      const forwarded = new Map<string, MetricsRow>();
      for (const [k, v] of datapath.ct.entries()) {
        if (v.flags & CT_FLAGS.SERVICE) continue; // the translated connection's own entry counts its traffic
        // A connection between two endpoints of this node is one entry: each side reports it.
        for (const side of connectionOf(k, v).sides) {
          const key = `${side.endpoint}/${side.direction}/${side.remoteIdentity}`;
          const row = forwarded.get(key) ?? {
            endpoint: side.endpoint,
            direction: directionName(side.direction),
            remoteIdentity: side.remoteIdentity,
            reason: 'FORWARDED',
            packets: 0,
            bytes: 0,
          };
          row.packets += Number(v.packets);
          row.bytes += Number(v.bytes);
          forwarded.set(key, row);
        }
      }
      return [...rows, ...forwarded.values()];
    });
}
