/**
 * One mechanism answers a method a path does not serve (src/http/method-guard.ts; design.md §4 "Errors": 405 with
 * Allow, OPTIONS 204): each edge router, mounted on its own as src/app.ts mounts it, answers with the Allow its own
 * route table gives for that path, no hand-written list beside it (RFC 9110 §15.5.6: Allow lists the methods the
 * target resource supports).
 */
import express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { createFhirRouter } from '../../src/fhir-api/fhir-router.js';
import { errorHandler } from '../../src/http/error-handler.js';
import { answerOtherMethods, routeTable } from '../../src/http/method-guard.js';
import { requestContext } from '../../src/http/request-context.js';
import { createLogger } from '../../src/logger.js';
import { createPasRouter } from '../../src/pas/pas-router.js';
import { createReviewRouter } from '../../src/pas/review-router.js';
import { createSubscriptionRouter } from '../../src/pas/subscription-router.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { createReviewPageRouter } from '../../src/web/review-page.js';
import { BASE, testContent } from '../helpers/app.js';

const REVIEW_TOKEN = 'method-guard-review-token-5c02';
const logger = createLogger('silent');

/** One edge router at its mount, with the app's 404 fallback and error middleware, guarded as src/app.ts guards. */
function mounted(mount: string, router: express.Router) {
  const app = express();
  app.use(requestContext(logger));
  app.use(mount, router);
  answerOtherMethods(app.router);
  app.use((_req, res) => res.status(404).json({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found' }] }));
  app.use(errorHandler(logger));
  return app;
}

function subscriptions() {
  // Only methods the router does not serve are called here: no notification is ever sent.
  const notifier = {} as Parameters<typeof createSubscriptionRouter>[0]['notifier'];
  return mounted('/fhir', createSubscriptionRouter({ storage: new MemoryStorage(), logger, notifier, fhirBase: `${BASE}/fhir`, endpoints: { httpsOnly: false, allow: [] } }));
}

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

describe('Subscription: each path its own Allow', () => {
  it('answers the type path with POST, GET and an instance with GET, PUT, DELETE, not one list for both', async () => {
    const app = subscriptions();
    for (const method of ['put', 'patch', 'delete'] as const) {
      const res = await request(app)[method]('/fhir/Subscription').set('Content-Type', 'application/fhir+json').send('{}');
      expect(res.status, method).toBe(405);
      expect(res.headers.allow, method).toBe('POST, GET');
      expect(res.body.resourceType).toBe('OperationOutcome');
    }
    for (const method of ['post', 'patch'] as const) {
      const res = await request(app)[method]('/fhir/Subscription/sub-7f3a').set('Content-Type', 'application/fhir+json').send('{}');
      expect(res.status, method).toBe(405);
      expect(res.headers.allow, method).toBe('GET, PUT, DELETE');
    }
    const status = await request(app).delete('/fhir/Subscription/sub-7f3a/$status');
    expect(status.status).toBe(405);
    expect(status.headers.allow).toBe('GET');
    const options = await request(app).options('/fhir/Subscription/sub-7f3a');
    expect(options.status).toBe(204);
    expect(options.headers.allow).toBe('GET, PUT, DELETE');
  });
});

describe('every edge router on its own: a 405 names exactly the methods its route table serves at that path', () => {
  const content = testContent();
  const routers: [string, string, () => express.Express][] = [
    ['DTR', '/fhir', () => mounted('/fhir', createFhirRouter({ content, storage: new MemoryStorage(), publicBaseUrl: BASE, logger }))],
    ['PAS', '/fhir', () => mounted('/fhir', createPasRouter({ content, storage: new MemoryStorage(), logger }))],
    ['Subscription', '/fhir', subscriptions],
    ['reviewer API', '/review', () => mounted('/review', createReviewRouter({ storage: new MemoryStorage(), logger, reviewToken: REVIEW_TOKEN }))],
    ['reviewer page', '/review', () => mounted('/review', createReviewPageRouter({ logger }))],
  ];
  it.each(routers)('%s', async (_name, mount, make) => {
    const app = make();
    const byPath = new Map<string, { path: string; methods: Set<string> }>();
    for (const e of routeTable(app.router)) {
      if (e.methods.length === 0) continue;
      const paths = [e.path].flat();
      // A sample URL for each route: parameters filled in, escapes and regular-expression anchors taken out.
      const sample = paths.map((p) =>
        typeof p === 'string'
          ? p.replace(/\\(.)/g, '$1').replace(/:vid\b/g, '1').replace(/:[A-Za-z]+/g, 'abc')
          : String(p.source).replace(/^\^/, '').replace(/\\\/\?\$$|\$$/g, '').replace(/\\(.)/g, '$1').replace(/\([^)]*\)\??/g, ''),
      );
      for (const path of sample) {
        const g = byPath.get(path) ?? { path, methods: new Set<string>() };
        for (const m of e.methods) g.methods.add(m);
        byPath.set(path, g);
      }
    }
    expect(byPath.size).toBeGreaterThan(0);
    const wrong: string[] = [];
    for (const { path, methods } of byPath.values()) {
      const url = `${mount}${path === '/' ? '' : path}`;
      for (const method of METHODS.filter((m) => !methods.has(m))) {
        const t = request(app)[method.toLowerCase() as 'get'](url).set('Authorization', `Bearer ${REVIEW_TOKEN}`);
        const res = await (method === 'GET' ? t : t.set('Content-Type', 'application/json').send('{}'));
        const allow = String(res.headers.allow ?? '').split(', ').sort();
        if (res.status !== 405 || allow.join() !== [...methods].sort().join()) wrong.push(`${method} ${url}: ${res.status} Allow "${String(res.headers.allow)}", serves ${[...methods].join(', ')}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});

describe('an operation path is not taken by the read beside it', () => {
  it('answers GET of $questionnaire-package, $next-question and $log-questionnaire-errors with 405 POST, not as a Questionnaire read', async () => {
    const app = mounted('/fhir', createFhirRouter({ content: testContent(), storage: new MemoryStorage(), publicBaseUrl: BASE, logger }));
    for (const op of ['$questionnaire-package', '$next-question', '$log-questionnaire-errors']) {
      const res = await request(app).get(`/fhir/Questionnaire/${op}`);
      expect(res.status, op).toBe(405);
      expect(res.headers.allow, op).toBe('POST');
    }
    const expand = await request(app).delete('/fhir/ValueSet/$expand');
    expect(expand.status).toBe(405);
    expect(expand.headers.allow).toBe('GET, POST');
  });
});
