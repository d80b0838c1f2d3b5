/* The layering rule of ../shared/DESIGN.md §2, checked: every import in src/ (types included)
 * points to the same layer or a lower one. The order is written here, once; `make test` runs
 * this first and fails on an import that runs up the layers, naming the file, the line and the
 * two layers.
 * Usage: node --import tsx scripts/check-layers.ts */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Lowest first; modules on one line share a rank and may import each other. */
export const LAYERS: readonly (readonly string[])[] = [
  ['errors', 'util', 'net'],
  ['kernel', 'store'],
  ['datapath'],
  ['identity'],
  ['policy'],
  ['endpoint'],
  ['reconcile'],
  ['flow', 'service'],
  ['cluster', 'proxy', 'runtime', 'cni'],
  ['api'],
  ['cli', 'agent'],
];

const rank = new Map(LAYERS.flatMap((names, i) => names.map((n) => [n, i] as const)));

/** The layer of a file under src/: its folder, or its own name for a top-level file (agent.ts, errors.ts). */
export function layerOf(srcRelative: string): string {
  const [first, ...rest] = srcRelative.split('/');
  return rest.length ? first! : first!.replace(/\.[jt]s$/, '');
}

export interface Violation {
  file: string;
  line: number;
  target: string;
  from: string;
  to: string;
}

const IMPORT = /(?:^|\s)(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;

export function checkLayers(srcDir: string): { violations: Violation[]; unknown: string[]; files: number } {
  const violations: Violation[] = [];
  const unknown = new Set<string>();
  const files = (fs.readdirSync(srcDir, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts'));
  for (const file of files) {
    const from = layerOf(file);
    if (!rank.has(from)) unknown.add(from);
    const text = fs.readFileSync(path.join(srcDir, file), 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const spec = (m[1] ?? m[2])!;
      const target = path.relative(srcDir, path.resolve(srcDir, path.dirname(file), spec));
      const to = layerOf(target);
      if (!rank.has(to)) unknown.add(to);
      if ((rank.get(to) ?? -1) > (rank.get(from) ?? Infinity)) {
        violations.push({ file, line: text.slice(0, m.index).split('\n').length, target, from, to });
      }
    }
  }
  return { violations, unknown: [...unknown], files: files.length };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src');
  const { violations, unknown, files } = checkLayers(src);
  for (const u of unknown) console.error(`src/${u}: not a layer of DESIGN.md §2 — add it to LAYERS in scripts/check-layers.ts`);
  for (const v of violations) console.error(`src/${v.file}:${v.line}: ${v.from} imports ${v.target} (${v.to}), a higher layer`);
  if (violations.length || unknown.length) process.exit(1);
  console.log(`layers: ${files} files, every import points down`);
}
