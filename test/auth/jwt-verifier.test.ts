/**
 * CDS Client JWT verification — CDS Hooks 2.0 §Trusting CDS Clients.
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, base64url, errors, exportJWK, exportSPKI, generateKeyPair } from 'jose';
import type { CryptoKey, JWK, JWTPayload } from 'jose';
import { AuthError, createJwtVerifier } from '../../src/auth/jwt-verifier.js';
import type { TrustedClient } from '../../src/auth/trusted-clients.js';

const AUD = 'https://payer.example/cds-services/order-sign-crd';
const ISS_INLINE = 'https://ehr.example/inline';
const ISS_JKU = 'https://ehr.example/jku';
const ISS_FILE = 'https://ehr.example/file';
const ISS_UNTRUSTED = 'https://evil.example';

interface KeyPair {
  publicKey: CryptoKey;
  privateKey: CryptoKey;
}

let es: KeyPair;
let rs: KeyPair;
let rs256: KeyPair;
let attackerEs: KeyPair;
let remoteEs: KeyPair;
let publicJwks: { keys: JWK[] };
let remoteJwks: { keys: JWK[] };

let server: Server;
let base = '';
const requests: string[] = [];
let tmp = '';

/** Fixed verifier clock (ms); tokens are minted relative to it. */
const clock = Date.UTC(2026, 0, 15, 12, 0, 0);
const nowSec = Math.floor(clock / 1000);

beforeAll(async () => {
  es = await generateKeyPair('ES384');
  rs = await generateKeyPair('RS384');
  rs256 = await generateKeyPair('RS256');
  attackerEs = await generateKeyPair('ES384');
  remoteEs = await generateKeyPair('ES384');
  publicJwks = {
    keys: [
      { ...(await exportJWK(es.publicKey)), kid: 'es-1', use: 'sig' },
      { ...(await exportJWK(rs.publicKey)), kid: 'rs-1', use: 'sig' },
      { ...(await exportJWK(rs256.publicKey)), kid: 'rs256-1', use: 'sig' },
    ],
  };
  remoteJwks = { keys: [{ ...(await exportJWK(remoteEs.publicKey)), kid: 'remote-1', use: 'sig' }] };

  const attackerJwks = { keys: [{ ...(await exportJWK(attackerEs.publicKey)), kid: 'es-1', use: 'sig' }] };

  server = createServer((req, res) => {
    requests.push(req.url ?? '');
    // '/evil.json' would serve the attacker's key: only the "never fetched" rule protects us.
    const body = req.url === '/jwks.json' ? remoteJwks : req.url === '/evil.json' ? attackerJwks : undefined;
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  tmp = mkdtempSync(join(tmpdir(), 'priorpath-auth-'));
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((done) => server.close(() => done()));
  rmSync(tmp, { recursive: true, force: true });
});

function trustedClients(): TrustedClient[] {
  return [
    { iss: ISS_INLINE, jwks: publicJwks },
    { iss: ISS_JKU, jku: `${base}/jwks.json` },
  ];
}

function newVerifier(extra: Partial<Parameters<typeof createJwtVerifier>[0]> = {}) {
  return createJwtVerifier({ trustedClients: trustedClients(), now: () => clock, ...extra });
}

interface SignOpts {
  alg?: string;
  key?: CryptoKey | Uint8Array;
  kid?: string | undefined;
  typ?: string | undefined;
  jku?: string;
  claims?: Record<string, unknown>;
}

function claims(overrides: Record<string, unknown> = {}): JWTPayload {
  return {
    iss: ISS_INLINE,
    aud: AUD,
    iat: nowSec,
    exp: nowSec + 300,
    jti: randomUUID(),
    ...overrides,
  };
}

async function sign(opts: SignOpts = {}): Promise<string> {
  const header: Record<string, unknown> = {
    alg: opts.alg ?? 'ES384',
    typ: 'typ' in opts ? opts.typ : 'JWT',
    kid: 'kid' in opts ? opts.kid : 'es-1',
  };
  if (opts.jku !== undefined) header.jku = opts.jku;
  for (const k of Object.keys(header)) if (header[k] === undefined) delete header[k];
  return new SignJWT(claims(opts.claims)).setProtectedHeader(header as { alg: string }).sign(opts.key ?? es.privateKey);
}

async function bearer(opts: SignOpts = {}): Promise<string> {
  return `Bearer ${await sign(opts)}`;
}

/** Asserts rejection with AuthError (never a raw jose error) and a reason matching `reason`. */
async function expectAuthError(p: Promise<unknown>, reason: RegExp): Promise<AuthError> {
  const err: unknown = await p.then(
    () => {
      throw new Error('expected verification to fail, but it succeeded');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AuthError);
  expect(err).not.toBeInstanceOf(errors.JOSEError);
  expect((err as AuthError).reason).toMatch(reason);
  expect((err as AuthError).message).toBe('CDS client JWT rejected');
  return err as AuthError;
}

describe('createJwtVerifier — accepted tokens', () => {
  it('accepts a valid ES384 token from an inline-JWKS client and returns iss/jti/kid/alg', async () => {
    const v = newVerifier();
    const jti = randomUUID();
    const result = await v.verify(await bearer({ claims: { jti } }), AUD);
    expect(result).toEqual({ iss: ISS_INLINE, jti, kid: 'es-1', alg: 'ES384' });
  });

  it('accepts a valid RS384 token', async () => {
    const v = newVerifier();
    const result = await v.verify(await bearer({ alg: 'RS384', kid: 'rs-1', key: rs.privateKey }), AUD);
    expect(result).toMatchObject({ iss: ISS_INLINE, kid: 'rs-1', alg: 'RS384' });
  });

  it('accepts RS256 (legacy) signed with an RSA key', async () => {
    const v = newVerifier();
    const result = await v.verify(await bearer({ alg: 'RS256', kid: 'rs256-1', key: rs256.privateKey }), AUD);
    expect(result.alg).toBe('RS256');
  });

  it('accepts aud as an array containing the service URL', async () => {
    const v = newVerifier();
    const token = await bearer({ claims: { aud: ['https://other.example/cds-services', AUD] } });
    await expect(v.verify(token, AUD)).resolves.toMatchObject({ iss: ISS_INLINE });
  });

  it('treats typ case-insensitively ("jwt")', async () => {
    const v = newVerifier();
    await expect(v.verify(await bearer({ typ: 'jwt' }), AUD)).resolves.toMatchObject({ kid: 'es-1' });
  });

  it('accepts the bearer scheme case-insensitively', async () => {
    const v = newVerifier();
    await expect(v.verify(`bearer ${await sign()}`, AUD)).resolves.toMatchObject({ iss: ISS_INLINE });
  });

  it('accepts a token whose exp passed 30 s ago (within the 60 s clock tolerance)', async () => {
    const v = newVerifier();
    const token = await bearer({ claims: { iat: nowSec - 330, exp: nowSec - 30 } });
    await expect(v.verify(token, AUD)).resolves.toMatchObject({ iss: ISS_INLINE });
  });

  it('accepts a token whose iat is 30 s in the future (within the 60 s clock tolerance)', async () => {
    const v = newVerifier();
    const token = await bearer({ claims: { iat: nowSec + 30, exp: nowSec + 330 } });
    await expect(v.verify(token, AUD)).resolves.toMatchObject({ iss: ISS_INLINE });
  });

  it('fetches the configured jku from a local server and verifies with it (with or without jku header)', async () => {
    const v = newVerifier();
    const before = requests.filter((u) => u === '/jwks.json').length;
    const c = { iss: ISS_JKU };
    const withHeader = await v.verify(
      await bearer({ key: remoteEs.privateKey, kid: 'remote-1', jku: `${base}/jwks.json`, claims: c }),
      AUD,
    );
    expect(withHeader).toMatchObject({ iss: ISS_JKU, kid: 'remote-1', alg: 'ES384' });
    const withoutHeader = await v.verify(await bearer({ key: remoteEs.privateKey, kid: 'remote-1', claims: c }), AUD);
    expect(withoutHeader.iss).toBe(ISS_JKU);
    // The JWK Set is cached per client: one fetch for both tokens.
    expect(requests.filter((u) => u === '/jwks.json').length - before).toBe(1);
  });

  it('loads keys from a jwksFile resolved relative to process.cwd()', async () => {
    const file = join(tmp, 'ehr-jwks.json');
    writeFileSync(file, JSON.stringify(publicJwks));
    const v = createJwtVerifier({
      trustedClients: [{ iss: ISS_FILE, jwksFile: relative(process.cwd(), file) }],
      now: () => clock,
    });
    await expect(v.verify(await bearer({ claims: { iss: ISS_FILE } }), AUD)).resolves.toMatchObject({
      iss: ISS_FILE,
    });
  });
});

describe('createJwtVerifier — attack matrix (all rejected with AuthError)', () => {
  it('rejects alg "none" (unsigned token)', async () => {
    const v = newVerifier();
    const enc = (o: object) => base64url.encode(JSON.stringify(o));
    const token = `${enc({ alg: 'none', typ: 'JWT', kid: 'es-1' })}.${enc(claims())}.`;
    await expectAuthError(v.verify(`Bearer ${token}`, AUD), /alg "none" not allowed/);
  });

  it('rejects a disallowed alg before any key lookup (no jku fetch)', async () => {
    const v = newVerifier();
    const before = requests.length;
    const enc = (o: object) => base64url.encode(JSON.stringify(o));
    const none = `${enc({ alg: 'none', typ: 'JWT', kid: 'remote-1' })}.${enc(claims({ iss: ISS_JKU }))}.`;
    await expectAuthError(v.verify(`Bearer ${none}`, AUD), /alg "none" not allowed/);
    const hs = await bearer({ alg: 'HS256', kid: 'remote-1', key: new Uint8Array(32), claims: { iss: ISS_JKU } });
    await expectAuthError(v.verify(hs, AUD), /alg "HS256" not allowed/);
    expect(requests.length - before).toBe(0);
  });

  it('rejects HS256 signed with the public key bytes as the HMAC secret (algorithm confusion)', async () => {
    const v = newVerifier();
    for (const [pub, kid] of [
      [rs.publicKey, 'rs-1'],
      [es.publicKey, 'es-1'],
    ] as const) {
      const pem = new TextEncoder().encode(await exportSPKI(pub));
      const token = await bearer({ alg: 'HS256', kid, key: pem });
      await expectAuthError(v.verify(token, AUD), /alg "HS256" not allowed/);
      const jwkBytes = new TextEncoder().encode(JSON.stringify(await exportJWK(pub)));
      await expectAuthError(
        v.verify(await bearer({ alg: 'HS384', kid, key: jwkBytes }), AUD),
        /alg "HS384" not allowed/,
      );
    }
  });

  it('rejects other asymmetric algorithms not on the allow-list (ES256)', async () => {
    const v = newVerifier();
    const p256 = await generateKeyPair('ES256');
    await expectAuthError(v.verify(await bearer({ alg: 'ES256', key: p256.privateKey }), AUD), /alg "ES256"/);
  });

  it('rejects a token for a different audience', async () => {
    const v = newVerifier();
    const token = await bearer({ claims: { aud: 'https://other-payer.example/cds-services/crd' } });
    await expectAuthError(v.verify(token, AUD), /aud/);
  });

  it('rejects a token without aud', async () => {
    const v = newVerifier();
    await expectAuthError(v.verify(await bearer({ claims: { aud: undefined } }), AUD), /aud/);
  });

  it('rejects an expired token (exp 90 s ago, beyond the 60 s tolerance)', async () => {
    const v = newVerifier();
    const token = await bearer({ claims: { iat: nowSec - 400, exp: nowSec - 90 } });
    await expectAuthError(v.verify(token, AUD), /ERR_JWT_EXPIRED/);
  });

  it('rejects a token whose iat is more than 60 s in the future', async () => {
    const v = newVerifier();
    const token = await bearer({ claims: { iat: nowSec + 120, exp: nowSec + 420 } });
    await expectAuthError(v.verify(token, AUD), /iat is in the future/);
  });

  it('rejects a replayed jti, but accepts the same jti from a different issuer', async () => {
    const file = join(tmp, 'replay-jwks.json');
    writeFileSync(file, JSON.stringify(publicJwks));
    const v = createJwtVerifier({
      trustedClients: [...trustedClients(), { iss: ISS_FILE, jwksFile: file }],
      now: () => clock,
    });
    const jti = randomUUID();
    const token = await bearer({ claims: { jti } });
    await expect(v.verify(token, AUD)).resolves.toMatchObject({ jti });
    await expectAuthError(v.verify(token, AUD), /^replayed jti$/);
    // Fresh token, same jti: still a replay.
    await expectAuthError(v.verify(await bearer({ claims: { jti, iat: nowSec - 1 } }), AUD), /^replayed jti$/);
    await expect(v.verify(await bearer({ claims: { jti, iss: ISS_FILE } }), AUD)).resolves.toMatchObject({
      iss: ISS_FILE,
    });
  });

  it('does not burn a jti when the token fails verification', async () => {
    const v = newVerifier();
    const jti = randomUUID();
    await expectAuthError(v.verify(await bearer({ key: attackerEs.privateKey, claims: { jti } }), AUD), /signature/);
    await expect(v.verify(await bearer({ claims: { jti } }), AUD)).resolves.toMatchObject({ jti });
  });

  it('rejects a token from an untrusted iss', async () => {
    const v = newVerifier();
    await expectAuthError(v.verify(await bearer({ claims: { iss: ISS_UNTRUSTED } }), AUD), /untrusted iss/);
  });

  it('rejects a token without iss', async () => {
    const v = newVerifier();
    await expectAuthError(v.verify(await bearer({ claims: { iss: undefined } }), AUD), /iss claim missing/);
  });

  it('rejects a token whose jku differs from the configured jku and never fetches it', async () => {
    const v = newVerifier();
    const before = requests.length;
    const evil = `${base}/evil.json`;
    // Client configured with a jku: header jku must equal it exactly.
    await expectAuthError(
      v.verify(await bearer({ key: attackerEs.privateKey, jku: evil, claims: { iss: ISS_JKU } }), AUD),
      /jku .* does not match/,
    );
    // Near-miss variants (string equality, not URL normalisation).
    await expectAuthError(
      v.verify(
        await bearer({
          key: remoteEs.privateKey,
          kid: 'remote-1',
          jku: `${base}/jwks.json?`,
          claims: { iss: ISS_JKU },
        }),
        AUD,
      ),
      /does not match/,
    );
    // Client configured with inline keys: any jku header is rejected.
    await expectAuthError(v.verify(await bearer({ key: attackerEs.privateKey, jku: evil }), AUD), /no jku configured/);
    expect(requests.length - before).toBe(0);
    expect(requests).not.toContain('/evil.json');
  });

  it('rejects a token without kid', async () => {
    const v = newVerifier();
    await expectAuthError(v.verify(await bearer({ kid: undefined }), AUD), /kid header missing/);
  });

  it('rejects a token whose kid is not in the client JWK Set', async () => {
    const v = newVerifier();
    await expectAuthError(v.verify(await bearer({ kid: 'unknown-kid' }), AUD), /ERR_JWKS_NO_MATCHING_KEY/);
  });

  it('rejects a token whose kid is unknown at a remote jku', async () => {
    const v = newVerifier();
    const token = await bearer({ key: remoteEs.privateKey, kid: 'not-there', claims: { iss: ISS_JKU } });
    await expectAuthError(v.verify(token, AUD), /ERR_JWKS_NO_MATCHING_KEY/);
  });

  it('rejects a token whose kid names a key of a different type than alg (RS384 with the EC kid)', async () => {
    const v = newVerifier();
    await expectAuthError(
      v.verify(await bearer({ alg: 'RS384', kid: 'es-1', key: rs.privateKey }), AUD),
      /ERR_JWKS_NO_MATCHING_KEY/,
    );
  });

  it('rejects a token without jti', async () => {
    const v = newVerifier();
    await expectAuthError(v.verify(await bearer({ claims: { jti: undefined } }), AUD), /jti/);
  });

  it('rejects a token with an empty or non-string jti', async () => {
    const v = newVerifier();
    await expectAuthError(v.verify(await bearer({ claims: { jti: '' } }), AUD), /jti/);
    await expectAuthError(v.verify(await bearer({ claims: { jti: 42 } }), AUD), /jti/);
  });

  it('rejects a token without exp', async () => {
    const v = newVerifier();
    await expectAuthError(v.verify(await bearer({ claims: { exp: undefined } }), AUD), /exp/);
  });

  it('rejects a token without iat', async () => {
    const v = newVerifier();
    await expectAuthError(v.verify(await bearer({ claims: { iat: undefined } }), AUD), /iat/);
  });

  it('rejects a missing or empty Authorization header', async () => {
    const v = newVerifier();
    await expectAuthError(v.verify(undefined, AUD), /missing Authorization header/);
    await expectAuthError(v.verify('', AUD), /missing Authorization header/);
  });

  it('rejects the Basic scheme', async () => {
    const v = newVerifier();
    const basic = `Basic ${Buffer.from('ehr:secret').toString('base64')}`;
    await expectAuthError(v.verify(basic, AUD), /not Bearer/);
    await expectAuthError(v.verify(await sign(), AUD), /not Bearer/);
  });

  it('rejects garbage bearer tokens', async () => {
    const v = newVerifier();
    for (const t of ['Bearer', 'Bearer ', 'Bearer abc', 'Bearer a.b', 'Bearer a.b.c.d', 'Bearer !!.??.%%']) {
      await expectAuthError(v.verify(t, AUD), /not Bearer|not a compact JWS/);
    }
    await expectAuthError(v.verify('Bearer eyJub3QiOiJqc29u.e30.', AUD), /header|alg/);
    await expectAuthError(v.verify('Bearer Zm9v.YmFy.YmF6', AUD), /undecodable JWS header/);
  });

  it('rejects a token whose payload is not JSON', async () => {
    const v = newVerifier();
    const h = base64url.encode(JSON.stringify({ alg: 'ES384', typ: 'JWT', kid: 'es-1' }));
    await expectAuthError(v.verify(`Bearer ${h}.${base64url.encode('not json')}.AAAA`, AUD), /undecodable JWT payload/);
  });

  it('rejects a token signed by another key of the right type claiming a trusted kid', async () => {
    const v = newVerifier();
    await expectAuthError(
      v.verify(await bearer({ key: attackerEs.privateKey, kid: 'es-1' }), AUD),
      /ERR_JWS_SIGNATURE_VERIFICATION_FAILED/,
    );
    const otherRsa = await generateKeyPair('RS384');
    await expectAuthError(
      v.verify(await bearer({ alg: 'RS384', kid: 'rs-1', key: otherRsa.privateKey }), AUD),
      /ERR_JWS_SIGNATURE_VERIFICATION_FAILED/,
    );
  });

  it('rejects a tampered payload (claims changed after signing)', async () => {
    const v = newVerifier();
    const [h, , s] = (await sign()).split('.');
    const forged = base64url.encode(JSON.stringify(claims({ aud: AUD, sub: 'admin' })));
    await expectAuthError(v.verify(`Bearer ${h}.${forged}.${s}`, AUD), /ERR_JWS_SIGNATURE_VERIFICATION_FAILED/);
  });

  it('rejects a typ other than JWT, or a missing typ', async () => {
    const v = newVerifier();
    await expectAuthError(v.verify(await bearer({ typ: 'at+jwt' }), AUD), /typ "at\+jwt" is not JWT/);
    await expectAuthError(v.verify(await bearer({ typ: undefined }), AUD), /typ undefined is not JWT/);
  });

  it('rejects a token that is not yet valid (nbf beyond tolerance)', async () => {
    const v = newVerifier();
    await expectAuthError(v.verify(await bearer({ claims: { nbf: nowSec + 600 } }), AUD), /nbf/);
  });

  it('rejects everything when no clients are trusted', async () => {
    const v = createJwtVerifier({ trustedClients: [], now: () => clock });
    await expectAuthError(v.verify(await bearer(), AUD), /untrusted iss/);
  });

  it('maps an unusable configured jku (HTTP 404, connection refused) to AuthError', async () => {
    const token = await bearer({ key: remoteEs.privateKey, kid: 'remote-1', claims: { iss: ISS_JKU } });
    for (const jku of [`${base}/not-found.json`, 'http://127.0.0.1:1/jwks.json']) {
      const v = createJwtVerifier({ trustedClients: [{ iss: ISS_JKU, jku }], now: () => clock, fetchTimeoutMs: 500 });
      await expectAuthError(v.verify(token, AUD), /jwt verification failed/);
    }
  });
});

describe('createJwtVerifier — configuration errors', () => {
  it('throws a plain Error at creation for an unreadable jwksFile', () => {
    expect(() => createJwtVerifier({ trustedClients: [{ iss: ISS_FILE, jwksFile: join(tmp, 'nope.json') }] })).toThrow(
      /cannot read jwksFile/,
    );
  });

  it('throws at creation for a jwksFile that is not a JWK Set or holds a private key', async () => {
    const bad = join(tmp, 'bad.json');
    writeFileSync(bad, JSON.stringify({ nope: true }));
    expect(() => createJwtVerifier({ trustedClients: [{ iss: ISS_FILE, jwksFile: bad }] })).toThrow(/JWK Set/);
    const priv = join(tmp, 'priv.json');
    const extractable = await generateKeyPair('ES384', { extractable: true });
    writeFileSync(priv, JSON.stringify({ keys: [{ ...(await exportJWK(extractable.privateKey)), kid: 'x' }] }));
    expect(() => createJwtVerifier({ trustedClients: [{ iss: ISS_FILE, jwksFile: priv }] })).toThrow(/private/);
  });

  it('throws at creation for duplicate issuers in a hand-built client list', () => {
    expect(() =>
      createJwtVerifier({
        trustedClients: [
          { iss: ISS_INLINE, jwks: publicJwks },
          { iss: ISS_INLINE, jwks: publicJwks },
        ],
      }),
    ).toThrow(/duplicate iss/);
  });
});
