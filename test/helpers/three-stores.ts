import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { createStorage } from '../../src/storage/create-storage.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import type { SqlStorage } from '../../src/storage/sql-storage.js';
import type { Storage } from '../../src/storage/storage.js';

/**
 * The three stores a suite runs its tests on (design.md §2 "Storage": embedded PGlite by default, PostgreSQL with
 * DATABASE_URL, the same migrations on both; MemoryStorage in tests): a fresh MemoryStorage per test, one embedded
 * PGlite store in a temporary data directory, and with DATABASE_URL one PostgreSQL store in a schema of its own
 * (`pp_<name>_…`); without DATABASE_URL the PostgreSQL variant is left out. Registers the file's beforeAll (opening
 * both) and afterAll (closing them, dropping the schema, removing the directory), so call it at the top of a test
 * file. `name`: lower case letters and `_`, for the schema's and the directory's names.
 */
export function threeStores(name: string) {
  const url = process.env.DATABASE_URL;
  const schema = `pp_${name}_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  let dir = '';
  let pglite: SqlStorage | undefined;
  let postgres: SqlStorage | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), `priorpath-${name.replace(/_/g, '-')}-`));
    pglite = await createStorage({ dataDir: dir });
    if (url) postgres = await createStorage({ databaseUrl: url, dataDir: '/nonexistent-unused', schema });
  }, 120_000);
  afterAll(async () => {
    await pglite?.close();
    await postgres?.driver.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    await postgres?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  /** Each store by name, for `describe.each`: read when a test runs, after the beforeAll opened them. */
  const storages: [string, () => Storage][] = [
    ['MemoryStorage', () => new MemoryStorage()],
    ['embedded PGlite', () => pglite!],
    ...(url ? [['PostgreSQL', () => postgres!] as [string, () => Storage]] : []),
  ];
  return {
    /** DATABASE_URL, or undefined when the PostgreSQL variants are skipped. */
    url,
    /** The PostgreSQL schema the suite's store uses (another replica of it opens the same). */
    schema,
    storages,
    get pglite(): SqlStorage {
      return pglite!;
    },
    get postgres(): SqlStorage | undefined {
      return postgres;
    },
  };
}
