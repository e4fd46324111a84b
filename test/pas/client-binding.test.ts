/**
 * What a payer API client filed is its own (design.md §8 "Who may call"): with PAYER_API_AUTH=required a stored PAS
 * request ($submit replay, $inquire, subscription notifications) and a stored DTR QuestionnaireResponse are found only
 * by the registered client that filed them; another client is answered as for something that does not exist. Driven
 * through createApp with real SMART Backend Services tokens (ES384 keys made at test start), on MemoryStorage and on
 * embedded PGlite.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bundle, Parameters } from '@medplum/fhirtypes';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import type { JWK } from 'jose';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PAYER_API_SCOPES } from '../../src/fhir-api/smart-configuration.js';
import { createStorage } from '../../src/storage/create-storage.js';
import type { SqlStorage } from '../../src/storage/sql-storage.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import type { Storage } from '../../src/storage/storage.js';
import { BASE, buildApp } from '../helpers/app.js';
import { claimResponseOf, inquiryParameters, pasSubscription, questionnaireResponse, reviewActions, storyBundle } from './pas-fixtures.js';
import { closeReceivers, notificationReceiver, until } from '../helpers/notification-receiver.js';

const X12 = 'https://codesystem.x12.org/005010/306';
const FHIR = 'application/fhir+json';
const REVIEW_TOKEN = 'review-token-for-client-binding';
const STORY = 'centene-missing-mrd';
const MEMBER = 'U5521039476';

interface Client {
  id: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function client(id: string): Promise<Client> {
  const { privateKey, publicKey } = await generateKeyPair('ES384', { extractable: true });
  return { id, privateKey: privateKey as CryptoKey, jwk: { ...(await exportJWK(publicKey)), kid: `${id}-key`, alg: 'ES384', use: 'sig' } };
}

let ehrA: Client;
let ehrB: Client;
let dir: string;
let pglite: SqlStorage;
beforeAll(async () => {
  [ehrA, ehrB] = await Promise.all([client('ehr-a'), client('ehr-b')]);
  dir = mkdtempSync(join(tmpdir(), 'priorpath-client-binding-'));
  pglite = await createStorage({ dataDir: dir });
}, 120_000);
afterAll(async () => {
  await pglite?.close();
  rmSync(dir, { recursive: true, force: true });
});

afterEach(closeReceivers);



const typeOf = (b: Bundle) => (b.entry![0].resource as Parameters).parameter!.find((p) => p.name === 'type')?.valueCode;

/** The app in required mode with two registered EHR clients, and a bearer token per client. */
async function securedApp(storage: Storage) {
  const clients = [ehrA, ehrB].map((c) => ({ clientId: c.id, jwks: { keys: [c.jwk] }, scopes: PAYER_API_SCOPES }));
  const built = buildApp({
    storage: storage as MemoryStorage,
    today: '2026-11-23',
    env: { PAYER_API_AUTH: 'required', PAYER_API_CLIENTS: JSON.stringify(clients), REVIEW_TOKEN },
  });
  const token = async (c: Client) => {
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES384', typ: 'JWT', kid: c.jwk.kid! })
      .setIssuer(c.id)
      .setSubject(c.id)
      .setAudience(`${BASE}/auth/token`)
      .setIssuedAt(now)
      .setExpirationTime(now + 240)
      .setJti(randomUUID())
      .sign(c.privateKey);
    const res = await request(built.app)
      .post('/auth/token')
      .type('form')
      .send(new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion, scope: PAYER_API_SCOPES.join(' ') }).toString());
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.access_token as string;
  };
  const [a, b] = await Promise.all([token(ehrA), token(ehrB)]);
  const as = (t: string) => ({
    submit: (body: unknown) => request(built.app).post('/fhir/Claim/$submit').set('Authorization', `Bearer ${t}`).set('Content-Type', FHIR).send(JSON.stringify(body)),
    inquire: (body: unknown) => request(built.app).post('/fhir/Claim/$inquire').set('Authorization', `Bearer ${t}`).set('Content-Type', FHIR).send(JSON.stringify(body)),
    post: (path: string, body: unknown) => request(built.app).post(`/fhir${path}`).set('Authorization', `Bearer ${t}`).set('Content-Type', FHIR).send(JSON.stringify(body)),
    get: (path: string) => request(built.app).get(`/fhir${path}`).set('Authorization', `Bearer ${t}`),
  });
  const review = (id: string, body: object) => request(built.app).post(`/review/${id}/decision`).set('Authorization', `Bearer ${REVIEW_TOKEN}`).send(body);
  return { ...built, a: as(a), b: as(b), review };
}

/** The answer to a client asking about something never filed: what another client's request must look like. */
const nothing = { resourceType: 'Parameters' };

describe.each([
  ['MemoryStorage', () => new MemoryStorage() as Storage],
  ['embedded PGlite', () => pglite as Storage],
])('PAYER_API_AUTH=required: a client finds only what it filed (%s)', (_name, storage) => {
  it('$inquire finds a pended request for the client that filed it; for another client it is an empty answer, as for an identifier never filed', async () => {
    const { a, b } = await securedApp(storage());
    const sent = storyBundle(STORY, { orderId: `order-${randomUUID()}` });
    const cr = claimResponseOf((await a.submit(sent).expect(200)).body);
    expect(reviewActions(cr)).toEqual([`${X12}#A4`]);
    const byIdentifier = inquiryParameters({ identifier: sent.identifier as { system: string; value: string } });
    const byReference = inquiryParameters({ preAuthRef: cr.id });

    expect(claimResponseOf((await a.inquire(byIdentifier).expect(200)).body.parameter[0].resource).id).toBe(cr.id);
    expect(claimResponseOf((await a.inquire(byReference).expect(200)).body.parameter[0].resource).id).toBe(cr.id);
    expect((await b.inquire(byIdentifier).expect(200)).body).toEqual(nothing);
    expect((await b.inquire(byReference).expect(200)).body).toEqual(nothing);
    expect((await b.inquire(inquiryParameters({ identifier: { system: 'urn:ehr.example.org:pas-transaction', value: randomUUID() } })).expect(200)).body).toEqual(nothing);
  });

  it("another client sending the same Bundle identifier gets its own request decided, never the first client's answer or a 409", async () => {
    const { a, b } = await securedApp(storage());
    // The same identifier and content from B: B's own request, with its own reference number.
    const sent = storyBundle(STORY, { orderId: `order-${randomUUID()}` });
    const first = claimResponseOf((await a.submit(sent).expect(200)).body);
    const fromB = claimResponseOf((await b.submit(sent).expect(200)).body);
    expect(fromB.id).not.toBe(first.id);
    expect(reviewActions(fromB)).toEqual([`${X12}#A4`]);
    expect(claimResponseOf((await b.submit(sent).expect(200)).body).id).toBe(fromB.id);
    expect(claimResponseOf((await a.submit(sent).expect(200)).body).id).toBe(first.id);

    // Other content under A's identifier: B's request, not a 409 that would tell B the identifier is taken.
    const other = storyBundle(STORY, { orderId: `order-${randomUUID()}` });
    await a.submit(other).expect(200);
    const changed = storyBundle(STORY, { identifier: other.identifier!.value, orderId: `order-${randomUUID()}` });
    const res = await b.submit(changed);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    // Within one client an identifier still names one request.
    expect((await a.submit(changed)).status).toBe(409);
  });

  it("notifies a decision only to the subscriptions of the client that filed the request, even when another client's filter matches", async () => {
    const { app, a, b, review } = await securedApp(storage());
    const [endA, endB] = await Promise.all([notificationReceiver(), notificationReceiver()]);
    await a.post('/Subscription', pasSubscription(endA.url, MEMBER)).expect(201);
    await b.post('/Subscription', pasSubscription(endB.url, MEMBER)).expect(201);
    await until('both handshakes', () => (endA.received.length > 0 && endB.received.length > 0 ? true : undefined));

    const cr = claimResponseOf((await a.submit(storyBundle(STORY, { orderId: `order-${randomUUID()}` })).expect(200)).body);
    await review(cr.id!, { decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: 'MRD 0.4 % on the attached flow report' }).expect(200);
    const event = await until('the event at A', () => endA.received.find((n) => typeOf(n) === 'event-notification'));
    expect(JSON.stringify(event)).toContain(cr.id);
    await (app.locals.subscriptionNotifier as { idle(): Promise<void> }).idle();
    expect(endB.received.map(typeOf)).toEqual(['handshake']);
  });

  it('an id-only notification names the ClaimResponse, which its client reads (the current decision); another client gets the 404 of an unknown id', async () => {
    const { a, b, review } = await securedApp(storage());
    const end = await notificationReceiver();
    const idOnly = pasSubscription(end.url, MEMBER);
    idOnly.channel._payload.extension[0].valueCode = 'id-only';
    await a.post('/Subscription', idOnly).expect(201);
    await until('the handshake', () => end.received[0]);
    const cr = claimResponseOf((await a.submit(storyBundle(STORY, { orderId: `order-${randomUUID()}` })).expect(200)).body);
    const approved = await review(cr.id!, { decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: 'MRD 0.4 % on the attached flow report' }).expect(200);

    const event = await until('the event', () => end.received.find((n) => typeOf(n) === 'event-notification'));
    expect(event.entry).toHaveLength(1);
    const focus = (event.entry![0].resource as Parameters).parameter!.find((p) => p.name === 'notification-event')!.part!.find((p) => p.name === 'focus')!.valueReference!.reference!;
    expect(focus.startsWith(`${BASE}/fhir/ClaimResponse/`)).toBe(true);
    const path = focus.slice(`${BASE}/fhir`.length);
    const read = await a.get(path).expect(200);
    expect(read.body).toMatchObject({ resourceType: 'ClaimResponse', id: cr.id, preAuthRef: approved.body.preAuthRef });
    expect(reviewActions(read.body)).toEqual([`${X12}#A1`]);

    const unknown = randomUUID();
    const never = await b.get(`/ClaimResponse/${unknown}`).expect(404);
    const other = await b.get(path).expect(404);
    expect(JSON.stringify(other.body).replaceAll(cr.id!, unknown)).toBe(JSON.stringify(never.body));
  });

  it("reads a DTR QuestionnaireResponse back only for the client that sent it; another client gets the 404 of an unknown id", async () => {
    const { a, b } = await securedApp(storage());
    const qr = questionnaireResponse('centene-blinatumomab', { 'mrd-percent': [{ valueDecimal: 0.52 }] }, 'Patient/centene-missing-mrd');
    const saved = await a.post('/QuestionnaireResponse', qr);
    expect(saved.status, JSON.stringify(saved.body)).toBe(201);
    const id: string = saved.body.id;
    expect((await a.get(`/QuestionnaireResponse/${id}`).expect(200)).body.id).toBe(id);
    expect((await a.get(`/QuestionnaireResponse/${id}/_history/1`).expect(200)).body.id).toBe(id);

    const unknown = randomUUID();
    const never = await b.get(`/QuestionnaireResponse/${unknown}`).expect(404);
    for (const path of [`/QuestionnaireResponse/${id}`, `/QuestionnaireResponse/${id}/_history/1`]) {
      const res = await b.get(path).expect(404);
      expect(res.body.resourceType).toBe('OperationOutcome');
      // The same answer as for an id never given out, but for the id itself.
      expect(JSON.stringify(res.body).replaceAll(id, unknown)).toBe(JSON.stringify(never.body));
    }
  });
});

describe('PAYER_API_AUTH=open (sandbox) keeps every stored request and response readable', () => {
  it('finds a request and reads a response without any client', async () => {
    const { app } = buildApp({ today: '2026-11-23' });
    const sent = storyBundle(STORY, { orderId: `order-${randomUUID()}` });
    const cr = claimResponseOf((await request(app).post('/fhir/Claim/$submit').send(sent).expect(200)).body);
    const inq = await request(app).post('/fhir/Claim/$inquire').send(inquiryParameters({ preAuthRef: cr.id })).expect(200);
    expect(claimResponseOf(inq.body.parameter[0].resource).id).toBe(cr.id);
    const qr = questionnaireResponse('centene-blinatumomab', { 'mrd-percent': [{ valueDecimal: 0.52 }] }, 'Patient/centene-missing-mrd');
    const saved = await request(app).post('/fhir/QuestionnaireResponse').send(qr).expect(201);
    await request(app).get(`/fhir/QuestionnaireResponse/${saved.body.id}`).expect(200);
  });
});
