/**
 * What a reviewer's approval covers of a later request for the same order (approval-covers.ts; docs/design.md §8 "What
 * an approval covers"): the Claim quantity is read from the item's decision, where PAS keeps it when it decides the
 * item, and from the stored request only for decisions kept before (stop 40 read-through); and only the amounts the
 * order asks for are compared (the dose, the cycles), never the patient's or the record's facts (review s40 L6).
 */
import type { Bundle, Claim, Quantity } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import type { CriterionEvidence, ItemDecision } from '../../src/pas/adjudicate.js';
import { approvalCovers } from '../../src/pas/approval-covers.js';
import type { OrderKey, OrderRecord, PasSubmission, Storage } from '../../src/storage/storage.js';
import { storyBundle } from './pas-fixtures.js';

const KEY: OrderKey = { payer: 'centene', patientId: 'patient-1', orderRef: 'MedicationRequest/order-1', drug: 'blinatumomab' };
const ug = (value: number): Quantity => ({ value, unit: 'ug', system: 'http://unitsofmeasure.org', code: 'ug' });
const ASKED = ['dailyDoseUg', 'cyclesRequested'];

/** An item over Centene's weight-class dose limit (CP.PHAR.312 I.A.5) with the limit's evidence. */
function overDose(evidence: Record<string, number | string>, extra: Partial<ItemDecision> = {}): ItemDecision {
  const facts: CriterionEvidence[] = Object.entries(evidence).map(([fact, value]) => ({ fact, label: fact, value, source: 'ehr' }));
  return {
    sequence: 1,
    policyId: 'centene-blinatumomab',
    outcome: 'limit-exceeded',
    reviewAction: 'A4',
    needed: ['Clinical review: dose over the limit'],
    reasons: [],
    criteria: [{ id: 'weight-class-dose', kind: 'limit', cite: 'CP.PHAR.312 I.A.5', text: 'dose', result: false, evidence: facts }],
    orderDate: '2026-11-23',
    reviewPeriod: { start: '2026-11-23', end: '2027-05-22' },
    order: KEY,
    ...extra,
  };
}

/** The order's record, approved by a reviewer on request `S-reviewed`. */
const RECORD: OrderRecord = {
  ...KEY,
  id: 'record-1',
  state: 'approved',
  reason: 'approved on review',
  authorization: { number: 'PA-CENTENE-20261123-AAAA', start: '2026-11-23', end: '2027-05-22' },
  submissionId: 'S-reviewed',
  createdAt: '2026-11-23T09:00:00Z',
  updatedAt: '2026-11-23T10:00:00Z',
  history: [{ at: '2026-11-23T10:00:00Z', source: 'review', actor: 'Dr. R. Okafor', state: 'approved', reason: 'approved', submissionId: 'S-reviewed' }],
};

/** A storage that holds only the reviewed request, with `requestBundle` as its stored request. */
function storageWith(was: ItemDecision, requestBundle: Record<string, unknown>): Storage {
  const reviewed = { id: 'S-reviewed', requestBundle, detail: { items: [was] } } as unknown as PasSubmission;
  return { getPasSubmission: async (id: string) => (id === reviewed.id ? reviewed : undefined) } as unknown as Storage;
}

/** The story's request with its Claim item asking `quantity`, as stored. */
function storedRequest(quantity: Quantity): Record<string, unknown> {
  const bundle: Bundle = storyBundle('centene-mrd-positive');
  (bundle.entry![0].resource as Claim).item![0].quantity = quantity;
  return bundle as unknown as Record<string, unknown>;
}

describe("the Claim quantity is read from the item's decision", () => {
  it('a reviewed decision holding its quantity is compared on it, the stored request not read (it need not even parse)', async () => {
    const was = overDose({ dailyDoseUg: 56 }, { quantity: ug(3136), askedAmounts: ASKED });
    const storage = storageWith(was, { resourceType: 'Bundle', type: 'not-a-pas-request' });
    expect(await approvalCovers(storage, overDose({ dailyDoseUg: 56 }, { quantity: ug(3136), askedAmounts: ASKED }), RECORD)).toBe(true);
    expect(await approvalCovers(storage, overDose({ dailyDoseUg: 56 }, { quantity: ug(1568), askedAmounts: ASKED }), RECORD)).toBe(true);
    expect(await approvalCovers(storage, overDose({ dailyDoseUg: 56 }, { quantity: ug(4704), askedAmounts: ASKED }), RECORD)).toBe(false);
  });

  it('a reviewed decision whose item stated no quantity (null) covers none larger, without reading the request', async () => {
    const storage = storageWith(overDose({ dailyDoseUg: 56 }, { quantity: null }), storedRequest(ug(99999)));
    expect(await approvalCovers(storage, overDose({ dailyDoseUg: 56 }, { quantity: ug(1568) }), RECORD)).toBe(false);
    expect(await approvalCovers(storage, overDose({ dailyDoseUg: 56 }, { quantity: null }), RECORD)).toBe(true);
  });

  it('decisions stored before quantities were kept read the quantity from their stored request, as before', async () => {
    const storage = storageWith(overDose({ dailyDoseUg: 56 }), storedRequest(ug(3136)));
    expect(await approvalCovers(storage, overDose({ dailyDoseUg: 56 }), RECORD, () => ug(3136))).toBe(true);
    expect(await approvalCovers(storage, overDose({ dailyDoseUg: 56 }), RECORD, () => ug(4704))).toBe(false);
    // The later item's own decision holds its quantity; the reviewed one's comes from its request.
    expect(await approvalCovers(storage, overDose({ dailyDoseUg: 56 }, { quantity: ug(1568) }), RECORD)).toBe(true);
  });
});

describe('only the amounts the order asks for are compared', () => {
  const reviewed = overDose({ weightKg: 62, bsa: 1.7, dailyDoseUg: 56, courseStart: '2026-11-23' }, { askedAmounts: ASKED, quantity: null });
  const later = (evidence: Record<string, number | string>) => overDose(evidence, { askedAmounts: ASKED, quantity: null });

  it('a heavier patient, a larger BSA or a later course start asks nothing more of the approval (was pended for review)', async () => {
    const storage = storageWith(reviewed, {});
    expect(await approvalCovers(storage, later({ weightKg: 70, bsa: 1.7, dailyDoseUg: 56, courseStart: '2026-11-23' }), RECORD)).toBe(true);
    expect(await approvalCovers(storage, later({ weightKg: 62, bsa: 1.9, dailyDoseUg: 56, courseStart: '2026-11-23' }), RECORD)).toBe(true);
    expect(await approvalCovers(storage, later({ weightKg: 62, bsa: 1.7, dailyDoseUg: 56, courseStart: '2027-01-04' }), RECORD)).toBe(true);
  });

  it('a higher dose asks more; the same or a lower one does not', async () => {
    const storage = storageWith(reviewed, {});
    expect(await approvalCovers(storage, later({ weightKg: 62, bsa: 1.7, dailyDoseUg: 60, courseStart: '2026-11-23' }), RECORD)).toBe(false);
    expect(await approvalCovers(storage, later({ weightKg: 70, bsa: 1.7, dailyDoseUg: 42, courseStart: '2026-11-23' }), RECORD)).toBe(true);
  });

  it('decisions stored before the asked amounts were kept compare every fact of the limit, as then', async () => {
    const storage = storageWith(overDose({ weightKg: 62, dailyDoseUg: 56 }), {});
    expect(await approvalCovers(storage, overDose({ weightKg: 70, dailyDoseUg: 56 }), RECORD)).toBe(false);
    expect(await approvalCovers(storage, overDose({ weightKg: 60, dailyDoseUg: 56 }), RECORD)).toBe(true);
  });
});
