import type { ValueSet, ValueSetExpansionParameter } from '@medplum/fhirtypes';

/**
 * `ValueSet/$expand` over the local expansion every PriorPath ValueSet carries (design.md §4 "Governed
 * orders": no terminology server; FHIR R4 ValueSet-expand): `filter` (case-insensitive, on code and display), `offset` and `count` page the
 * result; `total` counts the matches. The expansion is made now, so its `timestamp` is `at`, the time of the call
 * (DTR 2.2 oper-5: "SHALL use the current date as the expansion date"; FHIR: "the time at which the expansion was
 * produced"), not the date the content was written. Returns a copy; the stored ValueSet is never changed.
 */
export function expandValueSet(
  vs: ValueSet,
  opts: { filter?: string; count?: number; offset?: number; at?: string } = {},
): ValueSet {
  const all = vs.expansion?.contains ?? [];
  const needle = opts.filter?.trim().toLowerCase();
  const matches = needle
    ? all.filter(
        (c) => (c.code ?? '').toLowerCase().includes(needle) || (c.display ?? '').toLowerCase().includes(needle),
      )
    : all;
  const offset = opts.offset ?? 0;
  const page = opts.count === undefined ? matches.slice(offset) : matches.slice(offset, offset + opts.count);
  const parameter: ValueSetExpansionParameter[] = [];
  if (needle) parameter.push({ name: 'filter', valueString: opts.filter!.trim() });
  if (opts.offset !== undefined) parameter.push({ name: 'offset', valueInteger: offset });
  if (opts.count !== undefined) parameter.push({ name: 'count', valueInteger: opts.count });
  return {
    ...vs,
    expansion: {
      ...(vs.expansion?.identifier ? { identifier: vs.expansion.identifier } : {}),
      timestamp: opts.at ?? new Date().toISOString(),
      total: matches.length,
      ...(opts.offset !== undefined ? { offset } : {}),
      ...(parameter.length > 0 ? { parameter } : {}),
      contains: page,
    },
  };
}
