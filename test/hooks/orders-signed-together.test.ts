import type { Extension, MedicationRequest, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

/**
 * Orders signed together are one request (docs/design.md §6 "Cycles"): each is judged with the orders of the same
 * request before it, so a course limit counts them. Two Blincyto orders of 4 cycles each for an MRD-positive remission
 * (Centene CP.PHAR.312 V Dosage table: 1 induction + up to 3 consolidation cycles, 4 in all) were both approved when
 * signed in one call, 8 cycles, while the second signed after the first was a limit review (integrator M2). A step
 * dose written as two orders (days 1-7, days 8-28) is one cycle, not two.
 */
const SIGN = '/cds-services/priorpath-order-sign';
const SELECT = '/cds-services/priorpath-order-select';
const COVERAGE_INFO = 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information';

const sub = (ext: Extension, url: string) => ext.extension!.find((e) => e.url === url);
const reasons = (ext: Extension) => ext.extension!.filter((e) => e.url === 'reason').map((e) => e.valueCodeableConcept?.text ?? '');

/** The coverage information the answer gives each order, by order id. */
function answered(body: { systemActions?: { resource?: MedicationRequest }[] }): Map<string, Extension> {
  const out = new Map<string, Extension>();
  for (const a of body.systemActions ?? []) {
    const ext = a.resource?.extension?.find((e) => e.url === COVERAGE_INFO);
    if (a.resource?.id && ext) out.set(a.resource.id, ext);
  }
  return out;
}

/** An order-sign (or order-select) request for a story with these draft orders, in this order. */
function signTogether(resources: Resource[], drafts: MedicationRequest[], extra: Record<string, unknown> = {}) {
  const body = orderSignRequest(resources, drafts[0], extra) as { context: { draftOrders: { entry: { resource: Resource }[] } } };
  body.context.draftOrders.entry = drafts.map((resource) => ({ resource }));
  return body;
}

const STORY = 'centene-mrd-positive';
const dexamethasone = (patientRef: string): MedicationRequest => ({
  resourceType: 'MedicationRequest',
  id: 'dexa-premed',
  status: 'draft',
  intent: 'order',
  subject: { reference: patientRef },
  medicationCodeableConcept: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '3264', display: 'dexamethasone' }], text: 'dexamethasone 20 mg IV premedication' },
  dosageInstruction: [{ text: '20 mg IV 1 hour before the infusion (premedication)' }],
});

describe('orders of the same drug signed together', () => {
  const resources = storyResources(STORY);
  const first = storyOrder(STORY, resources);
  const second: MedicationRequest = { ...structuredClone(first), id: 'second-blin' };
  const others = [dexamethasone(first.subject!.reference!)];

  it('two 4-cycle MRD-positive Blincyto orders: the first is approved, the second is a limit review naming the 4 cycles before it, not an approval of 8', async () => {
    const { app } = buildApp();
    const res = await request(app).post(SIGN).send(signTogether(resources, [first, ...others, second])).expect(200);
    const by = answered(res.body);
    expect(sub(by.get(first.id!)!, 'pa-needed')!.valueCode).toBe('satisfied');
    expect(sub(by.get(first.id!)!, 'satisfied-pa-id')!.valueString).toMatch(/^PA-CENTENE-/);
    const over = by.get('second-blin')!;
    expect(sub(over, 'covered')!.valueCode).toBe('covered');
    expect(sub(over, 'pa-needed')!.valueCode).toBe('auth-needed');
    expect(sub(over, 'satisfied-pa-id')).toBeUndefined();
    expect(reasons(over).join(' ')).toContain('Outside the policy limit');
    expect(reasons(over).join(' ')).toContain('before it in the same request: 4');
    // The dexamethasone premedication is governed by no policy: it gets no coverage information.
    expect(by.has('dexa-premed')).toBe(false);
  });

  it('the same request listed the other way round gives the same decisions: the sequence is the orders\' (planned start, then id), not the listing\'s', async () => {
    const { app } = buildApp();
    const res = await request(app).post(SIGN).send(signTogether(resources, [second, first])).expect(200);
    const by = answered(res.body);
    expect(sub(by.get(first.id!)!, 'pa-needed')!.valueCode).toBe('satisfied');
    expect(sub(by.get('second-blin')!, 'pa-needed')!.valueCode).toBe('auth-needed');
  });

  it('the pair signed again in the other order keeps the first one\'s approval and number (one decision per order, design.md §8): re-listing reopens nothing', async () => {
    const { app } = buildApp();
    const signed = answered((await request(app).post(SIGN).send(signTogether(resources, [first, second])).expect(200)).body);
    const number = sub(signed.get(first.id!)!, 'satisfied-pa-id')!.valueString;
    expect(number).toMatch(/^PA-CENTENE-/);
    const again = answered((await request(app).post(SIGN).send(signTogether(resources, [second, first])).expect(200)).body);
    expect(sub(again.get(first.id!)!, 'pa-needed')!.valueCode).toBe('satisfied');
    expect(sub(again.get(first.id!)!, 'satisfied-pa-id')!.valueString).toBe(number);
    expect(reasons(again.get(first.id!)!).join(' ')).not.toContain('in the same request');
    expect(sub(again.get('second-blin')!, 'pa-needed')!.valueCode).toBe('auth-needed');
  });

  it('an entry that repeats the order (the same id) is the same order, not a second course: approved', async () => {
    const { app } = buildApp();
    const res = await request(app).post(SIGN).send(signTogether(resources, [first, structuredClone(first)])).expect(200);
    for (const a of res.body.systemActions as { resource: MedicationRequest }[]) {
      const ext = a.resource.extension!.find((e) => e.url === COVERAGE_INFO)!;
      expect(sub(ext, 'pa-needed')!.valueCode).toBe('satisfied');
    }
  });

  it('order-select and a "what if" answer the second order as signing would (a limit review) and issue no number', async () => {
    const { app } = buildApp();
    const patientId = first.subject!.reference!.split('/')[1];
    const selected = await request(app)
      .post(SELECT)
      .send(
        signTogether(resources, [first, second], {
          hook: 'order-select',
          context: {
            userId: 'PractitionerRole/centene-mrd-positive-role',
            patientId,
            selections: ['MedicationRequest/second-blin'],
            draftOrders: { resourceType: 'Bundle', type: 'collection', entry: [{ resource: first }, { resource: second }] },
          },
        }),
      )
      .expect(200);
    const sel = answered(selected.body);
    // Only the selected order is answered; the other draft of the session is signed with it, so it counts.
    expect([...sel.keys()]).toEqual(['second-blin']);
    expect(sub(sel.get('second-blin')!, 'pa-needed')!.valueCode).toBe('auth-needed');
    expect(sub(sel.get('second-blin')!, 'satisfied-pa-id')).toBeUndefined();

    const whatIf = await request(app)
      .post(SIGN)
      .send(signTogether(resources, [first, second], { extension: { 'davinci-crd.configuration': { 'unsolicited-determ': false } } }))
      .expect(200);
    const wi = answered(whatIf.body);
    expect(sub(wi.get('second-blin')!, 'pa-needed')!.valueCode).toBe('auth-needed');
    for (const ext of wi.values()) expect(sub(ext, 'satisfied-pa-id')).toBeUndefined();
  });
});

describe('a step dose written as two orders, signed together', () => {
  // BCBSNC's relapsed adult: cycle 1 at 9 mcg/day on days 1-7, then 28 mcg/day on days 8-28, here as two orders.
  const STEP = 'bcbsnc-relapsed-adult';
  const resources = storyResources(STEP);
  const whole = storyOrder(STEP, resources);
  const [days1to7, days8to28] = [...(whole.dosageInstruction ?? [])].sort((a, b) => (a.sequence ?? 0) - (b.sequence ?? 0));
  const week1: MedicationRequest = { ...structuredClone(whole), id: `${STEP}-days-1-7`, dosageInstruction: [{ ...structuredClone(days1to7), sequence: 1 }] };
  const rest: MedicationRequest = { ...structuredClone(whole), id: `${STEP}-days-8-28`, dosageInstruction: [{ ...structuredClone(days8to28), sequence: 1 }] };

  it('is one cycle: each order is answered as it is alone, in either order of the request', async () => {
    const { app } = buildApp();
    const alone = async (o: MedicationRequest) => {
      const res = await request(app).post(SIGN).send(orderSignRequest(resources, o)).expect(200);
      return sub(answered(res.body).get(o.id!)!, 'pa-needed')!.valueCode;
    };
    const expected = { week1: await alone(structuredClone({ ...week1, id: `${week1.id}-alone` })), rest: await alone(structuredClone({ ...rest, id: `${rest.id}-alone` })) };
    expect(expected.rest).toBe('satisfied');
    for (const drafts of [[week1, rest], [rest, week1]]) {
      const res = await request(app).post(SIGN).send(signTogether(resources, drafts.map((d) => structuredClone(d)))).expect(200);
      const by = answered(res.body);
      expect(sub(by.get(week1.id!)!, 'pa-needed')!.valueCode).toBe(expected.week1);
      expect(sub(by.get(rest.id!)!, 'pa-needed')!.valueCode).toBe(expected.rest);
      for (const ext of by.values()) expect(reasons(ext).join(' ')).not.toContain('in the same request');
    }
  });
});
