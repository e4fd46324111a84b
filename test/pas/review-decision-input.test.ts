/**
 * A reviewer's decision is the one place the payer mints an authorization period from what a caller typed
 * (design.md §8 "One authorization per order"): a period that names no calendar day is a 400, never an approval
 * carrying an impossible FHIR date.
 */
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { REVIEW_TOKEN, claimResponseOf, pasApp, reviewActions, storyBundle } from './pas-fixtures.js';

const X12 = 'https://codesystem.x12.org/005010/306';

describe('POST /review/{id}/decision with an approval period', () => {
  it.each([
    ['month 13', { start: '2026-13-01', end: '2026-13-28' }],
    ['30 February', { start: '2026-02-30', end: '2026-03-30' }],
    ['day 00', { start: '2026-12-00', end: '2027-03-01' }],
  ])('refuses a period on %s with 400 naming it, and the request stays pended', async (_what, period) => {
    const storage = new MemoryStorage();
    const { app } = pasApp(storage);
    const filed = await request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(JSON.stringify(storyBundle('centene-missing-mrd'))).expect(200);
    const cr = claimResponseOf(filed.body);
    expect(reviewActions(cr)).toEqual([`${X12}#A4`]);

    const res = await request(app)
      .post(`/review/${cr.id}/decision`)
      .set('Authorization', `Bearer ${REVIEW_TOKEN}`)
      .send({ decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: 'MRD 0.4 % on the flow report of 2026-11-10', period });
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0].expression[0]).toMatch(/^period\.(start|end)$/);
    expect(storage.authorizations.size).toBe(0);
    const pended = await request(app).get('/review/pended').set('Authorization', `Bearer ${REVIEW_TOKEN}`).expect(200);
    expect(pended.body.pended.map((p: { id: string }) => p.id)).toContain(cr.id);
  });

  it('approves with a period of real days', async () => {
    const storage = new MemoryStorage();
    const { app } = pasApp(storage);
    const cr = claimResponseOf((await request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(JSON.stringify(storyBundle('centene-missing-mrd'))).expect(200)).body);
    const res = await request(app)
      .post(`/review/${cr.id}/decision`)
      .set('Authorization', `Bearer ${REVIEW_TOKEN}`)
      .send({ decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: 'MRD 0.4 %', period: { start: '2026-02-28', end: '2026-05-28' } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.preAuthPeriod).toEqual({ start: '2026-02-28', end: '2026-05-28' });
  });
});
