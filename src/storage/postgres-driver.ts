import type { Pool, PoolClient } from 'pg';
import type { Logger } from '../logger.js';
import type { SqlDriver, SqlSession } from './sql-driver.js';

function session(c: Pool | PoolClient): SqlSession {
  return {
    async query<T>(sql: string, params: unknown[] = []) {
      return (await c.query(sql, params)).rows as T[];
    },
    async exec(sql: string) {
      await c.query(sql);
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
  return {
    kind: 'postgres',
    ...session(pool),
    async transaction(fn) {
      const client = await pool.connect();
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
        throw err;
      } finally {
        // A connection that cannot even roll back is discarded rather than returned to the pool.
        client.release(broken);
      }
    },
    async close() {
      await pool.end();
    },
  };
}
