/**
 * PAS Claim Updates (PAS 2.2.1 §"Updating Authorization Requests"; design.md §8 "Claim updates"), over HTTP with
 * request Bundles built from a sandbox story: the Inferno PAS server kit's group 2.4 sequence (an initial request, an
 * update adding an item, an update changing one item and cancelling another, an update cancelling the whole request),
 * each answer covering every item of the request by its sequence; a denied request cannot be updated; another client
 * cannot update a request it did not file; a cancelled item leaves the reviewer's queue and releases its order. On
 * MemoryStorage, embedded PGlite and, with DATABASE_URL, PostgreSQL.
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, Claim, ClaimItem, Extension, MedicationRequest } from '@medplum/fhirtypes';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import type { JWK } from 'jose';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PAYER_API_SCOPES } from '../../src/fhir-api/smart-configuration.js';
import { createStorage } from '../../src/storage/create-storage.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import type { SqlStorage } from '../../src/storage/sql-storage.js';
import type { PasUpdateInput, Storage } from '../../src/storage/storage.js';
import { BASE, buildApp } from '../helpers/app.js';
import { threeStores } from '../helpers/three-stores.js';
import { REVIEW_TOKEN, TODAY, claimResponseOf, inquiryParameters, pasApp, renamed, reviewActions, storyBundle } from './pas-fixtures.js';

const X12 = 'https://codesystem.x12.org/005010/306';
const FHIR_JSON = 'application/fhir+json';
const PAS = 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition';
const EHR = 'https://ehr.example.org/fhir';
const STORY = 'centene-mrd-positive';

/** PAS item extensions of a Claim Update: certificationType (X12 1322) and infoChanged; infoCancelled is a modifier. */
const certification = (code: 'I' | '3'): Extension => ({
  url: `${PAS}/extension-certificationType`,
  valueCodeableConcept: { coding: [{ system: 'https://codesystem.x12.org/005010/1322', code, display: code === '3' ? 'Cancel' : 'Initial' }] },
});
const infoChanged = (mode: 'added' | 'changed'): Extension => ({ url: `${PAS}/extension-infoChanged`, valueCode: mode });
const infoCancelled: Extension = { url: `${PAS}/modifierextension-infoCancelled`, valueBoolean: true };

/** The story's order at a higher daily dose (56 mcg/day, over Centene's 28 mcg/day limit): a clinical review. */
function overDose(order: MedicationRequest, id: string): MedicationRequest {
  const dosage = structuredClone(order.dosageInstruction![0]);
  dosage.text = '56 mcg/day continuous IV infusion, days 1-28 of a 42-day cycle';
  dosage.doseAndRate![0].doseQuantity = { value: 56, unit: 'mcg/d', system: 'http://unitsofmeasure.org', code: 'ug/d' };
  return { ...structuredClone(order), id, dosageInstruction: [dosage] };
}

/** A Claim item for blinatumomab (HCPCS J9039) asking for `orderId`, with the given extensions. */
function item(sequence: number, orderId: string, extension: Extension[] = [], more: Partial<ClaimItem> = {}): ClaimItem {
  return {
    sequence,
    extension: [{ url: `${PAS}/extension-requestedService`, valueReference: { reference: `MedicationRequest/${orderId}` } }, certification('I'), ...extension],
    category: { coding: [{ system: 'https://codesystem.x12.org/005010/1365', code: '1', display: 'Medical Care' }] },
    productOrService: { coding: [{ system: 'https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets', code: 'J9039', display: 'Injection, blinatumomab, 1 microgram' }] },
    quantity: { value: 784, unit: 'ug' },
    servicedPeriod: { start: '2026-11-20', end: '2026-12-17' },
    ...more,
  };
}

/** A patient's chart as PAS carries it: the story's resources, with order A (the story's order) and order B (over the limit). */
function orders() {
  const base = storyBundle(STORY, { orderId: `order-a-${randomUUID()}` });
  const a = base.entry!.find((e) => e.resource?.resourceType === 'MedicationRequest' && e.resource.id?.startsWith('order-a-'))!.resource as MedicationRequest;
  const b = overDose(a, `order-b-${randomUUID()}`);
  return { base, a: a.id!, b: b.id!, extra: { fullUrl: `${EHR}/MedicationRequest/${b.id}`, resource: b } };
}

/** The initial request: the story's Bundle with one item (order A), order B in the chart, a fresh Claim identifier. */
function initialRequest(chart: ReturnType<typeof orders>): Bundle {
  const bundle = structuredClone(chart.base);
  const claim = bundle.entry![0].resource as Claim;
  claim.item = [item(1, chart.a)];
  bundle.entry!.push(structuredClone(chart.extra));
  return bundle;
}

/**
 * A Claim Update of `prior` (the request Bundle it updates): a new Claim with its own identifier, `related.claim`
 * naming the prior Claim, which the Bundle includes (PAS spec-65) without the prior's own prior (spec-66), and every
 * item as it now stands (spec-68). `identifier`: the Bundle identifier (default a new one).
 */
function updateOf(prior: Bundle, items: ClaimItem[], opts: { cancelAll?: boolean; identifier?: string } = {}): Bundle {
  const priorEntry = prior.entry![0];
  const priorClaim = priorEntry.resource as Claim;
  const claim: Claim = {
    ...structuredClone(priorClaim),
    id: `update-${randomUUID().slice(0, 8)}`,
    meta: { profile: [`${PAS}/profile-claim-update`] },
    identifier: [{ system: 'urn:trnorg:1122334455', value: `TRN-${randomUUID().slice(0, 8)}` }],
    created: `${TODAY}T11:30:00Z`,
    related: [{ claim: { reference: priorEntry.fullUrl }, relationship: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship', code: 'prior' }] } }],
    ...(opts.cancelAll ? { extension: [certification('3')] } : {}),
    item: items,
  };
  const rest = prior.entry!.slice(1).filter((e) => e.resource?.resourceType !== 'Claim');
  const { related: _related, ...priorWithoutItsPrior } = priorClaim;
  return {
    resourceType: 'Bundle',
    identifier: { system: 'urn:ehr.example.org:pas-transaction', value: opts.identifier ?? randomUUID() },
    type: 'collection',
    timestamp: `${TODAY}T11:30:00Z`,
    entry: [{ fullUrl: `${EHR}/Claim/${claim.id}`, resource: claim }, { fullUrl: priorEntry.fullUrl, resource: priorClaim.related ? priorClaim : priorWithoutItsPrior }, ...rest],
  };
}

/** Each ClaimResponse item as `sequence:code`. */
const itemsOf = (body: Bundle) => {
  const cr = claimResponseOf(body);
  const codes = reviewActions(cr);
  return (cr.item ?? []).map((i, n) => `${i.itemSequence}:${codes[n].replace(`${X12}#`, '')}`);
};
const itemNumbers = (body: Bundle) =>
  (claimResponseOf(body).item ?? []).map((i) => i.adjudication?.[0]?.extension?.[0]?.extension?.find((e) => e.url === 'number')?.valueString);

const stores = threeStores('update');
const { url, schema, storages } = stores;

describe.each(storages)('PAS Claim Updates (%s)', (_name, storage) => {
  const app = () => {
    const s = storage();
    const { app } = pasApp(s);
    return {
      storage: s,
      submit: (body: unknown) => request(app).post('/fhir/Claim/$submit').set('Content-Type', FHIR_JSON).send(JSON.stringify(body)),
      inquire: (body: unknown) => request(app).post('/fhir/Claim/$inquire').set('Content-Type', FHIR_JSON).send(JSON.stringify(body)),
      pended: async () => ((await request(app).get('/review/pended').set('Authorization', `Bearer ${REVIEW_TOKEN}`)).body.pended as { id: string }[]).map((p) => p.id),
      decide: (id: string, body: object) => request(app).post(`/review/${id}/decision`).set('Authorization', `Bearer ${REVIEW_TOKEN}`).send(body),
    };
  };

  it('answers the kit group 2.4 sequence: initial, add an item, change one and cancel another, cancel all; every answer covers every item by its sequence', async () => {
    const { submit, inquire, pended, storage: s } = app();
    const chart = orders();

    // 1. The initial request: order A holds every criterion at signing dose: certified, with a number.
    const initial = initialRequest(chart);
    const first = await submit(initial);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const cr1 = claimResponseOf(first.body);
    expect(itemsOf(first.body)).toEqual(['1:A1']);
    const number = cr1.preAuthRef!;
    expect(number).toBeTruthy();

    // 2. Add item 2 (order B, over the dose limit): pended for a clinical review; item 1 keeps its number.
    const added = updateOf(initial, [item(1, chart.a), item(2, chart.b, [infoChanged('added')])]);
    const second = await submit(added);
    expect(second.status, JSON.stringify(second.body)).toBe(200);
    expect(itemsOf(second.body)).toEqual(['1:A1', '2:A4']);
    expect(claimResponseOf(second.body).id).toBe(cr1.id);
    expect(itemNumbers(second.body)[0]).toBe(number);
    expect(await pended()).toContain(cr1.id);
    expect((await s.getOrderRecord({ payer: 'centene', patientId: STORY, orderRef: `MedicationRequest/${chart.b}`, drug: 'blinatumomab' }))?.state).toBe('pended');

    // 3. Change item 1 (a shorter service period) and cancel item 2: item 1 is decided again and keeps its number
    // (never issued twice), item 2 is C, and the request leaves the reviewer's queue; order B is released.
    const changed = updateOf(added, [
      item(1, chart.a, [infoChanged('changed')], { servicedPeriod: { start: '2026-11-20', end: '2026-12-10' }, quantity: { value: 588, unit: 'ug' } }),
      { ...item(2, chart.b, [infoChanged('changed')]), modifierExtension: [infoCancelled], extension: [...item(2, chart.b).extension!.filter((e) => !e.url.endsWith('certificationType')), certification('3'), infoChanged('changed')] },
    ]);
    const third = await submit(changed);
    expect(third.status, JSON.stringify(third.body)).toBe(200);
    expect(itemsOf(third.body)).toEqual(['1:A1', '2:C']);
    expect(itemNumbers(third.body)[0]).toBe(number);
    expect(claimResponseOf(third.body).preAuthRef).toBe(number);
    expect(await pended()).not.toContain(cr1.id);
    const orderB = await s.getOrderRecord({ payer: 'centene', patientId: STORY, orderRef: `MedicationRequest/${chart.b}`, drug: 'blinatumomab' });
    expect(orderB?.state).toBe('auth-needed');
    expect(orderB?.history.at(-1)?.reason).toMatch(/cancelled by its submitter/);

    // 4. Cancel the whole request (certificationType 3 on the Claim): every item is C, the approval is withdrawn.
    const cancelAll = updateOf(changed, [], { cancelAll: true });
    const fourth = await submit(cancelAll);
    expect(fourth.status, JSON.stringify(fourth.body)).toBe(200);
    expect(itemsOf(fourth.body)).toEqual(['1:C', '2:C']);
    expect(claimResponseOf(fourth.body).preAuthRef).toBeUndefined();
    expect(claimResponseOf(fourth.body).disposition).toBe('Cancelled by the submitter');
    expect(fourth.body.identifier).toEqual(cancelAll.identifier);
    expect(claimResponseOf(fourth.body).request).toEqual({ identifier: (cancelAll.entry![0].resource as Claim).identifier![0] });
    const orderA = await s.getOrderRecord({ payer: 'centene', patientId: STORY, orderRef: `MedicationRequest/${chart.a}`, drug: 'blinatumomab' });
    expect(orderA?.state).toBe('auth-needed');
    expect(orderA?.authorization).toBeUndefined();

    // $inquire by the first Claim's identifier, the authorization number or REF-NT answers the request as it now stands.
    for (const q of [{ identifier: (initial.entry![0].resource as Claim).identifier![0] as { system: string; value: string } }, { preAuthRef: number }, { preAuthRef: cr1.id! }]) {
      const inq = await inquire(inquiryParameters(q));
      expect(inq.status).toBe(200);
      expect(inq.body.parameter).toHaveLength(1);
      expect(itemsOf(inq.body.parameter[0].resource)).toEqual(['1:C', '2:C']);
    }
    // A resend of any step answers the current state, applies nothing again, and is never a 409.
    for (const again of [initial, added, changed, cancelAll]) {
      const res = await submit(again);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(itemsOf(res.body)).toEqual(['1:C', '2:C']);
    }
  });

  it('takes updates sent under the first request\'s Bundle identifier (as the kit\'s presets do); another request under it stays a 409', async () => {
    const { submit } = app();
    const chart = orders();
    const initial = initialRequest(chart);
    const id = initial.identifier!.value!;
    expect(itemsOf((await submit(initial).expect(200)).body)).toEqual(['1:A1']);
    const added = updateOf(initial, [item(1, chart.a), item(2, chart.b, [infoChanged('added')])], { identifier: id });
    expect(itemsOf((await submit(added).expect(200)).body)).toEqual(['1:A1', '2:A4']);
    const cancel = updateOf(added, [], { cancelAll: true, identifier: id });
    expect(itemsOf((await submit(cancel).expect(200)).body)).toEqual(['1:C', '2:C']);
    // Other content under that identifier that is not an update of it: one identifier names one request.
    const other = initialRequest(orders());
    other.identifier = { ...initial.identifier! };
    expect((await submit(other)).status).toBe(409);
  });

  it('refuses to update a denied request (422, an OperationOutcome saying to send a new request), and an update naming no known request (404)', async () => {
    const { submit } = app();
    const denied = storyBundle('mmm-dlbcl-offlabel', { orderId: `order-${randomUUID()}` });
    expect(reviewActions(claimResponseOf((await submit(denied).expect(200)).body))).toEqual([`${X12}#A3`]);
    const claim = denied.entry![0].resource as Claim;
    const res = await submit(updateOf(denied, [{ ...claim.item![0], extension: [...claim.item![0].extension!, infoChanged('changed')], quantity: { value: 392, unit: 'ug' } }]));
    expect(res.status).toBe(422);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0]).toMatchObject({ code: 'business-rule' });
    expect(res.body.issue[0].diagnostics).toMatch(/denied; a denied request cannot be updated .*new request/);

    // An update of a request this payer never received (its prior Claim was never submitted).
    const chart = orders();
    const unknown = await submit(updateOf(initialRequest(chart), [item(1, chart.a, [infoChanged('changed')])]));
    expect(unknown.status).toBe(404);
    expect(unknown.body.issue[0].expression).toEqual(['Claim.related.claim']);
  });

  it('a reviewer decides an item an update added to a request reviewed before; the item decided then keeps its number', async () => {
    const { submit, pended, decide } = app();
    const chart = orders();
    // Item 1 asks for order B (over the limit): pended, then approved on clinical review.
    const initial = initialRequest(chart);
    (initial.entry![0].resource as Claim).item = [item(1, chart.b)];
    const cr = claimResponseOf((await submit(initial).expect(200)).body);
    expect(reviewActions(cr)).toEqual([`${X12}#A4`]);
    const first = await decide(cr.id!, { decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: '56 mcg/day for a documented relapse per the treating oncologist' });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const reviewed = first.body.preAuthRef as string;

    // An update adds item 2 for another order over the limit: pended again, for item 2 only.
    const c = overDose((initial.entry!.find((e) => e.resource?.id === chart.a)!.resource as MedicationRequest), `order-c-${randomUUID()}`);
    const withC = structuredClone(initial);
    withC.entry!.push({ fullUrl: `${EHR}/MedicationRequest/${c.id}`, resource: c });
    const added = updateOf(withC, [item(1, chart.b), item(2, c.id!, [infoChanged('added')])]);
    const res = await submit(added);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(itemsOf(res.body)).toEqual(['1:A1', '2:A4']);
    expect(itemNumbers(res.body)[0]).toBe(reviewed);
    expect(await pended()).toContain(cr.id);

    const second = await decide(cr.id!, { decision: 'deny', reviewer: 'Dr. R. Okafor (medical director)', reason: 'A second concurrent course is not supported' });
    expect(second.status, JSON.stringify(second.body)).toBe(200);
    expect(second.body.items.map((i: { reviewAction: string }) => i.reviewAction)).toEqual(['A1', 'A3']);
    expect(second.body.items[0].authorization.number).toBe(reviewed);
  });

  it('decides a pended item again when an update brings the documentation it waited for (a QuestionnaireResponse added as supportingInfo)', async () => {
    const { submit, pended } = app();
    const orderId = `order-${randomUUID()}`;
    const waiting = storyBundle('centene-missing-mrd', { orderId });
    const cr = claimResponseOf((await submit(waiting).expect(200)).body);
    expect(reviewActions(cr)).toEqual([`${X12}#A4`]);

    const answered = storyBundle('centene-missing-mrd', { orderId, answers: { 'mrd-percent': [{ valueDecimal: 0.52 }] } });
    const answeredClaim = answered.entry![0].resource as Claim;
    const update = updateOf(waiting, (waiting.entry![0].resource as Claim).item!);
    (update.entry![0].resource as Claim).supportingInfo = answeredClaim.supportingInfo!.map((i) => ({ ...i, extension: [infoChanged('added')] }));
    update.entry!.push(answered.entry!.find((e) => e.resource?.resourceType === 'QuestionnaireResponse')!);
    const res = await submit(update);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(itemsOf(res.body)).toEqual(['1:A1']);
    expect(claimResponseOf(res.body).id).toBe(cr.id);
    expect(claimResponseOf(res.body).preAuthRef).toBeTruthy();
    expect(await pended()).not.toContain(cr.id);
  });

  it('cancelling a pended request takes it off the reviewer\'s queue: a decision on it is a 409, and its order can be asked for afresh', async () => {
    const { submit, pended, decide } = app();
    const pendedRequest = storyBundle('centene-missing-mrd', { orderId: `order-${randomUUID()}` });
    const cr = claimResponseOf((await submit(pendedRequest).expect(200)).body);
    expect(reviewActions(cr)).toEqual([`${X12}#A4`]);
    expect(await pended()).toContain(cr.id);

    const cancel = await submit(updateOf(pendedRequest, [], { cancelAll: true }));
    expect(cancel.status, JSON.stringify(cancel.body)).toBe(200);
    expect(itemsOf(cancel.body)).toEqual(['1:C']);
    expect(await pended()).not.toContain(cr.id);
    const late = await decide(cr.id!, { decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: 'MRD on the attached report' });
    expect(late.status).toBe(409);

    // The order is no longer held by the cancelled request: a new request for it is its own, pended anew.
    const again = storyBundle('centene-missing-mrd', { orderId: (pendedRequest.entry![0].resource as Claim).item![0].extension![0].valueReference!.reference!.split('/')[1] });
    const fresh = claimResponseOf((await submit(again).expect(200)).body);
    expect(fresh.id).not.toBe(cr.id);
    expect(reviewActions(fresh)).toEqual([`${X12}#A4`]);
    expect(await pended()).toContain(fresh.id);
  });

  it('cancelling one of two requests that carry the order\'s approval (a resend under a new Bundle identifier) leaves the approval the other still certifies; cancelling the last withdraws it', async () => {
    const { storage: s, submit, inquire } = app();
    const orderId = `order-${randomUUID()}`;
    const key = { payer: 'centene', patientId: STORY, orderRef: `MedicationRequest/${orderId}`, drug: 'blinatumomab' };
    const claimIdOf = (bundle: Bundle) => (bundle.entry![0].resource as Claim).identifier![0] as { system: string; value: string };
    const inquiry = async (bundle: Bundle) => (await inquire(inquiryParameters({ identifier: claimIdOf(bundle) })).expect(200)).body.parameter[0].resource as Bundle;
    const first = storyBundle(STORY, { orderId });
    const a = claimResponseOf((await submit(first).expect(200)).body);
    expect(reviewActions(a)).toEqual([`${X12}#A1`]);
    const number = a.preAuthRef!;
    // The EHR resends the request under a new Bundle identifier (a retry after a timeout): the order's decision.
    const resend = storyBundle(STORY, { orderId });
    const b = claimResponseOf((await submit(resend).expect(200)).body);
    expect(b.id).not.toBe(a.id);
    expect(b.preAuthRef).toBe(number);

    // It cancels the duplicate: the first request still certifies the order, which keeps its approval and number.
    expect(itemsOf((await submit(updateOf(resend, [], { cancelAll: true })).expect(200)).body)).toEqual(['1:C']);
    expect(itemsOf(await inquiry(first))).toEqual(['1:A1']);
    expect(claimResponseOf(await inquiry(first)).preAuthRef).toBe(number);
    const held = await s.getOrderRecord(key);
    expect(held?.state).toBe('approved');
    expect(held?.authorization?.number).toBe(number);

    // Cancelling the last request that carries it withdraws it: the order is asked for afresh, with a new number.
    expect(itemsOf((await submit(updateOf(first, [], { cancelAll: true })).expect(200)).body)).toEqual(['1:C']);
    expect((await s.getOrderRecord(key))?.state).toBe('auth-needed');
    const fresh = claimResponseOf((await submit(storyBundle(STORY, { orderId })).expect(200)).body);
    expect(reviewActions(fresh)).toEqual([`${X12}#A1`]);
    expect(fresh.preAuthRef).not.toBe(number);
  });

  it('keeps the approval while another request answers it on an item that is not its first, for a patient with no identifier (review-diff s44 D7)', async () => {
    const { storage: s, submit } = app();
    const chart = orders();
    // Order A for one cycle, and order C, a second such order: both within Centene's four cycles, so both approved.
    // The Patient carries an id but no identifier.
    const orderA = chart.base.entry!.find((e) => e.resource?.id === chart.a)!.resource as MedicationRequest;
    orderA.dispenseRequest = { ...orderA.dispenseRequest, numberOfRepeatsAllowed: 0 };
    const cId = `order-c-${randomUUID()}`;
    const c: MedicationRequest = { ...structuredClone(orderA), id: cId };
    const anonymous = (bundle: Bundle) => {
      for (const e of bundle.entry!) if (e.resource?.resourceType === 'Patient') delete e.resource.identifier;
      return bundle;
    };
    const first = anonymous(initialRequest(chart));
    const a = claimResponseOf((await submit(first).expect(200)).body);
    expect(reviewActions(a)).toEqual([`${X12}#A1`]);
    const number = a.preAuthRef!;
    // Another request asks for order C (a new approval, its preAuthRef) and order A again (answered from A's record).
    const second = renamed(first);
    (second.entry![0].resource as Claim).item = [item(1, cId), item(2, chart.a)];
    second.entry!.push({ fullUrl: `${EHR}/MedicationRequest/${cId}`, resource: c });
    const b = (await submit(second).expect(200)).body as Bundle;
    expect(itemsOf(b), JSON.stringify(claimResponseOf(b).processNote)).toEqual(['1:A1', '2:A1']);
    const [own, echoed] = itemNumbers(b);
    expect(echoed).toBe(number);
    expect(own).not.toBe(number);
    expect(claimResponseOf(b).preAuthRef).toBe(own);

    // Cancelling the first request leaves order A approved: the second still answers its number on item 2.
    expect(itemsOf((await submit(updateOf(first, [], { cancelAll: true })).expect(200)).body)).toEqual(['1:C']);
    const key = { payer: 'centene', patientId: STORY, orderRef: `MedicationRequest/${chart.a}`, drug: 'blinatumomab' };
    expect(await s.getOrderRecord(key)).toMatchObject({ state: 'approved', authorization: { number } });
    // Cancelling the second, the last carrying it, withdraws it.
    expect(itemsOf((await submit(updateOf(second, [], { cancelAll: true })).expect(200)).body)).toEqual(['1:C', '2:C']);
    expect((await s.getOrderRecord(key))?.state).toBe('auth-needed');
  });
});

describe('PAS Claim Updates: only the client that filed a request updates it', () => {
  async function client(id: string) {
    const { privateKey, publicKey } = await generateKeyPair('ES384', { extractable: true });
    return { id, privateKey: privateKey as CryptoKey, jwk: { ...(await exportJWK(publicKey)), kid: `${id}-key`, alg: 'ES384', use: 'sig' } as JWK };
  }

  it("another client's update of the request is answered as for a request never filed (404), and changes nothing", async () => {
    const [a, b] = await Promise.all([client('ehr-a'), client('ehr-b')]);
    const built = buildApp({
      storage: new MemoryStorage(),
      today: TODAY,
      env: { PAYER_API_AUTH: 'required', PAYER_API_CLIENTS: JSON.stringify([a, b].map((c) => ({ clientId: c.id, jwks: { keys: [c.jwk] }, scopes: PAYER_API_SCOPES }))), REVIEW_TOKEN },
    });
    const token = async (c: Awaited<ReturnType<typeof client>>) => {
      const now = Math.floor(Date.now() / 1000);
      const assertion = await new SignJWT({}).setProtectedHeader({ alg: 'ES384', typ: 'JWT', kid: c.jwk.kid! }).setIssuer(c.id).setSubject(c.id).setAudience(`${BASE}/auth/token`).setIssuedAt(now).setExpirationTime(now + 240).setJti(randomUUID()).sign(c.privateKey);
      const res = await request(built.app)
        .post('/auth/token')
        .type('form')
        .send(new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion, scope: PAYER_API_SCOPES.join(' ') }).toString());
      return res.body.access_token as string;
    };
    const [ta, tb] = await Promise.all([token(a), token(b)]);
    const submit = (t: string, body: unknown) => request(built.app).post('/fhir/Claim/$submit').set('Authorization', `Bearer ${t}`).set('Content-Type', FHIR_JSON).send(JSON.stringify(body));

    const chart = orders();
    const initial = initialRequest(chart);
    const cr = claimResponseOf((await submit(ta, initial).expect(200)).body);
    const cancel = updateOf(initial, [], { cancelAll: true });
    const fromB = await submit(tb, cancel);
    expect(fromB.status).toBe(404);
    const never = await submit(tb, updateOf(initialRequest(orders()), [], { cancelAll: true }));
    // The same answer as for a request never filed, but for the identifier named.
    const anonymous = (body: unknown) => JSON.stringify(body).replace(/TRN-[0-9a-f]{8}/g, 'TRN-x');
    expect(never.status).toBe(404);
    expect(anonymous(fromB.body)).toBe(anonymous(never.body));
    // A's request is as it was; A's own cancel applies.
    expect(itemsOf((await submit(ta, initial).expect(200)).body)).toEqual(['1:A1']);
    expect(itemsOf((await submit(ta, cancel).expect(200)).body)).toEqual(['1:C']);
    expect(claimResponseOf((await submit(ta, cancel).expect(200)).body).id).toBe(cr.id);
  });
});

/** Memory storage whose next two updates wait for each other, then apply the cancelling one first. */
class CancelFirst extends MemoryStorage {
  together = 0;
  private waiting: { cancel: boolean; go: () => void }[] = [];

  override async updatePasSubmission(input: PasUpdateInput) {
    if (this.together > 0) {
      this.together--;
      await new Promise<void>((go) => {
        this.waiting.push({ cancel: input.update.kind === 'cancel', go });
        if (this.together > 0) return;
        const order = this.waiting.splice(0).sort((a, b) => Number(b.cancel) - Number(a.cancel));
        void order.reduce((p, w) => p.then(() => (w.go(), new Promise<void>((r) => setTimeout(r, 20)))), Promise.resolve());
      });
    }
    return super.updatePasSubmission(input);
  }
}

describe('PAS Claim Updates racing a cancellation', () => {
  it('records nothing for an update refused because the request was cancelled meanwhile: its new item’s order is not approved', async () => {
    const storage = new CancelFirst();
    const { app } = pasApp(storage);
    const submit = (body: unknown) => request(app).post('/fhir/Claim/$submit').set('Content-Type', FHIR_JSON).send(JSON.stringify(body));
    const chart = orders();
    // The request asks for order B (over the dose limit): pended for a clinical review.
    const initial = structuredClone(chart.base);
    (initial.entry![0].resource as Claim).item = [item(1, chart.b)];
    initial.entry!.push(structuredClone(chart.extra));
    expect(itemsOf((await submit(initial).expect(200)).body)).toEqual(['1:A4']);

    // At once: an update adding item 2 (order A, every criterion held: it would be approved) and a cancellation.
    storage.together = 2;
    const [added, cancelled] = await Promise.all([
      submit(updateOf(initial, [item(1, chart.b), item(2, chart.a, [infoChanged('added')])])),
      submit(updateOf(initial, [], { cancelAll: true })),
    ]);
    expect(itemsOf(cancelled.body)).toEqual(['1:C']);
    // The cancellation came first: the addition is refused (a cancelled request is not updated) ...
    expect(added.status, JSON.stringify(added.body)).toBe(422);
    expect(added.body.issue[0].diagnostics).toMatch(/cancelled/);
    // ... and it left nothing behind: order A has no approval, and no authorization number was issued for it.
    const orderA = await storage.getOrderRecord({ payer: 'centene', patientId: STORY, orderRef: `MedicationRequest/${chart.a}`, drug: 'blinatumomab' });
    expect(orderA?.state).not.toBe('approved');
    expect(orderA?.history.filter((h) => h.source === 'pas') ?? []).toEqual([]);
    expect([...storage.authorizations.values()]).toEqual([]);
  });
});

/**
 * The stores two replicas share, by name, for the describe block it is called in: one MemoryStorage or PGlite store
 * twice (one process), and with DATABASE_URL a second replica on the same PostgreSQL database and schema (opened before
 * the block's tests, closed after).
 */
function replicaPairs(): [string, () => [Storage, Storage]][] {
  let second: SqlStorage | undefined;
  beforeAll(async () => {
    if (url) second = await createStorage({ databaseUrl: url, dataDir: '/nonexistent-unused', schema });
  }, 120_000);
  afterAll(async () => {
    await second?.close();
  });
  return [
    ['MemoryStorage, one process', () => ((m) => [m, m])(new MemoryStorage()) as [Storage, Storage]],
    ['embedded PGlite, one process', () => [stores.pglite, stores.pglite]],
    ...(url ? [['PostgreSQL, two replicas', () => [stores.postgres!, second!]] as [string, () => [Storage, Storage]]] : []),
  ];
}

/**
 * A PAS app on each of two replicas' stores (a pair from replicaPairs), and `submit(n, body)`: `POST
 * /fhir/Claim/$submit` of a body, as FHIR JSON, through replica `n` (0 or 1).
 */
function replicaApps([one, other]: [Storage, Storage]) {
  const apps = [pasApp(one).app, pasApp(other).app];
  return {
    one,
    other,
    submit: (n: 0 | 1, body: unknown) => request(apps[n]).post('/fhir/Claim/$submit').set('Content-Type', FHIR_JSON).send(JSON.stringify(body)),
  };
}

/**
 * Holds the next `count` Claim Updates made through `storages` until all have been made, then lets them go on together
 * (later calls pass straight through): every one of them read the stored requests and the orders' records before any
 * was stored, as when two replicas, or one with interleaved awaits, apply them at the same moment. Returns the undo.
 */
function heldTogether(storages: Storage[], count: number): () => void {
  const waiting: (() => void)[] = [];
  for (const s of new Set(storages)) {
    const update = s.updatePasSubmission.bind(s);
    s.updatePasSubmission = async (input: PasUpdateInput) => {
      if (waiting.length < count) {
        await new Promise<void>((go) => {
          waiting.push(go);
          if (waiting.length === count) for (const w of waiting) w();
        });
      }
      return update(input);
    };
  }
  return () => {
    for (const s of new Set(storages)) delete (s as { updatePasSubmission?: unknown }).updatePasSubmission;
  };
}

describe('PAS Claim Updates: two duplicate requests cancelled at the same time (review-diff s44 D1)', () => {
  const replicas = replicaPairs();

  it.each(replicas)('withdraws the approval both carried once both are cancelled (%s)', async (_name, both) => {
    const { one, other, submit } = replicaApps(both());
    const orderId = `order-${randomUUID()}`;
    const key = { payer: 'centene', patientId: STORY, orderRef: `MedicationRequest/${orderId}`, drug: 'blinatumomab' };
    // A request approved, and the same request resent under a new Bundle identifier: both answer the order's number.
    const first = storyBundle(STORY, { orderId });
    const number = claimResponseOf((await submit(0, first).expect(200)).body).preAuthRef!;
    const resend = storyBundle(STORY, { orderId });
    expect(claimResponseOf((await submit(1, resend).expect(200)).body).preAuthRef).toBe(number);

    // The EHR cancels both at once, one through each replica.
    const undo = heldTogether([one, other], 2);
    try {
      const [a, b] = await Promise.all([submit(0, updateOf(first, [], { cancelAll: true })), submit(1, updateOf(resend, [], { cancelAll: true }))]);
      expect(itemsOf(a.body)).toEqual(['1:C']);
      expect(itemsOf(b.body)).toEqual(['1:C']);
    } finally {
      undo();
    }
    // No request carries the approval any more: it is withdrawn, once, and the order is asked for afresh.
    const record = await one.getOrderRecord(key);
    expect(record?.state).toBe('auth-needed');
    expect(record?.authorization).toBeUndefined();
    expect(record?.history.filter((h) => h.state === 'auth-needed')).toHaveLength(1);
    const fresh = claimResponseOf((await submit(0, storyBundle(STORY, { orderId })).expect(200)).body);
    expect(reviewActions(fresh)).toEqual([`${X12}#A1`]);
    expect(fresh.preAuthRef).not.toBe(number);
  });
});

/**
 * Holds the first Claim Update made through `storages` until a new request is about to be stored, and that request
 * until the update is stored: the request read the order's record (its approval) before the update withdrew it, and
 * is stored after. Returns the undo.
 */
function cancelledWhileAnswered(storages: Storage[]): () => void {
  let arrived!: () => void;
  let stored!: () => void;
  const storing = new Promise<void>((go) => (arrived = go));
  const cancelled = new Promise<void>((go) => (stored = go));
  let holding = { update: true, create: true };
  for (const s of new Set(storages)) {
    const update = s.updatePasSubmission.bind(s);
    const create = s.createPasSubmissionForOrders.bind(s);
    s.updatePasSubmission = async (input: PasUpdateInput) => {
      if (!holding.update) return update(input);
      holding = { ...holding, update: false };
      await storing;
      try {
        return await update(input);
      } finally {
        stored();
      }
    };
    s.createPasSubmissionForOrders = async (...args: Parameters<Storage['createPasSubmissionForOrders']>) => {
      if (!holding.create) return create(...args);
      holding = { ...holding, create: false };
      arrived();
      await cancelled;
      return create(...args);
    };
  }
  return () => {
    for (const s of new Set(storages)) {
      delete (s as { updatePasSubmission?: unknown }).updatePasSubmission;
      delete (s as { createPasSubmissionForOrders?: unknown }).createPasSubmissionForOrders;
    }
  };
}

describe('PAS: the request carrying an approval cancelled while a resend answers it from the order record', () => {
  const replicas = replicaPairs();

  it.each(replicas)('never stores the resend answering a number its order no longer holds: it is decided again (%s)', async (_name, both) => {
    const { one, other, submit } = replicaApps(both());
    const orderId = `order-${randomUUID()}`;
    const key = { payer: 'centene', patientId: STORY, orderRef: `MedicationRequest/${orderId}`, drug: 'blinatumomab' };
    const first = storyBundle(STORY, { orderId });
    const number = claimResponseOf((await submit(0, first).expect(200)).body).preAuthRef!;

    // The request is cancelled through one replica while its resend, under a new Bundle identifier, is decided on the
    // other: the resend reads the order's approval before the cancellation is stored, and is stored after it.
    const undo = cancelledWhileAnswered([one, other]);
    let resent: Bundle;
    try {
      const [cancel, resend] = await Promise.all([submit(0, updateOf(first, [], { cancelAll: true })), submit(1, storyBundle(STORY, { orderId }))]);
      expect(itemsOf(cancel.body)).toEqual(['1:C']);
      resent = resend.body as Bundle;
    } finally {
      undo();
    }
    // The order's record and the resend agree: the resend was decided again after the withdrawal (a new number, the
    // order's), never stored answering the withdrawn one.
    const cr = claimResponseOf(resent);
    expect(reviewActions(cr)).toEqual([`${X12}#A1`]);
    expect(cr.preAuthRef).not.toBe(number);
    expect(await one.getOrderRecord(key)).toMatchObject({ state: 'approved', authorization: { number: cr.preAuthRef } });
  });
});
