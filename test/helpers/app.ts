import { Writable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import type { JWK } from 'jose';
import { createApp } from '../../src/app.js';
import type { AppDeps } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { loadContent } from '../../src/content.js';
import { createLogger } from '../../src/logger.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { repoRoot } from './stories.js';

export const BASE = 'http://priorpath.test';
export const ISS = 'https://ehr.example.org';

let content: ReturnType<typeof loadContent> | undefined;
/** Content is immutable, so tests share one load. */
export function testContent() {
  content ??= loadContent({ root: repoRoot, canonicalBase: 'https://priorpath.dev/fhir' });
  return content;
}

export interface TestKeys {
  privateKey: CryptoKey;
  jwk: JWK;
  kid: string;
}

export async function makeKeys(alg: 'ES384' | 'RS384' = 'ES384'): Promise<TestKeys> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = randomUUID();
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { privateKey: privateKey as CryptoKey, jwk, kid };
}

/** A CDS Hooks client JWT for the given service path, as a real EHR would sign it. */
export async function signFor(keys: TestKeys, path: string, overrides: { iss?: string; aud?: string; jti?: string } = {}): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES384', typ: 'JWT', kid: keys.kid })
    .setIssuer(overrides.iss ?? ISS)
    .setAudience(overrides.aud ?? `${BASE}${path}`)
    .setIssuedAt()
    .setExpirationTime('5m')
    .setJti(overrides.jti ?? randomUUID())
    .sign(keys.privateKey);
}

/** Builds the app with a test configuration; returns it with its storage and captured log lines. */
export function buildApp(
  opts: {
    env?: Record<string, string>;
    keys?: TestKeys;
    fetchImpl?: AppDeps['fetchImpl'];
    /** The service's today (YYYY-MM-DD); a function for a test whose days pass between calls. */
    today?: string | (() => string);
    storage?: MemoryStorage;
    content?: AppDeps['content'];
    notifyFetch?: AppDeps['notifyFetch'];
    resolveHost?: AppDeps['resolveHost'];
    storageOverride?: AppDeps['storage'];
    isDraining?: AppDeps['isDraining'];
  } = {},
) {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  const env: Record<string, string> = {
    PUBLIC_BASE_URL: BASE,
    LOG_LEVEL: 'info',
    EHR_TIMEOUT_MS: '300',
    ...(opts.keys ? { CDS_TRUSTED_CLIENTS: JSON.stringify([{ iss: ISS, jwks: { keys: [opts.keys.jwk] } }]) } : { CDS_AUTH: 'open' }),
    // An explicit open payer API: suites about DTR and PAS behaviour call /fhir without tokens; the SMART Backend
    // Services gate has its own suite (test/http/payer-api-auth.test.ts), which sets PAYER_API_AUTH=required.
    ...(opts.env?.SANDBOX === 'off' || opts.env?.NODE_ENV === 'production' ? {} : { PAYER_API_AUTH: 'open' }),
    ...opts.env,
  };
  const config = loadConfig(env);
  // A second app over the same storage stands for a second replica sharing one database.
  const storage = opts.storage ?? new MemoryStorage();
  const logger = createLogger(config.logLevel, sink);
  const app = createApp({
    config,
    content: opts.content ?? testContent(),
    storage: opts.storageOverride ?? storage,
    logger,
    fetchImpl: opts.fetchImpl,
    ...(opts.isDraining ? { isDraining: opts.isDraining } : {}),
    today: typeof opts.today === 'function' ? opts.today : opts.today ? () => opts.today as string : undefined,
    ...(opts.notifyFetch ? { notifyFetch: opts.notifyFetch } : {}),
    ...(opts.resolveHost ? { resolveHost: opts.resolveHost } : {}),
  });
  return { app, storage, lines, config };
}
