import type { OperationOutcome, OperationOutcomeIssue, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { badRequest } from '../errors.js';

/** What a DTR client reports through `$log-questionnaire-errors`: the form and the issues it met. */
export interface ErrorReport {
  questionnaire?: string;
  issues: OperationOutcomeIssue[];
}

const canonicalOf = (p: ParametersParameter) => p.valueCanonical ?? p.valueUri ?? p.valueUrl ?? p.valueString;

/**
 * Reads the input of DTR `$log-questionnaire-errors`
 * (https://hl7.org/fhir/us/davinci-dtr/OperationDefinition-log-questionnaire-errors.html). The DTR versions name its
 * two inputs differently (`Questionnaire` / `OperationOutcome`, the 2.1 profile's `questionnaire` / `outcome`, 2.2's
 * `questionnaire` / `operationOutcome`), so the report is read by what each parameter carries: the canonical of the
 * form, and every OperationOutcome. A report without an OperationOutcome (1..* in every version) is a 400, so that a
 * client is not told its report was logged when nothing was read.
 */
export function readErrorReport(body: unknown): ErrorReport {
  const p = body as Parameters | undefined;
  if (p?.resourceType !== 'Parameters' || (p.parameter !== undefined && !Array.isArray(p.parameter)))
    throw badRequest('$log-questionnaire-errors takes a Parameters resource', ['Parameters']);
  const params = p.parameter ?? [];
  // FHIR R4 Parameters.parameter.name is 1..1; the JSON shape check reads types, not cardinality.
  const unnamed = params.findIndex((x) => typeof x.name !== 'string');
  if (unnamed >= 0) throw badRequest('Every parameter needs a name', [`Parameters.parameter[${unnamed}]`]);
  const outcomes = params.map((x) => x.resource).filter((r): r is OperationOutcome => r?.resourceType === 'OperationOutcome');
  if (outcomes.length === 0)
    throw badRequest('$log-questionnaire-errors needs the OperationOutcome that documents the errors', ['Parameters.parameter']);
  const questionnaire = params.filter((x) => x.name.toLowerCase() === 'questionnaire').map(canonicalOf).find((v) => typeof v === 'string');
  return { ...(questionnaire ? { questionnaire } : {}), issues: outcomes.flatMap((o) => o.issue ?? []) };
}

/** A path into the form (`Questionnaire.item[1].item[0]`, `%mrdPercent`): no quotes, so no literal value rides along. */
const FORM_PATH = /^[A-Za-z%][A-Za-z0-9_.%[\]()-]{0,199}$/;

/**
 * What of a reported issue may be logged: severity, code and the form paths it names (design.md §2: the log holds
 * ids, codes and counts, never clinical content). The client's free-text `diagnostics` are not logged: a DTR app
 * describing a failed pre-fill may quote the patient's data it was reading.
 */
export function loggableIssues(issues: OperationOutcomeIssue[], max = 10): { severity?: string; code?: string; expression?: string[] }[] {
  return issues.slice(0, max).map((i) => {
    const paths = [...(i.expression ?? []), ...(i.location ?? [])].filter((e) => typeof e === 'string' && FORM_PATH.test(e));
    return { severity: i.severity, code: i.code, ...(paths.length > 0 ? { expression: paths.slice(0, 5) } : {}) };
  });
}
