/**
 * PostgreSQL fails a connection in the middle of a request (design.md §2 "Storage": acknowledged means durable; every
 * other answer is a clear 503): a session terminated while a reviewer's decision is in its transaction (what a server
 * restart or a failover does to every session), and a server that stops answering without closing anything (a network
 * partition, a host that lost power: no reset arrives, so a request on a pooled connection would wait for the kernel
 * to give up, a quarter of an hour). Each request is answered 503 with an OperationOutcome and Retry-After, the process
 * keeps running, and once the database answers again the refused request succeeds when resent.
 *
 * PriorPath runs as a process (src/main.ts, as `npm start`), reaching a fresh database next to DATABASE_URL's through a
 * TCP relay in this test that can stop relaying while keeping its connections open. Needs DATABASE_URL (CI's .ci/run
 * sets it); skipped, saying why, otherwise.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Bundle, ClaimResponse } from '@medplum/fhirtypes';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { edgePatient } from '../fixtures/edge-patient.js';
import { freshDatabase } from '../helpers/fresh-database.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { killAll, payerToken, startPriorPath, waitForStatus } from '../helpers/priorpath-process.js';
import type { PriorPathProcess } from '../helpers/priorpath-process.js';
import { claimResponseOf, storyBundle } from '../pas/pas-fixtures.js';

const REVIEW_TOKEN = 'stall-review-token-3b9e61d0';
const baseUrl = process.env.DATABASE_URL;
let skip: string | undefined = baseUrl ? undefined : 'DATABASE_URL is not set (CI sets it; see .ci/run)';

/** A TCP relay to the database server that can stop relaying while keeping every connection open (a silent partition). */
function relay(target: URL) {
  let relaying = true;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.on('data', (d) => relaying && upstream.write(d));
    upstream.on('data', (d) => relaying && client.write(d));
    // While stalled, nothing crosses, not even a close: the server never learns that PriorPath gave up a connection.
    client.on('close', () => relaying && upstream.destroy());
    upstream.on('close', () => relaying && client.destroy());
  });
  return {
    server,
    /** Stops relaying: every connection stays open and nothing more arrives on it, in either direction, closes included. */
    stall: () => (relaying = false),
    /** The partition heals: the connections stalled meanwhile are gone (as after a real one); new ones relay. */
    heal: () => {
      for (const s of sockets) s.destroy();
      relaying = true;
    },
  };
}

let pp: PriorPathProcess;
/** A second replica on the same database, reaching it directly (on the other side of the partition). */
let other: PriorPathProcess;
let link: ReturnType<typeof relay>;
let dbUrl: string;
let dropDb: (() => Promise<void>) | undefined;
let token = '';

beforeAll(async () => {
  if (skip) return;
  const made = await freshDatabase(baseUrl!, 'stall');
  if (typeof made === 'string') {
    skip = made;
    return;
  }
  ({ url: dbUrl, drop: dropDb } = made);
  link = relay(new URL(dbUrl));
  await new Promise<void>((resolve) => link.server.listen(0, '127.0.0.1', resolve));
  const via = new URL(dbUrl);
  via.hostname = '127.0.0.1';
  via.port = String((link.server.address() as AddressInfo).port);
  [pp, other] = await Promise.all([startPriorPath({ DATABASE_URL: via.toString(), REVIEW_TOKEN }), startPriorPath({ DATABASE_URL: dbUrl, REVIEW_TOKEN })]);
  for (const p of [pp, other]) expect(await waitForStatus(`${p.base}/readyz`, (s) => s === 200, 60_000)).toBe(200);
  token = await payerToken(pp.base);
}, 120_000);

afterAll(async () => {
  killAll();
  link?.heal();
  link?.server.close();
  await dropDb?.().catch(() => undefined);
});

// Each call gives up after 30 s, as a client would: a request left waiting on a dead connection fails the test.
const submit = (body: Bundle) =>
  fetch(`${pp.base}/fhir/Claim/$submit`, {
    method: 'POST',
    headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
const decide = (id: string, on = pp) =>
  fetch(`${on.base}/review/${id}/decision`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${REVIEW_TOKEN}` },
    body: JSON.stringify({ decision: 'approve', reviewer: 'Dr. Amara Nwosu, PharmD', reason: 'MRD 0.3 % by flow cytometry in the attached report' }),
    signal: AbortSignal.timeout(30_000),
  });
function sign() {
  const { resources, order } = edgePatient();
  return fetch(`${pp.base}/cds-services/priorpath-order-sign`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(orderSignRequest(resources, order)),
    signal: AbortSignal.timeout(30_000),
  });
}

/** A pended PAS request for a fresh order of the story's patient: the reviewer has it to decide. */
async function pendedRequest(orderId: string): Promise<ClaimResponse> {
  const res = await submit(storyBundle('centene-missing-mrd', { orderId }));
  expect(res.status).toBe(200);
  return claimResponseOf((await res.json()) as Bundle);
}

/** A refusal the client can act on: 503, an OperationOutcome with issue code `transient`, and when to retry. */
async function expectRetryLater(res: Response): Promise<void> {
  const body = (await res.json()) as { resourceType: string; issue: { code: string }[] };
  expect(res.status, JSON.stringify(body)).toBe(503);
  expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
  expect(body.resourceType).toBe('OperationOutcome');
  expect(body.issue[0].code).toBe('transient');
}

describe('PostgreSQL fails a connection in the middle of a request', () => {
  it.skipIf(!baseUrl)("answers 503 when the session is terminated inside the reviewer's transaction, and keeps running (was: an uncaught 'error', the process exited)", async ({ skip: skipTest }) => {
    if (skip) return skipTest(skip);
    const pended = await pendedRequest('stall-terminated-order');
    // Hold the request's row, so the decision waits inside its transaction; then end that session, as a restart does.
    const db = new pg.Client({ connectionString: dbUrl });
    await db.connect();
    try {
      await db.query('BEGIN');
      await db.query('SELECT 1 FROM pas_submissions WHERE id = $1 FOR UPDATE', [pended.id]);
      const decision = decide(pended.id!);
      let waiting: number[] = [];
      while (waiting.length === 0) {
        await new Promise((r) => setTimeout(r, 50));
        waiting = (await db.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = 'priorpath' AND wait_event_type = 'Lock'")).rows.map((r) => r.pid);
      }
      for (const pid of waiting) await db.query('SELECT pg_terminate_backend($1)', [pid]);
      await expectRetryLater(await decision);
    } finally {
      await db.query('ROLLBACK').catch(() => undefined);
      await db.end();
    }
    expect(await waitForStatus(`${pp.base}/readyz`, (s) => s === 200, 10_000)).toBe(200);
    expect(pp.child.exitCode, pp.output().slice(-2000)).toBeNull();
    // Nothing was decided: the reviewer's resent decision is the one that counts.
    const again = await decide(pended.id!);
    expect(again.status).toBe(200);
    expect(((await again.json()) as { reviewAction: string }).reviewAction).toBe('A1');
  }, 90_000);

  it.skipIf(!baseUrl)('answers 503 on CRD, PAS and the reviewer API when the server stops answering on open connections (was: they waited), then recovers', async ({ skip: skipTest }) => {
    if (skip) return skipTest(skip);
    const pended = await pendedRequest('stall-silent-order');
    // Connections in the pool, opened while the server answered: the ones the partition then silences.
    expect((await Promise.all([sign(), sign(), sign(), submit(storyBundle('centene-mrd-positive', { orderId: 'stall-warm-order' }))])).map((r) => r.status)).toEqual([200, 200, 200, 200]);

    link.stall();
    const [hook, pas, review] = await Promise.all([sign(), submit(storyBundle('centene-mrd-positive', { orderId: 'stall-silent-approval' })), decide(pended.id!)]);
    await expectRetryLater(hook);
    await expectRetryLater(pas);
    await expectRetryLater(review);
    expect(pp.child.exitCode, pp.output().slice(-2000)).toBeNull();

    link.heal();
    expect(await waitForStatus(`${pp.base}/readyz`, (s) => s === 200, 30_000)).toBe(200);
    expect(pp.child.exitCode, pp.output().slice(-2000)).toBeNull();
    const again = await decide(pended.id!);
    expect(again.status).toBe(200);
    expect((await sign()).status).toBe(200);
  }, 120_000);
  it.skipIf(!baseUrl)("lets the other replica decide once the server ends the session of a replica partitioned away inside a transaction (was: its row locks held the request undecidable)", async ({ skip: skipTest }) => {
    if (skip) return skipTest(skip);
    const pended = await pendedRequest('stall-partitioned-order');
    const db = new pg.Client({ connectionString: dbUrl });
    await db.connect();
    try {
      // The reviewer's decision on the partitioned replica takes the request's row, then waits for the order's row.
      await db.query('BEGIN');
      await db.query("SELECT 1 FROM order_authorizations WHERE order_ref = 'MedicationRequest/stall-partitioned-order' FOR UPDATE");
      const decision = decide(pended.id!);
      let waiting = 0;
      while (waiting === 0) {
        await new Promise((r) => setTimeout(r, 50));
        waiting = (await db.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'priorpath' AND wait_event_type = 'Lock'")).rowCount ?? 0;
      }
      // The partition: that replica hears nothing more; its transaction goes on in the server, then sits idle there.
      link.stall();
      await db.query('ROLLBACK');
      await expectRetryLater(await decision);
    } finally {
      await db.end();
    }
    // The other replica decides the request once the server has ended the abandoned session (its locks released).
    let res = await decide(pended.id!, other);
    for (let tries = 0; res.status === 503 && tries < 12; tries++) res = await decide(pended.id!, other);
    expect(res.status, await res.clone().text()).toBe(200);
    expect(((await res.json()) as { reviewAction: string }).reviewAction).toBe('A1');
    link.heal();
    expect(await waitForStatus(`${pp.base}/readyz`, (s) => s === 200, 30_000)).toBe(200);
  }, 150_000);
});
