/**
 * DTR answers and what PriorPath read at signing (docs/design.md §7 "Answers and the record"; review s40 F11, F8):
 * - a fact of the order (the cycles requested) that the order states is the order's: a form answer does not change
 *   the order, so a 10-cycle order answered "2 cycles" is judged for 10 (over Centene's 4-cycle limit), in DTR, at the
 *   next signing and in PAS alike;
 * - an answer that contradicts a chart fact signing read (T-cell ALL answered as B-ALL, CD19 negative as positive),
 *   whatever its `information-origin` says, does not approve the order at once: it is pended for clinical review,
 *   naming each contradicted answer by its question with the record's value; signing does not approve it meanwhile, and
 *   PAS pends it (A4) for the reviewer's queue with the same reason. An answer filling what the chart left unknown
 *   still decides (MRD answered when missing).
 */
import type { Bundle, Extension, MedicationRequest, QuestionnaireResponse, QuestionnaireResponseItem, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { coverageInfo, packageDraft, reasons, sub } from '../helpers/dtr-package.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';
import { claimResponseOf, REVIEW_TOKEN, reviewActions, storyBundle } from '../pas/pas-fixtures.js';

const FHIR = 'application/fhir+json';
const TODAY = '2026-11-23';
const X12 = 'https://codesystem.x12.org/005010/306';
const COVERAGE_INFO = 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information';
const ORIGIN = 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/information-origin';

type App = ReturnType<typeof buildApp>['app'];


async function sign(app: App, resources: Resource[], order: MedicationRequest): Promise<{ signed: MedicationRequest; ext: Extension[] }> {
  const res = await request(app).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, order)).expect(200);
  const signed = res.body.systemActions[0].resource as MedicationRequest;
  return { signed, ext: coverageInfo(signed) };
}

/** The pre-filled draft response of the package for the signed order (DTR 2.2 shape). */
const draft = (app: App, resources: Resource[], signed: MedicationRequest) => packageDraft(app, resources.find((r) => r.resourceType === 'Coverage'), signed);

/** The response with these answers set (replacing the pre-filled ones, the origin kept or set as given). */
function answered(qr: QuestionnaireResponse, set: Record<string, QuestionnaireResponseItem['answer']>, origin?: 'auto' | 'override' | 'manual'): QuestionnaireResponse {
  const left = new Set(Object.keys(set));
  const withOrigin = (answers: QuestionnaireResponseItem['answer'], was?: QuestionnaireResponseItem['answer']) =>
    answers!.map((a) => {
      const ext = origin ? [{ url: ORIGIN, extension: [{ url: 'source', valueCode: origin }] }] : (was?.[0]?.extension ?? []);
      return { ...a, extension: ext };
    });
  const walk = (items: QuestionnaireResponseItem[] | undefined): QuestionnaireResponseItem[] | undefined =>
    items?.map((i) => {
      if (i.linkId in set) {
        left.delete(i.linkId);
        return { ...i, answer: withOrigin(set[i.linkId], i.answer) };
      }
      return i.item ? { ...i, item: walk(i.item) } : i;
    });
  const item = walk(qr.item) ?? [];
  for (const l of left) item.push({ linkId: l, answer: withOrigin(set[l]) });
  return { ...qr, item, status: 'completed' };
}

const answerOf = (items: QuestionnaireResponseItem[] | undefined, linkId: string): QuestionnaireResponseItem['answer'] =>
  (items ?? []).flatMap((i) => [...(i.linkId === linkId ? [i] : []), ...(i.item ?? [])]).find((i) => i.linkId === linkId)?.answer;

/** Every answered leaf item of a response, by linkId (what a PAS request's attached response carries). */
function leafAnswers(qr: QuestionnaireResponse): Record<string, QuestionnaireResponseItem['answer']> {
  const out: Record<string, QuestionnaireResponseItem['answer']> = {};
  const walk = (items: QuestionnaireResponseItem[] | undefined) => {
    for (const i of items ?? []) {
      if (i.answer?.length) out[i.linkId] = i.answer.map(({ extension: _e, ...a }) => a);
      walk(i.item);
    }
  };
  walk(qr.item);
  return out;
}

async function post(app: App, qr: QuestionnaireResponse): Promise<QuestionnaireResponse> {
  return (await request(app).post('/fhir/QuestionnaireResponse').set('Content-Type', FHIR).send(JSON.stringify(qr)).expect(201)).body as QuestionnaireResponse;
}

async function pas(app: App, bundle: Bundle) {
  return claimResponseOf((await request(app).post('/fhir/Claim/$submit').set('Content-Type', FHIR).send(JSON.stringify(bundle)).expect(200)).body);
}

const yes = [{ valueBoolean: true }];

describe('F11: a fact of the order stands over a DTR answer', () => {
  const story = 'centene-missing-mrd';
  const tenCycles = (): { resources: Resource[]; order: MedicationRequest } => {
    const resources = storyResources(story);
    const base = storyOrder(story, resources);
    const order = { ...base, dispenseRequest: { ...base.dispenseRequest, numberOfRepeatsAllowed: 9 } };
    return { resources: resources.map((r) => (r.id === base.id && r.resourceType === 'MedicationRequest' ? order : r)), order };
  };

  it('a 10-cycle order answered "2 cycles requested" is judged for 10 cycles: no approval, in DTR, at signing again and in PAS', async () => {
    const { app, storage } = buildApp({ today: TODAY, env: { REVIEW_TOKEN } });
    const { resources, order } = tenCycles();
    const { signed } = await sign(app, resources, order);
    const qr = await draft(app, resources, signed);
    expect(answerOf(qr.item, 'cycles-requested')?.[0].valueInteger, 'the package pre-fills the order\'s 10 cycles').toBe(10);
    // The MRD level the chart lacks answered (CP.PHAR.312 I.A.4.a); the cycles pre-filled from the order changed to 2,
    // their origin left `auto`.
    const sent = answered(answered(qr, { 'mrd-percent': [{ valueDecimal: 0.4 }] }, 'manual'), { 'cycles-requested': [{ valueInteger: 2 }] });
    const created = await post(app, sent);
    const ext = coverageInfo(created);
    expect(sub(ext, 'pa-needed')?.valueCode).toBe('auth-needed');
    expect(sub(ext, 'satisfied-pa-id')).toBeUndefined();
    expect(reasons(ext).join(' ')).toMatch(/covers at most 4 cycles; the order asks for 10/);
    // The response is kept as the client sent it: its answer of 2 is not rewritten.
    expect(answerOf(created.item, 'cycles-requested')?.[0].valueInteger).toBe(2);

    // Signed again, the 10-cycle order has no approval to answer.
    const again = await sign(app, resources, order);
    expect(sub(again.ext, 'pa-needed')?.valueCode).toBe('auth-needed');
    expect(sub(again.ext, 'satisfied-pa-id')).toBeUndefined();

    // PAS for the 10-cycle order with the same answers: pended for the limit, never certified.
    const bundle = storyBundle(story, { answers: leafAnswers(sent) });
    const orderEntry = bundle.entry!.find((e) => e.resource?.resourceType === 'MedicationRequest' && e.resource.id === order.id)!;
    orderEntry.resource = { ...(orderEntry.resource as MedicationRequest), dispenseRequest: order.dispenseRequest };
    const cr = await pas(app, bundle);
    expect(reviewActions(cr)).toEqual([`${X12}#A4`]);
    expect(cr.preAuthRef).toBeUndefined();
    const stored = await storage.getPasSubmission(cr.id!);
    expect(stored?.needed?.join(' ')).toMatch(/the order asks for 10/);
  });

  it('an answer still fills a fact of the order the order leaves unknown (the dose of an order written as text)', async () => {
    const { app } = buildApp({ today: TODAY });
    const resources = storyResources(story);
    const base = storyOrder(story, resources);
    const order: MedicationRequest = { ...base, dosageInstruction: [{ text: 'blinatumomab continuous infusion per protocol' }] };
    const { signed } = await sign(app, resources.map((r) => (r.id === base.id && r.resourceType === 'MedicationRequest' ? order : r)), order);
    const qr = await draft(app, resources, signed);
    expect(answerOf(qr.item, 'daily-dose')).toBeUndefined();
    const created = await post(app, answered(qr, { 'mrd-percent': [{ valueDecimal: 0.4 }], 'daily-dose': [{ valueDecimal: 28 }] }, 'manual'));
    const ext = coverageInfo(created);
    expect(sub(ext, 'pa-needed')?.valueCode).toBe('satisfied');
    expect(sub(ext, 'satisfied-pa-id')?.valueString).toMatch(/^PA-CENTENE-/);
  });
});

describe('F8: answers that contradict the chart signing read are pended for clinical review', () => {
  const story = 'bcbsnc-t-all';

  it.each(['auto', 'override'] as const)('T-cell ALL answered as B-ALL, CD19 negative as positive (origin %s): pended, named, and signing and PAS agree', async (origin) => {
    const { app, storage } = buildApp({ today: TODAY, env: { REVIEW_TOKEN } });
    const resources = storyResources(story);
    const order = storyOrder(story, resources);
    const { signed, ext: atSigning } = await sign(app, resources, order);
    expect(sub(atSigning, 'satisfied-pa-id')).toBeUndefined();
    const qr = await draft(app, resources, signed);
    // The package pre-fills what the chart says (T-cell ALL, CD19 negative), origin auto.
    expect(answerOf(qr.item, 'b-all-diagnosis')?.[0].valueBoolean).toBe(false);
    expect(answerOf(qr.item, 'cd19-positive')?.[0].valueBoolean).toBe(false);
    const sent = answered(qr, { 'b-all-diagnosis': yes, 'cd19-positive': yes }, origin);
    const created = await post(app, sent);

    const ext = coverageInfo(created);
    expect(sub(ext, 'covered')?.valueCode).toBe('covered');
    expect(sub(ext, 'pa-needed')?.valueCode).toBe('auth-needed');
    expect(sub(ext, 'satisfied-pa-id')).toBeUndefined();
    const why = reasons(ext).join(' ');
    expect(why).toMatch(/^Pended for clinical review/);
    // Each contradicted answer by its question, with the record's value and the answer.
    expect(why).toMatch(/B-cell[^;]*answered Yes; the record read at signing: No/i);
    expect(why).toMatch(/CD19[^;]*answered Yes; the record read at signing: No/i);
    // Kept as sent (answers and their origins).
    expect(answerOf(created.item, 'b-all-diagnosis')).toEqual(answerOf(sent.item, 'b-all-diagnosis'));
    expect(answerOf(created.item, 'cd19-positive')).toEqual(answerOf(sent.item, 'cd19-positive'));
    // The order's record says why, and holds no approval.
    const records = await storage.findOrderRecords({ payer: 'bcbsnc', patientId: order.subject!.reference!.split('/')[1], orderRefs: [`MedicationRequest/${order.id}`] });
    expect(records).toHaveLength(1);
    expect(records[0].state).not.toBe('approved');
    const dtrEvent = [...records[0].history].reverse().find((h) => h.source === 'dtr');
    expect(dtrEvent?.reason).toMatch(/^Pended for clinical review.*B-cell/i);

    // Signed again on the unchanged chart: no approval.
    const again = await sign(app, resources, order);
    expect(sub(again.ext, 'satisfied-pa-id')).toBeUndefined();
    expect(sub(again.ext, 'pa-needed')?.valueCode).not.toBe('satisfied');

    // PAS with the same answers: A4 for clinical review, with the same reason, in the reviewer's queue.
    const cr = await pas(app, storyBundle(story, { answers: leafAnswers(sent) }));
    expect(reviewActions(cr)).toEqual([`${X12}#A4`]);
    expect(cr.preAuthRef).toBeUndefined();
    const stored = await storage.getPasSubmission(cr.id!);
    expect(stored?.needed?.join(' ')).toMatch(/Clinical review: an answer contradicts the patient's record as read at signing: .*B-cell/i);
    const queue = await request(app).get('/review/pended').set('Authorization', `Bearer ${REVIEW_TOKEN}`).expect(200);
    expect((queue.body.pended as { id: string }[]).map((p) => p.id)).toContain(cr.id);
  });

  it('answers that agree with the chart, or fill what it left unknown, decide as before (MRD answered when missing approves)', async () => {
    const { app } = buildApp({ today: TODAY });
    const resources = storyResources('centene-missing-mrd');
    const order = storyOrder('centene-missing-mrd', resources);
    const { signed } = await sign(app, resources, order);
    const qr = await draft(app, resources, signed);
    const created = await post(app, answered(qr, { 'mrd-percent': [{ valueDecimal: 0.4 }] }, 'manual'));
    const ext = coverageInfo(created);
    expect(sub(ext, 'pa-needed')?.valueCode).toBe('satisfied');
    expect(sub(ext, 'satisfied-pa-id')?.valueString).toMatch(/^PA-CENTENE-/);
  });
});

describe('review s41 F1: earlier DTR answers that a re-signing filled in are not "the record read at signing"', () => {
  const story = 'centene-missing-mrd';

  /** The order as the EHR keeps it after DTR: the determination's coverage-information written back in place of signing's. */
  const carrying = (signed: MedicationRequest, determined: QuestionnaireResponse): MedicationRequest => ({
    ...signed,
    extension: [...(signed.extension ?? []).filter((e) => e.url !== COVERAGE_INFO), determined.extension!.find((e) => e.url === COVERAGE_INFO)!],
  });

  /**
   * Signed, documented in DTR (the answers given), signed again carrying that determination: the second signing is
   * judged with the earlier answers filling what the chart lacks (decide-orders.ts evaluateOrder).
   */
  async function documentedThenResigned(app: App, resources: Resource[], order: MedicationRequest, first: Record<string, QuestionnaireResponseItem['answer']>) {
    const { signed } = await sign(app, resources, order);
    const determined = await post(app, answered(await draft(app, resources, signed), first, 'manual'));
    expect(sub(coverageInfo(determined), 'satisfied-pa-id'), 'the first answers do not approve').toBeUndefined();
    return sign(app, resources, carrying(signed, determined));
  }

  it.each(['DTR', 'PAS'] as const)('an MRD level corrected after a re-signing is decided on the correction, not pended against the earlier answer (%s)', async (edge) => {
    const { app, storage } = buildApp({ today: TODAY });
    const resources = storyResources(story);
    const order = storyOrder(story, resources);
    // MRD 0.005 % (under CP.PHAR.312 I.A.4.a's 0.01 %): no covered use; the chart has no MRD result at all.
    const again = await documentedThenResigned(app, resources, order, { 'mrd-percent': [{ valueDecimal: 0.005 }] });
    expect(sub(again.ext, 'satisfied-pa-id')).toBeUndefined();
    const resigning = await storage.getAssertion(sub(again.ext, 'coverage-assertion-id')!.valueString!);
    expect(resigning?.facts.mrdPercent, 'the re-signing was judged with the earlier answer').toBe(0.005);
    expect(resigning?.answeredFacts).toContain('mrdPercent');
    if (edge === 'PAS') {
      // PAS reads the signing the order's record names. A re-signing is named there when it changes the order's state
      // (a chart that changed meanwhile); this one did not, so the record's signing is made the re-signing's.
      const [record] = await storage.findOrderRecords({ payer: 'centene', patientId: order.subject!.reference!.split('/')[1], orderRefs: [`MedicationRequest/${order.id}`] });
      const named = [...record.history].reverse().find((h) => h.source === 'crd')!.assertionId!;
      await storage.saveAssertion({ ...resigning!, assertionId: named });
    }
    // The clinician corrects the level: 0.4 %.
    const corrected = answered(await draft(app, resources, again.signed), { 'mrd-percent': [{ valueDecimal: 0.4 }] }, 'manual');
    if (edge === 'DTR') {
      const ext = coverageInfo(await post(app, corrected));
      expect(reasons(ext).join(' ')).not.toMatch(/the record read at signing/);
      expect(sub(ext, 'pa-needed')?.valueCode).toBe('satisfied');
      expect(sub(ext, 'satisfied-pa-id')?.valueString).toMatch(/^PA-CENTENE-/);
    } else {
      const cr = await pas(app, storyBundle(story, { answers: leafAnswers(corrected) }));
      expect(reviewActions(cr)).toEqual([`${X12}#A1`]);
      expect(cr.preAuthRef).toMatch(/^PA-CENTENE-/);
    }
  });

  it('a dose written only as text, answered again after a re-signing, is judged on the new answer', async () => {
    const { app } = buildApp({ today: TODAY });
    const base = storyOrder(story, storyResources(story));
    const order: MedicationRequest = { ...base, dosageInstruction: [{ text: 'blinatumomab continuous infusion per protocol' }] };
    const resources = storyResources(story).map((r) => (r.id === base.id && r.resourceType === 'MedicationRequest' ? order : r));
    // 56 mcg a day, over CP.PHAR.312 II.A.3's 28 with no guideline attached: pended for the limit.
    const again = await documentedThenResigned(app, resources, order, { 'mrd-percent': [{ valueDecimal: 0.4 }], 'daily-dose': [{ valueDecimal: 56 }] });
    expect(reasons(again.ext).join(' ')).toMatch(/Outside the policy limit/);
    // The dose corrected to 28 mcg a day: within the limit, approved (the order states no dose for it to stand over).
    const created = await post(app, answered(await draft(app, resources, again.signed), { 'daily-dose': [{ valueDecimal: 28 }] }, 'manual'));
    const ext = coverageInfo(created);
    expect(reasons(ext).join(' ')).not.toMatch(/Outside the policy limit/);
    expect(sub(ext, 'pa-needed')?.valueCode).toBe('satisfied');
    expect(sub(ext, 'satisfied-pa-id')?.valueString).toMatch(/^PA-CENTENE-/);
  });
});

describe('F4 (review s41): an answer contradicting the chart does not decide a denial either', () => {
  // MMM MP-RX-FP-14-23 A.i: CD19-positive B-ALL only (requirement cd19-positive-b-all: CD19-negative is not covered).
  // The story's chart gets a recent CD19-positive result and loses its weight, so signing asks for the weight only.
  const story = 'mmm-cd19-unknown';
  const cd19Positive: Resource = {
    resourceType: 'Observation',
    id: 'mmm-cd19-unknown-cd19',
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory', display: 'Laboratory' }] }],
    code: { coding: [{ system: 'https://priorpath.dev/fhir/CodeSystem/evidence', code: 'cd19-status', display: 'CD19 expression' }], text: 'CD19 expression' },
    subject: { reference: `Patient/${story}` },
    effectiveDateTime: '2026-11-12T10:20:00-04:00',
    valueCodeableConcept: { coding: [{ system: 'https://priorpath.dev/fhir/CodeSystem/evidence', code: 'positive', display: 'Positive' }], text: 'Positive' },
    method: { text: 'Flow cytometry, bone marrow' },
  } as Resource;
  const chart = (withCd19: boolean) => [...storyResources(story).filter((r) => r.id !== `${story}-weight`), ...(withCd19 ? [cd19Positive] : [])];
  const weight = { weight: [{ valueDecimal: 77 }] };

  it.each(['auto', 'override'] as const)('the record says CD19-positive, the form answers No (origin %s): pended for review, not denied, in DTR and PAS', async (origin) => {
    const { app, storage } = buildApp({ today: TODAY, env: { REVIEW_TOKEN } });
    const resources = chart(true);
    const order = storyOrder(story, resources);
    const { signed, ext: atSigning } = await sign(app, resources, order);
    expect(sub(atSigning, 'pa-needed')?.valueCode, 'the chart lacks the weight').toBe('auth-needed');
    const qr = await draft(app, resources, signed);
    expect(answerOf(qr.item, 'cd19-positive')?.[0].valueBoolean, "the package pre-fills the chart's CD19-positive").toBe(true);
    const sent = answered(answered(qr, weight, 'manual'), { 'cd19-positive': [{ valueBoolean: false }] }, origin);
    const created = await post(app, sent);
    const ext = coverageInfo(created);
    expect(sub(ext, 'covered')?.valueCode).toBe('covered');
    expect(sub(ext, 'pa-needed')?.valueCode).toBe('auth-needed');
    expect(sub(ext, 'satisfied-pa-id')).toBeUndefined();
    const why = reasons(ext).join(' ');
    expect(why).toMatch(/^Pended for clinical review/);
    expect(why).toMatch(/CD19[^;]*answered No; the record read at signing: Yes/i);
    const records = await storage.findOrderRecords({ payer: 'mmm', patientId: story, orderRefs: [`MedicationRequest/${order.id}`] });
    expect(records[0].state).toBe('auth-needed');
    expect([...records[0].history].reverse().find((h) => h.source === 'dtr')?.reason).toMatch(/^Pended for clinical review.*CD19/i);

    // PAS with the same answers (and the chart's CD19 result in the Bundle): A4 for the reviewer, never A3.
    const bundle = storyBundle(story, { answers: leafAnswers(sent) });
    bundle.entry!.push({ fullUrl: `Observation/${cd19Positive.id}`, resource: cd19Positive });
    const cr = await pas(app, bundle);
    expect(reviewActions(cr)).toEqual([`${X12}#A4`]);
    const stored = await storage.getPasSubmission(cr.id!);
    expect(stored?.needed?.join(' ')).toMatch(/Clinical review: an answer contradicts the patient's record as read at signing: .*CD19/i);
    const queue = await request(app).get('/review/pended').set('Authorization', `Bearer ${REVIEW_TOKEN}`).expect(200);
    expect((queue.body.pended as { id: string }[]).map((p) => p.id)).toContain(cr.id);
  });

  it('controls: the same answers with CD19 as the chart has it are decided by the rules; CD19 answered No where the chart has no result is a denial as before', async () => {
    const { app } = buildApp({ today: TODAY });
    const agreeing = chart(true);
    const order = storyOrder(story, agreeing);
    const first = await sign(app, agreeing, order);
    const agreed = coverageInfo(await post(app, answered(await draft(app, agreeing, first.signed), weight, 'manual')));
    expect(sub(agreed, 'covered')?.valueCode).toBe('covered');
    expect(reasons(agreed).join(' ')).not.toMatch(/Pended for clinical review/);

    const { app: other } = buildApp({ today: TODAY });
    const unknown = chart(false);
    const second = await sign(other, unknown, storyOrder(story, unknown));
    const denied = coverageInfo(await post(other, answered(await draft(other, unknown, second.signed), { ...weight, 'cd19-positive': [{ valueBoolean: false }] }, 'manual')));
    expect(sub(denied, 'covered')?.valueCode).toBe('not-covered');
    expect(reasons(denied).join(' ')).not.toMatch(/Pended for clinical review/);
  });

  it('a limit review resting on the contradicting answer is reviewed for it too (Centene: CD19-negative is a limit, the record says positive)', async () => {
    const { app } = buildApp({ today: TODAY });
    const resources = storyResources('centene-missing-mrd');
    const order = storyOrder('centene-missing-mrd', resources);
    const { signed } = await sign(app, resources, order);
    const qr = await draft(app, resources, signed);
    expect(answerOf(qr.item, 'cd19-positive')?.[0].valueBoolean).toBe(true);
    const created = await post(app, answered(answered(qr, { 'mrd-percent': [{ valueDecimal: 0.4 }] }, 'manual'), { 'cd19-positive': [{ valueBoolean: false }] }, 'override'));
    const why = reasons(coverageInfo(created)).join(' ');
    expect(why).toMatch(/^Pended for clinical review.*CD19[^;]*answered No; the record read at signing: Yes/i);
  });
});
