/**
 * A later cycle of a course whose period runs from the course's first cycle depends on the indication the course was
 * given for (HEALTHSERVICES-0382 I: MRD+ "Initial: 24 weeks for a total of four cycles (1 induction + 3
 * consolidation)"; relapsed or refractory "Initial: 30 weeks for a total of five cycles"). The form pre-fills that
 * indication from the record when the record can tell (CR1 with MRD 0.4 % before the course's first cycle: an
 * MRD-positive course), and when it cannot, signing and the completed form leave the order documentation-needed with
 * the indication asked, never approved for a fresh period counted from this order (docs/design.md §6 "Cycles";
 * acceptance review s47 H). End to end over HTTP: order-sign, DTR 2.2 `$questionnaire-package`, the completed response.
 */
import type { Bundle, MedicationRequest, Observation, QuestionnaireResponse, QuestionnaireResponseItem, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { coverageInfo, sub } from '../helpers/dtr-package.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyResources } from '../helpers/stories.js';
import { withAnswers } from './helpers.js';

const FHIR = 'application/fhir+json';
const DTR_22 = 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/dtr-qpackage-input-parameters|2.2.0';
const EV = 'https://priorpath.dev/fhir/CodeSystem/evidence';
const RXNORM = 'http://www.nlm.nih.gov/research/umls/rxnorm';
const PHASE = 'https://priorpath.dev/fhir/StructureDefinition/treatment-phase';
const STORY = 'ohsu-live-vaccine';

type App = ReturnType<typeof buildApp>['app'];

const blincyto = { coding: [{ system: RXNORM, code: '1597262', display: 'blinatumomab 0.035 MG Injection' }, { system: 'https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets', code: 'J9039' }] };

function status(id: string, when: string, code: string): Observation {
  return { resourceType: 'Observation', id, status: 'final', subject: { reference: `Patient/${STORY}` }, code: { coding: [{ system: EV, code: 'disease-status' }] }, effectiveDateTime: when, valueCodeableConcept: { coding: [{ system: EV, code }] } };
}

function mrd(id: string, when: string, value: number): Observation {
  return { resourceType: 'Observation', id, status: 'final', subject: { reference: `Patient/${STORY}` }, code: { coding: [{ system: EV, code: 'mrd' }] }, effectiveDateTime: when, valueQuantity: { value, unit: '%', system: 'http://unitsofmeasure.org', code: '%' } };
}

/**
 * The story's patient, Coverage (OHSU) and prescriber, with an adult B-ALL in CR1, MRD 0.5 % now, 70 kg, and one
 * completed Blincyto induction cycle begun 2026-10-01; `beforeCourse` adds CR1 with MRD 0.4 % recorded 2026-09-25.
 */
function record(beforeCourse: boolean): Resource[] {
  const base = storyResources(STORY).filter((r) => ['Patient', 'Organization', 'Coverage', 'Practitioner', 'PractitionerRole'].includes(r.resourceType));
  const subject = { reference: `Patient/${STORY}` };
  return [
    ...base,
    { resourceType: 'Condition', id: 'dx-ball', subject, clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] }, verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }] }, code: { coding: [{ system: 'http://snomed.info/sct', code: '277571004', display: 'B-cell acute lymphoblastic leukemia' }] } },
    ...(beforeCourse ? [status('obs-status-pre', '2026-09-25T09:00:00Z', 'cr1'), mrd('obs-mrd-pre', '2026-09-25T09:00:00Z', 0.4)] : []),
    status('obs-status', '2026-11-30T09:00:00Z', 'cr1'),
    mrd('obs-mrd', '2026-11-30T09:00:00Z', 0.5),
    { resourceType: 'Observation', id: 'obs-weight', status: 'final', subject, code: { coding: [{ system: 'http://loinc.org', code: '29463-7', display: 'Body weight' }] }, effectiveDateTime: '2026-12-01T09:00:00Z', valueQuantity: { value: 70, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' } },
    { resourceType: 'MedicationRequest', id: 'med-blin-ind', status: 'completed', intent: 'order', subject, authoredOn: '2026-09-28', extension: [{ url: PHASE, valueCode: 'induction' }], medicationCodeableConcept: blincyto, dispenseRequest: { numberOfRepeatsAllowed: 0 }, dosageInstruction: [{ timing: { repeat: { boundsPeriod: { start: '2026-10-01' } } }, doseAndRate: [{ doseQuantity: { value: 28, unit: 'ug/d', system: 'http://unitsofmeasure.org', code: 'ug/d' } }] }] },
  ];
}

/** One consolidation cycle, 28 mcg/day from 2026-12-10. */
const order = (): MedicationRequest => ({
  resourceType: 'MedicationRequest',
  id: 'ord-consolidation',
  status: 'draft',
  intent: 'order',
  subject: { reference: `Patient/${STORY}` },
  requester: { reference: `PractitionerRole/${STORY}-role` },
  authoredOn: '2026-12-07',
  extension: [{ url: PHASE, valueCode: 'consolidation' }],
  medicationCodeableConcept: blincyto,
  dosageInstruction: [{ timing: { repeat: { boundsPeriod: { start: '2026-12-10' } } }, doseAndRate: [{ doseQuantity: { value: 28, unit: 'ug/d', system: 'http://unitsofmeasure.org', code: 'ug/d' } }] }],
});

async function sign(app: App, resources: Resource[], o: MedicationRequest): Promise<MedicationRequest> {
  const res = await request(app).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, o)).expect(200);
  return res.body.systemActions[0].resource as MedicationRequest;
}

async function draftFor(app: App, resources: Resource[], signed: MedicationRequest): Promise<QuestionnaireResponse> {
  const pkg = await request(app)
    .post('/fhir/Questionnaire/$questionnaire-package')
    .set('Content-Type', FHIR)
    .send(JSON.stringify({ resourceType: 'Parameters', meta: { profile: [DTR_22] }, parameter: [{ name: 'coverage', resource: resources.find((r) => r.resourceType === 'Coverage') }, { name: 'order', resource: signed }] }))
    .expect(200);
  const bundle = pkg.body.parameter.find((p: { name: string }) => p.name === 'packagebundle' || p.name === 'PackageBundle').resource as Bundle;
  return bundle.entry!.find((e) => e.resource?.resourceType === 'QuestionnaireResponse')!.resource as QuestionnaireResponse;
}

function answerOf(qr: QuestionnaireResponse, linkId: string): QuestionnaireResponseItem['answer'] {
  const walk = (items: QuestionnaireResponseItem[] | undefined): QuestionnaireResponseItem | undefined => {
    for (const i of items ?? []) {
      if (i.linkId === linkId) return i;
      const inner = walk(i.item);
      if (inner) return inner;
    }
    return undefined;
  };
  return walk(qr.item)?.answer;
}

async function complete(app: App, qr: QuestionnaireResponse, answers: Record<string, QuestionnaireResponseItem['answer']>): Promise<QuestionnaireResponse> {
  const completed: QuestionnaireResponse = { ...withAnswers(qr, answers), status: 'completed' };
  return (await request(app).post('/fhir/QuestionnaireResponse').set('Content-Type', FHIR).send(JSON.stringify(completed)).expect(201)).body as QuestionnaireResponse;
}

/** The order's record: what the completed form decided and the period of the approval it issued (design.md §8). */
const KEY = { payer: 'ohsu', patientId: STORY, orderRef: 'MedicationRequest/ord-consolidation', drug: 'blinatumomab' };

describe("the earlier course's indication of a later MRD+ cycle (OHSU HEALTHSERVICES-0382 I)", () => {
  it('is pre-filled MRD-positive from CR1 with MRD 0.4 % before the course, and the cycle is approved to the course\'s 24 weeks', async () => {
    const { app, storage } = buildApp({ today: '2026-12-07' });
    const resources = record(true);
    const signed = await sign(app, resources, order());
    const assertion = await storage.getAssertion(sub(coverageInfo(signed), 'coverage-assertion-id')!.valueString!);
    expect(assertion?.missingFacts).not.toContain('earlierCourseIndication');

    const draft = await draftFor(app, resources, signed);
    expect(answerOf(draft, 'earlier-course-indication')?.[0]?.valueCoding?.code).toBe('mrd-positive');
    expect(answerOf(draft, 'course-first-cycle-start')?.[0]?.valueDate).toBe('2026-10-01');

    const done = await complete(app, draft, { 'no-live-vaccine-on-therapy': [{ valueBoolean: true }] });
    expect(sub(coverageInfo(done), 'pa-needed')?.valueCode).toBe('satisfied');
    // 24 weeks from the course's first cycle (2026-10-01), not from this order (2026-12-10: to 2027-05-26).
    const approval = (await storage.getOrderRecord(KEY))?.authorization;
    expect({ start: approval?.start, end: approval?.end }).toEqual({ start: '2026-12-10', end: '2027-03-17' });
  });

  it('is asked when the record shows CR1 and MRD only after the course began: signing and the form completed without it approve nothing', async () => {
    const { app, storage } = buildApp({ today: '2026-12-07' });
    const resources = record(false);
    const signed = await sign(app, resources, order());
    expect(sub(coverageInfo(signed), 'pa-needed')?.valueCode).toBe('auth-needed');
    const assertion = await storage.getAssertion(sub(coverageInfo(signed), 'coverage-assertion-id')!.valueString!);
    expect(assertion?.missingFacts).toContain('earlierCourseIndication');

    const draft = await draftFor(app, resources, signed);
    expect(answerOf(draft, 'earlier-course-indication')).toBeUndefined();

    const without = await complete(app, draft, { 'no-live-vaccine-on-therapy': [{ valueBoolean: true }] });
    expect(sub(coverageInfo(without), 'pa-needed')?.valueCode).toBe('auth-needed');
    expect((await storage.getOrderRecord(KEY))?.authorization).toBeUndefined();

    const answered = await complete(app, draft, {
      'no-live-vaccine-on-therapy': [{ valueBoolean: true }],
      'earlier-course-indication': [{ valueCoding: { system: EV, code: 'mrd-positive' } }],
    });
    expect(sub(coverageInfo(answered), 'pa-needed')?.valueCode).toBe('satisfied');
    const approval = (await storage.getOrderRecord(KEY))?.authorization;
    expect({ start: approval?.start, end: approval?.end }).toEqual({ start: '2026-12-10', end: '2027-03-17' });
  });
});
