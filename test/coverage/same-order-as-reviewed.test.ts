import type { MedicationRequest } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { sameOrderAsReviewed } from '../../src/coverage/reviewed-approval.js';
import type { ReviewedOrder } from '../../src/coverage/reviewed-approval.js';
import type { CompiledPolicy } from '../../src/policies/compiled-policy.js';

/**
 * The one definition of "the same order as reviewed" (docs/design.md §8 "A denial is the decision on the order as it
 * was denied"), for a policy that judges the amount dispensed (as OHSU's HEALTHSERVICES-0382 II, 980 J9039 units per
 * 42 days, `requestedAmount: requestedUnits`): PAS read that amount from the Claim item, signing reads it from the
 * order, so signing compares the order's own quantity with the order the reviewed request held.
 */
const policy = {
  requestedAmount: 'requestedUnits',
  facts: [
    { name: 'requestedUnits', def: { fhirpath: '%order.dispenseRequest.quantity.value' } },
    { name: 'dailyDoseUg', def: { fhirpath: '%order.dosageInstruction.doseAndRate.dose.value' } },
  ],
} as unknown as CompiledPolicy;

/** An OHSU-style Blincyto order: 4.95 mcg/day (15 mcg/m2/day at BSA 0.33 m2), dispensing `ug` micrograms a cycle. */
function order(ug: number): MedicationRequest {
  return {
    resourceType: 'MedicationRequest',
    id: 'ohsu-infant-kmt2a-order',
    status: 'draft',
    intent: 'order',
    subject: { reference: 'Patient/ohsu-infant-kmt2a' },
    medicationCodeableConcept: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '1597262', display: 'blinatumomab 0.035 MG Injection' }] },
    dosageInstruction: [{ text: '15 mcg/m2/day continuous IV infusion, days 1-28', doseAndRate: [{ doseQuantity: { value: 15, unit: 'mcg/m2/d', system: 'http://unitsofmeasure.org', code: 'ug/m2/d' } }] }],
    dispenseRequest: { quantity: { value: ug, unit: 'mcg', system: 'http://unitsofmeasure.org', code: 'ug' }, numberOfRepeatsAllowed: 0 },
  };
}

/** The denied PAS item asked 2000 units for the one cycle of an order stating 980 mcg: the item's amount was judged. */
const reviewed: ReviewedOrder = {
  item: { criteria: [{ id: 'units-per-42-days', kind: 'limit', result: false, evidence: [{ fact: 'requestedUnits', value: 2000, source: 'ehr' }, { fact: 'dailyDoseUg', value: 4.95, source: 'ehr' }] }], quantity: { value: 2000, unit: 'UN', code: '{unit}' } },
  facts: { requestedUnits: 2000, dailyDoseUg: 4.95 },
  order: order(980),
};

const signing = (o: MedicationRequest) => ({ evaluation: { facts: [{ name: 'requestedUnits', value: o.dispenseRequest!.quantity!.value, source: 'ehr' as const }, { name: 'dailyDoseUg', value: 4.95, source: 'ehr' as const }] }, order: o });

describe('the same order as reviewed', () => {
  it('signing: the order re-signed unchanged is the order reviewed, though PAS judged the Claim item\'s amount', () => {
    expect(sameOrderAsReviewed(policy, signing(order(980)), reviewed)).toBe(true);
  });

  it('signing: the order re-signed with only its dispense quantity lowered is another order', () => {
    expect(sameOrderAsReviewed(policy, signing(order(840)), reviewed)).toBe(false);
  });

  it('signing: without the reviewed request\'s order to compare with, only the facts tell (the quantity cannot)', () => {
    const { order: _held, ...withoutOrder } = reviewed;
    expect(sameOrderAsReviewed(policy, signing(order(840)), withoutOrder)).toBe(true);
  });

  it('PAS: the Claim item asking another quantity for the same order is another order; the same quantity is not', () => {
    const item = (value: number) => ({ evaluation: { facts: [{ name: 'requestedUnits', value, source: 'ehr' as const }, { name: 'dailyDoseUg', value: 4.95, source: 'ehr' as const }] }, order: order(980), fromClaimItem: true, claimQuantity: { value, unit: 'UN', code: '{unit}' } });
    expect(sameOrderAsReviewed(policy, item(2000), reviewed)).toBe(true);
    expect(sameOrderAsReviewed(policy, item(980), reviewed)).toBe(false);
  });
});
