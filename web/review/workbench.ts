import { formatDate } from '../shared/coverage.js';
import { announce, byId, fetchJson, fill, h, HttpError, problemWords } from '../shared/dom.js';
import type { NoticeKind } from '../shared/dom.js';
import { attachmentBlob, attachmentText, imageSource, TEXT_PREVIEW_CHARS, viewableType } from './attachment-view.js';
import type { InlineAttachment } from './attachment-view.js';
import { criterionResult } from './criterion-result.js';
import { stackOnNarrow } from './stacked-table.js';
import { decidedMatching, QUEUE_SORTS, queuePage } from './queue-view.js';
import type { DecidedRow, QueueChoice, QueueRow, QueueSort } from './queue-view.js';

/**
 * The clinical reviewer's workbench (design.md §2 "Reviewer API and workbench", §8 "The reviewer API"): sign in, the
 * queue of pended PAS requests, one request with its documentation, chart facts and the policy's trace, and the
 * decision (approve with a period, or deny with a reason). It reads and writes only through the reviewer API at
 * `/review` with the reviewer's bearer token; nothing clinical is kept in the browser beyond the page itself.
 */

type Tri = true | false | 'unknown';
interface Evidence {
  /** The policy's identifier for the fact: for tools, never shown. */
  fact: string;
  /** The fact in the policy's words (its label or DTR question; the API always gives one). */
  label: string;
  value?: boolean | number | string;
  source: 'ehr' | 'answer' | 'unknown';
}
interface Criterion {
  id: string;
  kind?: 'requirement' | 'pathway' | 'limit';
  cite: string;
  text: string;
  result: Tri;
  /** Limits: whether the limit concerns the patient (criterion-result.ts). */
  applies?: Tri;
  evidence?: Evidence[];
}
interface Item {
  sequence: number;
  policyId?: string;
  policyVersion?: string;
  outcome: string;
  reviewAction: string;
  needed: string[];
  reasons: string[];
  criteria: Criterion[];
  /** No `end` when the policy's period runs from a date the request does not give (`periodFrom`). */
  reviewPeriod?: { start: string; end?: string };
  /** The date the policy's period runs from, which the request does not give: the reviewer sets the period. */
  periodFrom?: { fact: string; label: string; length: string; text: string };
  authorization?: { number: string; start: string; end: string };
  /** Set when a Claim Update cancelled the item (review action C): when, and the review action it had. */
  cancelled?: { at: string; was: string };
}
interface Decision {
  decision: 'approve' | 'deny';
  reviewer: string;
  reason: string;
  decidedAt: string;
  authorizationNumber?: string;
}
interface Case {
  patient: { name: string; birthDate?: string; gender?: string; memberId?: string };
  payerName?: string;
  coverage?: { start?: string; end?: string };
  orders: { sequence: number; drug: string; dose?: string; sig?: string; cycles?: number; start?: string }[];
  answers: {
    questionnaire?: string;
    authored?: string;
    items: { question: string; answer: string; origin?: string }[];
  }[];
  attachments: { title: string; contentType?: string; size?: number; date?: string; url?: string; data?: string }[];
  facts: { kind: string; what: string; value?: string; status?: string; date?: string; onsetUnknown?: { recorded?: string } }[];
}
interface RequestView {
  id: string;
  payer: string;
  policyId?: string;
  policyVersion?: string;
  status: string;
  reviewAction: string;
  needed: string[];
  preAuthRef?: string;
  preAuthPeriod?: { start: string; end: string };
  createdAt: string;
  updatedAt: string;
  items: Item[];
  decisions: Decision[];
  case?: Case;
  /** Items decided by their order's decision made on another path (the DTR answers, a signing): what settled them. */
  settled?: Settled[];
}
interface Settled {
  sequence: number;
  by: string;
  source: string;
  at: string;
  decision: 'approve' | 'deny';
  reason: string;
  facts: { fact: string; label: string; value: boolean | number | string }[];
}
/** A pended-list entry: the API's summary, with the patient fields when the API gives them. */
interface Pended {
  id: string;
  payer: string;
  policyId?: string;
  createdAt: string;
  needed: string[];
  patientName?: string;
  memberId?: string;
  payerName?: string;
  drug?: string;
  dose?: string;
  missing?: string[];
  /** Other requests (another EHR's, for the same order) that take this request's decision. */
  waiting?: { id: string }[];
}

const SESSION_KEY = 'priorpath-review:session';
interface Session {
  token: string;
  reviewer: string;
}
const base = new URL('/review', location.href).toString();
let session: Session | undefined;
/**
 * What the reviewer has typed into a request's decision form, by request id: kept in memory (never in storage) so a
 * rejected or expired token, a failed call or leaving for the queue never throws away a half-written reason.
 */
interface DecisionDraft {
  choice?: 'approve' | 'deny';
  reason: string;
  start: string;
  end: string;
}
const decisionDrafts = new Map<string, DecisionDraft>();
/**
 * The Decided list as last read from the reviewer API (`GET /review/decided`, the durable store: a reload, another
 * tab or another replica finds the same decisions; review ui s44 L1), the reviewer's search and window, and why it
 * could not be read, if it could not.
 */
let decidedRows: DecidedRow[] = [];
const decidedChoice = { filter: '', days: 7 };
let decidedProblem: string | undefined;

/** A notice in the page's status or alert region (shared/dom.ts `announce`: errors that stop the user are alerts). */
function setStatus(text: string, kind: NoticeKind = 'ok'): void {
  announce(text, kind);
}

function loadSession(): Session | undefined {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? 'null') as Session | null;
    return s?.token && s.reviewer ? s : undefined;
  } catch {
    return undefined;
  }
}

function signIn(s: Session): void {
  session = s;
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
  void route();
}

/**
 * Ends the session. The reviewer's own Sign out forgets where they were and what they typed; a token the API
 * refused (expired, rotated) keeps both, so signing in again returns to the same request with the form as it was.
 */
function signOut(message = '', keepPlace = false): void {
  session = undefined;
  sessionStorage.removeItem(SESSION_KEY);
  if (!keepPlace) {
    decisionDrafts.clear();
    if (location.hash) history.replaceState(null, '', location.pathname);
  }
  setStatus(message, message ? 'error' : 'ok');
  // showSignIn shows the form before it asks which sign-ins are offered: focus goes there at once.
  const shown = showSignIn();
  focusView('sign-in-title');
  void shown;
}

/**
 * Moves keyboard and screen-reader focus to the heading of what just appeared (WCAG 2.4.3 focus order): a view
 * change or a recorded decision replaces the element that had focus, which would otherwise drop it on <body>.
 */
function focusView(id: string): void {
  const el = document.getElementById(id);
  if (!el || el.closest('[hidden]')) return;
  if (!el.hasAttribute('tabindex')) el.setAttribute('tabindex', '-1');
  el.focus();
}

async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  try {
    return await fetchJson<T>(`${base}${path}`, {
      ...init,
      headers: { ...(init.headers ?? {}), Authorization: `Bearer ${session?.token ?? ''}` },
    });
  } catch (err) {
    if (err instanceof HttpError && err.status === 401) {
      signOut('Your reviewer token was not accepted (it may have expired). Sign in again to go on where you were.', true);
    }
    throw err;
  }
}

/** "12 min", "3 h 5 min", "2 days 4 h": how long a request has waited. */
export function ageOf(since: string, now = Date.now()): string {
  const minutes = Math.max(0, Math.floor((now - Date.parse(since)) / 60_000));
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ${minutes % 60} min`;
  const days = Math.floor(hours / 24);
  return `${days} day${days === 1 ? '' : 's'} ${hours % 24} h`;
}

/** "2027-05-20T14:05:00Z" → "20 May 2027, 14:05 UTC"; a bare date stays a date. */
function dateTime(s: string | undefined): string {
  if (!s) return '';
  const m = /T(\d{2}:\d{2})/.exec(s);
  if (!m) return formatDate(s);
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return formatDate(s);
  const iso = d.toISOString();
  return `${formatDate(iso)}, ${iso.slice(11, 16)} UTC`;
}

const sourceWords: Record<Evidence['source'], string> = { ehr: 'chart', answer: 'answer', unknown: 'no data' };
const originWords: Record<string, string> = {
  auto: 'from the chart',
  override: 'changed by the clinician',
  manual: 'entered by the clinician',
};

function valueText(v: Evidence['value']): string {
  if (v === undefined) return 'unknown';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return String(v);
}

// ---------------------------------------------------------------------------------------------------------------

async function showSignIn(): Promise<void> {
  for (const id of ['queue', 'request']) byId(id).hidden = true;
  byId('sign-in').hidden = false;
  byId('who').textContent = '';
  byId('sign-out').hidden = true;
  const options = await fetchJson<{ demoReviewer: string | null }>(`${base}/sign-in`).catch(() => ({
    demoReviewer: null,
  }));
  byId('demo-sign-in').hidden = !options.demoReviewer;
  if (options.demoReviewer) byId('demo-reviewer').textContent = `Sign in as ${options.demoReviewer}`;
}

async function route(): Promise<void> {
  if (!session) {
    await showSignIn();
    return;
  }
  byId('sign-in').hidden = true;
  byId('who').textContent = `Signed in: ${session.reviewer}`;
  byId('sign-out').hidden = false;
  const m = /^#\/request\/([A-Za-z0-9._-]+)$/.exec(location.hash);
  if (m) await showRequest(m[1]).catch((err: unknown) => cannotLoad('request', err));
  else {
    const shown = await showQueue().then(
      () => true,
      (err: unknown) => {
        cannotLoad('queue', err);
        return false;
      },
    );
    if (shown) focusView('queue-title');
  }
}

/**
 * The queue or a request could not be read (the API down, an old link to a request that does not exist): the reason
 * in words in the alert region, and the view with a way on (Try again; from a request, the link back to the queue),
 * never a blank page. The address stays, so trying again opens the same view. A refused token has signed the
 * reviewer out already (api()).
 */
function cannotLoad(view: 'queue' | 'request', err: unknown): void {
  if (err instanceof HttpError && err.status === 401) return;
  const again = h('button', { type: 'button', id: 'try-again' }, 'Try again');
  again.addEventListener('click', () => {
    route().catch(fail);
  });
  if (view === 'queue') {
    byId('request').hidden = true;
    byId('queue').hidden = false;
    byId('queue-tools').hidden = true;
    byId('queue-pages').hidden = true;
    byId('queue-count').textContent = '';
    fill(byId('queue-list'), again);
  } else {
    byId('queue').hidden = true;
    byId('request-title').textContent = 'Request';
    document.title = 'Request — PriorPath clinical review';
    fill(byId('request-body'), h('p', {}, again));
    byId('request').hidden = false;
  }
  setStatus(
    `${view === 'queue' ? 'The pended requests could not be loaded' : 'The request could not be opened'}: ${problemWords(err).replace(/\.$/, '')}.`,
    'error',
  );
  again.focus();
}

/** The queue as last read, and the reviewer's filter, order and page (kept while they open requests and come back). */
let queueRows: QueueRow[] = [];
const queueChoice: QueueChoice = { filter: '', sort: 'oldest', page: 1 };

async function showQueue(): Promise<void> {
  byId('request').hidden = true;
  byId('queue').hidden = false;
  document.title = 'Pended requests — PriorPath clinical review';
  setStatus('Loading the pended requests…', 'busy');
  // Read beside the queue; a Decided list that cannot be read says so in its own section, never hides the queue.
  const decided = loadDecided();
  const { pended } = await api<{ pended: Pended[] }>('/pended');
  // The list names the patient and drug when the API provides them; otherwise each request is read once.
  queueRows = await Promise.all(
    pended.map(async (p): Promise<QueueRow> => {
      if (p.patientName && p.drug) return p;
      const v = await api<RequestView>(`/${encodeURIComponent(p.id)}`).catch(() => undefined);
      const order = v?.case?.orders[0];
      return {
        ...p,
        patientName: p.patientName ?? v?.case?.patient.name,
        memberId: p.memberId ?? v?.case?.patient.memberId,
        drug: p.drug ?? order?.drug,
        dose: p.dose ?? order?.dose,
        payerName: p.payerName ?? v?.case?.payerName,
      };
    }),
  );
  renderQueue();
  await decided;
  renderDecided();
  setStatus('');
}

/** Reads the decisions of the reviewer's window, newest first; a failure is kept to be said in the section. */
async function loadDecided(): Promise<void> {
  try {
    const { decided } = await api<{ decided: DecidedRow[] }>(`/decided?days=${decidedChoice.days}`);
    decidedRows = decided;
    decidedProblem = undefined;
  } catch (err) {
    decidedRows = [];
    decidedProblem = err instanceof HttpError && err.status === 401 ? undefined : problemWords(err).replace(/\.$/, '');
  }
}

/** The column whose order the "Sort by" choice follows, for aria-sort. */
const sortedColumn: Record<QueueSort, [string, 'ascending' | 'descending']> = {
  oldest: ['In queue', 'descending'],
  newest: ['In queue', 'ascending'],
  patient: ['Patient', 'ascending'],
  drug: ['Drug and dose', 'ascending'],
  payer: ['Payer', 'ascending'],
};

/** One page of the queue under the reviewer's filter and order; the filter and sort controls are left as they are. */
function renderQueue(): void {
  const view = queuePage(queueRows, queueChoice);
  queueChoice.page = view.page;
  const filter = queueChoice.filter.trim();
  byId('queue-tools').hidden = view.total === 0;
  const order = QUEUE_SORTS.find((o) => o.value === queueChoice.sort)!.label.toLowerCase();
  byId('queue-count').textContent =
    view.total === 0
      ? 'Nothing is waiting for review.'
      : view.matching === 0
        ? `No pended request matches “${filter}”; ${view.total} waiting in all.`
        : `${filter ? `${view.matching} of ${view.total} requests match “${filter}”` : `${view.total} request${view.total === 1 ? '' : 's'} waiting`}, ${order}${view.pages > 1 ? `; showing ${view.from} to ${view.to}` : ''}.`;
  const [sortedBy, direction] = sortedColumn[queueChoice.sort];
  fill(
    byId('queue-list'),
    view.rows.length
      ? stackOnNarrow(h(
          'table',
          { 'data-testid': 'queue' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['Patient', 'Member id', 'Drug and dose', 'Payer', 'Policy', 'What is missing', 'In queue'].map((c) =>
                h('th', { scope: 'col', ...(c === sortedBy ? { 'aria-sort': direction } : {}) }, c),
              ),
            ),
          ),
          h(
            'tbody',
            {},
            view.rows.map((r) =>
              h(
                'tr',
                {},
                h(
                  'th',
                  { scope: 'row' },
                  h('a', { href: `#/request/${r.id}` }, r.patientName ?? `Request ${r.id.slice(0, 8)}`),
                ),
                h('td', {}, r.memberId ?? ''),
                h('td', {}, [r.drug ?? '', r.dose ? `, ${r.dose}` : ''].join('')),
                h('td', {}, r.payerName || r.payer.toUpperCase()),
                h('td', {}, r.policyId ?? ''),
                h(
                  'td',
                  {},
                  (r.missing ?? r.needed).join('; ') || 'Clinical review',
                  r.waiting?.length ? ` (the decision also answers ${r.waiting.length} other request${r.waiting.length === 1 ? '' : 's'} for this order)` : '',
                ),
                h('td', { title: dateTime(r.createdAt) }, ageOf(r.createdAt)),
              ),
            ),
          ),
        ))
      : null,
  );
  byId('queue-pages').hidden = view.pages <= 1;
  byId('queue-page-of').textContent = `Page ${view.page} of ${view.pages}`;
  byId<HTMLButtonElement>('queue-prev').disabled = view.page <= 1;
  byId<HTMLButtonElement>('queue-next').disabled = view.page >= view.pages;
}

/** Previous or next page; focus stays on the button pressed, or goes to the first request when that button is spent. */
function turnPage(step: 1 | -1): void {
  queueChoice.page += step;
  renderQueue();
  const pressed = byId<HTMLButtonElement>(step === 1 ? 'queue-next' : 'queue-prev');
  if (pressed.disabled) byId('queue-list').querySelector<HTMLElement>('a')?.focus();
}

/** "the last 7 days", "the last day": the window the Decided list covers, in words. */
const windowWords = (days: number) => (days === 1 ? 'the last day' : `the last ${days} days`);

/** The Decided list under the reviewer's search: each decision with its request's patient, order, decider and date. */
function renderDecided(): void {
  const rows = decidedMatching(decidedRows, decidedChoice.filter);
  const filter = decidedChoice.filter.trim();
  const window = windowWords(decidedChoice.days);
  byId('decided-count').textContent = decidedProblem
    ? `The decided requests could not be loaded: ${decidedProblem}. Choose the period again to retry.`
    : decidedRows.length === 0
      ? `Nothing was decided in ${window}.`
      : filter
        ? rows.length
          ? `${rows.length} of ${decidedRows.length} decisions in ${window} match “${filter}”, newest first.`
          : `No decision in ${window} matches “${filter}”; ${decidedRows.length} in all.`
        : `${decidedRows.length} decision${decidedRows.length === 1 ? '' : 's'} in ${window}, newest first.`;
  fill(
    byId('history-list'),
    rows.length
      ? stackOnNarrow(h(
          'table',
          { 'data-testid': 'decided' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['Patient', 'Member id', 'Drug and dose', 'Decision', 'Decided by', 'Reason', 'When'].map((c) => h('th', { scope: 'col' }, c)),
            ),
          ),
          h(
            'tbody',
            {},
            rows.map((d) =>
              h(
                'tr',
                {},
                h('th', { scope: 'row' }, h('a', { href: `#/request/${d.id}` }, d.patientName ?? `Request ${d.id.slice(0, 8)}`)),
                h('td', {}, d.memberId ?? ''),
                h('td', {}, [d.drug ?? '', d.dose ? `, ${d.dose}` : ''].join('')),
                // A request its submitter cancelled after the decision says so: the decision no longer stands.
                h('td', {}, decisionWords(d), d.status === 'cancelled' ? ' (since cancelled by the submitter)' : ''),
                h('td', {}, d.reviewer),
                h('td', {}, d.reason),
                h('td', {}, dateTime(d.decidedAt)),
              ),
            ),
          ),
        ))
      : null,
  );
}

function decisionWords(d: Pick<Decision, 'decision' | 'authorizationNumber'>): string {
  return d.decision === 'approve' ? `Approved${d.authorizationNumber ? ` (${d.authorizationNumber})` : ''}` : 'Denied';
}

/** An item its submitter cancelled with a Claim Update (X12 306 C): shown apart, never offered for a decision. */
const isCancelled = (i: Item) => i.reviewAction === 'C';

/** "Item 2 (Blincyto …, 56 mcg/d)": an item as the reviewer recognises it, by its order when the request names one. */
function itemName(i: Item, c: Case | undefined): string {
  const o = c?.orders.find((x) => x.sequence === i.sequence);
  return `Item ${i.sequence}${o ? ` (${[o.drug, o.dose].filter(Boolean).join(', ')})` : ''}`;
}

/** The order a request is named by: one still asked for, never a cancelled item's (unless every item was cancelled). */
function liveOrder(v: RequestView): Case['orders'][number] | undefined {
  const cancelled = new Set(v.items.filter(isCancelled).map((i) => i.sequence));
  return v.case?.orders.find((o) => !cancelled.has(o.sequence)) ?? v.case?.orders[0];
}

/** "by the submitter on …, while it waited for review": who cancelled an item, when, and what it was then. */
function cancelledWhen(i: Item): string {
  const was = i.cancelled?.was;
  const before = was === 'A4' ? ' while it waited for review' : was === 'A1' ? ' after it was approved' : was === 'A3' ? ' after it was denied' : '';
  return `by the submitter${i.cancelled?.at ? ` on ${dateTime(i.cancelled.at)}` : ''}${before}`;
}

/** "item 1", "items 1 and 3", "items 1, 2 and 4". */
function itemList(items: Item[]): string {
  const n = items.map((i) => String(i.sequence));
  const words = n.length === 1 ? n[0] : `${n.slice(0, -1).join(', ')} and ${n.at(-1)}`;
  return `item${n.length === 1 ? '' : 's'} ${words}`;
}

// ---------------------------------------------------------------------------------------------------------------

type Kid = Node | string | null | undefined | false;
/** A titled panel; with an id, a place focus can be moved to (focusView) after an action changes it. */
function section(head: string | { title: string; id: string }, ...children: (Kid | Kid[])[]): HTMLElement {
  const { title, id } = typeof head === 'string' ? { title: head, id: undefined } : head;
  return h(
    'section',
    { class: 'panel', 'aria-label': title, ...(id ? { id, tabindex: '-1' } : {}) },
    h('h2', {}, title),
    ...children,
  );
}

function resultBadge(c: Criterion): HTMLElement {
  const { word, tone } = criterionResult(c);
  return h('span', { class: `result result-${tone}` }, word);
}

function criteriaTable(criteria: Criterion[]): HTMLElement {
  return h(
    'div',
    { class: 'table-wrap' },
    stackOnNarrow(h(
      'table',
      { 'data-testid': 'trace' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Result', 'Criterion', 'Evidence'].map((c) => h('th', { scope: 'col' }, c)),
        ),
      ),
      h(
        'tbody',
        {},
        criteria.map((c) =>
          h(
            'tr',
            {},
            h('td', {}, resultBadge(c)),
            h('td', {}, h('div', {}, c.text), h('div', { class: 'cite' }, c.cite)),
            h(
              'td',
              {},
              c.evidence?.length
                ? h(
                    'ul',
                    { class: 'evidence' },
                    c.evidence.map((e) =>
                      h(
                        'li',
                        {},
                        // A question, or a label ending in a note's full stop, is followed by its value without a colon.
                        `${e.label}${/[?.]$/.test(e.label) ? ' ' : ': '}`,
                        h('strong', {}, valueText(e.value)),
                        ` (${sourceWords[e.source]})`,
                      ),
                    ),
                  )
                : h('span', { class: 'muted' }, '—'),
            ),
          ),
        ),
      ),
    )),
  );
}

/**
 * Every criterion with its result, citation and evidence: the requirements, the covered uses that are met or still
 * open, and the limits; covered uses that are plainly not met fold away under one line (still one click from view).
 */
/**
 * What decided a request no reviewer decided (review ui s47 #2): the path that decided its order (the clinician's DTR
 * answers, a signing), when, why, and the facts that evaluation read, each under the policy's words. Said above the
 * trace, which is the request as filed and shows what it lacked then, so "Approved" is not read as resting on it.
 */
function settledSection(settled: Settled[], numbered: boolean): HTMLElement {
  const value = (v: boolean | number | string) => (v === true ? 'Yes' : v === false ? 'No' : String(v));
  return section(
    'What decided it',
    ...settled.map((x) =>
      h(
        'div',
        { 'data-testid': 'settled' },
        h(
          'p',
          { class: `decision decision-${x.decision}` },
          `${numbered ? `Item ${x.sequence}: ` : ''}${x.decision === 'approve' ? 'Approved' : 'Denied'} by ${x.source === 'dtr' ? 'the documentation answers sent from the DTR form' : x.by}, ${dateTime(x.at)}`,
        ),
        h('p', {}, x.reason),
        x.facts.length
          ? [
              h('p', {}, 'What it read that the request as filed did not (unknown then, or another value):'),
              h('dl', { class: 'settled-facts' }, x.facts.flatMap((f) => [h('dt', {}, f.label), h('dd', {}, value(f.value))])),
            ]
          : null,
        h('p', { class: 'muted' }, 'The policy trace below is the request as it was filed, before this decision.'),
      ),
    ),
  );
}

function traceOf(items: Item[], numbered: boolean): HTMLElement {
  return section(
    'Policy trace',
    ...items.map((it) => {
      const pathways = it.criteria.filter((c) => c.kind === 'pathway');
      const open = pathways.filter((c) => c.result !== false);
      const closed = pathways.filter((c) => c.result === false);
      const others = it.criteria.filter((c) => c.kind !== 'pathway');
      return h(
        'div',
        {},
        numbered ? h('h3', {}, `Item ${it.sequence}`) : null,
        it.criteria.length === 0 ? h('p', { class: 'muted' }, 'No policy governs this item.') : null,
        others.length
          ? criteriaTable([
              ...others.filter((c) => c.kind !== 'limit'),
              ...open,
              ...others.filter((c) => c.kind === 'limit'),
            ])
          : open.length
            ? criteriaTable(open)
            : null,
        closed.length
          ? h(
              'details',
              { class: 'closed-pathways' },
              h('summary', {}, `${closed.length} other covered use${closed.length === 1 ? '' : 's'}, not met`),
              criteriaTable(closed),
            )
          : null,
      );
    }),
  );
}

/**
 * What a reviewer can do with a document sent inline: open it in a new tab and, for text and images, read it here;
 * always download it. Only the types attachment-view.ts allows are opened; the rest (HTML, SVG, ...) download only.
 */
function inlineAttachmentActions(a: InlineAttachment & { data: string }): HTMLElement {
  const type = viewableType(a.contentType);
  // Each control names its document, so a list of them reads apart to a screen reader (WCAG 2.4.6, 2.5.3).
  const open = type ? h('button', { type: 'button', class: 'link-button', 'aria-label': `Open ${a.title} in a new tab` }, 'Open') : null;
  open?.addEventListener('click', () => {
    const blob = attachmentBlob(a);
    if (!blob) {
      setStatus(`“${a.title}” could not be read: its content is not valid base64.`, 'error');
      return;
    }
    // A blob: URL holds the document in this page only; it is let go once the new tab has had time to load it.
    const url = URL.createObjectURL(blob);
    window.open(url, '_blank', 'noopener');
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  });
  const download = h(
    'a',
    { href: `data:${type ?? 'application/octet-stream'};base64,${a.data}`, download: a.title, 'aria-label': `Download ${a.title}` },
    'Download',
  );
  const preview = type === 'text/plain' || type?.startsWith('image/') ? h('details', { class: 'attachment-preview' }, h('summary', { 'aria-label': `Preview ${a.title}` }, 'Preview')) : null;
  // Read on first opening, so a long list of attachments costs nothing until one is looked at.
  preview?.addEventListener('toggle', () => {
    if (!preview.open || preview.childElementCount > 1) return;
    const text = attachmentText(a);
    const src = imageSource(a);
    preview.append(
      text !== undefined
        ? h(
            'pre',
            { class: 'attachment-text', tabindex: '0' },
            // As text, never markup: a note that contains "<b>" shows the characters.
            text.length > TEXT_PREVIEW_CHARS ? `${text.slice(0, TEXT_PREVIEW_CHARS)}\n… (open it to read the rest)` : text,
          )
        : src
          ? h('img', { src, alt: a.title, class: 'attachment-image' })
          : h('p', { class: 'muted' }, 'This document could not be read: its content is not valid base64.'),
    );
  });
  return h('span', { class: 'attachment-actions' }, open, open ? ' · ' : null, download, preview);
}

function caseSections(c: Case | undefined): HTMLElement[] {
  if (!c) return [section('Request', h('p', { class: 'muted' }, 'The stored request could not be read.'))];
  const out: HTMLElement[] = [];
  out.push(
    section(
      'Documentation answers',
      c.answers.length === 0
        ? h('p', { class: 'muted' }, 'The request carries no questionnaire answers.')
        : c.answers.map((a) =>
            h(
              'div',
              { class: 'table-wrap' },
              a.authored ? h('p', { class: 'muted' }, `Completed ${dateTime(a.authored)}`) : null,
              stackOnNarrow(h(
                'table',
                { 'data-testid': 'answers' },
                h(
                  'thead',
                  {},
                  h(
                    'tr',
                    {},
                    ['Question', 'Answer', 'Source'].map((x) => h('th', { scope: 'col' }, x)),
                  ),
                ),
                h(
                  'tbody',
                  {},
                  a.items.map((i) =>
                    h(
                      'tr',
                      {},
                      h('td', {}, i.question),
                      h('td', {}, h('strong', {}, i.answer)),
                      h('td', {}, originWords[i.origin ?? ''] ?? ''),
                    ),
                  ),
                ),
              )),
            ),
          ),
    ),
  );
  out.push(
    section(
      'Attachments',
      c.attachments.length === 0
        ? h('p', { class: 'muted' }, 'No attachments.')
        : h(
            'ul',
            {},
            c.attachments.map((a) => {
              const label = [
                a.title,
                a.contentType,
                a.size !== undefined ? `${Math.max(1, Math.round(a.size / 1024))} KB` : '',
                a.date ? formatDate(a.date) : '',
              ]
                .filter(Boolean)
                .join(' · ');
              if (a.data) return h('li', {}, label, ' ', inlineAttachmentActions(a as InlineAttachment & { data: string }));
              return h(
                'li',
                {},
                a.url && /^https?:/.test(a.url)
                  ? h('a', { href: a.url, target: '_blank', rel: 'noopener' }, label)
                  : label,
              );
            }),
          ),
    ),
  );
  out.push(
    section(
      'Chart facts in the request',
      c.facts.length === 0
        ? h('p', { class: 'muted' }, 'The request carries no chart resources.')
        : h(
            'div',
            { class: 'table-wrap' },
            stackOnNarrow(h(
              'table',
              { 'data-testid': 'facts' },
              h(
                'thead',
                {},
                h(
                  'tr',
                  {},
                  ['Date', 'Kind', 'What', 'Value', 'Status'].map((x) => h('th', { scope: 'col' }, x)),
                ),
              ),
              h(
                'tbody',
                {},
                c.facts.map((f) =>
                  h(
                    'tr',
                    {},
                    h('td', {}, chartFactDate(f)),
                    h('td', {}, f.kind),
                    h('td', {}, f.what),
                    h('td', {}, f.value ?? ''),
                    h('td', {}, f.status ?? ''),
                  ),
                ),
              ),
            )),
          ),
    ),
  );
  return out;
}

/**
 * What the decision decides, when the request holds more than the items waiting for it: the pended items only; a
 * cancelled item, or one decided before, keeps what it has (design.md §8 "Claim updates", the reviewer API).
 */
function decisionScope(v: RequestView): HTMLElement | null {
  if (v.items.length < 2) return null;
  const pended = v.items.filter((i) => i.reviewAction === 'A4');
  const cancelled = v.items.filter(isCancelled);
  const decided = v.items.filter((i) => !isCancelled(i) && i.reviewAction !== 'A4');
  return h(
    'p',
    { class: 'scope', id: 'decide-scope', 'data-testid': 'decide-scope' },
    `This decision is for ${pended.map((i) => itemName(i, v.case)).join(', ')}.`,
    cancelled.length
      ? ` ${itemList(cancelled).replace(/^i/, 'I')} ${cancelled.length === 1 ? 'was' : 'were'} cancelled by the submitter and ${cancelled.length === 1 ? 'is' : 'are'} not decided.`
      : '',
    decided.length ? ` ${itemList(decided).replace(/^i/, 'I')} keep${decided.length === 1 ? 's' : ''} the decision made before.` : '',
  );
}

function decisionForm(v: RequestView): HTMLElement {
  const period = v.items.find((i) => i.reviewAction === 'A4')?.reviewPeriod ?? v.items.find((i) => !isCancelled(i))?.reviewPeriod;
  // A pended item whose policy period runs from a course start the request does not give: no end is proposed, and the
  // page says why and what to set it from (design.md §8 "The reviewer API"), rather than a period counted from the order.
  const periodFrom = v.items.find((i) => i.reviewAction === 'A4' && i.periodFrom)?.periodFrom;
  const draft = decisionDrafts.get(v.id);
  const form = h(
    'form',
    { id: 'decide', novalidate: true },
    decisionScope(v),
    h(
      'fieldset',
      {},
      h('legend', {}, 'Decision'),
      h(
        'label',
        { class: 'choice' },
        h('input', {
          type: 'radio',
          name: 'decision',
          value: 'approve',
          id: 'decide-approve',
          checked: draft?.choice === 'approve',
        }),
        'Approve',
      ),
      h(
        'label',
        { class: 'choice' },
        h('input', { type: 'radio', name: 'decision', value: 'deny', id: 'decide-deny', checked: draft?.choice === 'deny' }),
        'Deny',
      ),
    ),
    h(
      'div',
      { class: 'field period', id: 'period-fields', hidden: draft?.choice === 'deny' },
      h(
        'div',
        {},
        h('label', { for: 'period-start' }, 'Approved from'),
        h('input', { id: 'period-start', type: 'date', value: draft ? draft.start : period?.start }),
      ),
      h(
        'div',
        {},
        h('label', { for: 'period-end' }, 'Approved until'),
        h('input', {
          id: 'period-end',
          type: 'date',
          value: draft ? draft.end : periodFrom ? undefined : period?.end,
          ...(v.case?.coverage?.end ? { max: v.case.coverage.end } : {}),
          ...(periodFrom ? { 'aria-describedby': 'period-from' } : {}),
        }),
      ),
      periodFrom ? h('p', { class: 'period-from', id: 'period-from', 'data-testid': 'period-from' }, periodFrom.text) : null,
    ),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'decision-reason' }, 'Reason (sent to the requesting clinician)'),
      h('textarea', { id: 'decision-reason', required: true }, draft?.reason ?? ''),
    ),
    h('p', { id: 'decide-error', class: 'form-error', role: 'alert' }),
    h('button', { type: 'submit', class: 'primary', id: 'decide-submit' }, 'Record the decision'),
  );
  const periodFields = form.querySelector<HTMLElement>('#period-fields')!;
  form.addEventListener('change', () => {
    const choice = form.querySelector<HTMLInputElement>('input[name=decision]:checked')?.value;
    periodFields.hidden = choice === 'deny';
  });
  const keep = () => decisionDrafts.set(v.id, formValues(form));
  form.addEventListener('input', keep);
  form.addEventListener('change', keep);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void decide(v, form);
  });
  return section('Decide', form);
}

function formValues(form: HTMLFormElement): DecisionDraft {
  return {
    choice: form.querySelector<HTMLInputElement>('input[name=decision]:checked')?.value as DecisionDraft['choice'],
    reason: form.querySelector<HTMLTextAreaElement>('#decision-reason')!.value,
    start: form.querySelector<HTMLInputElement>('#period-start')!.value,
    end: form.querySelector<HTMLInputElement>('#period-end')!.value,
  };
}

async function decide(v: RequestView, form: HTMLFormElement): Promise<void> {
  const error = form.querySelector<HTMLElement>('#decide-error')!;
  const typed = formValues(form);
  const { choice, start, end } = typed;
  const reason = typed.reason.trim();
  const problems: string[] = [];
  const invalid: string[] = [];
  const problem = (text: string, ...fields: string[]) => {
    problems.push(text);
    invalid.push(...fields);
  };
  if (!choice) problem('choose Approve or Deny', 'decide-approve', 'decide-deny');
  if (!reason) problem(choice === 'deny' ? 'give the reason for the denial' : 'give a reason', 'decision-reason');
  if (choice === 'approve' && (!start || !end))
    problem('give the approval period', ...(!start ? ['period-start'] : []), ...(!end ? ['period-end'] : []));
  if (choice === 'approve' && start && end && end < start)
    problem('the period ends before it starts', 'period-start', 'period-end');
  // No approval outlives the member's Coverage (docs/design.md §4 "Payer"): said here, before the service caps it.
  const coverageEnd = v.case?.coverage?.end;
  if (choice === 'approve' && coverageEnd && end && end > coverageEnd)
    problem(`the period ends after the member's Coverage does (${formatDate(coverageEnd)}): end it on or before that day`, 'period-end');
  if (choice === 'approve' && coverageEnd && start && start > coverageEnd)
    problem(`the period starts after the member's Coverage has ended (${formatDate(coverageEnd)})`, 'period-start');
  // Each field with a problem says so to assistive technology, and names the message as its description.
  // The end of a period the reviewer must set keeps the note saying what to set it from (#period-from) as well.
  const periodNote = form.querySelector('#period-from') ? ['period-from'] : [];
  for (const field of form.querySelectorAll<HTMLElement>('input, textarea')) {
    const notes = field.id === 'period-end' ? periodNote : [];
    if (invalid.includes(field.id)) {
      field.setAttribute('aria-invalid', 'true');
      field.setAttribute('aria-describedby', ['decide-error', ...notes].join(' '));
    } else {
      field.removeAttribute('aria-invalid');
      if (notes.length) field.setAttribute('aria-describedby', notes.join(' '));
      else field.removeAttribute('aria-describedby');
    }
  }
  if (problems.length) {
    error.textContent = `Before recording: ${problems.join('; ')}.`;
    (invalid.length ? form.querySelector<HTMLElement>(`#${invalid[0]}`) : form)?.focus();
    return;
  }
  error.textContent = '';
  const button = form.querySelector<HTMLButtonElement>('#decide-submit')!;
  button.disabled = true;
  // A greyed-out button alone says nothing to a screen reader, nor why a slow call keeps the reviewer waiting.
  setStatus('Recording the decision…', 'busy');
  try {
    const decided = await api<RequestView>(`/${encodeURIComponent(v.id)}/decision`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        decision: choice,
        reviewer: session!.reviewer,
        reason,
        ...(choice === 'approve' ? { period: { start, end } } : {}),
      }),
    });
    decisionDrafts.delete(v.id);
    const last = decided.decisions.at(-1);
    renderRequest(decided);
    setStatus(
      last
        ? `${decisionWords(last)}. The requesting clinician sees it at the next signing or inquiry.`
        : 'Decision recorded.',
      'ok',
    );
    focusView('decision-history');
  } catch (err) {
    // A refused token signs the reviewer out with the form kept (api() above); nothing more to say here.
    if (err instanceof HttpError && err.status === 401) return;
    if (err instanceof HttpError && err.status === 409) {
      // Decided meanwhile (another reviewer, or the order on another path): the form no longer applies; show the
      // request as it stands now rather than a form whose every retry would fail the same way.
      decisionDrafts.delete(v.id);
      const now = await api<RequestView>(`/${encodeURIComponent(v.id)}`).catch(() => undefined);
      if (now) renderRequest(now);
      setStatus(`Your decision was not recorded: ${problemWords(err)}. The request as it stands now is shown.`, 'error');
      if (now) focusView('decision-history');
      else {
        button.disabled = false;
        button.focus();
      }
      return;
    }
    button.disabled = false;
    // The form says why; the page no longer says the decision is being recorded.
    setStatus('');
    error.textContent = `The decision was not recorded: ${problemWords(err)}. What you entered is kept; record it again.`;
    button.focus();
  }
}

function renderRequest(v: RequestView): void {
  const c = v.case;
  const live = v.items.filter((i) => !isCancelled(i));
  const cancelled = v.items.filter(isCancelled);
  const cancelledSeq = new Map(cancelled.map((i) => [i.sequence, i]));
  const order = liveOrder(v);
  byId('request-title').textContent = c ? `${c.patient.name}: ${order?.drug ?? 'request'}` : `Request ${v.id}`;
  document.title = `${byId('request-title').textContent} — PriorPath clinical review`;
  const pended = v.reviewAction === 'A4';
  const missing = [...new Set(v.items.flatMap((i) => i.needed))];
  fill(
    byId('request-body'),
    h(
      'div',
      { class: 'grid' },
      h(
        'div',
        {},
        section(
          'Request',
          h(
            'dl',
            { 'data-testid': 'request-summary' },
            c
              ? [
                  h('dt', {}, 'Patient'),
                  h(
                    'dd',
                    {},
                    [
                      c.patient.name,
                      c.patient.birthDate ? `born ${formatDate(c.patient.birthDate)}` : '',
                      c.patient.gender ?? '',
                    ]
                      .filter(Boolean)
                      .join(', '),
                  ),
                ]
              : null,
            c?.patient.memberId ? [h('dt', {}, 'Member id'), h('dd', {}, c.patient.memberId)] : null,
            [h('dt', {}, 'Payer'), h('dd', {}, c?.payerName ?? v.payer.toUpperCase())],
            // The member's Coverage period: an approval ends no later than its last day (the service caps it).
            c?.coverage
              ? [
                  h('dt', {}, 'Coverage'),
                  h(
                    'dd',
                    { id: 'coverage-period' },
                    c.coverage.start && c.coverage.end
                      ? `${formatDate(c.coverage.start)} to ${formatDate(c.coverage.end)}`
                      : c.coverage.end
                        ? `until ${formatDate(c.coverage.end)}`
                        : `from ${formatDate(c.coverage.start!)}, no end date`,
                  ),
                ]
              : null,
            v.policyId
              ? [
                  h('dt', {}, 'Policy'),
                  h('dd', {}, `${v.policyId}${v.policyVersion ? ` (version ${v.policyVersion})` : ''}`),
                ]
              : null,
            (c?.orders ?? []).flatMap((o) => [
              h('dt', {}, c!.orders.length > 1 ? `Order ${o.sequence}` : 'Order'),
              h(
                'dd',
                cancelledSeq.has(o.sequence) ? { class: 'cancelled' } : {},
                [
                  o.drug,
                  o.dose,
                  o.sig && o.sig !== o.dose ? `(${o.sig})` : '',
                  o.cycles ? `${o.cycles} cycle${o.cycles === 1 ? '' : 's'}` : '',
                  o.start ? `from ${formatDate(o.start)}` : '',
                ]
                  .filter(Boolean)
                  .join(' · '),
                cancelledSeq.has(o.sequence)
                  ? h('strong', { class: 'cancelled-note' }, ` Cancelled ${cancelledWhen(cancelledSeq.get(o.sequence)!)}.`)
                  : null,
              ),
            ]),
            // The reference the clinician's DTR form and chart quote for this request (review ui s46 L2).
            [h('dt', {}, 'Reference'), h('dd', { 'data-testid': 'request-reference' }, v.id)],
            [
              h('dt', {}, 'Submitted'),
              h('dd', {}, `${dateTime(v.createdAt)}${pended ? ` (waiting ${ageOf(v.createdAt)})` : ''}`),
            ],
            [h('dt', {}, 'Status'), h('dd', { 'data-testid': 'request-status' }, statusWords(v))],
          ),
          pended && missing.length
            ? h('p', { class: 'missing' }, h('strong', {}, 'What is missing: '), missing.join('; '))
            : null,
        ),
        v.settled?.length ? settledSection(v.settled, v.items.length > 1) : null,
        live.length ? traceOf(live, v.items.length > 1) : null,
        cancelled.length
          ? section(
              'Cancelled items',
              h(
                'ul',
                { 'data-testid': 'cancelled-items' },
                cancelled.map((i) => h('li', {}, `${itemName(i, c)}: cancelled ${cancelledWhen(i)}. It is not part of this review.`)),
              ),
            )
          : null,
        ...caseSections(c),
      ),
      h(
        'div',
        {},
        pended ? decisionForm(v) : null,
        section(
          { title: 'Decision history', id: 'decision-history' },
          v.decisions.length === 0
            ? h('p', { class: 'muted' }, 'No reviewer has decided this request yet.')
            : h(
                'ul',
                { 'data-testid': 'decisions' },
                v.decisions.map((d) =>
                  h(
                    'li',
                    {},
                    h('p', { class: `decision decision-${d.decision}` }, decisionWords(d)),
                    h('p', {}, `${d.reviewer}, ${dateTime(d.decidedAt)}: ${d.reason}`),
                  ),
                ),
              ),
        ),
      ),
    ),
  );
}

function statusWords(v: RequestView): string {
  switch (v.reviewAction) {
    case 'A1':
      return `Approved${v.preAuthRef ? `: ${v.preAuthRef}` : ''}${v.preAuthPeriod ? `, ${formatDate(v.preAuthPeriod.start)} to ${formatDate(v.preAuthPeriod.end)}` : ''}`;
    case 'A3':
      return 'Denied';
    case 'A4':
      return 'Pended for review';
    case 'C':
      return 'Cancelled by the submitter';
    default:
      return v.status;
  }
}

async function showRequest(id: string): Promise<void> {
  byId('queue').hidden = true;
  setStatus('Loading the request…', 'busy');
  const v = await api<RequestView>(`/${encodeURIComponent(id)}`);
  renderRequest(v);
  byId('request').hidden = false;
  setStatus('');
  byId('request').focus();
}

function wire(): void {
  const sort = byId<HTMLSelectElement>('queue-sort');
  sort.replaceChildren(...QUEUE_SORTS.map((o) => h('option', { value: o.value }, o.label)));
  byId('queue-tools').addEventListener('submit', (e) => e.preventDefault());
  byId<HTMLInputElement>('queue-filter').addEventListener('input', (e) => {
    queueChoice.filter = (e.target as HTMLInputElement).value;
    queueChoice.page = 1;
    renderQueue();
  });
  sort.addEventListener('change', () => {
    queueChoice.sort = sort.value as QueueSort;
    queueChoice.page = 1;
    renderQueue();
  });
  byId('decided-tools').addEventListener('submit', (e) => e.preventDefault());
  byId<HTMLInputElement>('decided-filter').addEventListener('input', (e) => {
    decidedChoice.filter = (e.target as HTMLInputElement).value;
    renderDecided();
  });
  const days = byId<HTMLSelectElement>('decided-days');
  days.addEventListener('change', () => {
    decidedChoice.days = Number(days.value) || 7;
    byId('decided-count').textContent = `Loading the decisions of ${windowWords(decidedChoice.days)}…`;
    void loadDecided().then(renderDecided);
  });
  byId('queue-prev').addEventListener('click', () => turnPage(-1));
  byId('queue-next').addEventListener('click', () => turnPage(1));
  byId('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const reviewer = byId<HTMLInputElement>('reviewer-name').value.trim();
    const token = byId<HTMLInputElement>('reviewer-token').value.trim();
    // Each empty field says so to assistive technology, with the alert as its description (as the decision form does).
    for (const [id, empty] of [
      ['reviewer-name', !reviewer],
      ['reviewer-token', !token],
    ] as const) {
      const field = byId(id);
      if (empty) {
        field.setAttribute('aria-invalid', 'true');
        field.setAttribute('aria-describedby', 'alert');
      } else {
        field.removeAttribute('aria-invalid');
        field.removeAttribute('aria-describedby');
      }
    }
    if (!reviewer || !token) {
      setStatus(
        !reviewer && !token ? 'Enter your name and your reviewer token.' : !reviewer ? 'Enter your name: it goes on each decision.' : 'Enter your reviewer token.',
        'error',
      );
      byId(!reviewer ? 'reviewer-name' : 'reviewer-token').focus();
      return;
    }
    signIn({ reviewer, token });
  });
  byId('demo-reviewer').addEventListener('click', () => {
    fetchJson<{ token: string; reviewer: string }>(`${base}/demo-sign-in`, { method: 'POST' })
      .then((s) => signIn({ token: s.token, reviewer: s.reviewer }))
      .catch((err: unknown) => setStatus(`The demo sign-in failed: ${problemWords(err)}.`, 'error'));
  });
  byId('sign-out').addEventListener('click', () => signOut());
  // The skip link moves focus to the content without touching the address: "#main" would be a route, and the
  // router would leave the request being reviewed for the queue.
  document.querySelector('a.skip')?.addEventListener('click', (e) => {
    e.preventDefault();
    focusView('main');
  });
  window.addEventListener('hashchange', () => {
    route().catch(fail);
  });
}

function fail(err: unknown): void {
  if (err instanceof HttpError && err.status === 401) return;
  setStatus(`Something went wrong: ${problemWords(err)}.`, 'error');
}

wire();
session = loadSession();
route().catch(fail);

/**
 * A chart fact's date as the reviewer reads it: a Condition whose onset is an age or words has no onset date, and the
 * day it was recorded is said as such, never shown where an onset date would be (design.md §6 "A Condition's date").
 */
function chartFactDate(f: Case['facts'][number]): string {
  if (f.onsetUnknown) return f.onsetUnknown.recorded ? `onset unknown (recorded ${formatDate(f.onsetUnknown.recorded)})` : 'onset unknown';
  return f.date ? formatDate(f.date) : 'no date';
}
