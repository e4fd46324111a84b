/**
 * The sandbox SMART server grants only what an app asked for and the demo clinician may have, the sandbox EHR holds
 * a token to those scopes, and the sandbox hands the web pages a payer API token without ever showing them a key
 * (design.md §8 "Who may call").
 */
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { createSandboxAuth } from '../../src/sandbox-auth/index.js';
import { createSandboxFhir, loadSandboxBundles } from '../../src/sandbox/sandbox-fhir.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { testContent } from '../helpers/app.js';
import { repoRoot } from '../helpers/stories.js';

const BASE = 'http://priorpath.test';
const FHIR = `${BASE}/sandbox/fhir`;
const REDIRECT = `${BASE}/dtr/index.html`;
const PATIENT = 'centene-missing-mrd';

function setup() {
  const auth = createSandboxAuth({ publicBaseUrl: BASE });
  const app = express();
  app.use('/sandbox/auth', auth.router);
  return { auth, app };
}

/** EHR launch, authorize with `scope`, exchange the code: the token response. */
async function launchWith(app: express.Express, auth: ReturnType<typeof createSandboxAuth>, scope: string): Promise<{ access_token?: string; scope?: string; error?: string }> {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const launch = auth.createLaunch({ patient: PATIENT, user: `Practitioner/${PATIENT}-practitioner` });
  const authz = await request(app)
    .get('/sandbox/auth/authorize')
    .query({ response_type: 'code', client_id: 'priorpath-dtr', redirect_uri: REDIRECT, scope, state: 's1', aud: FHIR, code_challenge_method: 'S256', code_challenge: challenge, launch });
  expect(authz.status).toBe(302);
  const loc = new URL(authz.headers.location as string);
  const error = loc.searchParams.get('error');
  if (error) return { error };
  const token = await request(app)
    .post('/sandbox/auth/token')
    .type('form')
    .send({ grant_type: 'authorization_code', code: loc.searchParams.get('code') ?? '', redirect_uri: REDIRECT, client_id: 'priorpath-dtr', code_verifier: verifier });
  expect(token.status).toBe(200);
  return token.body as { access_token: string; scope: string };
}

describe('sandbox SMART scopes', () => {
  it('grants exactly the patient/ and user/ scopes asked for: never a system/ scope, nothing unasked', async () => {
    const { app, auth } = setup();
    const t = await launchWith(app, auth, 'launch openid fhirUser patient/Observation.rs patient/Condition.read system/*.cruds user/*.xyz bogus');
    expect(t.scope!.split(' ')).toEqual(['launch', 'openid', 'fhirUser', 'patient/Observation.rs', 'patient/Condition.read']);
    const none = await launchWith(app, auth, 'launch system/Claim.c');
    expect(none.error).toBe('invalid_scope');
  });

  it('holds a sandbox EHR token to its scopes: a type it never asked for is 403, a foreign token 401, no token open', async () => {
    const { app, auth } = setup();
    const ehr = express();
    ehr.use('/sandbox/fhir', (await createSandboxFhir({ bundles: loadSandboxBundles(join(repoRoot, 'sandbox')), baseUrl: FHIR, checkAccess: auth.checkAccess })).router);
    const t = await launchWith(app, auth, 'launch openid fhirUser patient/Observation.rs patient/Patient.r');
    const bearer = `Bearer ${t.access_token!}`;
    await request(ehr).get(`/sandbox/fhir/Observation?patient=${PATIENT}`).set('Authorization', bearer).expect(200);
    await request(ehr).get(`/sandbox/fhir/Patient/${PATIENT}`).set('Authorization', bearer).expect(200);
    const meds = await request(ehr).get(`/sandbox/fhir/MedicationRequest?patient=${PATIENT}`).set('Authorization', bearer);
    expect(meds.status).toBe(403);
    expect(meds.body.resourceType).toBe('OperationOutcome');
    const write = await request(ehr)
      .post('/sandbox/fhir/Observation')
      .set('Authorization', bearer)
      .send({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${PATIENT}` } });
    expect(write.status).toBe(403);
    const foreign = await request(ehr).get(`/sandbox/fhir/Observation?patient=${PATIENT}`).set('Authorization', 'Bearer not-a-token');
    expect(foreign.status).toBe(401);
    await request(ehr).get(`/sandbox/fhir/MedicationRequest?patient=${PATIENT}`).expect(200);
  });
});

describe('patient/ scopes reach only the launched patient', () => {
  const OTHER = 'centene-mrd-positive';
  async function ehrWith(scope: string) {
    const { app, auth } = setup();
    const ehr = express();
    ehr.use(express.json({ type: ['application/json', 'application/fhir+json'] }));
    ehr.use('/sandbox/fhir', (await createSandboxFhir({ bundles: loadSandboxBundles(join(repoRoot, 'sandbox')), baseUrl: FHIR, checkAccess: auth.checkAccess })).router);
    const t = await launchWith(app, auth, scope);
    const bearer = `Bearer ${t.access_token!}`;
    return { get: (path: string) => request(ehr).get(`/sandbox/fhir/${path}`).set('Authorization', bearer), post: (path: string, body: object) => request(ehr).post(`/sandbox/fhir/${path}`).set('Authorization', bearer).send(body), ehr };
  }

  it("keeps a patient/-only token within its launched patient's record: reads, searches and writes of another patient's data are refused or left out", async () => {
    const { get, post, ehr } = await ehrWith('launch openid fhirUser patient/*.cruds');
    // Its own patient's record, and resources about no patient, as before.
    await get(`Patient/${PATIENT}`).expect(200);
    const own = await get(`Observation?patient=${PATIENT}`).expect(200);
    expect(own.body.entry.length).toBeGreaterThan(0);
    await get(`PractitionerRole/${PATIENT}-role`).expect(200);
    // Another patient: a read is 403, a search names nothing of theirs, a write for them is 403.
    const other = await get(`Patient/${OTHER}`);
    expect(other.status).toBe(403);
    expect(other.body.resourceType).toBe('OperationOutcome');
    await get(`Condition/${OTHER}-dx`).expect(403);
    const theirs = await get(`Observation?patient=${OTHER}`).expect(200);
    expect(theirs.body.entry ?? []).toEqual([]);
    const everyone = await get('Observation?code=http://loinc.org|29463-7').expect(200);
    const subjects = new Set((everyone.body.entry ?? []).map((e: { resource: { subject: { reference: string } } }) => e.resource.subject.reference));
    expect([...subjects]).toEqual([`Patient/${PATIENT}`]);
    const write = await post('Observation', { resourceType: 'Observation', status: 'final', code: { text: 'weight' }, subject: { reference: `Patient/${OTHER}` } });
    expect(write.status).toBe(403);
    await post('Observation', { resourceType: 'Observation', status: 'final', code: { text: 'weight' }, subject: { reference: `Patient/${PATIENT}` } }).expect(201);
    // Without a token the sandbox stays open (the demo's own queries).
    await request(ehr).get(`/sandbox/fhir/Patient/${OTHER}`).expect(200);
  });

  it('lets a user/ scope reach every record the demo clinician may see', async () => {
    const { get } = await ehrWith('launch openid fhirUser patient/*.read user/*.cruds');
    await get(`Patient/${OTHER}`).expect(200);
    const theirs = await get(`Observation?patient=${OTHER}`).expect(200);
    expect(theirs.body.entry.length).toBeGreaterThan(0);
  });
});

describe('the sandbox payer API token', () => {
  it('hands the page an access token that opens the payer API, and no key material', async () => {
    const sandboxAuth = createSandboxAuth({ publicBaseUrl: BASE });
    const config = loadConfig({ PUBLIC_BASE_URL: BASE, SANDBOX: 'on', LOG_LEVEL: 'silent' });
    expect(config.payerApiAuth).toBe('required');
    const storage = new MemoryStorage();
    const app = createApp({ config, content: testContent(), storage, logger: createLogger('silent'), sandboxAuth });
    await request(app).get('/fhir/Questionnaire/centene-blinatumomab').expect(401);
    const res = await request(app).post('/sandbox/payer-token').expect(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(Object.keys(res.body).sort()).toEqual(['access_token', 'expires_in', 'scope', 'token_type']);
    expect(JSON.stringify(res.body)).not.toMatch(/"d"|PRIVATE/);
    await request(app).get('/fhir/Questionnaire/centene-blinatumomab').set('Authorization', `Bearer ${res.body.access_token}`).expect(200);
    await new Promise((r) => setImmediate(r));
    expect((await storage.listApiAccess(1))[0]).toMatchObject({ clientId: 'priorpath-sandbox-ehr', operation: 'GET /Questionnaire/:id', status: 200 });
  });
});
