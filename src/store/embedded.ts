/* The default store: a snapshot plus an append-only log in the state directory.
 *  - commit: one JSON line appended to state.log and fsynced; only then does memory change, so an
 *    accepted change is durable and a failed one leaves no trace;
 *  - open: the snapshot, then every complete log record after it; a torn last line (a crash in
 *    the middle of an append, never acknowledged) is dropped;
 *  - compaction: when the log outgrows the snapshot, a new snapshot is written to a temporary
 *    file, fsynced and renamed over the old one, then the log starts afresh. Records carry a
 *    sequence number, so a crash between the rename and the truncation replays nothing twice.
 * Each commit costs O(size of the change), not O(size of the state). The log is preallocated with
 * zeros in chunks, so a commit overwrites data in place and fdatasync has no metadata to journal:
 * on ext4 an fsync that changes the file size waits for a journal commit carrying everyone's
 * metadata, which is where the long stalls under load come from. Replay stops at the zeros. */
import fs from 'node:fs';
import path from 'node:path';
import type { Store } from './store.js';

const SNAPSHOT = 'state.json';
const LOG = 'state.log';
const FORMAT_VERSION = 2;
const MIN_COMPACT_BYTES = 1 << 20;
/** The log grows by this much, written as zeros and synced once. */
const LOG_CHUNK_BYTES = 4 << 20;

/** A new log file of one chunk of zeros, synced (its size and blocks are on disk). */
function preallocatedLog(file: string): number {
  const fd = fs.openSync(file, 'w', 0o600);
  fs.writeSync(fd, Buffer.alloc(LOG_CHUNK_BYTES), 0, LOG_CHUNK_BYTES, 0);
  fs.fsyncSync(fd);
  return fd;
}

interface Snapshot {
  version: number;
  seq: number;
  keys: Record<string, unknown>;
}

interface LogRecord {
  seq: number;
  put?: Record<string, unknown>;
  delete?: string[];
}

function writeDurably(file: string, body: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, body);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

export class EmbeddedStore implements Store {
  private readonly data = new Map<string, unknown>();
  private readonly snapshotFile: string;
  private readonly logFile: string;
  private seq = 0;
  private logFd: number;
  /** End of the records in the log; the file is `logAllocated` bytes, zeros after the records. */
  private logBytes = 0;
  private logAllocated = 0;
  private snapshotBytes = 0;

  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.snapshotFile = path.join(dir, SNAPSHOT);
    this.logFile = path.join(dir, LOG);
    if (fs.existsSync(this.snapshotFile)) {
      const text = fs.readFileSync(this.snapshotFile, 'utf8');
      const snap = JSON.parse(text) as Snapshot;
      if (snap.version !== FORMAT_VERSION) throw new Error(`${this.snapshotFile}: unknown state format version ${snap.version}`);
      for (const [k, v] of Object.entries(snap.keys)) this.data.set(k, v);
      this.seq = snap.seq;
      this.snapshotBytes = text.length;
    }
    if (fs.existsSync(this.logFile)) {
      this.logFd = fs.openSync(this.logFile, 'r+');
      this.replayLog();
    } else {
      this.logFd = preallocatedLog(this.logFile);
      this.logAllocated = LOG_CHUNK_BYTES;
    }
  }

  private replayLog(): void {
    const bytes = fs.readFileSync(this.logFile);
    this.logAllocated = bytes.length;
    const zero = bytes.indexOf(0);
    const text = bytes.subarray(0, zero < 0 ? bytes.length : zero).toString('utf8');
    let validBytes = 0;
    for (const line of text.split('\n')) {
      if (line === '') break;
      let rec: LogRecord;
      try {
        rec = JSON.parse(line) as LogRecord;
      } catch {
        break; // torn tail: that commit never returned
      }
      validBytes += Buffer.byteLength(line) + 1;
      if (rec.seq <= this.seq) continue;
      this.apply(rec);
    }
    this.logBytes = validBytes;
    // A torn tail becomes zeros again, so nothing after the records can be read as one.
    const tornEnd = zero < 0 ? bytes.length : zero;
    if (tornEnd > validBytes) {
      fs.writeSync(this.logFd, Buffer.alloc(tornEnd - validBytes), 0, tornEnd - validBytes, validBytes);
      fs.fsyncSync(this.logFd);
    }
  }

  private apply(rec: LogRecord): void {
    for (const [k, v] of Object.entries(rec.put ?? {})) this.data.set(k, v);
    for (const k of rec.delete ?? []) this.data.delete(k);
    this.seq = rec.seq;
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
    const line = JSON.stringify({ seq: this.seq + 1, put: change.put, delete: change.delete }) + '\n';
    const bytes = Buffer.from(line);
    if (this.logBytes + bytes.length > this.logAllocated) this.growLog(bytes.length);
    try {
      for (let off = 0; off < bytes.length; ) off += fs.writeSync(this.logFd, bytes, off, bytes.length - off, this.logBytes + off);
      fs.fdatasyncSync(this.logFd);
    } catch (err) {
      // A short write must not leave a torn record for later records to follow: back to zeros.
      try {
        fs.writeSync(this.logFd, Buffer.alloc(bytes.length), 0, bytes.length, this.logBytes);
      } catch {
        // the next open drops a torn tail anyway
      }
      throw err;
    }
    this.logBytes += bytes.length;
    // Memory holds parsed copies: callers may keep mutating the objects they passed in.
    this.apply(JSON.parse(line) as LogRecord);
    if (this.logBytes > Math.max(MIN_COMPACT_BYTES, 2 * this.snapshotBytes)) this.compact();
  }

  /** Folds the log into a new snapshot. */
  compact(): void {
    const body = JSON.stringify({ version: FORMAT_VERSION, seq: this.seq, keys: Object.fromEntries(this.data) } satisfies Snapshot);
    writeDurably(this.snapshotFile, body);
    this.snapshotBytes = body.length;
    fs.closeSync(this.logFd);
    const tmp = `${this.logFile}.tmp-${process.pid}`;
    this.logFd = preallocatedLog(tmp);
    fs.renameSync(tmp, this.logFile);
    this.logBytes = 0;
    this.logAllocated = LOG_CHUNK_BYTES;
  }

  /** Extends the log by chunks of zeros until `needed` more bytes fit (metadata synced once). */
  private growLog(needed: number): void {
    const grow = Math.ceil((this.logBytes + needed - this.logAllocated) / LOG_CHUNK_BYTES) * LOG_CHUNK_BYTES;
    fs.writeSync(this.logFd, Buffer.alloc(grow), 0, grow, this.logAllocated);
    fs.fsyncSync(this.logFd);
    this.logAllocated += grow;
  }

  close(): void {
    fs.closeSync(this.logFd);
  }
}
