import type { Extension, MedicationRequest } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { expectValidHookResponse } from '../helpers/response-checks.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

/**
 * An order that states no date of its own (no planned start, validity start or authored date) is judged on the day of
 * the call (evaluation-data.ts orderDateOf), so the 30-day height and weight window moves with the calendar. Signed
 * again unchanged weeks after the rules approved it, its per-m² dose would no longer be readable (the body surface
 * area aged out of the window) and the approval would be withdrawn for an order nobody changed. A payer's pharmacist
 * judges the same order on the date its approval judged it: the approval's start, the order date then stored
 * (docs/design.md §8 "What an approval covers"). Only an approval still in force, given at signing, for the order as it
 * still stands: an expired approval or a changed order is judged on today. Centene CP.PHAR.312 V Dosage table
 * (patients < 45 kg: 15 mcg/m²/day).
 */
const STORY = 'centene-pediatric-consolidation';
const SIGN = '/cds-services/priorpath-order-sign';
const sub = (ext: Extension, url: string) => ext.extension!.find((e) => e.url === url);

/** The story's 15 mcg/m²/day order with every date of its own removed. */
function undatedOrder(id: string): MedicationRequest {
  const order = structuredClone(storyOrder(STORY));
  order.id = id;
  delete order.authoredOn;
  for (const i of order.dosageInstruction ?? []) delete i.timing?.repeat?.boundsPeriod;
  delete order.dispenseRequest?.validityPeriod;
  return order;
}

describe('an approved order with no date of its own, signed again unchanged weeks later', () => {
  it('is judged on its approval date: still satisfied with the same number, though its BSA has aged out of the window since', async () => {
    let today = '2026-11-23';
    const { app, storage } = buildApp({ today: () => today });
    const resources = storyResources(STORY);
    const patientId = resources.find((r) => r.resourceType === 'Patient')!.id!;
    const sign = async (o: MedicationRequest) => {
      const res = await request(app).post(SIGN).send(orderSignRequest(resources, o)).expect(200);
      const [ext] = expectValidHookResponse(res.body, 'order-sign');
      return ext;
    };

    const order = undatedOrder(`${STORY}-undated`);
    const first = await sign(order);
    expect(sub(first, 'pa-needed')!.valueCode).toBe('satisfied');
    const number = sub(first, 'satisfied-pa-id')!.valueString!;
    expect(number).toMatch(/^PA-CENTENE-/);

    // 38 days after the height and weight (2026-11-13): outside the 30-day window counted from today.
    today = '2026-12-21';
    // The window has aged out: the same order never signed before is not approved today (its dose cannot be read).
    const fresh = await sign(undatedOrder(`${STORY}-undated-fresh`));
    expect(sub(fresh, 'pa-needed')!.valueCode).not.toBe('satisfied');

    const again = await sign(order);
    expect(sub(again, 'pa-needed')!.valueCode).toBe('satisfied');
    expect(sub(again, 'satisfied-pa-id')!.valueString).toBe(number);
    const record = await storage.getOrderRecord({ payer: 'centene', patientId, orderRef: `MedicationRequest/${order.id}`, drug: 'blinatumomab' });
    expect(record?.state).toBe('approved');
    expect(record?.authorization?.number).toBe(number);
    expect(record!.history.map((h) => h.state)).toEqual(['approved']);
  });

  /** The app on a movable today, with a signing helper and the order's record. */
  function signingApp(first: string) {
    const clock = { today: first };
    const { app, storage } = buildApp({ today: () => clock.today });
    const resources = storyResources(STORY);
    const patientId = resources.find((r) => r.resourceType === 'Patient')!.id!;
    const sign = async (o: MedicationRequest) => {
      const res = await request(app).post(SIGN).send(orderSignRequest(resources, o)).expect(200);
      const [ext] = expectValidHookResponse(res.body, 'order-sign');
      return ext;
    };
    const recordOf = (o: MedicationRequest) => storage.getOrderRecord({ payer: 'centene', patientId, orderRef: `MedicationRequest/${o.id}`, drug: 'blinatumomab' });
    return { clock, storage, sign, recordOf };
  }

  it('is judged on today once its approval has ended: an expired approval is not one an order is judged again under', async () => {
    const { clock, storage, sign, recordOf } = signingApp('2026-11-23');
    const order = undatedOrder(`${STORY}-undated-expired`);
    const first = await sign(order);
    expect(sub(first, 'pa-needed')!.valueCode).toBe('satisfied');
    const number = sub(first, 'satisfied-pa-id')!.valueString!;
    const approval = (await recordOf(order))!.authorization!;
    expect(approval.end < '2027-12-01').toBe(true);

    // After the approval's end: the height and weight are a year old, so today the per-m² dose cannot be read.
    clock.today = '2027-12-01';
    const again = await sign(order);
    expect(sub(again, 'pa-needed')!.valueCode).not.toBe('satisfied');
    expect(sub(again, 'satisfied-pa-id')).toBeUndefined();
    // Its assertion records the day it was judged on, not the approval's start.
    const assertion = await storage.getAssertion(sub(again, 'coverage-assertion-id')!.valueString!);
    expect(assertion?.orderDate).toBe('2027-12-01');
    const record = await recordOf(order);
    expect(record?.state).not.toBe('approved');
    expect(record!.history.find((h) => h.state === 'approved')?.authorizationNumber).toBe(number);
  });

  it('is judged on today when the order changed since its approval (another per-m² dose): it is not the order approved', async () => {
    const { clock, storage, sign, recordOf } = signingApp('2026-11-23');
    const order = undatedOrder(`${STORY}-undated-changed`);
    const first = await sign(order);
    expect(sub(first, 'pa-needed')!.valueCode).toBe('satisfied');
    const number = sub(first, 'satisfied-pa-id')!.valueString!;

    // The same order id re-signed with 10 mcg/m²/day instead of 15, within the approval, after the BSA aged out.
    clock.today = '2026-12-21';
    const changed = structuredClone(order);
    changed.dosageInstruction![0].doseAndRate![0].doseQuantity!.value = 10;
    const again = await sign(changed);
    expect(sub(again, 'pa-needed')!.valueCode).not.toBe('satisfied');
    const assertion = await storage.getAssertion(sub(again, 'coverage-assertion-id')!.valueString!);
    expect(assertion?.orderDate).toBe('2026-12-21');
    const record = await recordOf(order);
    expect(record?.state).toBe('auth-needed');
    expect(record?.authorization).toBeUndefined();
    expect(record!.history.map((h) => h.state)).toEqual(['approved', 'auth-needed']);
    expect(record!.history[0].authorizationNumber).toBe(number);
  });
});
