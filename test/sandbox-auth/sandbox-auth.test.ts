import { createHash, randomBytes } from 'node:crypto';
import express from 'express';
import { decodeJwt } from 'jose';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { createJwtVerifier } from '../../src/auth/jwt-verifier.js';
import { createSandboxAuth } from '../../src/sandbox-auth/index.js';

const BASE = 'http://priorpath.test';
const FHIR = `${BASE}/sandbox/fhir`;
const REDIRECT = `${BASE}/dtr/index.html`;

function setup(opts: { now?: () => number } = {}) {
  const auth = createSandboxAuth({ publicBaseUrl: BASE, ...opts });
  const app = express();
  app.use('/sandbox/auth', auth.router);
  return { auth, app };
}

function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

function authorizeQuery(over: Record<string, string | undefined> = {}) {
  const q: Record<string, string | undefined> = {
    response_type: 'code',
    client_id: 'priorpath-dtr',
    redirect_uri: REDIRECT,
    scope: 'launch openid fhirUser patient/*.read user/*.cruds',
    state: 'st-123',
    aud: FHIR,
    code_challenge_method: 'S256',
    ...over,
  };
  return Object.fromEntries(Object.entries(q).filter(([, v]) => v !== undefined)) as Record<string, string>;
}

/** Launch → authorize → the code from the redirect. */
async function getCode(
  app: express.Express,
  auth: ReturnType<typeof createSandboxAuth>,
  challenge: string,
  over: Record<string, string | undefined> = {},
) {
  const launch = auth.createLaunch({
    patient: 'centene-missing-mrd',
    order: 'MedicationRequest/centene-missing-mrd-order',
    coverage: 'Coverage/centene-missing-mrd-coverage',
    coverageAssertionId: 'a-1',
    questionnaire: ['https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11'],
    user: 'Practitioner/centene-missing-mrd-practitioner',
  });
  const res = await request(app)
    .get('/sandbox/auth/authorize')
    .query(authorizeQuery({ launch, code_challenge: challenge, ...over }));
  expect(res.status).toBe(302);
  const loc = new URL(res.headers.location as string);
  return { loc, code: loc.searchParams.get('code') ?? '' };
}

function tokenRequest(app: express.Express, form: Record<string, string>) {
  return request(app).post('/sandbox/auth/token').type('form').send(form);
}

describe('sandbox SMART EHR launch', () => {
  it('redirects GET /launch to the DTR launch page with iss and an opaque launch id', async () => {
    const { app } = setup();
    const res = await request(app)
      .get('/sandbox/auth/launch')
      .query({ patient: 'p1', order: 'MedicationRequest/o1', coverage: 'Coverage/c1' });
    expect(res.status).toBe(302);
    const loc = new URL(res.headers.location as string);
    expect(loc.origin + loc.pathname).toBe(`${BASE}/dtr/launch.html`);
    expect(loc.searchParams.get('iss')).toBe(FHIR);
    expect(loc.searchParams.get('launch')).toMatch(/^[A-Za-z0-9_-]{20,}$/);
  });

  it('binds every questionnaire and the return path to the launch (appContext)', async () => {
    const { app } = setup();
    const res = await request(app).get(
      '/sandbox/auth/launch?patient=p1&questionnaire=https://q/a%7C1&questionnaire=https://q/b&return=/%3Fstory%3Dx&format=json',
    );
    expect(res.status).toBe(200);
    const { verifier, challenge } = pkce();
    const auth = await request(app)
      .get('/sandbox/auth/authorize')
      .query(authorizeQuery({ launch: res.body.launch as string, code_challenge: challenge }));
    const code = new URL(auth.headers.location as string).searchParams.get('code') ?? '';
    const token = await tokenRequest(app, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
      client_id: 'priorpath-dtr',
    });
    expect(JSON.parse(token.body.appContext as string)).toEqual({
      questionnaire: ['https://q/a|1', 'https://q/b'],
      returnUrl: '/?story=x',
    });
    const bad = await request(app).get('/sandbox/auth/launch').query({ patient: 'p1', return: '//evil.example/' });
    expect(bad.status).toBe(400);
  });

  it('refuses to send a launch to an app on another site', async () => {
    const { app } = setup();
    const res = await request(app)
      .get('/sandbox/auth/launch')
      .query({ patient: 'p1', app: 'https://evil.example/launch' });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
  });

  it('issues an ES384 access token with the launch context for a correct PKCE exchange', async () => {
    const { app, auth } = setup();
    const { verifier, challenge } = pkce();
    const { loc, code } = await getCode(app, auth, challenge);
    expect(loc.searchParams.get('state')).toBe('st-123');
    const res = await tokenRequest(app, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
      client_id: 'priorpath-dtr',
    });
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toMatchObject({
      token_type: 'Bearer',
      expires_in: 3600,
      patient: 'centene-missing-mrd',
      need_patient_banner: true,
    });
    expect(res.body.fhirContext).toEqual([
      { reference: 'MedicationRequest/centene-missing-mrd-order' },
      { reference: 'Coverage/centene-missing-mrd-coverage' },
      { canonical: 'https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11', type: 'Questionnaire' },
    ]);
    expect(JSON.parse(res.body.appContext as string)).toMatchObject({
      coverageAssertionId: 'a-1',
      order: 'MedicationRequest/centene-missing-mrd-order',
    });
    expect(decodeJwt(res.body.id_token as string).fhirUser).toBe(
      `${FHIR}/Practitioner/centene-missing-mrd-practitioner`,
    );
    const header = JSON.parse(Buffer.from((res.body.access_token as string).split('.')[0], 'base64url').toString()) as {
      alg: string;
      kid: string;
    };
    expect(header.alg).toBe('ES384');
    await expect(auth.verifyAccessToken(res.body.access_token as string)).resolves.toMatchObject({
      patient: 'centene-missing-mrd',
      clientId: 'priorpath-dtr',
    });
  });

  it('returns invalid_grant when the code_verifier does not match the challenge', async () => {
    const { app, auth } = setup();
    const { challenge } = pkce();
    const { code } = await getCode(app, auth, challenge);
    const res = await tokenRequest(app, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      code_verifier: pkce().verifier,
      client_id: 'priorpath-dtr',
    });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_grant' });
    expect(res.body.access_token).toBeUndefined();
  });

  it('returns invalid_grant when the code_verifier is missing', async () => {
    const { app, auth } = setup();
    const { code } = await getCode(app, auth, pkce().challenge);
    const res = await tokenRequest(app, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      client_id: 'priorpath-dtr',
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_grant');
  });

  it('redirects with invalid_request when the authorization request has no S256 challenge', async () => {
    const { app, auth } = setup();
    const launch = auth.createLaunch({ patient: 'p1' });
    const plain = await request(app)
      .get('/sandbox/auth/authorize')
      .query(authorizeQuery({ launch, code_challenge: pkce().challenge, code_challenge_method: 'plain' }));
    const none = await request(app)
      .get('/sandbox/auth/authorize')
      .query(authorizeQuery({ launch, code_challenge_method: undefined }));
    for (const res of [plain, none]) {
      expect(res.status).toBe(302);
      const loc = new URL(res.headers.location as string);
      expect(loc.searchParams.get('error')).toBe('invalid_request');
      expect(loc.searchParams.get('state')).toBe('st-123');
      expect(loc.searchParams.get('code')).toBeNull();
    }
  });

  it('rejects a reused code and revokes the token the first use gave', async () => {
    const { app, auth } = setup();
    const { verifier, challenge } = pkce();
    const { code } = await getCode(app, auth, challenge);
    const form = {
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
      client_id: 'priorpath-dtr',
    };
    const first = await tokenRequest(app, form);
    expect(first.status).toBe(200);
    const again = await tokenRequest(app, form);
    expect(again.status).toBe(400);
    expect(again.body.error).toBe('invalid_grant');
    await expect(auth.verifyAccessToken(first.body.access_token as string)).rejects.toThrow();
  });

  it('rejects an expired code', async () => {
    let t = Date.now();
    const { app, auth } = setup({ now: () => t });
    const { verifier, challenge } = pkce();
    const { code } = await getCode(app, auth, challenge);
    t += 61_000;
    const res = await tokenRequest(app, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
      client_id: 'priorpath-dtr',
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_grant');
  });

  it('returns invalid_grant when the token request names another redirect_uri', async () => {
    const { app, auth } = setup();
    const { verifier, challenge } = pkce();
    const { code } = await getCode(app, auth, challenge);
    const res = await tokenRequest(app, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: `${BASE}/dtr/`,
      code_verifier: verifier,
      client_id: 'priorpath-dtr',
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_grant');
  });

  it('answers an unregistered redirect_uri with an error page, never a redirect', async () => {
    const { app, auth } = setup();
    const launch = auth.createLaunch({ patient: 'p1' });
    const res = await request(app)
      .get('/sandbox/auth/authorize')
      .query(authorizeQuery({ launch, code_challenge: pkce().challenge, redirect_uri: 'https://evil.example/cb' }));
    expect(res.status).toBe(400);
    expect(res.headers.location).toBeUndefined();
    expect(res.body.error).toBe('invalid_request');
  });

  it('accepts the DTR app under the other loopback name when the server runs on loopback', async () => {
    const auth = createSandboxAuth({ publicBaseUrl: 'http://localhost:3000' });
    const app = express();
    app.use('/sandbox/auth', auth.router);
    const launch = auth.createLaunch({ patient: 'p1' });
    const res = await request(app)
      .get('/sandbox/auth/authorize')
      .query(
        authorizeQuery({
          launch,
          code_challenge: pkce().challenge,
          aud: 'http://localhost:3000/sandbox/fhir',
          redirect_uri: 'http://127.0.0.1:3000/dtr/index.html',
        }),
      );
    expect(res.status).toBe(302);
    expect(new URL(res.headers.location as string).searchParams.get('code')).toBeTruthy();
  });

  it('returns invalid_grant when another client redeems the code', async () => {
    const { app, auth } = setup();
    const { verifier, challenge } = pkce();
    const { code } = await getCode(app, auth, challenge);
    const res = await tokenRequest(app, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
      client_id: 'someone-else',
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_grant');
  });

  it('answers unsupported_grant_type and invalid_request per RFC 6749 §5.2', async () => {
    const { app } = setup();
    const cc = await tokenRequest(app, { grant_type: 'client_credentials' });
    expect(cc.status).toBe(400);
    expect(cc.body.error).toBe('unsupported_grant_type');
    const json = await request(app).post('/sandbox/auth/token').send({ grant_type: 'authorization_code' });
    expect(json.status).toBe(400);
    expect(json.body.error).toBe('invalid_request');
  });

  it('redirects with an error for an unknown launch or a wrong aud', async () => {
    const { app, auth } = setup();
    const badLaunch = await request(app)
      .get('/sandbox/auth/authorize')
      .query(authorizeQuery({ launch: 'nope', code_challenge: pkce().challenge }));
    expect(new URL(badLaunch.headers.location as string).searchParams.get('error')).toBe('invalid_request');
    const launch = auth.createLaunch({ patient: 'p1' });
    const badAud = await request(app)
      .get('/sandbox/auth/authorize')
      .query(authorizeQuery({ launch, code_challenge: pkce().challenge, aud: 'https://other.example/fhir' }));
    expect(new URL(badAud.headers.location as string).searchParams.get('error')).toBe('invalid_request');
  });

  it('advertises the endpoints in the SMART configuration', () => {
    const { auth } = setup();
    expect(auth.smartConfiguration).toMatchObject({
      authorization_endpoint: `${BASE}/sandbox/auth/authorize`,
      token_endpoint: `${BASE}/sandbox/auth/token`,
      code_challenge_methods_supported: ['S256'],
    });
    expect(auth.smartConfiguration.capabilities).toContain('launch-ehr');
  });
});

describe('sandbox CDS client', () => {
  it('signs JWTs that the service verifier accepts once, with the configured {iss, jwks}', async () => {
    const { auth } = setup();
    const verifier = createJwtVerifier({ trustedClients: [{ iss: auth.cdsClient.iss, jwks: auth.cdsClient.jwks }] });
    const aud = `${BASE}/cds-services/priorpath-order-sign`;
    const token = await auth.cdsClient.sign(aud);
    const claims = decodeJwt(token);
    expect(claims.iss).toBe(`${BASE}/sandbox`);
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(300);
    await expect(verifier.verify(`Bearer ${token}`, aud)).resolves.toMatchObject({ iss: `${BASE}/sandbox` });
    await expect(verifier.verify(`Bearer ${token}`, aud)).rejects.toThrow();
  });

  it('hands the demo page a token only for PriorPath CDS services', async () => {
    const { app } = setup();
    const ok = await request(app)
      .post('/sandbox/auth/cds-token')
      .send({ aud: `${BASE}/cds-services/priorpath-order-sign`, patient: 'p1' });
    expect(ok.status).toBe(200);
    expect(decodeJwt(ok.body.token as string).aud).toBe(`${BASE}/cds-services/priorpath-order-sign`);
    expect(ok.body.fhirAuthorization).toMatchObject({ token_type: 'Bearer', patient: 'p1', subject: 'priorpath-cds' });
    for (const aud of [
      'https://evil.example/cds-services/x',
      `${BASE}/fhir/Claim`,
      `${BASE}/cds-services/../fhir`,
      '',
    ]) {
      const res = await request(app).post('/sandbox/auth/cds-token').send({ aud });
      expect(res.status).toBe(400);
      expect(res.body.token).toBeUndefined();
    }
  });
});
