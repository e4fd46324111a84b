import type { Bundle, Coverage, Extension, MedicationRequest, Observation, Resource } from '@medplum/fhirtypes';
import type { FetchLike } from '../../src/hooks/ehr-client.js';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { edgePatient } from '../fixtures/edge-patient.js';
import { buildApp, makeKeys, signFor, testContent } from '../helpers/app.js';
import { fakeEhr } from '../helpers/fake-ehr.js';
import { orderSignRequest, searchset } from '../helpers/hook-requests.js';
import { expectValidHookResponse } from '../helpers/response-checks.js';

const SIGN = '/cds-services/priorpath-order-sign';
const sub = (ext: Extension, url: string) => ext.extension!.filter((e) => e.url === url);
const code = (ext: Extension, url: string) => sub(ext, url)[0]?.valueCode;

const mrd = (value: number): Observation => ({
  resourceType: 'Observation',
  id: 'edge-mrd',
  status: 'final',
  subject: { reference: 'Patient/edge-pt' },
  code: { coding: [{ system: 'https://priorpath.dev/fhir/CodeSystem/evidence', code: 'mrd', display: 'Minimal residual disease' }] },
  effectiveDateTime: '2026-11-09',
  valueQuantity: { value, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
});

/** The Centene member of test/fixtures/edge-patient.ts (B-ALL in first remission), with changes. */
function centene(opts: { add?: Resource[]; dose?: number; body?: Record<string, unknown> } = {}) {
  const { resources, order } = edgePatient();
  if (opts.dose !== undefined) order.dosageInstruction![0].doseAndRate![0].doseQuantity!.value = opts.dose;
  return orderSignRequest([...resources, ...(opts.add ?? [])], order, opts.body);
}

describe('CRD decisions on the wire (Centene CP.PHAR.312)', () => {
  it('answers auth-needed with documentation and the Questionnaire when MRD is missing', async () => {
    const { app, storage } = buildApp();
    const res = await request(app).post(SIGN).send(centene()).expect(200);
    const [ext] = expectValidHookResponse(res.body, 'order-sign');
    expect(code(ext, 'covered')).toBe('covered');
    expect(code(ext, 'pa-needed')).toBe('auth-needed');
    expect(code(ext, 'doc-needed')).toBe('clinical');
    expect(code(ext, 'doc-purpose')).toBe('withpa');
    expect(sub(ext, 'questionnaire')[0].valueCanonical).toBe('https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11');
    expect(sub(ext, 'reason')[0].valueCodeableConcept!.text).toMatch(/^Prior authorization needed\. Still to document \(CP\.PHAR\.312 [^)]*\): Minimal residual disease \(MRD\)/);
    const instructions = res.body.cards.find((c: { links?: unknown; suggestions?: unknown }) => !c.links && !c.suggestions);
    expect(instructions.summary).toMatch(/documentation required/);
    expect(instructions.detail).toMatch(/Minimal residual disease/);
    const reference = res.body.cards.find((c: { links?: { type: string }[] }) => c.links?.every((l) => l.type === 'absolute'));
    expect(reference.links[0].url).toBe('http://priorpath.test/policies/centene-blinatumomab');
    const assertionId = sub(ext, 'coverage-assertion-id')[0].valueString!;
    const stored = await storage.getAssertion(assertionId);
    expect(stored?.missingFacts).toContain('mrdPercent');
    expect(stored?.policyId).toBe('centene-blinatumomab');
  });

  it('approves at signing with an authorization number when the record shows MRD ≥ 0.1 %', async () => {
    const { app, storage } = buildApp({ today: '2026-11-23' });
    const res = await request(app).post(SIGN).send(centene({ add: [mrd(0.4)] })).expect(200);
    const [ext] = expectValidHookResponse(res.body, 'order-sign');
    expect(code(ext, 'pa-needed')).toBe('satisfied');
    const paId = sub(ext, 'satisfied-pa-id')[0].valueString!;
    expect(paId).toMatch(/^PA-CENTENE-20261123-[A-Z0-9]{8}$/);
    expect(sub(ext, 'doc-needed')).toHaveLength(0);
    const stored = await storage.getAssertion(sub(ext, 'coverage-assertion-id')[0].valueString!);
    expect(stored?.authorization).toEqual({ number: paId, start: '2026-11-25', end: '2027-05-24' });
    expect(res.body.systemActions[0].description).toContain(paId);
  });

  it('sends the full 2.2 form (expiry-date) only when requestedVersion is 2.2 or a 2.2 patch release', async () => {
    const { app } = buildApp();
    const body = centene({ add: [mrd(0.4)], body: { extension: { 'davinci-crd.requestedVersion': '2.2' } } });
    const res = await request(app).post(SIGN).send(body).expect(200);
    const [ext] = expectValidHookResponse(res.body, 'order-sign', '2.2');
    expect(sub(ext, 'expiry-date')[0].valueDate).toBe('2027-05-24');
    const plain = await request(app).post(SIGN).send(centene({ add: [mrd(0.4)] })).expect(200);
    expect(sub(expectValidHookResponse(plain.body, 'order-sign')[0], 'expiry-date')).toHaveLength(0);
    // A 2.2 patch release asks for the same form (CRD 2.2.1 is the release clients implement).
    const patch = centene({ add: [mrd(0.4)], body: { extension: { 'davinci-crd.requestedVersion': '2.2.1' } } });
    const patched = await request(app).post(SIGN).send(patch).expect(200);
    expect(sub(expectValidHookResponse(patched.body, 'order-sign', '2.2')[0], 'expiry-date')[0].valueDate).toBe('2027-05-24');
    const older = centene({ add: [mrd(0.4)], body: { extension: { 'davinci-crd.requestedVersion': '2.0.1' } } });
    expect(sub(expectValidHookResponse((await request(app).post(SIGN).send(older).expect(200)).body, 'order-sign')[0], 'expiry-date')).toHaveLength(0);
  });

  it('proposes the same order at 28 mcg/day when the dose exceeds the policy limit', async () => {
    const { app } = buildApp();
    const res = await request(app).post(SIGN).send(centene({ add: [mrd(0.4)], dose: 56 })).expect(200);
    const [ext] = expectValidHookResponse(res.body, 'order-sign');
    expect(code(ext, 'pa-needed')).toBe('auth-needed');
    expect(sub(ext, 'reason')[0].valueCodeableConcept!.text).toMatch(/^Outside the policy limit: .*28 mcg/);
    // The card indicator contract (design.md §4): info, warning only for not covered; an order over a limit is covered.
    const limit = res.body.cards.find((c: { summary: string }) => /exceeds the policy limit/.test(c.summary));
    expect(limit.indicator).toBe('info');
    expect(res.body.cards.filter((c: { indicator: string }) => c.indicator !== 'info')).toEqual([]);
    const propose = res.body.cards.find((c: { suggestions?: unknown[] }) => c.suggestions);
    expect(propose.selectionBehavior).toBe('at-most-one');
    const action = propose.suggestions[0].actions[0];
    expect(action.type).toBe('update');
    expect(action.resource.id).toBe('edge-order');
    expect(action.resource.dosageInstruction[0].doseAndRate[0].doseQuantity).toMatchObject({ value: 28, code: 'ug/d', system: 'http://unitsofmeasure.org' });
  });

  it.each(['centene', 'mmm', 'ohsu'])(
    '%s: with no recent weight but a recorded BSA of 1.2 m², proposes 15 mcg/m²/day × BSA (18 mcg/day), the dose within either weight class',
    async (payerKey) => {
      // design.md §6 Limits: the proposal is the highest dose within every limit for the patient. Without a weight the
      // class is unknown, and 28 mcg/day would exceed the < 45 kg limit a BSA of 1.2 m² points to; 18 is within both.
      const { resources, order } = edgePatient(payerKey);
      order.dosageInstruction![0].doseAndRate![0].doseQuantity!.value = 56;
      const bsa: Observation = {
        resourceType: 'Observation',
        id: 'edge-bsa',
        status: 'final',
        subject: { reference: 'Patient/edge-pt' },
        code: { coding: [{ system: 'http://loinc.org', code: '8277-6', display: 'Body surface area' }] },
        effectiveDateTime: '2026-11-16',
        valueQuantity: { value: 1.2, unit: 'm2', system: 'http://unitsofmeasure.org', code: 'm2' },
      };
      const body = orderSignRequest([...resources.filter((r) => r.id !== 'edge-weight'), bsa], order);
      const { app } = buildApp({ today: '2026-11-23' });
      const res = await request(app).post(SIGN).send(body).expect(200);
      const [ext] = expectValidHookResponse(res.body, 'order-sign');
      expect(code(ext, 'pa-needed')).toBe('auth-needed');
      const propose = res.body.cards.find((c: { suggestions?: unknown[] }) => c.suggestions);
      expect(propose, JSON.stringify(res.body.cards.map((c: { summary: string }) => c.summary))).toBeDefined();
      expect(propose.suggestions[0].actions[0].resource.dosageInstruction[0].doseAndRate[0].doseQuantity).toMatchObject({ value: 18, code: 'ug/d' });
    },
  );

  it.each(['centene', 'mmm', 'ohsu'])(
    '%s: under 45 kg an order written per m² is proposed per m² (15 mcg/m²/day, with today\'s mcg/day), a flat order in mcg/day (F3)',
    async (payerKey) => {
      // design.md §6 Limits: the labelled dose below 45 kg is 15 mcg/m²/day. 30 kg and 140 cm: BSA 1.08 m² (Mosteller),
      // so 20 mcg/m²/day is 21.6 mcg/day, within 28 but above 15 × 1.08 = 16.2.
      const child = (dose: { value: number; unit: string; code: string }) => {
        const { resources, order } = edgePatient(payerKey);
        const weight = resources.find((r) => r.id === 'edge-weight') as Observation;
        weight.valueQuantity!.value = 30;
        const height: Observation = {
          ...weight,
          id: 'edge-height',
          code: { coding: [{ system: 'http://loinc.org', code: '8302-2', display: 'Body height' }] },
          valueQuantity: { value: 140, unit: 'cm', system: 'http://unitsofmeasure.org', code: 'cm' },
        };
        order.dosageInstruction![0].doseAndRate![0].doseQuantity = { ...dose, system: 'http://unitsofmeasure.org' };
        return orderSignRequest([...resources, height], order);
      };
      const { app } = buildApp({ today: '2026-11-23' });
      const proposalOf = async (body: ReturnType<typeof orderSignRequest>) => {
        const res = await request(app).post(SIGN).send(body).expect(200);
        const [ext] = expectValidHookResponse(res.body, 'order-sign');
        expect(code(ext, 'pa-needed')).toBe('auth-needed');
        const card = res.body.cards.find((c: { suggestions?: unknown[] }) => c.suggestions);
        expect(card, JSON.stringify(res.body.cards.map((c: { summary: string }) => c.summary))).toBeDefined();
        return { label: card.suggestions[0].label as string, dose: card.suggestions[0].actions[0].resource.dosageInstruction[0].doseAndRate[0].doseQuantity };
      };
      const perM2 = await proposalOf(child({ value: 20, unit: 'mcg/m2/day', code: 'ug/m2/d' }));
      expect(perM2.dose).toMatchObject({ value: 15, code: 'ug/m2/d', system: 'http://unitsofmeasure.org' });
      expect(perM2.label).toBe("Change the dose to 15 mcg/m²/day (policy maximum; 16.2 mcg/day at today's BSA)");
      const flat = await proposalOf(child({ value: 28, unit: 'mcg/d', code: 'ug/d' }));
      expect(flat.dose).toMatchObject({ value: 16.2, code: 'ug/d' });
      expect(flat.label).toBe('Change the dose to 16.2 mcg/day (policy maximum)');
    },
  );

  it('with a long drug text shortens the drug name in card summaries, never the verdict (F5)', async () => {
    // CDS Hooks: summary under 140 characters; the one line a clinician reads must still say what happened.
    const long = 'BLINCYTO (blinatumomab) 35 mcg single-dose vial for injection, for intravenous use, with IV Solution Stabilizer, continuous infusion over 28 days';
    const named = (body: ReturnType<typeof centene>) => {
      ((body.context as { draftOrders: Bundle }).draftOrders.entry![0].resource as MedicationRequest).medicationCodeableConcept!.text = long;
      return body;
    };
    const { app } = buildApp({ today: '2026-11-23' });
    const missing = await request(app).post(SIGN).send(named(centene())).expect(200);
    const over = await request(app).post(SIGN).send(named(centene({ add: [mrd(0.4)], dose: 56 }))).expect(200);
    const summaries = [...missing.body.cards, ...over.body.cards].map((c: { summary: string }) => c.summary);
    for (const s of summaries) expect(s.length, s).toBeLessThan(140);
    expect(summaries.some((s) => /^Prior authorization needed for BLINCYTO \(blinatumomab\) [^:]*…: documentation required$/.test(s)), summaries.join('\n')).toBe(true);
    expect(summaries.some((s) => /…: the order exceeds the policy limit$/.test(s)), summaries.join('\n')).toBe(true);
    expect(summaries.some((s) => /…: CP\.PHAR\.312$/.test(s)), summaries.join('\n')).toBe(true);
    expect(summaries.some((s) => /… dose above CP\.PHAR\.312 limit: 28 mcg\/day is covered without review$/.test(s)), summaries.join('\n')).toBe(true);
  });

  it('answers not-covered citing the clause for T-cell ALL', async () => {
    const { app } = buildApp();
    const body = centene() as { prefetch: { conditions: unknown } };
    body.prefetch.conditions = searchset([
      {
        resourceType: 'Condition',
        id: 'edge-tall',
        clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
        code: { coding: [{ system: 'http://snomed.info/sct', code: '277575008', display: 'T-cell acute lymphoblastic leukemia' }] },
        subject: { reference: 'Patient/edge-pt' },
      },
    ]);
    const res = await request(app).post(SIGN).send(body).expect(200);
    const [ext] = expectValidHookResponse(res.body, 'order-sign');
    expect(code(ext, 'covered')).toBe('not-covered');
    expect(sub(ext, 'pa-needed')).toHaveLength(0);
    expect(sub(ext, 'reason')[0].valueCodeableConcept!.text).toMatch(/CP\.PHAR\.312 I\.A\.1/);
    const warning = res.body.cards.find((c: { indicator: string }) => c.indicator === 'warning');
    expect(warning.summary).toMatch(/not covered/);
  });

  it('honours configuration: coverage-info false returns no system action, max-cards caps the cards', async () => {
    const { app } = buildApp();
    const off = await request(app).post(SIGN).send(centene({ body: { extension: { 'davinci-crd.configuration': { 'coverage-info': false } } } })).expect(200);
    expect(off.body.systemActions).toBeUndefined();
    const capped = await request(app).post(SIGN).send(centene({ body: { extension: { 'davinci-crd.configuration': { 'max-cards': 1, 'unknown-option': true } } } })).expect(200);
    expect(capped.body.cards).toHaveLength(1);
  });

  it('offers the DTR SMART-link card only when dtr-clin is requested', async () => {
    const { app } = buildApp();
    const plain = await request(app).post(SIGN).send(centene()).expect(200);
    expect(plain.body.cards.some((c: { links?: { type: string }[] }) => c.links?.some((l) => l.type === 'smart'))).toBe(false);
    const res = await request(app).post(SIGN).send(centene({ body: { extension: { 'davinci-crd.configuration': { 'dtr-clin': true } } } })).expect(200);
    const smart = res.body.cards.find((c: { links?: { type: string }[] }) => c.links?.some((l) => l.type === 'smart'));
    expect(smart.links[0].url).toBe('http://priorpath.test/dtr/launch.html');
    expect(JSON.parse(smart.links[0].appContext).questionnaire).toEqual(['https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11']);
  });

  it('in production (no sandbox, so no DTR app served) sends no DTR launch card: the EHR has the questionnaire canonical and $questionnaire-package instead (F9)', async () => {
    const keys = await makeKeys();
    const { app } = buildApp({ keys, env: { NODE_ENV: 'production' } });
    for (const option of ['dtr-clin', 'dtr-launch-query']) {
      const res = await request(app)
        .post(SIGN)
        .set('Authorization', `Bearer ${await signFor(keys, SIGN)}`)
        .send(centene({ body: { extension: { 'davinci-crd.configuration': { [option]: true } } } }))
        .expect(200);
      const links = res.body.cards.flatMap((c: { links?: { type: string; url: string }[] }) => c.links ?? []);
      expect(links.filter((l: { type: string }) => l.type === 'smart'), option).toEqual([]);
      expect(links.some((l: { url: string }) => l.url.includes('/dtr/')), option).toBe(false);
      const [ext] = expectValidHookResponse(res.body, 'order-sign');
      expect(code(ext, 'doc-needed')).toBe('clinical');
      expect(sub(ext, 'questionnaire')[0].valueCanonical).toBe('https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11');
    }
    // The page the card would have linked to is not served.
    await request(app).get('/dtr/launch.html').expect(404);
  });

  it('does not ask for documentation on order-select [hook-19]', async () => {
    const { app } = buildApp();
    const body = { ...centene(), hook: 'order-select' } as unknown as Record<string, unknown> & { context: Record<string, unknown> };
    body.context = { ...body.context, selections: ['MedicationRequest/edge-order'] };
    const res = await request(app).post('/cds-services/priorpath-order-select').send(body).expect(200);
    const [ext] = expectValidHookResponse(res.body, 'order-select');
    expect(code(ext, 'pa-needed')).toBe('auth-needed');
    expect(sub(ext, 'doc-needed')).toHaveLength(0);
    expect(sub(ext, 'questionnaire')).toHaveLength(0);
    // The cards inform: what the record does not show yet, and that signing offers the questionnaire.
    for (const c of res.body.cards as { summary: string; detail?: string }[]) {
      expect(c.summary).not.toMatch(/documentation required/i);
      expect(c.detail ?? '').not.toMatch(/^Complete|\. Complete /m);
    }
    expect((res.body.cards as { summary: string }[]).some((c) => /does not yet show/.test(c.summary))).toBe(true);
  });

  it('decides a dispatched order found in the medications prefetch (order-dispatch, both context shapes)', async () => {
    const { resources, order } = edgePatient();
    // No user at dispatch: the requester's PractitionerRole is read from the EHR for the specialty.
    const ehr = fakeEhr(resources);
    const { app } = buildApp({ fetchImpl: ehr.fetchImpl });
    const signed = { ...order, status: 'active' as const };
    const base = orderSignRequest([...resources, mrd(0.4), signed], order) as { context: Record<string, unknown>; prefetch: Record<string, unknown> };
    base.prefetch.medications = searchset([signed]);
    delete base.prefetch.user;
    for (const context of [
      { patientId: 'edge-pt', dispatchedOrders: ['MedicationRequest/edge-order'], performer: 'Organization/infusion-center' },
      { patientId: 'edge-pt', order: 'MedicationRequest/edge-order', performer: 'Organization/infusion-center' },
    ]) {
      const res = await request(app).post('/cds-services/priorpath-order-dispatch').send({ ...base, hook: 'order-dispatch', context }).expect(200);
      const [ext] = expectValidHookResponse(res.body, 'order-dispatch');
      expect(code(ext, 'pa-needed')).toBe('satisfied');
      expect(res.body.systemActions[0].resource.status).toBe('active');
    }
    expect(ehr.calls.map((c) => new URL(c.url).pathname)).toContain('/fhir/PractitionerRole/edge-role');
  });

  it('governs an order whose drug is a medicationReference to a Medication it reads from the EHR (design.md §4: the referenced Medication)', async () => {
    const { resources, order } = edgePatient();
    const blincyto: Resource = { resourceType: 'Medication', id: 'blincyto-35', code: order.medicationCodeableConcept };
    const ehr = fakeEhr([...resources, mrd(0.4), blincyto]);
    const { app } = buildApp({ fetchImpl: ehr.fetchImpl, today: '2026-11-23' });
    const { medicationCodeableConcept: _code, ...rest } = order;
    for (const reference of ['Medication/blincyto-35', 'http://ehr.example.org/fhir/Medication/blincyto-35']) {
      const byReference = { ...rest, medicationReference: { reference } };
      const res = await request(app).post(SIGN).send(orderSignRequest([...resources, mrd(0.4)], byReference)).expect(200);
      const [ext] = expectValidHookResponse(res.body, 'order-sign');
      expect(code(ext, 'pa-needed')).toBe('satisfied');
      expect(res.body.systemActions[0].resource.medicationReference).toEqual({ reference });
    }
    expect(ehr.calls.map((c) => new URL(c.url).pathname)).toContain('/fhir/Medication/blincyto-35');
  });

  it("reads the drug of the patient's other orders from a Medication it fetches, and leaves one the EHR cannot give unknown, never \"no earlier course\" (design.md §6)", async () => {
    const { resources, order } = edgePatient();
    // A completed order from an outside infusion centre, its drug only a reference the prefetch does not carry.
    const earlier: MedicationRequest = {
      resourceType: 'MedicationRequest',
      id: 'edge-earlier',
      status: 'completed',
      intent: 'order',
      subject: { reference: 'Patient/edge-pt' },
      authoredOn: '2026-08-04',
      medicationReference: { reference: 'Medication/outside-infusion' },
      dispenseRequest: { numberOfRepeatsAllowed: 3 },
    };
    const body = orderSignRequest([...resources, mrd(0.4), earlier], order);
    const answer = async (drug: Resource[]) => {
      const ehr = fakeEhr([...resources, mrd(0.4), earlier, ...drug]);
      const res = await request(buildApp({ fetchImpl: ehr.fetchImpl, today: '2026-11-23' }).app).post(SIGN).send(body).expect(200);
      const [ext] = expectValidHookResponse(res.body, 'order-sign');
      return { ext, paths: ehr.calls.map((c) => new URL(c.url).pathname) };
    };

    // The EHR gives it: an antiemetic, no earlier course, and the MRD-positive first course is approved at signing.
    const antiemetic = await answer([{ resourceType: 'Medication', id: 'outside-infusion', code: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '26225', display: 'ondansetron' }] } }]);
    expect(antiemetic.paths).toContain('/fhir/Medication/outside-infusion');
    expect(code(antiemetic.ext, 'pa-needed')).toBe('satisfied');

    // The EHR gives it as Blincyto: four cycles already given, so one more exceeds CP.PHAR.312's four for MRD-positive disease.
    const blincyto = await answer([{ resourceType: 'Medication', id: 'outside-infusion', code: order.medicationCodeableConcept }]);
    expect(code(blincyto.ext, 'pa-needed')).toBe('auth-needed');

    // The EHR does not have it (404): the drug may be an earlier Blincyto course, so the cycles are asked, not assumed 0.
    const unresolved = await answer([]);
    expect(unresolved.paths).toContain('/fhir/Medication/outside-infusion');
    expect(code(unresolved.ext, 'pa-needed')).toBe('auth-needed');
    expect(code(unresolved.ext, 'doc-needed')).toBe('clinical');
  });

  it('answers 412 when the EHR fails to give the Medication an order names (never silence, which reads as no prior authorization)', async () => {
    const { resources, order } = edgePatient();
    const ehr = fakeEhr([...resources, mrd(0.4)]);
    const down: FetchLike = (url, init) => (url.includes('/Medication/') ? Promise.resolve(new Response('upstream down', { status: 502 })) : ehr.fetchImpl(url, init));
    const { medicationCodeableConcept: _code, ...rest } = order;
    const body = orderSignRequest([...resources, mrd(0.4)], { ...rest, medicationReference: { reference: 'Medication/blincyto-35' } });
    const failing = await request(buildApp({ fetchImpl: down, today: '2026-11-23' }).app).post(SIGN).send(body);
    expect(failing.status).toBe(412);
    expect(failing.body.resourceType).toBe('OperationOutcome');
    expect(failing.body.issue[0].expression).toEqual(['context.draftOrders']);
    // An EHR that answers the Medication read with another resource has not given the drug either.
    const wrong: FetchLike = (url, init) =>
      url.includes('/Medication/') ? Promise.resolve(Response.json({ resourceType: 'Patient', id: 'x' }, { headers: { 'content-type': 'application/fhir+json' } })) : ehr.fetchImpl(url, init);
    const garbled = await request(buildApp({ fetchImpl: wrong, today: '2026-11-23' }).app).post(SIGN).send(body);
    expect(garbled.status).toBe(412);
    expect(garbled.body.issue[0].diagnostics).toMatch(/Medication\/blincyto-35/);
    // The EHR has no such Medication (404): the order names no drug a policy governs, and gets nothing.
    const absent = await request(buildApp({ fetchImpl: ehr.fetchImpl, today: '2026-11-23' }).app).post(SIGN).send(body).expect(200);
    expect(absent.body.systemActions ?? []).toEqual([]);
  });

  it('answers 412, not silence or "no payer", when what the answer needs is only referenced and the request gives no fhirServer to read it from (design.md §4)', async () => {
    const { resources, order } = edgePatient();
    const { medicationCodeableConcept: _code, ...rest } = order;
    const noServer = (body: Record<string, unknown>) => {
      const { fhirServer: _s, fhirAuthorization: _a, ...without } = body;
      return without;
    };
    const { app } = buildApp({ today: '2026-11-23' });

    // The drug is a Medication the request does not carry: the EHR would otherwise hear nothing, which reads as
    // "no prior authorization needed" for a Blincyto order.
    const byReference = orderSignRequest([...resources, mrd(0.4)], { ...rest, medicationReference: { reference: 'Medication/blincyto-35' } });
    const drug = await request(app).post(SIGN).send(noServer(byReference));
    expect(drug.status).toBe(412);
    expect(drug.body.resourceType).toBe('OperationOutcome');
    expect(drug.body.issue[0].expression).toEqual(['context.draftOrders']);

    // The payer is named only by a reference to an Organization the request does not carry: not knowing is not
    // "names no payer PriorPath serves" (400).
    const payorByReference = resources
      .filter((r) => r.resourceType !== 'Organization')
      .map((r) => (r.resourceType === 'Coverage' ? { ...r, payor: [{ reference: 'Organization/payer-centene', display: 'Centene' }] } : r));
    const payer = await request(app).post(SIGN).send(noServer(orderSignRequest([...payorByReference, mrd(0.4)], order)));
    expect(payer.status).toBe(412);
    expect(payer.body.issue[0].expression).toEqual(['prefetch.coverage.payor']);

    // Carried in the request (the draft orders Bundle), the same Medication is read there and the order is answered.
    const carried = structuredClone(byReference) as { context: { draftOrders: Bundle } };
    carried.context.draftOrders.entry!.push({ resource: { resourceType: 'Medication', id: 'blincyto-35', code: order.medicationCodeableConcept } });
    const res = await request(app).post(SIGN).send(noServer(carried)).expect(200);
    const [ext] = expectValidHookResponse(res.body, 'order-sign');
    expect(code(ext, 'pa-needed')).toBe('satisfied');
  });

  it('identifies the payer from an absolute payor reference to an Organization it reads from the EHR', async () => {
    const { resources, order } = edgePatient();
    const ehr = fakeEhr([...resources, mrd(0.4)]);
    const { app } = buildApp({ fetchImpl: ehr.fetchImpl, today: '2026-11-23' });
    const body = structuredClone(orderSignRequest([...resources, mrd(0.4)], order)) as { prefetch: { coverage: { entry: { resource: Coverage }[] } } };
    body.prefetch.coverage.entry[0].resource.payor = [{ reference: 'http://ehr.example.org/fhir/Organization/payer-centene' }];
    const res = await request(app).post(SIGN).send(body).expect(200);
    const [ext] = expectValidHookResponse(res.body, 'order-sign');
    expect(code(ext, 'covered')).toBe('covered');
    expect(res.body.cards[0].source.label).toMatch(/^Centene/);
  });

  it('with DEFAULT_PAYER and no Coverage in the request, answers the order with coverage-information naming its own insurance Coverage', async () => {
    const body = structuredClone(centene({ add: [mrd(0.4)] })) as { fhirServer?: string; fhirAuthorization?: unknown; prefetch: { coverage: unknown } };
    body.prefetch.coverage = searchset([]);
    // No EHR to ask (fhirAuthorization goes with fhirServer, CDS Hooks cds-r-1).
    delete body.fhirServer;
    delete body.fhirAuthorization;
    for (const [payer, pa] of [['centene', 'satisfied'], ['example', 'no-auth']] as const) {
      const { app } = buildApp({ env: { DEFAULT_PAYER: payer }, today: '2026-11-23' });
      const res = await request(app).post(SIGN).send(body).expect(200);
      const [ext] = expectValidHookResponse(res.body, 'order-sign');
      expect(sub(ext, 'coverage')[0].valueReference).toEqual({ reference: 'Coverage/edge-cov' });
      expect(code(ext, 'pa-needed')).toBe(pa);
    }
  });

  it('answers only the orders someone will act on: no coverage information or authorization for a cancelled, entered-in-error, proposed or do-not-perform entry', async () => {
    const { app, storage } = buildApp({ today: '2026-11-23' });
    const body = centene({ add: [mrd(0.4)] }) as { context: { draftOrders: { entry: { resource: MedicationRequest }[] } } };
    const signed = body.context.draftOrders.entry[0].resource;
    const variants: Partial<MedicationRequest>[] = [{ status: 'entered-in-error' }, { status: 'cancelled' }, { intent: 'proposal' }, { intent: 'plan' }, { doNotPerform: true }];
    const others = variants.map((v, i) => ({ ...structuredClone(signed), id: `edge-order-not-acted-${i}`, ...v }));
    body.context.draftOrders.entry.push(...others.map((resource) => ({ resource })));
    const res = await request(app).post(SIGN).send(body).expect(200);
    const [ext] = expectValidHookResponse(res.body, 'order-sign');
    // The draft order being signed is approved; the other entries are not orders to cover.
    expect(res.body.systemActions.map((a: { resource: { id: string } }) => a.resource.id)).toEqual([signed.id]);
    expect(code(ext, 'pa-needed')).toBe('satisfied');
    const records = await storage.findOrderRecords({ payer: 'centene', patientId: 'edge-pt', orderRefs: others.map((o) => `MedicationRequest/${o.id}`) });
    expect(records).toEqual([]);
  });

  it('gives two orders under one policy one External Reference card naming both, and each its own coverage information', async () => {
    const { app } = buildApp({ today: '2026-11-23' });
    const body = centene({ add: [mrd(0.4)] }) as { context: { draftOrders: { entry: { resource: MedicationRequest }[] } } };
    const first = body.context.draftOrders.entry[0].resource;
    const second = { ...structuredClone(first), id: 'edge-order-cycle-2' };
    body.context.draftOrders.entry.push({ resource: second });
    const res = await request(app).post(SIGN).send(body).expect(200);
    expectValidHookResponse(res.body, 'order-sign');
    expect(res.body.systemActions.map((a: { resource: { id: string } }) => a.resource.id)).toEqual([first.id, second.id]);
    type CardOut = { source: { topic: { code: string } }; extension?: Record<string, string[]> };
    const references = (res.body.cards as CardOut[]).filter((c) => c.source.topic.code === 'guideline');
    expect(references).toHaveLength(1);
    expect(references[0].extension!['davinci-crd.associated-resource']).toEqual([`MedicationRequest/${first.id}`, `MedicationRequest/${second.id}`]);
  });

  it("replaces the order's earlier coverage-information for its Coverage and keeps another payer's for a second Coverage [resp-32, resp-37]", async () => {
    const { app } = buildApp();
    const body = centene() as { context: { draftOrders: { entry: { resource: MedicationRequest }[] } } };
    const order = body.context.draftOrders.entry[0].resource;
    const info = (coverage: string, assertionId: string, covered: string, pa: string): Extension => ({
      url: 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information',
      extension: [
        { url: 'coverage', valueReference: { reference: coverage } },
        { url: 'covered', valueCode: covered },
        { url: 'pa-needed', valueCode: pa },
        { url: 'date', valueDate: '2026-11-20' },
        { url: 'coverage-assertion-id', valueString: assertionId },
      ],
    });
    // A secondary payer's answer, and an earlier answer about this Coverage (absolute reference, as some EHRs write it).
    const secondary = info('Coverage/edge-cov-secondary', 'medicaid-assertion-7f3a', 'covered', 'no-auth');
    order.extension = [...(order.extension ?? []), secondary, info('http://ehr.example.org/fhir/Coverage/edge-cov', 'earlier-assertion-0001', 'covered', 'auth-needed')];
    const res = await request(app).post(SIGN).send(body).expect(200);
    const infos = (res.body.systemActions[0].resource.extension as Extension[]).filter((e) => e.url.endsWith('/ext-coverage-information'));
    expect(infos).toHaveLength(2);
    expect(infos[0]).toEqual(secondary);
    expect(sub(infos[1], 'coverage')[0].valueReference).toEqual({ reference: 'Coverage/edge-cov' });
    expect(sub(infos[1], 'coverage-assertion-id')[0].valueString).not.toBe('earlier-assertion-0001');
    expect(code(infos[1], 'pa-needed')).toBe('auth-needed');
  });

  it('a payer file is data: its other identifiers name it, and a conditional default answer carries the reason crd-ci-q6 asks for', async () => {
    // Centene's file as a payer would extend it: a verified identifier from its own system, and a default answer.
    const centeneFile = testContent().payers.get('centene')!;
    const payers = new Map(testContent().payers);
    payers.set('centene', {
      ...centeneFile,
      identifiers: [...centeneFile.identifiers, { system: 'https://payers.example.org/payer-id', value: 'CNC-68069' }],
      defaultAnswer: { covered: 'conditional' },
    });
    const { app } = buildApp({ content: { ...testContent(), payers } });
    const { resources, order } = edgePatient();
    order.medicationCodeableConcept = { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '197361', display: 'amlodipine 5 MG Oral Tablet' }] };
    const body = structuredClone(orderSignRequest(resources, order)) as { prefetch: { coverage: { entry: { resource: Coverage }[] } } };
    body.prefetch.coverage.entry[0].resource.payor = [{ identifier: { system: 'https://payers.example.org/payer-id', value: 'CNC-68069' }, display: 'Centene' }];
    const res = await request(app).post(SIGN).send(body).expect(200);
    const [ext] = expectValidHookResponse(res.body, 'order-sign');
    expect(code(ext, 'covered')).toBe('conditional');
    expect(code(ext, 'info-needed')).toBe('OTH');
    expect(sub(ext, 'reason')[0].valueCodeableConcept!.text).toMatch(/No coverage policy of this payer/);
  });

  it('reads a paged search to its last page from the EHR, and answers 412 when a page cannot be read there (CDS Hooks: prefetch may be paginated)', async () => {
    const { resources, order } = edgePatient();
    // The MRD result the approval rests on is on the second page of the Observation search.
    const pages: Record<string, unknown> = { 'http://ehr.example.org/fhir?_getpages=obs-p2&_getpagesoffset=20': searchset([mrd(0.4)]) };
    const calls: string[] = [];
    const fetchImpl: FetchLike = async (url) => {
      calls.push(url);
      const page = pages[url];
      return new Response(JSON.stringify(page ?? { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found' }] }), { status: page ? 200 : 404 });
    };
    const { app } = buildApp({ fetchImpl, today: '2026-11-23' });
    const paged = (next: string) => {
      const body = structuredClone(orderSignRequest(resources, order)) as { prefetch: { observations: Bundle }; fhirServer?: string; fhirAuthorization?: unknown };
      body.prefetch.observations.link = [{ relation: 'next', url: next }];
      return body;
    };
    const res = await request(app).post(SIGN).send(paged('http://ehr.example.org/fhir?_getpages=obs-p2&_getpagesoffset=20')).expect(200);
    const [ext] = expectValidHookResponse(res.body, 'order-sign');
    expect(code(ext, 'pa-needed')).toBe('satisfied');
    // A page link to another server is not followed (the EHR's token goes nowhere else), and without a fhirServer
    // the rest of the search cannot be read: the key is missing, never read in part.
    calls.length = 0;
    const elsewhere = await request(app).post(SIGN).send(paged('https://other.example.com/fhir?_getpages=obs-p2'));
    expect(elsewhere.status).toBe(412);
    expect(elsewhere.body.issue[0].expression).toEqual(['prefetch.observations']);
    expect(calls).toEqual([]);
    const noServer = paged('http://ehr.example.org/fhir?_getpages=obs-p2&_getpagesoffset=20');
    delete noServer.fhirServer;
    delete noServer.fhirAuthorization;
    expect((await request(app).post(SIGN).send(noServer)).status).toBe(412);
  });

  it('stays silent for a drug no policy governs (seed payers claim nothing)', async () => {
    const { app } = buildApp();
    const { resources, order } = edgePatient();
    order.medicationCodeableConcept = { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '197361', display: 'amlodipine 5 MG Oral Tablet' }] };
    const res = await request(app).post(SIGN).send(orderSignRequest(resources, order)).expect(200);
    expect(res.body).toEqual({ cards: [] });
  });
});
