/**
 * A returned response is read as the form shows it (design.md §7 "Answers the form does not show"): an answer to a
 * question the form hides for the response's other answers decides nothing, and an answer the form shows still counts.
 * Each stale answer below is one the form hides (its enableWhenExpression reads the other answers), yet read as given
 * it would change the determination: the "would have" assertion proves the case bites, the "is" assertion is the rule.
 */
import type { Questionnaire, QuestionnaireResponseItem } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { answersFromQuestionnaireResponse, prefilledResponse } from '../../src/coverage/questionnaire-answers.js';
import { evaluateQuestionnaireResponse } from '../../src/coverage/evaluate-response.js';
import { evaluatePolicy } from '../../src/policies/evaluate-policy.js';
import { evaluationDataFor, indexRecord } from '../../src/policies/evaluation-data.js';
import { recordFromResources } from '../../src/policies/record-from-resources.js';
import { buildCase, readCaseFile } from '../helpers/policy-cases.js';
import { CANONICAL_BASE, dtrContent } from './helpers.js';
import { clientInitialExpression } from '../../src/dtr/expressions.js';
import { policyStructure } from '../../src/policies/policy-structure.js';

const content = dtrContent();
const EVIDENCE = 'https://priorpath.dev/fhir/CodeSystem/evidence';

type Answers = Record<string, QuestionnaireResponseItem['answer']>;

/**
 * A case of a policy's case file as DTR receives it: the response the payer pre-filled from CRD's facts (the case's
 * answers included, as the clinician gave them), completed, with `visible` answers set (replacing pre-filled ones)
 * and, when given, `stale` answers added.
 */
function responseFor(policyId: string, caseName: string, visible: Answers, stale: Answers = {}) {
  const spec = readCaseFile(`${policyId}.yaml`);
  const policy = content.policies.find((p) => p.file.id === policyId)!;
  const c = spec.cases.find((x) => x.name === caseName);
  expect(c, caseName).toBeDefined();
  const { resources, order: built } = buildCase(c!);
  // The cycles requested are the order's (1 + numberOfRepeatsAllowed), and the order's value stands over an answer
  // (docs/design.md §7 "Answers and the record"): a case answering them states them on its order.
  const cycles = { ...visible, ...stale }['cycles-requested']?.[0]?.valueInteger;
  const order = cycles === undefined ? built : { ...built, dispenseRequest: { ...built.dispenseRequest, numberOfRepeatsAllowed: cycles - 1 } };
  const withOrder = resources.map((r) => (r === built ? order : r));
  const record = recordFromResources(withOrder, [order], order.requester?.reference);
  const data = evaluationDataFor(indexRecord(record), order, spec.today);
  const atCrd = evaluatePolicy(policy, data, {});
  const known = Object.fromEntries(atCrd.facts.filter((f) => f.value !== undefined).map((f) => [f.name, f.value]));
  const form = content.questionnaires.get(policy.questionnaire.split('|')[0]) as unknown as Questionnaire;
  const qr = prefilledResponse(policy, form, { ...known, ...(c!.answers ?? {}) }, {
    valueSets: content.valueSets,
    canonicalBase: CANONICAL_BASE,
    orderDate: data.orderDate,
    dtrVersion: '2.2',
  });
  qr.status = 'completed';
  const set = { ...visible, ...stale };
  const drop = (items: QuestionnaireResponseItem[] | undefined): QuestionnaireResponseItem[] =>
    (items ?? []).filter((i) => !(i.linkId in set)).map((i) => (i.item ? { ...i, item: drop(i.item) } : i));
  qr.item = [...drop(qr.item), ...Object.entries(set).map(([linkId, answer]) => ({ linkId, answer }))];
  return { policy, qr, known, data, today: spec.today };
}

/**
 * The DTR reading (design.md §7: over CRD's facts) of the response with the stale answers, of the same response
 * without them, and the outcome it would get were every answer read (the stale ones overriding CRD's facts).
 */
function readBothWays(policyId: string, caseName: string, visible: Answers, stale: Answers = {}) {
  const { policy, qr, known, data, today } = responseFor(policyId, caseName, visible, stale);
  const read = evaluateQuestionnaireResponse({ content, qr, knownFacts: known, today });
  const plain = evaluateQuestionnaireResponse({ content, qr: responseFor(policyId, caseName, visible).qr, knownFacts: known, today });
  // Every answer read as given over the case's record (the facts derived from a stale answer recomputed from it).
  const everything = answersFromQuestionnaireResponse(policy, qr, content.valueSets, `${CANONICAL_BASE}/ValueSet`).answers;
  const readAll = { evaluation: evaluatePolicy(policy, data, everything) };
  return { read, plain, readAll };
}

/** The DTR reading alone (design.md §7: over CRD's facts) of the response {@link responseFor} builds. */
function readAsDtr(policyId: string, caseName: string, visible: Answers) {
  const { qr, known, today } = responseFor(policyId, caseName, visible);
  return evaluateQuestionnaireResponse({ content, qr, knownFacts: known, today });
}

const yes = [{ valueBoolean: true }];
const code = (c: string) => [{ valueCoding: { system: EVIDENCE, code: c } }];

describe('DTR: an answer the form hides decides nothing; one it shows still counts', () => {
  it('OHSU: a stale "COG AALL1331 regimen: yes" on a 45-year-old (asked only under 31) does not hold the approval back for the AALL1331 dose', () => {
    const name = 'the attestation answered yes in DTR approves the relapsed adult for 30 weeks';
    const { read, plain, readAll } = readBothWays('ohsu-blinatumomab', name, {}, { 'cog-aall1331': yes });
    expect(readAll.evaluation.outcome, 'read as given, the stale answer would change the decision').not.toBe(plain.evaluation.outcome);
    expect(read.evaluation.outcome).toBe('satisfied');
    expect(read.evaluation.outcome).toBe(plain.evaluation.outcome);
    expect(read.warnings.join(' ')).toContain('cog-aall1331');
    expect(read.notShown).toContain('cog-aall1331');
  });

  it('MMM: stale infant-ALL and Interfant answers on an adult (asked only under 3) do not approve the Interfant use', () => {
    const name = 'MRD ≥ 0.1 % in a third remission is not the labelled MRD indication and is not covered in induction';
    const { read, plain, readAll } = readBothWays('mmm-blinatumomab', name, {}, { 'infant-all': yes, 'with-interfant': yes });
    expect(readAll.evaluation.outcome, 'read as given, the stale answers would approve').toBe('satisfied');
    expect(read.evaluation.outcome).toBe('not-covered');
    expect(read.evaluation.outcome).toBe(plain.evaluation.outcome);
    expect(read.notShown).toEqual(expect.arrayContaining(['infant-all', 'with-interfant']));
  });

  it('Centene: stale infant-ALL and Interfant answers on an adult do not reopen a use the adult cannot have', () => {
    const name = 'adult Ph-negative maintenance as a single agent (no POMP) fits no pathway';
    const { read, plain, readAll } = readBothWays('centene-blinatumomab', name, {}, { 'infant-all': yes, 'with-interfant': yes });
    expect(readAll.evaluation.outcome, 'read as given, the stale answers would change the decision').not.toBe('not-covered');
    expect(read.evaluation.outcome).toBe('not-covered');
    expect(read.evaluation.outcome).toBe(plain.evaluation.outcome);
    expect(read.notShown).toEqual(expect.arrayContaining(['infant-all', 'with-interfant']));
  });

  it("Centene: the earlier course's indication counts when the form shows it (a renewal), not on a first request", () => {
    const name = 'adult Ph-negative maintenance alternating with POMP, MRD unavailable, is approved';
    const five = { 'cycles-requested': [{ valueInteger: 5 }] };
    const mrdCourse = { 'earlier-course-indication': code('mrd-positive') };
    // A first request: the question is hidden; read as given, the answer would put the order over the MRD+ course's 4.
    const first = readBothWays('centene-blinatumomab', name, { ...five, 'renewal-request': [{ valueBoolean: false }] }, mrdCourse);
    expect(first.readAll.evaluation.outcome).toBe('limit-exceeded');
    expect(first.read.evaluation.outcome).toBe(first.plain.evaluation.outcome);
    expect(first.read.evaluation.outcome).not.toBe('limit-exceeded');
    expect(first.read.notShown).toContain('earlier-course-indication');
    // A renewal: the question is shown and its answer decides (CP.PHAR.312 V: the MRD-positive course is 4 cycles).
    const renewal = readBothWays('centene-blinatumomab', name, { ...five, 'renewal-request': yes, ...mrdCourse });
    expect(renewal.read.notShown).not.toContain('earlier-course-indication');
    expect(renewal.read.evaluation.outcome).toBe('limit-exceeded');
    expect(renewal.read.evaluation.failed.map((r) => r.id)).toContain('course-mrd-positive');
  });

  it('MMM: "not cycle 1 of this course" beside the renewal pre-fill "No" is a reauthorization (B.i), never an initial request; the course start is not asked where no course window reads it', () => {
    // design.md §6 "Cycles": the payer pre-filled renewal-request No from the record (no Blincyto on it) before the
    // clinician answered that the order is not cycle 1; that answer says earlier cycles of the course were given, so
    // the form hides the renewal question (its answer follows: yes) and the server reads the renewal from it.
    const name = 'a relapsed induction order written as one 28 mcg/day instruction for 28 days with no Blincyto on record is asked whether it is cycle 1, not approved at signing';
    const notCycleOne = { 'relapsed-course-cycle-one': [{ valueBoolean: false }], 'cycles-given': [{ valueInteger: 1 }] };
    const { read, readAll } = readBothWays('mmm-blinatumomab', name, notCycleOne);
    const flat = (items: QuestionnaireResponseItem[] = []): QuestionnaireResponseItem[] => items.flatMap((i) => [i, ...flat(i.item)]);
    const renewalPrefill = flat(responseFor('mmm-blinatumomab', name, notCycleOne).qr.item).find((i) => i.linkId === 'renewal-request');
    expect(renewalPrefill?.answer, 'the payer pre-filled "not a renewal" from the record').toEqual([expect.objectContaining({ valueBoolean: false })]);
    expect(readAll.evaluation.outcome, 'read as given, the pre-filled "No" would approve an initial request').toBe('satisfied');
    expect(read.notShown).toContain('renewal-request');
    expect(read.evaluation.facts.find((f) => f.name === 'renewalRequest')).toMatchObject({ value: true });
    expect(read.evaluation.outcome).toBe('documentation-needed');
    expect(read.evaluation.missingFacts).toEqual(expect.arrayContaining(['earlierCourseIndication', 'noProgressionOrToxicity']));
    expect(read.evaluation.missingFacts).not.toContain('renewalRequest');
    expect(read.evaluation.missingFacts).not.toContain('courseCycleOneStart');
    // Answered as a reauthorization (the earlier course relapsed or refractory, no progression or toxicity), approved.
    const reauthorized = readAsDtr('mmm-blinatumomab', name, {
      ...notCycleOne,
      'earlier-course-indication': code('relapsed-refractory'),
      'no-progression-or-toxicity': yes,
    });
    expect(reauthorized.evaluation.outcome).toBe('satisfied');
    expect(reauthorized.evaluation.facts.find((f) => f.name === 'renewalRequest')).toMatchObject({ value: true });
  }, 60_000);

  it("OHSU: after \"not cycle 1\" the course's cycle 1 start is asked and the 30 weeks run from it, not from the order's date", () => {
    // design.md §6 "Cycles": a course begun elsewhere has no start on record; its initial authorization (HEALTHSERVICES-0382
    // I, 30 weeks) is counted from the answered start of its cycle 1, never from this order.
    const name = 'a child with relapsed Ph- ALL as a single agent is approved for 30 weeks';
    const base = {
      'relapsed-course-cycle-one': [{ valueBoolean: false }],
      'cycles-given': [{ valueInteger: 1 }],
      'earlier-course-indication': code('relapsed-refractory'),
      'course-first-cycle-start': [],
    };
    const unanswered = readAsDtr('ohsu-blinatumomab', name, base);
    expect(unanswered.evaluation.outcome).toBe('documentation-needed');
    expect(unanswered.evaluation.missingFacts).toContain('courseCycleOneStart');
    const answered = readAsDtr('ohsu-blinatumomab', name, { ...base, 'course-first-cycle-start': [{ valueDate: '2026-10-13' }] });
    expect(answered.evaluation.outcome).toBe('satisfied');
    expect(answered.evaluation.pathway?.approvalFrom).toBe('2026-10-13');
    const overdue = readAsDtr('ohsu-blinatumomab', name, { ...base, 'cycles-given': [{ valueInteger: 3 }], 'course-first-cycle-start': [{ valueDate: '2026-03-10' }] });
    expect(overdue.evaluation.outcome).toBe('limit-exceeded');
    expect(overdue.evaluation.failed.map((r) => r.id)).toContain('pediatric-relapsed-refractory-initial-period');
  }, 60_000);

  it('BCBSNC: a shown answer counts (CD19 positive approves the MRD-positive label use); hidden renewal answers on a first request are ignored', () => {
    const name = 'MRD-positive remission without a CD19 result asks for CD19';
    const shown = readBothWays('bcbsnc-blinatumomab', name, { 'cd19-positive': yes });
    expect(shown.read.evaluation.outcome).toBe('satisfied');
    expect(shown.read.notShown).not.toContain('cd19-positive');
    const stale = readBothWays('bcbsnc-blinatumomab', name, { 'cd19-positive': yes, 'renewal-request': [{ valueBoolean: false }] }, {
      'earlier-course-indication': code('mrd-positive'),
      'currently-receiving': yes,
    });
    expect(stale.read.evaluation.outcome).toBe('satisfied');
    expect(stale.read.notShown).toEqual(expect.arrayContaining(['earlier-course-indication', 'currently-receiving']));
  });

  it('BCBSNC: a stale "currently receiving" on a first request does not count a new relapse on the old course (Policy Guidelines treatment course)', () => {
    const name =
      "a new relapse after a completed 8-cycle course that brought a remission begins a new course (orders without a phase), so its 2 induction cycles are approved, not counted on the old course's 8";
    const { read, plain, readAll } = readBothWays('bcbsnc-blinatumomab', name, { 'renewal-request': [{ valueBoolean: false }] }, { 'currently-receiving': yes });
    // The record alone (remission after the old course, then the relapse, no order active) now places the course's
    // start at this order (relapseAfterLastCourse, pharmacist review s41 F6/F8), so even read as given the stale answer
    // no longer counts the old course's 8 cycles; the form still hides it (notShown below).
    expect(readAll.evaluation.facts.find((f) => f.name === 'courseCyclesGiven'), 'the course begins with this order').toMatchObject({ value: 0 });
    expect(read.evaluation.outcome).toBe('satisfied');
    expect(read.evaluation.outcome).toBe(plain.evaluation.outcome);
    // Beside the stale answer, the pre-filled regimen answers of the FDA-label uses' groups (single agent, beside POMP,
    // another kind of anticancer drug: review s41 F4), which a relapsed patient's answers rule out, are hidden too.
    expect([...read.notShown].sort()).toEqual(['currently-receiving', 'non-chemotherapy-concurrent', 'single-agent', 'single-agent-beside-pomp']);
    // Answered on a renewal the form shows it, and it counts: the order continues the old course.
    const renewal = readBothWays('bcbsnc-blinatumomab', name, { 'renewal-request': yes, 'currently-receiving': yes });
    // Only the FDA-label groups' pre-filled regimen answers, ruled out by the relapse (review s41 F4), are hidden.
    expect([...renewal.read.notShown].sort()).toEqual(['non-chemotherapy-concurrent', 'single-agent', 'single-agent-beside-pomp']);
    expect(renewal.read.evaluation.facts.find((f) => f.name === 'currentlyReceiving')).toMatchObject({ value: true, source: 'answer' });
  });

  it('OHSU: an answer the form shows still counts (the live-vaccine attestation approves; without it the order waits)', () => {
    const name = 'the attestation answered yes in DTR approves the relapsed adult for 30 weeks';
    const { read } = readBothWays('ohsu-blinatumomab', name, {});
    expect(read.evaluation.outcome).toBe('satisfied');
    expect(read.notShown).not.toContain('no-live-vaccine-on-therapy');
    const unanswered = readBothWays('ohsu-blinatumomab', name, { 'no-live-vaccine-on-therapy': [] });
    expect(unanswered.read.evaluation.outcome).toBe('documentation-needed');
  });
});

describe("the server reads a question's askWhen as the form does", () => {
  // src/coverage/hidden-answers.ts reads an askWhen over the server's facts: that is the form's reading only while the
  // form has a reading of every fact the askWhen names (its question, or its pre-filled initialExpression). A fact
  // the form cannot read is unknown there and would close the gate on the server alone, dropping an answer the
  // clinician was shown. A derived fact that is `{}` is unknown on the server too (BCBSNC's relapsedCourseCycleOne,
  // which the shared renewal gate names: not asked there), so it closes no gate on either side.
  it.each(content.policies.map((p) => [p.file.id, p] as const))('%s: every fact an askWhen names is one the form reads', (_id, policy) => {
    const structure = policyStructure(policy);
    const ctx = { valueSets: content.valueSets, valueSetBase: `${CANONICAL_BASE}/ValueSet` };
    const onForm = (f: string) => policy.factsByName.get(f)?.def.linkId !== undefined && structure.usedBy.has(f);
    const texts = [...policy.file.attachments.map((a) => a.askWhen), ...policy.facts.filter((f) => onForm(f.name)).map((f) => f.def.askWhen)];
    const unread = texts
      .filter((t): t is string => t !== undefined)
      .flatMap((t) => [...t.matchAll(/[A-Za-z_][A-Za-z0-9_]*/g)].map((m) => m[0]))
      .filter((n) => policy.factsByName.has(n) && !onForm(n) && clientInitialExpression(policy, n, ctx).expression === undefined)
      .filter((n) => !(policy.factsByName.get(n)!.def.askable === false && /^\s*\{\s*\}\s*$/.test(policy.factsByName.get(n)!.def.fhirpath)));
    expect([...new Set(unread)]).toEqual([]);
  });
});
