import type { MedicationRequest, Resource } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { loadContent } from '../../src/content.js';
import { determinationOf } from '../../src/coverage/determination.js';
import { evaluatePolicy } from '../../src/policies/evaluate-policy.js';
import { evaluationDataFor, indexRecord } from '../../src/policies/evaluation-data.js';
import { recordFromResources } from '../../src/policies/record-from-resources.js';
import { repoRoot } from '../helpers/stories.js';

/**
 * When one indication pathway already holds, what is left to document (design.md §5 row 2) or to review (row 3) is the
 * rest of the rules, never the other pathways: their clauses are not cited and their questions are not asked
 * (design.md §6 "Questions are asked only of the patients they concern").
 */
const content = loadContent({ root: repoRoot, canonicalBase: 'https://priorpath.dev/fhir' });
const mmm = content.policies.find((p) => p.file.id === 'mmm-blinatumomab')!;
const EVIDENCE = 'https://priorpath.dev/fhir/CodeSystem/evidence';
const UCUM = 'http://unitsofmeasure.org';
const TODAY = '2026-11-23';

/** Relapsed CD19+ B-ALL in an adult, Blincyto as a single agent: MP-RX-FP-14-23 A.iii.A holds. */
const relapsedAdult = (withWeight: boolean): Resource[] => [
  { resourceType: 'Patient', id: 'pt', birthDate: '1981-04-02', gender: 'female' },
  {
    resourceType: 'Condition',
    id: 'dx',
    subject: { reference: 'Patient/pt' },
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
    code: { coding: [{ system: 'http://snomed.info/sct', code: '277571004', display: 'B-cell acute lymphoblastic leukemia' }] },
  },
  {
    resourceType: 'Observation',
    id: 'cd19',
    status: 'final',
    code: { coding: [{ system: EVIDENCE, code: 'cd19-status' }] },
    effectiveDateTime: '2026-11-10T09:00:00Z',
    valueCodeableConcept: { coding: [{ system: EVIDENCE, code: 'positive' }] },
  },
  {
    resourceType: 'Observation',
    id: 'status',
    status: 'final',
    code: { coding: [{ system: EVIDENCE, code: 'disease-status' }] },
    effectiveDateTime: '2026-11-10T09:00:00Z',
    valueCodeableConcept: { coding: [{ system: EVIDENCE, code: 'relapsed' }] },
  },
  ...(withWeight
    ? [
        {
          resourceType: 'Observation',
          id: 'weight',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: '29463-7', display: 'Body weight' }] },
          effectiveDateTime: '2026-11-20T09:00:00Z',
          valueQuantity: { value: 70, unit: 'kg', system: UCUM, code: 'kg' },
        } as Resource,
      ]
    : []),
];

/** A Blincyto order (RxNorm 1597262, HCPCS J9039) at the given daily dose, with no treatment-phase extension. */
const order = (mcgPerDay: number): MedicationRequest => ({
  resourceType: 'MedicationRequest',
  id: 'ord',
  status: 'draft',
  intent: 'order',
  subject: { reference: 'Patient/pt' },
  medicationCodeableConcept: {
    coding: [
      { system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '1597262', display: 'blinatumomab 0.035 MG Injection' },
      { system: 'https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets', code: 'J9039' },
    ],
  },
  dosageInstruction: [{ timing: { repeat: { boundsPeriod: { start: '2026-11-24' } } }, doseAndRate: [{ doseQuantity: { value: mcgPerDay, unit: 'mcg/d', system: UCUM, code: 'ug/d' } }] }],
});

function evaluate(resources: Resource[], o: MedicationRequest) {
  const record = indexRecord(recordFromResources(resources, [o], undefined));
  return evaluatePolicy(mmm, evaluationDataFor(record, o, TODAY), {});
}

describe('clauses left undecided once a pathway holds', () => {
  it('documentation needed for the weight only cites the dose limit, not the consolidation pathway (A.iii.C)', () => {
    const ev = evaluate(relapsedAdult(false), order(28));
    expect(ev.outcome).toBe('documentation-needed');
    const reason = determinationOf(mmm, ev).reasons[0].text;
    expect(reason).toContain('Limits A (Quantity Limitations, patients weighing less than 45 kg)');
    expect(reason).not.toContain('iii.C');
  });

  it('a dose over 28 mcg/day is reviewed without asking the treatment phase, which only other pathways read', () => {
    const ev = evaluate(relapsedAdult(true), order(35));
    expect(ev.outcome).toBe('limit-exceeded');
    expect(ev.failed.map((r) => r.id)).toEqual(['max-daily-dose']);
    expect(ev.missingFacts).not.toContain('treatmentPhase');
    expect(determinationOf(mmm, ev).needed.join(' ')).not.toMatch(/Treatment phase/i);
  });
});
