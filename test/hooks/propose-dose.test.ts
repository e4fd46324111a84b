import type { MedicationRequest } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { proposeDose } from '../../src/hooks/build-response.js';

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

  it('replaces a per-m² dose with the proposed daily dose', () => {
    const o = order([{ value: 30, code: 'ug/m2/d' }]);
    proposeDose(o, { ...target, value: 14.4 });
    expect(o.dosageInstruction![0].doseAndRate![0].doseQuantity).toMatchObject({ value: 14.4, code: 'ug/d' });
  });

  it('reports an order without a dose', () => {
    expect(proposeDose(order([]), target)).toBe(false);
  });
});
