/* Agent API routes for the cluster's nodes. */
import type { ClusterNode } from '../cluster/node-registry.js';
import type { ApiServer } from './server.js';

export function registerNodeRoutes(api: ApiServer, nodes: () => ClusterNode[]): void {
  api.route('GET', '/v1/nodes', () => nodes());
}
