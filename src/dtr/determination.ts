import { randomUUID } from 'node:crypto';
import type { Extension } from '@medplum/fhirtypes';
import { newApproval } from '../coverage/authorization.js';
import { serviceUnavailable } from '../errors.js';
import { assertionFor, buildCoverageInformation, COVERAGE_INFO_URL } from '../coverage/coverage-information.js';
import { determinationOf } from '../coverage/determination.js';
import { orderKeyOf, planEvaluation, withOrderRecord } from '../coverage/order-record.js';
import { beyondApproval, beyondReviewedApproval } from '../coverage/reviewed-approval.js';
import type { CompiledPolicy } from '../policies/compiled-policy.js';
import { longDate } from '../fhir/long-date.js';
import type { PolicyEvaluation } from '../policies/evaluate-policy.js';
import type { AssertionRecord, GuardedOrderChange, OrderKey, OrderRecord, Storage } from '../storage/storage.js';

/** A DTR determination: the CRD coverage-information extension for a response, and the assertion behind it. */
export interface Determination {
  extension: Extension;
  assertion: AssertionRecord;
}

/** What a DTR determination is made of: the evaluated answers and the response's context. */
export interface DetermineOptions {
  policy: CompiledPolicy;
  evaluation: PolicyEvaluation;
  today: string;
  /**
   * The date the order was judged on (its planned start, or the start the payer pre-filled in the form's order-date
   * item): an approval's period starts there, as CRD's does for the same order (design.md §8). Today when unknown.
   */
  orderDate?: string;
  coverageRef?: string;
  /**
   * The last day of the Coverage the order is decided under, when known (the CRD assertion's `coverageEnd`: a response
   * names its Coverage only by reference): an approval the determination issues or answers ends no later (design.md
   * §4 "Payer"). Unknown, none is applied here; CRD and PAS answer the approval within their Coverage.
   */
  coverageEnd?: string;
  /** `Coverage/<id>` of the Coverage `coverageEnd` belongs to (the CRD assertion's `coverageRef`), when known. */
  coverageEndRef?: string;
  /**
   * The start the order stated when CRD judged it on `orderDate` (`AssertionRecord.orderStart`), kept with this
   * determination's assertion, so PAS reading it ends the recency windows there (design.md §6 "Order date").
   */
  orderStart?: string;
  orderRef?: string;
  patientId?: string;
  source: string;
  version?: '2.0' | '2.2';
}

/**
 * Shapes an evaluation of answers into the CRD `ext-coverage-information` the completed QuestionnaireResponse carries
 * (DTR §Adaptive "MAY/SHOULD carry coverage-information"; design.md §7), with the same codes CRD would send for the
 * same facts (the coverage core's determination, shaped by `assertionFor` / `buildCoverageInformation`). A satisfied
 * determination gets an authorization number and period, like real-time approval at signing, unless the order's
 * record already holds its decision: then that decision is the determination. The assertion is stored so PAS and disputes
 * can find it by its `coverage-assertion-id`, in one transaction with the order's changes (Storage.saveDetermination):
 * an approval is never recorded without the assertion that names it, nor the assertion without the approval. An
 * order's record that moved meanwhile (a decision on another path) is read again and the determination made on it.
 */
export async function determine(opts: DetermineOptions & { storage: Storage }): Promise<Determination> {
  for (let attempt = 1; ; attempt++) {
    const plan = planDetermination({ ...opts, ...(await orderRecordOf(opts, opts.storage)) });
    const result = await opts.storage.saveDetermination({ assertion: plan.assertion, orders: plan.orders });
    if (result.applied) return { extension: plan.extension, assertion: plan.assertion };
    if (attempt === DETERMINE_ATTEMPTS) throw serviceUnavailable("The order's record kept changing while the form's determination was stored: send it again");
  }
}

/** How many times a determination is planned again on an order's record that moved while it was being made. */
const DETERMINE_ATTEMPTS = 5;

/** What a determination reads of the order's record: the record, and the reviewer's approval the answers ask more of. */
export interface OrderRecordRead {
  record: OrderRecord | undefined;
  /**
   * The number of a reviewer's approval on the record that the order as the answers evaluate it asks more of (a higher
   * dose, more cycles than the reviewed PAS request: coverage/reviewed-approval.ts beyondReviewedApproval).
   */
  beyondApproval?: string;
}

/**
 * Reads the order's record for a determination (none when the response names no order or patient), and whether the
 * order as evaluated asks more than a reviewer's approval on it (docs/design.md §8 "What an approval covers"): read
 * afresh each time the determination is planned, so it always speaks of the record it is planned on.
 */
export async function orderRecordOf(opts: DetermineOptions, storage: Storage): Promise<OrderRecordRead> {
  const key = determinationKey(opts);
  const record = key ? await storage.getOrderRecord(key) : undefined;
  const beyondApproval = await beyondReviewedApproval(storage, opts.policy, opts.evaluation, record);
  return { record, ...(beyondApproval ? { beyondApproval } : {}) };
}

/**
 * A determination like {@link determine}'s, over the order's record as read (`record`), writing nothing: the
 * assertion to store and the order's changes, for the caller to store in one transaction with the response they
 * decide (Storage.saveDecidedQuestionnaireResponse), so that a response whose write is refused records nothing.
 * With `beyondApproval` (the answers ask more of the order than a reviewer approved) the determination is the
 * evaluation's, a limit review naming that approval, as signing answers the same order (decide-orders.ts
 * determinationFor): the record keeps the reviewer's approval (a reviewer's approval is never reopened,
 * order-record.ts outgrowsApproval), and the order's one decision is not this response's to change (docs/design.md §8).
 */
export function planDetermination(opts: DetermineOptions & OrderRecordRead): Determination & { orders: GuardedOrderChange[] } {
  const assertionId = randomUUID();
  let determination = proposed(opts);
  const key = determinationKey(opts);
  let orders: GuardedOrderChange[] = [];
  if (key) {
    const plan = planEvaluation(key, opts.record, determination, { source: 'dtr', actor: opts.source, assertionId, policyId: opts.policy.file.id });
    orders = plan.changes;
    determination = opts.beyondApproval
      ? { ...determination, reasons: [...determination.reasons, { text: `${beyondApproval(opts.beyondApproval, 'order')}.` }] }
      : withOrderRecord(determination, plan.record, opts.today, opts.coverageEnd);
  }
  return { ...shaped(opts, determination, assertionId), orders };
}

/** The key of the order's record the determination is about; undefined when the response names no order or patient. */
export function determinationKey(opts: Pick<DetermineOptions, 'policy' | 'patientId' | 'orderRef'>): OrderKey | undefined {
  return orderKeyOf({ payer: opts.policy.file.payer, patientId: opts.patientId, orderRef: opts.orderRef, drug: opts.policy.file.drug });
}

/**
 * The rules' determination, with a new authorization number when they approve (before the order's record speaks).
 * A response that names no order (nor a CRD assertion recorded for one) or no patient has no order record to keep a
 * number on, so each response would issue another: it gets none, and says the order needs its id (docs/design.md §8
 * "An order that cannot be named").
 */
function proposed(opts: DetermineOptions) {
  const { policy, evaluation, today, orderDate, coverageEnd } = opts;
  const unnamed = determinationKey(opts) === undefined;
  const authorization =
    evaluation.outcome === 'satisfied' && evaluation.pathway?.approval && !unnamed
      ? newApproval(policy.file.payer, today, orderDate ?? today, evaluation.pathway.approval, evaluation.pathway.approvalFrom, coverageEnd)
      : undefined;
  // A response does not carry the order: its dose is the one CRD read (the assertion's facts) or an answer, and one
  // neither gives is not an order's dose found unreadable, so it reopens no approval (docs/design.md §8).
  const { unreadableDose: _notTheOrders, ...determination } = determinationOf(policy, evaluation, authorization, unnamed);
  return determination;
}

/** The coverage-information extension and the assertion record of a determination. */
function shaped(opts: DetermineOptions, determination: ReturnType<typeof proposed>, assertionId: string): Determination {
  const { policy, evaluation, today } = opts;
  const issued = determination.authorization;
  const assertion = assertionFor(determination, {
    coverageRef: opts.coverageRef ?? 'Coverage/unknown',
    assertionId,
    date: today,
    billingCodes: policy.file.billingCodes,
  });
  const version = opts.version ?? '2.0';
  // The shared (2.0.1) form has no expiry-date: the approval's period is said in words instead, so the clinician who
  // completed the form knows how long it is valid, as signing and PAS tell it (review ui s44 M5).
  if (version !== '2.2' && assertion.paNeeded === 'satisfied' && issued) {
    assertion.reasons = [...assertion.reasons, { text: `Authorization ${issued.number} is valid from ${longDate(issued.start)} to ${longDate(issued.end)}` }];
  }
  const extension = buildCoverageInformation(assertion, version);
  if (!opts.coverageRef) {
    // The response named no Coverage: keep the required element, without inventing a reference.
    extension.extension = extension.extension?.map((e) =>
      e.url === 'coverage'
        ? { url: 'coverage', valueReference: { display: 'The Coverage of the DTR launch context' } }
        : e,
    );
  }
  const record: AssertionRecord = {
    assertionId,
    createdAt: new Date().toISOString(),
    payer: policy.file.payer,
    policyId: policy.file.id,
    policyVersion: policy.file.version,
    patientId: opts.patientId ?? '',
    orderRef: opts.orderRef ?? '',
    hookInstance: opts.source,
    outcome: determination.outcome,
    facts: Object.fromEntries(evaluation.facts.filter((f) => f.value !== undefined).map((f) => [f.name, f.value])),
    missingFacts: evaluation.missingFacts,
    ...(issued ? { authorization: issued } : {}),
    // The date the answers were judged on, for whoever later has only this assertion (PAS reading the response's).
    ...(opts.orderDate ? { orderDate: opts.orderDate } : {}),
    // The Coverage's last day it was decided under, for whoever later has only this assertion (a response posted again).
    ...(opts.coverageEnd ? { coverageEnd: opts.coverageEnd } : {}),
    // Which Coverage that end is of: the one CRD judged, else the one the response names.
    ...(opts.coverageEndRef ?? opts.coverageRef ? { coverageRef: opts.coverageEndRef ?? opts.coverageRef } : {}),
    ...(opts.orderDate && opts.orderStart === opts.orderDate ? { orderStart: opts.orderStart } : {}),
  };
  return { extension, assertion: record };
}

/** Replaces any coverage-information on a resource with a new one. */
export function withCoverageInformation<T extends { extension?: Extension[] }>(resource: T, ext: Extension): T {
  return { ...resource, extension: [...(resource.extension ?? []).filter((e) => e.url !== COVERAGE_INFO_URL), ext] };
}
