/**
 * The course facts read the chart in DTR too (design.md §7 "One record of what CRD knew"). The DTR reading has CRD's
 * facts and the answers, not the record (evaluate-response.ts), and recomputes a derived fact once an answer changes a
 * question it is computed from. A course fact that read both the chart (the orders of the course) and such a question
 * lost the chart there: the course was recounted, or restarted, over an empty record. Each now keeps what it reads of
 * the chart in facts that read the record alone (courseCyclesOnRecord, relapsedWhenEarlierCourseBegan,
 * activeOrderOnRecord, earliestOrderStartOnRecord, consolidationOrderStartOnRecord, unphasedOrderStartOnRecord), whose
 * CRD values stand, and is derived from them and the answers.
 */
import type { MedicationRequest, QuestionnaireResponseItem, Resource } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { caseAsDtr, diseaseStatusResult, dtrContent, EVIDENCE } from './helpers.js';

const content = dtrContent();
type Answers = Record<string, QuestionnaireResponseItem['answer']>;

const status = diseaseStatusResult;

/** A case as DTR reads it (helpers.ts caseAsDtr), with `more` added to its record and its order patched by `order`. */
const readCaseAsDtr = (policyId: string, name: string, answers: Answers, more: Resource[] = [], order: Partial<MedicationRequest> = {}) =>
  caseAsDtr(content, policyId, name, answers, (resources, o) => ({ resources: [...resources, ...more], order: { ...o, ...order } as MedicationRequest }));

describe('courseCyclesGiven in DTR: the course the chart splits keeps its count beside an answered cycles-given', () => {
  // Centene: an MRD-positive course (4 cycles), a relapse, then a relapsed/refractory course of 5 cycles on record; the
  // continued-therapy order asks for 5 more (cycles 6-10 of a 9-cycle course, CP.PHAR.312 V).
  const name = 'cycle 6 of a relapsed/refractory course after a completed MRD-positive course counts the 5 cycles of its own course, not the 4 MRD-positive ones';
  const fiveMore = { dispenseRequest: { numberOfRepeatsAllowed: 4 } };

  it('at signing the 5 cycles of the course and the 5 asked for exceed the 9-cycle course', () => {
    const { atCrd } = readCaseAsDtr('centene-blinatumomab', name, {}, [], fiveMore);
    expect(atCrd.facts.find((f) => f.name === 'courseCyclesGiven')?.value).toBe(5);
    expect(atCrd.outcome).toBe('limit-exceeded');
  }, 60_000);

  it('the clinician counting 10 cycles in all (one given elsewhere) does not restart the course: still 5 in it, still over its 9', () => {
    const { read, fact } = readCaseAsDtr('centene-blinatumomab', name, { 'cycles-given': [{ valueInteger: 10 }] }, [], fiveMore);
    expect(fact('courseCyclesGiven')).toBe(5);
    expect(read.evaluation.outcome).toBe('limit-exceeded');
  }, 60_000);
});

describe('the course start in DTR: an answer does not move the course to this order', () => {
  // OHSU HEALTHSERVICES-0382 I: a relapsed course begun 2026-10-15 (relapse 2026-10-05), cycle 2 ordered 2026-12-10.
  const name =
    "consolidation cycle 2 of a relapsed course begun 2026-10-15 (relapse 2026-10-05), now in CR2 with MRD 0.5 %, is approved within that course's 30 weeks (2027-05-12), not 24 weeks from this order (2027-05-26)";

  it('answered "currently receiving", the course still began with its first order on record: its 30 weeks end 2027-05-12, not 30 weeks from this order', () => {
    const { known, read, fact } = readCaseAsDtr('ohsu-blinatumomab', name, { 'currently-receiving': [{ valueBoolean: true }] });
    expect(known.currentlyReceiving).toBe(false);
    expect(fact('courseFirstCycleStartOnRecord')).toBe('2026-10-15');
    expect(fact('earlierCourseRelapsedRefractory')).toBe(true);
    expect(read.evaluation.outcome).toBe('satisfied');
    expect(read.evaluation.pathway).toMatchObject({ id: 'course-continuation-relapsed-refractory', approvalFrom: '2026-10-15' });
  }, 60_000);

  it('a second remission recorded between the relapse and the course (2026-10-12) leaves the course\'s indication unknown in DTR as at signing, never relapsed', () => {
    const { known, fact } = readCaseAsDtr('ohsu-blinatumomab', name, { 'currently-receiving': [{ valueBoolean: true }] }, [
      status('obs-status-cr2-oct', 'cr2', '2026-10-12'),
    ]);
    expect(known.earlierCourseRelapsedRefractory).toBeUndefined();
    expect(fact('earlierCourseRelapsedRefractory')).toBeUndefined();
    expect(known.relapsedWhenEarlierCourseBegan).toBe(false);
  }, 60_000);

  it('an active order on record and relapsed disease answered "refractory": the earlier course is still read as relapsed or refractory', () => {
    // MMM: relapsed adult; an active Blincyto order begun 2026-10-27 makes this order a continuation.
    const active: MedicationRequest = {
      resourceType: 'MedicationRequest',
      id: 'med-blin-active',
      status: 'active',
      intent: 'order',
      subject: { reference: 'Patient/pt' },
      authoredOn: '2026-10-24',
      medicationCodeableConcept: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '1597262', display: 'blinatumomab 0.035 MG Injection' }] },
      dosageInstruction: [{ timing: { repeat: { boundsPeriod: { start: '2026-10-27' } } }, doseAndRate: [{ doseQuantity: { value: 28, unit: 'mcg/d', system: 'http://unitsofmeasure.org', code: 'ug/d' } }] }],
      dispenseRequest: { numberOfRepeatsAllowed: 0 },
    };
    const mmmName =
      'a relapsed induction order written as one 28 mcg/day instruction for 28 days with no Blincyto on record is asked whether it is cycle 1, not approved at signing';
    const { known, fact } = readCaseAsDtr(
      'mmm-blinatumomab',
      mmmName,
      { 'disease-status': [{ valueCoding: { system: EVIDENCE, code: 'refractory' } }], 'currently-receiving': [{ valueBoolean: true }] },
      [active],
    );
    expect(known).toMatchObject({ currentlyReceiving: true, earlierCourseRelapsedRefractory: true });
    expect(fact('earlierCourseRelapsedRefractory')).toBe(true);
    expect(known.activeOrderOnRecord).toBe(true);
  }, 60_000);
});

describe('consolidationCourseStart in DTR: the consolidation course on record beside an answered indication', () => {
  it('cycle 5 of a consolidation course begun 2026-06-01, the earlier course answered "consolidation", is approved to the course\'s 30 weeks (2026-12-27), never 30 weeks from its own start', () => {
    const name = 'cycle 5 of an adult Ph- consolidation course begun 2026-06-01, starting 2026-11-23, is approved to the course\'s 30 weeks (2026-12-27), not 30 weeks from its own start';
    const { known, read, fact } = readCaseAsDtr('ohsu-blinatumomab', name, {
      'earlier-course-indication': [{ valueCoding: { system: EVIDENCE, code: 'consolidation' } }],
    });
    expect(known.earlierCourseIndication).toBeUndefined();
    expect(fact('consolidationCourseStart')).toBe('2026-06-01');
    expect(read.evaluation.outcome).toBe('satisfied');
    expect(read.evaluation.pathway).toMatchObject({ id: 'adult-consolidation-ph-negative', approvalFrom: '2026-06-01' });
  }, 60_000);
});
