import type { MedicationRequest } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { proposeDose } from '../../src/policies/alternate-order.js';

const target = { value: 28, unit: 'mcg/day', system: 'http://unitsofmeasure.org', code: 'ug/d' };
const order = (doses: { value: number; code: string }[]): MedicationRequest => ({
  resourceType: 'MedicationRequest',
  status: 'draft',
  intent: 'order',
  subject: { reference: 'Patient/p' },
  dosageInstruction: doses.map((d) => ({ doseAndRate: [{ doseQuantity: { ...d, system: 'http://unitsofmeasure.org' } }] })),
});

describe('Propose Alternate Request dose', () => {
  it('keeps a step-dosed first week and lowers only the instruction above the limit', () => {
    const o = order([
      { value: 9, code: 'ug/d' },
      { value: 56, code: 'ug/d' },
    ]);
    expect(proposeDose(o, target)).toBe(true);
    expect(o.dosageInstruction!.map((i) => i.doseAndRate![0].doseQuantity!.value)).toEqual([9, 28]);
  });

  it('lowers the dose typed ordered, not a calculated one listed before it, and drops the stale calculated entry (review-accept s46 F1)', () => {
    const typed = (code: string) => ({ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/dose-rate-type', code }] });
    const o = order([]);
    o.dosageInstruction = [
      {
        doseAndRate: [
          { type: typed('calculated'), doseQuantity: { value: 28, code: 'ug/d', system: 'http://unitsofmeasure.org' } },
          { type: typed('ordered'), doseQuantity: { value: 56, code: 'ug/d', system: 'http://unitsofmeasure.org' } },
        ],
      },
    ];
    expect(proposeDose(o, { ...target, value: 20.9 })).toBe(true);
    expect(o.dosageInstruction[0].doseAndRate).toEqual([{ type: typed('ordered'), doseQuantity: { ...target, value: 20.9 } }]);
  });

  it('writes the changed line in the unit spelling of the lines it keeps, one spelling per card (acceptance review s48, 5)', () => {
    const o = order([]);
    const line = (value: number) => ({ doseAndRate: [{ doseQuantity: { value, unit: 'mg/m2', system: 'http://unitsofmeasure.org', code: 'mg/m2' } }] });
    o.dosageInstruction = [line(1.2), line(0.5), line(0.5)];
    proposeDose(o, { value: 0.8, unit: 'mg/m²', system: 'http://unitsofmeasure.org', code: 'mg/m2' });
    expect(o.dosageInstruction.map((i) => i.doseAndRate![0].doseQuantity)).toEqual([0.8, 0.5, 0.5].map((value) => ({ value, unit: 'mg/m2', system: 'http://unitsofmeasure.org', code: 'mg/m2' })));
  });

  it('replaces a per-m² dose with the proposed daily dose', () => {
    const o = order([{ value: 30, code: 'ug/m2/d' }]);
    proposeDose(o, { ...target, value: 14.4 });
    expect(o.dosageInstruction![0].doseAndRate![0].doseQuantity).toMatchObject({ value: 14.4, code: 'ug/d' });
  });

  it('restates the dose in the sig it keeps, so an accepted suggestion never says one dose and orders another', () => {
    const o = order([{ value: 60, code: 'ug/d' }]);
    o.dosageInstruction![0].text = '60 mcg/day continuous IV infusion, days 1-28 of a 42-day cycle';
    proposeDose(o, target);
    expect(o.dosageInstruction![0].text).toBe('28 mcg/day continuous IV infusion, days 1-28 of a 42-day cycle');

    const step = order([
      { value: 9, code: 'ug/d' },
      { value: 56, code: 'ug/d' },
    ]);
    step.dosageInstruction![0].text = '9 mcg daily, days 1-7';
    step.dosageInstruction![1].text = 'then 56MCG per day days 8-28 (cycle 1 total 1.6 mg)';
    proposeDose(step, target);
    expect(step.dosageInstruction!.map((i) => i.text)).toEqual(['9 mcg daily, days 1-7', 'then 28 mcg/day days 8-28 (cycle 1 total 1.6 mg)']);

    const perM2 = order([{ value: 30, code: 'ug/m2/d' }]);
    perM2.dosageInstruction![0].text = '30 micrograms/m2/day by continuous infusion';
    proposeDose(perM2, { ...target, value: 14.4 });
    expect(perM2.dosageInstruction![0].text).toBe('14.4 mcg/day by continuous infusion');
  });

  it('reports an order without a dose', () => {
    expect(proposeDose(order([]), target)).toBe(false);
  });
});
