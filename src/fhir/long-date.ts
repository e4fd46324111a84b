/**
 * Dates in the words people read (docs/design.md §2, style: "5 December 2026", never "2026-12-05"): the reasons a
 * clinician reads on a card, the demo page and DTR, and the answers a reviewer reads. One formatter for both.
 */

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/**
 * A FHIR `date` in words: "2026-12-17" → "17 December 2026", "2026-12" → "December 2026", "2026" → "2026". Anything
 * that is not such a date is returned as written (never guessed at).
 */
export function longDate(date: string): string {
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$/.exec(date);
  const month = m?.[2] ? MONTHS[Number(m[2]) - 1] : undefined;
  if (!m || (m[2] && !month)) return date;
  if (!m[2]) return m[1];
  return m[3] ? `${Number(m[3])} ${month} ${m[1]}` : `${month} ${m[1]}`;
}

/**
 * A FHIR `dateTime` in words: a date alone as {@link longDate}; with a time, the instant in UTC, "5 December 2026,
 * 12:46 UTC" (as the reviewer's workbench writes times). Anything else is returned as written.
 */
export function longDateTime(dateTime: string): string {
  if (!dateTime.includes('T')) return longDate(dateTime);
  const ms = Date.parse(dateTime);
  if (Number.isNaN(ms)) return dateTime;
  const iso = new Date(ms).toISOString();
  return `${longDate(iso.slice(0, 10))}, ${iso.slice(11, 16)} UTC`;
}
