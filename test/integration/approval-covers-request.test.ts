import type { Bundle, Claim, ClaimResponse, MedicationRequest, QuestionnaireResponse } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { approvalLoop } from '../helpers/approval-loop.js';
import { coverageInfo, packageDraft, reasons, sub } from '../helpers/dtr-package.js';
import { storyResources } from '../helpers/stories.js';
import { bareAdaptiveResponse } from '../dtr/helpers.js';
import { claimResponseOf, inquiryParameters, reviewActions, storyBundle } from '../pas/pas-fixtures.js';

/**
 * A PAS request is certified only for what the order's approval covers (docs/design.md §5 row 3, §8 "What an approval
 * covers"; integrator review H1, H2). Centene's Blincyto policy limits the dose to 28 mcg/day (CP.PHAR.312 I.A.5,
 * II.A.3): a request over it is a clinical review, and neither the rules' approval of the order at 28 mcg/day nor a
 * reviewer's approval of a smaller request certifies it.
 */
const X12 = 'https://codesystem.x12.org/005010/306';
const STORY = 'centene-mrd-positive';
const REVIEW_TOKEN = 'review-token-for-approval-covers';
const PAS = 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition';
const COVERAGE_INFO = 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information';
const pa = (ext: { extension?: { url: string; valueCode?: string; valueString?: string; valueDate?: string }[] }, url: string) => ext.extension!.find((e) => e.url === url);

/** The story's order at another daily dose (mcg/day), as the clinician edited it. */
function atDose(order: MedicationRequest, mcgPerDay: number): MedicationRequest {
  const copy = structuredClone(order);
  copy.dosageInstruction![0].doseAndRate![0].doseQuantity = { value: mcgPerDay, unit: 'mcg/d', system: 'http://unitsofmeasure.org', code: 'ug/d' };
  copy.dosageInstruction![0].text = `${mcgPerDay} mcg/day continuous IV infusion, days 1-28 of a 42-day cycle`;
  return copy;
}

/** The story's PAS request for its order at `mcgPerDay`, the Claim item asking for `cycles` 28-day cycles of it (J9039, 1 mcg units). */
function requestAt(mcgPerDay: number, cycles = 1, opts: { weightKg?: number } = {}): Bundle {
  const bundle = storyBundle(STORY);
  for (const e of bundle.entry ?? []) {
    if (e.resource?.resourceType === 'MedicationRequest') e.resource = atDose(e.resource, mcgPerDay);
    // The patient weighed again (LOINC 29463-7 body weight, the story's 70 kg observation).
    if (opts.weightKg !== undefined && e.resource?.resourceType === 'Observation' && e.resource.code?.coding?.[0]?.code === '29463-7') {
      e.resource = { ...e.resource, valueQuantity: { value: opts.weightKg, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' } };
    }
  }
  (bundle.entry![0].resource as Claim).item![0].quantity = { value: mcgPerDay * 28 * cycles, unit: 'ug', system: 'http://unitsofmeasure.org', code: 'ug' };
  return bundle;
}

/** The quantity a certified item states as authorized (PAS extension-itemAuthorizedDetail). */
const authorizedQuantity = (cr: ClaimResponse) =>
  cr.item?.[0]?.extension?.find((e) => e.url === `${PAS}/extension-itemAuthorizedDetail`)?.extension?.find((e) => e.url === 'quantity')?.valueQuantity?.value;

function setUp() {
  const loop = approvalLoop(STORY, REVIEW_TOKEN);
  const read = (id: string) => request(loop.app).get(`/review/${id}`).set('Authorization', `Bearer ${REVIEW_TOKEN}`).expect(200);
  const queue = async () => ((await request(loop.app).get('/review/pended').set('Authorization', `Bearer ${REVIEW_TOKEN}`).expect(200)).body.pended as { id: string }[]).map((p) => p.id);
  return { ...loop, read, queue };
}

describe('H1: a request pended over a limit is not certified by an approval of the order within it', () => {
  it('pended at 56 mcg/day, the order then approved at signing at 28: the request stays pended for the reviewer, whose approval certifies it with the order\'s one number', async () => {
    const { storage, order, key, sign, submit, review, read, queue } = setUp();
    expect(pa((await sign(atDose(order, 56))).ext, 'pa-needed')!.valueCode).toBe('auth-needed');
    const over = requestAt(56);
    const pended = claimResponseOf((await submit(over)).body);
    expect(reviewActions(pended)).toEqual([`${X12}#A4`]);

    // The clinician accepts the card and signs at 28 mcg/day: approved at signing.
    const signed = await sign(order);
    expect(pa(signed.ext, 'pa-needed')!.valueCode).toBe('satisfied');
    const number = pa(signed.ext, 'satisfied-pa-id')!.valueString!;

    // The 56 mcg/day request (read again: a resend answers its current state) is still pended, not A1 at 1568 ug.
    const again = claimResponseOf((await submit(over)).body);
    expect(reviewActions(again)).toEqual([`${X12}#A4`]);
    expect(again.preAuthRef).toBeUndefined();
    expect(authorizedQuantity(again)).toBeUndefined();
    expect((await read(pended.id!)).body.status).toBe('pended');
    expect(await queue()).toContain(pended.id);

    // The reviewer approves the 56 mcg/day dose: the order keeps its one number, now the reviewer's approval.
    const decided = await review(`/${pended.id}/decision`, { decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: '56 mcg/day per the attached protocol amendment' }).expect(200);
    expect(decided.body.reviewAction).toBe('A1');
    expect(decided.body.preAuthRef).toBe(number);
    const record = await storage.getOrderRecord(key);
    expect(record?.authorization?.number).toBe(number);
    expect(record?.history.at(-1)).toMatchObject({ state: 'approved', source: 'review', submissionId: pended.id, authorizationNumber: number });
    const certified = claimResponseOf((await submit(over)).body);
    expect(reviewActions(certified)).toEqual([`${X12}#A1`]);
    expect(certified.preAuthRef).toBe(number);
    // Centene's policy judges no amount, so its approval certifies the drug for the order without a quantity
    // (docs/design.md §8 "What PAS certifies").
    expect(authorizedQuantity(certified)).toBeUndefined();
  });

  it('the reviewer denies the 56 mcg/day request: it is not certified, and the order keeps its approval at 28 mcg/day', async () => {
    const { storage, order, key, sign, submit, review } = setUp();
    const over = requestAt(56);
    const pended = claimResponseOf((await submit(over)).body);
    expect(reviewActions(pended)).toEqual([`${X12}#A4`]);
    const number = pa((await sign(order)).ext, 'satisfied-pa-id')!.valueString!;

    const decided = await review(`/${pended.id}/decision`, { decision: 'deny', reviewer: 'Dr. R. Okafor (medical director)', reason: 'No evidence for more than 28 mcg/day was submitted' }).expect(200);
    expect(decided.body.reviewAction).toBe('A3');
    const record = await storage.getOrderRecord(key);
    expect(record?.state).toBe('approved');
    expect(record?.authorization?.number).toBe(number);
    expect(pa((await sign(order)).ext, 'satisfied-pa-id')!.valueString).toBe(number);
  });

  it('an unchanged re-sign after a PAS request at three times the limit does not certify that request', async () => {
    const { order, sign, submit } = setUp();
    expect(pa((await sign(order)).ext, 'pa-needed')!.valueCode).toBe('satisfied');
    const over = requestAt(84, 12);
    expect(reviewActions(claimResponseOf((await submit(over)).body))).toEqual([`${X12}#A4`]);
    expect(pa((await sign(order)).ext, 'pa-needed')!.valueCode).toBe('satisfied');
    const again = claimResponseOf((await submit(over)).body);
    expect(reviewActions(again)).toEqual([`${X12}#A4`]);
    expect(authorizedQuantity(again)).toBeUndefined();
  });
});

/**
 * A Claim Update of `prior` (PAS 2.2.1 profile-claim-update; the prior Claim in the Bundle, spec-65) whose item 1 is
 * changed (infoChanged) and whose order is now at `mcgPerDay`.
 */
function doseUpdateOf(prior: Bundle, mcgPerDay: number): Bundle {
  const priorEntry = prior.entry![0];
  const priorClaim = priorEntry.resource as Claim;
  const item = structuredClone(priorClaim.item![0]);
  item.extension = [...(item.extension ?? []), { url: `${PAS}/extension-infoChanged`, valueCode: 'changed' }];
  item.quantity = { value: mcgPerDay * 28, unit: 'ug', system: 'http://unitsofmeasure.org', code: 'ug' };
  const claim: Claim = {
    ...structuredClone(priorClaim),
    id: 'claim-update-dose',
    meta: { profile: [`${PAS}/profile-claim-update`] },
    identifier: [{ system: 'urn:trnorg:1122334455', value: 'TRN-update-dose' }],
    related: [{ claim: { reference: priorEntry.fullUrl }, relationship: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship', code: 'prior' }] } }],
    item: [item],
  };
  const rest = prior.entry!.slice(1).map((e) => (e.resource?.resourceType === 'MedicationRequest' ? { ...e, resource: atDose(e.resource, mcgPerDay) } : e));
  return {
    resourceType: 'Bundle',
    identifier: { system: 'urn:ehr.example.org:pas-transaction', value: 'update-dose' },
    type: 'collection',
    timestamp: prior.timestamp,
    entry: [{ fullUrl: 'https://ehr.example.org/fhir/Claim/claim-update-dose', resource: claim }, priorEntry, ...rest],
  };
}

describe('H1 through a Claim Update', () => {
  it('an approved request updated to 60 mcg/day is pended; the order re-signed at 28 mcg/day does not certify the update', async () => {
    const { order, sign, submit, queue } = setUp();
    const first = requestAt(28);
    const approved = claimResponseOf((await submit(first)).body);
    expect(reviewActions(approved)).toEqual([`${X12}#A1`]);
    const update = doseUpdateOf(first, 60);
    const pended = claimResponseOf((await submit(update)).body);
    expect(reviewActions(pended)).toEqual([`${X12}#A4`]);

    expect(pa((await sign(order)).ext, 'pa-needed')!.valueCode).toBe('satisfied');
    const again = claimResponseOf((await submit(update)).body);
    expect(reviewActions(again)).toEqual([`${X12}#A4`]);
    expect(authorizedQuantity(again)).toBeUndefined();
    expect(await queue()).toContain(pended.id);
  });
});

describe("H2: a reviewer's approval certifies what the reviewer approved, not more", () => {
  it('approved at 56 mcg/day for 2 cycles: a request at 112 mcg/day for 9 cycles is pended for review with the approval intact; the same or less is certified', async () => {
    const { storage, key, submit, review, read, queue } = setUp();
    const first = claimResponseOf((await submit(requestAt(56, 2))).body);
    expect(reviewActions(first)).toEqual([`${X12}#A4`]);
    const approved = await review(`/${first.id}/decision`, { decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: '56 mcg/day justified by attached literature for this patient' }).expect(200);
    const number: string = approved.body.preAuthRef;
    expect(number).toMatch(/^PA-CENTENE-/);

    // More than reviewed: pended, saying so; the order's approval stands.
    const more = claimResponseOf((await submit(requestAt(112, 9))).body);
    expect(reviewActions(more)).toEqual([`${X12}#A4`]);
    expect(more.preAuthRef).toBeUndefined();
    expect(authorizedQuantity(more)).toBeUndefined();
    const view = (await read(more.id!)).body;
    expect(view.status).toBe('pended');
    expect(JSON.stringify(view)).toContain(`asks more than authorization ${number}`);
    expect(await queue()).toContain(more.id);
    const record = await storage.getOrderRecord(key);
    expect(record?.state).toBe('approved');
    expect(record?.authorization?.number).toBe(number);

    // The same dose for more cycles (a larger quantity) is more too.
    expect(reviewActions(claimResponseOf((await submit(requestAt(56, 9))).body))).toEqual([`${X12}#A4`]);

    // The same request again under new identifiers, or a lower dose over the limit: the reviewer's approval answers.
    const same = claimResponseOf((await submit(requestAt(56, 2))).body);
    expect(reviewActions(same)).toEqual([`${X12}#A1`]);
    expect(same.preAuthRef).toBe(number);
    const less = claimResponseOf((await submit(requestAt(42, 2))).body);
    expect(reviewActions(less)).toEqual([`${X12}#A1`]);
    expect(less.preAuthRef).toBe(number);

    // The reviewer approves the larger request: the order's one number covers it from now on.
    const granted = await review(`/${more.id}/decision`, { decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: 'Escalation per the attached protocol amendment' }).expect(200);
    expect(granted.body.preAuthRef).toBe(number);
    const later = claimResponseOf((await submit(requestAt(112, 9))).body);
    expect(reviewActions(later)).toEqual([`${X12}#A1`]);
    expect(later.preAuthRef).toBe(number);
  });

  it('only what the order asks is compared (review s40 L6): the patient weighed heavier since the approval asks nothing more of it; a higher dose does', async () => {
    // 40 kg (Centene weight class below 45 kg: at most 15 mcg/m²/day × BSA, CP.PHAR.312 V): 56 mcg/day is over it.
    const { submit, review } = setUp();
    const first = claimResponseOf((await submit(requestAt(56, 2, { weightKg: 40 }))).body);
    expect(reviewActions(first)).toEqual([`${X12}#A4`]);
    const approved = await review(`/${first.id}/decision`, { decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: '56 mcg/day per the attached protocol amendment' }).expect(200);
    const number: string = approved.body.preAuthRef;

    // 43 kg a week later: a larger weight and BSA were read as asking more, and the same request was pended again.
    const heavier = claimResponseOf((await submit(requestAt(56, 2, { weightKg: 43 }))).body);
    expect(reviewActions(heavier)).toEqual([`${X12}#A1`]);
    expect(heavier.preAuthRef).toBe(number);
    const higher = claimResponseOf((await submit(requestAt(60, 2, { weightKg: 43 }))).body);
    expect(reviewActions(higher)).toEqual([`${X12}#A4`]);
  });
});

describe("QA s40 F7: signing after a reviewer's approval answers it only for what the reviewer approved", () => {
  /** The order at `mcgPerDay` for `cycles` 28-day cycles (dispenseRequest.numberOfRepeatsAllowed = cycles - 1). */
  const forCycles = (o: MedicationRequest, cycles: number): MedicationRequest => ({ ...o, dispenseRequest: { ...o.dispenseRequest, numberOfRepeatsAllowed: cycles - 1 } });

  it('approved on review at 56 mcg/day: the order signed at 56, 42 or 28 answers the approval; at 112 mcg/day or for 21 cycles a limit review naming it, the approval intact', async () => {
    const { storage, order, key, sign, submit, review } = setUp();
    const pended = claimResponseOf((await submit(requestAt(56, 2))).body);
    expect(reviewActions(pended)).toEqual([`${X12}#A4`]);
    const approved = await review(`/${pended.id}/decision`, { decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: '56 mcg/day justified by attached literature for this patient' }).expect(200);
    const number: string = approved.body.preAuthRef;

    // The order the reviewer approved, and less of it: the approval, its number.
    for (const dose of [56, 42, 28]) {
      const signed = await sign(atDose(order, dose));
      expect(pa(signed.ext, 'pa-needed')!.valueCode, `${dose} mcg/day`).toBe('satisfied');
      expect(pa(signed.ext, 'satisfied-pa-id')!.valueString).toBe(number);
    }

    // More than reviewed: a limit review of its own, saying which approval it asks more of; the approval stands.
    for (const [what, o] of [['112 mcg/day', atDose(order, 112)], ['21 cycles', forCycles(atDose(order, 56), 21)]] as const) {
      const signed = await sign(o);
      expect(pa(signed.ext, 'pa-needed')!.valueCode, what).toBe('auth-needed');
      expect(pa(signed.ext, 'satisfied-pa-id'), what).toBeUndefined();
      expect(JSON.stringify(signed.body.cards), what).toContain(`asks more than authorization ${number}`);
      const record = await storage.getOrderRecord(key);
      expect(record?.state).toBe('approved');
      expect(record?.authorization?.number).toBe(number);
    }
    expect(pa((await sign(atDose(order, 56))).ext, 'satisfied-pa-id')!.valueString).toBe(number);
  });
});

/**
 * A reviewer's approval answers with the period the reviewer granted wherever the order's approval is read again
 * (docs/design.md §8: "A PAS request for an order that already has a decision returns that decision"): the request
 * decided, a later request reusing the approval, `$inquire` and signing (review s40 L3: a period given beside the
 * order's approval was dropped, and the order answered the period it was approved for at signing).
 */
describe("the reviewer's period", () => {
  const REVIEWER = 'Dr. R. Okafor (medical director)';
  const PERIOD = { start: '2026-11-23', end: '2027-08-31' };

  function withInquiry() {
    const loop = setUp();
    /** The stored request's answer now, found by `$inquire` with its Bundle identifier. */
    const inquire = async (b: Bundle) => {
      const res = await request(loop.app).post('/fhir/Claim/$inquire').send(inquiryParameters({ identifier: b.identifier as { system: string; value: string } })).expect(200);
      return claimResponseOf(res.body.parameter[0].resource);
    };
    /** Signs as a CRD 2.2 client, whose coverage-information carries the approval's `expiry-date`. */
    const sign = (o: MedicationRequest) => loop.sign(o, { extension: { 'davinci-crd.requestedVersion': '2.2' } });
    return { ...loop, inquire, sign };
  }

  it('beside the approval at signing: the reviewer approving the 56 mcg/day request for a period keeps the number and widens its period to that period\'s end for PAS, $inquire, later requests and signing, never moving its start (review s41 F8)', async () => {
    const { storage, order, key, sign, submit, review, inquire } = withInquiry();
    const over = requestAt(56);
    const pended = claimResponseOf((await submit(over)).body);
    expect(reviewActions(pended)).toEqual([`${X12}#A4`]);
    const signed = await sign(order);
    const number = pa(signed.ext, 'satisfied-pa-id')!.valueString!;
    expect(pa(signed.ext, 'expiry-date')!.valueDate).not.toBe(PERIOD.end);
    // The approval at signing runs from the order's start, before the reviewer's period starts: cycle 1 may already
    // be dispensed and billed under the number, so the reviewer's period adds to it and takes nothing from it.
    const held = (await storage.getOrderRecord(key))!.authorization!;
    expect(held.start < PERIOD.start).toBe(true);
    const widened = { start: held.start, end: PERIOD.end };

    const decided = await review(`/${pended.id}/decision`, { decision: 'approve', reviewer: REVIEWER, reason: '56 mcg/day for 9 months per the attached protocol', period: PERIOD }).expect(200);
    expect(decided.body.preAuthRef).toBe(number);
    expect(decided.body.preAuthPeriod).toEqual(widened);
    expect((await storage.getOrderRecord(key))?.authorization).toEqual({ number, ...widened });

    const inquired = await inquire(over);
    expect(reviewActions(inquired)).toEqual([`${X12}#A1`]);
    expect(inquired.preAuthRef).toBe(number);
    expect(inquired.preAuthPeriod).toEqual(widened);

    const later = claimResponseOf((await submit(requestAt(56))).body);
    expect(reviewActions(later)).toEqual([`${X12}#A1`]);
    expect(later.preAuthPeriod).toEqual(widened);

    const resigned = await sign(order);
    expect(pa(resigned.ext, 'satisfied-pa-id')!.valueString).toBe(number);
    expect(pa(resigned.ext, 'expiry-date')!.valueDate).toBe(PERIOD.end);
  });

  it("a reviewer's approval reused for later requests answers the reviewer's period, and a second reviewer's period for more extends it", async () => {
    const { storage, key, order, sign, submit, review, inquire } = withInquiry();
    const first = claimResponseOf((await submit(requestAt(56, 2))).body);
    const approved = await review(`/${first.id}/decision`, { decision: 'approve', reviewer: REVIEWER, reason: '56 mcg/day per the attached literature', period: PERIOD }).expect(200);
    const number: string = approved.body.preAuthRef;
    expect(approved.body.preAuthPeriod).toEqual(PERIOD);

    const again = requestAt(56, 2);
    const reused = claimResponseOf((await submit(again)).body);
    expect(reviewActions(reused)).toEqual([`${X12}#A1`]);
    expect(reused.preAuthPeriod).toEqual(PERIOD);
    expect((await inquire(again)).preAuthPeriod).toEqual(PERIOD);
    expect(pa((await sign(atDose(order, 56))).ext, 'expiry-date')!.valueDate).toBe(PERIOD.end);

    // More than approved, pended beside the approval; the reviewer approves it for a longer period.
    const longer = { start: '2026-11-23', end: '2027-11-22' };
    const more = requestAt(112, 9);
    const pended = claimResponseOf((await submit(more)).body);
    expect(reviewActions(pended)).toEqual([`${X12}#A4`]);
    const granted = await review(`/${pended.id}/decision`, { decision: 'approve', reviewer: REVIEWER, reason: 'Escalation per the attached protocol amendment', period: longer }).expect(200);
    expect(granted.body.preAuthRef).toBe(number);
    expect(granted.body.preAuthPeriod).toEqual(longer);
    expect((await storage.getOrderRecord(key))?.authorization).toEqual({ number, ...longer });
    expect((await inquire(more)).preAuthPeriod).toEqual(longer);
    expect(claimResponseOf((await submit(requestAt(112, 9))).body).preAuthPeriod).toEqual(longer);
    expect(pa((await sign(atDose(order, 112))).ext, 'expiry-date')!.valueDate).toBe(longer.end);
  });
});

describe("DTR after a reviewer's approval answers it only for what the reviewer approved", () => {
  /** The order at `mcgPerDay` for `cycles` 28-day cycles (dispenseRequest.numberOfRepeatsAllowed = cycles - 1). */
  const forCycles = (o: MedicationRequest, cycles: number): MedicationRequest => ({ ...o, dispenseRequest: { ...o.dispenseRequest, numberOfRepeatsAllowed: cycles - 1 } });

  /**
   * The order signed as `o`, then its DTR 2.2 package's pre-filled response completed and sent
   * (POST /QuestionnaireResponse): the coverage-information of the decided response.
   */
  async function signedAndAnswered(loop: ReturnType<typeof setUp>, o: MedicationRequest) {
    const signed = (await loop.sign(o)).body as unknown as { systemActions: { resource: MedicationRequest }[] };
    const coverage = storyResources(STORY).find((r) => r.resourceType === 'Coverage');
    const draft = await packageDraft(loop.app, coverage, signed.systemActions[0].resource);
    const created = await request(loop.app).post('/fhir/QuestionnaireResponse').set('Content-Type', 'application/fhir+json').send(JSON.stringify({ ...draft, status: 'completed' })).expect(201);
    return coverageInfo(created.body as QuestionnaireResponse);
  }

  /**
   * The order signed as `o`, then completed through `$next-question` (DTR adaptive form): a bare adaptive response
   * naming the order, its Coverage and the signing's coverage-assertion-id, its rounds sent back until it comes back
   * completed. The coverage-information of the completed response.
   */
  async function signedAndAdapted(loop: ReturnType<typeof setUp>, o: MedicationRequest) {
    const signed = await loop.sign(o);
    const coverage = storyResources(STORY).find((r) => r.resourceType === 'Coverage')!;
    let qr: QuestionnaireResponse = {
      ...bareAdaptiveResponse('https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11'),
      subject: { reference: `Patient/${loop.key.patientId}` },
      extension: [
        { url: 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/qr-context', valueReference: { reference: `Coverage/${coverage.id}` } },
        { url: 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/qr-context', valueReference: { reference: loop.key.orderRef } },
        { url: COVERAGE_INFO, extension: [pa(signed.ext, 'coverage-assertion-id')!] },
      ],
    };
    for (let round = 0; qr.status !== 'completed'; round++) {
      expect(round, 'the form completes').toBeLessThan(10);
      qr = (await request(loop.app).post('/fhir/Questionnaire/$next-question').set('Content-Type', 'application/fhir+json').send(JSON.stringify(qr)).expect(200)).body as QuestionnaireResponse;
    }
    return coverageInfo(qr);
  }

  it('approved on review at 56 mcg/day × 2 cycles: a response for the order at 56 answers the approval; at 112 mcg/day or for 21 cycles a limit review naming it, the approval intact', async () => {
    const loop = setUp();
    const { storage, order, key, submit, review } = loop;
    const pended = claimResponseOf((await submit(requestAt(56, 2))).body);
    expect(reviewActions(pended)).toEqual([`${X12}#A4`]);
    const approved = await review(`/${pended.id}/decision`, { decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: '56 mcg/day justified by attached literature for this patient' }).expect(200);
    const number: string = approved.body.preAuthRef;

    // The order the reviewer approved: the approval, its number.
    const same = await signedAndAnswered(loop, atDose(order, 56));
    expect(sub(same, 'pa-needed')?.valueCode).toBe('satisfied');
    expect(sub(same, 'satisfied-pa-id')?.valueString).toBe(number);

    // More than reviewed, sent as a response or completed through $next-question: a limit review of its own, saying
    // which approval it asks more of; the approval stands.
    for (const [what, o, answer] of [
      ['112 mcg/day', atDose(order, 112), signedAndAnswered],
      ['21 cycles', forCycles(atDose(order, 56), 21), signedAndAnswered],
      ['112 mcg/day ($next-question)', atDose(order, 112), signedAndAdapted],
    ] as const) {
      const answered = await answer(loop, o);
      expect(sub(answered, 'pa-needed')?.valueCode, what).toBe('auth-needed');
      expect(sub(answered, 'satisfied-pa-id'), what).toBeUndefined();
      expect(reasons(answered).join(' '), what).toContain(`asks more than authorization ${number}`);
      const record = await storage.getOrderRecord(key);
      expect(record?.state).toBe('approved');
      expect(record?.authorization?.number).toBe(number);
      expect(record?.history.at(-1)).toMatchObject({ state: 'approved', source: 'review' });
    }
    expect(sub(await signedAndAnswered(loop, atDose(order, 56)), 'satisfied-pa-id')?.valueString).toBe(number);
    expect(sub(await signedAndAdapted(loop, atDose(order, 56)), 'satisfied-pa-id')?.valueString).toBe(number);
  });
});
