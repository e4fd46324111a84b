/**
 * The payer API's and the reviewer's reads (PAS `$inquire`, a `$submit` replay or Claim Update finding its request,
 * the pended queue, the Decided list, one request with its decisions, DTR's response read, subscription notifications and their outbox)
 * and their decisions' writes must each find their rows through an index: PAS data grows with every request ever
 * filed, and a statement that can only scan costs every call time in proportion to it (README "Storage off the hook's
 * path"). Each statement's generic plan is read with sequential scans discouraged: a table scanned all the same has no
 * index the statement can use. On embedded PGlite, and on PostgreSQL with DATABASE_URL.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStorage } from '../../src/storage/create-storage.js';
import type { SqlStorage } from '../../src/storage/sql-storage.js';
import type { GuardedOrderChange, OrderKey } from '../../src/storage/storage.js';
import { recordStatements, tablesScannedWithoutChoice } from './plan-scans.js';
import { newSubmission } from './storage-contract.js';

const url = process.env.DATABASE_URL;
const schema = `pp_plans_${randomUUID().replace(/-/g, '').slice(0, 12)}`;

const backends: { name: string; open: () => Promise<SqlStorage>; cleanUp: (s: SqlStorage | undefined) => Promise<void> }[] = [];
{
  const dir = mkdtempSync(join(tmpdir(), 'priorpath-reader-plans-'));
  backends.push({
    name: 'embedded PGlite',
    open: () => createStorage({ dataDir: dir }),
    cleanUp: async (s) => {
      await s?.close();
      rmSync(dir, { recursive: true, force: true });
    },
  });
}
if (url) {
  backends.push({
    name: 'PostgreSQL (DATABASE_URL)',
    open: () => createStorage({ databaseUrl: url, dataDir: '/nonexistent-unused', schema }),
    cleanUp: async (s) => {
      await s?.driver.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      await s?.close();
    },
  });
}

const orderChange = (key: OrderKey, submissionId: string): GuardedOrderChange => ({
  key,
  from: ['auth-needed', 'not-covered'],
  change: { state: 'pended', at: new Date().toISOString(), source: 'pas', actor: 'client-a', reason: 'documentation needed', submissionId },
});

describe.each(backends)("the payer API's and the reviewer's statements on $name", ({ open, cleanUp }) => {
  let storage: SqlStorage;
  let recording = false;
  let sent: Map<string, unknown[]>;
  beforeAll(async () => {
    storage = await open();
    sent = recordStatements(storage.driver, () => recording);
  }, 120_000);
  afterAll(() => cleanUp(storage));

  it('finds every row through an index: no statement can only scan a table', async () => {
    const a = newSubmission({ clientId: 'client-a' });
    const key: OrderKey = { payer: a.payer, patientId: `pt-${a.id}`, orderRef: `MedicationRequest/${a.id}`, drug: 'blinatumomab' };
    await storage.createPasSubmissionForOrders(a, [orderChange(key, a.id)]);
    const b = newSubmission();
    await storage.createPasSubmission(b);
    const now = new Date().toISOString();
    await storage.saveSubscription({
      id: `sub-${a.id}`, owner: 'client-a', status: 'active', topic: 'http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic',
      filters: ['org-identifier=1234567890'], endpoint: 'http://127.0.0.1:9/hook', headers: [], content: 'id-only', resource: { resourceType: 'Subscription' },
      eventsCount: 0, createdAt: now, updatedAt: now,
    });

    recording = true;
    // PAS: $inquire by each kind of identifier, a $submit replay or Claim Update finding its request, one request.
    await storage.findPasSubmissions({ ids: [a.id], readableBy: 'client-a' });
    await storage.findPasSubmissions({ bundleIdentifiers: [a.bundleIdentifier], claimIdentifiers: a.claimIdentifiers, preAuthRefs: ['PA-MMM-1'], patientIdentifiers: a.patientIdentifiers });
    await storage.getPasSubmissionByBundleIdentifier(a.bundleIdentifier, 'client-a');
    await storage.getPasSubmissionByBundleIdentifier('urn:test:bundle|unknown');
    await storage.findPasUpdate(a.bundleIdentifier, 'client-a', a.requestHash);
    await storage.getAuthorization('PA-MMM-1');
    await storage.getQuestionnaireResponse(randomUUID());
    // The reviewer: the queue, one request and its orders, a decision.
    await storage.listPendedSubmissions(50);
    await storage.listReviewDecisions({ since: new Date(Date.now() - 7 * 86_400_000).toISOString(), limit: 200 });
    await storage.findOrderRecordsBySubmission(a.id);
    await storage.getOrderRecord(key);
    const found = (await storage.getPasSubmission(b.id))!;
    await storage.recordReviewDecision({
      decision: { submissionId: b.id, decision: 'deny', reviewer: 'dr-r', reason: 'criteria not met', decidedAt: now },
      next: { status: 'denied', reviewAction: 'A3', needed: [], claimResponse: found.claimResponse, responseBundle: found.responseBundle, detail: found.detail },
      revision: found.revision,
    });
    // A Claim Update cancelling a request that carried its order's approval: whether another request still answers it
    // (any of its items: migration 17), decided with the order's record locked.
    const c = newSubmission();
    await storage.createPasSubmission(c);
    const approvedKey: OrderKey = { ...key, orderRef: `MedicationRequest/${c.id}` };
    const number = `PA-PLAN-${c.id.slice(0, 8)}`;
    const withdraw = orderChange(approvedKey, c.id);
    await storage.applyOrderChange({ ...withdraw, change: { ...withdraw.change, state: 'approved', authorization: { number, start: '2026-11-23', end: '2027-05-22' } } });
    await storage.updatePasSubmission({
      update: { submissionId: c.id, bundleIdentifier: `urn:test:cancel|${c.id}`, requestHash: 'c'.repeat(64), claimIdentifiers: [], kind: 'cancel', requestBundle: {}, createdAt: now },
      revision: 0,
      next: { status: 'cancelled', reviewAction: 'C', needed: [], claimResponse: {}, responseBundle: {}, detail: { items: [] }, requestBundle: {}, claimIdentifiers: [] },
      orders: [],
      withdrawals: [{ number, change: { ...withdraw, from: ['approved'], change: { ...withdraw.change, state: 'auth-needed', withdrawsApproval: true } } }],
    });
    expect((await storage.getOrderRecord(approvedKey))?.state).toBe('auth-needed');
    // Subscriptions: the notifier's events and outbox, a subscription's status, $events.
    const events = await storage.pendingPasEvents(10);
    for (const e of events) await storage.dispatchPasEvent(e.id, e.submissionId, [`sub-${a.id}`], now);
    const due = await storage.claimDueDeliveries(new Date(Date.now() + 60_000).toISOString(), 30_000, 10);
    for (const d of due) await storage.failDelivery(d.id, now, 'connection refused');
    for (const d of due) await storage.completeDelivery(d.id, now);
    await storage.countUndelivered();
    await storage.setSubscriptionStatus(`sub-${a.id}`, 'error', now);
    await storage.setSubscriptionStatus(`sub-${a.id}`, 'active', now);
    await storage.claimHeartbeat(`sub-${a.id}`, now, now);
    await storage.listSubscriptionEvents(`sub-${a.id}`, 1, 10, 10);
    await storage.getSubscription(`sub-${a.id}`);
    recording = false;
    expect(events.length).toBeGreaterThan(0);
    expect(due.length).toBeGreaterThan(0);
    expect(sent.size).toBeGreaterThanOrEqual(20);

    const scans: Record<string, string[]> = {};
    for (const [sql, params] of sent) {
      const tables = await tablesScannedWithoutChoice(storage.driver, sql, params);
      if (tables.length > 0) scans[sql.trim().replace(/\s+/g, ' ').slice(0, 120)] = tables;
    }
    expect(scans).toEqual({});
  }, 120_000);
});
