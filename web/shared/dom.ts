import { payerAuthorization } from './payer-token.js';

/** Tiny DOM helpers: build elements with text (never innerHTML from data), so nothing a server sends becomes markup. */

type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | undefined> = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === 'class') el.className = String(v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return el;
}

/** Replaces an element's children; null, undefined and false children are skipped. */
export function fill(el: HTMLElement, ...children: (Child | Child[])[]): HTMLElement {
  el.replaceChildren();
  for (const c of children.flat())
    if (c !== null && c !== undefined && c !== false) el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  return el;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing element #${id}`);
  return el as T;
}

/** How a page notice looks: `error` is an error that stopped the user (nothing sent, saved, loaded or recorded). */
export type NoticeKind = 'busy' | 'ok' | 'warn' | 'error';

/**
 * Says what is happening, by one rule on every screen (WAI-ARIA 1.2 `status` and `alert`; WCAG 2.2 SC 4.1.3): an
 * error that stopped the user goes to the page's `#alert` (role=alert: announced at once); progress, saved notices
 * and outcomes go to its `#status` (role=status: announced politely). Each region keeps its role for the life of the
 * page, because a screen reader registers a live region when the page loads and does not reliably follow a role
 * changed later (the pages used to switch #status between the two). Writing one region empties the other, so one
 * notice shows at a time.
 */
export function announce(text: string, kind: NoticeKind = 'busy'): void {
  const [shown, cleared] = kind === 'error' ? ['alert', 'status'] : ['status', 'alert'];
  const el = byId(shown);
  el.textContent = text;
  el.className = `status status-${kind}`;
  const other = byId(cleared);
  other.textContent = '';
  other.className = 'status';
}

/** Markdown-ish card detail (CDS Hooks `detail` is GitHub-flavoured markdown): paragraphs and "- " lists, as text. */
export function markdownBlock(text: string): HTMLElement {
  const box = h('div', { class: 'md' });
  for (const para of text.split(/\n{2,}/)) {
    const lines = para.split('\n');
    if (lines.every((l) => /^\s*[-*] /.test(l)))
      box.append(
        h(
          'ul',
          {},
          lines.map((l) => h('li', {}, l.replace(/^\s*[-*] /, ''))),
        ),
      );
    else box.append(h('p', {}, lines.join(' ')));
  }
  return box;
}

/** JSON of a FHIR or HTTP exchange, for the "raw" panes. */
export function jsonBlock(value: unknown): HTMLElement {
  return h('pre', { class: 'json', tabindex: '0' }, JSON.stringify(value, null, 2));
}

/** An error with the HTTP status and the server's body (an OperationOutcome or an OAuth error). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
    message: string,
  ) {
    super(message);
  }
}

/** What an OperationOutcome (or OAuth error body) says, for an error message a person can read. */
export function describeErrorBody(body: unknown): string {
  const b = body as
    | {
        resourceType?: string;
        issue?: { diagnostics?: string; details?: { text?: string } }[];
        error_description?: string;
        error?: string;
      }
    | undefined;
  if (b?.resourceType === 'OperationOutcome')
    return (b.issue ?? [])
      .map((i) => i.diagnostics ?? i.details?.text)
      .filter(Boolean)
      .join('; ');
  return b?.error_description ?? b?.error ?? '';
}

/**
 * What went wrong with a call, in words a clinician or reviewer can act on: the server's own explanation when it
 * sent one, else what the status means; a network failure or a timeout says so instead of the browser's "Failed to
 * fetch". Never a method and path: those are for the raw panes and the log.
 */
export function problemWords(err: unknown): string {
  const said = err instanceof HttpError ? describeErrorBody(err.body) : '';
  if (said) return said;
  // Ours, or another client's HTTP error (fhirclient's, from the EHR, names the method and URL in its message): the
  // status in words.
  const status = (err as { status?: unknown } | null)?.status;
  if (typeof status === 'number' && status >= 400) {
    if (status === 401) return 'the sign-in was not accepted (it may have expired)';
    if (status === 403) return 'this sign-in is not allowed to do that';
    if (status === 404) return 'it was not found';
    if (status === 409) return 'it was changed by someone else meanwhile';
    if (status >= 500) return `the service had a problem (status ${status}); try again in a moment`;
    return `the service refused it (status ${status})`;
  }
  return (err as Error)?.message ?? String(err);
}

/**
 * A call that got no answer at all: the network failed (offline, server down) or it timed out. Its message is
 * already in words, so every page that shows `err.message` reads well.
 */
export class NetworkError extends Error {
  constructor(
    readonly timedOut: boolean,
    options?: { cause?: unknown },
  ) {
    super(
      timedOut
        ? 'the service did not answer in time; try again'
        : 'the service could not be reached; check the network connection and try again',
      options,
    );
  }
}

/** fetch + JSON with a timeout; non-2xx becomes an HttpError carrying the parsed body. */
export async function fetchJson<T = unknown>(url: string, init: RequestInit & { timeoutMs?: number } = {}): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), init.timeoutMs ?? 15_000);
  try {
    const call = async (renew: boolean) => {
      const headers = {
        Accept: 'application/fhir+json, application/json',
        ...(await payerAuthorization(url, { renew })),
        ...(init.headers ?? {}),
      };
      // fetch rejects only when no answer came (offline, refused, aborted by the timeout): say which, not "Failed to fetch".
      return fetch(url, { ...init, signal: controller.signal, headers }).catch((cause: unknown) => {
        throw new NetworkError(controller.signal.aborted, { cause });
      });
    };
    let res = await call(false);
    // A payer API token can expire between two clicks: renew it once.
    if (res.status === 401 && (await payerAuthorization(url)).Authorization) res = await call(true);
    const text = await res.text();
    let body: unknown = undefined;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    if (!res.ok)
      throw new HttpError(
        res.status,
        body,
        `${init.method ?? 'GET'} ${new URL(url, location.href).pathname} answered ${res.status}${describeErrorBody(body) ? `: ${describeErrorBody(body)}` : ''}`,
      );
    return body as T;
  } finally {
    clearTimeout(timer);
  }
}
