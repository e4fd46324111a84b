import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStorage } from '../../src/storage/create-storage.js';
import type { SqlStorage } from '../../src/storage/sql-storage.js';
import { newAssertion, newAudit, newSubmission, storageContract } from './storage-contract.js';

const url = process.env.DATABASE_URL;
const schema = `pp_test_${randomUUID().replace(/-/g, '').slice(0, 12)}`;

if (!url) {
  console.warn('PostgreSQL storage suite skipped: DATABASE_URL is not set (export DATABASE_URL="$(scripts/db-ci-postgres.sh)" to run it)');
  describe('PostgreSQL storage', () => {
    it.skip('skipped: DATABASE_URL is not set (export DATABASE_URL="$(scripts/db-ci-postgres.sh)" to run it)', () => {});
  });
}

/** The same suite against a real PostgreSQL server, each run in a schema of its own that is dropped afterwards. */
describe.skipIf(!url)('PostgreSQL storage (DATABASE_URL)', () => {
  let storage: SqlStorage;
  beforeAll(async () => {
    storage = await createStorage({ databaseUrl: url, dataDir: '/nonexistent-unused', schema });
  }, 30_000);
  afterAll(async () => {
    await storage?.driver.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    await storage?.close();
  });

  it('is the PostgreSQL backend and never touches DATA_DIR', () => {
    expect(storage.kind).toBe('postgres');
  });

  storageContract(() => storage);

  it('migrates once when replicas start at the same moment (advisory lock)', async () => {
    const shared = `${schema}_r`;
    const replicas = await Promise.all(Array.from({ length: 4 }, () => createStorage({ databaseUrl: url, dataDir: '/nonexistent-unused', schema: shared })));
    try {
      const rows = await replicas[0].driver.query<{ version: number; n: number }>('SELECT version, count(*)::integer AS n FROM schema_migrations GROUP BY version');
      expect(rows.length).toBeGreaterThan(0);
      for (const r of rows) expect(Number(r.n)).toBe(1);
      const s = newSubmission();
      await replicas[1].createPasSubmission(s);
      expect(await replicas[2].getPasSubmission(s.id)).toMatchObject({ id: s.id });
    } finally {
      await replicas[0].driver.exec(`DROP SCHEMA IF EXISTS ${shared} CASCADE`);
      await Promise.all(replicas.map((r) => r.close()));
    }
  });

  it('reads back every write through a new pool after the first is closed', async () => {
    const first = await createStorage({ databaseUrl: url, dataDir: '/nonexistent-unused', schema });
    const assertion = newAssertion();
    const audit = newAudit();
    const submission = newSubmission();
    await Promise.all([first.saveAssertion(assertion), first.saveAudit(audit), first.createPasSubmission(submission)]);
    await first.close();
    const second = await createStorage({ databaseUrl: url, dataDir: '/nonexistent-unused', schema });
    try {
      expect(await second.getAssertion(assertion.assertionId)).toEqual(assertion);
      expect(await second.listAudit(1000)).toContainEqual(audit);
      expect(await second.getPasSubmission(submission.id)).toMatchObject({ id: submission.id });
    } finally {
      await second.close();
    }
  });
});
