/* Endpoint adds in progress. Plumbing an endpoint creates kernel objects (a namespace, a veth
 * pair) before the endpoint is committed to the store; an agent killed in between (~100 ms)
 * would leave them behind with nothing pointing at them, and the endpoint's namespace name
 * taken for good. So each add records what it is about to create first, in a small file per
 * endpoint under the state directory, and removes the record once the endpoint is committed or
 * rolled back. A restarted agent removes whatever a leftover record names that no committed
 * endpoint owns.
 *
 * The record is written without fsync on purpose: what it protects against is the agent
 * dying, which keeps the page cache; a machine crash takes the namespaces with it. */
import fs from 'node:fs';
import path from 'node:path';

export interface PendingPlumbing {
  id: number;
  /** The endpoint's namespace, and whether the agent creates it (and so may delete it). */
  netns: string;
  netnsOwned: boolean;
  /** The agent named a namespace given by path: the name is removed. */
  netnsAttached?: boolean;
  /** Host-side interface in the node namespace. */
  interface: string;
}

export class PendingAdds {
  constructor(private readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private file(id: number): string {
    return path.join(this.dir, `endpoint-${id}.json`);
  }

  begin(p: PendingPlumbing): void {
    fs.writeFileSync(this.file(p.id), JSON.stringify(p), { mode: 0o600 });
  }

  done(id: number): void {
    fs.rmSync(this.file(id), { force: true });
  }

  /** Records left by adds that never finished (an unreadable one is dropped: it names nothing safely). */
  leftovers(): PendingPlumbing[] {
    const out: PendingPlumbing[] = [];
    for (const f of fs.readdirSync(this.dir)) {
      const file = path.join(this.dir, f);
      try {
        const p = JSON.parse(fs.readFileSync(file, 'utf8')) as PendingPlumbing;
        if (typeof p.id === 'number' && typeof p.netns === 'string' && typeof p.interface === 'string') out.push(p);
        else fs.rmSync(file, { force: true });
      } catch {
        fs.rmSync(file, { force: true });
      }
    }
    return out;
  }
}
