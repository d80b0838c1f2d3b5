/* Policy files are read off the agent's event loop, in worker threads (parse-worker.ts).
 *
 * Model: each call is one job (the files of one request), run by one worker with a capped heap.
 * Reading each file must finish within a deadline (2 s), counted from the moment a ready worker
 * starts it; past it the worker is terminated and the call fails with one line naming the file. A job waits at most as long again for a free worker. A worker that crashes or runs out of
 * heap fails its job only; the next job gets a fresh worker. A worker that answered is kept for
 * the next job: a new one costs 100-150 ms to start (measured from dist/; several hundred under
 * tsx, which has to compile the parser first, and longer on a loaded machine, so starting does
 * not count against the deadline) and reads its first files 2-3x slower while the JIT warms up.
 * One idle worker is kept, unref'd so that it never keeps the process alive; more are started,
 * up to `maxWorkers`, only while jobs overlap.
 *
 * Pitfalls: results cross the thread boundary by structured clone, so ParsedPolicy must stay
 * plain data; the worker file is resolved next to this one with this file's extension, so the
 * compiled agent (dist/, .js) and tests under tsx (.ts) both find it. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { UserError, invalid } from '../errors.js';
import { fileLabel } from './limits.js';
import type { ParsedPolicy } from './parse.js';
import type { ParseJob, ParseReply } from './parse-worker.js';

const WORKER_URL = new URL(`./parse-worker${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url);

/** What warm() has a new worker read: one rule of each common kind. */
export const WARM_UP = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: warm-up, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: a}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: b}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
  egress:
  - toCIDR: [192.0.2.0/24]
`;

/** A worker that has not loaded by then is broken, not slow. */
const STARTUP_MS = 20_000;

function startWorker(options: WorkerOptions): Worker {
  if (!WORKER_URL.pathname.endsWith('.ts')) return new Worker(WORKER_URL, options);
  // Under tsx (tests, benchmarks) a worker does not inherit the loader that --import registered
  // on the main thread (Node 20), so the worker registers it before loading the .ts file.
  const tsx = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(WORKER_URL.href)}); });`;
  return new Worker(code, { ...options, eval: true });
}

export interface PolicyFileText {
  name: string;
  content: string;
}

export interface PolicyParserOptions {
  /** For reading the files of one call, once a worker is ready; and again for waiting for one. */
  deadlineMs?: number;
  /** Old-generation heap of each worker. */
  maxOldGenerationSizeMb?: number;
  maxWorkers?: number;
}

interface Job {
  id: number;
  files: PolicyFileText[];
  /** The file the worker said it started last. */
  file: number;
  /** warm()'s: a call that finds it running waits for its worker rather than start another. */
  warmUp?: boolean;
  timer?: NodeJS.Timeout;
  settle: (result: { policies: ParsedPolicy[] } | { error: Error }) => void;
}

interface Slot {
  worker: Worker;
  /** The worker has loaded the parser. */
  ready: boolean;
  job?: Job;
}

export class PolicyParser {
  private readonly deadlineMs: number;
  private readonly heapMb: number;
  private readonly maxWorkers: number;
  private readonly slots = new Set<Slot>();
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closed = false;
  private starts = 0;

  constructor(options: PolicyParserOptions = {}) {
    this.deadlineMs = options.deadlineMs ?? 2000;
    this.heapMb = options.maxOldGenerationSizeMb ?? 256;
    this.maxWorkers = options.maxWorkers ?? 2;
  }

  /**
   * Starts the idle worker before the first import needs it, and has it read a small policy so
   * its parser is compiled: otherwise the first import after the agent starts waits for both
   * (300-450 ms measured in bench/cluster, against 10-20 ms for the next ones). Nothing happens
   * if a worker exists already; a failure here is the next import's to report.
   */
  warm(): void {
    if (this.closed || this.slots.size > 0) return;
    this.parse([{ name: 'warm-up.yaml', content: WARM_UP }], undefined, true).catch(() => undefined);
  }

  /** Workers started so far (tests and measurements). */
  get started(): number {
    return this.starts;
  }

  /** The policies of all files, in order. Rejects with the parser's UserError, or with a
   * UserError of its own for a deadline, a heap overflow, too long a wait for a worker or a
   * client gone while it waited; with a plain Error when the parser itself fails (a bug). */
  parse(files: PolicyFileText[], signal?: AbortSignal, warmUp = false): Promise<ParsedPolicy[]> {
    if (this.closed) return Promise.reject(new Error('the policy parser is closed'));
    return new Promise((resolve, reject) => {
      const cancelled = () => new UserError('unavailable', 'the request was cancelled before its policy files were read');
      // A job still queued when its client goes away is dropped; a running one finishes (the
      // caller checks the signal again before applying anything).
      const onAbort = () => {
        if (this.unqueue(job)) job.settle({ error: cancelled() });
      };
      const job: Job = {
        id: this.nextId++,
        files,
        file: 0,
        ...(warmUp ? { warmUp } : {}),
        settle: (result) => {
          job.settle = () => {}; // once
          clearTimeout(job.timer);
          signal?.removeEventListener('abort', onAbort);
          if ('error' in result) reject(result.error);
          else resolve(result.policies);
        },
      };
      if (signal?.aborted) return job.settle({ error: cancelled() });
      signal?.addEventListener('abort', onAbort);
      job.timer = setTimeout(() => {
        if (this.unqueue(job)) {
          // Not the input's fault: the agent is busy (503).
          job.settle({ error: new UserError('unavailable', `policy import: waited longer than ${this.deadlineMs} ms for other imports to be read; try again`) });
        }
      }, this.deadlineMs);
      this.queue.push(job);
      this.dispatch();
    });
  }

  /** Terminates every worker; calls still waiting fail. */
  async close(): Promise<void> {
    this.closed = true;
    const closed = () => ({ error: new Error('the policy parser is closed') });
    for (const job of this.queue.splice(0)) job.settle(closed());
    const slots = [...this.slots];
    this.slots.clear();
    for (const slot of slots) slot.job?.settle(closed());
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private unqueue(job: Job): boolean {
    const i = this.queue.indexOf(job);
    if (i >= 0) this.queue.splice(i, 1);
    return i >= 0;
  }

  private dispatch(): void {
    while (this.queue.length > 0 && !this.closed) {
      let slot = [...this.slots].find((s) => !s.job);
      if (!slot) {
        if (this.slots.size >= this.maxWorkers || [...this.slots].some((s) => s.job?.warmUp)) return;
        slot = this.spawn();
      }
      const job = this.queue.shift()!;
      slot.job = job;
      slot.worker.ref();
      this.startClock(slot, job);
      const message: ParseJob = { id: job.id, files: job.files };
      slot.worker.postMessage(message);
    }
  }

  /** The deadline once the worker is ready; until then, only a bound on starting. */
  private startClock(slot: Slot, job: Job): void {
    clearTimeout(job.timer);
    const ms = slot.ready ? this.deadlineMs : STARTUP_MS;
    job.timer = setTimeout(() => {
      this.retire(slot);
      void slot.worker.terminate();
      job.settle({
        error: slot.ready
          ? invalid(`${this.fileOf(job)}: reading it took longer than ${this.deadlineMs} ms, the limit per file; split it into smaller files`)
          : new Error(`the policy parser did not start within ${STARTUP_MS} ms`),
      });
    }, ms);
  }

  private spawn(): Slot {
    this.starts++;
    const slot: Slot = { worker: startWorker({ resourceLimits: { maxOldGenerationSizeMb: this.heapMb } }), ready: false };
    this.slots.add(slot);
    slot.worker.on('message', (reply: ParseReply) => this.reply(slot, reply));
    slot.worker.on('error', (err: Error & { code?: string }) => {
      const job = slot.job;
      this.retire(slot);
      if (!job) return;
      const file = this.fileOf(job);
      job.settle({
        error:
          err.code === 'ERR_WORKER_OUT_OF_MEMORY'
            ? invalid(`${file}: reading it needed more than the ${this.heapMb} MB of memory a policy import may use; split it into smaller files`)
            : new Error(`the policy parser failed on ${file}: ${err.message}`),
      });
    });
    slot.worker.on('exit', () => {
      const job = slot.job;
      this.retire(slot);
      job?.settle({ error: new Error(`the policy parser stopped while reading ${this.fileOf(job)}`) });
    });
    return slot;
  }

  private reply(slot: Slot, r: ParseReply): void {
    if (r.type === 'ready') {
      slot.ready = true;
      if (slot.job) this.startClock(slot, slot.job);
      return;
    }
    const job = slot.job;
    if (!job || job.id !== r.id) return;
    if (r.type === 'file') {
      // Each file has its own deadline: an import of several large files is not refused for
      // their sum, and no one file can hold a worker longer than the deadline.
      job.file = r.index;
      this.startClock(slot, job);
      return;
    }
    slot.job = undefined;
    slot.worker.unref();
    // One idle worker is enough between requests.
    if ([...this.slots].some((s) => s !== slot && !s.job)) {
      this.retire(slot);
      void slot.worker.terminate();
    }
    if (r.type === 'done') job.settle({ policies: r.policies });
    else if (r.type === 'invalid') job.settle({ error: new UserError(r.code, r.message) });
    else job.settle({ error: new Error(`the policy parser failed on ${this.fileOf(job)}: ${r.message}`) });
    this.dispatch();
  }

  /** Forgets a worker that will not be used again, and lets the queue move on. */
  private retire(slot: Slot): void {
    slot.job = undefined;
    if (this.slots.delete(slot)) queueMicrotask(() => this.dispatch());
  }

  private fileOf(job: Job | undefined): string {
    const file = job?.files[job.file];
    return file ? fileLabel(file.name) : 'the policy files';
  }
}
