/**
 * The DTR form reads a marker result the way the service does (design.md §6 "Clinical readings"; cds-services/README.md
 * "result values"): dim, weak or partial expression is expression, a share of blasts of 20 % or more is positive, and
 * a result that reads both ways or states too small a share is left for the clinician to answer. The renderer runs the
 * Questionnaire's FHIRPath initialExpression (fhirpath.js over the launch context and x-fhir-query Bundles); the
 * service evaluates the policy over the same record; both must give the same pre-fill.
 */
import type { Condition, MedicationRequest, Observation, Patient, QuestionnaireResponse, Resource } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { EXT_INITIAL_EXPRESSION } from '../../src/fhir/dtr-urls.js';
import { compileFhirPath } from '../../src/fhir/fhirpath.js';
import { buildQuestionnaire, flattenItems } from '../../src/dtr/questionnaire-builder.js';
import { evaluatePolicy } from '../../src/policies/evaluate-policy.js';
import type { FactValue } from '../../src/policies/evaluate-policy.js';
import { evaluationDataFor, indexRecord } from '../../src/policies/evaluation-data.js';
import { recordFromResources } from '../../src/policies/record-from-resources.js';
import { CANONICAL_BASE, daysBefore, dtrContent, EVIDENCE, searchset, TODAY } from './helpers.js';

const content = dtrContent();
const policyOf = (id: string) => content.policies.find((p) => p.file.id === id)!;

const patient: Patient = { resourceType: 'Patient', id: 'pt', birthDate: '1979-08-14', gender: 'female' };
const relapsedAll: Condition = {
  resourceType: 'Condition',
  id: 'dx-all',
  subject: { reference: 'Patient/pt' },
  clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'relapse' }] },
  code: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'C91.02', display: 'Acute lymphoblastic leukemia, in relapse' }] },
};

function marker(code: 'cd19-status' | 'cd22-status', value: Partial<Observation>): Observation {
  return {
    resourceType: 'Observation',
    id: `obs-${code}`,
    status: 'final',
    subject: { reference: 'Patient/pt' },
    code: { coding: [{ system: EVIDENCE, code }], text: code === 'cd19-status' ? 'CD19 by flow cytometry' : 'CD22 by flow cytometry' },
    effectiveDateTime: `${daysBefore(TODAY, 5)}T09:00:00Z`,
    ...value,
  };
}

function order(drug: { code: string; display: string }): MedicationRequest {
  return {
    resourceType: 'MedicationRequest',
    id: 'ord',
    status: 'draft',
    intent: 'order',
    subject: { reference: 'Patient/pt' },
    medicationCodeableConcept: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', ...drug }] },
    dosageInstruction: [{ timing: { repeat: { boundsPeriod: { start: TODAY } } } }],
  };
}

const BLINCYTO = { code: '1597262', display: 'blinatumomab 0.035 MG Injection' };
const BESPONSA = { code: '1942954', display: 'inotuzumab ozogamicin 0.9 MG Injection' };

/** The form's pre-fill for one item and the service's value of the same fact, over one record. */
function readings(policyId: string, linkId: string, fact: string, resources: Resource[], ord: MedicationRequest) {
  const policy = policyOf(policyId);
  const q = buildQuestionnaire(policy, { canonicalBase: CANONICAL_BASE, valueSets: content.valueSets });
  const item = flattenItems(q.item).find((i) => i.linkId === linkId)!;
  const expression = item.extension!.find((e) => e.url === EXT_INITIAL_EXPRESSION)!.valueExpression!.expression!;
  const fn = compileFhirPath(expression, { valueSets: content.valueSets, valueSetBase: `${CANONICAL_BASE}/ValueSet`, model: 'r4' });
  const of = (t: string) => resources.filter((r) => r.resourceType === t);
  const qr: QuestionnaireResponse = { resourceType: 'QuestionnaireResponse', status: 'in-progress' };
  const client = fn(qr, {
    patient,
    conditions: searchset(of('Condition')),
    observations: searchset(of('Observation')),
    medications: searchset([]),
    immunizations: searchset([]),
    resource: qr,
  });
  const record = indexRecord(recordFromResources([patient, ...resources], [ord], undefined));
  const server = evaluatePolicy(policy, evaluationDataFor(record, ord, TODAY)).facts.find((f) => f.name === fact)?.value;
  return { client: client[0] as FactValue | undefined, server };
}

describe('marker results read with their qualifiers, alike in the form and the service', () => {
  const cd19Cases: [string, Partial<Observation>, boolean | undefined][] = [
    ['"CD19 positive (dim)"', { valueString: 'CD19 positive (dim)' }, true],
    ['"dim CD19 expression" as the coded value\'s text', { valueCodeableConcept: { text: 'dim CD19 expression' } }, true],
    ['"partial CD19 expression"', { valueString: 'Partial CD19 expression' }, true],
    ['CD19 on 90 % of blasts (valueQuantity)', { valueQuantity: { value: 90, unit: '%', system: 'http://unitsofmeasure.org', code: '%' } }, true],
    ['"CD19 dim to negative" (both ways: asked)', { valueString: 'CD19 dim to negative' }, undefined],
    ['"CD19 expressed on 8% of blasts" (under 20 %: asked)', { valueString: 'CD19 expressed on 8% of blasts' }, undefined],
    ['"CD19-negative relapse"', { valueString: 'CD19-negative relapse' }, false],
  ];
  it.each(cd19Cases)('Blincyto (MMM) cd19-positive from %s', (_label, value, expected) => {
    const { client, server } = readings('mmm-blinatumomab', 'cd19-positive', 'cd19Positive', [relapsedAll, marker('cd19-status', value)], order(BLINCYTO));
    expect(server).toBe(expected);
    expect(client).toBe(expected);
  });

  it('Besponsa (BCBSNC): lineage-free relapsed ALL with "CD22 expressed on 35% of blasts" pre-fills B-ALL yes', () => {
    const resources = [relapsedAll, marker('cd22-status', { valueString: 'CD22 expressed on 35% of blasts' })];
    const { client, server } = readings('bcbsnc-inotuzumab', 'b-all-diagnosis', 'bAll', resources, order(BESPONSA));
    expect(server).toBe(true);
    expect(client).toBe(true);
  });
});
