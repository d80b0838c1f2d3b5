/* What the flow decoder needs to know, answered from the agent's current state. */
import type { EndpointManager } from '../endpoint/manager.js';
import type { PolicyRealizer } from '../policy/realize.js';
import type { FlowContext } from './decoder.js';

export function flowContext(
  nodeName: string,
  manager: EndpointManager,
  realizer: PolicyRealizer,
  services?: { serviceOfBackend(ip: number, port: number, protocol: number): string | undefined },
): FlowContext {
  return {
    serviceOfBackend: (ip, port, protocol) => services?.serviceOfBackend(ip, port, protocol),
    nodeName,
    endpointByIp: (ip) => manager.endpointByIp(ip),
    identityLabels: (id) => manager.identityLabels(id),
    rulePolicy: (ruleId) => realizer.ruleRef(ruleId),
    defaultDenyPolicies: (epId, direction) => realizer.selectingPolicies(epId, direction),
  };
}
