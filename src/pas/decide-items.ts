import { UNDECIDED, afterReviewDenialNeeded, deniedAgainChange, recordedDecision, reopenApproval, reopenDenialChange, reopeningReason } from '../coverage/order-record.js';
import type { CompiledPolicy } from '../policies/compiled-policy.js';
import type { FactResult } from '../policies/evaluate-policy.js';
import { orderStartOf } from '../policies/evaluation-data.js';
import type { AnsweredApproval, AuthorizationRecord, GuardedOrderChange, OrderKey, OrderRecord, Storage } from '../storage/storage.js';
import { itemFromOrderRecord } from './adjudicate.js';
import { coverageLastDay } from '../coverage/payer.js';
import { approvalCovers } from './approval-covers.js';
import { backToDeniedOrder, beyondApproval, changedSinceDenial, standingReviewDenial } from '../coverage/reviewed-approval.js';
import type { ItemDecision } from './adjudicate.js';
import { buildResponseBundle, summarize } from './claim-response.js';
import type { ResponseMeta } from './claim-response.js';
import type { PasRequest } from './request-bundle.js';

/**
 * Lets each item's order record speak (design.md §8 "One authorization per order"), in place: an order that no longer
 * fits the approval the rules gave it, or whose dose cannot be read after an approval at signing, is reopened (a review, not A1), and an order that has a decision answers
 * it (A1 with the order's number, A3 with its reason), except a pended item that asks more than the order's approval
 * covers (approval-covers.ts; `request` gives the Claim quantities of items decided before their decisions held
 * them): it stays pended for review and the approval stands. Returns the records as they now stand, one per item. `actor` names the PAS request in the orders' history.
 */
export async function withOrderRecords(
  storage: Storage,
  items: ItemDecision[],
  opts: { day: string; actor: string; request?: PasRequest; policyOf?: (id: string) => CompiledPolicy | undefined },
): Promise<(OrderRecord | undefined)[]> {
  const records = await Promise.all(items.map((i) => (i.order ? storage.getOrderRecord(i.order) : Promise.resolve(undefined))));
  await Promise.all(
    items.map(async (item, n) => {
      const record = records[n];
      const reason = reopeningReason(record, item, item.reasons[0] ?? item.needed[0] ?? 'a limit is exceeded');
      if (reason) records[n] = await reopenApproval(storage, record!, reason, { source: 'pas', actor: opts.actor, policyId: item.policyId });
      else if (record) records[n] = await reopenedDenial(storage, item, record, opts);
    }),
  );
  // An approval the order holds is answered within the request's Coverage (design.md §4 "Payer"): it may have been
  // issued in DTR, by a reviewer of another request, under another Coverage or before the cap was kept.
  const coverageEnd = coverageLastDay(opts.request?.coverage);
  await Promise.all(
    items.map(async (item, n) => {
      const decided = recordedDecision(records[n], opts.day, coverageEnd);
      if (!decided) {
        // Reopened after a reviewer's denial: an item the rules would certify is pended for a reviewer (design.md §8).
        const denial = standingReviewDenial(records[n]);
        if (denial && item.reviewAction === 'A1') items[n] = { ...item, reviewAction: 'A4', needed: [afterReviewDenialNeeded(denial)], reasons: [], authorization: undefined };
        return;
      }
      // A reviewer's approval answers what the reviewer approved: an item pended here that asks more of it (a higher
      // dose, more cycles, a larger quantity) stays pended for review, the approval intact (approval-covers.ts).
      if (decided.reviewAction === 'A1' && item.reviewAction === 'A4') {
        const asked = () => opts.request?.items.find((i) => i.sequence === item.sequence)?.item.quantity;
        if (!(await approvalCovers(storage, item, records[n]!, asked))) {
          items[n] = { ...item, needed: [...item.needed, beyondApproval(decided.authorization.number)] };
          return;
        }
      }
      items[n] = itemFromOrderRecord(item, decided);
    }),
  );
  return records;
}


/**
 * A denied order claimed again (design.md §8 "A denial is the decision on the order as it was denied"): changed since
 * its denial (the item's facts read from the order, or the start the order states, are not the denied item's:
 * reviewed-approval.ts changedSinceDenial), its record is reopened, durably and the denial kept in its history, and the
 * item is decided as adjudicated; claimed again unchanged, the denial stands. An order reopened so (by signing or
 * PAS) and now claimed as it was denied is given back its denial (reviewed-approval.ts backToDeniedOrder). Returns the
 * record as it now stands.
 */
async function reopenedDenial(
  storage: Storage,
  item: ItemDecision,
  record: OrderRecord,
  opts: { actor: string; request?: PasRequest; policyOf?: (id: string) => CompiledPolicy | undefined },
): Promise<OrderRecord> {
  const policy = item.policyId ? opts.policyOf?.(item.policyId) : undefined;
  if (!policy) return record;
  // The facts the item was decided on, as the reviewer reads them (each criterion's evidence).
  const facts: FactResult[] = [...new Map(item.criteria.flatMap((c) => c.evidence ?? []).map((e) => [e.fact, { name: e.fact, value: e.value, source: e.source }])).values()];
  const order = opts.request?.resources.find((r) => r.resourceType === 'MedicationRequest' && `MedicationRequest/${r.id ?? ''}` === item.order?.orderRef);
  const ownStart = order?.resourceType === 'MedicationRequest' && orderStartOf(order) !== undefined;
  const now = { evaluation: { facts }, fromClaimItem: true, ...(item.quantity !== undefined ? { claimQuantity: item.quantity } : {}), ...(order ? { order } : {}), ...(ownStart ? { orderDate: item.orderDate } : {}) };
  const who = { source: 'pas' as const, actor: opts.actor, policyId: item.policyId };
  if (record.state !== 'denied') {
    // Reopened for a change, then claimed as it was denied: the denial is again its decision (design.md §8).
    const again = await backToDeniedOrder(storage, policy, now, record);
    return again ? (await storage.applyOrderChange(deniedAgainChange(record, again, who))).record : record;
  }
  const reason = await changedSinceDenial(storage, policy, now, record);
  if (!reason) return record;
  return (await storage.applyOrderChange(reopenDenialChange(record, reason, who))).record;
}

/**
 * The approvals `items` answer from their orders' records (A1 with the order's number, withOrderRecords). The write that
 * stores them checks, with the records locked, that each record still holds its number (storage AnsweredApproval): a
 * cancellation of the last other request carrying it, at the same moment, either sees this one or withdraws it first,
 * and then this one is decided again (docs/design.md §8 "Claim updates").
 */
export function answeredApprovals(items: ItemDecision[]): AnsweredApproval[] {
  return items.flatMap((i) => (i.fromOrderRecord && i.reviewAction === 'A1' && i.order && i.authorization ? [{ key: i.order, number: i.authorization.number }] : []));
}

/** One authorization number for the new approvals of a request; every such item carries it, each with its own period. */
export function shareAuthorization(items: ItemDecision[]): void {
  const approved = items.filter((i) => i.authorization);
  if (approved.length === 0) return;
  const number = approved[0].authorization!.number;
  for (const i of approved) i.authorization = { ...i.authorization!, number };
}

/** The request's authorization (ClaimResponse.preAuthRef and period): the first approved item's number, the widest period. */
export function requestAuthorization(items: ItemDecision[]): AuthorizationRecord | undefined {
  const approved = items.filter((i) => i.reviewAction === 'A1' && i.authorization);
  if (approved.length === 0) return undefined;
  const number = approved[0].authorization!.number;
  const mine = approved.filter((i) => i.authorization!.number === number);
  return { number, start: mine.map((i) => i.authorization!.start).sort()[0], end: mine.map((i) => i.authorization!.end).sort().at(-1)! };
}

/**
 * The orders' changes that make the new approvals and denials of `items` (those not answered from an order record,
 * not pended) their orders' decisions. The caller stores them in the transaction that stores the request (or its
 * update), so a request whose write is refused (a concurrent resend stored first, the request moved meanwhile)
 * records no decision; a change refused there (the order was decided meanwhile) refuses the write, and the caller
 * decides again on the order's record, whose decision the item then takes (design.md §8).
 */
export function itemDecisionChanges(items: ItemDecision[], opts: { submissionId: string; at: string }): GuardedOrderChange[] {
  return items
    .filter((item): item is ItemDecision & { order: OrderKey } => !!item.order && !item.fromOrderRecord && (item.reviewAction === 'A1' || item.reviewAction === 'A3'))
    .map((item) => {
      const state = item.reviewAction === 'A1' ? ('approved' as const) : ('denied' as const);
      return {
        key: item.order,
        from: UNDECIDED,
        change: {
          state,
          at: opts.at,
          source: 'pas' as const,
          actor: `PAS ${opts.submissionId}`,
          reason: item.reasons[0] ?? state,
          policyId: item.policyId,
          submissionId: opts.submissionId,
          ...(item.authorization ? { authorization: item.authorization } : {}),
        },
      };
    });
}

/**
 * What a request's decided items make of it, as stored and answered (PAS 2.2.1 PASResponseBundle; design.md §8): the
 * response Bundle and its ClaimResponse, the request's status and review action, what its pended items need, and its
 * authorization. A new request and a Claim Update store the same fields from the same items.
 */
export function requestOutcome(request: PasRequest, items: ItemDecision[], meta: ResponseMeta) {
  const { bundle, claimResponse } = buildResponseBundle(request, items, meta);
  const { status, reviewAction } = summarize(items);
  const authorization = requestAuthorization(items);
  return {
    authorization,
    stored: {
      status,
      reviewAction,
      needed: items.filter((i) => i.reviewAction === 'A4').flatMap((i) => i.needed),
      ...(authorization ? { preAuthRef: authorization.number, preAuthPeriod: { start: authorization.start, end: authorization.end } } : {}),
      claimResponse: claimResponse as unknown as Record<string, unknown>,
      responseBundle: bundle as unknown as Record<string, unknown>,
      // The version answered, so a later re-rendering (a reviewer's decision, another path's) answers in it too.
      detail: { items, ...(meta.version ? { pasVersion: meta.version } : {}), ...(meta.itemErrors?.length ? { itemErrors: meta.itemErrors } : {}) },
    },
  };
}
