import type { Bundle, BundleLink, Resource } from '@medplum/fhirtypes';
import { DomainError } from '../errors.js';

/**
 * Parameters every search PriorPath serves reads itself (FHIR R4 search.html §3.1.1.6 "Search result parameters"):
 * `_count` (page size), `_offset` (where the page starts, as the `next` links carry it) and `_summary=count` (the total
 * alone); `_total` is always answered exactly, and `_format` and `_pretty` apply to every interaction and change
 * nothing here (JSON only).
 */
const PAGING = new Set(['_count', '_offset', '_summary', '_total', '_format', '_pretty']);

/** A search request read against what the search supports: its filters, page and the parameters it used. */
export interface SearchRequest {
  /** The supported parameters given, each once: what the search filters on. */
  filters: Record<string, string>;
  /** Page size (`_count`); undefined = every match on one page. `0` answers the total alone. */
  count?: number;
  /** Matches skipped before the page (`_offset`). */
  offset: number;
  /** `_summary=count` was asked: the total alone (`count` is 0). */
  summaryCount?: boolean;
}

const nonNegative = (name: string, raw: string): number => {
  if (!/^\d{1,9}$/.test(raw))
    throw new DomainError('invalid', `Search parameter ${name} must be a non-negative integer, not "${raw}"`, [name]);
  return Number(raw);
};

/**
 * Reads a search's query (FHIR R4 search.html §3.1.1.4 "Handling errors"): a parameter the search does not support is
 * ignored, and left out of the `self` link so the client sees what was used, unless the client sent `Prefer:
 * handling=strict`, which makes it a 400 naming it. A modifier on a supported parameter (`name:exact`) is always a 400:
 * ignoring it would answer a different search. A parameter given twice, or a bad `_count` / `_offset`, is a 400.
 */
export function readSearch(
  query: Record<string, unknown>,
  opts: { supported: readonly string[]; prefer?: string },
): SearchRequest {
  const strict = /(^|[;,\s])handling\s*=\s*strict\b/i.test(opts.prefer ?? '');
  const filters: Record<string, string> = {};
  let count: number | undefined;
  let offset = 0;
  let summaryCount = false;
  for (const [key, value] of Object.entries(query)) {
    if (typeof value !== 'string') throw new DomainError('invalid', `Search parameter ${key} may be given once`, [key]);
    const [name, modifier] = key.split(':', 2);
    if (modifier !== undefined && (opts.supported.includes(name) || PAGING.has(name)))
      throw new DomainError('invalid', `Search parameter ${name} does not support the modifier :${modifier}`, [key]);
    if (key === '_count') count = nonNegative(key, value);
    else if (key === '_offset') offset = nonNegative(key, value);
    else if (key === '_summary' && value === 'count') summaryCount = true;
    else if (key === '_summary' && strict)
      throw new DomainError('not-supported', `_summary=${value} is not supported here; _summary=count is`, [key]);
    else if (PAGING.has(key)) continue;
    else if (opts.supported.includes(key)) filters[key] = value;
    else if (strict)
      throw new DomainError(
        'not-supported',
        `Search parameter ${key} is not supported here; supported: ${[...opts.supported, '_count'].join(', ')}`,
        [key],
      );
  }
  if (summaryCount) return { filters, count: 0, offset: 0, summaryCount };
  return { filters, ...(count !== undefined ? { count } : {}), offset };
}

/**
 * A searchset Bundle of one page of the matches (FHIR R4 http.html §3.1.0.9 "search", search.html §3.1.1.6.3
 * "Paging"): `total` is every match, `entry` the page, and the links `self` (the parameters used), `first`, `previous`
 * and `next` (when there are more), `last` page through the rest with the same parameters and `_count`.
 */
export function searchBundle(
  opts: { base: string; type: string; search: SearchRequest; fullUrl?: (r: Resource) => string },
  matches: Resource[],
): Bundle {
  const { base, type, search } = opts;
  const { count, offset } = search;
  const page = count === undefined ? matches.slice(offset) : matches.slice(offset, offset + count);
  const url = (at: number) => {
    const params = new URLSearchParams(search.filters);
    if (search.summaryCount) params.set('_summary', 'count');
    else if (count !== undefined) params.set('_count', String(count));
    if (at > 0) params.set('_offset', String(at));
    const q = params.toString();
    return `${base}/${type}${q ? `?${q}` : ''}`;
  };
  const link: BundleLink[] = [{ relation: 'self', url: url(offset) }];
  if (count !== undefined && count > 0) {
    const lastStart = matches.length === 0 ? 0 : Math.floor((matches.length - 1) / count) * count;
    link.push({ relation: 'first', url: url(0) });
    if (offset > 0) link.push({ relation: 'previous', url: url(Math.max(0, offset - count)) });
    if (offset + count < matches.length) link.push({ relation: 'next', url: url(offset + count) });
    link.push({ relation: 'last', url: url(lastStart) });
  }
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    total: matches.length,
    link,
    // FHIR JSON has no empty arrays: a page without matches (or `_count=0`) has no `entry`.
    ...(page.length > 0
      ? {
          entry: page.map((r) => ({
            fullUrl: opts.fullUrl?.(r) ?? `${base}/${r.resourceType}/${r.id}`,
            resource: r,
            search: { mode: 'match' as const },
          })),
        }
      : {}),
  };
}
