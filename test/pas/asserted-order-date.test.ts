/**
 * One date per order in PAS (design.md §7 "One date per order", §8 "One authorization per order"): an order that
 * states no start of its own (no planned start, validity start or authoredOn) was judged by CRD on the day it was
 * signed, and the assertion keeps that date. A PAS request for the order days later judges it, and starts its
 * approval (or the reviewer's default period), on the same date; a request whose DTR response carries the order date
 * the payer pre-filled starts the period where the answers were judged.
 */
import type { Bundle, ClaimResponse, MedicationRequest, QuestionnaireResponse, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { ORDER_DATE_LINK_ID } from '../../src/policies/questionnaire-names.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';
import { pasApp, REVIEW_TOKEN, storyBundle } from './pas-fixtures.js';

const STORY = 'centene-missing-mrd';
const FHIR = 'application/fhir+json';
const COVERAGE_INFO = 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information';
const addDays = (date: string, days: number) => {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
};
const SIGNED_ON = new Date().toISOString().slice(0, 10);
const REQUESTED_ON = addDays(SIGNED_ON, 20);
/** The MRD level the chart lacks and the current weight (CP.PHAR.312 I.A.4.a, V): with them the order is approved. */
const ANSWERS = { 'mrd-percent': [{ valueDecimal: 0.5 }], weight: [{ valueDecimal: 66 }] };

/** The story's order with no start of its own: CRD judges it on the day it is signed. */
function undatedOrder(): { resources: Resource[]; order: MedicationRequest } {
  const resources = storyResources(STORY);
  const order = structuredClone(storyOrder(STORY, resources));
  delete order.authoredOn;
  for (const d of order.dosageInstruction ?? []) delete d.timing?.repeat?.boundsPeriod;
  delete order.dispenseRequest?.validityPeriod;
  return { resources, order };
}

/** The request Bundle with the story's order replaced by `order` (same id). */
function withOrder(bundle: Bundle, order: MedicationRequest): Bundle {
  return { ...bundle, entry: bundle.entry!.map((e) => (e.resource?.resourceType === 'MedicationRequest' && e.resource.id === order.id ? { ...e, resource: order } : e)) };
}

const claimResponseOf = (b: Bundle) => b.entry!.find((e) => e.resource?.resourceType === 'ClaimResponse')!.resource as ClaimResponse;

describe('PAS judges an order on the date CRD judged it on', () => {
  it('an order stating no start, signed 20 days before the request, is approved from the day it was signed', async () => {
    const storage = new MemoryStorage();
    const signing = buildApp({ today: SIGNED_ON, storage }).app;
    const { resources, order } = undatedOrder();
    const signed = (await request(signing).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, order)).expect(200)).body.systemActions[0].resource as MedicationRequest;
    expect(signed.extension?.some((e) => e.url === COVERAGE_INFO)).toBe(true);

    const pas = buildApp({ today: REQUESTED_ON, storage }).app;
    const bundle = withOrder(storyBundle(STORY, { answers: ANSWERS }), signed);
    const answer = (await request(pas).post('/fhir/Claim/$submit').set('Content-Type', FHIR).send(JSON.stringify(bundle)).expect(200)).body as Bundle;
    const cr = claimResponseOf(answer);
    expect(cr.preAuthPeriod?.start, 'the date CRD judged the order on, not the day of the request').toBe(SIGNED_ON);
  });

  it("a pended request for it gives the reviewer the period from the day it was signed, and the reviewer's approval runs from it", async () => {
    const storage = new MemoryStorage();
    const signing = buildApp({ today: SIGNED_ON, storage }).app;
    const { resources, order } = undatedOrder();
    const signed = (await request(signing).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, order)).expect(200)).body.systemActions[0].resource as MedicationRequest;

    const { app } = pasApp(storage, { today: REQUESTED_ON });
    const bundle = withOrder(storyBundle(STORY), signed);
    const answer = (await request(app).post('/fhir/Claim/$submit').set('Content-Type', FHIR).send(JSON.stringify(bundle)).expect(200)).body as Bundle;
    const id = claimResponseOf(answer).id!;
    const review = (await request(app).get(`/review/${id}`).set('Authorization', `Bearer ${REVIEW_TOKEN}`).expect(200)).body as { items: { reviewPeriod: { start: string } }[] };
    expect(review.items[0].reviewPeriod.start).toBe(SIGNED_ON);
    const decided = (
      await request(app)
        .post(`/review/${id}/decision`)
        .set('Authorization', `Bearer ${REVIEW_TOKEN}`)
        .send({ decision: 'approve', reviewer: 'Dana Reyes, MD', reason: 'MRD-positive B-ALL in remission, documented in the attached note' })
        .expect(200)
    ).body as { items: { authorization?: { start: string } }[] };
    expect(decided.items[0].authorization?.start).toBe(SIGNED_ON);
  });

  it("without the CRD assertion, an order stating no start is approved from the order date its DTR response carries, the date the answers were judged on", async () => {
    const storage = new MemoryStorage();
    const pas = buildApp({ today: REQUESTED_ON, storage }).app;
    const { order } = undatedOrder();
    const bundle = withOrder(storyBundle(STORY, { answers: ANSWERS }), order);
    const qr = bundle.entry!.find((e) => e.resource?.resourceType === 'QuestionnaireResponse')!.resource as QuestionnaireResponse;
    qr.item!.unshift({ linkId: ORDER_DATE_LINK_ID, answer: [{ valueDate: SIGNED_ON }] });
    const answer = (await request(pas).post('/fhir/Claim/$submit').set('Content-Type', FHIR).send(JSON.stringify(bundle)).expect(200)).body as Bundle;
    expect(claimResponseOf(answer).preAuthPeriod?.start).toBe(SIGNED_ON);
  });
});

/**
 * Which assertion dates an order is the one rule of design.md §8 (coverage/assertion-speaks-for.ts), as on DTR's
 * package and response: the order carries the assertion's id and the assertion was recorded for it, or for no order.
 */
describe('PAS dates an order only from an assertion that speaks for it', () => {
  it('an assertion recorded for a draft order that had no id yet dates the signed order that carries it', async () => {
    const storage = new MemoryStorage();
    const signing = buildApp({ today: SIGNED_ON, storage }).app;
    const { resources, order } = undatedOrder();
    const draft = structuredClone(order);
    delete draft.id;
    const res = (await request(signing).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, draft)).expect(200)).body as { systemActions?: { resource: MedicationRequest }[] };
    const info = res.systemActions![0].resource.extension!.filter((e) => e.url === COVERAGE_INFO);
    expect(info.length).toBe(1);
    // The EHR files the order under its id and keeps CRD's coverage-information on it.
    const filed: MedicationRequest = { ...order, extension: [...(order.extension ?? []), ...info] };

    const pas = buildApp({ today: REQUESTED_ON, storage }).app;
    const bundle = withOrder(storyBundle(STORY, { answers: ANSWERS }), filed);
    const answer = (await request(pas).post('/fhir/Claim/$submit').set('Content-Type', FHIR).send(JSON.stringify(bundle)).expect(200)).body as Bundle;
    expect(claimResponseOf(answer).preAuthPeriod?.start, 'the date CRD judged the order on').toBe(SIGNED_ON);
  });

  it("an order copied from an earlier cycle with that cycle's coverage-information is not dated by it", async () => {
    const storage = new MemoryStorage();
    const signing = buildApp({ today: SIGNED_ON, storage }).app;
    const { resources, order } = undatedOrder();
    const signed = (await request(signing).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, order)).expect(200)).body.systemActions[0].resource as MedicationRequest;
    const copied: MedicationRequest = { ...signed, id: `${order.id}-cycle-2` };

    const pas = buildApp({ today: REQUESTED_ON, storage }).app;
    const bundle = storyBundle(STORY, { answers: ANSWERS, orderId: copied.id });
    const answer = (await request(pas).post('/fhir/Claim/$submit').set('Content-Type', FHIR).send(JSON.stringify(withOrder(bundle, copied))).expect(200)).body as Bundle;
    expect(claimResponseOf(answer).preAuthPeriod?.start, "this order's own date (the day of the request), not the earlier cycle's").toBe(REQUESTED_ON);
  });
});

/**
 * The start signing read off the order stands when the PAS copy of the order drops it (review-diff s44 D5; design.md
 * §6 "Order date"): the order is judged on that start, its recency windows ending there, not on the copy's authoredOn
 * with no upper end. The story's order plans its start for 2026-11-21 (written 2026-11-16); its chart has no MRD.
 */
describe('PAS judges a copy of the order without its start on the start signing read', () => {
  const SIGNED = '2026-11-19';
  const REQUESTED = '2026-12-10';
  /** An MRD level (CP.PHAR.312 I.A.4.a) taken on `at`, sent with the request. */
  const mrd = (at: string): Resource => ({
    resourceType: 'Observation',
    id: 'centene-missing-mrd-mrd',
    status: 'final',
    subject: { reference: 'Patient/centene-missing-mrd' },
    code: { coding: [{ system: 'https://priorpath.dev/fhir/CodeSystem/evidence', code: 'mrd', display: 'Minimal residual disease' }] },
    effectiveDateTime: at,
    valueQuantity: { value: 0.5, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
  });

  async function requestWithMrd(at: string): Promise<ClaimResponse> {
    const storage = new MemoryStorage();
    const signing = buildApp({ today: SIGNED, storage }).app;
    const resources = storyResources(STORY);
    const signed = (await request(signing).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, storyOrder(STORY, resources))).expect(200)).body.systemActions[0].resource as MedicationRequest;
    // The EHR's slimmed copy: the dosage without its timing, no validity period; authoredOn (2026-11-16) kept.
    const copy = structuredClone(signed);
    for (const d of copy.dosageInstruction ?? []) delete d.timing;
    delete copy.dispenseRequest?.validityPeriod;
    const bundle = withOrder(storyBundle(STORY), copy);
    bundle.entry!.push({ fullUrl: 'urn:uuid:4c1e2a7e-1d55-4b0e-9a7e-3a1f0d2b6c11', resource: mrd(at) });
    const pas = buildApp({ today: REQUESTED, storage }).app;
    const answer = (await request(pas).post('/fhir/Claim/$submit').set('Content-Type', FHIR).send(JSON.stringify(bundle)).expect(200)).body as Bundle;
    return claimResponseOf(answer);
  }

  it('an MRD result taken after the start signing read (2026-12-01) is not read: the request is not approved on it', async () => {
    const cr = await requestWithMrd('2026-12-01T09:00:00-05:00');
    expect(cr.preAuthRef, 'no approval on an MRD taken on therapy').toBeUndefined();
  });

  it('an MRD result taken before it (2026-11-20) approves the order, from the start signing read, not the copy\'s authoredOn', async () => {
    const cr = await requestWithMrd('2026-11-20T09:00:00-05:00');
    expect(cr.preAuthRef).toBeDefined();
    expect(cr.preAuthPeriod?.start).toBe('2026-11-21');
  });
});
