/** What the SQL storage needs from a connection: the same calls on embedded PGlite and on a PostgreSQL pool. */
export interface SqlSession {
  /** One statement with `$n` parameters; returns the rows. */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface SqlDriver extends SqlSession {
  readonly kind: 'pglite' | 'postgres';
  /**
   * Runs the statements in order in one transaction, all or none, and returns each one's rows. Unlike transaction(),
   * no statement depends on an earlier one's result, so the embedded database runs them all in one call.
   */
  batch(steps: { sql: string; params?: unknown[] }[]): Promise<unknown[][]>;
  /** Runs `fn` in one transaction on one connection; commits when it resolves, rolls back when it throws. */
  transaction<T>(fn: (tx: SqlSession) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
