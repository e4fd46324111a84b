import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createStorage } from '../../src/storage/create-storage.js';
import { MIGRATIONS, migrate } from '../../src/storage/migrations.js';
import { openPglite } from '../../src/storage/pglite-driver.js';
import type { PgliteDriver } from '../../src/storage/pglite-driver.js';
import { SqlStorage } from '../../src/storage/sql-storage.js';
import { StorageError } from '../../src/storage/storage.js';
import { checkAssertionAnsweredFactsMigration, checkApprovedItemMigration, checkAssertionOrderDateMigration, checkIdentifierIndexMigration, newAssertion, newAudit, newSubmission, storageContract } from './storage-contract.js';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'priorpath-pglite-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('embedded PGlite storage', () => {
  let dir: string;
  let storage: SqlStorage;
  beforeAll(async () => {
    dir = tempDir();
    storage = await createStorage({ dataDir: dir });
  }, 120_000);
  afterAll(async () => {
    await storage?.close();
  });

  it('is the PGlite backend when no DATABASE_URL is given', () => {
    expect(storage.kind).toBe('pglite');
  });

  storageContract(() => storage);

  it('files an alias and tells what the name names in one transaction, with no read-back after it', async () => {
    // A resend collapsing into a pended request (design.md §8): the name is read under its lock, in the transaction
    // that files it; a query after it was one more round trip on the PAS path (stop 47's note).
    const pended = newSubmission({ clientId: 'ehr-a' });
    await storage.createPasSubmission(pended);
    const name = `urn:ehr.example.org:pas-transaction|alias-${pended.id}`;
    const alias = { bundleIdentifier: name, clientId: 'ehr-a', submissionId: pended.id, requestHash: 'c'.repeat(64), claimIdentifiers: [], createdAt: new Date().toISOString() };
    const query = vi.spyOn(storage.driver, 'query');
    try {
      expect(await storage.addPasSubmissionAlias(alias)).toEqual({ submissionId: pended.id, requestHash: 'c'.repeat(64) });
      // Filed again with other content: the name keeps naming the first content, told from the same transaction.
      expect(await storage.addPasSubmissionAlias({ ...alias, requestHash: 'e'.repeat(64) })).toEqual({ submissionId: pended.id, requestHash: 'c'.repeat(64) });
      expect(query).not.toHaveBeenCalled();
    } finally {
      query.mockRestore();
    }
  });

  it('flushes every acknowledged commit to disk with fsync(2)', async () => {
    const driver = storage.driver as PgliteDriver;
    const before = driver.fsyncCount;
    await storage.createPasSubmission(newSubmission());
    const afterOne = driver.fsyncCount;
    expect(afterOne).toBeGreaterThan(before);
    await storage.createPasSubmission(newSubmission());
    expect(driver.fsyncCount).toBeGreaterThan(afterOne);
    // A hook's audit line is written behind its answer, and flushed by the commit that writes it.
    await storage.saveAudit(newAudit());
    const afterAudit = driver.fsyncCount;
    await storage.listAudit(1);
    expect(driver.fsyncCount).toBeGreaterThan(afterAudit);
  });

  it('writes a batch of statements all or none, and keeps the neighbours of a record the database refuses', async () => {
    // One batch: the first statement is fine, the second is refused (not a date): neither is written.
    const good = newAssertion();
    await expect(
      storage.driver.batch([
        { sql: 'INSERT INTO storage_meta (key, value) VALUES ($1, $2)', params: [`batch-${good.assertionId}`, 'written?'] },
        { sql: 'SELECT $1::date AS d', params: ['not a date'] },
      ]),
    ).rejects.toMatchObject({ code: '22007' });
    expect(await storage.driver.query('SELECT value FROM storage_meta WHERE key = $1', [`batch-${good.assertionId}`])).toEqual([]);
    // The same statements run again (prepared once) and give their rows.
    const [inserted, selected] = await storage.driver.batch([
      { sql: 'INSERT INTO storage_meta (key, value) VALUES ($1, $2) RETURNING value', params: [`batch-${good.assertionId}`, 'written'] },
      { sql: 'SELECT $1::date AS d', params: ['2026-12-02'] },
    ]);
    expect(inserted).toEqual([{ value: 'written' }]);
    expect(selected).toHaveLength(1);

    // Written behind hook answers in one batch with a record the database refuses: the others are stored.
    const neighbours = [newAssertion(), newAssertion()];
    const refused = newAssertion({ createdAt: 'not a timestamp' });
    const audit = newAudit();
    await Promise.all([storage.queueAssertion(neighbours[0]), storage.queueAssertion(refused), storage.queueAssertion(neighbours[1])]);
    await storage.saveAudit(audit);
    await storage.close().catch(() => undefined);
    storage = await createStorage({ dataDir: dir });
    for (const a of neighbours) expect(await storage.getAssertion(a.assertionId)).toEqual(a);
    expect(await storage.getAssertion(refused.assertionId)).toBeUndefined();
    expect(await storage.listAudit(1000)).toContainEqual(audit);
  }, 60_000);

  it('refuses to open a data directory this process already has open', async () => {
    await expect(createStorage({ dataDir: dir })).rejects.toThrow(StorageError);
  });
});

describe('embedded PGlite durability', () => {
  // One directory through its life: writes, a clean reopen, a stale lock, a schema from the future.
  const dir = tempDir();

  it('reads back every write after close and reopen of the same directory, migrating only once', async () => {
    const first = await createStorage({ dataDir: dir });
    const assertion = newAssertion({ authorization: { number: 'PA-DUR-1', start: '2026-11-01', end: '2027-04-30' } });
    const audits = Array.from({ length: 50 }, () => newAudit());
    const submission = newSubmission();
    await Promise.all([first.saveAssertion(assertion), ...audits.map((a) => first.saveAudit(a)), first.createPasSubmission(submission)]);
    await first.saveFeedback({ service: 's', card: 'c', outcome: 'accepted', acceptedSuggestions: ['u'], outcomeTimestamp: 't' });
    const response = {
      id: 'qr-dur-1',
      receivedAt: '2026-11-23T10:00:00.000Z',
      assertionId: assertion.assertionId,
      resource: { resourceType: 'QuestionnaireResponse' as const, id: 'qr-dur-1', status: 'completed' as const, item: [{ linkId: 'weight', answer: [{ valueDecimal: 70 }] }] },
    };
    await first.saveQuestionnaireResponse(response);
    // Written behind a hook's answer: close() writes them before it releases the directory.
    const queued = Array.from({ length: 30 }, () => newAssertion());
    for (const q of queued) await first.queueAssertion(q);
    await first.close();
    await expect(first.saveAudit(newAudit())).rejects.toThrow(/closed/);

    const second = await createStorage({ dataDir: dir });
    try {
      expect(await second.getAssertion(assertion.assertionId)).toEqual(assertion);
      for (const q of queued) expect(await second.getAssertion(q.assertionId)).toEqual(q);
      expect(await second.getAuthorization('PA-DUR-1')).toMatchObject({ source: 'crd' });
      const listed = await second.listAudit(1000);
      for (const a of audits) expect(listed).toContainEqual(a);
      expect(await second.getPasSubmission(submission.id)).toEqual({ ...submission, updatedAt: submission.createdAt, decisions: [], revision: 0 });
      expect(await second.saveFeedback({ service: 's', card: 'c', outcome: 'accepted', acceptedSuggestions: ['u'], outcomeTimestamp: 't' })).toBe(false);
      expect(await second.getQuestionnaireResponse('qr-dur-1')).toEqual(response);
      const versions = await second.driver.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      expect(versions.map((v) => Number(v.version))).toEqual(MIGRATIONS.map((m) => m.version));
    } finally {
      await second.close();
    }
  }, 120_000);

  it("reads, over an existing directory, the files of PGlite's image that PostgreSQL opens only when asked (read from disk on first use)", async () => {
    // The directory exists, so its PGlite reads its filesystem image lazily (pglite-worker.ts lazyFsImage): a time zone
    // other than UTC, a text-search dictionary's stop words and an ICU collation come from files nobody read at start.
    const driver = await openPglite(dir);
    try {
      const [row] = await driver.query<{ local: string; words: string; icu: boolean }>(
        `SELECT ('2026-01-15 12:00:00+00'::timestamptz AT TIME ZONE 'America/New_York')::text AS local,
                to_tsvector('english', 'the patients were relapsing')::text AS words,
                'a' < 'B' COLLATE "und-x-icu" AS icu`,
      );
      expect(row).toEqual({ local: '2026-01-15 07:00:00', words: "'patient':2 'relaps':4", icu: true });
    } finally {
      await driver.close();
    }
  }, 120_000);

  it('refuses a data directory locked by a running process', async () => {
    writeFileSync(join(dir, 'storage.lock'), `${process.ppid}\n`);
    await expect(createStorage({ dataDir: dir })).rejects.toThrow(/in use by process/);
  });

  it.runIf(existsSync('/proc/self/status'))('takes over a lock whose process has exited but is not yet reaped (a zombie, as a SIGKILLed server is until its parent waits)', async () => {
    // `sleep 0` exits at once; its parent execs `sleep 30`, which never waits for it: a zombie while the parent runs.
    const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const zombie = Number((await new Promise<string>((resolve) => parent.stdout.once('data', (d) => resolve(String(d))))).trim());
      const state = () => /^State:\s*(\S)/m.exec(readFileSync(`/proc/${zombie}/status`, 'utf8'))?.[1];
      while (state() !== 'Z') await new Promise((r) => setTimeout(r, 10));
      const zdir = tempDir();
      writeFileSync(join(zdir, 'storage.lock'), `${zombie}\n${hostname()}\n`);
      const driver = await openPglite(zdir);
      await driver.close();
    } finally {
      parent.kill('SIGKILL');
    }
  }, 60_000);

  it('takes over a lock left by a process that no longer runs, and refuses a schema newer than this build', async () => {
    // A SIGKILLed server leaves its lock file behind; pid 2^22 + 1 is above Linux's pid_max default.
    writeFileSync(join(dir, 'storage.lock'), `${4_194_305}\n`);
    const s = await createStorage({ dataDir: dir });
    await s.driver.query("INSERT INTO schema_migrations (version, name) VALUES (9999, 'from the future')");
    await s.close();
    await expect(createStorage({ dataDir: dir })).rejects.toThrow(/schema version 9999 is newer/);
  }, 60_000);
});

describe("the embedded PostgreSQL's write-ahead log", () => {
  it('starts a new WAL segment without first writing it full of zeros, and reads back every row written across the segment boundary after reopen', async () => {
    // PostgreSQL's default (wal_init_zero) writes 16 MB of zeros into each new segment, which Emscripten's pwritev
    // copies into 1 MiB JavaScript buffers that the worker keeps until its next collection: 16 MiB more resident for a
    // moment, every 16 MB of WAL (README "Memory", session 54). Off, the segment is extended by its last byte, so
    // only what PostgreSQL wrote into it takes disk blocks.
    const dir = tempDir();
    const walDir = join(dir, 'pglite', 'pg_wal');
    const segments = () => readdirSync(walDir).filter((f) => /^[0-9A-F]{24}$/.test(f)).sort();
    const SEGMENT = 16 * 1024 * 1024;
    const driver = await openPglite(dir);
    try {
      const before = segments();
      // About 20 MB of WAL, stored uncompressed (STORAGE EXTERNAL): more than one segment, whatever the start's offset.
      await driver.exec(`CREATE TABLE wal_probe (n int PRIMARY KEY, body text); ALTER TABLE wal_probe ALTER COLUMN body SET STORAGE EXTERNAL;
        INSERT INTO wal_probe SELECT n, repeat(md5(n::text), 200) FROM generate_series(1, 3000) n;`);
      const started = segments().filter((s) => !before.includes(s));
      expect(started.length).toBeGreaterThan(0);
      const current = statSync(join(walDir, started[started.length - 1]));
      expect(current.size).toBe(SEGMENT);
      // The segment being written holds only what was written into it: less than its size in disk blocks.
      expect(current.blocks * 512).toBeLessThan(SEGMENT);
    } finally {
      await driver.close();
    }
    const reopened = await openPglite(dir);
    try {
      const [row] = await reopened.query<{ rows: string; bytes: string }>('SELECT count(*) AS rows, sum(length(body)) AS bytes FROM wal_probe');
      expect({ rows: Number(row.rows), bytes: Number(row.bytes) }).toEqual({ rows: 3000, bytes: 3000 * 6400 });
    } finally {
      await reopened.close();
    }
  }, 120_000);
});

/**
 * Two containers sharing a volume each see the other's pid in their own pid namespace (often both pid 1), so the lock
 * names its host too, and a lock from another host is held while its holder renews its lease.
 */
describe('the data directory lock across hosts', () => {
  it("refuses a lock another host renewed within the lease, even one naming this process's own pid (containers both run as pid 1)", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'storage.lock'), `${process.pid}\nanother-container\n`);
    await expect(openPglite(dir)).rejects.toThrow(/in use by process \d+ on host another-container/);
    writeFileSync(join(dir, 'storage.lock'), `1\nanother-container\n`);
    await expect(openPglite(dir)).rejects.toThrow(/on host another-container/);
  });

  it('takes over a lock another host stopped renewing 30 s ago, and writes its own pid and host', async () => {
    const dir = tempDir();
    const lock = join(dir, 'storage.lock');
    writeFileSync(lock, `1\nanother-container\n`);
    const past = new Date(Date.now() - 31_000);
    utimesSync(lock, past, past);
    const driver = await openPglite(dir);
    try {
      expect(readFileSync(lock, 'utf8')).toBe(`${process.pid}\n${hostname()}\n`);
    } finally {
      await driver.close();
    }
    expect(existsSync(lock)).toBe(false);
  }, 60_000);

  it('renews its own lease while open, so another host never sees it lapse', async () => {
    const dir = tempDir();
    const lock = join(dir, 'storage.lock');
    const driver = await openPglite(dir, { lockRenewMs: 50 });
    try {
      const past = new Date(Date.now() - 60_000);
      utimesSync(lock, past, past);
      // Back-dated past the 30 s lease, the lock would be taken over; the renewal moves it forward again.
      for (let i = 0; i < 200 && statSync(lock).mtimeMs <= past.getTime(); i++) await new Promise((r) => setTimeout(r, 25));
      expect(statSync(lock).mtimeMs).toBeGreaterThan(past.getTime());
      expect(readFileSync(lock, 'utf8')).toBe(`${process.pid}\n${hostname()}\n`);
    } finally {
      await driver.close();
    }
  }, 60_000);
});

describe('migration 6: the client that filed each PAS request and DTR response', () => {
  it('names, from the access log, the client of what was filed before, where exactly one client is named', async () => {
    const driver = await openPglite(tempDir());
    try {
      await migrate(driver, { migrations: MIGRATIONS.filter((m) => m.version <= 5) });
      const submission = async (id: string, bundleIdentifier: string) =>
        driver.query(
          `INSERT INTO pas_submissions (id, bundle_identifier, request_hash, payer, claim_identifiers, patient_identifiers, status, review_action, needed,
             claim_response, response_bundle, request_bundle, detail, created_at, updated_at)
           VALUES ($1, $2, 'h', 'mmm', '[]', '[]', 'pended', 'A4', '[]', '{}', '{}', '{}', '{}', now(), now())`,
          [id, bundleIdentifier],
        );
      const access = async (clientId: string, operation: string, status: number, resourceId: string) =>
        driver.query(
          `INSERT INTO api_access_log (request_id, at, client_id, operation, resource_ids, status, outcome) VALUES ('r', now(), $1, $2, $3::text::jsonb, $4, 'ok')`,
          [clientId, operation, JSON.stringify([resourceId]), status],
        );
      await submission('filed-by-a', 'urn:ehr-a:pas|T-1');
      await access('ehr-a', 'POST /Claim/$submit', 200, 'Bundle?identifier=urn:ehr-a:pas|T-1');
      await submission('no-system', '|T-2');
      await access('ehr-a', 'POST /Claim/$submit', 200, 'Bundle?identifier=T-2');
      // Two clients answered under one identifier (the second got the first's replay): no one is named.
      await submission('two-clients', 'urn:shared|T-3');
      await access('ehr-a', 'POST /Claim/$submit', 200, 'Bundle?identifier=urn:shared|T-3');
      await access('ehr-b', 'POST /Claim/$submit', 200, 'Bundle?identifier=urn:shared|T-3');
      await submission('not-logged', 'urn:ehr-a:pas|T-4');
      await driver.query(`INSERT INTO questionnaire_responses (id, received_at, assertion_id, resource) VALUES ('qr-1', now(), 'a', '{"resourceType":"QuestionnaireResponse"}')`);
      await access('ehr-b', 'POST /QuestionnaireResponse', 201, 'QuestionnaireResponse/qr-1');

      expect(await migrate(driver)).toEqual(MIGRATIONS.filter((m) => m.version >= 6).map((m) => m.version));
      const storage = new SqlStorage(driver);
      const clientOf = async (id: string) => (await storage.getPasSubmission(id))?.clientId;
      expect([await clientOf('filed-by-a'), await clientOf('no-system'), await clientOf('two-clients'), await clientOf('not-logged')]).toEqual(['ehr-a', 'ehr-a', undefined, undefined]);
      expect((await storage.getQuestionnaireResponse('qr-1'))?.clientId).toBe('ehr-b');
    } finally {
      await driver.close();
    }
  }, 60_000);
});

/**
 * Runs a migration check on a new store migrated up to (not including) `version`: the check writes as the older
 * schema did, runs the rest of the migrations and reads back.
 */
async function checkMigration(
  version: number,
  check: typeof checkIdentifierIndexMigration,
): Promise<void> {
  const driver = await openPglite(tempDir());
  try {
    await migrate(driver, { migrations: MIGRATIONS.filter((m) => m.version < version) });
    await check(driver, () => migrate(driver), (d) => new SqlStorage(d));
  } finally {
    await driver.close();
  }
}

describe('migration 13: indexes for the payer API, reviewer and notifier lookups', () => {
  it('finds requests filed before it by every identifier as before', () => checkMigration(13, checkIdentifierIndexMigration), 60_000);
});

describe("migration 15: which of a CRD assertion's facts the order's earlier DTR answers gave", () => {
  it('reads an assertion written before it as it was, and keeps the names of one written after', () => checkMigration(15, checkAssertionAnsweredFactsMigration), 60_000);
});

describe("migration 20: what a reviewer approved, kept on the order's approving event", () => {
  it("copies a reviewer's approval given before it from the reviewed item, or what the item kept of it", () => checkMigration(20, checkApprovedItemMigration), 60_000);
});

describe('migration 12: the date each CRD assertion judged its order on', () => {
  it('reads an assertion written before it as it was, and keeps the date of one written after', () => checkMigration(12, checkAssertionOrderDateMigration), 60_000);
});
