import type { MedicationRequest } from '@medplum/fhirtypes';
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

async function sign(order: MedicationRequest) {
  const { app } = buildApp({ today: '2026-11-17' });
  const body = orderSignRequest(storyResources(STORY), order);
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
    expect(proposed.dosageInstruction![0].text).toBe('0.8 mg/m² IV over 1 hour on day 1');
  });

  it('the labelled cycle is approved with no alternate proposed', async () => {
    const { ext, cards } = await sign(dayOneAt(0.8));
    expect(ext.extension!.find((e) => e.url === 'pa-needed')?.valueCode).toBe('satisfied');
    expect(cards.some((c) => c.suggestions?.some((s) => s.actions.some((a) => a.type === 'update')))).toBe(false);
  });
});
