import type { QuestionnaireResponse } from '@medplum/fhirtypes';
import { DomainError } from '../errors.js';

/** A CRD coverage assertion as kept for DTR context, PAS and disputes (design.md §2 "Storage"; CRD [found-11]). */
export interface AssertionRecord {
  assertionId: string;
  createdAt: string;
  payer: string;
  policyId?: string;
  policyVersion?: string;
  patientId: string;
  orderRef: string;
  hookInstance: string;
  outcome: string;
  /** Fact values by name (clinical facts: kept for DTR pre-fill and disputes, never logged). */
  facts: Record<string, unknown>;
  missingFacts: string[];
  /**
   * The names of `facts` that the order's earlier DTR answers gave at signing (coverage/decide-orders.ts
   * `evaluateOrder`: a DTR determination the order carries fills what the record leaves unknown). They still pre-fill
   * the form, but they are not what signing read from the record and the order: a later response's answers are never
   * compared with them, nor set aside for them (docs/design.md §7 "Answers and the record"). Absent when none did, and
   * on assertions recorded before it was kept.
   */
  answeredFacts?: string[];
  authorization?: AuthorizationRecord;
  /**
   * YYYY-MM-DD: the date the order was judged on (evaluation-data.ts `orderDateOf`: its planned start, else validity
   * start, else authoredOn, else the day of the call). DTR, PAS and the reviewer judge the same order on it when the
   * assertion is all they have of the order (design.md §7 "One date per order"). Absent on assertions recorded before
   * it was kept.
   */
  orderDate?: string;
  /**
   * YYYY-MM-DD: the last day of the Coverage the order was judged under (payer.ts `coverageLastDay`), when it has an
   * end. DTR, which is given only a reference to the Coverage, ends an approval it issues for the order no later
   * (design.md §4 "Payer"). Absent for a Coverage with no end, and on assertions recorded before it was kept.
   */
  coverageEnd?: string;
  /**
   * `Coverage/<id>`: the Coverage the order was judged under, whose last day `coverageEnd` is. A DTR response's approval
   * is issued under it and capped at its end, whatever Coverage the response names (design.md §4 "Payer"). Absent when the
   * Coverage has no id, and on assertions recorded before it was kept.
   */
  coverageRef?: string;
  /**
   * YYYY-MM-DD: the start the order stated when it was judged (evaluation-data.ts `statedStartOf`: planned start, else
   * validity start, never authoredOn); absent when it stated none. A DTR package asked by the assertion alone and a PAS
   * copy of the order that drops its start end the recency windows on it, as signing did (design.md §6 "Order date").
   */
  orderStart?: string;
}

/** An authorization number issued at signing ("real-time approval", design.md §5). */
export interface AuthorizationRecord {
  number: string;
  start: string;
  end: string;
}

/** One audit line per hook call: ids, hashes and outcomes, never clinical content. */
export interface HookAuditRecord {
  /** The line's own key (storage gives one when absent): a line written twice (a retried commit) is stored once. */
  lineId?: string;
  requestId: string;
  at: string;
  service: string;
  hookInstance: string;
  clientIss?: string;
  patientIdHash: string;
  status: number;
  outcome: string;
  latencyMs: number;
}

/**
 * A JWT id seen once (CDS Hooks 2.0 §Trusting CDS Clients `jti`; SMART Backend Services client assertion `jti`, RFC
 * 7523 §3). `issuer` is namespaced by the caller (e.g. `cds:<iss>`, `client:<clientId>`) so a CDS client and a payer
 * API client with the same name never collide.
 */
export interface JtiRecord {
  issuer: string;
  jti: string;
  /** Epoch milliseconds after which the token can no longer be accepted (its `exp` plus clock tolerance). */
  expiresAtMs: number;
}

/**
 * One line per payer FHIR API call (design.md §8 "Who may call"): which client, which operation, which resource ids,
 * and the outcome. Never clinical content.
 */
export interface ApiAccessRecord {
  /** The line's own key (storage gives one when absent): a line written twice (a retried statement) is stored once. */
  lineId?: string;
  requestId: string;
  at: string;
  /** The authenticated client id; absent when the call was refused before a client was known, or in open mode. */
  clientId?: string;
  /** `METHOD route` as declared, e.g. `POST /Claim/$submit`. */
  operation: string;
  /** Logical ids the call named or produced (`Questionnaire/…`, `Claim/…`), never contents. */
  resourceIds: string[];
  status: number;
  /** `ok`, or why it was refused (`no-token`, `invalid-token`, `insufficient-scope`, `error`). */
  outcome: string;
}

/**
 * A DTR QuestionnaireResponse as the payer received it (design.md §7): the response as answered, under the id the
 * payer gave it, with the determination it returned in `ext-coverage-information`. Kept durably before the answer.
 */
export interface QuestionnaireResponseRecord {
  id: string;
  receivedAt: string;
  /**
   * The coverage assertion the determination was stored as; absent for a draft (`in-progress`) or `stopped` response,
   * which is stored but decides nothing (design.md §7).
   */
  assertionId?: string;
  patientId?: string;
  orderRef?: string;
  /**
   * The payer API client that sent it (design.md §8 "Who may call"): with `PAYER_API_AUTH=required` only that client
   * reads it back. Absent when sent in open mode (sandbox) or before clients were recorded.
   */
  clientId?: string;
  resource: QuestionnaireResponse;
}

export interface FeedbackRecord {
  service: string;
  card: string;
  outcome: string;
  acceptedSuggestions: string[];
  overrideReason?: unknown;
  outcomeTimestamp: string;
}

/** Where an authorization number came from: CRD real-time approval, a DTR determination, a PAS decision, or a reviewer. */
export type AuthorizationSource = 'crd' | 'dtr' | 'pas' | 'review';

/** The key of an order's authorization record (design.md §8 "One authorization per order"). */
export interface OrderKey {
  payer: string;
  /** The EHR's patient id (CRD context.patientId, the DTR response's subject, the PAS Claim's patient). */
  patientId: string;
  /** The order as `MedicationRequest/{id}`. */
  orderRef: string;
  /** The drug: the governing policy's `drug` (its value set id). */
  drug: string;
}

/**
 * Where an order stands. `auth-needed` and `not-covered` are provisional (the next evaluation may change them);
 * `pended` waits for a reviewer; `approved` and `denied` are the order's decision and stay.
 */
export type OrderState = 'auth-needed' | 'not-covered' | 'pended' | 'approved' | 'denied';

/** One change of an order's state: who (the edge and the person or request), when, why. */
export interface OrderEvent {
  at: string;
  source: AuthorizationSource;
  /** Who: the reviewer's name, or the request that caused it (e.g. `order-sign <hookInstance>`, `PAS <id>`). */
  actor: string;
  state: OrderState;
  reason: string;
  authorizationNumber?: string;
  submissionId?: string;
  assertionId?: string;
  /** On a reviewer's approving event: what the reviewer approved ({@link ApprovedItem}). */
  approvedItem?: ApprovedItem;
}

/**
 * What a reviewer's approval of an order was given for, kept on the approving event (the order's one decision,
 * docs/design.md §8 "What an approval covers"): the reviewed PAS item's criteria (each limit's result and the values
 * of its facts), the amounts of its limits the order asks for (`CompiledFact.asked`; absent: compare every fact, as
 * for decisions stored before they were kept) and its Claim quantity (null: the item stated none; absent: read it from
 * the reviewed request, as for decisions stored before quantities were kept). Opaque to storage (stored JSON). Kept
 * here, not on the PAS item, because a Claim Update of the reviewed request changes the item while the approval
 * stands for what the reviewer saw (review-diff s45 H1), and the request stays the approval's carrier meanwhile.
 */
export interface ApprovedItem {
  criteria: { id: string; kind?: string; result: boolean | 'unknown'; evidence?: { fact: string; value?: boolean | number | string; source?: string }[] }[];
  askedAmounts?: string[];
  quantity?: Record<string, unknown> | null;
}

/** An order's authorization record: its state, its approval once issued, and every change, oldest first. */
export interface OrderRecord extends OrderKey {
  id: string;
  state: OrderState;
  policyId?: string;
  /** The latest reason (the last event's). */
  reason: string;
  /**
   * The approval, once issued: its number never replaced, its period only widened by a reviewer's approval
   * (`setsPeriod`); let go of only when the order outgrows it (`withdrawsApproval`).
   */
  authorization?: AuthorizationRecord;
  /** The PAS request that pends the order or carries its decision. */
  submissionId?: string;
  createdAt: string;
  updatedAt: string;
  history: OrderEvent[];
}

/** A change to apply to an order's record. */
export interface OrderChange {
  state: OrderState;
  at: string;
  source: AuthorizationSource;
  actor: string;
  reason: string;
  policyId?: string;
  /** For `approved`: the approval to issue, used only when the record holds none yet. */
  authorization?: AuthorizationRecord;
  submissionId?: string;
  assertionId?: string;
  /** For a reviewer's `approved`: what the reviewer approved, kept on the event it writes (OrderEvent.approvedItem). */
  approvedItem?: ApprovedItem;
  /**
   * The approval on the record no longer covers the order (coverage/order-record.ts `reopeningReason`: outgrown, or its dose unreadable): the record
   * lets go of its number, which stays in the history and among the issued authorizations.
   */
  withdrawsApproval?: boolean;
  /**
   * For `approved` over the approval the record holds, with its number: the held period widens to take in
   * `authorization`'s ({@link widenedPeriod}: the earlier start, the later end; the number stays). A reviewer who
   * approves a request asking more than the order's approval covered, for a period of the reviewer's own, grants the
   * order that period too, and never takes from it what was issued (docs/design.md §8 "What an approval covers").
   */
  setsPeriod?: boolean;
}

/** Options of Storage.createPasSubmissionForOrders. */
export interface CreatePasSubmissionOptions {
  /**
   * The orders a request waits on (every item pended, each order pended by another client's request, design.md §8):
   * it is stored only while its client has no request waiting on them (findWaitingSubmission), checked with the
   * orders' records locked in the same transaction, so of two requests of one client for those orders (a double
   * click, a resend under a new identifier), on any replica, exactly one is stored. Otherwise nothing is written and
   * `waiting` is the client's request.
   */
  waitingOn?: OrderKey[];
  /**
   * The approvals the request's items answer from their orders' records (AnsweredApproval): it is stored only while
   * each record still holds its number, checked with the records locked in the same transaction. Otherwise nothing is
   * written and `blockedBy` is the record as it stands.
   */
  answers?: AnsweredApproval[];
}

/**
 * An approval a PAS request's item answers from its order's record (pas/decide-items.ts withOrderRecords: A1 with the
 * order's number, issued before). A write carrying it checks, with the order's record locked, that the record still
 * holds it: a cancellation withdrawing it at the same moment (PasUpdateInput.withdrawals, which looks for the requests
 * still carrying it with the same lock held) then either sees this request stored or is seen by it, so no request is
 * stored answering a number its order no longer holds (docs/design.md §8 "Claim updates").
 */
export interface AnsweredApproval {
  key: OrderKey;
  number: string;
}

/** A guarded change: applied when the order has no record yet or its state is one of `from`. */
export interface GuardedOrderChange {
  key: OrderKey;
  change: OrderChange;
  from: OrderState[];
  /**
   * The change's own key, kept on the event it writes (storage gives one when absent, before the first attempt): a
   * change written again (a write-behind batch retried after a COMMIT whose outcome was unknown) is applied once, so
   * the order's history shows it once (a state that may follow itself, `auth-needed`, would otherwise repeat).
   */
  eventId?: string;
}

/** An issued authorization number with its period (YYYY-MM-DD, inclusive), as stored. */
export interface IssuedAuthorization extends AuthorizationRecord {
  payer: string;
  source: AuthorizationSource;
  assertionId?: string;
  submissionId?: string;
  issuedAt: string;
}

/**
 * The state of a PAS request as a whole: every item approved, every item denied, some pended, a mix, or cancelled by
 * its submitter (every item, by a PAS Claim Update).
 */
export type PasStatus = 'approved' | 'denied' | 'pended' | 'partial' | 'cancelled';

/** X12 306 review action codes a decision answers with (PAS `extension-reviewAction` → `code`). */
export type ReviewActionCode = 'A1' | 'A3' | 'A4';

/** X12 306 codes of a PAS request's items: a decision's, or C (Cancelled) for an item its submitter cancelled. */
export type ItemActionCode = ReviewActionCode | 'C';

/** A PAS `$submit` request as first decided, ready to store. */
export interface NewPasSubmission {
  id: string;
  /** The request Bundle's identifier as `system|value`: with `clientId`, the idempotency key (unique per client). */
  bundleIdentifier: string;
  /**
   * The payer API client that filed it (design.md §8 "Who may call"): with `PAYER_API_AUTH=required` only that client
   * finds it again ($submit replay, `$inquire`, subscription notifications). Absent when filed in open mode (sandbox)
   * or before clients were recorded.
   */
  clientId?: string;
  /** SHA-256 of the request Bundle's canonical JSON without `id`, `meta` and `timestamp`. */
  requestHash: string;
  payer: string;
  policyId?: string;
  policyVersion?: string;
  /** The Claim's identifiers as `system|value` ($inquire matches them). */
  claimIdentifiers: string[];
  /** The Patient's identifiers as `system|value` ($inquire requires an overlap when both sides have some). */
  patientIdentifiers: string[];
  status: PasStatus;
  /** The request's summary code: A4 while any item is pended, C when every item was cancelled. */
  reviewAction: ItemActionCode;
  /** For pended requests: what is needed (questions, clinical review of a limit). Never clinical values. */
  needed: string[];
  preAuthRef?: string;
  preAuthPeriod?: { start: string; end: string };
  claimResponse: Record<string, unknown>;
  responseBundle: Record<string, unknown>;
  /** The request Bundle as received: the payer's record of the request (PAS spec-26). */
  requestBundle: Record<string, unknown>;
  /** The PAS module's per-item state, opaque to storage (re-rendering after a reviewer's decision). */
  detail: Record<string, unknown>;
  createdAt: string;
}

/** Subscription status (R4 Subscriptions Backport `backport-subscription-status` codes). */
export type SubscriptionStatus = 'requested' | 'active' | 'error' | 'off';

/** A rest-hook Subscription to the PAS topic as stored (the client's resource, and what delivery reads from it). */
export interface SubscriptionRecord {
  id: string;
  /** The payer API client that created it (only it may read, change or delete it); absent in open mode. */
  owner?: string;
  status: SubscriptionStatus;
  topic: string;
  /** Filter criteria as given (`org-identifier=…`, `patient=…`). */
  filters: string[];
  endpoint: string;
  /** Extra HTTP headers the client asked for (`Authorization: …`). */
  headers: string[];
  content: 'empty' | 'id-only' | 'full-resource';
  resource: Record<string, unknown>;
  eventsCount: number;
  createdAt: string;
  updatedAt: string;
}

/** Which Subscriptions `listSubscriptions` answers: one page, in id order. */
export interface SubscriptionQuery {
  statuses?: SubscriptionStatus[];
  /** Only those this payer API client may read (`readableBy`); absent, every one. */
  readableBy?: string;
  /** The page after this id (keyset paging). */
  afterId?: string;
  limit?: number;
}

/** The most Subscriptions one `listSubscriptions` call answers. */
export const SUBSCRIPTION_PAGE = 1000;

/**
 * Every Subscription the query selects, page by page, however many there are (the notifier's dispatch and heartbeat
 * passes must not stop at a page). Yields each page.
 */
export async function* everySubscription(storage: Pick<Storage, 'listSubscriptions'>, q: Omit<SubscriptionQuery, 'afterId'> = {}): AsyncGenerator<SubscriptionRecord[]> {
  const limit = Math.min(q.limit ?? SUBSCRIPTION_PAGE, SUBSCRIPTION_PAGE);
  let afterId: string | undefined;
  for (;;) {
    const page = await storage.listSubscriptions({ ...q, limit, ...(afterId !== undefined ? { afterId } : {}) });
    if (page.length > 0) yield page;
    if (page.length < limit) return;
    afterId = page[page.length - 1].id;
  }
}

/** One numbered event of a subscription: the decided request it is about, and when it was dispatched. */
export interface SubscriptionEvent {
  eventNumber: number;
  submissionId: string;
  at: string;
}

/** One notification to send, claimed for delivery, with its subscription. */
export interface DueDelivery {
  id: number;
  kind: 'handshake' | 'event-notification';
  eventNumber?: number;
  submissionId?: string;
  attempts: number;
  subscription: SubscriptionRecord;
}

/** A request that collapsed into a pended one: its identifiers name that submission. */
/** What one client's Bundle identifier names (design.md §8 "Submit and inquire"): a request, and the content that named it. */
export interface BundleName {
  submissionId: string;
  /** SHA-256 of the content filed under the name (the request's own, an alias's, a Claim Update's). */
  requestHash: string;
}

export interface PasSubmissionAlias {
  bundleIdentifier: string;
  /** The client that sent the collapsed request (always the pended request's own client). */
  clientId?: string;
  submissionId: string;
  requestHash: string;
  claimIdentifiers: string[];
  createdAt: string;
}

/** A stored PAS submission with its current state and every reviewer decision, oldest first. */
export interface PasSubmission extends NewPasSubmission {
  updatedAt: string;
  decisions: ReviewDecision[];
  /**
   * Counts the changes since it was stored (reviewer decisions, settling, Claim Updates): a change computed from what
   * was read applies only while the submission is still at the revision read (ReviewDecisionInput, PasUpdateInput).
   */
  revision: number;
}

/**
 * A PAS Claim Update (PAS 2.2.1 `profile-claim-update`, specification §"Updating Authorization Requests") applied to
 * a stored request: the request is changed in place (its id, the ClaimResponse id and REF-NT, stays), and the update
 * Bundle is kept as received. Unique per (client, Bundle identifier, content): a resend is answered, not reapplied.
 */
export interface PasSubmissionUpdate {
  submissionId: string;
  bundleIdentifier: string;
  clientId?: string;
  requestHash: string;
  /** The update Claim's identifiers as `system|value` ($inquire by them finds the request as it now stands). */
  claimIdentifiers: string[];
  /** `cancel`: the whole request (certificationType 3 on the Claim); `update`: items added, changed or cancelled. */
  kind: 'update' | 'cancel';
  requestBundle: Record<string, unknown>;
  createdAt: string;
}

/** A Claim Update with the request's new state and its orders' changes, applied atomically. */
export interface PasUpdateInput {
  update: PasSubmissionUpdate;
  /** The submission's revision the update was computed from: applied only while it is still that revision. */
  revision: number;
  next: Pick<PasSubmission, 'status' | 'reviewAction' | 'needed' | 'preAuthRef' | 'preAuthPeriod' | 'claimResponse' | 'responseBundle' | 'detail' | 'requestBundle' | 'claimIdentifiers'>;
  /** The orders the update pends, releases or withdraws, in the same transaction; any refused change refuses it. */
  orders: GuardedOrderChange[];
  /**
   * Approvals the update's cancelled items carried and let go of (docs/design.md §8 "Claim updates"): each `change`
   * (guarded `from: ['approved']`, `withdrawsApproval`) is applied only when, decided in the same transaction with the
   * order's record locked, the record still holds `number` and no other stored request carries it: an item answering
   * `number` for that order (A1), wherever the item is in that request and whatever identifies its patient, or, for the
   * request the approval was issued in (the record's latest approving event), its item for the order still answering
   * or waiting (A1, A4: a Claim Update asking more pended it again, and the approval stands). Otherwise
   * it is left out, and the update applies without it: an approval another request still certifies stays. Decided
   * there, not before, so that of two requests carrying one approval cancelled at the same time, on any replica, the
   * one stored last withdraws it (each read alone sees the other still carrying it; review-diff s44 D1).
   */
  withdrawals?: ApprovalWithdrawal[];
  /** The approvals its items decided again answer from their orders' records: applied only while held (AnsweredApproval). */
  answers?: AnsweredApproval[];
  /** An authorization the update issued (stored under the submission's payer). */
  authorization?: AuthorizationRecord;
}

/** An approval a cancelled PAS item carried, withdrawn unless another request still answers it (PasUpdateInput). */
export interface ApprovalWithdrawal {
  /** The approval's number, as the order's record held it when the cancelled item let go of it. */
  number: string;
  /** The order's change that withdraws it. */
  change: GuardedOrderChange;
}

/** A decided DTR response with what its determination records, stored atomically. */
export interface DecidedResponseInput {
  record: QuestionnaireResponseRecord & { assertionId: string };
  /** The stored version a `PUT` replaces (`meta.versionId`, "1" when absent); absent for a new response. */
  previousVersionId?: string;
  assertion: AssertionRecord;
  /** The order's changes, applied in order; any refused change refuses the whole. */
  orders: GuardedOrderChange[];
}

/** A determination's writes (Storage.saveDetermination): its assertion and its order's changes. */
export interface DeterminationInput {
  assertion: AssertionRecord;
  /** The order's changes, applied in order; any refused change refuses the whole. */
  orders: GuardedOrderChange[];
}

export type ReviewDecisionKind = 'approve' | 'deny';

/** A clinical reviewer's decision on a pended request: who, when, why. */
export interface ReviewDecision {
  submissionId: string;
  decision: ReviewDecisionKind;
  reviewer: string;
  reason: string;
  decidedAt: string;
  authorizationNumber?: string;
}

/** A reviewer's decision together with the submission's new state, applied atomically. */
export interface ReviewDecisionInput {
  /** The orders the decision decides, applied in the same transaction; any refused change refuses the decision. */
  orders?: GuardedOrderChange[];
  decision: ReviewDecision;
  /** The state after the decision; applied only if the submission is still pended. */
  next: Pick<PasSubmission, 'status' | 'reviewAction' | 'needed' | 'preAuthRef' | 'preAuthPeriod' | 'claimResponse' | 'responseBundle' | 'detail'>;
  /** The revision the decision was computed from: applied only while the submission is still at it (a Claim Update meanwhile refuses it). */
  revision?: number;
  /** The authorization issued on approval (stored under the submission's payer). */
  authorization?: AuthorizationRecord;
  /** The approvals its items take from their orders' records (settle-pended.ts): applied only while held (AnsweredApproval). */
  answers?: AnsweredApproval[];
}

/** The reviewer work list entry: identifiers, payer, policy and what is needed; no clinical content. */
export interface PendedSummary {
  id: string;
  bundleIdentifier: string;
  payer: string;
  policyId?: string;
  policyVersion?: string;
  createdAt: string;
  needed: string[];
}

/** $inquire search keys; a submission matches when any listed key matches. */
export interface PasQuery {
  ids?: string[];
  bundleIdentifiers?: string[];
  claimIdentifiers?: string[];
  preAuthRefs?: string[];
  patientIdentifiers?: string[];
  /**
   * Only what this payer API client may read: the requests it filed and those filed without a client (see
   * `readableBy`). Absent: every request (open mode, the reviewer, the notifier).
   */
  readableBy?: string;
  limit?: number;
}

/**
 * An issued approval with its period widened to take in `period`: from the earlier start to the later end (dates as
 * YYYY-MM-DD compare as strings). A reviewer's period never narrows or moves an approval already issued, which may have
 * been dispensed and billed under (docs/design.md §8, review s41 F8); SQL storage applies the same rule with
 * LEAST/GREATEST.
 */
export function widenedPeriod(held: AuthorizationRecord, period: { start: string; end: string }): AuthorizationRecord {
  return { ...held, start: period.start < held.start ? period.start : held.start, end: period.end > held.end ? period.end : held.end };
}

/**
 * Applies `c` to `record` in place, as every store applies an order change: state, reason and time, the policy and
 * request it names, a withdrawn approval dropped, an approval issued only when none is held (docs/design.md §8 "One
 * authorization per order") or its period widened by a reviewer (`setsPeriod`), and its history event. True when this change issued the record's approval.
 */
export function applyChangeTo(record: OrderRecord, c: OrderChange): boolean {
  record.state = c.state;
  record.reason = c.reason;
  record.updatedAt = c.at;
  if (c.policyId) record.policyId = c.policyId;
  if (c.submissionId) record.submissionId = c.submissionId;
  if (c.withdrawsApproval) delete record.authorization;
  const issuing = c.state === 'approved' && c.authorization !== undefined && !record.authorization;
  if (issuing) record.authorization = { ...c.authorization! };
  else if (c.state === 'approved' && c.setsPeriod && c.authorization && record.authorization?.number === c.authorization.number) {
    record.authorization = widenedPeriod(record.authorization, c.authorization);
  }
  record.history.push(orderEventOf(c, record.authorization?.number));
  return issuing;
}

/**
 * The history event a change writes on its order, as SQL storage reads it back from `order_authorization_events`:
 * spelt once for the memory store and for the core's prediction of a record (coverage/order-record.ts).
 * `authorizationNumber` is the approval the order holds once the change applies (docs/design.md §8 "One
 * authorization per order").
 */
export function orderEventOf(c: OrderChange, authorizationNumber: string | undefined): OrderEvent {
  return {
    at: c.at,
    source: c.source,
    actor: c.actor,
    state: c.state,
    reason: c.reason,
    ...(c.state === 'approved' && authorizationNumber ? { authorizationNumber } : {}),
    ...(c.submissionId ? { submissionId: c.submissionId } : {}),
    ...(c.assertionId ? { assertionId: c.assertionId } : {}),
    ...(c.state === 'approved' && c.approvedItem ? { approvedItem: c.approvedItem } : {}),
  };
}

/**
 * Whether a payer API client may read a stored request or response (design.md §8 "Who may call"): the client that
 * filed it, any client when it was filed without one (open mode, or before clients were recorded), and anyone when
 * the caller is not a client (open mode). A client that may not read it is told it does not exist.
 */
export function readableBy(owner: string | undefined, caller: string | undefined): boolean {
  return !owner || !caller || owner === caller;
}

/**
 * The database cannot be reached right now (connection refused or lost, server shutting down or starting, a
 * statement left unanswered). Nothing was written, unless `outcomeUnknown`; the same request may be retried. A domain error with issue code `transient`, which the edges answer
 * 503 with Retry-After (design.md §4 "Errors"; FHIR R4 http.html).
 */
export class StorageUnavailableError extends DomainError {
  /**
   * `outcomeUnknown`: the database stopped answering after a statement was sent (a COMMIT among them), so what was
   * sent may have been stored. The retry is still the right answer: a repeated request finds what was stored.
   */
  constructor(cause: unknown, opts: { outcomeUnknown?: boolean } = {}) {
    super(
      'transient',
      opts.outcomeUnknown
        ? 'Storage stopped answering; this request may or may not have been stored. Retry the same request shortly: it is answered from what was stored.'
        : 'Storage is temporarily unavailable; nothing was stored. Retry the same request shortly.',
    );
    this.name = 'StorageUnavailableError';
    this.cause = cause;
  }
}

/** Thrown for storage set-up problems (a data directory in use, a schema newer than this build). */
export class StorageError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StorageError';
  }
}

/**
 * The storage seam (design.md §2 "Storage"). `createStorage` returns the embedded PGlite or the PostgreSQL backend;
 * `MemoryStorage` serves unit tests. Every write resolves only once it is durable (committed and flushed).
 */
export interface Storage {
  saveAssertion(a: AssertionRecord): Promise<void>;
  /**
   * CRD's records, written behind the hook's answer (design.md §2 "Written behind the hook's answer": storage off the
   * hook's critical path). Resolves once queued: at once, unless the queue is full (then when there is room again).
   * This process reads the record back at once (getAssertion answers from the queue; an order read waits for the
   * order's queued change), batches of queued records are written in one transaction within moments, `close()` writes
   * what is queued, a transient failure is retried, and a record the database refuses is logged (ids and counts) and
   * dropped. Only for what may be lost in a crash without breaking a promise: the assertion (the order's answer stands
   * on its own) and an order's provisional change (`auth-needed`, `not-covered`); an approval or a denial goes through
   * applyOrderChange, durable before the answer.
   */
  queueAssertion(a: AssertionRecord): Promise<void>;
  /** An order's provisional change written behind the answer, as queueAssertion; applied with the same guard. */
  queueOrderChange(c: GuardedOrderChange): Promise<void>;
  getAssertion(assertionId: string): Promise<AssertionRecord | undefined>;
  saveAudit(a: HookAuditRecord): Promise<void>;
  /** The most recent audit lines, newest first. */
  listAudit(limit?: number): Promise<HookAuditRecord[]>;
  /** Idempotent on (service, card, outcome, outcomeTimestamp). Returns false for a duplicate. */
  saveFeedback(f: FeedbackRecord): Promise<boolean>;
  /** Stores a DTR QuestionnaireResponse; resolves once it is durable (design.md §2 "Durable before the answer"). */
  saveQuestionnaireResponse(r: QuestionnaireResponseRecord): Promise<void>;
  getQuestionnaireResponse(id: string): Promise<QuestionnaireResponseRecord | undefined>;
  /**
   * Replaces a stored DTR QuestionnaireResponse with its next version (a draft updated with PUT, design.md §7), only
   * while the stored one is still at `previousVersionId` (`meta.versionId`, "1" when absent); false when it is not
   * stored or another update came first. Resolves once durable. Only the current version is kept.
   */
  replaceQuestionnaireResponse(r: QuestionnaireResponseRecord, previousVersionId: string): Promise<boolean>;
  /**
   * Stores a DTR QuestionnaireResponse that decided, with its determination, in one transaction (design.md §7): the
   * response (new, or replacing the stored one only while it is still at `previousVersionId`), its assertion and the
   * order's changes. All or nothing: when another update came first (`applied: false`) or an order's change is refused
   * (`blockedBy`: the record moved meanwhile, plan again on it), nothing is recorded. Resolves once durable.
   */
  saveDecidedQuestionnaireResponse(input: DecidedResponseInput): Promise<{ applied: boolean; blockedBy?: OrderRecord }>;
  /**
   * Stores a determination made without a response to keep (DTR `$next-question` completing an adaptive form): its
   * assertion and its order's changes in one transaction, both or neither. When a change is refused (the order's
   * record moved since it was read) nothing is written and `blockedBy` is the record as it stands.
   */
  saveDetermination(input: DeterminationInput): Promise<{ applied: boolean; blockedBy?: OrderRecord }>;
  listFeedback(limit?: number): Promise<FeedbackRecord[]>;
  getAuthorization(number: string): Promise<IssuedAuthorization | undefined>;

  /**
   * Stores a new PAS submission and its authorization (if approved) atomically, unless the same client (or none)
   * filed one with the same `bundleIdentifier`: then nothing is written and the stored one is returned with
   * `created: false`.
   */
  createPasSubmission(s: NewPasSubmission, authorization?: AuthorizationRecord): Promise<{ created: boolean; submission: PasSubmission }>;
  /**
   * Like createPasSubmission, and applies the orders' changes in the same transaction (a pended request marks its
   * orders pended). When an order's change is refused (another request pended or decided it first) nothing is
   * written and `blockedBy` is that order's record; PostgreSQL's row locks make this hold across processes.
   */
  createPasSubmissionForOrders(
    s: NewPasSubmission,
    orders: GuardedOrderChange[],
    authorization?: AuthorizationRecord,
    opts?: CreatePasSubmissionOptions,
  ): Promise<{ created: true; submission: PasSubmission } | { created: false; submission?: PasSubmission; blockedBy?: OrderRecord; waiting?: PasSubmission }>;
  /**
   * The oldest pended request `client` filed whose pended (A4) items name every one of `orders`: the request of this
   * client that waits on another client's request for them (design.md §8 "One authorization per order"), which a
   * later request of this client for the same orders collapses into.
   */
  findWaitingSubmission(client: string, orders: OrderKey[]): Promise<PasSubmission | undefined>;
  getPasSubmission(id: string): Promise<PasSubmission | undefined>;
  /**
   * The submission a Bundle identifier names: its own, or one it collapsed into, or the one a Claim Update under it
   * changed (then `requestHash` is the alias's or the update's, the latest update's if several). With `client`, only one that client may read (`readableBy`), its own first; without, any.
   */
  getPasSubmissionByBundleIdentifier(bundleIdentifier: string, client?: string): Promise<PasSubmission | undefined>;
  /**
   * Applies a Claim Update to a stored submission (PasUpdateInput): its new state, the update record and the orders'
   * changes in one transaction, only while the submission is at `revision` and no update with the same client,
   * identifier and content was applied. `applied: false`: nothing was written; `blockedBy` names an order whose change
   * was refused.
   */
  updatePasSubmission(input: PasUpdateInput): Promise<{ applied: boolean; submission?: PasSubmission; blockedBy?: OrderRecord }>;
  /** The submission an applied Claim Update with this client, Bundle identifier and content changed (its resend). */
  findPasUpdate(bundleIdentifier: string, client: string | undefined, requestHash: string): Promise<PasSubmission | undefined>;
  /**
   * Records that a request (Bundle and Claim identifiers) collapsed into a stored submission, unless the client's
   * identifier already names a request (its own, an alias, a Claim Update), atomically with every other writer of the
   * name (design.md §8 "Submit and inquire": one identifier, one content). Returns what the client's identifier names
   * afterwards (this alias, or what named it first), read in the same transaction: the caller answers 409 when that
   * is another request or other content.
   */
  addPasSubmissionAlias(a: PasSubmissionAlias): Promise<BundleName>;
  /** Submissions matching any key of the query, newest first. */
  findPasSubmissions(q: PasQuery): Promise<PasSubmission[]>;
  listPendedSubmissions(limit?: number): Promise<PendedSummary[]>;
  /**
   * The decisions recorded on PAS requests at or after `since` (an ISO instant), newest first, at most `limit` (default
   * 100): each reviewer's decision and each settling of a pended request by its order's decision on another path
   * (settlePended records it as a decision naming that path). What the reviewer's "Decided" list reads
   * (`GET /review/decided`, design.md §8 "The reviewer API"), so a decided request is found again after a reload.
   */
  listReviewDecisions(q: { since: string; limit?: number }): Promise<ReviewDecision[]>;
  /**
   * Records a reviewer's decision and the submission's new state in one transaction, only if the submission is still
   * pended. `applied: false` means it was not (already decided, or unknown: then `submission` is undefined).
   */
  recordReviewDecision(input: ReviewDecisionInput): Promise<{ applied: boolean; submission?: PasSubmission }>;

  /**
   * Records a JWT id until `expiresAtMs`. Resolves `true` when it is new (or its earlier record has expired) and
   * `false` when the same (issuer, jti) is recorded and unexpired: a replay. One atomic step, so with PostgreSQL
   * exactly one of several replicas accepts a token; `nowMs` is the verifier's clock (default `Date.now()`).
   */
  recordJti(r: JtiRecord, nowMs?: number): Promise<boolean>;
  /**
   * A value every replica must share (e.g. the payer API token signing key): the stored one, or `initial` if none is
   * stored yet. The first writer wins, so replicas starting together agree.
   */
  sharedSetting(key: string, initial: string): Promise<string>;
  /**
   * Since when (an ISO instant) every replica has been told that `key` is `value`: the stored time when the stored
   * value is `value`, else `value` is stored with `at` and `at` is answered. Unlike a shared setting, a value that
   * comes back after another one (a deploy rolled back) counts from its return, not from its first time.
   */
  settingSince(key: string, value: string, at: string): Promise<string>;
  /**
   * Appends a payer FHIR API access line (design.md §8). A line the database cannot take now (StorageUnavailableError)
   * is kept in memory and written when it can (sql-storage.ts, access-backlog.ts): the promise resolves then already.
   */
  saveApiAccess(a: ApiAccessRecord): Promise<void>;
  /** The most recent API access lines, newest first. */
  listApiAccess(limit?: number): Promise<ApiAccessRecord[]>;

  /** An order's authorization record with its history. */
  getOrderRecord(key: OrderKey): Promise<OrderRecord | undefined>;
  /** The records of a patient's orders at one payer (every drug), for deciding several orders at once. */
  findOrderRecords(q: { payer: string; patientId: string; orderRefs: string[] }): Promise<OrderRecord[]>;
  /** The records a PAS request pends or decides. */
  findOrderRecordsBySubmission(submissionId: string): Promise<OrderRecord[]>;
  /**
   * The patients whose records hold an order (by its `Type/id`) under one payer and drug, at most a few: an order is one
   * patient's, and a DTR response names its order (qr-context) apart from its patient (subject), so a response whose
   * subject is not the patient the order's record is held for is about another patient's order (docs/design.md §4
   * "One patient"). Reads after what this process queued (as getOrderRecord).
   */
  orderPatientIds(q: { payer: string; orderRef: string; drug: string }): Promise<string[]>;
  /**
   * Applies a change to an order's record atomically: inserted when the order has none, updated when its state is
   * one of `from`, else refused (`applied: false`, the current record returned). An approval already on the record
   * is kept: an approval is issued once per order; a new one is also recorded among issued authorizations.
   * `assertion`, the caller's assertion about the order (a hook approving at signing), is written in the same
   * transaction, both or neither, naming the approval the record holds once the change is applied (whichever
   * replica issued it; none when the order is not approved), whatever authorization it was given.
   */
  applyOrderChange(c: GuardedOrderChange, assertion?: AssertionRecord): Promise<{ applied: boolean; record: OrderRecord }>;

  /** Creates or replaces a Subscription (the event count is kept on replace). */
  saveSubscription(s: SubscriptionRecord): Promise<void>;
  getSubscription(id: string): Promise<SubscriptionRecord | undefined>;
  /**
   * One page of Subscriptions in id order (at most `limit`, default and most 1000): those after `afterId`, with one of
   * `statuses`, readable by `readableBy`. Callers that must see every one page through (`everySubscription`).
   */
  listSubscriptions(q?: SubscriptionQuery): Promise<SubscriptionRecord[]>;
  /** Deletes a Subscription and its undelivered notifications. Returns false when there was none. */
  deleteSubscription(id: string): Promise<boolean>;
  /**
   * Sets a Subscription's status. `error` holds its undelivered event notifications (they are not sent while it is in
   * error); `active` releases every held one, due at `at` with a fresh retry budget, so a recovered subscription gets
   * what it missed (R4 Subscriptions Backport: a client recovers the events of an errored subscription).
   */
  setSubscriptionStatus(id: string, status: SubscriptionStatus, at: string): Promise<void>;
  /** Queues a handshake for a Subscription (sent by the delivery loop). */
  enqueueHandshake(subscriptionId: string, at: string): Promise<void>;
  /** Decision events (written with reviewer decisions) not yet turned into notifications, oldest first. */
  pendingPasEvents(limit?: number): Promise<{ id: number; submissionId: string }[]>;
  /**
   * Turns one decision event into a notification per matching subscription (each numbered by its subscription's
   * event count) and marks it dispatched, in one transaction; a no-op when another replica dispatched it first. A
   * subscription in `error` gets its number too, held until it is active again; one `off` gets nothing.
   */
  dispatchPasEvent(eventId: number, submissionId: string, subscriptionIds: string[], at: string): Promise<void>;
  /**
   * Claims up to `limit` notifications due at `now` for `leaseMs` (another replica skips them meanwhile), with
   * their subscriptions.
   */
  claimDueDeliveries(now: string, leaseMs: number, limit: number): Promise<DueDelivery[]>;
  /** Marks a notification delivered (and its subscription as notified at `at`, see claimHeartbeat). */
  completeDelivery(id: number, at: string): Promise<void>;
  /**
   * Claims the heartbeat of an active subscription that was sent nothing since `quietSince` (its last notification,
   * else its last change): marks it notified at `now` and returns true, for exactly one caller across replicas.
   */
  claimHeartbeat(subscriptionId: string, quietSince: string, now: string): Promise<boolean>;
  failDelivery(id: number, nextAttemptAt: string, error: string): Promise<void>;
  /** Notifications waiting for delivery, not counting those held for a subscription in error (readiness, tests). */
  countUndelivered(): Promise<number>;
  /**
   * A subscription's events numbered `since` to `until` (inclusive), oldest first, at most `limit`: what `$events`
   * answers. Kept as long as the subscription.
   */
  listSubscriptionEvents(subscriptionId: string, since: number, until: number, limit: number): Promise<SubscriptionEvent[]>;

  /** Readiness: resolves when the store answers a query (/readyz). */
  ping(): Promise<void>;
  /** Flushes pending writes and releases the store. */
  close(): Promise<void>;
}

/**
 * The latest event of an order's history that put it in `state`: the approval it stands on, the denial it stands under
 * (coverage/ and storage's own held-elsewhere check read it alike).
 */
export function latestEvent(record: Pick<OrderRecord, 'history'>, state: OrderState): OrderEvent | undefined {
  return [...record.history].reverse().find((h) => h.state === state);
}
