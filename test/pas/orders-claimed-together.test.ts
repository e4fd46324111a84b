/**
 * The orders one PAS request claims together are one request, as at signing (docs/design.md §6 "Cycles"; §8 one decision
 * per order): each item's order is judged with the orders of the items before it, so a course limit counts them. Two
 * items naming two 4-cycle Blincyto orders for an MRD-positive remission (Centene CP.PHAR.312 V Dosage table: 4 cycles in
 * all) were both certified, 8 cycles under one number (integrator M2). A step dose written as two orders is one cycle.
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, Claim, ClaimResponse, MedicationRequest } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { claimResponseOf, reviewActions, storyBundle } from './pas-fixtures.js';

const X12 = 'https://codesystem.x12.org/005010/306';
const { app } = buildApp({ today: '2026-11-23', env: { REVIEW_TOKEN: 'review-token-claimed-together' } });
const submit = (b: Bundle) => request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(JSON.stringify(b));
const claimOf = (b: Bundle) => b.entry![0].resource as Claim;
const orderEntry = (b: Bundle, id: string) => b.entry!.find((e) => e.resource?.resourceType === 'MedicationRequest' && e.resource.id === id)!;

/**
 * A story's request whose Claim asks for the given orders, one item each in this order: the first is the story's order
 * (under a fresh id), each further one made from it by `variant`.
 */
function claimed(story: string, variants: ((o: MedicationRequest) => MedicationRequest)[], quantity?: number): { bundle: Bundle; ids: string[] } {
  const first = `order-${randomUUID().slice(0, 8)}`;
  const bundle = storyBundle(story, { orderId: first });
  const entry = orderEntry(bundle, first);
  const base = entry.resource as MedicationRequest;
  const orders = variants.map((v, i) => ({ ...v(structuredClone(base)), id: `${first}-${i}` }));
  const [head, ...rest] = orders;
  entry.resource = head;
  entry.fullUrl = entry.fullUrl!.replace(first, head.id!);
  bundle.entry!.push(...rest.map((o) => ({ fullUrl: `https://ehr.example.org/fhir/MedicationRequest/${o.id}`, resource: o })));
  const claim = claimOf(bundle);
  const template = claim.item![0];
  claim.item = orders.map((o, i) => ({
    ...structuredClone(template),
    sequence: i + 1,
    extension: [{ url: 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-requestedService', valueReference: { reference: `MedicationRequest/${o.id}` } }],
    ...(quantity ? { quantity: { value: quantity, unit: 'ug' } } : {}),
  }));
  return { bundle, ids: orders.map((o) => o.id!) };
}

const itemNotes = (cr: ClaimResponse) => JSON.stringify(cr.item ?? []) + JSON.stringify(cr.processNote ?? []);

describe('orders of the same drug claimed together', () => {
  it('two items naming two 4-cycle MRD-positive orders: the first is certified, the second pended for the course limit with the 4 cycles before it named', async () => {
    const same = (o: MedicationRequest) => o;
    const { bundle } = claimed('centene-mrd-positive', [same, same], 3136);
    const res = await submit(bundle);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const cr = claimResponseOf(res.body);
    expect(reviewActions(cr)).toEqual([`${X12}#A1`, `${X12}#A4`]);
    expect(itemNotes(cr)).toContain('before it in the same request: 4');
  });

  it('two items naming two 4-cycle MRD-positive orders already active (signed earlier) do not count each other as given: the first is certified, the second pended', async () => {
    const active = (o: MedicationRequest): MedicationRequest => ({ ...o, status: 'active' });
    const { bundle } = claimed('centene-mrd-positive', [active, active], 3136);
    const res = await submit(bundle);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const cr = claimResponseOf(res.body);
    // Each cycle is counted once, by the order after it: the second counts the first's 4 cycles as given.
    expect(reviewActions(cr)).toEqual([`${X12}#A1`, `${X12}#A4`]);
  });

  it('a Claim whose two items name the same order judges one order, not two courses', async () => {
    const same = (o: MedicationRequest) => o;
    const { bundle, ids } = claimed('centene-mrd-positive', [same], 3136);
    const claim = claimOf(bundle);
    claim.item!.push({ ...structuredClone(claim.item![0]), sequence: 2 });
    const res = await submit(bundle);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(reviewActions(claimResponseOf(res.body))).toEqual([`${X12}#A1`, `${X12}#A1`]);
    expect(ids).toHaveLength(1);
  });

  it('a relapsed cycle 1 claimed as its days 1-7 and days 8-28 orders is one cycle: both answered as each alone', async () => {
    const step = (n: number) => (o: MedicationRequest) => {
      const sorted = [...(o.dosageInstruction ?? [])].sort((a, b) => (a.sequence ?? 0) - (b.sequence ?? 0));
      return { ...o, dosageInstruction: [{ ...sorted[n], sequence: 1 }] };
    };
    const alone = async (n: number) => reviewActions(claimResponseOf((await submit(claimed('bcbsnc-relapsed-adult', [step(n)]).bundle)).body));
    const expected = [...(await alone(0)), ...(await alone(1))];
    expect(expected[1]).toBe(`${X12}#A1`);
    const together = await submit(claimed('bcbsnc-relapsed-adult', [step(0), step(1)]).bundle);
    expect(together.status, JSON.stringify(together.body)).toBe(200);
    expect(reviewActions(claimResponseOf(together.body))).toEqual(expected);
    const reversed = await submit(claimed('bcbsnc-relapsed-adult', [step(1), step(0)]).bundle);
    expect(reviewActions(claimResponseOf(reversed.body))).toEqual([expected[1], expected[0]]);
  });
});
