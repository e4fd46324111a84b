import type { QuestionnaireResponse } from '@medplum/fhirtypes';

/**
 * The answers the EHR would not take, kept in this browser tab until it does (DTR §"Saving": work in progress is kept
 * in the EHR; this covers the time it cannot be). The EHR's access token lasts an hour and the app gets no refresh
 * token, so a clinician who is still typing when it expires sees the draft refused; the only way to a new sign-in is
 * to launch the form again from the EHR, which opens the draft the EHR last took and would drop everything typed
 * since. The copy lives in `sessionStorage` (this tab only, gone when the tab closes), one per form and order, and is
 * dropped as soon as the EHR has saved the answers or the payer has them.
 */

const PREFIX = 'priorpath-dtr:unsaved:';

/** The storage key of one form (its canonical without `|version`) for one order (or, without one, one patient). */
export function unsavedKey(canonical: string, orderOrPatient: string): string {
  return `${PREFIX}${canonical.split('|')[0]}|${orderOrPatient}`;
}

/** Keeps the answers the EHR refused (the newest only). Storage that is full or blocked keeps nothing, silently. */
export function keepUnsaved(store: Storage, key: string, qr: QuestionnaireResponse): void {
  try {
    store.setItem(key, JSON.stringify(qr));
  } catch {
    // Quota or privacy mode: the page still holds the answers and says the EHR did not save them.
  }
}

/** The EHR has the answers now (or the payer does): the copy is no longer needed. */
export function dropUnsaved(store: Storage, key: string): void {
  try {
    store.removeItem(key);
  } catch {
    // nothing kept, nothing to drop
  }
}

/**
 * The copy to resume from, when there is one and it is newer than what the EHR holds (`saved`: the newest response
 * for this form and order there). A copy older than the EHR's response (saved or sent after it, from this tab or
 * another) is dropped: the EHR's is the clinician's later work.
 */
export function takeUnsaved(
  store: Storage,
  key: string,
  saved: QuestionnaireResponse | undefined,
): QuestionnaireResponse | undefined {
  let copy: QuestionnaireResponse | undefined;
  try {
    copy = JSON.parse(store.getItem(key) ?? 'null') as QuestionnaireResponse | undefined;
  } catch {
    copy = undefined;
  }
  if (copy?.resourceType !== 'QuestionnaireResponse' || !copy.authored) {
    dropUnsaved(store, key);
    return undefined;
  }
  const savedAt = saved?.meta?.lastUpdated ?? saved?.authored;
  if (savedAt && Date.parse(savedAt) >= Date.parse(copy.authored)) {
    dropUnsaved(store, key);
    return undefined;
  }
  return copy;
}
