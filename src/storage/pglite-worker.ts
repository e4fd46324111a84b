/**
 * The embedded PostgreSQL (PGlite) in a worker thread. PGlite is PostgreSQL compiled to WebAssembly: each statement
 * runs synchronously on the thread that owns it, so on the main thread every commit (and its fsync) stalls every
 * request in flight. Here it runs on its own thread; the main thread sends statements and awaits their rows
 * (pglite-driver.ts). Durability is unchanged: a reply is sent only after PGlite has committed, which includes the
 * WAL fsync(2) this file makes real.
 *
 * Statements outside a transaction run as named prepared statements, parsed and planned once per text (PGlite's own
 * `query` parses, describes and plans every statement anew: six calls into PostgreSQL per statement), and a `batch`
 * runs several statements in one call into PostgreSQL: in the extended protocol the statements before one Sync are one
 * implicit transaction, committed (with its WAL fsync) at the Sync, or rolled back whole at the first error.
 *
 * Messages in: `{ id, op: 'query' | 'batch' | 'exec' | 'begin' | 'commit' | 'rollback' | 'close', sql?, params?, steps?, tx? }`.
 * Messages out: `{ id, rows?, results?, error?, fsyncs }` and, once, `{ ready: true, fsyncs }` or `{ ready: false, error }`.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import type { PGlite, PGliteOptions, Transaction } from '@electric-sql/pglite';
import type * as PgliteNs from '@electric-sql/pglite';
import { copyTree } from './copy-tree.js';

/** What the main thread passes in `workerData`. */
export interface PgliteWorkerData {
  /** The resolved DATA_DIR; PGlite's files live in `<dir>/pglite`. */
  dir: string;
  /** Extra PostgreSQL start parameters (after PGlite's defaults minus `-F`). */
  extraParams: string[];
  /** An initialised data directory that a new `<dir>/pglite` starts as a copy of (pglite-template.ts). */
  template?: string;
}

/** A request to the worker. */
export interface WorkerRequest {
  id: number;
  op: 'query' | 'batch' | 'exec' | 'begin' | 'commit' | 'rollback' | 'close';
  sql?: string;
  params?: unknown[];
  /** For `batch`: the statements, run in order in one transaction. */
  steps?: BatchStep[];
  /** Transaction id (from the reply to `begin`) for statements inside a transaction. */
  tx?: number;
}

/** A reply; `error` carries PostgreSQL's message and SQLSTATE code. */
export interface WorkerReply {
  id: number;
  rows?: unknown[];
  /** For `batch`: each statement's rows, in order. */
  results?: unknown[][];
  tx?: number;
  error?: { message: string; code?: string };
  fsyncs: number;
}

/** One statement of a batch. */
export interface BatchStep {
  sql: string;
  params?: unknown[];
}

interface NodeStream {
  nfd?: number;
}
interface StreamOps {
  fsync?: (stream: NodeStream) => number;
}

/** The part of Emscripten's FS a lazy image needs (the module's `FS`, in a preRun). */
interface EmscriptenFs {
  lookupPath(path: string): { node: { contents?: Uint8Array } };
}
type CreateDataFile = (parent: unknown, name: string | null, data: Uint8Array, canRead: boolean, canWrite: boolean, canOwn: boolean) => unknown;

/**
 * PGlite's filesystem image (`pglite.data`, 6.2 MB: PostgreSQL's modules, timezones, ICU and text-search data, its
 * share/ files) with each file read from disk when PostgreSQL first reads it, instead of held whole in memory.
 *
 * Emscripten's loader makes every file of the image a view into the one buffer the image was read into, so PGlite
 * keeps all of it for the life of the process although PostgreSQL opens a few of its files (README "Memory"). Here
 * the loader gets an all-zero buffer of the image's size instead (never written, so never resident, and dropped once
 * the files no longer view it), and each file it creates gets its bytes from `pglite.data` on first access. Every file
 * is still there with its contents: nothing fails later for a file nobody read at start.
 */
function lazyFsImage(path: string) {
  const size = statSync(path).size;
  let files = 0;
  let wrapped = 0;
  const readRange = (start: number, length: number) => {
    const bytes = new Uint8Array(length);
    const fd = openSync(path, 'r');
    try {
      for (let at = 0; at < length; ) {
        const n = readSync(fd, bytes, at, length - at, start + at);
        if (n === 0) throw new Error(`${path} ends before byte ${start + length}`);
        at += n;
      }
    } finally {
      closeSync(fd);
    }
    return bytes;
  };
  return {
    /** What PGlite's `fsBundle` option reads (it calls only `arrayBuffer()`, and checks the size). */
    bundle: { arrayBuffer: async () => new ArrayBuffer(size) },
    /**
     * In a preRun (before the image's loader, which PGlite's module queues after the options' preRuns): each file the
     * loader creates from the image reads its bytes from disk on first access.
     */
    install(mod: { FS: EmscriptenFs; FS_createDataFile?: CreateDataFile }) {
      const create = mod.FS_createDataFile;
      if (!create) return;
      mod.FS_createDataFile = (parent, name, data, canRead, canWrite, canOwn) => {
        const result = create(parent, name, data, canRead, canWrite, canOwn);
        if (data.byteLength === 0) return result;
        files++;
        // The loader names each file by its absolute path, as `parent` (Emscripten joins `parent` and `name`).
        const path = typeof parent === 'string' && !name ? parent : parent === null && name ? name : undefined;
        if (path === undefined) return result; // left as it is, and refused by the check after start
        const node = mod.FS.lookupPath(path).node;
        const start = data.byteOffset;
        const length = data.byteLength;
        let contents: Uint8Array | undefined;
        // MEMFS reads `node.contents` (with `usedBytes`, already the file's length) and replaces it on a write.
        Object.defineProperty(node, 'contents', {
          configurable: true,
          enumerable: true,
          get: () => (contents ??= readRange(start, length)),
          set: (v: Uint8Array) => (contents = v),
        });
        wrapped++;
        return result;
      };
    },
    /** Files of the image with contents, and those of them read from disk on first access. */
    counts: () => ({ files, wrapped }),
  };
}

interface OpenTx {
  tx: Transaction;
  finish: (commit: boolean) => void;
  done: Promise<void>;
}

const port = parentPort!;
const data = workerData as PgliteWorkerData;
let fsyncs = 0;

/**
 * PostgreSQL's WebAssembly runs on V8's baseline compiler (Liftoff) only. Measured with this build on the 2-core
 * machine: optimising its hot functions (TurboFan) cost about 40-70 MiB more resident memory and seconds of CPU on
 * the cores the requests need, for no faster steady-state statements (README "Memory"). Process-wide, but PGlite is
 * the only WebAssembly this service runs. Set before the module is compiled.
 */
setFlagsFromString('--liftoff-only');

async function open(): Promise<PGlite> {
  const pgdir = join(data.dir, 'pglite');
  // PGlite's module (9 MB of WebAssembly) compiles on V8's background threads while this thread copies the template.
  const pgliteDist = dirname(createRequire(import.meta.url).resolve('@electric-sql/pglite'));
  const compiling = WebAssembly.compile(readFileSync(join(pgliteDist, 'pglite.wasm')));
  compiling.catch(() => undefined); // awaited below; a failure is reported there
  const imported = import('@electric-sql/pglite');
  if (data.template && !existsSync(join(pgdir, 'PG_VERSION')) && existsSync(join(data.template, 'PG_VERSION'))) {
    // Copied beside, then renamed into place: a copy cut short (a crash, a kill) is never taken for a data directory.
    const staging = `${pgdir}.copying`;
    rmSync(staging, { recursive: true, force: true });
    rmSync(pgdir, { recursive: true, force: true });
    copyTree(data.template, staging);
    renameSync(staging, pgdir);
  }
  const lazy = existsSync(join(pgdir, 'PG_VERSION'));
  const image = lazyFsImage(join(pgliteDist, 'pglite.data'));
  const { PGlite: PGliteClass } = await imported;
  const { NodeFS } = await import('@electric-sql/pglite/nodefs');
  let patched = false;

  /**
   * PGlite's Node filesystem has no fsync (and its defaults run PostgreSQL with `-F`), so a commit would only reach
   * the page cache. NODEFS gets a real fsync(2) here; `wal_sync_method=fsync` makes WAL flushes call it.
   */
  class DurableNodeFS extends NodeFS {
    override async init(pg: PGlite, opts: Parameters<InstanceType<typeof NodeFS>['init']>[1]) {
      const result = await super.init(pg, opts);
      const preRun = result.emscriptenOpts.preRun ?? [];
      preRun.push((mod) => {
        if (lazy) image.install(mod as unknown as Parameters<typeof image.install>[0]);
        const ops = (mod.NODEFS as unknown as { stream_ops?: StreamOps }).stream_ops;
        if (!ops) return;
        ops.fsync = (stream) => {
          if (stream.nfd !== undefined) {
            try {
              fsyncSync(stream.nfd);
            } catch (err) {
              // Directories cannot always be fsynced through a read-only descriptor; files must be.
              const code = (err as NodeJS.ErrnoException).code;
              if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EBADF') throw err;
            }
            fsyncs++;
          }
          return 0;
        };
        patched = true;
      });
      result.emscriptenOpts.preRun = preRun;
      return result;
    }
  }

  const startParams = [...PGliteClass.defaultStartParams.filter((p) => p !== '-F'), ...data.extraParams];
  const options: PGliteOptions = {
    fs: new DurableNodeFS(pgdir),
    relaxedDurability: false,
    startParams,
    pgliteWasmModule: await compiling,
    // Only over an existing data directory: initdb runs in a second PGlite instance of its own, which reads the image
    // the ordinary way (`fsBundle` is passed on to it, the filesystem hooks are not).
    fsBundle: lazy ? (image.bundle as unknown as Blob) : undefined,
  };
  const db = await PGliteClass.create(options);
  if (!patched) {
    await db.close();
    throw new Error('this PGlite build exposes no Node filesystem hooks: cannot make commits durable');
  }
  const { files, wrapped } = image.counts();
  if (lazy && (files === 0 || wrapped !== files)) {
    // The image was all zeros: a file left a view into it would read as zeros. Never run PostgreSQL on that.
    await db.close();
    throw new Error(`this PGlite build loads its filesystem image another way (${wrapped} of ${files} files read lazily)`);
  }
  return db;
}

type PgliteModule = typeof PgliteNs;
type Serialize = PgliteModule['protocol']['serialize'];

/** Prepared statements kept at most (least recently used closed first); the service's texts are far fewer. */
const MAX_PREPARED = 200;

/**
 * Named prepared statements over PGlite's wire protocol: each SQL text is parsed (and its parameter types described)
 * once; an execution is Bind, Describe, Execute, and one Sync closes a whole batch.
 */
class PreparedStatements {
  private readonly byText = new Map<string, { name: string; types: number[] }>();
  private next = 1;

  constructor(
    private readonly db: PGlite,
    private readonly ser: Serialize,
    private readonly parse: PgliteModule['parse'],
  ) {}

  /** Runs the steps in one implicit transaction, in one call into PostgreSQL; returns each step's rows. */
  run(steps: BatchStep[]): Promise<unknown[][]> {
    const db = this.db;
    // Both of PGlite's locks, as its own query() takes them: no explicit transaction is open on the session meanwhile.
    return db._runExclusiveTransaction(() =>
      db._runExclusiveQuery(async () => {
        const parts: Uint8Array[] = [];
        for (const step of steps) {
          const st = await this.statement(step.sql);
          // Parameters as PGlite's query() sends them: its serializer for the parameter's type, else text.
          const values = (step.params ?? []).map((p, i) => {
            if (p === null || p === undefined) return null;
            const serialize = db.serializers[st.types[i]];
            return serialize ? (serialize(p) as string) : String(p);
          });
          parts.push(this.ser.bind({ statement: st.name, values }), this.ser.describe({ type: 'P' }), this.ser.execute({}));
        }
        parts.push(this.ser.sync());
        const messages = await db.execProtocolStream(concat(parts), { syncToFs: false });
        await db.syncToFs();
        const results = this.parse.parseResults(messages, db.parsers);
        return steps.map((_, i) => results[i]?.rows ?? []);
      }),
    );
  }

  private async statement(sql: string): Promise<{ name: string; types: number[] }> {
    const known = this.byText.get(sql);
    if (known) {
      this.byText.delete(sql);
      this.byText.set(sql, known);
      return known;
    }
    const name = `pp_${this.next++}`;
    const described = await this.db.execProtocolStream(
      concat([this.ser.parse({ name, text: sql }), this.ser.describe({ type: 'S', name }), this.ser.sync()]),
      { syncToFs: false },
    );
    const st = { name, types: this.parse.parseDescribeStatementResults(described) };
    this.byText.set(sql, st);
    if (this.byText.size > MAX_PREPARED) {
      const [oldest, old] = this.byText.entries().next().value!;
      this.byText.delete(oldest);
      await this.db.execProtocolStream(concat([this.ser.close({ type: 'S', name: old.name }), this.ser.sync()]), { syncToFs: false });
    }
    return st;
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function errorOf(err: unknown): { message: string; code?: string } {
  const e = err as { message?: string; code?: string };
  return { message: e.message ?? String(err), code: typeof e.code === 'string' ? e.code : undefined };
}

function serve(db: PGlite, { protocol, parse }: PgliteModule): void {
  const prepared = new PreparedStatements(db, protocol.serialize, parse);
  const txs = new Map<number, OpenTx>();
  let nextTx = 1;
  // Not `{ ...r, fsyncs }`: a spread with a property after it gives each reply a hidden class of its own in V8.
  const reply = (r: Omit<WorkerReply, 'fsyncs'>) => port.postMessage(Object.assign({}, r, { fsyncs }));

  port.on('message', (m: WorkerRequest) => {
    void (async () => {
      try {
        switch (m.op) {
          case 'query': {
            if (m.tx === undefined) {
              const [rows] = await prepared.run([{ sql: m.sql!, params: m.params }]);
              reply({ id: m.id, rows });
              return;
            }
            const tx = txs.get(m.tx)?.tx;
            if (!tx) throw new Error(`no open transaction ${m.tx}`);
            const res = await tx.query(m.sql!, m.params ?? []);
            reply({ id: m.id, rows: res.rows });
            return;
          }
          case 'batch': {
            reply({ id: m.id, results: await prepared.run(m.steps ?? []) });
            return;
          }
          case 'exec': {
            const target = m.tx !== undefined ? txs.get(m.tx)?.tx : db;
            if (!target) throw new Error(`no open transaction ${m.tx}`);
            await target.exec(m.sql!);
            reply({ id: m.id, rows: [] });
            return;
          }
          case 'begin': {
            // PGlite's transaction() holds its lock until the callback settles, so statements outside this
            // transaction wait, as they would for a PostgreSQL connection's row locks.
            const id = nextTx++;
            let started!: () => void;
            const begun = new Promise<void>((r) => (started = r));
            const entry = {} as OpenTx;
            const decided = new Promise<boolean>((r) => (entry.finish = r));
            entry.done = db
              .transaction(async (tx) => {
                entry.tx = tx;
                txs.set(id, entry);
                started();
                if (!(await decided)) await tx.rollback();
              })
              .then(() => undefined);
            entry.done.catch(() => undefined); // reported to whoever awaits it ('commit'), never unhandled
            // A failure to begin is reported here; a failure at commit is reported by 'commit'.
            await Promise.race([begun, entry.done]);
            if (!txs.has(id)) throw new Error('transaction did not start');
            reply({ id: m.id, tx: id });
            return;
          }
          case 'commit':
          case 'rollback': {
            const open = txs.get(m.tx!);
            if (!open) throw new Error(`no open transaction ${m.tx}`);
            open.finish(m.op === 'commit');
            try {
              await open.done;
            } finally {
              txs.delete(m.tx!);
            }
            reply({ id: m.id, rows: [] });
            return;
          }
          case 'close': {
            await db.close();
            reply({ id: m.id, rows: [] });
            port.close();
            return;
          }
        }
      } catch (err) {
        reply({ id: m.id, error: errorOf(err) });
      }
    })();
  });
}

open().then(
  async (db) => {
    serve(db, await import('@electric-sql/pglite'));
    port.postMessage({ ready: true, fsyncs });
  },
  (err: unknown) => port.postMessage({ ready: false, error: errorOf(err), fsyncs }),
);
