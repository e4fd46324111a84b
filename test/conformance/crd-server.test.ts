import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Coverage, Extension, MedicationRequest, Organization, Resource } from '@medplum/fhirtypes';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import type { JWK } from 'jose';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { AppDeps } from '../../src/app.js';
import { loadContent } from '../../src/content.js';
import { coverageInformationProblems } from '../../src/coverage/coverage-information.js';
import { BASE, buildApp } from '../helpers/app.js';
import { fakeEhr } from '../helpers/fake-ehr.js';
import { orderSignRequest, searchset } from '../helpers/hook-requests.js';
import { repoRoot, storyOrder, storyResources } from '../helpers/stories.js';
import {
  cardOptionalFieldProblems,
  COVERAGE_INFO_URL,
  coverageInfoActionProblems,
  coverageInfoActions,
  externalReferenceCards,
  instructionsCards,
  proposeAlternateProblems,
  serviceResponseProblems,
  smartAppCards,
} from './crd-kit-checks.js';

/**
 * The substance of the Inferno CRD server suite (inferno-framework/davinci-crd-test-kit, suite `crd_server`, CRD
 * 2.0.1) that runs without Ruby or the HL7 validator, plus the CRD and CDS Hooks rules it leaves to the validator or
 * does not test (design.md §4). Each `describe`/`it` names the kit test id or the rule it mirrors. Calls are signed the
 * way the kit signs them: one JWT per hook group (ES384 or RS384, `typ` JWT, `kid`, a `jku` pointing at the kit's
 * JWK Set served over HTTP, a 64-hex `jti`), so authentication is on, never the open mode.
 */

const SIGN = '/cds-services/priorpath-order-sign';
const SELECT = '/cds-services/priorpath-order-select';
const DISPATCH = '/cds-services/priorpath-order-dispatch';

interface KitKey {
  alg: 'ES384' | 'RS384';
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}
let jwksServer: Server;
let kitIss = '';
let kitJku = '';
const kitKeys: KitKey[] = [];

beforeAll(async () => {
  for (const alg of ['ES384', 'RS384'] as const) {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const kid = randomBytes(16).toString('hex');
    kitKeys.push({ alg, kid, privateKey: privateKey as CryptoKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } });
  }
  // The kit serves its JWK Set at {iss}/jwks.json; PriorPath fetches only the jku configured for that issuer.
  jwksServer = createServer((req, res) => {
    if (req.url === '/custom/crd_server/jwks.json') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: kitKeys.map((k) => k.jwk) }));
    } else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  kitIss = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/custom/crd_server`;
  kitJku = `${kitIss}/jwks.json`;
});
afterAll(() => new Promise<void>((resolve) => jwksServer.close(() => resolve())));

/** The kit's JWT (JwtHelper): header alg/typ/kid/jku; claims iss, aud (the service URL), exp +5 min, iat, jti. */
function kitToken(path: string, opts: { alg?: 'ES384' | 'RS384'; jku?: string } = {}): Promise<string> {
  const key = kitKeys.find((k) => k.alg === (opts.alg ?? 'ES384'))!;
  return new SignJWT({})
    .setProtectedHeader({ alg: key.alg, typ: 'JWT', kid: key.kid, jku: opts.jku ?? kitJku })
    .setIssuer(kitIss)
    .setAudience(`${BASE}${path}`)
    .setIssuedAt()
    .setExpirationTime('5m')
    .setJti(randomBytes(32).toString('hex'))
    .sign(key.privateKey);
}

/** PriorPath configured to trust the kit: its issuer with its jku; authentication required. */
function kitApp(opts: { env?: Record<string, string>; fetchImpl?: AppDeps['fetchImpl']; content?: AppDeps['content'] } = {}) {
  return buildApp({
    env: { CDS_AUTH: 'required', CDS_TRUSTED_CLIENTS: JSON.stringify([{ iss: kitIss, jku: kitJku }]), ...opts.env },
    fetchImpl: opts.fetchImpl,
    content: opts.content,
  }).app;
}

function story(id: string) {
  const resources = storyResources(id);
  return { resources, order: storyOrder(id, resources) };
}
type Body = Record<string, unknown> & { context: Record<string, unknown>; prefetch: Record<string, unknown> };
const signBody = (id: string, extra: Record<string, unknown> = {}) => {
  const { resources, order } = story(id);
  return { body: orderSignRequest(resources, order, extra) as Body, order, resources };
};
const selectBody = (id: string) => {
  const { body, order, resources } = signBody(id);
  return { body: { ...body, hook: 'order-select', context: { ...body.context, selections: [`MedicationRequest/${order.id}`] } } as Body, order, resources };
};
/** order-dispatch of the signed order: CRD 2.0.1 `order`/`performer` context, the order in the medications prefetch. */
const dispatchBody = (id: string, shape: '2.0.1' | 'hook-library' = '2.0.1') => {
  const { resources, order } = story(id);
  const active = { ...order, status: 'active' as const };
  const body = orderSignRequest(resources, order) as Body;
  body.prefetch.medications = searchset([active]);
  delete body.prefetch.user;
  const patientId = body.context.patientId;
  const context =
    shape === '2.0.1'
      ? { patientId, order: `MedicationRequest/${order.id}`, performer: 'Organization/infusion-center' }
      : { patientId, dispatchedOrders: [`MedicationRequest/${order.id}`], performer: 'Organization/infusion-center' };
  return { body: { ...body, hook: 'order-dispatch', context } as Body, order: active, resources };
};

const coverageInfo = (body: { systemActions?: { resource: Resource & { extension?: Extension[] } }[] }) =>
  body.systemActions![0].resource.extension!.find((e) => e.url === COVERAGE_INFO_URL)!;
const sub = (ext: Extension, url: string) => (ext.extension ?? []).filter((e) => e.url === url);
const codeOf = (ext: Extension, url: string) => sub(ext, url).map((e) => e.valueCode);

/** Every response check of a kit hook group (tests 05, 06, 10, 11, 12) on one response. */
function expectKitHookGroupPasses(res: { body: Record<string, unknown> }, hook: string, drafts: Resource[]) {
  expect(serviceResponseProblems(res.body, hook), 'crd_service_response_validation').toEqual([]);
  expect(cardOptionalFieldProblems(res.body), 'crd_card_optional_fields_validation').toEqual([]);
  expect(coverageInfoActionProblems(res.body, drafts), 'crd_coverage_info_system_action_validation').toEqual([]);
  expect(proposeAlternateProblems(res.body, drafts), 'crd_propose_alternate_request_card_validation').toEqual([]);
  for (const a of coverageInfoActions(res.body)) {
    for (const e of ((a.resource as { extension?: Extension[] }).extension ?? []).filter((x) => x.url === COVERAGE_INFO_URL)) {
      expect(coverageInformationProblems(e, '2.0'), 'ext-coverage-information 2.0.1∩2.2 and crd-ci-q1…q9').toEqual([]);
    }
  }
}

describe('the kit checks detect what they look for (so a pass means something)', () => {
  it('flag a long summary, a bad indicator, a missing topic, an absolute link with appContext, an empty suggestion and a wrong action', () => {
    const body = {
      cards: [
        { summary: 'x'.repeat(140), indicator: 'urgent', source: { label: 'Plan' } },
        {
          summary: 'ok',
          indicator: 'info',
          source: { label: 'Plan', topic: { code: 'guideline', system: 'http://terminology.hl7.org/CodeSystem/cdshooks-card-type' } },
          links: [{ label: 'Policy', url: 'ftp://example.org/p', type: 'absolute', appContext: 'a=b' }],
          suggestions: [{ label: 'Change', actions: [] }],
        },
      ],
      systemActions: [{ type: 'update', resource: { resourceType: 'MedicationRequest', id: 'other', extension: [{ url: COVERAGE_INFO_URL, extension: [] }] } }],
    };
    expect(serviceResponseProblems(body, 'order-sign')).toEqual(
      expect.arrayContaining(['cards[0]: summary is 140 characters or more', 'cards[0]: indicator urgent', 'cards[0]: source.topic code/system', 'systemActions[0]: description']),
    );
    expect(cardOptionalFieldProblems(body)).toEqual(
      expect.arrayContaining(['cards[1]: selectionBehavior', 'cards[1].links[0]: url', 'cards[1].links[0]: appContext on an absolute link', 'cards[1].suggestions[0]: actions empty']),
    );
    const drafts: Resource[] = [{ resourceType: 'MedicationRequest', id: 'mine' } as MedicationRequest];
    expect(coverageInfoActionProblems(body, drafts)).toEqual(['systemActions[0]: (none) has 0 coverage-assertion-ids', 'systemActions[0]: MedicationRequest/other is not an order of the request']);
    expect(serviceResponseProblems({ cards: [] }, 'order-sign')).toEqual(['systemActions missing for order-sign']);
  });
});

describe('Discovery (kit group 1; design.md §4)', () => {
  it('crd_discovery_endpoint_test: GET /cds-services answers 200 JSON without a JWT (discovery holds no patient data)', async () => {
    const res = await request(kitApp()).get('/cds-services').expect(200);
    expect(res.headers['content-type']).toMatch(/application\/json/);
    expect(Array.isArray(res.body.services)).toBe(true);
  });

  it('crd_discovery_services_validation: each service has a string hook, description and id; the three contract services with their prefetch templates and configuration options', async () => {
    const { services } = (await request(kitApp()).get('/cds-services').expect(200)).body as { services: Record<string, unknown>[] };
    for (const s of services) for (const f of ['hook', 'description', 'id']) expect(typeof s[f], `${String(s.id)} ${f}`).toBe('string');
    expect(services.map((s) => [s.id, s.hook])).toEqual([
      ['priorpath-order-sign', 'order-sign'],
      ['priorpath-order-select', 'order-select'],
      ['priorpath-order-dispatch', 'order-dispatch'],
    ]);
    const templates = {
      patient: 'Patient/{{context.patientId}}',
      coverage: 'Coverage?patient={{context.patientId}}&status=active',
      user: '{{context.userId}}',
      conditions: 'Condition?patient={{context.patientId}}',
      observations: 'Observation?patient={{context.patientId}}',
      medications: 'MedicationRequest?patient={{context.patientId}}',
      immunizations: 'Immunization?patient={{context.patientId}}',
    };
    const { user: _user, ...dispatchTemplates } = templates;
    expect(services[0].prefetch).toEqual(templates);
    expect(services[1].prefetch).toEqual(templates);
    expect(services[2].prefetch).toEqual(dispatchTemplates);
    for (const s of services) {
      const options = (s.extension as Record<string, { code: string; type: string }[]>)['davinci-crd.configuration-options'];
      const types = Object.fromEntries(options.map((o) => [o.code, o.type]));
      expect(types).toMatchObject({ 'coverage-info': 'boolean', 'max-cards': 'integer' });
    }
  });
});

describe('crd_service_call_test: one JWT signed per hook group, every request body posted with it', () => {
  it.each(['ES384', 'RS384'] as const)('with CDS_JTI_REPLAY=allow every body gets 200 and JSON (%s)', async (alg) => {
    const app = kitApp({ env: { CDS_JTI_REPLAY: 'allow' } });
    const token = await kitToken(SIGN, { alg });
    for (const id of ['centene-missing-mrd', 'mmm-dlbcl-offlabel', 'centene-mrd-positive']) {
      const res = await request(app).post(SIGN).set('Authorization', `Bearer ${token}`).send(signBody(id).body);
      expect(res.status, id).toBe(200);
      expect(res.headers['content-type']).toMatch(/application\/json/);
    }
  });

  it('by default refuses the second body under the same JWT: a replay, 401 OperationOutcome', async () => {
    const app = kitApp();
    const token = await kitToken(SIGN);
    await request(app).post(SIGN).set('Authorization', `Bearer ${token}`).send(signBody('centene-missing-mrd').body).expect(200);
    const again = await request(app).post(SIGN).set('Authorization', `Bearer ${token}`).send(signBody('mmm-dlbcl-offlabel').body);
    expect(again.status).toBe(401);
    expect(again.body.resourceType).toBe('OperationOutcome');
  });

  it('refuses a token whose jku is not the one configured for its issuer, and a token for another service (aud)', async () => {
    const app = kitApp({ env: { CDS_JTI_REPLAY: 'allow' } });
    const elsewhere = await kitToken(SIGN, { jku: 'https://attacker.example.org/jwks.json' });
    expect((await request(app).post(SIGN).set('Authorization', `Bearer ${elsewhere}`).send(signBody('centene-missing-mrd').body)).status).toBe(401);
    const forSelect = await kitToken(SELECT);
    expect((await request(app).post(SIGN).set('Authorization', `Bearer ${forSelect}`).send(signBody('centene-missing-mrd').body)).status).toBe(401);
  });
});

describe('order-sign hook group (kit group 3.6)', () => {
  const stories = ['centene-missing-mrd', 'centene-mrd-positive', 'centene-over-dose', 'mmm-dlbcl-offlabel', 'ohsu-infant-kmt2a', 'bcbsnc-inotuzumab-relapsed'];
  it.each(stories)('%s: response, card fields, coverage-information action and proposals pass the kit checks', async (id) => {
    const { body, order } = signBody(id);
    const res = await request(kitApp()).post(SIGN).set('Authorization', `Bearer ${await kitToken(SIGN)}`).send(body).expect(200);
    expectKitHookGroupPasses(res, 'order-sign', [order]);
    expect(coverageInfoActions(res.body), 'crd_coverage_info_system_action_received (required for order-sign)').toHaveLength(1);
  });

  it('crd_propose_alternate_request_card_validation: the over-dose order gets an update of the same draft order at the policy maximum', async () => {
    const { body, order } = signBody('centene-over-dose');
    const res = await request(kitApp()).post(SIGN).set('Authorization', `Bearer ${await kitToken(SIGN)}`).send(body).expect(200);
    const propose = res.body.cards.find((c: { suggestions?: unknown[] }) => c.suggestions);
    expect(propose, 'a Propose Alternate Request card').toBeDefined();
    const action = propose.suggestions[0].actions[0];
    expect(action.type).toBe('update');
    expect(`${action.resource.resourceType}/${action.resource.id}`).toBe(`MedicationRequest/${order.id}`);
    expect(action.resource.dosageInstruction).not.toEqual(order.dosageInstruction);
  });

  it('crd_launch_smart_app_card_validation: with dtr-clin or dtr-launch-query, a card whose links are all smart, with a launch URL and appContext', async () => {
    for (const option of ['dtr-clin', 'dtr-launch-query']) {
      const { body, order } = signBody('centene-missing-mrd', { extension: { 'davinci-crd.configuration': { [option]: true } } });
      const res = await request(kitApp()).post(SIGN).set('Authorization', `Bearer ${await kitToken(SIGN)}`).send(body).expect(200);
      expectKitHookGroupPasses(res, 'order-sign', [order]);
      const [smart] = smartAppCards(res.body);
      expect(smart, option).toBeDefined();
      const links = smart.links as { url: string; appContext?: string }[];
      expect(links[0].url).toBe(`${BASE}/dtr/launch.html`);
      expect(links[0].appContext).toBeTruthy();
    }
  });
});

describe('order-select hook group (kit group 3.4)', () => {
  it.each(['centene-missing-mrd', 'centene-over-dose', 'mmm-dlbcl-offlabel'])('%s: passes the kit checks; coverage information without asking for documentation [hook-19]', async (id) => {
    const { body, order } = selectBody(id);
    const res = await request(kitApp()).post(SELECT).set('Authorization', `Bearer ${await kitToken(SELECT)}`).send(body).expect(200);
    expectKitHookGroupPasses(res, 'order-select', [order]);
    for (const a of coverageInfoActions(res.body)) {
      const ext = ((a.resource as { extension: Extension[] }).extension ?? []).find((e) => e.url === COVERAGE_INFO_URL)!;
      expect(sub(ext, 'doc-needed')).toEqual([]);
      expect(sub(ext, 'questionnaire')).toEqual([]);
    }
  });
});

describe('order-dispatch hook group (kit group 3.5)', () => {
  it.each(['2.0.1', 'hook-library'] as const)('the %s context shape: systemActions present, the dispatched order updated with coverage information', async (shape) => {
    const { body, order, resources } = dispatchBody('centene-mrd-positive', shape);
    const app = kitApp({ fetchImpl: fakeEhr(resources).fetchImpl });
    const res = await request(app).post(DISPATCH).set('Authorization', `Bearer ${await kitToken(DISPATCH)}`).send(body).expect(200);
    expectKitHookGroupPasses(res, 'order-dispatch', [order]);
    expect(coverageInfoActions(res.body), 'crd_coverage_info_system_action_received (required for order-dispatch)').toHaveLength(1);
    expect(codeOf(coverageInfo(res.body), 'pa-needed')).toEqual(['satisfied']);
  });
});

/** The kit's preset request bodies (config/presets: patient pat015, Coverage cov015 whose payor is a bare reference). */
function kitPreset() {
  const signFixture = JSON.parse(readFileSync(join(repoRoot, 'test', 'fixtures', 'hooks', 'inferno-crd-order-sign.json'), 'utf8')) as Body;
  const patient = signFixture.prefetch.patient as Resource;
  const coverageBundle = signFixture.prefetch.coverage as { entry: { resource: Resource }[] };
  const common = { fhirServer: signFixture.fhirServer, fhirAuthorization: signFixture.fhirAuthorization };
  const azathioprine: MedicationRequest = {
    resourceType: 'MedicationRequest',
    id: 'pat015-mr-azathioprine',
    status: 'draft',
    intent: 'order',
    medicationCodeableConcept: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '105611', display: 'azathioprine 50 MG Oral Tablet [Imuran]' }] },
    subject: { reference: 'Patient/pat015' },
    authoredOn: '2026-11-23',
    requester: { reference: 'Practitioner/pra1234' },
    reasonCode: [{ coding: [{ system: 'http://snomed.info/sct', code: '52042003', display: 'Systemic lupus erythematosus glomerulonephritis syndrome' }] }],
    insurance: [{ reference: 'Coverage/cov015' }],
    dosageInstruction: [{ text: '50 mg by mouth once daily', timing: { repeat: { frequency: 1, period: 1, periodUnit: 'd' } } }],
    dispenseRequest: { numberOfRepeatsAllowed: 3, quantity: { value: 30, unit: 'tablet' } },
  };
  const homeHealth = {
    resourceType: 'ServiceRequest',
    id: 'servreq-g0180-1',
    status: 'active',
    intent: 'order',
    code: { coding: [{ system: 'https://bluebutton.cms.gov/resources/codesystem/hcpcs', code: 'G0180', display: 'Physician certification for home health services' }] },
    subject: { reference: 'Patient/pat015' },
    authoredOn: '2026-11-23',
    requester: { reference: 'Practitioner/pra1234' },
    performer: [{ reference: 'Practitioner/pra1234' }],
    insurance: [{ reference: 'Coverage/cov015' }],
  } as Resource;
  const select = {
    hook: 'order-select',
    hookInstance: '8a6c0b4e-1d3f-4a51-9e2d-7c1b5f0a2e91',
    ...common,
    context: { userId: 'Practitioner/pra1234', patientId: 'pat015', selections: ['MedicationRequest/pat015-mr-azathioprine'], draftOrders: { resourceType: 'Bundle', type: 'collection', entry: [{ resource: azathioprine }] } },
    prefetch: { coverage: coverageBundle },
    extension: { 'davinci-crd.configuration': { coverage: true, 'max-cards': 10 } },
  };
  const dispatch = {
    hook: 'order-dispatch',
    hookInstance: 'f2b7c1d0-6e4a-4c2b-8a9f-3d5e7b1c0a42',
    ...common,
    context: { patientId: 'pat015', order: 'ServiceRequest/servreq-g0180-1', performer: 'Practitioner/pra1234' },
    prefetch: { coverage: coverageBundle, order: homeHealth, patient },
  };
  return { select, dispatch, azathioprine, homeHealth, ehr: [patient, ...coverageBundle.entry.map((e) => e.resource), homeHealth, azathioprine] };
}

describe("the kit's preset request bodies (patient pat015, payer by reference only; DEFAULT_PAYER=example)", () => {
  it('order-select (azathioprine, selections, RI configuration codes) and order-dispatch (ServiceRequest G0180 in the `order` prefetch) pass the hook group checks', async () => {
    const preset = kitPreset();
    const app = kitApp({ env: { DEFAULT_PAYER: 'example' }, fetchImpl: fakeEhr(preset.ehr).fetchImpl });
    const selected = await request(app).post(SELECT).set('Authorization', `Bearer ${await kitToken(SELECT)}`).send(preset.select).expect(200);
    expectKitHookGroupPasses(selected, 'order-select', [preset.azathioprine]);
    const dispatched = await request(app).post(DISPATCH).set('Authorization', `Bearer ${await kitToken(DISPATCH)}`).send(preset.dispatch).expect(200);
    expectKitHookGroupPasses(dispatched, 'order-dispatch', [preset.homeHealth]);
    expect(coverageInfoActions(dispatched.body), 'crd_coverage_info_system_action_received (required for order-dispatch)').toHaveLength(1);
    expect(codeOf(coverageInfo(dispatched.body), 'covered')).toEqual(['covered']);
  });
});

describe('Required Card Response Validation (kit group 3.7): across the hooks run, each required type at least once', () => {
  it('an External Reference card, an Instructions card and a valid Coverage Information system action', async () => {
    const app = kitApp({ env: { CDS_JTI_REPLAY: 'allow' } });
    const token = await kitToken(SIGN);
    const bodies = await Promise.all(
      ['centene-missing-mrd', 'mmm-dlbcl-offlabel'].map(async (id) => (await request(app).post(SIGN).set('Authorization', `Bearer ${token}`).send(signBody(id).body).expect(200)).body),
    );
    expect(bodies.flatMap(externalReferenceCards).length, 'crd_external_reference_card_across_hooks_validation').toBeGreaterThan(0);
    expect(bodies.flatMap(instructionsCards).length, 'crd_valid_instructions_card_received_across_hooks').toBeGreaterThan(0);
    expect(bodies.flatMap(coverageInfoActions).length, 'crd_coverage_info_system_action_across_hooks_validation').toBeGreaterThan(0);
    for (const b of bodies) {
      const [reference] = externalReferenceCards(b);
      for (const l of reference.links as { url: string }[]) expect(l.url).toMatch(/^https?:\/\//);
    }
  });
});

/**
 * A copy of the content whose Centene `mrdPositive` fact fails at run time (a boolean fact that yields two values):
 * the way an internal policy failure reaches the wire (design.md §4 "Errors": never a positive assertion).
 */
function contentWithFailingFact() {
  const root = mkdtempSync(join(tmpdir(), 'priorpath-crd-conformance-'));
  for (const dir of ['cds-services', 'questionnaires', 'libraries']) cpSync(join(repoRoot, dir), join(root, dir), { recursive: true });
  const file = join(root, 'cds-services', 'policies', 'centene', 'blinatumomab.yaml');
  const policy = parseYaml(readFileSync(file, 'utf8')) as { facts: Record<string, { fhirpath: string }> };
  policy.facts.mrdPositive.fhirpath = '%conditions.exists() | %conditions.empty()';
  writeFileSync(file, stringifyYaml(policy));
  return loadContent({ root, canonicalBase: 'https://priorpath.dev/fhir' });
}

describe('coverage-information shapes per determination (CRD ext-coverage-information; design.md §4 "Versions", §5 table)', () => {
  async function sign(body: Body, app = kitApp()) {
    const res = await request(app).post(SIGN).set('Authorization', `Bearer ${await kitToken(SIGN)}`).send(body).expect(200);
    const ext = coverageInfo(res.body);
    const version = (body.extension as Record<string, string> | undefined)?.['davinci-crd.requestedVersion'] === '2.2' ? '2.2' : '2.0';
    expect(coverageInformationProblems(ext, version)).toEqual([]);
    const coverage = (body.prefetch.coverage as { entry: { resource: Coverage }[] }).entry[0].resource;
    expect(sub(ext, 'coverage').map((e) => e.valueReference!.reference)).toEqual([`Coverage/${coverage.id}`]);
    expect(sub(ext, 'date')[0].valueDate).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(sub(ext, 'coverage-assertion-id')[0].valueString).toBeTruthy();
    return { ext, res };
  }

  it('approved at signing: covered, satisfied, satisfied-pa-id; nothing to document', async () => {
    const { ext } = await sign(signBody('centene-mrd-positive').body);
    expect(codeOf(ext, 'covered')).toEqual(['covered']);
    expect(codeOf(ext, 'pa-needed')).toEqual(['satisfied']);
    expect(sub(ext, 'satisfied-pa-id')[0].valueString).toMatch(/^PA-CENTENE-/);
    for (const u of ['doc-needed', 'doc-purpose', 'questionnaire', 'info-needed', 'expiry-date', 'detail']) expect(sub(ext, u), u).toEqual([]);
  });

  it('approved at signing, CRD 2.2 requested: the same with expiry-date, and detail (category, code, value): the approved period and the policy applied', async () => {
    const { ext } = await sign(signBody('centene-mrd-positive', { extension: { 'davinci-crd.requestedVersion': '2.2' } }).body);
    expect(codeOf(ext, 'pa-needed')).toEqual(['satisfied']);
    const expiry = sub(ext, 'expiry-date')[0].valueDate!;
    expect(expiry).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    const details = Object.fromEntries(
      sub(ext, 'detail').map((d) => {
        const part = (u: string) => d.extension!.find((x) => x.url === u)!;
        expect(part('code').valueCodeableConcept!.coding![0].system).toBe('http://terminology.hl7.org/CodeSystem/crd-coverage-detail');
        return [part('code').valueCodeableConcept!.coding![0].code, { category: part('category').valueCode, value: part('value') }];
      }),
    );
    expect(details['allowed-period'].category).toBe('cat-limitation');
    expect(details['allowed-period'].value.valuePeriod!.end).toBe(expiry);
    expect(details['allowed-period'].value.valuePeriod!.start! <= expiry).toBe(true);
    expect(details['policy-link']).toEqual({ category: 'cat-other', value: { url: 'value', valueUrl: `${BASE}/policies/centene-blinatumomab` } });
  });

  it('documentation needed: auth-needed, doc-needed clinical, doc-purpose withpa, the Questionnaire canonical (served), a reason; no info-needed', async () => {
    const app = kitApp();
    const { ext } = await sign(signBody('centene-missing-mrd').body, app);
    expect(codeOf(ext, 'covered')).toEqual(['covered']);
    expect(codeOf(ext, 'pa-needed')).toEqual(['auth-needed']);
    expect(codeOf(ext, 'doc-needed')).toEqual(['clinical']);
    expect(codeOf(ext, 'doc-purpose')).toEqual(['withpa']);
    expect(sub(ext, 'info-needed')).toEqual([]);
    expect(sub(ext, 'reason')[0].valueCodeableConcept!.text).toBeTruthy();
    const [canonical] = sub(ext, 'questionnaire').map((e) => e.valueCanonical!);
    const [url, version] = canonical.split('|');
    const found = await request(app).get('/fhir/Questionnaire').query({ url }).expect(200);
    expect(found.body.entry.map((e: { resource: { version: string } }) => e.resource.version)).toContain(version);
  });

  it('dose over the policy limit: auth-needed with documentation and a reason citing the limit', async () => {
    const { ext } = await sign(signBody('centene-over-dose').body);
    expect(codeOf(ext, 'pa-needed')).toEqual(['auth-needed']);
    expect(codeOf(ext, 'doc-needed')).toEqual(['clinical']);
    expect(sub(ext, 'reason').map((r) => r.valueCodeableConcept!.text).join(' ')).toMatch(/limit/i);
  });

  it('not covered: covered not-covered, no pa-needed (crd-ci-q2), no documentation, a reason citing the clause', async () => {
    const { ext } = await sign(signBody('mmm-dlbcl-offlabel').body);
    expect(codeOf(ext, 'covered')).toEqual(['not-covered']);
    for (const u of ['pa-needed', 'doc-needed', 'questionnaire', 'satisfied-pa-id']) expect(sub(ext, u), u).toEqual([]);
    expect(sub(ext, 'reason')[0].valueCodeableConcept!.text).toBeTruthy();
  });

  it('a policy failing at run time: conditional with info-needed OTH and a reason (2.0.1), indeterminate with reason technical (2.2)', async () => {
    const app = kitApp({ content: contentWithFailingFact(), env: { CDS_JTI_REPLAY: 'allow' } });
    const { ext } = await sign(signBody('centene-mrd-positive').body, app);
    expect(codeOf(ext, 'covered')).toEqual(['conditional']);
    expect(codeOf(ext, 'pa-needed')).toEqual(['conditional']);
    expect(codeOf(ext, 'info-needed')).toEqual(['OTH']);
    expect(sub(ext, 'reason').length).toBeGreaterThan(0);
    // 2.0.1's reason codes are gold-card and detail-code: the shared form says "technical" in words only.
    expect(sub(ext, 'reason').flatMap((r) => r.valueCodeableConcept!.coding ?? [])).toEqual([]);
    expect(sub(ext, 'satisfied-pa-id')).toEqual([]);
    const { ext: ext22 } = await sign(signBody('centene-mrd-positive', { extension: { 'davinci-crd.requestedVersion': '2.2' } }).body, app);
    expect(codeOf(ext22, 'covered')).toEqual(['indeterminate']);
    expect(codeOf(ext22, 'pa-needed')).toEqual(['indeterminate']);
    expect(sub(ext22, 'reason').flatMap((r) => r.valueCodeableConcept!.coding ?? []).map((c) => c.code)).toContain('technical');
  });

  it('an order no policy governs, under DEFAULT_PAYER=example (the conformance-kit payer): covered, no-auth, nothing else asked', async () => {
    const { body } = signBody('centene-missing-mrd');
    const unknown = (r: Resource): Resource =>
      r.resourceType === 'Organization' && r.id === 'payer-centene'
        ? ({ ...r, identifier: [{ system: 'https://priorpath.dev/fhir/sid/payer', value: 'unlisted-plan' }] } as Organization)
        : r.resourceType === 'Coverage'
          ? ({ ...r, payor: [{ reference: 'Organization/payer-centene' }] } as Coverage)
          : r;
    const coverages = (body.prefetch.coverage as { entry: { resource: Resource }[] }).entry.map((e) => unknown(e.resource));
    body.prefetch.coverage = searchset(coverages);
    const app = kitApp({ env: { DEFAULT_PAYER: 'example' }, fetchImpl: fakeEhr(storyResources('centene-missing-mrd').map(unknown)).fetchImpl });
    const { ext } = await sign(body, app);
    expect(codeOf(ext, 'covered')).toEqual(['covered']);
    expect(codeOf(ext, 'pa-needed')).toEqual(['no-auth']);
    for (const u of ['doc-needed', 'questionnaire', 'info-needed', 'satisfied-pa-id']) expect(sub(ext, u), u).toEqual([]);
  });
});

describe('feedback (CDS Hooks 2.0 §Feedback; not in the kit)', () => {
  it('takes feedback on a returned card with the JWT for the feedback URL, and refuses it without one', async () => {
    const app = kitApp();
    const { body } = signBody('centene-over-dose');
    const res = await request(app).post(SIGN).set('Authorization', `Bearer ${await kitToken(SIGN)}`).send(body).expect(200);
    const propose = res.body.cards.find((c: { suggestions?: unknown[] }) => c.suggestions);
    const feedback = {
      feedback: [{ card: propose.uuid, outcome: 'accepted', acceptedSuggestions: [{ id: propose.suggestions[0].uuid }], outcomeTimestamp: new Date().toISOString() }],
    };
    const url = `${SIGN}/feedback`;
    await request(app).post(url).set('Authorization', `Bearer ${await kitToken(url)}`).send(feedback).expect(200);
    const unsigned = await request(app).post(url).send(feedback);
    expect(unsigned.status).toBe(401);
    expect(unsigned.body.resourceType).toBe('OperationOutcome');
  });
});
