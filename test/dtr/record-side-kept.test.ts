/**
 * A derived fact that reads the record and a fact the form may ask keeps both sides in DTR (design.md §7 "One record
 * of what CRD knew"; cds-services/README.md "Facts that read the record and an answer"). DTR has CRD's facts and the
 * answers but not the record or the order, and recomputes a derived fact once an asked fact it is computed from is
 * answered: the record side is held in record-only facts (their CRD values stand) and the fact is combined from them
 * and the answers. Each case below answers a question the fact reads, and what the record said still counts:
 * - a recorded BSA (bsaRecorded), which the seeds' per-m² doses use before weight × height (CP.PHAR.312 V Dosage table,
 *   patients < 45 kg: 15 mcg/m²/day);
 * - the order's first-week dose (startingDoseOrderedUg, startingDoseOrderedPerM2: CP.PHAR.312 V, relapsed or
 *   refractory induction cycle 1, days 1-7: 9 mcg/day);
 * - the order's infusion days (orderBoundsOver28Days ...: CP.PHAR.312 V, 28 days of continuous infusion per cycle);
 * - OHSU's Appendix 1 diagnosis on record (allDiagnosisOnRecord: HEALTHSERVICES-0382 Appendix 1, C83.5x, C91.0x);
 * - the cycles of a phase on record and earlier in the same request (cyclesGivenConsolidation,
 *   requestCyclesBeforeConsolidation: HEALTHSERVICES-0382 V, consolidation up to 5 cycles).
 */
import type { MedicationRequest, Observation, QuestionnaireResponseItem, Resource } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { caseAsDtr, dtrContent, type CaseChange } from './helpers.js';

const content = dtrContent();
type Answers = Record<string, QuestionnaireResponseItem['answer']>;

/** A case as DTR reads it (helpers.ts caseAsDtr), its record and order changed by `change`. */
const readCaseAsDtr = (policyId: string, name: string, change: CaseChange, answers: Answers) => caseAsDtr(content, policyId, name, answers, change);

const same = (resources: Resource[], order: MedicationRequest) => ({ resources, order });
const without = (id: string) => (resources: Resource[], order: MedicationRequest) => ({ resources: resources.filter((r) => r.id !== id), order });
const bsaObservation = (value: number): Observation => ({
  resourceType: 'Observation',
  id: 'obs-bsa',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '8277-6', display: 'Body surface area' }] },
  effectiveDateTime: '2026-11-20T09:00:00Z',
  valueQuantity: { value, unit: 'm2', system: 'http://unitsofmeasure.org', code: 'm2' },
});

describe('Centene in DTR: a recorded BSA is kept once the height or weight is answered', () => {
  it('a child of 30 kg with a recorded BSA of 1.0 m², height answered 130 cm: the BSA stays 1.0 and the highest labelled dose 15 mcg/day (not 15.6 of weight × height)', () => {
    const { known, read, fact } = readCaseAsDtr(
      'centene-blinatumomab',
      'a recorded BSA written with its unit text only (1.0 "m2", no UCUM code) sets the child\'s proposal at 15 mcg/day',
      same,
      { height: [{ valueDecimal: 130 }] },
    );
    expect(known.bsa).toBe(1);
    expect(read.evaluation.outcome).toBe('limit-exceeded');
    expect(fact('bsa')).toBe(1);
    expect(read.evaluation.failed.map((r) => r.id)).toContain('max-daily-dose');
    expect(fact('maxDoseUg')).toBe(15);
  });

  it('a recorded BSA of 1.2 m² with the weight answered: a first week written 5 mcg/m²/day is 6 mcg/day, within the 9 mcg/day first week', () => {
    const { known, read, fact } = readCaseAsDtr(
      'centene-blinatumomab',
      'a first relapsed order written 9 mcg/day on days 1-7, then 28, is the labelled first week and approved',
      (resources, order) => ({
        resources: [...resources.filter((r) => r.id !== 'obs-weight'), bsaObservation(1.2)],
        order: {
          ...order,
          dosageInstruction: [
            { ...order.dosageInstruction![0], doseAndRate: [{ doseQuantity: { value: 5, unit: 'mcg/m2/d', system: 'http://unitsofmeasure.org', code: 'ug/m2/d' } }] },
            { ...order.dosageInstruction![1], doseAndRate: [{ doseQuantity: { value: 15, unit: 'mcg/m2/d', system: 'http://unitsofmeasure.org', code: 'ug/m2/d' } }] },
          ],
        },
      }),
      { weight: [{ valueDecimal: 38 }] },
    );
    expect(known.startingDoseUg).toBe(6);
    expect(fact('bsa')).toBe(1.2);
    expect(fact('startingDoseUg')).toBe(6);
    expect(read.evaluation.failed.map((r) => r.id)).not.toContain('step-dose-first-week');
  });
});

describe('Centene in DTR: the order\'s first-week dose is kept once the weight is answered', () => {
  it('28 mcg/day from day 1, the weight (not on record) answered 70 kg: still above the labelled 9 mcg/day first week, reviewed', () => {
    const { read, fact } = readCaseAsDtr(
      'centene-blinatumomab',
      'a first relapsed order at 28 mcg/day from day 1 is above the labelled 9 mcg/day first week, so it is reviewed, not approved',
      without('obs-weight'),
      { weight: [{ valueDecimal: 70 }] },
    );
    expect(fact('startingDoseUg')).toBe(28);
    expect(read.evaluation.outcome).toBe('limit-exceeded');
    expect(read.evaluation.failed.map((r) => r.id)).toContain('step-dose-first-week');
  });
});

describe('Centene in DTR: the order\'s infusion days are kept once the phase is answered', () => {
  it('28 mcg/day for 42 days of continuous infusion, the phase (not on the order) answered induction: still more than 28 days, reviewed', () => {
    const { known, read, fact } = readCaseAsDtr(
      'centene-blinatumomab',
      'an MRD-positive cycle ordered as 28 mcg/day for 42 days of continuous infusion (1.5x the cycle\'s drug) is reviewed, not approved',
      (resources, order) => ({ resources, order: { ...order, extension: undefined } }),
      { 'treatment-phase': [{ valueCoding: { system: 'https://priorpath.dev/fhir/CodeSystem/treatment-phase', code: 'induction' } }] },
    );
    expect(known.infusionOver28Days).toBe(true);
    expect(fact('treatmentPhase')).toBe('induction');
    expect(fact('infusionOver28Days')).toBe(true);
    expect(read.evaluation.failed.map((r) => r.id)).toContain('infusion-days');
  });
});

describe('OHSU in DTR: an Appendix 1 diagnosis on record is kept once the B-ALL question is answered', () => {
  it('lymphoblastic lymphoma (C83.52) without a CD19 result, B-ALL answered No: the diagnosis of Appendix 1 still reads true', () => {
    const { known, fact } = readCaseAsDtr('ohsu-blinatumomab', 'lymphoblastic lymphoma without a CD19 result asks for the lineage', same, {
      'b-all-diagnosis': [{ valueBoolean: false }],
    });
    expect(known.allDiagnosis).toBe(true);
    expect(fact('bAll')).toBe(false);
    expect(fact('allDiagnosis')).toBe(true);
  });

  it('ALL of unknown lineage (C91.00) without a CD19 result, B-ALL answered No: the diagnosis of Appendix 1 still reads true', () => {
    const { known, fact } = readCaseAsDtr(
      'ohsu-blinatumomab',
      'lymphoblastic lymphoma without a CD19 result asks for the lineage',
      (resources, order) => ({
        resources: resources.map((r) =>
          r.id === 'dx-lbl' && r.resourceType === 'Condition'
            ? { ...r, code: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'C91.00', display: 'Acute lymphoblastic leukemia not having achieved remission' }] } }
            : r,
        ),
        order,
      }),
      { 'b-all-diagnosis': [{ valueBoolean: false }] },
    );
    expect(known.bAll).toBeUndefined();
    expect(known.allDiagnosis).toBe(true);
    expect(fact('allDiagnosis')).toBe(true);
  });
});

describe('OHSU in DTR: the cycles of a phase on record and in the request are kept once the phase is answered', () => {
  const name = '4 consolidation cycles given plus 2 requested exceeds 5 consolidation cycles';
  const consolidation = { 'treatment-phase': [{ valueCoding: { system: 'https://priorpath.dev/fhir/CodeSystem/treatment-phase', code: 'consolidation' } }] };

  it('4 consolidation cycles on record, 2 requested by an order stating no phase, the phase answered consolidation: over the 5 cycles, reviewed', () => {
    const { known, read, fact } = readCaseAsDtr('ohsu-blinatumomab', name, (resources, order) => ({ resources, order: { ...order, extension: undefined } }), consolidation);
    expect(known.cyclesGivenConsolidation).toBe(4);
    expect(fact('cyclesGivenThisPhase')).toBe(4);
    expect(read.evaluation.outcome).toBe('limit-exceeded');
    expect(read.evaluation.failed.map((r) => r.id)).toContain('cycles-consolidation');
  });

  it('4 consolidation cycles on record, a consolidation cycle before this one in the same request, 1 requested, the phase answered consolidation: over the 5 cycles, reviewed', () => {
    const { known, read, fact } = readCaseAsDtr(
      'ohsu-blinatumomab',
      name,
      (resources, order) => ({
        resources,
        order: { ...order, extension: undefined, dispenseRequest: { numberOfRepeatsAllowed: 0 } },
        before: [{ ...order, id: 'cons-earlier', dispenseRequest: { numberOfRepeatsAllowed: 0 } }],
      }),
      consolidation,
    );
    expect(known.requestCyclesBeforeConsolidation).toBe(1);
    expect(fact('requestCyclesBeforeThisPhase')).toBe(1);
    expect(fact('cyclesRequested')).toBe(1);
    expect(read.evaluation.failed.map((r) => r.id)).toContain('cycles-consolidation');
  });
});
