/**
 * PGlite's worker stops answering (the review of s48: on a full DATA_DIR it spun in WebAssembly and never replied, and
 * every storage call hung for good: readiness, review reads, PAS submits, the SIGTERM drain). A statement that never
 * ends jams the real worker the same way: every waiting call is answered 503 (StorageUnavailableError) within the
 * statement deadline, the worker is replaced on the same DATA_DIR, and what was committed before is all there.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openPglite } from '../../src/storage/pglite-driver.js';
import { StorageUnavailableError } from '../../src/storage/storage.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Retries `call` while storage is unavailable (the successor opening), a bounded number of times. */
async function once<T>(call: () => Promise<T>, tries = 600): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await call();
    } catch (err) {
      if (!(err instanceof StorageUnavailableError) || i >= tries) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

describe('embedded storage whose worker stops answering', () => {
  it('answers the waiting calls 503 instead of hanging, replaces the worker, and keeps every commit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'priorpath-jammed-'));
    dirs.push(dir);
    const restarts: { reopened: boolean }[] = [];
    const driver = await openPglite(dir, { statementDeadlineMs: 3_000, onRestart: (e) => restarts.push(e) });
    try {
      // Acknowledged: each resolved (on a loaded host a slow statement may meet the deadline: then it is resent).
      await once(() => driver.exec('CREATE TABLE IF NOT EXISTS acknowledged (number text PRIMARY KEY)'));
      await once(() => driver.query('INSERT INTO acknowledged VALUES ($1) ON CONFLICT DO NOTHING', ['PA-MMM-0001']));
      await once(() => driver.transaction(async (tx) => tx.query('INSERT INTO acknowledged VALUES ($1) ON CONFLICT DO NOTHING', ['PA-MMM-0002'])));

      // The worker spins and never replies; a read queued behind it waits on the same worker.
      const jam = driver.exec('DO $$ BEGIN LOOP END LOOP; END $$');
      const behind = driver.query('SELECT count(*) FROM acknowledged');
      await expect(jam).rejects.toBeInstanceOf(StorageUnavailableError);
      await expect(behind).rejects.toBeInstanceOf(StorageUnavailableError);

      const rows = await once(() => driver.query<{ number: string }>('SELECT number FROM acknowledged ORDER BY number'));
      expect(rows.map((r) => r.number)).toEqual(['PA-MMM-0001', 'PA-MMM-0002']);
      expect(restarts).toContainEqual({ reopened: true });
      // The successor takes writes and transactions as the first did.
      await once(() => driver.transaction(async (tx) => tx.query('INSERT INTO acknowledged VALUES ($1) ON CONFLICT DO NOTHING', ['PA-MMM-0003'])));
      expect(await once(() => driver.query('SELECT count(*)::int AS n FROM acknowledged'))).toEqual([{ n: 3 }]);
    } finally {
      await driver.close();
    }
  }, 120_000);
});
