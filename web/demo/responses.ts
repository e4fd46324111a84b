import type { QuestionnaireResponse } from '@medplum/fhirtypes';

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
