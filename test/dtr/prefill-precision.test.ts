/**
 * A computed amount is pre-filled as a clinician reads it (design.md §7 "Pre-filled amounts";
 * src/policies/display-precision.ts): Besponsa 1.4075 mg over 1.75 m² is 0.80 mg/m² on the form, not
 * 0.8042857142857143. The decision stays on the unrounded value PriorPath read: the rounded answer sent back as
 * pre-filled is read as that value, so it neither moves the order across a limit's edge nor reads as an answer that
 * contradicts the record or the order.
 */
import type { MedicationRequest, Observation, Questionnaire } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { prefilledResponse } from '../../src/coverage/questionnaire-answers.js';
import { evaluateQuestionnaireResponse } from '../../src/coverage/evaluate-response.js';
import { evaluatePolicy } from '../../src/policies/evaluate-policy.js';
import { determinationOf } from '../../src/coverage/determination.js';
import { evaluationDataFor, indexRecord } from '../../src/policies/evaluation-data.js';
import { recordFromResources } from '../../src/policies/record-from-resources.js';
import { buildQuestionnaire } from '../../src/dtr/questionnaire-builder.js';
import { buildCase, readCaseFile } from '../helpers/policy-cases.js';
import { CANONICAL_BASE, dtrContent } from './helpers.js';
import fhirpath from 'fhirpath';
import { forDisplay, sameAtDisplay } from '../../src/policies/display-precision.js';
import { shownExpression } from '../../src/dtr/expressions.js';

const content = dtrContent();

/** CRD's reading of a policy case (patched), the form pre-filled from it, and the form sent back unchanged. */
function roundTrip(policyId: string, caseName: string, patch: (c: { resources: unknown[]; order: MedicationRequest }) => void, edit?: (qrText: string) => string) {
  const policy = content.policies.find((p) => p.file.id === policyId)!;
  const q: Questionnaire = buildQuestionnaire(policy, { canonicalBase: CANONICAL_BASE, valueSets: content.valueSets });
  const spec = readCaseFile(`${policyId}.yaml`);
  const built = buildCase(spec.cases.find((x) => x.name === caseName)!);
  const c = structuredClone(built) as { resources: unknown[]; order: MedicationRequest };
  patch(c);
  const record = indexRecord(recordFromResources(c.resources as never, [c.order], c.order.requester?.reference));
  const atCrd = evaluatePolicy(policy, evaluationDataFor(record, c.order, spec.today), {});
  const facts = Object.fromEntries(atCrd.facts.filter((f) => f.value !== undefined).map((f) => [f.name, f.value!]));
  const qr = { ...prefilledResponse(policy, q, facts, { valueSets: content.valueSets, canonicalBase: CANONICAL_BASE }), status: 'completed' as const };
  const answer = (linkId: string) => JSON.stringify(qr).match(new RegExp(`"linkId":"${linkId}"[^\\]]*?"valueDecimal":([0-9.]+)`))?.[1];
  const sent = edit ? (JSON.parse(edit(JSON.stringify(qr))) as typeof qr) : qr;
  const back = evaluateQuestionnaireResponse({ content, qr: sent, knownFacts: facts, chartFacts: facts, today: spec.today });
  return { atCrd, facts, answer, back };
}

describe('pre-filled computed amounts', () => {
  it('Besponsa 1.4075 mg over a BSA of 1.75 m² shows 0.804 mg/m² (not 0.80, which reads as the label\'s 0.8), and sent back stays above the label: reviewed, nothing set aside', () => {
    const { atCrd, facts, answer, back } = roundTrip('bcbsnc-inotuzumab', '1.4 mg for an adult of 1.75 m² is 0.8 mg/m², the labelled day-1 dose, approved', (c) => {
      c.order.dosageInstruction![0].doseAndRate![0].doseQuantity!.value = 1.4075;
    });
    expect(facts.inotuzumabDosePerM2).toBeCloseTo(0.80429, 5);
    expect(atCrd.outcome).toBe('limit-exceeded');
    // What the clinician reads: never 16 digits, and not 0.80 either, which would read as the label's 0.8 mg/m².
    expect(answer('inotuzumab-dose')).toBe('0.804');
    expect(back.evaluation.facts.find((f) => f.name === 'inotuzumabDosePerM2')?.value).toBe(facts.inotuzumabDosePerM2);
    expect(back.evaluation.outcome).toBe('limit-exceeded');
    expect(back.evaluation.failed.map((r) => r.id)).toContain('label-dose-per-m2');
    expect(back.warnings.join(' ')).not.toMatch(/differ from what the order states/);
  });

  it('Centene: a weight of 99.1 lb (44.95 kg) shows 44.95 kg (not 45.0, the weight class it is under), and sent back stays under 45 kg: no contradiction, the weight class CRD read', () => {
    const { atCrd, facts, answer, back } = roundTrip('centene-blinatumomab', 'adult in first remission with MRD 0.5 % is approved at signing', (c) => {
      const w = c.resources.find((r) => (r as Observation).code?.coding?.[0]?.code === '29463-7') as Observation | undefined;
      if (w) w.valueQuantity = { value: 99.1, unit: 'lb', system: 'http://unitsofmeasure.org', code: '[lb_av]' };
      else
        c.resources.push({
          resourceType: 'Observation', id: 'obs-weight-lb', status: 'final', subject: { reference: 'Patient/pt' },
          code: { coding: [{ system: 'http://loinc.org', code: '29463-7', display: 'Body weight' }] },
          effectiveDateTime: '2026-11-20T09:00:00Z',
          valueQuantity: { value: 99.1, unit: 'lb', system: 'http://unitsofmeasure.org', code: '[lb_av]' },
        } satisfies Observation);
    });
    expect(facts.weightKg).toBeCloseTo(44.951, 3);
    expect(answer('weight')).toBe('44.95');
    expect(back.evaluation.contradicted).toBeUndefined();
    expect(back.evaluation.facts.find((f) => f.name === 'weightKg')?.value).toBe(facts.weightKg);
    expect(back.evaluation.outcome).toBe(atCrd.outcome);
    expect(back.evaluation.rules.map((r) => [r.id, r.result])).toEqual(atCrd.rules.map((r) => [r.id, r.result]));
  });
});

describe('a weight answered otherwise than the record', () => {
  it('names the record\'s weight to the reviewer as the form showed it (44.95 kg), not to 16 digits', () => {
    const { back } = roundTrip('centene-blinatumomab', 'adult in first remission with MRD 0.5 % is approved at signing', (c) => {
      const w = c.resources.find((r) => (r as Observation).code?.coding?.[0]?.code === '29463-7') as Observation | undefined;
      const q = { value: 99.1, unit: 'lb', system: 'http://unitsofmeasure.org', code: '[lb_av]' };
      if (w) w.valueQuantity = q;
      else
        c.resources.push({
          resourceType: 'Observation', id: 'obs-weight-lb', status: 'final', subject: { reference: 'Patient/pt' },
          code: { coding: [{ system: 'http://loinc.org', code: '29463-7', display: 'Body weight' }] },
          effectiveDateTime: '2026-11-20T09:00:00Z', valueQuantity: q,
        } satisfies Observation);
    }, (text) => text.replace(/("linkId":"weight"[^\]]*?"valueDecimal":)[0-9.]+/, '$160'));
    expect(back.evaluation.contradicted?.map((c) => c.fact)).toEqual(['weightKg']);
    const policy = content.policies.find((p) => p.file.id === 'centene-blinatumomab')!;
    const why = JSON.stringify(determinationOf(policy, back.evaluation));
    expect(why).toMatch(/answered 60 kg; the record read at signing: 44\.95 kg/);
    expect(why).not.toMatch(/44\.951/);
  });
});

describe('a rounded amount never reads as the bound beside it (design.md §7 "Pre-filled amounts")', () => {
  const mgPerM2 = { type: 'decimal' as const, unit: 'mg/m2' };
  const kg = { type: 'decimal' as const, unit: 'kg' };

  it('shows one more decimal where rounding lands on a coarser step, and only there', () => {
    expect(forDisplay(mgPerM2, 0.8042857142857143)).toBe(0.804);
    expect(forDisplay(mgPerM2, 0.8004)).toBe(0.8004);
    expect(forDisplay(mgPerM2, 0.8673675867890412)).toBe(0.87);
    expect(forDisplay(mgPerM2, 0.8)).toBe(0.8);
    expect(forDisplay(kg, 44.951)).toBe(44.95);
    expect(forDisplay(kg, 70.30682)).toBe(70.3);
    // Four more decimals at most: a value a float's width from the bound shows as the bound.
    expect(forDisplay(mgPerM2, 0.80000001)).toBe(0.8);
  });

  it('the FHIRPath initialExpression a renderer runs shows the number the payer pre-fills', () => {
    const values = [0.8042857142857143, 0.8004, 0.80004, 0.8673675867890412, 0.8, 0.5, 0.4999, 1.2051, 44.951, 45, 70.30682, 99.96, 28.04];
    for (const decimals of [1, 2]) {
      const def = { type: 'decimal' as const, unit: decimals === 2 ? 'mg/m2' : 'kg' };
      for (const v of values) {
        const shown = fhirpath.evaluate({}, shownExpression('%v', decimals), { v }) as number[];
        expect({ v, decimals, shown: shown.map(Number) }).toEqual({ v, decimals, shown: [forDisplay(def, v)] });
      }
    }
  });

  it('an answer a form of an earlier version showed (0.80) is still read as the value it was rounded from', () => {
    expect(sameAtDisplay(mgPerM2, 0.8, 0.8042857142857143)).toBe(true);
    expect(sameAtDisplay(mgPerM2, 0.804, 0.8042857142857143)).toBe(true);
    expect(sameAtDisplay(mgPerM2, 0.81, 0.8042857142857143)).toBe(false);
  });
});

