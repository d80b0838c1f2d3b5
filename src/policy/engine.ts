/* The policy engine: rules + endpoints + identities -> per-endpoint policy map entries. Pure:
 * it never touches the kernel. Semantics are Cilium's: an endpoint is default-deny in a
 * direction once a rule selecting it has that direction (allow or deny section); allows are a
 * union; a deny beats every allow; L3-only rules cover all ports; named ports resolve on the
 * destination endpoint. */
import { cidrInside, parseCidr, type Cidr } from '../net/ipv4.js';
import { AddressIdentities, CidrIdentities, WORLD_PREFIX, ipInside, type EndpointBlock } from './cidr.js';
import { ANY_L4, PROTO, covers, protocolOnly, rangeToPrefixes, type L4Key, type NamedPort } from './ports.js';
import { LabelSet, matches, selectorString } from './selector.js';
import type { Entity, Peer, PeerRule, PortMatch, Rule } from './types.js';

export type EnforcementMode = 'default' | 'always' | 'never';
export type Direction = 'ingress' | 'egress';
export const DIRECTION_CODE: Record<Direction, 1 | 2> = { ingress: 1, egress: 2 };

export interface PolicyEndpoint {
  id: number;
  identity: number;
  identityLabels: string[];
  ipv4: string;
  ports: NamedPort[];
}

export interface PolicyIdentity {
  id: number;
  labels: string[];
}

export interface PolicyEntry {
  /** 0 = any peer. */
  identity: number;
  direction: Direction;
  l4: L4Key;
  deny: boolean;
  ruleId: number;
}

export interface EndpointPolicy {
  ingressEnforced: boolean;
  egressEnforced: boolean;
  entries: PolicyEntry[];
  /** Rule ids that select the endpoint, per direction (for attribution of default-deny drops). */
  selectedBy: { ingress: number[]; egress: number[] };
}

export interface SelectorUse {
  selector: string;
  users: number;
  identities: number[];
}

/** An endpoint of another node, as far as policy knows it: its address and identity. */
export interface RemoteEndpoint {
  identity: number;
  ipv4: string;
}

export interface EngineInput {
  rules: { rule: Rule; ruleId: number }[];
  endpoints: PolicyEndpoint[];
  /**
   * The other nodes' endpoints: Kubernetes ipBlocks select them by address too. Their identity
   * travels with their packets, so it is never split into address identities here: an identity
   * with endpoints on both sides of a block is not selected.
   */
  remoteEndpoints?: RemoteEndpoint[];
  /** Reserved and allocated identities (CIDR identities are added by the engine). */
  identities: PolicyIdentity[];
  cluster: string;
  enforcement: EnforcementMode;
}

export interface EngineOutput {
  endpoints: Map<number, EndpointPolicy>;
  /** Endpoints that policy sees by an address identity (ipBlocks split their identity), and its number. */
  policyIdentities: Map<number, number>;
  /** Address identity -> the identity whose labels it carries. */
  addressIdentities: Map<number, number>;
  /** Prefix -> CIDR identity, for the ipcache. */
  cidrs: Map<string, number>;
  selectors: SelectorUse[];
  warnings: string[];
}

const RESERVED: Record<Exclude<Entity, 'all' | 'world' | 'cluster' | 'none'>, number> = {
  host: 1,
  unmanaged: 3,
  health: 4,
  init: 5,
  'remote-node': 6,
  'kube-apiserver': 7,
  ingress: 8,
};
const WORLD = 2;
const CLUSTER_RESERVED = [1, 3, 4, 5, 6, 7, 8];

export class PolicyEngine {
  private readonly cidrIdentities = new CidrIdentities();
  private readonly addressIdentities = new AddressIdentities();

  /** Policy of every endpoint, or only of those in `only` (the output then holds just them). */
  compute(original: EngineInput, only?: Set<number>): EngineOutput {
    const warnings: string[] = [];
    const cidrs = this.cidrIdentities.assign(collectPrefixes(original.rules.map((r) => r.rule)));
    // Peers are seen by their policy identity: an address identity where ipBlocks split theirs.
    const addressed = this.addressIdentities.assign(original.endpoints, endpointBlocks(original.rules.map((r) => r.rule)));
    const input: EngineInput = addressed.byEndpoint.size
      ? {
          ...original,
          endpoints: original.endpoints.map((e) => (addressed.byEndpoint.has(e.id) ? { ...e, identity: addressed.byEndpoint.get(e.id)! } : e)),
          identities: [
            ...original.identities,
            ...[...addressed.base].map(([id, baseId]) => ({ id, labels: original.identities.find((i) => i.id === baseId)?.labels ?? [] })),
          ],
        }
      : original;
    const universe = [
      ...input.identities.map((i) => ({ id: i.id, labels: new LabelSet(i.labels) })),
      ...[...cidrs].map(([prefix, id]) => ({ id, labels: new LabelSet([`cidr:${prefix}`, 'reserved:world']) })),
    ];
    const selectorUses = new Map<string, SelectorUse>();
    const selectCache = new Map<string, number[]>();

    /** Selectors the policy being computed used, once per use. */
    let used: string[] = [];
    const countUse = (key: string, ids: number[]) => {
      const use = selectorUses.get(key) ?? { selector: key, users: 0, identities: ids };
      use.users++;
      selectorUses.set(key, use);
    };
    /** Every peer is resolved once per computation and listed with its users (`policy selectors`). */
    const peerIdentities = (peer: Peer): number[] => {
      const key = peerString(peer);
      let ids = selectCache.get(key);
      if (!ids) {
        ids = this.resolvePeer(peer, universe, cidrs, input, warnings);
        selectCache.set(key, ids);
      }
      countUse(key, ids);
      used.push(key);
      return ids;
    };

    const result = new Map<number, EndpointPolicy>();
    // Endpoints of one identity are selected by the same rules: match subjects once per identity.
    const selectingByIdentity = new Map<number, EngineInput['rules']>();
    const byIdentity = new Map<number, PolicyEndpoint[]>();
    for (const e of input.endpoints) {
      const list = byIdentity.get(e.identity);
      if (list) list.push(e);
      else byIdentity.set(e.identity, [e]);
    }
    // Endpoints with the same identity and the same named ports have the same policy (named
    // ports of peers resolve the same for every subject): computed once, shared by all of them.
    const byShape = new Map<string, { policy: EndpointPolicy; used: string[] }>();
    for (const ep of input.endpoints) {
      if (only && !only.has(ep.id)) continue;
      const shape = ep.ports.length ? `${ep.identity} ${JSON.stringify(ep.ports)}` : String(ep.identity);
      const same = byShape.get(shape);
      if (same) {
        result.set(ep.id, same.policy);
        for (const key of same.used) countUse(key, selectCache.get(key)!);
        continue;
      }
      used = [];
      let selecting = selectingByIdentity.get(ep.identity);
      if (!selecting) {
        const labels = new LabelSet(ep.identityLabels);
        selecting = input.rules.filter((r) => matches(r.rule.subject, labels));
        selectingByIdentity.set(ep.identity, selecting);
      }
      const policy: EndpointPolicy = {
        ingressEnforced: input.enforcement === 'always',
        egressEnforced: input.enforcement === 'always',
        entries: [],
        selectedBy: { ingress: [], egress: [] },
      };
      if (input.enforcement !== 'never') {
        for (const { rule, ruleId } of selecting) {
          for (const dir of ['ingress', 'egress'] as const) {
            const allow = rule[dir];
            const deny = rule[dir === 'ingress' ? 'ingressDeny' : 'egressDeny'];
            if (!allow && !deny) continue;
            policy[dir === 'ingress' ? 'ingressEnforced' : 'egressEnforced'] = true;
            policy.selectedBy[dir].push(ruleId);
            for (const [list, isDeny] of [
              [allow, false],
              [deny, true],
            ] as const) {
              for (const pr of list ?? []) {
                policy.entries.push(...this.entriesFor(pr, dir, isDeny, ruleId, ep, input.endpoints, byIdentity, peerIdentities));
              }
            }
          }
        }
      }
      policy.entries = normalize(policy.entries);
      result.set(ep.id, policy);
      byShape.set(shape, { policy, used });
    }
    return { endpoints: result, policyIdentities: addressed.byEndpoint, addressIdentities: addressed.base, cidrs, selectors: [...selectorUses.values()], warnings };
  }

  private entriesFor(
    pr: PeerRule,
    dir: Direction,
    deny: boolean,
    ruleId: number,
    subject: PolicyEndpoint,
    endpoints: PolicyEndpoint[],
    byIdentity: Map<number, PolicyEndpoint[]>,
    peerIdentities: (p: Peer) => number[],
  ): PolicyEntry[] {
    const identities = pr.peers === undefined ? [0] : unique(pr.peers.flatMap(peerIdentities));
    const out: PolicyEntry[] = [];
    for (const identity of identities) {
      // Named ports resolve on the destination: the subject for ingress, the peer for egress.
      const destinations = dir === 'ingress' ? [subject] : identity === 0 ? endpoints : (byIdentity.get(identity) ?? []);
      const l4s = pr.ports === undefined ? [ANY_L4] : pr.ports.flatMap((pm) => l4KeysFor(pm, destinations));
      for (const l4 of l4s) out.push({ identity, direction: dir, l4, deny, ruleId });
    }
    return out;
  }

  private sorted?: { from: Map<string, number>; list: { cidr: Cidr; id: number }[] };

  /** The CIDR identities parsed and sorted by network address (once per computation). */
  private sortedCidrs(cidrs: Map<string, number>): { cidr: Cidr; id: number }[] {
    if (this.sorted?.from !== cidrs) {
      const list = [...cidrs].map(([prefix, id]) => ({ cidr: parseCidr(prefix), id })).sort((a, b) => a.cidr.base - b.cidr.base);
      this.sorted = { from: cidrs, list };
    }
    return this.sorted.list;
  }

  private resolvePeer(
    peer: Peer,
    universe: { id: number; labels: LabelSet }[],
    cidrs: Map<string, number>,
    input: EngineInput,
    warnings: string[],
  ): number[] {
    switch (peer.type) {
      case 'endpoints':
        return universe.filter((u) => matches(peer.selector, u.labels)).map((u) => u.id);
      case 'entity':
        return this.entityIdentities(peer.entity, input);
      case 'cidr':
        return this.cidrPeerIdentities(peer, cidrs, [...input.endpoints, ...(input.remoteEndpoints ?? [])], warnings);
    }
  }

  private entityIdentities(entity: Entity, input: EngineInput): number[] {
    switch (entity) {
      case 'all':
        return [0];
      case 'none':
        return [];
      case 'world':
        return [WORLD, ...this.cidrIdentities.current.values()];
      case 'cluster': {
        const label = `k8s:io.cilium.k8s.policy.cluster=${input.cluster}`;
        return [...CLUSTER_RESERVED, ...input.identities.filter((i) => i.id >= 256 && i.labels.includes(label)).map((i) => i.id)];
      }
      default:
        return [RESERVED[entity]];
    }
  }

  private cidrPeerIdentities(
    peer: Extract<Peer, { type: 'cidr' }>,
    cidrs: Map<string, number>,
    endpoints: RemoteEndpoint[],
    warnings: string[],
  ): number[] {
    const block = parseCidr(peer.cidr);
    const excepts = peer.except.map((e) => parseCidr(e));
    const ids: number[] = peer.cidr === WORLD_PREFIX ? [WORLD] : [];
    // Prefixes inside the block start inside it: binary-search the first, walk to the block's end.
    const sorted = this.sortedCidrs(cidrs);
    const blockEnd = block.base + 2 ** (32 - block.prefixlen) - 1;
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid]!.cidr.base < block.base) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < sorted.length && sorted[i]!.cidr.base <= blockEnd; i++) {
      const { cidr, id } = sorted[i]!;
      if (cidrInside(cidr, block) && !excepts.some((x) => cidrInside(cidr, x))) ids.push(id);
    }
    if (peer.matchEndpoints) {
      // Kubernetes ipBlock also selects pods by address, this node's and the others'. An identity
      // is selected only when all of its endpoints qualify: selecting it for some would let the
      // others through too.
      const inBlock = (ip: string) => ipInside(ip, block) && !excepts.some((x) => ipInside(ip, x));
      const byIdentity = new Map<number, RemoteEndpoint[]>();
      for (const e of endpoints) {
        const list = byIdentity.get(e.identity);
        if (list) list.push(e);
        else byIdentity.set(e.identity, [e]);
      }
      for (const [identity, eps] of byIdentity) {
        const n = eps.filter((e) => inBlock(e.ipv4)).length;
        if (n === eps.length) ids.push(identity);
        else if (n > 0) {
          warnings.push(
            `ipBlock ${peer.cidr}: identity ${identity} has endpoints inside and outside the block; it is not selected (traffic from its endpoints inside the block is denied)`,
          );
        }
      }
    }
    return ids;
  }
}

function peerString(peer: Peer): string {
  switch (peer.type) {
    case 'endpoints':
      return selectorString(peer.selector);
    case 'entity':
      return `entity:${peer.entity}`;
    case 'cidr':
      return `cidr:${peer.cidr}${peer.except.length ? ` except ${peer.except.join(',')}` : ''}${peer.matchEndpoints ? ' (and endpoints inside)' : ''}`;
  }
}

function l4KeysFor(pm: PortMatch, destinations: PolicyEndpoint[]): L4Key[] {
  if (pm.protocol === 'ICMP') {
    return [pm.icmpType === undefined ? protocolOnly(PROTO.ICMP) : { protocol: PROTO.ICMP, port: pm.icmpType, bits: 24 }];
  }
  const protocols = pm.protocol === 'ANY' ? [PROTO.TCP, PROTO.UDP, PROTO.SCTP] : [PROTO[pm.protocol]];
  if (pm.port === undefined) return protocols.map(protocolOnly);
  if (typeof pm.port === 'number') {
    const end = pm.endPort ?? pm.port;
    return protocols.flatMap((p) => rangeToPrefixes(p, pm.port as number, end));
  }
  const keys: L4Key[] = [];
  for (const d of destinations) {
    for (const np of d.ports) {
      if (np.name !== pm.port) continue;
      const proto = PROTO[np.protocol];
      if (protocols.includes(proto)) keys.push({ protocol: proto, port: np.port, bits: 24 });
    }
  }
  return keys;
}

/** The ipBlocks that also select endpoints by address (Kubernetes peers), once each. */
export function endpointBlocks(rules: Rule[]): EndpointBlock[] {
  const blocks = new Map<string, EndpointBlock>();
  for (const r of rules) {
    for (const list of [r.ingress, r.egress, r.ingressDeny, r.egressDeny]) {
      for (const pr of list ?? []) {
        for (const p of pr.peers ?? []) {
          if (p.type !== 'cidr' || !p.matchEndpoints) continue;
          const key = `${p.cidr}${p.except.length ? ` except ${p.except.join(',')}` : ''}`;
          if (!blocks.has(key)) blocks.set(key, { key, cidr: parseCidr(p.cidr), except: p.except.map((x) => parseCidr(x)) });
        }
      }
    }
  }
  return [...blocks.values()];
}

/** Every prefix the rules name (each gets a CIDR identity). */
export function collectPrefixes(rules: Rule[]): string[] {
  const out: string[] = [];
  for (const r of rules) {
    for (const list of [r.ingress, r.egress, r.ingressDeny, r.egressDeny]) {
      for (const pr of list ?? []) {
        for (const p of pr.peers ?? []) if (p.type === 'cidr') out.push(p.cidr, ...p.except);
      }
    }
  }
  return out;
}

function unique(xs: number[]): number[] {
  return [...new Set(xs)];
}

function entryKey(e: PolicyEntry): string {
  return `${e.identity}/${e.direction}/${e.l4.protocol}/${e.l4.port}/${e.l4.bits}`;
}

/**
 * One entry per key, a deny replacing an allow; then no allow may stay narrower than a deny of
 * the same identity and direction, or the longest-prefix lookup would find the allow first.
 */
function normalize(entries: PolicyEntry[]): PolicyEntry[] {
  const byKey = new Map<string, PolicyEntry>();
  for (const e of entries) {
    const prev = byKey.get(entryKey(e));
    if (!prev || (e.deny && !prev.deny)) byKey.set(entryKey(e), e);
  }
  const all = [...byKey.values()];
  const denies = all.filter((e) => e.deny);
  return all.filter(
    (e) => e.deny || !denies.some((d) => d.identity === e.identity && d.direction === e.direction && covers(d.l4, e.l4)),
  );
}
