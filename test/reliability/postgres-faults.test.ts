/**
 * PostgreSQL goes away and comes back under load (design.md §2 "Storage", "Durable before the answer"): while it is
 * down /readyz answers 503 and PAS answers 503 with Retry-After (never 500, never an acknowledgement); when it is back
 * the same process recovers without a restart, and every submission that was acknowledged 200 is found by $inquire.
 *
 * It needs its own throwaway cluster, because it stops the server: as root with Debian's PostgreSQL tools it creates
 * (or reuses) cluster PG_FAULT_CLUSTER (default pp_faults) on PG_FAULT_PORT (default 5499) with
 * scripts/db-ci-postgres.sh. Elsewhere it is skipped, saying why. Never the shared or CI cluster.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import type { Bundle } from '@medplum/fhirtypes';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { killAll, payerToken, startPriorPath, waitForStatus } from '../helpers/priorpath-process.js';
import type { PriorPathProcess } from '../helpers/priorpath-process.js';
import { repoRoot } from '../helpers/stories.js';
import { claimResponseOf, inquiryParameters, storyBundle } from '../pas/pas-fixtures.js';

const CLUSTER = process.env.PG_FAULT_CLUSTER ?? 'pp_faults';
const PORT = process.env.PG_FAULT_PORT ?? '5499';
const version = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').sort((a, b) => Number(a) - Number(b)).pop() : undefined;

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root (it creates, stops and starts its own PostgreSQL cluster)';
  if (!version || !existsSync(`/usr/lib/postgresql/${version}/bin/postgres`)) return 'no PostgreSQL server under /usr/lib/postgresql';
  try {
    execFileSync('which', ['pg_createcluster', 'pg_ctlcluster'], { stdio: 'ignore' });
  } catch {
    return 'pg_createcluster / pg_ctlcluster not installed (Debian postgresql-common)';
  }
  return undefined;
}
const reason = skipReason();
if (reason) console.warn(`[postgres-faults] skipped: ${reason}`);

const ctl = (action: 'start' | 'stop') => execFileSync('pg_ctlcluster', [version!, CLUSTER, action, ...(action === 'stop' ? ['-m', 'fast'] : [])], { stdio: 'ignore' });

afterAll(() => {
  killAll();
  if (!reason) {
    try {
      execFileSync('bash', ['scripts/db-ci-postgres.sh', '--stop'], { cwd: repoRoot, env: { ...process.env, PG_CLUSTER: CLUSTER, PG_PORT: PORT }, stdio: 'ignore' });
    } catch {
      // already stopped
    }
  }
});

let token = '';
const fhirHeaders = () => ({ 'content-type': 'application/fhir+json', authorization: `Bearer ${token}` });
const submit = (pp: PriorPathProcess, body: unknown) =>
  fetch(`${pp.base}/fhir/Claim/$submit`, { method: 'POST', headers: fhirHeaders(), body: JSON.stringify(body), signal: AbortSignal.timeout(20_000) });

describe.skipIf(!!reason)('PostgreSQL stops and restarts under a running PriorPath', () => {
  it('503 with Retry-After while down, recovers without restart, loses nothing it acknowledged', async () => {
    const url = execFileSync('bash', ['scripts/db-ci-postgres.sh'], { cwd: repoRoot, env: { ...process.env, PG_CLUSTER: CLUSTER, PG_PORT: PORT }, encoding: 'utf8' }).trim();
    const pp = await startPriorPath({ DATABASE_URL: url });
    expect(await waitForStatus(`${pp.base}/readyz`, (s) => s === 200, 60_000)).toBe(200);
    token = await payerToken(pp.base);

    // Steady traffic through the whole outage: every answer is 200 (acknowledged) or 503 (not stored, retry).
    const acked: string[] = [];
    const refused: Bundle[] = [];
    const other: string[] = [];
    let retryAfter: string | null = null;
    let stop = false;
    const traffic = (async () => {
      for (let i = 0; !stop; i++) {
        const bundle = storyBundle(i % 2 ? 'centene-missing-mrd' : 'centene-mrd-positive');
        const res = await submit(pp, bundle).catch((err: Error) => ({ status: -1, statusText: err.message }) as Response);
        if (res.status === 200) acked.push(bundle.identifier!.value!);
        else if (res.status === 503) {
          refused.push(bundle);
          retryAfter = res.headers.get('retry-after');
          expect(((await res.json()) as { resourceType: string }).resourceType).toBe('OperationOutcome');
        } else other.push(`${res.status} ${res.statusText}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    })();

    // Some submissions acknowledged before the outage (bounded wait: a loaded machine answers slowly).
    await until(() => acked.length > 0, 30_000);
    ctl('stop');
    expect(await waitForStatus(`${pp.base}/readyz`, (s) => s === 503, 30_000)).toBe(503);
    const down = await submit(pp, storyBundle('centene-mrd-positive'));
    expect(down.status).toBe(503);
    expect(down.headers.get('retry-after')).toMatch(/^\d+$/);
    const hook = await fetch(`${pp.base}/cds-services/priorpath-order-sign`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(hook.status).toBeLessThan(500);
    // The hook's audit line is written behind its answer: kept through the outage, written once the database is back.
    const hookRequestId = hook.headers.get('x-request-id');
    expect(hookRequestId).toBeTruthy();

    ctl('start');
    expect(await waitForStatus(`${pp.base}/readyz`, (s) => s === 200, 60_000)).toBe(200);
    // And some after it, so the traffic crosses the recovery.
    const ackedBeforeRecovery = acked.length;
    await until(() => acked.length > ackedBeforeRecovery, 30_000);
    stop = true;
    await traffic;

    expect(other).toEqual([]);
    expect(acked.length).toBeGreaterThan(0);
    expect(refused.length).toBeGreaterThan(0);
    expect(retryAfter).toMatch(/^\d+$/);
    // A request refused with 503 was not stored: resent as the client would, it is answered now.
    const again = await submit(pp, refused[0]);
    expect(again.status).toBe(200);
    // Everything acknowledged is there.
    for (const value of acked) {
      const res = await fetch(`${pp.base}/fhir/Claim/$inquire`, {
        method: 'POST',
        headers: fhirHeaders(),
        body: JSON.stringify(inquiryParameters({ identifier: { system: 'urn:ehr.example.org:pas-transaction', value } })),
      });
      const found = (await res.json()) as { parameter?: { resource: Bundle }[] };
      expect(found.parameter?.length, `acknowledged ${value} is stored`).toBe(1);
      expect(claimResponseOf(found.parameter![0].resource).outcome).toBeDefined();
    }
    const audit = new pg.Client({ connectionString: url });
    await audit.connect();
    try {
      let lines = 0;
      for (const end = Date.now() + 15_000; lines === 0 && Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
        lines = (await audit.query('SELECT count(*)::int AS n FROM hook_audit WHERE request_id = $1', [hookRequestId])).rows[0].n as number;
      }
      expect(lines, 'the audit line of the hook answered during the outage').toBe(1);
    } finally {
      await audit.end();
    }
    expect(pp.child.exitCode).toBeNull();
  }, 180_000);
});

/** Polls a condition every 25 ms until it holds or the bound passes (the assertions after it say what was seen). */
async function until(cond: () => boolean, boundMs: number): Promise<void> {
  const end = Date.now() + boundMs;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
}
