/**
 * The reviewer's Decided list (`GET /review/decided?days=N`, design.md §8 "The reviewer API"; review ui s44 L1: after a
 * reload the workbench kept no trace of what was decided). Read from the durable store: MemoryStorage, embedded
 * PGlite and, with DATABASE_URL, PostgreSQL.
 */
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { DecidedEntry } from '../../src/pas/review-router.js';
import { UNDECIDED } from '../../src/coverage/order-record.js';
import type { OrderKey, PasSubmission } from '../../src/storage/storage.js';
import type { DecidedRow } from '../../web/review/queue-view.js';
import { currentPended } from '../../src/pas/settle-pended.js';
import { threeStores } from '../helpers/three-stores.js';
import { REVIEW_TOKEN, claimResponseOf, pasApp, storyBundle } from './pas-fixtures.js';

const FHIR_JSON = 'application/fhir+json';

const { storages } = threeStores('decided');

describe('the Decided list\'s entries and the workbench\'s rows', () => {
  it('the server\'s entry (DecidedEntry) is a row the workbench reads (DecidedRow): one shape, declared on each side', () => {
    expectTypeOf<DecidedEntry>().toExtend<DecidedRow>();
  });
});

describe.each(storages)('reviewer Decided list (GET /review/decided, %s)', (_name, storage) => {
  it('lists the requests decided in the last days, newest first, by patient, order, decision, reviewer and date; a request decided leaves the queue and is found here', async () => {
    const { app } = pasApp(storage());
    const auth = { Authorization: `Bearer ${REVIEW_TOKEN}` };
    // Each story under a Bundle identifier of its own, so the stores shared by the suites hold it apart.
    const submit = async (story: string) => {
      const b = storyBundle(story);
      b.identifier = { system: 'urn:test:decided', value: randomUUID() };
      const res = await request(app).post('/fhir/Claim/$submit').set('Content-Type', FHIR_JSON).send(JSON.stringify(b));
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return claimResponseOf(res.body).id!;
    };
    const mrd = await submit('centene-missing-mrd');
    const dose = await submit('centene-over-dose');
    const pended = ((await request(app).get('/review/pended').set(auth)).body.pended as { id: string }[]).map((p) => p.id);
    expect(pended).toEqual(expect.arrayContaining([mrd, dose]));

    const approved = await request(app).post(`/review/${mrd}/decision`).set(auth).send({ decision: 'approve', reviewer: 'Sam Okafor, PharmD', reason: 'MRD 0.3 % in the attached report' });
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    const denied = await request(app).post(`/review/${dose}/decision`).set(auth).send({ decision: 'deny', reviewer: 'Dana Reyes, MD', reason: '56 mcg/day is above the labelled 28 mcg/day' });
    expect(denied.status, JSON.stringify(denied.body)).toBe(200);

    // A reload reads the list again: nothing of it lives in the page.
    const res = await request(app).get('/review/decided').set(auth);
    expect(res.status).toBe(200);
    expect(res.body.days).toBe(7);
    const ours = (res.body.decided as DecidedEntry[]).filter((d) => d.id === mrd || d.id === dose);
    expect(ours.map((d) => d.id)).toEqual([dose, mrd]);
    expect(ours[0]).toMatchObject({ decision: 'deny', reviewer: 'Dana Reyes, MD', reason: '56 mcg/day is above the labelled 28 mcg/day', status: 'denied', drug: expect.stringMatching(/Blincyto/), dose: '56 mcg/day', payerName: expect.any(String) });
    expect(ours[0].authorizationNumber).toBeUndefined();
    expect(ours[1]).toMatchObject({
      decision: 'approve',
      reviewer: 'Sam Okafor, PharmD',
      status: 'approved',
      patientName: 'Kwame Osei Mensah',
      memberId: 'U5521039476',
      authorizationNumber: approved.body.preAuthRef,
      decidedAt: approved.body.decisions[0].decidedAt,
    });
    expect(Date.parse(ours[0].decidedAt)).toBeGreaterThanOrEqual(Date.parse(ours[1].decidedAt));
    const queue = ((await request(app).get('/review/pended').set(auth)).body.pended as { id: string }[]).map((p) => p.id);
    expect(queue).not.toContain(mrd);
    expect(queue).not.toContain(dose);

    // `days` chooses the window: today's decisions are in the last day too.
    const day = await request(app).get('/review/decided?days=1').set(auth);
    expect(day.status).toBe(200);
    expect((day.body.decided as DecidedEntry[]).map((d) => d.id)).toEqual(expect.arrayContaining([mrd, dose]));
  });

  it('a pended request its order\'s DTR approval settled is in the Decided list on the first read, before the queue is read (review ui s46 L1)', async () => {
    const store = storage();
    const { app } = pasApp(store);
    const auth = { Authorization: `Bearer ${REVIEW_TOKEN}` };
    const b = storyBundle('centene-missing-mrd', { orderId: `decided-list-${randomUUID()}` });
    b.identifier = { system: 'urn:test:decided', value: randomUUID() };
    const res = await request(app).post('/fhir/Claim/$submit').set('Content-Type', FHIR_JSON).send(JSON.stringify(b));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const id = claimResponseOf(res.body).id!;
    const stored = (await store.getPasSubmission(id)) as PasSubmission;
    expect(stored.reviewAction).toBe('A4');
    const order = (stored.detail as { items: { order: OrderKey }[] }).items[0].order;
    // What src/dtr/submit-response.ts records when the DTR answers (MRD 0.5 %) approve the order.
    await store.applyOrderChange({
      key: order,
      from: UNDECIDED,
      change: { state: 'approved', at: new Date().toISOString(), source: 'dtr', actor: 'dtr:QuestionnaireResponse', reason: 'Meets CP.PHAR.312: MRD-positive B-ALL in first or second complete remission', authorization: { number: 'PA-CENTENE-20261206-L1DECIDE', start: '2026-12-06', end: '2027-06-05' } },
    });
    // The workbench reads the Decided list beside the queue: read first, it already holds the request.
    const decided = await request(app).get('/review/decided').set(auth).expect(200);
    const entry = (decided.body.decided as DecidedEntry[]).find((d) => d.id === id);
    expect(entry).toMatchObject({ decision: 'approve', reviewer: 'Documentation answers (DTR)', status: 'approved', authorizationNumber: 'PA-CENTENE-20261206-L1DECIDE' });
    const queue = ((await request(app).get('/review/pended').set(auth)).body.pended as { id: string }[]).map((p) => p.id);
    expect(queue).not.toContain(id);
  });

  it('reading changes no state: the lists, the request and GET ClaimResponse answer the settled request, which the sweep stores (was stored by the first GET)', async () => {
    const store = storage();
    const { app } = pasApp(store);
    const auth = { Authorization: `Bearer ${REVIEW_TOKEN}` };
    const b = storyBundle('centene-missing-mrd', { orderId: `read-only-${randomUUID()}` });
    b.identifier = { system: 'urn:test:decided', value: randomUUID() };
    const id = claimResponseOf((await request(app).post('/fhir/Claim/$submit').set('Content-Type', FHIR_JSON).send(JSON.stringify(b)).expect(200)).body).id!;
    const filed = (await store.getPasSubmission(id)) as PasSubmission;
    const order = (filed.detail as { items: { order: OrderKey }[] }).items[0].order;
    // The DTR answers approve the order (what src/dtr/submit-response.ts records).
    await store.applyOrderChange({
      key: order,
      from: UNDECIDED,
      change: { state: 'approved', at: new Date().toISOString(), source: 'dtr', actor: 'dtr:QuestionnaireResponse', reason: 'Meets CP.PHAR.312: MRD-positive B-ALL in first or second complete remission', authorization: { number: 'PA-CENTENE-20261206-READONLY', start: '2026-12-06', end: '2027-06-05' } },
    });
    const decided = (await request(app).get('/review/decided').set(auth).expect(200)).body.decided as DecidedEntry[];
    expect(decided.find((d) => d.id === id)).toMatchObject({ decision: 'approve', reviewer: 'Documentation answers (DTR)', status: 'approved' });
    expect(((await request(app).get('/review/pended').set(auth).expect(200)).body.pended as { id: string }[]).map((p) => p.id)).not.toContain(id);
    expect((await request(app).get(`/review/${id}`).set(auth).expect(200)).body).toMatchObject({ reviewAction: 'A1' });
    expect((await request(app).get(`/fhir/ClaimResponse/${id}`).expect(200)).body.preAuthRef).toBe('PA-CENTENE-20261206-READONLY');
    // None of these reads stored anything: the request is as filed.
    const after = (await store.getPasSubmission(id)) as PasSubmission;
    expect([after.reviewAction, after.revision, after.decisions.length]).toEqual([filed.reviewAction, filed.revision, filed.decisions.length]);
    // The sweep (subscription-notifier.ts sweepPended) stores it, with the time the order was decided, as listed.
    await currentPended(store);
    const stored = (await store.getPasSubmission(id)) as PasSubmission;
    expect(stored.reviewAction).toBe('A1');
    expect(stored.decisions.at(-1)?.decidedAt).toBe(decided.find((d) => d.id === id)?.decidedAt);
  });

  it('needs the reviewer token, as the queue does, and refuses a window that is not a whole number of days from 1 to 90', async () => {
    const { app } = pasApp(storage());
    expect((await request(app).get('/review/decided')).status).toBe(401);
    expect((await request(app).get('/review/decided').set('Authorization', 'Bearer wrong-token')).status).toBe(401);
    for (const days of ['0', '91', '1.5', 'week', '-3']) {
      const res = await request(app).get(`/review/decided?days=${days}`).set('Authorization', `Bearer ${REVIEW_TOKEN}`);
      expect(res.status, days).toBe(400);
      expect(res.body.issue[0].expression).toEqual(['days']);
    }
  });
});
