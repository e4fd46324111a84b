import type { Coverage, Identifier, Organization, Resource } from '@medplum/fhirtypes';
import type { Content, Payer } from '../content.js';
import { PAYER_ID_SYSTEM } from '../content.js';
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
 * fetched). No Coverage, several active Coverages or an unknown payer are a DomainError `invalid` (the edges answer
 * 400), unless DEFAULT_PAYER is set; a payor Organization the EHR failed to give (not a 404) is `incomplete` (412,
 * design.md §4: a prefetch that cannot be fetched).
 */
export async function identifyPayer(opts: {
  content: Content;
  coverages: Resource[];
  byReference: Map<string, Resource>;
  ehr?: ResourceReader;
  defaultPayer?: string;
  /** The day asked about (YYYY-MM-DD): a Coverage whose period ended before it is not active. */
  today?: string;
}): Promise<PayerMatch> {
  const { content, defaultPayer } = opts;
  const fallback = defaultPayer ? content.payers.get(defaultPayer) : undefined;
  const coverages = opts.coverages.filter((c): c is Coverage => c.resourceType === 'Coverage' && (c.status === undefined || c.status === 'active'));
  const active = coverages.filter((c) => !notInForce(c, opts.today));
  if (active.length !== 1) {
    if (fallback) return { payer: fallback, coverage: active[0], defaulted: true };
    const lapsed = coverages.find((c) => notInForce(c, opts.today));
    throw new DomainError(
      'invalid',
      active.length === 0
        ? lapsed
          ? `No active Coverage for the patient: Coverage${lapsed.id ? ` ${lapsed.id}` : ''} ${notInForce(lapsed, opts.today)}`
          : 'No active Coverage for the patient: cannot tell which payer to ask'
        : `${active.length} active Coverages: send only the primary Coverage`,
      ['prefetch.coverage'],
    );
  }
  const coverage = active[0];
  // A payor named only by a reference to an Organization the EHR could not give (timeout, 5xx, garbage; not a 404)
  // may be a payer we serve: not knowing is not "names no payer".
  let unreadable: string | undefined;
  // Every payer the Coverage names, by any payor's identifier or its Organization's: two different ones are a
  // Coverage that does not say which payer to ask (each payer's policy differs), answered as several Coverages are.
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
