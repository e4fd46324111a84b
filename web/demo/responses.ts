import type { Extension, QuestionnaireResponse } from '@medplum/fhirtypes';
import { coverageInformationOf } from '../shared/coverage.js';

/**
 * When a response was written: its `authored`, else when the EHR stored it. A DTR client may leave `authored` out
 * (the adaptive form's completed response did); such a response must neither read "completed ." nor sort below every
 * older one, which would show and send an older documentation as the latest.
 */
export function savedAt(r: QuestionnaireResponse): string | undefined {
  return r.authored ?? r.meta?.lastUpdated;
}

/** Newest first by `savedAt`, for `Array.prototype.sort`. */
export function newestFirst(a: QuestionnaireResponse, b: QuestionnaireResponse): number {
  return (savedAt(b) ?? '').localeCompare(savedAt(a) ?? '');
}

/**
 * The payer's answers a response carries: the coverage-information of documentation that was sent. A draft the DTR app
 * is still saving (`in-progress`) carries the order's coverage-information too (the app copies it onto every version it
 * saves, to link the response to the CRD assertion), but the payer has not seen that draft, so it is no answer to it
 * (review ui s44 L2).
 */
export function payerAnswersOn(r: QuestionnaireResponse | undefined): Extension[] {
  return r && r.status !== 'in-progress' ? coverageInformationOf(r) : [];
}
