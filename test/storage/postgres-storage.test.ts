import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createStorage } from '../../src/storage/create-storage.js';
import { openPostgres, STATEMENT_CANCEL_MARGIN_MS } from '../../src/storage/postgres-driver.js';
import { SqlStorage } from '../../src/storage/sql-storage.js';
import { StorageUnavailableError } from '../../src/storage/storage.js';
import type { GuardedOrderChange, OrderKey, OrderState } from '../../src/storage/storage.js';
import { checkAssertionAnsweredFactsMigration, checkApprovedItemMigration, checkAssertionOrderDateMigration, checkIdentifierIndexMigration, newAssertion, newAudit, newSubmission, storageContract } from './storage-contract.js';
import { MIGRATIONS, migrate } from '../../src/storage/migrations.js';

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

  /**
   * Runs a migration check in a schema of its own migrated up to (not including) `version`: the check writes as the
   * older schema did, runs the rest of the migrations and reads back; the schema is dropped after.
   */
  const checkMigration = async (version: number, check: typeof checkIdentifierIndexMigration) => {
    const older = `${schema}_m${version}`;
    const driver = await openPostgres(url!, { schema: older });
    try {
      await migrate(driver, { migrations: MIGRATIONS.filter((m) => m.version < version), schema: older });
      await check(driver, () => migrate(driver, { schema: older }), (d) => new SqlStorage(d));
    } finally {
      await driver.exec(`DROP SCHEMA IF EXISTS ${older} CASCADE`).catch(() => undefined);
      await driver.close();
    }
  };

  it('migration 12: reads an assertion written before it as it was, and keeps the date of one written after', () => checkMigration(12, checkAssertionOrderDateMigration));

  it('migration 13: finds requests filed before it by every identifier as before', () => checkMigration(13, checkIdentifierIndexMigration));

  it('migration 15: reads an assertion written before it as it was, and keeps the answered facts of one written after', () => checkMigration(15, checkAssertionAnsweredFactsMigration));

  it("migration 20: copies a reviewer's approval given before it from the reviewed item, or what the item kept of it", () => checkMigration(20, checkApprovedItemMigration));

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

  it('a PAS request on one replica and hook writes batched on another, to the same orders, both complete (row locks in one order)', async () => {
    const { default: pg } = await import('pg');
    const replica = await createStorage({ databaseUrl: url, dataDir: '/nonexistent-unused', schema });
    // Another session holds one order's row for a moment (any replica's statement does, briefly).
    const holder = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
    await holder.connect();
    try {
      const patientId = `pat-${randomUUID().slice(0, 8)}`;
      // Three blinatumomab orders of one patient, in key order x < z < y, each documentation-needed.
      const [x, z, y]: OrderKey[] = ['a', 'b', 'c'].map((n) => ({ payer: 'centene', patientId, orderRef: `MedicationRequest/${n}-${randomUUID()}`, drug: 'blinatumomab' }));
      const change = (key: OrderKey, state: OrderState, from: OrderState[], extra: Partial<GuardedOrderChange['change']> = {}): GuardedOrderChange => ({
        key,
        from,
        change: { state, at: new Date().toISOString(), source: 'crd', actor: 'order-sign hook-1', reason: `now ${state}`, policyId: 'centene-blinatumomab', ...extra },
      });
      for (const k of [x, z, y]) await storage.applyOrderChange(change(k, 'auth-needed', []));
      const waiting = async (n: number) => {
        for (;;) {
          const [{ count }] = (await holder.query("SELECT count(*)::int AS count FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).rows as { count: number }[];
          if (count >= n) return;
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM order_authorizations WHERE payer = $1 AND patient_id = $2 AND order_ref = $3 FOR UPDATE', [z.payer, z.patientId, z.orderRef]);
      // Re-signings on this replica: one batch changing x, z and y (x locked, then waiting for z).
      const signed = Promise.all([x, z, y].map((k) => storage.applyOrderChange(change(k, 'auth-needed', ['auth-needed', 'not-covered'], { reason: 'MRD level still not documented' }))));
      await waiting(1);
      // PAS on the other replica for the same patient's orders y and x, listed in the claim in that order.
      const s = newSubmission();
      const pend = (k: OrderKey) => change(k, 'pended', ['auth-needed', 'not-covered'], { source: 'pas', actor: `PAS ${s.id}`, submissionId: s.id });
      const submitted = replica.createPasSubmissionForOrders(s, [pend(y), pend(x)]);
      await waiting(2);
      await new Promise((r) => setTimeout(r, 200));
      await holder.query('ROLLBACK');
      const [changes, pas] = await Promise.all([signed, submitted]);
      expect(changes.every((c) => c.applied)).toBe(true);
      expect(pas).toMatchObject({ created: true });
      for (const k of [x, y]) expect(await replica.getOrderRecord(k)).toMatchObject({ state: 'pended', submissionId: s.id });
      expect(await replica.getOrderRecord(z)).toMatchObject({ state: 'auth-needed' });
    } finally {
      await holder.end();
      await replica.close();
    }
  }, 30_000);

  it("stores one of two requests of a client waiting on another client's pending request, one on each replica, when they meet at the order's row (waitingOn locks it)", async () => {
    const { default: pg } = await import('pg');
    const replica = await createStorage({ databaseUrl: url, dataDir: '/nonexistent-unused', schema });
    const holder = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
    await holder.connect();
    try {
      const key: OrderKey = { payer: 'centene', patientId: `pat-${randomUUID().slice(0, 8)}`, orderRef: `MedicationRequest/${randomUUID()}`, drug: 'blinatumomab' };
      const owner = newSubmission({ clientId: 'first-ehr' });
      const pended = await storage.createPasSubmissionForOrders(owner, [
        { key, from: ['auth-needed', 'not-covered'], change: { state: 'pended', at: new Date().toISOString(), source: 'pas', actor: `PAS ${owner.id}`, reason: 'documentation needed', submissionId: owner.id } },
      ]);
      expect(pended.created).toBe(true);
      const waiter = () => newSubmission({ clientId: 'second-ehr', detail: { items: [{ sequence: 1, reviewAction: 'A4', order: { ...key } }] } });
      // Another session holds the order's row, so both requests reach it before either looks for the other.
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM order_authorizations WHERE payer = $1 AND patient_id = $2 AND order_ref = $3 AND drug = $4 FOR UPDATE', [key.payer, key.patientId, key.orderRef, key.drug]);
      let done = 0;
      const both = [storage, replica].map((s) => s.createPasSubmissionForOrders(waiter(), [], undefined, { waitingOn: [key] }).finally(() => done++));
      await new Promise((r) => setTimeout(r, 300));
      expect(done).toBe(0);
      await holder.query('ROLLBACK');
      const results = await Promise.all(both);
      const created = results.filter((r) => r.created);
      expect(created).toHaveLength(1);
      expect(results.find((r) => !r.created)).toMatchObject({ created: false, waiting: { id: created[0].submission!.id } });
    } finally {
      await holder.end();
      await replica.close();
    }
  }, 30_000);

  it('has the server cancel a statement it gave up waiting for, so it stops holding a server process and its locks (was: it ran on after the 503)', async () => {
    const answerMs = 300;
    const tag = `pp-cancel-${randomUUID().slice(0, 8)}`;
    const driver = await openPostgres(url!, { schema, answerMs });
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await driver.exec(`CREATE TABLE IF NOT EXISTS ${schema}.cancel_probe (id text PRIMARY KEY, n integer NOT NULL)`);
      await driver.query(`INSERT INTO ${schema}.cancel_probe (id, n) VALUES ($1, 0)`, [tag]);
      // Another session (another replica's transaction) holds the row for longer than PriorPath waits.
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM ${schema}.cancel_probe WHERE id = $1 FOR UPDATE`, [tag]);
      const waiting = `UPDATE ${schema}.cancel_probe SET n = n + 1 WHERE id = '${tag}'`;
      const failed = await driver.query(waiting).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(failed).toBeInstanceOf(StorageUnavailableError);
      const stillRunning = async () => {
        // Inside a transaction pg_stat_activity is a snapshot taken at its first read: take a new one each time.
        await holder.query('SELECT pg_stat_clear_snapshot()');
        const rows = await holder.query<{ n: number }>(`SELECT count(*)::integer AS n FROM pg_stat_activity WHERE state = 'active' AND query = $1`, [waiting]);
        return Number(rows.rows[0].n);
      };
      // Right after the client gave up, the server is typically still waiting on the lock for it ...
      const deadline = Date.now() + answerMs + STATEMENT_CANCEL_MARGIN_MS + 3000;
      while ((await stillRunning()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      // ... and within the margin it has cancelled it, although the lock is still held.
      expect(await stillRunning()).toBe(0);
      await holder.query('ROLLBACK');
      // Cancelled, not applied later.
      expect((await driver.query<{ n: number }>(`SELECT n FROM ${schema}.cancel_probe WHERE id = $1`, [tag]))[0].n).toBe(0);
    } finally {
      await holder.end();
      await driver.close();
    }
  }, 30_000);

  it('answers a statement the server cancelled (SQLSTATE 57014) as storage unavailable, a 503 to resend, not a failure (was: an unclassified error, a 500)', async () => {
    const driver = await openPostgres(url!, { schema });
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      const marker = `SELECT pg_sleep(20) /* ${randomUUID()} */`;
      const running = driver.query(marker).then(
        () => undefined,
        (err: unknown) => err,
      );
      // An administrator (or the server's statement_timeout) cancels it.
      let cancelled = 0;
      for (let i = 0; i < 50 && cancelled === 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        cancelled = (await admin.query(`SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = $1`, [marker])).rowCount ?? 0;
      }
      expect(cancelled).toBe(1);
      const failed = await running;
      expect(failed).toBeInstanceOf(StorageUnavailableError);
    } finally {
      await admin.end();
      await driver.close();
    }
  }, 30_000);
});

