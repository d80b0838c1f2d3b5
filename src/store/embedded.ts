/* The default store: one JSON document in the state directory, replaced atomically on every
 * commit (write to a temporary file, fsync, rename), so a crash leaves the old or the new state,
 * never a torn file. */
import fs from 'node:fs';
import path from 'node:path';
import type { Store } from './store.js';

const FILE = 'state.json';
const FORMAT_VERSION = 1;

export class EmbeddedStore implements Store {
  private readonly data: Map<string, unknown>;
  private readonly file: string;

  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.file = path.join(dir, FILE);
    this.data = new Map();
    if (fs.existsSync(this.file)) {
      const doc = JSON.parse(fs.readFileSync(this.file, 'utf8')) as { version: number; keys: Record<string, unknown> };
      if (doc.version !== FORMAT_VERSION) throw new Error(`${this.file}: unknown state format version ${doc.version}`);
      for (const [k, v] of Object.entries(doc.keys)) this.data.set(k, v);
    }
  }

  get<T>(key: string): T | undefined {
    return this.data.get(key) as T | undefined;
  }

  list<T>(prefix: string): [string, T][] {
    return [...this.data.entries()]
      .filter(([k]) => k.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) as [string, T][];
  }

  commit(change: { put?: Record<string, unknown>; delete?: string[] }): void {
    const next = new Map(this.data);
    for (const [k, v] of Object.entries(change.put ?? {})) next.set(k, structuredClone(v));
    for (const k of change.delete ?? []) next.delete(k);
    this.persist(next);
    this.data.clear();
    for (const [k, v] of next) this.data.set(k, v);
  }

  private persist(data: Map<string, unknown>): void {
    const tmp = `${this.file}.tmp-${process.pid}`;
    const body = JSON.stringify({ version: FORMAT_VERSION, keys: Object.fromEntries(data) });
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd, body);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file);
  }
}
