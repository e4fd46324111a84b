import type { MedicationRequest, Resource } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { codeOf, proposedOrders, signOne } from '../helpers/crd-answer.js';
import type { CardJson } from '../helpers/crd-answer.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

/**
 * The Propose Alternate Request card offers the order changed as every proposal says, and only when that order,
 * evaluated again, exceeds no limit of the policy (design.md §6 "Limits"; cds-services/README.md "The alternate order
 * is judged again"): a lower dose that leaves the first week above the step dose is not offered, and a dose and a
 * quantity proposed together are one order that signing then approves.
 */
const TODAY = '2026-11-17';
const UCUM = 'http://unitsofmeasure.org';

/**
 * A story's record (its live vaccine left out) and its draft order, a cycle written 9 mcg/day on days 1-7 then 28,
 * with the days 8-28 dose at `ug` mcg/day, and the first week's too when `firstWeek`.
 */
function dosedAt(id: 'mmm-ph-positive-tki' | 'ohsu-live-vaccine', ug: number, firstWeek: boolean): { resources: Resource[]; order: MedicationRequest } {
  const resources = storyResources(id).filter((r) => r.resourceType !== 'Immunization');
  const order = structuredClone(storyOrder(id, resources));
  for (const i of order.dosageInstruction ?? []) {
    const dose = i.doseAndRate?.[0];
    if (!dose?.doseQuantity || (dose.doseQuantity.value === 9 && !firstWeek)) continue;
    dose.doseQuantity = { value: ug, unit: 'mcg/day', system: UCUM, code: 'ug/d' };
    delete i.text;
  }
  return { resources, order };
}

const proposalCards = (cards: CardJson[]) => cards.filter((c) => (c.suggestions ?? []).length > 0);

describe('Propose Alternate Request: the alternate order within every limit', () => {
  it('OHSU, a relapsed cycle 1 written 35 then 35 mcg/day: no card, since 28 then 28 mcg/day would still miss the 9 mcg/day first week', async () => {
    const { resources, order } = dosedAt('ohsu-live-vaccine', 35, true);
    const { ext, cards } = await signOne(resources, order, TODAY);
    expect(codeOf(ext, 'pa-needed')).toBe('auth-needed');
    expect(proposalCards(cards), JSON.stringify(cards.map((c) => c.summary))).toEqual([]);
  });

  it('MMM, 9 then 35 mcg/day dispensing 1400 mcg: one card changing the dose and the quantity together, which signing then approves', async () => {
    const { resources, order } = dosedAt('mmm-ph-positive-tki', 35, false);
    order.dispenseRequest = { ...order.dispenseRequest, quantity: { value: 1400, unit: 'mcg', system: UCUM, code: 'ug' } };
    const { ext, cards } = await signOne(resources, order, TODAY);
    expect(codeOf(ext, 'pa-needed')).toBe('auth-needed');
    const [card, ...more] = proposalCards(cards);
    expect(card, JSON.stringify(cards.map((c) => c.summary))).toBeDefined();
    expect(more).toEqual([]);
    expect(card.summary).toMatch(/dose and quantity above MP-RX-FP-14-23 limit: 28 mcg\/day, 980 mcg is covered without review/);
    const [proposed] = proposedOrders(cards);
    expect(proposed.dispenseRequest?.quantity).toMatchObject({ value: 980, code: 'ug' });
    expect(proposed.dosageInstruction!.map((i) => i.doseAndRate![0].doseQuantity!.value)).toEqual([9, 28]);
    const again = await signOne(resources, proposed, TODAY);
    expect(codeOf(again.ext, 'pa-needed')).toBe('satisfied');
  });
});
