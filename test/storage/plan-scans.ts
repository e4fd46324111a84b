/**
 * Reading the plans the database keeps for a statement, for the tests that pin "every row is looked up in an index"
 * (write-behind-plans, reader-plans).
 */
import type { SqlDriver, SqlSession } from '../../src/storage/sql-driver.js';

/** One node of `EXPLAIN (FORMAT JSON)`. */
export interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  Plans?: PlanNode[];
}

/** Every relation a plan reads with a sequential scan. */
export function scannedTables(node: PlanNode): string[] {
  const own = node['Node Type'] === 'Seq Scan' && node['Relation Name'] ? [node['Relation Name']] : [];
  return [...own, ...(node.Plans ?? []).flatMap(scannedTables)];
}

const literal = (v: unknown): string => (v === null || v === undefined ? 'NULL' : `'${String(v).replace(/'/g, "''")}'`);

/**
 * The tables the generic plan of `sql` (the plan a prepared statement keeps, made without its parameters' values)
 * scans when the planner is told to avoid sequential scans: a table it scans all the same has no index the statement
 * can use, whatever the table's size or statistics. PREPARE and EXPLAIN EXECUTE rather than EXPLAIN (GENERIC_PLAN),
 * which PostgreSQL 15 lacks.
 */
export async function tablesScannedWithoutChoice(driver: SqlDriver, sql: string, params: unknown[]): Promise<string[]> {
  return driver.transaction(async (tx: SqlSession) => {
    await tx.exec('SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off');
    await tx.exec(`PREPARE plan_probe AS ${sql}`);
    try {
      const [row] = await tx.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] | string }>(
        `EXPLAIN (FORMAT JSON) EXECUTE plan_probe${params.length ? `(${params.map(literal).join(', ')})` : ''}`,
      );
      const plan = row['QUERY PLAN'];
      return scannedTables((typeof plan === 'string' ? (JSON.parse(plan) as [{ Plan: PlanNode }]) : plan)[0].Plan);
    } finally {
      await tx.exec('DEALLOCATE plan_probe');
    }
  });
}

/**
 * Records every statement sent through `driver` (its own queries and those of its transactions) while `recording()`
 * is true, keyed by text with the last parameters sent.
 */
export function recordStatements(driver: SqlDriver, recording: () => boolean): Map<string, unknown[]> {
  const sent = new Map<string, unknown[]>();
  const note = (sql: string, params: unknown[] = []) => {
    if (recording()) sent.set(sql, params);
  };
  const query = driver.query.bind(driver);
  const transaction = driver.transaction.bind(driver);
  const batch = driver.batch.bind(driver);
  driver.query = <T>(sql: string, params: unknown[] = []) => (note(sql, params), query<T>(sql, params));
  driver.batch = (steps) => {
    for (const s of steps) note(s.sql, s.params);
    return batch(steps);
  };
  driver.transaction = <T>(fn: (tx: SqlSession) => Promise<T>) =>
    transaction((tx) =>
      fn({
        query: <R>(sql: string, params: unknown[] = []) => (note(sql, params), tx.query<R>(sql, params)),
        exec: (sql: string) => tx.exec(sql),
      }),
    );
  return sent;
}
