/**
 * An order whose dose the chart never reads, end to end over HTTP (design.md §4 "Errors", §7, §8 "What an approval
 * covers"): signed with its dose in words only, CRD cannot show the dose within the limit and asks it (auth-needed);
 * the clinician answers it in DTR and the response approves the order; the same order signed again, unchanged, still
 * cannot be read by the chart, and is answered with that DTR approval, not reopened. Only an approval the rules gave
 * at signing was given for a dose read from the order itself (src/coverage/order-record.ts reopeningReason).
 * Centene CP.PHAR.312 I.A.4.a (MRD-positive remission), I.A.5.a (28 mcg/day).
 */
import type { Bundle, Extension, MedicationRequest, QuestionnaireResponse, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';
import { withAnswers } from './helpers.js';

const FHIR = 'application/fhir+json';
const STORY = 'centene-mrd-positive';
const DTR_22 = 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/dtr-qpackage-input-parameters|2.2.0';
const COVERAGE_INFO = 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information';
const coverageInfoOf = (r: { extension?: Extension[] }) => r.extension!.find((e) => e.url === COVERAGE_INFO)!.extension!;
const sub = (ext: Extension[], url: string) => ext.find((e) => e.url === url);

/** The story's order with its dose in words only: no doseAndRate for the chart to read. */
function freeTextDoseOrder(): MedicationRequest {
  const order = structuredClone(storyOrder(STORY));
  for (const i of order.dosageInstruction ?? []) {
    delete i.doseAndRate;
    i.text = 'Blinatumomab 28 micrograms a day by continuous IV infusion, days 1-28 of a 42-day cycle';
  }
  return order;
}

type App = ReturnType<typeof buildApp>['app'];

/** Signs the order; the order as CRD answered it (with its coverage-information). */
async function sign(app: App, resources: Resource[], order: MedicationRequest): Promise<MedicationRequest> {
  const res = await request(app).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, order)).expect(200);
  return res.body.systemActions[0].resource as MedicationRequest;
}

describe('an order whose dose is never readable', () => {
  it('is asked its dose at signing, approved from the DTR answer, and signed again unchanged keeps that approval and its number', async () => {
    const { app, storage } = buildApp({ today: '2026-11-23' });
    const resources = storyResources(STORY);
    const order = freeTextDoseOrder();
    const patientId = resources.find((r) => r.resourceType === 'Patient')!.id!;
    const key = { payer: 'centene', patientId, orderRef: `MedicationRequest/${order.id}`, drug: 'blinatumomab' };

    // Signing: the dose cannot be read, so the order is not approved and the dose is what is asked.
    const signed = await sign(app, resources, order);
    const atSigning = coverageInfoOf(signed);
    expect(sub(atSigning, 'pa-needed')?.valueCode).toBe('auth-needed');
    expect(sub(atSigning, 'satisfied-pa-id')).toBeUndefined();
    const assertion = await storage.getAssertion(sub(atSigning, 'coverage-assertion-id')!.valueString!);
    expect(assertion?.missingFacts).toContain('dailyDoseUg');

    // DTR: the form for the order, its dose answered (28 mcg/day, within I.A.5.a), completed.
    const pkg = await request(app)
      .post('/fhir/Questionnaire/$questionnaire-package')
      .set('Content-Type', FHIR)
      .send(JSON.stringify({
        resourceType: 'Parameters',
        meta: { profile: [DTR_22] },
        parameter: [
          { name: 'coverage', resource: resources.find((r) => r.resourceType === 'Coverage') },
          { name: 'order', resource: signed },
        ],
      }))
      .expect(200);
    const bundle = pkg.body.parameter.find((p: { name: string }) => p.name === 'PackageBundle' || p.name === 'packagebundle').resource as Bundle;
    const qr = bundle.entry!.find((e) => e.resource?.resourceType === 'QuestionnaireResponse')!.resource as QuestionnaireResponse;
    const completed: QuestionnaireResponse = { ...withAnswers(qr, { 'daily-dose': [{ valueDecimal: 28 }] }), status: 'completed' };
    const created = (await request(app).post('/fhir/QuestionnaireResponse').set('Content-Type', FHIR).send(JSON.stringify(completed)).expect(201))
      .body as QuestionnaireResponse;
    const fromDtr = coverageInfoOf(created);
    expect(sub(fromDtr, 'pa-needed')?.valueCode).toBe('satisfied');
    const number = sub(fromDtr, 'satisfied-pa-id')!.valueString!;
    expect(number).toMatch(/^PA-CENTENE-/);
    expect((await storage.getOrderRecord(key))?.state).toBe('approved');

    // The same order signed again, unchanged (as first sent, and as CRD returned it): the DTR approval answers it.
    for (const again of [order, signed]) {
      const resigned = coverageInfoOf(await sign(app, resources, again));
      expect(sub(resigned, 'pa-needed')?.valueCode).toBe('satisfied');
      expect(sub(resigned, 'satisfied-pa-id')?.valueString).toBe(number);
    }
    const record = await storage.getOrderRecord(key);
    expect(record?.state).toBe('approved');
    expect(record?.authorization?.number).toBe(number);
    expect(record!.history.filter((h) => h.state === 'approved').map((h) => [h.source, h.authorizationNumber])).toEqual([['dtr', number]]);
    // Nothing after the approval: no reopening (back to auth-needed) by either re-sign.
    const states = record!.history.map((h) => h.state);
    expect(states.slice(states.indexOf('approved'))).toEqual(['approved']);
  });
});
