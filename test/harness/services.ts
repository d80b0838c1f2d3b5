/* Shared pieces of the service tests: backend endpoints running whoami-server, a client that
 * counts which backend answered, and connections held open across service changes. The same
 * helpers drive socket-level translation (clients in the node's cgroup) and tc-level
 * translation (clients outside it). */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import type { Endpoint } from '../../src/api/types.js';
import { repoRoot, waitForLine, type TestNode } from './node.js';

const tools = path.join(repoRoot, 'test/harness/tools');
export const BACKEND_PORT = 8080;
/** whoami-server's port for held connections (greets with its name, then echoes). */
export const HOLD_PORT = 8081;

export interface Who {
  /** Connections (or datagrams) answered, by backend name. */
  counts: Record<string, number>;
  errors: Record<string, number>;
  /** Addresses UDP replies came from. */
  peers: string[];
  /** With a base port: the backend that answered each source port. */
  byPort: Record<string, string>;
}

export class ServiceClients {
  constructor(
    private readonly node: TestNode,
    /** Clients outside the node's cgroup: the socket hooks do not see them, the tc programs do. */
    private readonly outsideCgroup: boolean,
  ) {}

  /** `n` sequential TCP connections (or UDP datagrams) from `from` to vip:port. */
  async who(from: Endpoint, proto: 'tcp' | 'udp', vip: string, port: number, n: number, basePort?: number): Promise<Who> {
    const argv = ['node', path.join(tools, 'who.mjs'), proto, vip, String(port), String(n), ...(basePort ? [String(basePort)] : [])];
    const r = await this.node.exec(from.netns, argv, 60_000, { outsideCgroup: this.outsideCgroup });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Who;
  }

  /** A TCP connection to vip:HOLD_PORT kept open; resolves once the backend greeted it. */
  async hold(from: Endpoint, vip: string, port = HOLD_PORT): Promise<HeldConnection> {
    const child = this.node.holdConnection(from.netns, vip, port, { outsideCgroup: this.outsideCgroup });
    const greeting = await waitForLine(child, (l) => l.startsWith('echo ') || l.startsWith('error'));
    assert.ok(greeting.startsWith('echo '), `the held connection failed: ${greeting}`);
    return new HeldConnection(child, greeting.slice('echo '.length));
  }
}

export class HeldConnection {
  private readonly lines: string[] = [];
  private waiter?: () => void;

  constructor(
    private readonly child: ChildProcess,
    /** The backend that greeted the connection. */
    readonly backend: string,
  ) {
    readline.createInterface({ input: child.stdout! }).on('line', (l) => {
      this.lines.push(l);
      this.waiter?.();
    });
  }

  /** Sends a line and returns what came back (or a timeout / error marker). */
  async roundTrip(line: string, timeoutMs = 2000): Promise<string> {
    this.child.stdin!.write(`${line}\n`);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const got = this.lines.shift();
      if (got !== undefined) return got;
      await new Promise<void>((r) => {
        this.waiter = r;
        setTimeout(r, 50);
      });
    }
    return 'timeout';
  }

  close(): void {
    this.child.kill('SIGKILL');
  }
}

/** A backend endpoint labelled app=web (plus `labels`) serving whoami-server on BACKEND_PORT and HOLD_PORT. */
export async function addBackend(node: TestNode, namespace: string, name: string, labels: string[] = []): Promise<Endpoint> {
  const ep = await node.api.addEndpoint({ namespace, name, labels: ['app=web', ...labels] });
  const server = node.spawnIn(ep.netns, ['node', path.join(tools, 'whoami-server.mjs'), name, String(BACKEND_PORT), String(HOLD_PORT)]);
  await waitForLine(server, (l) => l === 'ready');
  return ep;
}

/** A policy file letting only app=client reach the app=web backends of `namespace`. */
export function webFromClientOnly(namespace: string): { name: string; content: string } {
  return {
    name: 'web-from-client.yaml',
    content: `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-from-client, namespace: ${namespace}}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
`,
  };
}
