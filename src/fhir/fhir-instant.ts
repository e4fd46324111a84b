/**
 * The instant a FHIR date, dateTime or instant stands for, to order results in time (design.md §6: the latest result
 * decides). Two results written with different time-zone offsets compare by the moment they were taken, not by their
 * text: `2026-11-02T01:00:00+05:00` (20:00 UTC on 1 November) is before `2026-11-01T22:00:00-05:00` (03:00 UTC on
 * 2 November), though its text sorts after. A value without a time (a date, or a partial date such as `2026-11` or
 * `2026`) compares as its day: the start of that day (its first month or day where partial) in UTC. A time without
 * an offset, which FHIR does not allow, is read as UTC rather than the server's own zone, so every server orders alike.
 * The generated CQL orders `%observations` the same way (cql-library-source.ts "Observations").
 */

const FHIR_DATE_TIME =
  /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/**
 * Milliseconds since 1970-01-01T00:00:00Z of a FHIR date, dateTime or instant, as described above; undefined when
 * the value is missing or not a FHIR date.
 */
export function instantOf(value: string | undefined): number | undefined {
  const m = value === undefined ? null : FHIR_DATE_TIME.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const utc = Date.UTC(
    Number(y),
    mo ? Number(mo) - 1 : 0,
    d ? Number(d) : 1,
    h ? Number(h) : 0,
    mi ? Number(mi) : 0,
    s ? Number(s) : 0,
    frac ? Number(frac.slice(0, 3).padEnd(3, '0')) : 0,
  );
  // Years 0-99 would be read as 1900-1999 by Date.UTC's legacy rule; FHIR years are four digits, so undo it.
  const year = Number(y);
  const fixed = year < 100 ? new Date(utc).setUTCFullYear(year) : utc;
  if (!zone || zone === 'Z') return fixed;
  const sign = zone.startsWith('-') ? -1 : 1;
  const offsetMinutes = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
  return fixed - offsetMinutes * 60_000;
}

/**
 * Orders two FHIR date/dateTime/instant values oldest first by the instant they stand for ({@link instantOf}); a
 * missing or unreadable value sorts before every dated one, and values of the same instant keep their order (the
 * sort is stable).
 */
export function byInstant(a: string | undefined, b: string | undefined): number {
  const x = instantOf(a) ?? -Infinity;
  const y = instantOf(b) ?? -Infinity;
  return x < y ? -1 : x > y ? 1 : 0;
}
