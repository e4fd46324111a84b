/**
 * Continued therapy reads the chart in DTR too (design.md §6 "Clinical readings": an answer the record contradicts is
 * not simply believed). The DTR reading has CRD's facts, not the record (evaluate-response.ts), and the course start a
 * progression is read against may be an answer (the cycle-1 date of a course begun elsewhere): the record's statuses
 * are kept in CRD's facts (progressionRecordedFrom, progressionRecordedBy) and progressionOnCourse is recomputed from
 * them and the answered start. MMM MP-RX-FP-14-23 B.i: "no evidence of ... disease progression while on the current
 * regimen".
 */
import type { Observation, QuestionnaireResponseItem, Resource } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { caseAsDtr, diseaseStatusResult, dtrContent, EVIDENCE } from './helpers.js';

const content = dtrContent();
type Answers = Record<string, QuestionnaireResponseItem['answer']>;

const status = diseaseStatusResult;

/** A case as DTR reads it (helpers.ts caseAsDtr), with `more` added to its record. */
const readCaseAsDtr = (policyId: string, name: string, more: Resource[], answers: Answers) =>
  caseAsDtr(content, policyId, name, answers, (resources, order) => ({ resources: [...resources, ...more], order }));

/**
 * The MMM case of a relapsed adult (relapsed status 2026-11-10, no Blincyto on record, order 2026-11-23) with `more`
 * added to the record, read as DTR reads it.
 */
const readAsDtr = (more: Resource[], answers: Answers) =>
  readCaseAsDtr(
    'mmm-blinatumomab',
    'a relapsed induction order written as one 28 mcg/day instruction for 28 days with no Blincyto on record is asked whether it is cycle 1, not approved at signing',
    more,
    answers,
  );

/** A reauthorization of a relapsed course begun elsewhere, answered in full: not cycle 1, no progression or toxicity. */
const reauthorization: Answers = {
  'relapsed-course-cycle-one': [{ valueBoolean: false }],
  'cycles-given': [{ valueInteger: 1 }],
  'earlier-course-indication': [{ valueCoding: { system: EVIDENCE, code: 'relapsed-refractory' } }],
  'no-progression-or-toxicity': [{ valueBoolean: true }],
};
const refractoryOn18 = status('obs-refractory', 'refractory', '2026-11-18');

describe('MMM B.i in DTR: the chart read against an answered course start', () => {
  it('a refractory status recorded after the answered cycle-1 start sends "no progression: yes" to review, never approves it', () => {
    const { read } = readAsDtr([refractoryOn18], { ...reauthorization, 'course-first-cycle-start': [{ valueDate: '2026-10-27' }] });
    expect(read.evaluation.outcome).toBe('limit-exceeded');
    const failed = read.evaluation.failed.find((r) => r.id === 'progression-on-course');
    expect(failed?.text).toMatch(/relapsed, refractory or progressive disease recorded after the current course began/);
    expect(read.evaluation.facts.find((f) => f.name === 'progressionOnCourse')).toMatchObject({ value: true });
  }, 60_000);

  it('the same status recorded before the answered cycle-1 start is the disease the course was given for: decided', () => {
    const { read } = readAsDtr([refractoryOn18], { ...reauthorization, 'course-first-cycle-start': [{ valueDate: '2026-11-19' }] });
    expect(read.evaluation.facts.find((f) => f.name === 'progressionOnCourse')).toMatchObject({ value: false });
    expect(read.evaluation.outcome).toBe('satisfied');
  }, 60_000);

  it('with such a status and the cycle-1 start not answered, the start is asked (the chart cannot be placed without it)', () => {
    const { read } = readAsDtr([refractoryOn18], { ...reauthorization, 'course-first-cycle-start': [] });
    expect(read.evaluation.outcome).toBe('documentation-needed');
    expect(read.evaluation.missingFacts).toContain('courseCycleOneStart');
  }, 60_000);

  it('a relapse from a remission recorded during the course (remission 2026-11-12, relapse 2026-11-16) is read the same way', () => {
    const more = [status('obs-cr', 'cr2', '2026-11-12'), status('obs-relapse', 'relapsed', '2026-11-16')];
    const { known, read } = readAsDtr(more, { ...reauthorization, 'course-first-cycle-start': [{ valueDate: '2026-10-27' }] });
    expect(known.progressionRecordedFrom).toBe('2026-11-16');
    expect(read.evaluation.outcome).toBe('limit-exceeded');
    expect(read.evaluation.failed.map((r) => r.id)).toContain('progression-on-course');
  }, 60_000);

  it('a refractory status dated only to the month the answered course began in may fall before or after its start: not approved on the answer, left to document', () => {
    const monthOnly: Observation = { ...refractoryOn18, id: 'obs-month', effectiveDateTime: '2026-10' };
    const { known, read } = readAsDtr([monthOnly], { ...reauthorization, 'course-first-cycle-start': [{ valueDate: '2026-10-05' }] });
    expect(known).toMatchObject({ progressionRecordedFrom: '2026-10-01', progressionRecordedBy: '2026-10-31' });
    expect(read.evaluation.facts.find((f) => f.name === 'progressionOnCourse')?.value).toBeUndefined();
    expect(read.evaluation.outcome).toBe('documentation-needed');
  }, 60_000);
});

describe('Centene CP.PHAR.312 II.A.2 in DTR: a course on record', () => {
  it('refractory disease recorded since the course began: "responding: yes" is reviewed in DTR as at signing', () => {
    const name = 'on Blincyto with refractory disease recorded since the course began, answered "responding", is reviewed';
    const { atCrd, read } = readCaseAsDtr('centene-blinatumomab', name, [], {});
    expect(atCrd.facts.find((f) => f.name === 'progressionOnCourse')).toMatchObject({ value: true });
    expect(read.evaluation.outcome).toBe('limit-exceeded');
    expect(read.evaluation.failed.map((r) => r.id)).toContain('progression-on-course');
  }, 60_000);

  it('a remission recorded during the course and nothing since: the response is pre-filled yes and the renewal decided', () => {
    const name = 'continued therapy with a complete remission recorded during the course (and no relapse since) is pre-filled as responding and renewed for 12 months';
    const { known, read } = readCaseAsDtr('centene-blinatumomab', name, [], {});
    expect(known).toMatchObject({ respondingToTherapy: true, progressionOnCourse: false });
    expect(read.evaluation.outcome).toBe('satisfied');
  }, 60_000);
});

describe('OHSU HEALTHSERVICES-0382 IV in DTR: "responded or stabilized" read against the chart', () => {
  it('refractory disease recorded since the renewed course began: the "yes" answered in the form is reviewed, as at signing', () => {
    const name = 'the same renewal answered "responded or stabilized" with refractory disease recorded since the course began is reviewed, not approved';
    const { atCrd, read } = readCaseAsDtr('ohsu-blinatumomab', name, [], { 'disease-response': [{ valueBoolean: true }] });
    expect(atCrd.facts.find((f) => f.name === 'progressionOnRenewedCourse')).toMatchObject({ value: true });
    expect(read.evaluation.outcome).toBe('limit-exceeded');
    const failed = read.evaluation.failed.find((r) => r.id === 'progression-on-course');
    expect(failed?.text).toMatch(/relapsed, refractory or progressive disease recorded after the current course began/);
  }, 60_000);

  it('a relapse from the course\'s remission, though the record reads this order as a new course for it, is reviewed in DTR too', () => {
    const name = 'a continued-therapy order answered "responded or stabilized" with a relapse from the course\'s remission recorded during the course is reviewed, not approved';
    const { known, read } = readCaseAsDtr('ohsu-blinatumomab', name, [], { 'disease-response': [{ valueBoolean: true }] });
    expect(known).toMatchObject({ renewedCourseStart: '2026-03-01', progressionRecordedFrom: '2026-07-15' });
    expect(read.evaluation.outcome).toBe('limit-exceeded');
    expect(read.evaluation.failed.map((r) => r.id)).toContain('progression-on-course');
  }, 60_000);

  it('a second remission reached on the course and nothing worse since: the response is pre-filled yes and the renewal decided', () => {
    const name = 'a sixth relapsed/refractory cycle whose order names no phase is a renewal, approved for the 24 weeks of a renewal, not a new 30-week course';
    const { known, read } = readCaseAsDtr('ohsu-blinatumomab', name, [], {});
    expect(known).toMatchObject({ diseaseResponse: true, progressionOnRenewedCourse: false });
    expect(read.evaluation.outcome).toBe('satisfied');
  }, 60_000);
});

/**
 * A relapse after the last cycles (remission 2026-06-10 during a course begun 2026-05-01 and over by its cycles,
 * relapse 2026-11-10), then a continued-therapy order: at signing the record shows the course over, so the relapse
 * begins a new course with this order. The form answers that the patient is still receiving Blincyto, so the order
 * continues the course the relapse fell in: the relapse is progression on it (progressionOnCourse), recomputed in DTR
 * from CRD's record fact relapseAfterLastCourse and the answer, and the continuation criterion answered "yes" is
 * reviewed, never approved on it (CP.PHAR.312 II.A.2, MP-RX-FP-14-23 B.i; design.md §6 "Clinical readings").
 */
describe('a relapse after the last cycles, answered in DTR as a course still received', () => {
  const yes = [{ valueBoolean: true }];

  it('MMM: continued therapy answered currently receiving and "no progression" is reviewed, not reauthorized', () => {
    const name = "the same continued-therapy order with nothing answered: the record shows the course over, so B.i's progression limit does not judge it, but its phase says it continues the course the chart shows over: reviewed (review s54), not approved under A";
    const { known, read, fact } = readCaseAsDtr('mmm-blinatumomab', name, [], { 'currently-receiving': yes, 'no-progression-or-toxicity': yes });
    expect(known).toMatchObject({ relapseAfterLastCourse: true, currentlyReceiving: false });
    expect(fact('progressionOnCourse')).toBe(true);
    expect(read.evaluation.outcome).toBe('limit-exceeded');
    expect(read.evaluation.failed.map((r) => r.id)).toContain('progression-on-course');
  }, 60_000);

  it('Centene: continued therapy answered currently receiving and responding is reviewed, not renewed', () => {
    const name = 'the same continued-therapy order with nothing answered: the record shows the course over, so II.A (currently receiving) is not judged, but its phase says it continues the course the chart shows over: reviewed (review s54), not approved on I.A.4.c.ii';
    const { known, read, fact } = readCaseAsDtr('centene-blinatumomab', name, [], {
      'currently-receiving': yes,
      'responding-to-therapy': yes,
      'earlier-course-indication': [{ valueCoding: { system: EVIDENCE, code: 'relapsed-refractory' } }],
    });
    expect(known).toMatchObject({ relapseAfterLastCourse: true, currentlyReceiving: false });
    expect(fact('progressionOnCourse')).toBe(true);
    expect(read.evaluation.outcome).toBe('limit-exceeded');
    expect(read.evaluation.failed.map((r) => r.id)).toContain('progression-on-course');
  }, 60_000);
});

/**
 * The same record (relapse 2026-11-10 after a course over by its cycles) and an order naming no phase: at signing it
 * begins the new relapsed course (BCBSNC approves it). The form then answers its phase consolidation: the order says
 * it continues a course the chart shows over, so it is reviewed, never approved on the answer nor denied
 * (continuingPhaseAfterNewRelapse, recomputed in DTR from CRD's record fact relapseAfterLastCourse and the answered
 * phase; review s54, design.md §6 "Clinical readings"). An answered induction phase keeps it the new course's cycle 1.
 */
describe('a relapse after the last course, the phase answered in DTR', () => {
  const name = 'an order naming no phase after the same relapse begins the new relapsed course and is approved, as before';
  const phase = (code: string): Answers => ({ 'treatment-phase': [{ valueCoding: { system: 'https://priorpath.dev/fhir/CodeSystem/treatment-phase', code } }] });

  it('BCBSNC: answered consolidation, the order approved at signing is reviewed, the reason naming the relapse date and the phase', () => {
    const { atCrd, known, read, fact } = readCaseAsDtr('bcbsnc-blinatumomab', name, [], phase('consolidation'));
    expect(atCrd.outcome).toBe('satisfied');
    expect(known).toMatchObject({ relapseAfterLastCourse: true });
    expect(fact('continuingPhaseAfterNewRelapse')).toBe(true);
    expect(read.evaluation.outcome).toBe('limit-exceeded');
    const failed = read.evaluation.failed.find((r) => r.id === 'continuing-phase-after-new-relapse');
    expect(failed?.text).toContain('[the record shows a relapse after the last course on 2026-11-10; the order says consolidation]');
  }, 60_000);

  it('BCBSNC: answered induction, it stays the new course and is approved', () => {
    const { read, fact } = readCaseAsDtr('bcbsnc-blinatumomab', name, [], phase('induction'));
    expect(fact('continuingPhaseAfterNewRelapse')).toBe(false);
    expect(read.evaluation.outcome).toBe('satisfied');
  }, 60_000);
});
