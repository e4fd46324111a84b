/**
 * A `coverage-assertion-id` speaks only for the patient CRD recorded it for (DTR §"Retrieving Questionnaire
 * Packages": the `context` links DTR to the CRD decision; design.md §7). A stale launch context, or an order copied
 * with another chart's coverage-information, must neither pre-fill this patient's form with the other patient's
 * chart nor stand in for this patient's answers when the response is sent to the payer.
 */
import type { Bundle, Coverage, Extension, MedicationRequest, Parameters, QuestionnaireResponse, QuestionnaireResponseItem } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';
import { bareAdaptiveResponse } from './helpers.js';

const FHIR = 'application/fhir+json';
const COVERAGE_INFO = 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information';
// Two Centene patients: one whose chart satisfies the policy at signing, one whose MRD result is missing.
const SATISFIED = 'centene-mrd-positive';
const MISSING_MRD = 'centene-missing-mrd';

type App = ReturnType<typeof buildApp>['app'];

const answered = (items: QuestionnaireResponseItem[] | undefined): QuestionnaireResponseItem[] =>
  (items ?? []).flatMap((i) => [...(i.answer?.length ? [i] : []), ...answered(i.item)]);
const sub = (ext: Extension | undefined, url: string) => ext?.extension?.find((e) => e.url === url);

async function sign(app: App, story: string): Promise<{ order: MedicationRequest; info: Extension; coverage: Coverage; birthDate: string }> {
  const resources = storyResources(story);
  const res = await request(app).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, storyOrder(story, resources))).expect(200);
  const order = res.body.systemActions[0].resource as MedicationRequest;
  const info = order.extension!.find((e) => e.url === COVERAGE_INFO)!;
  const patient = resources.find((r) => r.resourceType === 'Patient') as { birthDate: string };
  return { order, info, coverage: resources.find((r) => r.resourceType === 'Coverage') as Coverage, birthDate: patient.birthDate };
}

async function packageResponse(app: App, parameter: Parameters['parameter']): Promise<{ qr: QuestionnaireResponse; outcome?: string[] }> {
  const res = await request(app)
    .post('/fhir/Questionnaire/$questionnaire-package')
    .set('Content-Type', FHIR)
    .send(JSON.stringify({ resourceType: 'Parameters', parameter }))
    .expect(200);
  const out = res.body as Parameters;
  const bundle = out.parameter!.find((p) => p.name === 'PackageBundle')!.resource as Bundle;
  const qr = bundle.entry!.find((e) => e.resource?.resourceType === 'QuestionnaireResponse')!.resource as QuestionnaireResponse;
  const outcome = out.parameter!.find((p) => p.name === 'operationOutcome')?.resource as { issue: { diagnostics: string }[] } | undefined;
  return { qr, outcome: outcome?.issue.map((i) => i.diagnostics) };
}

describe('$questionnaire-package with a coverage-assertion-id of another patient', () => {
  it('pre-fills nothing from the other chart, and says why', async () => {
    const { app } = buildApp();
    const a = await sign(app, SATISFIED);
    const b = await sign(app, MISSING_MRD);
    expect(a.birthDate).not.toBe(b.birthDate);

    // B's own order and context: B's chart pre-fills B's form (the birth date among the answers).
    const own = await packageResponse(app, [
      { name: 'coverage', resource: b.coverage },
      { name: 'order', resource: b.order },
      { name: 'context', valueString: sub(b.info, 'coverage-assertion-id')!.valueString },
    ]);
    expect(answered(own.qr.item).find((i) => i.linkId === 'birth-date')?.answer?.[0].valueDate).toBe(b.birthDate);

    // B's coverage and order, but A's context: as a stale launch would send it.
    const aId = sub(a.info, 'coverage-assertion-id')!.valueString!;
    const stale = await packageResponse(app, [
      { name: 'coverage', resource: b.coverage },
      { name: 'order', resource: storyOrder(MISSING_MRD) },
      { name: 'context', valueString: aId },
    ]);
    expect(stale.qr.subject?.reference).toBe(`Patient/${MISSING_MRD}`);
    // Only the order start (and the start it states), read from B's own order (the request's), not from A's chart.
    expect(answered(stale.qr.item).map((i) => i.linkId), 'no answer read from the other patient').toEqual(['order-date', 'order-start']);
    expect(stale.outcome?.join(' ')).toContain(aId);

    // B's order carrying A's coverage-information (an order copied from the other chart).
    const copied: MedicationRequest = { ...storyOrder(MISSING_MRD), extension: [...(storyOrder(MISSING_MRD).extension ?? []), a.info] };
    const fromOrder = await packageResponse(app, [
      { name: 'coverage', resource: b.coverage },
      { name: 'order', resource: copied },
    ]);
    // Only B's own order start (and the start it states), from B's order.
    expect(answered(fromOrder.qr.item).map((i) => i.linkId)).toEqual(['order-date', 'order-start']);

    // A's order (with A's coverage-information) beside B's Coverage: the response would be about B, so A's chart stays out.
    const mixed = await packageResponse(app, [
      { name: 'coverage', resource: b.coverage },
      { name: 'order', resource: a.order },
      { name: 'context', valueString: aId },
    ]);
    expect(mixed.qr.subject?.reference).toBe(`Patient/${MISSING_MRD}`);
    expect(answered(mixed.qr.item)).toEqual([]);
  });
});

describe('POST /fhir/QuestionnaireResponse naming a coverage-assertion-id of another patient', () => {
  const response = (patient: string, info: Extension): QuestionnaireResponse => ({
    resourceType: 'QuestionnaireResponse',
    status: 'completed',
    questionnaire: 'https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11',
    subject: { reference: `Patient/${patient}` },
    extension: [
      { url: 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/qr-coverage', valueReference: { reference: `Coverage/${patient}-coverage` } },
      { url: 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/qr-context', valueReference: { reference: `MedicationRequest/${patient}-order` } },
      info,
    ],
    item: [{ linkId: 'group-requirements', item: [{ linkId: 'prescriber-specialist', answer: [{ valueBoolean: true }] }] }],
  });

  it('refuses it (400) for a patient whose facts the payer never saw: no decision, no authorization number on the other chart', async () => {
    const { app } = buildApp();
    const a = await sign(app, SATISFIED);
    expect(sub(a.info, 'pa-needed')?.valueCode).toBe('satisfied');

    // The same response for A itself: CRD's facts stand in for what it leaves unanswered (DTR 2.2 coverage-information).
    const forA = await request(app).post('/fhir/QuestionnaireResponse').set('Content-Type', FHIR).send(JSON.stringify(response(SATISFIED, a.info))).expect(201);
    expect(sub((forA.body as QuestionnaireResponse).extension!.find((e) => e.url === COVERAGE_INFO), 'pa-needed')?.valueCode).toBe('satisfied');

    // Refused, not decided without A's facts (design.md §4 "One patient"; QA s40 F10): a response naming A's assertion
    // was answered on A's order, or names the wrong subject; either way it decides nothing for B.
    const forB = await request(app).post('/fhir/QuestionnaireResponse').set('Content-Type', FHIR).send(JSON.stringify(response(MISSING_MRD, a.info))).expect(400);
    expect(forB.body.issue[0].diagnostics).toContain(sub(a.info, 'coverage-assertion-id')!.valueString!);
    expect(forB.body.issue[0].expression).toEqual(['QuestionnaireResponse.extension']);

    // $next-question grows the form toward the same decision: refused alike, before any question (review s41 F2).
    const { questionnaire, contained } = bareAdaptiveResponse('https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11');
    const adaptive: QuestionnaireResponse = { ...response(MISSING_MRD, a.info), status: 'in-progress', questionnaire, contained };
    const next = await request(app).post('/fhir/Questionnaire/$next-question').set('Content-Type', FHIR).send(JSON.stringify(adaptive)).expect(400);
    expect(next.body.issue[0].diagnostics).toContain(sub(a.info, 'coverage-assertion-id')!.valueString!);
  });

  it("chooses no form by the other chart's coverage-information: another payer's form is not offered for this member", async () => {
    const { app } = buildApp();
    // A Centene patient's order, documentation needed: its coverage-information names Centene's Questionnaire.
    const a = await sign(app, MISSING_MRD);
    const named = sub(a.info, 'questionnaire')?.valueCanonical;
    expect(named).toMatch(/\/Questionnaire\/centene-blinatumomab\|/);
    // The order copied into a BCBSNC member's chart, coverage-information and all.
    const bcbsnc = storyResources('bcbsnc-status-unknown');
    const member = bcbsnc.find((r) => r.resourceType === 'Patient')!.id!;
    const copied = { ...a.order, id: 'copied-order', subject: { reference: `Patient/${member}` } };
    const res = await request(app)
      .post('/fhir/Questionnaire/$questionnaire-package')
      .set('Content-Type', FHIR)
      .send(JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'coverage', resource: bcbsnc.find((r) => r.resourceType === 'Coverage') }, { name: 'order', resource: copied }] }))
      .expect(200);
    const out = res.body as Parameters;
    const forms = out
      .parameter!.filter((p) => p.name === 'PackageBundle')
      .map((p) => ((p.resource as Bundle).entry![0].resource as { url: string }).url);
    // The member's own payer's form, for the drug ordered; the other patient's assertion chooses nothing, as it says.
    expect(forms).toEqual(['https://priorpath.dev/fhir/Questionnaire/bcbsnc-blinatumomab']);
    const said = (out.parameter!.find((p) => p.name === 'operationOutcome')?.resource as { issue: { diagnostics: string }[] }).issue.map((i) => i.diagnostics);
    expect(said.join('\n')).toMatch(/recorded for another patient than the one this request names: it neither chooses nor pre-fills a form/);
  });
});

describe('POST /fhir/QuestionnaireResponse: a completed response decides only for the patient its subject names (QA s40 F10)', () => {
  // B's own order, its MRD result documented in the form (0.4 %: meets Centene CP.PHAR.312 for B-ALL in remission).
  const documented = (info: Extension, subject: QuestionnaireResponse['subject']): QuestionnaireResponse => ({
    resourceType: 'QuestionnaireResponse',
    status: 'completed',
    questionnaire: 'https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11',
    ...(subject ? { subject } : {}),
    authored: '2026-11-23T09:00:00Z',
    extension: [
      { url: 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/qr-coverage', valueReference: { reference: `Coverage/${MISSING_MRD}-coverage` } },
      { url: 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/qr-context', valueReference: { reference: `MedicationRequest/${MISSING_MRD}-order` } },
      info,
    ],
    item: [{ linkId: 'mrd-percent', answer: [{ valueDecimal: 0.4 }] }],
  });
  const post = (app: App, qr: QuestionnaireResponse) => request(app).post('/fhir/QuestionnaireResponse').set('Content-Type', FHIR).send(JSON.stringify(qr));

  it("refuses (400) one without subject, and one whose subject is another patient than its order's CRD assertion; the patient's own is approved", async () => {
    const { app } = buildApp();
    const b = await sign(app, MISSING_MRD);
    expect(sub(b.info, 'pa-needed')?.valueCode).toBe('auth-needed');

    const noSubject = await post(app, documented(b.info, undefined)).expect(400);
    expect(noSubject.body.issue[0].expression).toEqual(['QuestionnaireResponse.subject']);

    const otherSubject = await post(app, documented(b.info, { reference: 'Patient/centene-mrd-positive' })).expect(400);
    expect(otherSubject.body.issue[0].diagnostics).toContain(sub(b.info, 'coverage-assertion-id')!.valueString!);

    // Neither left a number behind: the order's own patient, documented, is approved, and signing again finds it.
    const own = await post(app, documented(b.info, { reference: `Patient/${MISSING_MRD}` })).expect(201);
    const info = (own.body as QuestionnaireResponse).extension!.find((e) => e.url === COVERAGE_INFO);
    expect(sub(info, 'pa-needed')?.valueCode).toBe('satisfied');
    const number = sub(info, 'satisfied-pa-id')?.valueString;
    expect(number).toMatch(/^PA-CENTENE-/);
    const again = await sign(app, MISSING_MRD);
    expect(sub(again.info, 'satisfied-pa-id')?.valueString).toBe(number);
  });
});

describe("POST /fhir/QuestionnaireResponse without a coverage-assertion-id: its subject must be its order's patient (QA s40 F10)", () => {
  // No coverage-information: a DTR 2.0.1 client's response, or one stripped of it. Only qr-context ties it to the order.
  const documented = (patient: string, orderRef: string): QuestionnaireResponse => ({
    resourceType: 'QuestionnaireResponse',
    status: 'completed',
    questionnaire: 'https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11',
    subject: { reference: `Patient/${patient}` },
    authored: '2026-11-23T09:00:00Z',
    extension: [
      { url: 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/qr-coverage', valueReference: { reference: `Coverage/${MISSING_MRD}-coverage` } },
      { url: 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/qr-context', valueReference: { reference: orderRef } },
    ],
    item: [{ linkId: 'mrd-percent', answer: [{ valueDecimal: 0.4 }] }],
  });
  const post = (app: App, qr: QuestionnaireResponse) => request(app).post('/fhir/QuestionnaireResponse').set('Content-Type', FHIR).send(JSON.stringify(qr));

  it("refuses (400) one whose subject is not the patient this payer holds its order for, naming the order and the subject; the order's own patient is decided", async () => {
    const { app, storage } = buildApp();
    const b = await sign(app, MISSING_MRD);
    const orderRef = `MedicationRequest/${b.order.id}`;

    const refused = await post(app, documented(SATISFIED, orderRef)).expect(400);
    expect(refused.body.resourceType).toBe('OperationOutcome');
    expect(refused.body.issue[0].diagnostics).toContain(orderRef);
    expect(refused.body.issue[0].diagnostics).toContain(`Patient/${SATISFIED}`);
    expect(refused.body.issue[0].diagnostics, 'the other patient is not named').not.toContain(`Patient/${MISSING_MRD}`);
    expect(refused.body.issue[0].expression[0]).toBe('QuestionnaireResponse.subject');
    // Nothing was decided for the subject on that order: the order is still held for its own patient only.
    expect(await storage.orderPatientIds({ payer: 'centene', orderRef, drug: 'blinatumomab' })).toEqual([MISSING_MRD]);

    const own = await post(app, documented(MISSING_MRD, orderRef)).expect(201);
    expect(sub((own.body as QuestionnaireResponse).extension!.find((e) => e.url === COVERAGE_INFO), 'pa-needed')?.valueCode).toBe('satisfied');
  });

  it('decides as before for an order this payer holds no record of: nothing to compare with', async () => {
    const { app } = buildApp();
    await post(app, documented(SATISFIED, 'MedicationRequest/never-signed-order')).expect(201);
  });
});
