/* Helpers for policy e2e tests: import YAML through the agent API (and, on a matrix spread over
 * several nodes, wait until every node has it), probe a matrix, compare, and always remove the
 * policies afterwards so cases stay independent. */
import type { Cluster, PodName, Proto } from './matrix.js';
import { Reachability, assertReachability, probeAll } from './matrix.js';

export interface Expectation {
  port: number;
  proto: Proto;
  expected: Reachability;
}

/** Imports through the first node; resolves once every node of the matrix enforces it. */
export async function importPolicy(cluster: Cluster, yaml: string, name = 'policy.yaml'): Promise<number> {
  const r = await cluster.node.api.importPolicies([{ name, content: yaml }]);
  await cluster.converged();
  return r.revision;
}

/** A policy's spec as it sits under `spec:` in YAML: trimmed, every line indented by two. */
export function indentSpec(spec: string): string {
  return spec
    .trim()
    .split('\n')
    .map((l) => '  ' + l)
    .join('\n');
}

export async function deleteAllPolicies(cluster: Cluster): Promise<void> {
  const list = await cluster.node.api.listPolicies();
  if (list.policies.length) await cluster.node.api.deletePolicy({ all: true });
  await cluster.converged();
}

export async function expectMatrix(cluster: Cluster, context: string, ...expectations: Expectation[]): Promise<void> {
  for (const e of expectations) {
    const what = `${context} (${e.proto.toUpperCase()} ${e.port})`;
    const probe = () => probeAll(cluster, { port: e.port, proto: e.proto, timeoutMs: 400 });
    try {
      assertReachability(e.expected, await probe(), what);
    } catch {
      // One probe of 400 ms can time out on a busy machine (a first connection waits for its
      // neighbour entry); a wrong verdict is wrong again on the second look.
      assertReachability(e.expected, await probe(), what);
    }
  }
}

/** Everything reachable except what `fn` blocks; self-traffic always passes (it never leaves the pod). */
export function allowedExcept(fn: (r: Reachability) => void): Reachability {
  const r = new Reachability(true);
  fn(r);
  return r.allowSelf();
}

export function blockedExcept(fn: (r: Reachability) => void): Reachability {
  const r = new Reachability(false);
  fn(r);
  return r.allowSelf();
}

export type { PodName };
