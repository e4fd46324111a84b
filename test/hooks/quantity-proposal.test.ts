import type { MedicationRequest, Resource } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { codeOf, proposedOrders, reasonText, signOne } from '../helpers/crd-answer.js';
import type { CardJson } from '../helpers/crd-answer.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

/**
 * An order dispensing more than its payer's amount limit (OHSU HEALTHSERVICES-0382 II "980 billable units per 42
 * days"; MMM MP-RX-FP-14-23 Limits A, 980 mcg a cycle) gets, as an order over a dose limit does, a Propose Alternate
 * Request card whose suggestion is the same order at the limit: its dispense quantity 980 mcg, everything else as
 * written (design.md §4 "a dose or quantity exceeds the policy", §5 row 3; acceptance review s43 A6). The limit's
 * `propose.quantity` states it (cds-services/README.md).
 */
const TODAY = '2026-11-17';
const UCUM = 'http://unitsofmeasure.org';

/** A story's record and its draft order dispensing `ug` micrograms (the OHSU story without its live vaccine). */
function overAmount(id: 'mmm-ph-positive-tki' | 'ohsu-live-vaccine', ug: number): { resources: Resource[]; order: MedicationRequest } {
  const resources = storyResources(id).filter((r) => r.resourceType !== 'Immunization');
  const order = structuredClone(storyOrder(id, resources));
  order.dispenseRequest = { ...order.dispenseRequest, quantity: { value: ug, unit: 'mcg', system: UCUM, code: 'ug' } };
  return { resources, order };
}

type ProposalCard = CardJson & { selectionBehavior?: string; suggestions?: { label: string; uuid?: string; actions: { type: string; resource?: MedicationRequest }[] }[] };
const proposalCards = (cards: CardJson[]) => cards.filter((c) => (c.suggestions ?? []).length > 0) as ProposalCard[];

describe('an amount over the limit: Propose Alternate Request at the limit', () => {
  it('MMM, 1400 mcg for one cycle: auth-needed with one card proposing the same order dispensing 980 mcg, which signing then approves', async () => {
    const { resources, order } = overAmount('mmm-ph-positive-tki', 1400);
    const { ext, cards } = await signOne(resources, order, TODAY);
    expect(codeOf(ext, 'pa-needed')).toBe('auth-needed');
    expect(reasonText(ext)).toContain('980 mcg per cycle');
    const [card] = proposalCards(cards);
    expect(card, JSON.stringify(cards.map((c) => c.summary))).toBeDefined();
    expect(card.selectionBehavior).toBe('at-most-one');
    expect(card.summary).toMatch(/quantity above MP-RX-FP-14-23 limit: 980 mcg is covered without review/);
    expect(card.suggestions).toHaveLength(1);
    expect(card.suggestions![0].label).toBe('Change the quantity dispensed to 980 mcg (policy maximum)');
    const [action] = card.suggestions![0].actions;
    expect(action.type).toBe('update');
    const proposed = action.resource!;
    expect(proposed.id).toBe(order.id);
    expect(proposed.dispenseRequest?.quantity).toEqual({ value: 980, unit: 'mcg', system: UCUM, code: 'ug' });
    // The same cycle with less drug dispensed: dose, schedule, cycles, days supply and validity as written.
    const { quantity: _q, ...restProposed } = proposed.dispenseRequest!;
    const { quantity: _o, ...restOrder } = order.dispenseRequest!;
    expect(restProposed).toEqual(restOrder);
    expect(proposed.dosageInstruction).toEqual(order.dosageInstruction);
    expect(proposed.medicationCodeableConcept).toEqual(order.medicationCodeableConcept);

    const again = await signOne(resources, proposed, TODAY);
    expect(codeOf(again.ext, 'pa-needed')).toBe('satisfied');
  });

  it('OHSU, 1400 units with an attestation still to give: the proposal of 980 mcg promises no coverage without review', async () => {
    const { resources, order } = overAmount('ohsu-live-vaccine', 1400);
    const { ext, cards } = await signOne(resources, order, TODAY);
    expect(codeOf(ext, 'pa-needed')).toBe('auth-needed');
    expect(reasonText(ext)).toContain('980 billable units');
    const [card] = proposalCards(cards);
    expect(card, JSON.stringify(cards.map((c) => c.summary))).toBeDefined();
    expect(card.summary).toMatch(/quantity above HEALTHSERVICES-0382 limit: 980 mcg is within it \(documentation still needed\)/);
    const [proposed] = proposedOrders(cards);
    expect(proposed.id).toBe(order.id);
    expect(proposed.dispenseRequest?.quantity).toMatchObject({ value: 980, code: 'ug' });
    const again = await signOne(resources, proposed, TODAY);
    expect(reasonText(again.ext)).not.toContain('980 billable units');
  });

  it('an order within the limit (980 mcg) gets no proposal', async () => {
    const { resources, order } = overAmount('mmm-ph-positive-tki', 980);
    const { ext, cards } = await signOne(resources, order, TODAY);
    expect(codeOf(ext, 'pa-needed')).toBe('satisfied');
    expect(proposalCards(cards)).toEqual([]);
  });

  it('no proposal when the order would still exceed a limit no proposal fixes (more than 28 days of infusion)', async () => {
    const { resources, order } = overAmount('mmm-ph-positive-tki', 1400);
    const last = order.dosageInstruction![order.dosageInstruction!.length - 1];
    last.timing = { repeat: { ...last.timing!.repeat, boundsPeriod: { ...last.timing!.repeat!.boundsPeriod, end: '2027-01-05' } } };
    const { ext, cards } = await signOne(resources, order, TODAY);
    expect(codeOf(ext, 'pa-needed')).toBe('auth-needed');
    expect(reasonText(ext)).toMatch(/28 days of continuous infusion/);
    expect(proposalCards(cards)).toEqual([]);
  });

  it("configuration: 'therapy-alternatives-req' false leaves the card out, and max-cards caps the cards as for a dose proposal", async () => {
    const { resources, order } = overAmount('mmm-ph-positive-tki', 1400);
    const off = await signOne(resources, order, TODAY, { extra: { extension: { 'davinci-crd.configuration': { 'therapy-alternatives-req': false } } } });
    expect(codeOf(off.ext, 'pa-needed')).toBe('auth-needed');
    expect(proposalCards(off.cards)).toEqual([]);
    expect(off.cards.length).toBeGreaterThan(0);
    const capped = await signOne(resources, order, TODAY, { extra: { extension: { 'davinci-crd.configuration': { 'max-cards': 1 } } } });
    expect(capped.cards).toHaveLength(1);
    const two = await signOne(resources, order, TODAY, { extra: { extension: { 'davinci-crd.configuration': { 'max-cards': 2 } } } });
    expect(proposalCards(two.cards)).toHaveLength(1);
  });
});
