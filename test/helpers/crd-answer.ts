import type { Extension, MedicationRequest, Observation, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { expect } from 'vitest';
import type { FetchLike } from '../../src/hooks/ehr-client.js';
import { buildApp } from './app.js';
import { orderSignRequest } from './hook-requests.js';
import { expectValidHookResponse } from './response-checks.js';

const SIGN = '/cds-services/priorpath-order-sign';
const COVERAGE_INFO = 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information';

/** A card as it arrives (JSON, unchecked). */
export interface CardJson {
  summary: string;
  detail?: string;
  indicator: string;
  suggestions?: { label: string; actions: { type: string; resource?: MedicationRequest }[] }[];
  links?: { url: string; type: string }[];
}

/** One order's answer: its coverage-information, the cards, the system action. */
export interface OrderAnswer {
  ext: Extension;
  cards: CardJson[];
  action: { resource: MedicationRequest };
}

export const sub = (ext: Extension, url: string) => (ext.extension ?? []).filter((e) => e.url === url);
export const codeOf = (ext: Extension, url: string) => sub(ext, url)[0]?.valueCode;
export const reasonText = (ext: Extension) =>
  sub(ext, 'reason')
    .map((r) => r.valueCodeableConcept?.text ?? '')
    .join(' ');

/** The orders the cards' suggestions propose instead. */
export const proposedOrders = (cards: CardJson[]) =>
  cards
    .flatMap((c) => c.suggestions ?? [])
    .flatMap((s) => s.actions)
    .map((a) => a.resource)
    .filter((r): r is MedicationRequest => r?.resourceType === 'MedicationRequest');

/** An EHR that cannot be reached: every answer comes from the request alone. */
export const unreachableEhr: FetchLike = () =>
  Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));

/**
 * Signs one order over HTTP (order-sign, open auth, full prefetch built from `record`) on `today` and returns its
 * answer, after the shared response checks and a check that exactly one coverage-information came back.
 */
export async function signOne(
  record: Resource[],
  order: MedicationRequest,
  today: string,
  opts: { fetchImpl?: FetchLike; extra?: Record<string, unknown> } = {},
): Promise<OrderAnswer> {
  const { app } = buildApp({
    today,
    env: { CDS_AUTH: 'open', SANDBOX: 'off', NODE_ENV: 'development' },
    fetchImpl: opts.fetchImpl ?? unreachableEhr,
  });
  const res = await request(app)
    .post(SIGN)
    .send(orderSignRequest(record, order, opts.extra))
    .expect(200);
  const version =
    (opts.extra?.extension as Record<string, string> | undefined)?.['davinci-crd.requestedVersion'] === '2.2'
      ? '2.2'
      : '2.0';
  expectValidHookResponse(res.body, 'order-sign', version);
  expect(res.body.systemActions, JSON.stringify(res.body)).toHaveLength(1);
  const action = res.body.systemActions[0] as { resource: MedicationRequest };
  const exts = (action.resource.extension ?? []).filter((e) => e.url === COVERAGE_INFO);
  expect(exts).toHaveLength(1);
  return { ext: exts[0], cards: res.body.cards as CardJson[], action };
}

/** An MRD result (evidence#mrd, in %) of the edge patient (test/fixtures/edge-patient.ts), two weeks before signing. */
export function edgeMrd(value: number): Observation {
  return {
    resourceType: 'Observation',
    id: 'edge-mrd',
    status: 'final',
    subject: { reference: 'Patient/edge-pt' },
    code: {
      coding: [
        { system: 'https://priorpath.dev/fhir/CodeSystem/evidence', code: 'mrd', display: 'Minimal residual disease' },
      ],
    },
    effectiveDateTime: '2026-11-09',
    valueQuantity: { value, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
  };
}
