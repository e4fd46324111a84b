import { closeSync, fsyncSync, openSync, readFileSync, statSync, unlinkSync, utimesSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import type { PgliteWorkerData, WorkerReply, WorkerRequest } from './pglite-worker.js';
import type { SqlDriver, SqlSession } from './sql-driver.js';
import { ensureDataDir } from './data-dir.js';
import { isResourceShortage } from './resource-shortage.js';
import { StorageError, StorageUnavailableError } from './storage.js';

/** Directories opened by this process: two PGlite instances on one directory would corrupt it. */
const openDirs = new Set<string>();

/**
 * How long a lock written on another host counts as held without being renewed. Its holder renews it (the file's
 * modification time) every LOCK_RENEW_MS; a holder that stopped renewing for this long has died with its host or
 * container, and the lock may be taken over.
 */
const LOCK_LEASE_MS = 30_000;
const LOCK_RENEW_MS = 5_000;

/** A held lock: its file, and the timer renewing its lease. */
interface HeldLock {
  path: string;
  renewal: NodeJS.Timeout;
}

/**
 * Takes `DATA_DIR/storage.lock` for this process. PGlite is one process per directory (it has no postmaster.pid), and
 * two on one directory corrupt it. The lock names the process and its host (`<pid>\n<hostname>\n`). On the same host
 * a lock is held while its process runs (a crash or SIGKILL leaves one that is taken over). Processes in two
 * containers sharing a volume have separate pid namespaces, where a pid says nothing (both are often pid 1): a lock
 * from another host is held while its lease is renewed, and taken over once it has not been for LOCK_LEASE_MS.
 */
function takeLock(dir: string, renewMs = LOCK_RENEW_MS): HeldLock {
  const path = join(dir, 'storage.lock');
  const host = hostname();
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, `${process.pid}\n${host}\n`);
      fsyncSync(fd);
      closeSync(fd);
      const renewal = setInterval(() => renewLock(path), renewMs);
      renewal.unref();
      return { path, renewal };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const [pidText, owner] = readFileSync(path, 'utf8').split('\n');
      const pid = Number.parseInt(pidText, 10);
      // A lock without a host was written by an earlier version on this host.
      const sameHost = !owner || owner === host;
      if (sameHost && Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new StorageError(
          `DATA_DIR ${dir} is in use by process ${pid}: embedded storage serves one process per directory (set DATABASE_URL to share a PostgreSQL server)`,
        );
      }
      const renewedAgoMs = Date.now() - statSync(path).mtimeMs;
      if (!sameHost && renewedAgoMs < LOCK_LEASE_MS) {
        throw new StorageError(
          `DATA_DIR ${dir} is in use by process ${pidText} on host ${owner} (lock renewed ${Math.max(0, Math.round(renewedAgoMs / 1000))} s ago): embedded storage serves one process per directory (set DATABASE_URL to share a PostgreSQL server); a lock not renewed for ${LOCK_LEASE_MS / 1000} s is taken over`,
        );
      }
      unlinkSync(path);
    }
  }
  throw new StorageError(`could not lock DATA_DIR ${dir}`);
}

/** Renews the lease of this process's lock (its modification time); a lock that is gone or not ours is left alone. */
function renewLock(path: string): void {
  try {
    if (ownsLock(path)) {
      const now = new Date();
      utimesSync(path, now, now);
    }
  } catch {
    // gone: release() is on its way, or an operator removed it
  }
}

function ownsLock(path: string): boolean {
  const [pid, owner] = readFileSync(path, 'utf8').split('\n');
  return Number.parseInt(pid, 10) === process.pid && (!owner || owner === hostname());
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // kill(pid, 0) also succeeds for a process that has exited and is not yet reaped (a zombie: a server SIGKILLed
  // under a supervisor or an init that waits for its children lazily) and for a thread of another process whose id
  // the pid now is: neither holds the directory. Refusing them, a replica restarted at once after a SIGKILL stopped
  // with "DATA_DIR is in use" for as long as nobody reaped the old one. Without /proc (not Linux), the signal decides.
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return true;
  }
  const state = /^State:\s*(\S)/m.exec(status)?.[1];
  const tgid = /^Tgid:\s*(\d+)/m.exec(status)?.[1];
  return state !== 'Z' && state !== 'X' && (tgid === undefined || Number(tgid) === pid);
}

function releaseLock(lock: HeldLock): void {
  clearInterval(lock.renewal);
  try {
    if (ownsLock(lock.path)) unlinkSync(lock.path);
  } catch {
    // already gone
  }
}

/**
 * Start parameters for durable commits (PGlite's defaults minus `-F` are added in the worker). WAL flushes call
 * fsync(2) (`wal_sync_method=fsync`; fdatasync is a no-op in the Emscripten runtime, and the worker gives NODEFS a
 * real fsync). `shared_buffers` is kept small: PGlite's WebAssembly memory is part of our resident memory and never
 * shrinks, and the buffer pool is most of what fills it. 4 MB (512 pages) against 8 MB: 4 MiB less resident, idle and
 * under load, for about 5 % more CPU a hook, measured for the whole process (README "Memory"). It changes no commit: the
 * WAL is flushed and fsynced at each commit whatever the pool's size.
 *
 * PostgreSQL sizes its shared lock, predicate-lock and process tables for every backend it could have
 * (`max_connections`, `autovacuum_worker_slots`, `max_wal_senders`: 100 + 16 + 10 in initdb's configuration) and
 * writes every entry of them at start, so they are resident in the WebAssembly memory for good. PGlite runs one
 * backend in single-user mode: no client connections, no autovacuum, no WAL senders. Sized for a handful, the
 * memory is 4 MiB less resident, idle and under load (README "Memory"); a transaction's locks still have
 * `max_locks_per_transaction` (64) times the slots, far more than a migration or a batch takes.
 *
 * `wal_init_zero=off`: PostgreSQL otherwise writes each new 16 MB WAL segment full of zeros before using it, in writes
 * of 128 × 8 KB, and Emscripten's pwritev copies each into a new 1 MiB JavaScript buffer, garbage the worker keeps
 * until its next collection: 16 MiB more resident for a moment every 16 MB of WAL (every few thousand order-signs), the
 * transient at the bench's memory peaks (README "Memory", session 54), and 16 MB written and fsynced while statements
 * wait. Off, the segment is extended by writing its last byte. Commits are as durable: each WAL flush is still
 * fsync(2), which writes the file's block allocation with its data. What changes is where a full disk is met: at a WAL
 * write into the segment instead of at its creation, both inside PostgreSQL's WAL flush (a PANIC either way).
 */
const EXTRA_PARAMS = ['-c', 'wal_sync_method=fsync', '-c', 'shared_buffers=4MB', '-c', 'max_connections=4', '-c', 'autovacuum_worker_slots=1', '-c', 'max_wal_senders=0', '-c', 'wal_init_zero=off'];

export interface PgliteDriver extends SqlDriver {
  /** fsync(2) calls made by PostgreSQL so far: lets start-up verify that commits really reach the disk. */
  readonly fsyncCount: number;
}

export interface PgliteOptions {
  /**
   * An initialised, cleanly closed PGlite data directory (pglite-template.ts). A new DATA_DIR starts as a copy of it
   * instead of running initdb (seconds of WebAssembly), so the service is ready in well under a second.
   */
  template?: string;
  /** How often this process renews its lock's lease (default every 5 s, well inside the 30 s lease); tests shorten it. */
  lockRenewMs?: number;
  /**
   * How long the worker may go without answering while statements wait on it before it counts as jammed
   * (STATEMENT_DEADLINE_MS); tests shorten it.
   */
  statementDeadlineMs?: number;
  /** Told when a jammed worker is replaced (or its replacement fails to open): serve.ts logs it. */
  onRestart?: (event: { reopened: boolean; error?: string }) => void;
}

/**
 * How long PGlite's worker may go without answering any statement while some wait on it. A worker that stops
 * answering (the review of s48: on a full DATA_DIR it spun in WebAssembly and never replied) jammed every storage call
 * forever: readiness, review reads and PAS submits hung, and so did the SIGTERM drain. Past this deadline every
 * waiting call is answered StorageUnavailableError (a 503 to resend: a resent request finds what was stored, if its
 * commit was), and the worker is replaced. Far above any statement's time, also under load (a migration's steps, a
 * queue of statements: each reply counts as progress).
 */
export const STATEMENT_DEADLINE_MS = 30_000;
/** How often a replaced worker's successor tries to open DATA_DIR again while it cannot (a disk still full). */
const REOPEN_EVERY_MS = 5_000;

/** PostgreSQL's error, rebuilt on this side of the thread boundary with its SQLSTATE. */
class PgliteError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'PgliteError';
  }
}

/**
 * The worker's young generation: what it allocates lives for one statement (a message in, PostgreSQL's reply out), so
 * a small nursery is collected as cheaply as V8's default 48 MB one, which the worker otherwise grows into under load
 * and keeps (README "Memory"; design.md §9 budgets 200 MiB).
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 4 };
/**
 * The worker's semi-space while `--max-semi-space-size` is set for the process (`npm start` sets 4 for the main
 * thread): V8 lets that flag override a worker's `resourceLimits`, so the worker's new space grew to 8 MB under load
 * as the main thread's does.
 */
const WORKER_SEMI_SPACE_MB = 1;

/** The process's `--max-semi-space-size` (node's flags or NODE_OPTIONS), or undefined when it is not set. */
function processSemiSpaceFlag(): string | undefined {
  const words = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  let value: string | undefined;
  for (let i = 0; i < words.length; i++) {
    const m = /^--max[-_]semi[-_]space[-_]size(?:=(.*))?$/.exec(words[i]);
    if (m) value = m[1] ?? words[i + 1];
  }
  return value;
}

/**
 * Starts the worker thread (pglite-worker.ts). Run from source (tests, `tsx`), the worker first registers tsx's
 * loader so it can import the TypeScript file; run from dist/ it is plain JavaScript. When the process sets
 * `--max-semi-space-size`, the flag is WORKER_SEMI_SPACE_MB while the worker's heap is made (V8 reads it when it
 * configures a new isolate's heap; the main thread's was configured at start) and the process's value again once
 * the worker runs.
 */
function startWorker(data: PgliteWorkerData): Worker {
  const fromSource = import.meta.url.endsWith('.ts');
  const url = new URL(fromSource ? './pglite-worker.ts' : './pglite-worker.js', import.meta.url);
  const semiSpace = processSemiSpaceFlag();
  if (semiSpace !== undefined) setFlagsFromString(`--max-semi-space-size=${WORKER_SEMI_SPACE_MB}`);
  let worker: Worker;
  try {
    if (!fromSource) worker = new Worker(url, { workerData: data, resourceLimits: WORKER_LIMITS });
    else {
      const boot = `import('tsx/esm/api').then((m) => m.register()).then(() => import(${JSON.stringify(url.href)}))`;
      worker = new Worker(boot, { eval: true, workerData: data, resourceLimits: WORKER_LIMITS });
    }
  } catch (err) {
    if (semiSpace !== undefined) setFlagsFromString(`--max-semi-space-size=${semiSpace}`);
    throw err;
  }
  if (semiSpace !== undefined) {
    // 'exit' too: a worker that fails before it runs JavaScript is never online.
    const restore = () => {
      worker.off('online', restore).off('exit', restore);
      setFlagsFromString(`--max-semi-space-size=${semiSpace}`);
    };
    worker.on('online', restore).on('exit', restore);
  }
  return worker;
}

/**
 * Opens (creating on first use) the embedded PostgreSQL in `DATA_DIR/pglite`, in a worker thread so that its
 * statements never run on the event loop that serves requests.
 */
export async function openPglite(dataDir: string, opts: PgliteOptions = {}): Promise<PgliteDriver> {
  const dir = resolve(dataDir);
  if (openDirs.has(dir)) throw new StorageError(`DATA_DIR ${dir} is already open in this process`);
  ensureDataDir(dir);
  const lock = takeLock(dir, opts.lockRenewMs);
  openDirs.add(dir);
  const release = () => {
    openDirs.delete(dir);
    releaseLock(lock);
  };
  try {
    // Started before any await: the worker copies the template (if any) and compiles PGlite on its own thread while
    // this one goes on (serve.ts loads the policies meanwhile).
    const worker = startWorker({ dir, extraParams: EXTRA_PARAMS, template: opts.template });
    const fsyncs = await workerReady(worker);
    // A successor opens the same directory (this process still holds its lock); the template only seeds a new one.
    const reopen = async () => {
      const next = startWorker({ dir, extraParams: EXTRA_PARAMS });
      try {
        return { worker: next, fsyncs: await workerReady(next) };
      } catch (err) {
        await next.terminate().catch(() => undefined);
        throw err;
      }
    };
    return workerDriver(worker, fsyncs, release, { reopen, deadlineMs: opts.statementDeadlineMs ?? STATEMENT_DEADLINE_MS, onRestart: opts.onRestart });
  } catch (err) {
    release();
    throw err;
  }
}

/** The worker's first message: ready (with its fsync count), or why it could not open. */
function workerReady(worker: Worker): Promise<number> {
  return new Promise<number>((res, rej) => {
    const onError = (err: Error) => rej(err);
    const onExit = () => rej(new StorageError('embedded storage stopped while it opened'));
    worker.once('error', onError).once('exit', onExit);
    worker.once('message', (m: { ready: boolean; error?: { message: string }; fsyncs: number }) => {
      worker.off('error', onError).off('exit', onExit);
      if (m.ready) res(m.fsyncs);
      else rej(new StorageError(`embedded storage failed to open: ${m.error?.message ?? 'unknown error'}`));
    });
  });
}

interface Replacement {
  /** Starts a successor worker on the same DATA_DIR and waits until it is open. */
  reopen: () => Promise<{ worker: Worker; fsyncs: number }>;
  deadlineMs: number;
  onRestart?: PgliteOptions['onRestart'];
}

function workerDriver(first: Worker, initialFsyncs: number, onClose: () => void, replacement: Replacement): PgliteDriver {
  let worker = first;
  let fsyncs = initialFsyncs;
  let nextId = 1;
  let closed = false;
  let closing = false;
  let failure: Error | undefined;
  /** Set while a jammed worker is being replaced: calls are answered at once, 503, instead of queued on it. */
  let replacing: Error | undefined;
  /** Which worker a transaction id belongs to: a successor knows nothing of its predecessor's transactions. */
  let generation = 0;
  /** When the worker last answered, or was first given work after being idle. */
  let progressAt = Date.now();
  const pending = new Map<number, { resolve: (r: WorkerReply) => void; reject: (e: Error) => void }>();

  const attach = (w: Worker) => {
    // The worker keeps the process alive only while a statement is in flight, as the in-thread PGlite did.
    w.unref();
    w.on('message', (r: WorkerReply) => {
      if (w !== worker) return;
      progressAt = Date.now();
      fsyncs = r.fsyncs;
      const p = pending.get(r.id);
      if (!p) return;
      pending.delete(r.id);
      if (pending.size === 0) w.unref();
      if (r.error) {
        const err = new PgliteError(r.error.message, r.error.code);
        // DATA_DIR's disk full or failing: nothing of the statement's transaction was stored, and the same request
        // succeeds once the operator frees space; a 503 to resend, kept and retried by the write-behind queue.
        p.reject(isResourceShortage(err.code) ? new StorageUnavailableError(err) : err);
      } else p.resolve(r);
    });
    w.on('error', (err) => {
      if (w === worker && !replacing) fail(new StorageError(`embedded storage stopped: ${err.message}`));
    });
    w.on('exit', () => {
      if (w === worker && !closing && !replacing) fail(new StorageError('embedded storage stopped'));
    });
  };
  attach(first);

  const rejectPending = (err: Error) => {
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  const fail = (err: Error) => {
    failure = err;
    rejectPending(err);
  };

  /**
   * The jammed worker is terminated (as a crash: PostgreSQL recovers from its WAL when the successor opens, so every
   * commit it acknowledged is kept) and a successor opened on the same directory, again every REOPEN_EVERY_MS while
   * it cannot be (a disk still full). Meanwhile every call is answered 503 at once, so /readyz says not ready.
   */
  const replace = async (cause: Error) => {
    replacing = cause;
    generation++;
    rejectPending(cause);
    const jammed = worker;
    await jammed.terminate().catch(() => undefined);
    while (!closing) {
      try {
        const next = await replacement.reopen();
        if (closing) {
          await next.worker.terminate().catch(() => undefined);
          return;
        }
        worker = next.worker;
        fsyncs = Math.max(fsyncs, next.fsyncs);
        attach(worker);
        progressAt = Date.now();
        replacing = undefined;
        replacement.onRestart?.({ reopened: true });
        return;
      } catch (err) {
        replacement.onRestart?.({ reopened: false, error: (err as Error).message });
        await new Promise((r) => setTimeout(r, Math.min(REOPEN_EVERY_MS, replacement.deadlineMs)).unref());
      }
    }
  };
  const watchdog = setInterval(() => {
    if (replacing || closing || failure || pending.size === 0) return;
    if (Date.now() - progressAt < replacement.deadlineMs) return;
    void replace(new StorageUnavailableError(new Error(`embedded storage did not answer for ${Math.round(replacement.deadlineMs / 1000)} s: restarting it`), { outcomeUnknown: true }));
  }, Math.max(50, Math.floor(replacement.deadlineMs / 4)));
  watchdog.unref();

  const send = (req: Omit<WorkerRequest, 'id'>, gen = generation): Promise<WorkerReply> => {
    if (failure) return Promise.reject(failure);
    if (replacing) return Promise.reject(replacing);
    // A transaction of a replaced worker is gone with it: rolled back, nothing of it stored.
    if (gen !== generation) return Promise.reject(new StorageUnavailableError(new Error('embedded storage restarted during this transaction; nothing of it was stored')));
    const id = nextId++;
    return new Promise((resolve, reject) => {
      if (pending.size === 0) progressAt = Date.now();
      pending.set(id, { resolve, reject });
      if (pending.size === 1) worker.ref();
      // Not `{ ...req, id }`: see factEnvironment (evaluate-policy.ts); one message per statement.
      worker.postMessage(Object.assign({}, req, { id }));
    });
  };
  const session = (tx?: number, gen?: number): SqlSession => ({
    async query<T>(sql: string, params: unknown[] = []) {
      return (await send({ op: 'query', sql, params, tx }, gen)).rows as T[];
    },
    async exec(sql: string) {
      await send({ op: 'exec', sql, tx }, gen);
    },
  });

  return {
    kind: 'pglite',
    get fsyncCount() {
      return fsyncs;
    },
    ...session(),
    async batch(steps) {
      if (steps.length === 0) return [];
      return (await send({ op: 'batch', steps })).results ?? [];
    },
    async transaction(fn) {
      const gen = generation;
      const { tx } = await send({ op: 'begin' }, gen);
      let result;
      try {
        result = await fn(session(tx, gen));
      } catch (err) {
        await send({ op: 'rollback', tx }, gen).catch(() => undefined);
        throw err;
      }
      await send({ op: 'commit', tx }, gen);
      return result;
    },
    async close() {
      if (closed) return;
      closing = true;
      clearInterval(watchdog);
      try {
        // A jammed worker never answers `close`: it is terminated after the deadline (its commits are in its WAL).
        if (!replacing) {
          let timer: NodeJS.Timeout | undefined;
          const late = new Promise((r) => (timer = setTimeout(r, replacement.deadlineMs)));
          await Promise.race([send({ op: 'close' }), late]).finally(() => clearTimeout(timer));
        }
      } finally {
        closed = true;
        await worker.terminate().catch(() => undefined);
        onClose();
      }
    },
  };
}
