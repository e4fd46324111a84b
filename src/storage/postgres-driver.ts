import type { Pool, PoolClient, QueryConfig } from 'pg';
import type { Logger } from '../logger.js';
import type { SqlDriver, SqlSession } from './sql-driver.js';
import { isResourceShortage } from './resource-shortage.js';
import { StorageUnavailableError } from './storage.js';

/**
 * SQLSTATE classes and codes meaning "the server is not there right now", not "this statement is wrong" (class 53,
 * too many connections among them, is resource-shortage.ts's). 25006
 * (read_only_sql_transaction) is a server that became a standby (a failover demoted the primary this pool connected
 * to, or a hot standby behind the same address): no write can succeed there, and the connection is discarded so the
 * next one reaches the primary; a 503 to resend meanwhile, never a 500 (nothing in this service opens a read-only
 * transaction itself).
 */
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', '57P01', '57P02', '57P03', '25006']);
/**
 * SQLSTATE 57014 (query_canceled): the server gave up on the statement, at its `statement_timeout` or on an
 * administrator's `pg_cancel_backend`. Nothing of it was applied, and sent again later it may well succeed: a 503, as
 * for a server that is not there, never a 500.
 */
const CANCELED = '57014';
const UNAVAILABLE_MESSAGE = /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection closed|the database system is (starting up|shutting down)/i;
/** node-postgres's error when a statement got no answer within `query_timeout`. */
const NO_ANSWER = 'Query read timeout';

/**
 * How long one statement may go unanswered before the server counts as unreachable, as a connection attempt
 * (`connectionTimeoutMillis`). A server that vanishes without closing its connections (a network partition, a host
 * that lost power) sends no reset: without this bound a request on such a connection waits for the kernel to give
 * up, a quarter of an hour, instead of answering 503. No statement of a request takes this long on a reachable
 * server; the migrations, which may, run through `exec`, unbounded.
 */
export const STATEMENT_ANSWER_MS = 5000;

/**
 * How long after PriorPath gives up on a statement (the answer bound above) the server cancels it
 * (`statement_timeout`). A statement abandoned at the bound, typically one waiting on a row lock that another replica's
 * transaction holds, would otherwise go on holding its connection's server process and its own locks until it
 * finished, however long that took: nothing reaches the server when a client stops waiting. The margin keeps the
 * client's bound the one that answers (503, outcome unknown); the server then cancels what was left running. The
 * migrations turn it off for their own transaction (`migrate`), which may take longer.
 */
export const STATEMENT_CANCEL_MARGIN_MS = 1000;

/**
 * Whether a pg error means the server is unreachable (class 08 connection exceptions, 57P0x shutdown/start-up) or
 * cannot take writes for now (a full disk, an I/O error: resource-shortage.ts).
 */
export function isUnavailable(err: unknown): boolean {
  if (err instanceof StorageUnavailableError) return true;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || code === CANCELED || code.startsWith('08') || isResourceShortage(code))) return true;
  return err instanceof Error && UNAVAILABLE_MESSAGE.test(err.message);
}

/** Whether a statement went unanswered (the server may or may not have applied it). */
const unanswered = (err: unknown): boolean => err instanceof Error && err.message === NO_ANSWER;

const classify = (err: unknown): unknown => {
  if (err instanceof StorageUnavailableError) return err;
  if (unanswered(err)) return new StorageUnavailableError(err, { outcomeUnknown: true });
  return isUnavailable(err) ? new StorageUnavailableError(err) : err;
};

function session(c: Pool | PoolClient, answerMs: number): SqlSession {
  return {
    async query<T>(sql: string, params: unknown[] = []) {
      try {
        // node-postgres reads `query_timeout` per statement; its typings know it only as a pool-wide setting.
        const statement: QueryConfig & { query_timeout: number } = { text: sql, values: params, query_timeout: answerMs };
        return (await c.query(statement)).rows as T[];
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
export async function openPostgres(databaseUrl: string, opts: { logger?: Logger; max?: number; schema?: string; answerMs?: number } = {}): Promise<SqlDriver> {
  const answerMs = opts.answerMs ?? STATEMENT_ANSWER_MS;
  const { default: pg } = await import('pg');
  const searchPath = opts.schema ? ` -c search_path=${opts.schema}` : '';
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: opts.max ?? 10,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
    // A transaction left open by a replica that lost the server mid-way (a partition: no close reaches the server)
    // would keep its row locks, and every replica would fail on those orders, for as long as TCP takes to give up
    // (a quarter of an hour or more). The server ends a session idle inside a transaction for twice the bound in
    // which PriorPath itself gives up on a statement; none of its transactions waits between statements that long.
    // A statement the client abandoned at `answerMs` is cancelled by the server a moment later (STATEMENT_CANCEL_MARGIN_MS).
    options: `-c synchronous_commit=on -c statement_timeout=${answerMs + STATEMENT_CANCEL_MARGIN_MS} -c idle_in_transaction_session_timeout=${2 * answerMs}${searchPath}`,
    application_name: 'priorpath',
    // An idle pooled connection to a server that vanished is found out by TCP keepalive, not by the next request.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  });
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', (err) => opts.logger?.error({ err: { message: err.message } }, 'idle PostgreSQL connection failed'));
  const driver: SqlDriver = {
    kind: 'postgres',
    ...session(pool, answerMs),
    async batch(steps) {
      if (steps.length === 0) return [];
      if (steps.length === 1) return [await session(pool, answerMs).query(steps[0].sql, steps[0].params)];
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
      // A checked-out client whose connection fails (the server restarted, the session was terminated, the network
      // reset it) emits 'error' besides failing its statement; with no listener that event is an uncaught exception
      // and would end the process with every request it is answering. The statement's own error answers this request.
      const lost = () => {
        broken = true;
      };
      client.on('error', lost);
      const tx = session(client, answerMs);
      try {
        await tx.query('BEGIN');
        const result = await fn(tx);
        // Bounded like every statement: a COMMIT left unanswered is a 503 whose outcome is unknown, not a hang.
        await tx.query('COMMIT');
        return result;
      } catch (err) {
        const failed = classify(err);
        // A connection that left a statement unanswered is not asked to roll back (it would not answer that either):
        // it is discarded, and the server rolls back what it holds when the connection goes.
        if (failed instanceof StorageUnavailableError) broken = true;
        else
          await tx.query('ROLLBACK').catch(() => {
            broken = true;
          });
        throw failed;
      } finally {
        client.off('error', lost);
        // A connection that failed or cannot even roll back is discarded rather than returned to the pool.
        client.release(broken);
      }
    },
    async close() {
      await pool.end();
    },
  };
  return driver;
}
