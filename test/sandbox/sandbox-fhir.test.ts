import { join } from 'node:path';
import express from 'express';
import type { Bundle, Coverage, OperationOutcome, Patient, QuestionnaireResponse, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadIntoFhir } from '../../src/sandbox/load-into-fhir.js';
import { createSandboxFhir, loadSandboxBundles, normalizeReferenceParams } from '../../src/sandbox/sandbox-fhir.js';
import type { SandboxFhir } from '../../src/sandbox/sandbox-fhir.js';
import { ensureBaseDefinitions } from '../../src/sandbox/definitions.js';

const sandboxDir = join(import.meta.dirname, '..', '..', 'sandbox');
const TODAY = '2026-11-16';
const bundles = loadSandboxBundles(sandboxDir, { today: TODAY });
const resourcesOf = (b: Bundle) => (b.entry ?? []).map((e) => e.resource as Resource);
const story = (id: string) => bundles.find((b) => b.id === id)!;
const count = (id: string, type: string) => resourcesOf(story(id)).filter((r) => r.resourceType === type).length;

/** Where the protocol checks run: the embedded router on a bare Express app, or an external server (HAPI). */
interface Target {
  agent: () => ReturnType<typeof request>;
  /** path prefix of the FHIR base on that agent */
  base: string;
}

/**
 * What the CDS Hooks Sandbox, the DTR app and PriorPath's CRD prefetch need from an EHR FHIR server
 * (design.md §4 "What the EHR's FHIR server must answer"). Runs against the embedded server and, when FHIR_SANDBOX_URL is set,
 * against that server with the stories loaded into it.
 */
function protocolSuite(getTarget: () => Target) {
  const get = (path: string, accept = 'application/fhir+json') => {
    const t = getTarget();
    return t.agent().get(`${t.base}${path}`).set('Accept', accept);
  };

  it('answers metadata with an R4 CapabilityStatement', async () => {
    const res = await get('/metadata');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/fhir\+json/);
    expect(res.body.resourceType).toBe('CapabilityStatement');
    expect(res.body.fhirVersion).toBe('4.0.1');
  });

  it.each(['application/json+fhir', 'application/fhir+json', 'application/json', '*/*'])(
    'never answers 406 (Accept: %s)',
    async (accept) => {
      const res = await get('/Patient/centene-mrd-positive', accept);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/json/);
      expect(JSON.parse(res.text).id).toBe('centene-mrd-positive');
    },
  );

  it('reads a story patient', async () => {
    const res = await get('/Patient/ohsu-infant-kmt2a');
    expect(res.status).toBe(200);
    const p = res.body as Patient;
    expect(p.resourceType).toBe('Patient');
    expect(p.birthDate).toBe('2026-07-12');
  });

  it('answers an unknown id with 404 and an OperationOutcome', async () => {
    const res = await get('/Patient/no-such-patient-anywhere');
    expect(res.status).toBe(404);
    expect((JSON.parse(res.text) as OperationOutcome).resourceType).toBe('OperationOutcome');
  });

  it.each(bundles.map((b) => b.id!))('Coverage?patient=%s&status=active finds exactly one', async (id) => {
    const res = await get(`/Coverage?patient=${id}&status=active`);
    expect(res.status).toBe(200);
    const b = res.body as Bundle<Coverage>;
    expect(b.type).toBe('searchset');
    expect(b.entry?.map((e) => e.resource?.id)).toEqual([`${id}-coverage`]);
    expect(b.entry?.[0].fullUrl).toMatch(new RegExp(`/Coverage/${id}-coverage$`));
  });

  it.each(['Condition', 'Observation', 'MedicationRequest', 'Immunization'])(
    'searches %s by patient (bare id and Patient/id)',
    async (type) => {
      for (const id of ['ohsu-infant-kmt2a', 'centene-pediatric-consolidation', 'ohsu-live-vaccine']) {
        for (const value of [id, `Patient/${id}`]) {
          const res = await get(`/${type}?patient=${encodeURIComponent(value)}&_count=100`);
          expect(res.status).toBe(200);
          expect((res.body as Bundle).entry?.length ?? 0, `${type}?patient=${value}`).toBe(count(id, type));
        }
      }
    },
  );

  it('searches by _id', async () => {
    const res = await get('/Patient?_id=bcbsnc-t-all');
    expect(res.status).toBe(200);
    expect((res.body as Bundle).entry?.map((e) => e.resource?.id)).toEqual(['bcbsnc-t-all']);
  });

  it('searches with POST _search (form-urlencoded), as the CDS Hooks Sandbox does', async () => {
    const t = getTarget();
    const res = await t
      .agent()
      .post(`${t.base}/Observation/_search`)
      .set('Accept', 'application/json+fhir')
      .type('form')
      .send({ patient: 'centene-mrd-positive', _count: '100' });
    expect(res.status).toBe(200);
    const b = JSON.parse(res.text) as Bundle;
    expect(b.entry?.length).toBe(count('centene-mrd-positive', 'Observation'));
  });

  it('creates a QuestionnaireResponse and reads it back', async () => {
    const t = getTarget();
    const qr: QuestionnaireResponse = {
      resourceType: 'QuestionnaireResponse',
      status: 'completed',
      questionnaire: 'https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11',
      subject: { reference: 'Patient/centene-missing-mrd' },
      authored: '2026-11-16T12:00:00Z',
      item: [{ linkId: 'mrd-percent', answer: [{ valueDecimal: 0.3 }] }],
    };
    const created = await t
      .agent()
      .post(`${t.base}/QuestionnaireResponse`)
      .set('Content-Type', 'application/fhir+json')
      .send(JSON.stringify(qr));
    expect(created.status).toBe(201);
    const id = (JSON.parse(created.text) as QuestionnaireResponse).id;
    expect(id).toBeTruthy();
    expect(created.headers.location).toMatch(new RegExp(`/QuestionnaireResponse/${id}`));
    const read = await get(`/QuestionnaireResponse/${id}`);
    expect(read.status).toBe(200);
    expect(read.body.item[0].answer[0].valueDecimal).toBe(0.3);
  });

  it('answers a CORS preflight', async () => {
    const t = getTarget();
    const res = await t
      .agent()
      .options(`${t.base}/Patient/centene-mrd-positive`)
      .set('Origin', 'http://sandbox.cds-hooks.example')
      .set('Access-Control-Request-Method', 'GET')
      .set('Access-Control-Request-Headers', 'authorization, accept');
    expect(res.status).toBeLessThan(300);
    expect(res.headers['access-control-allow-origin']).toMatch(/^(\*|http:\/\/sandbox\.cds-hooks\.example)$/);
    expect(res.headers['access-control-allow-methods']).toMatch(/GET/);
    expect(res.headers['access-control-allow-headers']?.toLowerCase()).toMatch(/authorization/);
  });
}

describe('embedded sandbox FHIR server', () => {
  let sandbox: SandboxFhir;
  let app: express.Express;
  const target: Target = { agent: () => request(app), base: '/sandbox/fhir' };

  beforeAll(async () => {
    sandbox = await createSandboxFhir({ bundles });
    app = express();
    app.use('/sandbox/fhir', sandbox.router);
    console.log(`sandbox start-up: ${JSON.stringify(sandbox.startup)}`);
  });

  describe('protocol', () => protocolSuite(() => target));

  // How fast it starts is the bench's to measure (bench/run-bench.ts, start to ready with SANDBOX=on), not a test's.
  it('loads every resource of every story at start-up', () => {
    expect(sandbox.startup.resources).toBe(bundles.reduce((n, b) => n + resourcesOf(b).length, 0));
  });

  it('serves application/fhir+json with CORS on every answer, errors included', async () => {
    for (const path of ['/metadata', '/Patient/centene-mrd-positive', '/Patient/missing', '/Nonsense/1']) {
      const res = await request(app).get(`/sandbox/fhir${path}`);
      expect(res.headers['content-type']).toBe('application/fhir+json; charset=utf-8');
      expect(res.headers['access-control-allow-origin']).toBe('*');
    }
  });

  it('preflight allows Authorization, Content-Type, Accept and GET, POST, PUT, OPTIONS', async () => {
    const res = await request(app)
      .options('/sandbox/fhir/Coverage/_search')
      .set('Access-Control-Request-Method', 'POST');
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect(res.headers['access-control-allow-methods']).toBe('GET, POST, PUT, OPTIONS');
    expect(res.headers['access-control-allow-headers']).toMatch(/^Authorization, Content-Type, Accept\b/);
  });

  it('builds searchsets with fullUrls from the mount point, a self link, search modes and a next link', async () => {
    const res = await request(app)
      .get('/sandbox/fhir/Observation?patient=ohsu-infant-kmt2a&_count=3')
      .set('Host', 'ehr.example:8443');
    const b = res.body as Bundle;
    expect(b.total).toBe(count('ohsu-infant-kmt2a', 'Observation'));
    expect(b.entry).toHaveLength(3);
    expect(b.link?.find((l) => l.relation === 'self')?.url).toBe(
      'http://ehr.example:8443/sandbox/fhir/Observation?patient=ohsu-infant-kmt2a&_count=3',
    );
    expect(b.link?.find((l) => l.relation === 'next')?.url).toContain('_offset=3');
    for (const e of b.entry!) {
      expect(e.fullUrl).toBe(`http://ehr.example:8443/sandbox/fhir/Observation/${e.resource!.id}`);
      expect(e.search?.mode).toBe('match');
    }
    const next = await request(app).get(
      new URL(b.link!.find((l) => l.relation === 'next')!.url).pathname +
        '?' +
        new URL(b.link!.find((l) => l.relation === 'next')!.url).searchParams,
    );
    expect((next.body as Bundle).entry?.[0].resource?.id).not.toBe(b.entry![0].resource!.id);
  });

  it('returns everything when no _count is given (the prefetch is the whole record)', async () => {
    const res = await request(app).get('/sandbox/fhir/MedicationRequest?patient=ohsu-infant-kmt2a');
    expect((res.body as Bundle).entry).toHaveLength(count('ohsu-infant-kmt2a', 'MedicationRequest'));
  });

  it('includes the payer Organization with _include=Coverage:payor', async () => {
    const res = await request(app).get('/sandbox/fhir/Coverage?patient=mmm-ph-positive-tki&_include=Coverage:payor');
    const b = res.body as Bundle;
    expect(b.entry?.map((e) => [e.resource?.resourceType, e.search?.mode])).toEqual([
      ['Coverage', 'match'],
      ['Organization', 'include'],
    ]);
    expect(b.entry?.[1].resource?.id).toBe('payer-mmm');
  });

  it('finds the draft order and searches on common parameters', async () => {
    const q = async (path: string) =>
      ((await request(app).get(`/sandbox/fhir/${path}`)).body as Bundle).entry?.map((e) => e.resource?.id) ?? [];
    expect(await q('MedicationRequest?patient=centene-over-dose&status=draft')).toEqual(['centene-over-dose-order']);
    expect(await q('MedicationRequest?subject=Patient/centene-over-dose&intent=order&status=draft')).toEqual([
      'centene-over-dose-order',
    ]);
    expect(await q('Immunization?patient=ohsu-live-vaccine&vaccine-code=http://hl7.org/fhir/sid/cvx|37')).toEqual([
      'ohsu-live-vaccine-yellow-fever',
    ]);
    expect(
      await q('Observation?subject=centene-mrd-positive&code=https://priorpath.dev/fhir/CodeSystem/evidence|mrd'),
    ).toEqual(['centene-mrd-positive-mrd']);
    expect(await q('Condition?patient=bcbsnc-t-all&code=http://snomed.info/sct|277575008')).toEqual([
      'bcbsnc-t-all-dx',
    ]);
    expect(await q('Patient?family=Nakamura')).toEqual(['ohsu-infant-kmt2a']);
    expect(await q('Patient?name=daniela')).toEqual(['centene-mrd-positive']);
    expect((await q('PractitionerRole?specialty=2080P0207X')).sort()).toEqual([
      'centene-pediatric-consolidation-role',
      'ohsu-infant-kmt2a-role',
    ]);
    expect(await q('Organization?identifier=https://priorpath.dev/fhir/sid/payer|ohsu')).toEqual(['payer-ohsu']);
  });

  it('updates with PUT, answers a transaction, and reset() restores the seed data', async () => {
    const original = (await request(app).get('/sandbox/fhir/Patient/bcbsnc-t-all')).body as Patient;
    const changed = { ...original, telecom: [{ system: 'phone', value: '336-555-0199' }] };
    const put = await request(app)
      .put('/sandbox/fhir/Patient/bcbsnc-t-all')
      .set('Content-Type', 'application/json')
      .send(changed);
    expect(put.status).toBe(200);
    expect(put.headers.etag).toMatch(/^W\/"/);
    expect(((await request(app).get('/sandbox/fhir/Patient/bcbsnc-t-all')).body as Patient).telecom?.[0].value).toBe(
      '336-555-0199',
    );

    const tx = await request(app)
      .post('/sandbox/fhir')
      .set('Content-Type', 'application/fhir+json')
      .send(
        JSON.stringify({
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            {
              resource: {
                resourceType: 'Observation',
                id: 'bcbsnc-t-all-extra',
                status: 'final',
                code: { text: 'x' },
                subject: { reference: 'Patient/bcbsnc-t-all' },
              },
              request: { method: 'PUT', url: 'Observation/bcbsnc-t-all-extra' },
            },
          ],
        }),
      );
    expect(tx.status).toBe(200);
    expect((tx.body as Bundle).type).toBe('transaction-response');

    await sandbox.reset();
    expect(((await request(app).get('/sandbox/fhir/Patient/bcbsnc-t-all')).body as Patient).telecom?.[0].value).toBe(
      original.telecom?.[0].value,
    );
    expect((await request(app).get('/sandbox/fhir/Observation/bcbsnc-t-all-extra')).status).toBe(404);
  });

  it('answers errors as OperationOutcomes with the right status', async () => {
    const oo = (res: { status: number; text: string }, status: number) => {
      expect(res.status).toBe(status);
      expect((JSON.parse(res.text) as OperationOutcome).resourceType).toBe('OperationOutcome');
    };
    oo(await request(app).get('/sandbox/fhir/Nonsense/1'), 404);
    oo(await request(app).get('/sandbox/fhir/Nonsense?x=1'), 404);
    oo(await request(app).delete('/sandbox/fhir/Patient/bcbsnc-t-all'), 405);
    oo(await request(app).post('/sandbox/fhir/$graphql').send({}), 404);
    oo(await request(app).post('/sandbox/fhir/Patient').set('Content-Type', 'text/plain').send('hello'), 415);
    oo(
      await request(app).post('/sandbox/fhir/Patient').set('Content-Type', 'application/fhir+json').send('{ not json'),
      400,
    );
    oo(
      await request(app)
        .post('/sandbox/fhir/Patient')
        .set('Content-Type', 'application/fhir+json')
        .send(JSON.stringify({ resourceType: 'Observation' })),
      400,
    );
    oo(
      await request(app)
        .put('/sandbox/fhir/Patient/bcbsnc-t-all')
        .set('Content-Type', 'application/fhir+json')
        .send(JSON.stringify({ resourceType: 'Patient', id: 'other' })),
      400,
    );
    expect((await request(app).delete('/sandbox/fhir/Patient/x')).headers.allow).toBe('GET, HEAD, POST, PUT, OPTIONS');
  });

  it('uses the baseUrl option when given, and advertises SMART endpoints when configured', async () => {
    const other = await createSandboxFhir({
      bundles: [story('centene-mrd-positive')],
      baseUrl: 'https://ehr.example/fhir/',
      smart: { authorizeUrl: 'https://ehr.example/auth/authorize', tokenUrl: 'https://ehr.example/auth/token' },
    });
    const app2 = express().use('/x', other.router);
    const res = await request(app2).get('/x/Patient?_id=centene-mrd-positive');
    expect((res.body as Bundle).entry?.[0].fullUrl).toBe('https://ehr.example/fhir/Patient/centene-mrd-positive');
    const meta = (await request(app2).get('/x/metadata')).body;
    expect(meta.implementation.url).toBe('https://ehr.example/fhir');
    expect(JSON.stringify(meta.rest[0].security)).toContain('https://ehr.example/auth/token');
    const smart = await request(app2).get('/x/.well-known/smart-configuration');
    expect(smart.body.authorization_endpoint).toBe('https://ehr.example/auth/authorize');
    expect((await request(app).get('/sandbox/fhir/.well-known/smart-configuration')).status).toBe(404);
  });

  it('refuses a story that does not load, naming it', async () => {
    const broken: Bundle = {
      resourceType: 'Bundle',
      id: 'broken',
      type: 'transaction',
      entry: [{ resource: { resourceType: 'Patient', id: 'a' }, request: { method: 'PUT', url: 'Patient/b' } }],
    };
    await expect(createSandboxFhir({ bundles: [broken] })).rejects.toThrow(/sandbox story broken did not load/);
  });
});

describe('normalizeReferenceParams', () => {
  beforeAll(() => ensureBaseDefinitions());

  it('turns bare ids into references of the parameter target types', () => {
    expect(normalizeReferenceParams('Coverage', { patient: '123', status: 'active' })).toEqual({
      patient: 'Patient/123',
      status: 'active',
    });
    expect(normalizeReferenceParams('Coverage', { patient: 'Patient/123' })).toEqual({ patient: 'Patient/123' });
    expect(normalizeReferenceParams('Observation', { 'subject:Patient': '123' })).toEqual({ subject: 'Patient/123' });
    expect(normalizeReferenceParams('Observation', { patient: '1,2' })).toEqual({ patient: 'Patient/1,Patient/2' });
    expect(String(normalizeReferenceParams('Observation', { subject: '9' }).subject).split(',')).toContain('Patient/9');
    expect(normalizeReferenceParams('Observation', { 'subject:missing': 'true', _id: '5' })).toEqual({
      'subject:missing': 'true',
      _id: '5',
    });
  });
});

const external = process.env.FHIR_SANDBOX_URL;

describe.runIf(external)(`external FHIR server ${external ?? ''} with the stories loaded`, () => {
  beforeAll(async () => {
    await loadIntoFhir({ baseUrl: external!, bundles, deadlineMs: 60_000, retryDelayMs: 2_000 });
  }, 120_000);

  describe('protocol', () => protocolSuite(() => ({ agent: () => request(external!.replace(/\/+$/, '')), base: '' })));
});
