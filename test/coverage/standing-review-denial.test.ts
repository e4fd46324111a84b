import { describe, expect, it } from 'vitest';
import { afterReviewDenial } from '../../src/coverage/order-record.js';
import { standingReviewDenial } from '../../src/coverage/reviewed-approval.js';
import type { Determination } from '../../src/coverage/determination.js';
import type { OrderEvent, OrderRecord, OrderState } from '../../src/storage/storage.js';

/**
 * A reviewer's denial binds the order until an approval follows it (docs/design.md §8 "A denial is the decision on the
 * order as it was denied"): a denial the rules gave after it, for the order changed in between, does not release the
 * order to a real-time approval when it is changed once more (review-diff s43 F5).
 */
const event = (state: OrderState, source: OrderEvent['source'], at: string, reason: string): OrderEvent => ({ at, source, actor: source === 'review' ? 'Dr. L. Chen' : `PAS ${at}`, state, reason, submissionId: `pas-${at}` });

function record(history: OrderEvent[]): OrderRecord {
  const last = history[history.length - 1];
  return { id: 'rec-1', payer: 'centene', patientId: 'pt-1', orderRef: 'MedicationRequest/ord-1', drug: 'blinatumomab', state: last.state, reason: last.reason, createdAt: history[0].at, updatedAt: last.at, history };
}

const reviewerDenied = event('denied', 'review', '2026-12-01T10:00:00Z', 'Dose 56 mcg/day not supported; resubmit at 28 mcg/day');
const reopened = (at: string) => event('auth-needed', 'crd', at, 'The order changed after its prior authorization request was denied');
const rulesDenied = event('denied', 'pas', '2026-12-03T10:00:00Z', 'T-cell ALL is not B-ALL (CP.PHAR.312 I.A.1)');

const satisfied = { outcome: 'satisfied', covered: 'covered', paNeeded: 'satisfied', reasons: [{ text: 'Meets CP.PHAR.312 I.A.4.a' }], needed: [], reviewAction: 'A1', summary: 'approved' } as unknown as Determination;

describe('a reviewer denial stands until an approval follows it', () => {
  it('holds after a later denial by the rules: the order changed again and now meeting the policy is pended for a reviewer', () => {
    const r = record([event('pended', 'pas', '2026-11-30T10:00:00Z', 'Over the limit'), reviewerDenied, reopened('2026-12-02T10:00:00Z'), rulesDenied, reopened('2026-12-04T10:00:00Z')]);
    expect(standingReviewDenial(r)).toEqual(reviewerDenied);
    const d = afterReviewDenial(satisfied, standingReviewDenial(r));
    expect(d.paNeeded).toBe('auth-needed');
    expect(d.reviewAction).toBe('A4');
    expect(d.reasons[0].text).toContain('A reviewer (Dr. L. Chen) denied this order');
  });

  it('is released by an approval after it, and never binds an order a reviewer did not deny', () => {
    const approvedLater = event('approved', 'review', '2026-12-05T10:00:00Z', 'Approved at 28 mcg/day');
    expect(standingReviewDenial(record([reviewerDenied, reopened('2026-12-02T10:00:00Z'), approvedLater, reopened('2026-12-06T10:00:00Z')]))).toBeUndefined();
    expect(standingReviewDenial(record([rulesDenied, reopened('2026-12-04T10:00:00Z')]))).toBeUndefined();
  });
});
