import type { Logger } from '../logger.js';
import { isDecided, recordedDecision } from '../coverage/order-record.js';
import type { OrderEvent, OrderKey, PasSubmission, PendedSummary, ReviewDecisionInput, Storage } from '../storage/storage.js';
import { latestEvent } from '../storage/storage.js';
import { byCodePoint } from '../code-point-order.js';
import { itemFromOrderRecord } from './adjudicate.js';
import type { ItemDecision } from './adjudicate.js';
import { buildResponseBundle, itemErrorsOf, summarize } from './claim-response.js';
import { parsePasRequest } from './request-bundle.js';
import { coverageLastDay } from '../coverage/payer.js';
import { answeredVersion } from './pas-version.js';
import { approvalCovers, quantityOf } from './approval-covers.js';
import { answeredApprovals } from './decide-items.js';

/**
 * Who decided an order, in the words the reviewer's decision history shows (stored as the decision's `reviewer`):
 * the path that decided it (signing, the DTR answers, another PAS request), or the reviewer by name; never the
 * internal actor (`dtr:QuestionnaireResponse`, `order-sign <hookInstance>`).
 */
export function decidedBy(event: Pick<OrderEvent, 'source' | 'actor' | 'submissionId'>): string {
  if (event.source === 'crd') return 'Order signing (CRD)';
  if (event.source === 'dtr') return 'Documentation answers (DTR)';
  if (event.source === 'pas') return `Another prior authorization request${event.submissionId ? ` (${event.submissionId})` : ''}`;
  return event.actor;
}

/**
 * A pended PAS request whose order was decided on another path meanwhile (an approval at signing once the chart held
 * the evidence, a DTR determination, a denial) takes the order's decision (design.md §8: one record per order; every
 * edge answers its decision, `$inquire` the current state, and a pended request's subscribers hear when it is
 * decided). The request's items become A1 with the order's number and period, or A3 with its reason; an approval
 * takes only the items it covers (approval-covers.ts: an item over a limit is not covered by the rules' approval, nor by
 * a reviewer's of less), the others stay pended for the reviewer. The change is stored as a decision on the request (who: the path that decided the order) with its subscription event, only if the
 * request is still pended. Returns the request as it now stands; a request with nothing to settle is returned as is.
 */
export async function settlePended(
  storage: Storage,
  s: PasSubmission,
  opts: {
    log?: Logger;
    today?: string;
    notifier?: { kick(): void };
    /** Answer the settled request without storing it: a read changes no state (HTTP GET is safe, RFC 9110 §9.2.1). */
    readOnly?: boolean;
  } = {},
): Promise<PasSubmission> {
  const today = opts.today ?? new Date().toISOString().slice(0, 10);
  if (s.reviewAction !== 'A4') return s;
  const items = (s.detail as { items?: ItemDecision[] }).items ?? [];
  // Parsed only for a request that has something to settle: the reviewer's queue and the sweep settle every pended one.
  let request: ReturnType<typeof parsePasRequest> | undefined;
  const requestOf = () => (request ??= parsePasRequest(s.requestBundle));
  const settled: { item: ItemDecision; by?: string; at?: string }[] = await Promise.all(
    items.map(async (item) => {
      if (item.reviewAction !== 'A4' || !item.order) return { item };
      const record = await storage.getOrderRecord(item.order);
      if (!isDecided(record)) return { item };
      // The order's approval is answered within the request's Coverage (design.md §4 "Payer"), whoever issued it.
      const decided = recordedDecision(record, today, coverageLastDay(requestOf().coverage));
      if (!decided) return { item };
      // An approval answers only what it covers: a request pended over a limit stays the reviewer's when the order is
      // approved within it (at signing, in DTR), or by a reviewer for less (docs/design.md §8 "What an approval covers").
      if (decided.reviewAction === 'A1' && !(await approvalCovers(storage, item, record, () => quantityOf(s.requestBundle, item.sequence)))) return { item };
      const event = latestEvent(record, record.state);
      const by = event ? decidedBy(event) : 'The order record';
      return { item: itemFromOrderRecord(item, decided), by, ...(event ? { at: event.at } : {}) };
    }),
  );
  const changed = settled.filter((x) => x.by);
  if (changed.length === 0) return s;

  const next = settled.map((x) => x.item);
  // When the order was decided (its latest deciding event), so a read that answers the settled request before it is
  // stored says the same time as the stored decision does.
  const decidedAt = changed.map((x) => x.at).filter((a): a is string => !!a).sort(byCodePoint).at(-1) ?? new Date().toISOString();
  const version = answeredVersion(s);
  const itemErrors = itemErrorsOf(s.detail);
  const { bundle, claimResponse } = buildResponseBundle(requestOf(), next, { id: s.id, created: s.createdAt, version, itemErrors });
  const { status, reviewAction } = summarize(next);
  const approved = next.find((i) => i.reviewAction === 'A1' && i.authorization)?.authorization;
  const first = changed[0].item;
  const input: ReviewDecisionInput = {
    // The orders already hold these decisions: nothing to change there, but the approvals taken must still be theirs.
    orders: [],
    answers: answeredApprovals(changed.map((x) => x.item)),
    // Not over a Claim Update made meanwhile (it may have cancelled the item).
    revision: s.revision,
    decision: {
      submissionId: s.id,
      decision: first.reviewAction === 'A1' ? 'approve' : 'deny',
      reviewer: changed[0].by!,
      reason: first.reasons[0] ?? status,
      decidedAt,
      ...(first.authorization ? { authorizationNumber: first.authorization.number } : {}),
    },
    next: {
      status,
      reviewAction,
      needed: next.filter((i) => i.reviewAction === 'A4').flatMap((i) => i.needed),
      ...(approved ? { preAuthRef: approved.number, preAuthPeriod: { start: approved.start, end: approved.end } } : { preAuthRef: s.preAuthRef, preAuthPeriod: s.preAuthPeriod }),
      claimResponse: claimResponse as unknown as Record<string, unknown>,
      responseBundle: bundle as unknown as Record<string, unknown>,
      detail: { items: next, pasVersion: version, ...(itemErrors.length > 0 ? { itemErrors } : {}) },
    },
  };
  // A read (GET, $inquire) answers the request as it now stands without storing it: the decision is stored by the
  // sweep (subscription-notifier.ts sweepPended), by a write that reads the request, or by the reviewer's decision.
  if (opts.readOnly) return { ...s, ...input.next, decisions: [...s.decisions, input.decision] };
  const result = await storage.recordReviewDecision(input);
  opts.log?.info({ submissionId: s.id, reviewAction, applied: result.applied }, 'pas pended request settled from its order record');
  // Its subscribers hear of it now (the event is in storage with the decision).
  if (result.applied) opts.notifier?.kick();
  return result.submission ?? (await storage.getPasSubmission(s.id)) ?? s;
}

/**
 * The pended requests (the oldest 500 the queue lists) as they now stand: each settled first (settlePended), so one
 * whose order was decided elsewhere meanwhile has that decision. The reviewer's queue and the subscription sweep read
 * the same list this way.
 */
export async function currentPended(
  storage: Storage,
  opts: { log?: Logger; notifier?: { kick(): void }; readOnly?: boolean } = {},
): Promise<{ listed: PendedSummary[]; current: Map<string, PasSubmission> }> {
  const listed = await storage.listPendedSubmissions(500);
  const found = listed.length > 0 ? await storage.findPasSubmissions({ ids: listed.map((p) => p.id), limit: 500 }) : [];
  const current = await Promise.all(found.map((s) => settlePended(storage, s, opts)));
  return { listed, current: new Map(current.map((s) => [s.id, s])) };
}

/** Whether two order keys name the same order record. */
const sameOrder = (a: OrderKey, b: OrderKey) => a.payer === b.payer && a.patientId === b.patientId && a.orderRef === b.orderRef && a.drug === b.drug;

/** The pended items of a request that name an order (the ones an order's decision settles). */
const pendedOrders = (s: PasSubmission): OrderKey[] =>
  ((s.detail as { items?: ItemDecision[] }).items ?? []).filter((i) => i.reviewAction === 'A4' && i.order).map((i) => i.order!);

/**
 * The request whose orders this pended request waits on, when it has nothing of its own to review: every pended item
 * names an order that another request pends (design.md §8: an order another request pends stays that request's; a
 * second payer API client's request for it is pended with it). Such a request is one case with that one for the
 * reviewer: one decision per order answers both. Undefined when the request pends something itself.
 */
export async function waitsOn(storage: Storage, s: PasSubmission): Promise<string | undefined> {
  if (s.reviewAction !== 'A4') return undefined;
  const pended = ((s.detail as { items?: ItemDecision[] }).items ?? []).filter((i) => i.reviewAction === 'A4');
  if (pended.length === 0 || pended.some((i) => !i.order)) return undefined;
  const owners = new Set(
    await Promise.all(
      pended.map(async (i) => {
        const record = await storage.getOrderRecord(i.order!);
        return record?.state === 'pended' && record.submissionId !== s.id ? record.submissionId : undefined;
      }),
    ),
  );
  const [owner] = [...owners];
  return owners.size === 1 && owner ? owner : undefined;
}

/**
 * Settles, now, the other pended requests waiting on orders a decision just decided (settlePended), so each request of
 * the case (another client's among them) answers the decision at once and its subscribers hear of it. Looks among the
 * pended requests the queue lists; one left out is settled when it is next read or swept. Returns their ids.
 */
export async function settleWaitingOn(
  storage: Storage,
  decided: OrderKey[],
  opts: { except: string; log?: Logger; today?: string; notifier?: { kick(): void } },
): Promise<string[]> {
  if (decided.length === 0) return [];
  const listed = (await storage.listPendedSubmissions(500)).filter((p) => p.id !== opts.except);
  if (listed.length === 0) return [];
  const found = await storage.findPasSubmissions({ ids: listed.map((p) => p.id), limit: 500 });
  const waiting = found.filter((s) => pendedOrders(s).some((k) => decided.some((d) => sameOrder(k, d))));
  const settled = await Promise.all(waiting.map((s) => settlePended(storage, s, opts)));
  return settled.filter((s) => s.reviewAction !== 'A4').map((s) => s.id);
}
