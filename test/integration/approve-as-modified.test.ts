import type { Bundle, Claim, ClaimResponse, MedicationRequest } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { approvalLoop } from '../helpers/approval-loop.js';
import { claimResponseOf, reviewActions, storyBundle } from '../pas/pas-fixtures.js';

/**
 * Approve as modified (docs/design.md §8 "Approve as modified"; review ui s44 L3): a payer pharmacist approves an
 * over-limit request for less than asked (Centene CP.PHAR.312: 28 mcg/day, not the 56 asked). The request is answered
 * X12 306 A6 Modified with the approved quantity, and the approval covers what was approved only: signing at 56 again,
 * or a new PAS request at 56, is not covered by it; the order signed at 28 is.
 */
const X12 = 'https://codesystem.x12.org/005010/306';
const STORY = 'centene-mrd-positive';
const REVIEW_TOKEN = 'review-token-for-approve-as-modified';
const PAS = 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition';
const pa = (ext: { extension?: { url: string; valueCode?: string; valueString?: string }[] }, url: string) => ext.extension!.find((e) => e.url === url);

function atDose(order: MedicationRequest, mcgPerDay: number): MedicationRequest {
  const copy = structuredClone(order);
  copy.dosageInstruction![0].doseAndRate![0].doseQuantity = { value: mcgPerDay, unit: 'mcg/d', system: 'http://unitsofmeasure.org', code: 'ug/d' };
  copy.dosageInstruction![0].text = `${mcgPerDay} mcg/day continuous IV infusion, days 1-28 of a 42-day cycle`;
  return copy;
}

/** The story's PAS request at `mcgPerDay` (one 28-day cycle of J9039 micrograms), under its own Bundle identifier. */
function requestAt(mcgPerDay: number, id: string): Bundle {
  const bundle = storyBundle(STORY);
  bundle.identifier = { system: 'urn:ehr.example.org:pas-transaction', value: id };
  for (const e of bundle.entry ?? []) if (e.resource?.resourceType === 'MedicationRequest') e.resource = atDose(e.resource, mcgPerDay);
  (bundle.entry![0].resource as Claim).item![0].quantity = { value: mcgPerDay * 28, unit: 'ug', system: 'http://unitsofmeasure.org', code: 'ug' };
  return bundle;
}

const authorizedQuantity = (cr: ClaimResponse) =>
  cr.item?.[0]?.extension?.find((e) => e.url === `${PAS}/extension-itemAuthorizedDetail`)?.extension?.find((e) => e.url === 'quantity')?.valueQuantity;

const MODIFIED = { dailyDoseUg: 28, startingDoseUg: 28 };

describe('approve as modified: a request at 56 mcg/day approved at 28', () => {
  it('answers A6 Modified with the approved quantity; signing or asking again at 56 is not covered, the order at 28 is', async () => {
    const loop = approvalLoop(STORY, REVIEW_TOKEN);
    const { order, sign, submit, review, storage, key } = loop;
    const first = requestAt(56, 'modified-first');
    const pended = claimResponseOf((await submit(first)).body);
    expect(reviewActions(pended)).toEqual([`${X12}#A4`]);

    const decided = await review(`/${pended.id}/decision`, {
      decision: 'approve',
      reviewer: 'Sam Okafor, PharmD',
      reason: '56 mcg/day is above the labelled dose; 28 mcg/day approved per CP.PHAR.312',
      modified: { amounts: MODIFIED, quantity: 784 },
    });
    expect(decided.status, JSON.stringify(decided.body)).toBe(200);
    expect(decided.body.items[0].approvedAs).toMatchObject({
      amounts: [
        { fact: 'dailyDoseUg', asked: 56, approved: 28 },
        { fact: 'startingDoseUg', asked: 56, approved: 28 },
      ],
      quantity: { value: 784, code: 'ug' },
    });
    const answered = decided.body.claimResponse ?? (await storage.getPasSubmission(pended.id!))!.claimResponse;
    const cr = answered as ClaimResponse;
    expect(reviewActions(cr)).toEqual([`${X12}#A6`]);
    expect(cr.disposition).toBe('Certified as modified');
    expect(authorizedQuantity(cr)).toMatchObject({ value: 784, code: 'ug' });
    const number = decided.body.preAuthRef as string;
    expect(number).toMatch(/^PA-CENTENE-/);
    // The resend of the same request answers as stored: A6.
    expect(reviewActions(claimResponseOf((await submit(first)).body))).toEqual([`${X12}#A6`]);

    // Signing the order at 56 again: not covered by an approval of 28 (a limit review naming it), and it stands.
    const at56 = await sign(atDose(order, 56));
    expect(pa(at56.ext, 'pa-needed')!.valueCode).not.toBe('satisfied');
    expect(pa(at56.ext, 'satisfied-pa-id')).toBeUndefined();
    expect(JSON.stringify(at56.body)).toContain(number);
    expect((await storage.getOrderRecord(key))?.authorization?.number).toBe(number);
    // A new PAS request at 56: pended for review, not certified by it.
    const again = claimResponseOf((await submit(requestAt(56, 'modified-second'))).body);
    expect(reviewActions(again)).toEqual([`${X12}#A4`]);
    // The order as approved, at 28 mcg/day: the approval's number.
    const at28 = await sign(order);
    expect(pa(at28.ext, 'pa-needed')!.valueCode).toBe('satisfied');
    expect(pa(at28.ext, 'satisfied-pa-id')!.valueString).toBe(number);
  });

  it('refuses an approval as modified that approves more than asked, an amount the request does not ask, nothing less, or a denial', async () => {
    const { app, submit, review } = approvalLoop(STORY, REVIEW_TOKEN);
    const pended = claimResponseOf((await submit(requestAt(56, 'modified-refused'))).body);
    const decide = (modified: object, decision = 'approve') => review(`/${pended.id}/decision`, { decision, reviewer: 'Sam Okafor, PharmD', reason: 'dose', modified });
    const refusals: [object, string, string?][] = [
      [{ amounts: { dailyDoseUg: 60 } }, 'modified.amounts.dailyDoseUg'],
      [{ amounts: { weightKg: 50 } }, 'modified.amounts.weightKg'],
      [{ quantity: 2000 }, 'modified.quantity'],
      [{ amounts: { dailyDoseUg: 56 } }, 'modified'],
      [{ amounts: { dailyDoseUg: 28 } }, 'modified', 'deny'],
    ];
    for (const [modified, field, decision] of refusals) {
      const res = await decide(modified, decision);
      expect(res.status, JSON.stringify(modified)).toBe(400);
      expect(res.body.issue[0].expression, JSON.stringify(res.body)).toEqual([field]);
    }
    // Nothing was recorded: the request still waits for the reviewer.
    const view = await request(app).get(`/review/${pended.id}`).set('Authorization', `Bearer ${REVIEW_TOKEN}`).expect(200);
    expect(view.body.reviewAction).toBe('A4');
    expect(view.body.decisions).toEqual([]);
  });
});
