import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle, Coverage, Extension, MedicationRequest, Patient } from '@medplum/fhirtypes';

/** Bundle.meta extensions every story carries. */
export const STORY_EXTENSIONS = {
  /** valueDate: the day the story was written for; all its dates move with (today − anchor) */
  anchor: 'https://priorpath.dev/fhir/StructureDefinition/sandbox-anchor-date',
  /** valueString: one line for the demo page */
  story: 'https://priorpath.dev/fhir/StructureDefinition/sandbox-story',
  /** valueString: `<policy-id>: <outcome> (<why>)` */
  expected: 'https://priorpath.dev/fhir/StructureDefinition/sandbox-expected',
} as const;

const PAYER_SYSTEM = 'https://priorpath.dev/fhir/sid/payer';
const DAY_MS = 86_400_000;

// Full dates and date-times (dateTime and instant). Whole string only, so references, codes and text never match.
const FULL = /^(\d{4})-(\d{2})-(\d{2})(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?$/;
// Partial dates (YYYY, YYYY-MM) are shifted only under element names that hold dates, because "2026" or "2026-11"
// elsewhere (a version, an identifier) is not a date.
const PARTIAL = /^(\d{4})(?:-(\d{2}))?$/;
const DATE_KEY =
  /^(?:birthDate|date|start|end|issued|authoredOn|recorded|timestamp|lastUpdated|occurrenceDateTime|valueDate|valueDateTime)$|Date$|DateTime$|Instant$/;
// Strings under these names are identifiers or canonical names, never dates to move.
const NEVER_SHIFT = new Set(['id', 'url', 'system', 'reference', 'fullUrl', 'code', 'version', 'value']);

function utcDay(y: number, m: number, d: number): number | undefined {
  const t = Date.UTC(y, m - 1, d);
  const back = new Date(t);
  return back.getUTCFullYear() === y && back.getUTCMonth() === m - 1 && back.getUTCDate() === d ? t : undefined;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

function ymd(t: number): [string, string, string] {
  const d = new Date(t);
  return [pad(d.getUTCFullYear(), 4), pad(d.getUTCMonth() + 1), pad(d.getUTCDate())];
}

/** Days from `from` to `to`, both YYYY-MM-DD. */
export function daysBetween(from: string, to: string): number {
  const a = parseDay(from);
  const b = parseDay(to);
  return Math.round((b - a) / DAY_MS);
}

function parseDay(s: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  const t = m ? utcDay(+m[1], +m[2], +m[3]) : undefined;
  if (t === undefined) throw new Error(`not a date (YYYY-MM-DD): ${JSON.stringify(s)}`);
  return t;
}

/**
 * Moves one date, dateTime or instant string by `days`, keeping its precision and format: the calendar date part
 * moves, a time and zone offset stay as written. Strings that are not dates come back unchanged. A partial date
 * moves by its middle (15th of the month, 2 July), so it lands in the month or year that holds most of its days.
 */
export function shiftDateString(value: string, days: number, partialAllowed = true): string {
  if (days === 0) return value;
  const full = FULL.exec(value);
  if (full) {
    const t = utcDay(+full[1], +full[2], +full[3]);
    if (t === undefined) return value;
    return ymd(t + days * DAY_MS).join('-') + (full[4] ?? '');
  }
  const partial = partialAllowed ? PARTIAL.exec(value) : null;
  if (partial) {
    const y = +partial[1];
    const month = partial[2];
    if (month !== undefined) {
      const t = utcDay(y, +month, 15);
      return t === undefined
        ? value
        : ymd(t + days * DAY_MS)
            .slice(0, 2)
            .join('-');
    }
    return ymd(Date.UTC(y, 6, 2) + days * DAY_MS)[0];
  }
  return value;
}

function shiftValue(value: unknown, days: number, key: string): unknown {
  if (typeof value === 'string') return NEVER_SHIFT.has(key) ? value : shiftDateString(value, days, DATE_KEY.test(key));
  if (Array.isArray(value)) return value.map((v) => shiftValue(v, days, key));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = shiftValue(v, days, k);
    return out;
  }
  return value;
}

function metaExtension(bundle: Bundle, url: string): Extension | undefined {
  return bundle.meta?.extension?.find((e) => e.url === url);
}

/** The story's anchor date, if it has one. */
export function anchorDate(bundle: Bundle): string | undefined {
  return metaExtension(bundle, STORY_EXTENSIONS.anchor)?.valueDate;
}

/**
 * A copy of `bundle` with every date moved by (today − anchor) days, so a story written for its anchor day reads the
 * same ("MRD three weeks ago, start on Thursday") whenever it is loaded. The anchor itself becomes `today`. A bundle
 * without an anchor is returned as a copy, unshifted. Pure.
 */
export function shiftBundleDates(bundle: Bundle, today: string): Bundle {
  const anchor = anchorDate(bundle);
  if (!anchor) return structuredClone(bundle);
  return shiftValue(bundle, daysBetween(anchor, today), '') as Bundle;
}

/** Today's date in UTC, YYYY-MM-DD. */
export function utcToday(now = new Date()): string {
  return now.toISOString().slice(0, 10);
}

/**
 * Reads every `*.json` transaction (or batch) Bundle in `dir`, sorted by file name, each with its dates shifted to
 * `today` (default: the current UTC date). Throws naming the file when one is not such a Bundle.
 */
export function loadSandboxBundles(dir: string, opts: { today?: string } = {}): Bundle[] {
  const today = opts.today ?? utcToday();
  parseDay(today);
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort();
  return files.map((file) => {
    let bundle: Bundle;
    try {
      bundle = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Bundle;
    } catch (err) {
      throw new Error(`sandbox story ${file}: not valid JSON (${(err as Error).message})`);
    }
    if (bundle?.resourceType !== 'Bundle' || (bundle.type !== 'transaction' && bundle.type !== 'batch')) {
      throw new Error(`sandbox story ${file}: not a transaction or batch Bundle`);
    }
    return shiftBundleDates(bundle, today);
  });
}

/** What the demo page lists for a story. */
export interface SandboxStory {
  /** the story id (= Bundle.id = the file name without .json) */
  id: string;
  patientId?: string;
  patientName?: string;
  /** payer key from the Coverage's payor identifier */
  payer?: string;
  /** the draft order under review, `<story-id>-order` */
  orderId?: string;
  story?: string;
  expected?: string;
}

/** Summaries of the stories, in bundle order. */
export function describeStories(bundles: Bundle[]): SandboxStory[] {
  return bundles.map((bundle) => {
    const resources = (bundle.entry ?? []).map((e) => e.resource);
    const patient = resources.find((r): r is Patient => r?.resourceType === 'Patient');
    const coverage = resources.find((r): r is Coverage => r?.resourceType === 'Coverage');
    const order = resources.find(
      (r): r is MedicationRequest => r?.resourceType === 'MedicationRequest' && r.status === 'draft',
    );
    const name = patient?.name?.[0];
    return {
      id: bundle.id ?? '',
      patientId: patient?.id,
      patientName: name ? [...(name.given ?? []), name.family].filter(Boolean).join(' ') : undefined,
      payer: coverage?.payor?.find((p) => p.identifier?.system === PAYER_SYSTEM)?.identifier?.value,
      orderId: order?.id,
      story: metaExtension(bundle, STORY_EXTENSIONS.story)?.valueString,
      expected: metaExtension(bundle, STORY_EXTENSIONS.expected)?.valueString,
    };
  });
}
