import type { Bundle, Extension, MedicationRequest, QuestionnaireResponse } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { COVERAGE_INFO_URL } from '../../src/coverage/coverage-information.js';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { expectValidHookResponse } from '../helpers/response-checks.js';
import { storyOrder, storyResources } from '../helpers/stories.js';
import { claimResponseOf, inquiryParameters, reviewActions, storyBundle } from '../pas/pas-fixtures.js';

const SIGN = '/cds-services/priorpath-order-sign';
const X12 = 'https://codesystem.x12.org/005010/306';
const REVIEW_TOKEN = 'review-token-for-one-decision-test';
const STORY = 'centene-missing-mrd';
const sub = (ext: Extension, url: string) => ext.extension!.find((e) => e.url === url);

describe('one decision per order: CRD, PAS, the reviewer and DTR share the order record', () => {
  it('sign → PAS pended → duplicates collapse → reviewer approves → re-sign satisfied with the same number → $inquire A1', async () => {
    const { app, storage } = buildApp({ env: { REVIEW_TOKEN }, today: '2026-11-23' });
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

    // 4. The reviewer approves: the decision is the order's.
    const decided = await review()
      .post(`/${pended.id}/decision`, { decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: 'MRD 0.4 % on the attached flow report' })
      .expect(200);
    const number: string = decided.body.preAuthRef;
    expect(number).toMatch(/^PA-CENTENE-/);
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
