/**
 * One decision per order, shared by CRD, DTR and PAS (design.md §8): the age bands a policy uses (Centene CP.PHAR.312:
 * "adult" is 18 or older on the order date, I.A.4.c.iii) are judged on the order's start in CRD, in the DTR form
 * (the payer's pre-fill and the form's enableWhenExpressions) and in the server's reading of the
 * QuestionnaireResponse. The patient here turns 18 after today and before the order starts: an adult for this order.
 */
import type { Bundle, MedicationRequest, Parameters, Questionnaire, QuestionnaireResponse, QuestionnaireResponseItem, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { evaluateQuestionnaireResponse } from '../../src/coverage/evaluate-response.js';
import { ORDER_DATE_LINK_ID, ORDER_START_LINK_ID } from '../../src/policies/questionnaire-names.js';
import type { MemoryStorage } from '../../src/storage/memory-storage.js';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { CANONICAL_BASE, dtrContent, EVIDENCE, shownInForm, TODAY, turningEighteen, withAnswers } from './helpers.js';

const FHIR = 'application/fhir+json';
const STORY = 'centene-missing-mrd';
const content = dtrContent();

const shown = (q: Questionnaire, linkId: string, qr: QuestionnaireResponse) => shownInForm(content, q, linkId, qr);

const answerOf = (items: QuestionnaireResponseItem[] | undefined, linkId: string): QuestionnaireResponseItem['answer'] =>
  (items ?? []).flatMap((i) => [...(i.linkId === linkId ? [i] : []), ...(i.item ?? [])]).find((i) => i.linkId === linkId)?.answer;

const code = (c: string): QuestionnaireResponseItem['answer'] => [{ valueCoding: { system: EVIDENCE, code: c } }];

/** The package Bundles `$questionnaire-package` answers for the patient's Coverage and the order (and a named form). */
async function packageBundles(app: ReturnType<typeof buildApp>['app'], resources: Resource[], order: MedicationRequest, questionnaire?: string): Promise<Bundle[]> {
  const res = await request(app)
    .post('/fhir/Questionnaire/$questionnaire-package')
    .set('Content-Type', FHIR)
    .send(JSON.stringify({ resourceType: 'Parameters', parameter: [
      { name: 'coverage', resource: resources.find((r) => r.resourceType === 'Coverage') },
      { name: 'order', resource: order },
      ...(questionnaire ? [{ name: 'questionnaire', valueCanonical: questionnaire }] : []),
    ] }))
    .expect(200);
  return (res.body as Parameters).parameter!.filter((p) => p.name === 'PackageBundle').map((p) => p.resource as Bundle);
}

describe('a patient who turns 18 between today and the order start', () => {
  it('is an adult for this order in CRD, in the DTR form and in the server reading of the response', async () => {
    const { app, storage } = buildApp({ today: TODAY });
    const { resources, order, start, birthDate } = turningEighteen(STORY);

    // CRD: the facts recorded at signing.
    const signed = await request(app).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, order)).expect(200);
    const assertions = [...(storage as MemoryStorage).assertions.values()];
    expect(assertions).toHaveLength(1);
    expect(assertions[0].facts.birthDate).toBe(birthDate);
    expect(assertions[0].facts.adult, 'CRD: adult on the order date').toBe(true);

    // DTR: the package's form and its pre-filled response (the 2.0.1 shape, which names no CRD assertion).
    const bundles = await packageBundles(app, resources, signed.body.systemActions[0].resource as MedicationRequest);
    expect(bundles.length).toBeGreaterThan(0);
    for (const bundle of bundles) {
      const q = bundle.entry!.find((e) => e.resource?.resourceType === 'Questionnaire')!.resource as Questionnaire;
      const qr = bundle.entry!.find((e) => e.resource?.resourceType === 'QuestionnaireResponse')!.resource as QuestionnaireResponse;
      expect(answerOf(qr.item, ORDER_DATE_LINK_ID)?.[0].valueDate, 'the order start is pre-filled').toBe(start);
      expect(answerOf(qr.item, 'birth-date')?.[0].valueDate).toBe(birthDate);

      // The form: the adult-only maintenance-with-POMP question (I.A.4.c.iii) is asked, as CRD would ask it.
      const maintenance = withAnswers(qr, { 'ph-status': code('negative'), 'treatment-phase': code('maintenance') });
      expect(shown(q, 'with-pomp', maintenance), `${q.id}: the adult question is shown`).toBe(true);
      // Judged on today instead (the order start taken out), the same patient is a child and the question hidden.
      const onToday = withAnswers(maintenance, { [ORDER_DATE_LINK_ID]: [] });
      expect(shown(q, 'with-pomp', onToday), `${q.id}: on today the question is hidden`).toBe(false);

      // The server's reading of the response sent back: adult, as in CRD.
      const read = evaluateQuestionnaireResponse({ content, qr: { ...maintenance, status: 'completed' }, today: TODAY });
      expect(read.problems).toEqual([]);
      expect(read.evaluation.facts.find((f) => f.name === 'adult')?.value, 'server: adult on the order date').toBe(true);
    }
  });

  it('an approval made on the completed form runs from the order start, as an approval at signing would', async () => {
    const { app, storage } = buildApp({ today: TODAY });
    const { resources, order, start } = turningEighteen(STORY);
    const signed = await request(app).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, order)).expect(200);
    const [bundle] = await packageBundles(app, resources, signed.body.systemActions[0].resource as MedicationRequest);
    const qr = bundle.entry!.find((e) => e.resource?.resourceType === 'QuestionnaireResponse')!.resource as QuestionnaireResponse;
    expect(answerOf(qr.item, ORDER_DATE_LINK_ID)?.[0].valueDate).toBe(start);
    // The MRD level the record lacked, answered: MRD-positive B-ALL in remission (CP.PHAR.312 I.A.4.a). The chart's
    // weight is more than 30 days before the order start, so the weight class of the dose (V) is answered too.
    const completed = {
      ...withAnswers(qr, { 'mrd-percent': [{ valueDecimal: 0.5 }], weight: [{ valueDecimal: 66 }] }),
      status: 'completed' as const,
    };
    const created = await request(app).post('/fhir/QuestionnaireResponse').set('Content-Type', FHIR).send(JSON.stringify(completed)).expect(201);
    const ext = (created.body as QuestionnaireResponse).extension!.find((e) => e.url.endsWith('ext-coverage-information'))!;
    const assertionId = ext.extension!.find((e) => e.url === 'coverage-assertion-id')!.valueString!;
    const assertion = await storage.getAssertion(assertionId);
    expect(ext.extension!.find((e) => e.url === 'pa-needed')?.valueCode, 'the answered form approves').toBe('satisfied');
    expect(assertion?.outcome).toBe('satisfied');
    expect(assertion?.authorization?.start, 'the approval starts on the order start, not today').toBe(start);
    expect(assertion!.authorization!.end > start).toBe(true);
  });

  it("the adaptive route's first response carries the order start for $next-question, which reads the age on it", async () => {
    const { app } = buildApp({ today: TODAY });
    const { resources, order, start, birthDate } = turningEighteen(STORY);
    const policy = content.policies.find((p) => p.file.id === 'centene-blinatumomab')!;
    const [bundle] = await packageBundles(app, resources, order, `${CANONICAL_BASE}/Questionnaire/${policy.file.id}-adaptive`);
    const draft = bundle.entry!.find((e) => e.resource?.resourceType === 'QuestionnaireResponse')!.resource as QuestionnaireResponse;
    expect(answerOf(draft.item, ORDER_DATE_LINK_ID)?.[0].valueDate).toBe(start);
    const form = draft.contained!.find((c) => c.resourceType === 'Questionnaire') as Questionnaire;
    // With the start the order states beside it, for the recency windows of the questions' pre-fill (design.md §6).
    expect(form.item?.map((i) => i.linkId)).toEqual([ORDER_DATE_LINK_ID, ORDER_START_LINK_ID]);
    expect(answerOf(draft.item, ORDER_START_LINK_ID)?.[0].valueDate).toBe(start);
    // $next-question reads the answers so far over the same evaluation: the birth date given, an adult for this order.
    const read = evaluateQuestionnaireResponse({ content, qr: withAnswers(draft, { 'birth-date': [{ valueDate: birthDate }] }), today: TODAY });
    expect(read.evaluation.facts.find((f) => f.name === 'adult')?.value).toBe(true);
  });

  it('a form the payer could not pre-fill (no order known) judges the age on today, the one date it has', () => {
    const { birthDate } = turningEighteen(STORY);
    const q = content.policies.find((p) => p.file.id === 'centene-blinatumomab')!;
    const qr: QuestionnaireResponse = {
      resourceType: 'QuestionnaireResponse',
      questionnaire: `${CANONICAL_BASE}/Questionnaire/${q.file.id}|${q.file.version}`,
      status: 'completed',
      item: [
        { linkId: 'birth-date', answer: [{ valueDate: birthDate }] },
        { linkId: 'ph-status', answer: code('negative') },
      ],
    };
    const read = evaluateQuestionnaireResponse({ content, qr, today: TODAY });
    expect(read.evaluation.facts.find((f) => f.name === 'adult')?.value).toBe(false);
  });
});
