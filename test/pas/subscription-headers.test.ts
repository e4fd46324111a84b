/**
 * Subscription.channel.header (R4 Subscriptions Backport rest-hook): what a subscriber asks PriorPath to send with each
 * notification. A header that cannot be sent is refused when the Subscription is created or updated, with a 400 naming
 * the entry, instead of being accepted and failing every delivery until the subscription turns `error`.
 */
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { pasSubscription } from './pas-fixtures.js';
import { closeReceivers, notificationReceiver } from '../helpers/notification-receiver.js';

const FHIR = 'application/fhir+json';
afterEach(closeReceivers);


const withHeaders = (endpoint: string, header: unknown[]) => {
  const s = pasSubscription(endpoint, 'U5521039476');
  return { ...s, channel: { ...s.channel, header } };
};

describe('Subscription.channel.header', () => {
  it.each([
    ['Transfer-Encoding: chunked'],
    ['Content-Length: 3'],
    ['Expect: 100-continue'],
    ['Upgrade: websocket'],
    ['Keep-Alive: timeout=5'],
    ['Host: intranet.payer.example'],
    ['Content-Type: text/plain'],
    ['X-Trace: a\u0007b'],
    ['X-Trace: a\r\nX-Injected: 1'],
    ['Bad Name: x'],
    ['no colon'],
  ])('refuses %j with a 400 naming the entry, and stores nothing', async (header) => {
    const { app, storage } = buildApp();
    const res = await request(app).post('/fhir/Subscription').set('Content-Type', FHIR).send(JSON.stringify(withHeaders('http://127.0.0.1:9/notify', ['Authorization: Bearer abc', header])));
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    // Control characters other than CR and LF are refused for any string of any body, with the path from the root.
    expect(res.body.issue[0].expression[0]).toMatch(/^(Subscription\.)?channel\.header\[1\]$/);
    expect(await storage.listSubscriptions()).toEqual([]);
  });

  it('refuses such a header in an update too, and keeps the subscription as it was', async () => {
    const { app } = buildApp();
    const created = await request(app).post('/fhir/Subscription').set('Content-Type', FHIR).send(JSON.stringify(withHeaders('http://127.0.0.1:9/notify', ['Authorization: Bearer abc']))).expect(201);
    const id: string = created.body.id;
    const res = await request(app).put(`/fhir/Subscription/${id}`).set('Content-Type', FHIR).send(JSON.stringify({ ...withHeaders('http://127.0.0.1:9/notify', ['Transfer-Encoding: chunked']), id }));
    expect(res.status).toBe(400);
    expect((await request(app).get(`/fhir/Subscription/${id}`).expect(200)).body.channel.header).toEqual(['Authorization: Bearer abc']);
  });

  it('sends the headers it accepts with each notification', async () => {
    const { app } = buildApp();
    const end = await notificationReceiver();
    await request(app).post('/fhir/Subscription').set('Content-Type', FHIR).send(JSON.stringify(withHeaders(end.url, ['Authorization: Bearer inferno-session-7', 'X-Correlation-Id: 42']))).expect(201);
    const deadline = Date.now() + 10_000;
    while (end.received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    expect(end.requests[0].headers).toMatchObject({ authorization: 'Bearer inferno-session-7', 'x-correlation-id': '42', 'content-type': FHIR });
  });
});
