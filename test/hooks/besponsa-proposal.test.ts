import type { MedicationRequest, Observation, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { expectValidHookResponse } from '../helpers/response-checks.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

/**
 * A Besponsa dose above the FDA label's 0.8 mg/m² (BCBSNC Inotuzumab: "in accordance with FDA label", label 761040s000
 * 0.8 mg/m² day 1, 0.5 mg/m² days 8 and 15) is a limit review, and, as for every dose over a policy's limit, the answer
 * carries a Propose Alternate Request card whose suggestion is the same order at the policy maximum (design.md §4,
 * §5 row 3; acceptance review s42 F1): the day-1 dose lowered to 0.8 mg/m², days 8 and 15 kept.
 */
const STORY = 'bcbsnc-inotuzumab-relapsed';

type Card = { summary: string; indicator: string; suggestions?: { label: string; actions: { type: string; resource?: MedicationRequest }[] }[] };

async function sign(order: MedicationRequest, extra: Resource[] = []) {
  const { app } = buildApp({ today: '2026-11-17' });
  const body = orderSignRequest([...storyResources(STORY), ...extra], order);
  const res = await request(app).post('/cds-services/priorpath-order-sign').send(body).expect(200);
  const [ext] = expectValidHookResponse(res.body, 'order-sign', '2.0');
  return { ext, cards: res.body.cards as Card[] };
}

/** The story's cycle with its day-1 dose at `mgPerM2`. */
function dayOneAt(mgPerM2: number): MedicationRequest {
  const order = structuredClone(storyOrder(STORY, storyResources(STORY)));
  const day1 = order.dosageInstruction![0];
  day1.doseAndRate![0].doseQuantity = { value: mgPerM2, unit: 'mg/m2', system: 'http://unitsofmeasure.org', code: 'mg/m2' };
  day1.text = `${mgPerM2} mg/m2 IV over 1 hour on day 1`;
  return order;
}

describe('Besponsa above the label dose: Propose Alternate Request at the label dose', () => {
  it('1.8 mg/m² on day 1: auth-needed with a card proposing 0.8 mg/m² on day 1 and keeping 0.5 mg/m² on days 8 and 15', async () => {
    const { ext, cards } = await sign(dayOneAt(1.8));
    expect(ext.extension!.find((e) => e.url === 'pa-needed')?.valueCode).toBe('auth-needed');
    const alternate = cards.find((c) => c.suggestions?.some((s) => s.actions.some((a) => a.type === 'update')));
    expect(alternate, JSON.stringify(cards.map((c) => c.summary))).toBeDefined();
    const suggestion = alternate!.suggestions!.find((s) => s.actions.some((a) => a.type === 'update'))!;
    expect(suggestion.label).toContain('0.8 mg/m²');
    const proposed = suggestion.actions.find((a) => a.type === 'update')!.resource!;
    expect(proposed.dosageInstruction!.map((i) => i.doseAndRate![0].doseQuantity)).toMatchObject([
      { value: 0.8, code: 'mg/m2' },
      { value: 0.5, code: 'mg/m2' },
    ]);
    // The sig no longer states the dose it replaced.
    expect(proposed.dosageInstruction![0].text).toBe('0.8 mg/m2 IV over 1 hour on day 1');
  });

  it('the labelled cycle is approved with no alternate proposed', async () => {
    const { ext, cards } = await sign(dayOneAt(0.8));
    expect(ext.extension!.find((e) => e.url === 'pa-needed')?.valueCode).toBe('satisfied');
    expect(cards.some((c) => c.suggestions?.some((s) => s.actions.some((a) => a.type === 'update')))).toBe(false);
  });
});

/** A disease-status result (the evidence code system's local codes, design.md §6). */
function status(id: string, date: string, code: string): Observation {
  return {
    resourceType: 'Observation',
    id,
    status: 'final',
    subject: { reference: `Patient/${STORY}` },
    code: { coding: [{ system: 'https://priorpath.dev/fhir/CodeSystem/evidence', code: 'disease-status' }] },
    effectiveDateTime: date,
    valueCodeableConcept: { coding: [{ system: 'https://priorpath.dev/fhir/CodeSystem/evidence', code }] },
  };
}

/**
 * The story's patient one cycle into the course: refractory disease before cycle 1 (15 October), cycle 1 from
 * 20 October (completed), and the response recorded on 12 November; the order is cycle 2, written as cycle 1
 * (0.8 mg/m² on day 1, 0.5 mg/m² on days 8 and 15).
 */
function cycleTwo(response: 'cr1' | 'refractory'): { order: MedicationRequest; extra: Resource[] } {
  const order = structuredClone(storyOrder(STORY, storyResources(STORY)));
  order.dispenseRequest = { ...order.dispenseRequest, numberOfRepeatsAllowed: 0 };
  order.dosageInstruction![0].text = '0.8 mg/m2 IV over 1 hour on day 1 (cycle 2 of 28 days)';
  const cycleOne: MedicationRequest = {
    resourceType: 'MedicationRequest',
    id: `${STORY}-cycle-1`,
    status: 'completed',
    intent: 'order',
    subject: { reference: `Patient/${STORY}` },
    authoredOn: '2026-10-18',
    medicationCodeableConcept: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '1942954', display: 'inotuzumab ozogamicin 0.9 MG Injection' }] },
    dosageInstruction: [{ timing: { repeat: { boundsPeriod: { start: '2026-10-20' }, count: 1 } }, doseAndRate: [{ doseQuantity: { value: 0.8, unit: 'mg/m2', system: 'http://unitsofmeasure.org', code: 'mg/m2' } }] }],
    dispenseRequest: { numberOfRepeatsAllowed: 0 },
  };
  return { order, extra: [cycleOne, status('status-before-cycle-1', '2026-10-15T09:00:00-04:00', 'refractory'), status('status-after-cycle-1', '2026-11-12T09:00:00-05:00', response)] };
}

/**
 * After cycle 1 the label doses by the response (761040s000 2.1): 0.5 mg/m² on days 1, 8 and 15 for a patient who has
 * achieved CR or CRi. Cycle 2 written at 0.8 mg/m² on day 1 for such a patient is a limit review whose alternate order
 * lowers the day-1 line to 0.5 mg/m² (BCBSNC Inotuzumab limit label-cr-cri-later-cycle-dose; design.md §6 "Limits").
 */
describe('a later Besponsa cycle in CR/CRi above the label dose: Propose Alternate Request at 0.5 mg/m²', () => {
  it('cycle 2 at 0.8 mg/m² on day 1 in first remission: auth-needed, the day-1 dose proposed at 0.5 mg/m², days 8 and 15 kept', async () => {
    const { order, extra } = cycleTwo('cr1');
    const { ext, cards } = await sign(order, extra);
    expect(ext.extension!.find((e) => e.url === 'pa-needed')?.valueCode).toBe('auth-needed');
    const alternate = cards.find((c) => c.suggestions?.some((s) => s.actions.some((a) => a.type === 'update')));
    expect(alternate, JSON.stringify(cards.map((c) => c.summary))).toBeDefined();
    const suggestion = alternate!.suggestions!.find((s) => s.actions.some((a) => a.type === 'update'))!;
    expect(suggestion.label).toContain('0.5 mg/m²');
    const proposed = suggestion.actions.find((a) => a.type === 'update')!.resource!;
    expect(proposed.dosageInstruction!.map((i) => i.doseAndRate![0].doseQuantity)).toMatchObject([
      { value: 0.5, code: 'mg/m2' },
      { value: 0.5, code: 'mg/m2' },
    ]);
    expect(proposed.dosageInstruction![0].text).toBe('0.5 mg/m2 IV over 1 hour on day 1 (cycle 2 of 28 days)');
  });

  it('the same cycle 2 for a patient still refractory after cycle 1 is the labelled dose, approved with no alternate', async () => {
    const { order, extra } = cycleTwo('refractory');
    const { ext, cards } = await sign(order, extra);
    expect(ext.extension!.find((e) => e.url === 'pa-needed')?.valueCode).toBe('satisfied');
    expect(cards.some((c) => c.suggestions?.some((s) => s.actions.some((a) => a.type === 'update')))).toBe(false);
  });
});
