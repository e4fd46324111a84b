/**
 * An answer that cannot be true of a patient (MRD 150 %, a weight of 0 kg, a birth date in 2099) is stopped on the form
 * and named by the payer (UI review s44 M1). Before, the Questionnaire carried no bounds, the service set the answer
 * aside as unknown without a word ("Still needed: MRD …" to the clinician who had just typed it), and `$next-question`
 * never asked the question again, so one slip completed the adaptive form.
 */
import type { Extension, Questionnaire, QuestionnaireItem, QuestionnaireResponse } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { determinationOf } from '../../src/coverage/determination.js';
import { evaluateQuestionnaireResponse } from '../../src/coverage/evaluate-response.js';
import { buildQuestionnaire } from '../../src/dtr/questionnaire-builder.js';
import { factBounds, plausible } from '../../src/policies/evaluate-policy.js';
import { answerItem, bareAdaptiveResponse, CANONICAL_BASE, dtrContent, EVIDENCE, fhirApp, TODAY, withAnswers } from './helpers.js';

const FHIR = 'application/fhir+json';
const MIN = 'http://hl7.org/fhir/StructureDefinition/minValue';
const MAX = 'http://hl7.org/fhir/StructureDefinition/maxValue';
const EXCLUDED = 'https://priorpath.dev/fhir/StructureDefinition/min-value-excluded';
const content = dtrContent();
const centene = content.policies.find((p) => p.file.id === 'centene-blinatumomab')!;
const code = (c: string) => ({ valueCoding: { system: EVIDENCE, code: c } });

const flatten = (items: QuestionnaireItem[] | undefined): QuestionnaireItem[] => (items ?? []).flatMap((i) => [i, ...flatten(i.item)]);
const ext = (i: QuestionnaireItem, url: string) => i.extension?.find((e) => e.url === url);
const num = (e: Extension | undefined) => e?.valueDecimal ?? e?.valueInteger;

describe('the Questionnaire states the bounds the service applies', () => {
  it('every policy: each numeric item carries minValue/maxValue that agree with plausible, and each stated date a maxValue expression', () => {
    let checked = 0;
    for (const policy of content.policies) {
      const q = buildQuestionnaire(policy, { canonicalBase: CANONICAL_BASE, valueSets: content.valueSets });
      for (const item of flatten(q.item)) {
        const fact = policy.facts.find((f) => f.def.linkId === item.linkId && f.def.askable);
        if (!fact || !['decimal', 'integer', 'date'].includes(item.type)) continue;
        const b = factBounds(fact.def);
        if (item.type === 'date') {
          const max = ext(item, MAX) as { _valueDate?: { extension?: Extension[] } } | undefined;
          const expr = max?._valueDate?.extension?.[0]?.valueExpression;
          expect(!!expr, `${policy.file.id} ${item.linkId}`).toBe(!!b?.notAfter);
          if (expr) expect(expr.language).toBe('text/fhirpath');
          continue;
        }
        const min = num(ext(item, MIN));
        const max = num(ext(item, MAX));
        expect(min, `${policy.file.id} ${item.linkId} minValue`).toBeDefined();
        const excluded = ext(item, EXCLUDED)?.valueBoolean === true;
        // The bound itself is possible unless excluded; anything below it never is, nor anything above the maximum.
        expect(plausible(fact.def, min!, TODAY), `${item.linkId} at its minValue`).toBe(!excluded);
        expect(plausible(fact.def, min! - 0.5, TODAY)).toBe(false);
        if (max !== undefined) {
          expect(plausible(fact.def, max, TODAY)).toBe(true);
          expect(plausible(fact.def, max + 0.5, TODAY)).toBe(false);
        }
        if (item.type === 'integer') expect(ext(item, MIN)?.valueInteger).toBeDefined();
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(10);
  });

  it('Centene: MRD 0 to 100 %, weight and dose more than 0, cycles given 0 or more, the birth date not after today or the order date', () => {
    const q = buildQuestionnaire(centene, { canonicalBase: CANONICAL_BASE, valueSets: content.valueSets });
    const item = (l: string) => flatten(q.item).find((i) => i.linkId === l)!;
    expect(ext(item('mrd-percent'), MIN)?.valueDecimal).toBe(0);
    expect(ext(item('mrd-percent'), MAX)?.valueDecimal).toBe(100);
    expect(ext(item('mrd-percent'), EXCLUDED)).toBeUndefined();
    for (const l of ['weight', 'height', 'daily-dose']) {
      expect(ext(item(l), MIN)?.valueDecimal, l).toBe(0);
      expect(ext(item(l), EXCLUDED)?.valueBoolean, l).toBe(true);
    }
    expect(ext(item('cycles-given'), MIN)?.valueInteger).toBe(0);
    // A request asks for at least one cycle: 0 cycles requested requests nothing.
    expect(ext(item('cycles-requested'), MIN)?.valueInteger).toBe(1);
    const dob = ext(item('birth-date'), MAX) as { _valueDate?: { extension?: Extension[] } };
    expect(dob._valueDate?.extension?.[0]?.valueExpression?.expression).toMatch(/today\(\)/);
    expect(dob._valueDate?.extension?.[0]?.valueExpression?.expression).toMatch(/'order-date'/);
  });
});

describe('the payer names an answer it could not use', () => {
  it('MRD 150 %: the determination says the answer is not possible and was not used, not only that the MRD is still needed', () => {
    const q = buildQuestionnaire(centene, { canonicalBase: CANONICAL_BASE, valueSets: content.valueSets });
    const qr = withAnswers(
      { resourceType: 'QuestionnaireResponse', status: 'completed', questionnaire: `${q.url}|${q.version}` },
      {
        'b-all-diagnosis': [{ valueBoolean: true }],
        'disease-status': [code('cr1')],
        'treatment-phase': [code('consolidation')],
        'mrd-percent': [{ valueDecimal: 150 }],
      },
    );
    const result = evaluateQuestionnaireResponse({ content, qr, today: TODAY });
    expect(result.evaluation.unusable).toEqual([{ fact: 'mrdPercent', answer: 150 }]);
    expect(result.evaluation.missingFacts).toContain('mrdPercent');
    const d = determinationOf(centene, result.evaluation);
    const text = d.reasons.map((r) => r.text).join(' ');
    expect(text).toMatch(/the answer 150 % is not possible \(0 to 100 %\); it was not used/);
    expect(d.needed.join(' ')).toMatch(/150 % is not possible/);
  });

  it('a birth date after today is named, and a possible answer is not', () => {
    const q = buildQuestionnaire(centene, { canonicalBase: CANONICAL_BASE, valueSets: content.valueSets });
    const base = { resourceType: 'QuestionnaireResponse', status: 'completed', questionnaire: `${q.url}|${q.version}` } as QuestionnaireResponse;
    const bad = evaluateQuestionnaireResponse({ content, qr: withAnswers(base, { 'birth-date': [{ valueDate: '2099-12-31' }] }), today: TODAY });
    expect(bad.evaluation.unusable).toEqual([{ fact: 'birthDate', answer: '2099-12-31' }]);
    const d = determinationOf(centene, bad.evaluation);
    if (bad.evaluation.missingFacts.includes('birthDate'))
      expect(d.reasons.map((r) => r.text).join(' ')).toMatch(/the answer 2099-12-31 is not possible \(on or before today and the order's start\)/);
    const good = evaluateQuestionnaireResponse({ content, qr: withAnswers(base, { 'mrd-percent': [{ valueDecimal: 0 }], 'weight': [{ valueDecimal: 66 }] }), today: TODAY });
    expect(good.evaluation.unusable).toBeUndefined();
  });
});

describe('a request for 0 cycles is not a request', () => {
  it('cycles requested answered 0 is named not possible (1 or more) and not used; 1 is used', () => {
    const q = buildQuestionnaire(centene, { canonicalBase: CANONICAL_BASE, valueSets: content.valueSets });
    const base = { resourceType: 'QuestionnaireResponse', status: 'completed', questionnaire: `${q.url}|${q.version}` } as QuestionnaireResponse;
    const zero = evaluateQuestionnaireResponse({ content, qr: withAnswers(base, { 'cycles-requested': [{ valueInteger: 0 }] }), today: TODAY });
    expect(zero.evaluation.unusable).toEqual([{ fact: 'cyclesRequested', answer: 0 }]);
    expect(zero.evaluation.facts.find((f) => f.name === 'cyclesRequested')?.value).toBeUndefined();
    const d = determinationOf(centene, zero.evaluation);
    if (zero.evaluation.missingFacts.includes('cyclesRequested'))
      expect(d.reasons.map((r) => r.text).join(' ')).toMatch(/the answer 0 is not possible \(1 or more\); it was not used/);
    const one = evaluateQuestionnaireResponse({ content, qr: withAnswers(base, { 'cycles-requested': [{ valueInteger: 1 }] }), today: TODAY });
    expect(one.evaluation.unusable).toBeUndefined();
    expect(one.evaluation.facts.find((f) => f.name === 'cyclesRequested')?.value).toBe(1);
  });
});

describe('a Besponsa cycle of 0 doses is not a cycle', () => {
  it('doses per cycle: the item states minValue 1, an answer of 0 is named not possible (1 or more) and not used; 3 is used', () => {
    const besponsa = content.policies.find((p) => p.file.id === 'bcbsnc-inotuzumab')!;
    const q = buildQuestionnaire(besponsa, { canonicalBase: CANONICAL_BASE, valueSets: content.valueSets });
    const item = flatten(q.item).find((i) => i.linkId === 'inotuzumab-doses-per-cycle')!;
    expect(ext(item, MIN)?.valueInteger).toBe(1);
    const base = { resourceType: 'QuestionnaireResponse', status: 'completed', questionnaire: `${q.url}|${q.version}` } as QuestionnaireResponse;
    const zero = evaluateQuestionnaireResponse({ content, qr: withAnswers(base, { 'inotuzumab-doses-per-cycle': [{ valueInteger: 0 }] }), today: TODAY });
    expect(zero.evaluation.unusable).toEqual([{ fact: 'inotuzumabDosesPerCycle', answer: 0 }]);
    expect(zero.evaluation.facts.find((f) => f.name === 'inotuzumabDosesPerCycle')?.value).toBeUndefined();
    const three = evaluateQuestionnaireResponse({ content, qr: withAnswers(base, { 'inotuzumab-doses-per-cycle': [{ valueInteger: 3 }] }), today: TODAY });
    expect(three.evaluation.unusable).toBeUndefined();
    expect(three.evaluation.facts.find((f) => f.name === 'inotuzumabDosesPerCycle')?.value).toBe(3);
  });
});

describe('$next-question asks again a question whose answer could not be used', () => {
  it('Centene: MRD 150 % keeps the form open with the MRD question on it; the form completes only once a possible MRD is given', async () => {
    const { app } = fhirApp();
    const answers: Record<string, Record<string, unknown>> = {
      'b-all-diagnosis': { valueBoolean: true },
      'disease-status': code('cr1'),
      'treatment-phase': code('consolidation'),
      'cycles-given': { valueInteger: 0 },
      'renewal-request': { valueBoolean: false },
      'birth-date': { valueDate: '1980-03-01' },
      'ph-status': code('negative'),
      'mrd-percent': { valueDecimal: 150 },
    };
    let qr = bareAdaptiveResponse(centene.questionnaire);
    let seen = 0;
    let askedAgain = 0;
    const mrdOf = (r: QuestionnaireResponse) => r.item?.find((i) => i.linkId === 'mrd-percent')?.answer?.[0]?.valueDecimal;
    for (let round = 0; round < 30 && qr.status !== 'completed'; round++) {
      const sent = mrdOf(qr);
      qr = (await request(app).post('/fhir/Questionnaire/$next-question').set('Content-Type', FHIR).send(JSON.stringify(qr)).expect(200)).body as QuestionnaireResponse;
      const items = ((qr.contained![0] as Questionnaire).item ?? []).map((i) => i.linkId);
      const fresh = items.slice(seen);
      seen = items.length;
      if (sent === 150) {
        expect(qr.status, 'not completed on an MRD of 150 %').toBe('in-progress');
        expect(items).toContain('mrd-percent');
        if (fresh.length === 0) {
          // Nothing else left to ask: the MRD is what the payer still needs; the clinician corrects the slip.
          askedAgain++;
          answerItem(qr, undefined, 'mrd-percent', { valueDecimal: 0.5 });
          continue;
        }
      }
      for (const l of fresh) if (answers[l]) answerItem(qr, undefined, l, answers[l]);
    }
    expect(askedAgain).toBe(1);
    expect(qr.status).toBe('completed');
    expect(mrdOf(qr)).toBe(0.5);
  });
});
