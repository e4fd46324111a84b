/** A policy's approval length (policy file `approval`, without its `from`). */
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

