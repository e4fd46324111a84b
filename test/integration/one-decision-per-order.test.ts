import type { Bundle, ClaimResponse, Extension, MedicationRequest, Parameters, QuestionnaireResponse } from '@medplum/fhirtypes';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { COVERAGE_INFO_URL } from '../../src/coverage/coverage-information.js';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { expectValidHookResponse } from '../helpers/response-checks.js';
import { storyOrder, storyResources } from '../helpers/stories.js';
import { claimResponseOf, inquiryParameters, pasSubscription, reviewActions, storyBundle } from '../pas/pas-fixtures.js';
import { closeReceivers, notificationReceiver, until } from '../helpers/notification-receiver.js';

const SIGN = '/cds-services/priorpath-order-sign';
const X12 = 'https://codesystem.x12.org/005010/306';
const REVIEW_TOKEN = 'review-token-for-one-decision-test';
const STORY = 'centene-missing-mrd';
const sub = (ext: Extension, url: string) => ext.extension!.find((e) => e.url === url);

afterEach(closeReceivers);


const statusOf = (b: Bundle) => b.entry![0].resource as Parameters;
const param = (p: Parameters, name: string) => p.parameter!.find((x) => x.name === name);

describe('one decision per order: CRD, PAS, the reviewer and DTR share the order record', () => {
  it('sign → PAS pended → duplicates collapse → reviewer approves → notification → re-sign satisfied with the same number → $inquire A1', async () => {
    const { app, storage } = buildApp({ env: { REVIEW_TOKEN }, today: '2026-11-23' });
    // 0. The submitting system subscribes to decisions on its member's requests; the handshake arrives.
    const endpoint = await notificationReceiver();
    const created = await request(app).post('/fhir/Subscription').send(pasSubscription(endpoint.url, 'U5521039476')).expect(201);
    const handshake = await until('the handshake', () => endpoint.received[0]);
    expect(handshake.type).toBe('history');
    expect(param(statusOf(handshake), 'type')?.valueCode).toBe('handshake');
    await until('the subscription to become active', () => (storage.subscriptions.get(created.body.id)?.status === 'active' ? true : undefined));
    expect((await request(app).get(`/fhir/Subscription/${created.body.id}`).expect(200)).body.status).toBe('active');
    const review = () => ({
      get: (path: string) => request(app).get(`/review${path}`).set('Authorization', `Bearer ${REVIEW_TOKEN}`),
      post: (path: string, body: object) => request(app).post(`/review${path}`).set('Authorization', `Bearer ${REVIEW_TOKEN}`).send(body),
    });
    const submit = (b: Bundle) => request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(b);
    const resources = storyResources(STORY);
    const order = storyOrder(STORY, resources);
    const patientId = resources.find((r) => r.resourceType === 'Patient')!.id!;
    const key = { payer: 'centene', patientId, orderRef: `MedicationRequest/${order.id}`, drug: 'blinatumomab' };

    // 1. Signing: the MRD result is missing, so prior authorization and documentation are needed.
    const signed = await request(app).post(SIGN).send(orderSignRequest(resources, order)).expect(200);
    const [signedExt] = expectValidHookResponse(signed.body, 'order-sign');
    expect(sub(signedExt, 'pa-needed')!.valueCode).toBe('auth-needed');
    expect((await storage.getOrderRecord(key))?.state).toBe('auth-needed');

    // 2. PAS without the documentation: pended for clinical review.
    const first = await submit(storyBundle(STORY)).expect(200);
    const pended = claimResponseOf(first.body);
    expect(reviewActions(pended)).toEqual([`${X12}#A4`]);

    // 3. A double click and two more resubmissions under new Bundle identifiers: still one pended request.
    const dupes = await Promise.all([storyBundle(STORY), storyBundle(STORY), storyBundle(STORY)].map((b) => submit(b)));
    for (const d of dupes) {
      expect(d.status).toBe(200);
      expect(claimResponseOf(d.body).id).toBe(pended.id);
    }
    const queue = await review().get('/pended').expect(200);
    const forOrder = queue.body.pended.filter((p: { id: string }) => p.id === pended.id);
    expect(queue.body.pended).toHaveLength(1);
    expect(forOrder).toHaveLength(1);
    expect(storage.submissions.size).toBe(1);
    expect((await storage.getOrderRecord(key))?.state).toBe('pended');
    // Signing while it waits says so in words: "pended for review since 5 December 2026", not an ISO date, and not
    // "clinical review" for a request that may wait for documentation (screens review F3).
    const waiting = JSON.stringify((await request(app).post(SIGN).send(orderSignRequest(resources, order)).expect(200)).body);
    expect(waiting).toMatch(/A prior authorization request for this order is pended for review since \d{1,2} (January|February|March|April|May|June|July|August|September|October|November|December) \d{4}\./);
    // And where what the clinician sends next goes: answers that meet the policy settle it; the rest only with the request.
    expect(waiting).toContain('other answers and documents reach the reviewer only when sent as an update of that request');

    // 4. The reviewer approves: the decision is the order's.
    const decided = await review()
      .post(`/${pended.id}/decision`, { decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: 'MRD 0.4 % on the attached flow report' })
      .expect(200);
    const number: string = decided.body.preAuthRef;
    expect(number).toMatch(/^PA-CENTENE-/);

    // The subscriber hears of it: a notification whose focus is the PAS response Bundle with the approval.
    const note = await until('the event notification', () => endpoint.received.find((b) => param(statusOf(b), 'type')?.valueCode === 'event-notification'));
    const event = param(statusOf(note), 'notification-event')!;
    expect(event.part!.find((p) => p.name === 'event-number')?.valueString).toBe('1');
    const focus = event.part!.find((p) => p.name === 'focus')!.valueReference!.reference;
    const focused = note.entry!.find((e) => e.fullUrl === focus)!.resource as Bundle;
    expect(focused.type).toBe('collection');
    const notified = focused.entry![0].resource as ClaimResponse;
    expect(notified.id).toBe(pended.id);
    expect(reviewActions(notified)).toEqual([`${X12}#A1`]);
    expect(notified.preAuthRef).toBe(number);
    const record = await storage.getOrderRecord(key);
    expect(record).toMatchObject({ state: 'approved', authorization: { number } });
    expect(record!.history.map((h) => [h.source, h.state])).toEqual([
      ['crd', 'auth-needed'],
      ['pas', 'pended'],
      ['review', 'approved'],
    ]);
    expect(record!.history[2]).toMatchObject({ actor: 'Dr. R. Okafor (medical director)', reason: 'MRD 0.4 % on the attached flow report', authorizationNumber: number });

    // 5. Signing the same order again: satisfied, with the reviewer's number and period, and no documentation card.
    const again = await request(app).post(SIGN).send(orderSignRequest(resources, order)).expect(200);
    const [ext] = expectValidHookResponse(again.body, 'order-sign');
    expect(sub(ext, 'pa-needed')!.valueCode).toBe('satisfied');
    expect(sub(ext, 'satisfied-pa-id')!.valueString).toBe(number);
    expect(JSON.stringify(again.body.cards)).not.toMatch(/documentation required/);

    // 6. $inquire by the first request's identifier and by a collapsed duplicate's: A1 with that number.
    for (const b of [first, dupes[0]]) {
      const sent = b.request as unknown as { _data: Bundle };
      const inq = await request(app).post('/fhir/Claim/$inquire').send(inquiryParameters({ identifier: sent._data.identifier as { system: string; value: string } })).expect(200);
      expect(inq.body.parameter).toHaveLength(1);
      const now = claimResponseOf(inq.body.parameter[0].resource);
      expect(reviewActions(now)).toEqual([`${X12}#A1`]);
      expect(now.preAuthRef).toBe(number);
    }

    // 7. A new PAS request for the order gets the decision, not a second number.
    const later = await submit(storyBundle(STORY)).expect(200);
    expect(reviewActions(claimResponseOf(later.body))).toEqual([`${X12}#A1`]);
    expect(claimResponseOf(later.body).preAuthRef).toBe(number);
    expect([...storage.authorizations.values()].filter((a) => a.payer === 'centene')).toHaveLength(1);

    // 8. DTR's determination for the order shows the decision too, even with the MRD question still open.
    const coverage = resources.find((r) => r.resourceType === 'Coverage')!;
    const signedOrder: MedicationRequest = signed.body.systemActions[0].resource;
    const pkg = await request(app)
      .post('/fhir/Questionnaire/$questionnaire-package')
      .send({ resourceType: 'Parameters', parameter: [{ name: 'coverage', resource: coverage }, { name: 'order', resource: signedOrder }] })
      .expect(200);
    const bundle = pkg.body.parameter.find((p: { name: string }) => /packagebundle/i.test(p.name)).resource as Bundle;
    const qr = bundle.entry!.map((e) => e.resource).find((r) => r?.resourceType === 'QuestionnaireResponse') as QuestionnaireResponse;
    qr.status = 'completed';
    const saved = await request(app).post('/fhir/QuestionnaireResponse').send(qr).expect(201);
    const dtrExt = (saved.body.extension as Extension[]).find((e) => e.url === COVERAGE_INFO_URL)!;
    expect(sub(dtrExt, 'pa-needed')!.valueCode).toBe('satisfied');
    expect(sub(dtrExt, 'satisfied-pa-id')!.valueString).toBe(number);
  });

  it('DTR finds the order\'s record whichever way the response spells its references (absolute, versioned, an Encounter beside the order)', async () => {
    // An approval at signing, then a DTR response whose subject and qr-context are absolute, versioned EHR URLs (valid
    // FHIR References, as an EHR that stores the response may write them): the same order, the same decision.
    const story = 'centene-mrd-positive';
    const { app, storage } = buildApp({ today: '2026-11-23' });
    const resources = storyResources(story);
    const order = storyOrder(story, resources);
    const patientId = resources.find((r) => r.resourceType === 'Patient')!.id!;
    const coverage = resources.find((r) => r.resourceType === 'Coverage')!;
    const signed = await request(app).post(SIGN).send(orderSignRequest(resources, order)).expect(200);
    const [signedExt] = expectValidHookResponse(signed.body, 'order-sign');
    expect(sub(signedExt, 'pa-needed')!.valueCode).toBe('satisfied');
    const number = sub(signedExt, 'satisfied-pa-id')!.valueString;
    expect(number).toMatch(/^PA-CENTENE-/);

    const pkg = await request(app)
      .post('/fhir/Questionnaire/$questionnaire-package')
      .send({ resourceType: 'Parameters', parameter: [{ name: 'coverage', resource: coverage }, { name: 'order', resource: order }] })
      .expect(200);
    const bundle = pkg.body.parameter.find((p: { name: string }) => p.name === 'PackageBundle').resource as Bundle;
    const draft = bundle.entry!.map((e) => e.resource).find((r) => r?.resourceType === 'QuestionnaireResponse') as QuestionnaireResponse;
    const ehr = 'https://ehr.example.org/fhir';
    const qr: QuestionnaireResponse = {
      ...draft,
      status: 'completed',
      subject: { reference: `${ehr}/Patient/${patientId}` },
      extension: [
        // The encounter of the visit as context too, before the order (DTR 2.0.1 qr-context: a Request or Encounter).
        { url: 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/qr-context', valueReference: { reference: `${ehr}/Encounter/${story}-visit` } },
        ...draft.extension!.map((e) =>
          e.valueReference?.reference ? { ...e, valueReference: { reference: `${ehr}/${e.valueReference.reference}/_history/3` } } : e,
        ),
      ],
    };
    const saved = await request(app).post('/fhir/QuestionnaireResponse').send(qr).expect(201);
    const dtrExt = (saved.body.extension as Extension[]).find((e) => e.url === COVERAGE_INFO_URL)!;
    expect(sub(dtrExt, 'pa-needed')!.valueCode).toBe('satisfied');
    expect(sub(dtrExt, 'satisfied-pa-id')!.valueString).toBe(number);
    const record = await storage.getOrderRecord({ payer: 'centene', patientId, orderRef: `MedicationRequest/${order.id}`, drug: 'blinatumomab' });
    expect(record).toMatchObject({ state: 'approved', authorization: { number } });
  });

  it('a pended request whose order is approved at signing meanwhile takes that approval: notification, $inquire, queue, reviewer', async () => {
    // PAS pends the request (the Bundle lacks the MRD result); the chart then holds it and signing approves the order
    // in real time. The order has one decision, so the pended request is approved with the signing's number.
    const story = 'centene-mrd-positive';
    const { app, storage } = buildApp({ env: { REVIEW_TOKEN }, today: '2026-11-23' });
    const resources = storyResources(story);
    const order = storyOrder(story, resources);
    const memberId = (resources.find((r) => r.resourceType === 'Coverage') as { subscriberId?: string }).subscriberId!;
    const endpoint = await notificationReceiver();
    await request(app).post('/fhir/Subscription').send(pasSubscription(endpoint.url, memberId)).expect(201);
    await until('the handshake', () => endpoint.received[0]);

    const sent = storyBundle(story, { remove: [`${story}-mrd`] });
    const pended = claimResponseOf((await request(app).post('/fhir/Claim/$submit').send(sent).expect(200)).body);
    expect(reviewActions(pended)).toEqual([`${X12}#A4`]);

    const signed = await request(app).post(SIGN).send(orderSignRequest(resources, order)).expect(200);
    const [ext] = expectValidHookResponse(signed.body, 'order-sign');
    expect(sub(ext, 'pa-needed')!.valueCode).toBe('satisfied');
    const number = sub(ext, 'satisfied-pa-id')!.valueString!;

    // The subscriber hears of it (the sweep main.ts runs), with the order's number.
    const notifier = app.locals.subscriptionNotifier as { settleDecidedElsewhere(): Promise<number> };
    expect(await notifier.settleDecidedElsewhere()).toBe(1);
    const note = await until('the event notification', () => endpoint.received.find((b) => param(statusOf(b), 'type')?.valueCode === 'event-notification'));
    const focus = param(statusOf(note), 'notification-event')!.part!.find((p) => p.name === 'focus')!.valueReference!.reference;
    const notified = (note.entry!.find((e) => e.fullUrl === focus)!.resource as Bundle).entry![0].resource as ClaimResponse;
    expect(reviewActions(notified)).toEqual([`${X12}#A1`]);
    expect(notified.preAuthRef).toBe(number);

    // $inquire and a resend of the same Bundle answer it; the reviewer's queue no longer holds it; a decision is a 409.
    const inq = await request(app).post('/fhir/Claim/$inquire').send(inquiryParameters({ identifier: sent.identifier as { system: string; value: string } })).expect(200);
    expect(claimResponseOf(inq.body.parameter[0].resource).preAuthRef).toBe(number);
    const again = claimResponseOf((await request(app).post('/fhir/Claim/$submit').send(sent).expect(200)).body);
    expect([again.id, again.preAuthRef, reviewActions(again)]).toEqual([pended.id, number, [`${X12}#A1`]]);
    const queue = await request(app).get('/review/pended').set('Authorization', `Bearer ${REVIEW_TOKEN}`).expect(200);
    expect(queue.body.pended.map((p: { id: string }) => p.id)).not.toContain(pended.id);
    await request(app)
      .post(`/review/${pended.id}/decision`)
      .set('Authorization', `Bearer ${REVIEW_TOKEN}`)
      .send({ decision: 'deny', reviewer: 'Dr. L. Chen', reason: 'late' })
      .expect(409);
    expect(await storage.getOrderRecord({ payer: 'centene', patientId: order.subject!.reference!.split('/')[1], orderRef: `MedicationRequest/${order.id}`, drug: 'blinatumomab' })).toMatchObject({ state: 'approved', authorization: { number } });
  });

  it('a response entered in error decides nothing: DTR answers 422 and PAS does not read its answers', async () => {
    const story = 'centene-missing-mrd';
    const { app, storage } = buildApp({ today: '2026-11-23' });
    const resources = storyResources(story);
    const order = storyOrder(story, resources);
    const patientId = resources.find((r) => r.resourceType === 'Patient')!.id!;
    const key = { payer: 'centene', patientId, orderRef: `MedicationRequest/${order.id}`, drug: 'blinatumomab' };
    const signed = await request(app).post(SIGN).send(orderSignRequest(resources, order)).expect(200);
    const pkg = await request(app)
      .post('/fhir/Questionnaire/$questionnaire-package')
      .send({ resourceType: 'Parameters', parameter: [{ name: 'coverage', resource: resources.find((r) => r.resourceType === 'Coverage') }, { name: 'order', resource: signed.body.systemActions[0].resource }] })
      .expect(200);
    const bundle = pkg.body.parameter.find((p: { name: string }) => p.name === 'PackageBundle').resource as Bundle;
    const draft = bundle.entry!.map((e) => e.resource).find((r) => r?.resourceType === 'QuestionnaireResponse') as QuestionnaireResponse;
    // The clinician answers the one open question (MRD 0.52 %): with it the order meets the policy.
    const manual = [{ url: 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/information-origin', extension: [{ url: 'source', valueCode: 'manual' }] }];
    const answered = { ...draft, item: [...(draft.item ?? []), { linkId: 'mrd-percent', answer: [{ valueDecimal: 0.52, extension: manual }] }] };

    const voided = await request(app).post('/fhir/QuestionnaireResponse').send({ ...answered, status: 'entered-in-error' }).expect(422);
    expect(voided.body.resourceType).toBe('OperationOutcome');
    expect(voided.body.issue[0].expression).toEqual(['QuestionnaireResponse.status']);
    expect((await storage.getOrderRecord(key))?.state).toBe('auth-needed');
    // PAS: the same answers in a response entered in error are not evidence, so the request is pended, not certified.
    const sent = storyBundle(story, { answers: { 'mrd-percent': [{ valueDecimal: 0.52 }] } });
    const qrEntry = sent.entry!.find((e) => e.resource?.resourceType === 'QuestionnaireResponse')!;
    (qrEntry.resource as QuestionnaireResponse).status = 'entered-in-error';
    const pas = claimResponseOf((await request(app).post('/fhir/Claim/$submit').send(sent).expect(200)).body);
    expect([reviewActions(pas), pas.preAuthRef]).toEqual([[`${X12}#A4`], undefined]);

    // The same answers, completed: the order is approved.
    const saved = await request(app).post('/fhir/QuestionnaireResponse').send({ ...answered, status: 'completed' }).expect(201);
    const ext = (saved.body.extension as Extension[]).find((e) => e.url === COVERAGE_INFO_URL)!;
    expect(sub(ext, 'pa-needed')!.valueCode).toBe('satisfied');
  });

  it('retries a notification endpoint that fails, with backoff, and loses nothing when another process takes over', async () => {
    const story = 'centene-over-dose';
    const { app, storage } = buildApp({ env: { REVIEW_TOKEN }, today: '2026-11-23' });
    const memberId = (storyBundle(story).entry!.map((e) => e.resource!).find((r) => r.resourceType === 'Coverage') as { subscriberId?: string }).subscriberId;
    const endpoint = await notificationReceiver({ fail: 2 });
    const sub = await request(app).post('/fhir/Subscription').send(pasSubscription(endpoint.url, memberId ?? '')).expect(201);
    const pended = claimResponseOf((await request(app).post('/fhir/Claim/$submit').send(storyBundle(story)).expect(200)).body);
    // The endpoint is down for the handshake's first two attempts; it is retried, not dropped.
    await until('the handshake after two failures', () => endpoint.received[0], 15_000);
    (app.locals.subscriptionNotifier as { stop(): void }).stop();
    await request(app)
      .post(`/review/${pended.id}/decision`)
      .set('Authorization', `Bearer ${REVIEW_TOKEN}`)
      .send({ decision: 'deny', reviewer: 'Dr. L. Chen', reason: 'No guideline support for 56 mcg/day' })
      .expect(200);
    // This process stopped before sending: the event waits in storage, and a new process over it delivers it.
    expect(endpoint.received).toHaveLength(1);
    expect(await storage.pendingPasEvents()).toHaveLength(1);
    const next = buildApp({ env: { REVIEW_TOKEN }, today: '2026-11-23', storage });
    (next.app.locals.subscriptionNotifier as { kick(): void }).kick();
    const note = await until('the event after the take-over', () => endpoint.received.find((b) => param(statusOf(b), 'type')?.valueCode === 'event-notification'));
    expect(param(statusOf(note), 'subscription')?.valueReference?.reference).toMatch(new RegExp(`/Subscription/${sub.body.id}$`));
    expect(JSON.stringify(note)).toContain('No guideline support for 56 mcg/day');
    // The receiver has it before the sender hears the 200: wait for the outbox to mark it delivered.
    await (next.app.locals.subscriptionNotifier as { idle(): Promise<void> }).idle();
    expect(await storage.countUndelivered()).toBe(0);
  });

  it('answers a denied order the same way everywhere: PAS A3 under a new identifier, not covered at signing', async () => {
    const story = 'centene-over-dose';
    const { app, storage } = buildApp({ env: { REVIEW_TOKEN }, today: '2026-11-23' });
    const resources = storyResources(story);
    const order = storyOrder(story, resources);
    const first = await request(app).post('/fhir/Claim/$submit').send(storyBundle(story)).expect(200);
    const pended = claimResponseOf(first.body);
    expect(reviewActions(pended)).toEqual([`${X12}#A4`]);
    await request(app)
      .post(`/review/${pended.id}/decision`)
      .set('Authorization', `Bearer ${REVIEW_TOKEN}`)
      .send({ decision: 'deny', reviewer: 'Dr. L. Chen', reason: 'No guideline support for 56 mcg/day' })
      .expect(200);

    const again = await request(app).post('/fhir/Claim/$submit').send(storyBundle(story)).expect(200);
    const cr = claimResponseOf(again.body);
    expect(reviewActions(cr)).toEqual([`${X12}#A3`]);
    expect(JSON.stringify(cr.processNote)).toContain('No guideline support for 56 mcg/day');
    expect(cr.id).not.toBe(pended.id);

    const signed = await request(app).post(SIGN).send(orderSignRequest(resources, order)).expect(200);
    const [ext] = expectValidHookResponse(signed.body, 'order-sign');
    expect(sub(ext, 'covered')!.valueCode).toBe('not-covered');
    expect(JSON.stringify(ext)).toContain('No guideline support for 56 mcg/day');
    expect(storage.submissions.size).toBe(2);
  });
});
