/**
 * A subscription in `error` loses nothing (R4 Subscriptions Backport: a client recovers the events of a subscription
 * that errored): the decisions made meanwhile are numbered for it (events-since-subscription-start counts them),
 * `GET /Subscription/{id}/$events` returns them, and once the client updates the subscription and the handshake
 * succeeds they are delivered. Driven through createApp; notifications go to an in-process receiver.
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import type { NotifyFetch } from '../../src/pas/subscription-notifier.js';
import { buildApp } from '../helpers/app.js';
import { claimResponseOf, pasSubscription, storyBundle } from './pas-fixtures.js';
import { until } from '../helpers/notification-receiver.js';

const FHIR = 'application/fhir+json';
const REVIEW_TOKEN = 'review-token-for-subscription-recovery';
const MEMBER = 'U5521039476';
const ENDPOINT = 'http://127.0.0.1:9/pas-notify';

const statusOf = (b: Bundle) => b.entry![0].resource as Parameters;
const param = (p: Parameters, name: string) => p.parameter!.find((x) => x.name === name);
const eventsOf = (p: Parameters) => p.parameter!.filter((x) => x.name === 'notification-event');
const part = (e: ParametersParameter, name: string) => e.part!.find((x) => x.name === name);


describe('a PAS subscription that was in error', () => {
  it('numbers the decisions made meanwhile, serves them from $events, and delivers them once it is fixed', async () => {
    const received: Bundle[] = [];
    const notifyFetch: NotifyFetch = async (_url, init) => {
      received.push(JSON.parse(init.body) as Bundle);
      return { ok: true, status: 200 };
    };
    const { app, storage } = buildApp({ env: { REVIEW_TOKEN }, today: '2026-11-23', notifyFetch });
    const notifier = app.locals.subscriptionNotifier as { idle(): Promise<void>; stop(): void };
    const sub = await request(app).post('/fhir/Subscription').set('Content-Type', FHIR).send(JSON.stringify(pasSubscription(ENDPOINT, MEMBER))).expect(201);
    const id: string = sub.body.id;
    await until('the handshake', () => received[0]);
    await notifier.idle();
    // Its endpoint failed too often: the subscription is in error.
    await storage.setSubscriptionStatus(id, 'error', new Date().toISOString());

    const decided: string[] = [];
    for (const reason of ['MRD 0.4 % on the attached flow report', 'MRD 0.2 % by flow cytometry, 2026-11-20']) {
      const cr = claimResponseOf((await request(app).post('/fhir/Claim/$submit').send(storyBundle('centene-missing-mrd', { orderId: `order-${randomUUID()}` })).expect(200)).body);
      await request(app).post(`/review/${cr.id}/decision`).set('Authorization', `Bearer ${REVIEW_TOKEN}`).send({ decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason }).expect(200);
      decided.push(cr.id!);
    }
    (app.locals.subscriptionNotifier as { kick(): void }).kick();
    await notifier.idle();
    expect(received.filter((b) => param(statusOf(b), 'type')?.valueCode === 'event-notification')).toEqual([]);

    // $status counts them; $events returns them, each with its request's current response Bundle.
    const status = statusOf((await request(app).get(`/fhir/Subscription/${id}/$status`).expect(200)).body as Bundle);
    expect(param(status, 'status')?.valueCode).toBe('error');
    expect(param(status, 'events-since-subscription-start')?.valueString).toBe('2');
    const all = (await request(app).get(`/fhir/Subscription/${id}/$events`).expect(200)).body as Bundle;
    expect(all.type).toBe('history');
    expect(param(statusOf(all), 'type')?.valueCode).toBe('query-event');
    expect(eventsOf(statusOf(all)).map((e) => part(e, 'event-number')?.valueString)).toEqual(['1', '2']);
    const foci = eventsOf(statusOf(all)).map((e) => part(e, 'focus')!.valueReference!.reference!);
    expect(all.entry!.slice(1).map((e) => e.fullUrl)).toEqual(foci);
    for (const [i, e] of all.entry!.slice(1).entries()) expect(JSON.stringify(e.resource)).toContain(decided[i]);
    const second = (await request(app).get(`/fhir/Subscription/${id}/$events?eventsSinceNumber=2&content=id-only`).expect(200)).body as Bundle;
    expect(second.entry).toHaveLength(1);
    expect(eventsOf(statusOf(second)).map((e) => part(e, 'focus')?.valueReference?.reference)).toEqual([expect.stringMatching(new RegExp(`/ClaimResponse/${decided[1]}$`))]);
    const first = (await request(app).get(`/fhir/Subscription/${id}/$events?eventsSinceNumber=1&eventsUntilNumber=1`).expect(200)).body as Bundle;
    expect(eventsOf(statusOf(first)).map((e) => part(e, 'event-number')?.valueString)).toEqual(['1']);
    await request(app).get(`/fhir/Subscription/${id}/$events?eventsSinceNumber=first`).expect(400);

    // The client fixes its endpoint: after the handshake, the held notifications arrive, numbered as before.
    await request(app).put(`/fhir/Subscription/${id}`).set('Content-Type', FHIR).send(JSON.stringify({ ...pasSubscription(ENDPOINT, MEMBER), id })).expect(200);
    const events = await until('the missed events', () => {
      const got = received.filter((b) => param(statusOf(b), 'type')?.valueCode === 'event-notification');
      return got.length === 2 ? got : undefined;
    });
    await notifier.idle();
    notifier.stop();
    expect(events.map((b) => part(eventsOf(statusOf(b))[0], 'event-number')?.valueString).sort()).toEqual(['1', '2']);
    expect(events.every((b) => param(statusOf(b), 'status')?.valueCode === 'active')).toBe(true);
    expect(await storage.countUndelivered()).toBe(0);
  });

  it("answers an unknown subscription's $events with a 404 (another client's is unknown to it: the same owned() check as $status)", async () => {
    const { app } = buildApp();
    await request(app).get(`/fhir/Subscription/${randomUUID()}/$events`).expect(404);
  });
});
