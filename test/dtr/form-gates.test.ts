/**
 * Questions a payer policy restricts to an age band are asked only of patients in that band (design.md §6 "Clinical
 * readings"): the DTR form hides them once the birth date (pre-filled from the patient) shows the patient is outside
 * it, for a question in its pathway's own group and for one the indication group shares between several covered uses
 * alike. These responses carry no pre-filled order start, so the age is taken on today's date (the order start the
 * payer pre-fills is test/dtr/order-date-age.test.ts). Likewise a
 * question (or document) only another covered use needs is not asked once the answers meet the use the seed lists.
 */
import type { Questionnaire, QuestionnaireResponse, QuestionnaireResponseItem } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { EXT_ENABLE_WHEN_EXPRESSION } from '../../src/fhir/dtr-urls.js';
import { buildQuestionnaire, flattenItems } from '../../src/dtr/questionnaire-builder.js';
import { CANONICAL_BASE, daysBefore, dtrContent, EVIDENCE, shownInForm, TODAY } from './helpers.js';
import { prefilledResponse } from '../../src/coverage/questionnaire-answers.js';
import { evaluatePolicy } from '../../src/policies/evaluate-policy.js';
import { evaluationDataFor, indexRecord } from '../../src/policies/evaluation-data.js';
import { recordFromResources } from '../../src/policies/record-from-resources.js';
import { buildCase, readCaseFile } from '../helpers/policy-cases.js';

const content = dtrContent();
const questionnaire = (id: string) =>
  buildQuestionnaire(content.policies.find((p) => p.file.id === id)!, { canonicalBase: CANONICAL_BASE, valueSets: content.valueSets });

/** A birth date `years` years before today (and a few days more, clear of the birthday). */
const bornYearsAgo = (years: number) => daysBefore(`${String(Number(TODAY.slice(0, 4)) - years)}${TODAY.slice(4)}`, 10);

type Answer = QuestionnaireResponseItem['answer'];
const answers = (a: Record<string, Answer>): QuestionnaireResponse => ({
  resourceType: 'QuestionnaireResponse',
  status: 'in-progress',
  item: Object.entries(a).map(([linkId, answer]) => ({ linkId, answer })),
});
const code = (c: string): Answer => [{ valueCoding: { system: EVIDENCE, code: c } }];

const shown = (q: Questionnaire, linkId: string, qr: QuestionnaireResponse) => shownInForm(content, q, linkId, qr);

describe('age-band questions in the DTR form', () => {
  it('Centene: the adult-only maintenance-with-POMP question (I.A.4.c.iii) is hidden for a child, shown for an adult', () => {
    const q = questionnaire('centene-blinatumomab');
    // A first request (the renewal answer pre-filled no): continued therapy (II), whose covered-indication check reads
    // POMP for an adult's maintenance course (review s41 F1), is ruled out too.
    const maintenance = { 'ph-status': code('negative'), 'treatment-phase': code('maintenance'), 'renewal-request': [{ valueBoolean: false }] };
    expect(shown(q, 'with-pomp', answers({ ...maintenance, 'birth-date': [{ valueDate: bornYearsAgo(9) }] }))).toBe(false);
    expect(shown(q, 'with-pomp', answers({ ...maintenance, 'birth-date': [{ valueDate: bornYearsAgo(45) }] }))).toBe(true);
    // No birth date: the age is unknown, so the question stays.
    expect(shown(q, 'with-pomp', answers(maintenance))).toBe(true);
  });

  it('OHSU: the adult-only POMP and inotuzumab + mini-hyper-CVD questions are hidden for a child on a first request', () => {
    const q = questionnaire('ohsu-blinatumomab');
    const child = answers({ 'birth-date': [{ valueDate: bornYearsAgo(9) }], 'renewal-request': [{ valueBoolean: false }] });
    const adult = answers({ 'birth-date': [{ valueDate: bornYearsAgo(45) }], 'renewal-request': [{ valueBoolean: false }] });
    for (const linkId of ['with-pomp', 'with-inotuzumab-mini-hyper-cvd']) {
      expect(shown(q, linkId, child), `${linkId} for a child`).toBe(false);
      expect(shown(q, linkId, adult), `${linkId} for an adult`).toBe(true);
    }
  });

  it('OHSU: "refractory to TKIs" (adult consolidation and maintenance only) is not asked of a Ph-positive child', () => {
    const q = questionnaire('ohsu-blinatumomab');
    const ph = { 'ph-status': code('positive') };
    expect(shown(q, 'tki-refractory', answers({ ...ph, 'birth-date': [{ valueDate: bornYearsAgo(9) }] }))).toBe(false);
    expect(shown(q, 'tki-refractory', answers({ ...ph, 'birth-date': [{ valueDate: bornYearsAgo(16) }] }))).toBe(true);
    expect(shown(q, 'tki-refractory', answers({ ...ph, 'birth-date': [{ valueDate: bornYearsAgo(45) }] }))).toBe(true);
  });

  it('OHSU: "first-line therapy" (adult frontline induction with a TKI only) is asked of Ph-positive patients from 15, never of a child', () => {
    const q = questionnaire('ohsu-blinatumomab');
    const first = { 'renewal-request': [{ valueBoolean: false }], 'ph-status': code('positive') };
    expect(shown(q, 'first-line', answers({ ...first, 'birth-date': [{ valueDate: bornYearsAgo(9) }] }))).toBe(false);
    expect(shown(q, 'first-line', answers({ ...first, 'birth-date': [{ valueDate: bornYearsAgo(16) }] }))).toBe(true);
    expect(shown(q, 'first-line', answers({ ...first, 'birth-date': [{ valueDate: bornYearsAgo(45) }] }))).toBe(true);
    expect(shown(q, 'first-line', answers({ ...first, 'ph-status': code('negative'), 'birth-date': [{ valueDate: bornYearsAgo(45) }] }))).toBe(false);
  });

  it('OHSU: "intolerant of or refractory to TKIs" (pediatric relapsed/refractory only) is not asked of a Ph-positive adult over 30', () => {
    const q = questionnaire('ohsu-blinatumomab');
    const ph = { 'ph-status': code('positive'), 'renewal-request': [{ valueBoolean: false }] };
    expect(shown(q, 'tki-intolerant-or-refractory', answers({ ...ph, 'birth-date': [{ valueDate: bornYearsAgo(45) }] }))).toBe(false);
    expect(shown(q, 'tki-intolerant-or-refractory', answers({ ...ph, 'birth-date': [{ valueDate: bornYearsAgo(25) }] }))).toBe(true);
    expect(shown(q, 'tki-intolerant-or-refractory', answers({ ...ph, 'birth-date': [{ valueDate: bornYearsAgo(9) }] }))).toBe(true);
  });

  it('OHSU: the pediatric-only questions (TKI dasatinib/imatinib, Ph-like with chemotherapy) are hidden for an adult over 30', () => {
    const q = questionnaire('ohsu-blinatumomab');
    const adult = answers({ 'birth-date': [{ valueDate: bornYearsAgo(45) }], 'renewal-request': [{ valueBoolean: false }] });
    const child = answers({ 'birth-date': [{ valueDate: bornYearsAgo(9) }], 'renewal-request': [{ valueBoolean: false }] });
    for (const linkId of ['with-pediatric-tki', 'with-chemotherapy']) {
      expect(shown(q, linkId, adult), `${linkId} for an adult`).toBe(false);
      expect(shown(q, linkId, child), `${linkId} for a child`).toBe(true);
    }
  });

  it('a hidden shared question is one no pathway of the answers so far can use: every gate names real items', () => {
    for (const p of content.policies) {
      const q = questionnaire(p.file.id);
      const linkIds = new Set(flattenItems(q.item).map((i) => i.linkId));
      for (const i of flattenItems(q.item)) {
        const gate = i.extension?.find((e) => e.url === EXT_ENABLE_WHEN_EXPRESSION)?.valueExpression?.expression ?? '';
        for (const m of gate.matchAll(/linkId = '([^']+)'/g)) expect(linkIds.has(m[1]), `${p.file.id} ${i.linkId} reads ${m[1]}`).toBe(true);
      }
    }
  });
});

describe('questions a met covered use does not need (BCBSNC inotuzumab)', () => {
  it('the compendia / FDA-label attestation and its citation are not asked once relapsed or refractory B-ALL is answered', () => {
    const q = questionnaire('bcbsnc-inotuzumab');
    const relapsed = answers({ 'b-all-diagnosis': [{ valueBoolean: true }], 'disease-status': code('relapsed') });
    const firstRemission = answers({ 'b-all-diagnosis': [{ valueBoolean: true }], 'disease-status': code('cr1') });
    expect(shown(q, 'compendia-strong-support', relapsed), 'attestation for relapsed B-ALL').toBe(false);
    expect(shown(q, 'compendia-strong-support', firstRemission), 'attestation for B-ALL in first remission').toBe(true);
    expect(shown(q, 'compendia-strong-support', answers({})), 'attestation with nothing answered').toBe(true);
    // The citation proves the attestation (proves: [compendiaOrLabelSupport]): shown only once it is answered "Yes".
    expect(shown(q, 'compendium-citation', relapsed), 'citation for relapsed B-ALL').toBe(false);
    expect(shown(q, 'compendium-citation', firstRemission), 'citation before the attestation is answered').toBe(false);
    expect(shown(q, 'compendium-citation', answers({ 'b-all-diagnosis': [{ valueBoolean: true }], 'disease-status': code('cr1'), 'compendia-strong-support': [{ valueBoolean: true }] })), 'citation after "Yes"').toBe(true);
    expect(shown(q, 'compendium-citation', answers({ 'b-all-diagnosis': [{ valueBoolean: true }], 'disease-status': code('cr1'), 'compendia-strong-support': [{ valueBoolean: false }] })), 'citation after "No"').toBe(false);
  });

  it('nor of a later cycle, in the remission it brought, of a relapsed or refractory course the patient is still receiving', () => {
    const q = questionnaire('bcbsnc-inotuzumab');
    const laterCycle = {
      'b-all-diagnosis': [{ valueBoolean: true }],
      'disease-status': code('cr1'),
      'renewal-request': [{ valueBoolean: true }],
      'earlier-course-indication': code('relapsed-refractory'),
    };
    expect(shown(q, 'compendia-strong-support', answers({ ...laterCycle, 'currently-receiving': [{ valueBoolean: true }] })), 'attestation while receiving').toBe(false);
    // A course that is over: Besponsa in remission is no longer the listed use, so the attestation is asked, and its
    // citation once it is answered "Yes".
    expect(shown(q, 'compendia-strong-support', answers({ ...laterCycle, 'currently-receiving': [{ valueBoolean: false }] })), 'attestation after the course').toBe(true);
    expect(shown(q, 'compendium-citation', answers({ ...laterCycle, 'currently-receiving': [{ valueBoolean: true }] })), 'citation while receiving').toBe(false);
    expect(
      shown(q, 'compendium-citation', answers({ ...laterCycle, 'currently-receiving': [{ valueBoolean: false }], 'compendia-strong-support': [{ valueBoolean: true }] })),
      'citation after the course, attested',
    ).toBe(true);
  });
});

describe('questions a met covered use does not need (BCBSNC blinatumomab)', () => {
  it('the label / compendia attestation and its citation are not asked of relapsed or refractory B-ALL, nor of a later phase of its course', () => {
    const q = questionnaire('bcbsnc-blinatumomab');
    const relapsed = answers({ 'b-all-diagnosis': [{ valueBoolean: true }], 'disease-status': code('relapsed') });
    const consolidation = answers({
      'b-all-diagnosis': [{ valueBoolean: true }],
      'disease-status': code('cr1'),
      'renewal-request': [{ valueBoolean: true }],
      'earlier-course-indication': code('relapsed-refractory'),
      'next-cycle-of-course': [{ valueBoolean: true }],
      'treatment-phase': code('consolidation'),
    });
    // A consolidation order not shown to be the course's next cycle (review pharm s41 F5: one 23 months after the
    // induction) is not that course's for sure: the attestation is asked beside the next-cycle question.
    const unscheduled = answers({
      'b-all-diagnosis': [{ valueBoolean: true }],
      'disease-status': code('cr1'),
      'renewal-request': [{ valueBoolean: true }],
      'earlier-course-indication': code('relapsed-refractory'),
      'treatment-phase': code('consolidation'),
    });
    expect(shown(q, 'compendia-strong-support', unscheduled), 'attestation for a consolidation not shown to be the next cycle').toBe(true);
    const firstRemission = answers({ 'b-all-diagnosis': [{ valueBoolean: true }], 'disease-status': code('cr1') });
    expect(shown(q, 'compendia-strong-support', relapsed), 'attestation for relapsed B-ALL').toBe(false);
    expect(shown(q, 'compendia-strong-support', consolidation), 'attestation for consolidation of a relapsed/refractory course').toBe(false);
    expect(shown(q, 'compendia-strong-support', firstRemission), 'attestation for B-ALL in first remission').toBe(true);
    expect(shown(q, 'compendia-strong-support', answers({})), 'attestation with nothing answered').toBe(true);
    // The citation proves the attestation (proves: [compendiaOrLabelSupport]): shown only once it is answered "Yes".
    for (const none of [relapsed, consolidation, firstRemission, answers({})]) expect(shown(q, 'compendium-citation', none)).toBe(false);
    expect(shown(q, 'compendium-citation', answers({ 'b-all-diagnosis': [{ valueBoolean: true }], 'disease-status': code('cr1'), 'compendia-strong-support': [{ valueBoolean: true }] })), 'citation after "Yes"').toBe(true);
  });
});

/**
 * What the payer pre-fills for a policy case (the case file's first case whose name starts with `casePrefix`): CRD's
 * evaluation at signing, its known facts, and the QuestionnaireResponse pre-filled from them.
 */
function prefilledFromCase(policyId: string, casePrefix: string) {
  const policy = content.policies.find((p) => p.file.id === policyId)!;
  const spec = readCaseFile(`${policyId}.yaml`);
  const c = spec.cases.find((x) => x.name.startsWith(casePrefix))!;
  const { resources, order } = buildCase(c);
  const record = indexRecord(recordFromResources(resources, [order], order.requester?.reference));
  const atCrd = evaluatePolicy(policy, evaluationDataFor(record, order, spec.today), {});
  const facts = Object.fromEntries(atCrd.facts.filter((f) => f.value !== undefined).map((f) => [f.name, f.value]));
  const prefilled = prefilledResponse(policy, questionnaire(policyId), facts, { valueSets: content.valueSets, canonicalBase: CANONICAL_BASE });
  return { atCrd, facts, prefilled };
}

/**
 * A question no answer can change the decision with, for this patient, is not asked (design.md §6 "Clinical readings",
 * §7): the static form hides it from the answers it holds, as the adaptive form never asks it.
 */
describe('questions that cannot change the decision', () => {
  it('OHSU: "given with a TKI?" is not asked once the disease is Ph-negative or Ph-like (III: every TKI use is for Ph+ disease)', () => {
    const q = questionnaire('ohsu-blinatumomab');
    const child = { 'birth-date': [{ valueDate: bornYearsAgo(9) }] };
    expect(shown(q, 'with-tki', answers({ ...child, 'ph-status': code('negative') }))).toBe(false);
    expect(shown(q, 'with-tki', answers({ ...child, 'ph-status': code('ph-like') }))).toBe(false);
    expect(shown(q, 'with-tki', answers({ ...child, 'ph-status': code('positive') }))).toBe(true);
    // Ph status not known: asked.
    expect(shown(q, 'with-tki', answers(child))).toBe(true);
  });

  it('Centene: the dose guideline attestation (I.A.5.b) is asked only when a known weight or the dose makes it count', () => {
    const q = questionnaire('centene-blinatumomab');
    const dose = (mcg: number) => ({ 'daily-dose': [{ valueDecimal: mcg }] });
    // 28 mcg/day with no weight: the weight is asked; at 45 kg or more no answer to the attestation changes anything.
    expect(shown(q, 'dose-guideline-supported', answers(dose(28)))).toBe(false);
    expect(shown(q, 'dose-guideline-supported', answers({ ...dose(28), weight: [{ valueDecimal: 50 }] }))).toBe(false);
    // Under 45 kg, 28 mcg/day may be above 15 mcg/m²/day: asked. Above 28 mcg/day it is asked at any weight.
    expect(shown(q, 'dose-guideline-supported', answers({ ...dose(28), weight: [{ valueDecimal: 30 }] }))).toBe(true);
    expect(shown(q, 'dose-guideline-supported', answers(dose(35)))).toBe(true);
  });

  it('Centene: the dose evidence that proves the attestation (I.A.5.b "prescriber must submit supporting evidence") is shown, and required, only beside a "Yes"', () => {
    const q = questionnaire('centene-blinatumomab');
    const over = { 'daily-dose': [{ valueDecimal: 56 }] };
    // Unanswered or "No": closed, so the required document never blocks a form whose attestation is not "Yes".
    expect(shown(q, 'dose-evidence', answers(over))).toBe(false);
    expect(shown(q, 'dose-evidence', answers({ ...over, 'dose-guideline-supported': [{ valueBoolean: false }] }))).toBe(false);
    expect(shown(q, 'dose-evidence', answers({ ...over, 'dose-guideline-supported': [{ valueBoolean: true }] }))).toBe(true);
  });

  it('the height is asked only once the weight is under 45 kg (fixed 28 mcg/day at 45 kg or more), or at every weight for OHSU\'s AALL1331', () => {
    const kg = (w: number) => ({ weight: [{ valueDecimal: w }] });
    for (const id of ['centene-blinatumomab', 'mmm-blinatumomab', 'ohsu-blinatumomab']) {
      const q = questionnaire(id);
      // The weight decides first: with it unknown, or at 45 kg or more, no dose reading needs the body surface area.
      expect(shown(q, 'height', answers({})), `${id}, weight unknown`).toBe(false);
      expect(shown(q, 'height', answers(kg(45))), `${id}, 45 kg`).toBe(false);
      expect(shown(q, 'height', answers(kg(44.9))), `${id}, 44.9 kg`).toBe(true);
    }
    // OHSU's COG AALL1331 row doses by BSA with no weight class: answered AALL1331, a 60 kg patient's height is asked.
    const ohsu = questionnaire('ohsu-blinatumomab');
    expect(shown(ohsu, 'height', answers({ ...kg(60), 'cog-aall1331': [{ valueBoolean: true }] }))).toBe(true);
    expect(shown(ohsu, 'height', answers({ 'cog-aall1331': [{ valueBoolean: true }] }))).toBe(true);
    expect(shown(ohsu, 'height', answers({ ...kg(60), 'cog-aall1331': [{ valueBoolean: false }] }))).toBe(false);
  });

  it('MMM: "free of toxicity and progression on the current regimen?" (B.i) is not asked on a renewal that is a relapse after a course that is over', () => {
    const q = questionnaire('mmm-blinatumomab');
    const renewal = { 'renewal-request': [{ valueBoolean: true }], 'disease-status': code('relapsed'), 'earlier-course-indication': code('mrd-positive') };
    // The earlier MRD-positive course is over and the disease has relapsed: a new initial request (A.iii.A).
    expect(shown(q, 'no-progression-or-toxicity', answers({ ...renewal, 'currently-receiving': [{ valueBoolean: false }] }))).toBe(false);
    // Still receiving Blincyto: the relapse is progression on the current regimen, which B.i judges.
    expect(shown(q, 'no-progression-or-toxicity', answers({ ...renewal, 'currently-receiving': [{ valueBoolean: true }] }))).toBe(true);
    // In remission on a renewal: a reauthorization.
    expect(shown(q, 'no-progression-or-toxicity', answers({ ...renewal, 'disease-status': code('cr2'), 'currently-receiving': [{ valueBoolean: false }] }))).toBe(true);
  });

  it('MMM: B.i and its documents are not asked of a new course after one that is over, pre-filled from the chart or answered', () => {
    const q = questionnaire('mmm-blinatumomab');
    const bi = ['no-progression-or-toxicity', 'oncology-note', 'imaging-objective-measures'];
    // The chart shows the new course (an induction order after an earlier consolidation course, not on Blincyto now):
    // the payer pre-fills begins-new-course from CRD's facts, and the form hides B.i, as $next-question never asks it.
    const { facts, prefilled } = prefilledFromCase('mmm-blinatumomab', 'the same new MRD-positive induction is approved at signing');
    expect(facts.beginsNewCourse).toBe(true);
    for (const linkId of bi) expect(shown(q, linkId, prefilled), `${linkId}, chart shows a new course`).toBe(false);

    // A new order naming no phase after a course that is over: the chart cannot tell, so begins-new-course is asked.
    const renewal = { 'renewal-request': [{ valueBoolean: true }], 'currently-receiving': [{ valueBoolean: false }], 'disease-status': code('cr2') };
    expect(shown(q, 'begins-new-course', answers(renewal))).toBe(true);
    for (const linkId of bi) {
      expect(shown(q, linkId, answers({ ...renewal, 'begins-new-course': [{ valueBoolean: true }] })), `${linkId}, answered new course`).toBe(false);
      expect(shown(q, linkId, answers({ ...renewal, 'begins-new-course': [{ valueBoolean: false }] })), `${linkId}, answered continuing`).toBe(true);
      expect(shown(q, linkId, answers(renewal)), `${linkId}, not yet answered`).toBe(true);
    }
    // Not asked of a patient still receiving Blincyto, of a consolidation or continued-therapy cycle, or of a first request.
    expect(shown(q, 'begins-new-course', answers({ ...renewal, 'currently-receiving': [{ valueBoolean: true }] }))).toBe(false);
    expect(shown(q, 'begins-new-course', answers({ ...renewal, 'treatment-phase': code('consolidation') }))).toBe(false);
    expect(shown(q, 'begins-new-course', answers({ ...renewal, 'treatment-phase': code('continued') }))).toBe(false);
    expect(shown(q, 'begins-new-course', answers({ 'renewal-request': [{ valueBoolean: false }] }))).toBe(false);
  });

  it('OHSU: the renewal criteria (IV) and their labs are not asked of a later cycle inside an initial course, pre-filled from the chart or answered', () => {
    const q = questionnaire('ohsu-blinatumomab');
    const iv = ['no-unacceptable-toxicity', 'disease-response', 'response-labs'];
    // Cycle 2 of an MRD+ course (one cycle on record, a consolidation order): within section I's initial 24 weeks, so
    // CRD and $next-question do not ask IV; the payer pre-fills renewal-of-authorization no, and the form hides IV too.
    const { atCrd, facts, prefilled } = prefilledFromCase('ohsu-blinatumomab', 'answered as the second cycle of an MRD+ course');
    expect(facts.renewalRequest).toBe(true);
    expect(facts.renewalOfAuthorization).toBe(false);
    expect(atCrd.missingFacts).not.toContain('noUnacceptableToxicity');
    for (const linkId of iv) expect(shown(q, linkId, prefilled), `${linkId}, a cycle inside the initial course`).toBe(false);
    expect(shown(q, 'renewal-of-authorization', prefilled)).toBe(true);

    // Answered (or pre-filled) as a renewal, or not yet known on a renewal request: IV is asked.
    const renewal = { 'renewal-request': [{ valueBoolean: true }], 'treatment-phase': code('consolidation') };
    for (const linkId of iv) {
      expect(shown(q, linkId, answers({ ...renewal, 'renewal-of-authorization': [{ valueBoolean: true }] })), `${linkId}, a renewal`).toBe(true);
      expect(shown(q, linkId, answers(renewal)), `${linkId}, not yet known`).toBe(true);
      expect(shown(q, linkId, answers({ 'renewal-request': [{ valueBoolean: false }] })), `${linkId}, a first request`).toBe(false);
    }
    // A continued-therapy order is a renewal whatever the answer: not asked, and IV stays.
    const continued = answers({ 'renewal-request': [{ valueBoolean: true }], 'treatment-phase': code('continued') });
    expect(shown(q, 'renewal-of-authorization', continued)).toBe(false);
    for (const linkId of iv) expect(shown(q, linkId, continued), `${linkId}, continued therapy`).toBe(true);
    expect(shown(q, 'renewal-of-authorization', answers({ 'renewal-request': [{ valueBoolean: false }] }))).toBe(false);
  });

  it('a gate answer the payer pre-filled goes stale once the clinician answers a phase that does not ask it: MMM begins-new-course, OHSU renewal-of-authorization', () => {
    // MMM: pre-filled yes for an induction order after a course that is over; answered consolidation (which continues a
    // course, so begins-new-course is no longer asked), the stale yes no longer hides B.i and its documents.
    const mmm = questionnaire('mmm-blinatumomab');
    const stale = { 'renewal-request': [{ valueBoolean: true }], 'currently-receiving': [{ valueBoolean: false }], 'disease-status': code('cr2'), 'begins-new-course': [{ valueBoolean: true }] };
    expect(shown(mmm, 'begins-new-course', answers({ ...stale, 'treatment-phase': code('consolidation') }))).toBe(false);
    for (const linkId of ['no-progression-or-toxicity', 'oncology-note', 'imaging-objective-measures']) {
      expect(shown(mmm, linkId, answers({ ...stale, 'treatment-phase': code('consolidation') })), `${linkId}, consolidation`).toBe(true);
      expect(shown(mmm, linkId, answers({ ...stale, 'treatment-phase': code('continued') })), `${linkId}, continued`).toBe(true);
      expect(shown(mmm, linkId, answers({ ...stale, 'treatment-phase': code('induction') })), `${linkId}, induction`).toBe(false);
    }
    // OHSU: pre-filled no for a cycle inside an initial course; answered continued therapy (a renewal whatever it says),
    // the renewal criteria are asked; and on a continued-therapy order answered "not a renewal" too (I authorizes
    // continued therapy only as a renewal).
    const ohsu = questionnaire('ohsu-blinatumomab');
    for (const linkId of ['no-unacceptable-toxicity', 'disease-response', 'response-labs']) {
      const continued = { 'treatment-phase': code('continued'), 'renewal-of-authorization': [{ valueBoolean: false }] };
      expect(shown(ohsu, linkId, answers({ ...continued, 'renewal-request': [{ valueBoolean: true }] })), `${linkId}, stale no`).toBe(true);
      expect(shown(ohsu, linkId, answers({ 'treatment-phase': code('continued'), 'renewal-request': [{ valueBoolean: false }] })), `${linkId}, not a renewal`).toBe(true);
      expect(shown(ohsu, linkId, answers({ ...continued, 'treatment-phase': code('consolidation'), 'renewal-request': [{ valueBoolean: true }] })), `${linkId}, consolidation`).toBe(false);
    }
  });

  it('BCBSNC: the MRD level is not asked on a continued-therapy or consolidation order of a relapsed/refractory course, in CR2', () => {
    const q = questionnaire('bcbsnc-blinatumomab');
    const course = {
      'disease-status': code('cr2'),
      'renewal-request': [{ valueBoolean: true }],
      'earlier-course-indication': code('relapsed-refractory'),
      'next-cycle-of-course': [{ valueBoolean: true }],
    };
    expect(shown(q, 'mrd-percent', answers({ ...course, 'treatment-phase': code('continued') }))).toBe(false);
    expect(shown(q, 'mrd-percent', answers({ ...course, 'treatment-phase': code('consolidation') }))).toBe(false);
    // An induction order in CR2 may begin an MRD-positive course: asked.
    expect(shown(q, 'mrd-percent', answers({ ...course, 'treatment-phase': code('induction') }))).toBe(true);
    expect(shown(q, 'mrd-percent', answers({ 'disease-status': code('cr2') }))).toBe(true);
  });

  it('BCBSNC Besponsa: the MRD level (read only by the HSCT limit) is not asked of an order within 2 cycles, nor once the plan is no transplant', () => {
    const q = questionnaire('bcbsnc-inotuzumab');
    const relapsed = { 'b-all-diagnosis': [{ valueBoolean: true }], 'disease-status': code('relapsed') };
    // Cycle 1 of a relapsed course: the label's HSCT limit (2 cycles, a third only without CR/CRi and MRD
    // negativity) cannot be passed, so the plan is not asked and neither is the MRD level.
    const cycleOne = { ...relapsed, 'cycles-given': [{ valueInteger: 0 }], 'cycles-requested': [{ valueInteger: 1 }] };
    expect(shown(q, 'proceeding-to-hsct', answers(cycleOne))).toBe(false);
    expect(shown(q, 'mrd-percent', answers(cycleOne))).toBe(false);
    // A third cycle after 2: the plan is asked; the MRD level with it, until the plan is answered no.
    const third = { ...relapsed, 'cycles-given': [{ valueInteger: 2 }], 'cycles-requested': [{ valueInteger: 1 }] };
    expect(shown(q, 'mrd-percent', answers(third))).toBe(true);
    expect(shown(q, 'mrd-percent', answers({ ...third, 'proceeding-to-hsct': [{ valueBoolean: true }] }))).toBe(true);
    expect(shown(q, 'mrd-percent', answers({ ...third, 'proceeding-to-hsct': [{ valueBoolean: false }] }))).toBe(false);
    // Not B-ALL, or B-ALL in first remission on a first request: the HSCT limit is about relapsed or refractory courses.
    expect(shown(q, 'mrd-percent', answers({ ...third, 'b-all-diagnosis': [{ valueBoolean: false }] }))).toBe(false);
    expect(shown(q, 'mrd-percent', answers({ ...third, 'disease-status': code('cr1'), 'renewal-request': [{ valueBoolean: false }] }))).toBe(false);
    // Nothing answered: the cycles are unknown, so it stays.
    expect(shown(q, 'mrd-percent', answers({}))).toBe(true);
  });

  it('BCBSNC Besponsa: the MRD level is not asked of a patient proceeding to HSCT with fewer than 2 cycles given (the course count the limit reads is on record only)', () => {
    const q = questionnaire('bcbsnc-inotuzumab');
    const hsct = { 'b-all-diagnosis': [{ valueBoolean: true }], 'disease-status': code('relapsed'), 'proceeding-to-hsct': [{ valueBoolean: true }] };
    // Cycles 2 and 3 after 1 given (pre-filled from the record): past 2 cycles, so the plan is asked, and with the plan
    // yes the limit is exceeded whatever the MRD level (a third cycle only once 2 are given): not asked (before:
    // shown, its answer changing nothing). CR/CRi stays: the later-cycle dose limit reads it too.
    const early = { ...hsct, 'cycles-given': [{ valueInteger: 1 }], 'cycles-requested': [{ valueInteger: 2 }] };
    expect(shown(q, 'proceeding-to-hsct', answers(early))).toBe(true);
    expect(shown(q, 'mrd-percent', answers(early))).toBe(false);
    // A third cycle after 2 given: the MRD level can decide it, so it is asked.
    expect(shown(q, 'mrd-percent', answers({ ...hsct, 'cycles-given': [{ valueInteger: 2 }], 'cycles-requested': [{ valueInteger: 1 }] }))).toBe(true);
  });

  it('BCBSNC Besponsa and Blincyto: "is this a renewal?" has no gate that can never close (its askWhen reads a fact the policy never knows)', () => {
    for (const id of ['bcbsnc-inotuzumab', 'bcbsnc-blinatumomab']) {
      const q = questionnaire(id);
      const item = flattenItems(q.item).find((i) => i.linkId === 'renewal-request')!;
      expect(item.extension?.some((e) => e.url === EXT_ENABLE_WHEN_EXPRESSION), id).toBe(false);
      expect(shown(q, 'renewal-request', answers({ 'disease-status': code('relapsed') }))).toBe(true);
    }
    // Every policy: no askWhen gate compares a value the form cannot have (`{} = false`): such a gate never closes.
    for (const p of content.policies) {
      for (const i of flattenItems(questionnaire(p.file.id).item)) {
        const gate = i.extension?.find((e) => e.url === EXT_ENABLE_WHEN_EXPRESSION)?.valueExpression;
        if (gate?.description === 'Asked only of the patients this question concerns') expect(gate.expression, `${p.file.id} ${i.linkId}`).not.toMatch(/\{\}\s*(=|!=|<|>|in)\s/);
      }
    }
  });

  it('BCBSNC Besponsa: the CD22 result is not asked once the disease is answered not B-ALL, and stays while B-ALL is open (a CD22-positive result shows B-lineage)', () => {
    const q = questionnaire('bcbsnc-inotuzumab');
    expect(shown(q, 'cd22-positive', answers({ 'b-all-diagnosis': [{ valueBoolean: false }] }))).toBe(false);
    // The CD22-directed limit reads it for B-ALL; B-ALL itself reads it while unanswered (ALL coded without lineage).
    expect(shown(q, 'cd22-positive', answers({ 'b-all-diagnosis': [{ valueBoolean: true }] }))).toBe(true);
    expect(shown(q, 'cd22-positive', answers({}))).toBe(true);
  });
});
