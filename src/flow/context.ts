/* What the flow decoder needs to know, answered from the agent's current state. */
import { RULE } from '../datapath/layouts.js';
import type { DatapathReconciler } from '../reconcile/datapath.js';
import type { PolicyRealizer } from '../policy/realize.js';
import type { FlowContext, FlowPeer, PolicyOrigin } from './decoder.js';

/** What drops by the datapath's built-in guard of the agent's ports name as their policy. */
export const AGENT_PORTS_POLICY: PolicyOrigin = { ref: { kind: 'MembraneBuiltin', name: 'agent-ports' }, revision: 0 };

export function flowContext(
  nodeName: string,
  reconciler: DatapathReconciler,
  realizer: PolicyRealizer,
  services?: { serviceOfBackend(ip: number, port: number, protocol: number): string | undefined },
  /** In a cluster: the other nodes' endpoints, so flows name remote peers. */
  remote?: { endpointByIp(ip: number): FlowPeer | undefined },
): FlowContext {
  return {
    serviceOfBackend: (ip, port, protocol) => services?.serviceOfBackend(ip, port, protocol),
    nodeName,
    endpointByIp: (ip) => reconciler.endpointByIp(ip) ?? remote?.endpointByIp(ip),
    identityLabels: (id) => reconciler.identityLabels(id),
    rulePolicy: (ruleId) => (ruleId === RULE.AGENT_PORTS ? AGENT_PORTS_POLICY : realizer.ruleRef(ruleId)),
    defaultDenyPolicies: (epId, direction) => realizer.selectingPolicies(epId, direction),
  };
}
