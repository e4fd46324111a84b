/**
 * The statements a write-behind batch runs (a hook's assertion, audit line and order change, and the read-back of an
 * awaited approval), and the hook's reads (an order's record, a signing's assertion, its JWT's replay record), must
 * touch only the rows they write and read: looked up in an index, never a whole table scanned. Embedded PGlite has no autovacuum, so the
 * planner never has statistics and cannot see how few rows a batch's JSON parameter holds; a statement it plans as a
 * hash join over a sequential scan costs the database's thread time in proportion to every order ever recorded, once
 * per batch (README "Storage off the hook's path"). This reads the generic plan of every statement sent, as the
 * embedded database caches it, and names any table scanned.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStorage } from '../../src/storage/create-storage.js';
import type { SqlStorage } from '../../src/storage/sql-storage.js';
import type { GuardedOrderChange, OrderKey } from '../../src/storage/storage.js';
import { newAssertion, newAudit } from './storage-contract.js';

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  Plans?: PlanNode[];
}

/** Every relation a plan reads with a sequential scan. */
function scannedTables(node: PlanNode): string[] {
  const own = node['Node Type'] === 'Seq Scan' && node['Relation Name'] ? [node['Relation Name']] : [];
  return [...own, ...(node.Plans ?? []).flatMap(scannedTables)];
}

const orderKey = (): OrderKey => ({ payer: 'centene', patientId: `pt-${randomUUID()}`, orderRef: `MedicationRequest/${randomUUID()}`, drug: 'blinatumomab' });

const change = (key: OrderKey, state: 'auth-needed' | 'approved'): GuardedOrderChange => ({
  key,
  from: ['auth-needed', 'not-covered'],
  change: {
    state,
    at: new Date().toISOString(),
    source: 'crd',
    actor: `order-sign ${randomUUID()}`,
    reason: state === 'approved' ? 'criteria met' : 'MRD level not documented',
    policyId: 'centene-blinatumomab',
    ...(state === 'approved' ? { authorization: { number: `PA-CENTENE-${randomUUID().slice(0, 8)}`, start: '2026-11-23', end: '2027-05-22' } } : {}),
  },
});

describe("embedded storage on the hook's path", () => {
  const dir = mkdtempSync(join(tmpdir(), 'priorpath-plans-'));
  let storage: SqlStorage;
  const sent = new Map<string, unknown[]>();
  /** Statements sent with query() are recorded while the hook's reads run (not the EXPLAINs, nor listAudit). */
  let recording = false;
  beforeAll(async () => {
    storage = await createStorage({ dataDir: dir });
    const driver = storage.driver;
    const batch = driver.batch.bind(driver);
    const query = driver.query.bind(driver);
    driver.batch = (steps) => {
      for (const s of steps) sent.set(s.sql, s.params ?? []);
      return batch(steps);
    };
    driver.query = <T>(sql: string, params: unknown[] = []) => {
      if (recording) sent.set(sql, params);
      return query<T>(sql, params);
    };
  }, 120_000);
  afterAll(async () => {
    await storage?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("looks every row up in an index: no statement of a write-behind batch or of the hook's reads scans a table", async () => {
    // Signings as the hook writes them: provisional states behind the answer, approvals awaited, with their
    // assertions and audit lines; enough of them that each table spans many pages.
    for (let round = 0; round < 6; round++) {
      await Promise.all(
        Array.from({ length: 40 }, async (_, i) => {
          const key = orderKey();
          const approving = i % 2 === 0;
          // An approval is written with its assertion (one batch); a provisional state's assertion is queued.
          if (approving) await storage.applyOrderChange(change(key, 'approved'), newAssertion({ payer: key.payer, patientId: key.patientId, orderRef: key.orderRef }));
          else await storage.queueOrderChange(change(key, 'auth-needed'));
          if (!approving) await storage.queueAssertion(newAssertion({ patientId: key.patientId, orderRef: key.orderRef }));
          await storage.saveAudit(newAudit());
          // The CDS client JWT's replay record (CDS_AUTH on), some of them expired by now.
          await storage.recordJti({ issuer: 'cds:https://ehr.example.org', jti: randomUUID(), expiresAtMs: Date.now() + (i % 3 === 0 ? -1000 : 300_000) }, Date.now() - 60_000);
        }),
      );
    }
    await storage.listAudit(1);
    // The hook's reads: a signing of orders already recorded, and a DTR read of a signing's assertion.
    const recorded = orderKey();
    await storage.applyOrderChange(change(recorded, 'approved'));
    const assertion = newAssertion({ patientId: recorded.patientId, orderRef: recorded.orderRef });
    await storage.saveAssertion(assertion);
    recording = true;
    expect(await storage.findOrderRecords({ payer: recorded.payer, patientId: recorded.patientId, orderRefs: [recorded.orderRef] })).toHaveLength(1);
    expect(await storage.getAssertion(assertion.assertionId)).toEqual(assertion);
    expect(await storage.recordJti({ issuer: 'cds:https://ehr.example.org', jti: randomUUID(), expiresAtMs: Date.now() + 300_000 })).toBe(true);
    recording = false;
    expect(sent.size).toBeGreaterThanOrEqual(6);

    const scans: Record<string, string[]> = {};
    for (const [sql, params] of sent) {
      // GENERIC_PLAN: the plan made without the parameters' values, as a prepared statement's plan is kept.
      const [row] = await storage.driver.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] | string }>(`EXPLAIN (GENERIC_PLAN, FORMAT JSON) ${sql}`, params);
      const plan = row['QUERY PLAN'];
      const tables = scannedTables((typeof plan === 'string' ? (JSON.parse(plan) as [{ Plan: PlanNode }]) : plan)[0].Plan);
      if (tables.length > 0) scans[sql.trim().split('\n')[0]] = tables;
    }
    expect(scans).toEqual({});
  }, 120_000);
});
