import { describe, expect, it } from 'vitest';
import { authorizationNumber } from '../../src/coverage/authorization.js';

/** An authorization number is read over the phone and must never repeat (docs/design.md §5 "satisfied"). */
describe('authorizationNumber', () => {
  it('is the payer, the date and 8 unambiguous random characters, distinct across thousands of approvals', () => {
    // 2,000 numbers draw 16,000 random bytes: several refills of the random pool.
    const numbers = Array.from({ length: 2000 }, () => authorizationNumber('centene', '2026-12-02'));
    for (const n of numbers) expect(n).toMatch(/^PA-CENTENE-20261202-[A-HJ-NP-Z2-9]{8}$/);
    expect(new Set(numbers).size).toBe(numbers.length);
    // Every one of the 32 symbols turns up (a stuck or zeroed pool would show as a few symbols only).
    expect(new Set(numbers.flatMap((n) => [...n.slice(-8)])).size).toBe(32);
  });
});
