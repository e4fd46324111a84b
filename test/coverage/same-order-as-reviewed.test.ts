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

  // Review diff1 s47 F1: the PAS Bundle's copy of the order may write the same order differently from the EHR at
  // signing; compared element by element, such a copy lifted a reviewer's denial for an unchanged order.
  describe('the same order written differently is the same order', () => {
    const written = (change: (o: MedicationRequest) => void) => {
      const o = order(980);
      o.dosageInstruction![0].doseAndRate![0].type = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/dose-rate-type', code: 'ordered', display: 'Ordered' }] };
      o.dispenseRequest!.expectedSupplyDuration = { value: 28, unit: 'days', system: 'http://unitsofmeasure.org', code: 'd' };
      o.dosageInstruction![0].timing = { repeat: { boundsPeriod: { start: '2026-12-10', end: '2027-01-06T23:59:00Z' }, frequency: 1, period: 1, periodUnit: 'd' } };
      change(o);
      return o;
    };
    const asReviewed: ReviewedOrder = { ...reviewed, order: written(() => {}) };

    it.each([
      ['the dose-rate type left out', (o: MedicationRequest) => { delete o.dosageInstruction![0].doseAndRate![0].type; }],
      ['the dose-rate type without its display', (o: MedicationRequest) => { o.dosageInstruction![0].doseAndRate![0].type!.coding![0].display = undefined; }],
      ['the dose unit text another spelling of the same code', (o: MedicationRequest) => { o.dosageInstruction![0].doseAndRate![0].doseQuantity!.unit = 'microgram/m2/day'; }],
      ['the supply duration in "day" uncoded', (o: MedicationRequest) => { o.dispenseRequest!.expectedSupplyDuration = { value: 28, unit: 'day' }; }],
      ['the bounds ending on the same day at another time', (o: MedicationRequest) => { o.dosageInstruction![0].timing!.repeat!.boundsPeriod!.end = '2027-01-06'; }],
    ])('signing: %s', (_what, change) => {
      expect(sameOrderAsReviewed(policy, signing(written(change)), asReviewed)).toBe(true);
    });

    it.each([
      ['the dose per m2 raised', (o: MedicationRequest) => { o.dosageInstruction![0].doseAndRate![0].doseQuantity!.value = 28; }],
      ['the supply shortened to 14 days', (o: MedicationRequest) => { o.dispenseRequest!.expectedSupplyDuration = { value: 14, unit: 'days', system: 'http://unitsofmeasure.org', code: 'd' }; }],
      ['a supply duration no longer stated', (o: MedicationRequest) => { delete o.dispenseRequest!.expectedSupplyDuration; }],
      ['a repeat (another cycle) added', (o: MedicationRequest) => { o.dispenseRequest!.numberOfRepeatsAllowed = 1; }],
      ['given twice a day', (o: MedicationRequest) => { o.dosageInstruction![0].timing!.repeat!.frequency = 2; }],
    ])('signing: %s is another order', (_what, change) => {
      expect(sameOrderAsReviewed(policy, signing(written(change)), asReviewed)).toBe(false);
    });

    it('PAS: the Claim item quantity with its system added is the same quantity; another unit code is another', () => {
      const item = (quantity: object) => ({ evaluation: { facts: [{ name: 'requestedUnits', value: 2000, source: 'ehr' as const }, { name: 'dailyDoseUg', value: 4.95, source: 'ehr' as const }] }, order: order(980), fromClaimItem: true, claimQuantity: quantity });
      const plain: ReviewedOrder = { ...reviewed, item: { ...reviewed.item, quantity: { value: 2000, unit: 'UN' } } };
      expect(sameOrderAsReviewed(policy, item({ value: 2000, unit: 'UN', system: 'http://unitsofmeasure.org' }), plain)).toBe(true);
      expect(sameOrderAsReviewed(policy, item({ value: 2000, unit: 'UN', code: '{unit}' }), reviewed)).toBe(true);
      expect(sameOrderAsReviewed(policy, item({ value: 2000, unit: 'mg', code: 'mg' }), reviewed)).toBe(false);
    });
  });
});
