import type { CompiledPolicy } from '../policies/compiled-policy.js';

/**
 * CQL for a policy's Questionnaire, generated from the same facts whose FHIRPath CRD evaluates (design.md §7: DTR
 * 2.0.1 clients pre-populate with CQL). Each askable fact whose FHIRPath has a shape listed below becomes a define
 * named after the fact; every other fact is reported with the reason it is not expressed, never approximated.
 *
 * The data a define reads follows the evaluation variables (cds-services/README.md "Variables"): `%patient` is the
 * Patient context, `%order` the order under review, passed as the parameter `medication_request` (the name the DTR
 * reference app gives a MedicationRequest order), `%medications` the patient's other MedicationRequests.
 */
export interface CqlLibrarySource {
  /** Library name (unique within a package): `PriorPath` + the policy id in PascalCase. */
  name: string;
  version: string;
  cql: string;
  /** Fact name → define name, for the facts expressed. */
  defines: Map<string, string>;
  /** Fact name → why it is not expressed in CQL. */
  notExpressed: Map<string, string>;
  /** Value sets the CQL names: CQL name → canonical. */
  valueSets: Map<string, string>;
  /** FHIR resource types the CQL retrieves (Library.dataRequirement, what the DTR reference app fetches). */
  dataTypes: string[];
}

const pascal = (id: string) =>
  id
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((w) => w[0].toUpperCase() + w.slice(1))
    .join('');

const cqlString = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** Recognised fact shapes: a FHIRPath pattern (whitespace collapsed) and the CQL it means. */
interface Shape {
  pattern: RegExp;
  cql(m: RegExpMatchArray, vs: (id: string) => string): string;
  retrieves?: string[];
}

const statusList = (list: string) =>
  `{ ${list
    .split('|')
    .map((s) => s.trim())
    .join(', ')} }`;

const SHAPES: Shape[] = [
  {
    // History of concurrent therapy: another MedicationRequest of the patient whose drug is in a value set, with a status.
    pattern: /^%medications\.codedIn\('([\w-]+)'\)\.where\(status in \(((?:'[\w-]+'\s*\|?\s*)+)\)\)\.exists\(\)$/,
    cql: (m, vs) => `exists ("Other MedicationRequests" M\n    where (M.medication as FHIR.CodeableConcept) in ${vs(m[1])}\n      and M.status in ${statusList(m[2])})`,
    retrieves: ['MedicationRequest'],
  },
  {
    pattern: /^%medications\.codedIn\('([\w-]+)'\)\.where\(status in \(((?:'[\w-]+'\s*\|?\s*)+)\)\)\.count\(\) >= (\d+)$/,
    cql: (m, vs) =>
      `Count("Other MedicationRequests" M\n    where (M.medication as FHIR.CodeableConcept) in ${vs(m[1])}\n      and M.status in ${statusList(m[2])}) >= ${m[3]}`,
    retrieves: ['MedicationRequest'],
  },
  {
    pattern: /^%patient\.birthDate\.toString\(\)$/,
    cql: () => 'ToString(Patient.birthDate)',
  },
  {
    // Cycles this order asks for: one plus the refills it allows.
    pattern: /^1 \+ \(%order\.dispenseRequest\.numberOfRepeatsAllowed \| 0\)\.first\(\)$/,
    cql: () => '1 + Coalesce(medication_request.dispenseRequest.numberOfRepeatsAllowed, 0)',
  },
  {
    // A coded extension of the order (e.g. the treatment phase), as its code.
    pattern: /^%order\.extension\.where\(url = '([^']+)'\)\.value\.ofType\(code\)\.first\(\)\.toString\(\)$/,
    cql: (m) => `First(medication_request.extension E where E.url = ${cqlString(m[1])} return (E.value as FHIR.code).value)`,
  },
];

function reasonFor(fhirpath: string): string {
  if (fhirpath === '{}') return 'asked in the form: the record cannot answer it (no expression to translate)';
  const uses = [
    ['%user', 'the ordering clinician (%user) is not in the CQL Patient context the DTR client evaluates'],
    ['recent(', 'recency windows over dated evidence (recent) are not translated yet'],
    ['%diagnoses', 'the diagnosis reading (order reasons, else qualifying Conditions, with lineage rules) is not translated yet'],
    ['%conditions', 'Condition readings (clinical and verification status rules) are not translated yet'],
    ['%observations', 'Observation readings (status, ordering by date, units) are not translated yet'],
    ['%immunizations', 'Immunization readings are not translated yet'],
    ['dosageInstruction', 'dose normalisation (units, body surface area) is not translated yet'],
  ] as const;
  for (const [needle, why] of uses) if (fhirpath.includes(needle)) return why;
  return 'its FHIRPath shape has no CQL translation yet (three-valued iif over other facts, unions, or aggregate selects)';
}

/** Builds the CQL of one policy's Library from its facts (pure: no translation, no I/O). */
export function cqlLibrarySource(policy: CompiledPolicy, opts: { canonicalBase: string }): CqlLibrarySource {
  const name = `PriorPath${pascal(policy.file.id)}`;
  const version = policy.file.version;
  const defines = new Map<string, string>();
  const notExpressed = new Map<string, string>();
  const valueSets = new Map<string, string>();
  const types = new Set<string>(['Patient']);
  const body: string[] = [];
  const vs = (id: string) => {
    valueSets.set(id, `${opts.canonicalBase}/ValueSet/${id}`);
    return `"${id}"`;
  };

  for (const f of policy.facts) {
    if (!f.def.linkId || !f.def.askable) continue;
    const text = (f.def.fhirpath ?? '').replace(/\s+/g, ' ').trim();
    const shape = SHAPES.find((s) => s.pattern.test(text));
    if (!shape) {
      notExpressed.set(f.name, reasonFor(text));
      continue;
    }
    const define = f.name;
    defines.set(f.name, define);
    for (const t of shape.retrieves ?? []) types.add(t);
    body.push(`// ${f.def.linkId}${f.def.cite ? ` (${f.def.cite})` : ''}\ndefine "${define}":\n  ${shape.cql(text.match(shape.pattern)!, vs)}`);
  }

  const lines = [
    `library ${name} version '${version}'`,
    '',
    `// Generated from PriorPath policy ${policy.file.id} version ${version} by npm run libraries; do not edit.`,
    "using FHIR version '4.0.1'",
    "include FHIRHelpers version '4.0.1' called FHIRHelpers",
    '',
    ...[...valueSets].map(([id, url]) => `valueset "${id}": ${cqlString(url)}`),
    ...(valueSets.size > 0 ? [''] : []),
    '// The order under review (the DTR reference app passes a MedicationRequest order as medication_request).',
    'parameter medication_request FHIR.MedicationRequest',
    '',
    'context Patient',
    '',
  ];
  if (types.has('MedicationRequest')) {
    lines.push(
      '// %medications: the patient\'s MedicationRequests other than this order.',
      'define "Other MedicationRequests":',
      '  [MedicationRequest] M where M.id !~ medication_request.id or medication_request is null',
      '',
    );
  }
  lines.push(...body.flatMap((b) => [b, '']));
  if (notExpressed.size > 0) {
    lines.push('// Facts not expressed in CQL (asked or pre-filled by the FHIRPath expressions and the payer):');
    for (const [fact, why] of notExpressed) lines.push(`//   ${fact}: ${why}`);
  }
  return { name, version, cql: `${lines.join('\n').trimEnd()}\n`, defines, notExpressed, valueSets, dataTypes: [...types] };
}
