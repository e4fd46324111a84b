/**
 * How a policy's Questionnaire is named (docs/design.md §5 "One model, three uses"): its canonical URL, and the
 * linkIds that the Questionnaire builder asks with and the answers' reader reads back (DTR serves the form; DTR and
 * PAS read the QuestionnaireResponse), so both sides agree by construction.
 *
 * @module
 */

/** `{canonicalBase}/Questionnaire/{policyId}` (design.md §5: one Questionnaire per policy, versioned with it). */
export function questionnaireUrl(canonicalBase: string, policyId: string): string {
  return `${canonicalBase}/Questionnaire/${policyId}`;
}

/**
 * `{canonicalBase}/Questionnaire/{policyId}-adaptive`: the policy's empty adaptive form (DTR
 * `dtr-questionnaire-adapt-search`), which a DTR client names in `$questionnaire-package` to take the `$next-question`
 * route through the same policy (https://hl7.org/fhir/us/davinci-dtr/StructureDefinition-dtr-questionnaire-adapt-search.html).
 */
export function adaptiveQuestionnaireUrl(canonicalBase: string, policyId: string): string {
  return `${questionnaireUrl(canonicalBase, policyId)}-adaptive`;
}

/** The linkId of the question asked when a limit is exceeded and the policy names no attestation fact for it. */
export function justificationLinkId(limitId: string): string {
  return `justification-${limitId}`;
}

/**
 * The linkId of the hidden, read-only date item every generated Questionnaire carries for the order's start: the
 * date CRD judged the order on (evaluation-data.ts `orderDateOf`: planned start, else validity start, else
 * authoredOn). The payer pre-fills it from the order in `$questionnaire-package`; the form's `%orderDate` (age bands,
 * askWhen gates) reads it, and the server reads it back from a response, so CRD, DTR and PAS judge one date
 * (design.md §8: one decision per order). Unanswered, the date is today.
 */
export const ORDER_DATE_LINK_ID = 'order-date';

/**
 * The linkId of the hidden, read-only date item for the start the order states (evaluation-data.ts `statedStartOf`:
 * planned start, else validity start; never authoredOn). The payer pre-fills it in `$questionnaire-package` only when
 * the order states one; the form's `%orderStart` reads it, so the recency windows of its pre-fill end where the
 * server's do (docs/design.md §6 "Recency"). Unanswered, the windows have no upper end.
 */
export const ORDER_START_LINK_ID = 'order-start';
