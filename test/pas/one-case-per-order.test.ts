/**
 * One decision per order, seen by the reviewer as one case (design.md §8 "One authorization per order"): when a second
 * payer API client files a PAS request for an order the first client's request already pends, the second request is
 * its own (a client reads only what it filed) but has nothing of its own to review. The reviewer's queue lists the
 * order once, naming the waiting request, and the one decision answers both requests at once. Two replicas (two apps
 * over one storage), each client on its own, with real SMART Backend Services tokens, on MemoryStorage and on
 * embedded PGlite.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bundle } from '@medplum/fhirtypes';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PAYER_API_SCOPES } from '../../src/fhir-api/smart-configuration.js';
import { createStorage } from '../../src/storage/create-storage.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import type { SqlStorage } from '../../src/storage/sql-storage.js';
import type { Storage } from '../../src/storage/storage.js';
import { BASE, buildApp } from '../helpers/app.js';
import { claimResponseOf, inquiryParameters, reviewActions, storyBundle } from './pas-fixtures.js';

const X12 = 'https://codesystem.x12.org/005010/306';
const FHIR = 'application/fhir+json';
const REVIEW_TOKEN = 'review-token-for-one-case-per-order';
const STORY = 'centene-missing-mrd';

const clients = ['oncology-ehr', 'infusion-center-ehr'];
let keys: { clientId: string; privateKey: CryptoKey; kid: string; jwk: object }[];
let dir: string;
let pglite: SqlStorage;
beforeAll(async () => {
  keys = await Promise.all(
    clients.map(async (clientId) => {
      const { privateKey, publicKey } = await generateKeyPair('ES384', { extractable: true });
      const kid = `${clientId}-key`;
      return { clientId, privateKey: privateKey as CryptoKey, kid, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES384', use: 'sig' } };
    }),
  );
  dir = mkdtempSync(join(tmpdir(), 'priorpath-one-case-'));
  pglite = await createStorage({ dataDir: dir });
}, 120_000);
afterAll(async () => {
  await pglite?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A replica over `storage` with both clients registered, acting as client `n` (0 or 1). */
async function replicaAs(storage: Storage, n: number) {
  const registered = keys.map((k) => ({ clientId: k.clientId, jwks: { keys: [k.jwk] }, scopes: PAYER_API_SCOPES }));
  const { app } = buildApp({ storage: storage as MemoryStorage, today: '2026-11-23', env: { PAYER_API_AUTH: 'required', PAYER_API_CLIENTS: JSON.stringify(registered), REVIEW_TOKEN } });
  const { clientId, privateKey, kid } = keys[n];
  const now = Math.floor(Date.now() / 1000);
  const assertion = await new SignJWT({}).setProtectedHeader({ alg: 'ES384', typ: 'JWT', kid }).setIssuer(clientId).setSubject(clientId)
    .setAudience(`${BASE}/auth/token`).setIssuedAt(now).setExpirationTime(now + 240).setJti(randomUUID()).sign(privateKey);
  const granted = await request(app).post('/auth/token').type('form').send(
    new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion, scope: PAYER_API_SCOPES.join(' ') }).toString(),
  );
  expect(granted.status, JSON.stringify(granted.body)).toBe(200);
  const bearer = `Bearer ${granted.body.access_token as string}`;
  return {
    submit: (b: Bundle) => request(app).post('/fhir/Claim/$submit').set('Authorization', bearer).set('Content-Type', FHIR).send(JSON.stringify(b)),
    inquire: (b: Bundle) => request(app).post('/fhir/Claim/$inquire').set('Authorization', bearer).set('Content-Type', FHIR).send(JSON.stringify(inquiryParameters({ identifier: b.identifier as { system: string; value: string } }))),
    queue: async () => (await request(app).get('/review/pended').set('Authorization', `Bearer ${REVIEW_TOKEN}`).expect(200)).body.pended as { id: string; bundleIdentifier: string; waiting?: { id: string }[] }[],
    view: (id: string) => request(app).get(`/review/${id}`).set('Authorization', `Bearer ${REVIEW_TOKEN}`),
    decide: (id: string, decision: 'approve' | 'deny', reason: string) =>
      request(app).post(`/review/${id}/decision`).set('Authorization', `Bearer ${REVIEW_TOKEN}`).send({ decision, reviewer: 'Dr. R. Okafor (medical director)', reason }),
  };
}

describe.each([
  ['MemoryStorage', () => new MemoryStorage() as Storage],
  ['embedded PGlite', () => pglite as Storage],
])('a second client’s request for an order the first client’s request pends (%s)', (_name, storageOf) => {
  it.each(['approve', 'deny'] as const)('is one case in the queue, and the reviewer’s one decision (%s) answers both requests at once', async (decision) => {
    const storage = storageOf();
    const [oncology, infusion] = [await replicaAs(storage, 0), await replicaAs(storage, 1)];
    const orderId = `order-${randomUUID()}`;
    const first = storyBundle(STORY, { orderId });
    const second = storyBundle(STORY, { orderId });
    const a = claimResponseOf((await oncology.submit(first).expect(200)).body);
    const b = claimResponseOf((await infusion.submit(second).expect(200)).body);
    // Each client's request is its own, both pended.
    expect(b.id).not.toBe(a.id);
    expect([reviewActions(a), reviewActions(b)]).toEqual([[`${X12}#A4`], [`${X12}#A4`]]);

    // The reviewer (on the other replica) sees the order once: the first request, naming the one waiting with it.
    const mine = (await infusion.queue()).filter((e) => [a.id, b.id].includes(e.id));
    expect(mine.map((e) => e.id)).toEqual([a.id]);
    expect(mine[0].waiting?.map((w) => w.id)).toEqual([b.id]);
    // Opened directly, the waiting request names its case.
    expect((await infusion.view(b.id!).expect(200)).body.waitsOn).toBe(a.id);

    const decided = await infusion.decide(a.id!, decision, decision === 'approve' ? 'MRD 0.4 % on the attached flow report' : 'No MRD result within the last 90 days after a request for it');
    expect(decided.status, JSON.stringify(decided.body)).toBe(200);

    // Both requests carry the decision now, as stored (what their subscribers are notified of), not at a later read.
    const [storedA, storedB] = await Promise.all([storage.getPasSubmission(a.id!), storage.getPasSubmission(b.id!)]);
    const action = decision === 'approve' ? 'A1' : 'A3';
    expect([storedA?.reviewAction, storedB?.reviewAction]).toEqual([action, action]);
    expect(storedB?.preAuthRef).toBe(storedA?.preAuthRef);
    // Each client reads its own request decided, the approval's number the same.
    const [nowA, nowB] = [claimResponseOf((await oncology.inquire(first).expect(200)).body.parameter[0].resource), claimResponseOf((await infusion.inquire(second).expect(200)).body.parameter[0].resource)];
    expect([reviewActions(nowA), reviewActions(nowB)]).toEqual([[`${X12}#${action}`], [`${X12}#${action}`]]);
    expect(nowB.preAuthRef).toBe(nowA.preAuthRef);
    expect((await oncology.queue()).filter((e) => [a.id, b.id].includes(e.id))).toEqual([]);
  });
});
