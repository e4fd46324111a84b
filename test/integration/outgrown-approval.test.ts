import type { Bundle, Claim, Extension, MedicationRequest } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { approvalLoop } from '../helpers/approval-loop.js';
import { claimResponseOf, reviewActions, storyBundle } from '../pas/pas-fixtures.js';

/**
 * What an approval covers (docs/design.md §8): the order as the rules approved it. The same order signed or submitted
 * again outside a limit it was approved within (here Centene's 28 mcg/day, CP.PHAR.312 II.A.2) is decided afresh: a
 * limit review, and a new number if it is approved again. A reviewer's approval of an order over a limit stands.
 */
const X12 = 'https://codesystem.x12.org/005010/306';
const STORY = 'centene-mrd-positive';
const REVIEW_TOKEN = 'review-token-for-outgrown-approval';
const sub = (ext: Extension, url: string) => ext.extension!.find((e) => e.url === url);

/** The story's order at another daily dose (mcg/day), as the clinician edited it. */
function atDose(order: MedicationRequest, mcgPerDay: number): MedicationRequest {
  const copy = structuredClone(order);
  copy.dosageInstruction![0].doseAndRate![0].doseQuantity = { value: mcgPerDay, unit: 'mcg/d', system: 'http://unitsofmeasure.org', code: 'ug/d' };
  copy.dosageInstruction![0].text = `${mcgPerDay} mcg/day continuous IV infusion, days 1-28 of a 42-day cycle`;
  return copy;
}

/** The story's PAS request with its order at another daily dose. */
function bundleAtDose(mcgPerDay: number): Bundle {
  const bundle = storyBundle(STORY);
  for (const e of bundle.entry ?? []) {
    if (e.resource?.resourceType === 'MedicationRequest') e.resource = atDose(e.resource, mcgPerDay);
  }
  return bundle;
}

const setUp = () => approvalLoop(STORY, REVIEW_TOKEN);

describe('an approval covers the order as it was approved', () => {
  it('re-signed above the dose limit, the order is a limit review again, not the earlier number; back within the limit it gets a new one', async () => {
    const { storage, order, key, sign, expectReopened, signedAgainRenewed } = setUp();
    const first = await sign(order);
    expect(sub(first.ext, 'pa-needed')!.valueCode).toBe('satisfied');
    const number = sub(first.ext, 'satisfied-pa-id')!.valueString!;
    expect(number).toMatch(/^PA-CENTENE-/);

    // The clinician raises the dose to 60 mcg/day and signs the same order again.
    const raised = await sign(atDose(order, 60));
    expect(sub(raised.ext, 'covered')!.valueCode).toBe('covered');
    expect(sub(raised.ext, 'pa-needed')!.valueCode).toBe('auth-needed');
    expect(sub(raised.ext, 'satisfied-pa-id')).toBeUndefined();
    // The clinician is told why the number no longer answers, in plain words, and offered the order at the limit.
    const text = JSON.stringify(raised.body.cards);
    expect(text).toContain(`Authorization ${number} was for this order as it stood when approved; it does not cover the order as it is now.`);
    expect(raised.body.cards.some((c) => (c.suggestions ?? []).length > 0)).toBe(true);
    await expectReopened(number);

    // Signed again at 28 mcg/day: within every limit, a new approval with its own number.
    const renewed = await signedAgainRenewed(number);
    expect((await storage.getOrderRecord(key))?.authorization?.number).toBe(renewed);

    // Signing the unchanged order once more answers the same approval (it is not reopened by an unchanged order).
    const same = await sign(order);
    expect(sub(same.ext, 'satisfied-pa-id')!.valueString).toBe(renewed);
  });

  it('a "what if" (unsolicited-determ false) or an order-select over the limit is answered for the order as sent and leaves the approval in place: the order signed as approved keeps its one number', async () => {
    const { storage, order, key, sign } = setUp();
    const number = sub((await sign(order)).ext, 'satisfied-pa-id')!.valueString!;

    // The EHR asks what 60 mcg/day would mean, without asking for a determination (CRD [found-35]).
    const whatIf = await sign(atDose(order, 60), { extension: { 'davinci-crd.configuration': { 'unsolicited-determ': false } } });
    expect(sub(whatIf.ext, 'pa-needed')!.valueCode).toBe('auth-needed');
    expect(sub(whatIf.ext, 'satisfied-pa-id')).toBeUndefined();
    // The clinician selects the draft while typing 60 mcg/day (order-select: still editing).
    const selected = atDose(order, 60);
    const browsing = sign(selected, {
      hook: 'order-select',
      context: { userId: 'PractitionerRole/centene-mrd-positive-role', patientId: key.patientId, selections: [`MedicationRequest/${order.id}`], draftOrders: { resourceType: 'Bundle', type: 'collection', entry: [{ resource: selected }] } },
    });
    expect(sub((await browsing).ext, 'satisfied-pa-id')).toBeUndefined();

    const record = await storage.getOrderRecord(key);
    expect(record?.state).toBe('approved');
    expect(record?.authorization?.number).toBe(number);
    expect(record!.history.map((h) => h.state)).toEqual(['approved']);
    // Signed as approved: the same number, not a second one.
    expect(sub((await sign(order)).ext, 'satisfied-pa-id')!.valueString).toBe(number);
  });

  it('an approval its submitter cancelled (a PAS Claim Update), then the order signed over the limit: the clinician reads that the authorization was cancelled, not that it was outgrown', async () => {
    const { storage, order, key, sign, submit } = setUp();
    const number = sub((await sign(order)).ext, 'satisfied-pa-id')!.valueString!;
    // The EHR files the PAS request for the approved order (it answers the approval), then cancels its item.
    const filed = storyBundle(STORY);
    const answered = claimResponseOf((await submit(filed)).body);
    expect(reviewActions(answered)).toEqual([`${X12}#A1`]);
    expect(answered.preAuthRef).toBe(number);
    const claim = filed.entry![0].resource as Claim;
    const PAS = 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition';
    const update: Claim = {
      ...structuredClone(claim),
      id: 'claim-update-cancel',
      meta: { profile: [`${PAS}/profile-claim-update`] },
      identifier: [{ system: 'urn:trnorg:1122334455', value: 'TRN-cancel-approved' }],
      related: [{ claim: { reference: filed.entry![0].fullUrl }, relationship: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship', code: 'prior' }] } }],
      item: [{ ...structuredClone(claim.item![0]), modifierExtension: [{ url: `${PAS}/modifierextension-infoCancelled`, valueBoolean: true }] }],
    };
    const cancelled = await submit({ ...filed, identifier: { system: 'urn:ehr.example.org:pas-transaction', value: 'cancel-approved' }, entry: [{ fullUrl: 'https://ehr.example.org/fhir/Claim/claim-update-cancel', resource: update }, ...filed.entry!] });
    expect(reviewActions(claimResponseOf(cancelled.body))).toEqual([`${X12}#C`]);
    expect((await storage.getOrderRecord(key))?.authorization).toBeUndefined();

    // Signed again at 60 mcg/day: a limit review; the card says the number was cancelled, when, in plain words.
    const raised = await sign(atDose(order, 60));
    expect(sub(raised.ext, 'pa-needed')!.valueCode).toBe('auth-needed');
    const text = JSON.stringify(raised.body.cards);
    expect(text).toMatch(new RegExp(`Authorization ${number} for this order was cancelled by its submitter on \\d{1,2} [A-Z][a-z]+ \\d{4}, so it no longer covers the order\\.`));
    expect(text).not.toMatch(/as it (was then approved|stood when approved)/);
  });

  it('a PAS request above the limit after an approval at signing pends for review; the reviewer\'s approval is what signing answers next', async () => {
    const { storage, order, key, sign, submit, review } = setUp();
    const signed = await sign(order);
    const number = sub(signed.ext, 'satisfied-pa-id')!.valueString!;

    // The same order requested at 60 mcg/day: not the approval issued at 28, a limit review.
    const pended = claimResponseOf((await submit(bundleAtDose(60))).body);
    expect(reviewActions(pended)).toEqual([`${X12}#A4`]);
    expect(pended.preAuthRef).toBeUndefined();
    expect((await storage.getOrderRecord(key))?.state).toBe('pended');

    // The medical director accepts the justification: an approval of the order as it now stands, a new number.
    const decided = await review(`/${pended.id}/decision`, { decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: 'Dose escalation per protocol amendment' }).expect(200);
    const granted: string = decided.body.preAuthRef;
    expect(granted).toMatch(/^PA-CENTENE-/);
    expect(granted).not.toBe(number);
    expect((await storage.getOrderRecord(key))?.authorization?.number).toBe(granted);

    // Signing the order at 60 mcg/day now answers the reviewer's approval: a reviewer may approve over a limit.
    const again = await sign(atDose(order, 60));
    expect(sub(again.ext, 'pa-needed')!.valueCode).toBe('satisfied');
    expect(sub(again.ext, 'satisfied-pa-id')!.valueString).toBe(granted);
    // And a new PAS request for it gets that decision.
    const later = claimResponseOf((await submit(bundleAtDose(60))).body);
    expect(reviewActions(later)).toEqual([`${X12}#A1`]);
    expect(later.preAuthRef).toBe(granted);
  });
});
