/**
 * ICD-10-CM codes arrive with or without their dot and in either case (C91.02, C9102, c91.02): the server reads them in
 * FHIR's spelling (docs/design.md §6 "Standard codes first"), so the form a renderer pre-fills from the same record must
 * read them so too, or a clinician sees "No" to a diagnosis the payer read as "Yes" (src/dtr/expressions.ts).
 */
import type { Condition, Questionnaire, Resource } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { buildQuestionnaire, flattenItems } from '../../src/dtr/questionnaire-builder.js';
import { EXT_INITIAL_EXPRESSION } from '../../src/fhir/dtr-urls.js';
import { compileFhirPath } from '../../src/fhir/fhirpath.js';
import { evaluatePolicy } from '../../src/policies/evaluate-policy.js';
import { evaluationDataFor, indexRecord } from '../../src/policies/evaluation-data.js';
import { recordFromResources } from '../../src/policies/record-from-resources.js';
import { caseScenarios } from '../helpers/policy-cases.js';
import type { PolicyScenario } from '../helpers/policy-cases.js';
import { CANONICAL_BASE, dtrContent, searchset } from './helpers.js';

const content = dtrContent();
const ICD10CM = 'http://hl7.org/fhir/sid/icd-10-cm';

/** The record as an interface that drops the dot and the case writes it: C91.02 becomes c9102. */
function undotted(resources: Resource[]): Resource[] {
  return resources.map((r) => {
    if (r.resourceType !== 'Condition' || !r.code?.coding?.some((c) => c.system === ICD10CM)) return r;
    const code = { ...r.code, coding: r.code.coding!.map((c) => (c.system === ICD10CM && c.code ? { ...c, code: c.code.replace('.', '').toLowerCase() } : c)) };
    return { ...r, code } satisfies Condition;
  });
}

const scenarios = caseScenarios(content).filter((s) =>
  s.resources.some((r) => r.resourceType === 'Condition' && r.code?.coding?.some((c) => c.system === ICD10CM && c.code?.includes('.'))),
);

/** What a renderer pre-fills: every initialExpression run by fhirpath.js over the launch contexts and query Bundles. */
function prefill(q: Questionnaire, s: PolicyScenario, resources: Resource[]): Record<string, unknown> {
  const of = (t: string) => resources.filter((x) => x.resourceType === t && x !== s.order);
  const observations = of('Observation').sort((a, b) =>
    String((a as { effectiveDateTime?: string }).effectiveDateTime).localeCompare(String((b as { effectiveDateTime?: string }).effectiveDateTime)),
  );
  const env = {
    patient: of('Patient')[0],
    user: of('PractitionerRole')[0],
    conditions: searchset(of('Condition')),
    observations: searchset(observations),
    medications: searchset(of('MedicationRequest')),
    immunizations: searchset(of('Immunization')),
  };
  const out: Record<string, unknown> = {};
  for (const item of flattenItems(q.item)) {
    const expression = item.extension?.find((e) => e.url === EXT_INITIAL_EXPRESSION)?.valueExpression?.expression;
    if (!expression) continue;
    const fn = compileFhirPath(expression, { valueSets: content.valueSets, valueSetBase: `${CANONICAL_BASE}/ValueSet`, model: 'r4' });
    const qr = { resourceType: 'QuestionnaireResponse', status: 'in-progress' };
    out[item.linkId] = fn(qr, { ...env, resource: qr });
  }
  return out;
}

describe('ICD-10-CM codes written without their dot, in lower case', () => {
  it('the case files hold ICD-10-CM problem lists to spell differently', () => {
    expect(scenarios.length).toBeGreaterThan(20);
  });

  it.each(scenarios.map((s) => [s.label, s] as const))('%s: the form pre-fills and the server reads as with C91.02', (_label, s) => {
    const variant = undotted(s.resources);
    for (const policy of s.policies) {
      const q = buildQuestionnaire(policy, { canonicalBase: CANONICAL_BASE, valueSets: content.valueSets });
      expect(prefill(q, s, variant), policy.file.id).toEqual(prefill(q, s, s.resources));
      const server = (rs: Resource[]) =>
        evaluatePolicy(policy, evaluationDataFor(indexRecord(recordFromResources(rs, [s.order], s.order.requester?.reference)), s.order, s.today), s.answers).facts;
      expect(server(variant)).toEqual(server(s.resources));
    }
  });
});
