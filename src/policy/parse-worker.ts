/* The worker thread that reads policy files for parse-pool.ts, so that a slow or hostile file
 * costs this thread's time and heap, never the agent's event loop. One job at a time: the files
 * of one request, parsed in order; the reply is plain data (ParsedPolicy holds only objects,
 * arrays, strings, numbers, booleans and null), which postMessage copies by structured clone.
 * It says when it is ready, and before each file which one it starts, so that a deadline or a
 * crash can name the file. */
import { parentPort } from 'node:worker_threads';
import { UserError, type UserErrorCode } from '../errors.js';
import { parsePolicyText, type ParsedPolicy } from './parse.js';

export interface ParseJob {
  id: number;
  files: { name: string; content: string }[];
}

export type ParseReply =
  | { type: 'ready' }
  | { id: number; type: 'file'; index: number }
  | { id: number; type: 'done'; policies: ParsedPolicy[] }
  | { id: number; type: 'invalid'; code: UserErrorCode; message: string }
  | { id: number; type: 'failed'; message: string };

function run(job: ParseJob, reply: (r: ParseReply) => void): void {
  try {
    const policies: ParsedPolicy[] = [];
    job.files.forEach((file, index) => {
      reply({ id: job.id, type: 'file', index });
      policies.push(...parsePolicyText(file.content, file.name));
    });
    reply({ id: job.id, type: 'done', policies });
  } catch (err) {
    // Anything but a UserError is a bug in the parser: the pool reports it as an internal error.
    if (err instanceof UserError) reply({ id: job.id, type: 'invalid', code: err.code, message: err.message });
    else reply({ id: job.id, type: 'failed', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  }
}

const port = parentPort;
if (port) {
  port.on('message', (job: ParseJob) => run(job, (r) => port.postMessage(r)));
  // The parser is loaded: from here on the pool counts time against the deadline.
  port.postMessage({ type: 'ready' } satisfies ParseReply);
}
