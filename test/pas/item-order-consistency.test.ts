/**
 * What a PAS Claim item is judged and certified on (review s40 F6, F10, F11): the order it names and only that
 * order's drug (design.md §8 "One authorization per order", per (payer, patient, order, drug)); without
 * requestedService, the order still to be judged (a draft), never a cycle already under way; and never a quantity
 * above what the policy's amount limits allow (design.md §5: a limit exceeded is A4 pended, never A1; §8 "What PAS
 * certifies").
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, Claim, ClaimResponse, MedicationRequest, Quantity } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { J9039, J9229, claimResponseOf, reviewActions, storyBundle } from './pas-fixtures.js';
import type { StoryBundleOptions } from './pas-fixtures.js';

const X12 = 'https://codesystem.x12.org/005010/306';
const PAS = 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition';
const RXNORM = 'http://www.nlm.nih.gov/research/umls/rxnorm';
const BLINCYTO = { coding: [{ system: RXNORM, code: '1597262', display: 'blinatumomab 0.035 MG Injection' }] };
const UCUM = 'http://unitsofmeasure.org';

const { app } = buildApp({ today: '2026-11-23', env: { REVIEW_TOKEN: 'review-token-item-order' } });
const submit = (b: Bundle) => request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(JSON.stringify(b));
const claimOf = (b: Bundle) => b.entry![0].resource as Claim;
const orderOf = (b: Bundle, id: string) => b.entry!.find((e) => e.resource?.resourceType === 'MedicationRequest' && e.resource.id === id)!.resource as MedicationRequest;
const authorizedDetail = (cr: ClaimResponse) => cr.item?.[0].extension?.find((e) => e.url === `${PAS}/extension-itemAuthorizedDetail`)?.extension;
const notes = (cr: ClaimResponse) => JSON.stringify(cr.processNote ?? []);

/** A story's request for a fresh order of the patient (orders have one decision each), with the item's quantity. */
function requestFor(story: string, opts: { quantity?: Quantity; code?: 'rxnorm'; answers?: StoryBundleOptions['answers'] } = {}): { bundle: Bundle; orderId: string } {
  const orderId = `order-${randomUUID().slice(0, 8)}`;
  const bundle = storyBundle(story, { orderId, ...(opts.code ? { code: opts.code } : {}), ...(opts.answers ? { answers: opts.answers } : {}) });
  if (opts.quantity) claimOf(bundle).item![0].quantity = opts.quantity;
  return { bundle, orderId };
}

describe('F10: an item coded as another drug than the order it names is refused, never certified on that order', () => {
  it('refuses (400, naming the item) a J9039 (blinatumomab) item whose requestedService is a Besponsa order; the same order billed J9229 is answered', async () => {
    const { bundle } = requestFor('bcbsnc-inotuzumab-relapsed');
    claimOf(bundle).item![0].productOrService = { coding: [J9039] };
    claimOf(bundle).item![0].quantity = { value: 980, unit: 'UN', system: UCUM, code: '{unit}' };
    const res = await submit(bundle);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0].diagnostics).toMatch(/Claim item 1 asks for Injection, blinatumomab.*BESPONSA|Claim item 1 asks for Injection, blinatumomab.*inotuzumab/i);
    expect(res.body.issue[0].expression ?? res.body.issue[0].location).toContain('Claim.item[0].productOrService');
    expect(JSON.stringify(res.body)).not.toMatch(/PA-BCBSNC/);

    const billed = requestFor('bcbsnc-inotuzumab-relapsed');
    expect(claimOf(billed.bundle).item![0].productOrService.coding![0]).toEqual(J9229);
    const ok = await submit(billed.bundle);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
  });

  it('refuses an item coded by RxNorm 1597262 (blinatumomab) for a Besponsa order as well', async () => {
    const { bundle } = requestFor('bcbsnc-inotuzumab-relapsed');
    claimOf(bundle).item![0].productOrService = BLINCYTO;
    const res = await submit(bundle);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.issue[0].diagnostics).toMatch(/name the order for this drug/);
  });
});

describe('F11: an item without requestedService is judged on the order still to be judged, never on a cycle under way', () => {
  /**
   * MMM, Ph+ B-ALL with a TKI: an earlier Blincyto cycle still active (from 2026-10-01, 28 mcg/day) listed before the
   * new draft order, which asks 56 mcg/day; the item names no order.
   */
  function activeThenDraft(): { bundle: Bundle; draftId: string } {
    const { bundle, orderId } = requestFor('mmm-ph-positive-tki', { code: 'rxnorm' });
    const draft = orderOf(bundle, orderId);
    draft.dosageInstruction = [{ ...draft.dosageInstruction![0], doseAndRate: [{ doseQuantity: { value: 56, unit: 'mcg/d', system: UCUM, code: 'ug/d' } }] }];
    const active: MedicationRequest = {
      ...structuredClone(draft),
      id: `${orderId}-earlier`,
      status: 'active',
      authoredOn: '2026-09-30',
      dosageInstruction: [
        { timing: { repeat: { boundsPeriod: { start: '2026-10-01', end: '2026-10-28' } } }, doseAndRate: [{ doseQuantity: { value: 28, unit: 'mcg/d', system: UCUM, code: 'ug/d' } }] },
      ],
    };
    bundle.entry!.splice(1, 0, { fullUrl: `https://ehr.example.org/fhir/MedicationRequest/${active.id}`, resource: active });
    claimOf(bundle).item![0].extension = [];
    return { bundle, draftId: orderId };
  }

  it('judges the draft (56 mcg/day over the 28 mcg/day limit: A4 with the limit cited), not the earlier active cycle (was A1 with its retroactive period)', async () => {
    const { bundle } = activeThenDraft();
    const res = await submit(bundle);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const cr = claimResponseOf(res.body);
    expect(reviewActions(cr)).toEqual([`${X12}#A4`]);
    expect(cr.preAuthRef).toBeUndefined();
    expect(notes(cr)).toContain('MP-RX-FP-14-23 Limits A (Quantity Limitations)');
  });

  it('refuses (400, naming the orders) an item that could be for either of two drafts, rather than choose one', async () => {
    const { bundle, draftId } = activeThenDraft();
    const draft = orderOf(bundle, draftId);
    const second: MedicationRequest = { ...structuredClone(draft), id: `${draftId}-second` };
    bundle.entry!.push({ fullUrl: `https://ehr.example.org/fhir/MedicationRequest/${second.id}`, resource: second });
    const res = await submit(bundle);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.issue[0].diagnostics).toMatch(/names no order .*2 orders/);
    expect(res.body.issue[0].diagnostics).toContain(`MedicationRequest/${draftId}`);
    expect(res.body.issue[0].diagnostics).toContain(`MedicationRequest/${second.id}`);
  });
});

describe('F6: never a quantity above what the policy allows, nor one it never judged', () => {
  const noLiveVaccine = { 'no-live-vaccine-on-therapy': [{ valueBoolean: true }] };

  it('OHSU (980 J9039 units per 42 days): 2000 units, in {unit} or in ug, for one cycle are pended with the limit cited (were A1 "certified" 2000)', async () => {
    for (const quantity of [
      { value: 2000, unit: 'UN', system: UCUM, code: '{unit}' },
      { value: 2000, unit: 'ug', system: UCUM, code: 'ug' },
    ]) {
      const { bundle } = requestFor('ohsu-infant-kmt2a', { quantity, answers: noLiveVaccine });
      const res = await submit(bundle);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const cr = claimResponseOf(res.body);
      expect(reviewActions(cr), notes(cr)).toEqual([`${X12}#A4`]);
      expect(notes(cr)).toContain('HEALTHSERVICES-0382 II Dosing Limits');
      expect(authorizedDetail(cr)).toBeUndefined();
    }
  });

  it('OHSU: an order stating 784 ug while its item asks 2000 J9039 units is judged on what would be certified (A4), and an item for three cycles is judged per cycle', async () => {
    const { bundle, orderId } = requestFor('ohsu-infant-kmt2a', { quantity: { value: 2000, unit: 'UN', system: UCUM, code: '{unit}' }, answers: noLiveVaccine });
    orderOf(bundle, orderId).dispenseRequest = { ...orderOf(bundle, orderId).dispenseRequest, quantity: { value: 784, unit: 'ug', system: UCUM, code: 'ug' } };
    const cr = claimResponseOf((await submit(bundle).expect(200)).body);
    expect(reviewActions(cr), notes(cr)).toEqual([`${X12}#A4`]);
    expect(notes(cr)).toContain('HEALTHSERVICES-0382 II Dosing Limits');

    // 2352 units over the order's 3 cycles (1 + 2 repeats) are 784 a cycle, within the 980 of one cycle.
    const three = requestFor('ohsu-infant-kmt2a', { quantity: { value: 2352, unit: 'UN', system: UCUM, code: '{unit}' }, answers: noLiveVaccine });
    const order = orderOf(three.bundle, three.orderId);
    order.dispenseRequest = { ...order.dispenseRequest, numberOfRepeatsAllowed: 2 };
    const perCycle = claimResponseOf((await submit(three.bundle).expect(200)).body);
    expect(notes(perCycle)).not.toContain('HEALTHSERVICES-0382 II Dosing Limits');
  });

  it('OHSU: a cycle within the limit is certified with the quantity asked', async () => {
    const { bundle } = requestFor('ohsu-infant-kmt2a', { quantity: { value: 170, unit: 'UN', system: UCUM, code: '{unit}' }, answers: noLiveVaccine });
    const cr = claimResponseOf((await submit(bundle).expect(200)).body);
    expect(reviewActions(cr), notes(cr)).toEqual([`${X12}#A1`]);
    expect(authorizedDetail(cr)).toContainEqual({ url: 'quantity', valueQuantity: { value: 170, unit: 'UN', system: UCUM, code: '{unit}' } });
  });

  it('OHSU: an order approved for 170 units and asked again for 2000 has outgrown its approval: pended, not answered with its number', async () => {
    const { bundle, orderId } = requestFor('ohsu-infant-kmt2a', { quantity: { value: 170, unit: 'ug', system: UCUM, code: 'ug' }, answers: noLiveVaccine });
    const approved = claimResponseOf((await submit(bundle).expect(200)).body);
    expect(reviewActions(approved)).toEqual([`${X12}#A1`]);
    const more = storyBundle('ohsu-infant-kmt2a', { orderId, answers: noLiveVaccine });
    claimOf(more).item![0].quantity = { value: 2000, unit: 'ug', system: UCUM, code: 'ug' };
    const cr = claimResponseOf((await submit(more).expect(200)).body);
    expect(reviewActions(cr), notes(cr)).toEqual([`${X12}#A4`]);
    expect(cr.preAuthRef).toBeUndefined();
    expect(notes(cr)).toContain('HEALTHSERVICES-0382 II Dosing Limits');
  });

  it('MMM (label: 28 infusion days a cycle, one 35 mcg vial a day, 980 mcg per cycle): 5000 mcg for one cycle is pended with the limit cited (was A1 "certified" 5000)', async () => {
    const { bundle } = requestFor('mmm-ph-positive-tki', { code: 'rxnorm', quantity: { value: 5000, unit: 'ug' } });
    const cr = claimResponseOf((await submit(bundle).expect(200)).body);
    expect(reviewActions(cr), notes(cr)).toEqual([`${X12}#A4`]);
    expect(notes(cr)).toContain('MP-RX-FP-14-23 Limits A (Quantity Limitations; Dosing schedule, Days 1-28)');
    expect(authorizedDetail(cr)).toBeUndefined();
  });

  it('a payer whose policy states no amount limit (Centene) certifies the drug for the order, never the quantity asked', async () => {
    const { bundle } = requestFor('centene-missing-mrd', { quantity: { value: 5000, unit: 'ug' }, answers: { 'mrd-percent': [{ valueDecimal: 0.52 }] } });
    const cr = claimResponseOf((await submit(bundle).expect(200)).body);
    expect(reviewActions(cr), notes(cr)).toEqual([`${X12}#A1`]);
    expect(authorizedDetail(cr)).toEqual([{ url: 'productOrServiceCode', valueCodeableConcept: claimOf(bundle).item![0].productOrService }]);
  });
});
