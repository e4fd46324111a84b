/**
 * A Claim Update of a request a reviewer approved, asking more than was approved (docs/design.md §8 "What an approval
 * covers", "Claim updates"): the update is pended for review and the approval stands for what the reviewer saw. Before
 * review-diff s45 H1 the update replaced the reviewed item, and the approval was then read as covering what the update
 * asked: signing the order at twice the dose answered `satisfied`, and a new request at that dose was certified A1.
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, Claim, Extension, MedicationRequest } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { approvalLoop } from '../helpers/approval-loop.js';
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

/** The story's PAS request for the order at `mcg` per day, 28 days of it as the Claim quantity. */
function requestAt(mcg: number, transaction: string): Bundle {
  const bundle = storyBundle(STORY);
  bundle.identifier = { system: 'urn:ehr.example.org:pas-transaction', value: transaction };
  for (const e of bundle.entry ?? []) if (e.resource?.resourceType === 'MedicationRequest') e.resource = atDose(e.resource, mcg);
  (bundle.entry![0].resource as Claim).item![0].quantity = { value: mcg * 28, unit: 'ug', system: 'http://unitsofmeasure.org', code: 'ug' };
  return bundle;
}

/** A PAS Claim Update of `prior` (certification type I, related to the prior Claim) changing its one item to `mcg`. */
function updateAt(prior: Bundle, mcg: number): Bundle {
  const priorEntry = prior.entry![0];
  const priorClaim = priorEntry.resource as Claim;
  const item = structuredClone(priorClaim.item![0]);
  item.extension = [
    ...(item.extension ?? []).filter((e) => !e.url.endsWith('certificationType')),
    { url: `${PAS}/extension-certificationType`, valueCodeableConcept: { coding: [{ system: 'https://codesystem.x12.org/005010/1322', code: 'I' }] } } as Extension,
    { url: `${PAS}/extension-infoChanged`, valueCode: 'changed' } as Extension,
  ];
  item.quantity = { value: mcg * 28, unit: 'ug', system: 'http://unitsofmeasure.org', code: 'ug' };
  const claim: Claim = {
    ...structuredClone(priorClaim),
    id: `update-${randomUUID().slice(0, 8)}`,
    meta: { profile: [`${PAS}/profile-claim-update`] },
    identifier: [{ system: 'urn:trnorg:1122334455', value: `TRN-${randomUUID().slice(0, 8)}` }],
    related: [{ claim: { reference: priorEntry.fullUrl }, relationship: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship', code: 'prior' }] } }],
    item: [item],
  };
  return {
    resourceType: 'Bundle',
    identifier: { system: 'urn:ehr.example.org:pas-transaction', value: randomUUID() },
    type: 'collection',
    timestamp: new Date().toISOString(),
    entry: [
      { fullUrl: `${EHR}/Claim/${claim.id}`, resource: claim },
      { fullUrl: priorEntry.fullUrl, resource: priorClaim },
      ...prior.entry!.slice(1).map((e) => (e.resource?.resourceType === 'MedicationRequest' ? { ...e, resource: atDose(e.resource, mcg) } : e)),
    ],
  };
}

const paNeeded = (ext: { extension?: Extension[] }) => ext.extension!.find((e) => e.url === 'pa-needed')?.valueCode;

describe('a Claim Update asking more than a reviewer approved', () => {
  it('is pended, and the approval still covers only what the reviewer saw: signing or a new request at the higher dose is not covered', async () => {
    const { sign, submit, review, order } = approvalLoop(STORY, TOKEN);
    // 56 mcg/day is over Centene's 28 mcg/day: pended for review, and the reviewer approves it as asked.
    const first = requestAt(56, `first-${randomUUID()}`);
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
    const another = claimResponseOf((await submit(requestAt(112, `another-${randomUUID()}`))).body);
    expect(reviewActions(another)).toEqual([`${X12}#A4`]);
  });
});
