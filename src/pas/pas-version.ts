/**
 * Which Da Vinci PAS version a request speaks, as far as PriorPath's answers differ between 2.0.1 and 2.2.1: the
 * sub-extension naming the authorized provider's type (2.0.1 `providerType`, 2.2.1 the `extension-authorizedProviderType`
 * URL) and the `$inquire` output (2.0.1 one Bundle, 2.2.1 a Parameters of `return` Bundles).
 */
export type PasVersion = '2.0.1' | '2.2.1';

const PAS_PROFILE = /^http:\/\/hl7\.org\/fhir\/us\/davinci-pas\/StructureDefinition\/[^|]+\|(\d+)\.(\d+)/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function profilesOf(resource: unknown): string[] {
  if (!isObject(resource) || !isObject(resource.meta) || !Array.isArray(resource.meta.profile)) return [];
  return resource.meta.profile.filter((p): p is string => typeof p === 'string');
}

/**
 * The version a PAS request or inquiry Bundle announces: a versioned PAS profile (`…/profile-pas-request-bundle|2.0.1`)
 * in `meta.profile` of the Bundle or of its Claim, the only in-band signal PAS defines; else `fallback` (`PAS_VERSION`).
 * 2.1 and later answer as 2.2.1.
 */
export function pasVersionOf(bundle: unknown, fallback: PasVersion): PasVersion {
  const resources = [bundle, ...(isObject(bundle) && Array.isArray(bundle.entry) ? bundle.entry.map((e: unknown) => (isObject(e) ? e.resource : undefined)) : [])];
  for (const r of resources) {
    if (isObject(r) && r.resourceType !== 'Bundle' && r.resourceType !== 'Claim') continue;
    for (const p of profilesOf(r)) {
      const m = PAS_PROFILE.exec(p);
      if (m) return Number(m[1]) === 2 && Number(m[2]) === 0 ? '2.0.1' : '2.2.1';
    }
  }
  return fallback;
}

/**
 * The version a stored request was answered in, to answer it again in the same shapes when it is re-rendered (a
 * reviewer's or another path's decision, a Claim Update): the version kept with its decided items (`detail.pasVersion`),
 * else the one its request Bundle announces, else 2.2.1 (requests stored before the version was kept).
 */
export function answeredVersion(s: { detail: Record<string, unknown>; requestBundle: unknown }): PasVersion {
  const kept = s.detail.pasVersion;
  return kept === '2.0.1' || kept === '2.2.1' ? kept : pasVersionOf(s.requestBundle, '2.2.1');
}
