import type { Coverage, Extension, MedicationRequest, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { expectValidHookResponse } from '../helpers/response-checks.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

/**
 * The Coverage is judged on the dates of the service it would authorize, not apart from it (docs/design.md §4
 * "Payer", the order date of §6): a Coverage not in force on the order's planned start is no coverage to authorize
 * under (400, as "No active Coverage"), one beginning after today but in force on that date is, and an approval never
 * runs past the Coverage's end. DEFAULT_PAYER stands in only where no Coverage names a payer PriorPath serves (§3).
 * The story: a Centene member's Blincyto consolidation order, planned start 2026-11-21, approved by CP.PHAR.312.
 */
const STORY = 'centene-pediatric-consolidation';
const SIGN = '/cds-services/priorpath-order-sign';
const sub = (ext: Extension, url: string) => ext.extension!.find((e) => e.url === url);
const system = 'https://priorpath.dev/fhir/sid/payer';

/** The story's resources with its Coverage changed. */
function withCoverage(change: Partial<Coverage>, resources = storyResources(STORY)): Resource[] {
  return resources.map((r) => (r.resourceType === 'Coverage' ? { ...r, ...change } : r));
}

function sign(app: Parameters<typeof request>[0], resources: Resource[], order: MedicationRequest = storyOrder(STORY)) {
  // CRD 2.2: an approval carries its expiry-date.
  return request(app).post(SIGN).send(orderSignRequest(resources, order, { extension: { 'davinci-crd.requestedVersion': '2.2' } }));
}

describe('the Coverage judged on the order date (A7)', () => {
  // Two days before the order's planned start (2026-11-21).
  const BEFORE_START = '2026-11-19';

  it('approves the order with its Coverage in force on its start (control)', async () => {
    const { app } = buildApp({ today: BEFORE_START });
    const res = await sign(app, withCoverage({ period: { start: '2026-01-01' } })).expect(200);
    const [ext] = expectValidHookResponse(res.body, 'order-sign', '2.2');
    expect(sub(ext, 'pa-needed')!.valueCode).toBe('satisfied');
    expect(sub(ext, 'expiry-date')!.valueDate! > '2026-12-31').toBe(true);
  });

  it('refuses (400, no number) a Coverage in force today that ends before the order starts, naming its end and the order date', async () => {
    const { app } = buildApp({ today: BEFORE_START });
    const res = await sign(app, withCoverage({ period: { start: '2026-01-01', end: '2026-11-20' } }));
    expect(res.status).toBe(400);
    expect(res.body.issue[0].diagnostics).toMatch(/No active Coverage.*ended on 2026-11-20.*order date 2026-11-21/);
    expect(JSON.stringify(res.body)).not.toMatch(/PA-/);
  });

  it('ends the approval on the last day of a Coverage that ends within the approval period (expiry-date and the stored number)', async () => {
    const { app, storage } = buildApp({ today: BEFORE_START });
    const resources = withCoverage({ period: { start: '2026-01-01', end: '2026-12-31' } });
    const res = await sign(app, resources).expect(200);
    const [ext] = expectValidHookResponse(res.body, 'order-sign', '2.2');
    expect(sub(ext, 'pa-needed')!.valueCode).toBe('satisfied');
    expect(sub(ext, 'expiry-date')!.valueDate).toBe('2026-12-31');
    const patientId = resources.find((r) => r.resourceType === 'Patient')!.id!;
    const record = await storage.getOrderRecord({ payer: 'centene', patientId, orderRef: `MedicationRequest/${storyOrder(STORY).id}`, drug: 'blinatumomab' });
    expect(record?.authorization).toMatchObject({ start: '2026-11-21', end: '2026-12-31' });
    // Signed again unchanged, the order keeps its one approval (design.md §8): the cap is not an order outgrowing it.
    const again = await sign(app, resources).expect(200);
    const [next] = expectValidHookResponse(again.body, 'order-sign', '2.2');
    expect(sub(next, 'satisfied-pa-id')!.valueString).toBe(sub(ext, 'satisfied-pa-id')!.valueString);
    expect(sub(next, 'expiry-date')!.valueDate).toBe('2026-12-31');
    // A period.end at month precision covers the whole month.
    const monthly = await sign(buildApp({ today: BEFORE_START }).app, withCoverage({ period: { start: '2026-01-01', end: '2027-01' } })).expect(200);
    expect(sub(expectValidHookResponse(monthly.body, 'order-sign', '2.2')[0], 'expiry-date')!.valueDate).toBe('2027-01-31');
  });

  it('answers a Coverage that begins after today but on or before the order starts (s40 M4), and keeps today for an order with no date of its own', async () => {
    const { app } = buildApp({ today: BEFORE_START });
    const res = await sign(app, withCoverage({ period: { start: '2026-11-21' } })).expect(200);
    const [ext] = expectValidHookResponse(res.body, 'order-sign', '2.2');
    expect(sub(ext, 'pa-needed')!.valueCode).toBe('satisfied');
    // No planned start, validity start or authored date: judged on today, before the Coverage begins.
    const undated = structuredClone(storyOrder(STORY));
    delete undated.authoredOn;
    for (const i of undated.dosageInstruction ?? []) delete i.timing?.repeat?.boundsPeriod;
    delete undated.dispenseRequest?.validityPeriod;
    const today = await sign(app, withCoverage({ period: { start: '2026-11-21' } }), undated);
    expect(today.status).toBe(400);
    expect(today.body.issue[0].diagnostics).toMatch(/No active Coverage.*begins on 2026-11-21.*order date 2026-11-19/);
  });

  it('refuses a retroactive order that starts before its Coverage began, though the Coverage is in force today', async () => {
    const { app } = buildApp({ today: '2026-11-23' });
    const res = await sign(app, withCoverage({ period: { start: '2026-11-22' } }));
    expect(res.status).toBe(400);
    expect(res.body.issue[0].diagnostics).toMatch(/No active Coverage.*begins on 2026-11-22.*order date 2026-11-21/);
    expect(JSON.stringify(res.body)).not.toMatch(/PA-/);
  });
});

describe('only the orders decided judge the Coverage, and every approval answered ends within it (review s43 F1, F2)', () => {
  const BEFORE_START = '2026-11-19';
  const ENDING = { period: { start: '2026-01-01', end: '2026-12-31' } };

  it('answers the governed order when an ungoverned draft beside it (a dexamethasone premedication) is dated past the Coverage end', async () => {
    const { app } = buildApp({ today: BEFORE_START });
    const resources = withCoverage(ENDING);
    const order = storyOrder(STORY);
    // Dexamethasone (RxNorm 3264), which no policy of the payer governs, planned into the next plan year.
    const premed: MedicationRequest = {
      resourceType: 'MedicationRequest',
      id: 'dexamethasone-next-year',
      status: 'draft',
      intent: 'order',
      subject: order.subject,
      authoredOn: '2026-11-16',
      medicationCodeableConcept: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '3264', display: 'dexamethasone' }], text: 'dexamethasone 20 mg' },
      dosageInstruction: [{ text: '20 mg IV before the infusion', timing: { repeat: { boundsPeriod: { start: '2027-01-05', end: '2027-01-05' } } } }],
    };
    const body = orderSignRequest(resources, order, { extension: { 'davinci-crd.requestedVersion': '2.2' } });
    (body.context as { draftOrders: { entry: { resource: Resource }[] } }).draftOrders.entry.push({ resource: premed });
    const res = await request(app).post(SIGN).send(body);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const [ext] = expectValidHookResponse(res.body, 'order-sign', '2.2');
    expect(sub(ext, 'pa-needed')!.valueCode).toBe('satisfied');
    expect(sub(ext, 'expiry-date')!.valueDate).toBe('2026-12-31');
    // The governed order itself dated past the Coverage end is still refused.
    const late = structuredClone(order);
    for (const i of late.dosageInstruction ?? []) i.timing!.repeat!.boundsPeriod = { start: '2027-01-04', end: '2027-01-31' };
    const refused = await sign(app, resources, late);
    expect(refused.status).toBe(400);
    expect(refused.body.issue[0].diagnostics).toMatch(/No active Coverage.*ended on 2026-12-31.*order date 2027-01-04/);
  });

  it('answers an approval the order already holds within the Coverage it is signed under now, keeping its number and the period issued on its record', async () => {
    const { app, storage } = buildApp({ today: BEFORE_START });
    // Approved under a Coverage with no end: the period runs past 2026-12-31.
    const first = await sign(app, withCoverage({ period: { start: '2026-01-01' } })).expect(200);
    const [ext] = expectValidHookResponse(first.body, 'order-sign', '2.2');
    const number = sub(ext, 'satisfied-pa-id')!.valueString;
    const issued = sub(ext, 'expiry-date')!.valueDate!;
    expect(issued > '2026-12-31').toBe(true);
    // Signed again under the member's Coverage as it now stands, ending on 2026-12-31.
    const again = await sign(app, withCoverage(ENDING)).expect(200);
    const [next] = expectValidHookResponse(again.body, 'order-sign', '2.2');
    expect(sub(next, 'satisfied-pa-id')!.valueString).toBe(number);
    expect(sub(next, 'expiry-date')!.valueDate).toBe('2026-12-31');
    const allowed = next.extension!.filter((e) => e.url === 'detail').find((d) => d.extension!.some((e) => e.valueCodeableConcept?.coding?.[0]?.code === 'allowed-period'));
    expect(allowed!.extension!.find((e) => e.url === 'value')!.valuePeriod).toEqual({ start: '2026-11-21', end: '2026-12-31' });
    // The record keeps the period as issued: a Coverage renewed past it answers it whole again.
    const patientId = storyResources(STORY).find((r) => r.resourceType === 'Patient')!.id!;
    const record = await storage.getOrderRecord({ payer: 'centene', patientId, orderRef: `MedicationRequest/${storyOrder(STORY).id}`, drug: 'blinatumomab' });
    expect(record?.authorization?.end).toBe(issued);
  });
});

describe('DEFAULT_PAYER stands in only where no Coverage names a payer PriorPath serves (A1)', () => {
  const env = { CDS_AUTH: 'open', DEFAULT_PAYER: 'example' };
  const today = '2026-11-23';

  it('answers two active Coverages naming known payers (Centene, MMM) with the 400 it gives without DEFAULT_PAYER, never the default no-auth', async () => {
    const { app } = buildApp({ env, today });
    const resources = storyResources(STORY);
    const centene = resources.find((r) => r.resourceType === 'Coverage') as Coverage;
    const mmm: Coverage = { ...centene, id: 'secondary-mmm', order: 2, payor: [{ identifier: { system, value: 'mmm' } }] };
    for (const pair of [[...resources, mmm], [...resources.filter((r) => r !== centene), mmm, centene]]) {
      const res = await sign(app, pair);
      expect(res.status).toBe(400);
      expect(res.body.issue[0].diagnostics).toMatch(/2 active Coverages: send only the primary Coverage/);
    }
    // Two Coverages neither of which names a payer PriorPath serves are still the default payer's.
    const acme = (id: string): Coverage => ({ ...centene, id, payor: [{ identifier: { system, value: 'acme-health' } }] });
    const unknown = await sign(app, [...resources.filter((r) => r !== centene), acme('acme-1'), acme('acme-2')]).expect(200);
    const [ext] = expectValidHookResponse(unknown.body, 'order-sign', '2.2');
    expect(sub(ext, 'pa-needed')!.valueCode).toBe('no-auth');
  });

  it("refuses a known payer's lapsed or cancelled Coverage (400 No active Coverage), as without DEFAULT_PAYER", async () => {
    const { app } = buildApp({ env, today });
    const ended = await sign(app, withCoverage({ period: { start: '2025-01-01', end: '2025-12-31' } }));
    expect(ended.status).toBe(400);
    expect(ended.body.issue[0].diagnostics).toMatch(/No active Coverage.*ended on 2025-12-31/);
    const cancelled = await sign(app, withCoverage({ status: 'cancelled' }));
    expect(cancelled.status).toBe(400);
    expect(cancelled.body.issue[0].diagnostics).toMatch(/No active Coverage.*is cancelled/);
    // No Coverage at all is still the default payer's (design.md §4).
    await sign(app, storyResources(STORY).filter((r) => r.resourceType !== 'Coverage')).expect(200);
  });
});
