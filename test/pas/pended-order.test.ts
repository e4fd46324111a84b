/**
 * A PAS request naming an order that another stored request already pends (design.md §8 "One authorization per
 * order"): the order stays that request's, and the new request is answered (pended with it), never refused.
 */
import type { Bundle, Claim, MedicationRequest } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { claimResponseOf, inquiryParameters, reviewActions, storyBundle } from './pas-fixtures.js';

const X12 = 'https://codesystem.x12.org/005010/306';
const REVIEW_TOKEN = 'review-token-for-pended-order';
const STORY = 'centene-missing-mrd';
const REQUESTED_SERVICE = 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-requestedService';

/** The story's request with a second item: the same drug for another order of the patient (its own MedicationRequest). */
function withSecondOrder(bundle: Bundle, orderId: string): Bundle {
  const claim = bundle.entry![0].resource as Claim;
  const order = bundle.entry!.find((e) => e.resource?.resourceType === 'MedicationRequest')!.resource as MedicationRequest;
  claim.item!.push({ ...claim.item![0], sequence: 2, extension: [{ url: REQUESTED_SERVICE, valueReference: { reference: `MedicationRequest/${orderId}` } }] });
  bundle.entry!.push({ fullUrl: `https://ehr.example.org/fhir/MedicationRequest/${orderId}`, resource: { ...order, id: orderId } });
  return bundle;
}

describe('Claim/$submit for an order another request already pends', () => {
  it('answers a two-item request whose first order is pended elsewhere (was a 503 "send it again" that never passed): both pended, the first takes the other request\'s decision', async () => {
    const { app } = buildApp({ today: '2026-11-23', env: { REVIEW_TOKEN } });
    const submit = (b: Bundle) => request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(JSON.stringify(b));
    const first = claimResponseOf((await submit(storyBundle(STORY, { orderId: 'order-x' })).expect(200)).body);
    expect(reviewActions(first)).toEqual([`${X12}#A4`]);

    const both = withSecondOrder(storyBundle(STORY, { orderId: 'order-x' }), 'order-y');
    const res = await submit(both);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const second = claimResponseOf(res.body);
    expect(second.id).not.toBe(first.id);
    expect(reviewActions(second)).toEqual([`${X12}#A4`, `${X12}#A4`]);

    // The reviewer approves the first request: its order's decision is the second request's first item's.
    const decided = await request(app)
      .post(`/review/${first.id}/decision`)
      .set('Authorization', `Bearer ${REVIEW_TOKEN}`)
      .send({ decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: 'MRD 0.4 % on the attached flow report' })
      .expect(200);
    const inq = await request(app).post('/fhir/Claim/$inquire').send(inquiryParameters({ identifier: both.identifier as { system: string; value: string } })).expect(200);
    const now = claimResponseOf(inq.body.parameter[0].resource);
    expect(reviewActions(now)).toEqual([`${X12}#A1`, `${X12}#A4`]);
    expect(now.preAuthRef).toBe(decided.body.preAuthRef);
  });
});
