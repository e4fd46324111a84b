/**
 * A completed form that carries no coverage-assertion-id (a DTR 2.0.1 client's response, or one posted back as the
 * package drafted it) is judged on what CRD asserted when the order was signed: the order's record under the form's
 * payer names that assertion (src/dtr/response-assertion.ts; docs/design.md §8 "One authorization per order"). The
 * requests are a payer pharmacist's (forms review, H1 and H2): an OHSU adult MRD-positive first course, where the form
 * asks only the live-vaccine attestation, and a sixth OHSU maintenance cycle, over the seed's five.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Extension, QuestionnaireResponse } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { buildApp } from '../helpers/app.js';
import { repoRoot } from '../helpers/stories.js';

const fixture = <T = Record<string, unknown>>(name: string) => JSON.parse(readFileSync(join(repoRoot, 'test', 'fixtures', 'dtr-record-assertion', name), 'utf8')) as T;
const COVERAGE_INFO = 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information';
const SIGN = '/cds-services/priorpath-order-sign';
const sub = (extensions: Extension[] | undefined, url: string) => extensions?.find((e) => e.url === COVERAGE_INFO)?.extension?.find((e) => e.url === url);

async function signThenAnswer(story: string) {
  const storage = new MemoryStorage();
  const { app } = buildApp({ today: '2026-12-05', storage });
  const signed = await request(app).post(SIGN).send(fixture(`${story}.json`)).expect(200);
  const atSigning = sub(signed.body.systemActions[0].resource.extension as Extension[], 'pa-needed')?.valueCode;
  const qr = fixture<QuestionnaireResponse>(`${story}-qr.json`);
  delete qr.id;
  expect(qr.extension?.some((e) => e.url === COVERAGE_INFO)).toBe(false);
  const created = await request(app).post('/fhir/QuestionnaireResponse').set('Content-Type', 'application/fhir+json').send(JSON.stringify(qr)).expect(201);
  return { atSigning, answered: created.body as QuestionnaireResponse };
}

describe('a completed form without a coverage-assertion-id is judged on what CRD asserted at signing', () => {
  it('an OHSU adult MRD-positive first course, the attestation answered, is approved: the renewal questions the form hid do not hold it open', async () => {
    const { atSigning, answered } = await signThenAnswer('b-ohsu-mrd2');
    expect(atSigning).toBe('auth-needed');
    expect(sub(answered.extension, 'pa-needed')?.valueCode, JSON.stringify(answered.extension)).toBe('satisfied');
    expect(sub(answered.extension, 'satisfied-pa-id')?.valueString).toMatch(/^PA-OHSU-/);
  });

  it('a sixth OHSU maintenance cycle is not approved by the form: the five cycles on the chart still count', async () => {
    const { atSigning, answered } = await signThenAnswer('h1-ohsu-maint-5');
    expect(atSigning).toBe('auth-needed');
    expect(sub(answered.extension, 'pa-needed')?.valueCode, JSON.stringify(answered.extension)).toBe('auth-needed');
    expect(sub(answered.extension, 'satisfied-pa-id')).toBeUndefined();
  });
});

describe('a completed form with no signing on record', () => {
  it('an OHSU adult MRD-positive first course, answered in full, is approved: renewal-of-authorization, which the form hides on a first request, holds nothing open', async () => {
    const { app } = buildApp({ today: '2026-12-05', storage: new MemoryStorage() });
    const qr = fixture<QuestionnaireResponse>('b-ohsu-mrd2-qr.json');
    delete qr.id;
    const created = await request(app).post('/fhir/QuestionnaireResponse').set('Content-Type', 'application/fhir+json').send(JSON.stringify(qr)).expect(201);
    const answered = created.body as QuestionnaireResponse;
    expect(sub(answered.extension, 'pa-needed')?.valueCode, JSON.stringify(answered.extension)).toBe('satisfied');
  });
});
