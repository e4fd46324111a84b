/**
 * Data the service reads from the EHR stands in for prefetch, so it is held to the same rule (docs/design.md §4
 * "One patient", src/fhir/one-patient.ts): an EHR answering a patient's search (or a later page of a prefetched
 * searchset, followed via `next`) with another patient's resource has not given this patient's record. The read has
 * failed: 412 naming the key, never a determination resting on someone else's lab (QA s40 F5).
 */
import type { Bundle, Extension, Observation, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EDGE_MRD, edgePatient } from '../fixtures/edge-patient.js';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest, searchset } from '../helpers/hook-requests.js';
import { startHttpEhr } from '../helpers/http-ehr.js';

const SIGN = '/cds-services/priorpath-order-sign';
const { resources, order } = edgePatient();
const ownObservations = resources.filter((r) => r.resourceType === 'Observation');
// The MRD result (0.4 %, which meets Centene CP.PHAR.312 for B-ALL in remission) of another member.
const otherMrd: Observation = { ...EDGE_MRD, id: 'other-member-mrd', subject: { reference: 'Patient/other-member' } };

type Mode = 'own' | 'foreign' | 'page-own' | 'page-foreign' | 'dispatch-own' | 'dispatch-foreign';
// The order as signed; the EHR of `dispatch-foreign` answers its read with the order of another member.
const signed = { ...order, status: 'active' as const };
/** Observation searches (and `/page-…/Observation` next pages) answer per the path prefix; everything else its own data. */
let ehrBase: string;
let stopEhr: () => Promise<void>;
beforeAll(async () => {
  ({ base: ehrBase, stop: stopEhr } = await startHttpEhr((req, res) => {
    const [, mode, type, id] = (req.url ?? '').split('?')[0].split('/') as [string, Mode, string, string | undefined];
    if (type === 'MedicationRequest' && id === order.id) {
      const read = mode === 'dispatch-foreign' ? { ...signed, subject: { reference: 'Patient/other-member' } } : signed;
      return void res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(JSON.stringify(read));
    }
    let found: Resource[] = resources.filter((r) => r.resourceType === type);
    if (type === 'Observation') {
      const mrd = mode === 'own' || mode === 'page-own' ? EDGE_MRD : otherMrd;
      found = mode.startsWith('page-') ? [mrd] : [...ownObservations, mrd];
    }
    res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(JSON.stringify(searchset(found)));
  }));
});
afterAll(() => stopEhr());

const code = (ext: Extension, url: string) => ext.extension!.find((e) => e.url === url)?.valueCode;
const paNeeded = (body: { systemActions: { resource: { extension: Extension[] } }[] }) =>
  code(body.systemActions[0].resource.extension.find((e) => e.url.endsWith('ext-coverage-information'))!, 'pa-needed');

/** order-sign whose observations are queried from the EHR (not prefetched). */
function queried(mode: Mode) {
  const body = orderSignRequest(resources, order, { fhirServer: `${ehrBase}/${mode}` }) as { prefetch: Record<string, unknown> };
  delete body.prefetch.observations;
  return body;
}

/** order-sign whose prefetched observations are a first page, the rest on the EHR behind `next`. */
function paged(mode: Mode) {
  const body = orderSignRequest(resources, order, { fhirServer: `${ehrBase}/${mode}` }) as { prefetch: Record<string, unknown> };
  const first: Bundle = { ...searchset(ownObservations), link: [{ relation: 'next', url: `${ehrBase}/${mode}/Observation?patient=edge-pt&_page=2` }] };
  body.prefetch.observations = first;
  return body;
}

describe('order-sign over data the EHR answers about another patient', () => {
  const { app } = buildApp({ today: '2026-11-23' });

  it("approves on the patient's own queried MRD result (the baseline)", async () => {
    const res = await request(app).post(SIGN).send(queried('own')).expect(200);
    expect(paNeeded(res.body)).toBe('satisfied');
  });

  it("answers 412 naming prefetch.observations, not an approval, when the query's answer holds another patient's MRD result", async () => {
    const res = await request(app).post(SIGN).send(queried('foreign'));
    expect(res.status, JSON.stringify(res.body)).toBe(412);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0].expression).toEqual(['prefetch.observations']);
  });

  it("follows `next` to the patient's own page (baseline), and answers 412 when that page holds another patient's result", async () => {
    const own = await request(app).post(SIGN).send(paged('page-own')).expect(200);
    expect(paNeeded(own.body)).toBe('satisfied');
    const res = await request(app).post(SIGN).send(paged('page-foreign'));
    expect(res.status, JSON.stringify(res.body)).toBe(412);
    expect(res.body.issue[0].expression).toEqual(['prefetch.observations']);
  });

  it('answers 412 naming context.dispatchedOrders when the dispatched order, read from the EHR, is about another patient', async () => {
    const dispatch = (mode: Mode) => {
      const body = orderSignRequest([...resources, EDGE_MRD], order, { fhirServer: `${ehrBase}/${mode}` });
      return { ...body, hook: 'order-dispatch', context: { patientId: 'edge-pt', dispatchedOrders: [`MedicationRequest/${order.id}`], performer: 'Organization/infusion-center' } };
    };
    const own = await request(app).post('/cds-services/priorpath-order-dispatch').send(dispatch('dispatch-own'));
    expect(own.status, JSON.stringify(own.body)).toBe(200);
    expect(paNeeded(own.body)).toBe('satisfied');
    const res = await request(app).post('/cds-services/priorpath-order-dispatch').send(dispatch('dispatch-foreign'));
    expect(res.status, JSON.stringify(res.body)).toBe(412);
    expect(res.body.issue[0].expression).toEqual(['context.dispatchedOrders']);
  });
});
