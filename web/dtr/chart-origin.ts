import type { Bundle, CodeableConcept, Questionnaire, QuestionnaireItem, Resource } from '@medplum/fhirtypes';
import { formatDate } from '../shared/coverage.js';

/** SDC `initialExpression`: the FHIRPath that pre-fills an item from the launch context and x-fhir-query variables. */
const EXT_INITIAL = 'http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-initialExpression';

/** Where a pre-filled answer was read from, in the words the clinician sees under the question. */
export interface ChartSource {
  /** "Condition: B-cell acute lymphoblastic leukemia" */
  what: string;
  /** The resource's own date (onset, effective, authored…), YYYY-MM-DD… */
  date?: string;
}

type Variable = 'conditions' | 'observations' | 'medications' | 'immunizations' | 'patient' | 'user';
const VARIABLES: Variable[] = ['conditions', 'observations', 'medications', 'immunizations', 'patient', 'user'];

/** The EHR data the form's variables read, as the app fetched it. */
export interface ChartData {
  conditions?: Bundle;
  observations?: Bundle;
  medications?: Bundle;
  immunizations?: Bundle;
  patient?: Resource;
  user?: Resource;
}

const KIND: Record<string, string> = {
  Condition: 'Condition',
  Observation: 'Result',
  MedicationRequest: 'Medication order',
  Immunization: 'Immunization',
};

function conceptText(c: CodeableConcept | undefined): string | undefined {
  return c?.text ?? c?.coding?.find((x) => x.display)?.display ?? c?.coding?.[0]?.code;
}

function codesOf(r: Resource): string[] {
  const x = r as { code?: CodeableConcept; vaccineCode?: CodeableConcept; medicationCodeableConcept?: CodeableConcept };
  return [x.code, x.vaccineCode, x.medicationCodeableConcept].flatMap((c) =>
    (c?.coding ?? []).map((k) => k.code ?? ''),
  );
}

function dateOf(r: Resource): string | undefined {
  const x = r as unknown as Record<string, unknown>;
  for (const k of [
    'effectiveDateTime',
    'onsetDateTime',
    'occurrenceDateTime',
    'authoredOn',
    'recordedDate',
    'issued',
  ]) {
    if (typeof x[k] === 'string') return x[k];
  }
  const period = (x.effectivePeriod ?? x.onsetPeriod) as { start?: string } | undefined;
  return period?.start;
}

function describe(r: Resource): string {
  const x = r as { code?: CodeableConcept; vaccineCode?: CodeableConcept; medicationCodeableConcept?: CodeableConcept };
  const name = conceptText(x.code ?? x.vaccineCode ?? x.medicationCodeableConcept) ?? r.resourceType;
  return `${KIND[r.resourceType] ?? r.resourceType}: ${name}`;
}

/** The codes an expression tests for (`code in ('a' | 'b')`, `code = 'x'`), which name the chart entries it reads. */
export function codesIn(expression: string): string[] {
  const out = new Set<string>();
  for (const m of expression.matchAll(/code\s*(?:=|in)\s*\(?\s*((?:'[^']*'\s*\|?\s*)+)/g))
    for (const q of m[1].matchAll(/'([^']*)'/g)) out.add(q[1]);
  return [...out];
}

/**
 * For each pre-filled item, the chart entry its answer came from: the form's initialExpression names a variable
 * (`%conditions`, `%observations`…) and the codes it looks for; the newest entry of that search with one of those
 * codes is the source. Items read from the patient or the user name that record. Best effort: an item whose source
 * cannot be pinned to one entry is left out (the clinician then sees "from the chart" without a resource).
 */
export function chartSources(q: Questionnaire, data: ChartData): Map<string, ChartSource> {
  const out = new Map<string, ChartSource>();
  const visit = (items: QuestionnaireItem[] | undefined) => {
    for (const item of items ?? []) {
      const expr = item.extension?.find((e) => e.url === EXT_INITIAL)?.valueExpression?.expression;
      if (expr) {
        const variable = VARIABLES.find((v) => expr.includes(`%${v}`));
        if (variable === 'patient') out.set(item.linkId, { what: 'Patient record' });
        else if (variable === 'user') out.set(item.linkId, { what: 'Your practitioner record' });
        else if (variable) {
          const codes = new Set(codesIn(expr));
          const matches = (data[variable]?.entry ?? [])
            .map((e) => e.resource)
            .filter((r): r is Resource => !!r && codesOf(r).some((c) => codes.has(c)))
            .sort((a, b) => (dateOf(b) ?? '').localeCompare(dateOf(a) ?? ''));
          const best = matches[0];
          if (best) out.set(item.linkId, { what: describe(best), ...(dateOf(best) ? { date: dateOf(best) } : {}) });
        }
      }
      visit(item.item);
    }
  };
  visit(q.item);
  return out;
}

/** The line shown under a question: where its answer came from. */
export function originLine(
  origin: 'auto' | 'override' | 'manual',
  source: ChartSource | undefined,
  before: string | undefined,
  fromPayer: boolean,
): string {
  if (origin === 'manual') return 'Entered by you';
  if (origin === 'override') return `Changed by you${before ? ` (the chart said ${before})` : ''}`;
  if (source) return `From the chart: ${source.what}${source.date ? `, ${formatDate(source.date)}` : ''}`;
  return fromPayer ? 'From the chart, as the payer read it at signing' : 'From the chart';
}
