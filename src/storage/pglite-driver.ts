import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { PGlite, PGliteOptions, Transaction } from '@electric-sql/pglite';
import type { SqlDriver, SqlSession } from './sql-driver.js';
import { StorageError } from './storage.js';

/** Directories opened by this process: two PGlite instances on one directory would corrupt it. */
const openDirs = new Set<string>();

interface NodeStream {
  nfd?: number;
}
interface StreamOps {
  fsync?: (stream: NodeStream) => number;
}

/**
 * Takes `DATA_DIR/storage.lock` for this process. PGlite is one process per directory (it has no postmaster.pid);
 * a lock left by a process that no longer runs (crash, SIGKILL) is taken over.
 */
function takeLock(dir: string): string {
  const path = join(dir, 'storage.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, `${process.pid}\n`);
      fsyncSync(fd);
      closeSync(fd);
      return path;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new StorageError(
          `DATA_DIR ${dir} is in use by process ${pid}: embedded storage serves one process per directory (set DATABASE_URL to share a PostgreSQL server)`,
        );
      }
      unlinkSync(path);
    }
  }
  throw new StorageError(`could not lock DATA_DIR ${dir}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function releaseLock(path: string): void {
  try {
    if (Number.parseInt(readFileSync(path, 'utf8'), 10) === process.pid) unlinkSync(path);
  } catch {
    // already gone
  }
}

/**
 * Start parameters for durable commits. PGlite's defaults run PostgreSQL with `-F` (fsync off) and its Node
 * filesystem has no fsync, so a commit would only reach the page cache. We drop `-F`, make WAL flushes call
 * fsync(2) (`wal_sync_method=fsync`; fdatasync is a no-op in the Emscripten runtime) and give NODEFS a real fsync
 * below. `shared_buffers` is kept small: PGlite's WebAssembly heap is part of our resident memory.
 */
function startParams(defaults: readonly string[]): string[] {
  return [...defaults.filter((p) => p !== '-F'), '-c', 'wal_sync_method=fsync', '-c', 'shared_buffers=16MB'];
}

export interface PgliteDriver extends SqlDriver {
  /** fsync(2) calls made by PostgreSQL so far: lets start-up verify that commits really reach the disk. */
  readonly fsyncCount: number;
}

/** Opens (creating on first use) the embedded PostgreSQL in `DATA_DIR/pglite`. */
export async function openPglite(dataDir: string): Promise<PgliteDriver> {
  const dir = resolve(dataDir);
  if (openDirs.has(dir)) throw new StorageError(`DATA_DIR ${dir} is already open in this process`);
  mkdirSync(dir, { recursive: true });
  const lock = takeLock(dir);
  openDirs.add(dir);
  try {
    // Loaded on demand so that a PostgreSQL deployment never pays for the WebAssembly module.
    const { PGlite: PGliteClass } = await import('@electric-sql/pglite');
    const { NodeFS } = await import('@electric-sql/pglite/nodefs');
    let fsyncs = 0;
    let patched = false;

    class DurableNodeFS extends NodeFS {
      override async init(pg: PGlite, opts: Parameters<InstanceType<typeof NodeFS>['init']>[1]) {
        const result = await super.init(pg, opts);
        const preRun = result.emscriptenOpts.preRun ?? [];
        preRun.push((mod) => {
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

    const options: PGliteOptions = { fs: new DurableNodeFS(join(dir, 'pglite')), relaxedDurability: false, startParams: startParams(PGliteClass.defaultStartParams) };
    const db = await PGliteClass.create(options);
    if (!patched) {
      await db.close();
      throw new StorageError('this PGlite build exposes no Node filesystem hooks: cannot make commits durable');
    }
    return pgliteDriver(db, () => fsyncs, () => {
      openDirs.delete(dir);
      releaseLock(lock);
    });
  } catch (err) {
    openDirs.delete(dir);
    releaseLock(lock);
    throw err;
  }
}

function session(db: PGlite | Transaction): SqlSession {
  return {
    async query<T>(sql: string, params: unknown[] = []) {
      return (await db.query<T>(sql, params)).rows;
    },
    async exec(sql: string) {
      await db.exec(sql);
    },
  };
}

function pgliteDriver(db: PGlite, fsyncCount: () => number, onClose: () => void): PgliteDriver {
  let closed = false;
  return {
    kind: 'pglite',
    get fsyncCount() {
      return fsyncCount();
    },
    ...session(db),
    transaction: (fn) => db.transaction((tx) => fn(session(tx))),
    async close() {
      if (closed) return;
      closed = true;
      try {
        await db.close();
      } finally {
        onClose();
      }
    },
  };
}
