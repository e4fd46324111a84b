/**
 * One deadline for all of a hook call's EHR reads (README EHR_BUDGET_MS; design.md §4 "Prefetch", §9: CRD allows
 * 5 s). Reads in sequence (the prefetch, then the order's requester, then the payor Organization; each next page of a
 * search) each wait at most what is left of it, and a read that already failed in the call is not asked again. The
 * bounds asserted are generous (the budget plus a second), not performance figures.
 */
import type { Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EDGE_MRD, edgePatient } from '../fixtures/edge-patient.js';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest, searchset } from '../helpers/hook-requests.js';
import { startHttpEhr } from '../helpers/http-ehr.js';

const SIGN = '/cds-services/priorpath-order-sign';
const { resources, order } = edgePatient();
const all: Resource[] = [...resources, EDGE_MRD];

/** Paths the stub EHR was asked, in order of arrival. */
const asked: string[] = [];
let ehrBase: string;
let stopEhr: () => Promise<void>;

/** Each Observation page is answered after this long, within EHR_TIMEOUT_MS; PAGES of them together are not. */
const PAGE_MS = 300;
const PAGES = 8;

beforeAll(async () => {
  // /slow-role/...: PractitionerRole reads never answer; /slow-role-org/...: nor do Organization reads. /paged/...: the Observation search has PAGES pages.
  ({ base: ehrBase, stop: stopEhr } = await startHttpEhr((req, res, hold) => {
    const url = new URL(req.url ?? '/', 'http://ehr');
    const [, mode, type] = url.pathname.split('/');
    asked.push(url.pathname + url.search);
    const json = (body: unknown) => void res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(JSON.stringify(body));
    if ((mode === 'slow-role' && type === 'PractitionerRole') || (mode === 'slow-role-org' && (type === 'PractitionerRole' || type === 'Organization'))) {
      hold(res);
      return;
    }
    if (mode === 'paged' && type === 'Observation') {
      const page = Number(url.searchParams.get('page') ?? '1');
      const bundle = searchset(page === 1 ? all.filter((r) => r.resourceType === 'Observation') : []) as { link?: { relation: string; url: string }[] };
      if (page < PAGES) bundle.link = [{ relation: 'next', url: `${ehrBase}/paged/Observation?patient=edge-pt&page=${page + 1}` }];
      setTimeout(() => json(bundle), PAGE_MS).unref();
      return;
    }
    json(searchset(all.filter((r) => r.resourceType === type)));
  }));
});
afterAll(() => stopEhr());

describe("a hook call's EHR reads", () => {
  it('does not read again as the order requester a user PractitionerRole whose read already failed in the call', async () => {
    const { app } = buildApp({ env: { EHR_TIMEOUT_MS: '300' }, today: '2026-11-23' });
    asked.length = 0;
    const body = orderSignRequest(all, order, { fhirServer: `${ehrBase}/slow-role` }) as { prefetch: Record<string, unknown> };
    delete body.prefetch.user;
    const res = await request(app).post(SIGN).send(body).timeout(10_000);
    // The user is not required: the prescriber's specialty stays unknown, and the call is answered.
    expect(res.status).toBe(200);
    expect(asked.filter((p) => p.startsWith('/slow-role/PractitionerRole/'))).toEqual(['/slow-role/PractitionerRole/edge-role']);
  });

  it('ends a paged search whose pages each come within EHR_TIMEOUT_MS but together exceed EHR_BUDGET_MS with a 412 naming the key, within the budget', async () => {
    const budgetMs = 1200;
    const { app } = buildApp({ env: { EHR_TIMEOUT_MS: '1000', EHR_BUDGET_MS: String(budgetMs) }, today: '2026-11-23' });
    asked.length = 0;
    const body = orderSignRequest(all, order, { fhirServer: `${ehrBase}/paged` }) as { prefetch: Record<string, unknown> };
    delete body.prefetch.observations;
    const started = performance.now();
    const res = await request(app).post(SIGN).send(body).timeout(20_000);
    const tookMs = performance.now() - started;
    expect(res.status).toBe(412);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0].expression).toEqual(['prefetch.observations']);
    // Not every page was asked for: the search stopped when the budget was spent (a generous bound, not a target).
    expect(asked.filter((p) => p.startsWith('/paged/Observation')).length).toBeLessThan(PAGES);
    expect(tookMs).toBeLessThan(budgetMs + 1000);
  });

  it('bounds the reads that follow the prefetch (requester, payor Organization) by what is left of the budget: 412 naming the payor within it', async () => {
    const budgetMs = 1500;
    const { app } = buildApp({ env: { EHR_TIMEOUT_MS: '1000', EHR_BUDGET_MS: String(budgetMs) }, today: '2026-11-23' });
    asked.length = 0;
    // The Coverage names its payer only by reference, so the payor Organization is read after the prefetch.
    const byReference = all.map((r) => (r.resourceType === 'Coverage' ? { ...r, payor: [{ reference: 'Organization/payer-centene' }] } : r)).filter((r) => r.resourceType !== 'Organization');
    const body = orderSignRequest(byReference, order, { fhirServer: `${ehrBase}/slow-role-org` }) as { prefetch: Record<string, unknown> };
    delete body.prefetch.user;
    const started = performance.now();
    const res = await request(app).post(SIGN).send(body).timeout(20_000);
    const tookMs = performance.now() - started;
    expect(res.status).toBe(412);
    expect(res.body.issue[0].expression).toEqual(['prefetch.coverage.payor']);
    expect(asked.filter((p) => p.startsWith('/slow-role-org/PractitionerRole/'))).toHaveLength(1);
    // Each phase waiting its own EHR_TIMEOUT_MS took three of them (3 s); a generous bound, not a target.
    expect(tookMs).toBeLessThan(budgetMs + 1000);
  });
});
