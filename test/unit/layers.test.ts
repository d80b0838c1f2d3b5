/* The layering rule (DESIGN.md §2) holds for src/, and the check catches an import that runs up. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { checkLayers } from '../../scripts/check-layers.js';
import { repoRoot } from '../harness/node.js';

describe('layers', () => {
  it('src/ imports only down the layers', () => {
    const { violations, unknown, files } = checkLayers(path.join(repoRoot, 'src'));
    assert.deepEqual(unknown, []);
    assert.deepEqual(violations, []);
    assert.ok(files > 50);
  });

  it('names an import that runs up, a type-only one and a dynamic one included', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mbt-layers-'));
    try {
      const write = (file: string, text: string) => {
        fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
        fs.writeFileSync(path.join(dir, file), text);
      };
      write('api/types.ts', 'export interface Endpoint { id: number }\n');
      write('policy/engine.ts', "import type { Endpoint } from '../api/types.js';\nimport { x } from '../kernel/map.js';\n");
      write('kernel/map.ts', "export const x = 1;\nconst later = () => import('../agent.js');\n");
      write('agent.ts', "import { x } from './kernel/map.js';\n");
      const { violations } = checkLayers(dir);
      assert.deepEqual(
        violations.map((v) => `${v.file}:${v.line} ${v.from}->${v.to}`).sort(),
        ['kernel/map.ts:2 kernel->agent', 'policy/engine.ts:1 policy->api'],
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
