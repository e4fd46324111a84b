/**
 * Verification of the bearer JWT a CDS Client sends with every CDS Hooks request.
 *
 * Implements CDS Hooks 2.0 §Trusting CDS Clients (as profiled by Da Vinci CRD
 * security.md): the JWT is signed with an asymmetric key (ES384 or RS384; RS256 also
 * accepted), its issuer must be a pre-configured trusted client, a `jku` header must
 * match that client's pre-configured JWK Set URL, and `aud`, `exp`, `iat`, `jti` are
 * required and checked. `jti` is recorded (in storage when the app gives one, shared by replicas on PostgreSQL) to
 * block replays.
 *
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 * @see https://hl7.org/fhir/us/davinci-crd/security.html
 * @module
 */
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors, jwtVerify } from 'jose';
import type { JWTPayload, JWTVerifyGetKey, ProtectedHeaderParameters } from 'jose';
import { ReplayCache } from './replay-cache.js';
import { readJwksFile } from './key-source.js';
import { validateTrustedClients } from './trusted-clients.js';
import type { TrustedClient } from './trusted-clients.js';
import type { JtiRecord } from '../storage/storage.js';

/**
 * Signature algorithms accepted for CDS Client JWTs. CDS Hooks 2.0 requires ES384 and
 * RS384 support; RS256 is tolerated for older clients. `none` and all symmetric (HS*)
 * algorithms are rejected before any key lookup.
 *
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 */
export const ALLOWED_JWT_ALGORITHMS = ['ES384', 'RS384', 'RS256'] as const;

/**
 * Any rejection of a CDS Client JWT. `reason` is for server logs only; callers must
 * answer every AuthError with the same generic 401 so attackers learn nothing.
 * `message` is deliberately generic; the underlying jose error (if any) is in `cause`.
 *
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 */
export class AuthError extends Error {
  /**
   * @param reason - precise, log-only explanation (e.g. `'replayed jti'`)
   * @param options - optional `cause` (original error)
   */
  constructor(
    public readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super('CDS client JWT rejected', options);
    this.name = 'AuthError';
  }
}

/**
 * Identity of a successfully authenticated CDS Client request.
 *
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 */
export interface VerifiedClient {
  /** Trusted issuer (`iss` claim), equal to a configured {@link TrustedClient.iss}. */
  iss: string;
  /** The token's `jti` (already recorded in the replay cache). */
  jti: string;
  /** `kid` of the key that verified the signature. */
  kid: string;
  /** Signature algorithm used (one of {@link ALLOWED_JWT_ALGORITHMS}). */
  alg: string;
}

/**
 * Options for {@link createJwtVerifier}.
 *
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 */
export interface JwtVerifierOptions {
  /** Trusted clients (typically `parseTrustedClients(process.env.CDS_TRUSTED_CLIENTS)`). */
  trustedClients: TrustedClient[];
  /** Allowed clock skew in seconds for `exp`/`iat`/`nbf` (default 60). */
  clockToleranceSec?: number;
  /** Clock in epoch milliseconds (default `Date.now`); used for claims and the replay cache. */
  now?: () => number;
  /** Timeout for fetching a configured `jku` JWK Set, in ms (default 2000). */
  fetchTimeoutMs?: number;
  /**
   * Where accepted `jti`s are recorded (the app passes `storage.recordJti`, so replicas sharing PostgreSQL share the
   * record). Resolves `false` for a replay. Default: an in-process {@link ReplayCache}.
   */
  recordJti?: JtiRecorder;
  /**
   * `true` accepts a `jti` seen before (`CDS_JTI_REPLAY=allow`: a conformance kit that reuses one JWT for several
   * hook calls). Every other check still applies. Default `false`.
   */
  allowReplay?: boolean;
}

/**
 * Records a JWT id until `expiresAtMs`; resolves `false` when it is a replay (same issuer and jti, unexpired).
 * Rejects only when the record cannot be reached: the caller then fails closed.
 */
export type JtiRecorder = (r: JtiRecord, nowMs: number) => Promise<boolean>;

/**
 * The replay record could not be consulted (storage down). Not an authentication failure: the caller answers 503 and
 * the client may retry with a fresh token.
 */
export class ReplayCheckUnavailable extends Error {
  constructor(options?: { cause?: unknown }) {
    super('jti replay record unavailable', options);
    this.name = 'ReplayCheckUnavailable';
  }
}

/** An in-process recorder over a {@link ReplayCache} (one process; tests and the default). */
export function memoryJtiRecorder(options: { clockToleranceSec?: number; now?: () => number } = {}): JtiRecorder {
  // The record's expiry already includes the tolerance, so the cache adds none.
  const cache = new ReplayCache({ clockToleranceSec: 0, now: options.now });
  return async (r) => cache.checkAndRemember(r.issuer, r.jti, r.expiresAtMs / 1000);
}

/**
 * A CDS Client JWT verifier.
 *
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 */
export interface JwtVerifier {
  /**
   * Verifies an `Authorization` header value for a call to the CDS Service at `audience`.
   *
   * @param authorizationHeader - raw header value, expected `Bearer <compact JWS>`
   * @param audience - the CDS Service endpoint URL being called (the required `aud` value); several when more than
   *   one URL names the endpoint (a feedback call: its own URL or the service's)
   * @returns the authenticated client
   * @throws AuthError on any failure (never a jose error); ReplayCheckUnavailable when the replay record is down
   */
  verify(authorizationHeader: string | undefined, audience: string | string[]): Promise<VerifiedClient>;
}

const ALLOWED = new Set<string>(ALLOWED_JWT_ALGORITHMS);
const BEARER = /^Bearer +([^\s]+) *$/i;
const MAX_JTI_LENGTH = 256;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

interface ClientEntry {
  client: TrustedClient;
  keys: JWTVerifyGetKey;
}

/**
 * Creates a verifier for CDS Client bearer JWTs.
 *
 * Key sources per trusted client: inline `jwks`; `jwksFile` (read synchronously here,
 * relative to `process.cwd()`); or the configured `jku`, fetched lazily with
 * `jose.createRemoteJWKSet` (cached, 30 s cooldown between refetches on unknown `kid`).
 * A `jku` in a token header is never fetched: it is only compared for exact equality
 * with the configured one.
 *
 * @throws Error (not AuthError) at creation time for invalid configuration, e.g. an
 *   unreadable/invalid `jwksFile` or a malformed client list.
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 */
export function createJwtVerifier(opts: JwtVerifierOptions): JwtVerifier {
  const clockToleranceSec = opts.clockToleranceSec ?? 60;
  if (!Number.isFinite(clockToleranceSec) || clockToleranceSec < 0) {
    throw new RangeError('clockToleranceSec must be a non-negative number');
  }
  const now = opts.now ?? Date.now;
  const fetchTimeoutMs = opts.fetchTimeoutMs ?? 2000;
  const recordJti = opts.recordJti ?? memoryJtiRecorder({ now });

  const clients = new Map<string, ClientEntry>();
  for (const client of validateTrustedClients(opts.trustedClients, 'trustedClients')) {
    clients.set(client.iss, { client, keys: buildKeySource(client, fetchTimeoutMs) });
  }

  async function verify(authorizationHeader: string | undefined, audience: string | string[]): Promise<VerifiedClient> {
    if (typeof authorizationHeader !== 'string' || authorizationHeader === '') {
      throw new AuthError('missing Authorization header');
    }
    const m = BEARER.exec(authorizationHeader);
    if (!m) throw new AuthError('Authorization scheme is not Bearer');
    const token = m[1];
    if (!COMPACT_JWS.test(token)) throw new AuthError('bearer token is not a compact JWS');

    let header: ProtectedHeaderParameters;
    try {
      header = decodeProtectedHeader(token);
    } catch (err) {
      throw new AuthError(`undecodable JWS header: ${describe(err)}`, { cause: err });
    }
    const { alg, typ, kid, jku } = header;
    if (typeof alg !== 'string' || !ALLOWED.has(alg)) {
      throw new AuthError(`alg ${JSON.stringify(alg)} not allowed (expected ${ALLOWED_JWT_ALGORITHMS.join('/')})`);
    }
    if (typeof typ !== 'string' || typ.toLowerCase() !== 'jwt') {
      throw new AuthError(`typ ${JSON.stringify(typ)} is not JWT`);
    }
    if (typeof kid !== 'string' || kid === '') throw new AuthError('kid header missing');

    let unverified: JWTPayload;
    try {
      unverified = decodeJwt(token);
    } catch (err) {
      throw new AuthError(`undecodable JWT payload: ${describe(err)}`, { cause: err });
    }
    const iss = unverified.iss;
    if (typeof iss !== 'string') throw new AuthError('iss claim missing');
    const entry = clients.get(iss);
    if (!entry) throw new AuthError(`untrusted iss ${JSON.stringify(iss)}`);

    if (jku !== undefined) {
      if (entry.client.jku === undefined) {
        throw new AuthError(`jku header present but no jku configured for iss ${JSON.stringify(iss)}`);
      }
      if (jku !== entry.client.jku) {
        throw new AuthError(`jku ${JSON.stringify(jku)} does not match configured jku for iss ${JSON.stringify(iss)}`);
      }
    }

    const currentDate = new Date(now());
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, entry.keys, {
        algorithms: [...ALLOWED_JWT_ALGORITHMS],
        issuer: iss,
        audience,
        clockTolerance: clockToleranceSec,
        currentDate,
        requiredClaims: ['exp', 'iat', 'jti'],
      }));
    } catch (err) {
      throw new AuthError(`jwt verification failed: ${describe(err)}`, { cause: err });
    }

    // jose validated exp (with tolerance) and that iat/exp are numbers; it only checks a
    // future iat when maxTokenAge is set, so do it here.
    const nowSec = currentDate.getTime() / 1000;
    if (typeof payload.iat !== 'number' || payload.iat > nowSec + clockToleranceSec) {
      throw new AuthError('iat is in the future beyond clock tolerance');
    }
    if (typeof payload.exp !== 'number') throw new AuthError('exp claim missing');
    const { jti } = payload;
    if (typeof jti !== 'string' || jti === '') throw new AuthError('jti claim missing or not a non-empty string');

    if (jti.length > MAX_JTI_LENGTH) throw new AuthError(`jti longer than ${MAX_JTI_LENGTH} characters`);

    let fresh: boolean;
    try {
      fresh = await recordJti({ issuer: `cds:${iss}`, jti, expiresAtMs: (payload.exp + clockToleranceSec) * 1000 }, currentDate.getTime());
    } catch (err) {
      throw new ReplayCheckUnavailable({ cause: err });
    }
    if (!fresh && !opts.allowReplay) throw new AuthError('replayed jti');

    return { iss, jti, kid, alg };
  }

  return { verify };
}

/**
 * The verification keys of one client: inline `jwks`, a `jwksFile` read now, or its registered `jku` fetched lazily
 * (with a timeout, cached, refetched on an unknown `kid` at most every 30 s). Shared by CDS client and payer API
 * client verification.
 *
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 * @see https://hl7.org/fhir/smart-app-launch/backend-services.html#registering-a-client-communicating-public-keys
 */
export function buildKeySource(client: TrustedClient, fetchTimeoutMs: number): JWTVerifyGetKey {
  const where = `trusted client "${client.iss}"`;
  try {
    if (client.jwks !== undefined) return createLocalJWKSet(client.jwks);
    if (client.jwksFile !== undefined) return createLocalJWKSet(readJwksFile(client.jwksFile, where));
    if (client.jku !== undefined) {
      return createRemoteJWKSet(new URL(client.jku), {
        timeoutDuration: fetchTimeoutMs,
        cooldownDuration: 30_000,
      });
    }
  } catch (err) {
    if (err instanceof errors.JOSEError) {
      throw new Error(`${where}: invalid JWK Set: ${err.message}`, { cause: err });
    }
    throw err;
  }
  throw new Error(`${where}: no key source (jku, jwks or jwksFile)`);
}

function describe(err: unknown): string {
  if (err instanceof errors.JOSEError) {
    const claim = err instanceof errors.JWTClaimValidationFailed ? ` [${err.claim}: ${err.reason}]` : '';
    return `${err.code}: ${err.message}${claim}`;
  }
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
