import type { Coverage, Extension, MedicationRequest, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { expectValidHookResponse } from '../helpers/response-checks.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

/**
 * Orders signed together on both sides of a plan change of one payer (one Coverage ends, the next begins), or one of
 * them after every Coverage ends, are answered per order (docs/design.md §4 "Payer"): each under the Coverage in force
 * on its start, and one under none gets its own CRD [resp-45] answer (not-covered, no-active-coverage), never a 400
 * for the whole call. The story: a Centene member's Blincyto consolidation order, planned start 2026-11-21; a second
 * Blincyto order (the next cycle) planned to start 2027-01-04.
 */
const STORY = 'centene-pediatric-consolidation';
const SIGN = '/cds-services/priorpath-order-sign';
const TODAY = '2026-11-19';
const sub = (ext: Extension, url: string) => ext.extension!.find((e) => e.url === url);
const coverageOf = (ext: Extension) => sub(ext, 'coverage')!.valueReference!.reference;

/** The story's resources with its Coverage replaced by these. */
function withCoverages(...periods: { id: string; period: Coverage['period'] }[]): Resource[] {
  const resources = storyResources(STORY);
  const story = resources.find((r) => r.resourceType === 'Coverage') as Coverage;
  return [...resources.filter((r) => r !== story), ...periods.map((p) => ({ ...story, ...p }))];
}

/** The next cycle's order, planned to start in the next plan year. */
function nextYearOrder(): MedicationRequest {
  const next = structuredClone(storyOrder(STORY));
  next.id = `${next.id}-next-cycle`;
  for (const i of next.dosageInstruction ?? []) i.timing!.repeat!.boundsPeriod = { start: '2027-01-04', end: '2027-01-31' };
  if (next.dispenseRequest?.validityPeriod) next.dispenseRequest.validityPeriod = { start: '2027-01-04', end: '2027-01-31' };
  return next;
}

function signBoth(app: Parameters<typeof request>[0], resources: Resource[]) {
  const body = orderSignRequest(resources, storyOrder(STORY), { extension: { 'davinci-crd.requestedVersion': '2.2' } });
  (body.context as { draftOrders: { entry: { resource: Resource }[] } }).draftOrders.entry.push({ resource: nextYearOrder() });
  return request(app).post(SIGN).send(body);
}

/** Each order's coverage-information, by order id. */
function answers(body: { systemActions?: { resource?: Resource }[] }): Map<string, Extension> {
  const exts = expectValidHookResponse(body as never, 'order-sign', '2.2');
  expect(exts).toHaveLength(2);
  return new Map((body.systemActions ?? []).map((a, i) => [a.resource!.id!, exts[i]]));
}

describe('orders across a plan change of one payer are answered per order (s44 open point)', () => {
  it('decides each order under the Coverage in force on its start', async () => {
    const { app, storage } = buildApp({ today: TODAY });
    const res = await signBoth(app, withCoverages({ id: 'centene-2026', period: { start: '2026-01-01', end: '2026-12-31' } }, { id: 'centene-2027', period: { start: '2027-01-01' } }));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const byOrder = answers(res.body);
    const first = byOrder.get(storyOrder(STORY).id!)!;
    const next = byOrder.get(nextYearOrder().id!)!;
    expect(coverageOf(first)).toBe('Coverage/centene-2026');
    expect(coverageOf(next)).toBe('Coverage/centene-2027');
    expect(sub(first, 'covered')!.valueCode).toBe('covered');
    expect(sub(next, 'covered')!.valueCode).toBe('covered');
    // The first order's approval ends with its plan year.
    expect(sub(first, 'pa-needed')!.valueCode).toBe('satisfied');
    expect(sub(first, 'expiry-date')!.valueDate).toBe('2026-12-31');
    // The next cycle, signed in the same request, is over CP.PHAR.312 V's one consolidation cycle per request: a limit
    // review under the 2027 Coverage, whose assertion keeps that Coverage and no end (DTR caps an approval by it).
    expect(sub(next, 'pa-needed')!.valueCode).toBe('auth-needed');
    const assertion = await storage.getAssertion(sub(next, 'coverage-assertion-id')!.valueString!);
    expect(assertion).toMatchObject({ coverageRef: 'Coverage/centene-2027' });
    expect(assertion?.coverageEnd).toBeUndefined();
    expect((await storage.getAssertion(sub(first, 'coverage-assertion-id')!.valueString!))?.coverageEnd).toBe('2026-12-31');
    expect(JSON.stringify(res.body)).not.toMatch(/no-active-coverage/);
  });

  it("answers an order after every Coverage ends with its own no-active-coverage, and the other order as before", async () => {
    const { app, storage } = buildApp({ today: TODAY });
    const res = await signBoth(app, withCoverages({ id: 'centene-2026', period: { start: '2026-01-01', end: '2026-12-31' } }));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const byOrder = answers(res.body);
    const first = byOrder.get(storyOrder(STORY).id!)!;
    const late = byOrder.get(nextYearOrder().id!)!;
    expect(sub(first, 'pa-needed')!.valueCode).toBe('satisfied');
    expect(sub(first, 'expiry-date')!.valueDate).toBe('2026-12-31');
    expect(coverageOf(late)).toBe('Coverage/centene-2026');
    expect(sub(late, 'covered')!.valueCode).toBe('not-covered');
    expect(sub(late, 'pa-needed')).toBeUndefined();
    const reason = sub(late, 'reason')!.valueCodeableConcept!;
    expect(reason.coding?.[0]?.code).toBe('no-active-coverage');
    expect(reason.text).toMatch(/ended on 2026-12-31.*order date 2027-01-04/);
    // A warning card names the order, and no number or denial is kept for it.
    expect(res.body.cards.some((c: { indicator: string; summary: string }) => c.indicator === 'warning' && /no active Coverage/.test(c.summary))).toBe(true);
    const patientId = storyResources(STORY).find((r) => r.resourceType === 'Patient')!.id!;
    expect(await storage.getOrderRecord({ payer: 'centene', patientId, orderRef: `MedicationRequest/${nextYearOrder().id}`, drug: 'blinatumomab' })).toBeUndefined();
    // The CRD 2.0.1 shape has no such code: the text alone says it.
    const plain = orderSignRequest(withCoverages({ id: 'centene-2026', period: { start: '2026-01-01', end: '2026-12-31' } }), storyOrder(STORY));
    (plain.context as { draftOrders: { entry: { resource: Resource }[] } }).draftOrders.entry.push({ resource: nextYearOrder() });
    const old = await request(app).post(SIGN).send(plain).expect(200);
    const oldLate = expectValidHookResponse(old.body, 'order-sign').find((e) => sub(e, 'covered')!.valueCode === 'not-covered')!;
    expect(sub(oldLate, 'reason')!.valueCodeableConcept!.coding).toBeUndefined();
  });

  it('still refuses a call none of whose orders has a Coverage in force, and two Coverages in force on one order date (none is picked)', async () => {
    const { app } = buildApp({ today: TODAY });
    const ended = await signBoth(app, withCoverages({ id: 'centene-2025', period: { start: '2025-01-01', end: '2025-12-31' } }));
    expect(ended.status).toBe(400);
    expect(ended.body.issue[0].diagnostics).toMatch(/No active Coverage.*ended on 2025-12-31/);
    const overlapping = await signBoth(app, withCoverages({ id: 'centene-2026', period: { start: '2026-01-01', end: '2026-12-31' } }, { id: 'centene-2026-copy', period: { start: '2026-11-01', end: '2026-12-31' } }));
    expect(overlapping.status).toBe(400);
  });
});

describe('an order under no Coverage is no part of the payer request (review-diff s46 F1)', () => {
  /** The story's order planned to start on `start` (4 weeks), with this id suffix. */
  function orderFrom(suffix: string, start: string, end: string): MedicationRequest {
    const o = structuredClone(storyOrder(STORY));
    o.id = `${o.id}-${suffix}`;
    for (const i of o.dosageInstruction ?? []) i.timing!.repeat!.boundsPeriod = { start, end };
    if (o.dispenseRequest?.validityPeriod) o.dispenseRequest.validityPeriod = { start, end };
    return o;
  }
  /** A member whose Centene Coverage begins 2027-01-01, weighed and measured 2026-12-10 (within 30 days of both starts). */
  function newMember(): Resource[] {
    const resources = withCoverages({ id: 'centene-2027', period: { start: '2027-01-01' } });
    for (const r of resources) {
      if (r.resourceType === 'Observation' && ['29463-7', '8302-2', '8277-6'].includes(r.code?.coding?.[0]?.code ?? '')) r.effectiveDateTime = '2026-12-10T10:40:00-05:00';
    }
    return resources;
  }
  function sign(app: Parameters<typeof request>[0], orders: MedicationRequest[]) {
    const body = orderSignRequest(newMember(), orders[0], { extension: { 'davinci-crd.requestedVersion': '2.2' } });
    (body.context as { draftOrders: { entry: { resource: Resource }[] } }).draftOrders.entry = orders.map((resource) => ({ resource }));
    return request(app).post(SIGN).send(body);
  }

  it("does not count a December order before the member's Coverage begins against the January order's one cycle per request", async () => {
    const january = orderFrom('jan', '2027-01-04', '2027-01-31');
    const alone = await sign(buildApp({ today: '2026-12-12' }).app, [january]).expect(200);
    const [aloneAnswer] = expectValidHookResponse(alone.body, 'order-sign', '2.2');
    expect(sub(aloneAnswer, 'pa-needed')!.valueCode).toBe('satisfied');

    for (const orders of [[orderFrom('dec', '2026-12-14', '2027-01-10'), january], [january, orderFrom('dec', '2026-12-14', '2027-01-10')]]) {
      const res = await sign(buildApp({ today: '2026-12-12' }).app, orders);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const byOrder = answers(res.body);
      expect(sub(byOrder.get(january.id!)!, 'pa-needed')!.valueCode).toBe('satisfied');
      const december = byOrder.get(`${storyOrder(STORY).id}-dec`)!;
      expect(sub(december, 'reason')!.valueCodeableConcept!.coding?.[0]?.code).toBe('no-active-coverage');
    }
  });
});
