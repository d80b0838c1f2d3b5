/* The agent API: JSON over HTTP on a unix socket (mode 0600). Handlers that change state run
 * one at a time; user mistakes come back as 4xx with a code and a one-line message. */
import http from 'node:http';
import fs from 'node:fs';
import type { Logger } from 'pino';
import { UserError, quoted } from '../errors.js';
import type { ApiErrorBody } from './types.js';

/** `signal` aborts when the client goes away before the response is sent. */
type Handler = (req: { params: Record<string, string>; body: unknown; query: URLSearchParams; signal: AbortSignal }) => Promise<unknown> | unknown;

interface Route {
  method: string;
  pattern: RegExp;
  names: string[];
  handler: Handler;
}

/** A handler result that writes the response itself (streams, non-JSON bodies). */
export class RawResponse {
  constructor(readonly write: (res: http.ServerResponse, req: http.IncomingMessage) => void) {}
}

const STATUS: Record<string, number> = { invalid: 400, 'not-found': 404, conflict: 409, unavailable: 503 };
/** Policy imports carry whole files (4 MiB each): room for a few, while JSON.parse of the body, on the main thread, stays around 100 ms. */
const MAX_BODY = 16 * 1024 * 1024;

export class ApiServer {
  private readonly routes: Route[] = [];
  private server?: http.Server;

  constructor(private readonly log: Logger) {}

  /** `path` uses :name segments, e.g. /v1/endpoints/:namespace/:name. */
  route(method: string, path: string, handler: Handler): this {
    const names: string[] = [];
    const pattern = new RegExp(
      '^' +
        path.replace(/:([a-zA-Z]+)/g, (_, n: string) => {
          names.push(n);
          return '([^/]+)';
        }) +
        '$',
    );
    this.routes.push({ method, pattern, names, handler });
    return this;
  }

  async listen(socketPath: string): Promise<void> {
    fs.rmSync(socketPath, { force: true });
    this.server = http.createServer((req, res) => void this.handle(req, res));
    const oldMask = process.umask(0o177); // the socket is created 0600: only root may talk to the agent
    try {
      await new Promise<void>((resolve, reject) => {
        this.server!.once('error', reject);
        this.server!.listen(socketPath, () => resolve());
      });
    } finally {
      process.umask(oldMask);
    }
    fs.chmodSync(socketPath, 0o600);
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://agent');
    } catch {
      url = new URL('http://agent/');
    }
    const send = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    const fail = (status: number, code: string, message: string) =>
      send(status, { error: { code, message } } satisfies ApiErrorBody);
    try {
      let match: { route: Route; params: Record<string, string> } | undefined;
      for (const route of this.routes) {
        const m = route.pattern.exec(url.pathname);
        if (m && route.method === req.method) {
          const params: Record<string, string> = {};
          route.names.forEach((n, i) => (params[n] = decodePathSegment(m[i + 1] as string)));
          match = { route, params };
          break;
        }
      }
      if (!match) return fail(404, 'not-found', `no API route ${req.method} ${url.pathname}`);
      // The response's close, not the request's: a request emits 'close' once its body is read.
      const gone = new AbortController();
      res.once('close', () => res.writableFinished || gone.abort());
      const body = await readBody(req);
      const result = await match.route.handler({ params: match.params, body, query: url.searchParams, signal: gone.signal });
      if (result instanceof RawResponse) return result.write(res, req);
      send(200, result ?? {});
    } catch (err) {
      if (err instanceof UserError) return fail(STATUS[err.code] ?? 400, err.code, err.message);
      this.log.error({ err: (err as Error).message, stack: (err as Error).stack, path: url.pathname }, 'request failed');
      fail(500, 'internal', (err as Error).message);
    }
  }
}

/** A path segment, percent-decoded; a malformed escape is the client's mistake (400), not ours. */
function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new UserError('invalid', `the request path has a malformed percent-escape in ${quoted(segment)}`);
  }
}

async function readBody(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new UserError('invalid', `request body is larger than ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new UserError('invalid', 'request body is not valid JSON');
  }
}
