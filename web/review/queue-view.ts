/**
 * Which pended requests the reviewer's queue shows (design.md §8 "The reviewer API": `GET /review/pended` returns the
 * whole queue, oldest first): a text filter, a sort order and a page of it. Pure, so a queue of hundreds stays one
 * readable page at a time and the same choices give the same rows.
 */

/**
 * What a reviewer recognises a request by, in the queue and in the Decided list alike (`GET /review/pended` and
 * `/review/decided` name it the same way): its patient, order and payer. Fields the API does not give are absent.
 */
export interface RequestNames {
  id: string;
  payer?: string;
  payerName?: string;
  policyId?: string;
  patientName?: string;
  memberId?: string;
  drug?: string;
  dose?: string;
}

/** A queue row as the workbench shows it. */
export interface QueueRow extends RequestNames {
  createdAt: string;
  payer: string;
  needed: string[];
  missing?: string[];
  /** Other requests (another EHR's, for the same order) that this request's decision answers too. */
  waiting?: { id: string }[];
}

export type QueueSort = 'oldest' | 'newest' | 'patient' | 'drug' | 'payer';

/** The orders the reviewer can choose, in the words of the "Sort by" list. */
export const QUEUE_SORTS: { value: QueueSort; label: string }[] = [
  { value: 'oldest', label: 'Longest waiting first' },
  { value: 'newest', label: 'Newest first' },
  { value: 'patient', label: 'Patient (A to Z)' },
  { value: 'drug', label: 'Drug (A to Z)' },
  { value: 'payer', label: 'Payer (A to Z)' },
];

export interface QueueChoice {
  filter: string;
  sort: QueueSort;
  /** 1-based; out of range is brought back into range. */
  page: number;
}

export interface QueuePage<R extends QueueRow> {
  rows: R[];
  /** Requests waiting, whatever the filter. */
  total: number;
  /** Requests the filter keeps. */
  matching: number;
  page: number;
  pages: number;
  /** 1-based positions of the first and last row shown among the matching ones (0 and 0 when none). */
  from: number;
  to: number;
}

export const QUEUE_PAGE_SIZE = 25;

/** Lower case without accents, so "jose" finds "José" and "MRD" finds "mrd". */
function fold(s: string): string {
  return s
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .toLowerCase();
}

/** The names a search finds a request by, queued or decided: patient, member id, drug and dose, payer, policy. */
const names = (r: RequestNames) => [r.patientName, r.memberId, r.drug, r.dose, r.payer, r.payerName, r.policyId];

/**
 * Whether a searched word is the request's reference (its id, the PAS answer's: the one the clinician's DTR form and
 * chart quote, order-record.ts `pendedReview`; review ui s46 L2): the whole reference, or its first 8 characters or
 * more. Not any part of it, so a number typed for a dose ("56 mcg") does not find every reference that holds "56".
 */
const isReference = (r: RequestNames, w: string) => {
  const id = fold(r.id);
  return id === w || (w.length >= 8 && id.startsWith(w));
};

/** Everything a reviewer might type to find a request: patient, member id, drug and dose, payer, policy, what is missing. */
function haystack(r: QueueRow): string {
  return fold(
    [...names(r), ...(r.missing ?? r.needed)]
      .filter(Boolean)
      .join(' \u0000 '),
  );
}

const byText = (a: string | undefined, b: string | undefined) =>
  (a ?? '\uffff').localeCompare(b ?? '\uffff', 'en', { sensitivity: 'base' });

function compare(sort: QueueSort): (a: QueueRow, b: QueueRow) => number {
  const age = (a: QueueRow, b: QueueRow) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id);
  switch (sort) {
    case 'oldest':
      return age;
    case 'newest':
      return (a, b) => age(b, a);
    case 'patient':
      return (a, b) => byText(a.patientName, b.patientName) || age(a, b);
    case 'drug':
      return (a, b) => byText(a.drug, b.drug) || age(a, b);
    case 'payer':
      return (a, b) => byText(a.payerName ?? a.payer, b.payerName ?? b.payer) || age(a, b);
  }
}

/** The rows to show for a filter, an order and a page; every word of the filter must match (in any field). */
export function queuePage<R extends QueueRow>(all: R[], choice: QueueChoice, size = QUEUE_PAGE_SIZE): QueuePage<R> {
  const words = fold(choice.filter).split(/\s+/).filter(Boolean);
  const matching = all
    .filter((r) => {
      const text = haystack(r);
      return words.every((w) => text.includes(w) || isReference(r, w));
    })
    .sort(compare(choice.sort));
  const pages = Math.max(1, Math.ceil(matching.length / size));
  const page = Math.min(Math.max(1, Math.floor(choice.page) || 1), pages);
  const rows = matching.slice((page - 1) * size, page * size);
  return {
    rows,
    total: all.length,
    matching: matching.length,
    page,
    pages,
    from: rows.length ? (page - 1) * size + 1 : 0,
    to: rows.length ? (page - 1) * size + rows.length : 0,
  };
}

/**
 * A row of the reviewer's Decided list (`GET /review/decided`): a decision recorded on a request, newest first. The
 * server's `DecidedEntry` (src/pas/review-router.ts) is what it reads; test/pas/review-decided.test.ts checks that
 * every entry is such a row.
 */
export interface DecidedRow extends RequestNames {
  decision: 'approve' | 'deny';
  reviewer: string;
  reason: string;
  decidedAt: string;
  authorizationNumber?: string;
  status?: string;
}

/**
 * The decided rows a search keeps, in the order the API gave them (newest first): every word must match the patient,
 * member id, drug and dose, payer, policy, decision, authorization number, reviewer or reason, as the queue's search
 * does, so "what did you decide for Jordan Carter" is one search.
 */
export function decidedMatching<R extends DecidedRow>(all: R[], filter: string): R[] {
  const words = fold(filter).split(/\s+/).filter(Boolean);
  return all.filter((r) => {
    const text = fold(
      [...names(r), r.decision === 'approve' ? 'approved' : 'denied', r.authorizationNumber, r.reviewer, r.reason]
        .filter(Boolean)
        .join(' \u0000 '),
    );
    return words.every((w) => text.includes(w) || isReference(r, w));
  });
}
