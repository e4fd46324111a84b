import type { Logger } from '../logger.js';
import { migrate } from './migrations.js';
import { openPglite } from './pglite-driver.js';
import { openPostgres } from './postgres-driver.js';
import type { SqlDriver } from './sql-driver.js';
import { SqlStorage } from './sql-storage.js';
import type { ReadinessProbeOptions } from './sql-storage.js';
import { StorageError, StorageUnavailableError } from './storage.js';

export interface StorageConfig {
  /** PostgreSQL URL (`DATABASE_URL`); unset means embedded PGlite in `dataDir`. */
  databaseUrl?: string;
  /** Embedded storage directory (`DATA_DIR`); PGlite's files go in `<dataDir>/pglite`. */
  dataDir: string;
  /** PostgreSQL only: the schema to use instead of the connection's default (tests isolate themselves this way). */
  schema?: string;
  /** Embedded only: an initialised PGlite data directory a new `dataDir` starts as a copy of (pglite-template.ts). */
  pgliteTemplate?: string;
  logger?: Logger;
  /** How often readiness may write its probe row while writes are refused, and the clock it reads (SqlStorage). */
  readiness?: ReadinessProbeOptions;
  /** How long opening may retry a database that does not answer yet (OPEN_BUDGET_MS); tests shorten it. */
  openBudgetMs?: number;
}

/**
 * How long start-up keeps retrying a database that is unavailable (a refused, reset or timed-out first connection;
 * another replica holding the migration lock past a statement's bound) before it gives up with "cannot be reached".
 * The review of s48 started three replicas at once on a fresh database: one exited "PostgreSQL cannot be reached
 * (Connection terminated due to connection timeout)" while the server was up, and a restart a moment later
 * succeeded. Well inside an orchestrator's start-up probe; a server that really cannot be reached still stops start-up.
 */
export const OPEN_BUDGET_MS = 20_000;

/** Runs `open` again while it fails as unavailable, until `budgetMs` has passed; then its last error. */
async function withinOpenBudget<T>(open: () => Promise<T>, budgetMs: number, logger?: Logger): Promise<T> {
  const until = Date.now() + budgetMs;
  for (let wait = 250; ; wait = Math.min(wait * 2, 2_000)) {
    try {
      return await open();
    } catch (err) {
      if (!(err instanceof StorageUnavailableError) || Date.now() + wait >= until) throw err;
      const cause = err.cause instanceof Error ? err.cause.message : undefined;
      logger?.warn({ reason: cause, retryInMs: wait }, 'storage not reachable yet while opening; retrying');
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/**
 * Opens the durable store (design.md §2, §3): a PostgreSQL pool when `databaseUrl` is set, else embedded PGlite in
 * `dataDir`; runs the migrations; then writes a start-up marker and, on PGlite, checks that the commit really
 * reached fsync(2), so a build whose durability hook silently stopped working refuses to start.
 */
export async function createStorage(config: StorageConfig): Promise<SqlStorage> {
  if (config.schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(config.schema)) {
    throw new StorageError(`schema must be a lower-case SQL identifier, got ${JSON.stringify(config.schema)}`);
  }
  let driver: SqlDriver;
  let fsyncCount: (() => number) | undefined;
  if (config.databaseUrl) {
    driver = await openPostgres(config.databaseUrl, { logger: config.logger, schema: config.schema });
  } else {
    const logger = config.logger;
    const pglite = await openPglite(config.dataDir, {
      template: config.pgliteTemplate,
      // README "Faults": a worker that stopped answering is replaced; an operator sees it, and sees it fail to reopen.
      onRestart: (e) =>
        e.reopened
          ? logger?.warn({ storage: 'pglite' }, 'embedded storage stopped answering; replaced it on the same DATA_DIR')
          : logger?.error({ storage: 'pglite', reason: e.error }, 'embedded storage stopped answering and cannot be opened again yet; retrying'),
    });
    driver = pglite;
    fsyncCount = () => pglite.fsyncCount;
  }
  try {
    // The first statement opens the first connection: a failed one (and a migration lock another replica holds past a
    // statement's bound) is retried within the start-up budget.
    const applied = await withinOpenBudget(() => migrate(driver, { schema: config.databaseUrl ? config.schema : undefined }), config.openBudgetMs ?? OPEN_BUDGET_MS, config.logger);
    const before = fsyncCount?.() ?? 0;
    await driver.query(
      `INSERT INTO storage_meta (key, value, updated_at) VALUES ('last_opened', $1, now())
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`,
      [new Date().toISOString()],
    );
    if (fsyncCount && fsyncCount() <= before) {
      throw new StorageError('embedded storage committed without fsync: refusing to run with writes that would not survive a crash');
    }
    const storage = new SqlStorage(driver, { logger: config.logger, readiness: config.readiness });
    // Embedded: this process is the database's only writer, so it may know which orders have no record.
    await storage.loadOrderIndex();
    config.logger?.info({ storage: driver.kind, migrationsApplied: applied }, 'storage ready');
    return storage;
  } catch (err) {
    await driver.close().catch(() => undefined);
    throw err;
  }
}
