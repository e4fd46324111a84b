import type { Bundle, Claim, Coverage } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { claimResponseOf, pasApp, reviewActions, storyBundle } from './pas-fixtures.js';

/**
 * PAS judges the request's Coverage with the service it authorizes, as CRD does (docs/design.md §4 "Payer", §8): a
 * Coverage not in force on an item's order date, or not active, is no coverage to authorize under (400) whatever the
 * Claim's insurer says; an approval ends no later than the Coverage; a Claim whose insurer names another payer
 * PriorPath serves than its Coverage, or that marks several insurances focal, is a payer problem (400). The story: an
 * MMM member's Ph-positive request, planned start 2026-11-19, certified by MP-RX-FP-14-23.
 */
const STORY = 'mmm-ph-positive-tki';
const X12 = 'https://codesystem.x12.org/005010/306';
const system = 'https://priorpath.dev/fhir/sid/payer';

function submit(today: string, bundle: Bundle) {
  const { app } = pasApp(new MemoryStorage(), { today });
  return request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(JSON.stringify(bundle));
}

/** The story's request Bundle with its Coverage (and Claim) changed. */
function bundleWith(orderId: string, coverage: Partial<Coverage>, claim: (c: Claim) => void = () => {}): Bundle {
  const bundle = storyBundle(STORY, { code: 'rxnorm', orderId });
  for (const e of bundle.entry ?? []) {
    if (e.resource?.resourceType === 'Coverage') Object.assign(e.resource, coverage);
    if (e.resource?.resourceType === 'Claim') claim(e.resource);
  }
  return bundle;
}

describe('PAS: the Coverage judged on the order date (A7)', () => {
  it('certifies under a Coverage in force on the order date, ending the period on the last day of the Coverage', async () => {
    const open = await submit('2026-11-23', bundleWith('order-cov-open', { period: { start: '2026-01-01' } }));
    expect(open.status, JSON.stringify(open.body)).toBe(200);
    expect(claimResponseOf(open.body).item?.[0]).toBeDefined();
    const ending = await submit('2026-11-23', bundleWith('order-cov-ending', { period: { start: '2026-01-01', end: '2026-12-10' } }));
    expect(ending.status, JSON.stringify(ending.body)).toBe(200);
    const cr = claimResponseOf(ending.body);
    expect(reviewActions(cr)).toEqual([`${X12}#A1`]);
    expect(cr.preAuthPeriod).toEqual({ start: '2026-11-19', end: '2026-12-10' });
    expect((claimResponseOf(open.body).preAuthPeriod?.end ?? '') > '2026-12-10').toBe(true);
  });

  it('refuses (400, nothing certified) a Coverage in force on the day of the request that ends before the order starts', async () => {
    const res = await submit('2026-11-17', bundleWith('order-cov-ends-before-start', { period: { start: '2026-01-01', end: '2026-11-18' } }));
    expect(res.status).toBe(400);
    expect(res.body.issue[0].diagnostics).toMatch(/No active Coverage.*ended on 2026-11-18.*order date 2026-11-19/);
    expect(JSON.stringify(res.body)).not.toMatch(/PA-MMM/);
  });

  it('refuses a retroactive request whose order starts before its Coverage began, and certifies one whose Coverage begins after the request but by the order date', async () => {
    const retro = await submit('2026-11-23', bundleWith('order-cov-retro', { period: { start: '2026-11-20' } }));
    expect(retro.status).toBe(400);
    expect(retro.body.issue[0].diagnostics).toMatch(/No active Coverage.*begins on 2026-11-20.*order date 2026-11-19/);
    expect(JSON.stringify(retro.body)).not.toMatch(/PA-MMM/);
    const ahead = await submit('2026-11-17', bundleWith('order-cov-ahead', { period: { start: '2026-11-19' } }));
    expect(ahead.status, JSON.stringify(ahead.body)).toBe(200);
    expect(reviewActions(claimResponseOf(ahead.body))).toEqual([`${X12}#A1`]);
  });
});

describe('PAS: a Coverage that is not active (A9)', () => {
  it.each(['cancelled', 'entered-in-error', 'draft'] as const)('refuses (400, nothing certified) a %s Coverage although the Claim names its insurer', async (status) => {
    const res = await submit('2026-11-23', bundleWith(`order-cov-${status}`, { status }));
    expect(res.status).toBe(400);
    expect(res.body.issue[0].diagnostics).toMatch(new RegExp(`No active Coverage.*is ${status}`));
    expect(JSON.stringify(res.body)).not.toMatch(/PA-MMM/);
  });
});

describe("PAS: the Claim's insurer and its Coverage (A3)", () => {
  it("refuses (400, naming both) a Claim whose insurer names another payer PriorPath serves than its Coverage's payor", async () => {
    const res = await submit('2026-11-23', bundleWith('order-insurer-mismatch', { payor: [{ identifier: { system, value: 'centene' } }] }));
    expect(res.status).toBe(400);
    expect(res.body.issue[0].diagnostics).toMatch(/insurer names mmm but its Coverage's payor names centene/);
    expect(JSON.stringify(res.body)).not.toMatch(/PA-(MMM|CENTENE)/);
  });

  it('refuses (400) a Claim that marks several insurances focal, rather than picking one', async () => {
    const res = await submit(
      '2026-11-23',
      bundleWith('order-two-focal', {}, (claim) => {
        claim.insurance = [...claim.insurance!, { ...claim.insurance![0], sequence: 2, focal: true }];
      }),
    );
    expect(res.status).toBe(400);
    expect(res.body.issue[0].diagnostics).toMatch(/2 Claim.insurance entries are focal/);
  });
});
