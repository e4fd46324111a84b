import { randomUUID } from 'node:crypto';
import type {
  Bundle,
  Coverage,
  Extension,
  Medication,
  MedicationRequest,
  Organization,
  Resource,
} from '@medplum/fhirtypes';
import { SignJWT, UnsecuredJWT } from 'jose';
import request from 'supertest';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FetchLike } from '../../src/hooks/ehr-client.js';
import {
  blinatumomabOrder,
  HCPCS_BLUEBUTTON,
  HCPCS_CRD,
  HCPCS_THO,
  inotuzumabOrder,
  NDC,
  PAYER_SID,
  PT,
  relapseRecord,
  RXNORM,
  TODAY,
} from '../fixtures/bcbsnc-relapse.js';
import { EDGE_MRD, edgePatient } from '../fixtures/edge-patient.js';
import { BASE, buildApp, ISS, makeKeys } from '../helpers/app.js';
import type { TestKeys } from '../helpers/app.js';
import { fakeEhr } from '../helpers/fake-ehr.js';
import { orderSignRequest, searchset } from '../helpers/hook-requests.js';
import { expectValidHookResponse } from '../helpers/response-checks.js';
import { repoRoot } from '../helpers/stories.js';

/*
 * Acceptance scenarios for the CRD contract (design.md §4), written from the contract text and the seeds, run over
 * HTTP against createApp. Each adds what the edge and decision suites do not already show.
 */

const SIGN = '/cds-services/priorpath-order-sign';
const DISPATCH = '/cds-services/priorpath-order-dispatch';
const COVERAGE_INFO = 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information';
const OPEN = { CDS_AUTH: 'open', SANDBOX: 'off', NODE_ENV: 'development' };

type HookBody = {
  hook: string;
  context: Record<string, unknown>;
  prefetch: Record<string, unknown>;
  fhirServer?: string;
  fhirAuthorization?: unknown;
};
interface HookAnswer {
  cards: { summary: string; indicator: string; source: { label: string } }[];
  systemActions?: { type: string; resource: MedicationRequest }[];
}

const coverageInfo = (r: MedicationRequest) => (r.extension ?? []).filter((e) => e.url === COVERAGE_INFO);
const code = (ext: Extension, url: string) => ext.extension?.find((e) => e.url === url)?.valueCode;

/** The one coverage-information of the answer's one system action (asserts there is exactly one of each). */
function onlyCoverageInfo(body: HookAnswer): Extension {
  expect(body.systemActions, JSON.stringify(body)).toHaveLength(1);
  const exts = coverageInfo(body.systemActions![0].resource);
  expect(exts).toHaveLength(1);
  return exts[0];
}

const bcbsncSign = (order: MedicationRequest, record: Resource[] = relapseRecord()) =>
  structuredClone(orderSignRequest(record, order)) as unknown as HookBody;

const payerLabel = (key: string) =>
  (parseYaml(readFileSync(join(repoRoot, 'cds-services', 'payers', `${key}.yaml`), 'utf8')) as { label: string }).label;

/** An EHR that cannot be reached: any query made is a failure the scenario shows. */
const unreachable: FetchLike = () =>
  Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));

describe('prefetch handling (design.md §4 "Prefetch")', () => {
  it('queries each key the EHR left out of the request (absent, not null) with its access token, and answers as with the full prefetch', async () => {
    const record = relapseRecord();
    const order = blinatumomabOrder();
    const full = await request(buildApp({ today: TODAY, env: OPEN, fetchImpl: unreachable }).app)
      .post(SIGN)
      .send(bcbsncSign(order, record))
      .expect(200);
    expect(code(onlyCoverageInfo(full.body), 'pa-needed')).toBe('satisfied');

    const ehr = fakeEhr(record);
    const body = bcbsncSign(order, record);
    for (const key of ['patient', 'user', 'conditions', 'observations', 'medications', 'immunizations'])
      delete body.prefetch[key];
    const res = await request(buildApp({ today: TODAY, env: OPEN, fetchImpl: ehr.fetchImpl }).app)
      .post(SIGN)
      .send(body)
      .expect(200);
    expectValidHookResponse(res.body, 'order-sign');
    expect(code(onlyCoverageInfo(res.body), 'pa-needed')).toBe('satisfied');
    const paths = ehr.calls.map((c) => c.url.replace('http://ehr.example.org/fhir/', ''));
    expect(paths).toEqual(
      expect.arrayContaining([
        `Patient/${PT}`,
        'PractitionerRole/bc-role',
        `Condition?patient=${PT}`,
        `Observation?patient=${PT}`,
        `MedicationRequest?patient=${PT}`,
        `Immunization?patient=${PT}`,
      ]),
    );
    expect(ehr.calls.every((c) => c.auth === 'Bearer ehr-token-1')).toBe(true);
  });

  it('reads a search prefetch given as a single resource instead of a searchset Bundle', async () => {
    const record = relapseRecord();
    const body = bcbsncSign(blinatumomabOrder(), record);
    body.prefetch.coverage = record.find((r) => r.resourceType === 'Coverage');
    body.prefetch.conditions = record.find((r) => r.resourceType === 'Condition');
    const res = await request(buildApp({ today: TODAY, env: OPEN, fetchImpl: unreachable }).app)
      .post(SIGN)
      .send(body)
      .expect(200);
    expectValidHookResponse(res.body, 'order-sign');
    expect(code(onlyCoverageInfo(res.body), 'pa-needed')).toBe('satisfied');
  });

  it('reads a searchset that also carries a search-outcome OperationOutcome entry (server warnings) as the search result', async () => {
    const record = relapseRecord();
    const body = bcbsncSign(blinatumomabOrder(), record);
    const warning = {
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'warning', code: 'informational', diagnostics: 'Results limited to 100 entries' }],
    };
    for (const key of ['coverage', 'conditions', 'observations'])
      (body.prefetch[key] as Bundle).entry!.push({ resource: warning as Resource, search: { mode: 'outcome' } });
    const res = await request(buildApp({ today: TODAY, env: OPEN, fetchImpl: unreachable }).app)
      .post(SIGN)
      .send(body)
      .expect(200);
    expect(code(onlyCoverageInfo(res.body), 'pa-needed')).toBe('satisfied');
  });

  it('answers 412 naming the key when the patient prefetch is an OperationOutcome and there is no fhirServer to ask', async () => {
    const body = bcbsncSign(blinatumomabOrder());
    body.prefetch.patient = { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'forbidden' }] };
    delete body.fhirServer;
    delete body.fhirAuthorization;
    const res = await request(buildApp({ today: TODAY, env: OPEN }).app)
      .post(SIGN)
      .send(body);
    expect(res.status).toBe(412);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0].expression).toEqual(['prefetch.patient']);
  });

  it('answers a blinatumomab and an inotuzumab order signed together, each with its own coverage information', async () => {
    const body = bcbsncSign(blinatumomabOrder());
    (body.context.draftOrders as Bundle).entry!.push({ resource: inotuzumabOrder() });
    const res = await request(buildApp({ today: TODAY, env: OPEN, fetchImpl: unreachable }).app)
      .post(SIGN)
      .send(body)
      .expect(200);
    expectValidHookResponse(res.body, 'order-sign');
    const actions = (res.body as HookAnswer).systemActions!;
    expect(actions.map((a) => a.resource.id).sort()).toEqual(['bc-blin-order', 'bc-ino-order']);
    const ids = actions.map(
      (a) => coverageInfo(a.resource)[0].extension!.find((e) => e.url === 'coverage-assertion-id')!.valueString,
    );
    expect(new Set(ids).size).toBe(2);
    for (const a of actions) expect(code(coverageInfo(a.resource)[0], 'pa-needed')).toBe('satisfied');
  });

  it('order-select answers only the orders in selections, reading the other drafts as context [hook-34]', async () => {
    const body = bcbsncSign(blinatumomabOrder());
    body.hook = 'order-select';
    (body.context.draftOrders as Bundle).entry!.push({ resource: inotuzumabOrder() });
    body.context.selections = ['MedicationRequest/bc-ino-order'];
    const res = await request(buildApp({ today: TODAY, env: OPEN, fetchImpl: unreachable }).app)
      .post('/cds-services/priorpath-order-select')
      .send(body)
      .expect(200);
    expectValidHookResponse(res.body, 'order-select');
    expect(((res.body as HookAnswer).systemActions ?? []).map((a) => a.resource.id)).toEqual(['bc-ino-order']);
  });

  it.each([
    ['2.0.1 order', { order: 'MedicationRequest/bc-blin-order' }],
    ['hook-library dispatchedOrders', { dispatchedOrders: ['MedicationRequest/bc-blin-order'] }],
  ])(
    'order-dispatch (%s): reads the dispatched order from the EHR when the medications prefetch does not hold it',
    async (_shape, named) => {
      const record = relapseRecord();
      const signed: MedicationRequest = { ...blinatumomabOrder(), status: 'active' };
      const ehr = fakeEhr([...record, signed]);
      const body = bcbsncSign(signed, record);
      body.hook = 'order-dispatch';
      body.context = { patientId: PT, performer: 'Organization/infusion-center', ...named };
      body.prefetch.medications = searchset([]);
      delete body.prefetch.user;
      const res = await request(buildApp({ today: TODAY, env: OPEN, fetchImpl: ehr.fetchImpl }).app)
        .post(DISPATCH)
        .send(body)
        .expect(200);
      expectValidHookResponse(res.body, 'order-dispatch');
      const ext = onlyCoverageInfo(res.body);
      expect(res.body.systemActions[0].resource.id).toBe('bc-blin-order');
      expect(code(ext, 'pa-needed')).toBe('satisfied');
    },
  );
});

describe('payer identification (design.md §4 "Payer")', () => {
  it.each(['bcbsnc', 'centene', 'mmm', 'ohsu'])(
    '%s named only by the identifier on Coverage.payor: its label is every card source.label',
    async (key) => {
      const record = relapseRecord().map((r) =>
        r.resourceType === 'Coverage' ? { ...r, payor: [{ identifier: { system: PAYER_SID, value: key } }] } : r,
      );
      const res = await request(buildApp({ today: TODAY, env: OPEN, fetchImpl: unreachable }).app)
        .post(SIGN)
        .send(bcbsncSign(blinatumomabOrder(), record))
        .expect(200);
      expectValidHookResponse(res.body, 'order-sign');
      onlyCoverageInfo(res.body);
      expect(res.body.cards.length).toBeGreaterThan(0);
      for (const card of (res.body as HookAnswer).cards) expect(card.source.label).toBe(payerLabel(key));
    },
  );

  it('reads the payer identifier on any payor entry, and the one active Coverage among cancelled ones', async () => {
    const record = relapseRecord().map((r) =>
      r.resourceType === 'Coverage'
        ? {
            ...r,
            payor: [{ display: 'Blue Cross NC (member card)' }, { identifier: { system: PAYER_SID, value: 'bcbsnc' } }],
          }
        : r,
    );
    const cancelled = {
      ...record.find((r) => r.resourceType === 'Coverage')!,
      id: 'bc-old-cov',
      status: 'cancelled',
      payor: [{ identifier: { system: PAYER_SID, value: 'centene' } }],
    } as Coverage;
    const body = bcbsncSign(blinatumomabOrder(), record);
    (body.prefetch.coverage as Bundle).entry!.push({ resource: cancelled });
    const res = await request(buildApp({ today: TODAY, env: OPEN, fetchImpl: unreachable }).app)
      .post(SIGN)
      .send(body)
      .expect(200);
    expect(code(onlyCoverageInfo(res.body), 'pa-needed')).toBe('satisfied');
    expect((res.body as HookAnswer).cards.every((c) => c.source.label === payerLabel('bcbsnc'))).toBe(true);
  });

  const org: Organization = {
    resourceType: 'Organization',
    id: 'bcbsnc-org',
    name: 'Blue Cross and Blue Shield of North Carolina',
    identifier: [{ system: PAYER_SID, value: 'bcbsnc' }],
  };

  it('reads the payer from the referenced Organization carried in the coverage prefetch, without asking the EHR', async () => {
    const record = relapseRecord().map((r) =>
      r.resourceType === 'Coverage' ? { ...r, payor: [{ reference: 'Organization/bcbsnc-org' }] } : r,
    );
    const body = bcbsncSign(blinatumomabOrder(), record);
    body.prefetch.coverage = searchset([record.find((r) => r.resourceType === 'Coverage')!, org]);
    (body.prefetch.coverage as Bundle).entry![1].search = { mode: 'include' };
    const res = await request(buildApp({ today: TODAY, env: OPEN, fetchImpl: unreachable }).app)
      .post(SIGN)
      .send(body)
      .expect(200);
    expect(code(onlyCoverageInfo(res.body), 'pa-needed')).toBe('satisfied');
    expect((res.body as HookAnswer).cards.every((c) => c.source.label === payerLabel('bcbsnc'))).toBe(true);
  });

  it('reads the payer from an Organization contained in the Coverage, without asking the EHR', async () => {
    const record = relapseRecord().map((r) =>
      r.resourceType === 'Coverage'
        ? ({ ...r, contained: [{ ...org, id: 'payer' }], payor: [{ reference: '#payer' }] } as Coverage)
        : r,
    );
    const res = await request(buildApp({ today: TODAY, env: OPEN, fetchImpl: unreachable }).app)
      .post(SIGN)
      .send(bcbsncSign(blinatumomabOrder(), record))
      .expect(200);
    expect(code(onlyCoverageInfo(res.body), 'pa-needed')).toBe('satisfied');
  });

  it("answers 400 when the only Coverage is cancelled, also under DEFAULT_PAYER when it is a served payer's; answers under DEFAULT_PAYER when the cancelled Coverage names no payer PriorPath serves", async () => {
    const record = relapseRecord().map((r) =>
      r.resourceType === 'Coverage' ? { ...r, status: 'cancelled' as const } : r,
    );
    const strict = await request(buildApp({ today: TODAY, env: OPEN }).app)
      .post(SIGN)
      .send(bcbsncSign(blinatumomabOrder(), record));
    expect(strict.status).toBe(400);
    expect(strict.body.resourceType).toBe('OperationOutcome');
    // DEFAULT_PAYER stands in only where no Coverage names a payer PriorPath serves (design.md §3, §4 "Payer"): a
    // served payer's cancelled Coverage is no coverage to authorize under, not an unknown payer.
    const lenientApp = buildApp({ today: TODAY, env: { ...OPEN, DEFAULT_PAYER: 'bcbsnc' } }).app;
    const known = await request(lenientApp).post(SIGN).send(bcbsncSign(blinatumomabOrder(), record));
    expect(known.status).toBe(400);
    expect(known.body.issue[0].diagnostics).toMatch(/No active Coverage.*is cancelled/);
    const unserved = record.map((r) =>
      r.resourceType === 'Coverage' ? { ...r, payor: [{ identifier: { system: 'https://priorpath.dev/fhir/sid/payer', value: 'acme-health' } }] } : r,
    );
    const lenient = await request(lenientApp)
      .post(SIGN)
      .send(bcbsncSign(blinatumomabOrder(), unserved))
      .expect(200);
    onlyCoverageInfo(lenient.body);
    expect((lenient.body as HookAnswer).cards.every((c) => c.source.label === payerLabel('bcbsnc'))).toBe(true);
  });
});

describe('which orders a policy governs (design.md §4; docs/terminology.md §2, §4, §5)', () => {
  const blinatumomab: [string, string, string][] = [
    ['RxNorm IN', RXNORM, '1597258'],
    ['RxNorm BN', RXNORM, '1597263'],
    ['RxNorm SCD', RXNORM, '1597262'],
    ['RxNorm SBD', RXNORM, '1597267'],
    ['RxNorm SCDC', RXNORM, '1651249'],
    ['RxNorm SBDC', RXNORM, '1651252'],
    ['RxNorm SCDF', RXNORM, '1651250'],
    ['RxNorm SBDF', RXNORM, '1651253'],
    ['RxNorm SCDG', RXNORM, '1597260'],
    ['RxNorm SBDG', RXNORM, '1597266'],
    ['HCPCS (CRD https URI)', HCPCS_CRD, 'J9039'],
    ['HCPCS (THO http URI)', HCPCS_THO, 'J9039'],
    ['HCPCS (Blue Button URI)', HCPCS_BLUEBUTTON, 'J9039'],
    ['NDC 10-digit with hyphens', NDC, '55513-160-01'],
    ['NDC 11-digit with hyphens', NDC, '55513-0160-01'],
    ['NDC 11-digit without hyphens', NDC, '55513016001'],
    ['NDC 10-digit without hyphens', NDC, '5551316001'],
    ['NDC second package, 10-digit', NDC, '55513-160-21'],
    ['NDC second package, 11-digit', NDC, '55513016021'],
  ];
  const inotuzumab: [string, string, string][] = [
    ['RxNorm IN', RXNORM, '1942950'],
    ['RxNorm BN', RXNORM, '1942955'],
    ['RxNorm SCD', RXNORM, '1942954'],
    ['RxNorm SBD', RXNORM, '1942959'],
    ['RxNorm SCDC', RXNORM, '1942951'],
    ['RxNorm SBDC', RXNORM, '1942956'],
    ['RxNorm SCDF', RXNORM, '1942953'],
    ['RxNorm SBDF', RXNORM, '1942957'],
    ['RxNorm SCDG', RXNORM, '1942952'],
    ['RxNorm SBDG', RXNORM, '1942958'],
    ['HCPCS (CRD https URI)', HCPCS_CRD, 'J9229'],
    ['HCPCS (THO http URI)', HCPCS_THO, 'J9229'],
    ['HCPCS (Blue Button URI)', HCPCS_BLUEBUTTON, 'J9229'],
  ];
  const decide = async (order: MedicationRequest) => {
    const res = await request(buildApp({ today: TODAY, env: OPEN, fetchImpl: unreachable }).app)
      .post(SIGN)
      .send(bcbsncSign(order))
      .expect(200);
    expectValidHookResponse(res.body, 'order-sign');
    return code(onlyCoverageInfo(res.body), 'pa-needed');
  };
  const alone = (order: MedicationRequest, system: string, value: string): MedicationRequest => ({
    ...order,
    medicationCodeableConcept: { coding: [{ system, code: value }] },
  });
  const contained = (order: MedicationRequest, system: string, value: string): MedicationRequest => {
    const { medicationCodeableConcept: _drug, ...rest } = order;
    const medication: Medication = {
      resourceType: 'Medication',
      id: 'drug',
      code: { coding: [{ system, code: value }] },
    };
    return { ...rest, contained: [medication], medicationReference: { reference: '#drug' } };
  };

  it.each(blinatumomab)(
    'a Blincyto order coded only by %s (%s|%s) is approved under the BCBSNC blinatumomab policy',
    async (_name, system, value) => {
      expect(await decide(alone(blinatumomabOrder(), system, value))).toBe('satisfied');
    },
  );

  it.each(inotuzumab)(
    'a Besponsa order coded only by %s (%s|%s) is approved under the BCBSNC inotuzumab policy',
    async (_name, system, value) => {
      expect(await decide(alone(inotuzumabOrder(), system, value))).toBe('satisfied');
    },
  );

  it.each([
    ...blinatumomab.filter(([n]) => /SBD$|Blue Button|11-digit without/.test(n)).map((c) => [...c, 'blin'] as const),
    ...inotuzumab.filter(([n]) => /SCD$|THO/.test(n)).map((c) => [...c, 'ino'] as const),
  ])('an order whose contained Medication is coded by %s (%s|%s) is governed', async (_name, system, value, drug) => {
    expect(await decide(contained(drug === 'blin' ? blinatumomabOrder() : inotuzumabOrder(), system, value))).toBe(
      'satisfied',
    );
  });

  it('stays silent for the Blincyto IV Solution Stabilizer vial (NDC 55513-155-01), which is not the drug', async () => {
    const res = await request(buildApp({ today: TODAY, env: OPEN, fetchImpl: unreachable }).app)
      .post(SIGN)
      .send(bcbsncSign(alone(blinatumomabOrder(), NDC, '55513-155-01')))
      .expect(200);
    expect(res.body).toEqual({ cards: [] });
  });
});

describe('response (design.md §4 "Response")', () => {
  it('sends the order exactly as received, with only the coverage-information extension added', async () => {
    const order = blinatumomabOrder();
    const res = await request(buildApp({ today: TODAY, env: OPEN, fetchImpl: unreachable }).app)
      .post(SIGN)
      .send(bcbsncSign(order))
      .expect(200);
    const action = res.body.systemActions[0] as { type: string; description: string; resource: MedicationRequest };
    expect(action.type).toBe('update');
    expect(action.description).toBeTruthy();
    const { extension, ...rest } = action.resource;
    const { extension: sent, ...sentRest } = order;
    expect(rest).toEqual(sentRest);
    expect(extension!.filter((e) => e.url !== COVERAGE_INFO)).toEqual(sent);
    expect(coverageInfo(action.resource)).toHaveLength(1);
  });
});

describe('card rules (design.md §4 "Response")', () => {
  it('keeps every card summary under 140 characters when the EHR names the drug in a long order text', async () => {
    const order = blinatumomabOrder();
    order.medicationCodeableConcept!.text =
      'BLINCYTO (blinatumomab) 35 mcg lyophilized powder for injection with IV Solution Stabilizer, 28 mcg in 240 mL 0.9% sodium chloride by continuous infusion over 7 days via ambulatory pump';
    const record = relapseRecord().filter((r) => r.id !== 'bc-status');
    const dx = record.find((r) => r.id === 'bc-dx') as { code: { coding: unknown[] } };
    dx.code.coding = dx.code.coding.slice(0, 1);
    for (const body of [
      bcbsncSign(order, record),
      bcbsncSign({ ...order, dispenseRequest: { numberOfRepeatsAllowed: 9 } }),
      bcbsncSign(order),
    ]) {
      const res = await request(buildApp({ today: TODAY, env: OPEN, fetchImpl: unreachable }).app)
        .post(SIGN)
        .send({ ...body, extension: { 'davinci-crd.configuration': { 'dtr-clin': true } } })
        .expect(200);
      expect(res.body.cards.length).toBeGreaterThan(0);
      expectValidHookResponse(res.body, 'order-sign');
    }
  });
});

describe('every non-2xx answer is an OperationOutcome (design.md §4 "Errors")', () => {
  it.each([
    ['GET', '/cds-services/priorpath-prior-auth', 404],
    ['POST', '/cds-services', 405],
    ['PUT', SIGN, 405],
    ['DELETE', `${SIGN}/feedback`, 405],
  ] as const)('%s %s → %d', async (method, path, status) => {
    const app = buildApp({ env: OPEN }).app;
    const call =
      method === 'GET'
        ? request(app).get(path)
        : method === 'POST'
          ? request(app).post(path).send({})
          : method === 'PUT'
            ? request(app).put(path).send({})
            : request(app).delete(path);
    const res = await call;
    expect(res.status).toBe(status);
    expect(res.body.resourceType).toBe('OperationOutcome');
    if (status === 405) expect(res.headers.allow).toBeTruthy();
  });
});

describe('client authentication over HTTP (design.md §4 "Authentication")', () => {
  let keys: TestKeys;
  let rsa: TestKeys;
  let stranger: TestKeys;
  beforeAll(async () => {
    [keys, rsa, stranger] = await Promise.all([makeKeys(), makeKeys('RS384'), makeKeys()]);
  });
  const now = () => Math.floor(Date.now() / 1000);
  const claims = (over: Record<string, unknown> = {}) => ({
    iss: ISS,
    aud: `${BASE}${SIGN}`,
    iat: now(),
    exp: now() + 300,
    jti: randomUUID(),
    ...over,
  });
  const drop = (c: Record<string, unknown>, name: string) => {
    const out = { ...c };
    delete out[name];
    return out;
  };
  const sign = (payload: Record<string, unknown>, header: Record<string, unknown> = {}, key: TestKeys = keys) =>
    new SignJWT(payload)
      .setProtectedHeader({ alg: 'ES384', typ: 'JWT', kid: key.kid, ...header } as { alg: string })
      .sign(key.privateKey);
  const trusted = () =>
    buildApp({
      today: TODAY,
      env: {
        CDS_AUTH: 'required',
        CDS_TRUSTED_CLIENTS: JSON.stringify([
          { iss: ISS, jwks: { keys: [keys.jwk, rsa.jwk] } },
          { iss: 'https://other-ehr.example.com', jku: 'https://other-ehr.example.com/.well-known/jwks.json' },
        ]),
      },
      fetchImpl: unreachable,
    }).app;

  const failures: [string, () => Promise<string>][] = [
    ['unsigned (alg none)', async () => new UnsecuredJWT(claims()).encode()],
    [
      'alg ES256',
      async () => {
        const { privateKey } = await import('jose').then((j) => j.generateKeyPair('ES256'));
        return new SignJWT(claims()).setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: keys.kid }).sign(privateKey);
      },
    ],
    [
      'HS384 with a shared secret',
      async () =>
        new SignJWT(claims())
          .setProtectedHeader({ alg: 'HS384', typ: 'JWT', kid: keys.kid })
          .sign(new TextEncoder().encode('a-shared-secret-of-enough-length-for-hs384-000000')),
    ],
    ['typ other than JWT', () => sign(claims(), { typ: 'at+jwt' })],
    ['no kid', () => new SignJWT(claims()).setProtectedHeader({ alg: 'ES384', typ: 'JWT' }).sign(keys.privateKey)],
    ['a kid not among the issuer keys', () => sign(claims(), { kid: randomUUID() })],
    ['a trusted kid, signed by another key', () => sign(claims(), { kid: keys.kid }, stranger)],
    ['an issuer not configured', () => sign(claims({ iss: 'https://rogue-ehr.example.net' }))],
    ['no iss', () => sign(drop(claims(), 'iss'))],
    ['aud of another service', () => sign(claims({ aud: `${BASE}/cds-services/priorpath-order-select` }))],
    ['aud array without the URL called', () => sign(claims({ aud: [`${BASE}/cds-services`, `${BASE}${DISPATCH}`] }))],
    ['no aud', () => sign(drop(claims(), 'aud'))],
    ['no exp', () => sign(drop(claims(), 'exp'))],
    ['expired beyond the 60 s tolerance', () => sign(claims({ iat: now() - 600, exp: now() - 120 }))],
    ['no iat', () => sign(drop(claims(), 'iat'))],
    ['iat beyond the 60 s tolerance in the future', () => sign(claims({ iat: now() + 300, exp: now() + 600 }))],
    ['no jti', () => sign(drop(claims(), 'jti'))],
    ['a jku not configured for its issuer', () => sign(claims(), { jku: 'https://attacker.example.com/jwks.json' })],
    [
      'a jku configured for another issuer',
      () => sign(claims(), { jku: 'https://other-ehr.example.com/.well-known/jwks.json' }),
    ],
  ];

  it.each(failures)('%s: the same 401 OperationOutcome as no token at all', async (_name, make) => {
    const app = trusted();
    const body = bcbsncSign(blinatumomabOrder());
    const none = await request(app).post(SIGN).send(body);
    expect(none.status).toBe(401);
    expect(none.body.resourceType).toBe('OperationOutcome');
    const res = await request(app)
      .post(SIGN)
      .set('Authorization', `Bearer ${await make()}`)
      .send(body);
    expect(res.status).toBe(401);
    expect(res.body).toEqual(none.body);
  });

  it('logs which check failed (never the token), while the answers stay identical', async () => {
    const { app, lines } = buildApp({
      today: TODAY,
      env: { CDS_AUTH: 'required', CDS_TRUSTED_CLIENTS: JSON.stringify([{ iss: ISS, jwks: { keys: [keys.jwk] } }]) },
      fetchImpl: unreachable,
    });
    const body = bcbsncSign(blinatumomabOrder());
    const tokens = [
      await sign(claims({ aud: `${BASE}/cds-services/priorpath-order-select` })),
      await sign(claims({ iat: now() - 600, exp: now() - 120 })),
      await sign(claims({ iss: 'https://rogue-ehr.example.net' })),
    ];
    const logged: string[] = [];
    for (const token of tokens) {
      const before = lines.length;
      const res = await request(app).post(SIGN).set('Authorization', `Bearer ${token}`).send(body);
      expect(res.status).toBe(401);
      const added = lines.slice(before).join('');
      expect(added).not.toContain(token);
      logged.push(added.replace(/"(time|requestId|reqId|hookInstance|durationMs|responseTime)":[^,}]*/g, ''));
    }
    expect(new Set(logged).size).toBe(tokens.length);
  });

  it('accepts RS384 with aud in an array, and ES384 within the clock tolerance; then refuses the same jti as a replay', async () => {
    const app = trusted();
    const body = bcbsncSign(blinatumomabOrder());
    const rs = await new SignJWT(claims({ aud: [`${BASE}/cds-services`, `${BASE}${SIGN}`] }))
      .setProtectedHeader({ alg: 'RS384', typ: 'JWT', kid: rsa.kid })
      .sign(rsa.privateKey);
    await request(app).post(SIGN).set('Authorization', `Bearer ${rs}`).send(body).expect(200);
    const late = await sign(claims({ iat: now() - 330, exp: now() - 30 }));
    await request(app).post(SIGN).set('Authorization', `Bearer ${late}`).send(body).expect(200);
    const none = await request(app).post(SIGN).send(body);
    const replay = await request(app).post(SIGN).set('Authorization', `Bearer ${late}`).send(body);
    expect(replay.status).toBe(401);
    expect(replay.body).toEqual(none.body);
  });
});

describe('errors (design.md §4 "Errors")', () => {
  const MIB = 1_048_576;
  /** A valid order-sign body padded with trailing spaces (JSON whitespace) to exactly `size` bytes. */
  const padded = (size: number) => {
    const json = JSON.stringify(bcbsncSign(blinatumomabOrder()));
    return json + ' '.repeat(size - Buffer.byteLength(json));
  };

  it.each([
    ['exactly 1 MiB', MIB, 200],
    ['1 MiB and one byte', MIB + 1, 413],
  ])('%s with Content-Length: %d bytes → %d', async (_name, size, status) => {
    const res = await request(buildApp({ today: TODAY, env: OPEN, fetchImpl: unreachable }).app)
      .post(SIGN)
      .set('Content-Type', 'application/json')
      .send(padded(size));
    expect(res.status).toBe(status);
    if (status === 413) expect(res.body.resourceType).toBe('OperationOutcome');
  });

  it.each([
    ['exactly 1 MiB', MIB, 200],
    ['1 MiB and one byte', MIB + 1, 413],
  ])('%s chunked, without Content-Length: %d bytes → %d', async (_name, size, status) => {
    const { app } = buildApp({ today: TODAY, env: OPEN, fetchImpl: unreachable });
    const server = app.listen(0);
    try {
      const port = (server.address() as { port: number }).port;
      const bytes = new TextEncoder().encode(padded(size));
      const res = await fetch(`http://127.0.0.1:${port}${SIGN}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: new ReadableStream({
          start(controller) {
            for (let i = 0; i < bytes.length; i += 64 * 1024) controller.enqueue(bytes.subarray(i, i + 64 * 1024));
            controller.close();
          },
        }),
        duplex: 'half',
      } as RequestInit);
      expect(res.status).toBe(status);
      const body = (await res.json()) as { resourceType?: string };
      if (status === 413) expect(body.resourceType).toBe('OperationOutcome');
    } finally {
      server.close();
    }
  });

  it.each([
    ['application/xml', '<Bundle xmlns="http://hl7.org/fhir"><type value="collection"/></Bundle>'],
    ['application/fhir+xml', '<Bundle xmlns="http://hl7.org/fhir"><type value="collection"/></Bundle>'],
    ['text/plain', 'order-sign for Patient/bc-relapse-pt'],
  ])('answers 415 with an OperationOutcome for a %s body', async (type, text) => {
    const res = await request(buildApp({ env: OPEN }).app)
      .post(SIGN)
      .set('Content-Type', type)
      .send(text);
    expect(res.status).toBe(415);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });

  it('reads a hook request sent as application/fhir+json (a JSON body)', async () => {
    const res = await request(buildApp({ today: TODAY, env: OPEN, fetchImpl: unreachable }).app)
      .post(SIGN)
      .set('Content-Type', 'application/fhir+json')
      .send(JSON.stringify(bcbsncSign(blinatumomabOrder())));
    expect(res.status).toBe(200);
    expect(code(onlyCoverageInfo(res.body), 'pa-needed')).toBe('satisfied');
  });

  it('answers a request nested exactly 64 levels deep, and 400 at 65', async () => {
    // Root object = level 1, extension = level 2, then nested arrays.
    const at = (levels: number) => ({
      ...bcbsncSign(blinatumomabOrder()),
      extension: { 'org.example.trace': JSON.parse(`${'['.repeat(levels - 2)}${']'.repeat(levels - 2)}`) },
    });
    const app = buildApp({ today: TODAY, env: OPEN, fetchImpl: unreachable }).app;
    expect((await request(app).post(SIGN).send(at(64))).status).toBe(200);
    const deep = await request(app).post(SIGN).send(at(65));
    expect(deep.status).toBe(400);
    expect(deep.body.resourceType).toBe('OperationOutcome');
  });

  it('answers 404 for the feedback of an unknown service and 405 with Allow for a GET of a feedback route', async () => {
    const app = buildApp({ env: OPEN }).app;
    const missing = await request(app).post('/cds-services/priorpath-prior-auth/feedback').send({ feedback: [] });
    expect(missing.status).toBe(404);
    expect(missing.body.resourceType).toBe('OperationOutcome');
    const get = await request(app).get(`${SIGN}/feedback`);
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe('POST');
    expect(get.body.resourceType).toBe('OperationOutcome');
  });

  describe('an unreadable dose is an unknown fact, never a reason for satisfied (Centene CP.PHAR.312 I.A.5)', () => {
    const mrd = EDGE_MRD;
    const decide = async (change: (order: MedicationRequest) => void) => {
      const { resources, order } = edgePatient();
      change(order);
      const res = await request(buildApp({ today: TODAY, env: OPEN, fetchImpl: unreachable }).app)
        .post(SIGN)
        .send(orderSignRequest([...resources, mrd], order))
        .expect(200);
      expectValidHookResponse(res.body, 'order-sign');
      return code(onlyCoverageInfo(res.body), 'pa-needed');
    };

    it('approves the readable 28 mcg/day (the baseline)', async () => {
      expect(await decide(() => undefined)).toBe('satisfied');
    });

    it.each<[string, (o: MedicationRequest) => void]>([
      ['no dosage instruction at all', (o) => delete o.dosageInstruction],
      ['no doseAndRate', (o) => delete o.dosageInstruction![0].doseAndRate],
      ['a doseQuantity without a value', (o) => delete o.dosageInstruction![0].doseAndRate![0].doseQuantity!.value],
      [
        'a doseQuantity without a unit or code',
        (o) => (o.dosageInstruction![0].doseAndRate![0].doseQuantity = { value: 28 }),
      ],
      [
        'a dose in mg/kg',
        (o) =>
          (o.dosageInstruction![0].doseAndRate![0].doseQuantity = {
            value: 0.4,
            unit: 'mg/kg',
            system: 'http://unitsofmeasure.org',
            code: 'mg/kg',
          }),
      ],
    ])('%s: auth-needed, not satisfied', async (_name, change) => {
      expect(await decide(change)).toBe('auth-needed');
    });
  });
});
