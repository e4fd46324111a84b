/**
 * SMART Backend Services on the payer FHIR API (design.md §8 "Who may call"): the token endpoint, the SMART
 * configuration, and the scope every /fhir route needs. Keys are real ES384 and RS384 pairs made at test start.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { SignJWT, UnsecuredJWT, exportJWK, generateKeyPair, importJWK } from 'jose';
import type { JWK } from 'jose';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PAYER_API_SCOPES } from '../../src/fhir-api/smart-configuration.js';
import { PAYER_API_ROUTES } from '../../src/http/payer-api-auth.js';
import { createFhirRouter } from '../../src/fhir-api/fhir-router.js';
import { createPasRouter } from '../../src/pas/pas-router.js';
import { createSubscriptionRouter } from '../../src/pas/subscription-router.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { StorageUnavailableError } from '../../src/storage/storage.js';
import { RETRY_AFTER_SECONDS } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import { BASE, buildApp, testContent } from '../helpers/app.js';
import { storyResources } from '../helpers/stories.js';
import { bareAdaptiveResponse } from '../dtr/helpers.js';
import { inquiryParameters, questionnaireResponse, storyBundle } from '../pas/pas-fixtures.js';

const TOKEN_URL = `${BASE}/auth/token`;
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const FHIR = 'application/fhir+json';

interface ClientKey {
  privateKey: CryptoKey;
  jwk: JWK;
  kid: string;
  alg: 'ES384' | 'RS384';
}

async function clientKey(alg: 'ES384' | 'RS384'): Promise<ClientKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = randomUUID();
  return { privateKey: privateKey as CryptoKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }, kid, alg };
}

interface AssertionOptions {
  iss?: string;
  sub?: string;
  aud?: string;
  exp?: number;
  jti?: string;
  kid?: string;
  jku?: string;
  key?: CryptoKey;
}

function assertion(clientId: string, key: ClientKey, o: AssertionOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: key.alg, typ: 'JWT', kid: o.kid ?? key.kid, ...(o.jku ? { jku: o.jku } : {}) })
    .setIssuer(o.iss ?? clientId)
    .setSubject(o.sub ?? clientId)
    .setAudience(o.aud ?? TOKEN_URL)
    .setIssuedAt(now)
    .setExpirationTime(o.exp ?? now + 240)
    .setJti(o.jti ?? randomUUID())
    .sign(o.key ?? key.privateKey);
}

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
const tokenRequest = (clientAssertion: string, scope = PAYER_API_SCOPES.join(' ')) =>
  form({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: clientAssertion, scope });

let es: ClientKey;
let rs: ClientKey;
let rotated: ClientKey;
let jkuServer: Server;
let jkuUrl: string;
let jkuKeys: JWK[] = [];
const jkuHits: string[] = [];

beforeAll(async () => {
  [es, rs, rotated] = await Promise.all([clientKey('ES384'), clientKey('RS384'), clientKey('ES384')]);
  jkuKeys = [es.jwk];
  jkuServer = createServer((req, res) => {
    jkuHits.push(req.url ?? '');
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ keys: jkuKeys }));
  });
  await new Promise<void>((resolve) => jkuServer.listen(0, '127.0.0.1', resolve));
  jkuUrl = `http://127.0.0.1:${(jkuServer.address() as AddressInfo).port}/jwks.json`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => jkuServer.close(() => resolve()));
});

function clients() {
  return [
    { clientId: 'ehr-es', jwks: { keys: [es.jwk] }, scopes: PAYER_API_SCOPES },
    { clientId: 'ehr-rs', jwks: { keys: [rs.jwk] }, scopes: 'system/Questionnaire.read system/ValueSet.read' },
    { clientId: 'ehr-jku', jku: jkuUrl, scopes: ['system/Claim.c', 'system/ClaimResponse.rs'] },
    { clientId: 'ehr-claims', jwks: { keys: [es.jwk] }, scopes: ['system/Claim.cr'] },
  ];
}

function securedApp(storage = new MemoryStorage(), base?: string) {
  return buildApp({ storage, env: { PAYER_API_AUTH: 'required', PAYER_API_CLIENTS: JSON.stringify(clients()), ...(base ? { PUBLIC_BASE_URL: base } : {}) } });
}

async function accessToken(app: ReturnType<typeof securedApp>['app'], scope: string, clientId = 'ehr-es', key = es): Promise<string> {
  const res = await request(app).post('/auth/token').type('form').send(tokenRequest(await assertion(clientId, key), scope));
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.access_token as string;
}

describe('token endpoint (SMART Backend Services, RFC 6749 errors)', () => {
  it('issues a short-lived bearer token with the granted system/ scopes for an ES384 and an RS384 assertion', async () => {
    const { app } = securedApp();
    const a = await request(app).post('/auth/token').type('form').send(tokenRequest(await assertion('ehr-es', es), 'system/Claim.c system/ClaimResponse.rs'));
    expect(a.status).toBe(200);
    expect(a.headers['cache-control']).toBe('no-store');
    expect(a.body).toMatchObject({ token_type: 'bearer', scope: 'system/Claim.c system/ClaimResponse.rs' });
    expect(a.body.expires_in).toBeGreaterThan(0);
    expect(a.body.expires_in).toBeLessThanOrEqual(300);
    const b = await request(app).post('/auth/token').type('form').send(tokenRequest(await assertion('ehr-rs', rs), 'system/Questionnaire.read'));
    expect(b.status).toBe(200);
    expect(b.body.scope).toBe('system/Questionnaire.read');
  });

  it('grants only what the registration allows: a wider request is narrowed, an unrelated one refused', async () => {
    const { app } = securedApp();
    const narrowed = await request(app).post('/auth/token').type('form').send(tokenRequest(await assertion('ehr-rs', rs), 'system/*.rs system/Claim.c'));
    expect(narrowed.status).toBe(200);
    expect(narrowed.body.scope.split(' ').sort()).toEqual(['system/Questionnaire.rs', 'system/ValueSet.rs']);
    const none = await request(app).post('/auth/token').type('form').send(tokenRequest(await assertion('ehr-rs', rs), 'system/Claim.c patient/*.read'));
    expect(none.status).toBe(400);
    expect(none.body.error).toBe('invalid_scope');
  });

  it('fetches keys from the registered jku, and fetches again for an unknown kid once its 30 s cooldown has passed', async () => {
    jkuKeys = [es.jwk];
    const { app } = securedApp();
    const exchange = async (key: ClientKey) => request(app).post('/auth/token').type('form').send(tokenRequest(await assertion('ehr-jku', key), 'system/Claim.c'));
    const before = jkuHits.length;
    expect((await exchange(es)).status).toBe(200);
    expect(jkuHits.length).toBe(before + 1);
    expect((await exchange(es)).status).toBe(200);
    expect(jkuHits.length, 'the key set is cached').toBe(before + 1);
    // The client rotates to a new key: within the cooldown an unknown kid does not make us hammer its server.
    jkuKeys = [es.jwk, rotated.jwk];
    expect((await exchange(rotated)).status).toBe(401);
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 31_000);
      expect((await exchange(rotated)).status).toBe(200);
      expect(jkuHits.length).toBeGreaterThan(before + 1);
    } finally {
      vi.useRealTimers();
    }
  });

  describe('refuses with RFC 6749 error JSON, never a 500, and logs which check failed without the token', () => {
    const cases: [string, () => Promise<string>, number, string, RegExp][] = [
      ['an expired assertion', () => assertion('ehr-es', es, { exp: Math.floor(Date.now() / 1000) - 120 }), 401, 'invalid_client', /exp/],
      ['an assertion living more than five minutes', () => assertion('ehr-es', es, { exp: Math.floor(Date.now() / 1000) + 3600 }), 401, 'invalid_client', /five minutes/],
      ['an assertion for another audience', () => assertion('ehr-es', es, { aud: `${BASE}/fhir` }), 401, 'invalid_client', /aud/],
      ['alg none', async () => new UnsecuredJWT({}).setIssuer('ehr-es').setSubject('ehr-es').setAudience(TOKEN_URL).setExpirationTime('4m').setJti(randomUUID()).encode(), 401, 'invalid_client', /alg.{1,4}none.{1,4} not allowed/],
      [
        'HS256 with the public key as secret',
        async () =>
          new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: es.kid }).setIssuer('ehr-es').setSubject('ehr-es').setAudience(TOKEN_URL).setExpirationTime('4m').setJti(randomUUID()).sign(new TextEncoder().encode(JSON.stringify(es.jwk))),
        401,
        'invalid_client',
        /alg.{1,4}HS256.{1,4} not allowed/,
      ],
      ['a key the client never registered (same kid)', () => assertion('ehr-es', es, { key: rotated.privateKey }), 401, 'invalid_client', /signature/],
      ['an unknown kid', () => assertion('ehr-es', es, { kid: 'no-such-kid' }), 401, 'invalid_client', /verification failed/],
      ['an unregistered client', () => assertion('stranger', es), 401, 'invalid_client', /unregistered client/],
      ['sub different from iss', () => assertion('ehr-es', es, { sub: 'someone-else' }), 401, 'invalid_client', /sub/],
      ['a jku not on the registration', () => assertion('ehr-jku', es, { jku: 'https://attacker.example/jwks.json' }), 401, 'invalid_client', /jku/],
      ['a malformed assertion', async () => 'not.a-jwt', 401, 'invalid_client', /undecodable|compact/],
    ];
    it.each(cases)('%s', async (_name, make, status, error, logged) => {
      const { app, lines } = securedApp();
      const clientAssertion = await make();
      const res = await request(app).post('/auth/token').type('form').send(tokenRequest(clientAssertion));
      expect(res.status).toBe(status);
      expect(res.body.error).toBe(error);
      expect(res.body.access_token).toBeUndefined();
      const log = lines.join('');
      expect(log).toMatch(logged);
      expect(log).not.toContain(clientAssertion);
    });

    it('a replayed assertion, even at another replica sharing the storage', async () => {
      const storage = new MemoryStorage();
      const { app } = securedApp(storage);
      const { app: replica, lines } = securedApp(storage);
      const once = await assertion('ehr-es', es);
      await request(app).post('/auth/token').type('form').send(tokenRequest(once)).expect(200);
      const again = await request(replica).post('/auth/token').type('form').send(tokenRequest(once));
      expect(again.status).toBe(401);
      expect(again.body.error).toBe('invalid_client');
      expect(lines.join('')).toMatch(/replayed client assertion jti/);
    });

    it.each([
      ['no grant_type', form({ client_assertion_type: JWT_BEARER, client_assertion: 'x', scope: 'system/Claim.c' }), 'invalid_request'],
      ['another grant type', form({ grant_type: 'password', username: 'a', password: 'b' }), 'unsupported_grant_type'],
      ['no client assertion', form({ grant_type: 'client_credentials', scope: 'system/Claim.c' }), 'invalid_request'],
      ['another assertion type', form({ grant_type: 'client_credentials', client_assertion_type: 'urn:x', client_assertion: 'x', scope: 'system/Claim.c' }), 'invalid_request'],
    ])('%s: 400 %s', async (_name, body, error) => {
      const { app } = securedApp();
      const res = await request(app).post('/auth/token').type('form').send(body);
      expect(res.status).toBe(400);
      expect(res.body.error).toBe(error);
    });

    it('a scope left out: 400 invalid_request', async () => {
      const { app } = securedApp();
      const res = await request(app)
        .post('/auth/token')
        .type('form')
        .send(form({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: await assertion('ehr-es', es) }));
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('invalid_request');
    });

    it('a JSON body: 400 invalid_request; GET: 405', async () => {
      const { app } = securedApp();
      const json = await request(app).post('/auth/token').send({ grant_type: 'client_credentials' });
      expect(json.status).toBe(400);
      expect(json.body.error).toBe('invalid_request');
      const get = await request(app).get('/auth/token');
      expect(get.status).toBe(405);
      expect(get.body.error).toBe('invalid_request');
    });
  });
});

describe('discovery stays public', () => {
  it('serves the SMART configuration with the token endpoint, client_credentials, private_key_jwt, RS384 and ES384', async () => {
    const { app } = securedApp();
    const res = await request(app).get('/fhir/.well-known/smart-configuration').expect(200);
    expect(res.body).toMatchObject({
      token_endpoint: TOKEN_URL,
      grant_types_supported: ['client_credentials'],
      token_endpoint_auth_methods_supported: ['private_key_jwt'],
    });
    expect(res.body.token_endpoint_auth_signing_alg_values_supported).toEqual(expect.arrayContaining(['RS384', 'ES384']));
    expect(res.body.scopes_supported).toEqual(expect.arrayContaining(['system/Questionnaire.rs', 'system/Claim.c', 'system/ClaimResponse.rs']));
  });

  it('declares SMART-on-FHIR security with the token endpoint in the CapabilityStatement', async () => {
    const { app } = securedApp();
    const res = await request(app).get('/fhir/metadata').expect(200);
    const security = res.body.rest[0].security;
    expect(security.service[0].coding[0]).toEqual({ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' });
    const uris = security.extension.find((e: { url: string }) => e.url === 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris');
    expect(uris.extension).toContainEqual({ url: 'token', valueUri: TOKEN_URL });
  });
});

/** One real call per /fhir operation, with the scope it needs (design.md §7, §8). */
interface RouteCase {
  name: string;
  scope: string;
  call: (app: ReturnType<typeof securedApp>['app'], token?: string) => request.Test;
  ok: number;
}

const withToken = (t: request.Test, token?: string) => (token ? t.set('Authorization', `Bearer ${token}`) : t);
const post = (path: string, body: unknown) => (app: ReturnType<typeof securedApp>['app'], token?: string) =>
  withToken(request(app).post(path).set('Content-Type', FHIR).send(JSON.stringify(body)), token);
const get = (path: string) => (app: ReturnType<typeof securedApp>['app'], token?: string) => withToken(request(app).get(path), token);

const centene = storyResources('centene-missing-mrd');
const coverage = centene.find((r) => r.resourceType === 'Coverage');
const packageRequest = { resourceType: 'Parameters', parameter: [{ name: 'coverage', resource: coverage }, { name: 'questionnaire', valueCanonical: 'https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11' }] };
const adaptive = bareAdaptiveResponse('https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11');
const VS = 'https://priorpath.dev/fhir/ValueSet/b-all-snomed';
let hookUrl = 'http://127.0.0.1:9/hook';
const subscription = () => ({
  resourceType: 'Subscription',
  status: 'requested',
  reason: 'Decisions on pended prior authorization requests',
  criteria: 'http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic',
  _criteria: { extension: [{ url: 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria', valueString: 'patient=U5521039476' }] },
  channel: { type: 'rest-hook', endpoint: hookUrl, payload: 'application/fhir+json' },
});
const subscriptionIds: string[] = [];
const responseIds: string[] = [];
const claimResponseIds: string[] = [];
const put = (path: () => string, body: () => unknown) => (app: ReturnType<typeof securedApp>['app'], token?: string) =>
  withToken(request(app).put(path()).set('Content-Type', FHIR).send(JSON.stringify(body())), token);
const lazyGet = (path: () => string) => (app: ReturnType<typeof securedApp>['app'], token?: string) => withToken(request(app).get(path()), token);

/** A response the clinician saved to finish later: stored, updatable, deciding nothing (design.md §7). */
const draftResponse = () => ({ ...questionnaireResponse('centene-blinatumomab', { 'mrd-percent': [{ valueDecimal: 0.6 }] }, 'Patient/centene-missing-mrd'), status: 'in-progress' });

const ROUTES: RouteCase[] = [
  { name: 'Questionnaire search', scope: 'system/Questionnaire.s', ok: 200, call: get('/fhir/Questionnaire?url=https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab') },
  { name: 'Questionnaire read', scope: 'system/Questionnaire.r', ok: 200, call: get('/fhir/Questionnaire/centene-blinatumomab') },
  { name: 'Questionnaire/$questionnaire-package', scope: 'system/Questionnaire.r', ok: 200, call: post('/fhir/Questionnaire/$questionnaire-package', packageRequest) },
  { name: '$questionnaire-package (system level)', scope: 'system/Questionnaire.r', ok: 200, call: post('/fhir/$questionnaire-package', packageRequest) },
  { name: 'Questionnaire/$next-question', scope: 'system/Questionnaire.r', ok: 200, call: post('/fhir/Questionnaire/$next-question', adaptive) },
  { name: '$next-question (system level)', scope: 'system/Questionnaire.r', ok: 200, call: post('/fhir/$next-question', adaptive) },
  {
    name: 'Questionnaire/$log-questionnaire-errors',
    scope: 'system/Questionnaire.r',
    ok: 200,
    call: post('/fhir/Questionnaire/$log-questionnaire-errors', { resourceType: 'Parameters', parameter: [{ name: 'questionnaire', valueCanonical: 'https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11' }, { name: 'operationOutcome', resource: { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception', diagnostics: 'CQL "CenteneBlinatumomab".mrdPercent failed' }] } }] }),
  },
  { name: 'ValueSet search', scope: 'system/ValueSet.s', ok: 200, call: get('/fhir/ValueSet?url=' + VS) },
  { name: 'ValueSet read', scope: 'system/ValueSet.r', ok: 200, call: get('/fhir/ValueSet/b-all-snomed') },
  { name: 'ValueSet/{id}/$expand', scope: 'system/ValueSet.r', ok: 200, call: get('/fhir/ValueSet/b-all-snomed/$expand') },
  { name: 'ValueSet/{id}/$expand (POST)', scope: 'system/ValueSet.r', ok: 200, call: post('/fhir/ValueSet/b-all-snomed/$expand', { resourceType: 'Parameters', parameter: [{ name: 'count', valueInteger: 1 }] }) },
  { name: 'ValueSet/$expand (GET)', scope: 'system/ValueSet.r', ok: 200, call: get('/fhir/ValueSet/$expand?url=' + VS) },
  { name: 'ValueSet/$expand (POST)', scope: 'system/ValueSet.r', ok: 200, call: post('/fhir/ValueSet/$expand', { resourceType: 'Parameters', parameter: [{ name: 'url', valueUri: VS }] }) },
  { name: 'Library search', scope: 'system/Library.s', ok: 200, call: get('/fhir/Library') },
  { name: 'Library read', scope: 'system/Library.r', ok: 200, call: get('/fhir/Library/centene-blinatumomab') },
  {
    name: 'QuestionnaireResponse create',
    scope: 'system/QuestionnaireResponse.c',
    ok: 201,
    call: post('/fhir/QuestionnaireResponse', questionnaireResponse('centene-blinatumomab', { 'mrd-percent': [{ valueDecimal: 0.6 }] }, 'Patient/centene-missing-mrd')),
  },
  { name: 'QuestionnaireResponse read', scope: 'system/QuestionnaireResponse.r', ok: 200, call: lazyGet(() => `/fhir/QuestionnaireResponse/${responseIds[0]}`) },
  { name: 'QuestionnaireResponse vread', scope: 'system/QuestionnaireResponse.r', ok: 200, call: lazyGet(() => `/fhir/QuestionnaireResponse/${responseIds[0]}/_history/1`) },
  {
    name: 'QuestionnaireResponse update (a draft)',
    scope: 'system/QuestionnaireResponse.u',
    ok: 200,
    call: put(() => `/fhir/QuestionnaireResponse/${responseIds[1]}`, () => ({ ...draftResponse(), id: responseIds[1] })),
  },
  { name: 'Claim/$submit', scope: 'system/Claim.c', ok: 200, call: (app, token) => post('/fhir/Claim/$submit', storyBundle('centene-missing-mrd'))(app, token) },
  { name: 'Claim/$inquire', scope: 'system/ClaimResponse.r', ok: 200, call: post('/fhir/Claim/$inquire', inquiryParameters({ preAuthRef: 'PA-NONE-1' })) },
  { name: 'ClaimResponse read', scope: 'system/ClaimResponse.r', ok: 200, call: lazyGet(() => `/fhir/ClaimResponse/${claimResponseIds[0]}`) },
  { name: 'Subscription create', scope: 'system/Subscription.c', ok: 201, call: (app, token) => post('/fhir/Subscription', subscription())(app, token) },
  { name: 'Subscription search', scope: 'system/Subscription.s', ok: 200, call: get('/fhir/Subscription') },
  { name: 'Subscription read', scope: 'system/Subscription.r', ok: 200, call: lazyGet(() => `/fhir/Subscription/${subscriptionIds[0]}`) },
  { name: 'Subscription $status', scope: 'system/Subscription.r', ok: 200, call: lazyGet(() => `/fhir/Subscription/${subscriptionIds[0]}/$status`) },
  { name: 'Subscription $events', scope: 'system/Subscription.r', ok: 200, call: lazyGet(() => `/fhir/Subscription/${subscriptionIds[0]}/$events`) },
  { name: 'Subscription update', scope: 'system/Subscription.u', ok: 200, call: put(() => `/fhir/Subscription/${subscriptionIds[0]}`, () => ({ ...subscription(), id: subscriptionIds[0] })) },
  {
    name: 'Subscription delete',
    scope: 'system/Subscription.d',
    ok: 204,
    call: (app, token) => withToken(request(app).delete(`/fhir/Subscription/${subscriptionIds[0]}`), token),
  },
];

/** A route path as written, or a regular expression route (`/^\/Claim\/\$submit\/?$/`) read back as the path it matches. */
function pathOf(path: string | RegExp): string {
  if (typeof path === 'string') return path.replace(/\\(.)/g, '$1');
  return path.source.replace(/^\^/, '').replace(/\\\/\?\$$/, '').replace(/\$$/, '').replace(/\\(.)/g, '$1');
}

describe('every /fhir route refuses without a token, works with its scope and answers 403 without it', () => {
  let app: ReturnType<typeof securedApp>['app'];
  let storage: MemoryStorage;
  let hooks: Server;
  beforeAll(async () => {
    hooks = createServer((_req, res) => res.end('{}'));
    await new Promise<void>((resolve) => hooks.listen(0, '127.0.0.1', resolve));
    hookUrl = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/hook`;
    ({ app, storage } = securedApp());
    const created = await post('/fhir/Subscription', subscription())(app, await accessToken(app, 'system/Subscription.c'));
    expect(created.status, JSON.stringify(created.body).slice(0, 300)).toBe(201);
    subscriptionIds.push(created.body.id as string);
    const answered = await post('/fhir/QuestionnaireResponse', questionnaireResponse('centene-blinatumomab', { 'mrd-percent': [{ valueDecimal: 0.6 }] }, 'Patient/centene-missing-mrd'))(
      app,
      await accessToken(app, 'system/QuestionnaireResponse.c'),
    );
    expect(answered.status, JSON.stringify(answered.body).slice(0, 300)).toBe(201);
    responseIds.push(answered.body.id as string);
    const draft = await post('/fhir/QuestionnaireResponse', draftResponse())(app, await accessToken(app, 'system/QuestionnaireResponse.c'));
    expect(draft.status, JSON.stringify(draft.body).slice(0, 300)).toBe(201);
    responseIds.push(draft.body.id as string);
    const filed = await post('/fhir/Claim/$submit', storyBundle('centene-missing-mrd'))(app, await accessToken(app, 'system/Claim.c'));
    expect(filed.status, JSON.stringify(filed.body).slice(0, 300)).toBe(200);
    claimResponseIds.push(filed.body.entry[0].resource.id as string);
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => hooks.close(() => resolve()));
  });

  it.each(ROUTES.map((r) => [r.name, r] as const))('%s', async (_name, r) => {
    const none = await r.call(app);
    expect(none.status).toBe(401);
    expect(none.body.resourceType).toBe('OperationOutcome');
    expect(none.headers['www-authenticate']).toMatch(/^Bearer realm=/);

    const right = await r.call(app, await accessToken(app, r.scope));
    expect(right.status, JSON.stringify(right.body).slice(0, 400)).toBe(r.ok);

    const type = r.scope.slice('system/'.length).split('.')[0];
    const others = PAYER_API_SCOPES.filter((s) => !s.startsWith(`system/${type}.`)).join(' ');
    const wrong = await r.call(app, await accessToken(app, others));
    expect(wrong.status).toBe(403);
    expect(wrong.body.resourceType).toBe('OperationOutcome');
    expect(wrong.body.issue[0].code).toBe('forbidden');
    expect(wrong.headers['www-authenticate']).toContain(`scope="${r.scope}"`);
  });

  it('covers every route the DTR and PAS routers serve, and every one of them declares its scope', () => {
    const logger = createLogger('silent');
    // Only the route table is read; no notification is ever sent here.
    const notifier = {} as Parameters<typeof createSubscriptionRouter>[0]['notifier'];
    const served = [
      createFhirRouter({ content: testContent(), storage, publicBaseUrl: BASE, logger }),
      createPasRouter({ content: testContent(), storage, logger }),
      createSubscriptionRouter({ storage, logger, notifier, fhirBase: `${BASE}/fhir`, endpoints: { httpsOnly: false, allow: [] } }),
    ].flatMap((router) =>
      (router.stack as { route?: { path: string | RegExp | (string | RegExp)[]; methods: Record<string, boolean> } }[])
        .filter((l) => l.route && !l.route.methods._all)
        .flatMap((l) => [l.route!.path].flat().flatMap((path) => Object.keys(l.route!.methods).map((m) => `${m.toUpperCase()} ${pathOf(path)}`))),
    );
    const declared = new Set(PAYER_API_ROUTES.map((r) => `${r.method} ${r.path}`));
    const undeclared = served.filter((s) => !declared.has(s));
    expect(undeclared).toEqual([]);
    // And every declared route is served: a declared one nobody serves answers 404 after authentication.
    const public_ = PAYER_API_ROUTES.filter((r) => r.scope === null).map((r) => `${r.method} ${r.path}`);
    expect([...declared].filter((d) => !served.includes(d) && !public_.includes(d))).toEqual([]);
    const tested = ROUTES.length + 2; // + metadata and the SMART configuration, public
    expect(served.length).toBeLessThanOrEqual(tested);
  });

  it('accepts v1 scopes (system/Questionnaire.read) and refuses what they do not cover', async () => {
    const token = await accessToken(app, 'system/Questionnaire.read', 'ehr-rs', rs);
    await request(app).get('/fhir/Questionnaire/centene-blinatumomab').set('Authorization', `Bearer ${token}`).expect(200);
    const submit = await post('/fhir/Claim/$submit', storyBundle('centene-missing-mrd'))(app, token);
    expect(submit.status).toBe(403);
  });

  it('lets a client holding Claim create and read (not ClaimResponse) file and inquire', async () => {
    const token = await accessToken(app, 'system/Claim.cr', 'ehr-claims', es);
    await post('/fhir/Claim/$submit', storyBundle('centene-missing-mrd'))(app, token).expect(200);
    await post('/fhir/Claim/$inquire', inquiryParameters({ preAuthRef: 'PA-NONE-2' }))(app, token).expect(200);
    const onlyCreate = await accessToken(app, 'system/Claim.c', 'ehr-claims', es);
    await post('/fhir/Claim/$inquire', inquiryParameters({ preAuthRef: 'PA-NONE-2' }))(app, onlyCreate).expect(403);
  });

  it('answers 401 for an undeclared path without a token, 404 with one, and 405 for a declared path with another method', async () => {
    const none = await request(app).get('/fhir/Patient/123');
    expect(none.status).toBe(401);
    const token = await accessToken(app, 'system/Questionnaire.rs');
    const unknown = await request(app).get('/fhir/Patient/123').set('Authorization', `Bearer ${token}`);
    expect(unknown.status).toBe(404);
    const wrongMethod = await request(app).delete('/fhir/Claim/$submit');
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.allow).toBe('POST');
  });
});

describe('access tokens that must not open the API', () => {
  it('refuses expired, foreign, unsigned, HS256 and CDS client tokens with 401, and a token from another audience', async () => {
    const storage = new MemoryStorage();
    const { app, lines } = securedApp(storage);
    await accessToken(app, 'system/Questionnaire.r'); // makes the service's signing key
    const stored = JSON.parse([...storage.settings.values()][0]) as JWK;
    const serviceKey = await importJWK(stored, 'ES384');
    const claims = { scope: 'system/Questionnaire.rs', client_id: 'ehr-es' };
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES384', typ: 'at+jwt', kid: String(stored.kid) })
      .setIssuer(BASE)
      .setAudience(`${BASE}/fhir`)
      .setSubject('ehr-es')
      .setIssuedAt(now - 900)
      .setExpirationTime(now - 600)
      .sign(serviceKey);
    const foreign = await new SignJWT(claims).setProtectedHeader({ alg: 'ES384', typ: 'at+jwt', kid: String(stored.kid) }).setIssuer(BASE).setAudience(`${BASE}/fhir`).setSubject('ehr-es').setIssuedAt().setExpirationTime('5m').sign(rotated.privateKey);
    const unsigned = new UnsecuredJWT(claims).setIssuer(BASE).setAudience(`${BASE}/fhir`).setSubject('ehr-es').setIssuedAt().setExpirationTime('5m').encode();
    const hs256 = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' }).setIssuer(BASE).setAudience(`${BASE}/fhir`).setSubject('ehr-es').setIssuedAt().setExpirationTime('5m').sign(new TextEncoder().encode('x'.repeat(32)));
    const assertionAsToken = await assertion('ehr-es', es);
    // Another deployment address sharing the same storage (and so the same signing key): its tokens name its own /fhir.
    const { app: elsewhere } = securedApp(storage, 'http://other.priorpath.test');
    const otherAudience = (await request(elsewhere).post('/auth/token').type('form').send(tokenRequest(await assertion('ehr-es', es, { aud: 'http://other.priorpath.test/auth/token' }), 'system/Questionnaire.rs'))).body.access_token as string;
    expect(otherAudience).toBeTruthy();
    for (const token of [expired, foreign, unsigned, hs256, assertionAsToken, otherAudience, 'garbage']) {
      const res = await request(app).get('/fhir/Questionnaire/centene-blinatumomab').set('Authorization', `Bearer ${token}`);
      expect(res.status).toBe(401);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(res.headers['www-authenticate']).toContain('error="invalid_token"');
      expect(lines.join('')).not.toContain(token);
    }
    const basic = await request(app).get('/fhir/Questionnaire/centene-blinatumomab').set('Authorization', 'Basic dXNlcjpwYXNz');
    expect(basic.status).toBe(401);
  });

  it('stops accepting a token once it expires, even one it has already accepted', async () => {
    const { app } = securedApp();
    const token = await accessToken(app, 'system/Questionnaire.r');
    await request(app).get('/fhir/Questionnaire/centene-blinatumomab').set('Authorization', `Bearer ${token}`).expect(200);
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 301_000);
      const late = await request(app).get('/fhir/Questionnaire/centene-blinatumomab').set('Authorization', `Bearer ${token}`);
      expect(late.status).toBe(401);
      expect(late.headers['www-authenticate']).toContain('error="invalid_token"');
    } finally {
      vi.useRealTimers();
    }
  });

  it('accepts a token issued by one replica at another sharing the storage', async () => {
    const storage = new MemoryStorage();
    const { app } = securedApp(storage);
    const { app: replica } = securedApp(storage);
    const token = await accessToken(app, 'system/Questionnaire.r');
    await request(replica).get('/fhir/Questionnaire/centene-blinatumomab').set('Authorization', `Bearer ${token}`).expect(200);
  });
});

describe('access log', () => {
  it('keeps client id, operation, resource ids and outcome of each call, and no clinical content', async () => {
    const { app, storage } = securedApp();
    const token = await accessToken(app, 'system/Claim.c system/Questionnaire.r');
    const bundle = storyBundle('centene-missing-mrd');
    await post('/fhir/Claim/$submit', bundle)(app, token).expect(200);
    await request(app).get('/fhir/Questionnaire/centene-blinatumomab').set('Authorization', `Bearer ${token}`).expect(200);
    await request(app).get('/fhir/Questionnaire/centene-blinatumomab').expect(401);
    await post('/fhir/Claim/$inquire', inquiryParameters({ preAuthRef: 'PA-X' }))(app, token).expect(403);
    await new Promise((r) => setImmediate(r));
    const lines = (await storage.listApiAccess(10)).reverse();
    expect(lines.map((l) => [l.clientId, l.operation, l.status, l.outcome])).toEqual([
      ['ehr-es', 'POST /Claim/$submit', 200, 'ok'],
      ['ehr-es', 'GET /Questionnaire/:id', 200, 'ok'],
      [undefined, 'GET /Questionnaire/:id', 401, 'no-token'],
      ['ehr-es', 'POST /Claim/$inquire', 403, 'insufficient-scope'],
    ]);
    expect(lines[0].resourceIds).toEqual([`Bundle?identifier=${bundle.identifier!.system}|${bundle.identifier!.value}`]);
    expect(lines[1].resourceIds).toEqual(['Questionnaire/centene-blinatumomab']);
    const text = JSON.stringify(lines);
    const patient = bundle.entry!.map((e) => e.resource).find((r) => r?.resourceType === 'Patient') as { name?: { family?: string }[]; birthDate?: string };
    expect(text).not.toContain(patient.name![0].family!);
    expect(text).not.toContain(patient.birthDate!);
  });
});

describe('storage out of reach (design.md §4 "Errors": every 503 carries the one Retry-After)', () => {
  const unreachable = () => Promise.reject(new StorageUnavailableError(new Error('connect ECONNREFUSED')));

  it('answers the token request 503 temporarily_unavailable with Retry-After when the signing key cannot be read', async () => {
    const storage = new MemoryStorage();
    storage.sharedSetting = unreachable;
    const { app } = securedApp(storage);
    const res = await request(app).post('/auth/token').type('form').send(tokenRequest(await assertion('ehr-es', es), 'system/Questionnaire.r'));
    expect(res.status).toBe(503);
    expect(res.body.error).toBe('temporarily_unavailable');
    expect(res.headers['retry-after']).toBe(String(RETRY_AFTER_SECONDS));
  });

  it('answers a /fhir call 503 transient with the same Retry-After when its token cannot be checked', async () => {
    const shared = new MemoryStorage();
    const { app } = securedApp(shared);
    const token = await accessToken(app, 'system/Questionnaire.r');
    // A second replica whose database is down: it cannot read the signing key the token was made with.
    const down = new MemoryStorage();
    down.sharedSetting = unreachable;
    const { app: replica } = securedApp(down);
    const res = await request(replica).get('/fhir/Questionnaire/centene-blinatumomab').set('Authorization', `Bearer ${token}`);
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'transient' }] });
    expect(res.headers['retry-after']).toBe(String(RETRY_AFTER_SECONDS));
  });
});
