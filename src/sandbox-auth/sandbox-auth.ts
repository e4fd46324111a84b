import { createHash, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import { SignJWT, jwtVerify } from 'jose';
import type { JWK } from 'jose';
import { HttpError } from '../errors.js';
import { grantableScopes, patientBound, scopeAllows } from './sandbox-scopes.js';
import type { SandboxAccess, SandboxPermission } from './sandbox-scopes.js';

/**
 * The sandbox's SMART authorization server (design.md §2 "Sandbox": SMART auth): SMART App Launch 2.x EHR launch with
 * PKCE against the embedded sandbox EHR FHIR server, plus the sandbox EHR's CDS Hooks client key.
 *
 * It auto-approves every request (there is no user to ask: the demo page plays a logged-in clinician), but it
 * checks everything a real server checks, so an app that works here works against a real EHR: registered redirect
 * URIs, S256 PKCE, single-use short-lived codes bound to client and redirect URI, `aud` equal to the FHIR base.
 *
 * @see https://hl7.org/fhir/smart-app-launch/app-launch.html (SMART App Launch 2.2)
 * @see https://www.rfc-editor.org/rfc/rfc6749 (OAuth 2.0) and https://www.rfc-editor.org/rfc/rfc7636 (PKCE)
 */

/** What a launch id stands for: the EHR context the app receives with its token (SMART §Launch context). */
export interface LaunchContext {
  patient?: string;
  /** `Type/id` of the order under review (goes to `fhirContext`). */
  order?: string;
  /** `Coverage/id` (goes to `fhirContext`). */
  coverage?: string;
  /** CRD coverage-assertion-id, passed to DTR through `appContext`. */
  coverageAssertionId?: string;
  /** Questionnaire canonicals (`url|version`), through `appContext` and `fhirContext`. */
  questionnaire?: string[];
  /** `Practitioner/id` or `PractitionerRole/id` of the signed-in clinician (`fhirUser` in the id_token). */
  user?: string;
  encounter?: string;
  /** A path on this server to return to when the app is done (PriorPath's `appContext.returnUrl`; sandbox only). */
  returnUrl?: string;
  /** Ask the DTR app for the adaptive form ($next-question) even when the payer's form is static (demo option). */
  adaptive?: boolean;
}

/** A registered SMART client. Public clients only (no secret): the sandbox serves browser apps. */
export interface SandboxClient {
  clientId: string;
  redirectUris: string[];
}

export interface SandboxAuthOptions {
  /** The URL clients use, without a trailing slash (config.publicBaseUrl). */
  publicBaseUrl: string;
  /**
   * Registered clients. Default: `priorpath-dtr` with `{publicBaseUrl}/dtr/` and `{publicBaseUrl}/dtr/index.html`.
   * Any other client id is accepted only with a redirect URI on the server's own origin or on loopback (sandbox apps
   * under development), never an arbitrary site.
   */
  clients?: SandboxClient[];
  /** Lifetime of an access token in seconds (default 3600). */
  tokenLifetimeSec?: number;
  /** Lifetime of an authorization code in seconds (default 60). */
  codeLifetimeSec?: number;
  /** Epoch milliseconds (tests move the clock). */
  now?: () => number;
}

export interface SandboxCdsClient {
  /** `{publicBaseUrl}/sandbox`: the issuer to add to CDS_TRUSTED_CLIENTS. */
  iss: string;
  /** Public key set ({iss, jwks} is a CDS_TRUSTED_CLIENTS entry). */
  jwks: { keys: JWK[] };
  /** A CDS Hooks client JWT for one call to `aud` (CDS Hooks 2.0 §Trusting CDS Clients): ES384, kid, jti, 5 min. */
  sign(aud: string): Promise<string>;
}

/**
 * The sandbox EHR as a SMART Backend Services client of PriorPath's payer API (design.md §8): it signs client
 * assertions with the sandbox EHR's key server-side, so the browser pages only ever hold the resulting access token.
 */
export interface SandboxPayerClient {
  clientId: string;
  /** Public keys to register (a PAYER_API_CLIENTS `jwks`). */
  jwks: { keys: JWK[] };
  /** A client assertion for the token endpoint `aud` (RFC 7523; ES384, kid, jti, 5 min). */
  signAssertion(aud: string): Promise<string>;
}

export interface SandboxAuth {
  /** Mount at `/sandbox/auth`. */
  router: Router;
  /** The body of `/sandbox/fhir/.well-known/smart-configuration` (SMART §Conformance). */
  smartConfiguration: Record<string, unknown>;
  /** Endpoints for `createSandboxFhir({ smart })`. */
  endpoints: { authorizeUrl: string; tokenUrl: string; capabilities: string[] };
  cdsClient: SandboxCdsClient;
  payerClient: SandboxPayerClient;
  /** Checks an access token this server issued for the sandbox FHIR server; throws when invalid. */
  verifyAccessToken(token: string): Promise<{ patient?: string; scope: string; clientId?: string }>;
  /**
   * Whether an `Authorization` header may perform every `needs` interaction on the sandbox FHIR server: `invalid-token`
   * when the bearer token is not one this server issued (or is expired), `insufficient-scope` when a scope is missing,
   * `{ patient }` when it may, but only within that launched patient's record (some need is granted only by a
   * `patient/` scope; `patient` is undefined when the token has no launched patient, so it reaches no patient's record).
   */
  checkAccess(
    authorization: string,
    needs: readonly (readonly [string, SandboxPermission])[],
  ): Promise<SandboxAccess>;
  /** Creates a launch id bound to `ctx` (what `GET /launch` does), for tests and server-side callers. */
  createLaunch(ctx: LaunchContext): string;
}

const DEFAULT_CLIENT_ID = 'priorpath-dtr';
const LAUNCH_LIFETIME_MS = 2 * 3600_000;
const CAPABILITIES = [
  'launch-ehr',
  'client-public',
  'context-ehr-patient',
  'context-ehr-encounter',
  'context-banner',
  'context-style',
  'permission-patient',
  'permission-user',
  'permission-v1',
  'permission-v2',
  'sso-openid-connect',
  'authorize-post',
];
const SCOPES = [
  'openid',
  'fhirUser',
  'launch',
  'online_access',
  'patient/*.read',
  'patient/*.rs',
  'user/*.read',
  'user/*.rs',
  'user/*.cruds',
  'user/*.write',
  'patient/*.cruds',
  'patient/*.write',
];
/** RFC 7636 §4.1: 43–128 unreserved characters. */
const VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;

interface CodeGrant {
  clientId: string;
  redirectUri: string;
  challenge: string;
  scope: string;
  launch?: LaunchContext;
  expires: number;
  used: boolean;
  /** jti of the token issued for this code, revoked if the code is replayed (RFC 6749 §4.1.2). */
  tokenJti?: string;
}

/** An OAuth error (RFC 6749 §5.2 at the token endpoint, §4.1.2.1 at the authorize endpoint). */
class OAuthError extends Error {
  constructor(
    readonly code: string,
    readonly description: string,
    readonly status = 400,
  ) {
    super(description);
  }
}

const b64url = (buf: Buffer) => buf.toString('base64url');
const s256 = (verifier: string) => b64url(createHash('sha256').update(verifier).digest());
const first = (v: unknown): string | undefined =>
  typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : undefined;

function isLoopback(url: URL): boolean {
  return url.hostname === 'localhost' || url.hostname === '127.0.0.1' || url.hostname === '[::1]';
}

/** A fresh P-384 key pair (ES384, RFC 7518 §3.4) with its public JWK. Synchronous so start-up code stays simple. */
function es384KeyPair(prefix: string): { privateKey: KeyObject; publicKey: KeyObject; kid: string; jwk: JWK } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const kid = `${prefix}-${randomUUID().slice(0, 8)}`;
  return {
    privateKey,
    publicKey,
    kid,
    jwk: { ...(publicKey.export({ format: 'jwk' }) as JWK), kid, alg: 'ES384', use: 'sig' },
  };
}

/**
 * Creates the sandbox authorization server with fresh ES384 keys (one for access tokens, one for the sandbox EHR's
 * CDS Hooks client). Keys live only in memory: a restart invalidates every token, which is what a sandbox wants.
 */
export function createSandboxAuth(opts: SandboxAuthOptions): SandboxAuth {
  const base = opts.publicBaseUrl.replace(/\/+$/, '');
  const baseOrigin = new URL(base).origin;
  const authBase = `${base}/sandbox/auth`;
  const fhirBase = `${base}/sandbox/fhir`;
  const now = opts.now ?? Date.now;
  const tokenLifetime = opts.tokenLifetimeSec ?? 3600;
  const codeLifetime = opts.codeLifetimeSec ?? 60;
  // The DTR app's own redirect URIs; on a loopback base also under the other loopback name (localhost vs 127.0.0.1),
  // because a developer may open the demo under either.
  const baseUrl = new URL(base);
  const dtrBases = [base];
  if (isLoopback(baseUrl)) {
    for (const host of ['localhost', '127.0.0.1']) {
      const alt = new URL(base);
      alt.hostname = host;
      const s = alt.toString().replace(/\/+$/, '');
      if (!dtrBases.includes(s)) dtrBases.push(s);
    }
  }
  const defaultClient: SandboxClient = {
    clientId: DEFAULT_CLIENT_ID,
    redirectUris: dtrBases.flatMap((b) => [`${b}/dtr/`, `${b}/dtr/index.html`]),
  };
  const clients = new Map((opts.clients ?? [defaultClient]).map((c) => [c.clientId, c]));

  const tokenKeys = es384KeyPair('sandbox-auth');
  const tokenKid = tokenKeys.kid;
  const tokenJwk = tokenKeys.jwk;
  const cdsKeys = es384KeyPair('sandbox-cds');
  const cdsKid = cdsKeys.kid;
  const cdsJwk = cdsKeys.jwk;
  const cdsIss = `${base}/sandbox`;

  const launches = new Map<string, { ctx: LaunchContext; expires: number }>();
  const codes = new Map<string, CodeGrant>();
  const revoked = new Set<string>();

  const sweep = () => {
    const t = now();
    for (const [k, v] of launches) if (v.expires < t) launches.delete(k);
    for (const [k, v] of codes) if (v.expires + 600_000 < t) codes.delete(k);
  };

  const createLaunch = (ctx: LaunchContext): string => {
    sweep();
    const id = b64url(randomBytes(18));
    launches.set(id, { ctx: structuredClone(ctx), expires: now() + LAUNCH_LIFETIME_MS });
    return id;
  };

  /** The redirect URI is acceptable for this client (RFC 6749 §3.1.2.2: registered, compared as strings). */
  const redirectAllowed = (clientId: string, redirectUri: string): boolean => {
    const registered = clients.get(clientId);
    if (registered) return registered.redirectUris.includes(redirectUri);
    let url: URL;
    try {
      url = new URL(redirectUri);
    } catch {
      return false;
    }
    if (url.hash) return false;
    return (url.protocol === 'http:' || url.protocol === 'https:') && (url.origin === baseOrigin || isLoopback(url));
  };

  const signAccessToken = async (grant: CodeGrant, jti: string): Promise<string> => {
    const claims: Record<string, unknown> = { scope: grant.scope, client_id: grant.clientId };
    if (grant.launch?.patient) claims.patient = grant.launch.patient;
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES384', typ: 'JWT', kid: tokenKid })
      .setIssuer(authBase)
      .setAudience(fhirBase)
      .setSubject(grant.launch?.user ?? grant.clientId)
      .setIssuedAt(Math.floor(now() / 1000))
      .setExpirationTime(Math.floor(now() / 1000) + tokenLifetime)
      .setJti(jti)
      .sign(tokenKeys.privateKey);
  };

  const signIdToken = async (grant: CodeGrant, user: string): Promise<string> =>
    new SignJWT({ fhirUser: user.startsWith('http') ? user : `${fhirBase}/${user}` })
      .setProtectedHeader({ alg: 'ES384', typ: 'JWT', kid: tokenKid })
      .setIssuer(authBase)
      .setAudience(grant.clientId)
      .setSubject(user)
      .setIssuedAt(Math.floor(now() / 1000))
      .setExpirationTime(Math.floor(now() / 1000) + tokenLifetime)
      .sign(tokenKeys.privateKey);

  const router = express.Router();
  router.use(express.urlencoded({ extended: false, limit: '64kb' }));
  router.use(express.json({ limit: '64kb' }));
  router.use((req, res, next) => {
    // Public browser clients call the token endpoint cross-origin (SMART §Considerations for PKCE).
    res.setHeader('Access-Control-Allow-Origin', '*');
    // OPTIONS goes on to the app's method guard: 204 with the path's Allow, and a preflight is told the same methods
    // (http/method-guard.ts, http/error-handler.ts), not a list kept here.
    if (req.method === 'OPTIONS') res.setHeader('Access-Control-Allow-Headers', 'Content-Type, Authorization');
    next();
  });

  /**
   * The EHR side of an EHR launch: binds the context to an opaque `launch` id and sends the browser to the app's
   * launch URL with `iss` and `launch` (SMART §EHR launch). `format=json` returns the URL instead of redirecting.
   */
  router.get('/launch', (req, res) => {
    const q = req.query as Record<string, unknown>;
    const all = (v: unknown): string[] =>
      (Array.isArray(v) ? v : [v]).filter((x): x is string => typeof x === 'string' && x !== '');
    const questionnaire = [...all(q.questionnaire), ...all(q.questionnaires).flatMap((s) => s.split(','))].filter(
      Boolean,
    );
    const ctx: LaunchContext = {
      patient: first(q.patient),
      order: first(q.order),
      coverage: first(q.coverage),
      coverageAssertionId: first(q.coverageAssertionId),
      questionnaire: questionnaire.length ? questionnaire : undefined,
      user: first(q.user),
      encounter: first(q.encounter),
      returnUrl: first(q.return),
      adaptive: ['1', 'true'].includes(first(q.adaptive) ?? '') ? true : undefined,
    };
    if (ctx.returnUrl !== undefined && !/^\/(?!\/)[^\\]*$/.test(ctx.returnUrl))
      throw new OAuthError('invalid_request', 'return must be a path on this server');
    for (const [k, v] of Object.entries(ctx)) if (v === undefined) delete (ctx as Record<string, unknown>)[k];
    const app = first(q.app) ?? `${base}/dtr/launch.html`;
    let appUrl: URL;
    try {
      appUrl = new URL(app, base);
    } catch {
      throw new OAuthError('invalid_request', 'app is not a URL');
    }
    if (appUrl.origin !== baseOrigin && !isLoopback(appUrl))
      throw new OAuthError('invalid_request', 'app must be on this server or on loopback');
    const launch = createLaunch(ctx);
    appUrl.searchParams.set('iss', fhirBase);
    appUrl.searchParams.set('launch', launch);
    if (first(q.format) === 'json') {
      res.setHeader('Cache-Control', 'no-store');
      res.json({ launch, iss: fhirBase, url: appUrl.toString() });
      return;
    }
    res.redirect(302, appUrl.toString());
  });

  /** SMART §Obtain authorization code; RFC 6749 §4.1.1. Auto-approves. GET, or POST with a form (authorize-post). */
  const authorize = (req: Request, res: Response) => {
    const p = {
      ...(req.query as Record<string, unknown>),
      ...(req.method === 'POST' && req.body && typeof req.body === 'object'
        ? (req.body as Record<string, unknown>)
        : {}),
    };
    const clientId = first(p.client_id);
    const redirectUri = first(p.redirect_uri);
    // RFC 6749 §4.1.2.1: with a missing or unregistered redirect URI the error is shown, never redirected.
    if (!clientId) throw new OAuthError('invalid_request', 'client_id is required');
    if (!redirectUri || !redirectAllowed(clientId, redirectUri))
      throw new OAuthError('invalid_request', 'redirect_uri is missing or not registered for this client');
    const state = first(p.state);
    const fail = (error: string, description: string) => {
      const url = new URL(redirectUri);
      url.searchParams.set('error', error);
      url.searchParams.set('error_description', description);
      if (state !== undefined) url.searchParams.set('state', state);
      res.redirect(302, url.toString());
    };
    if (first(p.response_type) !== 'code') return fail('unsupported_response_type', 'response_type must be code');
    if (!state) return fail('invalid_request', 'state is required (SMART App Launch)');
    const aud = first(p.aud)?.replace(/\/+$/, '');
    if (aud !== fhirBase) return fail('invalid_request', `aud must be the FHIR server base ${fhirBase}`);
    const challenge = first(p.code_challenge);
    if (first(p.code_challenge_method) !== 'S256' || !challenge || !/^[A-Za-z0-9\-_]{43}$/.test(challenge)) {
      return fail('invalid_request', 'PKCE is required: code_challenge with code_challenge_method=S256');
    }
    const requested = (first(p.scope) ?? '').split(/\s+/).filter(Boolean);
    if (requested.length === 0) return fail('invalid_scope', 'scope is required');
    // Only what the app asked for and the demo clinician may have: never a system/ scope, never one not requested.
    const scope = grantableScopes(requested);
    if (!scope.some((s) => s.includes('/') && !s.startsWith('launch/')) && !scope.includes('openid'))
      return fail('invalid_scope', 'none of the requested scopes can be granted (patient/ or user/ scopes)');
    let launch: LaunchContext | undefined;
    const launchId = first(p.launch);
    if (launchId !== undefined) {
      const found = launches.get(launchId);
      if (!found || found.expires < now()) return fail('invalid_request', 'unknown or expired launch');
      launch = found.ctx;
    } else if (scope.includes('launch')) {
      return fail('invalid_request', 'scope launch needs a launch parameter');
    } else if (scope.includes('launch/patient')) {
      return fail(
        'invalid_scope',
        'stand-alone patient selection is not available in the sandbox; launch from the demo page',
      );
    }
    sweep();
    const code = b64url(randomBytes(32));
    codes.set(code, {
      clientId,
      redirectUri,
      challenge,
      scope: scope.join(' '),
      launch,
      expires: now() + codeLifetime * 1000,
      used: false,
    });
    const url = new URL(redirectUri);
    url.searchParams.set('code', code);
    url.searchParams.set('state', state);
    res.redirect(302, url.toString());
  };
  router.get('/authorize', authorize);
  router.post('/authorize', authorize);

  /** SMART §Obtain access token; RFC 6749 §4.1.3 and RFC 7636 §4.6. Errors per RFC 6749 §5.2. */
  router.post('/token', async (req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Pragma', 'no-cache');
    const b = (req.body ?? {}) as Record<string, unknown>;
    if (!req.is('application/x-www-form-urlencoded'))
      throw new OAuthError('invalid_request', 'send the token request as application/x-www-form-urlencoded');
    const grantType = first(b.grant_type);
    if (grantType !== 'authorization_code')
      throw new OAuthError('unsupported_grant_type', 'only authorization_code is supported');
    const code = first(b.code);
    const grant = code ? codes.get(code) : undefined;
    if (!grant) throw new OAuthError('invalid_grant', 'unknown authorization code');
    if (grant.used) {
      // RFC 6749 §4.1.2: a code used twice is an attack; revoke what it gave.
      if (grant.tokenJti) revoked.add(grant.tokenJti);
      throw new OAuthError('invalid_grant', 'authorization code already used');
    }
    grant.used = true;
    if (grant.expires < now()) throw new OAuthError('invalid_grant', 'authorization code expired');
    const clientId = first(b.client_id);
    if (clientId !== grant.clientId)
      throw new OAuthError('invalid_grant', 'client_id does not match the authorization request');
    if (first(b.redirect_uri) !== grant.redirectUri)
      throw new OAuthError('invalid_grant', 'redirect_uri does not match the authorization request');
    const verifier = first(b.code_verifier);
    if (!verifier || !VERIFIER.test(verifier))
      throw new OAuthError('invalid_grant', 'code_verifier is missing or malformed');
    if (s256(verifier) !== grant.challenge)
      throw new OAuthError('invalid_grant', 'code_verifier does not match code_challenge');

    const jti = randomUUID();
    grant.tokenJti = jti;
    const scopes = grant.scope.split(' ');
    const body: Record<string, unknown> = {
      access_token: await signAccessToken(grant, jti),
      token_type: 'Bearer',
      expires_in: tokenLifetime,
      scope: grant.scope,
    };
    const ctx = grant.launch;
    if (ctx) {
      if (ctx.patient) body.patient = ctx.patient;
      if (ctx.encounter) body.encounter = ctx.encounter;
      const fhirContext: Record<string, unknown>[] = [];
      if (ctx.order) fhirContext.push({ reference: ctx.order });
      if (ctx.coverage) fhirContext.push({ reference: ctx.coverage });
      for (const q of ctx.questionnaire ?? []) fhirContext.push({ canonical: q, type: 'Questionnaire' });
      if (fhirContext.length) body.fhirContext = fhirContext;
      const appContext = {
        order: ctx.order,
        coverage: ctx.coverage,
        coverageAssertionId: ctx.coverageAssertionId,
        questionnaire: ctx.questionnaire,
        returnUrl: ctx.returnUrl,
        adaptive: ctx.adaptive,
      };
      if (Object.values(appContext).some((v) => v !== undefined)) body.appContext = JSON.stringify(appContext);
      body.need_patient_banner = true;
    }
    if (scopes.includes('openid') && scopes.includes('fhirUser') && ctx?.user)
      body.id_token = await signIdToken(grant, ctx.user);
    res.json(body);
  });

  /** The access-token signing keys, for resource servers that verify tokens themselves. */
  router.get('/jwks', (_req, res) => {
    res.json({ keys: [tokenJwk] });
  });
  /** The sandbox EHR's CDS client keys: usable as a `jku` in CDS_TRUSTED_CLIENTS instead of the inline `jwks`. */
  router.get('/cds-client/jwks.json', (_req, res) => {
    res.json({ keys: [cdsJwk] });
  });

  /**
   * A CDS Hooks client JWT for the demo page (the sandbox EHR signs for it, as an EHR's back end would). Only for
   * PriorPath's own services. With `patient`, also a `fhirAuthorization` the service can use to query the sandbox.
   */
  router.post('/cds-token', async (req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    const b = (req.body ?? {}) as Record<string, unknown>;
    const aud = first(b.aud);
    if (!aud || !aud.startsWith(`${base}/cds-services/`) || aud.includes('..') || /[?#]/.test(aud)) {
      throw new OAuthError('invalid_request', `aud must be a service under ${base}/cds-services/`);
    }
    const out: Record<string, unknown> = { token: await cdsClient.sign(aud), iss: cdsIss, expires_in: 300 };
    const patient = first(b.patient);
    if (patient) {
      const scope = 'patient/*.read';
      const jti = randomUUID();
      const access = await signAccessToken(
        {
          clientId: 'priorpath-cds',
          redirectUri: '',
          challenge: '',
          scope,
          launch: { patient },
          expires: 0,
          used: true,
        },
        jti,
      );
      out.fhirAuthorization = {
        access_token: access,
        token_type: 'Bearer',
        expires_in: tokenLifetime,
        scope,
        subject: 'priorpath-cds',
        patient,
      };
    }
    res.json(out);
  });

  router.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    if (err instanceof OAuthError) {
      res.status(err.status).json({ error: err.code, error_description: err.description });
      return;
    }
    // The app's own answers (the method guard's 405 with Allow) are the app's error middleware's to send.
    if (err instanceof HttpError) return next(err);
    const parse = err as { type?: string; status?: number };
    if (
      parse.type === 'entity.parse.failed' ||
      (typeof parse.status === 'number' && parse.status >= 400 && parse.status < 500)
    ) {
      res.status(400).json({ error: 'invalid_request', error_description: 'malformed request body' });
      return;
    }
    next(err);
  });

  /** A five-minute ES384 JWT from the sandbox EHR (its CDS Hooks JWT and its Backend Services client assertion). */
  const signAsEhr = (iss: string, aud: string) =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'ES384', typ: 'JWT', kid: cdsKid })
      .setIssuer(iss)
      .setSubject('priorpath-sandbox-ehr')
      .setAudience(aud)
      .setIssuedAt(Math.floor(now() / 1000))
      .setExpirationTime(Math.floor(now() / 1000) + 300)
      .setJti(randomUUID())
      .sign(cdsKeys.privateKey);

  const cdsClient: SandboxCdsClient = {
    iss: cdsIss,
    jwks: { keys: [cdsJwk] },
    sign: (aud: string) => signAsEhr(cdsIss, aud),
  };

  const payerClient: SandboxPayerClient = {
    clientId: 'priorpath-sandbox-ehr',
    jwks: { keys: [cdsJwk] },
    signAssertion: (aud: string) => signAsEhr('priorpath-sandbox-ehr', aud),
  };

  const endpoints = {
    authorizeUrl: `${authBase}/authorize`,
    tokenUrl: `${authBase}/token`,
    capabilities: CAPABILITIES,
  };
  const smartConfiguration = {
    issuer: authBase,
    jwks_uri: `${authBase}/jwks`,
    authorization_endpoint: endpoints.authorizeUrl,
    token_endpoint: endpoints.tokenUrl,
    token_endpoint_auth_methods_supported: ['none'],
    grant_types_supported: ['authorization_code'],
    response_types_supported: ['code'],
    scopes_supported: SCOPES,
    code_challenge_methods_supported: ['S256'],
    capabilities: CAPABILITIES,
  };

  const verifyAccessToken = async (token: string) => {
    const { payload } = await jwtVerify(token, tokenKeys.publicKey, {
      issuer: authBase,
      audience: fhirBase,
      algorithms: ['ES384'],
      currentDate: new Date(now()),
    });
    if (!payload.jti || revoked.has(payload.jti)) throw new Error('access token revoked');
    return {
      patient: typeof payload.patient === 'string' ? payload.patient : undefined,
      scope: typeof payload.scope === 'string' ? payload.scope : '',
      clientId: typeof payload.client_id === 'string' ? payload.client_id : undefined,
    };
  };

  return {
    router,
    smartConfiguration,
    endpoints,
    cdsClient,
    payerClient,
    createLaunch,
    async checkAccess(authorization, needs) {
      const m = /^Bearer +([^\s]+) *$/i.exec(authorization);
      if (!m) return 'invalid-token';
      let granted: Awaited<ReturnType<typeof verifyAccessToken>>;
      try {
        granted = await verifyAccessToken(m[1]);
      } catch {
        return 'invalid-token';
      }
      if (!needs.every(([type, permission]) => scopeAllows(granted.scope, type, permission))) return 'insufficient-scope';
      return patientBound(granted.scope, needs) ? { patient: granted.patient } : 'ok';
    },
    verifyAccessToken,
  };
}
