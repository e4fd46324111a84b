import type { MedicationRequest } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { blinatumomabOrder, PHASE_URL, relapseRecord, TODAY } from '../fixtures/bcbsnc-relapse.js';
import { edgePatient } from '../fixtures/edge-patient.js';
import { codeOf, edgeMrd, proposedOrders, reasonText, signOne } from '../helpers/crd-answer.js';

/*
 * Row 3 of design.md §5 on the wire: a dose or a course over a limit is auth-needed with documentation, and the
 * Propose Alternate Request card offers the same order within every limit it exceeds (§4 "Response", §6 "Limits"):
 * the dose at the policy maximum, the cycles the course still allows, or nothing when no order of the drug fits.
 */

const sign = (record: Parameters<typeof signOne>[0], order: MedicationRequest) => signOne(record, order, TODAY);

/** `count` completed earlier Blincyto orders of the BCBSNC member, one cycle each, six weeks apart. */
function earlierCycles(count: number): MedicationRequest[] {
  return Array.from({ length: count }, (_, i) => {
    const start = new Date(Date.UTC(2025, 2, 3) + i * 42 * 86_400_000).toISOString().slice(0, 10);
    return {
      ...blinatumomabOrder(),
      id: `bc-blin-cycle-${i + 1}`,
      status: 'completed',
      authoredOn: start,
      extension: [{ url: PHASE_URL, valueCode: i < 2 ? 'induction' : i < 5 ? 'consolidation' : 'continued' }],
      dosageInstruction: [
        { ...blinatumomabOrder().dosageInstruction![0], timing: { repeat: { boundsPeriod: { start, end: start } } } },
      ],
      dispenseRequest: { numberOfRepeatsAllowed: 0 },
    } as MedicationRequest;
  });
}

describe('row 3: the alternate order comes within every limit it exceeds', () => {
  it('row 3 (blinatumomab), 8 cycles given and 2 asked for exceeds the 9-cycle course: auth-needed with documentation, a reason citing the limit, and a proposal of the same order for the one cycle left', async () => {
    // Two more continued-therapy cycles of the same course (an induction order after the course would begin a new one).
    const order = { ...blinatumomabOrder(), extension: [{ url: PHASE_URL, valueCode: 'continued' }] };
    const { ext, cards } = await sign([...relapseRecord(), ...earlierCycles(8)], order);
    expect(codeOf(ext, 'covered')).toBe('covered');
    expect(codeOf(ext, 'pa-needed')).toBe('auth-needed');
    expect(codeOf(ext, 'doc-needed')).toBe('clinical');
    expect(codeOf(ext, 'doc-purpose')).toBe('withpa');
    expect(reasonText(ext)).toMatch(/cycle|course/i);
    const [proposed] = proposedOrders(cards);
    expect(proposed, JSON.stringify(cards)).toBeDefined();
    expect(proposed.id).toBe(order.id);
    expect(1 + (proposed.dispenseRequest?.numberOfRepeatsAllowed ?? 0)).toBe(1);
    expect(proposed.medicationCodeableConcept).toEqual(order.medicationCodeableConcept);
    expect(proposed.dosageInstruction).toEqual(order.dosageInstruction);
  });

  describe('row 3, the proposal is the same order within every limit it exceeds (design.md §6 "Limits")', () => {
    /** Centene's MRD-positive member (edge patient, MRD 0.4 %): a 4-cycle course, at most 28 mcg/day. */
    const centeneCourse = (given: number, repeats: number, dose: number) => {
      const { resources, order } = edgePatient();
      order.dispenseRequest = { numberOfRepeatsAllowed: repeats };
      order.dosageInstruction![0].doseAndRate![0].doseQuantity!.value = dose;
      const earlier = Array.from({ length: given }, (_, i): MedicationRequest => {
        const start = new Date(Date.UTC(2026, 1, 2) + i * 42 * 86_400_000).toISOString().slice(0, 10);
        return {
          ...structuredClone(order),
          id: `edge-cycle-${i + 1}`,
          status: 'completed',
          authoredOn: start,
          dispenseRequest: { numberOfRepeatsAllowed: 0 },
          dosageInstruction: [
            {
              ...order.dosageInstruction![0],
              doseAndRate: [
                { doseQuantity: { value: 28, unit: 'mcg/d', system: 'http://unitsofmeasure.org', code: 'ug/d' } },
              ],
              timing: { repeat: { boundsPeriod: { start, end: start } } },
            },
          ],
        };
      });
      return sign([...resources, edgeMrd(0.4), ...earlier], order);
    };

    it('a dose above 28 mcg/day and a cycle beyond the course: one proposal at 28 mcg/day for the cycles left', async () => {
      const { ext, cards } = await centeneCourse(3, 1, 35);
      expect(codeOf(ext, 'pa-needed')).toBe('auth-needed');
      const [proposed] = proposedOrders(cards);
      expect(proposed, JSON.stringify(cards)).toBeDefined();
      expect(proposed.dosageInstruction![0].doseAndRate![0].doseQuantity!.value).toBe(28);
      expect(proposed.dispenseRequest!.numberOfRepeatsAllowed).toBe(0);
    });

    it('a first order asking for 10 cycles of a 9-cycle course (BCBSNC): a proposal for the 9 the course and its pathway allow', async () => {
      const { ext, cards } = await sign(relapseRecord(), {
        ...blinatumomabOrder(),
        dispenseRequest: { numberOfRepeatsAllowed: 9 },
      });
      expect(codeOf(ext, 'pa-needed')).toBe('auth-needed');
      const [proposed] = proposedOrders(cards);
      expect(proposed?.dispenseRequest?.numberOfRepeatsAllowed, JSON.stringify(cards)).toBe(8);
    });

    it('a course already complete: no proposal, since no order of this drug is within the limits (a lower dose alone would still need review)', async () => {
      const { ext, cards } = await centeneCourse(4, 0, 35);
      expect(codeOf(ext, 'pa-needed')).toBe('auth-needed');
      expect(reasonText(ext)).toMatch(/cycle/i);
      expect(proposedOrders(cards)).toEqual([]);
    });
  });

  it('row 1 at the edge of row 3 (blinatumomab): 7 cycles given and 2 asked for completes the course and is approved', async () => {
    const { ext } = await sign([...relapseRecord(), ...earlierCycles(7)], blinatumomabOrder());
    expect(codeOf(ext, 'pa-needed')).toBe('satisfied');
  });

  describe('what the proposal card promises is what signing the proposed order gets', () => {
    const over = () => {
      const { resources, order } = edgePatient();
      order.dosageInstruction![0].doseAndRate![0].doseQuantity!.value = 35;
      return { resources, order };
    };
    const proposalCard = (cards: Awaited<ReturnType<typeof sign>>['cards']) =>
      cards.find((c) => (c.suggestions ?? []).length > 0);

    it('with the record complete, "covered without review": the proposed 28 mcg/day is approved at signing', async () => {
      const { resources, order } = over();
      const record = [...resources, edgeMrd(0.4)];
      const { cards } = await sign(record, order);
      expect(proposalCard(cards)?.summary).toMatch(/covered without review/);
      const again = await sign(record, proposedOrders(cards)[0]);
      expect(codeOf(again.ext, 'pa-needed')).toBe('satisfied');
    });

    it('with MRD still unknown, no promise of coverage without review: the proposed order still needs documentation', async () => {
      const { resources, order } = over();
      const { cards } = await sign(resources, order);
      const card = proposalCard(cards);
      expect(card, JSON.stringify(cards)).toBeDefined();
      expect(card!.summary).not.toMatch(/without review/);
      const again = await sign(resources, proposedOrders(cards)[0]);
      expect(codeOf(again.ext, 'pa-needed')).toBe('auth-needed');
    });
  });
});
