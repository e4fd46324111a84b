/**
 * BCBSNC "When covered" (Blinatumomab and Inotuzumab alike): a use not listed is covered "in accordance with FDA label"
 * or "with specific strong endorsement or support by nationally recognized compendia". The question asks "Attach the
 * label section or the compendium citation", so the compendium-citation attachment `proves: [compendiaOrLabelSupport]`:
 * read from a returned QuestionnaireResponse, a "Yes" counts only with the citation attached; without it the use
 * stays unknown (documentation needed), never approved and never denied (cds-services/README.md attachments).
 */
import type { MedicationRequest, QuestionnaireResponse, QuestionnaireResponseItem, Resource } from '@medplum/fhirtypes';
import { describe, expect, it, vi } from 'vitest';
import { loadContent } from '../../src/content.js';
import { answersFromQuestionnaireResponse } from '../../src/coverage/questionnaire-answers.js';
import { evaluatePolicy } from '../../src/policies/evaluate-policy.js';
import { evaluationDataFor, indexRecord } from '../../src/policies/evaluation-data.js';
import { recordFromResources } from '../../src/policies/record-from-resources.js';
import { repoRoot } from '../helpers/stories.js';

const TODAY = '2026-11-23';
const content = loadContent({ root: repoRoot, canonicalBase: 'https://priorpath.dev/fhir' });
const CITATION = { contentType: 'application/pdf', title: 'NCCN guideline excerpt', data: Buffer.from('%PDF-1.4 compendium excerpt').toString('base64') };
const EVIDENCE = 'https://priorpath.dev/fhir/CodeSystem/evidence';

/** A 45-year-old with relapsed T-cell ALL (SNOMED 277575008), 70 kg, BSA 1.75 m²: not the listed B-ALL use. */
const tAllRecord: Resource[] = [
  { resourceType: 'Patient', id: 'pt', birthDate: '1981-04-02', gender: 'female' },
  { resourceType: 'PractitionerRole', id: 'role-hemonc', specialty: [{ coding: [{ system: 'http://nucc.org/provider-taxonomy', code: '207RH0003X' }] }] },
  {
    resourceType: 'Condition',
    id: 'dx-tall',
    subject: { reference: 'Patient/pt' },
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
    code: { coding: [{ system: 'http://snomed.info/sct', code: '277575008', display: 'T-cell acute lymphoblastic leukemia' }] },
  },
  {
    resourceType: 'Observation',
    id: 'obs-status',
    status: 'final',
    code: { coding: [{ system: EVIDENCE, code: 'disease-status' }] },
    effectiveDateTime: '2026-11-10T09:00:00Z',
    valueCodeableConcept: { coding: [{ system: EVIDENCE, code: 'relapsed' }] },
  },
  {
    resourceType: 'Observation',
    id: 'obs-weight',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '29463-7' }] },
    effectiveDateTime: '2026-11-20T09:00:00Z',
    valueQuantity: { value: 70, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
  },
  {
    resourceType: 'Observation',
    id: 'obs-bsa',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8277-6' }] },
    effectiveDateTime: '2026-11-20T09:00:00Z',
    valueQuantity: { value: 1.75, unit: 'm2', system: 'http://unitsofmeasure.org', code: 'm2' },
  },
];

/**
 * The policy's draft order at the labelled dose, starting 2026-11-24. The Besponsa order states its one day-1 dose
 * (count 1): a dose with no count, dates or frequency leaves the label's cycle unknown (BCBSNC inotuzumab
 * label-cycle-dose-per-m2, review pharm s40 F1).
 */
function order(drug: 'blinatumomab' | 'inotuzumab'): MedicationRequest {
  const blin = drug === 'blinatumomab';
  return {
    resourceType: 'MedicationRequest',
    id: 'ord',
    status: 'draft',
    intent: 'order',
    subject: { reference: 'Patient/pt' },
    requester: { reference: 'PractitionerRole/role-hemonc' },
    medicationCodeableConcept: {
      coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: blin ? '1597262' : '1942954' }],
    },
    dosageInstruction: [
      {
        timing: { repeat: { boundsPeriod: { start: '2026-11-24' }, ...(blin ? {} : { count: 1 }) } },
        doseAndRate: [{ doseQuantity: blin ? { value: 28, unit: 'mcg/d', system: 'http://unitsofmeasure.org', code: 'ug/d' } : { value: 0.8, unit: 'mg/m2', system: 'http://unitsofmeasure.org', code: 'mg/m2' } }],
      },
    ],
  };
}

function judge(policyId: string, items: QuestionnaireResponseItem[]) {
  const policy = content.policies.find((p) => p.file.id === policyId)!;
  const qr: QuestionnaireResponse = { resourceType: 'QuestionnaireResponse', status: 'completed', item: items };
  const read = answersFromQuestionnaireResponse(policy, qr);
  const ord = order(policyId.endsWith('blinatumomab') ? 'blinatumomab' : 'inotuzumab');
  const record = indexRecord(recordFromResources(tAllRecord, [ord], ord.requester?.reference));
  vi.useFakeTimers({ toFake: ['Date'], now: new Date(`${TODAY}T12:00:00Z`) });
  try {
    return { read, result: evaluatePolicy(policy, evaluationDataFor(record, ord, TODAY), read.answers) };
  } finally {
    vi.useRealTimers();
  }
}

const yes = { linkId: 'compendia-strong-support', answer: [{ valueBoolean: true }] };

describe.each(['bcbsnc-blinatumomab', 'bcbsnc-inotuzumab'])('%s: compendia / FDA-label support proven by its citation', (policyId) => {
  it('the compendium-citation attachment proves compendiaOrLabelSupport', () => {
    const policy = content.policies.find((p) => p.file.id === policyId)!;
    expect(policy.attachments.find((a) => a.linkId === 'compendium-citation')?.proves).toEqual(['compendiaOrLabelSupport']);
  });

  it('T-ALL answered "Yes" without the citation stays documentation-needed, the citation named as unproven; never approved', () => {
    const { read, result } = judge(policyId, [yes]);
    expect(read.unproven).toEqual(['compendiaOrLabelSupport']);
    expect(result.outcome).toBe('documentation-needed');
    expect(result.missingFacts).toContain('compendiaOrLabelSupport');
  });

  it('T-ALL answered "Yes" with the citation attached is approved on the compendia / FDA-label route', () => {
    const { read, result } = judge(policyId, [yes, { linkId: 'compendium-citation', answer: [{ valueAttachment: CITATION }] }]);
    expect(read.unproven).toEqual([]);
    expect(result.outcome).toBe('satisfied');
    expect(result.pathway?.id).toBe('compendia-or-fda-label');
  });

  it('T-ALL answered "No" needs no document and is not covered', () => {
    const { read, result } = judge(policyId, [{ linkId: 'compendia-strong-support', answer: [{ valueBoolean: false }] }]);
    expect(read.unproven).toEqual([]);
    expect(result.outcome).toBe('not-covered');
  });
});
