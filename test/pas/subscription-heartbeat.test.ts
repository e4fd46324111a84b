/**
 * R4 Subscriptions Backport heartbeats (backport-heartbeat-period on Subscription.channel): a subscription that asked
 * for one and was sent nothing for that period gets a `heartbeat` notification, so its client knows the channel is
 * alive while a request stays pended. Driven through createApp; the notifier's clock is passed in, never waited for.
 */
import type { Bundle, Parameters } from '@medplum/fhirtypes';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { pasSubscription } from './pas-fixtures.js';
import { closeReceivers, notificationReceiver, until } from '../helpers/notification-receiver.js';

const FHIR = 'application/fhir+json';
const HEARTBEAT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period';
afterEach(closeReceivers);


const withHeartbeat = (endpoint: string, value: unknown) => {
  const s = pasSubscription(endpoint, 'U5521039476');
  return { ...s, channel: { ...s.channel, extension: [{ url: HEARTBEAT, valueUnsignedInt: value }] } };
};
const param = (b: Bundle, name: string) => (b.entry![0].resource as Parameters).parameter!.find((p) => p.name === name);


describe('Subscription heartbeats', () => {
  it('sends a heartbeat to a subscription quiet for its period, once per period, and none to one that asked for none', async () => {
    const { app, storage } = buildApp();
    const [beating, quiet] = await Promise.all([notificationReceiver(), notificationReceiver()]);
    const a = await request(app).post('/fhir/Subscription').set('Content-Type', FHIR).send(JSON.stringify(withHeartbeat(beating.url, 60))).expect(201);
    await request(app).post('/fhir/Subscription').set('Content-Type', FHIR).send(JSON.stringify(pasSubscription(quiet.url, 'U5521039476'))).expect(201);
    expect(a.body.channel.extension).toEqual([{ url: HEARTBEAT, valueUnsignedInt: 60 }]);
    await until('both subscriptions active', async () => ((await storage.listSubscriptions()).every((s) => s.status === 'active') ? true : undefined));
    const notifier = app.locals.subscriptionNotifier as { sendHeartbeats(now?: Date): Promise<number> };

    // Within the period: nothing. A period after the handshake: one heartbeat, and not a second for the same period.
    expect(await notifier.sendHeartbeats(new Date(Date.now() + 30_000))).toBe(0);
    const later = new Date(Date.now() + 61_000);
    expect(await notifier.sendHeartbeats(later)).toBe(1);
    expect(await notifier.sendHeartbeats(later)).toBe(0);
    const heartbeat = beating.received.at(-1)!;
    expect(heartbeat.type).toBe('history');
    expect(heartbeat.entry).toHaveLength(1);
    expect(param(heartbeat, 'type')?.valueCode).toBe('heartbeat');
    expect(param(heartbeat, 'status')?.valueCode).toBe('active');
    expect(param(heartbeat, 'subscription')?.valueReference?.reference).toMatch(new RegExp(`/Subscription/${a.body.id}$`));
    expect(quiet.received.map((n) => param(n, 'type')?.valueCode)).toEqual(['handshake']);
  });

  it.each([[0], [-5], [1.5], ['60'], [86_401]])('refuses heartbeat period %j with a 400 naming the channel extension', async (value) => {
    const { app, storage } = buildApp();
    const res = await request(app).post('/fhir/Subscription').set('Content-Type', FHIR).send(JSON.stringify(withHeartbeat('http://127.0.0.1:9/notify', value)));
    expect(res.status).toBe(400);
    expect(res.body.issue[0].expression).toEqual(['Subscription.channel.extension[0].valueUnsignedInt']);
    expect(await storage.listSubscriptions()).toEqual([]);
  });
});
