import type { Bundle, Resource } from '@medplum/fhirtypes';
import { preconditionFailed } from '../errors.js';
import { aboutAnotherPatient, resourceLabel } from '../fhir/one-patient.js';
import type { Logger } from '../logger.js';
import { EhrQueryError } from './ehr-client.js';
import type { EhrClient } from './ehr-client.js';
import type { HookRequest } from './hook-request.js';
import { resourcesOf } from './hook-request.js';

/** Keys a decision can be made without: a missing `user` leaves the prescriber's specialty unknown (asked in DTR; docs/design.md §4 Prefetch). */
const OPTIONAL_KEYS = new Set(['user']);

/** Whether a prefetch value carries data: absent, null and OperationOutcome values are missing (design.md §4). */
export function isUsablePrefetch(value: unknown): boolean {
  if (value === undefined || value === null || typeof value !== 'object') return false;
  return (value as Resource).resourceType !== 'OperationOutcome';
}

/** Fills a template's `{{context.x}}` tokens; undefined when a token has no value (the query cannot run). */
export function fillTemplate(template: string, req: HookRequest): string | undefined {
  let missing = false;
  const out = template.replace(/\{\{\s*context\.([A-Za-z]+)\s*\}\}/g, (_m, name: string) => {
    const v = (req.raw.context as Record<string, unknown>)[name];
    if (typeof v !== 'string' || v === '') {
      missing = true;
      return '';
    }
    return encodeURIComponent(v).replace(/%2F/gi, '/');
  });
  return missing || out.includes('{{') ? undefined : out;
}

/** Pages read after the first of one search, at most: a record larger than this is not read in part. */
const MAX_PAGES = 100;

/** A searchset's next page, when the client or the EHR paged it (CDS Hooks §Prefetch: results may be paginated). */
function nextPage(value: unknown): string | undefined {
  const bundle = value as Bundle;
  if (bundle?.resourceType !== 'Bundle') return undefined;
  return bundle.link?.find((l) => l.relation === 'next' && typeof l.url === 'string' && l.url !== '')?.url;
}

/**
 * Every resource of a search, reading the pages after the first from the EHR. A search is the patient's whole record
 * of its kind (design.md §6: absence of a history reads as false), so a page that cannot be read leaves the key
 * missing rather than a part of it read as the whole.
 *
 * What the EHR answers (`fromEhr` for the first page of a query, always for later pages) must be about the context
 * patient, the same rule as for prefetch (src/fhir/one-patient.ts): an answer holding another patient's resource is an
 * EHR that ignored or misapplied `patient=`, so the read failed and the key is missing (412 naming it), rather than
 * that patient's lab lent to this one's decision or the rest taken as this patient's whole record (design.md §4
 * "One patient"). The first page of a prefetch was checked with the request (400).
 */
async function allPages(first: unknown, ehr: EhrClient | undefined, patientId: string, fromEhr: boolean, searchType?: string): Promise<Resource[]> {
  const onePatient = (page: unknown) => {
    const rs = resourcesOf(page);
    const other = rs.find((r) => aboutAnotherPatient(r, patientId));
    if (other) throw new EhrQueryError(`answered ${resourceLabel(other)} about another patient than context.patientId`);
    return rs;
  };
  if (searchType !== undefined) checkSearchAnswer(first, searchType);
  const out = fromEhr ? onePatient(first) : resourcesOf(first);
  let next = nextPage(first);
  for (let pages = 0; next !== undefined; pages++) {
    if (!ehr) throw new EhrQueryError('is paged, and there is no fhirServer with fhirAuthorization to read the next page');
    if (pages >= MAX_PAGES) throw new EhrQueryError(`has more than ${MAX_PAGES + 1} pages`);
    const page = await ehr.getPage(next);
    checkSearchAnswer(page, searchType);
    out.push(...onePatient(page));
    next = nextPage(page);
  }
  return out.filter((r) => r.resourceType !== 'OperationOutcome');
}

/**
 * An EHR's answer to a search (or one of its pages) that is not a search result is a failed read, never "the patient has
 * none" (design.md §4 "Prefetch": a key is missing when it is an OperationOutcome; §6: absence of a history reads as
 * false, so a refusal read as absence would decide on data the EHR withheld): an OperationOutcome in place of the
 * searchset (a 200 "forbidden"), something other than a Bundle or one resource of the type searched, or a Bundle whose
 * entries are all of another type than the one searched and not marked as included (the EHR answered another query).
 */
function checkSearchAnswer(answer: unknown, searchType: string | undefined): void {
  const a = answer as (Omit<Bundle, 'resourceType'> & { resourceType?: string }) | undefined;
  if (a?.resourceType === 'OperationOutcome') throw new EhrQueryError('was answered with an OperationOutcome instead of a search result');
  // A search answered with one resource of the type searched is read as that one result (design.md §4 "Prefetch").
  if (a?.resourceType !== undefined && a.resourceType === searchType) return;
  if (a?.resourceType !== 'Bundle') throw new EhrQueryError(`was answered with ${a?.resourceType ?? 'no resource'} instead of a searchset Bundle`);
  if (searchType === undefined) return;
  const entries = (a.entry ?? []).filter((e) => e.resource && e.resource.resourceType !== 'OperationOutcome' && e.search?.mode !== 'include' && e.search?.mode !== 'outcome');
  if (entries.length > 0 && !entries.some((e) => e.resource!.resourceType === searchType)) {
    throw new EhrQueryError(`was answered with ${entries[0].resource!.resourceType} resources to a ${searchType} search`);
  }
}

/** The resource type a search template queries (`Observation?patient=…` → Observation); undefined for a read. */
function searchedType(template: string): string | undefined {
  const q = template.indexOf('?');
  if (q < 0) return undefined;
  const type = template.slice(0, q).split('/').pop();
  return type && /^[A-Z][A-Za-z]+$/.test(type) ? type : undefined;
}

export interface ResolvedPrefetch {
  /** Resources per key (OperationOutcome entries dropped). */
  data: Record<string, Resource[]>;
  /** Keys queried from the EHR because the client did not prefetch them. */
  queried: string[];
}

/**
 * Resolves every prefetch key the service declares: uses what the client sent, queries the EHR once per missing
 * key (in parallel, each bounded by the EHR timeout), and answers 412 only when a required key is missing and could
 * not be fetched (CDS Hooks §Prefetch; CRD foundation.md [found-5], [found-32]).
 */
export async function resolvePrefetch(
  req: HookRequest,
  templates: Record<string, string>,
  ehr: EhrClient | undefined,
  log: Logger,
): Promise<ResolvedPrefetch> {
  const data: Record<string, Resource[]> = {};
  const queried: string[] = [];
  const failed: string[] = [];
  await Promise.all(
    Object.entries(templates).map(async ([key, template]) => {
      const value = req.prefetch[key];
      if (isUsablePrefetch(value)) {
        try {
          data[key] = await allPages(value, ehr, req.patientId, false);
        } catch (err) {
          log.warn({ key, reason: (err as Error).message }, 'prefetch next page failed');
          if (!OPTIONAL_KEYS.has(key)) failed.push(key);
        }
        return;
      }
      const query = fillTemplate(template, req);
      if (!ehr || !query) {
        if (!OPTIONAL_KEYS.has(key)) failed.push(key);
        return;
      }
      try {
        const res = await ehr.get(query);
        data[key] = await allPages(res, ehr, req.patientId, true, searchedType(template));
        queried.push(key);
      } catch (err) {
        log.warn({ key, reason: (err as Error).message }, 'prefetch query failed');
        if (!OPTIONAL_KEYS.has(key)) failed.push(key);
      }
    }),
  );
  if (failed.length > 0) {
    failed.sort();
    throw preconditionFailed(
      `Prefetch ${failed.join(', ')} missing and could not be fetched from the EHR${ehr ? '' : ' (no fhirServer with fhirAuthorization in the request)'}`,
      failed.map((k) => `prefetch.${k}`),
    );
  }
  return { data, queried };
}
