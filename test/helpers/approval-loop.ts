/**
 * One story's whole approval loop on a fresh in-process service, for tests of what an approval covers
 * (docs/design.md §8 "What an approval covers"): sign the story's order (or a changed copy of it), send a PAS
 * request, act as the reviewer; with the order's record key to read storage directly.
 */
import type { Bundle, MedicationRequest } from '@medplum/fhirtypes';
import type { Storage } from '../../src/storage/storage.js';
import request from 'supertest';
import { expect } from 'vitest';
import { buildApp } from './app.js';
import { orderSignRequest } from './hook-requests.js';
import { expectValidHookResponse } from './response-checks.js';
import { storyOrder, storyResources } from './stories.js';

/**
 * A Centene story's loop (the payer and drug of the record key are Centene's blinatumomab); `on`: a store of the
 * caller's (PGlite, PostgreSQL) instead of a fresh MemoryStorage.
 */
export function approvalLoop(story: string, reviewToken: string, on?: Storage) {
  const built = buildApp({ env: { REVIEW_TOKEN: reviewToken }, today: '2026-11-23', ...(on ? { storageOverride: on } : {}) });
  const { app } = built;
  const storage: Storage = on ?? built.storage;
  const resources = storyResources(story);
  const order = storyOrder(story, resources);
  const patientId = resources.find((r) => r.resourceType === 'Patient')!.id!;
  const key = { payer: 'centene', patientId, orderRef: `MedicationRequest/${order.id}`, drug: 'blinatumomab' };
  /** Signs the order; `extra` overrides parts of the hook request (another hook, a configuration). */
  const sign = async (o: MedicationRequest, extra: Record<string, unknown> = {}) => {
    const body = { ...orderSignRequest(resources, o), ...extra };
    const res = await request(app).post(`/cds-services/priorpath-${String(body.hook)}`).send(body).expect(200);
    // Checked against the CRD version the request asks for (2.2 adds `expiry-date` and `detail`).
    const version = (body.extension as Record<string, unknown> | undefined)?.['davinci-crd.requestedVersion'] === '2.2' ? '2.2' : '2.0';
    const [ext] = expectValidHookResponse(res.body, body.hook as 'order-sign', version);
    return { ext, body: res.body as { cards: { summary: string; detail?: string; suggestions?: unknown[] }[] } };
  };
  const submit = (b: Bundle) => request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(b).expect(200);
  const review = (path: string, body: object) => request(app).post(`/review${path}`).set('Authorization', `Bearer ${reviewToken}`).send(body);
  /** The record reopened from approval `number`: back to auth-needed, the number let go but kept in its history. */
  const expectReopened = async (number: string) => {
    const record = await storage.getOrderRecord(key);
    expect(record?.state).toBe('auth-needed');
    expect(record?.authorization).toBeUndefined();
    expect(record!.history.map((h) => [h.state, h.authorizationNumber])).toEqual([
      ['approved', number],
      ['auth-needed', undefined],
    ]);
  };
  /** The story's order signed again as it was approved: within every limit, a new approval with its own number. */
  const signedAgainRenewed = async (number: string) => {
    const back = await sign(order);
    const pa = (url: string) => back.ext.extension!.find((e) => e.url === url);
    expect(pa('pa-needed')!.valueCode).toBe('satisfied');
    const renewed = pa('satisfied-pa-id')!.valueString!;
    expect(renewed).toMatch(/^PA-CENTENE-/);
    expect(renewed).not.toBe(number);
    return renewed;
  };
  return { app, storage, order, key, sign, submit, review, expectReopened, signedAgainRenewed };
}
