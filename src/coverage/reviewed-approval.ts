import { isDeepStrictEqual } from 'node:util';
import type { MedicationRequest, Resource } from '@medplum/fhirtypes';
import type { OrderEvent, OrderKey, OrderRecord, Storage } from '../storage/storage.js';
import { latestEvent } from '../storage/storage.js';
import { prescribedDose } from '../fhir/dose.js';
import { longDate } from '../fhir/long-date.js';
import type { CompiledPolicy } from '../policies/compiled-policy.js';
import type { PolicyEvaluation, Tri } from '../policies/evaluate-policy.js';
import { variableReferences } from '../policies/policy-loader.js';

/**
 * What an approval covers (docs/design.md §8 "What an approval covers"), judged here for every edge: CRD signing
 * (coverage/order-record.ts settleOrderDecisions), DTR (dtr/determination.ts orderRecordOf) and PAS
 * (pas/approval-covers.ts) ask this module, and never each other, whether the approval on an order's record covers
 * the order as it now stands (one decision per order, §8 "One authorization per order"):
 * - an approval the rules gave at signing covers the order judged again on its approval's date only when the order's
 *   own facts are those it was approved with ({@link sameOrderFacts});
 * - an approval given in DTR or PAS rested on answers: the order changed since ({@link orderChanged}) is judged again
 *   with them, and a PAS item asking more of an amount than it was approved for is not covered
 *   ({@link asksMoreThanAnswered}); what it was approved with is {@link approvalFacts};
 * - a reviewer's approval covers what the reviewed PAS request asked ({@link reviewedItemOf}): the order asks no more
 *   when its limits ask no more than the reviewed item's ({@link limitsAskNoMore}, {@link beyondReviewedApproval}).
 * The PAS item an approval was given in is found by one finder ({@link submittedItemOf}).
 */

/**
 * A limit (or any criterion) as judged: its result and the facts it read with their values, and where each value came
 * from (a PAS item's criterion has this shape: src/pas/adjudicate.ts CriterionEvidence).
 */
export interface LimitFinding {
  id: string;
  kind?: string;
  result: Tri;
  evidence?: { fact: string; value?: boolean | number | string; source?: string }[];
}

/**
 * What this module reads of a stored PAS request's item decision (src/pas/adjudicate.ts ItemDecision; the core does not
 * import the edge): the order it is about, its criteria and the amounts its limits ask for.
 */
export interface StoredItem {
  /** Claim item sequence within its request. */
  sequence?: number;
  order?: OrderKey;
  /** The order date the item was judged with, when the order stated one (adjudicate.ts ItemDecision.orderDate). */
  orderDate?: string;
  criteria: LimitFinding[];
  /** The facts of its limits that are amounts the order asks for (CompiledFact.asked); absent: compare every fact. */
  askedAmounts?: string[];
  /** X12 306 review action of the item as it now stands (A1, A3, A4, C). */
  reviewAction?: string;
  /** Its Claim quantity as asked (adjudicate.ts ItemDecision.quantity): null when it stated none; absent when not kept. */
  quantity?: unknown;
}

/**
 * Whether the limits `now` ask no more than the reviewed ones `was`: every limit exceeded now was exceeded in the
 * reviewed item too, and of its facts each amount the order asks for (`asked`: the dose, the starting dose, the
 * cycles requested, the amount dispensed) is at most the reviewed value. What the order does not ask (the patient's
 * weight or BSA, a lab value, the cycles already given, a date) is not compared: a heavier patient or a later course
 * start asks nothing more. Without `asked` (decisions stored before it was kept) every fact is compared, as then.
 */
export function limitsAskNoMore(now: LimitFinding[], was: LimitFinding[], asked: string[] | undefined): boolean {
  for (const limit of now) {
    if (limit.kind !== 'limit' || limit.result !== false) continue;
    const then = was.find((c) => c.id === limit.id);
    // The reviewer did not grant the order over this limit.
    if (then?.result !== false) return false;
    for (const e of limit.evidence ?? []) {
      if (asked && !asked.includes(e.fact)) continue;
      const before = then.evidence?.find((x) => x.fact === e.fact)?.value;
      if (e.value === before) continue;
      if (typeof e.value === 'number' && typeof before === 'number' && e.value <= before) continue;
      return false;
    }
  }
  return true;
}

/** The limits of an evaluation as findings: each limit's result and the values of the facts it reads. */
export function limitFindings(policy: CompiledPolicy, ev: PolicyEvaluation): LimitFinding[] {
  const values = new Map(ev.facts.map((f) => [f.name, f.value]));
  return ev.rules
    .filter((r) => r.kind === 'limit')
    .map((r) => {
      const facts = policy.limits.find((l) => l.id === r.id)?.facts ?? [];
      return { id: r.id, kind: r.kind, result: r.result, evidence: facts.map((fact) => ({ fact, value: values.get(fact) as boolean | number | string | undefined })) };
    });
}

/** The amounts an order asks for among a policy's limit facts (CompiledFact.asked), as PAS keeps them on an item. */
export function askedAmountsOf(policy: CompiledPolicy): string[] {
  return [...new Set(policy.limits.flatMap((l) => l.facts))].filter((f) => policy.factsByName.get(f)?.asked);
}

/**
 * The item for the order of `record` in the stored PAS request `submissionId`, with that request's Bundle: the one
 * finder of the PAS item an approval was given in (a reviewer's, {@link reviewedItemOf}; PAS's own,
 * {@link approvalFacts}). Undefined when the request or the item cannot be read.
 */
export async function submittedItemOf(storage: Storage, submissionId: string, record: OrderKey): Promise<{ item: StoredItem; requestBundle: Record<string, unknown> } | undefined> {
  const submission = await storage.getPasSubmission(submissionId).catch(() => undefined);
  const items = (submission?.detail as { items?: StoredItem[] } | undefined)?.items ?? [];
  const item = items.find((i) => i.order && sameOrder(i.order, record));
  return item && submission ? { item, requestBundle: submission.requestBundle } : undefined;
}

/**
 * What a reviewer approved for the order whose record holds the reviewer's approval, as the reviewed PAS item then
 * stood: undefined when the approval on the record is not a reviewer's, or what it approved cannot be read. Read from
 * the order's approving event (storage ApprovedItem, written with the decision; migration 20 copied it there for
 * approvals given before), not from the reviewed request, whose item a Claim Update may have changed since while the
 * approval stands for what the reviewer saw (review-diff s45 H1). `requestBundle`: the reviewed request's, read only
 * for an approval whose Claim quantity was not kept (decisions stored before quantities were), to read it from there
 * as then; an approving event without what was approved (its item not found when migrated) reads the item as stored.
 */
export async function reviewedItemOf(storage: Storage, record: OrderRecord): Promise<{ item: StoredItem; submissionId: string; requestBundle?: Record<string, unknown> } | undefined> {
  const approvedBy = latestEvent(record, 'approved');
  if (approvedBy?.source !== 'review' || !approvedBy.submissionId) return undefined;
  const submissionId = approvedBy.submissionId;
  const approved = approvedBy.approvedItem;
  const asApproved: StoredItem | undefined = approved && { order: orderOf(record), criteria: approved.criteria, ...(approved.askedAmounts ? { askedAmounts: approved.askedAmounts } : {}), reviewAction: 'A1' };
  if (asApproved && approved?.quantity !== undefined) return { item: { ...asApproved, quantity: approved?.quantity }, submissionId };
  const reviewed = await submittedItemOf(storage, submissionId, record);
  if (!reviewed) return asApproved && { item: asApproved, submissionId };
  return { item: asApproved ? { ...asApproved, sequence: reviewed.item.sequence } : reviewed.item, submissionId, requestBundle: reviewed.requestBundle };
}

/**
 * The facts an approval given in DTR or PAS was given on (`approved`: the record's approving event): the DTR
 * determination's assertion, or what the PAS request's item showed the reviewer (each criterion's evidence).
 * Undefined for another approval, or when they cannot be read.
 */
export async function approvalFacts(storage: Storage, record: OrderRecord, approved: OrderEvent): Promise<Record<string, unknown> | undefined> {
  if (approved.source === 'dtr' && approved.assertionId) return (await storage.getAssertion(approved.assertionId).catch(() => undefined))?.facts;
  if (approved.source !== 'pas' || !approved.submissionId) return undefined;
  return (await reviewedOrderOf(storage, approved.submissionId, record))?.facts;
}

/** The facts a stored PAS item showed its reviewer (each criterion's evidence), by name. */
export function evidenceFacts(item: Pick<StoredItem, 'criteria'>): Record<string, unknown> {
  // Stored JSON: its criteria and evidence are read defensively.
  return Object.fromEntries((item.criteria ?? []).flatMap((c) => c.evidence ?? []).filter((e) => e.value !== undefined).map((e) => [e.fact, e.value]));
}

/**
 * Whether an item asks more of the order than an approval given in DTR or PAS was given for: an amount the order asks
 * for (`askedAmounts`: the cycles, the dose), read from the order, larger than the approval's. Such an approval rested
 * on answers the request may not carry (the MRD level), so the changed order's limits are unknown without them and
 * the item is pended for documentation, not over a limit: the approval covers the order as it then stood, not 10
 * cycles after 4 (docs/design.md §8 "What an approval covers"). The item stays pended for review and the approval
 * stands. Reads the approval's facts only for an item that states such an amount.
 */
export async function asksMoreThanAnswered(storage: Storage, item: Pick<StoredItem, 'criteria' | 'askedAmounts'>, record: OrderRecord, approvedBy: OrderEvent): Promise<boolean> {
  const asked = new Set(item.askedAmounts ?? []);
  const amounts = item.criteria.flatMap((c) => c.evidence ?? []).filter((e) => asked.has(e.fact) && e.source === 'ehr' && typeof e.value === 'number');
  if (amounts.length === 0) return false;
  const facts = await approvalFacts(storage, record, approvedBy);
  if (!facts) return false;
  return amounts.some((e) => {
    const then = facts[e.fact];
    return typeof then === 'number' && (e.value as number) > then;
  });
}

const orderFactsByPolicy = new WeakMap<CompiledPolicy, CompiledPolicy['facts']>();

/** The facts whose expression reads `%order`, found once per loaded policy (the expressions are not read again). */
function orderFactsOf(policy: CompiledPolicy): CompiledPolicy['facts'] {
  let found = orderFactsByPolicy.get(policy);
  if (!found) orderFactsByPolicy.set(policy, (found = policy.facts.filter((f) => variableReferences(f.def.fhirpath).includes('order'))));
  return found;
}

/**
 * The one comparison of an order's own facts with an approval's: each fact whose expression reads `%order` (the dose,
 * the cycles), whether the evaluation has the value the approval's facts have (`same`), and whether the evaluation
 * read it from the order (`stated`: neither unknown nor answered in the form, which cannot tell).
 */
function orderFactsBeside(policy: CompiledPolicy, evaluation: PolicyEvaluation, approval: Record<string, unknown>): { same: boolean; stated: boolean }[] {
  const now = new Map(evaluation.facts.map((f) => [f.name, f]));
  return orderFactsOf(policy).map((f) => {
    const fact = now.get(f.name);
    return {
      same: isDeepStrictEqual(fact?.value, approval[f.name]),
      stated: fact !== undefined && fact.source !== 'unknown' && fact.source !== 'answer' && fact.value !== undefined,
    };
  });
}

/**
 * Whether an order judged again on its approval's date reads, from the order, what the approval's assertion recorded
 * then (`approval`: its facts): every fact whose expression reads `%order` (the dose, the cycles) has the value it had.
 * Only then is it the order approved, signed again unchanged; an order changed since (another dose, more cycles) is
 * judged as it now stands, on today (coverage/order-record.ts reopeningReason, outgrowsApproval). A policy whose facts
 * read nothing of the order cannot tell: never the same.
 */
export function sameOrderFacts(policy: CompiledPolicy, then: PolicyEvaluation, approval: Record<string, unknown>): boolean {
  const facts = orderFactsBeside(policy, then, approval);
  return facts.length > 0 && facts.every((f) => f.same);
}

/**
 * Whether the order as now evaluated differs from the order an approval was given for: a fact of the order (its
 * expression reads `%order`: the cycles, the dose) the order now states with another value than the approval's (or
 * one the approval's facts do not show). A fact the order leaves unknown (a dose written only as text, answered in the
 * form) cannot tell.
 */
export function orderChanged(policy: CompiledPolicy, evaluation: PolicyEvaluation, approval: Record<string, unknown>): boolean {
  return orderFactsBeside(policy, evaluation, approval).some((f) => f.stated && !f.same);
}

/**
 * The number of the reviewer's approval on the order's record that the order as now evaluated asks more of, if it does
 * (docs/design.md §8 "What an approval covers"): only when a limit is exceeded now is the reviewed PAS request's item
 * read, and the order asks more when a limit it exceeds was held in the reviewed item, or one of that limit's amounts
 * the order asks for (the dose, the cycles) is larger than the reviewer saw ({@link limitsAskNoMore}). Signing
 * (coverage/order-record.ts settleOrderDecisions) and DTR (a response's determination, dtr/determination.ts) read a
 * reviewer's approval this way, as PAS does its items: the order is then answered as evaluated, a limit review naming
 * the approval ({@link beyondApproval}), and the approval stands (the reviewer may have granted a limit on purpose).
 * Undefined when the record holds no reviewer's approval, or the order asks no more of it.
 */
export async function beyondReviewedApproval(storage: Storage, policy: CompiledPolicy, evaluation: PolicyEvaluation, record: OrderRecord | null | undefined): Promise<string | undefined> {
  if (record?.state !== 'approved' || !record.authorization) return undefined;
  if (!evaluation.rules.some((r) => r.kind === 'limit' && r.result === false)) return undefined;
  const reviewed = await reviewedItemOf(storage, record);
  if (!reviewed || limitsAskNoMore(limitFindings(policy, evaluation), reviewed.item.criteria, askedAmountsOf(policy))) return undefined;
  return record.authorization.number;
}

/**
 * What a PAS request (or a signed order) asking more than its order's reviewed approval needs, in the reviewer's and
 * the clinician's words.
 */
export function beyondApproval(number: string, asking: 'request' | 'order' = 'request'): string {
  return `Clinical review: the ${asking} asks more than authorization ${number} of this order covers (a higher dose, more cycles or a larger quantity than approved); that approval stands for what it covers`;
}

/**
 * What a denial stands for (docs/design.md §8 "A denial is the decision on the order as it was denied"), judged here
 * beside what an approval covers and with the same comparisons ({@link orderChanged}, the facts a PAS item showed):
 * CRD signing (coverage/order-record.ts) and PAS (pas/decide-items.ts) ask these, and never each other.
 */

/**
 * A quantity as the number it says and its unit: the unit's code when the quantity is coded (UCUM `ug/d`), else its
 * unit text in lower case without spaces or a plural `s` (`days` = `day`). A display-only difference (the unit text
 * beside the same code, the coding's display) is the same quantity written differently, never another order.
 */
function quantityTerms(q: unknown, at: string, into: Map<string, unknown>): void {
  const quantity = q as { value?: unknown; code?: unknown; unit?: unknown } | undefined;
  // Stated or not is always compared: an order that now states a dispense quantity or supply it did not is changed.
  into.set(at, !!quantity && typeof quantity === 'object');
  if (!quantity || typeof quantity !== 'object') return;
  if (typeof quantity.value === 'number') into.set(`${at}.value`, quantity.value);
  if (typeof quantity.code === 'string') into.set(`${at}.code`, quantity.code);
  else if (typeof quantity.unit === 'string') into.set(`${at}.unit`, quantity.unit.toLowerCase().replace(/\s+/g, '').replace(/s$/, ''));
}

/**
 * What an order asks, as the EHR wrote it, value by value: the prescribed dose of each instruction (the entry typed
 * `ordered`, else the first: fhir/dose.ts `prescribedDose`) and its timing (how often, how long, how many times; the
 * start is compared apart, as the order's date), the quantity dispensed, the repeats (cycles) and the supply duration.
 * Two readings of one order that differ in a value here are two orders to judge, whatever facts a policy reads of them
 * ({@link sameOrderAsReviewed}). Values, not elements: the PAS Bundle's copy of the order may write the same order
 * differently from the EHR's at signing (a dose-rate type or display left out, `day` for `days`, a unit coded on one
 * side only), and such a copy is the same order (review diff1 s47 F1: the whole elements compared lifted a reviewer's
 * denial for an unchanged order).
 */
function orderTerms(order: Resource): Map<string, unknown> {
  const mr = order as MedicationRequest;
  const terms = new Map<string, unknown>();
  const instructions = mr.dosageInstruction ?? [];
  if (instructions.length) terms.set('instructions', instructions.length);
  instructions.forEach((d, i) => {
    const dose = prescribedDose(d);
    quantityTerms(dose?.doseQuantity, `dose${i}`, terms);
    quantityTerms(dose?.doseRange?.low, `dose${i}.low`, terms);
    quantityTerms(dose?.doseRange?.high, `dose${i}.high`, terms);
    quantityTerms(dose?.rateQuantity, `rate${i}`, terms);
    const repeat = d.timing?.repeat;
    for (const key of ['count', 'countMax', 'duration', 'durationMax', 'durationUnit', 'frequency', 'frequencyMax', 'period', 'periodMax', 'periodUnit'] as const) {
      if (repeat?.[key] !== undefined) terms.set(`timing${i}.${key}`, repeat[key]);
    }
    quantityTerms(repeat?.boundsDuration, `timing${i}.bounds`, terms);
    const end = repeat?.boundsPeriod?.end;
    if (typeof end === 'string') terms.set(`timing${i}.end`, end.slice(0, 10));
  });
  quantityTerms(mr.dispenseRequest?.quantity, 'quantity', terms);
  // No repeats stated in a dispense request is none; a copy without the dispense request cannot tell.
  if (mr.dispenseRequest) terms.set('repeats', mr.dispenseRequest.numberOfRepeatsAllowed ?? 0);
  quantityTerms(mr.dispenseRequest?.expectedSupplyDuration, 'supply', terms);
  return terms;
}

/**
 * Whether two readings of what an order asks ({@link orderTerms}, {@link quantityTerms}) tell a difference: a value
 * both state differently, or a quantity (dose, dispense quantity, supply) one states and the other does not. Inside a
 * quantity a unit is compared only as both write it (both coded, or both in text); a timing value only one side states
 * cannot tell.
 */
function termsDiffer(a: Map<string, unknown>, b: Map<string, unknown>): boolean {
  for (const [key, value] of a) {
    if (b.has(key) && !isDeepStrictEqual(b.get(key), value)) return true;
  }
  return false;
}

/** What a PAS Claim item's quantity asks, value by value ({@link quantityTerms}). */
function claimQuantityTerms(q: unknown): Map<string, unknown> {
  const terms = new Map<string, unknown>();
  quantityTerms(q, 'quantity', terms);
  return terms;
}

/** The order `orderRef` (`MedicationRequest/<id>`) in a stored PAS request Bundle: by its id, else its RESTful fullUrl. */
function orderInBundle(bundle: Record<string, unknown> | undefined, orderRef: string): Resource | undefined {
  const entries = ((bundle as { entry?: { fullUrl?: string; resource?: Resource }[] } | undefined)?.entry ?? []);
  const found = entries.find((e) => {
    const r = e.resource;
    if (r?.resourceType !== 'MedicationRequest') return false;
    return (r.id !== undefined && `MedicationRequest/${r.id}` === orderRef) || (!!e.fullUrl && e.fullUrl.endsWith(`/${orderRef}`));
  });
  return found?.resource;
}

/**
 * An order as a PAS request's item showed it when the request was decided (denied, or approved by a reviewer or the
 * rules): the item, the facts its criteria read ({@link evidenceFacts}) and the order as the request's Bundle holds it
 * (absent when the Bundle does not hold it: an order made up from the Claim item).
 */
export interface ReviewedOrder {
  item: StoredItem;
  facts: Record<string, unknown>;
  order?: Resource;
}

/** The order of `record` as the stored PAS request `submissionId` showed it. Undefined when it cannot be read. */
export async function reviewedOrderOf(storage: Storage, submissionId: string, record: OrderKey): Promise<ReviewedOrder | undefined> {
  const submitted = await submittedItemOf(storage, submissionId, record);
  if (!submitted) return undefined;
  const order = orderInBundle(submitted.requestBundle, record.orderRef);
  return { item: submitted.item, facts: evidenceFacts(submitted.item), ...(order ? { order } : {}) };
}

/**
 * An order as an edge now has it, to be compared with the order as reviewed ({@link sameOrderAsReviewed}): its
 * evaluation (signing, PAS; the DTR package has none), the start it states (`orderDate`, given only when the order
 * states one: a date it does not state moves with the calendar and is no change of the order), the order as sent (the
 * EHR's MedicationRequest) and, for a PAS Claim item, the item's quantity.
 */
export interface OrderAsNow {
  evaluation?: Pick<PolicyEvaluation, 'facts'>;
  orderDate?: string;
  order?: Resource;
  /** Set for a PAS Claim item: its requested amount was read from the item (adjudicate.ts withItemQuantity). */
  fromClaimItem?: boolean;
  /** The Claim item's quantity as asked (null: none), for a PAS item. */
  claimQuantity?: unknown;
}

/**
 * The one definition of "the same order as reviewed" (docs/design.md §8 "A denial is the decision on the order as it
 * was denied"), for CRD signing, the DTR package and PAS alike. The order is another order when any of these tells:
 * - a fact read from `%order` (the dose, the quantity, the cycles: {@link orderChanged}) the order states with another
 *   value than the reviewed item showed; the amount a policy judges (`requestedAmount`) only when `now` is a PAS item
 *   too (PAS reads it from the Claim item, signing from the order: the two readings are not comparable);
 * - the start it states is not the reviewed item's order date;
 * - what the order asks as the EHR wrote it (its dose, timing, dispense quantity, repeats, supply duration:
 *   `orderTerms`) differs from the order the reviewed request's Bundle held, so a quantity-only change is seen at
 *   signing as PAS sees it, whatever facts the policy reads;
 * - for a PAS item, its Claim quantity differs from the reviewed item's (when both were kept).
 * What cannot be read on either side (a fact the item did not show, an order the Bundle did not hold, an edge without
 * an evaluation) cannot tell and is not compared: the order is the same unless shown to differ.
 */
export function sameOrderAsReviewed(policy: CompiledPolicy, now: OrderAsNow, reviewed: ReviewedOrder): boolean {
  if (now.evaluation) {
    const shown = { ...reviewed.facts };
    if (!now.fromClaimItem && policy.requestedAmount) delete shown[policy.requestedAmount];
    const asNow = Object.fromEntries(now.evaluation.facts.map((f) => [f.name, f.value]));
    if (orderChanged(policy, now.evaluation as PolicyEvaluation, { ...asNow, ...shown })) return false;
  }
  if (now.orderDate && reviewed.item.orderDate && now.orderDate !== reviewed.item.orderDate) return false;
  if (now.order?.resourceType === 'MedicationRequest' && reviewed.order && termsDiffer(orderTerms(now.order), orderTerms(reviewed.order))) return false;
  if (now.fromClaimItem && now.claimQuantity !== undefined && reviewed.item.quantity !== undefined && termsDiffer(claimQuantityTerms(now.claimQuantity), claimQuantityTerms(reviewed.item.quantity))) return false;
  return true;
}

/**
 * Why a denied order is judged afresh, when it is (docs/design.md §8 "A denial is the decision on the order as it was
 * denied"): the order is not the same order as the PAS request that was denied ({@link sameOrderAsReviewed}, the one
 * definition CRD, DTR and PAS share). Undefined for an order that is not denied, or is the order as denied (signed or
 * claimed again unchanged): the denial stands, with its advice (coverage/order-record.ts recordedDecision).
 */
export async function changedSinceDenial(storage: Storage, policy: CompiledPolicy, now: OrderAsNow, record: OrderRecord | null | undefined): Promise<string | undefined> {
  if (record?.state !== 'denied') return undefined;
  const denial = latestEvent(record, 'denied');
  if (!denial?.submissionId) return undefined;
  const denied = await reviewedOrderOf(storage, denial.submissionId, record);
  if (!denied || sameOrderAsReviewed(policy, now, denied)) return undefined;
  // Who denied it: the denial as first given (a denial given again to the order as denied, backToDeniedOrder, is not
  // a second decision).
  const first = record.history.find((h) => h.state === 'denied' && h.submissionId === denial.submissionId) ?? denial;
  const by = first.source === 'review' ? `by a reviewer (${first.actor})` : 'by the rules';
  return `The order changed after its prior authorization request (PAS ${denial.submissionId}) was denied ${by} on ${longDate(first.at.slice(0, 10))} for the order as it then stood ("${denial.reason}"): the order as it now stands is judged afresh`;
}

/**
 * The denial an order reopened for a change is again the decision on, once the order is back to the order as denied
 * (docs/design.md §8 "A denial is the decision on the order as it was denied"; review accept2 s47 F3): signed changed,
 * then signed again as it was denied, it keeps its denial as if never changed. The latest denial with no approval
 * after it, when the order now is the same order as its request's ({@link sameOrderAsReviewed}). Undefined for a
 * record that is denied ({@link changedSinceDenial} judges it), approved, or pended (a request waits on the order as
 * changed), and for an order still changed.
 */
export async function backToDeniedOrder(storage: Storage, policy: CompiledPolicy, now: OrderAsNow, record: OrderRecord | null | undefined): Promise<OrderEvent | undefined> {
  if (!record || (record.state !== 'auth-needed' && record.state !== 'not-covered')) return undefined;
  const since = record.history.slice(record.history.map((h) => h.state).lastIndexOf('approved') + 1);
  const denial = [...since].reverse().find((h) => h.state === 'denied');
  if (!denial?.submissionId) return undefined;
  const denied = await reviewedOrderOf(storage, denial.submissionId, record);
  return denied && sameOrderAsReviewed(policy, now, denied) ? denial : undefined;
}

/**
 * The reviewer's denial an order's record still stands under after it was reopened for a changed order
 * ({@link changedSinceDenial}): a reviewer's denial in its history with no approval after it, whatever the rules
 * decided since. The rules alone never overturn it (docs/design.md §8): an order that now meets the policy is pended
 * for a reviewer (coverage/order-record.ts afterReviewDenial), not approved in real time.
 */
export function standingReviewDenial(record: OrderRecord | null | undefined): OrderEvent | undefined {
  if (!record || record.state === 'denied' || record.state === 'approved') return undefined;
  // Any reviewer's denial since the last approval: a denial by the rules after it (the order changed, then failed
  // the policy) does not release the order from the reviewer's (review-diff s43 F5).
  const since = record.history.slice(record.history.map((h) => h.state).lastIndexOf('approved') + 1);
  return since.reverse().find((h) => h.state === 'denied' && h.source === 'review');
}


const orderOf = (k: OrderKey): OrderKey => ({ payer: k.payer, patientId: k.patientId, orderRef: k.orderRef, drug: k.drug });
const sameOrder = (a: OrderKey, b: OrderKey) => a.payer === b.payer && a.patientId === b.patientId && a.orderRef === b.orderRef && a.drug === b.drug;
