/**
 * Every HTTP route the service mounts, read from Express's own route table (src/http/method-guard.ts routeTable), so a
 * route added later is swept without being listed here: who may call it (design.md §4 "Client authentication", §8
 * "Who may call"), what a method it does not serve gets (405 with Allow; design.md §4 "Errors"), and what a hostile
 * body gets (a 4xx OperationOutcome, never a 500, nothing stored, nothing of the body in the log).
 */
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { SignJWT } from 'jose';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { routeTable } from '../../src/http/method-guard.js';
import type { RouteEntry } from '../../src/http/method-guard.js';
import { createLogger } from '../../src/logger.js';
import { createSandboxAuth } from '../../src/sandbox-auth/index.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { BASE, ISS, buildApp, makeKeys, signFor, testContent } from '../helpers/app.js';
import type { TestKeys } from '../helpers/app.js';

const REVIEW_TOKEN = 'route-sweep-review-token-7d41';

/**
 * The routes that answer without credentials, each with the contract that makes it public. Keys are
 * `METHOD mount+path` as routeTable reads them. Anything else must refuse a call without a token.
 */
const PUBLIC: Record<string, string> = {
  'GET /healthz': 'liveness (design.md §2 Ops)',
  'GET /readyz': 'readiness (design.md §2 Ops)',
  'GET /metrics': 'Prometheus metrics, no patient data (design.md §2 Ops)',
  'GET /policies/:id': 'the policy page External Reference cards link to (design.md §4 Response)',
  'GET /cds-services/': 'CDS Hooks discovery holds no patient data (design.md §4 Client authentication)',
  'GET /fhir/metadata': 'the CapabilityStatement stays public (design.md §8)',
  'GET /fhir/.well-known/smart-configuration': 'the SMART configuration stays public (design.md §8)',
  'POST /auth/token/': 'the token endpoint authenticates the client assertion itself (design.md §8)',
  'GET /review/': 'the reviewer workbench page; its data comes from the reviewer API with the token',
  'GET /review/workbench.css': 'a workbench asset',
  'GET /review/base.css': 'a workbench asset',
  [`GET /review${String(/^\/workbench\.js(\.map)?$/)}`]: 'a workbench asset',
  'GET /review/sign-in': 'which sign-in the page offers (no data)',
  'POST /review/demo-sign-in': 'the sandbox demo reviewer; 404 unless the sandbox made one up',
};

/** A concrete path for each regular-expression route (routeTable gives the expression itself). */
const REGEX_SAMPLES: Record<string, string> = {
  [String(/^\/Claim\/\$submit\/?$/)]: '/Claim/$submit',
  [String(/^\/Claim\/\$inquire\/?$/)]: '/Claim/$inquire',
  [String(/^\/workbench\.js(\.map)?$/)]: '/workbench.js',
  [String(/^\/(dtr|demo)\/[A-Za-z0-9_-]+\.(js|js\.map|txt)$/)]: '/demo/no-such-bundle.js',
};

const keyOf = (method: string, e: RouteEntry) => `${method} ${e.mount}${[e.path].flat().map(String).join(',')}`;

/** The concrete paths a route answers at: parameters filled in (a CDS service id must be one that exists). */
function concretePaths(e: RouteEntry): string[] {
  return [e.path].flat().map((p) => {
    let path: string;
    if (typeof p === 'string') path = p;
    else {
      const sample = REGEX_SAMPLES[String(p)];
      expect(sample, `route ${e.mount} ${String(p)} needs a sample path in REGEX_SAMPLES`).toBeDefined();
      path = sample;
    }
    const id = e.mount === '/cds-services' ? 'priorpath-order-sign' : 'abc';
    // A router's own root is the mount path itself; `\$` in a string path is an escaped literal `$`.
    if (path === '/' && e.mount) path = '';
    return `${e.mount}${path.replace(/\\(.)/g, '$1').replace(/:vid\b/g, '1').replace(/:[A-Za-z]+/g, id)}`;
  });
}

function sink() {
  const lines: string[] = [];
  return { lines, stream: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) };
}

/** The whole service as src/serve.ts wires it (without the embedded sandbox EHR), CDS and payer API auth required. */
function fullApp(keys: TestKeys, sandbox: boolean) {
  const config = loadConfig({
    PUBLIC_BASE_URL: BASE,
    LOG_LEVEL: 'info',
    SANDBOX: sandbox ? 'on' : 'off',
    CDS_TRUSTED_CLIENTS: JSON.stringify([{ iss: ISS, jwks: { keys: [keys.jwk] } }]),
    REVIEW_TOKEN,
  });
  const { lines, stream } = sink();
  const storage = new MemoryStorage();
  const app = createApp({
    config,
    content: testContent(),
    storage,
    logger: createLogger(config.logLevel, stream),
    ...(sandbox ? { sandboxAuth: createSandboxAuth({ publicBaseUrl: BASE }) } : {}),
  });
  return { app, storage, lines };
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
const call = (app: ReturnType<typeof fullApp>['app'], method: string, path: string) => {
  const t = request(app)[method.toLowerCase() as 'get'](path);
  return method === 'POST' || method === 'PUT' || method === 'PATCH' ? t.set('Content-Type', 'application/json').send('{}') : t;
};

let keys: TestKeys;
beforeAll(async () => {
  keys = await makeKeys();
});

describe('who may call: every route of a production-shaped service (SANDBOX=off)', () => {
  let app: ReturnType<typeof fullApp>['app'];
  let routes: { key: string; method: string; path: string }[];
  beforeAll(() => {
    ({ app } = fullApp(keys, false));
    const seen = new Set<string>();
    routes = routeTable(app.router).flatMap((e) =>
      e.methods.flatMap((method) => {
        const key = keyOf(method, e);
        if (seen.has(key)) return [];
        seen.add(key);
        // HEAD is served wherever GET is, and must be refused the same way.
        return concretePaths(e).flatMap((path) => (method === 'GET' ? ['GET', 'HEAD'] : [method]).map((m) => ({ key, method: m, path })));
      }),
    );
  });

  it('finds the routes of every edge in the route table', () => {
    const keys = new Set(routes.map((r) => r.key));
    for (const k of ['POST /cds-services/:id', 'POST /cds-services/:id/feedback', 'POST /fhir/Questionnaire/$questionnaire-package', 'GET /review/pended', 'POST /review/:id/decision', 'GET /healthz']) {
      expect(keys, k).toContain(k);
    }
    // Every public route the contract names is still served (a renamed one would leave a stale entry here).
    expect(Object.keys(PUBLIC).filter((k) => !keys.has(k))).toEqual([]);
  });

  it('refuses every route without credentials with 401, WWW-Authenticate and an OperationOutcome, except the public ones', async () => {
    const wrong: string[] = [];
    for (const r of routes) {
      const res = await call(app, r.method, r.path);
      if (PUBLIC[r.key]) {
        if (res.status === 401 || res.status >= 500) wrong.push(`${r.method} ${r.path}: public, answered ${res.status}`);
        continue;
      }
      const challenge = String(res.headers['www-authenticate'] ?? '');
      const body = r.method === 'HEAD' ? 'OperationOutcome' : (res.body as { resourceType?: string }).resourceType;
      if (res.status !== 401 || !challenge.startsWith('Bearer') || body !== 'OperationOutcome') {
        wrong.push(`${r.method} ${r.path}: ${res.status} ${challenge} ${String(body)}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('refuses credentials of the wrong kind, audience or age with 401 (403 for a payer token lacking the scope)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = (path: string) =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'ES384', typ: 'JWT', kid: keys.kid })
        .setIssuer(ISS)
        .setAudience(`${BASE}${path}`)
        .setIssuedAt(now - 900)
        .setExpirationTime(now - 600)
        .setJti(randomUUID())
        .sign(keys.privateKey);
    const wrong: string[] = [];
    for (const r of routes.filter((x) => !PUBLIC[x.key])) {
      const credentials = [
        ['garbage', 'Bearer not-a-token'],
        ['expired CDS JWT for this URL', `Bearer ${await expired(r.path)}`],
        ['CDS JWT for another URL', `Bearer ${await signFor(keys, '/cds-services/priorpath-order-dispatch')}`],
        ['review token', `Bearer ${REVIEW_TOKEN}`],
      ];
      for (const [what, header] of credentials) {
        // The review token is the right credential for the reviewer API.
        if (what === 'review token' && r.path.startsWith('/review/')) continue;
        const res = await call(app, r.method, r.path).set('Authorization', header);
        const body = r.method === 'HEAD' ? 'OperationOutcome' : (res.body as { resourceType?: string }).resourceType;
        if (![401, 403].includes(res.status) || body !== 'OperationOutcome' || !String(res.headers['www-authenticate'] ?? '').startsWith('Bearer')) {
          wrong.push(`${r.method} ${r.path} with ${what}: ${res.status}`);
        }
      }
    }
    expect(wrong).toEqual([]);
  });
});

describe('methods a path does not serve: 405 with Allow, OPTIONS answered (SANDBOX=on, every router mounted)', () => {
  it('answers every other method on every path with 405, Allow and an OperationOutcome, never 404 or 500', async () => {
    const { app } = fullApp(keys, true);
    const payerToken = (await request(app).post('/sandbox/payer-token').expect(200)).body.access_token as string;
    const groups = new Map<string, { entry: RouteEntry; methods: Set<string> }>();
    for (const e of routeTable(app.router)) {
      const key = keyOf('', e);
      const g = groups.get(key) ?? { entry: e, methods: new Set<string>() };
      for (const m of e.methods) g.methods.add(m);
      groups.set(key, g);
    }
    const wrong: string[] = [];
    let checked = 0;
    for (const { entry, methods } of groups.values()) {
      if (methods.size === 0) continue;
      const served = new Set(methods.has('GET') ? [...methods, 'HEAD'] : methods);
      for (const path of concretePaths(entry)) {
        const auth = path.startsWith('/fhir/') ? payerToken : path.startsWith('/review/') ? REVIEW_TOKEN : undefined;
        for (const method of METHODS.filter((m) => !served.has(m))) {
          const t = call(app, method, path);
          const res = await (auth ? t.set('Authorization', `Bearer ${auth}`) : t);
          checked++;
          const allow = String(res.headers.allow ?? '');
          // The token endpoint answers in RFC 6749 JSON, not an OperationOutcome.
          const bodyOk = method === 'HEAD' || path === '/auth/token' || (res.body as { resourceType?: string }).resourceType === 'OperationOutcome';
          // Allow names exactly what the path serves (RFC 9110 §15.5.6), as the route table reads it.
          const exact = allow.split(', ').sort().join() === [...methods].sort().join();
          if (res.status !== 405 || !exact || !bodyOk) wrong.push(`${method} ${path}: ${res.status} Allow "${allow}", serves ${[...methods].join(', ')}`);
        }
        const t = request(app).options(path);
        const options = await (auth ? t.set('Authorization', `Bearer ${auth}`) : t);
        // OPTIONS gets 204 and the same Allow on every path, the token endpoint too (design.md §4 "Errors"), CORS or
        // not (cors.ts passes it on).
        const optionsAllow = String(options.headers.allow ?? '').split(', ').sort().join();
        if (options.status !== 204 || optionsAllow !== [...methods].sort().join()) wrong.push(`OPTIONS ${path}: ${options.status} Allow "${String(options.headers.allow)}"`);
      }
    }
    expect(wrong).toEqual([]);
    expect(checked).toBeGreaterThan(100);
  });

  it('answers OPTIONS with 204 and the Allow a 405 would name', async () => {
    const { app } = fullApp(keys, false);
    for (const [path, allow] of [
      ['/healthz', 'GET'],
      ['/policies/centene-blinatumomab', 'GET'],
      ['/review/sign-in', 'GET'],
      ['/auth/token', 'POST'],
    ]) {
      const res = await request(app).options(path);
      expect(res.status, path).toBe(204);
      expect(res.headers.allow, path).toBe(allow);
    }
    const review = await request(app).options('/review/pended').set('Authorization', `Bearer ${REVIEW_TOKEN}`);
    expect(review.status).toBe(204);
    expect(review.headers.allow).toBe('GET');
  });

  it('answers the reviewer API\'s other methods with 405 and Allow, and its CORS preflight with 204, without credentials too', async () => {
    const { app } = fullApp(keys, false);
    // A browser's preflight never carries Authorization; a method the path does not serve is a 405 for anyone, as on
    // /fhir and every other path (README "Errors": 405 on every path, the reviewer's alike).
    const preflight = await request(app).options('/review/pended').set('Origin', 'https://reviewer.example.org').set('Access-Control-Request-Method', 'GET').set('Access-Control-Request-Headers', 'authorization');
    expect(preflight.status).toBe(204);
    expect(preflight.headers.allow).toBe('GET');
    for (const [method, path, allow] of [
      ['put', '/review/pended', 'GET'],
      ['delete', '/review/9f0c2a54-0d7e-4b8e-9a57-3f1f6b1c2d3e', 'GET'],
      ['get', '/review/9f0c2a54-0d7e-4b8e-9a57-3f1f6b1c2d3e/decision', 'POST'],
    ] as const) {
      const res = await request(app)[method](path);
      expect(res.status, `${method} ${path}`).toBe(405);
      expect(res.headers.allow, `${method} ${path}`).toBe(allow);
      expect(res.body.resourceType).toBe('OperationOutcome');
    }
    // The methods it serves still need the token.
    expect((await request(app).get('/review/pended')).status).toBe(401);
    expect((await request(app).post('/review/9f0c2a54-0d7e-4b8e-9a57-3f1f6b1c2d3e/decision').send({ decision: 'approve' })).status).toBe(401);
  });
});

/** A body sent in chunks, without Content-Length. */
function sendChunked(server: ReturnType<ReturnType<typeof buildApp>['app']['listen']>, method: string, path: string, body: string): Promise<{ status: number; body: string }> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', Authorization: `Bearer ${REVIEW_TOKEN}` } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    for (let i = 0; i < body.length; i += 65_536) req.write(body.slice(i, i + 65_536));
    req.end();
  });
}

describe('hostile bodies on every JSON route (CRD, DTR, PAS, reviewer)', () => {
  const PATIENT = 'Maritza Quiñones-Beltrán';
  const bodies: [string, string, string][] = [
    ['null', 'application/json', 'null'],
    ['an array', 'application/json', '[{"resourceType":"Parameters"}]'],
    ['a string', 'application/json', '"Parameters"'],
    ['a number', 'application/json', '42'],
    ['malformed JSON quoting a patient', 'application/fhir+json', `{"resourceType":"Patient","name":[{"text": ${PATIENT}}]}`],
    ['malformed JSON starting with a patient name', 'application/json', `${PATIENT} born 1961-02-03`],
    ['an empty body', 'application/json', ''],
    ['text/plain', 'text/plain', '{}'],
    ['no FHIR resource type', 'application/fhir+json', '{"resourceType":"NotAResource"}'],
    ['the wrong resource', 'application/fhir+json', JSON.stringify({ resourceType: 'Patient', id: 'p1', name: [{ text: PATIENT }] })],
    ['JSON 70 levels deep', 'application/json', `${'{"a":'.repeat(70)}1${'}'.repeat(70)}`],
    ['a body over 1 MiB', 'application/json', JSON.stringify({ resourceType: 'Parameters', id: 'x'.repeat(1_100_000) })],
  ];
  let server: ReturnType<ReturnType<typeof buildApp>['app']['listen']>;
  let built: ReturnType<typeof buildApp>;
  let jsonRoutes: { method: string; path: string }[];
  beforeAll(async () => {
    // The attachment-carrying routes (PAS, QuestionnaireResponse) at their lowest limit, 1 MiB, so one body over 1 MiB
    // is over every route's limit (their default; attachment-body-limits.test.ts tests a raised limit).
    built = buildApp({ env: { REVIEW_TOKEN, ATTACHMENT_BODY_MAX_BYTES: '1048576' } });
    server = built.app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    jsonRoutes = routeTable(built.app.router)
      .filter((e) => /^\/(cds-services|fhir|review)$/.test(e.mount))
      .flatMap((e) => e.methods.filter((m) => m === 'POST' || m === 'PUT').flatMap((method) => concretePaths(e).map((path) => ({ method, path }))))
      .filter((r, i, all) => r.path !== '/review/demo-sign-in' && all.findIndex((x) => x.method === r.method && x.path === r.path) === i);
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('answers a compressed body, which it does not decode, with 415 (RFC 9110 §15.5.16), not as malformed JSON', async () => {
    const body = gzipSync(JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'url', valueUri: 'https://priorpath.dev/fhir/ValueSet/b-all-snomed' }] }));
    const wrong: string[] = [];
    for (const r of jsonRoutes) {
      const res = await request(server)[r.method.toLowerCase() as 'post'](r.path).set('Content-Type', 'application/fhir+json').set('Content-Encoding', 'gzip').set('Authorization', `Bearer ${REVIEW_TOKEN}`).send(body);
      if (res.status !== 415 || (res.body as { resourceType?: string }).resourceType !== 'OperationOutcome') wrong.push(`${r.method} ${r.path}: ${res.status}`);
    }
    expect(wrong).toEqual([]);
  });

  it('answers each with a 4xx OperationOutcome, stores nothing, and keeps the body out of the log and the answer', async () => {
    expect(jsonRoutes.length).toBeGreaterThan(12);
    const wrong: string[] = [];
    for (const r of jsonRoutes) {
      for (const [what, type, body] of bodies) {
        const res = await request(server)[r.method.toLowerCase() as 'post'](r.path).set('Content-Type', type).set('Authorization', `Bearer ${REVIEW_TOKEN}`).send(body);
        const text = JSON.stringify(res.body);
        if (res.status < 400 || res.status >= 500 || (res.body as { resourceType?: string }).resourceType !== 'OperationOutcome') wrong.push(`${r.method} ${r.path} ${what}: ${res.status} ${text.slice(0, 160)}`);
        else if (text.includes('Maritza') || /at .*\.(ts|js):\d+/.test(text)) wrong.push(`${r.method} ${r.path} ${what}: the answer quotes the body or a stack`);
      }
      const chunked = await sendChunked(server, r.method, r.path, bodies[bodies.length - 1][2]);
      if (chunked.status !== 413 || !chunked.body.includes('OperationOutcome')) wrong.push(`${r.method} ${r.path} chunked over 1 MiB: ${chunked.status}`);
    }
    expect(wrong).toEqual([]);
    const s = built.storage;
    expect([s.submissions.size, s.questionnaireResponses.size, s.subscriptions.size, s.feedback.size, s.assertions.size, s.orders.size]).toEqual([0, 0, 0, 0, 0, 0]);
    expect(built.lines.join('')).not.toContain('Maritza');
  });
});
