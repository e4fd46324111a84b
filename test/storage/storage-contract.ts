import { randomUUID } from 'node:crypto';
import { expect, it } from 'vitest';
import type { AssertionRecord, GuardedOrderChange, HookAuditRecord, NewPasSubmission, OrderKey, PasQuery, OrderState, Storage, SubscriptionRecord } from '../../src/storage/storage.js';
import { everySubscription, StorageUnavailableError } from '../../src/storage/storage.js';
import type { SqlDriver } from '../../src/storage/sql-driver.js';

/** A pended (A4) or approved (A1) submission with unique identifiers. */
export function newSubmission(overrides: Partial<NewPasSubmission> = {}): NewPasSubmission {
  const id = randomUUID();
  return {
    id,
    bundleIdentifier: `urn:test:bundle|${id}`,
    requestHash: 'a'.repeat(64),
    payer: 'mmm',
    policyId: 'mmm-blinatumomab',
    policyVersion: '2026-11',
    claimIdentifiers: [`urn:trnorg:test|${id}`],
    patientIdentifiers: [`http://example.org/member|${id.slice(0, 8)}`],
    status: 'pended',
    reviewAction: 'A4',
    needed: ['Minimal residual disease (MRD) level, in percent'],
    claimResponse: { resourceType: 'ClaimResponse', id, outcome: 'complete' },
    responseBundle: { resourceType: 'Bundle', type: 'collection', entry: [{ resource: { resourceType: 'ClaimResponse', id } }] },
    requestBundle: { resourceType: 'Bundle', type: 'collection', identifier: { system: 'urn:test:bundle', value: id } },
    detail: { items: [{ sequence: 1, outcome: 'documentation-needed' }] },
    createdAt: new Date().toISOString(),
    ...overrides,
  };
}

export function newAssertion(overrides: Partial<AssertionRecord> = {}): AssertionRecord {
  return {
    assertionId: randomUUID(),
    createdAt: new Date().toISOString(),
    payer: 'bcbsnc',
    policyId: 'bcbsnc-blinatumomab',
    policyVersion: '2026-11',
    patientId: 'patient-1',
    orderRef: 'MedicationRequest/order-1',
    hookInstance: randomUUID(),
    outcome: 'documentation-needed',
    facts: { bAll: true, mrdPercent: 0.25, diseaseStatus: 'cr1' },
    missingFacts: ['specialist'],
    ...overrides,
  };
}

/**
 * Migration 12 on a database migrated to 11 (`driver`, its schema as the service's search path has it): an assertion
 * written before it (no order date) reads back as it did, with no `orderDate`, and one written after keeps its date.
 */
export async function checkAssertionOrderDateMigration(driver: SqlDriver, migrate: () => Promise<number[]>, storageOf: (d: SqlDriver) => Storage): Promise<void> {
  const old = newAssertion();
  await driver.query(
    `INSERT INTO crd_assertions (assertion_id, created_at, payer, policy_id, policy_version, patient_id, order_ref, hook_instance, outcome, facts, missing_facts)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb, $11::text::jsonb)`,
    [old.assertionId, old.createdAt, old.payer, old.policyId, old.policyVersion, old.patientId, old.orderRef, old.hookInstance, old.outcome, JSON.stringify(old.facts), JSON.stringify(old.missingFacts)],
  );
  expect(await migrate()).toContain(12);
  const storage = storageOf(driver);
  const read = await storage.getAssertion(old.assertionId);
  expect(read).toEqual(old);
  expect(read && 'orderDate' in read).toBe(false);
  const dated = newAssertion({ orderDate: '2026-12-21' });
  await storage.saveAssertion(dated);
  expect(await storage.getAssertion(dated.assertionId)).toEqual(dated);
}

/**
 * Migration 15 on a database migrated to 14 (`driver`): an assertion written before it reads back as it did, with no
 * `answeredFacts` (what signing read is all its facts, as before), and one written after keeps the names it was given.
 */
export async function checkAssertionAnsweredFactsMigration(driver: SqlDriver, migrate: () => Promise<number[]>, storageOf: (d: SqlDriver) => Storage): Promise<void> {
  const old = newAssertion({ orderDate: '2026-12-21' });
  await driver.query(
    `INSERT INTO crd_assertions (assertion_id, created_at, payer, policy_id, policy_version, patient_id, order_ref, hook_instance, outcome, facts, missing_facts, order_date)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb, $11::text::jsonb, $12)`,
    [old.assertionId, old.createdAt, old.payer, old.policyId, old.policyVersion, old.patientId, old.orderRef, old.hookInstance, old.outcome, JSON.stringify(old.facts), JSON.stringify(old.missingFacts), old.orderDate],
  );
  expect(await migrate()).toContain(15);
  const storage = storageOf(driver);
  const read = await storage.getAssertion(old.assertionId);
  expect(read).toEqual(old);
  expect(read && 'answeredFacts' in read).toBe(false);
  const answered = newAssertion({ answeredFacts: ['mrdPercent'] });
  await storage.saveAssertion(answered);
  expect(await storage.getAssertion(answered.assertionId)).toEqual(answered);
}

/**
 * Migration 20 on a database migrated to 19 (`driver`): a reviewer's approval given before it keeps what the reviewer
 * approved on its approving event, taken from the reviewed item (its criteria, asked amounts and quantity) or, for an
 * item a Claim Update had pended again since (not A1), from what that item kept of the approval (`approvedBefore`, s45). Other
 * events carry none. Written as the older schema did, in SQL (the storage of this build writes the new column).
 */
export async function checkApprovedItemMigration(driver: SqlDriver, migrate: () => Promise<number[]>, storageOf: (d: SqlDriver) => Storage): Promise<void> {
  const criteria = [{ id: 'max-daily-dose', kind: 'limit', cite: 'CP.PHAR.312 II.A', text: 'dose', result: false, evidence: [{ fact: 'dailyDoseUg', label: 'Daily dose', value: 56, source: 'ehr' }] }];
  const approvedBefore = { criteria, askedAmounts: ['dailyDoseUg'], quantity: { value: 1568, unit: 'ug' } };
  const cases = [
    // Reviewed and still as approved (A1).
    { item: { sequence: 1, reviewAction: 'A1', criteria, askedAmounts: ['dailyDoseUg'], quantity: { value: 1568, unit: 'ug' } }, expected: approvedBefore, source: 'review' },
    // Pended again by a Claim Update asking 112 mcg/day, keeping what was approved.
    {
      item: { sequence: 1, reviewAction: 'A4', criteria: [{ ...criteria[0], evidence: [{ ...criteria[0].evidence[0], value: 112 }] }], askedAmounts: ['dailyDoseUg'], quantity: { value: 3136, unit: 'ug' }, approvedBefore },
      expected: approvedBefore,
      source: 'review',
    },
    // Pended again by an update asking 112 mcg/day, which the reviewer then approved (A1): the approval is the one the
    // item now holds, never the earlier one its approvedBefore still names (review-diff s46 F0).
    {
      item: { sequence: 1, reviewAction: 'A1', criteria: [{ ...criteria[0], evidence: [{ ...criteria[0].evidence[0], value: 112 }] }], askedAmounts: ['dailyDoseUg'], quantity: { value: 3136, unit: 'ug' }, approvedBefore },
      expected: { criteria: [{ ...criteria[0], evidence: [{ ...criteria[0].evidence[0], value: 112 }] }], askedAmounts: ['dailyDoseUg'], quantity: { value: 3136, unit: 'ug' } },
      source: 'review',
    },
    // Stored before asked amounts and quantities were kept: they stay absent (read as then).
    { item: { sequence: 1, reviewAction: 'A1', criteria }, expected: { criteria }, source: 'review' },
    // Approved by the rules in PAS: no reviewer's approval to keep.
    { item: { sequence: 1, reviewAction: 'A1', criteria }, expected: undefined, source: 'pas' },
  ];
  const keys: OrderKey[] = [];
  for (const c of cases) {
    const key: OrderKey = { payer: 'centene', patientId: `patient-${randomUUID().slice(0, 8)}`, orderRef: `MedicationRequest/${randomUUID()}`, drug: 'blinatumomab' };
    const s = newSubmission({ payer: 'centene', status: 'approved', reviewAction: 'A1', needed: [], detail: { items: [{ ...c.item, order: key }] } });
    await driver.query(
      `INSERT INTO pas_submissions (id, bundle_identifier, request_hash, payer, policy_id, policy_version, claim_identifiers, patient_identifiers, status, review_action, needed,
         claim_response, response_bundle, request_bundle, detail, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8::text::jsonb, $9, $10, $11::text::jsonb, $12::text::jsonb, $13::text::jsonb, $14::text::jsonb, $15::text::jsonb, $16, $16)`,
      [s.id, s.bundleIdentifier, s.requestHash, s.payer, s.policyId, s.policyVersion, JSON.stringify(s.claimIdentifiers), JSON.stringify(s.patientIdentifiers), s.status, s.reviewAction,
        JSON.stringify(s.needed), JSON.stringify(s.claimResponse), JSON.stringify(s.responseBundle), JSON.stringify(s.requestBundle), JSON.stringify(s.detail), s.createdAt],
    );
    const orderId = randomUUID();
    await driver.query(
      `INSERT INTO order_authorizations (id, payer, patient_id, order_ref, drug, state, reason, authorization_number, auth_start, auth_end, submission_id, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, 'approved', 'approved', $6, '2026-11-20', '2027-05-19', $7, now(), now())`,
      [orderId, key.payer, key.patientId, key.orderRef, key.drug, `PA-CENTENE-${orderId.slice(0, 8)}`, s.id],
    );
    await driver.query(
      `INSERT INTO order_authorization_events (order_id, at, source, actor, state, reason, submission_id) VALUES ($1, now(), 'crd', 'order-sign h', 'auth-needed', 'documentation', NULL)`,
      [orderId],
    );
    await driver.query(
      `INSERT INTO order_authorization_events (order_id, at, source, actor, state, reason, authorization_number, submission_id) VALUES ($1, now(), $2, 'Dr. R. Okafor', 'approved', 'ok', $3, $4)`,
      [orderId, c.source, `PA-CENTENE-${orderId.slice(0, 8)}`, s.id],
    );
    keys.push(key);
  }
  expect(await migrate()).toContain(20);
  const storage = storageOf(driver);
  for (const [n, c] of cases.entries()) {
    const record = await storage.getOrderRecord(keys[n]);
    expect(record?.history.map((h) => h.approvedItem)).toEqual([undefined, c.expected]);
  }
}

/**
 * Migration 13 on a database migrated to 12 (`driver`): requests, an alias and a reviewer's decision filed before it
 * are found by every kind of identifier exactly as before it.
 */
export async function checkIdentifierIndexMigration(driver: SqlDriver, migrate: () => Promise<number[]>, storageOf: (d: SqlDriver) => Storage): Promise<void> {
  const storage = storageOf(driver);
  const pended = newSubmission({ clientId: 'ehr-a' });
  const other = newSubmission();
  await storage.createPasSubmission(pended);
  await storage.createPasSubmission(other);
  await storage.addPasSubmissionAlias({
    bundleIdentifier: `urn:test:bundle|repeat-${pended.id}`, clientId: 'ehr-a', submissionId: pended.id, requestHash: 'b'.repeat(64),
    claimIdentifiers: [`urn:trnorg:test|repeat-${pended.id}`], createdAt: new Date().toISOString(),
  });
  const number = `PA-MMM-${pended.id.slice(0, 8)}`;
  const stored = (await storage.getPasSubmission(other.id))!;
  await storage.recordReviewDecision({
    decision: { submissionId: other.id, decision: 'approve', reviewer: 'dr-r', reason: 'criteria met', decidedAt: new Date().toISOString() },
    next: { status: 'approved', reviewAction: 'A1', needed: [], preAuthRef: number, preAuthPeriod: { start: '2026-12-01', end: '2027-05-31' },
      claimResponse: stored.claimResponse, responseBundle: stored.responseBundle, detail: stored.detail },
    authorization: { number, start: '2026-12-01', end: '2027-05-31' },
    revision: stored.revision,
  });
  const queries: PasQuery[] = [
    { ids: [pended.id] },
    { bundleIdentifiers: [pended.bundleIdentifier] },
    { bundleIdentifiers: [`urn:test:bundle|repeat-${pended.id}`] },
    { claimIdentifiers: [`urn:trnorg:test|repeat-${pended.id}`] },
    { claimIdentifiers: [...pended.claimIdentifiers, ...other.claimIdentifiers] },
    { patientIdentifiers: other.patientIdentifiers },
    { preAuthRefs: [number] },
    { claimIdentifiers: [...pended.claimIdentifiers, ...other.claimIdentifiers], readableBy: 'ehr-b' },
  ];
  const before = await Promise.all(queries.map((q) => storage.findPasSubmissions(q)));
  expect(before.map((found) => found.length)).toEqual([1, 1, 1, 1, 2, 1, 1, 1]);
  expect(await migrate()).toContain(13);
  const after = await Promise.all(queries.map((q) => storageOf(driver).findPasSubmissions(q)));
  expect(after).toEqual(before);
}

export function newAudit(overrides: Partial<HookAuditRecord> = {}): HookAuditRecord {
  return {
    requestId: randomUUID(),
    at: new Date().toISOString(),
    service: 'priorpath-order-sign',
    hookInstance: randomUUID(),
    clientIss: 'https://ehr.example.org',
    patientIdHash: 'f'.repeat(32),
    status: 200,
    outcome: 'satisfied',
    latencyMs: 3.4,
    ...overrides,
  };
}

/**
 * The behaviour every Storage backend shares (issue: "PAS prior-auth submission with durable storage"). `get` returns
 * the backend under test, opened once for the file.
 */
export function storageContract(get: () => Storage): void {
  it('round-trips a CRD assertion with its facts, missing facts and authorization', async () => {
    const a = newAssertion({ outcome: 'satisfied', missingFacts: [], authorization: { number: `PA-T-${randomUUID().slice(0, 8)}`, start: '2026-11-01', end: '2027-04-30' } });
    await get().saveAssertion(a);
    expect(await get().getAssertion(a.assertionId)).toEqual(a);
    expect(await get().getAuthorization(a.authorization!.number)).toMatchObject({ source: 'crd', payer: a.payer, assertionId: a.assertionId, start: '2026-11-01', end: '2027-04-30' });
    expect(await get().getAssertion(randomUUID())).toBeUndefined();
  });

  it('keeps the date an assertion judged its order on (DTR and PAS judge the order on it: design.md §7)', async () => {
    const a = newAssertion({ orderDate: '2026-12-21' });
    await get().saveAssertion(a);
    expect(await get().getAssertion(a.assertionId)).toEqual(a);
    // Queued behind a hook's answer, then written: the same date read back.
    const queued = newAssertion({ orderDate: '2027-01-04' });
    await get().queueAssertion(queued);
    expect((await get().getAssertion(queued.assertionId))?.orderDate).toBe('2027-01-04');
  });

  it("keeps the last day of the Coverage an assertion judged its order under (DTR caps an approval there: design.md §4 \"Payer\")", async () => {
    const a = newAssertion({ orderDate: '2026-11-21', coverageEnd: '2026-12-31' });
    await get().saveAssertion(a);
    expect(await get().getAssertion(a.assertionId)).toEqual(a);
    const queued = newAssertion({ coverageEnd: '2027-01-31' });
    await get().queueAssertion(queued);
    expect((await get().getAssertion(queued.assertionId))?.coverageEnd).toBe('2027-01-31');
    // A Coverage with no end: none kept.
    const open = newAssertion();
    await get().saveAssertion(open);
    expect(await get().getAssertion(open.assertionId)).not.toHaveProperty('coverageEnd');
  });

  it("keeps the start an assertion's order stated and the Coverage it was judged under (design.md §6 \"Order date\", §4 \"Payer\"), written alone, queued or with its order", async () => {
    const a = newAssertion({ orderDate: '2026-08-01', orderStart: '2026-08-01', coverageEnd: '2026-12-31', coverageRef: 'Coverage/plan-2026' });
    await get().saveAssertion(a);
    expect(await get().getAssertion(a.assertionId)).toEqual(a);
    const queued = newAssertion({ orderDate: '2026-11-21', orderStart: '2026-11-21', coverageRef: 'Coverage/plan-2027' });
    await get().queueAssertion(queued);
    expect(await get().getAssertion(queued.assertionId)).toMatchObject({ orderStart: '2026-11-21', coverageRef: 'Coverage/plan-2027' });
    const key = orderKey();
    const withOrder = newAssertion({ patientId: key.patientId, orderRef: key.orderRef, orderDate: '2026-11-24', orderStart: '2026-11-24', coverageRef: 'Coverage/c1' });
    await get().applyOrderChange(change(key, 'auth-needed', { assertionId: withOrder.assertionId }), withOrder);
    expect(await get().getAssertion(withOrder.assertionId)).toMatchObject({ orderStart: '2026-11-24', coverageRef: 'Coverage/c1' });
    // An order stating no start, a Coverage with no id: absent, as before.
    const none = newAssertion({ orderDate: '2026-11-03' });
    await get().saveAssertion(none);
    const read = (await get().getAssertion(none.assertionId))!;
    expect('orderStart' in read || 'coverageRef' in read).toBe(false);
  });

  it('keeps optional assertion fields absent when they were absent', async () => {
    const a = newAssertion({ policyId: undefined, policyVersion: undefined, outcome: 'default', facts: {}, missingFacts: [] });
    delete a.policyId;
    delete a.policyVersion;
    await get().saveAssertion(a);
    expect(await get().getAssertion(a.assertionId)).toEqual(a);
  });

  it('stores every one of many concurrent audit lines, newest first, with only ids, hashes and outcomes', async () => {
    const lines = Array.from({ length: 120 }, (_, i) => newAudit({ status: i % 7 === 0 ? 400 : 200, latencyMs: i / 10 }));
    await Promise.all(lines.map((l) => get().saveAudit(l)));
    const listed = await get().listAudit(1000);
    for (const l of lines) expect(listed).toContainEqual(l);
    const mine = listed.filter((l) => lines.some((x) => x.requestId === l.requestId));
    expect(mine.map((l) => l.requestId)).toEqual([...lines].reverse().map((l) => l.requestId));
    expect(Object.keys(mine[0]).sort()).toEqual(['at', 'clientIss', 'hookInstance', 'latencyMs', 'outcome', 'patientIdHash', 'requestId', 'service', 'status']);
  });

  it('stores an audit line once when its write is retried after a COMMIT whose outcome was unknown', async () => {
    const storage = get();
    const driver = (storage as Storage & { driver?: SqlDriver }).driver;
    const line = newAudit();
    if (driver) {
      // The database commits the batch, then the connection drops before the client hears so (an ambiguous COMMIT):
      // the write-behind queue keeps the line and writes it again.
      const batch = driver.batch.bind(driver);
      driver.batch = async (steps) => {
        await batch(steps);
        driver.batch = batch;
        throw new StorageUnavailableError(new Error('Connection terminated unexpectedly'), { outcomeUnknown: true });
      };
      await storage.saveAudit(line);
      for (let i = 0; i < 200 && (storage as Storage & { queuedWrites: number }).queuedWrites > 0; i++) await new Promise((r) => setTimeout(r, 25));
      expect(driver.batch).toBe(batch);
    } else {
      // No connection to lose: the same line (its key included) handed over twice.
      const keyed = { ...line, lineId: randomUUID() };
      await storage.saveAudit(keyed);
      await storage.saveAudit({ ...keyed });
    }
    const listed = (await storage.listAudit(1000)).filter((l) => l.requestId === line.requestId);
    expect(listed).toEqual([line]);
  });

  it('stores each payer API access line once when its statement is retried after an answer that never came', async () => {
    const storage = get();
    const driver = (storage as Storage & { driver?: SqlDriver }).driver;
    const lines = [1, 2].map((n) => ({ requestId: randomUUID(), at: new Date().toISOString(), clientId: 'client-a', operation: 'POST /Claim/$submit', resourceIds: [`Claim/${n}`], status: 200, outcome: 'ok' }));
    if (driver) {
      // The lines share one statement, which the database applies before the connection drops: each is retried alone.
      const query = driver.query.bind(driver);
      driver.query = (async (sql: string, params?: unknown[]) => {
        const rows = await query(sql, params);
        if (!sql.includes('INSERT INTO api_access_log')) return rows;
        driver.query = query;
        throw new StorageUnavailableError(new Error('Connection terminated unexpectedly'), { outcomeUnknown: true });
      }) as SqlDriver['query'];
      await Promise.all(lines.map((l) => storage.saveApiAccess(l)));
      expect(driver.query).toBe(query);
    } else {
      const keyed = lines.map((l) => ({ ...l, lineId: randomUUID() }));
      for (const l of [...keyed, ...keyed]) await storage.saveApiAccess(l);
    }
    const listed = (await storage.listApiAccess(1000)).filter((l) => lines.some((x) => x.requestId === l.requestId));
    expect(listed).toEqual([...lines].reverse());
  });

  it('stores assertions and audit lines queued together in one batch', async () => {
    const as = Array.from({ length: 20 }, () => newAssertion());
    const ls = Array.from({ length: 20 }, () => newAudit({ clientIss: undefined }));
    delete ls[0].clientIss;
    await Promise.all([...as.map((a) => get().saveAssertion(a)), ...ls.map((l) => get().saveAudit(l))]);
    for (const a of as) expect(await get().getAssertion(a.assertionId)).toEqual(a);
    const listed = await get().listAudit(1000);
    expect(listed.find((l) => l.requestId === ls[0].requestId)).toEqual(ls[0]);
  });

  it('stores feedback once per (service, card, outcome, outcomeTimestamp)', async () => {
    const f = { service: 'priorpath-order-sign', card: randomUUID(), outcome: 'overridden', acceptedSuggestions: [], overrideReason: { reason: { code: 'x' } }, outcomeTimestamp: '2026-11-23T10:00:00Z' };
    expect(await get().saveFeedback(f)).toBe(true);
    expect(await get().saveFeedback({ ...f })).toBe(false);
    expect(await get().saveFeedback({ ...f, outcome: 'accepted' })).toBe(true);
    const listed = (await get().listFeedback(1000)).filter((x) => x.card === f.card);
    expect(listed).toHaveLength(2);
    expect(listed).toContainEqual(f);
  });

  it('stores a DTR QuestionnaireResponse under its id, once, and reads back exactly what was stored', async () => {
    const id = randomUUID();
    const r = {
      id,
      receivedAt: '2026-11-23T10:00:00.000Z',
      assertionId: randomUUID(),
      patientId: 'pat-1',
      orderRef: 'MedicationRequest/mr-1',
      resource: {
        resourceType: 'QuestionnaireResponse' as const,
        id,
        status: 'completed' as const,
        questionnaire: 'https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab',
        item: [{ linkId: 'mrd-percent', answer: [{ valueDecimal: 0.5 }] }],
      },
    };
    await get().saveQuestionnaireResponse(r);
    expect(await get().getQuestionnaireResponse(id)).toEqual(r);
    await expect(get().saveQuestionnaireResponse({ ...r, assertionId: randomUUID() })).rejects.toThrow();
    expect(await get().getQuestionnaireResponse(id)).toEqual(r);
    expect(await get().getQuestionnaireResponse(randomUUID())).toBeUndefined();
    // A draft is stored without a determination, and read back without one.
    const draftId = randomUUID();
    const { assertionId: _none, ...undecided } = { ...r, id: draftId, resource: { ...r.resource, id: draftId, status: 'in-progress' as const } };
    await get().saveQuestionnaireResponse(undecided);
    expect(await get().getQuestionnaireResponse(draftId)).toEqual(undecided);
    // Its next version replaces it, once per version; an unknown id is not created.
    const v2 = { ...undecided, receivedAt: '2026-11-23T11:00:00.000Z', resource: { ...undecided.resource, meta: { versionId: '2' } } };
    expect(await get().replaceQuestionnaireResponse(v2, '1')).toBe(true);
    expect(await get().replaceQuestionnaireResponse({ ...v2, resource: { ...v2.resource, meta: { versionId: '3' } } }, '1')).toBe(false);
    expect(await get().getQuestionnaireResponse(draftId)).toEqual(v2);
    const decided = { ...v2, assertionId: randomUUID(), resource: { ...v2.resource, status: 'completed' as const, meta: { versionId: '3' } } };
    expect(await get().replaceQuestionnaireResponse(decided, '2')).toBe(true);
    expect(await get().getQuestionnaireResponse(draftId)).toEqual(decided);
    expect(await get().replaceQuestionnaireResponse({ ...decided, id: randomUUID() }, '1')).toBe(false);
  });

  it('creates a PAS submission once per bundle identifier and returns the stored one on a repeat', async () => {
    const s = newSubmission({ status: 'approved', reviewAction: 'A1', needed: [], preAuthRef: `PA-MMM-${randomUUID().slice(0, 8)}`, preAuthPeriod: { start: '2026-11-23', end: '2027-05-22' } });
    const first = await get().createPasSubmission(s, { number: s.preAuthRef!, start: '2026-11-23', end: '2027-05-22' });
    expect(first.created).toBe(true);
    expect(first.submission).toEqual({ ...s, updatedAt: s.createdAt, decisions: [], revision: 0 });
    const again = await get().createPasSubmission({ ...s, id: randomUUID(), requestHash: 'b'.repeat(64), status: 'denied', reviewAction: 'A3' });
    expect(again.created).toBe(false);
    expect(again.submission.id).toBe(s.id);
    expect(again.submission.requestHash).toBe(s.requestHash);
    expect(await get().getAuthorization(s.preAuthRef!)).toMatchObject({ source: 'pas', submissionId: s.id, payer: 'mmm', start: '2026-11-23', end: '2027-05-22' });
    expect(await get().getPasSubmissionByBundleIdentifier(s.bundleIdentifier)).toMatchObject({ id: s.id });
    expect(await get().getPasSubmission(s.id)).toMatchObject({ bundleIdentifier: s.bundleIdentifier });
  });

  it('lets exactly one of many concurrent identical submissions create the record', async () => {
    const base = newSubmission();
    const results = await Promise.all(Array.from({ length: 8 }, () => get().createPasSubmission({ ...base, id: randomUUID() })));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.submission.id)).size).toBe(1);
  });

  it('finds submissions by id, bundle identifier, claim identifier, authorization number or patient identifier', async () => {
    const s = newSubmission({ status: 'approved', reviewAction: 'A1', needed: [], preAuthRef: `PA-F-${randomUUID().slice(0, 8)}`, preAuthPeriod: { start: '2026-11-01', end: '2027-04-30' } });
    await get().createPasSubmission(s);
    for (const q of [{ ids: [s.id] }, { bundleIdentifiers: [s.bundleIdentifier] }, { claimIdentifiers: ['x|y', s.claimIdentifiers[0]] }, { preAuthRefs: [s.preAuthRef!] }, { patientIdentifiers: s.patientIdentifiers }]) {
      const found = await get().findPasSubmissions(q);
      expect(found.map((f) => f.id), JSON.stringify(q)).toContain(s.id);
    }
    expect(await get().findPasSubmissions({ preAuthRefs: ['PA-NOPE'] })).toEqual([]);
    expect(await get().findPasSubmissions({})).toEqual([]);
  });

  it("keeps one request per client under a Bundle identifier, and finds for a client only its own and those filed without one", async () => {
    const shared = `urn:test:bundle|${randomUUID()}`;
    const a = newSubmission({ bundleIdentifier: shared, clientId: 'ehr-a' });
    const b = newSubmission({ bundleIdentifier: shared, clientId: 'ehr-b' });
    const open = newSubmission({ clientId: undefined });
    expect((await get().createPasSubmission(a)).created).toBe(true);
    const fromB = await get().createPasSubmission(b);
    expect([fromB.created, fromB.submission.id, fromB.submission.clientId]).toEqual([true, b.id, 'ehr-b']);
    expect((await get().createPasSubmission({ ...b, id: randomUUID() })).submission.id).toBe(b.id);
    await get().createPasSubmission(open);

    expect((await get().getPasSubmissionByBundleIdentifier(shared, 'ehr-a'))?.id).toBe(a.id);
    expect((await get().getPasSubmissionByBundleIdentifier(shared, 'ehr-b'))?.id).toBe(b.id);
    expect(await get().getPasSubmissionByBundleIdentifier(shared, 'ehr-c')).toBeUndefined();
    expect((await get().getPasSubmissionByBundleIdentifier(open.bundleIdentifier, 'ehr-c'))?.id).toBe(open.id);
    expect((await get().getPasSubmissionByBundleIdentifier(open.bundleIdentifier))?.clientId).toBeUndefined();

    const q = { bundleIdentifiers: [shared, open.bundleIdentifier] };
    expect((await get().findPasSubmissions({ ...q, readableBy: 'ehr-a' })).map((s) => s.id).sort()).toEqual([a.id, open.id].sort());
    expect((await get().findPasSubmissions({ ...q, readableBy: 'ehr-c' })).map((s) => s.id)).toEqual([open.id]);
    expect((await get().findPasSubmissions(q)).map((s) => s.id).sort()).toEqual([a.id, b.id, open.id].sort());

    // A request collapsed into a pended one is found by its client under its own identifier.
    const alias = `urn:test:bundle|${randomUUID()}`;
    await get().addPasSubmissionAlias({ bundleIdentifier: alias, clientId: 'ehr-a', submissionId: a.id, requestHash: 'c'.repeat(64), claimIdentifiers: [], createdAt: new Date().toISOString() });
    expect((await get().getPasSubmissionByBundleIdentifier(alias, 'ehr-a'))?.id).toBe(a.id);
    expect(await get().getPasSubmissionByBundleIdentifier(alias, 'ehr-b')).toBeUndefined();
  });

  it('lets one Bundle identifier of a client name one request, whichever of an alias and a new request files it first or at once', async () => {
    // design.md §8: the same identifier with other content is a 409. The review of s48 filed one identifier as a
    // resend collapsing into a pended request and as another patient's new request at once: both were stored.
    const at = new Date().toISOString();
    for (const order of ['alias first', 'request first', 'at once'] as const) {
      const pended = newSubmission({ clientId: 'ehr-a' });
      await get().createPasSubmission(pended);
      const name = `urn:ehr.example.org:pas-transaction|${randomUUID()}`;
      const other = newSubmission({ clientId: 'ehr-a', bundleIdentifier: name, requestHash: 'd'.repeat(64) });
      const alias = () => get().addPasSubmissionAlias({ bundleIdentifier: name, clientId: 'ehr-a', submissionId: pended.id, requestHash: 'c'.repeat(64), claimIdentifiers: [], createdAt: at });
      const request = () => get().createPasSubmissionForOrders(other, []);
      let named: Awaited<ReturnType<typeof alias>> | undefined;
      let created: Awaited<ReturnType<typeof request>>;
      if (order === 'alias first') {
        named = await alias();
        created = await request();
      } else if (order === 'request first') {
        created = await request();
        named = await alias();
      } else [named, created] = await Promise.all([alias(), request()]);
      const stored = await get().getPasSubmissionByBundleIdentifier(name, 'ehr-a');
      // One request answers the identifier, and each writer is told which, with the content that named it.
      expect((await get().findPasSubmissions({ bundleIdentifiers: [name], readableBy: 'ehr-a' })).map((s) => s.id), order).toEqual([stored!.id]);
      expect([named?.submissionId, named?.requestHash], order).toEqual([stored!.id, stored!.requestHash]);
      if (created.created) expect([stored!.id, stored!.requestHash], order).toEqual([other.id, other.requestHash]);
      else expect([created.submission?.id, created.submission?.requestHash, stored!.id], order).toEqual([pended.id, 'c'.repeat(64), pended.id]);
    }
  });

  it('keeps the client that sent a DTR QuestionnaireResponse', async () => {
    const id = randomUUID();
    const r = {
      id,
      receivedAt: '2026-11-23T10:00:00.000Z',
      assertionId: randomUUID(),
      clientId: 'ehr-a',
      resource: { resourceType: 'QuestionnaireResponse' as const, id, status: 'completed' as const, questionnaire: 'https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab' },
    };
    await get().saveQuestionnaireResponse(r);
    expect(await get().getQuestionnaireResponse(id)).toEqual(r);
  });

  it('lists pended submissions oldest first with what is needed, and applies a reviewer decision exactly once', async () => {
    const older = newSubmission({ createdAt: new Date(Date.now() - 60_000).toISOString(), needed: ['Clinical review: dose above 28 mcg/day (MP-RX-FP-14-23 II.B)'] });
    const newer = newSubmission();
    await get().createPasSubmission(newer);
    await get().createPasSubmission(older);
    const pended = (await get().listPendedSubmissions(1000)).filter((p) => p.id === older.id || p.id === newer.id);
    expect(pended.map((p) => p.id)).toEqual([older.id, newer.id]);
    expect(pended[0]).toEqual({ id: older.id, bundleIdentifier: older.bundleIdentifier, payer: 'mmm', policyId: 'mmm-blinatumomab', policyVersion: '2026-11', createdAt: older.createdAt, needed: older.needed });

    const number = `PA-R-${randomUUID().slice(0, 8)}`;
    const decidedAt = new Date().toISOString();
    const next = {
      status: 'approved' as const,
      reviewAction: 'A1' as const,
      needed: [],
      preAuthRef: number,
      preAuthPeriod: { start: '2026-11-23', end: '2027-05-22' },
      claimResponse: { resourceType: 'ClaimResponse', id: older.id, preAuthRef: number },
      responseBundle: { resourceType: 'Bundle', type: 'collection', entry: [] },
      detail: { items: [{ sequence: 1, reviewAction: 'A1' }] },
    };
    const decision = { submissionId: older.id, decision: 'approve' as const, reviewer: 'dr.reviewer@payer.example', reason: 'MRD documented in the attached report', decidedAt, authorizationNumber: number };
    const applied = await get().recordReviewDecision({ decision, next, authorization: { number, start: '2026-11-23', end: '2027-05-22' } });
    expect(applied.applied).toBe(true);
    expect(applied.submission).toMatchObject({ ...next, updatedAt: decidedAt, decisions: [decision] });
    expect(await get().getAuthorization(number)).toMatchObject({ source: 'review', submissionId: older.id, payer: 'mmm' });
    expect((await get().findPasSubmissions({ preAuthRefs: [number] })).map((s) => s.id)).toEqual([older.id]);

    const second = await get().recordReviewDecision({ decision: { ...decision, decision: 'deny', reviewer: 'someone.else', authorizationNumber: undefined }, next: { ...next, status: 'denied', reviewAction: 'A3', preAuthRef: undefined, preAuthPeriod: undefined } });
    expect(second.applied).toBe(false);
    expect(second.submission?.decisions).toHaveLength(1);
    expect(second.submission?.reviewAction).toBe('A1');
    expect((await get().listPendedSubmissions(1000)).map((p) => p.id)).not.toContain(older.id);
    expect(await get().recordReviewDecision({ decision: { ...decision, submissionId: randomUUID() }, next })).toEqual({ applied: false });
  });

  it("lists the decisions made since a given instant, newest first, each naming its request (the reviewer's Decided list)", async () => {
    const [old, earlier, later] = [newSubmission(), newSubmission(), newSubmission()];
    for (const s of [old, earlier, later]) await get().createPasSubmission(s);
    // Stamped apart by whole minutes, a minute in the future at most, so other tests' decisions (now) sort below them.
    const at = (minutes: number) => new Date(Date.now() + minutes * 60_000).toISOString();
    const next = (id: string, approved: boolean) => ({
      status: approved ? ('approved' as const) : ('denied' as const),
      reviewAction: approved ? ('A1' as const) : ('A3' as const),
      needed: [],
      claimResponse: { resourceType: 'ClaimResponse', id },
      responseBundle: { resourceType: 'Bundle', type: 'collection', entry: [] },
      detail: { items: [{ sequence: 1, reviewAction: approved ? 'A1' : 'A3' }] },
    });
    const number = `PA-R-${randomUUID().slice(0, 8)}`;
    const decisions = {
      old: { submissionId: old.id, decision: 'deny' as const, reviewer: 'Dr. Old', reason: 'T-ALL, not B-ALL', decidedAt: new Date(Date.now() - 9 * 86_400_000).toISOString() },
      earlier: { submissionId: earlier.id, decision: 'deny' as const, reviewer: 'Dr. A', reason: 'CD19 not documented', decidedAt: at(-1) },
      later: { submissionId: later.id, decision: 'approve' as const, reviewer: 'Dr. B', reason: 'MRD documented', decidedAt: at(1), authorizationNumber: number },
    };
    expect((await get().recordReviewDecision({ decision: decisions.old, next: next(old.id, false) })).applied).toBe(true);
    expect((await get().recordReviewDecision({ decision: decisions.later, next: next(later.id, true), authorization: { number, start: '2026-12-07', end: '2027-03-06' } })).applied).toBe(true);
    expect((await get().recordReviewDecision({ decision: decisions.earlier, next: next(earlier.id, false) })).applied).toBe(true);

    const ours = new Set([old.id, earlier.id, later.id]);
    const week = (await get().listReviewDecisions({ since: new Date(Date.now() - 7 * 86_400_000).toISOString(), limit: 1000 })).filter((d) => ours.has(d.submissionId));
    // Newest first, whatever order they were recorded in; the one decided nine days ago is not in the last seven.
    expect(week).toEqual([decisions.later, decisions.earlier]);
    const fortnight = (await get().listReviewDecisions({ since: new Date(Date.now() - 14 * 86_400_000).toISOString(), limit: 1000 })).filter((d) => ours.has(d.submissionId));
    expect(fortnight).toEqual([decisions.later, decisions.earlier, decisions.old]);
    // The limit keeps the newest.
    expect(await get().listReviewDecisions({ since: at(-2), limit: 1 })).toEqual([decisions.later]);
  });

  it('applies a Claim Update to a stored request once, at the revision it was computed from; a reviewer decision computed before it is refused', async () => {
    const s = newSubmission();
    const created = await get().createPasSubmission(s);
    expect(created.submission.revision).toBe(0);
    const updateId = `urn:test:update|${randomUUID()}`;
    const claimKey = `urn:trnorg:test|update-${randomUUID()}`;
    const input = {
      update: { submissionId: s.id, bundleIdentifier: updateId, clientId: 'ehr-a', requestHash: 'b'.repeat(64), claimIdentifiers: [claimKey], kind: 'cancel' as const, requestBundle: { resourceType: 'Bundle' }, createdAt: new Date().toISOString() },
      revision: 0,
      next: {
        status: 'cancelled' as const,
        reviewAction: 'C' as const,
        needed: [],
        claimResponse: { resourceType: 'ClaimResponse', id: s.id },
        responseBundle: { resourceType: 'Bundle', type: 'collection', entry: [] },
        detail: { items: [{ sequence: 1, reviewAction: 'C' }] },
        requestBundle: s.requestBundle,
        claimIdentifiers: [...s.claimIdentifiers, claimKey],
      },
      orders: [],
    };
    // Three at once (a resend racing itself): exactly one applies.
    const results = await Promise.all([get().updatePasSubmission(input), get().updatePasSubmission(input), get().updatePasSubmission(input)]);
    expect(results.filter((r) => r.applied)).toHaveLength(1);
    const now = await get().getPasSubmission(s.id);
    expect(now).toMatchObject({ status: 'cancelled', reviewAction: 'C', revision: 1 });
    expect((await get().listPendedSubmissions(1000)).map((p) => p.id)).not.toContain(s.id);
    expect((await get().findPasUpdate(updateId, 'ehr-a', 'b'.repeat(64)))?.id).toBe(s.id);
    expect(await get().findPasUpdate(updateId, 'ehr-b', 'b'.repeat(64))).toBeUndefined();
    expect((await get().getPasSubmissionByBundleIdentifier(updateId, 'ehr-a'))?.requestHash).toBe('b'.repeat(64));
    expect((await get().findPasSubmissions({ claimIdentifiers: [claimKey] })).map((x) => x.id)).toEqual([s.id]);
    expect((await get().findPasSubmissions({ bundleIdentifiers: [updateId] })).map((x) => x.id)).toEqual([s.id]);
    // Another update computed from revision 0 is refused; so is a reviewer decision computed from it.
    const stale = await get().updatePasSubmission({ ...input, update: { ...input.update, requestHash: 'c'.repeat(64) } });
    expect(stale.applied).toBe(false);
    const decision = { submissionId: s.id, decision: 'deny' as const, reviewer: 'dr.reviewer@payer.example', reason: 'not B-ALL', decidedAt: new Date().toISOString() };
    const late = await get().recordReviewDecision({ decision, revision: 0, next: { status: 'denied', reviewAction: 'A3', needed: [], claimResponse: {}, responseBundle: {}, detail: {} } });
    expect(late.applied).toBe(false);
    expect((await get().getPasSubmission(s.id))?.decisions).toEqual([]);
  });

  it('refuses a reviewer decision computed before the request changed (its revision moved on)', async () => {
    const s = newSubmission({ detail: { items: [{ sequence: 1, reviewAction: 'A4' }, { sequence: 2, reviewAction: 'A4' }] } });
    await get().createPasSubmission(s);
    const next = { status: 'pended' as const, reviewAction: 'A4' as const, needed: ['the second item'], claimResponse: {}, responseBundle: {}, detail: {} };
    const decide = (revision: number) =>
      get().recordReviewDecision({ revision, decision: { submissionId: s.id, decision: 'deny', reviewer: 'a', reason: 'first item: not B-ALL', decidedAt: new Date().toISOString() }, next });
    expect((await decide(0)).applied).toBe(true);
    expect((await decide(0)).applied).toBe(false);
    expect((await decide(1)).applied).toBe(true);
    expect((await get().getPasSubmission(s.id))?.revision).toBe(2);
  });

  it('lets exactly one of two concurrent reviewer decisions apply', async () => {
    const s = newSubmission();
    await get().createPasSubmission(s);
    const next = { status: 'denied' as const, reviewAction: 'A3' as const, needed: [], claimResponse: {}, responseBundle: {}, detail: {} };
    const decide = (reviewer: string) =>
      get().recordReviewDecision({ decision: { submissionId: s.id, decision: 'deny', reviewer, reason: 'not B-ALL', decidedAt: new Date().toISOString() }, next });
    const results = await Promise.all([decide('a'), decide('b'), decide('c')]);
    expect(results.filter((r) => r.applied)).toHaveLength(1);
    expect((await get().getPasSubmission(s.id))?.decisions).toHaveLength(1);
  });

  it('accepts a JWT id once and refuses it again until it expires, per issuer', async () => {
    const jti = randomUUID();
    const now = Date.now();
    const r = { issuer: 'cds:https://ehr.example.org', jti, expiresAtMs: now + 360_000 };
    expect(await get().recordJti(r, now)).toBe(true);
    expect(await get().recordJti(r, now + 1000)).toBe(false);
    expect(await get().recordJti({ ...r, expiresAtMs: now + 999_999 }, now + 2000)).toBe(false);
    expect(await get().recordJti({ ...r, issuer: 'client:ehr-backend' }, now)).toBe(true);
    // Once its record has expired the token itself no longer verifies, so the id may be recorded afresh.
    expect(await get().recordJti({ ...r, expiresAtMs: now + 720_000 }, now + 360_001)).toBe(true);
    expect(await get().recordJti(r, now + 360_002)).toBe(false);
  });

  it('lets exactly one of many concurrent calls with the same JWT id through', async () => {
    const r = { issuer: 'client:ehr-backend', jti: randomUUID(), expiresAtMs: Date.now() + 300_000 };
    const results = await Promise.all(Array.from({ length: 12 }, () => get().recordJti({ ...r })));
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it('keeps an access line per payer API call with the client, operation, resource ids and outcome, newest first', async () => {
    const lines = Array.from({ length: 30 }, (_, i) => ({
      requestId: randomUUID(),
      at: new Date().toISOString(),
      clientId: 'ehr-backend',
      operation: 'POST /Claim/$submit',
      resourceIds: [`Claim/${randomUUID()}`],
      status: i % 5 === 0 ? 403 : 200,
      outcome: i % 5 === 0 ? 'insufficient-scope' : 'ok',
    }));
    const anonymous = { requestId: randomUUID(), at: new Date().toISOString(), operation: 'GET /Questionnaire/:id', resourceIds: [], status: 401, outcome: 'no-token' };
    await Promise.all([...lines.map((l) => get().saveApiAccess(l)), get().saveApiAccess(anonymous)]);
    const listed = await get().listApiAccess(1000);
    for (const l of lines) expect(listed).toContainEqual(l);
    expect(listed).toContainEqual(anonymous);
    const mine = listed.filter((l) => lines.some((x) => x.requestId === l.requestId));
    expect(mine.map((l) => l.requestId)).toEqual([...lines].reverse().map((l) => l.requestId));
  });

  it('keeps the first value of a shared setting, whoever asks later or at the same time', async () => {
    const key = `test-${randomUUID()}`;
    const answers = await Promise.all(['a', 'b', 'c', 'd'].map((v) => get().sharedSetting(key, v)));
    expect(new Set(answers).size).toBe(1);
    expect(await get().sharedSetting(key, 'later')).toBe(answers[0]);
  });

  it('follows a setting over time: the time a value became current, kept while it stays, a new time when an earlier value comes back', async () => {
    const key = `test-${randomUUID()}`;
    expect(await get().settingSince(key, 'digest-A', '2026-11-01T08:00:00.000Z')).toBe('2026-11-01T08:00:00.000Z');
    // The same value again (another replica, a restart): still the time it first became current.
    expect(await get().settingSince(key, 'digest-A', '2026-11-02T08:00:00.000Z')).toBe('2026-11-01T08:00:00.000Z');
    // A new deploy, then a rollback to the first value: each counts from when it was set, never from the first time.
    expect(await get().settingSince(key, 'digest-B', '2026-11-03T08:00:00.000Z')).toBe('2026-11-03T08:00:00.000Z');
    expect(await get().settingSince(key, 'digest-A', '2026-11-04T08:00:00.000Z')).toBe('2026-11-04T08:00:00.000Z');
    // Replicas asking at the same moment agree on one time.
    const other = `test-${randomUUID()}`;
    const answers = await Promise.all(['2026-11-05T08:00:00.000Z', '2026-11-05T08:00:00.001Z', '2026-11-05T08:00:00.002Z'].map((at) => get().settingSince(other, 'digest-C', at)));
    expect(new Set(answers).size).toBe(1);
  });

  const orderKey = (): OrderKey => ({ payer: 'centene', patientId: `pat-${randomUUID().slice(0, 8)}`, orderRef: `MedicationRequest/${randomUUID()}`, drug: 'blinatumomab' });
  const OPEN: OrderState[] = ['auth-needed', 'not-covered'];
  const change = (key: OrderKey, state: OrderState, extra: Partial<GuardedOrderChange['change']> = {}, from: OrderState[] = OPEN): GuardedOrderChange => ({
    key,
    from,
    change: { state, at: new Date().toISOString(), source: 'crd', actor: 'order-sign hook-1', reason: `now ${state}`, policyId: 'centene-blinatumomab', ...extra },
  });

  it('keeps the facts an assertion names as given by earlier DTR answers (design.md §7 "Answers and the record"), written alone, queued or with its order', async () => {
    const a = newAssertion({ answeredFacts: ['mrdPercent', 'mrdPositive'] });
    await get().saveAssertion(a);
    expect(await get().getAssertion(a.assertionId)).toEqual(a);
    const queued = newAssertion({ answeredFacts: ['dailyDoseUg'] });
    await get().queueAssertion(queued);
    expect((await get().getAssertion(queued.assertionId))?.answeredFacts).toEqual(['dailyDoseUg']);
    const key = orderKey();
    const withOrder = newAssertion({ patientId: key.patientId, orderRef: key.orderRef, answeredFacts: ['mrdPercent'] });
    await get().applyOrderChange(change(key, 'auth-needed', { assertionId: withOrder.assertionId }), withOrder);
    expect((await get().getAssertion(withOrder.assertionId))?.answeredFacts).toEqual(['mrdPercent']);
    // None given: absent, as before.
    const none = newAssertion();
    await get().saveAssertion(none);
    expect(await get().getAssertion(none.assertionId)).toEqual(none);
    expect('answeredFacts' in (await get().getAssertion(none.assertionId))!).toBe(false);
  });

  it("keeps one record per order with every change's who, when and why, and issues its approval once", async () => {
    const key = orderKey();
    expect(await get().getOrderRecord(key)).toBeUndefined();
    const first = await get().applyOrderChange(change(key, 'auth-needed', { reason: 'MRD level not documented' }));
    expect(first).toMatchObject({ applied: true, record: { ...key, state: 'auth-needed', reason: 'MRD level not documented', policyId: 'centene-blinatumomab' } });
    const number = `PA-CENTENE-${randomUUID().slice(0, 8)}`;
    const approved = await get().applyOrderChange(
      change(key, 'approved', { source: 'review', actor: 'Dr. Ada Reviewer', reason: 'MRD 0.4 % in the attached report', authorization: { number, start: '2026-11-23', end: '2027-05-22' }, submissionId: 'sub-1' }, [...OPEN, 'pended']),
    );
    expect(approved.applied).toBe(true);
    expect(approved.record).toMatchObject({ state: 'approved', authorization: { number, start: '2026-11-23', end: '2027-05-22' }, submissionId: 'sub-1' });
    expect(approved.record.history.map((h) => [h.source, h.actor, h.state, h.reason, h.authorizationNumber])).toEqual([
      ['crd', 'order-sign hook-1', 'auth-needed', 'MRD level not documented', undefined],
      ['review', 'Dr. Ada Reviewer', 'approved', 'MRD 0.4 % in the attached report', number],
    ]);
    expect(await get().getAuthorization(number)).toMatchObject({ source: 'review', payer: 'centene', submissionId: 'sub-1' });

    // A decided order refuses a provisional change and a second approval: the record and its number stand.
    const again = await get().applyOrderChange(change(key, 'approved', { authorization: { number: 'PA-OTHER-1', start: '2026-11-24', end: '2027-05-23' } }));
    expect(again.applied).toBe(false);
    expect(again.record.authorization?.number).toBe(number);
    expect((await get().applyOrderChange(change(key, 'auth-needed'))).applied).toBe(false);
    expect(await get().getAuthorization('PA-OTHER-1')).toBeUndefined();
    expect((await get().findOrderRecords({ payer: 'centene', patientId: key.patientId, orderRefs: [key.orderRef, 'MedicationRequest/none'] })).map((r) => r.id)).toEqual([approved.record.id]);
    expect((await get().findOrderRecordsBySubmission('sub-1')).map((r) => r.id)).toEqual([approved.record.id]);
  });

  it("widens the held approval's period only for a reviewer's approval with its number (setsPeriod), never narrowing or moving it; the number and the issued record stand", async () => {
    const key = orderKey();
    const number = `PA-CENTENE-${randomUUID().slice(0, 8)}`;
    await get().applyOrderChange(change(key, 'approved', { reason: '28 mcg/day at signing', authorization: { number, start: '2026-11-20', end: '2027-05-19' } }));
    const review = (extra: Partial<GuardedOrderChange['change']>) =>
      change(key, 'approved', { source: 'review', actor: 'Dr. Ada Reviewer', reason: '56 mcg/day justified', submissionId: 'sub-2', ...extra }, ['approved']);

    // Without setsPeriod, or for another number, the held approval stands as it is.
    const kept = await get().applyOrderChange(review({ authorization: { number, start: '2026-11-23', end: '2027-08-31' } }));
    expect(kept.applied).toBe(true);
    expect(kept.record.authorization).toEqual({ number, start: '2026-11-20', end: '2027-05-19' });
    const other = await get().applyOrderChange(review({ authorization: { number: 'PA-OTHER-2', start: '2026-11-23', end: '2027-08-31' }, setsPeriod: true }));
    expect(other.record.authorization).toEqual({ number, start: '2026-11-20', end: '2027-05-19' });

    // A reviewer's period starting after the held start and ending after the held end: the held start stays (the
    // approval may already be dispensed and billed under from it: review s41 F8), the end moves out.
    const set = await get().applyOrderChange(review({ authorization: { number, start: '2026-11-23', end: '2027-08-31' }, setsPeriod: true }));
    expect(set.applied).toBe(true);
    expect(set.record.authorization).toEqual({ number, start: '2026-11-20', end: '2027-08-31' });
    expect((await get().getOrderRecord(key))?.authorization).toEqual({ number, start: '2026-11-20', end: '2027-08-31' });
    expect(set.record.history.at(-1)).toMatchObject({ source: 'review', state: 'approved', authorizationNumber: number });
    // A shorter period inside it takes nothing away; one starting earlier moves the start back.
    const inside = await get().applyOrderChange(review({ authorization: { number, start: '2026-12-01', end: '2027-01-31' }, setsPeriod: true }));
    expect(inside.record.authorization).toEqual({ number, start: '2026-11-20', end: '2027-08-31' });
    const earlier = await get().applyOrderChange(review({ authorization: { number, start: '2026-11-10', end: '2027-02-28' }, setsPeriod: true }));
    expect(earlier.record.authorization).toEqual({ number, start: '2026-11-10', end: '2027-08-31' });
    expect((await get().getOrderRecord(key))?.authorization).toEqual({ number, start: '2026-11-10', end: '2027-08-31' });
    // The issued authorization is the record of the number's issue, as issued.
    expect(await get().getAuthorization(number)).toMatchObject({ number, start: '2026-11-20', end: '2027-05-19' });
    expect(await get().getAuthorization('PA-OTHER-2')).toBeUndefined();
  });

  it('lets an outgrown approval go: the record reopens without its number, keeps it in the history, and a later approval has its own', async () => {
    const key = orderKey();
    const first = `PA-CENTENE-${randomUUID().slice(0, 8)}`;
    await get().applyOrderChange(change(key, 'approved', { reason: 'MRD-positive remission, 28 mcg/day', authorization: { number: first, start: '2026-11-23', end: '2027-05-22' } }));
    const reopened = await get().applyOrderChange(
      change(key, 'auth-needed', { actor: 'order-sign hook-2', reason: 'The order no longer fits the approval: 60 mcg/day exceeds 28 mcg/day', withdrawsApproval: true }, ['approved']),
    );
    expect(reopened.applied).toBe(true);
    expect(reopened.record.state).toBe('auth-needed');
    expect(reopened.record.authorization).toBeUndefined();
    expect(reopened.record.history.map((h) => [h.state, h.authorizationNumber])).toEqual([
      ['approved', first],
      ['auth-needed', undefined],
    ]);
    expect(await get().getAuthorization(first)).toMatchObject({ number: first, payer: 'centene' });

    const second = `PA-CENTENE-${randomUUID().slice(0, 8)}`;
    const again = await get().applyOrderChange(change(key, 'approved', { source: 'review', actor: 'Dr. Ada Reviewer', reason: '60 mcg/day justified', authorization: { number: second, start: '2026-12-01', end: '2027-05-31' } }));
    expect(again.applied).toBe(true);
    expect(again.record.authorization).toEqual({ number: second, start: '2026-12-01', end: '2027-05-31' });
    expect(await get().getAuthorization(second)).toMatchObject({ source: 'review' });
  });

  it("finds the patients whose records hold an order by the order alone (a DTR response's order against its subject)", async () => {
    const key = orderKey();
    expect(await get().orderPatientIds({ payer: key.payer, orderRef: key.orderRef, drug: key.drug })).toEqual([]);
    await get().applyOrderChange(change(key, 'auth-needed'));
    expect(await get().orderPatientIds({ payer: key.payer, orderRef: key.orderRef, drug: key.drug })).toEqual([key.patientId]);
    // The same order under another payer or drug is another record; a second patient's record of it is found beside.
    await get().applyOrderChange(change({ ...key, payer: 'bcbsnc', patientId: `${key.patientId}-b` }, 'auth-needed'));
    await get().applyOrderChange(change({ ...key, drug: 'inotuzumab', patientId: `${key.patientId}-i` }, 'auth-needed'));
    expect(await get().orderPatientIds({ payer: key.payer, orderRef: key.orderRef, drug: key.drug })).toEqual([key.patientId]);
    await get().applyOrderChange(change({ ...key, patientId: `${key.patientId}-2` }, 'auth-needed'));
    expect((await get().orderPatientIds({ payer: key.payer, orderRef: key.orderRef, drug: key.drug })).sort()).toEqual([key.patientId, `${key.patientId}-2`].sort());
  });

  it("answers many concurrent order reads each with its own patient's orders only", async () => {
    const keys = Array.from({ length: 12 }, () => orderKey());
    await Promise.all(keys.map((k, i) => get().applyOrderChange(change(k, i % 2 ? 'auth-needed' : 'not-covered', { reason: `reason ${i}` }))));
    const found = await Promise.all(keys.map((k) => get().findOrderRecords({ payer: k.payer, patientId: k.patientId, orderRefs: [k.orderRef, 'MedicationRequest/none'] })));
    found.forEach((records, i) => expect(records.map((r) => [r.patientId, r.orderRef, r.state, r.reason])).toEqual([[keys[i].patientId, keys[i].orderRef, i % 2 ? 'auth-needed' : 'not-covered', `reason ${i}`]]));
    // The same order read by two hooks at once: each gets the record, neither shares the other's copy.
    const [a, b] = await Promise.all([0, 1].map(() => get().findOrderRecords({ payer: keys[0].payer, patientId: keys[0].patientId, orderRefs: [keys[0].orderRef] })));
    expect(a).toEqual(b);
    expect(a[0]).not.toBe(b[0]);
  });

  it('applies the changes queued together to several orders, and several changes to one order, each in the order queued', async () => {
    const keys = Array.from({ length: 5 }, () => orderKey());
    const twice = orderKey();
    const number = `PA-CENTENE-${randomUUID().slice(0, 8)}`;
    // Queued in one turn of the event loop: they reach the database in one batch.
    const queued = [
      ...keys.map((k, i) => get().queueOrderChange(change(k, i % 2 ? 'not-covered' : 'auth-needed', { reason: `reason ${i}` }))),
      get().queueOrderChange(change(twice, 'auth-needed', { reason: 'MRD level not documented' })),
      get().queueOrderChange(change(twice, 'not-covered', { reason: 'planned start before the diagnosis' })),
    ];
    const approval = get().applyOrderChange(change(twice, 'approved', { reason: 'MRD 0.4 %', authorization: { number, start: '2026-11-23', end: '2027-05-22' } }));
    const refused = get().applyOrderChange(change(keys[0], 'pended', { source: 'pas', actor: 'PAS sub-x', submissionId: 'sub-x' }, ['denied']));
    await Promise.all(queued);
    const [approved, notPended] = await Promise.all([approval, refused]);
    expect(approved.applied).toBe(true);
    expect(approved.record.history.map((h) => [h.state, h.reason, h.authorizationNumber])).toEqual([
      ['auth-needed', 'MRD level not documented', undefined],
      ['not-covered', 'planned start before the diagnosis', undefined],
      ['approved', 'MRD 0.4 %', number],
    ]);
    expect(await get().getAuthorization(number)).toMatchObject({ source: 'crd', payer: 'centene', start: '2026-11-23', end: '2027-05-22' });
    expect(notPended).toMatchObject({ applied: false, record: { state: 'auth-needed', reason: 'reason 0' } });
    expect(notPended.record.history).toHaveLength(1);
    for (const [i, k] of keys.entries()) {
      expect(await get().getOrderRecord(k)).toMatchObject({ state: i % 2 ? 'not-covered' : 'auth-needed', reason: `reason ${i}` });
    }
  });

  it("writes a hook's batch once when it is retried after a COMMIT whose outcome was unknown: each order event once, no state undone", async () => {
    const storage = get();
    const driver = (storage as Storage & { driver?: SqlDriver }).driver;
    const fresh = orderKey();
    const movedOn = orderKey();
    await storage.applyOrderChange(change(movedOn, 'not-covered', { reason: 'planned start before the diagnosis' }));
    const assertion = newAssertion({ patientId: fresh.patientId, orderRef: fresh.orderRef });
    const line = newAudit();
    // What one order-sign hook writes behind its answer, the second order going back to auth-needed.
    const batch = [
      change(fresh, 'auth-needed', { reason: 'MRD level not documented', assertionId: assertion.assertionId }),
      change(movedOn, 'auth-needed', { actor: 'order-sign hook-2', reason: 'MRD level not documented' }),
    ];
    // Meanwhile (after the commit, before the retry) another replica's hook finds the second order not covered again.
    const meanwhile = change(movedOn, 'not-covered', { actor: 'order-sign hook-3', reason: 'no B-ALL diagnosis on file' });
    if (driver) {
      // The database commits the batch, then the connection drops before the client hears so (an ambiguous COMMIT):
      // the write-behind queue keeps its records and writes them again.
      const write = driver.batch.bind(driver);
      driver.batch = async (steps) => {
        await write(steps);
        driver.batch = write;
        await new (storage.constructor as new (d: SqlDriver) => Storage)(driver).applyOrderChange(meanwhile);
        throw new StorageUnavailableError(new Error('Connection terminated unexpectedly'), { outcomeUnknown: true });
      };
      await Promise.all([storage.queueAssertion(assertion), storage.saveAudit(line), ...batch.map((c) => storage.queueOrderChange(c))]);
      for (let i = 0; i < 200 && (storage as Storage & { queuedWrites: number }).queuedWrites > 0; i++) await new Promise((r) => setTimeout(r, 25));
      expect(driver.batch).toBe(write);
    } else {
      // No connection to lose: the same changes (their keys included) handed over twice, the other change between.
      const keyed = batch.map((c) => ({ ...c, eventId: randomUUID() }));
      for (const c of keyed) await storage.queueOrderChange(c);
      await storage.applyOrderChange(meanwhile);
      for (const c of keyed) await storage.queueOrderChange(structuredClone(c));
      await storage.queueAssertion(assertion);
      await storage.saveAudit(line);
    }
    const first = await storage.getOrderRecord(fresh);
    expect(first?.history.map((h) => [h.state, h.reason, h.assertionId])).toEqual([['auth-needed', 'MRD level not documented', assertion.assertionId]]);
    const second = await storage.getOrderRecord(movedOn);
    expect(second?.state).toBe('not-covered');
    expect(second?.history.map((h) => [h.actor, h.state])).toEqual([
      ['order-sign hook-1', 'not-covered'],
      ['order-sign hook-2', 'auth-needed'],
      ['order-sign hook-3', 'not-covered'],
    ]);
    expect(await storage.getAssertion(assertion.assertionId)).toEqual(assertion);
    expect((await storage.listAudit(1000)).filter((l) => l.requestId === line.requestId)).toEqual([line]);
  });

  it('writes nothing of a PAS request when one of its orders is already decided, whichever it is', async () => {
    const open = orderKey();
    const decided = orderKey();
    await get().applyOrderChange(change(decided, 'denied'));
    const s = newSubmission();
    const pend = (k: OrderKey) => change(k, 'pended', { source: 'pas', actor: `PAS ${s.id}`, submissionId: s.id });
    const result = await get().createPasSubmissionForOrders(s, [pend(open), pend(decided)]);
    expect(result).toMatchObject({ created: false, blockedBy: { ...decided, state: 'denied' } });
    expect(await get().getOrderRecord(open)).toBeUndefined();
    expect(await get().getPasSubmission(s.id)).toBeUndefined();
  });

  it('stores a decided DTR response with its assertion and order changes all together, or nothing of it', async () => {
    const key = orderKey();
    await get().applyOrderChange(change(key, 'auth-needed', { reason: 'MRD level not documented' }));
    const draftId = randomUUID();
    const resource = { resourceType: 'QuestionnaireResponse' as const, id: draftId, status: 'in-progress' as const, questionnaire: 'https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab' };
    await get().saveQuestionnaireResponse({ id: draftId, receivedAt: '2026-11-23T10:00:00.000Z', patientId: key.patientId, orderRef: key.orderRef, resource });
    // Two completions of version 1 at once, each approving the order with its own number: exactly one is recorded.
    const completion = () => {
      const assertionId = randomUUID();
      const number = `PA-CENTENE-${randomUUID().slice(0, 8)}`;
      const authorization = { number, start: '2026-11-23', end: '2027-05-22' };
      return {
        record: { id: draftId, receivedAt: new Date().toISOString(), assertionId, patientId: key.patientId, orderRef: key.orderRef, resource: { ...resource, status: 'completed' as const, meta: { versionId: '2' } } },
        previousVersionId: '1',
        assertion: newAssertion({ assertionId, payer: key.payer, patientId: key.patientId, orderRef: key.orderRef, outcome: 'satisfied', missingFacts: [], authorization }),
        orders: [change(key, 'approved', { source: 'dtr', actor: 'dtr:QuestionnaireResponse', assertionId, authorization }, ['auth-needed', 'not-covered', 'pended'])],
      };
    };
    const tries = [completion(), completion()];
    const results = await Promise.all(tries.map((t) => get().saveDecidedQuestionnaireResponse(t)));
    expect(results.map((r) => r.applied).sort()).toEqual([false, true]);
    const [won, lost] = results[0].applied ? tries : [tries[1], tries[0]];
    expect(await get().getQuestionnaireResponse(draftId)).toEqual(won.record);
    expect(await get().getAssertion(won.assertion.assertionId)).toMatchObject({ authorization: won.assertion.authorization });
    expect(await get().getAssertion(lost.assertion.assertionId)).toBeUndefined();
    expect(await get().getAuthorization(lost.assertion.authorization!.number)).toBeUndefined();
    const record = await get().getOrderRecord(key);
    expect(record).toMatchObject({ state: 'approved', authorization: won.assertion.authorization });
    expect(record!.history.map((h) => [h.state, h.assertionId])).toEqual([['auth-needed', undefined], ['approved', won.assertion.assertionId]]);

    // An order's change refused (the order was decided meanwhile) refuses the response and its assertion too.
    const other = orderKey();
    await get().applyOrderChange(change(other, 'denied', { source: 'review', actor: 'Dr. Reviewer' }, ['auth-needed']));
    const newId = randomUUID();
    const assertionId = randomUUID();
    const blocked = await get().saveDecidedQuestionnaireResponse({
      record: { id: newId, receivedAt: new Date().toISOString(), assertionId, resource: { ...resource, id: newId, status: 'completed' as const } },
      assertion: newAssertion({ assertionId, patientId: other.patientId, orderRef: other.orderRef }),
      orders: [change(other, 'auth-needed', { source: 'dtr', actor: 'dtr:QuestionnaireResponse', assertionId })],
    });
    expect(blocked).toMatchObject({ applied: false, blockedBy: { state: 'denied' } });
    expect(await get().getQuestionnaireResponse(newId)).toBeUndefined();
    expect(await get().getAssertion(assertionId)).toBeUndefined();
  });

  it("stores a determination's assertion with its order's changes, or neither (DTR $next-question)", async () => {
    const key = orderKey();
    await get().applyOrderChange(change(key, 'auth-needed', { reason: 'MRD level not documented' }));
    const approval = () => {
      const assertionId = randomUUID();
      const authorization = { number: `PA-CENTENE-${randomUUID().slice(0, 8)}`, start: '2026-11-23', end: '2027-05-22' };
      return {
        assertion: newAssertion({ assertionId, payer: key.payer, patientId: key.patientId, orderRef: key.orderRef, outcome: 'satisfied', missingFacts: [], authorization }),
        orders: [change(key, 'approved', { source: 'dtr', actor: 'dtr:$next-question', assertionId, authorization }, ['auth-needed', 'not-covered'])],
      };
    };
    const tries = [approval(), approval()];
    const results = await Promise.all(tries.map((t) => get().saveDetermination(t)));
    expect(results.map((r) => r.applied).sort()).toEqual([false, true]);
    const [won, lost] = results[0].applied ? tries : [tries[1], tries[0]];
    expect(results.find((r) => !r.applied)).toMatchObject({ blockedBy: { state: 'approved', authorization: won.assertion.authorization } });
    expect(await get().getAssertion(won.assertion.assertionId)).toMatchObject({ authorization: won.assertion.authorization });
    expect(await get().getAssertion(lost.assertion.assertionId)).toBeUndefined();
    expect(await get().getAuthorization(lost.assertion.authorization!.number)).toBeUndefined();
    expect(await get().getOrderRecord(key)).toMatchObject({ state: 'approved', authorization: won.assertion.authorization });
  });

  it('forgets a refused batch whole: a change of it sent again with its own key applies (nothing of it was kept)', async () => {
    const open = orderKey();
    const decided = orderKey();
    await get().applyOrderChange(change(decided, 'denied', { source: 'review', actor: 'Dr. Reviewer' }));
    const keyed = { ...change(open, 'auth-needed', { source: 'dtr', actor: 'dtr:$next-question', reason: 'MRD level not documented' }), eventId: randomUUID() };
    const refused = await get().saveDetermination({ assertion: newAssertion({ patientId: open.patientId, orderRef: open.orderRef }), orders: [keyed, change(decided, 'auth-needed')] });
    expect(refused).toMatchObject({ applied: false, blockedBy: { state: 'denied' } });
    expect(await get().getOrderRecord(open)).toBeUndefined();
    // The same change, retried alone with the same key, is new to storage: it applies and shows once.
    const retried = await get().saveDetermination({ assertion: newAssertion({ patientId: open.patientId, orderRef: open.orderRef }), orders: [keyed] });
    expect(retried).toEqual({ applied: true });
    const record = await get().getOrderRecord(open);
    expect(record?.history.map((h) => h.state)).toEqual(['auth-needed']);
  });

  it("writes an approval's assertion with it, naming the approval the order holds (another's, when one came first)", async () => {
    const key = orderKey();
    const first = change(key, 'approved', { authorization: { number: `PA-FIRST-${randomUUID().slice(0, 8)}`, start: '2026-11-23', end: '2027-05-22' } });
    const ours = { number: `PA-OURS-${randomUUID().slice(0, 8)}`, start: '2026-11-24', end: '2027-05-23' };
    const mine = newAssertion({ payer: key.payer, patientId: key.patientId, orderRef: key.orderRef, outcome: 'satisfied', missingFacts: [], authorization: ours });
    const [a, b] = await Promise.all([get().applyOrderChange(first), get().applyOrderChange(change(key, 'approved', { authorization: ours }), mine)]);
    const held = (a.applied ? a : b).record.authorization!;
    expect((await get().getAssertion(mine.assertionId))?.authorization).toEqual(held);
    // An order not approved (denied meanwhile): the assertion names no approval.
    const denied = orderKey();
    await get().applyOrderChange(change(denied, 'denied', { source: 'review', actor: 'Dr. Reviewer' }));
    const late = newAssertion({ payer: denied.payer, patientId: denied.patientId, orderRef: denied.orderRef, authorization: ours });
    expect(await get().applyOrderChange(change(denied, 'approved', { authorization: ours }), late)).toMatchObject({ applied: false, record: { state: 'denied' } });
    const stored = await get().getAssertion(late.assertionId);
    expect(stored).toMatchObject({ assertionId: late.assertionId });
    expect(stored?.authorization).toBeUndefined();
  });

  it('issues one approval number when many approvals of one order race', async () => {
    const key = orderKey();
    const tries = Array.from({ length: 8 }, (_, i) => change(key, 'approved', { authorization: { number: `PA-RACE-${randomUUID().slice(0, 8)}-${i}`, start: '2026-11-23', end: '2027-05-22' } }));
    const results = await Promise.all(tries.map((t) => get().applyOrderChange(t)));
    expect(results.filter((r) => r.applied)).toHaveLength(1);
    const numbers = new Set(results.map((r) => r.record.authorization?.number));
    expect(numbers.size).toBe(1);
    const record = await get().getOrderRecord(key);
    expect(record?.history).toHaveLength(1);
  });

  /**
   * Two PAS requests carrying one order's approval (docs/design.md §8 "Claim updates"): `first` answers it on its only
   * item (its preAuthRef), `second` (a resend that also asks for another order) on its second item, under another
   * number of its own. Neither patient carries an identifier. `cancel` stores a cancellation of one, withdrawing the
   * approval unless another request still answers it (PasUpdateInput.withdrawals).
   */
  async function twoCarriers() {
    const key = orderKey();
    const number = `PA-CENTENE-${randomUUID().slice(0, 8)}`;
    const own = `PA-CENTENE-${randomUUID().slice(0, 8)}`;
    const period = { start: '2026-11-23', end: '2027-05-22' };
    const approval = { reviewAction: 'A1', order: key, authorization: { number, ...period } };
    const first = newSubmission({ status: 'approved', reviewAction: 'A1', needed: [], preAuthRef: number, patientIdentifiers: [], detail: { items: [{ sequence: 1, ...approval }] } });
    const second = newSubmission({
      status: 'approved',
      reviewAction: 'A1',
      needed: [],
      preAuthRef: own,
      patientIdentifiers: [],
      detail: { items: [{ sequence: 1, reviewAction: 'A1', order: orderKey(), authorization: { number: own, ...period } }, { sequence: 2, ...approval }] },
    });
    await get().applyOrderChange(change(key, 'approved', { source: 'pas', actor: `PAS ${first.id}`, submissionId: first.id, authorization: { number, ...period } }));
    await get().createPasSubmission(first);
    await get().createPasSubmission(second, { number: own, ...period });
    const cancel = async (s: NewPasSubmission) => {
      const stored = (await get().getPasSubmission(s.id))!;
      const items = (stored.detail as { items: { sequence: number }[] }).items.map((i) => ({ ...i, reviewAction: 'C', authorization: undefined }));
      return get().updatePasSubmission({
        update: { submissionId: s.id, bundleIdentifier: `urn:test:cancel|${randomUUID()}`, requestHash: 'c'.repeat(64), claimIdentifiers: [], kind: 'cancel', requestBundle: { resourceType: 'Bundle' }, createdAt: new Date().toISOString() },
        revision: stored.revision,
        next: { status: 'cancelled', reviewAction: 'C', needed: [], claimResponse: {}, responseBundle: {}, detail: { items }, requestBundle: stored.requestBundle, claimIdentifiers: stored.claimIdentifiers },
        orders: [],
        withdrawals: [{ number, change: change(key, 'auth-needed', { source: 'pas', actor: `PAS ${s.id}`, submissionId: s.id, reason: `${number} cancelled`, withdrawsApproval: true }, ['approved']) }],
      });
    };
    return { key, number, first, second, cancel };
  }

  it('withdraws an approval only when no other stored request answers it, whichever item answers it and whatever identifies the patient (review-diff s44 D7)', async () => {
    const { key, number, first, second, cancel } = await twoCarriers();
    // The first request is cancelled: the second still answers the number on its second item; the approval stays.
    expect((await cancel(first)).applied).toBe(true);
    expect(await get().getOrderRecord(key)).toMatchObject({ state: 'approved', authorization: { number } });
    // The last request carrying it is cancelled: withdrawn, the number kept in the history.
    expect((await cancel(second)).applied).toBe(true);
    const record = await get().getOrderRecord(key);
    expect(record).toMatchObject({ state: 'auth-needed' });
    expect(record?.authorization).toBeUndefined();
    expect(record?.history.map((h) => [h.state, h.authorizationNumber])).toEqual([['approved', number], ['auth-needed', undefined]]);
  });

  it('withdraws an approval two requests carry when both are cancelled at the same time: each decides with the other stored (review-diff s44 D1)', async () => {
    for (let round = 0; round < 4; round++) {
      const { key, first, second, cancel } = await twoCarriers();
      const results = await Promise.all([cancel(first), cancel(second)]);
      expect(results.map((r) => r.applied)).toEqual([true, true]);
      const record = await get().getOrderRecord(key);
      expect(record?.state, `round ${round}`).toBe('auth-needed');
      expect(record?.authorization).toBeUndefined();
      expect(record?.history.map((h) => h.state)).toEqual(['approved', 'auth-needed']);
    }
  });

  it("stores a request, an update or a settled decision answering an order's approval only while the order's record holds it (AnsweredApproval)", async () => {
    const { key, number, first, second, cancel } = await twoCarriers();
    const answers = [{ key, number }];
    const resend = newSubmission({ status: 'approved', reviewAction: 'A1', needed: [], preAuthRef: number, detail: { items: [{ sequence: 1, reviewAction: 'A1', order: key, authorization: { number } }] } });
    expect((await get().createPasSubmissionForOrders(resend, [], undefined, { answers })).created).toBe(true);
    await cancel(first);
    await cancel(second);
    // Still carried by the resend: held.
    expect(await get().getOrderRecord(key)).toMatchObject({ state: 'approved', authorization: { number } });
    await cancel(resend);
    expect((await get().getOrderRecord(key))?.state).toBe('auth-needed');
    // Withdrawn: a request, an update or a pended request's settling that answers it is refused, nothing written.
    const late = newSubmission({ status: 'approved', reviewAction: 'A1', needed: [], preAuthRef: number });
    const refused = await get().createPasSubmissionForOrders(late, [], undefined, { answers });
    expect(refused).toMatchObject({ created: false, blockedBy: { state: 'auth-needed' } });
    expect(await get().getPasSubmission(late.id)).toBeUndefined();
    const pended = newSubmission();
    await get().createPasSubmission(pended);
    const next = { status: 'approved' as const, reviewAction: 'A1' as const, needed: [], claimResponse: {}, responseBundle: {}, detail: { items: [{ sequence: 1, reviewAction: 'A1', order: key, authorization: { number } }] } };
    const decision = { submissionId: pended.id, decision: 'approve' as const, reviewer: 'Order signing (CRD)', reason: 'criteria met', decidedAt: new Date().toISOString(), authorizationNumber: number };
    expect((await get().recordReviewDecision({ decision, next, orders: [], answers, revision: 0 })).applied).toBe(false);
    const update = await get().updatePasSubmission({
      update: { submissionId: pended.id, bundleIdentifier: `urn:test:update|${randomUUID()}`, requestHash: 'd'.repeat(64), claimIdentifiers: [], kind: 'update', requestBundle: {}, createdAt: new Date().toISOString() },
      revision: 0,
      next: { ...next, requestBundle: pended.requestBundle, claimIdentifiers: pended.claimIdentifiers },
      orders: [],
      answers,
    });
    expect(update).toMatchObject({ applied: false, blockedBy: { state: 'auth-needed' } });
    expect(await get().getPasSubmission(pended.id)).toMatchObject({ reviewAction: 'A4', revision: 0, decisions: [] });
  });

  it('pends an order for exactly one of many concurrent PAS requests; the others see which', async () => {
    const key = orderKey();
    const subs = Array.from({ length: 6 }, () => newSubmission());
    const results = await Promise.all(
      subs.map((s) => get().createPasSubmissionForOrders(s, [change(key, 'pended', { source: 'pas', actor: `PAS ${s.id}`, submissionId: s.id, reason: 'documentation needed' })])),
    );
    const created = results.filter((r) => r.created);
    expect(created).toHaveLength(1);
    const winner = created[0].submission!.id;
    for (const r of results.filter((x) => !x.created)) expect(r.blockedBy).toMatchObject({ state: 'pended', submissionId: winner });
    // Nothing of the refused requests was stored.
    const losers = subs.filter((s) => s.id !== winner);
    for (const s of losers) expect(await get().getPasSubmission(s.id)).toBeUndefined();
    expect((await get().getOrderRecord(key))?.history).toHaveLength(1);
  });

  it("stores one request of a client waiting on another client's pending request, however many of its requests race (waitingOn); findWaitingSubmission finds it", async () => {
    const key = orderKey();
    const other = orderKey();
    const owner = newSubmission({ clientId: 'first-ehr' });
    await get().createPasSubmissionForOrders(owner, [change(key, 'pended', { source: 'pas', actor: `PAS ${owner.id}`, submissionId: owner.id })]);
    // The second client's requests: every item pended on the order the first client's request pends (no order change).
    const waiter = (createdAt = new Date().toISOString()) =>
      newSubmission({ clientId: 'second-ehr', createdAt, detail: { items: [{ sequence: 1, reviewAction: 'A4', order: { ...key } }] } });
    expect(await get().findWaitingSubmission('second-ehr', [key])).toBeUndefined();
    const subs = Array.from({ length: 6 }, () => waiter());
    const results = await Promise.all(subs.map((s) => get().createPasSubmissionForOrders(s, [], undefined, { waitingOn: [key] })));
    const created = results.filter((r) => r.created);
    expect(created).toHaveLength(1);
    const winner = created[0].submission!.id;
    for (const r of results.filter((x) => !x.created)) expect(r).toMatchObject({ created: false, waiting: { id: winner, clientId: 'second-ehr' } });
    for (const s of subs.filter((x) => x.id !== winner)) expect(await get().getPasSubmission(s.id)).toBeUndefined();
    expect((await get().findWaitingSubmission('second-ehr', [key]))?.id).toBe(winner);
    // Not another client's, nor one that does not name every order among its pended items; the order's record is untouched.
    expect(await get().findWaitingSubmission('third-ehr', [key])).toBeUndefined();
    expect(await get().findWaitingSubmission('second-ehr', [key, other])).toBeUndefined();
    expect(await get().findWaitingSubmission('first-ehr', [other])).toBeUndefined();
    expect(await get().getOrderRecord(key)).toMatchObject({ state: 'pended', submissionId: owner.id });
    expect((await get().getOrderRecord(key))?.history).toHaveLength(1);
    // Without waitingOn (a request that is its own), or for other orders, nothing holds it back.
    expect((await get().createPasSubmissionForOrders(waiter(), [])).created).toBe(true);
    expect((await get().createPasSubmissionForOrders(waiter(), [], undefined, { waitingOn: [other] })).created).toBe(true);
  });

  it("applies a reviewer's decision to the request and its orders together, or to neither", async () => {
    const key = orderKey();
    const s = newSubmission();
    await get().createPasSubmissionForOrders(s, [change(key, 'pended', { source: 'pas', actor: `PAS ${s.id}`, submissionId: s.id })]);
    const next = { status: 'denied' as const, reviewAction: 'A3' as const, needed: [], claimResponse: {}, responseBundle: {}, detail: {} };
    const decision = { submissionId: s.id, decision: 'deny' as const, reviewer: 'Dr. B', reason: 'T-ALL, not B-ALL', decidedAt: new Date().toISOString() };
    // The order was decided elsewhere meanwhile: the reviewer's decision is refused, the request stays pended.
    const other = orderKey();
    await get().applyOrderChange(change(other, 'denied'));
    const refused = await get().recordReviewDecision({ decision, next, orders: [change(other, 'denied', { source: 'review', actor: 'Dr. B' }, ['pended'])] });
    expect(refused.applied).toBe(false);
    expect(refused.submission?.reviewAction).toBe('A4');
    const ok = await get().recordReviewDecision({ decision, next, orders: [change(key, 'denied', { source: 'review', actor: 'Dr. B', reason: 'T-ALL, not B-ALL', submissionId: s.id }, ['pended'])] });
    expect(ok.applied).toBe(true);
    expect(await get().getOrderRecord(key)).toMatchObject({ state: 'denied', reason: 'T-ALL, not B-ALL' });
  });

  it('gives the heartbeat of a subscription quiet for its period to exactly one of many concurrent claims', async () => {
    const t = (s: number) => new Date(Date.parse('2026-11-23T10:00:00.000Z') + s * 1000).toISOString();
    const id = randomUUID();
    const sub = {
      id,
      status: 'requested' as const,
      topic: 'http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic',
      filters: [],
      endpoint: 'https://ehr.example.org/pas-notify',
      headers: [],
      content: 'full-resource' as const,
      resource: { resourceType: 'Subscription', id },
      eventsCount: 0,
      createdAt: t(0),
      updatedAt: t(0),
    };
    await get().saveSubscription(sub);
    expect(await get().claimHeartbeat(id, t(60), t(61))).toBe(false); // not active yet
    await get().setSubscriptionStatus(id, 'active', t(0));
    expect(await get().claimHeartbeat(id, t(-1), t(1))).toBe(false); // changed after quietSince
    const claims = await Promise.all(Array.from({ length: 6 }, () => get().claimHeartbeat(id, t(60), t(61))));
    expect(claims.filter(Boolean)).toHaveLength(1);
    expect(await get().claimHeartbeat(id, t(60), t(62))).toBe(false); // notified at 61
    // A delivered notification counts as being heard from.
    await get().enqueueHandshake(id, t(100));
    const [d] = (await get().claimDueDeliveries(t(100), 10_000, 1000)).filter((x) => x.subscription.id === id);
    await get().completeDelivery(d.id, t(100));
    expect(await get().claimHeartbeat(id, t(90), t(120))).toBe(false);
    expect(await get().claimHeartbeat(id, t(110), t(120))).toBe(true);
    await get().deleteSubscription(id);
  });

  it('keeps PAS subscriptions and a durable notification outbox: decision events, numbered deliveries, leases, retries', async () => {
    const now = new Date().toISOString();
    const id = randomUUID();
    const sub = {
      id,
      owner: 'ehr-backend',
      status: 'requested' as const,
      topic: 'http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic',
      filters: ['org-identifier=1234567893'],
      endpoint: 'https://ehr.example.org/pas-notify',
      headers: ['Authorization: Bearer abc'],
      content: 'full-resource' as const,
      resource: { resourceType: 'Subscription', id },
      eventsCount: 0,
      createdAt: now,
      updatedAt: now,
    };
    await get().saveSubscription(sub);
    expect(await get().getSubscription(id)).toEqual(sub);
    await get().enqueueHandshake(id, now);

    // A reviewer's decision writes its event in the same transaction.
    const s = newSubmission();
    await get().createPasSubmission(s);
    const next = { status: 'approved' as const, reviewAction: 'A1' as const, needed: [], claimResponse: {}, responseBundle: {}, detail: {} };
    await get().recordReviewDecision({ decision: { submissionId: s.id, decision: 'approve', reviewer: 'Dr. A', reason: 'documented', decidedAt: now }, next });
    const events = (await get().pendingPasEvents(1000)).filter((e) => e.submissionId === s.id);
    expect(events).toHaveLength(1);
    await Promise.all([get().dispatchPasEvent(events[0].id, s.id, [id], now), get().dispatchPasEvent(events[0].id, s.id, [id], now)]);
    expect((await get().pendingPasEvents(1000)).filter((e) => e.submissionId === s.id)).toEqual([]);
    expect((await get().getSubscription(id))?.eventsCount).toBe(1);

    // Two replicas claiming at once get each notification once; a claimed one is leased, a failed one comes back later.
    const later = new Date(Date.now() + 1000).toISOString();
    const [a, b] = await Promise.all([get().claimDueDeliveries(later, 60_000, 50), get().claimDueDeliveries(later, 60_000, 50)]);
    const mine = [...a, ...b].filter((d) => d.subscription.id === id);
    expect(mine.map((d) => d.kind).sort()).toEqual(['event-notification', 'handshake']);
    expect(mine.find((d) => d.kind === 'event-notification')).toMatchObject({ eventNumber: 1, submissionId: s.id, attempts: 1 });
    expect((await get().claimDueDeliveries(later, 60_000, 50)).filter((d) => d.subscription.id === id)).toEqual([]);
    const handshake = mine.find((d) => d.kind === 'handshake')!;
    const event = mine.find((d) => d.kind === 'event-notification')!;
    await get().completeDelivery(handshake.id, later);
    const retryAt = new Date(Date.now() + 5000).toISOString();
    await get().failDelivery(event.id, retryAt, 'HTTP 503');
    expect((await get().claimDueDeliveries(later, 60_000, 50)).filter((d) => d.subscription.id === id)).toEqual([]);
    const retried = (await get().claimDueDeliveries(new Date(Date.now() + 6000).toISOString(), 60_000, 50)).filter((d) => d.subscription.id === id);
    expect(retried).toMatchObject([{ id: event.id, attempts: 2 }]);
    await get().completeDelivery(event.id, later);
    expect(await get().deleteSubscription(id)).toBe(true);
    expect(await get().getSubscription(id)).toBeUndefined();
  });

  it('numbers events for a subscription in error and holds them until it is active again; keeps them for $events', async () => {
    const t = (sec: number) => new Date(Date.parse('2026-11-23T10:00:00.000Z') + sec * 1000).toISOString();
    const sub = (status: 'error' | 'off'): SubscriptionRecord => ({
      id: randomUUID(),
      status,
      topic: 'http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic',
      filters: [],
      endpoint: 'https://ehr.example.org/pas-notify',
      headers: [],
      content: 'full-resource',
      resource: { resourceType: 'Subscription' },
      eventsCount: 0,
      createdAt: t(0),
      updatedAt: t(0),
    });
    const [errored, off] = [sub('error'), sub('off')];
    await get().saveSubscription(errored);
    await get().saveSubscription(off);
    const before = await get().countUndelivered();
    const decided: string[] = [];
    for (const reason of ['MRD 0.4 % on the attached flow report', 'MRD 0.2 % by flow cytometry']) {
      const s = newSubmission();
      await get().createPasSubmission(s);
      const next = { status: 'approved' as const, reviewAction: 'A1' as const, needed: [], claimResponse: {}, responseBundle: {}, detail: {} };
      await get().recordReviewDecision({ decision: { submissionId: s.id, decision: 'approve', reviewer: 'Dr. A', reason, decidedAt: t(1) }, next });
      const [event] = (await get().pendingPasEvents(1000)).filter((e) => e.submissionId === s.id);
      await get().dispatchPasEvent(event.id, s.id, [errored.id, off.id], t(10 + decided.length));
      decided.push(s.id);
    }
    expect((await get().getSubscription(errored.id))?.eventsCount).toBe(2);
    expect((await get().getSubscription(off.id))?.eventsCount).toBe(0);
    // Held: not due, not counted as waiting.
    expect((await get().claimDueDeliveries(t(3600), 60_000, 1000)).filter((d) => d.subscription.id === errored.id)).toEqual([]);
    expect(await get().countUndelivered()).toBe(before);
    const events = await get().listSubscriptionEvents(errored.id, 1, 10, 100);
    expect(events.map((e) => [e.eventNumber, e.submissionId])).toEqual([[1, decided[0]], [2, decided[1]]]);
    expect(events[0].at).toBe(t(10));
    expect((await get().listSubscriptionEvents(errored.id, 2, 2, 100)).map((e) => e.eventNumber)).toEqual([2]);
    expect(await get().listSubscriptionEvents(off.id, 1, 10, 100)).toEqual([]);

    // Active again: every held notification is due, with a fresh retry budget.
    await get().setSubscriptionStatus(errored.id, 'active', t(3600));
    const released = (await get().claimDueDeliveries(t(3600), 60_000, 1000)).filter((d) => d.subscription.id === errored.id);
    expect(released.map((d) => [d.eventNumber, d.attempts])).toEqual([[1, 1], [2, 1]]);
    // Back in error: what is undelivered is held again.
    await get().setSubscriptionStatus(errored.id, 'error', t(3601));
    expect((await get().claimDueDeliveries(t(7200), 60_000, 1000)).filter((d) => d.subscription.id === errored.id)).toEqual([]);
    await get().deleteSubscription(errored.id);
    await get().deleteSubscription(off.id);
  });

  it('pages through every subscription, past any page size: by status, by client, each once', async () => {
    const owner = `ehr-${randomUUID()}`;
    const now = new Date().toISOString();
    const subs: SubscriptionRecord[] = Array.from({ length: 1005 }, (_, i) => ({
      id: randomUUID(),
      owner,
      status: i % 5 === 4 ? ('error' as const) : ('active' as const),
      topic: 'http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic',
      filters: [`patient=U${String(5521039000 + i)}`],
      endpoint: 'https://ehr.example.org/pas-notify',
      headers: [],
      content: 'full-resource' as const,
      resource: { resourceType: 'Subscription' },
      eventsCount: 0,
      createdAt: now,
      updatedAt: now,
    }));
    for (let i = 0; i < subs.length; i += 50) await Promise.all(subs.slice(i, i + 50).map((x) => get().saveSubscription(x)));
    const seen = async (q: Parameters<typeof everySubscription>[1]) => {
      const ids: string[] = [];
      for await (const page of everySubscription(get(), q)) ids.push(...page.filter((x) => x.owner === owner).map((x) => x.id));
      return ids;
    };
    const active = await seen({ statuses: ['active'] });
    expect(active).toHaveLength(804);
    expect(new Set(active)).toEqual(new Set(subs.filter((x) => x.status === 'active').map((x) => x.id)));
    expect(new Set(await seen({ readableBy: owner, limit: 300 }))).toEqual(new Set(subs.map((x) => x.id)));
    expect(await seen({ readableBy: 'another-client' })).toEqual([]);
    for (let i = 0; i < subs.length; i += 50) await Promise.all(subs.slice(i, i + 50).map((x) => get().deleteSubscription(x.id)));
  }, 120_000);

  it('answers ping', async () => {
    await expect(get().ping()).resolves.toBeUndefined();
  });
}
