/**
 * An approval given in DTR on the form's answers, then the order changed and signed again (docs/design.md §8 "What an
 * approval covers"): signing has not the answers, so the changed order's pathway is unknown and a limit of that pathway
 * is not found exceeded by the chart alone. Judged with the approval's answers, the order over a limit has outgrown
 * the approval: signing reopens the record and answers a limit review (§5 row 3), never the earlier number; the order
 * signed again unchanged keeps its one number. Centene CP.PHAR.312: MRD-positive B-ALL in remission (I.A.4.a), the MRD
 * level missing from the chart and answered in DTR; V Dosage table: 4 cycles a course, 28 mcg/day.
 */
import type { Extension, MedicationRequest, QuestionnaireResponse, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { answering, coverageInfo, packageDraft, reasons, sub } from '../helpers/dtr-package.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';
import { claimResponseOf, reviewActions, storyBundle } from '../pas/pas-fixtures.js';

const FHIR = 'application/fhir+json';
const X12 = 'https://codesystem.x12.org/005010/306';
const TODAY = '2026-11-23';
const STORY = 'centene-missing-mrd';

type App = ReturnType<typeof buildApp>['app'];


/** The story with its order replaced by `order` (the chart otherwise unchanged). */
function withOrder(order: MedicationRequest): Resource[] {
  const resources = storyResources(STORY);
  const base = storyOrder(STORY, resources);
  return resources.map((r) => (r.resourceType === 'MedicationRequest' && r.id === base.id ? order : r));
}

async function sign(app: App, order: MedicationRequest): Promise<{ signed: MedicationRequest; ext: Extension[] }> {
  const res = await request(app).post('/cds-services/priorpath-order-sign').send(orderSignRequest(withOrder(order), order)).expect(200);
  const signed = res.body.systemActions[0].resource as MedicationRequest;
  return { signed, ext: coverageInfo(signed) };
}

/** The signed order's pre-filled response (DTR 2.2 package), with the MRD level the chart lacks answered, completed. */
async function answeredResponse(app: App, signed: MedicationRequest): Promise<QuestionnaireResponse> {
  const coverage = storyResources(STORY).find((r) => r.resourceType === 'Coverage');
  const qr = await packageDraft(app, coverage, signed);
  const item = answering(qr, 'mrd-percent', { valueDecimal: 0.4 });
  return { ...qr, item, status: 'completed' };
}

/** The story's 4-cycle order at 28 mcg/day, approved in DTR on the answered MRD level: its number. */
async function approvedInDtr(app: App, order: MedicationRequest): Promise<string> {
  const { signed, ext } = await sign(app, order);
  expect(sub(ext, 'pa-needed')?.valueCode, 'the chart lacks the MRD level').toBe('auth-needed');
  const qr = await answeredResponse(app, signed);
  const created = (await request(app).post('/fhir/QuestionnaireResponse').set('Content-Type', FHIR).send(JSON.stringify(qr)).expect(201)).body as QuestionnaireResponse;
  const dtr = coverageInfo(created);
  expect(sub(dtr, 'pa-needed')?.valueCode).toBe('satisfied');
  return sub(dtr, 'satisfied-pa-id')!.valueString!;
}

const tenCycles = (order: MedicationRequest): MedicationRequest => ({ ...order, dispenseRequest: { ...order.dispenseRequest, numberOfRepeatsAllowed: 9 } });
function atDose(order: MedicationRequest, ugPerDay: number): MedicationRequest {
  const copy = structuredClone(order);
  copy.dosageInstruction![0].doseAndRate![0].doseQuantity = { value: ugPerDay, unit: 'mcg/d', system: 'http://unitsofmeasure.org', code: 'ug/d' };
  return copy;
}

describe('an approval given in DTR does not cover the order changed and signed again', () => {
  it('the same order signed again unchanged answers satisfied with the DTR number', async () => {
    const { app } = buildApp({ today: TODAY });
    const order = storyOrder(STORY);
    const number = await approvedInDtr(app, order);
    const again = await sign(app, order);
    expect(sub(again.ext, 'pa-needed')?.valueCode).toBe('satisfied');
    expect(sub(again.ext, 'satisfied-pa-id')?.valueString).toBe(number);
    // The number was issued before this signing (in DTR): its reason is coded X12 306 A1, as a recorded denial is A3,
    // so the EHR tells it by the code, not by the words "Approved: …" (was words only, s48).
    const codes = again.ext.filter((e) => e.url === 'reason').flatMap((r) => r.valueCodeableConcept?.coding ?? []);
    expect(codes).toContainEqual({ system: X12, code: 'A1', display: 'Certified in total' });
  });

  it.each([
    ['as 10 cycles', tenCycles, /covers at most 4 cycles; the order asks for 10/],
    ['at 56 mcg/day', (o: MedicationRequest) => atDose(o, 56), /28/],
  ] as const)('re-signed %s: the record is reopened, a limit review without the number', async (_label, change, limit) => {
    const { app, storage } = buildApp({ today: TODAY });
    const order = storyOrder(STORY);
    const number = await approvedInDtr(app, order);
    const changed = change(order);
    const again = await sign(app, changed);
    expect(sub(again.ext, 'covered')?.valueCode).toBe('covered');
    expect(sub(again.ext, 'pa-needed')?.valueCode).toBe('auth-needed');
    expect(sub(again.ext, 'satisfied-pa-id')).toBeUndefined();
    const why = reasons(again.ext).join(' ');
    expect(why).toMatch(/Outside the policy limit/);
    expect(why).toMatch(limit);
    expect(why).toContain(`Authorization ${number} was for this order as it stood when approved`);
    const [record] = await storage.findOrderRecords({ payer: 'centene', patientId: STORY, orderRefs: [`MedicationRequest/${order.id}`] });
    expect(record.state).toBe('auth-needed');
    expect(record.authorization).toBeUndefined();
    expect(record.history.at(-1)?.reason).toMatch(new RegExp(`no longer fits the approval ${number}`));
    // The MRD level the DTR answers gave, where the limit needed them (10 cycles: the pathway's cycles), is named as an
    // answer in the signing assertion, never kept as the record's (the 56 mcg/day limit needs no answer).
    const assertion = await storage.getAssertion(sub(again.ext, 'coverage-assertion-id')!.valueString!);
    if (_label === 'as 10 cycles') expect(assertion?.facts.mrdPercent).toBe(0.4);
    if (assertion?.facts.mrdPercent !== undefined) expect(assertion.answeredFacts).toContain('mrdPercent');

    // Signed again as approved: no number (the approval was let go of; the order is decided afresh).
    const back = await sign(app, order);
    expect(sub(back.ext, 'satisfied-pa-id')?.valueString).not.toBe(number);
  });

  it('order-select of the changed order answers the limit review and lets go of no approval', async () => {
    const { app, storage } = buildApp({ today: TODAY });
    const order = storyOrder(STORY);
    const number = await approvedInDtr(app, order);
    const body = orderSignRequest(withOrder(tenCycles(order)), tenCycles(order), { hook: 'order-select' }) as { context: Record<string, unknown> };
    body.context = { ...body.context, selections: [`MedicationRequest/${order.id}`] };
    const res = await request(app).post('/cds-services/priorpath-order-select').send(body).expect(200);
    expect(JSON.stringify(res.body)).not.toContain(number);
    const [record] = await storage.findOrderRecords({ payer: 'centene', patientId: STORY, orderRefs: [`MedicationRequest/${order.id}`] });
    expect(record.state).toBe('approved');
    expect(record.authorization?.number).toBe(number);
  });
});

describe('PAS: a request for the changed order, without the answers, is not certified by the DTR approval', () => {
  /** A PAS request for the story's order as `order` states it, carrying no QuestionnaireResponse. */
  async function pasFor(app: App, order: MedicationRequest) {
    const bundle = storyBundle(STORY);
    const entry = bundle.entry!.find((e) => e.resource?.resourceType === 'MedicationRequest' && e.resource.id === order.id)!;
    entry.resource = { ...(entry.resource as MedicationRequest), dispenseRequest: order.dispenseRequest };
    return claimResponseOf((await request(app).post('/fhir/Claim/$submit').set('Content-Type', FHIR).send(JSON.stringify(bundle)).expect(200)).body);
  }

  it('10 cycles after 4 approved in DTR: pended for review, the approval standing; the order as approved is certified with its number', async () => {
    const { app, storage } = buildApp({ today: TODAY });
    const order = storyOrder(STORY);
    const number = await approvedInDtr(app, order);

    const changed = await pasFor(app, tenCycles(order));
    expect(reviewActions(changed)).toEqual([`${X12}#A4`]);
    expect(changed.preAuthRef).toBeUndefined();
    const stored = await storage.getPasSubmission(changed.id!);
    expect(stored?.needed?.join(' ')).toContain(`asks more than authorization ${number}`);
    const [record] = await storage.findOrderRecords({ payer: 'centene', patientId: STORY, orderRefs: [`MedicationRequest/${order.id}`] });
    expect(record.state).toBe('approved');
    expect(record.authorization?.number).toBe(number);

    const same = await pasFor(app, order);
    expect(reviewActions(same)).toEqual([`${X12}#A1`]);
    expect(same.preAuthRef).toBe(number);
  });
});
