import type { Coverage, Identifier, Organization, Resource } from '@medplum/fhirtypes';
import type { Content, Payer } from '../content.js';
import { PAYER_ID_SYSTEM } from '../content.js';
import { byCodePoint } from '../code-point-order.js';
import { DomainError } from '../errors.js';
import { localReference } from '../fhir/references.js';

/** Reads one resource by reference from the EHR (the CRD edge's EHR client, or nothing in PAS). */
export interface ResourceReader {
  get(reference: string): Promise<Resource>;
}

/** The payer an order is asked of, and the Coverage that named it. */
export interface PayerMatch {
  payer: Payer;
  coverage?: Coverage;
  /** True when DEFAULT_PAYER stood in for a Coverage that named no known payer. */
  defaulted: boolean;
  /**
   * Set when the orders asked about fall in different Coverages of the one payer (a plan change: one Coverage ends and
   * the next begins), or some of them after every Coverage of it ends: every status-active Coverage of the payer, each
   * order decided under the one in force on its date ({@link coverageOn}), an order under none answered "no active
   * Coverage" on its own (design.md §4 "Payer"). `coverage` is then the one of the earliest order in force.
   */
  planCoverages?: Coverage[];
}

/**
 * The payer one of these identifiers names: any identifier its payer file lists (`identifiers`: the PriorPath payer
 * identifier, and other systems the payer verified), matched on system and value.
 */
export function payerNamedBy(content: Content, identifiers: Identifier[] | undefined): Payer | undefined {
  for (const id of identifiers ?? []) {
    if (!id.system || !id.value) continue;
    for (const payer of content.payers.values()) if (payer.identifiers.some((p) => p.system === id.system && p.value === id.value)) return payer;
  }
  return undefined;
}

/**
 * Identifies the payer from the primary active Coverage (design.md §4 "Payer"; CRD [hook-13]): the payor's
 * identifier in our payer system, on the reference or on the referenced Organization (contained, prefetched or
 * fetched). A Coverage is active when its status is (or is absent) and it is in force on every day in `onDates` (the
 * order dates of §6 of the orders decided under it, the service it would authorize; design.md §4 "Payer"), else on
 * `today`. Given as a function, `onDates` names the dates of the orders the Coverage's payer would decide (the payer it
 * names, DEFAULT_PAYER for one naming none PriorPath serves, undefined when that cannot be told): an order no policy of
 * that payer governs is not judged, and does not make the Coverage lapse (review s43 F2). Orders on both sides of a
 * plan change of one payer, or some past every Coverage of it, give a match with `planCoverages`, each order then
 * decided under its own ({@link coverageOn}). No Coverage, several
 * active Coverages or an unknown payer are a DomainError `invalid` (the edges answer 400); DEFAULT_PAYER stands in
 * only where no Coverage names a payer PriorPath serves (design.md §3): never for several active Coverages of which
 * one names a known payer, nor for a known payer's Coverage that is lapsed, not begun or not active. A payor
 * Organization the EHR failed to give (not a 404) is `incomplete` (412, design.md §4: a prefetch that cannot be
 * fetched).
 */
export async function identifyPayer(opts: {
  content: Content;
  coverages: Resource[];
  byReference: Map<string, Resource>;
  ehr?: ResourceReader;
  defaultPayer?: string;
  /** The day asked about (YYYY-MM-DD): the day a Coverage must be in force on when no `onDates` are given. */
  today?: string;
  /**
   * The order dates (YYYY-MM-DD, design.md §6) of the orders asked about: the active Coverage is in force on each. As a
   * function, those of the orders the Coverage's payer decides (above).
   */
  onDates?: string[] | ((payer: Payer | undefined) => string[]);
}): Promise<PayerMatch> {
  const { content, defaultPayer } = opts;
  const fallback = defaultPayer ? content.payers.get(defaultPayer) : undefined;
  // Each Coverage's payers are read once per call (a payor Organization may be read from the EHR).
  const naming = new Map<Coverage, ReturnType<typeof payersNamedBy>>();
  const namedBy = (c: Coverage) => naming.get(c) ?? naming.set(c, payersNamedBy(c, opts)).get(c)!;
  const daysOf = (on: string[] | undefined) => (on?.length ? [...new Set(on)].sort() : opts.today ? [opts.today] : []);
  const datesOf = new Map<Coverage, string[]>();
  const all = opts.coverages.filter((c): c is Coverage => c.resourceType === 'Coverage');
  const coverages = all.filter(statusActive);
  for (const c of coverages) {
    const on = opts.onDates;
    if (typeof on !== 'function') datesOf.set(c, daysOf(on));
    else {
      const { named } = await namedBy(c);
      datesOf.set(c, daysOf(on(named.size === 1 ? [...named.values()][0] : named.size === 0 ? fallback : undefined)));
    }
  }
  const lapses = (c: Coverage) => notInForceOn(c, datesOf.get(c)!);
  const active = coverages.filter((c) => !lapses(c));
  if (active.length !== 1) {
    // DEFAULT_PAYER is for a Coverage that names no payer PriorPath serves (design.md §3): a known payer's Coverage,
    // active or not, is answered as without it (several: send the primary; none in force: no coverage to authorize under).
    if (fallback && !(await someNamesKnownPayer(active.length > 1 ? active : all, namedBy))) return { payer: fallback, coverage: active[0], defaulted: true };
    // No one Coverage is in force on every order's date, but each order may still have its own: orders on both sides
    // of a plan change of one payer are decided per order, as PAS judges each item on its date (design.md §4 "Payer").
    const plan = active.length === 0 && typeof opts.onDates === 'function' ? await acrossPlanChange(coverages, namedBy, opts.onDates) : undefined;
    if (plan) return plan;
    // One lapsed on its dates is named before one whose status is not active.
    const refused = coverages.find(lapses) ?? all.find((c) => !coverages.includes(c));
    throw new DomainError(
      'invalid',
      active.length === 0
        ? `No active Coverage for the patient: ${refused ? notActiveOn(refused, datesOf.get(refused) ?? []) : 'cannot tell which payer to ask'}`
        : `${active.length} active Coverages: send only the primary Coverage`,
      ['prefetch.coverage'],
    );
  }
  const coverage = active[0];
  const { named, unreadable } = await namedBy(coverage);
  if (named.size > 1) {
    // multiple-matches, not invalid: PAS falls back to the Claim's insurer only for a Coverage naming no payer.
    throw new DomainError('multiple-matches', `The Coverage names more than one payer PriorPath serves (${[...named.keys()].join(', ')}): send the Coverage of the one payer to ask`, ['prefetch.coverage.payor']);
  }
  const [payer] = named.values();
  if (payer) return { payer, coverage, defaulted: false };
  if (fallback) return { payer: fallback, coverage, defaulted: true };
  if (unreadable) {
    throw new DomainError('incomplete', `The Coverage names its payer by ${unreadable}, which could not be read from fhirServer`, ['prefetch.coverage.payor']);
  }
  throw new DomainError('invalid', `The Coverage names no payer PriorPath serves (payor identifier system ${PAYER_ID_SYSTEM})`, ['prefetch.coverage.payor']);
}

/**
 * The payer of a call whose orders no one Coverage covers, when every status-active Coverage names that one payer
 * PriorPath serves, no order date has two of them in force (several active Coverages stay the 400: none is picked),
 * and at least one order date has one (with none, the call has no Coverage to answer under: the "No active Coverage"
 * 400). Undefined otherwise, and the call is refused as before.
 */
async function acrossPlanChange(
  coverages: Coverage[],
  namedBy: (c: Coverage) => ReturnType<typeof payersNamedBy>,
  onDates: (payer: Payer | undefined) => string[],
): Promise<PayerMatch | undefined> {
  let payer: Payer | undefined;
  for (const c of coverages) {
    const { named } = await namedBy(c);
    const [only] = named.values();
    if (named.size !== 1 || (payer && only !== payer)) return undefined;
    payer = only;
  }
  if (!payer) return undefined;
  const inForce = [...new Set(onDates(payer))].sort().map((day) => coverages.filter((c) => !notInForce(c, day)));
  if (inForce.some((cs) => cs.length > 1)) return undefined;
  const first = inForce.find((cs) => cs.length === 1);
  return first ? { payer, coverage: first[0], defaulted: false, planCoverages: coverages } : undefined;
}

/**
 * The Coverage an order dated `orderDate` is decided under when the call spans a plan change
 * ({@link PayerMatch.planCoverages}): the one in force that day; else the one the order falls nearest (the last to end
 * before it, else the first to begin after it), which the order's "no active Coverage" answer names (CRD's
 * coverage-information names a Coverage, 1..1), with `notInForce` saying why. Undefined for a call decided under its
 * one Coverage.
 */
export function coverageOn(match: PayerMatch, orderDate: string): { coverage: Coverage; notInForce?: string } | undefined {
  const plan = match.planCoverages;
  if (!plan) return undefined;
  const current = plan.find((c) => !notInForce(c, orderDate));
  if (current) return { coverage: current };
  const last = (c: Coverage) => coverageLastDay(c) ?? '9999-12-31';
  const ended = plan.filter((c) => last(c) < orderDate).sort((a, b) => byCodePoint(last(b), last(a)));
  const begins = plan.filter((c) => last(c) >= orderDate).sort((a, b) => byCodePoint(coverageFirstDay(a) ?? '', coverageFirstDay(b) ?? ''));
  const coverage = ended[0] ?? begins[0];
  return { coverage, notInForce: `No active Coverage: ${notActiveOn(coverage, [orderDate])}` };
}

/**
 * Whether any of these Coverages names a payer PriorPath serves, so that DEFAULT_PAYER may not stand in for them
 * (design.md §3). A payor Organization the EHR could not give counts as naming none, as for the one active Coverage.
 */
async function someNamesKnownPayer(coverages: Coverage[], namedBy: (c: Coverage) => ReturnType<typeof payersNamedBy>): Promise<boolean> {
  for (const coverage of coverages) {
    if ((await namedBy(coverage)).named.size > 0) return true;
  }
  return false;
}

/**
 * Every payer PriorPath serves that the Coverage names, by any payor's identifier or its Organization's (two
 * different ones are a Coverage that does not say which payer to ask: each payer's policy differs), and the
 * reference of a payor Organization the EHR could not give (timeout, 5xx, garbage; not a 404), which may name a payer
 * we serve: not knowing is not "names no payer".
 */
async function payersNamedBy(
  coverage: Coverage,
  opts: { content: Content; byReference: Map<string, Resource>; ehr?: ResourceReader },
): Promise<{ named: Map<string, Payer>; unreadable?: string }> {
  const { content } = opts;
  let unreadable: string | undefined;
  const named = new Map<string, Payer>();
  for (const payor of coverage.payor ?? []) {
    const byId = payerNamedBy(content, payor.identifier ? [payor.identifier] : undefined);
    if (byId) named.set(byId.key, byId);
    // An absolute reference (`https://ehr.example.org/fhir/Organization/x`) names the same Organization as its
    // relative form, which is how prefetched resources are indexed and how the EHR is asked.
    const ref = localReference(payor.reference) ?? payor.reference;
    if (!ref) continue;
    let org: Resource | undefined = ref.startsWith('#') ? coverage.contained?.find((c) => c.id === ref.slice(1)) : opts.byReference.get(ref);
    // The EHR is asked for the Organization only while no payer is named yet: one already named by an identifier
    // is checked against an Organization the request carries, not one more read.
    if (!org && named.size === 0 && opts.ehr && /^Organization\/[A-Za-z0-9\-.]{1,64}$/.test(ref)) {
      org = await opts.ehr.get(ref).catch((err: unknown) => {
        const status = (err as { status?: unknown }).status;
        // Only when the reference is how this payor names its payer: an identifier on it already said who it is.
        if (status !== 404 && status !== 410 && !payor.identifier) unreadable ??= ref;
        return undefined;
      });
    }
    const byOrg = org?.resourceType === 'Organization' ? payerNamedBy(content, (org as Organization).identifier) : undefined;
    if (byOrg) named.set(byOrg.key, byOrg);
  }
  return { named, unreadable };
}

/**
 * Why a Coverage is no coverage to authorize under on these days (the order dates it would authorize), if it is not,
 * naming it: its status is not active (`Coverage c1 is cancelled`; absent counts as active), else it is not in force
 * on one of them ({@link notInForceOn}: `Coverage c1 ended on 2025-12-31, not in force on the order date 2026-01-04`).
 * The one judgement of a Coverage on an order's date that CRD ({@link identifyPayer}, {@link coverageOn}), PAS (each
 * item on its order date, and the request's Coverage status) and DTR make (design.md §4 "Payer"); each edge puts it
 * after its own "No active Coverage" (a call-wide refusal: "… for the patient"). With no dates only the status is judged.
 */
export function notActiveOn(coverage: Coverage, dates: string[]): string | undefined {
  const name = `Coverage${coverage.id ? ` ${coverage.id}` : ''}`;
  if (!statusActive(coverage)) return `${name} is ${coverage.status}`;
  const why = notInForceOn(coverage, dates);
  return why ? `${name} ${why}` : undefined;
}

/** Whether a Coverage's status is active, or absent (design.md §4 "Payer": the primary *active* Coverage). */
function statusActive(coverage: Coverage): boolean {
  return coverage.status === undefined || coverage.status === 'active';
}

/**
 * Why a Coverage is not in force on one of these days (the order dates it would authorize, design.md §4 "Payer"), if
 * it is not: {@link notInForce} on the first day it fails, naming that day when it is not the only one asked about.
 */
export function notInForceOn(coverage: Coverage, dates: string[]): string | undefined {
  for (const day of dates) {
    const why = notInForce(coverage, day);
    if (why) return `${why}, not in force on the order date ${day}`;
  }
  return undefined;
}

/**
 * The first day a Coverage covers (YYYY-MM-DD), from its `period.start` read at its own precision (2026 → 2026-01-01,
 * 2026-07 → 2026-07-01), or undefined for a period with no start: the other end of {@link coverageLastDay}, shown to
 * the reviewer beside it (design.md §4 "Payer").
 */
export function coverageFirstDay(coverage: Coverage | undefined): string | undefined {
  const start = coverage?.period?.start;
  if (!start || !/^\d{4}(-\d{2}(-\d{2})?)?/.test(start)) return undefined;
  if (/^\d{4}-\d{2}-\d{2}/.test(start)) return start.slice(0, 10);
  return /^\d{4}-\d{2}/.test(start) ? `${start.slice(0, 7)}-01` : `${start.slice(0, 4)}-01-01`;
}

/**
 * The last day a Coverage covers (YYYY-MM-DD), from its `period.end` read at its own precision (2026 → 2026-12-31,
 * 2026-02 → 2026-02-28), or undefined for a period with no end. An approval issued under the Coverage ends no later
 * (design.md §4 "Payer": no authorization outlives the coverage it is issued under).
 */
export function coverageLastDay(coverage: Coverage | undefined): string | undefined {
  const end = coverage?.period?.end;
  if (!end || !/^\d{4}(-\d{2}(-\d{2})?)?/.test(end)) return undefined;
  if (/^\d{4}-\d{2}-\d{2}/.test(end)) return end.slice(0, 10);
  if (/^\d{4}-\d{2}/.test(end)) {
    const [y, m] = end.slice(0, 7).split('-').map(Number);
    return `${end.slice(0, 7)}-${String(new Date(Date.UTC(y, m, 0)).getUTCDate()).padStart(2, '0')}`;
  }
  return `${end.slice(0, 4)}-12-31`;
}

/**
 * Why a Coverage marked active is not in force on `today`, if it is not (design.md §4 "Payer": the primary *active*
 * Coverage; CRD 2.2.1 [resp-45]): its period ended before that day (a lapsed plan an EHR has not closed), or begins
 * after it (a plan not yet in force: no authorization is issued on it before it covers the member). A period with no
 * end, or one in force that day, is in force; so is any Coverage when no day is given. Partial dates (2025, 2025-12)
 * are compared on their own precision.
 */
export function notInForce(coverage: Coverage, today: string | undefined): string | undefined {
  if (!today) return undefined;
  const day = (d: string | undefined) => (d && /^\d{4}(-\d{2}(-\d{2})?)?/.test(d) ? d.slice(0, 10) : undefined);
  const end = day(coverage.period?.end);
  if (end && end < today.slice(0, end.length)) return `ended on ${end}`;
  const start = day(coverage.period?.start);
  if (start && start > today.slice(0, start.length)) return `begins on ${start}`;
  return undefined;
}
