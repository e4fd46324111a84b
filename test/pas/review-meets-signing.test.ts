/**
 * A reviewer decides a pended request while its order is approved at signing on another replica (design.md §8: one
 * decision per order; the first decision stands). The reviewer's decision is refused with a 409 that says what
 * happened, an approval at signing with its number, not that someone else decided the request, and the request answers
 * the order's approval at once. The signing lands between the reviewer's read of the request and the decision's write,
 * as it does when the hook arrives on another replica in that moment.
 */
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { UNDECIDED } from '../../src/coverage/order-record.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import type { OrderKey, ReviewDecisionInput } from '../../src/storage/storage.js';
import { buildApp } from '../helpers/app.js';
import { claimResponseOf, reviewActions, storyBundle } from './pas-fixtures.js';

const X12 = 'https://codesystem.x12.org/005010/306';
const REVIEW_TOKEN = 'review-token-for-review-meets-signing';
const SIGNED_NUMBER = 'PA-CENTENE-20261123-K7QW2M9D';

/** Storage shared by the replicas, on which the order-sign hook's approval commits just before the reviewer's decision. */
class SigningMeanwhile extends MemoryStorage {
  signing: OrderKey | undefined;
  override async recordReviewDecision(input: ReviewDecisionInput) {
    const key = this.signing;
    this.signing = undefined;
    if (key) {
      // What the hook on the other replica writes when the chart now holds the MRD result (recordEvaluation).
      await this.applyOrderChange({
        key,
        from: UNDECIDED,
        change: {
          state: 'approved',
          at: new Date().toISOString(),
          source: 'crd',
          actor: 'order-sign 4f0c2a1e-8b7d-4c55-9e0a-3d6b2f81c947',
          reason: 'Meets CP.PHAR.312: B-ALL in remission but MRD-positive (CP.PHAR.312 I.A.4.a)',
          authorization: { number: SIGNED_NUMBER, start: '2026-11-23', end: '2027-05-22' },
        },
      });
    }
    return super.recordReviewDecision(input);
  }
}

describe("a reviewer's decision meeting an approval at signing", () => {
  it.each(['approve', 'deny'] as const)('refuses the %s with a 409 naming the approval at signing, and the request answers that approval at once', async (decision) => {
    const storage = new SigningMeanwhile();
    const { app } = buildApp({ storage, today: '2026-11-23', env: { REVIEW_TOKEN } });
    const pended = claimResponseOf((await request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(JSON.stringify(storyBundle('centene-missing-mrd', { orderId: 'order-signed-meanwhile' }))).expect(200)).body);
    expect(reviewActions(pended)).toEqual([`${X12}#A4`]);
    const stored = await storage.getPasSubmission(pended.id!);
    storage.signing = (stored!.detail as { items: { order: OrderKey }[] }).items[0].order;

    const res = await request(app)
      .post(`/review/${pended.id}/decision`)
      .set('Authorization', `Bearer ${REVIEW_TOKEN}`)
      .send({ decision, reviewer: 'Dr. Amara Nwosu, PharmD', reason: 'MRD 0.3 % by flow cytometry in the attached report' });
    expect(res.status).toBe(409);
    expect(res.body.resourceType).toBe('OperationOutcome');
    const said = res.body.issue[0].diagnostics as string;
    expect(said).toContain('approved at signing');
    expect(said).toContain(SIGNED_NUMBER);
    expect(said).not.toContain('decided by someone else');

    // The request carries the order's approval as stored (what $inquire and its subscribers get), not after a later read.
    const now = await storage.getPasSubmission(pended.id!);
    expect(now?.reviewAction).toBe('A1');
    expect(now?.preAuthRef).toBe(SIGNED_NUMBER);
  });
});
