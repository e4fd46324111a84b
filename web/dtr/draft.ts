import type { Bundle, Extension, QuestionnaireResponse } from '@medplum/fhirtypes';

/** DTR `qr-context`: the order (and Coverage) a response documents. */
const EXT_QR_CONTEXT = 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/qr-context';

/** How the app reaches the EHR's FHIR server outside fhirclient: its base and the SMART access token. */
export interface EhrConnection {
  serverUrl: string;
  authorization: () => string | null;
}

/** The canonical without its `|version`. */
const bare = (c: string | undefined) => (c ?? '').split('|')[0];

/** Whether a response documents this form (same canonical, any version) for this order (qr-context), if one is known. */
export function documentsOrder(qr: QuestionnaireResponse, canonical: string, orderRef: string | undefined): boolean {
  if (bare(qr.questionnaire) !== bare(canonical)) return false;
  if (!orderRef) return true;
  const contexts = (qr.extension ?? [])
    .filter((e: Extension) => e.url === EXT_QR_CONTEXT)
    .map((e) => e.valueReference?.reference);
  return contexts.length === 0 || contexts.includes(orderRef);
}

/**
 * The most recent response in the EHR for this form and order (DTR §"Resuming": an in-progress response saved in the
 * EHR is picked up when the app is launched again). Newest by `authored`, else by `meta.lastUpdated`.
 */
export function latestResponse(
  found: Bundle | undefined,
  canonical: string,
  orderRef: string | undefined,
): QuestionnaireResponse | undefined {
  const when = (r: QuestionnaireResponse) => r.meta?.lastUpdated ?? r.authored ?? '';
  return (found?.entry ?? [])
    .map((e) => e.resource)
    .filter((r): r is QuestionnaireResponse => r?.resourceType === 'QuestionnaireResponse')
    .filter((r) => r.status === 'in-progress' || r.status === 'completed' || r.status === 'amended')
    .filter((r) => documentsOrder(r, canonical, orderRef))
    .sort((a, b) => when(b).localeCompare(when(a)))[0];
}

/**
 * Saves the in-progress response in the EHR, one resource per form and order: the first save creates it, every
 * later save replaces it (PUT by id), so the EHR never holds two drafts and the final send updates the same
 * resource. Saves never overlap: a change during a save is saved right after it. `flush` on page hide sends with
 * `keepalive`, which the browser completes after the page is gone.
 */
export class DraftSaver {
  id: string | undefined;
  savedAt: string | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  /** A change not saved yet: leaving the page saves only then, so an untouched form never stands in for a saved draft. */
  private dirty = false;

  constructor(
    private readonly ehr: EhrConnection,
    private readonly build: () => QuestionnaireResponse,
    private readonly onSaved: (at: string) => void,
    private readonly onError: (err: Error) => void,
    private readonly delayMs = 1200,
    id?: string,
  ) {
    this.id = id;
  }

  /** A change happened: save after `delayMs` of quiet. */
  schedule(): void {
    if (this.stopped) return;
    this.dirty = true;
    clearTimeout(this.timer);
    // A failed save has been told to the page (onError); the rejection has no one else to reach.
    this.timer = setTimeout(() => {
      this.saveNow().catch(() => undefined);
    }, this.delayMs);
  }

  /** Saves now (after any save in flight). */
  async saveNow(keepalive = false): Promise<void> {
    clearTimeout(this.timer);
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.put(keepalive).finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.saveNow().catch(() => undefined);
      }
    });
    return this.running;
  }

  /**
   * The page is going away (pagehide / hidden tab): save what changed since the last save, with keepalive. A save
   * still in flight counts as unsaved: it went without keepalive, and the browser cancels it with the page.
   */
  flush(): void {
    if (this.stopped || (!this.dirty && !this.running)) return;
    clearTimeout(this.timer);
    void this.put(true).catch(() => undefined);
  }

  /** No more drafts: the response was sent (or the form left). Waits for a save in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }

  private async put(keepalive: boolean): Promise<void> {
    let qr: QuestionnaireResponse;
    try {
      qr = this.build();
    } catch (err) {
      // The page cannot make a response now (an answer the renderer cannot encode): said like a failed save, and the
      // change stays unsaved, so the next edit or leaving the page tries again.
      this.dirty = true;
      this.onError(err as Error);
      throw err;
    }
    const auth = this.ehr.authorization();
    const headers: Record<string, string> = {
      'Content-Type': 'application/fhir+json',
      Accept: 'application/fhir+json',
      ...(auth ? { Authorization: auth } : {}),
    };
    const base = this.ehr.serverUrl.replace(/\/$/, '');
    // Taken now: a change made while this save is under way marks the draft dirty again.
    this.dirty = false;
    try {
      const res = await fetch(
        this.id ? `${base}/QuestionnaireResponse/${encodeURIComponent(this.id)}` : `${base}/QuestionnaireResponse`,
        {
          method: this.id ? 'PUT' : 'POST',
          headers,
          body: JSON.stringify(this.id ? { ...qr, id: this.id } : qr),
          keepalive,
        },
      );
      // The status rides on the error, so the page words it as it words every other call (shared/dom.ts problemWords).
      if (!res.ok) throw Object.assign(new Error(`the EHR answered ${res.status}`), { status: res.status });
      const saved = (await res.json().catch(() => undefined)) as QuestionnaireResponse | undefined;
      this.id ??= saved?.id ?? res.headers.get('Location')?.match(/QuestionnaireResponse\/([^/]+)/)?.[1];
      this.savedAt = new Date().toISOString();
      this.onSaved(this.savedAt);
    } catch (err) {
      this.dirty = true;
      this.onError(err as Error);
      throw err;
    }
  }
}
