/**
 * A Claim Update of a request a reviewer approved, asking more than was approved (docs/design.md §8 "What an approval
 * covers", "Claim updates"): the update is pended for review and the approval stands for what the reviewer saw. Before
 * review-diff s45 H1 the update replaced the reviewed item, and the approval was then read as covering what the update
 * asked: signing the order at twice the dose answered `satisfied`, and a new request at that dose was certified A1.
 * The request so pended still carries the approval (s45 note): cancelling a duplicate that answered it withdrew it
 * before, and cancelling the request itself left it standing with nothing carrying it. On MemoryStorage, embedded
 * PGlite and, with DATABASE_URL, PostgreSQL.
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, Claim, Extension, MedicationRequest } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { approvalLoop } from '../helpers/approval-loop.js';
import { threeStores } from '../helpers/three-stores.js';
import { claimResponseOf, reviewActions, storyBundle } from './pas-fixtures.js';

const STORY = 'centene-mrd-positive';
const TOKEN = 'update-after-review-token-0123';
const PAS = 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition';
const EHR = 'https://ehr.example.org/fhir';
const X12 = 'https://codesystem.x12.org/005010/306';

/** The order at `mcg` per day, as the EHR would change it (the dose and its text). */
function atDose(order: MedicationRequest, mcg: number): MedicationRequest {
  const changed = structuredClone(order);
  changed.dosageInstruction![0].doseAndRate![0].doseQuantity = { value: mcg, unit: 'mcg/d', system: 'http://unitsofmeasure.org', code: 'ug/d' };
  changed.dosageInstruction![0].text = `${mcg} mcg/day continuous IV infusion, days 1-28 of a 42-day cycle`;
  return changed;
}

/** The story's PAS request for the order (or the story's order as `orderId`) at `mcg` per day, 28 days of it as the Claim quantity. */
function requestAt(mcg: number, transaction: string, orderId?: string): Bundle {
  const bundle = storyBundle(STORY, orderId ? { orderId } : {});
  bundle.identifier = { system: 'urn:ehr.example.org:pas-transaction', value: transaction };
  for (const e of bundle.entry ?? []) if (e.resource?.resourceType === 'MedicationRequest') e.resource = atDose(e.resource, mcg);
  (bundle.entry![0].resource as Claim).item![0].quantity = { value: mcg * 28, unit: 'ug', system: 'http://unitsofmeasure.org', code: 'ug' };
  return bundle;
}

/**
 * A PAS Claim Update of `prior` (certification type I, related to the prior Claim) changing its one item to `mcg`;
 * with `mcg` 'cancel', one cancelling the whole request (certification type 3 on the Claim).
 */
function updateAt(prior: Bundle, mcg: number | 'cancel'): Bundle {
  const priorEntry = prior.entry![0];
  const priorClaim = priorEntry.resource as Claim;
  const certification = (code: 'I' | '3') =>
    ({ url: `${PAS}/extension-certificationType`, valueCodeableConcept: { coding: [{ system: 'https://codesystem.x12.org/005010/1322', code }] } }) as Extension;
  const item = structuredClone(priorClaim.item![0]);
  item.extension = [...(item.extension ?? []).filter((e) => !e.url.endsWith('certificationType')), certification('I'), { url: `${PAS}/extension-infoChanged`, valueCode: 'changed' } as Extension];
  if (mcg !== 'cancel') item.quantity = { value: mcg * 28, unit: 'ug', system: 'http://unitsofmeasure.org', code: 'ug' };
  const claim: Claim = {
    ...structuredClone(priorClaim),
    id: `update-${randomUUID().slice(0, 8)}`,
    meta: { profile: [`${PAS}/profile-claim-update`] },
    identifier: [{ system: 'urn:trnorg:1122334455', value: `TRN-${randomUUID().slice(0, 8)}` }],
    related: [{ claim: { reference: priorEntry.fullUrl }, relationship: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship', code: 'prior' }] } }],
    ...(mcg === 'cancel' ? { extension: [certification('3')], item: [] } : { item: [item] }),
  };
  return {
    resourceType: 'Bundle',
    identifier: { system: 'urn:ehr.example.org:pas-transaction', value: randomUUID() },
    type: 'collection',
    timestamp: new Date().toISOString(),
    entry: [
      { fullUrl: `${EHR}/Claim/${claim.id}`, resource: claim },
      { fullUrl: priorEntry.fullUrl, resource: priorClaim },
      ...prior.entry!.slice(1).map((e) => (e.resource?.resourceType === 'MedicationRequest' && mcg !== 'cancel' ? { ...e, resource: atDose(e.resource, mcg) } : e)),
    ],
  };
}

const paNeeded = (ext: { extension?: Extension[] }) => ext.extension!.find((e) => e.url === 'pa-needed')?.valueCode;

const { storages } = threeStores('held');

/**
 * What the reviewer approved is read from the order's approving event; the reviewed request pended again by a Claim
 * Update asking more still carries the approval (docs/design.md §8 "Claim updates": an approval is withdrawn only when
 * the last request carrying it is cancelled; s45 note, H1's held-elsewhere edge): the approving event names it, and
 * the update did not cancel it.
 */
describe.each(storages)('a Claim Update asking more than a reviewer approved (%s)', (_name, storage) => {
  /** The loop on this store for an order of its own (the PGlite and PostgreSQL stores are shared by the tests). */
  const setUp = () => {
    const loop = approvalLoop(STORY, TOKEN, storage());
    const orderId = `held-${randomUUID().slice(0, 8)}`;
    const order = { ...loop.order, id: orderId };
    const key = { ...loop.key, orderRef: `MedicationRequest/${orderId}` };
    const paId = (ext: { extension?: Extension[] }) => ext.extension!.find((e) => e.url === 'satisfied-pa-id')?.valueString;
    /** The reviewer approves the order at 56 mcg/day as asked: the reviewed request and the approval's number. */
    const reviewed = async () => {
      const first = requestAt(56, `first-${randomUUID()}`, orderId);
      const pended = claimResponseOf((await loop.submit(first)).body);
      expect(reviewActions(pended)).toEqual([`${X12}#A4`]);
      expect((await loop.review(`/${pended.id}/decision`, { decision: 'approve', reviewer: 'Dr. R. Okafor', reason: 'Dose escalation after cycle 1' })).status).toBe(200);
      const number = (await loop.storage.getOrderRecord(key))!.authorization!.number;
      return { first, number };
    };
    return { ...loop, order, key, orderId, paId, reviewed };
  };

  it('is pended, and the approval still covers only what the reviewer saw: signing or a new request at the higher dose is not covered', async () => {
    const { sign, submit, review, order, orderId } = setUp();
    // 56 mcg/day is over Centene's 28 mcg/day: pended for review, and the reviewer approves it as asked.
    const first = requestAt(56, `first-${randomUUID()}`, orderId);
    const pended = claimResponseOf((await submit(first)).body);
    expect(reviewActions(pended)).toEqual([`${X12}#A4`]);
    expect((await review(`/${pended.id}/decision`, { decision: 'approve', reviewer: 'Dr. R. Okafor', reason: 'Dose escalation after cycle 1' })).status).toBe(200);
    expect(paNeeded((await sign(atDose(order, 56))).ext)).toBe('satisfied');

    // The EHR updates the reviewed request to 112 mcg/day: that asks more, so it waits for review.
    const updated = claimResponseOf((await submit(updateAt(first, 112))).body);
    expect(reviewActions(updated)).toEqual([`${X12}#A4`]);

    // The approval stands for 56 (signing at 56 is covered with its number), never for 112.
    expect(paNeeded((await sign(atDose(order, 56))).ext)).toBe('satisfied');
    expect(paNeeded((await sign(atDose(order, 112))).ext)).not.toBe('satisfied');
    const another = claimResponseOf((await submit(requestAt(112, `another-${randomUUID()}`, orderId))).body);
    expect(reviewActions(another)).toEqual([`${X12}#A4`]);
  });
  it('keeps the order approved when a duplicate request carrying the number is cancelled: signing and a new request still answer it', async () => {
    const { submit, sign, storage: s, order, key, orderId, paId, reviewed } = setUp();
    const { first, number } = await reviewed();
    // The same order asked again under a new Bundle identifier: the order's decision, A1 with its number.
    const duplicate = requestAt(56, `duplicate-${randomUUID()}`, orderId);
    const dup = claimResponseOf((await submit(duplicate)).body);
    expect(reviewActions(dup)).toEqual([`${X12}#A1`]);
    expect(dup.preAuthRef).toBe(number);

    // The reviewed request is updated to ask 112 mcg/day: pended for review, the approval of 56 stands.
    expect(reviewActions(claimResponseOf((await submit(updateAt(first, 112))).body))).toEqual([`${X12}#A4`]);
    // The duplicate is cancelled: the reviewed request still carries the approval, so it is not withdrawn.
    const cancelled = claimResponseOf((await submit(updateAt(duplicate, 'cancel'))).body);
    expect(reviewActions(cancelled)).toEqual([`${X12}#C`]);

    const record = await s.getOrderRecord(key);
    expect([record?.state, record?.authorization?.number]).toEqual(['approved', number]);
    const signed = await sign(atDose(order, 56));
    expect([paNeeded(signed.ext), paId(signed.ext)]).toEqual(['satisfied', number]);
    const again = claimResponseOf((await submit(requestAt(56, `again-${randomUUID()}`, orderId))).body);
    expect([reviewActions(again), again.preAuthRef]).toEqual([[`${X12}#A1`], number]);
    // Still only for what the reviewer saw: 112 is not covered.
    expect(paNeeded((await sign(atDose(order, 112))).ext)).not.toBe('satisfied');
  });

  it("keeps the order approved when the reviewer denies the update asking more (A3) and a duplicate carrying the number is then cancelled, twice", async () => {
    // The s47 note's open edge: the reviewed request's item denied (A3) for the update's 112 mcg/day, the approval of 56
    // stands (design.md §8: a denial of more than it covers leaves it); the duplicate's cancellation withdrew it, as no
    // request then answered the number A1.
    const { submit, sign, review, storage: s, order, key, orderId, paId, reviewed } = setUp();
    const { first, number } = await reviewed();
    const duplicate = requestAt(56, `duplicate-${randomUUID()}`, orderId);
    expect(reviewActions(claimResponseOf((await submit(duplicate)).body))).toEqual([`${X12}#A1`]);
    const updated = claimResponseOf((await submit(updateAt(first, 112))).body);
    expect(reviewActions(updated)).toEqual([`${X12}#A4`]);
    expect((await review(`/${updated.id}/decision`, { decision: 'deny', reviewer: 'Dr. R. Okafor', reason: '112 mcg/day is not supported after cycle 1' })).status).toBe(200);
    expect((await s.getOrderRecord(key))?.state).toBe('approved');

    const cancel = updateAt(duplicate, 'cancel');
    expect(reviewActions(claimResponseOf((await submit(cancel)).body))).toEqual([`${X12}#C`]);
    // The same cancellation sent again is answered as stored, and changes nothing.
    expect(reviewActions(claimResponseOf((await submit(cancel)).body))).toEqual([`${X12}#C`]);

    const record = await s.getOrderRecord(key);
    expect([record?.state, record?.authorization?.number]).toEqual(['approved', number]);
    const signed = await sign(atDose(order, 56));
    expect([paNeeded(signed.ext), paId(signed.ext)]).toEqual(['satisfied', number]);
    expect(paNeeded((await sign(atDose(order, 112))).ext)).not.toBe('satisfied');
  });

  it('withdraws the approval when the reviewed request, pended again by the update, is itself cancelled and nothing else carries it', async () => {
    const { submit, sign, storage: s, order, key, reviewed } = setUp();
    const { first, number } = await reviewed();
    const updated = updateAt(first, 112);
    expect(reviewActions(claimResponseOf((await submit(updated)).body))).toEqual([`${X12}#A4`]);
    // The submitter cancels the request the reviewer approved: the service is no longer needed.
    expect(reviewActions(claimResponseOf((await submit(updateAt(first, 'cancel'))).body))).toEqual([`${X12}#C`]);

    const record = await s.getOrderRecord(key);
    expect(record?.state).toBe('auth-needed');
    expect(record?.authorization).toBeUndefined();
    expect(record?.history.map((h) => h.authorizationNumber).filter(Boolean)).toContain(number);
    expect(paNeeded((await sign(atDose(order, 56))).ext)).not.toBe('satisfied');
  });
});
