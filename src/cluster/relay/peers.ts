/* The relay's view of the cluster: every node the registry lists, each with the way to its flows
 * (this node's own ring, or a peer client over mutual TLS) or the reason there is none. Read
 * afresh from the registry at every request, so a node that joins, moves or leaves is seen at
 * once; a peer's client (and its TLS session) is kept while its address stays the same. */
import type { ClusterNode } from '../node-registry.js';
import { joinHostPort, type PeerTls } from '../../util/listen.js';
import type { LocalFlows, NodeFlows } from './node-flows.js';
import { PeerFlows } from './peer.js';

export interface PoolEntry {
  node: ClusterNode;
  /** host:port of the node's Observer for peers ('' when it serves none). */
  address: string;
  flows?: NodeFlows;
  /** Why the node's flows cannot be read (when `flows` is absent). */
  unreachable?: string;
}

export class PeerPool {
  private readonly peers = new Map<string, PeerFlows>();

  constructor(
    private readonly local: LocalFlows,
    private readonly nodes: () => ClusterNode[],
    /** Without it this node cannot dial its peers: they are reported unavailable, with why. */
    private readonly tls: PeerTls | undefined,
    private readonly timeoutMs: number,
  ) {}

  get selfName(): string {
    return this.local.name;
  }

  entries(): PoolEntry[] {
    const nodes = this.nodes();
    const names = new Set(nodes.map((n) => n.name));
    for (const [name, peer] of this.peers) {
      if (!names.has(name)) {
        peer.close();
        this.peers.delete(name);
      }
    }
    return nodes.map((node): PoolEntry => {
      const address = node.observerPort ? joinHostPort(node.ip, node.observerPort) : '';
      if (node.name === this.local.name) return { node, address, flows: this.local };
      if (!address) return { node, address, unreachable: 'it serves no Observer to its peers (its agent runs without --hubble-peer-tls-* files)' };
      if (!this.tls) return { node, address, unreachable: 'this node has no certificate to reach its peers with (give its agent --hubble-peer-tls-cert-file, --hubble-peer-tls-key-file and --hubble-peer-tls-ca-file)' };
      let peer = this.peers.get(node.name);
      if (peer && peer.address !== address) {
        peer.close();
        peer = undefined;
      }
      if (!peer) {
        peer = new PeerFlows(node.name, address, this.tls, this.timeoutMs);
        this.peers.set(node.name, peer);
      }
      return { node, address, flows: peer };
    });
  }

  close(): void {
    for (const peer of this.peers.values()) peer.close();
    this.peers.clear();
    this.local.close();
  }
}
