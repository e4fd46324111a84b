/**
 * Every 503 the service sends carries the one Retry-After (design.md §4 "Errors"; RFC 9110 §10.2.3) and, on the FHIR
 * and CDS endpoints and /readyz, an OperationOutcome `transient`: readiness while storage opens, is unreachable or the
 * process drains; the CDS client JWT replay record out of reach; a hook meeting a full write-behind queue; a DTR
 * response whose order kept changing while it was decided. (The payer API's token paths: payer-api-auth.test.ts.)
 */
import request from 'supertest';
import { beforeAll, describe, expect, it } from 'vitest';
import { RETRY_AFTER_SECONDS } from '../../src/errors.js';
import { deferredStorage } from '../../src/storage/deferred-storage.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { StorageUnavailableError } from '../../src/storage/storage.js';
import type { OrderRecord } from '../../src/storage/storage.js';
import { edgePatient } from '../fixtures/edge-patient.js';
import { buildApp, makeKeys, signFor } from '../helpers/app.js';
import type { TestKeys } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { questionnaireResponse } from '../pas/pas-fixtures.js';

const SIGN = '/cds-services/priorpath-order-sign';
const unreachable = () => new StorageUnavailableError(new Error('connect ECONNREFUSED 10.0.4.12:5432'));

/** The 503 every path must answer: transient, told when to retry, the same advice whichever path failed. */
function expectUnavailable(res: request.Response): void {
  expect(res.status, JSON.stringify(res.body)).toBe(503);
  expect(res.headers['retry-after']).toBe(String(RETRY_AFTER_SECONDS));
  expect(res.headers['content-type']).toMatch(/^application\/fhir\+json/);
  expect(JSON.parse(res.text)).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'transient' }] });
}

describe('503 answers (one Retry-After, an OperationOutcome)', () => {
  let keys: TestKeys;
  beforeAll(async () => {
    keys = await makeKeys();
  });

  it('/readyz while storage is still opening', async () => {
    const { app } = buildApp({ storageOverride: deferredStorage(new Promise(() => {})) });
    expectUnavailable(await request(app).get('/readyz'));
  });

  it('/readyz while storage is unreachable, and ready again once it answers', async () => {
    const storage = new MemoryStorage();
    storage.ping = () => Promise.reject(unreachable());
    const { app } = buildApp({ storage });
    expectUnavailable(await request(app).get('/readyz'));
    storage.ping = () => Promise.resolve();
    const ready = await request(app).get('/readyz').expect(200);
    expect(ready.headers['retry-after']).toBeUndefined();
    expect(ready.body.status).toBe('ready');
  });

  it('/readyz while the process drains', async () => {
    const { app } = buildApp({ isDraining: () => true });
    expectUnavailable(await request(app).get('/readyz'));
  });

  it('a signed hook whose JWT replay record cannot be reached', async () => {
    const { app, storage } = buildApp({ keys });
    storage.recordJti = () => Promise.reject(unreachable());
    const { resources, order } = edgePatient();
    expectUnavailable(await request(app).post(SIGN).set('Authorization', `Bearer ${await signFor(keys, SIGN)}`).send(orderSignRequest(resources, order)));
  });

  it('a hook whose records meet a write-behind queue that stayed full', async () => {
    const { app, storage } = buildApp();
    storage.queueAssertion = () => Promise.reject(new StorageUnavailableError(new Error('the write queue stayed full')));
    const { resources, order } = edgePatient();
    expectUnavailable(await request(app).post(SIGN).send(orderSignRequest(resources, order)));
  });

  it("a DTR response whose order kept changing while it was decided", async () => {
    const { app, storage } = buildApp();
    // Another replica changes the order every time this one is about to record its decision.
    storage.saveDecidedQuestionnaireResponse = async () => ({ applied: false, blockedBy: {} as OrderRecord });
    const qr = questionnaireResponse('centene-blinatumomab', { 'mrd-percent': [{ valueDecimal: 0.6 }] }, 'Patient/centene-missing-mrd');
    expectUnavailable(await request(app).post('/fhir/QuestionnaireResponse').set('Content-Type', 'application/fhir+json').send(JSON.stringify(qr)));
  });
});
