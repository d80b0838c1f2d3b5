/* Cilium's cluster-pool IPAM: the cluster's pod range (--cluster-pool-ipv4-cidr) is cut into
 * blocks of --cluster-pool-mask-size bits, and each node claims a free one through etcd at its
 * first start: membrane/state/podcidrs/v1/<cluster>/<block> -> node name, created only if no one
 * holds it (a transaction), under the node's lease so a dead node's block comes free. The block
 * is also kept in the state directory, so the node claims the same one again after a restart
 * (its endpoints keep their addresses), unless another node took it meanwhile. */
import fs from 'node:fs';
import type { Logger } from 'pino';
import { StartupError, errorMessage } from '../errors.js';
import { cidrInside, formatCidr, parseCidr, type Cidr } from '../net/ipv4.js';
import type { EtcdStore } from '../store/etcd.js';

export interface ClusterPool {
  cidr: string;
  maskSize: number;
}

const prefix = (cluster: string) => `membrane/state/podcidrs/v1/${cluster}/`;
const keyOf = (cluster: string, block: string) => prefix(cluster) + block.replace('/', '_');

/** The pool's blocks in order, checked: the mask must fit inside the pool. */
export function poolBlocks(pool: ClusterPool): { range: Cidr; count: number; block: (i: number) => string } {
  let range: Cidr;
  try {
    range = parseCidr(pool.cidr);
  } catch (err) {
    throw new StartupError(`--cluster-pool-ipv4-cidr: ${errorMessage(err)}`);
  }
  if (!Number.isInteger(pool.maskSize) || pool.maskSize < range.prefixlen || pool.maskSize > 30) {
    throw new StartupError(`--cluster-pool-mask-size ${pool.maskSize}: give a size from ${range.prefixlen} (the pool's own) to 30, e.g. 24`);
  }
  const count = 2 ** (pool.maskSize - range.prefixlen);
  const size = 2 ** (32 - pool.maskSize);
  return { range, count, block: (i) => formatCidr({ base: range.base + i * size, prefixlen: pool.maskSize }) };
}

/** Claims this node's block: the one it had (state file), else the first free one. */
export async function claimPodCidr(kv: EtcdStore, cluster: string, node: string, pool: ClusterPool, stateFile: string, log: Logger): Promise<string> {
  const blocks = poolBlocks(pool);
  const remembered = readBlock(stateFile, blocks.range, pool.maskSize);
  if (remembered) {
    const { created, value } = await kv.createIfAbsent(keyOf(cluster, remembered), node, true);
    if (created || value === node) {
      if (!created) await kv.putLeased(keyOf(cluster, remembered), node); // held under our (new) lease from now on
      return remembered;
    }
    log.warn({ block: remembered, holder: value }, 'the pod CIDR block this node had was claimed by another node while it was away: claiming another');
  }
  const taken = new Set((await kv.list(prefix(cluster))).kvs.map((kv) => kv.key.slice(prefix(cluster).length).replace('_', '/')));
  for (let i = 0; i < blocks.count; i++) {
    const block = blocks.block(i);
    if (taken.has(block)) continue;
    const { created } = await kv.createIfAbsent(keyOf(cluster, block), node, true);
    if (!created) continue; // another node got there first
    fs.writeFileSync(stateFile, `${block}\n`, { mode: 0o600 });
    log.info({ podCidr: block, pool: pool.cidr }, 'claimed a pod CIDR block from the cluster pool');
    return block;
  }
  throw new StartupError(`the cluster pool ${pool.cidr} has no free /${pool.maskSize} block left (${blocks.count} in all): widen --cluster-pool-ipv4-cidr or remove nodes`);
}

/** The block kept in the state file, if it is still one of the pool's (the pool may have changed). */
function readBlock(file: string, range: Cidr, maskSize: number): string | undefined {
  try {
    const block = parseCidr(fs.readFileSync(file, 'utf8').trim());
    return block.prefixlen === maskSize && cidrInside(block, range) ? formatCidr(block) : undefined;
  } catch {
    return undefined;
  }
}
