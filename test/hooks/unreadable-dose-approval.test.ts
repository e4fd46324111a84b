import type { Extension, MedicationRequest, Quantity } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { approvalLoop } from '../helpers/approval-loop.js';
import { claimResponseOf, reviewActions, storyBundle } from '../pas/pas-fixtures.js';

/**
 * design.md §4 "Errors": an unreadable dose (missing, zero, negative, no or an unknown unit) is an unknown fact, never
 * a reason for `satisfied`. An order approved for the dose it then had, sent again with a dose that cannot be read,
 * is not answered with the earlier number: the approval is reopened (docs/design.md §8 "What an approval covers") and
 * the order gets the answer a fresh order with that dose gets. Centene, CP.PHAR.312 II.A.2 (28 mcg/day).
 */
const X12 = 'https://codesystem.x12.org/005010/306';
const STORY = 'centene-mrd-positive';
const REVIEW_TOKEN = 'review-token-for-unreadable-dose';
const sub = (ext: Extension, url: string) => ext.extension!.find((e) => e.url === url);
const UCUM = 'http://unitsofmeasure.org';

/** Each way a dose cannot be read; undefined: no doseQuantity at all. */
const UNREADABLE: [string, Quantity | undefined][] = [
  ['missing', undefined],
  ['zero', { value: 0, unit: 'mcg/d', system: UCUM, code: 'ug/d' }],
  ['negative', { value: -28, unit: 'mcg/d', system: UCUM, code: 'ug/d' }],
  ['without a unit', { value: 28 }],
  ['in an unknown unit', { value: 28, unit: 'mL/h', system: UCUM, code: 'mL/h' }],
];

/** The story's order with its dose replaced (or removed). */
function withDose(order: MedicationRequest, dose: Quantity | undefined): MedicationRequest {
  const copy = structuredClone(order);
  const rate = copy.dosageInstruction![0].doseAndRate![0];
  if (dose) rate.doseQuantity = dose;
  else delete rate.doseQuantity;
  return copy;
}

const setUp = () => approvalLoop(STORY, REVIEW_TOKEN);

/** The coverage-information codes of an answer, the number aside. */
const codes = (ext: Extension) => ({ covered: sub(ext, 'covered')?.valueCode, paNeeded: sub(ext, 'pa-needed')?.valueCode, docNeeded: sub(ext, 'doc-needed')?.valueCode });

describe('an approved order sent again with an unreadable dose', () => {
  it.each(UNREADABLE)('dose %s: not satisfied, the same codes as a fresh order with that dose; the approval is reopened; a readable dose within the limit gets a new number', async (_, dose) => {
    const fresh = setUp();
    const freshAnswer = await fresh.sign(withDose(fresh.order, dose));
    expect(sub(freshAnswer.ext, 'pa-needed')!.valueCode).not.toBe('satisfied');

    const { order, sign, expectReopened, signedAgainRenewed } = setUp();
    const first = await sign(order);
    expect(sub(first.ext, 'pa-needed')!.valueCode).toBe('satisfied');
    const number = sub(first.ext, 'satisfied-pa-id')!.valueString!;

    const unreadable = await sign(withDose(order, dose));
    expect(codes(unreadable.ext)).toEqual(codes(freshAnswer.ext));
    expect(sub(unreadable.ext, 'satisfied-pa-id')).toBeUndefined();
    expect(JSON.stringify(unreadable.body.cards)).toContain(`Authorization ${number} was for this order at the dose then ordered; the dose as now sent cannot be read`);
    await expectReopened(number);

    // The dose written again as 28 mcg/day: within every limit, a new approval with its own number.
    await signedAgainRenewed(number);
  });

  it('a PAS request whose dose cannot be read, after an approval at signing, pends instead of answering the earlier number', async () => {
    const { storage, order, key, sign, submit } = setUp();
    const number = sub((await sign(order)).ext, 'satisfied-pa-id')!.valueString!;
    const bundle = storyBundle(STORY);
    for (const e of bundle.entry ?? []) {
      if (e.resource?.resourceType === 'MedicationRequest') e.resource = withDose(e.resource, { value: 28 });
    }
    const answered = claimResponseOf((await submit(bundle)).body);
    expect(reviewActions(answered)).toEqual([`${X12}#A4`]);
    expect(answered.preAuthRef).toBeUndefined();
    const record = await storage.getOrderRecord(key);
    expect(record?.state).toBe('pended');
    expect(record!.history.map((h) => h.authorizationNumber).filter(Boolean)).toEqual([number]);
  });

  it("a reviewer's approval stands when the order is signed again with a dose the chart cannot read (the reviewer may have read it from the order's text)", async () => {
    const { storage, order, key, sign, submit, review } = setUp();
    const bundle = storyBundle(STORY);
    for (const e of bundle.entry ?? []) {
      if (e.resource?.resourceType === 'MedicationRequest') e.resource = withDose(e.resource, { value: 60, unit: 'mcg/d', system: UCUM, code: 'ug/d' });
    }
    const pended = claimResponseOf((await submit(bundle)).body);
    expect(reviewActions(pended)).toEqual([`${X12}#A4`]);
    const decided = await review(`/${pended.id}/decision`, { decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: 'Dose escalation per protocol amendment' }).expect(200);
    const granted: string = decided.body.preAuthRef;

    const unreadable = await sign(withDose(order, { value: 60, unit: 'mcg/d', system: UCUM, code: 'mL/h' }));
    expect(granted).toMatch(/^PA-CENTENE-/);
    expect(sub(unreadable.ext, 'pa-needed')!.valueCode).toBe('satisfied');
    expect(sub(unreadable.ext, 'satisfied-pa-id')!.valueString).toBe(granted);
    expect((await storage.getOrderRecord(key))?.state).toBe('approved');
  });
});
