/**
 * Property-based fuzzing of every JSON edge (CDS Hooks, DTR, PAS, reviewer-facing PAS inquiry): random bodies and
 * realistic requests with random mutations (values replaced by arbitrary JSON, keys deleted, objects wrapped in
 * arrays, NUL bytes, huge numbers) never produce a 5xx, a stack trace or a non-OperationOutcome error body
 * (design.md §4 "Errors"). A request that hangs fails its test at the test's timeout; how fast answers come is the
 * bench's to measure, not this suite's. Bounded by run count, seeded for reproducibility
 * (FUZZ_SEED, FUZZ_RUNS to explore further).
 */
import type { MedicationRequest, Resource } from '@medplum/fhirtypes';
import fc from 'fast-check';
import request from 'supertest';
import { beforeAll, describe, expect, it } from 'vitest';
import { routeTable } from '../../src/http/method-guard.js';
import { EDGE_MRD, edgePatient } from '../fixtures/edge-patient.js';
import { buildApp } from '../helpers/app.js';
import { fakeEhr } from '../helpers/fake-ehr.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { inquiryParameters, pasSubscription, questionnaireResponse, storyBundle, TODAY } from '../pas/pas-fixtures.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 120);
const SEED = Number(process.env.FUZZ_SEED ?? 20261202);
const FHIR_JSON = 'application/fhir+json';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Path = (string | number)[];

function pathsOf(value: Json, prefix: Path = [], out: Path[] = []): Path[] {
  out.push(prefix);
  if (Array.isArray(value)) value.forEach((v, i) => pathsOf(v, [...prefix, i], out));
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) pathsOf(v, [...prefix, k], out);
  return out;
}

type Mutation = { at: number; op: 'replace' | 'delete' | 'wrap' | 'nul' | 'null' | 'huge' | 'empty'; value: Json };

/** Applies mutations to a copy of `seed`, each at a path chosen by index among the paths the body has by then. */
function mutate(seed: Json, mutations: Mutation[]): Json {
  let body = structuredClone(seed);
  for (const m of mutations) {
    const paths = pathsOf(body);
    const path = paths[m.at % paths.length];
    if (path.length === 0) {
      if (m.op === 'replace') body = m.value;
      continue;
    }
    const parent = path.slice(0, -1).reduce<Json>((v, k) => (v as Record<string, Json>)[k as string], body) as Record<string | number, Json>;
    const key = path[path.length - 1];
    const current = parent[key];
    switch (m.op) {
      case 'replace':
        parent[key] = m.value;
        break;
      case 'delete':
        if (Array.isArray(parent)) parent.splice(key as number, 1);
        else delete parent[key];
        break;
      case 'wrap':
        parent[key] = Array.isArray(current) ? (current[0] ?? null) : [current];
        break;
      case 'nul':
        parent[key] = typeof current === 'string' ? `${current.slice(0, 3)}\u0000${current.slice(3)}` : '\u0000';
        break;
      case 'null':
        parent[key] = null;
        break;
      case 'huge':
        parent[key] = typeof current === 'number' ? -current * 1e300 : 'x'.repeat(10_000);
        break;
      case 'empty':
        parent[key] = Array.isArray(current) ? [] : typeof current === 'object' && current !== null ? {} : '';
        break;
    }
  }
  return body;
}

const mutationArb = fc.record({
  at: fc.nat(),
  op: fc.constantFrom<Mutation['op']>('replace', 'delete', 'wrap', 'nul', 'null', 'huge', 'empty'),
  value: fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>,
});

const mrd = EDGE_MRD;

const { resources, order } = edgePatient();
const all: Resource[] = [...resources, mrd];
const coverage = resources.find((r) => r.resourceType === 'Coverage')!;
const signed = orderSignRequest(all, order) as unknown as Json;
const dispatch = {
  ...(orderSignRequest(all, order) as Record<string, unknown>),
  hook: 'order-dispatch',
  context: { patientId: 'edge-pt', dispatchedOrders: ['MedicationRequest/edge-order'], performer: 'Organization/pharmacy-1' },
} as unknown as Json;
(dispatch as { prefetch: Record<string, unknown> }).prefetch.order = order as unknown as Json;

const pasBundle = storyBundle('centene-missing-mrd', { answers: { 'mrd-percent': [{ valueDecimal: 0.52 }] } }) as unknown as Json;
const qr = questionnaireResponse('centene-blinatumomab', { 'mrd-percent': [{ valueDecimal: 0.52 }] }, 'Patient/edge-pt') as unknown as Json;
const packageParams = {
  resourceType: 'Parameters',
  parameter: [
    { name: 'coverage', resource: coverage },
    { name: 'order', resource: order as MedicationRequest },
  ],
} as unknown as Json;
const nextQuestion = {
  resourceType: 'QuestionnaireResponse',
  status: 'in-progress',
  subject: { reference: 'Patient/edge-pt' },
  questionnaire: '#adaptive',
  contained: [{ resourceType: 'Questionnaire', id: 'adaptive', status: 'active', derivedFrom: ['https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11'] }],
} as unknown as Json;
const inquiry = inquiryParameters({ identifier: { system: 'urn:ehr.example.org:pas-transaction', value: 'x' } }) as unknown as Json;
const feedback = { feedback: [{ card: 'f2f5d3b2-3c1e-4f4a-9d7a-1b2c3d4e5f60', outcome: 'accepted', acceptedSuggestions: [{ id: '0b8e2b7e-6a8f-4c57-9f4e-8a1d2c3b4a50' }], outcomeTimestamp: `${TODAY}T10:00:00Z` }] } as unknown as Json;

const REVIEW_TOKEN = 'fuzz-review-token-2c9e1';
const logReport = {
  resourceType: 'Parameters',
  parameter: [
    { name: 'questionnaire', valueCanonical: 'https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11' },
    { name: 'operationOutcome', resource: { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception', diagnostics: 'CQL mrdPercent failed', expression: ['Questionnaire.item[1]'] }] } },
  ],
} as unknown as Json;
const expand = { resourceType: 'Parameters', parameter: [{ name: 'url', valueUri: 'https://priorpath.dev/fhir/ValueSet/b-all-snomed' }, { name: 'count', valueInteger: 5 }] } as unknown as Json;
const draft = { ...questionnaireResponse('centene-blinatumomab', { 'mrd-percent': [{ valueDecimal: 0.52 }] }, 'Patient/edge-pt'), status: 'in-progress' } as unknown as Json;
const subscription = pasSubscription('http://127.0.0.1:9/hook', 'U5521039476') as unknown as Json;
const decision = { decision: 'deny', reviewer: 'Dr. R. Okafor (medical director)', reason: 'MRD not documented within 90 days' } as unknown as Json;

/**
 * One target per JSON route, named by the route it exercises (`METHOD mount+path` as the route table lists it); the
 * last test checks that every POST and PUT route the app serves has one. Paths with an id are filled in once the
 * resource exists (beforeAll below); `seedStatus` is what the unmutated seed gets when that is not a 2xx.
 */
const targets: { name: string; route: string; method?: 'POST' | 'PUT'; path: string; seed: Json; type: string; seedStatus?: number }[] = [
  { name: 'CRD order-sign', route: 'POST /cds-services/:id', path: '/cds-services/priorpath-order-sign', seed: signed, type: 'application/json' },
  { name: 'CRD order-dispatch', route: 'POST /cds-services/:id', path: '/cds-services/priorpath-order-dispatch', seed: dispatch, type: 'application/json' },
  { name: 'CRD feedback', route: 'POST /cds-services/:id/feedback', path: '/cds-services/priorpath-order-sign/feedback', seed: feedback, type: 'application/json' },
  { name: 'DTR $questionnaire-package', route: 'POST /fhir/Questionnaire/$questionnaire-package', path: '/fhir/Questionnaire/$questionnaire-package', seed: packageParams, type: FHIR_JSON },
  { name: 'DTR $questionnaire-package (system level)', route: 'POST /fhir/$questionnaire-package', path: '/fhir/$questionnaire-package', seed: packageParams, type: FHIR_JSON },
  { name: 'DTR $next-question', route: 'POST /fhir/Questionnaire/$next-question', path: '/fhir/Questionnaire/$next-question', seed: nextQuestion, type: FHIR_JSON },
  { name: 'DTR $next-question (system level)', route: 'POST /fhir/$next-question', path: '/fhir/$next-question', seed: nextQuestion, type: FHIR_JSON },
  { name: 'DTR $log-questionnaire-errors', route: 'POST /fhir/Questionnaire/$log-questionnaire-errors', path: '/fhir/Questionnaire/$log-questionnaire-errors', seed: logReport, type: FHIR_JSON },
  { name: 'DTR ValueSet/$expand', route: 'POST /fhir/ValueSet/$expand', path: '/fhir/ValueSet/$expand', seed: expand, type: FHIR_JSON },
  { name: 'DTR ValueSet/{id}/$expand', route: 'POST /fhir/ValueSet/:id/$expand', path: '/fhir/ValueSet/b-all-snomed/$expand', seed: expand, type: FHIR_JSON },
  { name: 'DTR QuestionnaireResponse', route: 'POST /fhir/QuestionnaireResponse', path: '/fhir/QuestionnaireResponse', seed: qr, type: FHIR_JSON },
  { name: 'DTR QuestionnaireResponse update', route: 'PUT /fhir/QuestionnaireResponse/:id', method: 'PUT', path: '', seed: draft, type: FHIR_JSON },
  { name: 'PAS Claim/$submit', route: 'POST /fhir/Claim/$submit', path: '/fhir/Claim/$submit', seed: pasBundle, type: FHIR_JSON },
  { name: 'PAS Claim/$inquire', route: 'POST /fhir/Claim/$inquire', path: '/fhir/Claim/$inquire', seed: inquiry, type: FHIR_JSON },
  { name: 'PAS Subscription', route: 'POST /fhir/Subscription', path: '/fhir/Subscription', seed: subscription, type: FHIR_JSON },
  { name: 'PAS Subscription update', route: 'PUT /fhir/Subscription/:id', method: 'PUT', path: '', seed: subscription, type: FHIR_JSON },
  // The request is decided by the seed itself, so mutated decisions that pass validation meet a 409.
  { name: 'reviewer decision', route: 'POST /review/:id/decision', path: '', seed: decision, type: 'application/json' },
];

const STACK = /\bat [^\n]*\.(ts|js|mjs|cjs):\d+|node_modules|Error: .*\n\s+at /;

/** Sends one body and checks the properties every answer must have. */
const send = (app: Parameters<typeof request>[0], target: (typeof targets)[number], body: string) =>
  (target.method === 'PUT' ? request(app).put(target.path) : request(app).post(target.path))
    .set('Content-Type', target.type)
    .set('Authorization', `Bearer ${REVIEW_TOKEN}`)
    .send(body);

async function expectSane(app: Parameters<typeof request>[0], target: (typeof targets)[number], body: string) {
  const res = await send(app, target, body);
  expect(res.status, `${target.name} answered ${res.status} to ${body.slice(0, 300)}`).toBeLessThan(500);
  expect(res.text).not.toMatch(STACK);
  if (res.status >= 400) {
    expect(res.body?.resourceType, `${target.name} ${res.status} body`).toBe('OperationOutcome');
    expect(Array.isArray(res.body.issue)).toBe(true);
  }
}

describe('fuzz: no 5xx, no stack, bounded time, on every JSON edge', () => {
  const ehr = fakeEhr(all);
  const { app } = buildApp({ fetchImpl: ehr.fetchImpl, today: TODAY, env: { DEFAULT_PAYER: 'centene', REVIEW_TOKEN } });
  const target = (name: string) => targets.find((t) => t.name === name)!;

  beforeAll(async () => {
    const created = async (path: string, body: Json) => {
      const res = await request(app).post(path).set('Content-Type', FHIR_JSON).send(JSON.stringify(body));
      expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(201);
      return res.body as { id: string };
    };
    const saved = await created('/fhir/QuestionnaireResponse', draft);
    target('DTR QuestionnaireResponse update').path = `/fhir/QuestionnaireResponse/${saved.id}`;
    target('DTR QuestionnaireResponse update').seed = { ...(draft as object), id: saved.id } as Json;
    const sub = await created('/fhir/Subscription', subscription);
    target('PAS Subscription update').path = `/fhir/Subscription/${sub.id}`;
    target('PAS Subscription update').seed = { ...(subscription as object), id: sub.id } as Json;
    const filed = await request(app).post('/fhir/Claim/$submit').set('Content-Type', FHIR_JSON).send(JSON.stringify(storyBundle('centene-missing-mrd', { orderId: 'fuzz-review-order' })));
    expect(filed.status).toBe(200);
    target('reviewer decision').path = `/review/${(filed.body as { entry: { resource: { id: string } }[] }).entry[0].resource.id}/decision`;
  });

  it.each(targets.map((t) => [t.name, t] as const))('%s: the unmutated seed is answered 2xx', async (_name, target) => {
    const res = await send(app, target, JSON.stringify(target.seed));
    expect(res.status, JSON.stringify(res.body).slice(0, 400)).toBeLessThan(300);
  });

  it('has a target for every POST and PUT route that reads a JSON body (read from the route table)', () => {
    const routes = routeTable(app.router)
      .filter((e) => /^\/(cds-services|fhir|review)$/.test(e.mount) && typeof e.path === 'string' && e.path !== '/demo-sign-in')
      .flatMap((e) => e.methods.filter((m) => m === 'POST' || m === 'PUT').map((m) => `${m} ${e.mount}${String(e.path).replace(/\\(.)/g, '$1')}`));
    const covered = new Set(targets.map((t) => t.route));
    expect([...new Set(routes)].filter((r) => !covered.has(r))).toEqual([]);
  });

  it.each(targets.map((t) => [t.name, t] as const))('%s: mutated realistic bodies', async (_name, target) => {
    await fc.assert(
      fc.asyncProperty(fc.array(mutationArb, { minLength: 1, maxLength: 4 }), async (mutations) => {
        await expectSane(app, target, JSON.stringify(mutate(target.seed, mutations)));
      }),
      { numRuns: RUNS, seed: SEED },
    );
  }, 120_000);

  it.each(targets.map((t) => [t.name, t] as const))('%s: arbitrary JSON and non-JSON bodies', async (_name, target) => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
          fc.string({ unit: 'binary', maxLength: 200 }),
          fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v).slice(0, -1)),
        ),
        async (body) => {
          await expectSane(app, target, body);
        },
      ),
      { numRuns: Math.ceil(RUNS / 2), seed: SEED },
    );
  }, 120_000);
});
