import { randomFillSync } from 'node:crypto';
import type { AuthorizationRecord } from '../storage/storage.js';

/** A policy's approval length (policy file `approval`). */
export interface ApprovalLength {
  days?: number;
  weeks?: number;
  months?: number;
}

/**
 * Adds a period to a date (YYYY-MM-DD) and returns the last day it covers (docs/design.md §5 "satisfied"). Months
 * are calendar months clamped to the last day of a shorter month, as FHIRPath and CQL add them: 31 August + 6 months
 * is 28 February, so the approval ends on the 27th, not on 2 March (JavaScript's setUTCMonth would roll over).
 */
export function periodEnd(start: string, d: ApprovalLength): string {
  const date = new Date(`${start}T00:00:00Z`);
  if (d.months) {
    const day = date.getUTCDate();
    date.setUTCDate(1);
    date.setUTCMonth(date.getUTCMonth() + d.months);
    const lastDay = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 0)).getUTCDate();
    date.setUTCDate(Math.min(day, lastDay));
  } else date.setUTCDate(date.getUTCDate() + (d.days ?? 0) + 7 * (d.weeks ?? 0));
  date.setUTCDate(date.getUTCDate() - 1);
  return date.toISOString().slice(0, 10);
}

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
 * A new approval (docs/design.md §5 "satisfied"): a fresh number and the period from the order's planned start
 * for the policy's approval length. Whether the order already holds one is the authorization record's business.
 */
export function newApproval(payer: string, today: string, orderDate: string, length: ApprovalLength): AuthorizationRecord {
  return { number: authorizationNumber(payer, today), start: orderDate, end: periodEnd(orderDate, length) };
}
