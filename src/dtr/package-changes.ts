import { createHash } from 'node:crypto';
import type { Questionnaire } from '@medplum/fhirtypes';
import type { Storage } from '../storage/storage.js';
import type { DtrCatalog } from './catalog.js';

/**
 * When each form's package last changed, for `$questionnaire-package`'s `changedsince` (DTR 2.2 OperationDefinition
 * questionnaire-package: "the package will only contain the questionnaire or associated artifact that have changes
 * since the specified timestamp"; a DTR client resuming a draft asks with the time it last retrieved the package).
 *
 * The forms are generated from the policies and carry no edit date of their own, so a package's change time is the
 * time its content (the Questionnaire, its CQL form and Libraries, its ValueSets), named by a digest, became the
 * content served for the form, by any replica (Storage.settingSince). A deploy that changes a form changes its
 * digest, so the form counts as changed from the moment it is first served; a deploy rolled back to an earlier
 * form counts as a change too, from the moment the earlier form is served again (a client that retrieved the later
 * form meanwhile must not be told its form is current).
 */
const known = new WeakMap<Storage, Map<Questionnaire, Promise<number>>>();

/** The time (ms since the epoch) `q`'s package as this process serves it was first served. */
export function packageChangedAt(q: Questionnaire, catalog: DtrCatalog, storage: Storage): Promise<number> {
  let forStorage = known.get(storage);
  if (!forStorage) known.set(storage, (forStorage = new Map()));
  let at = forStorage.get(q);
  if (!at) {
    // An adaptive form's package carries its standard form's Libraries and ValueSets (questionnaire-package.ts).
    const base = catalog.standardOf.get(q) ?? q;
    const cql = catalog.cqlFormOf(base);
    const digest = createHash('sha256')
      .update(JSON.stringify([q, catalog.valueSetsOf(base), cql?.questionnaire, cql?.libraries, cql?.valueSets]))
      .digest('base64url');
    at = storage.settingSince(`dtr-package:${q.url}|${q.version}`, digest, new Date().toISOString()).then((iso) => Date.parse(iso));
    // A storage failure is not remembered: the next request asks again (meanwhile the form counts as changed).
    at.catch(() => forStorage.delete(q));
    forStorage.set(q, at);
  }
  return at;
}

/**
 * The instant a FHIR `dateTime` or `instant` names, or undefined when it is not one. A partial date (`2026-11`,
 * `2026-11-23`) or a time without a zone stands for the start of its period in UTC: the earliest reading, so a form
 * changed in that period is never taken as unchanged.
 */
export function fhirInstant(value: string): number | undefined {
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/.exec(value);
  if (!m) return undefined;
  const [, y, mo = '01', d = '01', h = '00', mi = '00', s = '00', frac = '', zone = 'Z'] = m;
  const ms = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${s}${frac}${zone}`);
  return Number.isNaN(ms) ? undefined : ms;
}
