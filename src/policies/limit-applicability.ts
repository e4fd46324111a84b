/**
 * When a limit applies (design.md §5 "Limits"; FHIRPath `implies` and `iif`, https://hl7.org/fhirpath/N1/#implies).
 * A limit on one covered use is written as a condition that holds vacuously for everyone else: `A implies B` or
 * `iif(A, B, true)` (and `iif(A, true, B)`, applying unless A). Its result is then `true` both for a patient within the
 * bound and for one the limit does not concern, and a reviewer reading "true" for a relapsed-only cycle limit on a
 * patient who is not relapsed would take it as checked. This reads the condition under which the bound applies from
 * the expression's text, so the trace can say "not applicable" apart from "within the limit".
 */

/**
 * Walks `text` from `from`, calling `visit` with each character outside quoted strings (a quote and what it encloses
 * are skipped). `visit` returning a number moves the walk on to that index; returning true stops it.
 */
function walkOutsideQuotes(text: string, from: number, visit: (i: number, c: string) => number | boolean | void): void {
  let quote: string | undefined;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
      continue;
    }
    if (c === "'" || c === '`' || c === '"') {
      quote = c;
      continue;
    }
    const next = visit(i, c);
    if (next === true) return;
    if (typeof next === 'number') i = next;
  }
}

/** The top-level pieces of `text` split at `sep` (outside parentheses, brackets and quoted strings). */
export function splitTopLevel(text: string, sep: RegExp): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  walkOutsideQuotes(text, 0, (i, c) => {
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else if (depth === 0) {
      const m = sep.exec(text.slice(i));
      if (m && m.index === 0) {
        parts.push(text.slice(start, i));
        start = i + m[0].length;
        return start - 1;
      }
    }
  });
  parts.push(text.slice(start));
  return parts;
}

/** Whether the parenthesis at `open` closes at the last character of `text`. */
function closesAtEnd(text: string, open: number): boolean {
  let depth = 0;
  let closes = false;
  walkOutsideQuotes(text, open, (i, c) => {
    if (c === '(') depth++;
    else if (c === ')' && --depth === 0) {
      closes = i === text.length - 1;
      return true;
    }
  });
  return closes;
}

/**
 * The condition A of a limit written `iif(A, B, true)`, undefined for any other shape. Such a limit passes when A is
 * unknown (FHIRPath `iif` takes its otherwise branch on an empty criterion, https://hl7.org/fhirpath/N1/#iif), so an
 * order whose use the record does not show would be approved past the bound (design.md §6 "Clinical readings": an
 * unknown is asked, never taken as met). `A implies B` leaves it unknown instead.
 */
export function passesWhenUnknown(when: string): string | undefined {
  const text = when.trim();
  const m = /^iif\s*\(/.exec(text);
  if (!m || !closesAtEnd(text, m[0].length - 1)) return undefined;
  const args = splitTopLevel(text.slice(m[0].length, -1), /^,/).map((a) => a.trim());
  return args.length === 3 && args[2] === 'true' && args[1] !== 'true' ? args[0] : undefined;
}

/**
 * The FHIRPath (over the facts) that is true when a limit written `when` applies to the patient, false when it does
 * not, empty when that is not known; undefined for a limit that applies to everyone (no condition).
 */
export function applicabilityOf(when: string): string | undefined {
  const text = when.trim();
  const implied = splitTopLevel(text, /^\s+implies\s+/);
  if (implied.length === 2) return implied[0].trim();
  const m = /^iif\s*\(/.exec(text);
  if (!m || !closesAtEnd(text, m[0].length - 1)) return undefined;
  const args = splitTopLevel(text.slice(m[0].length, -1), /^,/).map((a) => a.trim());
  if (args.length !== 3) return undefined;
  // iif(A, B, true): the bound B is checked only when A is true; an unknown A leaves it unknown whether it applies.
  if (args[2] === 'true' && args[1] !== 'true') return args[0];
  // iif(A, true, B): B is checked unless A is true (an unknown A takes the otherwise branch, so B applies).
  if (args[1] === 'true' && args[2] !== 'true') return `iif(${args[0]}, false, true)`;
  return undefined;
}
