import type { Questionnaire, QuestionnaireItem, QuestionnaireResponse } from '@medplum/fhirtypes';
import { formatDate } from '../shared/coverage.js';

/**
 * The bounds the payer puts on an item's answers, applied on the field before anything is sent (README: "an answer
 * that is not valid … is marked on its field and named before anything is sent"; review s44 M1). The payer's
 * Questionnaire states them (src/dtr/questionnaire-builder.ts `boundExtensions`, from the service's one definition of
 * what a fact can be): R4 minValue/maxValue, which LHC-Forms applies itself as inclusive bounds; PriorPath's
 * min-value-excluded, a minimum that is itself not an answer (a weight, a dose: more than 0), which LHC-Forms can apply
 * (minExclusive) but does not read from FHIR; and a date's maxValue given by a FHIRPath expression (cqf-expression on
 * the primitive: "today, or the order's start when earlier"), which LHC-Forms does not evaluate, so this app does.
 */

const MIN_VALUE_EXCLUDED = 'https://priorpath.dev/fhir/StructureDefinition/min-value-excluded';
const MIN_VALUE = 'http://hl7.org/fhir/StructureDefinition/minValue';
const MAX_VALUE = 'http://hl7.org/fhir/StructureDefinition/maxValue';
const CQF_EXPRESSION = 'http://hl7.org/fhir/StructureDefinition/cqf-expression';

function flatten(items: QuestionnaireItem[] | undefined): QuestionnaireItem[] {
  return (items ?? []).flatMap((i) => [i, ...flatten(i.item)]);
}

/** The slice of an LHC-Forms form item this module reads (`convertFHIRQuestionnaireToLForms` output). */
interface LFormsItem {
  linkId?: string;
  restrictions?: Record<string, unknown>;
  items?: LFormsItem[];
}

/**
 * The LHC-Forms form with each excluded minimum applied: LHC-Forms reads minValue as `minInclusive`; for an item
 * marked min-value-excluded it becomes `minExclusive`, so 0 kg is refused ("must be a value greater than 0").
 */
export function withExcludedMinimums(form: unknown, q: Questionnaire): unknown {
  const excluded = new Set(
    flatten(q.item)
      .filter((i) => i.extension?.some((e) => e.url === MIN_VALUE_EXCLUDED && e.valueBoolean === true))
      .map((i) => i.linkId),
  );
  if (excluded.size === 0) return form;
  const visit = (items: LFormsItem[] | undefined) => {
    for (const it of items ?? []) {
      const r = it.restrictions;
      if (it.linkId && excluded.has(it.linkId) && r && r.minInclusive !== undefined) {
        r.minExclusive = r.minInclusive;
        delete r.minInclusive;
      }
      visit(it.items);
    }
  };
  visit((form as { items?: LFormsItem[] }).items);
  return form;
}

/** A FHIRPath evaluator over a response (LHC-Forms' bundled fhirpath.js with the R4 model: lforms.ts `fhirpathR4`). */
export type EvaluateFhirPath = (resource: QuestionnaireResponse, expression: string) => unknown[];

/** An answer outside its item's bounds, with the message shown on its field (LHC-Forms' wording: "must be …"). */
export interface BoundProblem {
  linkId: string;
  text: string;
  message: string;
}

/** The FHIRPath of a date item's latest allowed answer, when its maxValue is an expression. */
function maxDateExpression(item: QuestionnaireItem): string | undefined {
  const max = item.extension?.find((e) => e.url === MAX_VALUE) as
    | { _valueDate?: { extension?: { url: string; valueExpression?: { language?: string; expression?: string } }[] } }
    | undefined;
  const expr = max?._valueDate?.extension?.find((e) => e.url === CQF_EXPRESSION)?.valueExpression;
  return expr?.language === 'text/fhirpath' ? expr.expression : undefined;
}

/**
 * The date answers after their item's latest allowed date (a birth date in 2099), the bound evaluated over the
 * response as it stands (its order-date item). An expression that fails or gives no date bounds nothing: the payer
 * still names the answer it cannot use.
 */
export function dateBoundProblems(q: Questionnaire, qr: QuestionnaireResponse, evaluate: EvaluateFhirPath): BoundProblem[] {
  const answers = new Map(flatten(qr.item as QuestionnaireItem[] | undefined).map((i) => [i.linkId, i]));
  const out: BoundProblem[] = [];
  for (const item of flatten(q.item)) {
    if (item.type !== 'date') continue;
    const expression = maxDateExpression(item);
    const answered = (answers.get(item.linkId) as { answer?: { valueDate?: string }[] } | undefined)?.answer ?? [];
    if (!expression || answered.length === 0) continue;
    let bound: unknown;
    try {
      bound = evaluate(qr, expression)[0];
    } catch {
      continue;
    }
    const latest = typeof bound === 'string' ? bound.slice(0, 10) : String(bound ?? '').slice(0, 10);
    if (!/^\d{4}-\d{2}-\d{2}$/.test(latest)) continue;
    if (answered.some((a) => typeof a.valueDate === 'string' && a.valueDate.slice(0, 10) > latest))
      out.push({ linkId: item.linkId, text: item.text ?? item.linkId, message: `must be a date on or before ${formatDate(latest)}.` });
  }
  return out;
}

/** A number bound of an item (R4 minValue/maxValue, valueInteger or valueDecimal); a date's or an expression's is not. */
function numberBound(item: QuestionnaireItem, url: string): number | undefined {
  const e = item.extension?.find((x) => x.url === url && (x.valueInteger !== undefined || x.valueDecimal !== undefined));
  return e?.valueInteger ?? e?.valueDecimal;
}

/**
 * The whole range of each number item bounded on both sides, in the words shown when an answer falls outside it
 * (review ui s47 #5): LHC-Forms names only the side crossed ("must be a value greater than or equal to 1." for a
 * question bounded 1..6), so a clinician who corrects to 7 is refused again. By linkId, and by the question's text
 * (LHC-Forms' list of problems names the question by its text).
 */
export function rangeMessages(q: Questionnaire): { byLinkId: Map<string, string>; byText: Map<string, string> } {
  const byLinkId = new Map<string, string>();
  const byText = new Map<string, string>();
  for (const item of flatten(q.item)) {
    const min = numberBound(item, MIN_VALUE);
    const max = numberBound(item, MAX_VALUE);
    if (min === undefined || max === undefined) continue;
    const excluded = item.extension?.some((e) => e.url === MIN_VALUE_EXCLUDED && e.valueBoolean === true);
    const message = excluded ? `must be a value greater than ${min} and at most ${max}.` : `must be a value from ${min} to ${max}.`;
    byLinkId.set(item.linkId, message);
    if (item.text) byText.set(item.text, message);
  }
  return { byLinkId, byText };
}

/** LHC-Forms' message for an answer past one bound ("must be a value less than or equal to 6."), its only wording for it. */
export const ONE_SIDED_BOUND = / must be a value (greater|less) than (or equal to )?\S+\.$/;
