/**
 * A PAS denial is the decision on the order as it was denied (design.md §8 "A denial is the decision on the order as
 * it was denied"): signing the same order again unchanged answers it, with advice on how to go on; the order signed
 * again with the start the timing advice names (a live vaccine too close to the start) is another order, judged
 * afresh. A denial the rules gave (no reviewer) is then lifted by the rules when the changed order meets the policy.
 */
import type { MedicationRequest } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';
import { claimResponseOf, reviewActions, storyBundle, TODAY } from './pas-fixtures.js';

const X12 = 'https://codesystem.x12.org/005010/306';
const STORY = 'ohsu-live-vaccine';
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** The order with every date moved by `days` (its step-dosed days keep their lengths), as the demo page moves a start. */
function movedBy(order: MedicationRequest, days: number): MedicationRequest {
  const shift = (d?: string) => (d ? new Date(Date.parse(`${d.slice(0, 10)}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10) : d);
  const copy = structuredClone(order);
  for (const i of copy.dosageInstruction ?? []) {
    const p = i.timing?.repeat?.boundsPeriod;
    if (p) Object.assign(p, { start: shift(p.start), end: shift(p.end) });
  }
  const v = copy.dispenseRequest?.validityPeriod;
  if (v) Object.assign(v, { start: shift(v.start), end: shift(v.end) });
  return copy;
}

describe('signing an order whose PAS request was denied for its start date', () => {
  it('unchanged, the denial stands with its advice; moved to the later start it names, the order is judged afresh', async () => {
    const { app } = buildApp({ today: TODAY });
    const resources = storyResources(STORY);
    const order = storyOrder(STORY, resources);
    const sign = async (o: MedicationRequest) => JSON.stringify((await request(app).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, o)).expect(200)).body);

    // Before any request, signing gives the timing advice.
    expect(await sign(order)).toMatch(/would meet .*: change the start date and sign again\./);

    const denied = claimResponseOf((await request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(storyBundle(STORY)).expect(200)).body);
    expect(reviewActions(denied)).toEqual([`${X12}#A3`]);

    // Signed again unchanged: the denial, saying how to go on, and the start that would meet the policy.
    const text = await sign(order);
    expect(text).toMatch(/Prior authorization denied/);
    expect(text).toContain('change the order (its dose, quantity, cycles or start) or write a new one, and request prior authorization again');
    // Claimed again unchanged (its amount read from the Claim item, as when denied): the denial again.
    const resent = claimResponseOf((await request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(storyBundle(STORY)).expect(200)).body);
    expect(reviewActions(resent)).toEqual([`${X12}#A3`]);
    const later = /A planned start on or after (\d{1,2}) (\w+) (\d{4}) would meet .*: change the start date and sign again\./.exec(text);
    expect(later).not.toBeNull();

    // The same order moved to that start: judged afresh, no longer the denial.
    const start = `${later![3]}-${String(MONTHS.indexOf(later![2]) + 1).padStart(2, '0')}-${later![1].padStart(2, '0')}`;
    const days = Math.round((Date.parse(start) - Date.parse(order.dosageInstruction![0].timing!.repeat!.boundsPeriod!.start!)) / 86_400_000);
    const moved = await sign(movedBy(order, days));
    expect(moved).not.toMatch(/Prior authorization denied/);
    expect(moved).not.toMatch(/would meet/);
    expect(moved).not.toContain('"valueCode":"not-covered"');
  });
});
