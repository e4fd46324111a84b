import { describe, expect, it } from 'vitest';
import { compileFhirPath } from '../../src/fhir/fhirpath.js';
import { CURRENT_MEDICATIONS_FHIRPATH, REGIMEN_MEDICATIONS_FHIRPATH, expandMedicationMacros } from '../../src/policies/current-orders.js';
import { loadContent } from '../../src/content.js';
import { repoRoot } from '../helpers/stories.js';

/** A MedicationRequest left "active", with the dates an EHR writes (pharmacist review §2b). */
function activeOrder(id: string, extra: Record<string, unknown>): Record<string, unknown> {
  return { resourceType: 'MedicationRequest', id, status: 'active', intent: 'order', subject: { reference: 'Patient/pt' }, ...extra };
}
const period = (start: string, end?: string) => [{ timing: { repeat: { boundsPeriod: { start, ...(end ? { end } : {}) } } } }];

const content = loadContent({ root: repoRoot, canonicalBase: 'https://priorpath.dev/fhir' });

describe('%currentMedications (src/policies/current-orders.ts)', () => {
  it('is written out in code, not in string literals nor in a longer name', () => {
    expect(expandMedicationMacros("%currentMedications.codedIn('tki').exists()")).toBe(`${CURRENT_MEDICATIONS_FHIRPATH}.codedIn('tki').exists()`);
    expect(expandMedicationMacros("'%currentMedications' = %currentMedicationsOther")).toBe("'%currentMedications' = %currentMedicationsOther");
  });

  it('no loaded fact keeps the name: every engine reads the written-out FHIRPath', () => {
    const facts = content.policies.flatMap((p) => p.facts);
    expect(facts.some((f) => f.def.fhirpath.includes('%medications.where(status in'))).toBe(true);
    expect(facts.filter((f) => f.def.fhirpath.includes('%currentMedications')).map((f) => f.name)).toEqual([]);
  });

  it('keeps an order with no stated end, an end on or after the start, an open dosage period or an unreadable end; drops one every stated end of which is before the start', () => {
    const expr = compileFhirPath(`${CURRENT_MEDICATIONS_FHIRPATH}.select(id)`, { valueSets: content.valueSets, valueSetBase: `${content.canonicalBase}/ValueSet`, model: 'r4' });
    const medications = [
      activeOrder('no-end', { dosageInstruction: period('2026-09-01') }),
      activeOrder('ended-before', { dosageInstruction: period('2026-09-01', '2026-09-22') }),
      activeOrder('ends-day-before', { dosageInstruction: period('2026-11-18', '2026-11-23T20:00:00-05:00') }),
      activeOrder('ends-on-start', { dosageInstruction: period('2026-11-03', '2026-11-24') }),
      activeOrder('validity-ended', { dispenseRequest: { validityPeriod: { start: '2026-03-05', end: '2026-08-31' } } }),
      activeOrder('validity-ended-open-dose', { dosageInstruction: period('2026-03-05'), dispenseRequest: { validityPeriod: { end: '2026-08-31' } } }),
      activeOrder('month-only', { dosageInstruction: period('2026-11-01', '2026-11') }),
      activeOrder('step-then-open', { dosageInstruction: [...period('2026-10-01', '2026-10-07'), ...period('2026-10-08')] }),
      { ...activeOrder('completed-ended', { dosageInstruction: period('2026-09-01', '2026-09-22') }), status: 'completed' },
      { ...activeOrder('draft-no-end', {}), status: 'draft' },
    ];
    const current = expr({}, { medications, orderDate: '2026-11-24' });
    expect(current).toEqual(['no-end', 'ends-on-start', 'validity-ended-open-dose', 'month-only', 'step-then-open', 'draft-no-end']);
  });
});

describe('%regimenMedications (src/policies/current-orders.ts)', () => {
  it('is written out beside %currentMedications, and no loaded fact keeps the name', () => {
    expect(expandMedicationMacros("%regimenMedications.codedIn('pomp') | %currentMedications")).toBe(
      `${REGIMEN_MEDICATIONS_FHIRPATH}.codedIn('pomp') | ${CURRENT_MEDICATIONS_FHIRPATH}`,
    );
    expect(expandMedicationMacros("'%regimenMedications' = %regimenMedicationsOther")).toBe("'%regimenMedications' = %regimenMedicationsOther");
    const facts = content.policies.flatMap((p) => p.facts);
    expect(facts.filter((f) => f.def.fhirpath.includes('%regimenMedications')).map((f) => f.name)).toEqual([]);
    expect(facts.filter((f) => f.def.fhirpath.includes(REGIMEN_MEDICATIONS_FHIRPATH)).map((f) => f.name)).toContain('pompSystemicAgents');
  });

  it('keeps the current orders and the orders (active, draft, on-hold, completed) started in the 180 days before the order or later; drops older, undated, stopped and partly dated ones that may be older (review s42 F4)', () => {
    const expr = compileFhirPath(`${REGIMEN_MEDICATIONS_FHIRPATH}.select(id)`, { valueSets: content.valueSets, valueSetBase: `${content.canonicalBase}/ValueSet`, model: 'r4' });
    const completed = (id: string, extra: Record<string, unknown>) => ({ ...activeOrder(id, extra), status: 'completed' });
    const medications = [
      activeOrder('maintenance-since-2024', { dosageInstruction: period('2024-11-20') }),
      activeOrder('active-ended-2024', { dosageInstruction: period('2024-09-01', '2024-12-20') }),
      activeOrder('active-ended-recently', { dosageInstruction: period('2026-09-01', '2026-10-13') }),
      completed('completed-2024', { dosageInstruction: period('2024-09-01', '2024-12-20') }),
      completed('completed-six-weeks', { dosageInstruction: period('2026-09-01', '2026-10-13') }),
      completed('completed-on-window-start', { dosageInstruction: period('2026-05-28', '2026-06-20') }),
      completed('completed-day-before-window', { dosageInstruction: period('2026-05-27', '2026-06-20') }),
      completed('completed-validity-recent', { dispenseRequest: { validityPeriod: { start: '2026-10-01', end: '2026-10-31' } } }),
      completed('completed-authored-recent', { authoredOn: '2026-10-05T14:30:00-05:00' }),
      completed('completed-undated', {}),
      completed('completed-month-after-window-start', { dosageInstruction: period('2026-10') }),
      completed('completed-month-of-window-start', { dosageInstruction: period('2026-05') }),
      { ...activeOrder('stopped-recent', { dosageInstruction: period('2026-10-01') }), status: 'stopped' },
      { ...activeOrder('draft-next-block', { dosageInstruction: period('2026-12-15') }), status: 'draft' },
    ];
    const regimen = expr({}, { medications, orderDate: '2026-11-24' });
    expect([...regimen].sort()).toEqual(
      [
        'maintenance-since-2024',
        'active-ended-recently',
        'completed-six-weeks',
        'completed-on-window-start',
        'completed-validity-recent',
        'completed-authored-recent',
        'completed-month-after-window-start',
        'draft-next-block',
      ].sort(),
    );
  });
});
