import type { Content, Payer } from '../content.js';
import { PROVISIONAL, cancelledApprovalReason, isDecided } from '../coverage/order-record.js';
import { badRequest } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ApprovalWithdrawal, GuardedOrderChange, OrderKey, OrderRecord, PasSubmission, Storage } from '../storage/storage.js';
import { latestEvent } from '../storage/storage.js';
import { adjudicate } from './adjudicate.js';
import type { ItemDecision, ItemError } from './adjudicate.js';
import { itemErrorsOf } from './claim-response.js';
import { DomainError } from '../errors.js';
import { answeredApprovals, itemDecisionChanges, requestOutcome, shareAuthorization, withOrderRecords } from './decide-items.js';
import type { PasVersion } from './pas-version.js';
import { identifierKey, parsePasRequest } from './request-bundle.js';
import type { PasRequest } from './request-bundle.js';
import { assertedOrderDates, signingFacts } from './asserted-order-dates.js';

/** How one item of the request fares in an update. */
type Plan = { kind: 'keep'; item: ItemDecision } | { kind: 'decide'; was?: ItemDecision } | { kind: 'cancel'; item: ItemDecision };

/** The reason a cancelled item carries (its ClaimResponse process note). */
const CANCELLED = 'Cancelled by the submitter (PAS Claim Update)';

/**
 * What the update does to each item of the stored request, by sequence (PAS item.sequence is the same across every
 * version of a request): cancel (the whole request with certificationType 3, or an item flagged cancelled), decide
 * (an item added, an item flagged changed, or a pended item when the update brings new or changed documentation),
 * or keep (an item the update leaves as it was; an item the update leaves out stays too).
 */
function planOf(stored: ItemDecision[], req: PasRequest): Map<number, Plan> {
  const update = req.update!;
  const bySequence = new Map(stored.map((i) => [i.sequence, i]));
  const plan = new Map<number, Plan>(stored.map((i) => [i.sequence, { kind: 'keep', item: i }]));
  if (update.cancelAll) {
    for (const i of stored) if (i.reviewAction !== 'C') plan.set(i.sequence, { kind: 'cancel', item: i });
    return plan;
  }
  for (const { sequence } of req.items) {
    const was = bySequence.get(sequence);
    const change = update.items.get(sequence);
    if (change === 'cancelled') {
      if (!was) throw badRequest(`Claim item ${sequence} is cancelled, but the request it updates has no item ${sequence}`, ['Claim.item.sequence']);
      if (was.reviewAction !== 'C') plan.set(sequence, { kind: 'cancel', item: was });
    } else if (!was || change === 'added' || change === 'changed' || (was.reviewAction === 'A4' && update.supportingInfoChanged)) {
      plan.set(sequence, { kind: 'decide', ...(was ? { was } : {}) });
    }
  }
  return plan;
}

/** Whether another item of the request, still asked for, names the same order (then its record is that item's too). */
const sharesOrder = (key: OrderKey, items: ItemDecision[], except: number) =>
  items.some((i) => i.sequence !== except && i.reviewAction !== 'C' && i.order && JSON.stringify(i.order) === JSON.stringify(key));

/**
 * The order change a cancelled item makes (design.md §8, one record per order): a review this request pends for the
 * order is released (the order goes back to `auth-needed`, and the request leaves the reviewer's queue once nothing
 * else of it is pended), and an approval this request carries for it is withdrawn (the submitter no longer needs it;
 * the number stays in the order's history). The request carries the approval when its item answers it (A1), or when
 * the approval was issued in this request (the record's approving event names it) and a Claim Update asking more
 * pended the item again (A4): the approval stood for what was approved meanwhile (review-diff s45 H1). A denial stays
 * the order's decision; an order another request pends or decided stays that request's. Whether an approval another
 * stored request still carries stays is decided by storage, in the transaction that stores the update
 * (PasUpdateInput.withdrawals): read here, before it, two duplicate requests cancelled at once each saw the other
 * still carrying it and both kept it (review-diff s44 D1).
 */
function releaseOf(item: ItemDecision, record: OrderRecord | undefined, s: PasSubmission, at: string): GuardedOrderChange | undefined {
  if (!item.order || !record) return undefined;
  const change = { at, source: 'pas' as const, actor: `PAS ${s.id}`, state: 'auth-needed' as const, submissionId: s.id, ...(item.policyId ? { policyId: item.policyId } : {}) };
  if (record.state === 'pended' && record.submissionId === s.id) {
    return { key: item.order, from: ['pended'], change: { ...change, reason: `The prior authorization request ${s.id} for this order was cancelled by its submitter before a decision` } };
  }
  const number = record.state === 'approved' ? record.authorization?.number : undefined;
  if (!number) return undefined;
  const answers = item.reviewAction === 'A1' && item.authorization?.number === number;
  const issuedHere = item.reviewAction === 'A4' && latestEvent(record, 'approved')?.submissionId === s.id;
  if (answers || issuedHere) {
    return { key: item.order, from: ['approved'], change: { ...change, reason: cancelledApprovalReason(number, s.id), withdrawsApproval: true } };
  }
  return undefined;
}

export interface ClaimUpdateOptions {
  storage: Storage;
  content: Content;
  payer: Payer;
  /** The update as parsed (`request.update` set). */
  request: PasRequest;
  /** The stored request it updates, as it now stands (settled). */
  target: PasSubmission;
  client: string | undefined;
  day: string;
  version: PasVersion;
  log: Logger;
}

/**
 * Applies a PAS Claim Update to the stored request it names (PAS 2.2.1 §"Updating Authorization Requests"; design.md
 * §8 "Claim updates"): the request is changed in place and keeps its id (ClaimResponse id, REF-NT). Cancelled items
 * become X12 306 C and let go of what they held on their orders; added and changed items are decided by the same core
 * as a new request (adjudicate, then the orders' records: an approved order keeps its number, a denied one its
 * denial); the rest keep their decisions. The answer covers every item of the request as it now stands, by its
 * sequence. Returns the response Bundle, or undefined when the request or one of its orders changed meanwhile (the
 * caller reads it again and retries).
 */
export async function applyClaimUpdate(o: ClaimUpdateOptions): Promise<Record<string, unknown> | undefined> {
  const { storage, request, target: s } = o;
  const at = new Date().toISOString();
  const stored = ((s.detail as { items?: ItemDecision[] }).items ?? []).map((i) => ({ ...i }));
  const plan = planOf(stored, request);

  // Added and changed items: the same decision as a new request's, then what their orders' records say.
  const deciding = [...plan.entries()].filter(([, p]) => p.kind === 'decide').map(([seq]) => seq);
  // An item the request had not decided (added, or an error before) that still cannot be decided is answered as an
  // error again (ClaimResponse.error); a decided item changed into one that cannot be is refused (400): its decision
  // stands until a change that can be decided.
  const undecided: ItemError[] = [];
  const decided =
    deciding.length > 0
      ? adjudicate({ content: o.content, payer: o.payer, request, today: o.day, assertedOrderDates: await assertedOrderDates(storage, request), signingFacts: await signingFacts(storage, request, o.payer.key), errors: undecided }).filter((d) => deciding.includes(d.sequence))
      : [];
  const newErrors = undecided.filter((e) => deciding.includes(e.sequence));
  const refused = newErrors.find((e) => (plan.get(e.sequence) as { was?: ItemDecision }).was);
  if (refused) throw new DomainError('invalid', refused.reason, [refused.path]);
  const records = await withOrderRecords(storage, decided, { day: o.day, actor: `PAS ${s.id}`, request, policyOf: (id) => o.content.policies.find((p) => p.file.id === id) });
  const kept = new Set<number>();
  decided.forEach((d, n) => {
    const was = (plan.get(d.sequence) as { was?: ItemDecision }).was;
    if (d.fromOrderRecord && was?.review) decided[n] = { ...d, review: was.review };
    // (A reviewer's approval of the item decided again and not approved, the update asking more, stands for what the
    // reviewer approved: that is kept on the order's approving event, coverage/reviewed-approval.ts reviewedItemOf.)
    // An approval this request already holds for the item is not issued again (an item naming no order has no record
    // to answer it): the item keeps its number and period.
    else if (d.reviewAction === 'A1' && !d.fromOrderRecord && was?.reviewAction === 'A1' && was.authorization) {
      decided[n] = { ...d, authorization: was.authorization };
      kept.add(d.sequence);
    }
  });
  const fresh = decided.filter((d) => !d.fromOrderRecord && !kept.has(d.sequence));
  shareAuthorization(fresh);
  // Their new approvals and denials are the orders' decisions with the update, or not at all (below).
  const decisions = itemDecisionChanges(decided, { submissionId: s.id, at });

  const cancelling = [...plan.values()].filter((p): p is Extract<Plan, { kind: 'cancel' }> => p.kind === 'cancel').map((p) => p.item);
  const cancelled = new Map(
    cancelling.map((i) => [i.sequence, { ...i, reviewAction: 'C' as const, needed: [], reasons: [CANCELLED], authorization: undefined, review: undefined, cancelled: { at, was: i.reviewAction } }]),
  );
  const next = [...new Set([...stored.map((i) => i.sequence), ...decided.map((d) => d.sequence)])]
    .sort((a, b) => a - b)
    .map((seq) => cancelled.get(seq) ?? decided.find((d) => d.sequence === seq) ?? stored.find((i) => i.sequence === seq)!);

  // The orders change with the request, or neither: decided or pended for the items decided again, released or
  // withdrawn for cancelled items.
  const orderRecords = await Promise.all(cancelling.map((i) => (i.order ? storage.getOrderRecord(i.order) : Promise.resolve(undefined))));
  const released = cancelling.map((i, n) => (i.order && sharesOrder(i.order, next, i.sequence) ? undefined : releaseOf(i, orderRecords[n], s, at)));
  const releases = released.filter((c): c is GuardedOrderChange => !!c && !c.change.withdrawsApproval);
  // An approval is withdrawn only if no other stored request still answers it: storage decides, with the write. Once
  // per order (two cancelled items of the request naming one order withdraw it once).
  const withdrawals = [
    ...new Map(
      cancelling.flatMap((i, n): [string, ApprovalWithdrawal][] => {
        const change = released[n];
        const number = orderRecords[n]?.authorization?.number;
        return change?.change.withdrawsApproval && number ? [[JSON.stringify(change.key), { number, change }]] : [];
      }),
    ).values(),
  ];
  const pends = decided
    .filter((d, n): d is ItemDecision & { order: OrderKey } => !!d.order && d.reviewAction === 'A4' && records[n]?.state !== 'pended' && !isDecided(records[n]))
    .map((d) => ({
      key: d.order,
      from: PROVISIONAL,
      change: { state: 'pended' as const, at, source: 'pas' as const, actor: `PAS ${s.id}`, reason: d.needed.join('; ') || 'clinical review', policyId: d.policyId, submissionId: s.id },
    }));

  // The request as it now stands is the update's Claim (every item, PAS spec-68), unless it cancels all without items:
  // then the items are the prior version's, and the answer names the cancelling Bundle and Claim.
  const prior = request.items.length > 0 ? undefined : parsePasRequest(s.requestBundle);
  const current = prior ? { ...prior, bundle: { ...prior.bundle, identifier: request.bundle.identifier }, claim: { ...prior.claim, identifier: request.claim.identifier ?? prior.claim.identifier } } : request;
  // An item the request could not decide stays answered as an error while the Claim as it now stands still asks for
  // it and nothing decided it since.
  const asked = new Set(current.items.map((i) => i.sequence));
  const itemErrors = [...newErrors, ...itemErrorsOf(s.detail).filter((e) => asked.has(e.sequence) && !next.some((i) => i.sequence === e.sequence) && !deciding.includes(e.sequence))].sort((a, b) => a.sequence - b.sequence);
  const { stored: outcome } = requestOutcome(current, next, { id: s.id, created: s.createdAt, version: o.version, humanReviewed: next.some((i) => i.review), itemErrors });
  const issued = decided.find((d) => d.reviewAction === 'A1' && d.authorization && !d.fromOrderRecord && !kept.has(d.sequence))?.authorization;
  const claimIdentifiers = (request.claim.identifier ?? []).map(identifierKey).filter((k): k is string => !!k);
  const result = await storage.updatePasSubmission({
    update: {
      submissionId: s.id,
      bundleIdentifier: request.bundleIdentifier,
      ...(o.client ? { clientId: o.client } : {}),
      requestHash: request.requestHash,
      claimIdentifiers,
      kind: request.update!.cancelAll ? 'cancel' : 'update',
      requestBundle: request.bundle as unknown as Record<string, unknown>,
      createdAt: at,
    },
    revision: s.revision,
    next: {
      ...outcome,
      requestBundle: prior ? s.requestBundle : (request.bundle as unknown as Record<string, unknown>),
      claimIdentifiers: [...new Set([...s.claimIdentifiers, ...claimIdentifiers])],
    },
    orders: [...releases, ...decisions, ...pends],
    withdrawals,
    answers: answeredApprovals(decided),
    ...(issued ? { authorization: issued } : {}),
  });
  if (!result.applied) return undefined;
  // One line per update: ids and review actions; never clinical content (design.md §2 "Platform conventions").
  o.log.info({ submissionId: s.id, update: request.update!.cancelAll ? 'cancel' : 'update', reviewAction: outcome.reviewAction, items: next.map((i) => `${i.sequence}:${i.reviewAction}`) }, 'pas claim update');
  return outcome.responseBundle;
}
