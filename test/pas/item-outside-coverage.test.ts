/**
 * A PAS item PriorPath cannot decide although the request is well formed (PAS 2.2.1 §"Submitting a Prior
 * Authorization": a 4xx is for a request that cannot be processed; business errors go in `ClaimResponse.error`;
 * docs/design.md §8 "Items that cannot be decided"): an item whose order starts on a day the request's Coverage is not
 * in force on is answered by `itemSequence` in `ClaimResponse.error` (X12 901 code 57, the words, the element), the
 * request's other items are decided and kept, and nothing is certified for it. Before, the whole request was a 400.
 * The story: an MMM member's Ph-positive Blincyto request (MP-RX-FP-14-23), Coverage ending 2026-12-31.
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, Claim, ClaimResponse, MedicationRequest } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { REVIEW_TOKEN, claimResponseOf, inquiryParameters, pasApp, reviewActions, storyBundle } from './pas-fixtures.js';

const X12 = 'https://codesystem.x12.org/005010/306';
const PAS = 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition';
const STORY = 'mmm-ph-positive-tki';

/** The story's request for two orders: its own, and a copy planned to start on `laterStart`. */
function twoOrders(laterStart: string, version?: '2.0.1', story = STORY): { bundle: Bundle; later: string } {
  const first = `order-${randomUUID().slice(0, 8)}`;
  const bundle = storyBundle(story, { code: 'rxnorm', orderId: first });
  for (const e of bundle.entry ?? []) if (e.resource?.resourceType === 'Coverage') e.resource.period = { start: '2026-01-01', end: '2026-12-31' };
  const base = bundle.entry!.find((e) => e.resource?.resourceType === 'MedicationRequest')!.resource as MedicationRequest;
  const later: MedicationRequest = structuredClone(base);
  later.id = `${first}-next`;
  later.dosageInstruction = (later.dosageInstruction ?? [{}]).map((d) => ({ ...d, timing: { ...d.timing, repeat: { ...d.timing?.repeat, boundsPeriod: { start: laterStart } } } }));
  bundle.entry!.push({ fullUrl: `https://ehr.example.org/fhir/MedicationRequest/${later.id}`, resource: later });
  const claim = bundle.entry![0].resource as Claim;
  claim.item!.push({
    ...structuredClone(claim.item![0]),
    sequence: 2,
    extension: [{ url: `${PAS}/extension-requestedService`, valueReference: { reference: `MedicationRequest/${later.id}` } }],
  });
  if (version) bundle.meta = { ...bundle.meta, profile: [`${PAS}/profile-pas-request-bundle|${version}`] };
  return { bundle, later: later.id };
}

const errorsOf = (cr: ClaimResponse) => cr.error ?? [];

describe('PAS: an item the Coverage does not cover on its date', () => {
  it('answers it in ClaimResponse.error by its sequence and decides the other item, which is kept and found again', async () => {
    const storage = new MemoryStorage();
    const { app } = pasApp(storage, { today: '2026-11-23' });
    const { bundle } = twoOrders('2027-01-04');
    const res = await request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(JSON.stringify(bundle));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const cr = claimResponseOf(res.body);
    // The first item is certified as it would be alone; the second has no decision, only its error.
    expect(cr.item?.map((i) => i.itemSequence)).toEqual([1]);
    expect(reviewActions(cr)).toEqual([`${X12}#A1`]);
    expect(cr.outcome).toBe('error');
    const [error] = errorsOf(cr);
    expect(errorsOf(cr)).toHaveLength(1);
    expect(error.itemSequence).toBe(2);
    expect(error.code.coding?.[0]).toMatchObject({ system: 'https://codesystem.x12.org/005010/901', code: '57' });
    expect(error.code.text).toMatch(/No active Coverage.*ended on 2026-12-31.*order date 2027-01-04/);
    expect(error.extension?.find((e) => e.url === `${PAS}/extension-errorPath`)?.valueString).toBe('Bundle.entry[0].resource.item[1]');
    expect(error.extension?.find((e) => e.url === `${PAS}/extension-errorFollowupAction`)?.valueCodeableConcept?.coding?.[0]?.code).toBe('C');
    // PAS 2.2.1 errorElement: sub-extensions, the note with the words and the X12 element.
    const element = error.extension?.find((e) => e.url === `${PAS}/extension-errorElement`);
    const note = element?.extension?.find((e) => e.url === 'processNote')?.valuePositiveInt;
    expect(cr.processNote?.find((n) => n.number === note)?.text).toMatch(/Item 2 not decided: No active Coverage/);
    expect(element?.extension?.find((e) => e.url === 'error')?.valueString).toBe('2000F-DTP03');
    // Only the decided item's approval is issued; the request is stored and its resend answered the same.
    expect(cr.preAuthRef).toMatch(/^PA-MMM-/);
    const again = await request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(JSON.stringify(bundle));
    expect(again.status).toBe(200);
    expect(claimResponseOf(again.body).id).toBe(cr.id);
    expect(errorsOf(claimResponseOf(again.body)).map((e) => e.itemSequence)).toEqual([2]);
    const inquiry = await request(app).post('/fhir/Claim/$inquire').send(inquiryParameters({ identifier: bundle.identifier as { system: string; value: string } })).expect(200);
    expect(errorsOf(claimResponseOf(inquiry.body.parameter[0].resource)).map((e) => e.itemSequence)).toEqual([2]);
  });

  it('answers a request none of whose items can be decided with a ClaimResponse carrying the error, certifying and keeping nothing', async () => {
    const { app } = pasApp(new MemoryStorage(), { today: '2026-11-17' });
    const bundle = storyBundle(STORY, { code: 'rxnorm', orderId: `order-${randomUUID().slice(0, 8)}` });
    for (const e of bundle.entry ?? []) if (e.resource?.resourceType === 'Coverage') e.resource.period = { start: '2026-01-01', end: '2026-11-18' };
    const res = await request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(JSON.stringify(bundle));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const cr = claimResponseOf(res.body);
    expect(cr.item ?? []).toEqual([]);
    expect(cr.outcome).toBe('error');
    expect(errorsOf(cr).map((e) => [e.itemSequence, e.code.coding?.[0]?.code])).toEqual([[1, '57']]);
    expect(errorsOf(cr)[0].code.text).toMatch(/No active Coverage.*ended on 2026-11-18.*order date 2026-11-19/);
    expect(JSON.stringify(res.body)).not.toMatch(/PA-MMM/);
    // Nothing was kept: $inquire by the request's identifiers finds no request.
    const inquire = structuredClone(bundle);
    const inquiry = await request(app).post('/fhir/Claim/$inquire').set('Content-Type', 'application/fhir+json').send(JSON.stringify(inquire));
    expect(JSON.stringify(inquiry.body)).not.toMatch(/PA-MMM/);
  });

  it('answers the error in the PAS 2.0.1 shape to a 2.0.1 request (errorElement a string)', async () => {
    const { app } = pasApp(new MemoryStorage(), { today: '2026-11-23' });
    const { bundle } = twoOrders('2027-01-04', '2.0.1');
    const res = await request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(JSON.stringify(bundle));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const [error] = errorsOf(claimResponseOf(res.body));
    expect(error.extension?.find((e) => e.url === `${PAS}/extension-errorElement`)?.valueString).toBe('2000F-DTP03');
  });

  it("a reviewer's decision of the other item keeps the undecided item answered as an error", async () => {
    const { app } = pasApp(new MemoryStorage(), { today: '2026-11-23' });
    // Centene, MRD not documented: the first item is pended for documentation or a reviewer.
    const { bundle } = twoOrders('2027-01-04', undefined, 'centene-missing-mrd');
    const res = await request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(JSON.stringify(bundle));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const cr = claimResponseOf(res.body);
    expect(reviewActions(cr)).toEqual([`${X12}#A4`]);
    const decided = await request(app)
      .post(`/review/${cr.id}/decision`)
      .set('Authorization', `Bearer ${REVIEW_TOKEN}`)
      .send({ decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: 'MRD 0.4 % on the attached flow report' });
    expect(decided.status, JSON.stringify(decided.body)).toBe(200);
    const inquiry = await request(app).post('/fhir/Claim/$inquire').send(inquiryParameters({ identifier: bundle.identifier as { system: string; value: string } })).expect(200);
    const now = claimResponseOf(inquiry.body.parameter[0].resource);
    expect(reviewActions(now)).toEqual([`${X12}#A1`]);
    expect(errorsOf(now).map((e) => e.itemSequence)).toEqual([2]);
  });
});
