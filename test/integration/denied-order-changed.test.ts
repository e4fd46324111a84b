import type { Bundle, Extension, MedicationRequest, QuestionnaireResponse } from '@medplum/fhirtypes';
import request from 'supertest';
import { COVERAGE_INFO_URL, coverageInformationProblems } from '../../src/coverage/coverage-information.js';
import { storyResources } from '../helpers/stories.js';
import { describe, expect, it } from 'vitest';
import { approvalLoop } from '../helpers/approval-loop.js';
import { claimResponseOf, reviewActions, storyBundle } from '../pas/pas-fixtures.js';

/**
 * A denial is the decision on the order as it was denied (docs/design.md §8; review accept2 A2): signed or claimed
 * again unchanged the denial stands and says how to go on; the same order changed since (here the clinician does what
 * the reviewer and the Propose Alternate Request card say: Centene's 28 mcg/day, CP.PHAR.312 II.A.2) is judged
 * afresh, and a reviewer's denial is not overturned by the rules: the order is pended for a reviewer.
 */
const X12 = 'https://codesystem.x12.org/005010/306';
const STORY = 'centene-over-dose';
const REVIEW_TOKEN = 'review-token-for-denied-order-changed';
const DENIED = 'Dose 56 mcg/day not supported; resubmit at 28 mcg/day';
const sub = (ext: Extension, url: string) => ext.extension!.find((e) => e.url === url);

/** The story's order at another daily dose (mcg/day), as the clinician edited it (the same id). */
function atDose(order: MedicationRequest, mcgPerDay: number): MedicationRequest {
  const copy = structuredClone(order);
  copy.dosageInstruction![0].doseAndRate![0].doseQuantity = { value: mcgPerDay, unit: 'mcg/d', system: 'http://unitsofmeasure.org', code: 'ug/d' };
  copy.dosageInstruction![0].text = `${mcgPerDay} mcg/day continuous IV infusion, days 1-28 (induction cycle 2)`;
  return copy;
}

/** The story's PAS request (a new Bundle identifier each time) with its order at another daily dose. */
function bundleAtDose(mcgPerDay: number): Bundle {
  const bundle = storyBundle(STORY);
  for (const e of bundle.entry ?? []) {
    if (e.resource?.resourceType === 'MedicationRequest' && e.resource.status === 'draft') e.resource = atDose(e.resource, mcgPerDay);
  }
  return bundle;
}

/** Signs the story's order at 56 mcg/day, sends its PAS request (pended over the limit) and has the reviewer deny it. */
async function deniedOverDose(bundle: () => Bundle = () => storyBundle(STORY)) {
  const loop = approvalLoop(STORY, REVIEW_TOKEN);
  const signed = await loop.sign(loop.order);
  expect(sub(signed.ext, 'pa-needed')!.valueCode).toBe('auth-needed');
  const pended = claimResponseOf((await loop.submit(bundle())).body);
  expect(reviewActions(pended)).toEqual([`${X12}#A4`]);
  await loop.review(`/${pended.id}/decision`, { decision: 'deny', reviewer: 'Dr. L. Chen', reason: DENIED }).expect(200);
  expect((await loop.storage.getOrderRecord(loop.key))?.state).toBe('denied');
  return { ...loop, deniedId: pended.id! };
}

/** The DTR response the signed order's package drafts, completed as drafted: its coverage-information. */
async function dtrResponse(app: Parameters<typeof request>[0], signedBody: unknown): Promise<Extension> {
  const signedOrder = (signedBody as { systemActions: { resource: MedicationRequest }[] }).systemActions[0].resource;
  const coverage = storyResources(STORY).find((r) => r.resourceType === 'Coverage');
  const pkg = await request(app)
    .post('/fhir/Questionnaire/$questionnaire-package')
    .send({ resourceType: 'Parameters', parameter: [{ name: 'coverage', resource: coverage }, { name: 'order', resource: signedOrder }] })
    .expect(200);
  const bundle = pkg.body.parameter.find((p: { name: string }) => p.name === 'PackageBundle').resource as Bundle;
  const draft = bundle.entry!.map((e) => e.resource).find((r) => r?.resourceType === 'QuestionnaireResponse') as QuestionnaireResponse;
  const saved = await request(app).post('/fhir/QuestionnaireResponse').send({ ...draft, status: 'completed' }).expect(201);
  return (saved.body.extension as Extension[]).find((e) => e.url === COVERAGE_INFO_URL)!;
}

describe('a denial is the decision on the order as it was denied', () => {
  it('signed and claimed again unchanged, the denial stands and says how to go on', async () => {
    const { order, sign, submit } = await deniedOverDose();
    const again = await sign(order);
    expect(sub(again.ext, 'covered')!.valueCode).toBe('not-covered');
    const said = JSON.stringify(again.body.cards) + JSON.stringify(again.ext);
    expect(said).toContain(`Prior authorization denied: ${DENIED}.`);
    expect(said).toContain('change the order (its dose, quantity, cycles or start) or write a new one, and request prior authorization again');

    const resent = claimResponseOf((await submit(storyBundle(STORY))).body);
    expect(reviewActions(resent)).toEqual([`${X12}#A3`]);
    expect(JSON.stringify(resent.processNote)).toContain('or write a new one, and request prior authorization again');
  });

  it("the recorded denial's reason is coded X12 306 A3 at signing and in the DTR answer, so a client tells it from a provisional not covered without reading the words (review ui s47 #4)", async () => {
    const { app, order, sign } = await deniedOverDose();
    const denialCoding = (ext: Extension) =>
      ext.extension!.filter((e) => e.url === 'reason').flatMap((e) => (e.valueCodeableConcept?.coding ?? []).filter((c) => c.system === X12).map((c) => ({ code: c.code, text: e.valueCodeableConcept?.text })));
    const again = await sign(order);
    expect(denialCoding(again.ext)).toEqual([{ code: 'A3', text: expect.stringContaining(`Prior authorization denied: ${DENIED}.`) }]);

    const ext = await dtrResponse(app, again.body);
    expect(sub(ext, 'covered')!.valueCode).toBe('not-covered');
    expect(denialCoding(ext)).toEqual([{ code: 'A3', text: expect.stringContaining(`Prior authorization denied: ${DENIED}.`) }]);
    expect(coverageInformationProblems(ext, '2.0')).toEqual([]);
  });

  it('corrected to the dose the reviewer asked for, the same order is pended for a reviewer, never approved by the rules; the denial stays in its history', async () => {
    const { app, storage, order, key, sign, submit, review, deniedId } = await deniedOverDose();

    const corrected = await sign(atDose(order, 28));
    expect(sub(corrected.ext, 'covered')!.valueCode).toBe('covered');
    expect(sub(corrected.ext, 'pa-needed')!.valueCode).toBe('auth-needed');
    expect(sub(corrected.ext, 'satisfied-pa-id')).toBeUndefined();
    const reasons = corrected.ext.extension!.filter((e) => e.url === 'reason').map((e) => JSON.stringify(e));
    expect(reasons[0]).toContain(`A reviewer (Dr. L. Chen) denied this order's earlier prior authorization request on`);
    expect(reasons[0]).toContain(DENIED);
    expect(reasons[0]).toContain('request prior authorization for the order as it now stands, and a reviewer decides it');
    // Coded as what a PAS request for it gets (X12 306 A4, pended for a reviewer), so an EHR labels its action by the code.
    const coded = corrected.ext.extension!.filter((e) => e.url === 'reason')[0].valueCodeableConcept?.coding;
    expect(coded).toEqual([{ system: X12, code: 'A4', display: 'Pended' }]);
    expect(coverageInformationProblems(corrected.ext, '2.0')).toEqual([]);
    expect(JSON.stringify(corrected.body)).not.toContain('Prior authorization denied');
    let record = await storage.getOrderRecord(key);
    expect(record?.state).toBe('auth-needed');
    expect(record?.authorization).toBeUndefined();
    // Who denied it and why is kept; the reopening says why the order was judged again.
    const denial = record!.history.find((h) => h.state === 'denied');
    expect([denial?.source, denial?.actor, denial?.reason, denial?.submissionId]).toEqual(['review', 'Dr. L. Chen', DENIED, deniedId]);
    expect(record!.history[record!.history.indexOf(denial!) + 1].reason).toMatch(/^The order changed after its prior authorization request \(PAS .*\) was denied by a reviewer \(Dr\. L\. Chen\) on .*: the order as it now stands is judged afresh$/);

    // Signed once more as corrected: still for a reviewer, not approved.
    expect(sub((await sign(atDose(order, 28))).ext, 'pa-needed')!.valueCode).toBe('auth-needed');

    // The PAS request for the corrected order is pended for the reviewer, whose queue names the earlier denial.
    const pas = claimResponseOf((await submit(bundleAtDose(28))).body);
    expect(reviewActions(pas)).toEqual([`${X12}#A4`]);
    expect(pas.preAuthRef).toBeUndefined();
    record = await storage.getOrderRecord(key);
    expect(record?.state).toBe('pended');
    const queue = await request(app).get('/review/pended').set('Authorization', `Bearer ${REVIEW_TOKEN}`).expect(200);
    const entry = queue.body.pended.find((p: { id: string }) => p.id === pas.id);
    expect(entry.needed.join(' ')).toContain(`Clinical review: a reviewer denied this order's earlier request (PAS ${deniedId}) on`);

    // The reviewer approves the corrected order: it is the order's approval.
    const approved = await review(`/${pas.id}/decision`, { decision: 'approve', reviewer: 'Dr. L. Chen', reason: '28 mcg/day per label' }).expect(200);
    expect(approved.body.preAuthRef).toMatch(/^PA-CENTENE-/);
    const after = await sign(atDose(order, 28));
    expect(sub(after.ext, 'satisfied-pa-id')!.valueString).toBe(approved.body.preAuthRef);
  });

  it('the corrected order\'s DTR response that meets the policy agrees with signing: pended for a reviewer, not approved', async () => {
    const { app, storage, order, key, sign } = await deniedOverDose();
    const corrected = atDose(order, 28);
    const signed = await sign(corrected);
    expect(sub(signed.ext, 'pa-needed')!.valueCode).toBe('auth-needed');
    const ext = await dtrResponse(app, signed.body);
    expect(sub(ext, 'pa-needed')!.valueCode).toBe('auth-needed');
    expect(sub(ext, 'satisfied-pa-id')).toBeUndefined();
    expect(JSON.stringify(ext)).toContain('A reviewer (Dr. L. Chen) denied');
    const record = await storage.getOrderRecord(key);
    expect(record?.state).toBe('auth-needed');
    expect(record?.authorization).toBeUndefined();
  });

  it('claimed again changed, without signing first, the PAS request is pended for the reviewer too', async () => {
    const { storage, key, submit, deniedId } = await deniedOverDose();
    const pas = claimResponseOf((await submit(bundleAtDose(28))).body);
    expect(reviewActions(pas)).toEqual([`${X12}#A4`]);
    expect(pas.preAuthRef).toBeUndefined();
    const record = await storage.getOrderRecord(key);
    expect(record?.state).toBe('pended');
    expect(record!.history.map((h) => h.state)).toEqual(expect.arrayContaining(['denied', 'auth-needed', 'pended']));
    expect(record!.history.find((h) => h.state === 'denied')?.submissionId).toBe(deniedId);
  });

  it('changed to another dose still over the limit, the order is judged afresh: a limit review with the Propose Alternate Request card', async () => {
    const { order, sign } = await deniedOverDose();
    const raised = await sign(atDose(order, 40));
    expect(sub(raised.ext, 'covered')!.valueCode).toBe('covered');
    expect(sub(raised.ext, 'pa-needed')!.valueCode).toBe('auth-needed');
    expect(JSON.stringify(raised.body)).not.toContain('Prior authorization denied');
    expect(raised.body.cards.some((c) => (c.suggestions ?? []).length > 0)).toBe(true);
  });

  // Only what the order dispenses changed, not its dose (the one definition of the same order as reviewed,
  // reviewed-approval.ts sameOrderAsReviewed): Centene's policy reads no quantity, and signing still sees another order,
  // as PAS would.
  const quantityOnly: [string, (o: MedicationRequest) => MedicationRequest][] = [
    ['a dispense quantity of 14 days at 56 mcg/day', (o) => ({ ...o, dispenseRequest: { ...o.dispenseRequest, quantity: { value: 784, unit: 'mcg', system: 'http://unitsofmeasure.org', code: 'ug' } } })],
    ['a 14-day supply instead of 28', (o) => ({ ...o, dispenseRequest: { ...o.dispenseRequest, expectedSupplyDuration: { value: 14, unit: 'days', system: 'http://unitsofmeasure.org', code: 'd' } } })],
  ];

  it.each(quantityOnly)('re-signed with only %s, the order is judged afresh, not answered with the denial', async (_what, change) => {
    const { order, key, storage, sign, deniedId } = await deniedOverDose();
    const changed = await sign(change(order));
    expect(sub(changed.ext, 'covered')!.valueCode).toBe('covered');
    expect(sub(changed.ext, 'pa-needed')!.valueCode).toBe('auth-needed');
    expect(JSON.stringify(changed.body) + JSON.stringify(changed.ext)).not.toContain('Prior authorization denied');
    const record = await storage.getOrderRecord(key);
    expect(record?.state).toBe('auth-needed');
    const denial = record!.history.findIndex((h) => h.state === 'denied');
    expect(record!.history[denial + 1].reason).toContain(`The order changed after its prior authorization request (PAS ${deniedId}) was denied by a reviewer (Dr. L. Chen)`);
  });

  it('claimed again with only its supply changed, PAS sees the same changed order signing does: pended for the reviewer, not A3', async () => {
    const { storage, key, submit } = await deniedOverDose();
    const bundle = storyBundle(STORY);
    for (const e of bundle.entry ?? []) {
      if (e.resource?.resourceType === 'MedicationRequest' && e.resource.status === 'draft') e.resource = quantityOnly[1][1](e.resource);
    }
    const pas = claimResponseOf((await submit(bundle)).body);
    expect(reviewActions(pas)).toEqual([`${X12}#A4`]);
    expect((await storage.getOrderRecord(key))?.state).toBe('pended');
  });

  // Review diff1 s47 F1: the PAS Bundle's copy of the order may write the same order differently from the EHR's (a
  // dose-rate type left out, "day" for "days"); that copy is the order the reviewer denied, not another order.
  it('denied on a PAS copy of the order written differently, the order re-signed unchanged keeps the denial, and the copy resent gets A3', async () => {
    const rewritten = () => {
      const bundle = storyBundle(STORY);
      for (const e of bundle.entry ?? []) {
        const mr = e.resource;
        if (mr?.resourceType !== 'MedicationRequest' || mr.status !== 'draft') continue;
        delete mr.dosageInstruction![0].doseAndRate![0].type;
        mr.dosageInstruction![0].doseAndRate![0].doseQuantity!.unit = 'mcg/day';
        if (mr.dispenseRequest?.expectedSupplyDuration) mr.dispenseRequest.expectedSupplyDuration.unit = 'day';
      }
      return bundle;
    };
    const { order, key, storage, sign, submit } = await deniedOverDose(rewritten);
    const again = await sign(order);
    expect(sub(again.ext, 'covered')!.valueCode).toBe('not-covered');
    expect(JSON.stringify(again.ext)).toContain(`Prior authorization denied: ${DENIED}.`);
    expect((await storage.getOrderRecord(key))?.state).toBe('denied');
    expect(reviewActions(claimResponseOf((await submit(rewritten())).body))).toEqual([`${X12}#A3`]);
  });

  it('re-signed unchanged after the reviewer\'s denial, the denial stands at signing and in DTR', async () => {
    const { app, order, key, storage, sign } = await deniedOverDose();
    const again = await sign(order);
    expect(sub(again.ext, 'covered')!.valueCode).toBe('not-covered');
    expect((await storage.getOrderRecord(key))?.state).toBe('denied');
    const ext = await dtrResponse(app, again.body);
    expect(JSON.stringify(ext)).toContain(`Prior authorization denied: ${DENIED}.`);
  });

  it('re-signed with only its quantity changed, its DTR response is the changed order\'s: for a reviewer, not the denial', async () => {
    const { app, order, sign } = await deniedOverDose();
    const signed = await sign(quantityOnly[0][1](order));
    const ext = await dtrResponse(app, signed.body);
    expect(sub(ext, 'pa-needed')!.valueCode).toBe('auth-needed');
    expect(JSON.stringify(ext)).not.toContain('Prior authorization denied');
  });

  // Review accept2 s47 F3: the denial is the decision on the order as denied, whatever was signed in between.
  it('signed changed, then signed again as it was denied, the order is given back its denial, at signing and in PAS', async () => {
    const { app, order, key, storage, sign, submit, deniedId } = await deniedOverDose();
    const changed = await sign(quantityOnly[0][1](order));
    expect(sub(changed.ext, 'covered')!.valueCode).toBe('covered');
    expect((await storage.getOrderRecord(key))?.state).toBe('auth-needed');

    const back = await sign(order);
    expect(sub(back.ext, 'covered')!.valueCode).toBe('not-covered');
    expect(JSON.stringify(back.ext)).toContain(`Prior authorization denied: ${DENIED}.`);
    const record = await storage.getOrderRecord(key);
    expect(record?.state).toBe('denied');
    expect(record?.history.at(-1)).toMatchObject({ state: 'denied', submissionId: deniedId, reason: DENIED });
    expect(reviewActions(claimResponseOf((await submit(storyBundle(STORY))).body))).toEqual([`${X12}#A3`]);
    // The reviewer's page of the denied request does not say signing decided it: the reviewer did.
    const page = await request(app).get(`/review/${deniedId}`).set('Authorization', `Bearer ${REVIEW_TOKEN}`).expect(200);
    expect(page.body.settled).toBeUndefined();

    // Changed once more, its reason still names the reviewer who denied it, not the signing that gave it back.
    await sign(quantityOnly[1][1](order));
    const reopened = await storage.getOrderRecord(key);
    expect(reopened?.state).toBe('auth-needed');
    expect(reopened?.history.at(-1)?.reason).toContain(`was denied by a reviewer (Dr. L. Chen)`);
  });

  it('signed changed, then claimed in PAS as it was denied, PAS gives the order back its denial (A3)', async () => {
    const { order, key, storage, sign, submit } = await deniedOverDose();
    await sign(quantityOnly[1][1](order));
    expect((await storage.getOrderRecord(key))?.state).toBe('auth-needed');
    expect(reviewActions(claimResponseOf((await submit(storyBundle(STORY))).body))).toEqual([`${X12}#A3`]);
    expect((await storage.getOrderRecord(key))?.state).toBe('denied');
  });

  it('an order-select of the corrected order answers it afresh and leaves the denial on the record', async () => {
    const { storage, order, key, sign } = await deniedOverDose();
    const selected = atDose(order, 28);
    const browsing = await sign(selected, {
      hook: 'order-select',
      context: { userId: 'PractitionerRole/centene-over-dose-role', patientId: key.patientId, selections: [`MedicationRequest/${order.id}`], draftOrders: { resourceType: 'Bundle', type: 'collection', entry: [{ resource: selected }] } },
    });
    expect(sub(browsing.ext, 'pa-needed')!.valueCode).toBe('auth-needed');
    expect(JSON.stringify(browsing.ext)).toContain('A reviewer (Dr. L. Chen) denied');
    expect((await storage.getOrderRecord(key))?.state).toBe('denied');
  });
});
