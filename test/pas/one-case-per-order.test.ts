/**
 * One decision per order, seen by the reviewer as one case (design.md §8 "One authorization per order"): when a second
 * payer API client files a PAS request for an order the first client's request already pends, the second request is
 * its own (a client reads only what it filed) but has nothing of its own to review. The reviewer's queue lists the
 * order once, naming the waiting request, and the one decision answers both requests at once. Two replicas (two apps
 * over one storage), each client on its own, with real SMART Backend Services tokens, on MemoryStorage and on
 * embedded PGlite.
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, Parameters } from '@medplum/fhirtypes';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import request from 'supertest';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PAYER_API_SCOPES } from '../../src/fhir-api/smart-configuration.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import type { Storage } from '../../src/storage/storage.js';
import { BASE, buildApp } from '../helpers/app.js';
import { threeStores } from '../helpers/three-stores.js';
import { claimResponseOf, inquiryParameters, pasSubscription, reviewActions, renamed, storyBundle } from './pas-fixtures.js';
import { closeReceivers, notificationReceiver, until } from '../helpers/notification-receiver.js';

const X12 = 'https://codesystem.x12.org/005010/306';
const FHIR = 'application/fhir+json';
const REVIEW_TOKEN = 'review-token-for-one-case-per-order';
const STORY = 'centene-missing-mrd';
const MEMBER = 'U5521039476';

const clients = ['oncology-ehr', 'infusion-center-ehr'];
let keys: { clientId: string; privateKey: CryptoKey; kid: string; jwk: object }[];
/** MemoryStorage, embedded PGlite, and PostgreSQL (DATABASE_URL) in a schema of its own, only when it is set. */
const stores = threeStores('case');
beforeAll(async () => {
  keys = await Promise.all(
    clients.map(async (clientId) => {
      const { privateKey, publicKey } = await generateKeyPair('ES384', { extractable: true });
      const kid = `${clientId}-key`;
      return { clientId, privateKey: privateKey as CryptoKey, kid, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES384', use: 'sig' } };
    }),
  );
}, 120_000);
afterEach(closeReceivers);

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
    app,
    subscribe: (endpoint: string) => request(app).post('/fhir/Subscription').set('Authorization', bearer).set('Content-Type', FHIR).send(JSON.stringify(pasSubscription(endpoint, MEMBER))),
    submit: (b: Bundle) => request(app).post('/fhir/Claim/$submit').set('Authorization', bearer).set('Content-Type', FHIR).send(JSON.stringify(b)),
    inquire: (b: Bundle) => request(app).post('/fhir/Claim/$inquire').set('Authorization', bearer).set('Content-Type', FHIR).send(JSON.stringify(inquiryParameters({ identifier: b.identifier as { system: string; value: string } }))),
    queue: async () => (await request(app).get('/review/pended').set('Authorization', `Bearer ${REVIEW_TOKEN}`).expect(200)).body.pended as { id: string; bundleIdentifier: string; waiting?: { id: string; bundleIdentifier: string }[] }[],
    view: (id: string) => request(app).get(`/review/${id}`).set('Authorization', `Bearer ${REVIEW_TOKEN}`),
    decide: (id: string, decision: 'approve' | 'deny', reason: string) =>
      request(app).post(`/review/${id}/decision`).set('Authorization', `Bearer ${REVIEW_TOKEN}`).send({ decision, reviewer: 'Dr. R. Okafor (medical director)', reason }),
  };
}

describe.each([
  ['MemoryStorage', () => new MemoryStorage() as Storage],
  ['embedded PGlite', () => stores.pglite as Storage],
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

/**
 * `storage`, whose next `n` request stores (createPasSubmissionForOrders) wait for each other and then go at once: a
 * double click whose two requests reach the store together, on one replica or two.
 */
function storingTogether(storage: Storage, n: number): Storage {
  let left = n;
  const held: (() => void)[] = [];
  return new Proxy(storage, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (prop !== 'createPasSubmissionForOrders') return fn.bind(target);
      return async (...args: unknown[]) => {
        if (left > 0) {
          left--;
          await new Promise<void>((resolve) => {
            held.push(resolve);
            if (left === 0) for (const go of held.splice(0)) go();
          });
        }
        return fn.apply(target, args);
      };
    },
  });
}

const typeOf = (b: Bundle) => (b.entry![0].resource as Parameters).parameter!.find((p) => p.name === 'type')?.valueCode;

describe.each(stores.storages)('the second client’s own resends of its request for an order the first client’s request pends (%s)', (_name, storageOf) => {
  it('collapse into its one waiting request (same ClaimResponse id), which the queue lists once under `waiting` and whose decision it is notified of once (review s39 lifecycle finding 1)', async () => {
    const storage = storageOf();
    // Client 2 on two replicas, the reviewer on a third.
    const [oncology, infusion, infusionElsewhere] = [await replicaAs(storage, 0), await replicaAs(storage, 1), await replicaAs(storage, 1)];
    const endpoint = await notificationReceiver();
    await infusion.subscribe(endpoint.url).expect(201);
    await until('the handshake', () => endpoint.received[0]);

    const orderId = `order-${randomUUID()}`;
    const a = claimResponseOf((await oncology.submit(storyBundle(STORY, { orderId })).expect(200)).body);
    const sent = storyBundle(STORY, { orderId });
    const w = claimResponseOf((await infusion.submit(sent).expect(200)).body);
    expect(w.id).not.toBe(a.id);
    // The same request twice more under new identifiers, each to another replica: the first one's answer.
    const resends = [renamed(sent), renamed(sent)];
    for (const [n, b] of resends.entries()) {
      const res = await (n === 0 ? infusionElsewhere : infusion).submit(b).expect(200);
      expect(res.body.identifier).toEqual(b.identifier);
      expect(claimResponseOf(res.body).id).toBe(w.id);
      expect(reviewActions(claimResponseOf(res.body))).toEqual([`${X12}#A4`]);
    }
    // Client 1's own resend still collapses into its request.
    expect(claimResponseOf((await oncology.submit(storyBundle(STORY, { orderId })).expect(200)).body).id).toBe(a.id);

    // One case, with one waiting request; each resend's identifier finds that request.
    const mine = (await oncology.queue()).filter((e) => e.id === a.id || e.waiting?.some((x) => x.id === w.id));
    expect(mine.map((e) => [e.id, e.waiting?.map((x) => x.id)])).toEqual([[a.id, [w.id]]]);
    for (const b of resends) expect((await infusion.inquire(b).expect(200)).body.parameter.map((p: { resource: Bundle }) => claimResponseOf(p.resource).id)).toEqual([w.id]);

    const decided = await oncology.decide(a.id!, 'approve', 'MRD 0.4 % on the attached flow report');
    expect(decided.status, JSON.stringify(decided.body)).toBe(200);
    const note = await until('the event notification', () => endpoint.received.find((b) => typeOf(b) === 'event-notification'));
    expect(JSON.stringify(note)).toContain(w.id);
    await Promise.all([oncology, infusion, infusionElsewhere].map((r) => (r.app.locals.subscriptionNotifier as { idle(): Promise<void> }).idle()));
    expect(endpoint.received.filter((b) => typeOf(b) === 'event-notification')).toHaveLength(1);
    for (const b of [sent, ...resends]) expect(reviewActions(claimResponseOf((await infusion.inquire(b).expect(200)).body.parameter[0].resource))).toEqual([`${X12}#A1`]);
  });

  it('sent at once (two of them reaching the store together, on two replicas), still end as one waiting request', async () => {
    const base = storageOf();
    const oncology = await replicaAs(base, 0);
    const orderId = `order-${randomUUID()}`;
    const a = claimResponseOf((await oncology.submit(storyBundle(STORY, { orderId })).expect(200)).body);
    const together = storingTogether(base, 2);
    const [one, two] = [await replicaAs(together, 1), await replicaAs(together, 1)];
    const sent = storyBundle(STORY, { orderId });
    const bundles = [sent, renamed(sent), renamed(sent)];
    const answers = await Promise.all(bundles.map((b, n) => (n % 2 === 0 ? one : two).submit(b)));
    for (const res of answers) expect(res.status, JSON.stringify(res.body)).toBe(200);
    const ids = new Set(answers.map((res) => claimResponseOf(res.body).id));
    expect(ids.size).toBe(1);
    const [w] = [...ids];
    expect(w).not.toBe(a.id);
    const mine = (await oncology.queue()).filter((e) => e.id === a.id || e.waiting?.some((x) => x.id === w));
    expect(mine.map((e) => [e.id, e.waiting?.map((x) => x.id)])).toEqual([[a.id, [w]]]);
  });

  it('bringing documentation, still pended, changes its waiting request in place (as a pended request takes documentation): the same id, the case holds the answers, the first client’s case is untouched', async () => {
    const storage = storageOf();
    const [oncology, infusion] = [await replicaAs(storage, 0), await replicaAs(storage, 1)];
    const story = 'bcbsnc-inotuzumab-status-unknown';
    const orderId = `order-${randomUUID()}`;
    const a = claimResponseOf((await oncology.submit(storyBundle(story, { orderId })).expect(200)).body);
    const w = claimResponseOf((await infusion.submit(storyBundle(story, { orderId })).expect(200)).body);
    expect(w.id).not.toBe(a.id);
    const before = (await infusion.view(w.id!).expect(200)).body;
    expect(before.case.answers).toEqual([]);

    const documented = storyBundle(story, { orderId, answers: { 'cd22-positive': [{ valueBoolean: true }] } });
    const answer = claimResponseOf((await infusion.submit(documented).expect(200)).body);
    expect(answer.id).toBe(w.id);
    expect(reviewActions(answer)).toEqual([`${X12}#A4`]);
    const after = (await infusion.view(w.id!).expect(200)).body;
    expect(after.case.answers[0].items).toContainEqual(expect.objectContaining({ linkId: 'cd22-positive', answer: 'Yes' }));
    expect(after.waitsOn).toBe(a.id);
    expect((await oncology.view(a.id!).expect(200)).body.case.answers).toEqual([]);
    // The documented request renamed changes nothing more; the queue still lists one waiting request.
    expect(claimResponseOf((await infusion.submit(renamed(documented)).expect(200)).body).id).toBe(w.id);
    expect((await infusion.view(w.id!).expect(200)).body.updatedAt).toBe(after.updatedAt);
    const mine = (await oncology.queue()).filter((e) => e.id === a.id || e.waiting?.some((x) => x.id === w.id));
    expect(mine.map((e) => [e.id, e.waiting?.map((x) => x.id)])).toEqual([[a.id, [w.id]]]);
  });
});
