/**
 * Nothing is recorded for a PAS write that is refused (design.md §8): a request's approvals and denials become its
 * orders' decisions in the transaction that stores the request, so a request that loses a race to store (a concurrent
 * resend of the same Bundle stored first) leaves no decision, event or authorization number behind.
 */
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import type { AuthorizationRecord, GuardedOrderChange, NewPasSubmission, OrderRecord, PasSubmission } from '../../src/storage/storage.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { claimResponseOf, pasApp, reviewActions, storyBundle } from './pas-fixtures.js';

const X12 = 'https://codesystem.x12.org/005010/306';

/**
 * Memory storage whose next two request stores wait for each other and then run last-come first: the request that
 * reached the store second is stored, the first is answered with it (a resend racing its original).
 */
class StoresTogether extends MemoryStorage {
  together = 0;
  private waiting: (() => void)[] = [];

  override async createPasSubmissionForOrders(
    s: NewPasSubmission,
    orders: GuardedOrderChange[],
    authorization?: AuthorizationRecord,
  ): Promise<{ created: true; submission: PasSubmission } | { created: false; submission?: PasSubmission; blockedBy?: OrderRecord }> {
    if (this.together > 0) {
      this.together--;
      await new Promise<void>((resolve) => {
        this.waiting.push(resolve);
        if (this.together > 0) return;
        const order = this.waiting.splice(0).reverse();
        // One at a time, each after the last has stored (or been refused).
        void order.reduce((p, w) => p.then(() => (w(), new Promise<void>((r) => setTimeout(r, 20)))), Promise.resolve());
      });
    }
    return super.createPasSubmissionForOrders(s, orders, authorization);
  }
}

describe('Claim/$submit sent twice at once (a double click, a retry after a timeout)', () => {
  it('stores one request, and the order’s approval, event and number are that request’s: the refused one records nothing', async () => {
    const storage = new StoresTogether();
    const { app } = pasApp(storage);
    const bundle = storyBundle('centene-missing-mrd', { answers: { 'mrd-percent': [{ valueDecimal: 0.52 }] } });
    storage.together = 2;
    const answers = await Promise.all([1, 2].map(() => request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(JSON.stringify(bundle))));
    for (const a of answers) expect(a.status, JSON.stringify(a.body)).toBe(200);
    const [first, second] = answers.map((a) => claimResponseOf(a.body));
    expect(reviewActions(first)).toEqual([`${X12}#A1`]);
    expect([second.id, second.preAuthRef]).toEqual([first.id, first.preAuthRef]);

    // One stored request; the order's one approval names it, and its number is the one answered.
    expect([...storage.submissions.keys()]).toEqual([first.id]);
    const [record] = [...storage.orders.values()];
    expect(record.authorization?.number).toBe(first.preAuthRef);
    expect(record.history.filter((h) => h.state === 'approved').map((h) => [h.submissionId, h.authorizationNumber])).toEqual([[first.id, first.preAuthRef]]);
    expect([...storage.authorizations.values()].map((a) => [a.number, a.submissionId])).toEqual([[first.preAuthRef, first.id]]);
  });
});
