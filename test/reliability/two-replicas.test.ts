/**
 * Scale-out (design.md §2: stateless apart from storage, PostgreSQL shared): two PriorPath processes on one
 * PostgreSQL database, as docker-compose runs them behind a load balancer. They start together (migrations run
 * once), a CDS client JWT used on one is a replay on the other, the same PAS request sent to both at once makes one
 * record and one answer, and a reviewer's decision on one is what the other answers.
 *
 * Needs DATABASE_URL (CI's .ci/run sets it) and a fresh database for the migration race: created with CREATE
 * DATABASE when the role may, else as root with `runuser -u postgres -- createdb`. Skipped, saying why, otherwise.
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, ClaimResponse } from '@medplum/fhirtypes';
import { SignJWT } from 'jose';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { edgePatient } from '../fixtures/edge-patient.js';
import { freshDatabase } from '../helpers/fresh-database.js';
import { ISS, makeKeys } from '../helpers/app.js';
import type { TestKeys } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { PUBLIC_BASE_URL, killAll, payerToken, startPriorPath, waitForStatus } from '../helpers/priorpath-process.js';
import type { PriorPathProcess } from '../helpers/priorpath-process.js';
import { claimResponseOf, inquiryParameters, reviewActions, storyBundle } from '../pas/pas-fixtures.js';

const X12 = 'https://codesystem.x12.org/005010/306';
const REVIEW_TOKEN = 'replica-review-token-7d1e';
const SIGN = '/cds-services/priorpath-order-sign';
const baseUrl = process.env.DATABASE_URL;

let dbUrl: string | undefined;
let dropDb: (() => Promise<void>) | undefined;
let skip: string | undefined = baseUrl ? undefined : 'DATABASE_URL is not set (CI sets it; see .ci/run)';

let a: PriorPathProcess;
let b: PriorPathProcess;
let keys: TestKeys;
const tokens = new Map<PriorPathProcess, string>();

beforeAll(async () => {
  if (skip) return;
  const made = await freshDatabase(baseUrl!);
  if (typeof made === 'string') {
    skip = made;
    return;
  }
  dbUrl = made.url;
  dropDb = made.drop;
  keys = await makeKeys();
  const env = {
    DATABASE_URL: dbUrl,
    CDS_AUTH: 'required',
    CDS_TRUSTED_CLIENTS: JSON.stringify([{ iss: ISS, jwks: { keys: [keys.jwk] } }]),
    REVIEW_TOKEN,
  };
  // Both at once: each runs the migrations at start, against the same empty database.
  [a, b] = await Promise.all([startPriorPath(env), startPriorPath(env)]);
  // On a miss the message carries the replica's last output (a storage or migration error, an exit), not only the status.
  for (const p of [a, b]) {
    const status = await waitForStatus(`${p.base}/readyz`, (s) => s === 200, 60_000);
    expect(status, `replica on port ${p.port} never ready; its output ends: ${p.output().slice(-3000)}`).toBe(200);
  }
  for (const p of [a, b]) tokens.set(p, await payerToken(p.base));
}, 180_000);

afterAll(async () => {
  killAll();
  await dropDb?.().catch(() => undefined);
});

const fhir = (p: PriorPathProcess, path: string, body: unknown) =>
  fetch(`${p.base}/fhir${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${tokens.get(p)}` },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });

async function inquire(p: PriorPathProcess, value: string): Promise<Bundle[]> {
  const res = await fhir(p, '/Claim/$inquire', inquiryParameters({ identifier: { system: 'urn:ehr.example.org:pas-transaction', value } }));
  expect(res.status).toBe(200);
  return (((await res.json()) as { parameter?: { resource: Bundle }[] }).parameter ?? []).map((x) => x.resource);
}

const jwt = (jti: string) =>
  new SignJWT({})
    .setProtectedHeader({ alg: 'ES384', typ: 'JWT', kid: keys.kid })
    .setIssuer(ISS)
    .setAudience(`${PUBLIC_BASE_URL}${SIGN}`)
    .setIssuedAt()
    .setExpirationTime('5m')
    .setJti(jti)
    .sign(keys.privateKey);

describe('two replicas on one PostgreSQL', () => {
  it.skipIf(!baseUrl)('started together, applied each migration exactly once', async ({ skip: skipTest }) => {
    if (skip) return skipTest(skip);
    const c = new pg.Client({ connectionString: dbUrl });
    await c.connect();
    const rows = (await c.query<{ version: number; n: string }>('SELECT version, count(*) AS n FROM schema_migrations GROUP BY version ORDER BY version')).rows;
    await c.end();
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((r) => Number(r.n) === 1)).toBe(true);
  });

  it.skipIf(!baseUrl)('refuses on one replica a CDS client JWT already used on the other (jti replay)', async ({ skip: skipTest }) => {
    if (skip) return skipTest(skip);
    const { resources, order } = edgePatient();
    const body = JSON.stringify(orderSignRequest(resources, order));
    const token = await jwt(randomUUID());
    const send = (p: PriorPathProcess, t: string) => fetch(`${p.base}${SIGN}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${t}` }, body });
    expect((await send(a, token)).status).toBe(200);
    const replayed = await send(b, token);
    expect(replayed.status).toBe(401);
    expect(((await replayed.json()) as { resourceType: string }).resourceType).toBe('OperationOutcome');
    // A fresh token is accepted by the same replica: the refusal was the replay, not the replica.
    expect((await send(b, await jwt(randomUUID()))).status).toBe(200);
  });

  it.skipIf(!baseUrl)('answers the same PAS request sent to both at once with one record and one answer', async ({ skip: skipTest }) => {
    if (skip) return skipTest(skip);
    // Another story's order than the reviewer test below uses: PAS keeps one decision per order.
    const bundle = storyBundle('centene-mrd-positive');
    const [ra, rb] = await Promise.all([fhir(a, '/Claim/$submit', bundle), fhir(b, '/Claim/$submit', bundle)]);
    expect([ra.status, rb.status]).toEqual([200, 200]);
    const [ca, cb] = [claimResponseOf((await ra.json()) as Bundle), claimResponseOf((await rb.json()) as Bundle)];
    expect(reviewActions(cb)).toEqual(reviewActions(ca));
    expect(cb.id).toBe(ca.id);
    expect(cb.preAuthRef).toBe(ca.preAuthRef);
    for (const p of [a, b]) expect(await inquire(p, bundle.identifier!.value!)).toHaveLength(1);
  });

  it.skipIf(!baseUrl)("answers on one replica with the reviewer's decision made on the other", async ({ skip: skipTest }) => {
    if (skip) return skipTest(skip);
    // Another order of the patient than the one approved above: each order has one decision (design.md §8).
    const bundle = storyBundle('centene-missing-mrd', { orderId: 'centene-missing-mrd-replica-order' });
    const submitted = await fhir(a, '/Claim/$submit', bundle);
    expect(submitted.status).toBe(200);
    expect(reviewActions(claimResponseOf((await submitted.json()) as Bundle))).toEqual([`${X12}#A4`]);

    const review = (p: PriorPathProcess, path: string, init: RequestInit = {}) =>
      fetch(`${p.base}/review${path}`, { ...init, headers: { 'content-type': 'application/json', authorization: `Bearer ${REVIEW_TOKEN}` } });
    const pended = ((await (await review(b, '/pended')).json()) as { pended: { id: string; bundleIdentifier: string }[] }).pended;
    const mine = pended.find((s) => s.bundleIdentifier.endsWith(`|${bundle.identifier!.value}`));
    expect(mine, 'the request pended on A is in B’s reviewer queue').toBeDefined();
    const decided = await review(b, `/${mine!.id}/decision`, {
      method: 'POST',
      body: JSON.stringify({ decision: 'approve', reviewer: 'Dr. Amara Nwosu, PharmD', reason: 'MRD 0.3 % by flow cytometry in the attached report' }),
    });
    expect(decided.status).toBe(200);

    const [onA] = await inquire(a, bundle.identifier!.value!);
    const cr = claimResponseOf(onA) as ClaimResponse;
    expect(reviewActions(cr)).toEqual([`${X12}#A1`]);
    expect(cr.preAuthRef).toMatch(/^PA-CENTENE-/);
    // Resending the request to A returns the decided answer, not a new adjudication.
    const again = await fhir(a, '/Claim/$submit', bundle);
    expect(claimResponseOf((await again.json()) as Bundle).preAuthRef).toBe(cr.preAuthRef);
  });
});
