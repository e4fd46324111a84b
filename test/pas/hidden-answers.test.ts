/**
 * PAS reads the attached QuestionnaireResponse as the form shows it (design.md §7 "Answers the form does not show"):
 * a hand-built request carrying answers to questions the form hides for this patient decides nothing, while an answer
 * the form shows still counts. The request names no CRD assertion, so the gates read the response's answers and, for
 * what it leaves out (here the birth date), the facts the record the request carries gives, as the form was pre-filled
 * from the chart. `evaluateQuestionnaireResponse` with the record is the reading adjudicate.ts gives a request.
 */
import type { QuestionnaireResponse, QuestionnaireResponseItem } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { evaluateQuestionnaireResponse } from '../../src/coverage/evaluate-response.js';
import { recordFromResources } from '../../src/policies/record-from-resources.js';
import { buildCase, readCaseFile } from '../helpers/policy-cases.js';
import { dtrContent } from '../dtr/helpers.js';
import { questionnaireResponse } from './pas-fixtures.js';

const content = dtrContent();
const yes = [{ valueBoolean: true }];

/** A PAS reading of a case's record with a hand-built response holding only `answers` (no birth date among them). */
function pasReading(policyId: string, caseName: string, answers: Record<string, QuestionnaireResponseItem['answer']>) {
  const spec = readCaseFile(`${policyId}.yaml`);
  const c = spec.cases.find((x) => x.name === caseName);
  expect(c, caseName).toBeDefined();
  const { resources, order: built } = buildCase(c!);
  // The cycles requested are the order's (1 + numberOfRepeatsAllowed), which stand over an answer (docs/design.md §7
  // "Answers and the record"): a case answering them states them on its order, as a PAS request's order does.
  const cycles = answers['cycles-requested']?.[0]?.valueInteger;
  const order = cycles === undefined ? built : { ...built, dispenseRequest: { ...built.dispenseRequest, numberOfRepeatsAllowed: cycles - 1 } };
  const record = recordFromResources(resources.map((r) => (r === built ? order : r)), [order], order.requester?.reference);
  const qr: QuestionnaireResponse = questionnaireResponse(policyId, answers, 'Patient/pt');
  qr.questionnaire = `${content.canonicalBase}/Questionnaire/${policyId}`;
  return evaluateQuestionnaireResponse({ content, qr, record, order, today: spec.today });
}

describe('PAS: answers the form hides decide nothing; answers it shows count', () => {
  it('MMM: infant-ALL and Interfant answers for an adult (the record gives the age) do not approve the Interfant use', () => {
    const name = 'MRD ≥ 0.1 % in a third remission is not the labelled MRD indication and is not covered in induction';
    const read = pasReading('mmm-blinatumomab', name, { 'infant-all': yes, 'with-interfant': yes });
    expect(read.evaluation.outcome).toBe('not-covered');
    expect(read.evaluation.pathway).toBeUndefined();
    expect(read.notShown).toEqual(expect.arrayContaining(['infant-all', 'with-interfant']));
  });

  it('OHSU: a COG AALL1331 "yes" for a 45-year-old does not hold the approval back; the live-vaccine attestation the form shows counts', () => {
    const name = 'the attestation answered yes in DTR approves the relapsed adult for 30 weeks';
    const attested = pasReading('ohsu-blinatumomab', name, { 'no-live-vaccine-on-therapy': yes });
    expect(attested.evaluation.outcome).toBe('satisfied');
    expect(pasReading('ohsu-blinatumomab', name, {}).evaluation.outcome).toBe('documentation-needed');
    const stale = pasReading('ohsu-blinatumomab', name, { 'no-live-vaccine-on-therapy': yes, 'cog-aall1331': yes });
    expect(stale.evaluation.outcome).toBe('satisfied');
    expect(stale.notShown).toEqual(['cog-aall1331']);
  });

  it('Centene: an earlier-course answer on a first request is not read; on a renewal it counts', () => {
    const name = 'adult Ph-negative maintenance alternating with POMP, MRD unavailable, is approved';
    const five = { 'cycles-requested': [{ valueInteger: 5 }] };
    const mrdCourse = { 'earlier-course-indication': [{ valueCoding: { system: 'https://priorpath.dev/fhir/CodeSystem/evidence', code: 'mrd-positive' } }] };
    const first = pasReading('centene-blinatumomab', name, { ...five, 'renewal-request': [{ valueBoolean: false }], ...mrdCourse });
    expect(first.evaluation.failed.map((r) => r.id)).not.toContain('course-mrd-positive');
    expect(first.notShown).toContain('earlier-course-indication');
    const renewal = pasReading('centene-blinatumomab', name, { ...five, 'renewal-request': yes, ...mrdCourse });
    expect(renewal.notShown).toEqual([]);
    expect(renewal.evaluation.failed.map((r) => r.id)).toContain('course-mrd-positive');
  });

  it("Centene: an answer to a covered use the answers rule out (adult maintenance with POMP, for a child) decides nothing either way; a renewal's form shows it (continued therapy reads it too)", () => {
    const name = 'the same child, weight and height answered in the form (30 kg, 130 cm), at 15 mcg/m²/day is approved';
    // A relapsed child's first order at 15 mcg/m²/day for the whole cycle: answered "not cycle 1", one cycle given
    // elsewhere, as its case is (a "not cycle 1" asks the cycles given, pharmacist review s41 F1, and makes the order a
    // renewal, whose question the form then hides: design.md §6 "Cycles"; so no renewal answer is sent, and the earlier
    // course's indication is answered).
    const size = {
      weight: [{ valueDecimal: 30 }],
      height: [{ valueDecimal: 130 }],
      'relapsed-course-cycle-one': [{ valueBoolean: false }],
      'cycles-given': [{ valueInteger: 1 }],
      'earlier-course-indication': [{ valueCoding: { system: 'https://priorpath.dev/fhir/CodeSystem/evidence', code: 'relapsed-refractory' } }],
    };
    const plain = pasReading('centene-blinatumomab', name, size);
    const stale = pasReading('centene-blinatumomab', name, { ...size, 'with-pomp': yes });
    // "Not cycle 1" makes this order a renewal (design.md §6 "Cycles"), so with-pomp is also a question of the
    // continued-therapy use (II.A.1's covered indication, continuedUseCovered), which the form shows to a renewal: it
    // is no longer hidden. Where the answers rule the adult-maintenance use out (a child), it still decides nothing:
    // the determination is the one without it.
    expect(stale.notShown).toEqual([]);
    expect(stale.evaluation.outcome).toBe('satisfied');
    expect(stale.evaluation.outcome).toBe(plain.evaluation.outcome);
    expect(stale.evaluation.pathway?.id).toBe(plain.evaluation.pathway?.id);
  });

  it('Centene: on a first request for a child, an answer to the adult maintenance use (with POMP) is hidden and decides nothing', () => {
    // The covered-use group the answers rule out stays hidden on a first request (the renewal case above shows it,
    // because continued therapy reads it too): a child's first single-agent order after consolidation.
    const name = 'child with Ph-negative disease, single agent after consolidation, BSA dosing, is approved';
    const first = { 'renewal-request': [{ valueBoolean: false }] };
    const plain = pasReading('centene-blinatumomab', name, first);
    const stale = pasReading('centene-blinatumomab', name, { ...first, 'with-pomp': yes });
    expect(stale.notShown).toContain('with-pomp');
    expect(stale.evaluation.outcome).toBe('satisfied');
    expect(stale.evaluation.outcome).toBe(plain.evaluation.outcome);
    expect(stale.evaluation.pathway?.id).toBe(plain.evaluation.pathway?.id);
  });

  it('BCBSNC: "currently receiving" on a first request does not count a new relapse on the old course', () => {
    const name =
      "a new relapse after a completed 8-cycle course that brought a remission begins a new course (orders without a phase), so its 2 induction cycles are approved, not counted on the old course's 8";
    const read = pasReading('bcbsnc-blinatumomab', name, { 'renewal-request': [{ valueBoolean: false }], 'currently-receiving': yes });
    expect(read.evaluation.outcome).toBe('satisfied');
    expect(read.notShown).toEqual(['currently-receiving']);
  });

  it('BCBSNC: a CD19 answer the form shows counts; renewal answers on a first request are not read', () => {
    const name = 'MRD-positive remission without a CD19 result asks for CD19';
    const read = pasReading('bcbsnc-blinatumomab', name, {
      'cd19-positive': yes,
      'renewal-request': [{ valueBoolean: false }],
      'currently-receiving': yes,
    });
    expect(read.evaluation.outcome).toBe('satisfied');
    expect(read.notShown).toEqual(['currently-receiving']);
  });
});
