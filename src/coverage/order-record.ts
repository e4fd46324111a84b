import type { AssertionRecord, AuthorizationSource, GuardedOrderChange, OrderEvent, OrderKey, OrderRecord, OrderState, Storage } from '../storage/storage.js';
import { applyChangeTo, latestEvent } from '../storage/storage.js';
import type { OrderDecision } from './decide-orders.js';
import { answeredFactsOf } from './decide-orders.js';
import type { Determination } from './determination.js';
import { determinationOf } from './determination.js';
import { withinCoverage } from './authorization.js';
import { localReference } from '../fhir/references.js';
import { longDate } from '../fhir/long-date.js';
import type { FactValue } from '../policies/evaluate-policy.js';
import { orderStartOf } from '../policies/evaluation-data.js';
import { approvalFacts, backToDeniedOrder, beyondReviewedApproval, changedSinceDenial, orderChanged, sameOrderFacts, standingReviewDenial } from './reviewed-approval.js';

/**
 * The order's one authorization record (design.md §8 "One authorization per order"): CRD, DTR, PAS and the reviewer
 * read it before they answer and write what they decided. The rules of who may change what live here; storage
 * applies each change atomically under the order's row lock.
 */

/** States an evaluation may overwrite: nothing was decided yet. */
export const PROVISIONAL: OrderState[] = ['auth-needed', 'not-covered'];
/** States a decision (an approval at signing or in DTR, a PAS answer, a reviewer) may overwrite. */
export const UNDECIDED: OrderState[] = ['auth-needed', 'not-covered', 'pended'];

/** True when the order has its decision: approved or denied. */
export function isDecided(record: OrderRecord | undefined): record is OrderRecord & { state: 'approved' | 'denied' } {
  return record?.state === 'approved' || record?.state === 'denied';
}

/** The record key of an order; undefined when the order cannot be named (no id, no patient). */
export function orderKeyOf(k: { payer: string; patientId?: string; orderRef?: string; drug: string }): OrderKey | undefined {
  const orderRef = localReference(k.orderRef);
  if (!k.patientId || !orderRef) return undefined;
  return { payer: k.payer, patientId: k.patientId, orderRef, drug: k.drug };
}

/** Who changes the record, and on what grounds. */
export interface Actor {
  source: AuthorizationSource;
  actor: string;
  at?: string;
  assertionId?: string;
  submissionId?: string;
}

/**
 * Whether an order has outgrown its approval: the rules approved it (at signing, in DTR or in PAS, so every limit
 * held then) and a fresh evaluation of the same order now finds a limit exceeded. The order changed after its
 * approval (a higher dose, more cycles) or the patient did (a lower weight lowers the labelled dose), so the approval
 * does not cover the order as it now stands (design.md §5 row 3; docs/design.md §8 "What an approval covers"). A
 * reviewer's approval may have granted an order over a limit on the clinician's justification, and a later limit
 * finding cannot tell whether the order changed since: it is never reopened this way.
 */
export function outgrowsApproval(record: OrderRecord | undefined, outcome: string): record is OrderRecord & { state: 'approved' } {
  if (record?.state !== 'approved' || outcome !== 'limit-exceeded') return false;
  const approvedBy = latestEvent(record, 'approved');
  return approvedBy !== undefined && approvedBy.source !== 'review';
}

/** How the reason of a reopening for an unreadable dose begins ({@link whyApprovalLetGo} reads it back). */
const UNREADABLE_DOSE = "The order's dose cannot be read";

/**
 * Why the approval on an order's record does not answer for the order as now evaluated, when it does not; the record
 * is then reopened ({@link reopenApproval}). Two grounds:
 * - the dose cannot be read (`unreadableDose`: missing, zero, negative, no or an unknown unit) and the approval was the
 *   rules' at signing, so given for a dose read from the order: an order whose dose cannot be read cannot be shown to
 *   be that order (design.md §4 "Errors": an unreadable dose is never a reason for `satisfied`). An approval given in
 *   DTR, in PAS or by a reviewer may rest on a dose answered or read from the order's text: it stands;
 * - the order outgrew an approval the rules gave ({@link outgrowsApproval}); `limitReason` names the limit.
 */
export function reopeningReason(record: OrderRecord | undefined, found: { outcome: string; unreadableDose?: string }, limitReason: string): string | undefined {
  if (record?.state !== 'approved') return undefined;
  const number = record.authorization?.number;
  // Only an approval the rules gave at signing was given for a dose read from the order itself (signing has no
  // answers): one given in DTR or PAS may rest on a dose answered in the form, and a reviewer's on a dose read from the
  // order's text, so an order whose dose the chart still cannot read is the order they approved.
  if (found.unreadableDose && approvalSource(record) === 'crd') {
    return `${UNREADABLE_DOSE} (${found.unreadableDose}: missing, zero, negative or in a unit not read), so the approval${number ? ` ${number}` : ''}, given for the dose then ordered, does not cover it`;
  }
  if (outgrowsApproval(record, found.outcome)) return `The order no longer fits the approval${number ? ` ${number}` : ''} issued within the policy's limits: ${limitReason}`;
  return undefined;
}

/** Who gave the approval the record stands on (its latest approved event). */
function approvalSource(record: OrderRecord): string | undefined {
  return latestEvent(record, 'approved')?.source;
}

/**
 * An approved order that states no date of its own, signed again unchanged, is judged on the date its approval judged it
 * (the approval's start: the order date then stored), not on the day of this call (docs/design.md §8 "What an approval
 * covers"). Judged on today, an unchanged per-m² order re-signed weeks later finds the 30-day height and weight window
 * empty and its dose unreadable, and would let go of an approval nobody's change undid. Only the decisions that carry
 * {@link OrderDecision.judgedOn} (no date of their own, a dose not read today) are judged again, and only when the
 * approval is still in force, was the rules' at signing, and the order is the one approved ({@link sameOrderFacts});
 * the decision then stands on that date's evaluation and order date, so its assertion records the date it was judged
 * on. Otherwise today's evaluation stands.
 */
async function judgeOnApprovalDate(storage: Storage, d: OrderDecision, record: OrderRecord | null, today: string): Promise<void> {
  let judge = d.judgedOn;
  // Let go of the patient record it holds before the answer waits for storage.
  d.judgedOn = undefined;
  if (!judge || !d.policy || record?.state !== 'approved' || !record.authorization) return;
  const { start, end } = record.authorization;
  // An approval no longer in force answers for nothing today: the order is judged as any order signed today is.
  if (start === d.orderDate || end < today) return;
  // Only the rules' approval at signing is let go of for an unreadable dose (reopeningReason), and only it was given
  // for the dose signing read from the order, which its assertion recorded.
  const approved = latestEvent(record, 'approved');
  if (approved?.source !== 'crd' || !approved.assertionId) return;
  const then = judge(start);
  judge = undefined;
  const assertion = await storage.getAssertion(approved.assertionId).catch(() => undefined);
  if (!assertion || !sameOrderFacts(d.policy, then.evaluation, assertion.facts)) return;
  d.evaluation = then.evaluation;
  d.answeredFacts = then.answeredFacts;
  d.orderDate = start;
}

/**
 * An approval given in DTR or PAS rested on answers (the MRD level, the disease status) that signing does not have:
 * the order signed again, changed since (more cycles, a higher dose), is evaluated without them, finds its pathway
 * unknown, and a limit that applies only to that pathway is not found exceeded, so {@link outgrowsApproval} cannot
 * tell that the approval no longer covers it (docs/design.md §8 "What an approval covers"). Judged here again with
 * that approval's answers (its facts filling what the order's evaluation leaves unknown, as answers fill what the
 * record leaves unknown, §7 "Answers and the record"), only when the order's evaluation is neither satisfied nor a
 * limit exceeded, the approval was DTR's or PAS's and still the record's, and the order's facts differ from those it
 * was approved with ({@link orderChanged}): an order signed again unchanged keeps its approval without a second
 * evaluation, and any other signing reads nothing more.
 * - A limit then exceeded: the order's evaluation is that one, so the record is reopened as outgrown and the order is
 *   answered as a limit review (§5 row 3), with the proposal at the limit.
 * - The order then no longer meeting the policy: returns the reason the approval does not cover it; the record is
 *   reopened and the order answered as now evaluated (documentation for the order as it now stands), never denied
 *   on answers given for the order as it then stood.
 */
async function judgeWithApprovalAnswers(storage: Storage, d: OrderDecision, record: OrderRecord | null): Promise<string | undefined> {
  const judge = d.withAnswers;
  // Let go of the order's data before the answer waits for storage.
  d.withAnswers = undefined;
  const evaluation = d.evaluation;
  if (!judge || !d.policy || !evaluation || record?.state !== 'approved') return undefined;
  if (evaluation.outcome !== 'documentation-needed' && evaluation.outcome !== 'not-covered') return undefined;
  const approved = latestEvent(record, 'approved');
  if (!approved || (approved.source !== 'dtr' && approved.source !== 'pas')) return undefined;
  const facts = await approvalFacts(storage, record, approved);
  if (!facts || !orderChanged(d.policy, evaluation, facts)) return undefined;
  const answers: Record<string, FactValue> = {};
  for (const f of evaluation.facts) {
    const then = facts[f.name];
    if (f.source === 'answer' && isFactValue(f.value)) answers[f.name] = f.value;
    else if (f.source === 'unknown' && d.policy.factsByName.get(f.name)?.def.askable && isFactValue(then)) answers[f.name] = then;
  }
  if (Object.keys(answers).length === 0) return undefined;
  const answered = judge(answers);
  if (answered.outcome === 'limit-exceeded') {
    d.evaluation = answered;
    // The approval's answers decided these facts: the signing assertion names them, so they never stand for the record
    // (docs/design.md §7 "Answers and the record").
    d.answeredFacts = [...new Set([...(d.answeredFacts ?? []), ...answeredFactsOf(evaluation, answered)])];
    return undefined;
  }
  if (answered.outcome !== 'not-covered') return undefined;
  const number = record.authorization?.number;
  const why = determinationOf(d.policy, answered).reasons[0]?.text;
  return `The order changed after the approval${number ? ` ${number}` : ''} was given on answers for the order as it then stood; with those answers the order as it now stands does not meet the policy${why ? `: ${why}` : ''}`;
}

/**
 * The change that reopens a denied order judged afresh ({@link changedSinceDenial}): `denied` → `auth-needed`, durably,
 * with that reason. The denial stays in the order's history (who denied it, when, why), never erased.
 */
export function reopenDenialChange(record: OrderRecord, reason: string, who: Actor & { policyId?: string }): GuardedOrderChange {
  const change = reopenChange(record, reason, who);
  const { withdrawsApproval: _none, ...rest } = change.change;
  return { ...change, from: ['denied'], change: rest };
}

/**
 * The change that gives an order back to its denial when it is again the order as denied ({@link backToDeniedOrder}):
 * `auth-needed`/`not-covered` → `denied`, durably, with the denial's reason (the answer every edge gives is then the
 * denial and its advice) and its request; who made the change is the edge that saw the order come back.
 */
export function deniedAgainChange(record: OrderRecord, denial: OrderEvent, who: Actor & { policyId?: string }): GuardedOrderChange {
  return {
    key: { payer: record.payer, patientId: record.patientId, orderRef: record.orderRef, drug: record.drug },
    from: ['auth-needed', 'not-covered'],
    change: {
      state: 'denied',
      at: who.at ?? new Date().toISOString(),
      source: who.source,
      actor: who.actor,
      reason: denial.reason,
      ...(who.policyId ? { policyId: who.policyId } : {}),
      ...(who.assertionId ? { assertionId: who.assertionId } : {}),
      ...(denial.submissionId ? { submissionId: denial.submissionId } : {}),
    },
  };
}

/**
 * What a reviewer reads of an order pended because its earlier request was denied by a reviewer (PAS `needed`: no
 * clinical values, the request and date only; the reviewer opens that request for the reason).
 */
export function afterReviewDenialNeeded(denial: OrderEvent): string {
  return `Clinical review: a reviewer denied this order's earlier request${denial.submissionId ? ` (PAS ${denial.submissionId})` : ''} on ${longDate(denial.at.slice(0, 10))}; the order has changed since and now meets the policy's criteria, but the rules do not overturn a reviewer's denial`;
}

/**
 * The determination of an order whose record stands under a reviewer's denial ({@link standingReviewDenial}): one the
 * rules would approve is pended for clinical review (auth-needed, A4, no number), its reason naming the earlier
 * denial; any other determination (not covered, documentation or a limit) is answered as it is.
 */
export function afterReviewDenial(d: Determination, denial: OrderEvent | undefined): Determination {
  if (!denial || d.outcome !== 'satisfied' || (d.reviewAction === 'A4' && d.clinicalReview)) return d;
  // What it meets, without the advice for an approval not issued (a PAS request is the way forward here).
  const met = d.reasons.map((r) => ({ ...r, text: r.text.replace(/ No authorization number was issued.*$/, '') }));
  return {
    ...d,
    covered: 'covered',
    paNeeded: 'auth-needed',
    reasons: [
      {
        text: `A reviewer (${denial.actor}) denied this order's earlier prior authorization request on ${longDate(denial.at.slice(0, 10))}: "${denial.reason}". The order has changed since and, as it now stands, meets the policy, but the rules do not overturn a reviewer's denial: request prior authorization for the order as it now stands, and a reviewer decides it.`,
        reviewAction: 'A4',
      },
      ...met,
    ],
    needed: [afterReviewDenialNeeded(denial)],
    reviewAction: 'A4',
    summary: 'prior authorization needed: clinical review after an earlier denial',
    authorization: undefined,
    clinicalReview: true,
  };
}

function isFactValue(v: unknown): v is FactValue {
  return typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string';
}

/**
 * Reopens an approval that does not answer for the order as it now stands ({@link reopeningReason}): the order goes
 * back to `auth-needed` with that reason, durably, before the caller answers, and its record lets go of the number
 * (which stays in the order's history and among the issued authorizations). The order as it now stands is decided
 * afresh, by the rules or on clinical review, and an approval of it is a new one with its own number (docs/design.md
 * §8 "What an approval covers"). Returns the record as it now stands.
 */
export async function reopenApproval(storage: Storage, record: OrderRecord, reason: string, who: Actor & { policyId?: string }): Promise<OrderRecord> {
  const { record: reopened } = await storage.applyOrderChange(reopenChange(record, reason, who));
  return reopened;
}

/** The change that reopens an approval ({@link reopenApproval}). */
function reopenChange(record: OrderRecord, reason: string, who: Actor & { policyId?: string }): GuardedOrderChange {
  return {
    key: { payer: record.payer, patientId: record.patientId, orderRef: record.orderRef, drug: record.drug },
    from: ['approved'],
    change: {
      state: 'auth-needed',
      at: who.at ?? new Date().toISOString(),
      source: who.source,
      actor: who.actor,
      reason,
      ...(who.policyId ? { policyId: who.policyId } : {}),
      ...(who.assertionId ? { assertionId: who.assertionId } : {}),
      ...(who.submissionId ? { submissionId: who.submissionId } : {}),
      withdrawsApproval: true,
    },
  };
}

/**
 * The reason on the order's record when the PAS request that carried its approval cancels it (a Claim Update, design.md
 * §8 "Claim updates"): the number stays in the history, and {@link whyApprovalLetGo} reads this event back as a
 * cancellation.
 */
export function cancelledApprovalReason(number: string, submissionId: string): string {
  return `Authorization ${number} was cancelled by its submitter (PAS request ${submissionId})`;
}

/**
 * Why an order that had an approval has none now, in the words the clinician reads next to the new answer: its
 * submitter cancelled it, or the order as it now stands is not the order approved (outgrown, {@link outgrowsApproval}).
 * Read from the event that let go of the approval, the first after the last approval.
 */
export function whyApprovalLetGo(history: OrderEvent[]): string | undefined {
  const at = history.map((h) => h.state).lastIndexOf('approved');
  if (at < 0) return undefined;
  const number = history[at].authorizationNumber;
  const name = number ? `Authorization ${number}` : 'The earlier authorization';
  const release = history[at + 1];
  if (number && release?.reason.startsWith(`Authorization ${number} was cancelled by its submitter`))
    return `${name} for this order was cancelled by its submitter on ${longDate(release.at.slice(0, 10))}, so it no longer covers the order.`;
  if (release?.reason.startsWith(UNREADABLE_DOSE))
    return `${name} was for this order at the dose then ordered; the dose as now sent cannot be read (missing, zero, negative or in a unit not read), so it does not cover the order.`;
  return `${name} was for this order as it stood when approved; it does not cover the order as it is now.`;
}

/** The state an evaluation's determination puts an undecided order in. */
export function stateOf(d: Determination): OrderState {
  if (d.outcome === 'satisfied' && d.authorization) return 'approved';
  if (d.outcome === 'not-covered') return 'not-covered';
  return 'auth-needed';
}

/**
 * What a clinician can do about a denial (docs/design.md §8 "A denial is the decision on the order as it was denied"):
 * signed or claimed again unchanged the order gets the same denial, so the answer says how to go on.
 */
export const DENIAL_ADVICE =
  'The denial is the decision on this order as it stood when denied: to request again, change the order (its dose, quantity, cycles or start) or write a new one, and request prior authorization again.';

/**
 * The decision an order's record holds, in the words every edge uses; undefined while it has none (or it expired). An
 * approval is answered within the Coverage the edge answers under (`coverageEnd`, its last day: authorization.ts
 * `withinCoverage`, design.md §4 "Payer"); the record keeps the period as issued.
 */
export function recordedDecision(
  record: OrderRecord | undefined,
  today: string,
  coverageEnd?: string,
): { reviewAction: 'A1'; reason: string; authorization: NonNullable<OrderRecord['authorization']> } | { reviewAction: 'A3'; reason: string } | undefined {
  if (record?.state === 'approved' && record.authorization && record.authorization.end >= today) {
    const approvedBy = latestEvent(record, 'approved');
    return {
      reviewAction: 'A1',
      reason: `Approved${approvedBy?.source === 'review' ? ' on clinical review' : ''}: ${record.reason}`,
      authorization: withinCoverage(record.authorization, coverageEnd),
    };
  }
  if (record?.state === 'denied') return { reviewAction: 'A3', reason: `Prior authorization denied: ${record.reason.replace(/\.?$/, '.')} ${DENIAL_ADVICE}` };
  return undefined;
}

/**
 * The determination as the order's record has it: the order's decision wins over a fresh evaluation. An approval
 * (by any path, the reviewer's included) answers `satisfied` with its number and period while it lasts, the period
 * ending no later than `coverageEnd` ({@link recordedDecision}); a denial answers not covered with its reason; a pended
 * request adds that it waits for review.
 */
export function withOrderRecord(d: Determination, record: OrderRecord | undefined, today: string, coverageEnd?: string): Determination {
  if (!record) return d;
  const decided = recordedDecision(record, today, coverageEnd);
  if (decided?.reviewAction === 'A1') {
    // The record's approval, given before this answer (in DTR, PAS, by a reviewer, at an earlier signing), is coded
    // X12 306 A1 on its reason, as the recorded denial is A3: a client tells it by the code (design.md §8).
    const reasons = d.outcome === 'satisfied' ? d.reasons : [{ text: decided.reason, reviewAction: 'A1' as const }];
    return {
      ...d,
      outcome: 'satisfied',
      covered: 'covered',
      paNeeded: 'satisfied',
      questionnaire: undefined,
      reasons,
      needed: [],
      reviewAction: 'A1',
      summary: `prior authorization satisfied: ${decided.authorization.number}`,
      authorization: decided.authorization,
    };
  }
  if (decided?.reviewAction === 'A3') {
    return {
      ...d,
      outcome: 'not-covered',
      covered: 'not-covered',
      paNeeded: undefined,
      questionnaire: undefined,
      reasons: [{ text: decided.reason, reviewAction: 'A3' }],
      needed: [],
      reviewAction: 'A3',
      summary: 'prior authorization denied',
      authorization: undefined,
    };
  }
  // Reopened after a reviewer's denial for a changed order: the rules alone do not approve it (design.md §8).
  d = afterReviewDenial(d, standingReviewDenial(record));
  const letGo = record.state !== 'approved' && d.outcome !== 'satisfied' ? whyApprovalLetGo(record.history) : undefined;
  // Outgrown or cancelled: the clinician must see why the order's earlier number no longer answers.
  if (letGo) d = { ...d, reasons: [...d.reasons, { text: letGo }] };
  const pended = pendedReview(record);
  if (pended && d.reviewAction === 'A4') {
    return { ...d, reasons: [...d.reasons, { text: pended.reason }], summary: 'prior authorization pended for review' };
  }
  return d;
}

/**
 * The review an order's record waits for while a PAS request pends it (X12 306 A4; a request in the reviewer's queue),
 * in the words signing and DTR use; undefined while the order is not pended. "For review": the request may wait for
 * documentation or for a clinical reviewer (A4 is both). The reviewer reads the request as filed: documentation that
 * now meets the policy settles it at once (DTR, a signing), anything else reaches the reviewer only as an update of
 * that request, which the clinician must be told (review ui s44 M6; docs/design.md §8 "One authorization per order").
 * With `naming`, the pended sentence names the request by its reference (the PAS answer's id, REF-NT) for a reader who
 * has not the PAS answer at hand (a DTR form opened from the EHR).
 */
export function pendedReview(
  record: OrderRecord | undefined,
  opts: { naming?: boolean } = {},
): { reviewAction: 'A4'; reason: string; pended: string; advice: string; waitsFor?: string } | undefined {
  if (record?.state !== 'pended') return undefined;
  const event = latestEvent(record, 'pended');
  const since = event?.at.slice(0, 10);
  const submissionId = record.submissionId ?? event?.submissionId;
  const named = opts.naming && submissionId ? ` (reference ${submissionId})` : '';
  const pended = `A prior authorization request for this order${named} is pended for review${since ? ` since ${longDate(since)}` : ''}.`;
  const advice = 'Documentation that meets the policy settles it at once; other answers and documents reach the reviewer only when sent as an update of that request.';
  return { reviewAction: 'A4', reason: `${pended} ${advice}`, pended, advice, ...(event?.reason ? { waitsFor: event.reason } : {}) };
}

/**
 * Writes what an evaluation determined for an order and returns the record as it now stands. A new approval is
 * applied unless the order already has a decision (then the decision stands and the proposed number is dropped);
 * a provisional state is written only when it changes. With `behind` (CRD), a provisional change is queued behind
 * the answer (Storage.queueOrderChange) and the record as read is returned; an approval is still durable first.
 * `assertion` (made only when needed) is written with an awaited change (Storage.applyOrderChange), in its
 * transaction; `assertionWritten` says whether it was, so the caller writes it otherwise.
 */
export async function recordEvaluation(
  storage: Storage,
  key: OrderKey,
  d: Determination,
  who: Actor & { policyId?: string },
  current?: OrderRecord | null,
  behind = false,
  assertion?: () => AssertionRecord,
  mayReopen = true,
): Promise<{ record: OrderRecord | undefined; assertionWritten: boolean }> {
  let record = current === undefined ? await storage.getOrderRecord(key) : (current ?? undefined);
  const reopen = reopeningReason(record, d, d.reasons[0]?.text ?? d.summary);
  // A call that commits nothing (order-select, a "what if") is answered for the order as it now stands, and the
  // approval on the record stays as it is: only signing, DTR and PAS let an approval go (docs/design.md §8).
  if (reopen && !mayReopen) return { record: undefined, assertionWritten: false };
  if (reopen) record = await reopenApproval(storage, record!, reopen, who);
  const change = evaluationChange(key, record, d, who);
  if (!change) return { record, assertionWritten: false };
  if (behind && change.change.state !== 'approved') {
    // Provisional: nothing is decided, so the answer does not depend on it (withOrderRecord reads only decisions
    // and `pended`, which this change never overwrites).
    await storage.queueOrderChange(change);
    return { record, assertionWritten: false };
  }
  const { record: stored } = await storage.applyOrderChange(change, assertion?.());
  return { record: stored, assertionWritten: assertion !== undefined };
}

/**
 * The change an evaluation makes to an order's record as it stands (after any reopening): none when the order has
 * its decision, or is already in the state the evaluation gives it (or pended); else its new state, an approval
 * over any undecided state, a provisional state over a provisional one only.
 */
function evaluationChange(key: OrderKey, record: OrderRecord | undefined, d: Determination, who: Actor & { policyId?: string }): GuardedOrderChange | undefined {
  if (isDecided(record)) return undefined;
  // Under a reviewer's denial an order the rules would approve is pended for a reviewer, never approved here.
  d = afterReviewDenial(d, standingReviewDenial(record));
  const state = stateOf(d);
  // A response pended for clinical review says why on the order's record even when its state stays `auth-needed`
  // (docs/design.md §7 "Answers and the record"): the reviewer and the next edge read the reason.
  if (record && state !== 'approved' && (record.state === 'pended' || (record.state === state && !d.clinicalReview))) return undefined;
  return {
    key,
    from: state === 'approved' ? UNDECIDED : PROVISIONAL,
    change: {
      state,
      at: who.at ?? new Date().toISOString(),
      source: who.source,
      actor: who.actor,
      reason: d.reasons[0]?.text ?? d.summary,
      ...(who.policyId ? { policyId: who.policyId } : {}),
      ...(state === 'approved' ? { authorization: d.authorization } : {}),
      ...(who.assertionId ? { assertionId: who.assertionId } : {}),
      ...(who.submissionId ? { submissionId: who.submissionId } : {}),
    },
  };
}

/**
 * What an evaluation would write to an order's record, without writing it: the changes recordEvaluation makes (a
 * reopening of an approval that does not answer for the order, then the evaluation's own change) and the record as it stands once they apply.
 * For a caller that stores the changes in the same transaction as the write they belong to (a DTR response: nothing
 * is recorded for a response whose write is refused); a change refused there means the record moved meanwhile, and
 * the caller reads it again and plans afresh.
 */
export function planEvaluation(
  key: OrderKey,
  record: OrderRecord | undefined,
  d: Determination,
  who: Actor & { policyId?: string },
): { changes: GuardedOrderChange[]; record: OrderRecord | undefined } {
  const changes: GuardedOrderChange[] = [];
  let now = record;
  const reason = reopeningReason(now, d, d.reasons[0]?.text ?? d.summary);
  if (reason) {
    const reopen = reopenChange(now!, reason, who);
    changes.push(reopen);
    now = applied(now, reopen);
  }
  const change = evaluationChange(key, now, d, who);
  if (change) {
    changes.push(change);
    now = applied(now, change);
  }
  return { changes, record: now };
}

/** An order's record as it stands once `c` applies (as storage applies it: an approval already held is kept). */
function applied(record: OrderRecord | undefined, { key, change: c }: GuardedOrderChange): OrderRecord {
  const next: OrderRecord = record
    ? structuredClone(record)
    : { ...key, id: '', state: c.state, reason: c.reason, createdAt: c.at, updatedAt: c.at, history: [] };
  applyChangeTo(next, c);
  return next;
}

/**
 * CRD: reads the records of the hook's governed orders, lets each order's decision stand over the evaluation, and
 * records what signing determined (an approval at signing is the order's approval, issued once). With `assertionOf`,
 * an order's approval at signing is written with the decision's assertion, both or neither (one write-behind batch;
 * the assertion names the approval stored): the decisions whose assertions were so written are returned, the caller
 * writes the others'.
 */
export async function settleOrderDecisions(opts: {
  storage: Storage;
  payer: string;
  patientId: string;
  decisions: OrderDecision[];
  actor: string;
  /** The day of the call (YYYY-MM-DD): an approval that ended before it is not one an order is judged again under. */
  today: string;
  assertionOf?: (d: OrderDecision) => AssertionRecord;
  /**
   * False for a call that commits nothing: order-select (the clinician is still editing) and a "what if" (no
   * unsolicited determination, CRD [found-35]). An approval the order as now sent outgrows is then not let go of; the
   * call is answered for the order as sent, and the record keeps its approval for the order as approved.
   */
  mayReopen?: boolean;
}): Promise<Set<OrderDecision>> {
  const written = new Set<OrderDecision>();
  const governed = opts.decisions.filter((d) => d.policy && d.order.id);
  if (governed.length === 0) return written;
  const refs = [...new Set(governed.map((d) => `${d.order.resourceType}/${d.order.id}`))];
  const records = await opts.storage.findOrderRecords({ payer: opts.payer, patientId: opts.patientId, orderRefs: refs });
  const assertionOf = opts.assertionOf;
  await Promise.all(
    governed.map(async (d) => {
      const key = orderKeyOf({ payer: opts.payer, patientId: opts.patientId, orderRef: `${d.order.resourceType}/${d.order.id}`, drug: d.policy!.file.drug });
      if (!key) {
        // No record to judge against: let go of what the judgements would read (the order's data).
        d.judgedOn = undefined;
        d.withAnswers = undefined;
        return;
      }
      const current = records.find((r) => r.orderRef === key.orderRef && r.drug === key.drug) ?? null;
      await judgeOnApprovalDate(opts.storage, d, current, opts.today);
      const noLongerMeets = await judgeWithApprovalAnswers(opts.storage, d, current);
      // A call that commits nothing answers the order as sent and lets go of no approval (as recordEvaluation).
      if (noLongerMeets && opts.mayReopen === false) return;
      let reopened = noLongerMeets ? await reopenApproval(opts.storage, current!, noLongerMeets, { source: 'crd', actor: opts.actor, assertionId: d.assertionId, policyId: d.policy!.file.id }) : current;
      // A denied order changed since its denial is judged afresh (docs/design.md §8): its record is reopened, the
      // denial kept in its history. A call that commits nothing answers the order as sent and writes nothing.
      const ownStart = d.order.resourceType === 'MedicationRequest' && orderStartOf(d.order) !== undefined;
      const denialChange = await changedSinceDenial(opts.storage, d.policy!, { evaluation: d.evaluation!, order: d.order, ...(ownStart ? { orderDate: d.orderDate } : {}) }, current);
      // Reopened for a change, then signed again as it was denied: the denial is again its decision (design.md §8).
      const again = denialChange ? undefined : await backToDeniedOrder(opts.storage, d.policy!, { evaluation: d.evaluation!, order: d.order, ...(ownStart ? { orderDate: d.orderDate } : {}) }, reopened);
      const who = { source: 'crd' as const, actor: opts.actor, assertionId: d.assertionId, policyId: d.policy!.file.id };
      if (denialChange || again) {
        const change = denialChange ? reopenDenialChange(current!, denialChange, who) : deniedAgainChange(reopened!, again!, who);
        if (opts.mayReopen === false) {
          d.record = applied(denialChange ? current! : reopened!, change);
          d.authorization = undefined;
          return;
        }
        reopened = (await opts.storage.applyOrderChange(change)).record;
      }
      const determination = determinationOf(d.policy!, d.evaluation!, d.authorization);
      const { record, assertionWritten } = await recordEvaluation(
        opts.storage,
        key,
        determination,
        { source: 'crd', actor: opts.actor, assertionId: d.assertionId, policyId: d.policy!.file.id },
        reopened,
        true,
        assertionOf && (() => assertionOf(d)),
        opts.mayReopen !== false,
      );
      if (assertionWritten) written.add(d);
      if (record) {
        d.record = record;
        const beyond = await beyondReviewedApproval(opts.storage, d.policy!, d.evaluation!, record);
        if (beyond) {
          // The order as signed asks more than the reviewer approved: a limit review of its own, the approval intact.
          d.beyondApproval = beyond;
          d.authorization = undefined;
        } else if (record.state === 'approved') d.authorization = record.authorization && withinCoverage(record.authorization, d.coverageEnd);
        else if (d.authorization && record.authorization?.number !== d.authorization.number) d.authorization = undefined;
      }
    }),
  );
  return written;
}
