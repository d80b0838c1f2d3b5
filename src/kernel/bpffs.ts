/* bpffs is not mounted on a fresh machine; the agent mounts it where it needs it. */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

const BPF_FS_MAGIC = 0xcafe4a11;
const DEFAULT_BPFFS = '/sys/fs/bpf';

function isBpffs(dir: string): boolean {
  try {
    return fs.statfsSync(dir).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

function mountBpffs(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'bpf', 'bpf', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Ensures `dir` exists on a bpf filesystem, mounting one if needed. */
export function ensureBpffs(dir: string): void {
  const abs = path.resolve(dir);
  if (abs === DEFAULT_BPFFS || abs.startsWith(DEFAULT_BPFFS + '/')) {
    if (!isBpffs(DEFAULT_BPFFS)) mountBpffs(DEFAULT_BPFFS);
  }
  if (fs.existsSync(abs) && isBpffs(abs)) return;
  fs.mkdirSync(abs, { recursive: true });
  if (!isBpffs(abs)) mountBpffs(abs);
}
