/* What the running kernel offers, probed once at start. The agent refuses to start without the
 * essentials and says exactly which one is missing. */
import fs from 'node:fs';
import os from 'node:os';
import { MAP_TYPE } from './bpf-map.js';
import { c } from './libbpf.js';

/** enum bpf_prog_type values (linux/bpf.h) of the programs the agent loads. */
const PROG_TYPE = { SCHED_CLS: 3, CGROUP_SOCK_ADDR: 18 } as const;

export interface KernelFeatures {
  release: string;
  features: Record<string, boolean>;
}

function kernelAtLeast(major: number, minor: number): boolean {
  const [a = 0, b = 0] = os.release().split(/[.-]/).map(Number);
  return a > major || (a === major && b >= minor);
}

export function probeFeatures(): KernelFeatures {
  const prog = (t: number) => c.probeProgType(t, null) === 1;
  const map = (t: number) => c.probeMapType(t, null) === 1;
  return {
    release: os.release(),
    features: {
      tc_programs: prog(PROG_TYPE.SCHED_CLS),
      tcx_links: kernelAtLeast(6, 6),
      cgroup_sock_addr: prog(PROG_TYPE.CGROUP_SOCK_ADDR),
      hash_maps: map(MAP_TYPE.HASH),
      lru_hash_maps: map(MAP_TYPE.LRU_HASH),
      lpm_trie_maps: map(MAP_TYPE.LPM_TRIE),
      ring_buffer: map(MAP_TYPE.RINGBUF),
      kernel_btf: fs.existsSync('/sys/kernel/btf/vmlinux'),
    },
  };
}

/** Human explanation of each essential feature, used when one is missing. */
export const ESSENTIAL: Record<string, string> = {
  tc_programs: 'BPF tc programs (CONFIG_BPF_SYSCALL, CONFIG_NET_CLS_BPF)',
  tcx_links: 'tcx attachment (Linux 6.6 or newer)',
  hash_maps: 'BPF hash maps',
  lru_hash_maps: 'BPF LRU hash maps',
  lpm_trie_maps: 'BPF LPM-trie maps',
  kernel_btf: 'kernel BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF)',
};
