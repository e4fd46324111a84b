/**
 * What a PAS Subscription asks for is honoured or refused, never accepted and ignored (R4 Subscriptions Backport on
 * R4 `Subscription`): `end` turns the subscription off ("the time for the server to turn the subscription off"), so
 * past it nothing more is sent and it reads back `off`; `status: off` at create holds every notification; the
 * `application/json` payload is what the notification is sent as; a channel option or modifier extension PriorPath
 * cannot honour is a 400 naming it. The clock is moved with fake Date, never waited for.
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, Parameters } from '@medplum/fhirtypes';
import request from 'supertest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { NotifyFetch } from '../../src/pas/subscription-notifier.js';
import { buildApp } from '../helpers/app.js';
import { until } from '../helpers/notification-receiver.js';
import { claimResponseOf, pasSubscription, storyBundle } from './pas-fixtures.js';

const FHIR = 'application/fhir+json';
const REVIEW_TOKEN = 'review-token-for-subscription-end';
const MEMBER = 'U5521039476';
const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition';
const HOUR = 3_600_000;

const typeOf = (b: Bundle) => ((b.entry![0].resource as Parameters).parameter ?? []).find((p) => p.name === 'type')?.valueCode;
const statusParam = (b: Bundle) => ((b.entry![0].resource as Parameters).parameter ?? []).find((p) => p.name === 'status')?.valueCode;

/** A notification receiver keyed by endpoint: every notification POSTed, with its headers. */
function receiver() {
  const sent: { url: string; headers: Record<string, string>; bundle: Bundle }[] = [];
  const notifyFetch: NotifyFetch = async (url, init) => {
    sent.push({ url, headers: init.headers, bundle: JSON.parse(init.body) as Bundle });
    return { ok: true, status: 200 };
  };
  const to = (endpoint: string) => sent.filter((s) => s.url === endpoint);
  return { notifyFetch, to };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('Subscription.end', () => {
  it('turns a subscription off at its end: it reads back off, hears of no later decision and gets no heartbeat, while one without an end does', async () => {
    const { notifyFetch, to } = receiver();
    const { app, storage } = buildApp({ env: { REVIEW_TOKEN }, today: '2026-11-23', notifyFetch });
    const notifier = app.locals.subscriptionNotifier as { idle(): Promise<void>; kick(): void; sendHeartbeats(now?: Date): Promise<number> };
    const ENDING = 'http://127.0.0.1:9/ending';
    const OPEN = 'http://127.0.0.1:9/open-ended';
    const end = new Date(Date.now() + HOUR).toISOString();
    const base = pasSubscription(ENDING, MEMBER);
    const ending = { ...base, end, channel: { ...base.channel, extension: [{ url: `${BACKPORT}/backport-heartbeat-period`, valueUnsignedInt: 60 }] } };
    const a = await request(app).post('/fhir/Subscription').set('Content-Type', FHIR).send(JSON.stringify(ending)).expect(201);
    const b = await request(app).post('/fhir/Subscription').set('Content-Type', FHIR).send(JSON.stringify(pasSubscription(OPEN, MEMBER))).expect(201);
    expect(a.body.end).toBe(end);
    await until('both handshakes', () => (to(ENDING).length > 0 && to(OPEN).length > 0 ? true : undefined));
    await notifier.idle();
    expect((await request(app).get(`/fhir/Subscription/${a.body.id}`).expect(200)).body.status).toBe('active');

    // Two hours on: the end has passed.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date(Date.parse(end) + HOUR));
    expect((await request(app).get(`/fhir/Subscription/${a.body.id}`).expect(200)).body.status).toBe('off');
    const status = (await request(app).get(`/fhir/Subscription/${a.body.id}/$status`).expect(200)).body as Bundle;
    expect(((status.entry![0].resource as Parameters).parameter ?? []).find((p) => p.name === 'status')?.valueCode).toBe('off');
    const active = (await request(app).get('/fhir/Subscription?status=active').expect(200)).body as Bundle;
    expect(active.entry!.map((e) => e.resource!.id)).toEqual([b.body.id]);

    const cr = claimResponseOf((await request(app).post('/fhir/Claim/$submit').send(storyBundle('centene-missing-mrd', { orderId: `order-${randomUUID()}` })).expect(200)).body);
    await request(app)
      .post(`/review/${cr.id}/decision`)
      .set('Authorization', `Bearer ${REVIEW_TOKEN}`)
      .send({ decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: 'MRD 0.4 % on the attached flow report' })
      .expect(200);
    notifier.kick();
    await notifier.idle();
    expect(to(OPEN).map((s) => typeOf(s.bundle))).toEqual(['handshake', 'event-notification']);
    expect(JSON.stringify(to(OPEN)[1].bundle)).toContain(cr.id!);
    expect(await notifier.sendHeartbeats(new Date(Date.parse(end) + HOUR))).toBe(0);
    expect(to(ENDING).map((s) => typeOf(s.bundle))).toEqual(['handshake']);
    expect((await storage.getSubscription(a.body.id))?.status).toBe('off');
    expect(await storage.countUndelivered()).toBe(0);
  });

  it('keeps an end that had already passed when it was written (the Inferno PAS preset carries 2020-12-31) and does not turn the subscription off for it', async () => {
    const { app, storage } = buildApp();
    const res = await request(app).post('/fhir/Subscription').set('Content-Type', FHIR).send(JSON.stringify({ ...pasSubscription('http://127.0.0.1:9/notify', MEMBER), end: '2020-12-31T12:00:00Z' })).expect(201);
    expect(res.body.end).toBe('2020-12-31T12:00:00Z');
    expect(res.body.status).not.toBe('off');
    const read = await request(app).get(`/fhir/Subscription/${res.body.id}`).expect(200);
    expect(read.body.status).not.toBe('off');
    expect(await storage.listSubscriptions()).toHaveLength(1);
  });

  it.each([
    ['an end given as a date, not an instant', '2027-05-22'],
    ['an end without a time zone', '2027-05-22T00:00:00'],
  ])('refuses %s with a 400 naming Subscription.end, and keeps nothing', async (_name, end) => {
    const { app, storage } = buildApp();
    const res = await request(app).post('/fhir/Subscription').set('Content-Type', FHIR).send(JSON.stringify({ ...pasSubscription('http://127.0.0.1:9/notify', MEMBER), end })).expect(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0].expression).toEqual(['Subscription.end']);
    expect(await storage.listSubscriptions()).toEqual([]);
  });
});

describe('Subscription options PriorPath cannot honour are refused at create', () => {
  const base = () => pasSubscription('http://127.0.0.1:9/notify', MEMBER);
  const withChannelExtension = (extension: Record<string, unknown>) => ({ ...base(), channel: { ...base().channel, extension: [extension] } });
  it.each([
    ['a backport-timeout longer than PriorPath waits (30 s)', withChannelExtension({ url: `${BACKPORT}/backport-timeout`, valueUnsignedInt: 30 }), 'Subscription.channel.extension[0].valueUnsignedInt', /backport-timeout/],
    [
      'a modifier extension on the Subscription',
      { ...base(), modifierExtension: [{ url: 'https://ehr.example.org/fhir/StructureDefinition/notify-only-denials', valueBoolean: true }] },
      'Subscription.modifierExtension',
      /modifierExtension/,
    ],
    [
      'a modifier extension on the channel',
      { ...base(), channel: { ...base().channel, modifierExtension: [{ url: 'https://ehr.example.org/fhir/StructureDefinition/batch-daily', valueBoolean: true }] } },
      'Subscription.channel.modifierExtension',
      /modifierExtension/,
    ],
  ])('%s: a 400 OperationOutcome naming it, and nothing kept', async (_name, body, path, says) => {
    const { app, storage } = buildApp();
    const res = await request(app).post('/fhir/Subscription').set('Content-Type', FHIR).send(JSON.stringify(body)).expect(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0].expression).toEqual([path]);
    expect(res.body.issue[0].diagnostics).toMatch(says);
    expect(await storage.listSubscriptions()).toEqual([]);
  });

  it('accepts a backport-timeout PriorPath can keep to (2 s), and a backport-max-count (each notification carries one event)', async () => {
    const { app } = buildApp();
    const body = { ...base(), channel: { ...base().channel, extension: [{ url: `${BACKPORT}/backport-timeout`, valueUnsignedInt: 2 }, { url: `${BACKPORT}/backport-max-count`, valuePositiveInt: 1 }] } };
    const res = await request(app).post('/fhir/Subscription').set('Content-Type', FHIR).send(JSON.stringify(body)).expect(201);
    expect(res.body.channel.extension).toEqual(body.channel.extension);
  });
});

describe('what a created Subscription asks for is what it gets', () => {
  it('created with status off: kept off, sent not even the handshake, until an update sets it requested', async () => {
    const { notifyFetch, to } = receiver();
    const { app } = buildApp({ notifyFetch });
    const notifier = app.locals.subscriptionNotifier as { idle(): Promise<void> };
    const ENDPOINT = 'http://127.0.0.1:9/held';
    const held = await request(app).post('/fhir/Subscription').set('Content-Type', FHIR).send(JSON.stringify({ ...pasSubscription(ENDPOINT, MEMBER), status: 'off' })).expect(201);
    expect(held.body.status).toBe('off');
    await notifier.idle();
    expect(to(ENDPOINT)).toEqual([]);
    expect((await request(app).get(`/fhir/Subscription/${held.body.id}`).expect(200)).body.status).toBe('off');

    await request(app).put(`/fhir/Subscription/${held.body.id}`).set('Content-Type', FHIR).send(JSON.stringify({ ...pasSubscription(ENDPOINT, MEMBER), id: held.body.id })).expect(200);
    const [handshake] = await until('the handshake', () => (to(ENDPOINT).length > 0 ? to(ENDPOINT) : undefined));
    expect(typeOf(handshake.bundle)).toBe('handshake');
    expect(statusParam(handshake.bundle)).toBe('requested');
  });

  it('sends the notifications of an application/json channel as application/json, and of the default as application/fhir+json', async () => {
    const { notifyFetch, to } = receiver();
    const { app } = buildApp({ notifyFetch });
    const JSON_ENDPOINT = 'http://127.0.0.1:9/json';
    const FHIR_ENDPOINT = 'http://127.0.0.1:9/fhir-json';
    const plain = pasSubscription(JSON_ENDPOINT, MEMBER);
    await request(app).post('/fhir/Subscription').set('Content-Type', FHIR).send(JSON.stringify({ ...plain, channel: { ...plain.channel, payload: 'application/json' } })).expect(201);
    await request(app).post('/fhir/Subscription').set('Content-Type', FHIR).send(JSON.stringify(pasSubscription(FHIR_ENDPOINT, MEMBER))).expect(201);
    await until('both handshakes', () => (to(JSON_ENDPOINT).length > 0 && to(FHIR_ENDPOINT).length > 0 ? true : undefined));
    expect(to(JSON_ENDPOINT)[0].headers['Content-Type']).toBe('application/json');
    expect(to(FHIR_ENDPOINT)[0].headers['Content-Type']).toBe('application/fhir+json');
  });
});
