/**
 * Order-record reads that arrive together share one statement (README "`$questionnaire-package`: where the time
 * goes"): every `$questionnaire-package`, DTR determination and PAS decision reads its order's record, and under 32
 * requests in flight one round trip to the embedded database's thread per read was most of that thread's work. What
 * must not change for a caller: each gets its own order's record (the drug included), read after it asked, and an
 * order with no record reads as none.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStorage } from '../../src/storage/create-storage.js';
import type { SqlStorage } from '../../src/storage/sql-storage.js';
import type { OrderKey, OrderState } from '../../src/storage/storage.js';

describe('embedded storage: order-record reads arriving together', () => {
  const dir = mkdtempSync(join(tmpdir(), 'priorpath-order-reads-'));
  let storage: SqlStorage;
  beforeAll(async () => {
    storage = await createStorage({ dataDir: dir });
  }, 120_000);
  afterAll(async () => {
    await storage?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const blinatumomab: OrderKey = { payer: 'centene', patientId: 'pt-reads-1', orderRef: 'MedicationRequest/mr-reads-1', drug: 'blinatumomab' };
  // The same order reference under another drug's policy (an order changed to another drug keeps its id).
  const inotuzumab: OrderKey = { ...blinatumomab, drug: 'inotuzumab' };
  const otherPatient: OrderKey = { payer: 'centene', patientId: 'pt-reads-2', orderRef: 'MedicationRequest/mr-reads-2', drug: 'blinatumomab' };
  const change = (key: OrderKey, state: OrderState, reason: string) =>
    storage.applyOrderChange({ key, from: ['auth-needed', 'not-covered'], change: { state, at: new Date().toISOString(), source: 'crd', actor: 'crd', reason } });

  it('gives each caller its own order\'s record from one statement', async () => {
    await change(blinatumomab, 'auth-needed', 'MRD result needed');
    await change(inotuzumab, 'not-covered', 'not on formulary');
    await change(otherPatient, 'auth-needed', 'Ph status needed');
    const driver = storage.driver;
    const query = driver.query.bind(driver);
    let statements = 0;
    driver.query = <T>(sql: string, params: unknown[] = []) => (statements++, query<T>(sql, params));
    try {
      const [a, b, c, none] = await Promise.all([
        storage.getOrderRecord(blinatumomab),
        storage.getOrderRecord(inotuzumab),
        storage.getOrderRecord(otherPatient),
        storage.getOrderRecord({ ...otherPatient, drug: 'inotuzumab' }),
      ]);
      expect(a).toMatchObject({ ...blinatumomab, state: 'auth-needed', history: [{ reason: 'MRD result needed' }] });
      expect(b).toMatchObject({ ...inotuzumab, state: 'not-covered', history: [{ reason: 'not on formulary' }] });
      expect(c).toMatchObject({ ...otherPatient, state: 'auth-needed', history: [{ reason: 'Ph status needed' }] });
      expect(none).toBeUndefined();
      expect(statements).toBe(1);
    } finally {
      driver.query = query;
    }
  });

  it('reads a change made after the read was asked for: no record is kept between reads', async () => {
    const before = await storage.getOrderRecord(otherPatient);
    expect(before?.state).toBe('auth-needed');
    await change(otherPatient, 'not-covered', 'coverage ended');
    const [again, same] = await Promise.all([storage.getOrderRecord(otherPatient), storage.getOrderRecord(otherPatient)]);
    expect(again?.state).toBe('not-covered');
    // Two callers about one order each get a copy of their own.
    expect(same).toEqual(again);
    expect(same).not.toBe(again);
  });
});
