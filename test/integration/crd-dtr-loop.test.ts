import type { Bundle, Extension, MedicationRequest, QuestionnaireResponse, QuestionnaireResponseItem } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { COVERAGE_INFO_URL } from '../../src/coverage/coverage-information.js';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { expectValidHookResponse } from '../helpers/response-checks.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

const SIGN = '/cds-services/priorpath-order-sign';
const sub = (ext: Extension, url: string) => ext.extension!.find((e) => e.url === url);

/** Sets the answer of the item with `linkId` wherever it is nested; false when the response has no such item. */
function setAnswer(items: QuestionnaireResponseItem[] | undefined, linkId: string, answer: QuestionnaireResponseItem['answer']): boolean {
  for (const item of items ?? []) {
    if (item.linkId === linkId) {
      item.answer = answer;
      return true;
    }
    if (setAnswer(item.item, linkId, answer)) return true;
  }
  return false;
}

describe('CRD → DTR → CRD: documentation completed in DTR counts at the next signing', () => {
  it('approves the re-signed order with the authorization DTR issued', async () => {
    const { app } = buildApp();
    const resources = storyResources('centene-missing-mrd');
    const order = storyOrder('centene-missing-mrd', resources);

    // 1. Signing: MRD is missing, so documentation is needed.
    const first = await request(app).post(SIGN).send(orderSignRequest(resources, order)).expect(200);
    const [firstExt] = expectValidHookResponse(first.body, 'order-sign');
    expect(sub(firstExt, 'pa-needed')!.valueCode).toBe('auth-needed');
    const signed: MedicationRequest = first.body.systemActions[0].resource;

    // 2. DTR: the package brings the pre-filled response; the clinician adds the MRD result and saves.
    const coverage = resources.find((r) => r.resourceType === 'Coverage')!;
    const pkg = await request(app)
      .post('/fhir/Questionnaire/$questionnaire-package')
      .send({ resourceType: 'Parameters', parameter: [{ name: 'coverage', resource: coverage }, { name: 'order', resource: signed }] })
      .expect(200);
    const bundle = pkg.body.parameter.find((p: { name: string }) => /packagebundle/i.test(p.name)).resource as Bundle;
    const qr = bundle.entry!.map((e) => e.resource).find((r) => r?.resourceType === 'QuestionnaireResponse') as QuestionnaireResponse;
    expect(qr, 'the package carries a pre-filled response').toBeDefined();
    // Unanswered questions may be absent from the pre-filled response: add the answer where the form would.
    if (!setAnswer(qr.item, 'mrd-percent', [{ valueDecimal: 0.6 }])) (qr.item ??= []).push({ linkId: 'mrd-percent', answer: [{ valueDecimal: 0.6 }] });
    qr.status = 'completed';
    const saved = await request(app).post('/fhir/QuestionnaireResponse').send(qr).expect(201);
    const dtrExt = (saved.body.extension as Extension[]).find((e) => e.url === COVERAGE_INFO_URL)!;
    expect(sub(dtrExt, 'pa-needed')!.valueCode).toBe('satisfied');
    const paId = sub(dtrExt, 'satisfied-pa-id')!.valueString!;

    // 3. The EHR writes the payer's answer onto the order and signs again: the same authorization stands.
    const resigned: MedicationRequest = { ...order, extension: [...(order.extension ?? []), dtrExt] };
    const again = await request(app).post(SIGN).send(orderSignRequest(resources, resigned)).expect(200);
    const [ext] = expectValidHookResponse(again.body, 'order-sign');
    expect(sub(ext, 'pa-needed')!.valueCode).toBe('satisfied');
    expect(sub(ext, 'satisfied-pa-id')!.valueString).toBe(paId);
  });
});
