/**
 * The recency windows of the indication's evidence end on the start the order states (docs/design.md §6 Recency,
 * review s43 A8), in the DTR 2.2 form's pre-fill as on the server: the form reads `%orderStart` from the hidden
 * order-start item the payer fills in `$questionnaire-package`, only from a start the order states (boundsPeriod or
 * validityPeriod, never authoredOn). The pre-fill runs here in fhirpath.js, as LHC-Forms and Smart Forms run it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle, Extension, MedicationRequest, Observation, Parameters, Questionnaire, QuestionnaireItem, QuestionnaireResponse } from '@medplum/fhirtypes';
import fhirpath from 'fhirpath';
import r4 from 'fhirpath/fhir-context/r4/index.js';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { EXT_INITIAL_EXPRESSION } from '../../src/fhir/dtr-urls.js';
import { ORDER_DATE_LINK_ID, ORDER_START_LINK_ID } from '../../src/policies/questionnaire-names.js';
import { statedStartOf, orderStartOf } from '../../src/policies/evaluation-data.js';
import { buildApp } from '../helpers/app.js';
import { coverageInfo, sub } from '../helpers/dtr-package.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { repoRoot, storyOrder, storyResources } from '../helpers/stories.js';

const form = JSON.parse(readFileSync(join(repoRoot, 'questionnaires', 'centene-blinatumomab.json'), 'utf8')) as Questionnaire;

function itemOf(items: QuestionnaireItem[] | undefined, linkId: string): QuestionnaireItem | undefined {
  for (const i of items ?? []) {
    if (i.linkId === linkId) return i;
    const inner = itemOf(i.item, linkId);
    if (inner) return inner;
  }
  return undefined;
}

const initial = (linkId: string) =>
  itemOf(form.item, linkId)!.extension!.find((e) => e.url === EXT_INITIAL_EXPRESSION)!.valueExpression!.expression!;

const mrd = (id: string, when: string, value: number): Observation => ({
  resourceType: 'Observation',
  id,
  status: 'final',
  code: { coding: [{ system: 'https://priorpath.dev/fhir/CodeSystem/evidence', code: 'mrd' }] },
  effectiveDateTime: when,
  valueQuantity: { value, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
});

/** The draft as the payer fills it: the order date, and the start the order states when it states one. */
const draft = (orderDate: string, orderStart?: string): QuestionnaireResponse => ({
  resourceType: 'QuestionnaireResponse',
  status: 'in-progress',
  item: [
    { linkId: ORDER_DATE_LINK_ID, answer: [{ valueDate: orderDate }] },
    ...(orderStart ? [{ linkId: ORDER_START_LINK_ID, answer: [{ valueDate: orderStart }] }] : []),
  ],
});

function prefill(expression: string, qr: QuestionnaireResponse, observations: Observation[]): unknown[] {
  const bundle = { resourceType: 'Bundle', type: 'searchset', entry: observations.map((resource) => ({ resource })) };
  return fhirpath.evaluate(qr, expression, { resource: qr, observations: bundle } as Record<string, unknown>, r4) as unknown[];
}

describe('recency windows end on the stated start in the DTR 2.2 pre-fill (design.md §6 Recency)', () => {
  // A retrospective order for a cycle that started 2026-08-01: MRD 0.5 % before it, 0 % in November, on the therapy.
  const record = [mrd('mrd-pre', '2026-07-28T09:00:00Z', 0.5), mrd('mrd-post', '2026-11-10T09:00:00Z', 0)];

  it('reads the MRD taken before the start the order states, not the one taken after it', () => {
    expect(prefill(initial('mrd-percent'), draft('2026-08-01', '2026-08-01'), record)).toEqual([0.5]);
  });

  it('counts a result taken on the start day', () => {
    const onTheDay = [mrd('mrd-pre', '2026-08-01T15:00:00-05:00', 0.5), mrd('mrd-post', '2026-11-10T09:00:00Z', 0)];
    expect(prefill(initial('mrd-percent'), draft('2026-08-01', '2026-08-01'), onTheDay)).toEqual([0.5]);
  });

  it('sets no upper end when the order states no start (its order date is authoredOn): the latest result is read', () => {
    expect(prefill(initial('mrd-percent'), draft('2026-08-01'), record)).toEqual([0]);
  });

  it('the form carries the hidden order-start item its pre-fill reads', () => {
    expect(form.item!.map((i) => i.linkId).slice(0, 2)).toEqual([ORDER_DATE_LINK_ID, ORDER_START_LINK_ID]);
    expect(initial('cd19-positive')).toContain(`linkId = '${ORDER_START_LINK_ID}'`);
  });
});

/**
 * A result in the window not dated to the day (only a month or a year) that may be the latest leaves the fact unknown,
 * so the form asks it, as the server does (design.md §6 "Recency", fhirpath.ts maybeRecent): never an older result read
 * in its place. One wholly before a result dated to the day in the window, or wholly outside the window, changes nothing.
 */
describe('a result dated only by its month or year that may be the latest is asked in the DTR 2.2 pre-fill (design.md §6 "Recency")', () => {
  it('leaves the MRD level empty when a November 2026 result may be later than the 1 October one', () => {
    const record = [mrd('mrd-oct', '2026-10-01T09:00:00Z', 0), mrd('mrd-nov', '2026-11', 0.5)];
    expect(prefill(initial('mrd-percent'), draft('2026-11-24', '2026-11-24'), record)).toEqual([]);
  });

  it('leaves it empty for a result dated only 2026 and none dated to the day', () => {
    expect(prefill(initial('mrd-percent'), draft('2026-11-24', '2026-11-24'), [mrd('mrd-2026', '2026', 0)])).toEqual([]);
  });

  it('reads the dated result when the partial one lies wholly before it or wholly after the start', () => {
    const before = [mrd('mrd-oct', '2026-10', 0), mrd('mrd-nov', '2026-11-10T09:00:00Z', 0.5)];
    expect(prefill(initial('mrd-percent'), draft('2026-11-24', '2026-11-24'), before)).toEqual([0.5]);
    const after = [mrd('mrd-nov', '2026-11-10T09:00:00Z', 0.5), mrd('mrd-dec', '2026-12', 0)];
    expect(prefill(initial('mrd-percent'), draft('2026-11-24', '2026-11-24'), after)).toEqual([0.5]);
  });

  it('leaves the weight empty when a weight dated only November 2026 may be later than the one of 1 November', () => {
    const weight = (id: string, when: string, kg: number): Observation => ({
      resourceType: 'Observation',
      id,
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '29463-7', display: 'Body weight' }] },
      effectiveDateTime: when,
      valueQuantity: { value: kg, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
    });
    expect(prefill(initial('weight'), draft('2026-11-24', '2026-11-24'), [weight('w-1', '2026-11-01T09:00:00Z', 70)])).toEqual([70]);
    expect(prefill(initial('weight'), draft('2026-11-24', '2026-11-24'), [weight('w-1', '2026-11-01T09:00:00Z', 70), weight('w-2', '2026-11', 38)])).toEqual([]);
  });
});

/**
 * History facts (Ph, KMT2A,/**
 * History facts (Ph, KMT2A, the remission and relapse dates) have no recency window but end on the stated start too
 * (design.md §6 "Order date"): a result taken after it describes the patient on the therapy, not at its start.
 */
describe('a KMT2A result after the stated start is not read in the DTR 2.2 pre-fill (design.md §6 "Order date")', () => {
  const kmt2a = (id: string, when: string | undefined, code: string): Observation => ({
    resourceType: 'Observation',
    id,
    status: 'final',
    code: { coding: [{ system: 'https://priorpath.dev/fhir/CodeSystem/evidence', code: 'kmt2a-status' }] },
    ...(when ? { effectiveDateTime: when } : {}),
    valueCodeableConcept: { coding: [{ system: 'https://priorpath.dev/fhir/CodeSystem/evidence', code }] },
  });
  // An infant's order for a cycle that started 2026-08-01: rearranged at diagnosis, "not rearranged" in September.
  const record = [kmt2a('kmt2a-pre', '2026-07-20T09:00:00Z', 'rearranged'), kmt2a('kmt2a-post', '2026-09-01T09:00:00Z', 'not-rearranged')];

  it('reads the result taken before the start the order states, not the later one', () => {
    expect(prefill(initial('kmt2a-rearranged'), draft('2026-08-01', '2026-08-01'), record)).toEqual([true]);
  });

  it('reads the latest result when the order states no start, and a result stating no date as before', () => {
    expect(prefill(initial('kmt2a-rearranged'), draft('2026-08-01'), record)).toEqual([false]);
    const undated = [kmt2a('kmt2a-pre', '2026-07-20T09:00:00Z', 'rearranged'), kmt2a('kmt2a-undated', undefined, 'not-rearranged')];
    expect(prefill(initial('kmt2a-rearranged'), draft('2026-08-01', '2026-08-01'), undated)).toEqual([false]);
  });
});

describe('the start an order states (evaluation-data.ts statedStartOf)', () => {
  const base = { resourceType: 'MedicationRequest' as const, status: 'draft' as const, intent: 'order' as const, subject: { reference: 'Patient/pt' } };
  it('is the planned start, else the validity start, never authoredOn', () => {
    const planned = { ...base, authoredOn: '2026-11-22', dosageInstruction: [{ timing: { repeat: { boundsPeriod: { start: '2026-08-01' } } } }], dispenseRequest: { validityPeriod: { start: '2026-07-30' } } };
    const validity = { ...base, authoredOn: '2026-11-22', dispenseRequest: { validityPeriod: { start: '2026-07-30' } } };
    const authored = { ...base, authoredOn: '2026-11-03T10:00:00-05:00' };
    expect([statedStartOf(planned), statedStartOf(validity), statedStartOf(authored)]).toEqual(['2026-08-01', '2026-07-30', undefined]);
    // The order date still falls back to authoredOn (the windows count back from it).
    expect(orderStartOf(authored)).toBe('2026-11-03');
  });
});

/**
 * A package asked with the CRD assertion alone (`context`, no order: the launch the CRD card's appContext allows) fills
 * the order-start item from the start signing read off the order, kept with the assertion (review-diff s44 D4): its
 * pre-fill's windows end there, as when the order is sent. The story's order plans its start for 2026-11-21.
 */
describe('$questionnaire-package by context alone fills the order-start item (design.md §6 "Order date")', () => {
  const STORY = 'centene-missing-mrd';

  async function contextPackage(order: MedicationRequest): Promise<QuestionnaireResponse[]> {
    const { app } = buildApp({ today: '2026-11-19' });
    const resources = storyResources(STORY);
    const signed = (await request(app).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, order)).expect(200)).body.systemActions[0].resource as MedicationRequest;
    const assertionId = sub(coverageInfo(signed as { extension?: Extension[] }), 'coverage-assertion-id')!.valueString!;
    const coverage = resources.find((r) => r.resourceType === 'Coverage')!;
    const res = await request(app)
      .post('/fhir/Questionnaire/$questionnaire-package')
      .set('Content-Type', 'application/fhir+json')
      .send(JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'coverage', resource: coverage }, { name: 'context', valueString: assertionId }] }))
      .expect(200);
    const bundles = ((res.body as Parameters).parameter ?? []).filter((p) => p.resource?.resourceType === 'Bundle').map((p) => p.resource as Bundle);
    expect(bundles.length).toBeGreaterThan(0);
    return bundles.map((b) => b.entry!.find((e) => e.resource?.resourceType === 'QuestionnaireResponse')!.resource as QuestionnaireResponse);
  }

  const answerOf = (qr: QuestionnaireResponse, linkId: string) => {
    const find = (items: QuestionnaireResponse['item']): unknown => {
      for (const i of items ?? []) {
        if (i.linkId === linkId) return i.answer?.[0]?.valueDate;
        const inner = find(i.item);
        if (inner !== undefined) return inner;
      }
      return undefined;
    };
    return find(qr.item);
  };

  it('with the start the signed order stated, in every DTR version the package holds', async () => {
    const drafts = await contextPackage(storyOrder(STORY));
    for (const qr of drafts) {
      expect(answerOf(qr, ORDER_DATE_LINK_ID)).toBe('2026-11-21');
      expect(answerOf(qr, ORDER_START_LINK_ID), 'the pre-fill windows end on the start').toBe('2026-11-21');
    }
  });

  it('with none when the signed order stated no start (its order date is authoredOn, no upper end)', async () => {
    const order = structuredClone(storyOrder(STORY));
    for (const d of order.dosageInstruction ?? []) delete d.timing?.repeat?.boundsPeriod;
    delete order.dispenseRequest?.validityPeriod;
    const drafts = await contextPackage(order);
    for (const qr of drafts) {
      expect(answerOf(qr, ORDER_DATE_LINK_ID)).toBe('2026-11-16');
      expect(answerOf(qr, ORDER_START_LINK_ID)).toBeUndefined();
    }
  });
});

/**
 * The drug history ends on the stated start too (design.md §6 "Cycles", `%medicationsBefore`): an order that starts
 * after this one was not given, nor under way, before it. The form reads it from the same FHIRPath, over the EHR's
 * MedicationRequest search.
 */
describe('an order starting after the stated start is not read as under way in the DTR 2.2 pre-fill (design.md §6 "Cycles")', () => {
  const blincyto = (id: string, start: string): MedicationRequest => ({
    resourceType: 'MedicationRequest',
    id,
    status: 'active',
    intent: 'order',
    subject: { reference: 'Patient/pt' },
    medicationCodeableConcept: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '1597262' }] },
    dosageInstruction: [{ timing: { repeat: { boundsPeriod: { start } } } }],
  });
  const receiving = (qr: QuestionnaireResponse, medications: MedicationRequest[]) => {
    const bundle = { resourceType: 'Bundle', type: 'searchset', entry: medications.map((resource) => ({ resource })) };
    return fhirpath.evaluate(qr, initial('currently-receiving'), { resource: qr, medications: bundle } as Record<string, unknown>, r4) as unknown[];
  };
  // Cycle 1 re-signed (start 2026-11-24) while the course's cycle 2, starting 2027-01-05, is already active.
  const cycle2 = blincyto('blin-c2', '2027-01-05');

  it('does not read the later cycle as the treatment under way at this order start', () => {
    expect(receiving(draft('2026-11-24', '2026-11-24'), [cycle2])).toEqual([false]);
  });

  it('reads an active order that started before it, and every order when the order states no start, as before', () => {
    expect(receiving(draft('2026-11-24', '2026-11-24'), [blincyto('blin-c0', '2026-10-13')])).toEqual([true]);
    expect(receiving(draft('2026-11-24'), [cycle2])).toEqual([true]);
  });
});
