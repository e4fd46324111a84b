import type { Pool, PoolClient } from 'pg';
import type { Logger } from '../logger.js';
import type { SqlDriver, SqlSession } from './sql-driver.js';
import { StorageUnavailableError } from './storage.js';

/** SQLSTATE classes and codes meaning "the server is not there right now", not "this statement is wrong". */
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', '57P01', '57P02', '57P03', '53300']);
const UNAVAILABLE_MESSAGE = /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection closed|the database system is (starting up|shutting down)/i;

/** Whether a pg error means the server is unreachable (class 08 connection exceptions, 57P0x shutdown/start-up). */
export function isUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || code.startsWith('08'))) return true;
  return err instanceof Error && UNAVAILABLE_MESSAGE.test(err.message);
}

const classify = (err: unknown): unknown => (isUnavailable(err) ? new StorageUnavailableError(err) : err);

function session(c: Pool | PoolClient): SqlSession {
  return {
    async query<T>(sql: string, params: unknown[] = []) {
      try {
        return (await c.query(sql, params)).rows as T[];
      } catch (err) {
        throw classify(err);
      }
    },
    async exec(sql: string) {
      try {
        await c.query(sql);
      } catch (err) {
        throw classify(err);
      }
    },
  };
}

/**
 * A PostgreSQL pool for `DATABASE_URL` (design.md §3). `synchronous_commit=on` is set per session so that a commit
 * returns only once its WAL is flushed, whatever the server default.
 */
export async function openPostgres(databaseUrl: string, opts: { logger?: Logger; max?: number; schema?: string } = {}): Promise<SqlDriver> {
  const { default: pg } = await import('pg');
  const searchPath = opts.schema ? ` -c search_path=${opts.schema}` : '';
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: opts.max ?? 10,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
    options: `-c synchronous_commit=on${searchPath}`,
    application_name: 'priorpath',
  });
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', (err) => opts.logger?.error({ err: { message: err.message } }, 'idle PostgreSQL connection failed'));
  const driver: SqlDriver = {
    kind: 'postgres',
    ...session(pool),
    async batch(steps) {
      if (steps.length === 0) return [];
      if (steps.length === 1) return [await session(pool).query(steps[0].sql, steps[0].params)];
      return driver.transaction(async (tx) => {
        const results: unknown[][] = [];
        for (const s of steps) results.push(await tx.query(s.sql, s.params));
        return results;
      });
    },
    async transaction(fn) {
      const client = await pool.connect().catch((err: unknown) => {
        throw classify(err);
      });
      let broken = false;
      try {
        await client.query('BEGIN');
        const result = await fn(session(client));
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        throw classify(err);
      } finally {
        // A connection that cannot even roll back is discarded rather than returned to the pool.
        client.release(broken);
      }
    },
    async close() {
      await pool.end();
    },
  };
  return driver;
}
