import { randomFillSync } from 'node:crypto';
import { periodEnd } from '../policies/approval-period.js';
import type { ApprovalLength } from '../policies/approval-period.js';
import type { AuthorizationRecord } from '../storage/storage.js';

export { periodEnd };
export type { ApprovalLength };

/**
 * Cryptographically random bytes drawn from a buffer filled 4 KB at a time: a synchronous call into the system's
 * random source per approval cost more than the rest of the number (the same pooling Node's randomUUID does).
 */
const randomPool = {
  buffer: Buffer.alloc(4096),
  at: 4096,
  take(n: number): Buffer {
    if (this.at + n > this.buffer.length) {
      randomFillSync(this.buffer);
      this.at = 0;
    }
    const out = Buffer.from(this.buffer.subarray(this.at, this.at + n));
    // A byte handed out is never handed out again.
    this.buffer.fill(0, this.at, this.at + n);
    this.at += n;
    return out;
  },
};

/** An authorization number a person can read over the phone: payer, date, 8 random base32 characters. */
export function authorizationNumber(payer: string, date: string): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  const bytes = randomPool.take(8);
  // 32 symbols divide 256: every byte maps to a symbol with equal probability.
  const tail = [...bytes].map((b) => alphabet[b % alphabet.length]).join('');
  return `PA-${payer.toUpperCase()}-${date.replace(/-/g, '')}-${tail}`;
}

/**
 * A new approval (docs/design.md §5 "satisfied"): a fresh number and the period from the order's planned start to the
 * end of the policy's approval length, counted from `from` when the approving pathway runs from a date (its
 * `approval.from`, e.g. the first cycle of the course: `PolicyEvaluation.pathway.approvalFrom`), else from the
 * order's start. The policy evaluation never approves an order that starts after that end (evaluate-policy.ts). Whether
 * the order already holds one is the authorization record's business. `coverageEnd`, the last day of the Coverage it
 * is issued under (payer.ts `coverageLastDay`), caps the period: no approval outlives the member's coverage
 * (design.md §4 "Payer"; the Coverage is in force on the order date, so the period never ends before it starts).
 */
export function newApproval(payer: string, today: string, orderDate: string, length: ApprovalLength, from?: string, coverageEnd?: string): AuthorizationRecord {
  const end = periodEnd(from !== undefined && from < orderDate ? from : orderDate, length);
  return withinCoverage({ number: authorizationNumber(payer, today), start: orderDate, end }, coverageEnd);
}

/**
 * An approval as it may be issued or answered under a Coverage whose last day is `coverageEnd` (payer.ts
 * `coverageLastDay`; undefined: a Coverage with no end, or none known): its period ends no later than that day
 * (design.md §4 "Payer": no approval outlives the Coverage it is issued or answered under). Every edge that issues an
 * approval (signing, DTR, PAS, the reviewer) or answers one the order's record holds (issued earlier, under another
 * Coverage, or before the cap was kept) reads it through this one rule; the record keeps the period as issued. A
 * Coverage that ended before the approval starts leaves it as it is: the edges judge the Coverage in force on the
 * order's date first (notInForceOn), so the period never ends before it starts.
 */
export function withinCoverage<A extends { start: string; end: string }>(authorization: A, coverageEnd: string | undefined): A {
  if (!coverageEnd || authorization.end <= coverageEnd || coverageEnd < authorization.start) return authorization;
  return { ...authorization, end: coverageEnd };
}
