import { describe, expect, it } from 'vitest';
import { newApproval, periodEnd } from '../../src/coverage/authorization.js';

/**
 * An approval's period runs from the order's planned start for the policy's approval length (docs/design.md §5
 * "satisfied"), ending the day before the same date that many months later; a start on a day the last month lacks
 * (the 31st, 29-31 January) ends at that month's end, as FHIRPath and CQL date arithmetic clamp it, never days into the
 * month after.
 */
describe('approval period', () => {
  it('ends the day before the same date months later', () => {
    expect(periodEnd('2026-11-24', { months: 6 })).toBe('2027-05-23');
    expect(periodEnd('2026-11-24', { months: 12 })).toBe('2027-11-23');
  });

  it('a 6-month approval from 31 August ends in February, not in March', () => {
    expect(periodEnd('2026-08-31', { months: 6 })).toBe('2027-02-27');
    expect(newApproval('centene', '2026-08-30', '2026-08-31', { months: 6 })).toMatchObject({ start: '2026-08-31', end: '2027-02-27' });
  });

  it('clamps to the last day of a shorter month, leap years included', () => {
    expect(periodEnd('2027-03-31', { months: 6 })).toBe('2027-09-29');
    expect(periodEnd('2027-08-31', { months: 6 })).toBe('2028-02-28');
    expect(periodEnd('2026-12-31', { months: 12 })).toBe('2027-12-30');
  });

  it('a pathway whose approval runs from an earlier date (approval.from: the course\'s first cycle) ends that date + the length, starting on the order', () => {
    // HEALTHSERVICES-0382 I: cycle 5 of a relapsed/refractory course begun 2026-07-01, ordered for 2026-12-10.
    expect(newApproval('ohsu', '2026-12-05', '2026-12-10', { weeks: 30 }, '2026-07-01')).toMatchObject({ start: '2026-12-10', end: '2027-01-26' });
    // Unknown, or the order itself: the order's start + the length, as before.
    expect(newApproval('ohsu', '2026-12-05', '2026-12-10', { weeks: 30 })).toMatchObject({ start: '2026-12-10', end: '2027-07-07' });
    expect(newApproval('ohsu', '2026-12-05', '2026-12-10', { weeks: 30 }, '2026-12-10')).toMatchObject({ start: '2026-12-10', end: '2027-07-07' });
  });

  it('counts days and weeks exactly', () => {
    expect(periodEnd('2026-11-24', { days: 42 })).toBe('2027-01-04');
    expect(periodEnd('2026-11-24', { weeks: 30 })).toBe('2027-06-21');
  });
});
