import type { Bundle, Claim, Coverage } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { REVIEW_TOKEN, claimResponseOf, pasApp, reviewActions, storyBundle } from './pas-fixtures.js';

/**
 * PAS judges the request's Coverage with the service it authorizes, as CRD does (docs/design.md §4 "Payer", §8): a
 * Coverage not in force on an item's order date is no coverage to authorize that item under (ClaimResponse.error), one not active none at all (400), whatever the
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
function bundleWith(orderId: string, coverage: Partial<Coverage>, claim: (c: Claim) => void = () => {}, story = STORY): Bundle {
  const bundle = storyBundle(story, { code: 'rxnorm', orderId });
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

  it('certifies nothing under a Coverage in force on the day of the request that ends before the order starts: the item is a ClaimResponse.error (was a 400)', async () => {
    const res = await submit('2026-11-17', bundleWith('order-cov-ends-before-start', { period: { start: '2026-01-01', end: '2026-11-18' } }));
    expect(res.status).toBe(200);
    expect(claimResponseOf(res.body).error?.[0].code.text).toMatch(/No active Coverage.*ended on 2026-11-18.*order date 2026-11-19/);
    expect(JSON.stringify(res.body)).not.toMatch(/PA-MMM/);
  });

  it('certifies nothing for a retroactive request whose order starts before its Coverage began (a ClaimResponse.error), and certifies one whose Coverage begins after the request but by the order date', async () => {
    const retro = await submit('2026-11-23', bundleWith('order-cov-retro', { period: { start: '2026-11-20' } }));
    expect(retro.status).toBe(200);
    expect(claimResponseOf(retro.body).error?.[0].code.text).toMatch(/No active Coverage.*begins on 2026-11-20.*order date 2026-11-19/);
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

describe('PAS: every approval answered or granted ends within the Coverage (review s43 F1)', () => {
  const ENDING = { period: { start: '2026-01-01', end: '2026-12-10' } };
  const post = (app: Parameters<typeof request>[0], bundle: Bundle) =>
    request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(JSON.stringify(bundle));

  it("answers an order's approval held from an earlier request within the Coverage of the request in hand", async () => {
    const { app } = pasApp(new MemoryStorage(), { today: '2026-11-17' });
    const open = await post(app, bundleWith('order-held', { period: { start: '2026-01-01' } })).expect(200);
    const first = claimResponseOf(open.body);
    expect(reviewActions(first)).toEqual([`${X12}#A1`]);
    expect((first.preAuthPeriod?.end ?? '') > '2026-12-10').toBe(true);
    // The same order claimed again under the member's Coverage as it now stands, ending on 2026-12-10: the order's one
    // approval answers (its number), within that Coverage.
    const again = claimResponseOf((await post(app, bundleWith('order-held', ENDING)).expect(200)).body);
    expect(reviewActions(again)).toEqual([`${X12}#A1`]);
    expect(again.preAuthRef).toBe(first.preAuthRef);
    expect(again.preAuthPeriod).toEqual({ start: '2026-11-19', end: '2026-12-10' });
  });

  describe("a reviewer's approval", () => {
    // A Centene request pended for its MRD reading (A4), planned start 2026-11-21, under a Coverage ending 2026-12-31.
    const pended = async () => {
      const storage = new MemoryStorage();
      const { app } = pasApp(storage, { today: '2026-11-23' });
      const bundle = bundleWith('order-reviewed', { period: { start: '2026-01-01', end: '2026-12-31' } }, () => {}, 'centene-missing-mrd');
      const cr = claimResponseOf((await post(app, bundle).expect(200)).body);
      expect(reviewActions(cr)).toEqual([`${X12}#A4`]);
      const decide = (body: object) =>
        request(app)
          .post(`/review/${cr.id}/decision`)
          .set('Authorization', `Bearer ${REVIEW_TOKEN}`)
          .send({ decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: 'MRD 0.4 % on the flow report of 2026-11-10', ...body });
      return { app, storage, cr, decide };
    };

    it('asked past the Coverage end is granted to its last day, and the answer says so', async () => {
      const { storage, decide } = await pended();
      const res = await decide({ period: { start: '2026-11-21', end: '2027-02-21' } });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.preAuthPeriod).toEqual({ start: '2026-11-21', end: '2026-12-31' });
      expect(res.body.items[0].reasons[0]).toMatch(/ending on 2026-12-31, the last day of the member's Coverage centene-missing-mrd-coverage, not 2027-02-21/);
      const [auth] = [...storage.authorizations.values()];
      expect(auth).toMatchObject({ start: '2026-11-21', end: '2026-12-31' });
    });

    it('by default (no period given) ends within the Coverage too, as the reviewer is shown before deciding', async () => {
      const { app, cr, decide } = await pended();
      // The policy's default (6 months from the start) would run to May 2027.
      const shown = await request(app).get(`/review/${cr.id}`).set('Authorization', `Bearer ${REVIEW_TOKEN}`).expect(200);
      expect(shown.body.items[0].reviewPeriod).toEqual({ start: '2026-11-21', end: '2026-12-31' });
      const res = await decide({});
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.preAuthPeriod).toEqual({ start: '2026-11-21', end: '2026-12-31' });
    });

    it('starting after the Coverage end is a 400 naming its last day, and the request stays pended', async () => {
      const { storage, decide } = await pended();
      const res = await decide({ period: { start: '2027-01-04', end: '2027-03-31' } });
      expect(res.status).toBe(400);
      expect(res.body.issue[0].diagnostics).toMatch(/period\.start 2027-01-04 is after 2026-12-31, the last day of the request's Coverage centene-missing-mrd-coverage/);
      expect(res.body.issue[0].expression).toEqual(['period.start']);
      expect(storage.authorizations.size).toBe(0);
    });
  });
});
