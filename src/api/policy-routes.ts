/* Agent API routes for policy: import (atomic: every file validated before anything changes;
 * returns after the datapath enforces the new revision), validate, get, delete, selectors, and
 * the realized map entries of an endpoint. */
import { UserError, invalid, quoted } from '../errors.js';
import { connectionOf } from '../datapath/conntrack.js';
import type { Datapath } from '../datapath/datapath.js';
import { CT_FLAGS, directionName, POLICY_FLAGS, POLICY_PREFIX, SNAT_DIRECTION } from '../datapath/layouts.js';
import type { EndpointManager } from '../endpoint/manager.js';
import type { DatapathReconciler } from '../reconcile/datapath.js';
import type { ParsedPolicy } from '../policy/parse.js';
import { PolicyParser } from '../policy/parse-pool.js';
import { describeL4 } from '../policy/ports.js';
import type { PolicyRealizer } from '../policy/realize.js';
import { describePolicy, type PolicyRepository } from '../policy/repository.js';
import type { PolicyRef } from '../policy/types.js';
import { policyFilesBody, readBody } from './bodies.js';
import type { ApiServer } from './server.js';
import type { Metrics } from '../flow/metrics.js';
import type { SharedIntent } from '../cluster/shared-intent.js';
import type {
  CtRow,
  NatRow,
  EndpointPolicyView,
  PolicyFile,
  PolicyImportResult,
  PolicyList,
  PolicySummary,
  SelectorRow,
} from './types.js';

export interface PolicyRouteDeps {
  repo: PolicyRepository;
  realizer: PolicyRealizer;
  manager: EndpointManager;
  reconciler: DatapathReconciler;
  datapath: Datapath;
  serial: <T>(fn: () => Promise<T> | T) => Promise<T>;
  metrics: Metrics;
  /** Reads policy files off the event loop; one is made when not given. */
  parser?: PolicyParser;
  /** In a cluster: where policies are written first, for every node to apply. */
  shared?: SharedIntent;
}

function files(body: unknown): PolicyFile[] {
  return readBody(policyFilesBody, body).files;
}

/** Every file, read in a worker thread (parse-pool.ts), and no policy twice across them. */
async function parseAll(parser: PolicyParser, fs: PolicyFile[], signal: AbortSignal): Promise<ParsedPolicy[]> {
  const parsed = await parser.parse(fs, signal);
  const seen = new Set<string>();
  for (const p of parsed) {
    const id = describePolicy(p.ref);
    if (seen.has(id)) throw invalid(`${id} is defined twice in this import: keep one`);
    seen.add(id);
  }
  return parsed;
}

/** DELETE /v1/policies: `{all: true}`, or `{name}` with an optional `namespace`. Anything else,
 * `{all: "yes"}` included, is refused rather than read loosely. */
function deleteTarget(body: unknown): { all: true } | { namespace?: string; name: string } {
  const usage = 'give {"all": true}, or {"name": NAME} with "namespace" for a namespaced policy';
  if (body === undefined) throw invalid(`name the policy to delete (NAMESPACE/NAME, or NAME for a clusterwide one) or use --all (${usage})`);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid(`the request body must be an object (${usage})`);
  const b = body as Record<string, unknown>;
  const unknown = Object.keys(b).find((k) => !['all', 'name', 'namespace'].includes(k));
  if (unknown !== undefined) throw invalid(`unknown field ${quoted(unknown)} (${usage})`);
  if (b.all !== undefined && typeof b.all !== 'boolean') throw invalid(`"all" must be true or false, not ${quoted(b.all)}`);
  if (b.name !== undefined && typeof b.name !== 'string') throw invalid(`"name" must be a string, not ${quoted(b.name)}`);
  if (b.namespace !== undefined && typeof b.namespace !== 'string') throw invalid(`"namespace" must be a string, not ${quoted(b.namespace)}`);
  if (b.all === true) {
    if (b.name !== undefined || b.namespace !== undefined) throw invalid(`give either "all" or a name, not both (${usage})`);
    return { all: true };
  }
  if (b.name === undefined) throw invalid(`name the policy to delete (NAMESPACE/NAME, or NAME for a clusterwide one) or use --all (${usage})`);
  return { name: b.name, ...(b.namespace !== undefined ? { namespace: b.namespace } : {}) };
}

/** The parsers' notes of every policy, for the response; absent when there are none. */
const notesOf = (parsed: ParsedPolicy[]): { notes?: string[] } => {
  const notes = parsed.flatMap((p) => p.notes ?? []);
  return notes.length > 0 ? { notes } : {};
};

/** What is stored of a parsed policy: its notes are for this response only. */
const toStore = (p: ParsedPolicy) => ({ ref: p.ref, source: p.source, rules: p.rules });

const summary = (p: { ref: ParsedPolicy['ref']; rules: unknown[] }, revision: number): PolicySummary => ({
  kind: p.ref.kind,
  ...(p.ref.namespace ? { namespace: p.ref.namespace } : {}),
  name: p.ref.name,
  rules: p.rules.length,
  revision,
});

export function registerPolicyRoutes(api: ApiServer, d: PolicyRouteDeps): void {
  const parser = d.parser ?? new PolicyParser();
  api
    .route('POST', '/v1/policies/validate', async ({ body, signal }): Promise<PolicyImportResult> => {
      const parsed = await parseAll(parser, files(body), signal);
      return { revision: d.repo.revision, policies: parsed.map((p) => summary(p, d.repo.revision)), ...notesOf(parsed) };
    })
    .route('POST', '/v1/policies', async ({ body, signal }): Promise<PolicyImportResult> => {
      const started = process.hrtime.bigint();
      const all = await parseAll(parser, files(body), signal); // everything validated before anything changes
      const parsed = all.map(toStore);
      return d.serial(async () => {
        // The import may have waited here behind other changes: a client that has given up
        // (Ctrl-C, a timeout) must not find it applied later.
        if (signal.aborted) throw new UserError('unavailable', 'the client went away before the import was applied; nothing was changed');
        // Computed (and checked against the map's capacity) before anything is stored.
        const plan = d.reconciler.planPolicy(d.repo.preview(parsed));
        await d.shared?.importPolicies(parsed); // the cluster's first: refused there, nothing changes
        const { revision, undo } = d.repo.import(parsed);
        try {
          d.reconciler.policyChanged(`policy revision ${revision}`, plan);
        } catch (err) {
          // The kernel refused part of it: put the previous policies back, in the maps too.
          d.repo.revert(undo);
          d.reconciler.repairPolicy(`policy revision ${revision} rolled back`);
          await d.shared?.revertImport(parsed, undo).catch(() => undefined);
          throw err;
        }
        d.metrics.policyImport.observe(Number(process.hrtime.bigint() - started) / 1e9);
        return { revision, policies: parsed.map((p) => summary(p, revision)), ...notesOf(all) };
      });
    })
    .route('GET', '/v1/policies', (): PolicyList => ({
      revision: d.repo.revision,
      policies: d.repo.list().map((p) => ({ ...summary(p, p.revision), source: p.source })),
    }))
    .route('DELETE', '/v1/policies', ({ body }) => {
      const target = deleteTarget(body);
      return d.serial(async () => {
        let refs: PolicyRef[] | undefined;
        if (!('all' in target)) {
          const found = d.repo.find(target.namespace, target.name);
          if (found.length === 0) {
            const ref = target.namespace ? `${target.namespace}/${target.name}` : target.name;
            // Quoted only when it needs to be, so that the message stays one line.
            const shown = /^[\x21-\x7e]{1,300}$/.test(ref) && !ref.includes('"') ? ref : quoted(ref);
            throw invalid(`no policy named ${shown} (see 'membrane policy get')`);
          }
          refs = found.map((p) => p.ref);
        }
        const plan = d.reconciler.planPolicy(d.repo.previewDelete(refs));
        await d.shared?.deletePolicies(refs);
        const revision = d.repo.delete(refs);
        d.reconciler.policyChanged(`policy revision ${revision}`, plan);
        return { revision };
      });
    })
    .route('GET', '/v1/policies/selectors', (): SelectorRow[] =>
      d.realizer
        .selectors()
        .map((s) => ({ selector: s.selector, users: s.users, identities: [...s.identities].sort((a, b) => a - b) }))
        .sort((a, b) => a.selector.localeCompare(b.selector)),
    )
    .route('GET', '/v1/bpf/policy/:namespace/:name', ({ params }): EndpointPolicyView => {
      const ep = d.manager.getEndpoint(params.namespace!, params.name!);
      const labelsOf = identityLabeller(d.manager, d.realizer);
      const entries = d.datapath.policy
        .entries()
        .filter(([k]) => k.ep_id === ep.id)
        .map(([k, v]) => {
          const bits = k.prefixlen - POLICY_PREFIX.FIXED;
          const rule = d.realizer.ruleRef(v.rule_id);
          return {
            policy: v.flags & POLICY_FLAGS.DENY ? ('Deny' as const) : ('Allow' as const),
            direction: directionName(k.direction),
            identity: k.identity,
            labels: labelsOf(k.identity),
            port: describeL4({ protocol: k.protocol, port: k.dport, bits }),
            prefixLength: bits,
            rule: rule ? describePolicy(rule.ref) : String(v.rule_id),
          };
        })
        .sort((a, b) => a.direction.localeCompare(b.direction) || a.identity - b.identity || a.port.localeCompare(b.port));
      const state = d.realizer.state(ep.id);
      const policy = d.realizer.policyOf(ep.id);
      return {
        endpoint: ep.id,
        ingressEnforced: policy?.ingressEnforced ?? false,
        egressEnforced: policy?.egressEnforced ?? false,
        policyRevision: d.repo.revision,
        endpointRevision: state.revision,
        entries,
      };
    })
    .route('GET', '/v1/bpf/nat', (): NatRow[] => {
      const now = d.datapath.clock.nowNs(); // the datapath's clock, as connection tracking's
      return d.datapath.snat.entries().map(([k, v]) => ({
        protocol: PROTOCOL_NAME[k.protocol] ?? String(k.protocol),
        direction: k.direction === SNAT_DIRECTION.OUT ? 'OUT' : 'IN',
        source: `${k.saddr}:${k.sport}`,
        destination: `${k.daddr}:${k.dport}`,
        translated: `${v.to_addr}:${v.to_port}`,
        ageSeconds: Number((now - v.created_ns) / 1_000_000_000n),
      }));
    })
    .route('GET', '/v1/bpf/ct', (): CtRow[] => {
      const now = d.datapath.clock.nowNs(); // connection tracking's clock
      return d.datapath.ct.entries().map(([k, v]) => {
        const conn = connectionOf(k, v);
        return {
          protocol: PROTOCOL_NAME[k.protocol] ?? String(k.protocol),
          source: conn.source,
          destination: conn.destination,
          endpoints: conn.sides.map((s) => ({ endpoint: s.endpoint, direction: directionName(s.direction), remoteIdentity: s.remoteIdentity })),
          ...(v.flags & CT_FLAGS.SERVICE ? { serviceOf: v.egress_ep_id } : {}),
          sourceIdentity: v.src_identity,
          destinationIdentity: v.dst_identity,
          packets: Number(v.packets),
          bytes: Number(v.bytes),
          idleSeconds: Number((now - v.last_seen_ns) / 1_000_000_000n),
          tcpFlags: v.tcp_flags_seen,
          ...(v.flags & CT_FLAGS.SERVICE ? { nat: { backend: `${v.nat_addr}:${v.nat_port}` } } : {}),
          ...(v.flags & CT_FLAGS.REVNAT ? { nat: { frontend: `${v.nat_addr}:${v.nat_port}` } } : {}),
        };
      });
    });
}

const PROTOCOL_NAME: Record<number, string> = { 1: 'ICMP', 6: 'TCP', 17: 'UDP', 132: 'SCTP' };

/** Labels of an identity for display: 0 is ANY, reserved, CIDR and allocated identities by their labels. */
function identityLabeller(manager: EndpointManager, realizer: PolicyRealizer): (id: number) => string[] {
  const known = new Map(manager.listIdentities().map((i) => [i.id, i.labels]));
  for (const [prefix, id] of realizer.cidrs()) known.set(id, [`cidr:${prefix}`, 'reserved:world']);
  return (id) => {
    if (id === 0) return ['ANY'];
    const labels = known.get(id);
    if (labels) return labels;
    const base = realizer.baseIdentity(id);
    // An address identity: the pods of identity `base` that ipBlocks select by address.
    if (base !== id) return [...(known.get(base) ?? []), `address identity of ${base} (pods an ipBlock selects)`];
    return [`unknown identity ${id}`];
  };
}
