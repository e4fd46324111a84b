import type { SqlDriver, SqlSession } from './sql-driver.js';
import { isResourceShortage } from './resource-shortage.js';
import { StorageUnavailableError } from './storage.js';

/** SQLSTATE 25006 read_only_sql_transaction: the server became a standby (postgres-driver.ts). */
const READ_ONLY = '25006';

/**
 * Whether an error is the database refusing a write while it still answers: a full or failing disk (class 53, 58030:
 * resource-shortage.ts) or a server that became a standby (25006). Not an unreachable server: `SELECT 1` fails for that
 * one already. The SQLSTATE is the one of the error the driver wrapped (pglite-driver.ts, postgres-driver.ts).
 */
export function refusesWrites(err: unknown): boolean {
  if (!(err instanceof StorageUnavailableError)) return false;
  const code = (err.cause as { code?: unknown } | undefined)?.code;
  return isResourceShortage(code) || code === READ_ONLY;
}

/**
 * The same driver, calling `onRefused` with every error that is the database refusing a write (refusesWrites), in a
 * statement, a batch or a transaction, and passing the error on unchanged. SqlStorage keeps the last one, so that
 * readiness (/readyz) can say that this replica cannot write while every read still succeeds.
 */
export function noticingWriteRefusals(driver: SqlDriver, onRefused: (err: StorageUnavailableError) => void): SqlDriver {
  const notice = (err: unknown): never => {
    if (refusesWrites(err)) onRefused(err as StorageUnavailableError);
    throw err;
  };
  // Everything else (kind, close, a driver's own counters such as PGlite's fsyncCount) is the driver's, through the
  // prototype; the four calls are own properties, which a test may still replace on the storage's driver.
  const watched = Object.create(driver) as SqlDriver;
  Object.assign(watched, {
    query: <T>(sql: string, params?: unknown[]) => driver.query<T>(sql, params).catch(notice),
    exec: (sql: string) => driver.exec(sql).catch(notice),
    batch: (steps: { sql: string; params?: unknown[] }[]) => driver.batch(steps).catch(notice),
    transaction: <T>(fn: (tx: SqlSession) => Promise<T>) => driver.transaction(fn).catch(notice),
  });
  return watched;
}
