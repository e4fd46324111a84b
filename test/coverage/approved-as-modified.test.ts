import { describe, expect, it } from 'vitest';
import { asApproved, asksMoreThanModified, limitsAskNoMore } from '../../src/coverage/reviewed-approval.js';
import type { StoredItem } from '../../src/coverage/reviewed-approval.js';

/**
 * What a reviewer's approval as modified covers (docs/design.md §8 "Approve as modified"; review ui s44 L3): the
 * amounts approved, never those asked, whether or not the order exceeds a policy limit.
 */
const reviewed: StoredItem = {
  askedAmounts: ['dailyDoseUg', 'cyclesRequested'],
  quantity: { value: 1568, unit: 'ug', code: 'ug', system: 'http://unitsofmeasure.org' },
  criteria: [
    { id: 'max-daily-dose', kind: 'limit', result: false, evidence: [{ fact: 'dailyDoseUg', value: 56, source: 'ehr' }] },
    { id: 'course-length', kind: 'limit', result: true, evidence: [{ fact: 'cyclesRequested', value: 6, source: 'ehr' }] },
  ],
  approvedAs: { amounts: [{ fact: 'dailyDoseUg', approved: 28 }, { fact: 'cyclesRequested', approved: 2 }], quantity: { value: 784, unit: 'ug', code: 'ug', system: 'http://unitsofmeasure.org' } },
};

describe('an approval as modified covers what was approved', () => {
  it('reads the reviewed item as approved: the approved amounts in its evidence, the approved quantity', () => {
    const item = asApproved(reviewed);
    expect(item.criteria[0].evidence![0].value).toBe(28);
    expect(item.criteria[1].evidence![0].value).toBe(2);
    expect(item.quantity?.value).toBe(784);
    // The limit exceeded at 56 asked is not covered at 56 by an approval of 28; it is at 28.
    const at = (dose: number) => [{ id: 'max-daily-dose', kind: 'limit', result: false as const, evidence: [{ fact: 'dailyDoseUg', value: dose }] }];
    expect(limitsAskNoMore(at(56), item.criteria, reviewed.askedAmounts)).toBe(false);
    expect(limitsAskNoMore(at(56), reviewed.criteria, reviewed.askedAmounts)).toBe(true);
    // An item approved as asked is read as it was.
    const { approvedAs: _none, ...asAsked } = reviewed;
    expect(asApproved(asAsked)).toBe(asAsked);
  });

  it('an order asking more than approved, within every policy limit (6 cycles after 2 approved), asks more; as approved or less, it does not', () => {
    expect(asksMoreThanModified(new Map<string, unknown>([['dailyDoseUg', 28], ['cyclesRequested', 6]]), reviewed.approvedAs)).toBe(true);
    expect(asksMoreThanModified(new Map<string, unknown>([['dailyDoseUg', 56], ['cyclesRequested', 2]]), reviewed.approvedAs)).toBe(true);
    expect(asksMoreThanModified(new Map<string, unknown>([['dailyDoseUg', 28], ['cyclesRequested', 2]]), reviewed.approvedAs)).toBe(false);
    expect(asksMoreThanModified(new Map<string, unknown>([['dailyDoseUg', 21], ['cyclesRequested', 1]]), reviewed.approvedAs)).toBe(false);
    // A dose the order leaves unknown cannot ask more; an approval as asked bounds nothing here.
    expect(asksMoreThanModified(new Map<string, unknown>([['cyclesRequested', 2]]), reviewed.approvedAs)).toBe(false);
    expect(asksMoreThanModified(new Map<string, unknown>([['dailyDoseUg', 56]]), undefined)).toBe(false);
  });
});
