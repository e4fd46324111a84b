import request from 'supertest';
import { beforeAll, describe, expect, it } from 'vitest';
import { coverageInformationProblems, COVERAGE_INFO_URL } from '../../src/coverage/coverage-information.js';
import { edgePatient, BIRTH_DATE, PATIENT_NAME } from '../fixtures/edge-patient.js';
import { requestListener } from '../../src/app.js';
import { ISS, buildApp, makeKeys, signFor } from '../helpers/app.js';
import type { TestKeys } from '../helpers/app.js';
import { fakeEhr, silentEhr } from '../helpers/fake-ehr.js';
import type { FetchLike } from '../../src/hooks/ehr-client.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { expectValidHookResponse } from '../helpers/response-checks.js';

const SIGN = '/cds-services/priorpath-order-sign';

describe('CDS Hooks edge', () => {
  let keys: TestKeys;
  beforeAll(async () => {
    keys = await makeKeys();
  });

  it('lists exactly the three contract services with their prefetch templates on discovery', async () => {
    const { app } = buildApp({ keys });
    const res = await request(app).get('/cds-services').expect(200);
    const ids = res.body.services.map((s: { id: string; hook: string }) => `${s.id}:${s.hook}`);
    expect(ids).toEqual(['priorpath-order-sign:order-sign', 'priorpath-order-select:order-select', 'priorpath-order-dispatch:order-dispatch']);
    const sign = res.body.services[0];
    expect(sign.prefetch).toEqual({
      patient: 'Patient/{{context.patientId}}',
      coverage: 'Coverage?patient={{context.patientId}}&status=active',
      user: '{{context.userId}}',
      conditions: 'Condition?patient={{context.patientId}}',
      observations: 'Observation?patient={{context.patientId}}',
      medications: 'MedicationRequest?patient={{context.patientId}}',
      immunizations: 'Immunization?patient={{context.patientId}}',
    });
    expect(res.body.services[2].prefetch.user).toBeUndefined();
    const codes = sign.extension['davinci-crd.configuration-options'].map((o: { code: string }) => o.code);
    expect(codes).toEqual(expect.arrayContaining(['coverage-info', 'max-cards']));
  });

  it('answers CORS preflights on service and feedback routes', async () => {
    const { app } = buildApp({ keys });
    for (const path of ['/cds-services', SIGN, `${SIGN}/feedback`]) {
      const res = await request(app).options(path).set('Origin', 'http://sandbox.example').set('Access-Control-Request-Method', 'POST').set('Access-Control-Request-Headers', 'authorization,content-type');
      expect(res.status).toBe(204);
      expect(res.headers['access-control-allow-origin']).toBe('*');
      expect(res.headers['access-control-allow-headers']).toMatch(/authorization/i);
    }
  });

  it("tells a preflight and a plain OPTIONS the methods each path serves, from the route table (DELETE of a Subscription too)", async () => {
    const { app } = buildApp({ keys });
    const preflight = (path: string, method: string) =>
      request(app).options(path).set('Origin', 'http://ehr.example').set('Access-Control-Request-Method', method).set('Access-Control-Request-Headers', 'authorization,content-type');
    for (const [path, method, allow] of [
      ['/cds-services', 'GET', 'GET'],
      [SIGN, 'POST', 'POST'],
      [`${SIGN}/feedback`, 'POST', 'POST'],
      ['/fhir/Subscription/sub-7f3a', 'DELETE', 'GET, PUT, DELETE'],
      ['/fhir/Subscription', 'POST', 'POST, GET'],
      ['/fhir/QuestionnaireResponse/qr-1', 'PUT', 'GET, PUT'],
      ['/fhir/Questionnaire/$questionnaire-package', 'POST', 'POST'],
    ]) {
      const res = await preflight(path, method);
      expect(res.status, path).toBe(204);
      expect(res.headers['access-control-allow-origin'], path).toBe('*');
      expect(res.headers['access-control-allow-methods'], path).toBe(allow);
      expect(res.headers.allow, path).toBe(allow);
      const plain = await request(app).options(path);
      expect(plain.status, path).toBe(204);
      expect(plain.headers.allow, path).toBe(allow);
    }
    // A path no route serves is not answered as if it were.
    expect((await preflight('/cds-services/no-such-service', 'POST')).status).toBe(404);
  });

  it('lets a browser client read the headers it acts on: WWW-Authenticate of a 401/403, Retry-After of a 503', async () => {
    const { app } = buildApp({ keys, env: { PAYER_API_AUTH: 'required' } });
    // A cross-origin script sees only the CORS-safelisted headers and those the answer exposes (Fetch §CORS protocol).
    const exposed = (res: { headers: Record<string, string> }) => String(res.headers['access-control-expose-headers']).toLowerCase().split(/\s*,\s*/);
    const hook = await request(app).post(SIGN).set('Origin', 'https://ehr.example.org').send({});
    expect(hook.status).toBe(401);
    expect(hook.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(exposed(hook)).toEqual(expect.arrayContaining(['www-authenticate', 'retry-after', 'location']));
    const payer = await request(app).get('/fhir/Questionnaire/centene-blinatumomab').set('Origin', 'https://dtr.example.org');
    expect(payer.status).toBe(401);
    expect(payer.headers['access-control-allow-origin']).toBe('*');
    expect(exposed(payer)).toEqual(expect.arrayContaining(['www-authenticate', 'retry-after']));
  });

  it('returns 404 with an OperationOutcome for an unknown service', async () => {
    const { app } = buildApp({ keys });
    const res = await request(app).post('/cds-services/no-such-service').send({});
    expect(res.status).toBe(404);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });

  it('returns 405 with Allow for the wrong method', async () => {
    const { app } = buildApp({ keys });
    const a = await request(app).get(SIGN);
    expect(a.status).toBe(405);
    expect(a.headers.allow).toBe('POST');
    expect(a.body.resourceType).toBe('OperationOutcome');
    const b = await request(app).delete('/cds-services');
    expect(b.status).toBe(405);
    expect(b.headers.allow).toBe('GET');
  });

  it('returns the same 401 OperationOutcome without a JWT and for a token signed for another service', async () => {
    const { app } = buildApp({ keys });
    const { resources, order } = edgePatient();
    const none = await request(app).post(SIGN).send(orderSignRequest(resources, order));
    const wrongAud = await request(app)
      .post(SIGN)
      .set('Authorization', `Bearer ${await signFor(keys, '/cds-services/priorpath-order-select')}`)
      .send(orderSignRequest(resources, order));
    for (const res of [none, wrongAud]) {
      expect(res.status).toBe(401);
      expect(res.body).toEqual(none.body);
      expect(res.body.resourceType).toBe('OperationOutcome');
    }
  });

  it('accepts a valid ES384 JWT and answers with the coverage-information system action', async () => {
    const { app, storage } = buildApp({ keys });
    const { resources, order } = edgePatient();
    const res = await request(app).post(SIGN).set('Authorization', `Bearer ${await signFor(keys, SIGN)}`).send(orderSignRequest(resources, order));
    expect(res.status).toBe(200);
    expectValidHookResponse(res.body, 'order-sign');
    expect(storage.audit.at(-1)?.clientIss).toBe('https://ehr.example.org');
  });

  it('refuses a replayed JWT', async () => {
    const { app } = buildApp({ keys });
    const { resources, order } = edgePatient();
    const token = await signFor(keys, SIGN);
    await request(app).post(SIGN).set('Authorization', `Bearer ${token}`).send(orderSignRequest(resources, order)).expect(200);
    await request(app).post(SIGN).set('Authorization', `Bearer ${token}`).send(orderSignRequest(resources, order)).expect(401);
  });

  it('records the JWT id in storage, so another replica sharing it refuses the replay', async () => {
    const { app, storage } = buildApp({ keys });
    const { app: replica } = buildApp({ keys, storage });
    const { resources, order } = edgePatient();
    const token = await signFor(keys, SIGN);
    await request(app).post(SIGN).set('Authorization', `Bearer ${token}`).send(orderSignRequest(resources, order)).expect(200);
    expect(storage.jtis.size).toBe(1);
    await request(replica).post(SIGN).set('Authorization', `Bearer ${token}`).send(orderSignRequest(resources, order)).expect(401);
  });

  it('accepts one JWT for several hook calls only with CDS_JTI_REPLAY=allow, still checking its audience', async () => {
    const { app } = buildApp({ keys, env: { CDS_JTI_REPLAY: 'allow' } });
    const { resources, order } = edgePatient();
    const token = await signFor(keys, SIGN);
    for (let i = 0; i < 3; i++) await request(app).post(SIGN).set('Authorization', `Bearer ${token}`).send(orderSignRequest(resources, order)).expect(200);
    await request(app).post('/cds-services/priorpath-order-select').set('Authorization', `Bearer ${token}`).send(orderSignRequest(resources, order)).expect(401);
  });

  it('answers 503 (not 401, not 500) when the replay record cannot be reached', async () => {
    const { app, storage } = buildApp({ keys });
    storage.recordJti = () => Promise.reject(new Error('connection refused'));
    const { resources, order } = edgePatient();
    const res = await request(app).post(SIGN).set('Authorization', `Bearer ${await signFor(keys, SIGN)}`).send(orderSignRequest(resources, order));
    expect(res.status).toBe(503);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0].code).toBe('transient');
  });

  describe('bad input', () => {
    const post = (body: string | object, type = 'application/json') => {
      const { app } = buildApp();
      return request(app).post(SIGN).set('Content-Type', type).send(typeof body === 'string' ? body : JSON.stringify(body));
    };

    it('returns 415 for a body that is not JSON', async () => {
      const res = await post('hook=order-sign', 'application/x-www-form-urlencoded');
      expect(res.status).toBe(415);
      expect(res.body.resourceType).toBe('OperationOutcome');
    });

    it('returns 400 for malformed JSON naming the position, a truncated body too, on every edge that reads JSON', async () => {
      const { app } = buildApp();
      const truncated = '{"resourceType": "Bundle", "type": "collection",';
      for (const [path, body, at] of [
        [SIGN, '{"hook": "order-sign",', 22],
        [SIGN, '{bad', 1],
        ['/fhir/Claim/$submit', truncated, truncated.length],
        ['/fhir/Claim/$inquire', truncated, truncated.length],
        ['/fhir/QuestionnaireResponse', '{"resourceType": "QuestionnaireResponse"', 40],
        ['/fhir/Questionnaire/$questionnaire-package', '{"resourceType": "Parameters", "parameter": [', 45],
      ] as const) {
        const res = await request(app).post(path).set('Content-Type', 'application/fhir+json').send(body);
        expect(res.status, path).toBe(400);
        expect(res.body.issue[0].diagnostics, path).toMatch(new RegExp(`^Malformed JSON at position ${at}\\b`));
      }
    });

    it('returns 400 for JSON nested deeper than 64 levels', async () => {
      const res = await post(`${'['.repeat(100)}${']'.repeat(100)}`);
      expect(res.status).toBe(400);
      expect(res.body.issue[0].diagnostics).toMatch(/64/);
    });

    it('returns 400 naming context when context is missing', async () => {
      const res = await post({ hook: 'order-sign', hookInstance: 'a0b1c2d3-0000-4000-8000-000000000001' });
      expect(res.status).toBe(400);
      expect(res.body.issue[0].diagnostics).toMatch(/context/);
    });

    it('returns 400 for wrong types', async () => {
      const res = await post({ hook: 'order-sign', hookInstance: 42, context: { patientId: 'p', draftOrders: { resourceType: 'Bundle' } } });
      expect(res.status).toBe(400);
      expect(res.body.issue[0].expression).toEqual(['hookInstance']);
    });

    it('returns 400 when the hook does not match the service', async () => {
      const res = await post({ hook: 'order-select', hookInstance: 'x', context: { patientId: 'p', draftOrders: { resourceType: 'Bundle' } } });
      expect(res.status).toBe(400);
    });

    it("returns 400 naming where it is when a draft order or prefetched resource is about another patient (never that patient's evidence)", async () => {
      const { resources, order } = edgePatient();
      type Body = { context: { draftOrders: { entry: { resource: { subject?: { reference: string } } }[] } }; prefetch: Record<string, { entry?: { resource: { resourceType: string; subject?: { reference: string } } }[] }> };
      const body = () => structuredClone(orderSignRequest(resources, order)) as unknown as Body;
      const otherObservation = body();
      otherObservation.prefetch.observations.entry!.find((e) => e.resource.resourceType === 'Observation')!.resource.subject = { reference: 'http://ehr.example.org/fhir/Patient/edge-pt-sibling' };
      const res = await post(otherObservation);
      expect(res.status).toBe(400);
      expect(res.body.issue[0].expression).toEqual(['prefetch.observations']);
      const otherOrder = body();
      otherOrder.context.draftOrders.entry[0].resource.subject = { reference: 'Patient/edge-pt-sibling' };
      expect((await post(otherOrder)).body.issue[0].expression).toEqual(['context.draftOrders']);
      // The same patient named by an absolute or versioned reference is this patient.
      const same = body();
      same.context.draftOrders.entry[0].resource.subject = { reference: 'http://ehr.example.org/fhir/Patient/edge-pt/_history/3' };
      expect((await post(same)).status).toBe(200);
    });

    it('returns 413 for a 5 MiB body, with and without Content-Length, and stays up', async () => {
      const { app } = buildApp();
      const big = JSON.stringify({ hook: 'order-sign', pad: 'x'.repeat(5 * 1024 * 1024) });
      const withLength = await request(app).post(SIGN).set('Content-Type', 'application/json').send(big);
      expect(withLength.status).toBe(413);
      expect(withLength.body.resourceType).toBe('OperationOutcome');
      const server = app.listen(0);
      try {
        const port = (server.address() as { port: number }).port;
        const chunked = await fetch(`http://127.0.0.1:${port}${SIGN}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: new ReadableStream({
            start(controller) {
              for (let i = 0; i < 5; i++) controller.enqueue(new TextEncoder().encode('x'.repeat(1024 * 1024)));
              controller.close();
            },
          }),
          duplex: 'half',
        } as RequestInit);
        expect(chunked.status).toBe(413);
        const alive = await fetch(`http://127.0.0.1:${port}/healthz`);
        expect(alive.status).toBe(200);
      } finally {
        server.close();
      }
    });
  });

  describe('prefetch', () => {
    it('returns 412 when coverage prefetch is missing and there is no fhirServer', async () => {
      const { app } = buildApp();
      const { resources, order } = edgePatient();
      const body = orderSignRequest(resources, order) as { prefetch: Record<string, unknown>; fhirServer?: string; fhirAuthorization?: unknown };
      delete body.prefetch.coverage;
      delete body.fhirServer;
      delete body.fhirAuthorization;
      const res = await request(app).post(SIGN).send(body);
      expect(res.status).toBe(412);
      expect(res.body.issue[0].expression).toEqual(['prefetch.coverage']);
    });

    it('queries the EHR with the access token for prefetch given as null or OperationOutcome', async () => {
      const { resources: withId, order } = edgePatient();
      // The Coverage names its payer only by reference here, so the Organization is read from the EHR too.
      const resources = withId.map((r) => (r.resourceType === 'Coverage' ? { ...r, payor: [{ reference: 'Organization/payer-centene' }] } : r));
      const ehr = fakeEhr(resources);
      const { app } = buildApp({ fetchImpl: ehr.fetchImpl, env: { CDS_AUTH: 'open', SANDBOX: 'off', NODE_ENV: 'development' } });
      const body = orderSignRequest(resources, order) as { prefetch: Record<string, unknown> };
      body.prefetch.conditions = null;
      body.prefetch.coverage = { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception' }] };
      const res = await request(app).post(SIGN).send(body);
      expect(res.status).toBe(200);
      expect(ehr.calls.map((c) => c.url).sort()).toEqual(['http://ehr.example.org/fhir/Condition?patient=edge-pt', 'http://ehr.example.org/fhir/Coverage?patient=edge-pt&status=active', 'http://ehr.example.org/fhir/Organization/payer-centene']);
      expect(ehr.calls.every((c) => c.auth === 'Bearer ehr-token-1')).toBe(true);
      expectValidHookResponse(res.body, 'order-sign');
    });

    it('returns 412 when the payor Organization cannot be read from the EHR, and 400 when the EHR has no such Organization', async () => {
      const { resources: withId, order } = edgePatient();
      const resources = withId.map((r) => (r.resourceType === 'Coverage' ? { ...r, payor: [{ reference: 'Organization/payer-centene' }] } : r));
      const withoutOrg = resources.filter((r) => r.resourceType !== 'Organization');
      const ehr = fakeEhr(withoutOrg);
      const failing: FetchLike = (url, init) => (url.includes('/Organization/') ? Promise.resolve(new Response('upstream down', { status: 503 })) : ehr.fetchImpl(url, init));
      const body = orderSignRequest(withoutOrg, order) as { prefetch: Record<string, unknown> };
      const down = buildApp({ fetchImpl: failing, env: { CDS_AUTH: 'open', SANDBOX: 'off', NODE_ENV: 'development' } });
      const res = await request(down.app).post(SIGN).send(body);
      expect(res.status).toBe(412);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(res.body.issue[0].expression).toEqual(['prefetch.coverage.payor']);
      // The EHR answered: no such Organization, so the Coverage names no payer PriorPath serves.
      const missing = buildApp({ fetchImpl: ehr.fetchImpl, env: { CDS_AUTH: 'open', SANDBOX: 'off', NODE_ENV: 'development' } });
      const res404 = await request(missing.app).post(SIGN).send(body);
      expect(res404.status).toBe(400);
      expect(res404.body.issue[0].expression).toEqual(['prefetch.coverage.payor']);
    });

    it('returns 412 naming the prefetch key when the EHR never answers, having cut off the hung EHR request at EHR_TIMEOUT_MS', async () => {
      const { resources, order } = edgePatient();
      const ehr = silentEhr();
      const { app } = buildApp({ fetchImpl: ehr.fetchImpl, env: { EHR_TIMEOUT_MS: '50' } });
      const body = orderSignRequest(resources, order) as { prefetch: Record<string, unknown> };
      delete body.prefetch.observations;
      const res = await request(app).post(SIGN).send(body);
      expect(res.status).toBe(412);
      expect(res.body.issue[0].expression).toEqual(['prefetch.observations']);
      expect(res.body.issue[0].diagnostics).toMatch(/could not be fetched from the EHR/);
      // The request to the EHR was aborted by its own timeout signal, not left open behind the 412.
      expect(ehr.calls.map((c) => new URL(c.url).pathname)).toEqual(['/fhir/Observation']);
      expect(ehr.calls.map((c) => c.abortedBy)).toEqual(['TimeoutError']);
    });
  });

  it('refuses a call with more governed orders than it can answer in time (400 too-costly naming context.draftOrders), and answers one at the bound', async () => {
    const { app } = buildApp();
    const { resources, order } = edgePatient();
    const withOrders = (n: number) => {
      const body = orderSignRequest(resources, order) as { context: { draftOrders: { entry: { resource: unknown }[] } } };
      body.context.draftOrders.entry = Array.from({ length: n }, (_, i) => ({ resource: { ...order, id: `${order.id}-${i}` } }));
      return body;
    };
    const over = await request(app).post(SIGN).send(withOrders(21));
    expect(over.status).toBe(400);
    expect(over.body.issue[0]).toMatchObject({ code: 'too-costly', expression: ['context.draftOrders'] });
    const at = await request(app).post(SIGN).send(withOrders(20)).expect(200);
    expect(at.body.systemActions).toHaveLength(20);
  });

  describe('payer identification', () => {
    it('returns 400 when no Coverage is active', async () => {
      const { app } = buildApp();
      const { resources, order } = edgePatient();
      const res = await request(app).post(SIGN).send(orderSignRequest(resources.filter((r) => r.resourceType !== 'Coverage'), order));
      expect(res.status).toBe(400);
      expect(res.body.issue[0].diagnostics).toMatch(/No active Coverage/);
    });

    it('counts a payer problem as the 400 it was answered, in the hook histogram and the audit line, not as a 500', async () => {
      const { app, storage } = buildApp();
      const { resources, order } = edgePatient();
      await request(app).post(SIGN).send(orderSignRequest(resources.filter((r) => r.resourceType !== 'Coverage'), order)).expect(400);
      const m = await request(app).get('/metrics').expect(200);
      expect(m.text).toMatch(/priorpath_hook_duration_seconds_count\{[^}]*outcome="http-400"[^}]*\} 1/);
      expect(m.text).not.toMatch(/outcome="http-500"/);
      const audit = await storage.listAudit();
      expect(audit.map((a) => [a.status, a.outcome])).toEqual([[400, 'http-400']]);
    });

    it('counts and audits every hook refused before the handler with the status it was answered, on both paths', async () => {
      const { resources, order } = edgePatient();
      const json = JSON.stringify(orderSignRequest(resources, order));
      for (const direct of [false, true]) {
        const { app, storage } = buildApp({ keys });
        const target = direct ? requestListener(app) : app;
        const token = async () => `Bearer ${await signFor(keys, SIGN)}`;
        await request(target).post(SIGN).set('Content-Type', 'application/json').send(json).expect(401);
        await request(target).post(SIGN).set('Authorization', 'Bearer not.a.jwt').set('Content-Type', 'application/json').send(json).expect(401);
        await request(target).post(SIGN).set('Authorization', await token()).set('Content-Type', 'text/plain').send(json).expect(415);
        await request(target).post(SIGN).set('Authorization', await token()).set('Content-Type', 'application/json').send(`{"pad":"${'x'.repeat(1_150_000)}"}`).expect(413);
        await request(target).post(SIGN).set('Authorization', await token()).set('Content-Type', 'application/json').send('{bad').expect(400);
        const m = await request(app).get('/metrics').expect(200);
        for (const [status, n] of [['401', 2], ['415', 1], ['413', 1], ['400', 1]] as const) {
          expect(m.text, `direct ${direct}`).toMatch(new RegExp(`priorpath_hook_duration_seconds_count\\{[^}]*outcome="http-${status}"[^}]*\\} ${n}\\n`));
        }
        const audit = (await storage.listAudit()).map((a) => [a.service, a.status, a.outcome, a.hookInstance, a.patientIdHash, a.clientIss ?? null]).sort();
        expect(audit, `direct ${direct}`).toEqual(
          [
            ['priorpath-order-sign', 401, 'http-401', '', '', null],
            ['priorpath-order-sign', 401, 'http-401', '', '', null],
            ['priorpath-order-sign', 415, 'http-415', '', '', ISS],
            ['priorpath-order-sign', 413, 'http-413', '', '', ISS],
            ['priorpath-order-sign', 400, 'http-400', '', '', ISS],
          ].sort(),
        );
      }
    });

    it('returns 400 for a Coverage still marked active whose period ended before today, naming its end; one ending today or later is in force', async () => {
      const { app } = buildApp();
      const { resources, order } = edgePatient();
      const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
      const withPeriod = (end: string) => resources.map((r) => (r.resourceType === 'Coverage' ? { ...r, period: { start: '2020-01-01', end } } : r));
      const lapsed = await request(app).post(SIGN).send(orderSignRequest(withPeriod(day(-400)), order));
      expect(lapsed.status).toBe(400);
      expect(lapsed.body.issue[0].diagnostics).toMatch(new RegExp(`No active Coverage.*ended on ${day(-400)}`));
      expect(JSON.stringify(lapsed.body)).not.toMatch(/PA-/);
      await request(app).post(SIGN).send(orderSignRequest(withPeriod(day(1)), order)).expect(200);
    });

    it('returns 400 for a Coverage marked active whose period has not begun, naming its start; one begun by the order date is in force', async () => {
      const { app } = buildApp();
      const { resources, order } = edgePatient();
      const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
      const from = (start: string) => resources.map((r) => (r.resourceType === 'Coverage' ? { ...r, period: { start } } : r));
      const future = await request(app).post(SIGN).send(orderSignRequest(from(day(180)), order));
      expect(future.status).toBe(400);
      expect(future.body.issue[0].diagnostics).toMatch(new RegExp(`No active Coverage.*begins on ${day(180)}`));
      expect(JSON.stringify(future.body)).not.toMatch(/PA-/);
      // The Coverage is judged on the order date (design.md §4 "Payer", §6): the order's planned start, here before
      // today; an order planned to start today is in force under a Coverage begun today.
      const plannedStart = order.dosageInstruction![0].timing!.repeat!.boundsPeriod!.start!;
      await request(app).post(SIGN).send(orderSignRequest(from(plannedStart), order)).expect(200);
      const startingToday = { ...order, dosageInstruction: order.dosageInstruction!.map((i) => ({ ...i, timing: { repeat: { boundsPeriod: { start: day(0) } } } })) };
      await request(app).post(SIGN).send(orderSignRequest(from(day(0)), startingToday)).expect(200);
    });

    it('returns 400 for a Coverage that names two payers PriorPath serves (payor identifier and its Organization, or two payors), rather than picking one', async () => {
      const { app } = buildApp();
      const { resources, order } = edgePatient();
      const system = 'https://priorpath.dev/fhir/sid/payer';
      const withPayors = (coverage: Record<string, unknown>) => resources.map((r) => (r.resourceType === 'Coverage' ? { ...r, ...coverage } : r));
      const viaOrg = withPayors({
        contained: [{ resourceType: 'Organization', id: 'plan', identifier: [{ system, value: 'centene' }], name: 'Ambetter from Home State Health' }],
        payor: [{ reference: '#plan', identifier: { system, value: 'bcbsnc' } }],
      });
      const two = withPayors({ payor: [{ identifier: { system, value: 'centene' } }, { identifier: { system, value: 'bcbsnc' } }] });
      for (const rs of [viaOrg, two]) {
        const res = await request(app).post(SIGN).send(orderSignRequest(rs, order));
        expect(res.status).toBe(400);
        expect(res.body.issue[0].diagnostics).toMatch(/names more than one payer PriorPath serves \((centene, bcbsnc|bcbsnc, centene)\)/);
      }
      // The same payer named both ways is one payer.
      const same = withPayors({
        contained: [{ resourceType: 'Organization', id: 'plan', identifier: [{ system, value: 'centene' }], name: 'Ambetter from Home State Health' }],
        payor: [{ reference: '#plan', identifier: { system, value: 'centene' } }],
      });
      await request(app).post(SIGN).send(orderSignRequest(same, order)).expect(200);
    });

    it('returns 400 for several active Coverages', async () => {
      const { app } = buildApp();
      const { resources, order } = edgePatient();
      const second = { ...resources.find((r) => r.resourceType === 'Coverage')!, id: 'edge-cov-2' };
      const res = await request(app).post(SIGN).send(orderSignRequest([...resources, second], order));
      expect(res.status).toBe(400);
    });

    it('returns 400 for an unknown payer, and uses DEFAULT_PAYER when set', async () => {
      const { resources, order } = edgePatient('acme-health');
      const strict = await request(buildApp().app).post(SIGN).send(orderSignRequest(resources, order));
      expect(strict.status).toBe(400);
      const lenient = await request(buildApp({ env: { CDS_AUTH: 'open', DEFAULT_PAYER: 'example' } }).app).post(SIGN).send(orderSignRequest(resources, order));
      expect(lenient.status).toBe(200);
      const ext = lenient.body.systemActions[0].resource.extension.find((e: { url: string }) => e.url === COVERAGE_INFO_URL);
      expect(ext.extension.find((s: { url: string }) => s.url === 'covered').valueCode).toBe('covered');
      expect(ext.extension.find((s: { url: string }) => s.url === 'pa-needed').valueCode).toBe('no-auth');
      expect(coverageInformationProblems(ext)).toEqual([]);
    });
  });

  it('never writes the patient name or birth date to the log', async () => {
    const { app, lines } = buildApp({ env: { CDS_AUTH: 'open', LOG_LEVEL: 'trace' } });
    const { resources, order } = edgePatient();
    await request(app).post(SIGN).send(orderSignRequest(resources, order)).expect(200);
    await request(app).post(SIGN).send({ ...orderSignRequest(resources, order), context: 'broken' }).expect(400);
    const log = lines.join('');
    expect(log).toContain('decision');
    expect(log).not.toContain(PATIENT_NAME);
    expect(log).not.toContain('Quintanilla');
    expect(log).not.toContain(BIRTH_DATE);
  });

  it('records feedback idempotently and rejects feedback without outcome', async () => {
    const { app, storage } = buildApp();
    const fb = { feedback: [{ card: '0b5b1a43-5f7e-4d43-9d3a-2c7f7f0f1a11', outcome: 'overridden', outcomeTimestamp: '2026-11-23T10:00:00Z' }] };
    await request(app).post(`${SIGN}/feedback`).send(fb).expect(200);
    await request(app).post(`${SIGN}/feedback`).send(fb).expect(200);
    expect(storage.feedback.size).toBe(1);
    const bad = await request(app).post(`${SIGN}/feedback`).send({ feedback: [{ card: 'x' }] });
    expect(bad.status).toBe(400);
    expect(bad.body.resourceType).toBe('OperationOutcome');
    // cds-fb-3: an override reason says something (a coded reason or the user's comment); nothing of it is stored.
    const empty = await request(app)
      .post(`${SIGN}/feedback`)
      .send({ feedback: [{ card: '7d2e4c1a-9b3f-4e6a-8c5d-1f0a2b3c4d5e', outcome: 'overridden', outcomeTimestamp: '2026-11-23T10:05:00Z', overrideReason: {} }] });
    expect(empty.status).toBe(400);
    expect(empty.body.issue[0].expression).toEqual(['feedback.0.overrideReason']);
    expect(storage.feedback.size).toBe(1);
  });

  it('requires a JWT on feedback, whose aud is the feedback URL or the service endpoint (CDS Hooks 2.0 aud), never another service', async () => {
    const { app, storage } = buildApp({ keys });
    const fb = { feedback: [{ card: '3f1c2a9e-7b7d-4f4e-9a51-2b8e0c6d5a10', outcome: 'overridden', outcomeTimestamp: '2026-11-23T10:00:00Z' }] };
    expect((await request(app).post(`${SIGN}/feedback`).send(fb)).status).toBe(401);
    await request(app).post(`${SIGN}/feedback`).set('Authorization', `Bearer ${await signFor(keys, `${SIGN}/feedback`)}`).send(fb).expect(200);
    await request(app).post(`${SIGN}/feedback`).set('Authorization', `Bearer ${await signFor(keys, SIGN)}`).send(fb).expect(200);
    const other = await request(app).post(`${SIGN}/feedback`).set('Authorization', `Bearer ${await signFor(keys, '/cds-services/priorpath-order-select')}`).send(fb);
    expect(other.status).toBe(401);
    expect(other.body.resourceType).toBe('OperationOutcome');
    expect(storage.feedback.size).toBe(1);
  });

  it('serves health, readiness and Prometheus metrics with the hook histogram', async () => {
    const { app } = buildApp();
    const { resources, order } = edgePatient();
    await request(app).post(SIGN).send(orderSignRequest(resources, order)).expect(200);
    await request(app).get('/healthz').expect(200);
    const ready = await request(app).get('/readyz').expect(200);
    expect(ready.body.status).toBe('ready');
    const m = await request(app).get('/metrics').expect(200);
    expect(m.text).toMatch(/priorpath_hook_duration_seconds_bucket\{[^}]*service="priorpath-order-sign"/);
  });
});
