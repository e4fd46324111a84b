import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { COVERAGE_INFO_URL } from '../../src/coverage/coverage-information.js';
import { edgePatient } from '../fixtures/edge-patient.js';
import { buildApp } from '../helpers/app.js';
import { fakeEhr } from '../helpers/fake-ehr.js';
import { expectValidHookResponse } from '../helpers/response-checks.js';
import { repoRoot } from '../helpers/stories.js';

const fixture = (name: string) => JSON.parse(readFileSync(join(repoRoot, 'test', 'fixtures', 'hooks', name), 'utf8')) as Record<string, unknown>;

describe('requests shaped like real CDS clients', () => {
  it('answers the CDS Hooks Sandbox order-sign shape (no fhirAuthorization, no Bundle.type, category as object) with 200', async () => {
    // The Sandbox prefetches only what it can and sends no token; in sandbox mode PriorPath fetches the rest.
    const { resources } = edgePatient();
    const ehr = fakeEhr(resources);
    const { app } = buildApp({ fetchImpl: ehr.fetchImpl, env: { CDS_AUTH: 'open' } });
    const res = await request(app).post('/cds-services/priorpath-order-sign').send(fixture('cds-hooks-sandbox-order-sign.json'));
    expect(res.status).toBe(200);
    expectValidHookResponse(res.body, 'order-sign');
    expect(ehr.calls.every((c) => c.auth === undefined)).toBe(true);
    expect(ehr.calls.map((c) => new URL(c.url).pathname)).toEqual(expect.arrayContaining(['/fhir/Condition', '/fhir/Observation']));
  });

  it('answers the Inferno CRD kit order-sign shape (DeviceRequest, payor by reference only) with DEFAULT_PAYER=example', async () => {
    const ehr = fakeEhr([]);
    const { app } = buildApp({ fetchImpl: ehr.fetchImpl, env: { CDS_AUTH: 'open', DEFAULT_PAYER: 'example' } });
    const body = fixture('inferno-crd-order-sign.json');
    const res = await request(app).post('/cds-services/priorpath-order-sign').send(body);
    expect(res.status).toBe(200);
    const exts = expectValidHookResponse(res.body, 'order-sign');
    expect(res.body.systemActions).toHaveLength(1);
    const action = res.body.systemActions[0];
    const original = (body.context as { draftOrders: { entry: { resource: Record<string, unknown> }[] } }).draftOrders.entry[0].resource;
    // The update echoes the whole order, changing nothing but the extension ([resp-37]).
    const { extension, ...rest } = action.resource;
    expect(rest).toEqual(original);
    expect(extension).toHaveLength(1);
    expect(exts[0].extension!.find((e) => e.url === 'coverage')!.valueReference!.reference).toBe('Coverage/cov015');
    expect(exts[0].extension!.find((e) => e.url === 'covered')!.valueCode).toBe('covered');
    expect(action.resource.extension[0].url).toBe(COVERAGE_INFO_URL);
  });
});
