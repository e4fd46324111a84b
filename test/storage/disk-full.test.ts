/**
 * The database's disk fills up (or fails) after start (design.md §2 "Storage", README "Errors"): PostgreSQL answers
 * SQLSTATE 53100 disk_full (class 53, or 58030 io_error). Nothing of the failed transaction is stored and the same
 * request succeeds once space is freed, so PAS answers 503 with Retry-After, not a 500 "Internal error"; and a hook's
 * assertion queued behind its answer is kept and written once the disk takes writes again, not dropped as a record
 * the database refuses. The full disk is a trigger raising disk_full on the table written: the real SQLSTATE, from
 * the real database, on the real write path.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Extension } from '@medplum/fhirtypes';
import request from 'supertest';
import { afterAll, describe, expect, it } from 'vitest';
import { COVERAGE_INFO_URL } from '../../src/coverage/coverage-information.js';
import { RETRY_AFTER_SECONDS } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import { createStorage } from '../../src/storage/create-storage.js';
import type { StorageConfig } from '../../src/storage/create-storage.js';
import { StorageUnavailableError } from '../../src/storage/storage.js';
import { READINESS_WRITE_EVERY_MS } from '../../src/storage/sql-storage.js';
import type { SqlStorage } from '../../src/storage/sql-storage.js';
import { buildApp } from '../helpers/app.js';
import { payerClientsEnv, payerTokenForm } from '../helpers/priorpath-process.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';
import { storyBundle, TODAY } from '../pas/pas-fixtures.js';

const SIGN = '/cds-services/priorpath-order-sign';
const RAISE_DISK_FULL = `DO $$ BEGIN RAISE EXCEPTION 'could not extend file "base/5/16458": No space left on device' USING ERRCODE = 'disk_full'; END $$`;

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const newDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'priorpath-disk-full-'));
  dirs.push(d);
  return d;
};

/**
 * Waits for `met` (a log line the background write leaves), polling a bounded number of times: if it never comes the
 * test fails naming `cause`, rather than hanging to the test timeout. The bound is a count, not a timing assertion.
 */
async function waitFor(met: () => boolean, cause: string, polls = 250): Promise<void> {
  for (let i = 0; i < polls; i++) {
    if (met()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`never saw ${cause}`);
}

/** Makes every insert into `table` fail as a full disk does; returns the undo. */
async function fillDisk(storage: SqlStorage, table: string): Promise<() => Promise<void>> {
  await storage.driver.exec(
    `CREATE OR REPLACE FUNCTION pp_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$;
     CREATE TRIGGER pp_disk_full BEFORE INSERT ON ${table} FOR EACH ROW EXECUTE FUNCTION pp_disk_full();`,
  );
  return () => storage.driver.exec(`DROP TRIGGER pp_disk_full ON ${table}`);
}

describe('embedded storage whose disk is full', () => {
  it('is storage unavailable (a 503 to resend), in a statement and in a transaction', async () => {
    const storage = await createStorage({ dataDir: newDir() });
    try {
      await expect(storage.driver.query(RAISE_DISK_FULL)).rejects.toBeInstanceOf(StorageUnavailableError);
      await expect(storage.driver.transaction((tx) => tx.query(RAISE_DISK_FULL))).rejects.toBeInstanceOf(StorageUnavailableError);
      // A statement that is wrong is still not "unavailable": the classification is by SQLSTATE, not by any error.
      await expect(storage.driver.query('SELECT * FROM no_such_table')).rejects.not.toBeInstanceOf(StorageUnavailableError);
    } finally {
      await storage.close();
    }
  });

  it('PAS $submit answers 503 with Retry-After while the disk is full (was a 500), and the resend is stored once space is freed', async () => {
    const storage = await createStorage({ dataDir: newDir() });
    try {
      const { app } = buildApp({ storageOverride: storage, today: TODAY });
      const bundle = storyBundle('centene-missing-mrd', { orderId: `disk-${randomUUID().slice(0, 8)}` });
      const free = await fillDisk(storage, 'pas_submissions');
      const full = await request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(JSON.stringify(bundle));
      expect(full.status, full.text).toBe(503);
      expect(full.headers['retry-after']).toBe(String(RETRY_AFTER_SECONDS));
      expect(JSON.parse(full.text)).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'transient' }] });
      await free();
      const resent = await request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(JSON.stringify(bundle));
      expect(resent.status, resent.text).toBe(200);
    } finally {
      await storage.close();
    }
  });

  it('makes the replica not ready (503 naming storage) while writes are refused, alive all along, and ready again once a write succeeds', async () => {
    const clock = testClock();
    const storage = await createStorage({ dataDir: newDir(), readiness: { now: clock.now } });
    try {
      await expectReadinessFollowsWrites(storage, clock);
    } finally {
      await storage.close();
    }
  });

  it('keeps the payer API access lines of the calls answered while the disk is full, and writes them once space is freed (were dropped)', async () => {
    await expectAccessLinesKept({ dataDir: newDir() });
  });

  it("does not stay unready from the access backlog's own retries alone (a caller's refused write still counts)", async () => {
    const logged: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        logged.push(String(chunk));
        cb();
      },
    });
    const clock = testClock();
    const storage = await createStorage({ dataDir: newDir(), logger: createLogger('info', sink), readiness: { now: clock.now } });
    try {
      const free = await fillDisk(storage, 'api_access_log');
      await storage.saveApiAccess({ requestId: 'req-kept', at: '2026-12-05T10:00:00Z', operation: 'GET /metadata', resourceIds: [], status: 200, outcome: 'ok' });
      await waitFor(() => logged.some((l) => l.includes('payer API access lines kept in memory')), 'the log line that the refused access line was kept');
      // The caller's refused write made the replica unready; its probe write (storage_meta has room) succeeds, while
      // the backlog retries its lines (api_access_log is still full) during the probe.
      const probes = countProbeWrites(storage, () => storage.listApiAccess(1));
      await expect(storage.ping()).resolves.toBeUndefined();
      expect(probes.count).toBe(1);
      // Another retry, refused again, and the replica stays ready.
      await storage.listApiAccess(1);
      await expect(storage.ping()).resolves.toBeUndefined();
      await free();
      expect((await storage.listApiAccess(5)).map((l) => l.requestId)).toContain('req-kept');
    } finally {
      await storage.close();
    }
  });

  it("keeps a hook's queued assertion while the disk is full and writes it once space is freed (was dropped)", async () => {
    const dir = newDir();
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const storage = await createStorage({ dataDir: dir, logger: createLogger('info', sink) });
    let assertionId: string | undefined;
    try {
      const { app } = buildApp({ storageOverride: storage, today: TODAY });
      const free = await fillDisk(storage, 'crd_assertions');
      const resources = storyResources('centene-missing-mrd');
      const res = await request(app).post(SIGN).send(orderSignRequest(resources, storyOrder('centene-missing-mrd', resources))).expect(200);
      const info = (res.body.systemActions[0].resource.extension as Extension[]).find((e) => e.url === COVERAGE_INFO_URL)!;
      assertionId = info.extension!.find((e) => e.url === 'coverage-assertion-id')!.valueString;
      expect(assertionId).toBeDefined();
      // The queue's first attempt meets the full disk (it logs what it keeps, or what it drops): space is freed after.
      await waitFor(() => lines.some((l) => /kept and retried|they are dropped/.test(l)), "the assertion queue's log line that it kept (or dropped) the write the full disk refused");
      await free();
    } finally {
      await storage.close();
    }
    const reopened = await createStorage({ dataDir: dir });
    try {
      expect(await reopened.getAssertion(assertionId!)).toMatchObject({ assertionId });
    } finally {
      await reopened.close();
    }
  });
});

/** A clock the test moves by hand: readiness writes its probe row at most once per READINESS_WRITE_EVERY_MS of it. */
function testClock(): { now: () => number; advance: () => void } {
  let t = 1_000_000;
  return { now: () => t, advance: () => void (t += READINESS_WRITE_EVERY_MS) };
}

/** Counts the readiness probe's writes (storage_meta `readiness_write`) through the storage's own driver. */
function countProbeWrites(storage: SqlStorage, before?: () => Promise<unknown>): { readonly count: number } {
  const counted = { count: 0 };
  const query = storage.driver.query.bind(storage.driver);
  storage.driver.query = (async (sql: string, params?: unknown[]) => {
    if (sql.includes("'readiness_write'")) {
      counted.count++;
      if (before) await before();
    }
    return query(sql, params);
  }) as typeof storage.driver.query;
  return counted;
}

/**
 * /readyz stayed 200 while every write got 503: reads (its `SELECT 1`) still succeed on a full disk, so a load balancer
 * kept sending requests to a replica that could store none of them. The full disk here covers the table PAS writes and
 * the one readiness writes to (storage_meta), as a real one covers every table. Readiness writes its probe row at
 * most once per READINESS_WRITE_EVERY_MS (was on every check: a commit per probe during the outage).
 */
async function expectReadinessFollowsWrites(storage: SqlStorage, clock: ReturnType<typeof testClock>): Promise<void> {
  const { app } = buildApp({ storageOverride: storage, today: TODAY });
  const probes = countProbeWrites(storage);
  expect((await request(app).get('/readyz')).status).toBe(200);
  expect(probes.count, 'no probe write while no write was refused').toBe(0);
  const freeSubmissions = await fillDisk(storage, 'pas_submissions');
  const freeMeta = await fillDisk(storage, 'storage_meta');
  const bundle = storyBundle('centene-missing-mrd', { orderId: `ready-${randomUUID().slice(0, 8)}` });
  const submit = () => request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(JSON.stringify(bundle));
  expect((await submit()).status).toBe(503);
  const notReady = await request(app).get('/readyz');
  expect(notReady.status).toBe(503);
  expect(notReady.headers['retry-after']).toBe(String(RETRY_AFTER_SECONDS));
  expect(JSON.parse(notReady.text)).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'transient', diagnostics: expect.stringMatching(/^storage refuses writes/) }] });
  expect(probes.count).toBe(1);
  // Asked again at once: still not ready, from the last probe's answer, with no write of its own.
  for (let i = 0; i < 3; i++) expect((await request(app).get('/readyz')).status).toBe(503);
  expect(probes.count, 'one probe write per interval, however often /readyz is asked').toBe(1);
  // Asked again later: its own write is refused too, and never "unreachable".
  clock.advance();
  const again = await request(app).get('/readyz');
  expect(again.status).toBe(503);
  expect(JSON.parse(again.text).issue[0].diagnostics).toMatch(/^storage refuses writes/);
  expect(probes.count).toBe(2);
  // Liveness is not readiness: a restart frees no disk.
  expect((await request(app).get('/healthz')).status).toBe(200);
  await freeMeta();
  await freeSubmissions();
  // Space freed: ready once the next probe may write (at most one interval later).
  clock.advance();
  expect((await request(app).get('/readyz')).status).toBe(200);
  expect((await submit()).status).toBe(200);
  expect((await request(app).get('/readyz')).status).toBe(200);
}

/**
 * The access line of every call the gate answered (design.md §8: who called what) while storage refused writes: the
 * public metadata, a read served from content with a token checked before, a call without a token (401), and the PAS
 * request that got its 503. They were logged as "write failed" and lost; now they are kept in memory and written when
 * the disk takes writes again (README "Errors", Faults).
 */
async function expectAccessLinesKept(config: StorageConfig): Promise<void> {
  const logged: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logged.push(String(chunk));
      cb();
    },
  });
  const storage = await createStorage({ ...config, logger: createLogger('info', sink) });
  try {
    const { app, lines: appLog } = buildApp({ storageOverride: storage, today: TODAY, env: { PAYER_API_AUTH: 'required', PAYER_API_CLIENTS: await payerClientsEnv() } });
    const token = (await request(app).post('/auth/token').type('form').send(await payerTokenForm()).expect(200)).body.access_token as string;
    const questionnaire = () => request(app).get('/fhir/Questionnaire/centene-blinatumomab');
    await questionnaire().set('Authorization', `Bearer ${token}`).expect(200);
    const freeAccess = await fillDisk(storage, 'api_access_log');
    const freeSubmissions = await fillDisk(storage, 'pas_submissions');
    const during = [
      (await request(app).get('/fhir/metadata').expect(200)).headers['x-request-id'],
      (await questionnaire().set('Authorization', `Bearer ${token}`).expect(200)).headers['x-request-id'],
      (await questionnaire().expect(401)).headers['x-request-id'],
      (
        await request(app)
          .post('/fhir/Claim/$submit')
          .set('Authorization', `Bearer ${token}`)
          .set('Content-Type', 'application/fhir+json')
          .send(JSON.stringify(storyBundle('centene-missing-mrd', { orderId: `access-${randomUUID().slice(0, 8)}` })))
          .expect(503)
      ).headers['x-request-id'],
    ];
    // The lines met the full disk and were kept (the backlog says so once, with a count), or lost (the gate logs the
    // failed write): space is freed after.
    const met = () => logged.some((l) => l.includes('payer API access lines kept in memory')) || appLog.some((l) => l.includes('payer API access log write failed'));
    await waitFor(met, "the log line that the access lines were kept in memory (or lost): the full disk on api_access_log refused no access line");
    await freeAccess();
    await freeSubmissions();
    const stored = await storage.listApiAccess(50);
    const byRequest = new Map(stored.map((l) => [l.requestId, l]));
    expect(during.map((id) => byRequest.get(id as string)).map((l) => l && [l.operation, l.status, l.clientId ?? null, l.outcome])).toEqual([
      ['GET /metadata', 200, null, 'ok'],
      ['GET /Questionnaire/:id', 200, 'reliability-tests', 'ok'],
      ['GET /Questionnaire/:id', 401, null, 'no-token'],
      ['POST /Claim/$submit', 503, 'reliability-tests', 'http-503'],
    ]);
    expect(appLog.join('')).not.toMatch(/payer API access log write failed/);
  } finally {
    await storage.close();
  }
}

describe.skipIf(!process.env.DATABASE_URL)('PostgreSQL whose disk is full, or that became a standby (DATABASE_URL)', () => {
  it('keeps the payer API access lines of the calls answered while the disk is full, and writes them once space is freed', async () => {
    const schema = `pp_disk_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
    try {
      await expectAccessLinesKept({ databaseUrl: process.env.DATABASE_URL, dataDir: '/nonexistent-unused', schema });
    } finally {
      const cleanup = await createStorage({ databaseUrl: process.env.DATABASE_URL, dataDir: '/nonexistent-unused', schema });
      await cleanup.driver.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      await cleanup.close();
    }
  }, 60_000);

  it('makes the replica not ready while writes are refused, and ready again once a write succeeds', async () => {
    const schema = `pp_disk_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
    const clock = testClock();
    const storage = await createStorage({ databaseUrl: process.env.DATABASE_URL, dataDir: '/nonexistent-unused', schema, readiness: { now: clock.now } });
    try {
      await expectReadinessFollowsWrites(storage, clock);
    } finally {
      await storage.driver.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      await storage.close();
    }
  }, 60_000);

  it('is storage unavailable (a 503 to resend), in a statement and in a transaction', async () => {
    const schema = `pp_disk_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
    const storage = await createStorage({ databaseUrl: process.env.DATABASE_URL, dataDir: '/nonexistent-unused', schema });
    try {
      await expect(storage.driver.query(RAISE_DISK_FULL)).rejects.toBeInstanceOf(StorageUnavailableError);
      await expect(storage.driver.transaction((tx) => tx.query(RAISE_DISK_FULL))).rejects.toBeInstanceOf(StorageUnavailableError);
      await expect(storage.driver.query('SELECT * FROM no_such_table')).rejects.not.toBeInstanceOf(StorageUnavailableError);
      // A server demoted to a standby by a failover refuses every write with 25006 (read_only_sql_transaction).
      const readOnly = storage.driver.transaction(async (tx) => {
        await tx.query('SET TRANSACTION READ ONLY');
        await tx.query('CREATE TABLE pp_read_only_probe (a int)');
      });
      await expect(readOnly).rejects.toBeInstanceOf(StorageUnavailableError);
    } finally {
      await storage.driver.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      await storage.close();
    }
  }, 30_000);
});
