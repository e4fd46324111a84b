import { describe, expect, it } from 'vitest';
import { byInstant, instantOf } from '../../src/fhir/fhir-instant.js';

/** design.md §6: the latest result decides, by the instant it was taken (cds-services/README.md "Clinical readings" 10). */
describe('the instant a FHIR date, dateTime or instant stands for', () => {
  it('orders results written with different time-zone offsets by when they were taken, not by their text', () => {
    const east = '2026-11-02T01:00:00+05:00'; // 2026-11-01T20:00Z
    const west = '2026-11-01T22:00:00-05:00'; // 2026-11-02T03:00Z
    expect(instantOf(east)).toBe(Date.UTC(2026, 10, 1, 20));
    expect(instantOf(west)).toBe(Date.UTC(2026, 10, 2, 3));
    expect([west, east].sort(byInstant)).toEqual([east, west]);
    expect(instantOf('2026-11-01T22:00:00.250Z')).toBe(Date.UTC(2026, 10, 1, 22, 0, 0, 250));
    expect(instantOf('2026-11-01T05:30:00+05:30')).toBe(Date.UTC(2026, 10, 1, 0, 0));
  });

  it('reads a date without a time, and a partial date, as the start of its day in UTC', () => {
    expect(instantOf('2026-11-08')).toBe(Date.UTC(2026, 10, 8));
    expect(instantOf('2026-11')).toBe(Date.UTC(2026, 10, 1));
    expect(instantOf('2026')).toBe(Date.UTC(2026, 0, 1));
    expect(['2026-11-09', '2026-11-08T23:00:00Z', '2026-11'].sort(byInstant)).toEqual(['2026-11', '2026-11-08T23:00:00Z', '2026-11-09']);
  });

  it('puts a missing or unreadable date first, and keeps equal instants in their order', () => {
    expect(instantOf(undefined)).toBeUndefined();
    expect(instantOf('yesterday')).toBeUndefined();
    expect(['2026-11-08', 'n/a'].sort(byInstant)).toEqual(['n/a', '2026-11-08']);
    expect(byInstant(undefined, '2026-11-08')).toBeLessThan(0);
    const same = [{ at: '2026-11-01T10:00:00Z', id: 'a' }, { at: '2026-11-01T05:00:00-05:00', id: 'b' }];
    expect([...same].sort((x, y) => byInstant(x.at, y.at)).map((x) => x.id)).toEqual(['a', 'b']);
  });
});
