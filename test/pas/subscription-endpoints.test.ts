/**
 * Notification endpoints cannot point into the payer's own network (design.md §8 "Notification endpoints"; OWASP
 * SSRF Prevention): a Subscription whose channel.endpoint is or resolves to a loopback, link-local (cloud metadata),
 * private, unspecified or multicast address is a 400 naming Subscription.channel.endpoint unless
 * SUBSCRIPTION_ENDPOINTS_ALLOW allows it; production takes only https; and each notification is checked again on the
 * address it is sent to, which is the address the connection uses. Driven through createApp with an injected resolver.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { PAYER_API_SCOPES } from '../../src/fhir-api/smart-configuration.js';
import type { NotifyFetch } from '../../src/pas/subscription-notifier.js';
import type { MemoryStorage } from '../../src/storage/memory-storage.js';
import { BASE, buildApp } from '../helpers/app.js';
import { pasSubscription } from './pas-fixtures.js';
import { until } from '../helpers/notification-receiver.js';

const FHIR = 'application/fhir+json';
const MEMBER = 'U5521039476';
const servers: ReturnType<typeof createServer>[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

/** A resolver serving a fixed zone; names outside it do not exist. */
const zone =
  (records: Record<string, string[]>) =>
  async (host: string): Promise<{ address: string; family: number }[]> => {
    const addresses = records[host];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };

const create = (app: Parameters<typeof request>[0], endpoint: string) =>
  request(app).post('/fhir/Subscription').set('Content-Type', FHIR).send(JSON.stringify(pasSubscription(endpoint, MEMBER)));


describe('Subscription notification endpoints', () => {
  it.each([
    ['http://169.254.169.254/latest/meta-data/iam/security-credentials/', 'link-local'],
    ['http://10.0.12.7:8080/pas-notify', 'private'],
    ['http://172.20.0.3/pas-notify', 'private'],
    ['http://192.168.1.20/pas-notify', 'private'],
    ['http://[fd12:3456:789a::7]/pas-notify', 'private'],
    ['http://[fe80::1]/pas-notify', 'link-local'],
    ['http://0.0.0.0:3000/fhir', 'unspecified'],
    ['http://[::]:3000/fhir', 'unspecified'],
    ['http://224.0.0.251/pas-notify', 'multicast'],
    ['http://[::ffff:169.254.169.254]/latest/meta-data/', 'link-local'],
    ['http://0xa9fea9fe/latest/meta-data/', 'link-local'],
    ['http://100.100.100.200/latest/meta-data/', 'shared'],
    ['http://metadata.internal/computeMetadata/v1/', 'link-local'],
    ['http://postgres:5432/', 'private'],
    ['http://ehr-a.example.test/pas-notify', 'private'],
  ])('refuses %s (%s) with a 400 naming Subscription.channel.endpoint, and stores nothing', async (endpoint, category) => {
    const resolveHost = zone({ 'metadata.internal': ['169.254.169.254'], postgres: ['172.18.0.2'], 'ehr-a.example.test': ['203.0.113.40', '10.1.2.3'] });
    // Loopback only, as a payer sets it: the private ranges are refused (outside production they are allowed by default).
    const { app, storage } = buildApp({ resolveHost, env: { SUBSCRIPTION_ENDPOINTS_ALLOW: '127.0.0.0/8,::1/128' } });
    const res = await create(app, endpoint).expect(400);
    expect(res.body.issue[0].expression).toEqual(['Subscription.channel.endpoint']);
    expect(res.body.issue[0].diagnostics).toContain(category);
    expect(await storage.listSubscriptions()).toEqual([]);
  });

  it('refuses a host that does not resolve and a URL carrying credentials; refuses a PUT onto a private address', async () => {
    const { app } = buildApp({ resolveHost: zone({ 'ehr-b.example.test': ['10.9.9.9'] }), env: { SUBSCRIPTION_ENDPOINTS_ALLOW: '127.0.0.0/8,::1/128' } });
    expect((await create(app, 'http://nowhere.example.test/pas-notify').expect(400)).body.issue[0].diagnostics).toMatch(/does not resolve/);
    await create(app, 'http://user:secret@127.0.0.1:9/pas-notify').expect(400);
    const ok = await create(app, 'http://127.0.0.1:9/pas-notify').expect(201);
    const moved = { ...pasSubscription('http://ehr-b.example.test/pas-notify', MEMBER), id: ok.body.id };
    const res = await request(app).put(`/fhir/Subscription/${ok.body.id}`).set('Content-Type', FHIR).send(JSON.stringify(moved)).expect(400);
    expect(res.body.issue[0].expression).toEqual(['Subscription.channel.endpoint']);
    expect((await request(app).get(`/fhir/Subscription/${ok.body.id}`).expect(200)).body.channel.endpoint).toBe('http://127.0.0.1:9/pas-notify');
  });

  it('outside production, by default, takes a listener on a private (Docker) network and loopback, never cloud metadata', async () => {
    const resolveHost = zone({ inferno: ['172.18.0.5'], 'metadata.internal': ['169.254.169.254'] });
    const { app } = buildApp({ resolveHost });
    await create(app, 'http://inferno:4567/custom/davinci_pas/subscription/channel/notification_listener').expect(201);
    await create(app, 'http://192.168.1.20/pas-notify').expect(201);
    await create(app, 'http://127.0.0.1:9/pas-notify').expect(201);
    await create(app, 'http://metadata.internal/computeMetadata/v1/').expect(400);
    await create(app, 'http://169.254.169.254/latest/meta-data/').expect(400);
  });

  it('takes the networks and hosts SUBSCRIPTION_ENDPOINTS_ALLOW names (and, set, only those beyond the public internet)', async () => {
    const resolveHost = zone({ 'ehr.partner.example.test': ['10.40.1.5'], 'ehr.other.example.test': ['10.41.1.5'] });
    const { app } = buildApp({ resolveHost, env: { SUBSCRIPTION_ENDPOINTS_ALLOW: '10.20.0.0/16, *.partner.example.test' } });
    await create(app, 'http://10.20.3.4/pas-notify').expect(201);
    await create(app, 'http://ehr.partner.example.test/pas-notify').expect(201);
    await create(app, 'http://10.21.0.1/pas-notify').expect(400);
    await create(app, 'http://ehr.other.example.test/pas-notify').expect(400);
    await create(app, 'http://127.0.0.1:9/pas-notify').expect(400);
  });

  it('checks each notification on the address it is sent to: a host that now resolves to cloud metadata is not POSTed to', async () => {
    let metadata = false;
    const resolveHost = async (host: string) => {
      if (host !== 'ehr.partner-a.example.test') throw Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' });
      return [{ address: metadata ? '169.254.169.254' : '203.0.113.10', family: 4 }];
    };
    const sent: { url: string; address?: string }[] = [];
    const notifyFetch: NotifyFetch = async (url, init) => {
      sent.push({ url, address: init.address?.address });
      return { ok: true, status: 200 };
    };
    const { app, storage } = buildApp({ resolveHost, notifyFetch });
    const notifier = app.locals.subscriptionNotifier as { idle(): Promise<void>; stop(): void };
    const first = await create(app, 'https://ehr.partner-a.example.test/pas-notify').expect(201);
    await until('the handshake', () => (sent.length > 0 ? true : undefined));
    await notifier.idle();
    // The handshake went to the address checked for it, and only there.
    expect(sent).toEqual([{ url: 'https://ehr.partner-a.example.test/pas-notify', address: '203.0.113.10' }]);

    // The name now points at the metadata service: the next notification is refused before any connection.
    metadata = true;
    await request(app)
      .put(`/fhir/Subscription/${first.body.id}`)
      .set('Content-Type', FHIR)
      .send(JSON.stringify({ ...pasSubscription('https://ehr.partner-a.example.test/pas-notify', MEMBER), id: first.body.id }))
      .expect(400);
    await (storage as MemoryStorage).enqueueHandshake(first.body.id, new Date().toISOString());
    (app.locals.subscriptionNotifier as { kick(): void }).kick();
    await until('the refused attempt', () => (storage as MemoryStorage).deliveries.find((d) => d.lastError?.includes('169.254.169.254')) ?? undefined);
    notifier.stop();
    expect(sent).toHaveLength(1);
    expect((storage as MemoryStorage).deliveries.find((d) => d.lastError)?.lastError).toMatch(/endpoint refused: .*link-local/);
  });

  it('connects to the checked address itself, not to what the name resolves to when connecting', async () => {
    const received: string[] = [];
    const server = createServer((req, res) => {
      received.push(`${req.headers.host} ${req.url}`);
      req.resume();
      req.on('end', () => res.end());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    servers.push(server);
    const port = (server.address() as AddressInfo).port;
    // The system resolver knows no such host: only the checked answer can have reached the receiver.
    const { app } = buildApp({ resolveHost: zone({ 'ehr.local-partner.example.test': ['127.0.0.1'] }) });
    await create(app, `http://ehr.local-partner.example.test:${port}/pas-notify`).expect(201);
    await until('the handshake', () => received[0]);
    expect(received[0]).toBe(`ehr.local-partner.example.test:${port} /pas-notify`);
    (app.locals.subscriptionNotifier as { stop(): void }).stop();
  });

  it('in production takes only https endpoints, and no loopback address without SUBSCRIPTION_ENDPOINTS_ALLOW', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES384', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'ehr-prod-key', alg: 'ES384', use: 'sig' };
    const { app } = buildApp({
      resolveHost: zone({ 'ehr.partner.example.test': ['203.0.113.10'] }),
      env: { NODE_ENV: 'production', CDS_AUTH: 'required', PAYER_API_CLIENTS: JSON.stringify([{ clientId: 'ehr-prod', jwks: { keys: [jwk] }, scopes: PAYER_API_SCOPES }]) },
    });
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES384', typ: 'JWT', kid: 'ehr-prod-key' })
      .setIssuer('ehr-prod')
      .setSubject('ehr-prod')
      .setAudience(`${BASE}/auth/token`)
      .setIssuedAt(now)
      .setExpirationTime(now + 240)
      .setJti(randomUUID())
      .sign(privateKey);
    const token = await request(app)
      .post('/auth/token')
      .type('form')
      .send({ grant_type: 'client_credentials', scope: 'system/Subscription.crud', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion })
      .expect(200);
    const post = (endpoint: string) =>
      request(app).post('/fhir/Subscription').set('Authorization', `Bearer ${token.body.access_token}`).set('Content-Type', FHIR).send(JSON.stringify(pasSubscription(endpoint, MEMBER)));
    const plain = await post('http://ehr.partner.example.test/pas-notify').expect(400);
    expect(plain.body.issue[0]).toMatchObject({ expression: ['Subscription.channel.endpoint'], diagnostics: expect.stringContaining('https') });
    expect((await post('https://127.0.0.1:8443/pas-notify').expect(400)).body.issue[0].diagnostics).toContain('loopback');
    await post('https://ehr.partner.example.test/pas-notify').expect(201);
    (app.locals.subscriptionNotifier as { stop(): void }).stop();
  });
});
