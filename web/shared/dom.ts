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

/** fetch + JSON with a timeout; non-2xx becomes an HttpError carrying the parsed body. */
export async function fetchJson<T = unknown>(url: string, init: RequestInit & { timeoutMs?: number } = {}): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), init.timeoutMs ?? 15_000);
  try {
    const call = async (renew: boolean) =>
      fetch(url, {
        ...init,
        signal: controller.signal,
        headers: { Accept: 'application/fhir+json, application/json', ...(await payerAuthorization(url, { renew })), ...(init.headers ?? {}) },
      });
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
